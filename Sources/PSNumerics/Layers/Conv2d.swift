import CBLAS
import CPSKernels
import PSSupport

/// 2-D convolution over [C, H, W] samples with a square kernel (nn.Conv2d
/// with bias, dilation 1, groups 1): weight (out, in, k, k), bias (out).
/// Samples are lowered with im2col (one at a time by default, `group`) and
/// multiplied with one OpenBLAS sgemm per group; backward recomputes the
/// lowering rather than keeping it.
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
    /// The lowered input of a group of samples side by side (patch, group x
    /// pixels), and the output gradient of the group in that layout.
    var col: FloatBuffer?
    var groupGrad: FloatBuffer?
    /// Samples lowered together into one sgemm. One: `pstrain-bench layers`
    /// measured larger groups (2 to 26 samples, up to 16 MB of lowered
    /// input) no faster on the tutorial CNN, and the per-sample matrices
    /// stay in cache. Public for that comparison.
    public var group = 1

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

    public func prepare(capacity: Int) {
        reserve(group: min(group, Conv2d.largestGroup(patch * pixels, capacity)))
    }

    /// Buffers for groups of `g` samples.
    func reserve(group g: Int) {
        if (col?.count ?? 0) < patch * pixels * g { col = FloatBuffer(count: patch * pixels * g) }
        if (groupGrad?.count ?? 0) < out * pixels * g { groupGrad = FloatBuffer(count: out * pixels * g) }
    }

    /// The most samples a group may hold: about 16 MB of lowered input.
    public static func largestGroup(_ perSample: Int, _ capacity: Int) -> Int { max(1, min(capacity, (4 << 20) / max(perSample, 1))) }

    var patch: Int { c * k * k }
    var pixels: Int { oh * ow }

    /// Lowers samples [n0, n0 + g) of x into `col` (row stride g x pixels).
    func lower(_ x: UnsafePointer<Float>, _ n0: Int, _ g: Int) {
        let inSize = c * h * w, ld = g * pixels
        for j in 0..<g {
            pst_im2col(x + (n0 + j) * inSize, Int32(c), Int32(h), Int32(w), Int32(k), Int32(stride), Int32(pad), Int32(oh), Int32(ow),
                       ld, col!.pointer + j * pixels)
        }
    }

    /// Each group of samples is lowered side by side and multiplied by the
    /// weights in one sgemm: (out, patch) x (patch, g x pixels).
    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        let b = params + out * patch, outSize = out * pixels, P = pixels
        var n0 = 0
        while n0 < batch {
            let g = min(group, Conv2d.largestGroup(patch * P, batch), batch - n0), ld = g * P
            reserve(group: g)
            lower(x, n0, g)
            let yg = groupGrad!.pointer
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(out), Int32(ld), Int32(patch),
                        1, params, Int32(patch), col!.pointer, Int32(ld), 0, yg, Int32(ld))
            // (out, g x pixels) -> g samples of (out, pixels), plus the bias.
            for j in 0..<g {
                let yn = y + (n0 + j) * outSize
                for o in 0..<out {
                    let src = yg + o * ld + j * P, dst = yn + o * P, bo = b[o]
                    for q in 0..<P { dst[q] = src[q] + bo }
                }
            }
            n0 += g
        }
    }

    /// Per group: the output gradient gathered into (out, g x pixels); the
    /// weight gradient += it x col^T in one sgemm; the input gradient is
    /// W^T x it, folded back into each sample's image (col2im).
    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        let dw = grads, db = grads + out * patch
        let inSize = c * h * w, outSize = out * pixels, P = pixels
        dw.update(repeating: 0, count: out * patch)
        db.update(repeating: 0, count: out)
        if let dx { dx.update(repeating: 0, count: batch * inSize) }
        var n0 = 0
        while n0 < batch {
            let g = min(group, Conv2d.largestGroup(patch * P, batch), batch - n0), ld = g * P
            reserve(group: g)
            let dyg = groupGrad!.pointer
            for j in 0..<g {
                let dyn = dy + (n0 + j) * outSize
                for o in 0..<out {
                    let src = dyn + o * P, dst = dyg + o * ld + j * P
                    var s: Float = 0
                    for q in 0..<P { dst[q] = src[q]; s += src[q] }
                    db[o] += s
                }
            }
            lower(x, n0, g)
            // dW (out, patch) += dy_g (out, g x pixels) * col^T (g x pixels, patch)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(out), Int32(patch), Int32(ld),
                        1, dyg, Int32(ld), col!.pointer, Int32(ld), 1, dw, Int32(patch))
            if let dx {
                // dcol (patch, g x pixels) = W^T (patch, out) * dy_g (out, g x pixels), folded back into dx
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(patch), Int32(ld), Int32(out),
                            1, params, Int32(patch), dyg, Int32(ld), 0, col!.pointer, Int32(ld))
                for j in 0..<g {
                    pst_col2im_add(col!.pointer + j * P, Int32(c), Int32(h), Int32(w), Int32(k), Int32(stride), Int32(pad), Int32(oh), Int32(ow),
                                   ld, dx + (n0 + j) * inSize)
                }
            }
            n0 += g
        }
    }
}
