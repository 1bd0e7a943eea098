import PSSupport

/// Rows of a click-through-rate data set as a worker computes on them: a
/// binary label, the dense features (already transformed), and for each
/// categorical field a bag of raw ids per row in offsets form (as
/// torch.nn.EmbeddingBag takes them): row r's ids of field f are
/// `ids[f][offsets[f][r] ..< offsets[f][r + 1]]`. An empty bag (a missing
/// value) contributes a zero vector. `weights[f]` is empty (every id
/// weighs 1) or holds one weight per id (libsvm's values).
public struct CTRBatch {
    public var rows = 0
    /// 0 or 1, one per row.
    public var labels: [Float] = []
    /// rows x denseCount, row-major.
    public var dense: [Float] = []
    /// Per field: rows + 1 offsets into `ids[f]`, starting at 0.
    public var offsets: [[Int32]] = []
    /// Per field: the raw ids (before any hashing into a table's rows).
    public var ids: [[UInt64]] = []
    /// Per field: empty, or one weight per id.
    public var weights: [[Float]] = []

    public init(fields: Int = 0) {
        offsets = Array(repeating: [0], count: fields)
        ids = Array(repeating: [], count: fields)
        weights = Array(repeating: [], count: fields)
    }

    /// Empties the batch, keeping its capacity.
    public mutating func removeAll(fields: Int) {
        rows = 0
        labels.removeAll(keepingCapacity: true)
        dense.removeAll(keepingCapacity: true)
        if offsets.count != fields {
            offsets = Array(repeating: [0], count: fields)
            ids = Array(repeating: [], count: fields)
            weights = Array(repeating: [], count: fields)
            return
        }
        for f in 0..<fields {
            offsets[f].removeAll(keepingCapacity: true); offsets[f].append(0)
            ids[f].removeAll(keepingCapacity: true)
            weights[f].removeAll(keepingCapacity: true)
        }
    }
}

/// A click-through-rate data set a worker reads rows of (a Criteo or libsvm
/// file through its binary cache, or synthetic rows in tests).
public protocol CTRSource: AnyObject {
    /// Rows in the set.
    var count: Int { get }
    /// Dense features per row (13 for Criteo, 0 for libsvm).
    var denseCount: Int { get }
    /// Categorical fields per row (26 for Criteo, 1 for libsvm).
    var fieldCount: Int { get }
    /// Where the rows come from, for messages.
    var source: String { get }
    /// Appends rows `indices` (each in 0..<count), in that order, to `batch`.
    func gather(_ indices: [Int], into batch: inout CTRBatch) throws
}
