import Foundation
import PSCodec
import PSConfig
import PSCheckpoint
import PSRunLog

/// What a rank needs to run its role. Built by the executable (PSRank) or by
/// a test over an in-process transport.
public final class RankContext {
    public let config: Config
    public let world: World
    public let transport: Transport
    public let log: RunLog?
    /// Human progress lines (server 0 only prints them).
    public let say: (String) -> Void

    /// The run directory (checkpoints go to its checkpoints/ folder).
    public let runDir: String
    /// The checkpoint this run continues from, already verified.
    public let resume: (path: String, manifest: Manifest)?

    public init(config: Config, world: World, transport: Transport, log: RunLog?, say: @escaping (String) -> Void,
                runDir: String = "", resume: (path: String, manifest: Manifest)? = nil) {
        self.config = config; self.world = world; self.transport = transport; self.log = log; self.say = say
        self.runDir = runDir; self.resume = resume
    }

    var rank: Int { transport.rank }
    var timeout: Double { config.run.timeoutSeconds }
    /// Whether this run writes files (tests may run without a run directory).
    var hasRunDir: Bool { !runDir.isEmpty }

    /// The attempt of the job this rank belongs to: server 0's process id.
    var attempt: Int32 { world.hellos[world.serverRanks[0]].pid }

    /// Waits, turning a timeout into a message that names the silent rank.
    func wait(_ reqs: [TransportRequest], for what: String, step: Int) throws -> [Int] {
        do {
            return try transport.waitAll(reqs, timeout: timeout)
        } catch let t as TransportTimeout {
            throw ProtocolError.silentRank(blame(WaitClaim(rank: rank, peer: t.peer, what: what, step: step, seconds: t.seconds)))
        }
    }

    /// Waits for one of `reqs` (see Transport.waitAny), naming a silent rank like `wait`.
    func waitAny(_ reqs: [TransportRequest], for what: String, step: Int) throws -> (index: Int, count: Int) {
        do {
            return try transport.waitAny(reqs, timeout: timeout)
        } catch let t as TransportTimeout {
            throw ProtocolError.silentRank(blame(WaitClaim(rank: rank, peer: t.peer, what: what, step: step, seconds: t.seconds)))
        }
    }

    /// Sends one control message to each of `peers` and waits until they are out.
    func send<M: ControlMessage>(_ m: M, to peers: [Int], step: Int, index: Int = 0, for what: String) throws {
        let b = M.buffer()
        m.seal(into: b, step: step, index: index)
        _ = try wait(try peers.map { try transport.isend(b, to: $0, tag: M.kind.tag) }, for: what, step: step)
    }

    /// Receives one control message of `step` from each of `peers`, in the
    /// order given; `index` gives the header index each peer's frame must carry.
    func receive<M: ControlMessage>(_: M.Type, from peers: [Int], step: Int, index: (Int) -> Int = { _ in 0 },
                                    into buffers: [FrameBuffer]? = nil, for what: String) throws -> [M] {
        let frames = buffers ?? peers.map { _ in M.buffer() }
        let reqs = try peers.enumerated().map { (i, r) in try transport.irecv(frames[i], from: r, tag: M.kind.tag) }
        let counts = try wait(reqs, for: what, step: step)
        return try peers.indices.map { i in
            try M.open(frames[i], length: counts[i], step: step, index: index(i), sender: world.describe(peers[i]))
        }
    }

    /// The message for a wait that timed out: after a grace period in which
    /// the other ranks' deadlines fire too, the rank at the end of the chain
    /// of waits is named, not merely this rank's peer (Blame.swift).
    func blame(_ mine: WaitClaim) -> String {
        var last = mine
        var through = ""
        if hasRunDir {
            let claims = WaitClaims(runDir: runDir, attempt: attempt)
            claims.leave(mine)
            Thread.sleep(forTimeInterval: max(1, min(timeout / 2, 10)))
            let (chain, cycle) = claims.follow(from: mine)
            if cycle {
                return "deadlock: " + chain.map { "\(world.describe($0.rank)) waits for \(world.describe($0.peer)) (\($0.what) of step \($0.step))" }
                    .joined(separator: ", ") + "; no rank is silent, the ranks wait on each other (a pstrain bug: please report it with the run directory)"
            }
            last = chain.last!
            if chain.count > 1 {
                through = "; \(world.describe(rank)) timed out as well, waiting for " + chain.dropLast().map { "\(world.describe($0.peer))" }.joined(separator: ", which waited for ")
            }
        }
        return "\(world.describe(last.peer)) sent nothing for \(Int(last.seconds)) s while \(world.describe(last.rank)) waited for \(last.what) of step \(last.step); "
            + "that rank is hung or dead (run.timeout_seconds sets this deadline)\(through); last checkpoint: \(hasRunDir ? CheckpointStore.latestName(runDir) ?? "none" : "none")"
    }
}

/// The steps of a run: how many per epoch and in all, where this attempt
/// starts, and when it evaluates and checkpoints.
struct Schedule {
    let perEpoch: Int
    let total: Int
    let start: Int
    /// When the configuration asks for checkpoints.
    let checkpoint: CheckpointSection

    init(context ctx: RankContext, trainCount: Int) throws {
        let config = ctx.config
        checkpoint = config.checkpoint
        perEpoch = trainCount / config.train.stepBatch
        guard perEpoch > 0 else {
            throw ProtocolError.dataDoesNotFit("train.batch_size x train.accumulate = \(config.train.stepBatch) is larger than the training set (\(trainCount) samples)")
        }
        var total = perEpoch * config.train.epochs
        if config.train.maxSteps > 0 { total = min(total, config.train.maxSteps) }
        self.total = total
        // A checkpoint being resumed must cut the data into the same steps; the
        // run may be longer or shorter than the one that wrote it (pstrain resume --epochs), but not end before it.
        if let (path, m) = ctx.resume {
            guard m.stepsPerEpoch == perEpoch, m.step <= total else {
                throw ProtocolError.otherRunLength(checkpoint: path, steps: m.totalSteps, perEpoch: m.stepsPerEpoch, configured: total,
                                                   configuredPerEpoch: perEpoch)
            }
            start = m.step
        } else {
            start = 0
        }
    }

    var steps: Range<Int> { start..<total }
    func epoch(of step: Int) -> Int { step / perEpoch }
    /// Whether step `step` is the last of an epoch (or of the run): the workers evaluate after it.
    func endsEpoch(_ step: Int) -> Bool { (step + 1) % perEpoch == 0 || step + 1 == total }
    /// Whether the state after `steps` steps is checkpointed, by the
    /// configuration or because server 0 asked (`flags`).
    func checkpointDue(after steps: Int, flags: UInt8) -> Bool {
        checkpoint.due(after: steps, total: total) || flags & FrameFlags.checkpoint != 0
    }
    /// ssp and async: whether step `step` (after the start) is a barrier:
    /// the start of an epoch, a step a checkpoint is due after
    /// (checkpoint.every_steps), or the end.
    func isBarrier(_ step: Int) -> Bool {
        step > start && (step % perEpoch == 0 || checkpointDue(after: step, flags: 0) || step == total)
    }
}
