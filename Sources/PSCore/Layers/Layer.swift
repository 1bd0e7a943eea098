
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

    public static func named(_ type: String) -> LayerKind.Type? { all.first { $0.type == type } }

    /// Checks entry `index` against its kind: a known type, only its keys,
    /// each present and in range. Returns the kind, or a message naming the
    /// key and what is wrong (the caller adds where it is).
    public static func check(_ entry: LayerEntry) -> Result<LayerKind.Type, LayerEntryProblem> {
        guard let kind = named(entry.type) else {
            return .failure(.init("has type \"\(entry.type)\", which is not a layer kind; the kinds are " + all.map { "\"\($0.type)\"" }.joined(separator: ", ")))
        }
        for key in entry.options.keys.sorted() where !kind.keys.contains(where: { $0.name == key }) {
            let known = kind.keys.isEmpty ? "it takes no other key" : "it takes " + kind.keys.map { $0.name }.joined(separator: ", ")
            return .failure(.init("has key \(key), which a \(kind.type) layer does not take (\(known))"))
        }
        for (name, range) in kind.keys {
            guard let v = entry.options[name] else { return .failure(.init("is a \(kind.type) layer without \(name)")) }
            if !range.contains(v) { return .failure(.init("has \(name) = \(v), outside [\(range.lowerBound), \(range.upperBound)]")) }
        }
        return .success(kind)
    }
}

/// What is wrong with one entry of `model.layers`.
public struct LayerEntryProblem: Error, Equatable {
    public let text: String
    init(_ text: String) { self.text = text }
}

extension LayerEntry {
    /// Shorthands for code and tests: `.dense(256)`, `.relu`.
    public static func dense(_ units: Int) -> LayerEntry { LayerEntry(type: Dense.type, options: ["units": units]) }
    public static var relu: LayerEntry { LayerEntry(type: ReLU.type) }
}
