
/// Layer normalization over all of a sample (nn.LayerNorm(shape) with the
/// layer's whole input shape, elementwise affine): weight and bias have the
/// sample's shape. The same in training and evaluation.
public final class LayerNorm: LayerKind {
    public static let type = "layernorm"
    public static let keys: [LayerKey] = [.number("eps", 1e-12...1, default: 1e-5)]
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer {
        LayerNorm(name: "layers.\(index)", shape: input, eps: Float(entry.number("eps", default: 1e-5)))
    }

    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public let parameters: [ParamSpec]
    let eps: Float
    /// Per row of the last forward: mean and 1/std.
    var mean: FloatBuffer?, invstd: FloatBuffer?

    init(name: String, shape: [Int], eps: Float) {
        inputShape = shape
        self.eps = eps
        parameters = [
            ParamSpec(name: name + ".weight", shape: shape, initializer: .ones),
            ParamSpec(name: name + ".bias", shape: shape, initializer: .zeros),
        ]
    }

    public func prepare(capacity: Int) { mean = FloatBuffer(count: capacity); invstd = FloatBuffer(count: capacity) }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        if (mean?.count ?? 0) < batch { prepare(capacity: batch) }
        let D = inputSize, gamma = params, beta = params + D
        for r in 0..<batch {
            let xr = x + r * D, yr = y + r * D
            var s = 0.0
            for j in 0..<D { s += Double(xr[j]) }
            let mu = s / Double(D)
            var q = 0.0
            for j in 0..<D { let d = Double(xr[j]) - mu; q += d * d }
            let m = Float(mu), inv = Float(1 / (q / Double(D) + Double(eps)).squareRoot())
            mean![r] = m; invstd![r] = inv
            for j in 0..<D { yr[j] = (xr[j] - m) * inv * gamma[j] + beta[j] }
        }
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        let D = inputSize, gamma = params, dgamma = grads, dbeta = grads + D
        dgamma.update(repeating: 0, count: 2 * D)
        for r in 0..<batch {
            let xr = x + r * D, dyr = dy + r * D, m = mean![r], inv = invstd![r]
            var sg: Float = 0, sgx: Float = 0
            for j in 0..<D {
                let xhat = (xr[j] - m) * inv
                dgamma[j] += dyr[j] * xhat
                dbeta[j] += dyr[j]
                let g = dyr[j] * gamma[j]
                sg += g; sgx += g * xhat
            }
            guard let dx else { continue }
            let dxr = dx + r * D, k = inv / Float(D)
            for j in 0..<D { dxr[j] = k * (Float(D) * dyr[j] * gamma[j] - sg - (xr[j] - m) * inv * sgx) }
        }
    }
}
