import PSSupport
import PSNumerics

extension LayerEntry {
    /// Reads entry `n` of `model.layers`: a table with a string `type` and
    /// number keys, checked against its layer kind (Layers/).
    init(_ v: ConfigValue, index n: Int, _ ctx: KeyContext) throws {
        let at = ctx.locate(["[\(n)]"]) ?? ctx.at
        func bad(_ p: LayerProblem) -> ConfigError { .badLayer(source: ctx.source, index: n, at: at, problem: p) }
        guard case .table(let t) = v else { throw bad(.notATable(v)) }
        guard case .string(let type)? = t["type"] else { throw bad(.missingType) }
        var options: [String: LayerValue] = [:]
        for key in t.keys.sorted() where key != "type" {
            switch t[key]! {
            case .integer(let i): options[key] = .integer(i)
            case .float(let d): options[key] = .number(d)
            case let v: throw bad(.notANumber(key, v))
            }
        }
        self.init(type: type, options: options)
        switch LayerKinds.check(self) {
        case .success: break
        case .failure(.outOfRange(let key, let value, _, _)):
            let k = LayerKinds.named(type)!.keys.first { $0.name == key }!
            throw ConfigError.outOfRange(source: ctx.source, key: "model.layers[\(n)].\(key)", value: value, integer: k.integer,
                                         range: .closed(k.range.lowerBound, k.range.upperBound))
        case .failure(let p): throw bad(.kind(p))
        }
    }

    /// The entry as a TOML table value.
    var value: ConfigValue {
        .table(options.mapValues { v -> ConfigValue in
            switch v { case .integer(let i): return .integer(i); case .number(let d): return .float(d) }
        }.merging(["type": .string(type)]) { a, _ in a })
    }
}

extension LossKind: ConfigChoice {
    static var choices: [LossKind] { allCases }
}

extension TableSpec {
    /// Reads entry `n` of `model.tables`: { type = "embedding_bag", rows, dim, mode, hash }.
    init(_ v: ConfigValue, index n: Int, _ ctx: KeyContext) throws {
        let key = "model.tables[\(n)]"
        func bad(_ why: String) -> ConfigError { .invalid(source: ctx.source, key: key, at: ctx.locate(["[\(n)]"]) ?? ctx.at, problem: why) }
        guard case .table(let t) = v else { throw bad("is \(v.description), not a table such as { type = \"embedding_bag\", rows = 1000, dim = 16 }") }
        let known: Set<String> = ["type", "rows", "dim", "mode", "hash", "count", "fields"]
        if let k = t.keys.sorted().first(where: { !known.contains($0) }) {
            throw bad("has the unknown key '\(k)'; an embedding_bag takes rows, dim, mode (\"sum\" or \"mean\"), hash (true or false), count and fields"
                      + (PyTorchNames.hint(for: k, known: Array(known)).map { "; \($0)" } ?? ""))
        }
        if let ty = t["type"], ty != .string("embedding_bag") { throw bad("has type = \(ty.description); the one table kind is \"embedding_bag\"") }
        func int(_ k: String, _ hi: Int) throws -> Int {
            guard case .integer(let i)? = t[k] else { throw bad("needs \(k), an integer in [1, \(hi)]") }
            guard i >= 1 && i <= hi else { throw bad("has \(k) = \(i), outside [1, \(hi)]") }
            return i
        }
        var spec = TableSpec(rows: try int("rows", TableSpec.maxRows), dim: try int("dim", TableSpec.maxDim))
        if let m = t["mode"] {
            guard case .string(let w) = m, let mode = TableSpec.Mode(rawValue: w) else { throw bad("has mode = \(m.description); it takes \"sum\" or \"mean\"") }
            spec.mode = mode
        }
        if let h = t["hash"] {
            guard case .bool(let b) = h else { throw bad("has hash = \(h.description); it takes true or false") }
            spec.hash = b
        }
        self = spec
    }

    /// The most tables one entry's `count` writes (and a field count no click log here passes).
    static let maxCount = 4096

    /// Entry `n`'s `count` (1 without one): how many fields get a table alike.
    static func count(_ v: ConfigValue, index n: Int, _ ctx: KeyContext) throws -> Int {
        guard case .table(let t) = v, let c = t["count"] else { return 1 }
        guard case .integer(let i) = c, i >= 1, i <= maxCount else {
            throw ConfigError.invalid(source: ctx.source, key: "model.tables[\(n)]", at: ctx.locate(["[\(n)]"]) ?? ctx.at,
                                      problem: "has count = \(c.description); it takes an integer in [1, \(maxCount)]: that many fields get a table alike")
        }
        return i
    }

