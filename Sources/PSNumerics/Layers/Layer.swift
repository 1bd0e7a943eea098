import PSSupport


/// How a parameter tensor is initialised.
public enum ParamInit: Equatable {
    /// Uniform in [-bound, bound] (PyTorch's default for nn.Linear and
    /// nn.Conv2d: bound = 1/sqrt(fan_in)).
    case uniform(bound: Float)
    case zeros
    case ones
}

/// What the servers do with a tensor's pushed values.
public enum TensorRole: Equatable {
    /// A trained parameter: the pushed values are gradients for the optimizer.
    case trainable
    /// A running statistic (batchnorm's running mean and variance): the pushed
    /// values are each worker's change, weighted by its share of the batch;
    /// the servers add their sum (the workers' average) and do not optimize it.
    case runningStat
    /// A step counter (batchnorm's num_batches_tracked): +1 per applied step.
    case counter
}

/// A parameter tensor of a layer: name (unique in the model), full shape.
public struct ParamSpec: Equatable {
    public let name: String
    public let shape: [Int]
    public let initializer: ParamInit
    public let role: TensorRole
    public var count: Int { shape.reduce(1, *) }
    public init(name: String, shape: [Int], initializer: ParamInit, role: TensorRole = .trainable) {
        self.name = name; self.shape = shape; self.initializer = initializer; self.role = role
    }
}

/// What a layer's forward and backward pass may depend on besides its
/// input: training or evaluation, and where the rows sit in the step, so
/// that random masks are a function of (seed, layer, step, global row) and
/// do not depend on the world size, the microbatch cut or a restart.
public struct LayerContext {
    public var training: Bool
    public var step: Int
    public var seed: UInt64
    /// The row of the step's global batch the first row of this call is.
    public var firstRow: Int
    /// Rows in the step's global batch (0: this call's batch is all of it).
    public var globalBatch: Int
    /// What backward multiplies the loss gradient by (the loss scale over
    /// the global batch); the model sets it. A running statistic's pushed
    /// change is multiplied by rows x gradScale: weighted by the call's
    /// share of the batch and scaled like a gradient, so the servers treat
    /// every pushed value alike until they apply it.
    public var gradScale: Float = 1

    public init(training: Bool = true, step: Int = 0, seed: UInt64 = 1, firstRow: Int = 0, globalBatch: Int = 0) {
        self.training = training; self.step = step; self.seed = seed; self.firstRow = firstRow; self.globalBatch = globalBatch
    }

    public static let evaluation = LayerContext(training: false)
}

/// A layer of a sequential model. A sample is a tensor of `inputShape`
/// (row-major, channels first as PyTorch: [C, H, W]); activations are
/// (batch, sample) row-major. A layer reads its parameters and writes its
/// gradients at the pointers it is given, laid out in the order of
/// `parameters`. The coordinator sees only this protocol and the flat
/// parameter layout.
public protocol Layer: AnyObject {
    var kind: String { get }
    var inputShape: [Int] { get }
    var outputShape: [Int] { get }
    var parameters: [ParamSpec] { get }
    /// Allocates what the layer keeps between forward and backward for up
    /// to `capacity` rows (masks, argmax, statistics). Called once.
    func prepare(capacity: Int)
    /// y (batch, outputSize) = f(x (batch, inputSize)).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                 context: LayerContext)
    /// Given x, y and dy of the last forward, writes dx (if asked for) and
    /// the parameter gradients (overwriting, not accumulating).
    func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, batch: Int,
                  params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext)
}

extension Layer {
    public var inputSize: Int { inputShape.reduce(1, *) }
    public var outputSize: Int { outputShape.reduce(1, *) }
    public func prepare(capacity: Int) {}
    /// A training-mode pass with the default context (tests, benchmarks).
    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>) {
        forward(x: x, y: y, batch: batch, params: params, context: LayerContext())
    }
    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        backward(x: x, y: y, dy: dy, dx: dx, batch: batch, params: params, grads: grads, context: LayerContext())
    }
}

/// The value of one key of a layer entry: an integer (`units = 256`) or a
/// number (`p = 0.5`).
public enum LayerValue: Equatable {
    case integer(Int)
    case number(Double)

    public var double: Double {
        switch self { case .integer(let i): return Double(i); case .number(let d): return d }
    }
    /// As TOML writes it.
    public var toml: String {
        switch self { case .integer(let i): return String(i); case .number(let d): return tomlFloat(d) }
    }
}

