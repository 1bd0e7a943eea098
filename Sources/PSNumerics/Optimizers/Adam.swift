import Foundation
import CPSKernels

/// Adam, as torch.optim.Adam (amsgrad off): weight decay is L2, added to the
/// gradient. With t the number of updates so far, this one included:
///
///     g  = grad * gradScale + wd w
///     m  = b1 m + (1 - b1) g                      (exp_avg)
///     v  = b2 v + (1 - b2) g g                    (exp_avg_sq)
///     w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
///
/// eps is added after the bias correction of sqrt(v), as PyTorch does.
/// State: `exp_avg`, `exp_avg_sq` (zero at the start).
///
/// The FP32 operations are PyTorch's, in its order, with a fused
/// multiply-add where its vectorised CPU kernels use one (`add_` with
/// alpha, `addcmul_`): on an AVX2/AVX-512 machine the results are PyTorch's
/// bit for bit (OptimizerReleaseTests checks them against torch.optim). The element
/// loop is C (`pst_adam` in CPSKernels/optim.c, vectorised, the same bits
/// in every build); the scalars are computed here.
public struct Adam: Optimizer, Equatable {
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double

    public init(beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }

    public var stateNames: [String] { ["exp_avg", "exp_avg_sq"] }

    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, step: OptimizerStep) {
        var k = AdamScalars(beta1: beta1, beta2: beta2, eps: eps, step: step)
        k.l2 = Float(weightDecay)         // grad.add(param, alpha=weight_decay), fused
        pst_adam(w, state[0], state[1], g, n, &k)
    }
}

/// The per-step constants of Adam and AdamW with PyTorch's roundings: Python
/// computes the bias corrections and the step size in Double, the tensor
/// ops take them (and the betas) as FP32 scalars. Per element (optim.c):
///
///     exp_avg.mul_(b1).add_(g, alpha=1-b1)              m = fma(1-b1, g, m b1)
///     exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)    v = fma((1-b2) g, g, v b2)
///     denom = (exp_avg_sq.sqrt() / c2).add_(eps)        d = sqrt(v) / c2 + eps
///     param.addcdiv_(exp_avg, denom, value=-step_size)  w = w + (-step_size m) / d
extension pst_adam_step {
    init(beta1: Double, beta2: Double, eps: Double, step: OptimizerStep) {
        let t = Double(max(step.t, 1))
        self.init(grad_scale: step.gradScale, l2: 0, decoupled: 0, shrink: 1,
                  b1: Float(beta1), one_minus_b1: Float(1 - beta1), b2: Float(beta2), one_minus_b2: Float(1 - beta2),
                  correction2: Float((1 - pow(beta2, t)).squareRoot()), eps: Float(eps),
                  neg_step_size: Float(-(Double(step.lr) / (1 - pow(beta1, t)))))
    }
}
typealias AdamScalars = pst_adam_step
