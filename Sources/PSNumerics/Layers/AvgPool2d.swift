
/// Mean over each window (nn.AvgPool2d(kernel, stride), no padding).
public final class AvgPool2d: Pool2d, LayerKind {
    public static let type = "avgpool2d"
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer { try build(AvgPool2d.self, entry, input: input) }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        let k = k, w = w, inv = 1 / Float(k * k)
        eachWindow(batch: batch) { _, o, start in
            var s: Float = 0
            for i in 0..<k { for j in 0..<k { s += x[start + i * w + j] } }
            y[o] = s * inv
        }
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * inputShape.reduce(1, *))
        let k = k, w = w, inv = 1 / Float(k * k)
        eachWindow(batch: batch) { _, o, start in
            let g = dy[o] * inv
            for i in 0..<k { for j in 0..<k { dx[start + i * w + j] += g } }
        }
    }
}
