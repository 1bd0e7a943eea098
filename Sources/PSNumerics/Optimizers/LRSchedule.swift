import Foundation

/// The learning rate of each step: an optional linear warmup, then a decay
/// over the steps that are left. With W warmup steps, a run of T steps and
/// base rate lr, step k (0-based) gets
///
///     k <  W:  lr (k + 1) / W          (lr / W at step 0, lr at step W - 1)
///     k >= W:  decay(s = k - W, n = max(T - W, 1))
///
/// where decay is one of
///
///     constant  lr
///     cosine    lr 0.5 (1 + cos(pi s / n))          (lr at s = 0, towards 0 at the end)
///     step      lr gamma^floor(s / every)
///     linear    lr (1 - s / n)                       (towards 0 at the end)
///
/// PyTorch equivalents (stepped once per optimizer step): the warmup is
/// LinearLR(start_factor=1/W, end_factor=1, total_iters=W-1), followed
/// (SequentialLR, milestone W) by ConstantLR(factor=1, total_iters=0),
/// CosineAnnealingLR(T_max=n, eta_min=0), StepLR(step_size=every, gamma) or
/// LinearLR(start_factor=1, end_factor=0, total_iters=n), each in its closed
/// form. Without warmup, cosine is bit for bit the schedule pstrain always had.
public struct LRSchedule: Equatable {
    public enum Decay: Equatable {
        case constant
        case cosine
        /// Multiply by `gamma` every `every` steps (every >= 1).
        case step(every: Int, gamma: Double)
        case linear
    }

    public var lr: Double
    public var decay: Decay
    public var warmupSteps: Int

    public init(lr: Double, decay: Decay, warmupSteps: Int = 0) {
        self.lr = lr; self.decay = decay; self.warmupSteps = warmupSteps
    }

    /// The learning rate of step `step` (0-based) of a run of `total` steps.
    public func rate(step: Int, total: Int) -> Double {
        let w = max(warmupSteps, 0)
        if step < w { return lr * Double(step + 1) / Double(w) }
        return decayed(step - w, over: max(total - w, 1))
    }

    /// The decay alone, `s` steps after the warmup, of `n`.
    func decayed(_ s: Int, over n: Int) -> Double {
        switch decay {
        case .constant: return lr
        case .cosine: return lr * 0.5 * (1 + cos(Double.pi * Double(s) / Double(n)))
        case .step(let every, let gamma): return lr * pow(gamma, Double(s / max(every, 1)))
        case .linear: return lr * (1 - Double(s) / Double(n))
        }
    }
}
