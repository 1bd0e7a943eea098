import PSSupport
import PSNumerics
import PSCheckpoint
import PSRunLog

/// Evaluation, checkpoints and the run-log records of a worker session.
extension WorkerSession {
    /// The evaluation reported at `step`: this worker's slices, and with
    /// tables the rounds of each set, counted from worker 0's slice so that
    /// every worker makes the same number (the servers answer round by round).
    func beginEvaluation(step: Int) -> EvaluationPlan {
        let roundRows = Self.evaluationRows(ctx.config, workers: world.workers)
        let sets = [counts.test] + (counts.validation.map { [$0] } ?? [])
        let rounds = rows == nil ? [] : sets.map { n in
            max(1, (Sampler.slice(batch: n, worker: 0, of: world.workers).count + roundRows - 1) / roundRows)
        }
        evaluation = (step, 1, rounds.reduce(0, +))
        return EvaluationPlan(step: step, test: Sampler.slice(batch: counts.test, worker: index, of: world.workers),
                              validation: counts.validation.map { Sampler.slice(batch: $0, worker: index, of: world.workers) },
                              roundRows: roundRows, rounds: rounds)
    }

    /// Tables, evaluation: one round's rows (`rows[t]` distinct, ascending;
    /// empty rounds too), pulled into `rowValues`.
    public func pullEvaluationRows(_ batchRows: [[UInt64]]) throws {
        guard let rows else { throw SessionError.noTables }
        guard let e = evaluation, e.round <= e.rounds else { throw SessionError.outOfOrder(call: "pullEvaluationRows", phase: "no evaluation round left") }
        try rows.plan(batchRows)
        try rows.ask(step: e.step, round: e.round, rounds: e.rounds)
        try rows.receive()
        evaluation = (e.step, e.round + 1, e.rounds)
    }

    /// Sends this worker's scores (loss sum, correct, count) to server 0,
    /// then the score histogram (bce with tables); logs them.
    public func report(_ plan: EvaluationPlan, test e: EvaluationPart, validation v: EvaluationPart?, scores: ScoreHistogram?) throws {
        if let r = evaluation, r.round - 1 != r.rounds { throw SessionError.missingRounds(expected: r.rounds, made: r.round - 1) }
        evaluation = nil
        let server0 = [world.serverRanks[0]]
        try ctx.send(EvalResult(lossSum: e.lossSum, correct: e.correct, count: e.count, validationLossSum: v?.lossSum ?? 0,
                                validationCorrect: v?.correct ?? 0, validationCount: v?.count ?? 0),
                     to: server0, step: plan.step, for: "sending test results")
        // After the results: server 0 receives them in this order.
        if let scores { try ctx.send(EvalScores(scores), to: server0, step: plan.step, for: "sending test scores") }
        ctx.log?.write(EvalPartRecord(step: plan.step, epoch: schedule.epoch(of: plan.step - 1) + 1, correct: e.correct,
                                      testSamples: e.count, testLossSum: e.lossSum,
                                      validationCorrect: v?.correct, validationSamples: v?.count, validationLossSum: v?.lossSum))
        last = now()
    }

    /// The checkpoint the servers asked for (or the schedule has) before step `step`.
    func checkpointIfDue(_ step: Int) throws {
        if step > schedule.start && ctx.hasRunDir && schedule.checkpointDue(after: step, flags: exchange.flags) { try checkpoint(step) }
    }

    /// This worker's file of checkpoint `step` (its error feedback's
    /// residual, and what the engine adds), reported to server 0.
    func checkpoint(_ step: Int) throws {
        let residual = exchange.feedback.map { f in
            [Safetensors.Tensor(name: f.checkpointTensor.name, shape: [f.residual.count], floats: f.checkpointTensor.values)]
        } ?? []
        _ = try ctx.writeCheckpointFile(step: step, role: .worker, index: index, tensors: residual + checkpointExtras())
        ctx.log?.write(WorkerCheckpointRecord(step: step, paramsDigest: digest(parameters, count: parameterCount)))
    }

    /// The start record.
    func logStart() {
        ctx.log?.write(WorkerStartRecord(servers: world.servers, workers: world.workers, microbatch: microbatches.map(\.count).max() ?? 0,
                                         trainSamples: counts.train, testSamples: counts.test,
                                         precision: exchange.precision.rawValue, compression: ctx.config.compression.settings.summary,
                                         pieces: exchange.pieces.count, steps: schedule.total, stepsPerEpoch: schedule.perEpoch))
        ctx.log?.flush()
    }

    /// The `step` record.
    func logStep(_ plan: StepPlan, lossSum: Double, computed: Double, received: Pull) {
        let end = now(), push = exchange.push
        let codecTime = exchange.codec.takeStats()
        let n = plan.rows.count
        var record = WorkerStepRecord(step: plan.step, epoch: schedule.epoch(of: plan.step), loss: lossSum / Double(max(n, 1)),
                                      fp32Bytes: parameterCount * 4, encodeS: codecTime.encode, decodeS: codecTime.decode,
                                      lossScale: push.lossScale, overflow: push.overflow, skipped: exchange.skipped,
                                      samples: n, stepS: end - last, computeS: computed, waitS: received.waited,
                                      bytesSent: push.bytesOut, bytesRecv: received.bytesIn,
                                      samplesPerS: Double(n) / max(end - last, 1e-9))
        if let rows {
            record.rowsPulled = rows.rowsPulled; record.rowIdBytes = rows.idBytes; record.rowBytesSent = rows.bytesOut
            record.rowBytesRecv = rows.bytesIn; record.rowWaitS = rows.waited
            record.bytesSent += rows.bytesOut; record.bytesRecv += rows.bytesIn
            rows.resetCounters()
        }
        ctx.log?.write(record)
        last = end
    }
}