    /// Entry `n`'s `fields` (nil without one): the click log's categorical
    /// fields (0 is the first: Criteo's C1) whose bags the table embeds.
    static func fields(_ v: ConfigValue, index n: Int, _ ctx: KeyContext) throws -> [Int]? {
        guard case .table(let t) = v, let value = t["fields"] else { return nil }
        func bad(_ why: String) -> ConfigError {
            .invalid(source: ctx.source, key: "model.tables[\(n)]", at: ctx.locate(["[\(n)]"]) ?? ctx.at, problem: why)
        }
        let shape = "an array of field numbers such as [0, 2, 5] (0 is the first categorical field: Criteo's C1)"
        guard case .array(let items) = value, !items.isEmpty else { throw bad("has fields = \(value.description); it takes \(shape)") }
        if t["count"] != nil { throw bad("has both count and fields; fields names the one table's fields, so drop count") }
        var fields: [Int] = []
        for item in items {
            guard case .integer(let f) = item, f >= 0, f < maxCount else {
                throw bad("has fields = \(value.description); it takes \(shape), each in [0, \(maxCount - 1)]")
            }
            guard !fields.contains(f) else { throw bad("names field \(f) twice in fields") }
            fields.append(f)
        }
        return fields
    }

    /// The entry as a TOML table value (every key written; `fields` when it has some).
    func value(fields: [Int]) -> ConfigValue {
        var t: [String: ConfigValue] = ["type": .string("embedding_bag"), "rows": .integer(rows), "dim": .integer(dim),
                                        "mode": .string(mode.rawValue), "hash": .bool(hash)]
        if !fields.isEmpty { t["fields"] = .array(fields.map { .integer($0) }) }
        return .table(t)
    }
}

/// [model]: the network.
public struct ModelSection: ConfigSection {
    /// The shape of a sample (model.input): [784] for flat vectors (the
    /// file may give the integer 784), [1, 28, 28] for images.
    public internal(set) var inputShape = [784]
    /// Elements per sample.
    public var inputSize: Int { inputShape.reduce(1, *) }
    /// The network, in order (model.layers).
    public internal(set) var layers: [LayerEntry] = [.dense(256), .relu, .dense(128), .relu, .dense(10)]
    /// Embedding tables (model.tables; empty: none): table i for categorical
    /// field i, or the fields `tableFields[i]` names.
    public internal(set) var tables: [TableSpec] = []
    /// Per table, the fields it embeds (model.tables[i].fields; [] for an
    /// entry without them). Config.validate requires every table to name
    /// its fields or none (table i embeds field i), each field in one table.
    public internal(set) var tableFields: [[Int]] = []
    /// Whether the tables name their fields.
    public var namesFields: Bool { tableFields.contains { !$0.isEmpty } }
    /// The bags of a click-log row in the model's input, in order: each
    /// table's fields in turn (table i on field i without `fields`).
    public var features: [TableFeature] {
        guard namesFields else { return TableFeature.oneEach(tables.count) }
        return tableFields.enumerated().flatMap { t, fields in fields.map { TableFeature(field: $0, table: t) } }
    }
    /// The categorical fields a click log must have at least: one per table,
    /// or one past the largest field named.
    public var fieldsNeeded: Int { namesFields ? (tableFields.joined().max() ?? -1) + 1 : tables.count }
    /// model.loss
    public internal(set) var loss = LossKind.softmax
    /// model.interaction
    public internal(set) var interaction = Interaction.none

    /// model.interaction: a term on the tables' bags added to the logit.
    public enum Interaction: String, ConfigChoice {
        case none
        /// DeepFM's second-order factorization machine.
        case fm
        static let choices: [Interaction] = [.none, .fm]
    }

    /// The interaction term of the model's input layout (nil: none).
    public var fmInteraction: FMInteraction? {
        guard interaction == .fm, let d = tables.first?.dim else { return nil }
        return FMInteraction(start: inputSize, fields: features.count, dim: d, width: layerInputShape.reduce(1, *))
    }

    /// What the layers take: the dense features then each feature's bag.
    public var layerInputShape: [Int] { tables.isEmpty ? inputShape : [inputSize + features.reduce(0) { $0 + tables[$1.table].dim }] }

    public init() {}

    /// The tables' fields as Config.validate requires them: every table
    /// names its fields or none does; a field embedded by two tables is
    /// refused, naming both. Returns the entry and the problem.
    func fieldLayoutProblem() -> (table: Int, problem: String)? {
        guard namesFields else { return nil }
        if let n = tableFields.firstIndex(where: { $0.isEmpty }) {
            return (n, "has no fields while other tables name theirs; name the fields of every table, or of none (table i embeds field i)")
        }
        var owner: [Int: Int] = [:]
        for (t, fs) in tableFields.enumerated() {
            for f in fs {
                if let first = owner[f] {
                    return (t, "names field \(f), which model.tables[\(first)] embeds already; a field feeds one table (list it in one table's fields)")
                }
                owner[f] = t
            }
        }
        return nil
    }

