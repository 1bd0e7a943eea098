import Foundation
import PSSupport
import PSNumerics
import PSRunLog

/// What a server knows of the work in ssp and async training.
struct AsyncState {
    let workers: Int
    /// Per worker: a pull request waiting for an answer (its step and purpose).
    var pull: [(step: Int, purpose: PullRequest.Purpose)?]
    /// Per worker: the open receive of its next pull request.
    var pullRecv: [TransportRequest?]
    /// Per worker: the open receives of the push it computes (summary first, then the pieces and rows), and its step.
    var push: [(summary: TransportRequest, rest: [TransportRequest], step: Int)?]
    /// Per worker, with tables: the open receive of its row announcement for a training step (after its parameters went out).
    var rows: [(recv: TransportRequest, step: Int)?]
    /// Per worker: this server's update count when it answered the worker's pull.
    var pulledAt: [Int]
    /// Updates applied (pushes, skipped ones included): the version.
    var version = 0
    /// Pushes applied per step, and the last step all of whose slices are applied.
    var doneByStep: [Int: Int] = [:]
    var completeThrough: Int
    /// Server 0: the next slice to hand out (step x workers + slice).
    var nextUnit: Int
    /// Server 0: each worker's assignment frame and its send (never blocking: a worker takes it when it next waits).
    var assignFrames: [FrameBuffer]
    var assignSends: [[TransportRequest]]
    /// The last barrier step whose work is done.
    var barrierDone: Int
    /// This epoch's staleness counts (index: staleness, the last bucket is "or more").
    var histogram = [Int](repeating: 0, count: StalenessRecord.buckets)
    /// The most steps a slice handed out was ahead of the oldest unfinished step, this epoch.
    var maxLead = 0

    init(workers: Int, start: Int) {
        self.workers = workers
        pull = Array(repeating: nil, count: workers)
        pullRecv = Array(repeating: nil, count: workers)
        push = Array(repeating: nil, count: workers)
        rows = Array(repeating: nil, count: workers)
        pulledAt = Array(repeating: 0, count: workers)
        assignFrames = (0..<workers).map { _ in Assignment.buffer() }
        assignSends = Array(repeating: [], count: workers)
        completeThrough = start - 1
        nextUnit = start * workers
        barrierDone = start
    }

    /// Records one applied push of `step`.
    mutating func done(step: Int) {
        doneByStep[step, default: 0] += 1
        while doneByStep[completeThrough + 1] == workers {
            doneByStep[completeThrough + 1] = nil
            completeThrough += 1
        }
    }

    var idle: Bool { push.allSatisfy { $0 == nil } && rows.allSatisfy { $0 == nil } }
}

/// ssp and async (train.consistency). Work is handed out by server 0 in
/// slices of the global batches: a worker asks server 0 for work, gets the
/// next slice (step t, slice s) once every slice of step t - staleness is
/// applied (ssp; async: at once), pulls the newest parameters (and its
/// rows) from every server and pushes its gradient of that slice, which
/// every server applies as it arrives (a slice's gradient is already its
/// share of the global batch's). A fast worker thus does more slices than a
/// slow one. At a barrier (an epoch's end for evaluation, a checkpoint step,
/// the last step) no slice of the barrier's step is handed out before every
/// slice before it is applied on every server: a cut all servers see the
/// same without a message.
extension ServerRole {
    func runAsync() throws {
        try beginAsync()
        var s = AsyncState(workers: world.workers, start: schedule.start)
        let frames = world.workerRanks.map { _ in PullRequest.buffer() }
        let paramOut = world.workerRanks.map { _ in paramFrames.map { FrameBuffer(payloadCapacity: $0.capacity - FrameHeader.size) } }
        var paramSends = world.workerRanks.map { _ in pieces.map { _ in [TransportRequest]() } }
        let hooks = TestHooks(ctx.config.debug, runDir: ctx.runDir, log: ctx.log)
        for w in world.workerRanks.indices { s.pullRecv[w] = try ctx.transport.irecv(frames[w], from: world.workerRanks[w], tag: PullRequest.kind.tag) }
        var finished = schedule.total
        var lastDied = -1
        loop: while true {
            let barrier = nextBarrier(after: s.barrierDone)
            if s.completeThrough >= barrier - 1 && s.idle {
                switch try crossBarrier(barrier, &s, frames: frames, paramOut: paramOut, paramSends: &paramSends) {
                case .goOn: continue loop
                case .end: break loop
                case .stopped: finished = barrier; break loop
                }
            }
            for w in world.workerRanks.indices {
                guard let p = s.pull[w] else { continue }
                if p.purpose == .assign {
                    guard lead, let unit = nextSlice(&s, before: barrier) else { continue }
                    if unit.step > lastDied { hooks.serverStep(unit.step, server: index); lastDied = unit.step }
                    try assign(w, Assignment(.train, step: unit.step, slice: unit.slice), &s)
                } else if p.purpose == .train && s.push[w] == nil && s.rows[w] == nil {
                    // (Not before its last push is in: a worker pushes a slice, then pulls for the next.)
                    if p.step > lastDied { hooks.serverStep(p.step, server: index); lastDied = p.step }
                    try answer(w, p.step, request: 0, &s, frames: frames, paramOut: paramOut, paramSends: &paramSends, expectPush: true)
                }
            }
            try waitForPullOrPush(&s, frames: frames)
        }
        for w in paramSends.indices { for k in pieces.indices { _ = try ctx.wait(paramSends[w][k], for: "parameter sends", step: finished) } }
        for w in s.assignSends.indices { _ = try ctx.wait(s.assignSends[w], for: "assignments", step: finished) }
        // The receive of each worker's next pull request is still open: its last one says it is done.
        try finish(steps: finished, openPulls: s.pullRecv.compactMap { $0 })
    }

