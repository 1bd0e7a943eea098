import PSSupport

/// A worker's side of the embedding tables for one microbatch: which rows
/// its bags use (deduplicated and sorted, per table), the bags' sums of
/// those rows' values (the model's input after the dense features), and
/// after backward one summed gradient per distinct row. It never holds a
/// whole table, nor the rows' values: the worker session pulls them from
/// the servers (WorkerRowExchange) and owns them. A table that embeds
/// several fields (`features`) pulls each of its rows once and sums the
/// gradients of all its bags into it.
public final class EmbeddingBags {
    public let tables: [TableSpec]
    /// The bags of a row, in the model's input order.
    public let features: [TableFeature]
    /// Dense features per row, and the model's input width (dense + every bag's dim).
    public let denseCount: Int
    public var width: Int { denseCount + features.reduce(0) { $0 + tables[$1.table].dim } }

    /// Per table: the distinct rows of the microbatch, ascending.
    public private(set) var unique: [[UInt64]]
    /// Per feature: for each id of its field in the batch (in `ids` order), its index in its table's `unique`.
    var slot: [[Int32]]
    /// The batch the bags were prepared for.
    var offsets: [[Int32]] = []
    var weights: [[Float]] = []
    public private(set) var rows = 0

    public init(tables: [TableSpec], features: [TableFeature]? = nil, denseCount: Int) {
        self.tables = tables; self.denseCount = denseCount
        self.features = features ?? TableFeature.oneEach(tables.count)
        precondition(self.features.allSatisfy { $0.table >= 0 && $0.table < tables.count && $0.field >= 0 })
        unique = tables.map { _ in [] }; slot = self.features.map { _ in [] }
    }

    /// The field count a batch must have: one past the largest field a bag reads.
    public var fieldsNeeded: Int { (features.map(\.field).max() ?? -1) + 1 }

    /// Maps the batch's raw ids to rows: each table's distinct rows. Throws
    /// when an id is outside a table that does not hash (naming the table).
    public func prepare(_ batch: CTRBatch) throws {
        precondition(batch.ids.count >= fieldsNeeded)
        rows = batch.rows
        offsets = batch.offsets
        weights = batch.weights
        var mapped: [[UInt64]] = features.map { _ in [] }
        for (t, spec) in tables.enumerated() {
            var u: [UInt64] = []
            for (k, f) in features.enumerated() where f.table == t {
                let ids = batch.ids[f.field]
                mapped[k] = [UInt64](repeating: 0, count: ids.count)
                for (i, id) in ids.enumerated() {
                    guard let r = spec.row(of: id, table: t) else {
                        throw PSError("categorical field \(f.field) has id \(id), outside model.tables[\(t)] (rows = \(spec.rows)); "
                                      + "raise rows or set hash = true to hash ids into the table")
                    }
                    mapped[k][i] = r
                }
                u += mapped[k]
            }
            u.sort()
            var n = 0
            for r in u where n == 0 || u[n - 1] != r { u[n] = r; n += 1 }
            u.removeLast(u.count - n)
            unique[t] = u
            for (k, f) in features.enumerated() where f.table == t { slot[k] = mapped[k].map { r in Int32(Self.position(of: r, in: u)) } }
        }
    }

    static func position(of r: UInt64, in u: [UInt64]) -> Int {
        var lo = 0, hi = u.count
        while lo < hi { let m = (lo + hi) / 2; if u[m] < r { lo = m + 1 } else { hi = m } }
        return lo
    }

    /// Writes the model's input for the microbatch: each row's dense
    /// features, then each feature's bag (sum, or mean, of its table's rows
    /// times their weights; an empty bag is zeros). `values[t]` holds table
    /// t's rows' values, unique[t].count x dim, in `unique[t]` order.
    public func forward(dense: [Float], values: [UnsafeMutableBufferPointer<Float>], into input: UnsafeMutablePointer<Float>) {
        let w = width, dc = denseCount
        for r in 0..<rows {
            let out = input + r * w
            for j in 0..<dc { out[j] = dense[r * dc + j] }
            var col = dc
            for (k, feature) in features.enumerated() {
                let t = feature.table, f = feature.field, spec = tables[t]
                let d = spec.dim, o = out + col
                o.update(repeating: 0, count: d)
                let a = Int(offsets[f][r]), b = Int(offsets[f][r + 1])
                let scale: Float = spec.mode == .mean && b > a ? 1 / Float(b - a) : 1
                let vals = values[t]
                for e in a..<b {
                    let src = vals.baseAddress! + Int(slot[k][e]) * d
                    let c = (weights[f].isEmpty ? 1 : weights[f][e]) * scale
                    if c == 1 { for j in 0..<d { o[j] += src[j] } } else { for j in 0..<d { o[j] += src[j] * c } }
                }
                col += d
            }
        }
    }

    /// From the gradient of the model's input (rows x width), one summed
    /// gradient per distinct row of each table, added feature by feature in
    /// input order, then in row order, then id order (fixed bits), into
    /// `grads[t]` (unique[t].count x dim, zeroed here first).
    public func backward(inputGradient g: UnsafePointer<Float>, into grads: [UnsafeMutableBufferPointer<Float>]) {
        let w = width
        for out in grads { out.update(repeating: 0) }
        var col = denseCount
        for (k, feature) in features.enumerated() {
            let t = feature.table, f = feature.field, spec = tables[t], d = spec.dim
            let out = grads[t]
            for r in 0..<rows {
                let a = Int(offsets[f][r]), b = Int(offsets[f][r + 1])
                let scale: Float = spec.mode == .mean && b > a ? 1 / Float(b - a) : 1
                let src = g + r * w + col
                for e in a..<b {
                    let dst = out.baseAddress! + Int(slot[k][e]) * d
                    let c = (weights[f].isEmpty ? 1 : weights[f][e]) * scale
                    if c == 1 { for j in 0..<d { dst[j] += src[j] } } else { for j in 0..<d { dst[j] += src[j] * c } }
                }
            }
            col += d
        }
    }
}
