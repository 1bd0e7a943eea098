import PSNumerics

/// What computes for a worker session: it holds the model and the data,
/// and works in the session's memory. The native worker (WorkerRole) is
/// one; a caller through the C ABI makes the same calls `drive` makes.
public protocol ComputeEngine: AnyObject {
    /// Reads microbatch `part` of the step (`session.samples(plan, part)`);
    /// with tables returns each table's distinct rows, ascending (nil without).
    func load(_ plan: StepPlan, part: Range<Int>, session: WorkerSession) throws -> [[UInt64]]?
    /// Tables: writes the input from `session.rowValues`.
    func useRows(_ session: WorkerSession) throws
    /// Forward of `part`; `beforeLayer(i)` before layer i reads `session.parameters`.
    func forward(_ plan: StepPlan, part: Range<Int>, beforeLayer: (Int) throws -> Void) throws
    /// Loss and backward of that forward: the gradients of sum(loss) x
    /// `gradScale` into `session.gradients` (added to the earlier parts'
    /// when `accumulate`); `layerDone(i)` once layer i's are final there.
    /// Returns the loss sum.
    func backward(_ plan: StepPlan, part: Range<Int>, gradScale: Float, accumulate: Bool, layerDone: (Int) -> Void) throws -> Double
    /// Tables: the rows' gradients into `session.rowGradients`.
    func rowGradients(_ session: WorkerSession) throws
    /// Scores the plan's slices (tables: round by round through `session.pullEvaluationRows`).
    func evaluate(_ plan: EvaluationPlan, session: WorkerSession) throws -> (test: EvaluationPart, validation: EvaluationPart?, scores: ScoreHistogram?)
}

extension WorkerSession {
    /// Runs the whole job for `engine`, in every mode.
    public func drive(_ engine: ComputeEngine) throws {
        try begin()
        while true {
            switch try next() {
            case .end: return try finish()
            case .evaluate(let plan):
                let r = try engine.evaluate(plan, session: self)
                try report(plan, test: r.test, validation: r.validation, scores: r.scores)
            case .train(let plan): try train(plan, engine)
            }
        }
    }

    /// One step (or slice) of `plan`. With several microbatches the first
    /// is the one whose forward waits for the parameters; every later one
    /// is loaded and run forward before its backward, and the last pushes.
    func train(_ plan: StepPlan, _ engine: ComputeEngine) throws {
        let first = plan.parts[0]
        try loaded(rows: engine.load(plan, part: first, session: self))
        if !plan.layerByLayer {
            guard case .compute = try parametersReady() else { return }
            if hasTables { try engine.useRows(self) }
        }
        try engine.forward(plan, part: first, beforeLayer: awaitLayer)
        guard case .compute(let gradScale, _) = try parametersReady() else { return }
        var lossSum = 0.0
        for (c, part) in plan.parts.enumerated() {
            let last = c == plan.parts.count - 1
            if c > 0 {
                _ = try engine.load(plan, part: part, session: self)
                try engine.forward(plan, part: part, beforeLayer: { _ in })
            }
            lossSum += try engine.backward(plan, part: part, gradScale: gradScale, accumulate: c > 0,
                                           layerDone: { if last { self.pushLayer($0) } })
        }
        if hasTables {
            try engine.rowGradients(self)
            try pushRowGradients()
        }
        try finishStep(lossSum: lossSum)
    }
}