/// One key a layer kind takes besides `type`.
public struct LayerKey {
    public let name: String
    /// Integer keys refuse fractions; number keys take integers as numbers.
    public let integer: Bool
    public let range: ClosedRange<Double>
    /// nil: the key must be given.
    public let defaultValue: Double?

    public static func integer(_ name: String, _ range: ClosedRange<Int>, default d: Int? = nil) -> LayerKey {
        LayerKey(name: name, integer: true, range: Double(range.lowerBound)...Double(range.upperBound), defaultValue: d.map(Double.init))
    }
    public static func number(_ name: String, _ range: ClosedRange<Double>, default d: Double? = nil) -> LayerKey {
        LayerKey(name: name, integer: false, range: range, defaultValue: d)
    }

    var rangeText: String {
        integer ? "[\(Int(range.lowerBound)), \(Int(range.upperBound))]" : "[\(range.lowerBound), \(range.upperBound)]"
    }
}

/// One entry of `model.layers` as the configuration gives it: its type and
/// its other keys.
public struct LayerEntry: Equatable {
    public var type: String
    public var options: [String: LayerValue]
    public init(type: String, options: [String: LayerValue] = [:]) { self.type = type; self.options = options }

    /// Key `name`, or its default (keys were checked against the kind).
    public func int(_ name: String, default d: Int = 0) -> Int {
        if case .integer(let i)? = options[name] { return i }
        return options[name].map { Int($0.double) } ?? d
    }
    public func number(_ name: String, default d: Double) -> Double { options[name]?.double ?? d }
}

/// A kind of layer that `model.layers` can name. Adding one is one file with
/// a class conforming to `Layer` and to this protocol, and one line in
/// `LayerKinds.all` (docs/architecture.md, "how to add a layer").
public protocol LayerKind: Layer {
    /// The `type` its entries in `model.layers` have.
    static var type: String { get }
    /// The keys its entries take besides `type`.
    static var keys: [LayerKey] { get }
    /// Layer `index` of a model, from its entry (keys already checked), for
    /// samples of shape `input`. Throws `LayerEntryProblem.shape` when the
    /// layer cannot take that shape.
    static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer
}

extension LayerKind {
    /// A layer's kind is its entries' `type`.
    public var kind: String { Self.type }
}

/// Every layer kind, by the type name configurations use.
public enum LayerKinds {
    public static let all: [LayerKind.Type] = [
        Dense.self, ReLU.self, Tanh.self, Sigmoid.self, GELU.self, SiLU.self, Conv2d.self, MaxPool2d.self, AvgPool2d.self,
        Flatten.self, Dropout.self, BatchNorm.self, LayerNorm.self,
    ]

    public static var types: [String] { all.map { $0.type } }

    public static func named(_ type: String) -> LayerKind.Type? { all.first { $0.type == type } }

    /// Checks an entry against its kind: a known type, only its keys, the
    /// required ones present, each of its type and in range. Returns the
    /// kind or what is wrong.
    public static func check(_ entry: LayerEntry) -> Result<LayerKind.Type, LayerEntryProblem> {
        guard let kind = named(entry.type) else { return .failure(.unknownType(entry.type, known: types)) }
        for key in entry.options.keys.sorted() where !kind.keys.contains(where: { $0.name == key }) {
            return .failure(.unknownKey(key, type: kind.type, takes: kind.keys.map { $0.name }))
        }
        for k in kind.keys {
            guard let v = entry.options[k.name] else {
                if k.defaultValue == nil { return .failure(.missing(k.name, type: kind.type, integer: k.integer)) }
                continue
            }
            if k.integer, case .number = v { return .failure(.missing(k.name, type: kind.type, integer: true)) }
            if !k.range.contains(v.double) || !v.double.isFinite {
                return .failure(.outOfRange(k.name, value: v.toml, range: k.rangeText, type: kind.type))
            }
        }
        return .success(kind)
    }

