import PSSupport

/// An optimizer as the servers run it: an update of a contiguous range of
/// FP32 master weights from the summed gradient, with per-element state
/// tensors (momentum, Adam's moments, ...) that the server allocates,
/// shards, checkpoints and restores by name, so a new optimizer never
/// touches checkpoint code (docs/architecture.md, "how to add an optimizer").
public protocol Optimizer {
    /// Names of the per-element state tensors, each as large as the weights.
    /// A checkpoint stores state `s` of tensor `t` as `<t>.<s>`, and the
    /// server's `done` record logs `<s>_digest`.
    var stateNames: [String] { get }
    /// Updates `count` weights in place at learning rate `lr`. `grads` is the
    /// sum over the workers and still carries the loss scale: multiply by
    /// `gradScale` first. `state[i]` points at state `stateNames[i]` of the
    /// same elements.
    func apply(weights: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grads: UnsafePointer<Float>,
               count: Int, gradScale: Float, lr: Float)
}
