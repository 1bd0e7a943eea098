/// DeepFM's second-order factorization-machine term (model.interaction =
/// "fm"), added to each row's logit: 0.5 x sum over d of ((sum over fields
/// of v_f,d)^2 - sum over fields of v_f,d^2), where v_f is field f's bag
/// (every table of one dim). It reads the bags where they sit in the
/// model's input (after the dense features) and adds its gradient there.
public struct FMInteraction: Equatable, Sendable {
    /// Where the first bag starts in an input row, how many bags, their dim, the row width.
    public let start: Int, fields: Int, dim: Int, width: Int

    public init(start: Int, fields: Int, dim: Int, width: Int) {
        self.start = start; self.fields = fields; self.dim = dim; self.width = width
    }

    /// logits[r] += the term of input row r.
    public func forward(input: UnsafePointer<Float>, logits: UnsafeMutablePointer<Float>, batch: Int) {
        for r in 0..<batch {
            let v = input + r * width + start
            var acc: Float = 0
            for j in 0..<dim {
                var s: Float = 0, sq: Float = 0
                for f in 0..<fields { let x = v[f * dim + j]; s += x; sq += x * x }
                acc += s * s - sq
            }
            logits[r] += 0.5 * acc
        }
    }

    /// dInput[r, bag f, j] += dlogits[r] x (sum over fields of v_.,j - v_f,j).
    public func backward(input: UnsafePointer<Float>, dlogits: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>, batch: Int) {
        for r in 0..<batch {
            let v = input + r * width + start, g = dInput + r * width + start, d = dlogits[r]
            for j in 0..<dim {
                var s: Float = 0
                for f in 0..<fields { s += v[f * dim + j] }
                for f in 0..<fields { g[f * dim + j] += d * (s - v[f * dim + j]) }
            }
        }
    }
}
