import PSSupport
import PSNumerics

/// What a worker session knows of a model: the flat parameter layout
/// (names, shapes, offsets: the order servers cut into pieces) and which
/// tensors each layer has. Never the layers themselves.
public struct ModelShape: Equatable {
    public let layout: ModelLayout
    /// Per layer, its tensors' indices in `layout`, ascending (empty: no parameters).
    public let layerTensors: [[Int]]

    public init(layout: ModelLayout, layerTensors: [[Int]]) {
        self.layout = layout; self.layerTensors = layerTensors
    }

    /// The shape of a native model.
    public init(_ model: Model) {
        var next = 0
        layerTensors = model.layers.map { layer in
            defer { next += layer.parameters.count }
            return Array(next..<(next + layer.parameters.count))
        }
        layout = model.layout
    }
}

/// What `WorkerSession.next()` hands out.
public enum SessionWork: Equatable {
    case train(StepPlan)
    case evaluate(EvaluationPlan)
    case end
}

/// One step (bsp), or one slice of a step (ssp and async), to train.
public struct StepPlan: Equatable {
    public let step: Int
    /// bsp: this worker's index; ssp and async: the slice server 0 handed out.
    public let slice: Int
    /// The slice's rows within the step's global batch.
    public let rows: Range<Int>
    /// Its microbatches: offsets within `rows`, computed in this order.
    public let parts: [Range<Int>]
    /// train.batch_size x train.accumulate (every gradient is scaled by 1 / this) and train.seed.
    public let globalBatch: Int, seed: UInt64
    /// bsp without tables: forward waits layer by layer (`awaitLayer`).
    /// Otherwise `parametersReady()` comes before forward (the rows come
    /// first; ssp and async ask for the next slice there).
    public let layerByLayer: Bool

    /// Where microbatch `part`'s rows start in the step's global batch.
    public func firstRow(_ part: Range<Int>) -> Int { rows.lowerBound + part.lowerBound }
}

/// What `parametersReady()` says.
public enum Readiness: Equatable {
    /// Every piece is in: compute with the loss times `gradScale`
    /// (Float(lossScale) / Float(globalBatch), as the servers divide it out).
    case compute(gradScale: Float, lossScale: Double)
    /// The servers asked to stop; the checkpoint they asked for is written.
    /// `next()` returns `.end`.
    case stop
}

/// An evaluation after an epoch: bsp, the `next()` after its last step;
/// ssp and async, server 0's assignment.
public struct EvaluationPlan: Equatable {
    /// The step the results are reported at.
    public let step: Int
    /// This worker's contiguous slices of the test and validation sets.
    public let test: Range<Int>, validation: Range<Int>?
    /// Rows per round, and with tables the rounds of each set (equal on every worker).
    public let roundRows: Int
    public let rounds: [Int]
}

/// A worker's scores of one set.
public struct EvaluationPart: Equatable {
    public var lossSum = 0.0, correct = 0, count = 0
    public init(lossSum: Double = 0, correct: Int = 0, count: Int = 0) { self.lossSum = lossSum; self.correct = correct; self.count = count }
}

/// A compute engine's misuse of the session, as a value (a caller through
/// the C ABI gets each as a status code and this text).
public enum SessionError: UserFacingError, Equatable {
    case outOfOrder(call: String, phase: String)
    case noTables
    case tableCount(expected: Int, got: Int)
    case rowsNotAscending(table: Int)
    case missingGradients(pieces: [Int])
    case missingRounds(expected: Int, made: Int)

    public var description: String {
        switch self {
        case .outOfOrder(let call, let phase): return "worker session: \(call) called out of order (\(phase))"
        case .noTables: return "worker session: the model has no embedding tables"
        case .tableCount(let e, let g): return "worker session: rows for \(g) tables given; the model has \(e)"
        case .rowsNotAscending(let t): return "worker session: the rows of table \(t) are not distinct and ascending"
        case .missingGradients(let p): return "worker session: the step ended with pieces \(p) of the gradients never pushed (a layer was left out)"
        case .missingRounds(let e, let m): return "worker session: \(m) evaluation rounds of rows pulled; the servers expect \(e)"
        }
    }
}
