import PSSupport

/// A worker's side of the embedding tables for one microbatch: which rows
/// its bags use (deduplicated, sorted, grouped by the server that holds
/// them), the pulled values of those rows, the bags' sums (the model's
/// input after the dense features), and after backward one summed gradient
/// per distinct row. It never holds a whole table. A table that embeds
/// several fields (`features`) pulls each of its rows once and sums the
/// gradients of all its bags into it.
public final class EmbeddingBags {
    public let tables: [TableSpec]
    /// The bags of a row, in the model's input order.
    public let features: [TableFeature]
    public let servers: Int
    /// Dense features per row, and the model's input width (dense + every bag's dim).
    public let denseCount: Int
    public var width: Int { denseCount + features.reduce(0) { $0 + tables[$1.table].dim } }

    /// Per table: the distinct rows of the microbatch, ascending.
    public private(set) var unique: [[UInt64]]
    /// Per feature: for each id of its field in the batch (in `ids` order), its index in its table's `unique`.
    var slot: [[Int32]]
    /// Per server, per table: indices into `unique[t]` of the rows it holds, ascending.
    public private(set) var wanted: [[[Int32]]]
    /// Per table: unique.count x dim pulled values; then per-row gradients.
    public private(set) var values: [[Float]]
    public private(set) var grads: [[Float]]
    /// The batch the bags were prepared for.
    var offsets: [[Int32]] = []
    var weights: [[Float]] = []
    public private(set) var rows = 0

    public init(tables: [TableSpec], features: [TableFeature]? = nil, denseCount: Int, servers: Int) {
        self.tables = tables; self.denseCount = denseCount; self.servers = servers
        self.features = features ?? TableFeature.oneEach(tables.count)
        precondition(self.features.allSatisfy { $0.table >= 0 && $0.table < tables.count && $0.field >= 0 })
        unique = tables.map { _ in [] }; slot = self.features.map { _ in [] }
        values = tables.map { _ in [] }; grads = tables.map { _ in [] }
        wanted = (0..<servers).map { _ in tables.map { _ in [] } }
    }

    /// Rows a server must send for the microbatch, over all tables.
    public func rowCount(server s: Int) -> Int { wanted[s].reduce(0) { $0 + $1.count } }
    /// Elements (rows x dim) a server sends for the microbatch.
    public func elementCount(server s: Int) -> Int { zip(wanted[s], tables).reduce(0) { $0 + $1.0.count * $1.1.dim } }

    /// The field count a batch must have: one past the largest field a bag reads.
    public var fieldsNeeded: Int { (features.map(\.field).max() ?? -1) + 1 }

    /// Maps the batch's raw ids to rows and works out what to pull. Throws
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
            for s in 0..<servers { wanted[s][t].removeAll(keepingCapacity: true) }
            for (k, r) in u.enumerated() { wanted[TableSpec.owner(row: r, servers: servers)][t].append(Int32(k)) }
            values[t] = [Float](repeating: 0, count: u.count * spec.dim)
        }
    }

    static func position(of r: UInt64, in u: [UInt64]) -> Int {
        var lo = 0, hi = u.count
        while lo < hi { let m = (lo + hi) / 2; if u[m] < r { lo = m + 1 } else { hi = m } }
        return lo
    }

    /// Server s's rows of every table, in the order it answers (table by
    /// table, ascending), as row numbers.
    public func requestedRows(server s: Int, table t: Int) -> [UInt64] { wanted[s][t].map { unique[t][Int($0)] } }

    /// Stores server s's answer: its rows' values, table by table, in request order.
    public func store(server s: Int, values v: UnsafePointer<Float>) {
        var at = 0
        for (t, spec) in tables.enumerated() {
            let d = spec.dim
            values[t].withUnsafeMutableBufferPointer { out in
                for k in wanted[s][t] { (out.baseAddress! + Int(k) * d).update(from: v + at, count: d); at += d }
            }
        }
    }

    /// Writes the model's input for the microbatch: each row's dense
    /// features, then each feature's bag (sum, or mean, of its table's rows
    /// times their weights; an empty bag is zeros).
    public func forward(dense: [Float], into input: UnsafeMutablePointer<Float>) {
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
                values[t].withUnsafeBufferPointer { vals in
                    for e in a..<b {
                        let src = vals.baseAddress! + Int(slot[k][e]) * d
                        let c = (weights[f].isEmpty ? 1 : weights[f][e]) * scale
                        if c == 1 { for j in 0..<d { o[j] += src[j] } } else { for j in 0..<d { o[j] += src[j] * c } }
                    }
                }
                col += d
            }
        }
    }

    /// From the gradient of the model's input (rows x width), one summed
    /// gradient per distinct row of each table, added feature by feature in
    /// input order, then in row order, then id order (fixed bits).
    public func backward(inputGradient g: UnsafePointer<Float>) {
        let w = width
        for (t, spec) in tables.enumerated() { grads[t] = [Float](repeating: 0, count: unique[t].count * spec.dim) }
        var col = denseCount
        for (k, feature) in features.enumerated() {
            let t = feature.table, f = feature.field, spec = tables[t], d = spec.dim
            grads[t].withUnsafeMutableBufferPointer { out in
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
            }
            col += d
        }
    }

    /// Server s's rows' gradients, table by table in request order, into `out`.
    public func gatherGradients(server s: Int, into out: UnsafeMutablePointer<Float>) {
        var at = 0
        for (t, spec) in tables.enumerated() {
            let d = spec.dim
            grads[t].withUnsafeBufferPointer { gb in
                for k in wanted[s][t] { (out + at).update(from: gb.baseAddress! + Int(k) * d, count: d); at += d }
            }
        }
    }
}
