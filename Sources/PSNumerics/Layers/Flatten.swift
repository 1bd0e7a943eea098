
/// Flattens each sample to a vector, channels first (nn.Flatten()).
public final class Flatten: LayerKind {
    public static let type = "flatten"
    public static let keys: [LayerKey] = []
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer { Flatten(input: input) }
    public let inputShape: [Int]
    public var outputShape: [Int] { [inputShape.reduce(1, *)] }
    public let parameters: [ParamSpec] = []
    init(input: [Int]) { inputShape = input }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        y.update(from: x, count: batch * inputSize)
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        dx?.update(from: dy, count: batch * inputSize)
    }
}
