/// ssp and async (train.consistency; ServerAsync.swift has the servers'
/// side): a worker asks server 0 what to do next and does what it is
/// given: train a slice of a step's global batch, evaluate after an epoch,
/// or pull the final parameters. The request for the next slice goes out
/// while the current one computes.
struct AsyncAssignments {
    enum Request {
        case idle
        /// Asked at `step` (the last step asked for): the answer's frame and receive.
        case asked(frame: FrameBuffer, receive: TransportRequest, step: Int)
    }

    let ctx: RankContext
    var request = Request.idle
    /// The step of the last slice asked for.
    var lastAsked: Int

    init(context: RankContext, start: Int) { ctx = context; lastAsked = start }

    var server0: Int { ctx.world.serverRanks[0] }

    /// Asks server 0 what to do next (`step`: the step of the last slice
    /// asked for), without waiting for the answer.
    mutating func ask(step: Int) throws {
        let (frame, receive) = try post(step: step)
        request = .asked(frame: frame, receive: receive, step: step)
    }

    func post(step: Int) throws -> (FrameBuffer, TransportRequest) {
        let frame = Assignment.buffer()
        let receive = try ctx.transport.irecv(frame, from: server0, tag: Assignment.kind.tag)
        try ctx.send(PullRequest(.assign), to: [server0], step: step, for: "asking for work")
        return (frame, receive)
    }

    /// Server 0's answer to the request made (or made now).
    mutating func receive() throws -> Assignment {
        let frame: FrameBuffer, receive: TransportRequest, step: Int
        switch request {
        case .asked(let f, let r, let s): (frame, receive, step) = (f, r, s)
        case .idle: step = lastAsked; (frame, receive) = try post(step: step)
        }
        request = .idle
        let n = try ctx.wait([receive], for: "work", step: step)[0]
        let a = try Assignment.open(frame, length: n, step: step, sender: ctx.world.describe(server0))
        if a.work == .train { lastAsked = a.step }
        return a
    }
}
