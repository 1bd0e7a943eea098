import PSSupport


/// How a parameter tensor is initialised.
public enum ParamInit: Equatable {
    /// Uniform in [-bound, bound] (PyTorch's default for nn.Linear: bound = 1/sqrt(fan_in)).
    case uniform(bound: Float)
    case zeros
}

/// A parameter tensor of a layer: name (unique in the model), full shape.
public struct ParamSpec: Equatable {
    public let name: String
    public let shape: [Int]
    public let initializer: ParamInit
    public var count: Int { shape.reduce(1, *) }
}

/// A layer of a sequential model. Activations are row-major (batch, features);
/// a layer reads its parameters and writes its gradients at the pointers it is
/// given, laid out in the order of `parameters`. The coordinator sees only
/// this protocol and the flat parameter layout.
public protocol Layer: AnyObject {
    var kind: String { get }
    var inputSize: Int { get }
    var outputSize: Int { get }
    var parameters: [ParamSpec] { get }
    /// y (batch, outputSize) = f(x (batch, inputSize)).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>)
    /// Given x, y and dy, writes dx (if asked for) and the parameter gradients
    /// (overwriting, not accumulating).
    func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, batch: Int,
                  params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>)
}

/// One entry of `model.layers` as the configuration gives it: its type and
/// its other keys (integers, such as a dense layer's `units`).
public struct LayerEntry: Equatable {
    public var type: String
    public var options: [String: Int]
    public init(type: String, options: [String: Int] = [:]) { self.type = type; self.options = options }
}

/// A kind of layer that `model.layers` can name. Adding one is one file with
/// a class conforming to `Layer` and to this protocol, and one line in
/// `LayerKinds.all` (docs/architecture.md, "how to add a layer").
public protocol LayerKind: Layer {
    /// The `type` its entries in `model.layers` have.
    static var type: String { get }
    /// The keys its entries take besides `type`, with the range of each.
    static var keys: [(name: String, range: ClosedRange<Int>)] { get }
    /// Layer `index` of a model, from its entry (keys already checked), for
    /// inputs of `inputSize` features.
    static func make(_ entry: LayerEntry, index: Int, inputSize: Int) -> Layer
}

/// Every layer kind, by the type name configurations use.
public enum LayerKinds {
    public static let all: [LayerKind.Type] = [Dense.self, ReLU.self]

    public static var types: [String] { all.map { $0.type } }

    public static func named(_ type: String) -> LayerKind.Type? { all.first { $0.type == type } }

    /// Checks an entry against its kind: a known type, only its keys, each
    /// present and in range. Returns the kind or what is wrong.
    public static func check(_ entry: LayerEntry) -> Result<LayerKind.Type, LayerEntryProblem> {
        guard let kind = named(entry.type) else { return .failure(.unknownType(entry.type, known: types)) }
        for key in entry.options.keys.sorted() where !kind.keys.contains(where: { $0.name == key }) {
            return .failure(.unknownKey(key, type: kind.type, takes: kind.keys.map { $0.name }))
        }
        for (name, range) in kind.keys {
            guard let v = entry.options[name], v >= 1 else { return .failure(.missing(name, type: kind.type)) }
            if !range.contains(v) { return .failure(.outOfRange(name, value: v, range: range, type: kind.type)) }
        }
        return .success(kind)
    }

    /// The layers of `entries` (each checked) on inputs of `inputSize`
    /// features: descriptions only, no buffers.
    public static func build(_ entries: [LayerEntry], inputSize: Int) -> Result<[Layer], IndexedLayerProblem> {
        var layers: [Layer] = []
        var size = inputSize
        for (i, e) in entries.enumerated() {
            switch check(e) {
            case .failure(let p): return .failure(IndexedLayerProblem(index: i, problem: p))
            case .success(let kind):
                let layer = kind.make(e, index: i, inputSize: size)
                layers.append(layer)
                size = layer.outputSize
            }
        }
        return .success(layers)
    }
}

/// What is wrong with one entry of `model.layers`.
public enum LayerEntryProblem: Error, Equatable {
    /// `type` names no layer kind.
    case unknownType(String, known: [String])
    /// A key the kind does not take; `takes` lists the ones it does.
    case unknownKey(String, type: String, takes: [String])
    /// A key the kind needs is missing (or not a positive integer).
    case missing(String, type: String)
    /// A key outside its range.
    case outOfRange(String, value: Int, range: ClosedRange<Int>, type: String)

    public var text: String {
        switch self {
        case .unknownType(let t, let known): return "has unknown type '\(t)' (known: \(known.joined(separator: ", ")))"
        case .unknownKey(let k, let t, let takes):
            return "has key '\(k)', which \(t) does not take (\(takes.isEmpty ? "\(t) takes no options" : "\(t) takes " + takes.map { "'\($0)'" }.joined(separator: ", ")))"
        case .missing(let k, let t): return "(\(t)) needs a positive integer '\(k)'"
        case .outOfRange(let k, let v, let r, let t): return "(\(t)) has \(k) = \(v), outside [\(r.lowerBound), \(r.upperBound)]"
        }
    }
}

/// A problem and the entry of `model.layers` it is in.
public struct IndexedLayerProblem: UserFacingError, Equatable {
    public let index: Int
    public let problem: LayerEntryProblem
    public var description: String { "model.layers[\(index)] \(problem.text)" }
}

extension LayerEntry {
    /// Shorthands for code and tests: `.dense(256)`, `.relu`.
    public static func dense(_ units: Int) -> LayerEntry { LayerEntry(type: Dense.type, options: ["units": units]) }
    public static var relu: LayerEntry { LayerEntry(type: ReLU.type) }
}

extension LayerEntry {
    /// The entry as TOML writes it in run.toml and export metadata, type
    /// first and then its keys in order: `{ type = "dense", units = 256 }`.
    public var toml: String {
        (["type = \"\(type)\""] + options.keys.sorted().map { "\($0) = \(options[$0]!)" }).joined(separator: ", ")
            .wrappedInBraces
    }
}

private extension String {
    var wrappedInBraces: String { "{ " + self + " }" }
}
