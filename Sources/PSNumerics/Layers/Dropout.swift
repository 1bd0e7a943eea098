
/// Zeroes each element with probability p in training and scales the rest
/// by 1/(1-p) (nn.Dropout(p)); the identity in evaluation. The mask of an
/// element comes from the counter RNG of (seed, layer, step, global row,
/// element): the same at any world size, microbatch cut or restart, so runs
/// stay bit-reproducible and resume exactly.
public final class Dropout: LayerKind {
    public static let type = "dropout"
    public static let keys: [LayerKey] = [.number("p", 0...0.99, default: 0.5)]
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer {
        Dropout(index: index, shape: input, p: Float(entry.number("p", default: 0.5)))
    }
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public let parameters: [ParamSpec] = []
    let index: Int
    let p: Float
    /// 0 or 1/(1-p) per element of the last training forward.
    var mask: FloatBuffer?

    init(index: Int, shape: [Int], p: Float) { self.index = index; inputShape = shape; self.p = p }

    public func prepare(capacity: Int) { mask = FloatBuffer(count: capacity * inputSize) }

    /// Fills the mask of `batch` rows; a row's values depend on its global row alone.
    func fillMask(batch: Int, context c: LayerContext) {
        if mask == nil || mask!.count < batch * inputSize { prepare(capacity: batch) }
        let m = mask!.pointer, n = inputSize, keep = 1 / (1 - p), p = p
        let stream = 0xD80_0000 &+ UInt64(index)
        let rows = UInt64(max(c.globalBatch, c.firstRow + batch))
        for r in 0..<batch {
            let base = (UInt64(c.step) &* rows &+ UInt64(c.firstRow + r)) &* UInt64(n)
            for j in 0..<n {
                m[r * n + j] = CounterRNG.uniform(seed: c.seed, stream: stream, index: base &+ UInt64(j)) < p ? 0 : keep
            }
        }
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        let n = batch * inputSize
        guard context.training && p > 0 else { y.update(from: x, count: n); return }
        fillMask(batch: batch, context: context)
        let m = mask!.pointer
        for i in 0..<n { y[i] = x[i] * m[i] }
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        guard let dx else { return }
        let n = batch * inputSize
        guard context.training && p > 0 else { dx.update(from: dy, count: n); return }
        let m = mask!.pointer
        for i in 0..<n { dx[i] = dy[i] * m[i] }
    }
}
