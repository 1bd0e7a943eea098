import PSSupport
import PSNumerics
import PSCodec
import PSRunLog

/// ssp and async (train.consistency; ServerAsync.swift has the servers'
/// side): each step begins with a pull of the newest parameters (the
/// servers answer when the staleness bound and the barriers allow), then,
/// with tables, the rows of the microbatch; backward pushes as in bsp.
/// After an epoch's last step the worker pulls again to evaluate; after
/// the last step it pulls the final parameters.
extension WorkerRole {
    func runAsync() throws {
        try beginAsync()
        var finished = schedule.total
        for step in schedule.steps {
            hooks.workerStep(step, worker: index)
            let computeStart = now()
            try loadRows(step, microbatches[0])
            hooks.straggle(worker: index)
            try pull(step, .train)
            try checkpointIfDue(step)
            if flags & FrameFlags.stop != 0 {
                finished = step
                break
            }
            if tables != nil { try pullRows(step: step, chunk: 0) }
            try forward(step)
            let lossSum = try backwardAndPush(step)
            try sendSummary(step, lossSum: lossSum)
            let computed = now() - computeStart - pulled.waited
            logStep(step, lossSum: lossSum, computed: computed, received: pulled)
            if schedule.endsEpoch(step) {
                try pull(step + 1, .eval)
                try evaluateAndReport(step)
            }
            ctx.log?.flush()
        }
        if finished == schedule.total { try pull(schedule.total, .final) }
        try ctx.send(PullRequest(.done), to: world.serverRanks, step: finished, for: "the last pull request")
        try finish(steps: finished)
    }

    /// Asks every server for the parameters to compute step `step` on (or
    /// to evaluate with) and waits for all of them.
    func pull(_ step: Int, _ purpose: PullRequest.Purpose) throws {
        try postParameters(version: step)
        try ctx.send(PullRequest(purpose), to: world.serverRanks, step: step, for: "pull requests")
        try awaitParameters(allPieces)
    }

    /// Before the first pull: log (the servers send nothing until asked).
    func beginAsync() throws {
        ctx.log?.write(WorkerStartRecord(servers: world.servers, workers: world.workers, microbatch: microbatches.map(\.count).max() ?? 0,
                                         trainSamples: data?.train.count ?? tables!.sets.train.count,
                                         testSamples: data?.test.count ?? tables!.sets.test.count,
                                         precision: precision.rawValue, compression: ctx.config.compression.settings.summary,
                                         pieces: pieces.count, steps: schedule.total, stepsPerEpoch: schedule.perEpoch))
        ctx.log?.flush()
        try writeNormalization()
        last = now()
    }
}
