import PSSupport
import PSNumerics
import PSCodec

extension LayerEntry {
    /// Reads entry `n` of `model.layers`: a table with a string `type` and
    /// integer keys, checked against its layer kind (Layers/).
    init(_ v: ConfigValue, index n: Int, _ ctx: KeyContext) throws {
        let at = ctx.locate(["[\(n)]"]) ?? ctx.at
        func bad(_ p: LayerProblem) -> ConfigError { .badLayer(source: ctx.source, index: n, at: at, problem: p) }
        guard case .table(let t) = v else { throw bad(.notATable(v)) }
        guard case .string(let type)? = t["type"] else { throw bad(.missingType) }
        var options: [String: Int] = [:]
        for key in t.keys.sorted() where key != "type" {
            guard case .integer(let i)? = t[key] else { throw bad(.notAnInteger(key, t[key]!)) }
            options[key] = i
        }
        self.init(type: type, options: options)
        switch LayerKinds.check(self) {
        case .success: break
        case .failure(.outOfRange(let key, let value, let range, _)):
            throw ConfigError.outOfRange(source: ctx.source, key: "model.layers[\(n)].\(key)", value: String(value), integer: true,
                                         range: .closed(Double(range.lowerBound), Double(range.upperBound)))
        case .failure(let p): throw bad(.kind(p))
        }
    }

    /// The entry as a TOML table value.
    var value: ConfigValue { .table(options.mapValues { .integer($0) }.merging(["type": .string(type)]) { a, _ in a }) }
}

/// [model]: the network.
public struct ModelSection: ConfigSection {
    /// Features per sample (model.input).
    public internal(set) var inputSize = 784
    /// The network, in order (model.layers).
    public internal(set) var layers: [LayerEntry] = [.dense(256), .relu, .dense(128), .relu, .dense(10)]

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
                  doc: "the network, in order: {type = \"dense\", units = N} or {type = \"relu\"} (the kinds in Layers/)",
                  read: { .array($0.layers.map(\.value)) }) { s, v, ctx in
            guard case .array(let items) = v else { throw ctx.wrongType(v, "an array of layer tables") }
            s.layers = try items.enumerated().map { try LayerEntry($1, index: $0, ctx) }
        },
    ]
}