    /// Server 0: the next slice to hand out, if the barrier and the staleness bound allow it.
    func nextSlice(_ s: inout AsyncState, before barrier: Int) -> (step: Int, slice: Int)? {
        let t = s.nextUnit / world.workers
        guard t < barrier else { return nil }
        if ctx.config.train.consistency == .ssp && s.completeThrough < t - ctx.config.train.staleness { return nil }
        s.maxLead = max(s.maxLead, t - s.completeThrough - 1)
        defer { s.nextUnit += 1 }
        return (t, s.nextUnit % world.workers)
    }

    /// Server 0 answers worker w's request for work.
    func assign(_ w: Int, _ a: Assignment, _ s: inout AsyncState) throws {
        guard let step = s.pull[w]?.step else { throw PSError("server \(index): work assigned to worker \(w) unasked (a pstrain bug)") }
        s.pull[w] = nil
        _ = try ctx.wait(s.assignSends[w], for: "assignments", step: step)
        a.seal(into: s.assignFrames[w], step: step)
        s.assignSends[w] = [try ctx.transport.isend(s.assignFrames[w], to: world.workerRanks[w], tag: Assignment.kind.tag)]
    }

    /// The first barrier step after `b` (b >= the start; Schedule.isBarrier).
    func nextBarrier(after b: Int) -> Int {
        var t = b + 1
        while t < schedule.total && !schedule.isBarrier(t) { t += 1 }
        return min(t, schedule.total)
    }

    enum BarrierOutcome { case goOn, end, stopped }

    /// At barrier b (every slice before b applied): evaluation when an
    /// epoch ended, the servers' vote on server 0's requests (checkpoint,
    /// stop), then each worker's slice b of step b (or the end) with those
    /// flags, the checkpoint, the stop.
    func crossBarrier(_ b: Int, _ s: inout AsyncState, frames: [FrameBuffer], paramOut: [[FrameBuffer]],
                      paramSends: inout [[[TransportRequest]]]) throws -> BarrierOutcome {
        if schedule.endsEpoch(b - 1) {
            try assignAll(s: &s, frames: frames) { _ in Assignment(.eval, step: b) }
            for w in world.workerRanks.indices {
                try awaitPull(w, b, .eval, &s, frames: frames)
                try answer(w, b, request: 0, &s, frames: frames, paramOut: paramOut, paramSends: &paramSends, expectPush: false)
            }
            if let tables { try tables.serveEvaluation(b - 1, meter: &meter) }
            if lead { try collectEvaluation(b - 1) }
            ctx.log?.write(StalenessRecord(step: b, epoch: schedule.epoch(of: b - 1) + 1, counts: s.histogram, maxLead: s.maxLead))
            s.histogram = Array(repeating: 0, count: StalenessRecord.buckets)
            s.maxLead = 0
        }
        var o = StepOutcome(lr: 0, scaleBefore: scaler.scale)
        o.request = leadRequests()
        if world.servers > 1 { try agreeOnOverflow(b, &o) }
        let final = b == schedule.total
        let stops = o.stops && !final
        try assignAll(s: &s, frames: frames) { w in final ? Assignment(.final, step: b) : Assignment(.train, step: b, slice: w) }
        if !final { s.nextUnit = b * world.workers + world.workers }
        for w in world.workerRanks.indices {
            try awaitPull(w, b, final ? .final : .train, &s, frames: frames)
            try answer(w, b, request: o.request, &s, frames: frames, paramOut: paramOut, paramSends: &paramSends, expectPush: !final && !stops)
        }
        s.barrierDone = b
        if ctx.hasRunDir && schedule.checkpointDue(after: b, flags: o.request) {
            try checkpoint(step: b)
            lastCheckpoint = now()
        }
        ctx.log?.flush()
        if final { return .end }
        if stops { logStopped(after: b); return .stopped }
        return .goOn
    }