    /// The layers of `entries` (each checked) on samples of shape `input`:
    /// descriptions only, no buffers. The last layer must give a flat
    /// vector (the class scores).
    public static func build(_ entries: [LayerEntry], input: [Int]) -> Result<[Layer], IndexedLayerProblem> {
        var layers: [Layer] = []
        var shape = input
        for (i, e) in entries.enumerated() {
            switch check(e) {
            case .failure(let p): return .failure(IndexedLayerProblem(index: i, problem: p))
            case .success(let kind):
                do {
                    let layer = try kind.make(e, index: i, input: shape)
                    layers.append(layer)
                    shape = layer.outputShape
                } catch let p as LayerEntryProblem {
                    return .failure(IndexedLayerProblem(index: i, problem: p))
                } catch {
                    return .failure(IndexedLayerProblem(index: i, problem: .shape(type: kind.type, "\(error)")))
                }
            }
        }
        if let last = layers.last, last.outputShape.count != 1 {
            return .failure(IndexedLayerProblem(index: layers.count - 1, problem: .shape(type: entries.last!.type,
                "gives samples of shape \(last.outputShape.shapeText), but the last layer must give the class scores as a flat vector (end with { type = \"flatten\" } and a dense layer)")))
        }
        return .success(layers)
    }

    /// The same on flat samples of `inputSize` features.
    public static func build(_ entries: [LayerEntry], inputSize: Int) -> Result<[Layer], IndexedLayerProblem> {
        build(entries, input: [inputSize])
    }
}

/// What is wrong with one entry of `model.layers`.
public enum LayerEntryProblem: Error, Equatable {
    /// `type` names no layer kind.
    case unknownType(String, known: [String])
    /// A key the kind does not take; `takes` lists the ones it does.
    case unknownKey(String, type: String, takes: [String])
    /// A key the kind needs is missing (or not of its type).
    case missing(String, type: String, integer: Bool)
    /// A key outside its range.
    case outOfRange(String, value: String, range: String, type: String)
    /// The layer cannot take the shape its input has; the text names both shapes.
    case shape(type: String, String)

    public var text: String {
        switch self {
        case .unknownType(let t, let known): return "has unknown type '\(t)' (known: \(known.joined(separator: ", ")))"
        case .unknownKey(let k, let t, let takes):
            return "has key '\(k)', which \(t) does not take (\(takes.isEmpty ? "\(t) takes no options" : "\(t) takes " + takes.map { "'\($0)'" }.joined(separator: ", ")))"
                + (PyTorchNames.hint(for: k, known: takes).map { "; \($0)" } ?? "")
        case .missing(let k, let t, let integer): return "(\(t)) needs \(integer ? "a positive integer" : "a number") '\(k)'"
        case .outOfRange(let k, let v, let r, let t): return "(\(t)) has \(k) = \(v), outside \(r)"
        case .shape(let t, let why): return "(\(t)) \(why)"
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
    public static func dense(_ units: Int) -> LayerEntry { LayerEntry(type: Dense.type, options: ["units": .integer(units)]) }
    public static var relu: LayerEntry { LayerEntry(type: ReLU.type) }
}

extension LayerEntry {
    /// The entry as TOML writes it in run.toml and export metadata, type
    /// first and then its keys in order: `{ type = "dense", units = 256 }`.
    public var toml: String {
        "{ " + (["type = \"\(type)\""] + options.keys.sorted().map { "\($0) = \(options[$0]!.toml)" }).joined(separator: ", ") + " }"
    }
}

extension Array where Element == Int {
    /// A shape as messages write it: [1, 28, 28].
    public var shapeText: String { "[" + map(String.init).joined(separator: ", ") + "]" }
}

/// Shape checks the layer kinds share.
public enum Shapes {
    /// (C, H, W) of an image-shaped input, or the problem naming the shape.
    public static func image(_ input: [Int], type: String) throws -> (c: Int, h: Int, w: Int) {
        guard input.count == 3 else {
            throw LayerEntryProblem.shape(type: type, "needs samples of shape [channels, height, width], but gets \(input.shapeText)"
                + (input.count == 1 ? " (set model.input to the image shape, e.g. [1, 28, 28])" : ""))
        }
        return (input[0], input[1], input[2])
    }

    /// The output length of a window of `kernel` moved by `stride` over
    /// `size` (+ 2 `padding`), or the problem naming both shapes.
    public static func windows(_ size: Int, kernel: Int, stride: Int, padding: Int, type: String, input: [Int]) throws -> Int {
        let span = size + 2 * padding - kernel
        guard span >= 0 else {
            throw LayerEntryProblem.shape(type: type, "has a \(kernel)x\(kernel) window, larger than its input \(input.shapeText)"
                + (padding > 0 ? " with padding \(padding)" : ""))
        }
        return span / stride + 1
    }
}

extension LayerValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    public init(integerLiteral i: Int) { self = .integer(i) }
    public init(floatLiteral d: Double) { self = .number(d) }
}
