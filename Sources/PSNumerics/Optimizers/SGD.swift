
/// SGD with momentum and weight decay, PyTorch's semantics (torch.optim.SGD
/// with dampening 0): g' = g + wd w; v = mu v + g'; then w -= lr v, or with
/// Nesterov w -= lr (g' + mu v). State: `momentum` (v; zero at the start,
/// which gives PyTorch's first step v = g').
public struct SGD: Optimizer, Equatable {
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool

    public init(momentum: Float, weightDecay: Float, nesterov: Bool = false) {
        self.momentum = momentum; self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    public var stateNames: [String] { ["momentum"] }

    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, step: OptimizerStep) {
        let v = state[0]
        let mu = momentum, wd = weightDecay, s = step.gradScale, lr = step.lr
        if nesterov {
            for i in 0..<n {
                let gi = g[i] * s + wd * w[i]
                let vi = mu * v[i] + gi
                v[i] = vi
                w[i] -= lr * (gi + mu * vi)
            }
            return
        }
        for i in 0..<n {
            let gi = g[i] * s + wd * w[i]
            let vi = mu * v[i] + gi
            v[i] = vi
            w[i] -= lr * vi
        }
    }

    /// The same operations, with the old values copied out in the same pass
    /// (one read of the weights and momentum instead of two).
    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, step: OptimizerStep, keepingIn keptWeights: UnsafeMutablePointer<Float>,
                      _ keptState: [UnsafeMutablePointer<Float>]) {
        let v = state[0], kw = keptWeights, kv = keptState[0]
        let mu = momentum, wd = weightDecay, s = step.gradScale, lr = step.lr, nesterov = nesterov
        for i in 0..<n {
            let wi = w[i], vOld = v[i]
            kw[i] = wi
            kv[i] = vOld
            let gi = g[i] * s + wd * wi
            let vi = mu * vOld + gi
            v[i] = vi
            w[i] = nesterov ? wi - lr * (gi + mu * vi) : wi - lr * vi
        }
    }
}
