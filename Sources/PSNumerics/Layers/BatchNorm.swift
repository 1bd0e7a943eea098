
/// Batch normalization (nn.BatchNorm1d on [C] samples, nn.BatchNorm2d on
/// [C, H, W]): in training each worker normalizes with the statistics of
/// its own rows (PyTorch DDP's default); in evaluation with the running
/// mean and variance. Tensors: weight, bias (trained), running_mean,
/// running_var (running statistics) and num_batches_tracked (a counter).
/// The running statistics are state the servers keep: a worker pushes its
/// change momentum * (batch statistic - running value), weighted by its share
/// of the global batch (and scaled like a gradient: rows x gradScale), and
/// the servers add the unscaled sum: the workers' weighted average.
public final class BatchNorm: LayerKind {
    public static let type = "batchnorm"
    public static let keys: [LayerKey] = [.number("momentum", 0...1, default: 0.1), .number("eps", 1e-12...1, default: 1e-5)]
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer {
        guard input.count == 1 || input.count == 3 else {
            throw LayerEntryProblem.shape(type: type, "needs samples of shape [features] or [channels, height, width], but gets \(input.shapeText)")
        }
        return BatchNorm(name: "layers.\(index)", shape: input, momentum: Float(entry.number("momentum", default: 0.1)),
                         eps: Float(entry.number("eps", default: 1e-5)))
    }

    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public let parameters: [ParamSpec]
    let channels: Int, spatial: Int
    let momentum: Float, eps: Float
    /// The last training forward's statistics per channel.
    let mean: FloatBuffer, variance: FloatBuffer, invstd: FloatBuffer

    init(name: String, shape: [Int], momentum: Float, eps: Float) {
        inputShape = shape
        channels = shape[0]
        spatial = shape.dropFirst().reduce(1, *)
        self.momentum = momentum; self.eps = eps
        let c = [channels]
        parameters = [
            ParamSpec(name: name + ".weight", shape: c, initializer: .ones),
            ParamSpec(name: name + ".bias", shape: c, initializer: .zeros),
            ParamSpec(name: name + ".running_mean", shape: c, initializer: .zeros, role: .runningStat),
            ParamSpec(name: name + ".running_var", shape: c, initializer: .ones, role: .runningStat),
            ParamSpec(name: name + ".num_batches_tracked", shape: [], initializer: .zeros, role: .counter),
        ]
        mean = FloatBuffer(count: channels); variance = FloatBuffer(count: channels); invstd = FloatBuffer(count: channels)
    }

    /// Calls body(offset) for the first element of channel `ch` of each of `batch` samples.
    @inline(__always)
    func eachPlane(_ ch: Int, batch: Int, _ body: (Int) -> Void) {
        for n in 0..<batch { body((n * channels + ch) * spatial) }
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        let C = channels, S = spatial
        let gamma = params, beta = params + C, rm = params + 2 * C, rv = params + 3 * C
        for ch in 0..<C {
            var m: Float, inv: Float
            if context.training {
                var s = 0.0
                eachPlane(ch, batch: batch) { o in for j in 0..<S { s += Double(x[o + j]) } }
                let mu = s / Double(batch * S)
                var q = 0.0
                eachPlane(ch, batch: batch) { o in for j in 0..<S { let d = Double(x[o + j]) - mu; q += d * d } }
                let v = q / Double(batch * S)
                m = Float(mu)
                variance[ch] = Float(v)
                inv = Float(1 / (v + Double(eps)).squareRoot())
                mean[ch] = m; invstd[ch] = inv
            } else {
                m = rm[ch]
                inv = 1 / (rv[ch] + eps).squareRoot()
            }
            let g = gamma[ch] * inv, b = beta[ch]
            eachPlane(ch, batch: batch) { o in for j in 0..<S { y[o + j] = (x[o + j] - m) * g + b } }
        }
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        let C = channels, S = spatial, M = batch * S
        let gamma = params, rm = params + 2 * C, rv = params + 3 * C
        let dgamma = grads, dbeta = grads + C, drm = grads + 2 * C, drv = grads + 3 * C
        let share = Float(batch) * context.gradScale
        if !context.training { return backwardInEvaluation(x: x, dy: dy, dx: dx, batch: batch, params: params, grads: grads) }
        for ch in 0..<C {
            let m = mean[ch], inv = invstd[ch]
            var sdy: Float = 0, sdyx: Float = 0
            eachPlane(ch, batch: batch) { o in
                for j in 0..<S { sdy += dy[o + j]; sdyx += dy[o + j] * (x[o + j] - m) * inv }
            }
            dgamma[ch] = sdyx
            dbeta[ch] = sdy
            let unbiased = M > 1 ? variance[ch] * Float(M) / Float(M - 1) : variance[ch]
            drm[ch] = momentum * (m - rm[ch]) * share
            drv[ch] = momentum * (unbiased - rv[ch]) * share
            guard let dx else { continue }
            let k = gamma[ch] * inv / Float(M)
            eachPlane(ch, batch: batch) { o in
                for j in 0..<S { dx[o + j] = k * (Float(M) * dy[o + j] - sdy - (x[o + j] - m) * inv * sdyx) }
            }
        }
        grads[4 * C] = 0
    }

    /// Backward through the evaluation form (fixed running statistics): an
    /// affine map per channel; the running statistics do not move.
    func backwardInEvaluation(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, batch: Int,
                              params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        let C = channels, S = spatial
        let gamma = params, rm = params + 2 * C, rv = params + 3 * C
        grads.update(repeating: 0, count: 4 * C + 1)
        for ch in 0..<C {
            let m = rm[ch], inv = 1 / (rv[ch] + eps).squareRoot()
            var sdy: Float = 0, sdyx: Float = 0
            eachPlane(ch, batch: batch) { o in
                for j in 0..<S { sdy += dy[o + j]; sdyx += dy[o + j] * (x[o + j] - m) * inv }
            }
            grads[ch] = sdyx
            grads[C + ch] = sdy
            guard let dx else { continue }
            let k = gamma[ch] * inv
            eachPlane(ch, batch: batch) { o in for j in 0..<S { dx[o + j] = k * dy[o + j] } }
        }
    }
}