    /// Server 0 at a barrier: waits for every worker's request for work and answers each with `work(w)`.
    func assignAll(s: inout AsyncState, frames: [FrameBuffer], _ work: (Int) -> Assignment) throws {
        guard lead else { return }
        for w in world.workerRanks.indices {
            try awaitPull(w, nil, .assign, &s, frames: frames)
            try assign(w, work(w), &s)
        }
    }

    /// Waits until worker w's pull with `purpose` (for `step`, when given) is here.
    func awaitPull(_ w: Int, _ step: Int?, _ purpose: PullRequest.Purpose, _ s: inout AsyncState, frames: [FrameBuffer]) throws {
        if s.pull[w] == nil, let r = s.pullRecv[w] {
            let n = try ctx.wait([r], for: "pull requests", step: step ?? s.barrierDone)[0]
            try takePull(w, length: n, &s, frames: frames)
        }
        guard let p = s.pull[w], step == nil || p.step == step, p.purpose == purpose else {
            throw FrameError.badPayload(sender: world.describe(world.workerRanks[w]), what: "pull request at step \(step ?? -1)",
                                        problem: "asks for step \(s.pull[w]?.step ?? -1) (\(String(describing: s.pull[w]?.purpose))), expected \(purpose)")
        }
    }

    /// Reads worker w's pull request that arrived in its frame and posts the receive of its next one.
    func takePull(_ w: Int, length: Int, _ s: inout AsyncState, frames: [FrameBuffer]) throws {
        // The step the request claims; `open` then checks the whole frame
        // against it (one shorter than a header is refused there as such).
        let claimed = length < FrameHeader.size ? 0 : Frame.peekStep(frames[w].raw, length: length)
        guard let step = claimed, 0...schedule.total ~= step else {
            throw FrameError.badPayload(sender: world.describe(world.workerRanks[w]), what: "pull request",
                                        problem: "asks for a step outside 0...\(schedule.total)")
        }
        let p = try PullRequest.open(frames[w], length: length, step: step, sender: world.describe(world.workerRanks[w]))
        guard p.purpose != .assign || lead else {
            throw FrameError.badPayload(sender: world.describe(world.workerRanks[w]), what: "pull request", problem: "asks server \(index) for work; server 0 hands it out")
        }
        s.pull[w] = (step, p.purpose)
        s.pullRecv[w] = try ctx.transport.irecv(frames[w], from: world.workerRanks[w], tag: PullRequest.kind.tag)
    }

    /// Answers worker w's pull for `step`: this server's pieces of the
    /// newest parameters, then (training) the receives of its row request
    /// or of the push it will compute.
    func answer(_ w: Int, _ step: Int, request: UInt8, _ s: inout AsyncState, frames: [FrameBuffer], paramOut: [[FrameBuffer]],
                paramSends: inout [[[TransportRequest]]], expectPush: Bool) throws {
        guard let purpose = s.pull[w]?.purpose else { throw PSError("server \(index): a pull of worker \(w) answered unasked (a pstrain bug)") }
        let rank = world.workerRanks[w]
        for k in pieces.indices.reversed() {
            _ = try ctx.wait(paramSends[w][k], for: "parameter sends", step: step)
            let f = paramOut[w][k]
            sealParameters(f, k, version: step, encoded: encodeWeights(k, version: step, into: f), request: request)
            paramSends[w][k] = [try ctx.transport.isend(f, to: rank, tag: ParameterPiece.kind.tag)]
            meter.bytesOut += f.length
        }
        s.pull[w] = nil
        s.pulledAt[w] = s.version
        guard expectPush && purpose == .train else { return }
        // With tables the worker asks for its rows once it has every server's parameters (and knows it goes on).
        if let tables {
            s.rows[w] = (try ctx.transport.irecv(tables.buffers.announce[w], from: rank, tag: RowAnnounce.kind.tag), step)
        } else {
            try expectPushOf(w, step, &s)
        }
    }

    /// Posts the receives of worker w's push of `step`: summary, pieces, and with tables its rows' gradients.
    func expectPushOf(_ w: Int, _ step: Int, _ s: inout AsyncState) throws {
        let rank = world.workerRanks[w]
        let summary = try ctx.transport.irecv(summaryFrames[w], from: rank, tag: StepSummary.kind.tag)
        var rest = try pieces.indices.map { try ctx.transport.irecv(gradFrames[w][$0], from: rank, tag: GradientPiece.kind.tag) }
        if let tables { rest.append(try tables.postRowGradients(worker: w)) }
        s.push[w] = (summary, rest, step)
    }