    /// model.layers on one line, as the hand-written TOML reader printed the
    /// array: `[{ type = "dense", units = 256 }, { type = "relu" }, ...]`.
    /// `pstrain ckpt export` writes it into the safetensors metadata, whose
    /// bytes (and SHA-256) must not change.
    public var layersTOML: String { "[" + layers.map { $0.toml }.joined(separator: ", ") + "]" }

    /// model.tables on one line (export metadata).
    public var tablesTOML: String { tablesValue.description }

    /// model.tables as a TOML array, one entry per table.
    var tablesValue: ConfigValue {
        .array(tables.enumerated().map { t, spec in spec.value(fields: t < tableFields.count ? tableFields[t] : []) })
    }

    static let name = "model"
    static let keys: [ConfigKey<ModelSection>] = [
        ConfigKey(name: "input", kind: .shape, range: nil,
                  doc: "the shape of a sample: features per sample (784), or [channels, height, width] for images ([1, 28, 28])",
                  read: { $0.inputShape.count == 1 ? .integer($0.inputShape[0]) : .array($0.inputShape.map { .integer($0) }) }) { s, v, ctx in
            let dims: [ConfigValue]
            switch v {
            case .integer: dims = [v]
            case .array(let a) where !a.isEmpty && a.count <= 3: dims = a
            default: throw ctx.wrongType(v, "a positive integer or an array of 1 to 3 positive integers such as [1, 28, 28]")
            }
            var shape: [Int] = []
            if dims.count == 1, case .integer(0) = dims[0] {   // no dense features (a model of embedding tables alone)
                s.inputShape = [0]
                return
            }
            for d in dims {
                guard case .integer(let i) = d, i >= 1, i <= Config.maxWidth else {
                    throw ctx.wrongType(v, "a positive integer or an array of 1 to 3 integers in [1, \(Config.maxWidth)] such as [1, 28, 28]")
                }
                shape.append(i)
            }
            guard shape.reduce(1, *) <= Config.maxWidth else {
                throw ConfigError.invalid(source: ctx.source, key: ctx.key, at: ctx.at,
                                          problem: "= \(shape.shapeText) has \(shape.reduce(1, *)) elements per sample, more than the \(Config.maxWidth) allowed")
            }
            s.inputShape = shape
        },
        ConfigKey(name: "layers", kind: .layers, range: nil,
                  doc: "the network, in order: tables such as {type = \"conv2d\", channels = 32, kernel = 5} (docs/models.md lists the kinds)",
                  read: { .array($0.layers.map(\.value)) }) { s, v, ctx in
            guard case .array(let items) = v else { throw ctx.wrongType(v, "an array of layer tables") }
            s.layers = try items.enumerated().map { try LayerEntry($1, index: $0, ctx) }
        },
        .choice("loss", \.loss, "\"softmax\" (cross-entropy over classes) or \"bce\" (binary cross-entropy on one logit: click-through rate)"),
        .choice("interaction", \.interaction, "\"none\" or \"fm\": DeepFM's second-order term on the tables' bags added to the logit (every table one dim)"),
        ConfigKey(name: "tables", kind: .tables, range: nil,
                  doc: "embedding tables, table i for categorical field i: {type = \"embedding_bag\", rows = 1000000, dim = 16, mode = \"sum\", hash = false}; "
                    + "count = N writes N tables alike; fields = [0, 3] names the fields one table embeds (docs/models.md)",
                  read: { $0.tablesValue }) { s, v, ctx in
            guard case .array(let items) = v else { throw ctx.wrongType(v, "an array of embedding_bag tables") }
            var tables: [TableSpec] = []
            var fields: [[Int]?] = []
            for (n, item) in items.enumerated() {
                let spec = try TableSpec(item, index: n, ctx)
                let named = try TableSpec.fields(item, index: n, ctx)
                let count = try TableSpec.count(item, index: n, ctx)
                tables += repeatElement(spec, count: count)
                fields += repeatElement(named, count: count)
                guard tables.count <= TableSpec.maxCount else {
                    throw ConfigError.invalid(source: ctx.source, key: "model.tables", at: ctx.at, problem: "has more than \(TableSpec.maxCount) tables")
                }
            }
            s.tables = tables
            s.tableFields = fields.map { $0 ?? [] }
        },
    ]
}
