import PSNumerics

/// The native worker's click-log input: its sets, the bags of the current
/// microbatch (its rows' ids mapped to table rows) and the batch they were
/// read into. The rows' values live in the worker session.
final class CTRInput {
    let sets: CTRSets
    let bags: EmbeddingBags
    var batch: CTRBatch
    /// The gradient of the model's input, which backward fills for the bags.
    let inputGradient: FloatBuffer

    init(sets: CTRSets, model: Model, tables: [TableSpec], features: [TableFeature], denseCount: Int) throws {
        guard let g = model.inputGradient else { throw SessionError.noTables }
        self.sets = sets
        bags = EmbeddingBags(tables: tables, features: features, denseCount: denseCount)
        batch = CTRBatch(fields: sets.train.fieldCount)
        inputGradient = g
    }

    /// Rows `indices` of `set` as the microbatch: labels, and each table's distinct rows.
    func load(_ set: any CTRSource, _ indices: [Int], labels: UnsafeMutablePointer<UInt8>) throws {
        batch.removeAll(fields: set.fieldCount)
        try set.gather(indices, into: &batch)
        for (r, y) in batch.labels.enumerated() { labels[r] = y != 0 ? 1 : 0 }
        try bags.prepare(batch)
    }

    /// The model's input: dense features, then each table's bags of the pulled rows.
    func forward(_ session: WorkerSession, into input: UnsafeMutablePointer<Float>) throws {
        bags.forward(dense: batch.dense, values: try bags.tables.indices.map { try session.rowValues(table: $0) }, into: input)
    }

    /// After backward: one summed gradient per pulled row, into the session's buffers.
    func backward(_ session: WorkerSession) throws {
        bags.backward(inputGradient: inputGradient.pointer, into: try bags.tables.indices.map { try session.rowGradients(table: $0) })
    }

    /// This worker's slice of the test set and of the validation set, in
    /// the plan's rounds: every worker makes the same number (the servers
    /// answer round by round), some of them empty.
    func evaluate(_ plan: EvaluationPlan, model: Model, labels: UnsafeMutablePointer<UInt8>, session: WorkerSession) throws
        -> (test: EvaluationPart, validation: EvaluationPart?, scores: ScoreHistogram?) {
        let sets: [any CTRSource] = [sets.test] + (sets.validation.map { [$0] } ?? [])
        let parts = [plan.test] + (plan.validation.map { [$0] } ?? [])
        var scores: [EvaluationPart] = []
        var histogram = ScoreHistogram()
        for (k, set) in sets.enumerated() {
            let part = parts[k], size = plan.roundRows
            var score = EvaluationPart()
            for c in 0..<plan.rounds[k] {
                let lo = min(part.upperBound, part.lowerBound + c * size), hi = min(part.upperBound, lo + size)
                try load(set, Array(lo..<hi), labels: labels)
                try session.pullEvaluationRows(bags.unique)
                try forward(session, into: model.input)
                guard hi > lo else { continue }
                let r = model.evaluate(batch: hi - lo, labels: labels, params: session.parameters)
                score.lossSum += r.lossSum; score.correct += r.correct; score.count += hi - lo
                if model.loss == .bce && k == 0 {
                    for i in 0..<(hi - lo) {
                        histogram.add(probability: BinaryCrossEntropy.sigmoid(model.logits[i]), clicked: labels[i] != 0)
                    }
                }
            }
            scores.append(score)
        }
        return (scores[0], scores.count > 1 ? scores[1] : nil, model.loss == .bce ? histogram : nil)
    }
}
