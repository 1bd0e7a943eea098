import Foundation

/// RMSprop, as torch.optim.RMSprop (PyTorch 1.13's single-tensor update),
/// operation for operation in FP32:
///
///     g   = grad * gradScale + wd w        grad.add(param, alpha=wd)
///     sq  = alpha sq + (1 - alpha) g g     square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
///     centered:
///       ga  = alpha ga + (1 - alpha) g     grad_avg.mul_(alpha).add_(g, alpha=1 - alpha)
///       avg = sqrt(sq - ga ga) + eps       square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
///     otherwise avg = sqrt(sq) + eps       square_avg.sqrt().add_(eps)
///     momentum > 0:
///       buf = momentum buf + g / avg       buf.mul_(momentum).addcdiv_(g, avg)
///       w  -= lr buf                       param.add_(buf, alpha=-lr)
///     otherwise w -= lr g / avg            param.addcdiv_(g, avg, value=-lr)
///
/// State: `square_avg`, then `momentum_buffer` with momentum, then
/// `grad_avg` when centered (PyTorch's names; zero at the start).
public struct RMSprop: Optimizer, Equatable {
    public var alpha: Double
    public var eps: Double
    public var weightDecay: Double
    public var momentum: Double
    public var centered: Bool

    public init(alpha: Double = 0.99, eps: Double = 1e-8, weightDecay: Double = 0, momentum: Double = 0, centered: Bool = false) {
        self.alpha = alpha; self.eps = eps; self.weightDecay = weightDecay; self.momentum = momentum; self.centered = centered
    }

    public var stateNames: [String] { ["square_avg"] + (momentum > 0 ? ["momentum_buffer"] : []) + (centered ? ["grad_avg"] : []) }

    public func apply(weights w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads g: UnsafePointer<Float>,
                      count n: Int, step: OptimizerStep) {
        let a = Float(alpha), rest = Float(1 - alpha), e = Float(eps), wd = Float(weightDecay), mu = Float(momentum)
        let sq = state[0], buf: UnsafeMutablePointer<Float>? = momentum > 0 ? state[1] : nil
        let ga: UnsafeMutablePointer<Float>? = centered ? state[state.count - 1] : nil
        let scale = step.gradScale, lr = step.lr
        for i in 0..<n {
            var gi = g[i] * scale
            if wd != 0 { gi += wd * w[i] }
            sq[i] = sq[i] * a + rest * gi * gi
            var avg: Float
            if let ga {
                ga[i] = ga[i] * a + gi * rest
                avg = (sq[i] - ga[i] * ga[i]).squareRoot() + e
            } else {
                avg = sq[i].squareRoot() + e
            }
            if let buf {
                buf[i] = buf[i] * mu + gi / avg
                w[i] += buf[i] * -lr
            } else {
                w[i] += gi / avg * -lr
            }
        }
    }
}
