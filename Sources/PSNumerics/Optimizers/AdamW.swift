import CPSKernels

/// AdamW, as torch.optim.AdamW (amsgrad off): Adam whose weight decay is
/// decoupled from the gradient. The weights shrink first, then take Adam's
/// step (Adam.swift) with the plain gradient:
///
///     w *= 1 - lr wd           (param.mul_(1 - lr * weight_decay): the product in Double, the factor FP32)
///     g  = grad * gradScale
///     m, v, w: as Adam with this g
///
/// State: `exp_avg`, `exp_avg_sq` (zero at the start).
public struct AdamW: Optimizer, Equatable {
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double

    public init(beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0.01) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }

    public var stateNames: [String] { ["exp_avg", "exp_avg_sq"] }

    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, step: OptimizerStep) {
        var k = AdamScalars(beta1: beta1, beta2: beta2, eps: eps, step: step)
        k.decoupled = 1
        k.shrink = Float(1 - Double(step.lr) * weightDecay)
        pst_adam(w, state[0], state[1], g, n, &k)
    }
}
