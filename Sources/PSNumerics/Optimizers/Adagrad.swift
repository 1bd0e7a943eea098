import CPSKernels

/// Adagrad, as torch.optim.Adagrad with lr_decay 0 and
/// initial_accumulator_value 0; weight decay is L2, added to the gradient:
///
///     g    = grad * gradScale + wd w      grad.add(param, alpha=wd), fused
///     sum += g g                          state_sum.addcmul_(g, g, value=1), fused
///     w   -= lr g / (sqrt(sum) + eps)     param.addcdiv_(g, sum.sqrt().add_(eps), value=-lr)
///
/// PyTorch's default eps for Adagrad is 1e-10 (Adam's is 1e-8). The element
/// loop is C (`pst_adagrad` in CPSKernels/optim.c), with PyTorch's FP32
/// operations and fused multiply-adds as in Adam.swift.
/// State: `sum` (zero at the start).
public struct Adagrad: Optimizer, Equatable {
    public static let defaultEps = 1e-10
    public var eps: Double
    public var weightDecay: Double

    public init(eps: Double = Adagrad.defaultEps, weightDecay: Double = 0) {
        self.eps = eps; self.weightDecay = weightDecay
    }

    public var stateNames: [String] { ["sum"] }

    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, step: OptimizerStep) {
        pst_adagrad(w, state[0], g, n, step.gradScale, Float(weightDecay), Float(eps), -step.lr)
    }
}
