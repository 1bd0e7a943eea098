import CBLAS

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
/// given, laid out in the order of `parameters`. Convolution and pooling plug
/// in as further conformances; the coordinator sees only this protocol.
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

/// Fully connected: y = x W^T + b, W (out, in), b (out).
public final class Dense: Layer {
    public let kind = "dense"
    public let inputSize: Int
    public let outputSize: Int
    public let parameters: [ParamSpec]

    public init(name: String, inputs: Int, outputs: Int) {
        inputSize = inputs
        outputSize = outputs
        let bound = 1 / Float(inputs).squareRoot()
        parameters = [
            ParamSpec(name: name + ".weight", shape: [outputs, inputs], initializer: .uniform(bound: bound)),
            ParamSpec(name: name + ".bias", shape: [outputs], initializer: .uniform(bound: bound)),
        ]
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>) {
        let n = outputSize, k = inputSize
        let w = params, b = params + n * k
        // y (batch, n) = bias broadcast, then += x (batch, k) * W^T (k, n)
        for r in 0..<batch { (y + r * n).update(from: b, count: n) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(n), Int32(k),
                    1, x, Int32(k), w, Int32(k), 1, y, Int32(n))
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        let n = outputSize, k = inputSize
        let dw = grads, db = grads + n * k
        // dW (n, k) = dy^T (n, batch) * x (batch, k)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(k), Int32(batch),
                    1, dy, Int32(n), x, Int32(k), 0, dw, Int32(k))
        // db (n) = column sums of dy
        db.update(repeating: 0, count: n)
        for r in 0..<batch {
            let row = dy + r * n
            for j in 0..<n { db[j] += row[j] }
        }
        // dx (batch, k) = dy (batch, n) * W (n, k)
        if let dx {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(batch), Int32(k), Int32(n),
                        1, dy, Int32(n), params, Int32(k), 0, dx, Int32(k))
        }
    }
}

/// y = max(x, 0).
public final class ReLU: Layer {
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

/// Softmax cross-entropy over logits (batch, classes).
public enum SoftmaxCrossEntropy {
    /// Returns the summed loss over the batch and the number of correct
    /// predictions. If `dlogits` is given, writes (softmax - onehot) * gradScale.
    @discardableResult
    public static func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>, batch: Int, classes: Int,
                                dlogits: UnsafeMutablePointer<Float>?, gradScale: Float) -> (lossSum: Double, correct: Int) {
        var lossSum = 0.0
        var correct = 0
        for r in 0..<batch {
            let z = logits + r * classes
            let label = Int(labels[r])
            var m = z[0]
            var arg = 0
            for j in 1..<classes where z[j] > m { m = z[j]; arg = j }
            if arg == label { correct += 1 }
            var sum: Float = 0
            for j in 0..<classes { sum += expf(z[j] - m) }
            let logSum = logf(sum) + m
            lossSum += Double(logSum - z[label])
            if let d = dlogits {
                let g = d + r * classes
                let inv = 1 / sum
                for j in 0..<classes { g[j] = expf(z[j] - m) * inv * gradScale }
                g[label] -= gradScale
            }
        }
        return (lossSum, correct)
    }
}

#if canImport(Glibc)
import Glibc
#endif
