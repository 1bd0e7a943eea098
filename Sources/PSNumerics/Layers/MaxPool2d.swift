import CPSKernels

/// Max over each window (nn.MaxPool2d(kernel, stride), no padding). The
/// first maximum of a window (row-major) gets the gradient, as PyTorch's.
public final class MaxPool2d: Pool2d, LayerKind {
    public static let type = "maxpool2d"
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer { try build(MaxPool2d.self, entry, input: input) }
    /// Input index of each output's maximum, from the last forward.
    var argmax: UnsafeMutablePointer<Int32>?
    var room = 0

    public func prepare(capacity: Int) {
        argmax?.deallocate()
        room = capacity * outputShape.reduce(1, *)
        argmax = .allocate(capacity: room)
    }
    deinit { argmax?.deallocate() }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        if room < batch * outputShape.reduce(1, *) { prepare(capacity: batch) }
        pst_maxpool_forward(x, Int32(batch * c), Int32(h), Int32(w), Int32(k), Int32(stride), Int32(oh), Int32(ow), y, argmax!)
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * inputShape.reduce(1, *))
        let am = argmax!, n = batch * outputShape.reduce(1, *)
        for o in 0..<n { dx[Int(am[o])] += dy[o] }
    }
}
