import Foundation

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

/// The sets of a click-through-rate run: training, test and (when
/// `data.validation` holds some out) validation.
public struct CTRSets {
    public let train: any CTRSource
    public let test: any CTRSource
    public let validation: (any CTRSource)?

    public init(train: any CTRSource, test: any CTRSource, validation: (any CTRSource)? = nil) {
        self.train = train; self.test = test; self.validation = validation
    }
}

/// A small click log made from a seed for fast tests: `vocabularies[f]` ids
/// per field, skewed toward small ids (id = floor(V u^2)), one id per field
/// per row (a few bags empty), `dense` features in [0, 3), and a click drawn
/// from a planted logistic model of a weight per (field, id) and per
/// feature. Rows are a function of (seed, row) alone.
public final class SyntheticCTR: CTRSource {
    public let count: Int
    public let denseCount: Int
    public let vocabularies: [Int]
    public var fieldCount: Int { vocabularies.count }
    public var source: String { "synthetic click log (seed \(seed))" }
    let seed: UInt64
    let stream: UInt64

    public init(rows: Int, dense: Int, vocabularies: [Int], seed: UInt64, stream: UInt64) {
        count = rows; denseCount = dense; self.vocabularies = vocabularies; self.seed = seed; self.stream = stream
    }

    /// The planted model's logit of row `r` (what the labels are drawn from).
    func row(_ r: Int) -> (label: Float, dense: [Float], ids: [UInt64?]) {
        let base = stream &* 0x1_0000_0000 &+ UInt64(r) &* 64
        var logit: Float = -1.0
        var dense: [Float] = []
        for j in 0..<denseCount {
            let x = 3 * CounterRNG.uniform(seed: seed, stream: 11, index: base &+ UInt64(j))
            dense.append(x)
            logit += (CounterRNG.uniform(seed: seed, stream: 12, index: UInt64(j)) - 0.5) * x
        }
        var ids: [UInt64?] = []
        for (f, v) in vocabularies.enumerated() {
            let u = CounterRNG.uniform(seed: seed, stream: 13, index: base &+ 32 &+ UInt64(f))
            if u < 0.03 { ids.append(nil); continue }
            let id = min(UInt64(v - 1), UInt64(Float(v) * u * u))
            ids.append(id)
            logit += 3 * (CounterRNG.uniform(seed: seed, stream: 14 &+ UInt64(f), index: id) - 0.5)
        }
        let p = 1 / (1 + expf(-logit))
        let label: Float = CounterRNG.uniform(seed: seed, stream: 15, index: base) < p ? 1 : 0
        return (label, dense, ids)
    }

    public func gather(_ indices: [Int], into batch: inout CTRBatch) throws {
        if batch.ids.count != fieldCount { batch = CTRBatch(fields: fieldCount) }
        for i in indices {
            precondition(i >= 0 && i < count, "row out of range")
            let r = row(i)
            batch.labels.append(r.label)
            batch.dense.append(contentsOf: r.dense)
            for (f, id) in r.ids.enumerated() {
                if let id { batch.ids[f].append(id) }
                batch.offsets[f].append(Int32(batch.ids[f].count))
            }
            batch.rows += 1
        }
    }
}
