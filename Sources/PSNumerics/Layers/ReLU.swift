import PSSupport

/// y = max(x, 0).
public final class ReLU: LayerKind {
    public static let type = "relu"
    public static let keys: [(name: String, range: ClosedRange<Int>)] = []
    public static func make(_ entry: LayerEntry, index: Int, inputSize: Int) -> Layer { ReLU(size: inputSize) }

    public let kind = "relu"
    public let inputSize: Int
    public var outputSize: Int { inputSize }
    public let parameters: [ParamSpec] = []
    public init(size: Int) { inputSize = size }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>) {
        let n = batch * inputSize
        for i in 0..<n { y[i] = max(x[i], 0) }
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        guard let dx else { return }
        let n = batch * inputSize
        for i in 0..<n { dx[i] = y[i] > 0 ? dy[i] : 0 }
    }
}
