import PSSupport
import PSNumerics
import PSCheckpoint

/// What a worker computes on.
public enum WorkerData {
    /// Images or feature rows (DataSplit).
    case dense(DataSplit)
    /// A click log, for a model with embedding tables.
    case ctr(CTRSets)

    /// Rows of the training set.
    public var trainCount: Int {
        switch self { case .dense(let d): return d.train.count; case .ctr(let c): return c.train.count }
    }
}

/// The native worker: pstrain's own model, driven by a worker session
/// (WorkerSession.swift has the protocol and the order of a step). It loads
/// its slice of every global batch, runs forward and backward, and hands
/// each layer's gradients to the session as soon as they are final.
public final class WorkerRole: ComputeEngine {
    /// The data, as the engine uses it.
    enum Input {
        case dense(DataSplit)
        case ctr(CTRInput)
    }

    let ctx: RankContext
    let index: Int
    let input: Input
    let model: Model
    let labels: UnsafeMutablePointer<UInt8>
    /// Gradients of the microbatches after the first, added into the
    /// session's layer by layer (zero-length with one microbatch).
    let microGrads: FloatBuffer
    public let session: WorkerSession

    public convenience init(context: RankContext, data: DataSplit) throws {
        try self.init(context: context, data: .dense(data))
    }

    public init(context: RankContext, data source: WorkerData) throws {
        ctx = context
        let cfg = context.config, world = context.world
        index = world.index(ofRank: context.rank)
        let rows = WorkerSession.microbatchRows(cfg, workers: world.workers)
        let m = try Model(cfg.model, capacity: WorkerSession.evaluationRows(cfg, workers: world.workers))
        m.storage = cfg.train.precision
        let counts: WorkerSession.DataCounts
        switch source {
        case .dense(let d):
            try Preflight.check(model: m, fits: d, data: cfg.data)
            input = .dense(d)
            counts = .init(train: d.train.count, test: d.test.count, validation: d.validation?.count)
        case .ctr(let sets):
            try Preflight.check(model: cfg.model, fields: sets.train.fieldCount, dense: sets.train.denseCount, source: sets.train.source)
            input = .ctr(try CTRInput(sets: sets, model: m, tables: cfg.model.tables, features: cfg.model.features, denseCount: cfg.model.inputSize))
            counts = .init(train: sets.train.count, test: sets.test.count, validation: sets.validation?.count)
        }
        model = m
        labels = .allocate(capacity: m.capacity)
        let stepRows = Sampler.slice(batch: cfg.train.stepBatch, worker: index, of: world.workers).count
        microGrads = FloatBuffer(count: stepRows > rows ? m.layout.totalCount : 0)
        var extras: () -> [Safetensors.Tensor] = { [] }
        if index == 0, case .dense(let d) = source, let s = d.statistics {
            extras = { NormalizationFile.tensors(s, shape: d.train.shape) }
        }
        session = try WorkerSession(context: context, shape: ModelShape(m), counts: counts, tables: cfg.model.tables, checkpointExtras: extras)
    }

    deinit { labels.deallocate() }

    public func run() throws {
        try writeNormalization()
        try session.drive(self)
    }

    /// Worker 0, when the data set is standardised: the numbers in the run
    /// directory (NormalizationFile), for export and for people.
    func writeNormalization() throws {
        guard index == 0, ctx.hasRunDir, case .dense(let data) = input, let s = data.statistics else { return }
        try Durable.replace(ctx.runDir + "/" + NormalizationFile.runFile,
                            bytes: NormalizationFile.encode(s, shape: data.train.shape, byteScaled: data.train.samples.byteScaled))
    }

    // MARK: ComputeEngine

    public func load(_ plan: StepPlan, part: Range<Int>, session: WorkerSession) throws -> [[UInt64]]? {
        let rows = session.samples(plan, part)
        switch input {
        case .dense(let d):
            d.train.gather(rows, into: model.input, labels: labels)
            return nil
        case .ctr(let c):
            try c.load(c.sets.train, rows, labels: labels)
            return c.bags.unique
        }
    }

    public func useRows(_ session: WorkerSession) throws {
        guard case .ctr(let c) = input else { throw SessionError.noTables }
        try c.forward(session, into: model.input)
    }

    /// What the layers see of microbatch `part`: training, and where its
    /// rows sit in the step (dropout masks depend on it).
    func layerContext(_ plan: StepPlan, _ part: Range<Int>) -> LayerContext {
        LayerContext(training: true, step: plan.step, seed: plan.seed, firstRow: plan.firstRow(part), globalBatch: plan.globalBatch)
    }

    public func forward(_ plan: StepPlan, part: Range<Int>, beforeLayer: (Int) throws -> Void) throws {
        var failure: Error?
        // (Model.forward takes an optional closure: formally escaping, called only during the pass.)
        withoutActuallyEscaping(beforeLayer) { wait in
            model.forward(batch: part.count, params: session.parameters, context: layerContext(plan, part), beforeLayer: { li in
                guard failure == nil else { return }
                do { try wait(li) } catch { failure = error }
            })
        }
        if let failure { throw failure }
    }

    /// The first microbatch writes the session's gradients; each later one
    /// writes `microGrads`, added into them layer by layer, so the sum goes
    /// in microbatch order.
    public func backward(_ plan: StepPlan, part: Range<Int>, gradScale: Float, accumulate: Bool, layerDone: (Int) -> Void) throws -> Double {
        let target = accumulate ? microGrads.pointer : session.gradients
        return withoutActuallyEscaping(layerDone) { done in
            model.lossAndBackward(batch: part.count, labels: labels, gradScale: gradScale, params: session.parameters,
                                  grads: target, context: layerContext(plan, part), layerDone: { li in
                if accumulate { self.addMicrobatchGradients(layer: li) }
                done(li)
            }).lossSum
        }
    }

    /// The session's gradients += microGrads over layer `li`'s parameters.
    func addMicrobatchGradients(layer li: Int) {
        let g = session.gradients, m = microGrads.pointer
        for i in model.parameterRange(layer: li) { g[i] += m[i] }
    }

    public func rowGradients(_ session: WorkerSession) throws {
        guard case .ctr(let c) = input else { throw SessionError.noTables }
        try c.backward(session)
    }

    public func evaluate(_ plan: EvaluationPlan, session: WorkerSession) throws -> (test: EvaluationPart, validation: EvaluationPart?, scores: ScoreHistogram?) {
        switch input {
        case .dense(let d):
            return (evaluate(d.test, plan.test), both(d.validation, plan.validation).map { evaluate($0.0, $0.1) }, nil)
        case .ctr(let c):
            return try c.evaluate(plan, model: model, labels: labels, session: session)
        }
    }

    /// Rows `part` of `set` (the test or the validation set), in chunks of the model's capacity.
    func evaluate(_ set: Dataset, _ part: Range<Int>) -> EvaluationPart {
        var score = EvaluationPart(count: part.count)
        var i = part.lowerBound
        while i < part.upperBound {
            let n = min(model.capacity, part.upperBound - i)
            set.gather(i..<(i + n), into: model.input, labels: labels)
            let r = model.evaluate(batch: n, labels: labels, params: session.parameters)
            score.lossSum += r.lossSum; score.correct += r.correct
            i += n
        }
        return score
    }
}

/// Both, or nil.
func both<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
