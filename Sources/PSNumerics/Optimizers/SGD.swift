import PSSupport

/// SGD with momentum and weight decay, PyTorch's semantics (torch.optim.SGD
/// with dampening 0, not Nesterov): g' = g + wd w; v = mu v + g'; w -= lr v.
/// State: `momentum` (v).
public struct SGD: Optimizer {
    public var momentum: Float
    public var weightDecay: Float

    public init(momentum: Float, weightDecay: Float) {
        self.momentum = momentum; self.weightDecay = weightDecay
    }

    public var stateNames: [String] { ["momentum"] }

    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, gradScale s: Float, lr: Float) {
        let v = state[0]
        let mu = momentum, wd = weightDecay
        for i in 0..<n {
            let gi = g[i] * s + wd * w[i]
            let vi = mu * v[i] + gi
            v[i] = vi
            w[i] -= lr * vi
        }
    }
}
