
/// An optimizer as the servers run it: an update of a contiguous range of
/// FP32 master weights from the summed gradient, with per-element state
/// tensors (momentum, Adam's moments, ...) that the server allocates,
/// shards, checkpoints and restores by name, so a new optimizer never
/// touches checkpoint code (docs/architecture.md, "how to add an optimizer").
///
/// Each optimizer follows PyTorch's single-tensor update of the same name
/// (torch.optim, 1.13 and later) operation for operation in FP32, with its
/// scalars (bias corrections, step sizes) computed in Double as Python does.
public protocol Optimizer {
    /// Names of the per-element state tensors, each as large as the weights.
    /// A checkpoint stores state `s` of tensor `t` as `<t>.<s>`, and the
    /// server's `done` record logs `<s>_digest`.
    var stateNames: [String] { get }
    /// Updates `count` weights in place. `grads` is the sum over the workers
    /// and still carries the loss scale: multiply by `step.gradScale` first.
    /// `state[i]` points at state `stateNames[i]` of the same elements.
    func apply(weights: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads: UnsafePointer<Float>,
               count: Int, step: OptimizerStep)
    /// The same update, after copying the weights and state as they were to
    /// `keptWeights` and `keptState` (a server updating ahead of the step's
    /// outcome puts them back after an overflow). By default two copies,
    /// then `apply`; an optimizer may fuse them into its pass.
    func apply(weights: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads: UnsafePointer<Float>,
               count: Int, step: OptimizerStep, keepingIn keptWeights: UnsafeMutablePointer<Float>,
               _ keptState: [UnsafeMutablePointer<Float>])
}

extension Optimizer {
    public func apply(weights: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads: UnsafePointer<Float>,
                      count: Int, step: OptimizerStep, keepingIn keptWeights: UnsafeMutablePointer<Float>,
                      _ keptState: [UnsafeMutablePointer<Float>]) {
        keptWeights.update(from: weights, count: count)
        for (k, s) in zip(keptState, state) { k.update(from: s, count: count) }
        apply(weights: weights, state: state, grads: grads, count: count, step: step)
    }
}

/// What one update needs besides the tensors; the same on every server.
public struct OptimizerStep: Equatable {
    /// The learning rate of this step (the schedule's value, as FP32).
    public var lr: Float
    /// What the summed gradient is multiplied by before use: 1 / loss scale,
    /// times the gradient-clipping factor when clipping is on.
    public var gradScale: Float
    /// How many updates have been applied, this one included (PyTorch's
    /// `state['step']` after its increment): 1 on the first. Skipped
    /// (overflowed) steps do not count, as GradScaler skips optimizer.step.
    public var t: Int

    public init(lr: Float, gradScale: Float, t: Int) {
        self.lr = lr; self.gradScale = gradScale; self.t = t
    }
}
