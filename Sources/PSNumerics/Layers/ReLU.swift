import CPSKernels

/// y = max(x, 0) (nn.ReLU).
public final class ReLU: Activation, LayerKind {
    public static let type = "relu"
    public convenience init(size: Int) { self.init(shape: [size]) }

    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = max(x[i], 0) }
    }
    override func derive(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        pst_relu_backward(y, dy, dx, n)
    }
}
