import Foundation

/// y = x sigmoid(x) (nn.SiLU, also called swish); dy/dx = s (1 + x (1 - s))
/// with s = sigmoid(x).
public final class SiLU: Activation, LayerKind {
    public static let type = "silu"

    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = x[i] / (1 + expf(-x[i])) }
    }
    override func derive(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let s = 1 / (1 + expf(-x[i]))
            dx[i] = dy[i] * s * (1 + x[i] * (1 - s))
        }
    }
}
