import CBLAS
import CPSKernels
import PSSupport

/// 2-D convolution over [C, H, W] samples with a square kernel (nn.Conv2d
/// with bias, dilation 1, groups 1): weight (out, in, k, k), bias (out).
/// Each sample is lowered with im2col and multiplied with one OpenBLAS
/// sgemm; backward recomputes the lowering rather than keeping it.
public final class Conv2d: LayerKind {
    public static let type = "conv2d"
    public static let keys: [LayerKey] = [
        .integer("channels", 1...65536), .integer("kernel", 1...64),
        .integer("stride", 1...64, default: 1), .integer("padding", 0...64, default: 0),
    ]
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer {
        let (c, h, w) = try Shapes.image(input, type: type)
        let k = entry.int("kernel"), s = entry.int("stride", default: 1), p = entry.int("padding", default: 0)
        let oh = try Shapes.windows(h, kernel: k, stride: s, padding: p, type: type, input: input)
        let ow = try Shapes.windows(w, kernel: k, stride: s, padding: p, type: type, input: input)
        return Conv2d(name: "layers.\(index)", input: (c, h, w), channels: entry.int("channels"), kernel: k, stride: s, padding: p,
                      output: (oh, ow))
    }

    public let kind = "conv2d"
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let parameters: [ParamSpec]
    public let c: Int, h: Int, w: Int, out: Int, k: Int, stride: Int, pad: Int, oh: Int, ow: Int
    /// One sample's lowered input (c*k*k, oh*ow), reused.
    var col: FloatBuffer?

    init(name: String, input: (Int, Int, Int), channels: Int, kernel: Int, stride: Int, padding: Int, output: (Int, Int)) {
        (c, h, w) = input
        out = channels; k = kernel; self.stride = stride; pad = padding
        (oh, ow) = output
        inputShape = [c, h, w]
        outputShape = [out, oh, ow]
        let bound = 1 / Float(c * k * k).squareRoot()
        parameters = [
            ParamSpec(name: name + ".weight", shape: [out, c, k, k], initializer: .uniform(bound: bound)),
            ParamSpec(name: name + ".bias", shape: [out], initializer: .uniform(bound: bound)),
        ]
    }

    public func prepare(capacity: Int) { col = FloatBuffer(count: c * k * k * oh * ow) }

    var patch: Int { c * k * k }
    var pixels: Int { oh * ow }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        if col == nil { prepare(capacity: batch) }
        let col = col!.pointer, wt = params, b = params + out * patch
        let inSize = c * h * w, outSize = out * pixels
        for n in 0..<batch {
            pst_im2col(x + n * inSize, Int32(c), Int32(h), Int32(w), Int32(k), Int32(stride), Int32(pad), Int32(oh), Int32(ow), col)
            let yn = y + n * outSize
            for o in 0..<out { (yn + o * pixels).update(repeating: b[o], count: pixels) }
            // y_n (out, pixels) += W (out, patch) * col (patch, pixels)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(out), Int32(pixels), Int32(patch),
                        1, wt, Int32(patch), col, Int32(pixels), 1, yn, Int32(pixels))
        }
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        if col == nil { prepare(capacity: batch) }
        let col = col!.pointer, dw = grads, db = grads + out * patch
        let inSize = c * h * w, outSize = out * pixels
        dw.update(repeating: 0, count: out * patch)
        db.update(repeating: 0, count: out)
        if let dx { dx.update(repeating: 0, count: batch * inSize) }
        for n in 0..<batch {
            let dyn = dy + n * outSize
            for o in 0..<out {
                var s: Float = 0
                let row = dyn + o * pixels
                for j in 0..<pixels { s += row[j] }
                db[o] += s
            }
            pst_im2col(x + n * inSize, Int32(c), Int32(h), Int32(w), Int32(k), Int32(stride), Int32(pad), Int32(oh), Int32(ow), col)
            // dW (out, patch) += dy_n (out, pixels) * col^T (pixels, patch)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(out), Int32(patch), Int32(pixels),
                        1, dyn, Int32(pixels), col, Int32(pixels), 1, dw, Int32(patch))
            guard let dx else { continue }
            // dcol (patch, pixels) = W^T (patch, out) * dy_n (out, pixels), folded back into dx_n
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(patch), Int32(pixels), Int32(out),
                        1, params, Int32(patch), dyn, Int32(pixels), 0, col, Int32(pixels))
            pst_col2im_add(col, Int32(c), Int32(h), Int32(w), Int32(k), Int32(stride), Int32(pad), Int32(oh), Int32(ow), dx + n * inSize)
        }
    }
}
