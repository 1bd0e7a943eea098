import Foundation

/// The optimizer of the embedding tables (train.sparse_optimizer): it
/// updates only the rows a step touched, and only their state moves (a
/// row's state is created with the row). Formulas are PyTorch's for sparse
/// gradients: torch.optim.SGD, Adagrad (eps 1e-10, no decay) and
/// SparseAdam (the "lazy" Adam: moments of untouched rows stay as they
/// are; bias correction by the global update count t).
public enum SparseOptimizer: String, CaseIterable, Sendable {
    case sgd
    case adagrad
    case lazyAdam = "lazy_adam"

    /// Per-row state, each one value per element, with their checkpoint names.
    public var stateNames: [String] {
        switch self {
        case .sgd: return []
        case .adagrad: return ["sum"]
        case .lazyAdam: return ["exp_avg", "exp_avg_sq"]
        }
    }

    public struct Hyper: Equatable, Sendable {
        public var beta1: Double = 0.9
        public var beta2: Double = 0.999
        /// 0: PyTorch's default for the optimizer (1e-10 Adagrad, 1e-8 SparseAdam).
        public var eps: Double = 0
        public init() {}
    }

    /// Updates one row of `n` elements: w from the summed gradient g (still
    /// multiplied by `gradScale`'s inverse: g x gradScale is the gradient),
    /// with its state (in `stateNames` order).
    public func apply(_ w: UnsafeMutablePointer<Float>, state: [UnsafeMutablePointer<Float>], grad g: UnsafePointer<Float>, count n: Int,
                      lr: Float, gradScale: Float, t: Int, hyper h: Hyper) {
        apply(w, state.first, state.count > 1 ? state[1] : nil, grad: g, count: n, lr: lr, gradScale: gradScale, t: t, hyper: h)
    }

    /// The same with the (up to two) state rows as pointers: no array per row.
    @inline(__always)
    public func apply(_ w: UnsafeMutablePointer<Float>, _ s0: UnsafeMutablePointer<Float>?, _ s1: UnsafeMutablePointer<Float>?,
                      grad g: UnsafePointer<Float>, count n: Int, lr: Float, gradScale: Float, t: Int, hyper h: Hyper) {
        switch self {
        case .sgd:
            for j in 0..<n { w[j] -= lr * (g[j] * gradScale) }
        case .adagrad:
            let s = s0!, eps = Float(h.eps > 0 ? h.eps : 1e-10)
            for j in 0..<n {
                let gj = g[j] * gradScale
                s[j] += gj * gj
                w[j] -= lr * (gj / (s[j].squareRoot() + eps))
            }
        case .lazyAdam:
            let m = s0!, v = s1!, eps = Float(h.eps > 0 ? h.eps : 1e-8)
            let b1 = Float(h.beta1), b2 = Float(h.beta2)
            let bc1 = 1 - Foundation.pow(h.beta1, Double(t)), bc2 = 1 - Foundation.pow(h.beta2, Double(t))
            let stepSize = Float(Double(lr) * bc2.squareRoot() / bc1)
            for j in 0..<n {
                let gj = g[j] * gradScale
                m[j] += (gj - m[j]) * (1 - b1)
                v[j] += (gj * gj - v[j]) * (1 - b2)
                w[j] -= stepSize * (m[j] / (v[j].squareRoot() + eps))
            }
        }
    }
}
