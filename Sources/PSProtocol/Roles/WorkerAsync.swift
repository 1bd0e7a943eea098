import PSSupport
import PSNumerics
import PSCodec

/// ssp and async (train.consistency; ServerAsync.swift has the servers'
/// side): the worker asks server 0 for work and does what it is given:
/// train a slice of a step's global batch (pull the newest parameters from
/// every server, with tables its rows, then forward, backward and push as
/// in bsp), evaluate after an epoch, or pull the final parameters.
extension WorkerRole {
    func runAsync() throws {
        try beginAsync()
        var finished = schedule.total, asked = schedule.start
        work: while true {
            let a = try receiveWork(step: asked)
            switch a.work {
            case .eval:
                try pull(a.step, .eval)
                try evaluateAndReport(a.step - 1)
            case .final:
                try pull(a.step, .final)
                break work
            case .train:
                asked = a.step
                if try !trainSlice(step: a.step, slice: a.slice) {
                    finished = a.step
                    break work
                }
            }
            ctx.log?.flush()
        }
        try ctx.send(PullRequest(.done), to: world.serverRanks, step: finished, for: "the last pull request")
        try finish(steps: finished)
    }

    /// Slice `s` of step `step`'s global batch: pull, (checkpoint), compute, push.
    /// Returns false when the servers asked to stop (after the checkpoint).
    func trainSlice(step: Int, slice s: Int) throws -> Bool {
        current = Sampler.slice(batch: ctx.config.train.stepBatch, worker: s, of: world.workers)
        currentSlice = s
        hooks.workerStep(step, worker: s)   // (the hooks that pick a worker pick a slice here)
        let computeStart = now()
        // The pull travels while the rows are read.
        try startPull(step, .train)
        try loadRows(step, 0..<current.count)
        // Rows too, unless the step is a barrier (where the servers may say stop and serve none).
        let early = tables != nil && !schedule.isBarrier(step)
        if early { try askForRows(step: step, chunk: 0) }
        hooks.straggle(worker: index)
        try awaitParameters(allPieces)
        try checkpointIfDue(step)
        if flags & FrameFlags.stop != 0 { return false }
        // Ask for the next slice now: the answer comes while this one computes.
        try requestWork(step: step)
        if early { try receiveRows() } else if tables != nil { try pullRows(step: step, chunk: 0) }
        try forward(step)
        let lossSum = try backwardAndPush(step)
        try sendSummary(step, lossSum: lossSum)
        logStep(step, lossSum: lossSum, computed: now() - computeStart - pulled.waited, received: pulled)
        return true
    }

    /// Asks server 0 what to do next (`step`: the step of the last slice
    /// asked for), without waiting for the answer.
    func requestWork(step: Int) throws {
        let frame = Assignment.buffer(), s0 = world.serverRanks[0]
        let recv = try ctx.transport.irecv(frame, from: s0, tag: Assignment.kind.tag)
        try ctx.send(PullRequest(.assign), to: [s0], step: step, for: "asking for work")
        pendingWork = (frame, recv, step)
    }

    /// Server 0's answer to the request for work made (or made now).
    func receiveWork(step: Int) throws -> Assignment {
        if pendingWork == nil { try requestWork(step: step) }
        let (frame, recv, asked) = pendingWork!
        pendingWork = nil
        let n = try ctx.wait([recv], for: "work", step: asked)[0]
        return try Assignment.open(frame, length: n, step: asked, sender: world.describe(world.serverRanks[0]))
    }

    /// Asks every server for the parameters to compute step `step` on (or
    /// to evaluate with) and waits for all of them.
    func pull(_ step: Int, _ purpose: PullRequest.Purpose) throws {
        try startPull(step, purpose)
        try awaitParameters(allPieces)
    }

    /// Posts the receives of parameters `step` and asks every server for them.
    func startPull(_ step: Int, _ purpose: PullRequest.Purpose) throws {
        try postParameters(version: step)
        try ctx.send(PullRequest(purpose), to: world.serverRanks, step: step, for: "pull requests")
    }

    /// Before the first pull: log (the servers send nothing until asked).
    func beginAsync() throws {
        logStart()
        try writeNormalization()
        last = now()
    }
}
