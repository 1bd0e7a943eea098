
/// One embedding table of a click-through-rate model (an entry of
/// `model.tables`): `rows` x `dim` FP32 values, torch.nn.EmbeddingBag's
/// `weight`. Table i embeds categorical field i. Tables live on the servers
/// only, split by row (`owner(row:servers:)`); a worker pulls the rows its
/// microbatch uses and pushes one summed gradient per row.
public struct TableSpec: Equatable, Sendable {
    /// How a bag of rows becomes one vector (EmbeddingBag's `mode`).
    public enum Mode: String, CaseIterable, Sendable { case sum, mean }

    public var rows: Int
    public var dim: Int
    public var mode: Mode
    /// Raw ids are hashed into `rows` buckets (`bucket(_:)`); otherwise a raw
    /// id must be below `rows`.
    public var hash: Bool

    public init(rows: Int, dim: Int, mode: Mode = .sum, hash: Bool = false) {
        self.rows = rows; self.dim = dim; self.mode = mode; self.hash = hash
    }

    /// The largest table (rows) and widest row (dim) a configuration may ask for.
    public static let maxRows = 1 << 34
    public static let maxDim = 4096

    /// The initial values of a row lie in [-initBound, initBound).
    public static let initBound: Float = 0.05

    /// Table `table`'s PyTorch name (an nn.ModuleList of EmbeddingBags called `embeddings`).
    public static func name(_ table: Int) -> String { "embeddings.\(table).weight" }

    /// The bucket of raw id `id` in table `table`:
    /// splitmix64(id ^ table x 0x9E3779B97F4A7C15) mod rows.
    @inline(__always)
    public static func bucket(_ id: UInt64, table: Int, rows: Int) -> UInt64 {
        CounterRNG.mix(id ^ (UInt64(table) &* 0x9E37_79B9_7F4A_7C15)) % UInt64(rows)
    }

    /// The row raw id `id` uses, or nil when it is out of range (no hashing).
    @inline(__always)
    public func row(of id: UInt64, table: Int) -> UInt64? {
        if hash { return Self.bucket(id, table: table, rows: rows) }
        return id < UInt64(rows) ? id : nil
    }

    /// The server that holds row `row` (rows are dealt out in turn: each on
    /// exactly one server, balanced to within one row per table).
    @inline(__always)
    public static func owner(row: UInt64, servers: Int) -> Int { Int(row % UInt64(servers)) }

    /// Writes row `row`'s initial values: uniform in [-initBound, initBound)
    /// from the counter RNG of (seed, table, row), so a row nobody touched
    /// costs nothing and any server computes the same bits.
    public func initialize(row: UInt64, table: Int, seed: UInt64, into out: UnsafeMutablePointer<Float>) {
        let stream = 0x7AB1_E000_0000 &+ UInt64(table)
        for j in 0..<dim {
            let u = CounterRNG.uniform(seed: seed, stream: stream, index: row &* UInt64(dim) &+ UInt64(j))
            out[j] = (2 * u - 1) * Self.initBound
        }
    }
}

/// One bag of a click-log row in the model's input: the ids of categorical
/// field `field`, embedded by table `table`. By default table i embeds
/// field i; with `fields` in model.tables a table may embed several fields
/// (one bag each, sharing its rows) and a field may be left out.
public struct TableFeature: Equatable, Sendable {
    public let field: Int
    public let table: Int
    public init(field: Int, table: Int) { self.field = field; self.table = table }

    /// Table i on field i, for `tables` tables.
    public static func oneEach(_ tables: Int) -> [TableFeature] { (0..<tables).map { TableFeature(field: $0, table: $0) } }
}
