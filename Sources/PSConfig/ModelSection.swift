import PSSupport
import PSNumerics
import PSCodec

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
        case .failure(.outOfRange(let key, let value, let range, _)):
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

/// [model]: the network.
public struct ModelSection: ConfigSection {
    /// The shape of a sample (model.input): [784] for flat vectors (the
    /// file may give the integer 784), [1, 28, 28] for images.
    public internal(set) var inputShape = [784]
    /// Elements per sample.
    public var inputSize: Int { inputShape.reduce(1, *) }
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
    ]
}
