extension Config {
    /// One entry of `model.layers`, read once when the configuration is.
    public enum LayerSpec: Equatable {
        case dense(units: Int), relu

        /// The `type` values a layer table may have.
        public static let types = ["dense", "relu"]

        /// The layer as TOML writes it in run.toml and export metadata:
        /// `{ type = "dense", units = 256 }`, `{ type = "relu" }`.
        public var toml: String {
            switch self {
            case .dense(let units): return "{ type = \"dense\", units = \(units) }"
            case .relu: return "{ type = \"relu\" }"
            }
        }

        /// What the keys of a layer table of `type` may be, for messages.
        static func optionsText(_ type: String) -> String {
            type == "dense" ? "dense takes 'units'" : "\(type) takes no options"
        }

        /// Reads entry `n` of `model.layers`.
        init(_ v: ConfigValue, index n: Int, _ ctx: KeyContext) throws {
            let at = ctx.locate(["[\(n)]"]) ?? ctx.at
            func bad(_ p: LayerProblem) -> ConfigError { .badLayer(source: ctx.source, index: n, at: at, problem: p) }
            guard case .table(let t) = v else { throw bad(.notATable(v)) }
            guard case .string(let type)? = t["type"] else { throw bad(.missingType) }
            switch type {
            case "dense":
                guard case .integer(let u)? = t["units"], u > 0 else { throw bad(.missingUnits) }
                if let k = t.keys.sorted().first(where: { $0 != "type" && $0 != "units" }) { throw bad(.unknownKey(k, type: type)) }
                self = .dense(units: u)
            case "relu":
                if let k = t.keys.sorted().first(where: { $0 != "type" }) { throw bad(.unknownKey(k, type: type)) }
                self = .relu
            default:
                throw bad(.unknownType(type, known: LayerSpec.types))
            }
        }
    }
}

/// [model]: the network.
public struct ModelSection: ConfigSection {
    /// Features per sample (model.input).
    public internal(set) var inputSize = 784
    /// The network, in order (model.layers).
    public internal(set) var layers: [Config.LayerSpec] = [.dense(units: 256), .relu, .dense(units: 128), .relu, .dense(units: 10)]

    public init() {}

    /// model.layers on one line, as the hand-written TOML reader printed the
    /// array: `[{ type = "dense", units = 256 }, { type = "relu" }, ...]`.
    /// `pstrain ckpt export` writes it into the safetensors metadata, whose
    /// bytes (and SHA-256) must not change.
    public var layersTOML: String { "[" + layers.map { $0.toml }.joined(separator: ", ") + "]" }

    static let name = "model"
    static let keys: [ConfigKey<ModelSection>] = [
        .integer("input", \.inputSize, .closed(1, Double(Config.maxWidth)), "features per sample (28x28 images: 784)"),
        ConfigKey(name: "layers", kind: .layers, range: nil,
                  doc: "the network, in order: {type = \"dense\", units = N} or {type = \"relu\"}",
                  read: { .array($0.layers.map(\.value)) }) { s, v, ctx in
            guard case .array(let items) = v else { throw ctx.wrongType(v, "an array of layer tables") }
            s.layers = try items.enumerated().map { try Config.LayerSpec($1, index: $0, ctx) }
        },
    ]
}

extension Config.LayerSpec {
    /// The layer as a TOML table value.
    var value: ConfigValue {
        switch self {
        case .dense(let units): return .table(["type": .string("dense"), "units": .integer(units)])
        case .relu: return .table(["type": .string("relu")])
        }
    }
}