    /// Worker w's row announcement arrived: serve its request, then expect its push.
    func serveRowsOf(_ w: Int, length: Int, _ s: inout AsyncState) throws {
        guard let (_, step) = s.rows[w], let tables else { throw PSError("server \(index): rows of worker \(w) served unasked (a pstrain bug)") }
        s.rows[w] = nil
        let said = try RowAnnounce.open(tables.buffers.announce[w], length: length, step: step, index: 0,
                                        sender: world.describe(world.workerRanks[w]))
        try tables.serveRequest(worker: w, said, step: step, round: 0, meter: &meter)
        try expectPushOf(w, step, &s)
    }

    /// Waits for the next pull request, row announcement or push from any worker and takes it in.
    func waitForPullOrPush(_ s: inout AsyncState, frames: [FrameBuffer]) throws {
        enum Event { case pull, rows, push }
        var reqs: [TransportRequest] = [], who: [(w: Int, what: Event)] = []
        for w in world.workerRanks.indices {
            if s.pull[w] == nil, let r = s.pullRecv[w] { reqs.append(r); who.append((w, .pull)) }
            if let r = s.rows[w] { reqs.append(r.recv); who.append((w, .rows)) }
            if let p = s.push[w] { reqs.append(p.summary); who.append((w, .push)) }
        }
        guard !reqs.isEmpty else { throw PSError("server \(index): nothing to wait for (a pstrain bug)") }
        let t0 = now()
        let (i, n) = try ctx.waitAny(reqs, for: "pushes or pull requests", step: s.barrierDone)
        meter.waited += now() - t0
        let w = who[i].w
        switch who[i].what {
        case .pull: try takePull(w, length: n, &s, frames: frames)
        case .rows: try serveRowsOf(w, length: n, &s)
        case .push: try applyPush(w, summaryLength: n, &s)
        }
    }

    /// Worker w's push (its summary arrived): the rest of it, checked and
    /// applied at once with the loss scale it carries (or skipped when it
    /// overflowed); its staleness is counted.
    func applyPush(_ w: Int, summaryLength: Int, _ s: inout AsyncState) throws {
        guard let (_, rest, step) = s.push[w] else { throw PSError("server \(index): a push of worker \(w) applied unasked (a pstrain bug)") }
        s.push[w] = nil
        meter = StepMeter(start: meter.end)
        let sender = world.describe(world.workerRanks[w])
        let sum = try StepSummary.open(summaryFrames[w], length: summaryLength, step: step, sender: sender)
        let counts = try ctx.wait(rest, for: "gradients", step: step)
        let t0 = now()
        for (k, c) in pieces.enumerated() {
            let h = try GradientPiece.open(gradFrames[w][k], length: counts[k], step: step, piece: pieceIDs[k], count: c.range.count,
                                           precision: precision, sender: sender)
            meter.bytesIn += counts[k]
            try codec.decode(gradFrames[w][k], h, count: c.range.count, as: precision, into: gradSum.pointer + (c.range.lowerBound - range.lowerBound),
                             add: false, sender: sender, what: "gradients of step \(step), piece \(pieceIDs[k])")
        }
        if let tables { try tables.addRowGradients(worker: w, length: counts[pieces.count], step: step) }
        var o = outcome(step, scaleBefore: sum.lossScale, summaries: [(w, sum)],
                        sumOverflows: Payload.overflows(gradSum.pointer, count: range.count, as: .fp32))
        let unscale = Float(1 / sum.lossScale)
        let update = OptimizerStep(lr: o.lr, gradScale: unscale, t: s.version - scaler.skipped + 1)
        tables?.shard.finishStep(apply: !o.overflow, lr: Float(ctx.config.train.sparseLearningRate(step: step, total: schedule.total)),
                                 gradScale: unscale, t: update.t)
        if !o.overflow {
            for k in pieces.indices { apply(piece: k, at: pieces[k].range.lowerBound - range.lowerBound, update: update, unscale: unscale) }
        }
        o.scaleChange = scaler.update(step: s.version, overflow: o.overflow)
        meter.applied += now() - t0
        let staleness = s.version - s.pulledAt[w]
        s.histogram[min(staleness, StalenessRecord.buckets - 1)] += 1
        s.version += 1
        s.done(step: step)
        logStep(step, o, worker: w, staleness: staleness)
        try stopIfDiverged()
    }

    /// Before the first pull: log and clean up (the workers ask for the parameters).
    func beginAsync() throws {
        startUp()
        meter = StepMeter(start: now())
        progress.restart(at: meter.start)
    }
}
