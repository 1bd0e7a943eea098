import CBLAS
import CPSKernels

/// 2-D convolution over [C, H, W] samples with a square kernel (nn.Conv2d
/// with bias, dilation 1, groups 1): weight (out, in, k, k), bias (out).
/// Two algorithms, the same function to rounding:
/// - `winograd` (stride 1, 3x3 or 5x5 kernels, at least 8 input channels):
///   F(2x2, 3x3) or F(4x4, 5x5) over chunks of samples
///   (CPSKernels/winograd.c), alpha^2 sgemms per chunk; per output, 16/36
///   of im2col's multiplications for 3x3 and 64/400 for 5x5 (more where
///   the output does not fill the last tiles).
/// - `im2col` (every other layer): samples are lowered with im2col (one at a
///   time by default, `group`) and multiplied with one OpenBLAS sgemm per
///   group.
/// Backward recomputes the lowering or the input transform rather than
/// keeping it.
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
    public enum Algorithm: String { case im2col, winograd }
    /// Public so that `pstrain-bench layers` and the tests can compare both.
    public var algorithm: Algorithm
    /// Samples per Winograd chunk (a multiple of 8): `pstrain-bench layers`
    /// measured 8, 16 and 32 on the tutorial CNN's second layer.
    public var chunk = 8
    /// Winograd's output tile (m of F(m x m, k x k)): 4 for 5x5 kernels,
    /// 2 for 3x3 (`pstrain-bench layers` compares 2 and 4 on 5x5).
    public var tile: Int
    /// Winograd's transformed weights, their gradient, a chunk's transformed
    /// input (or its gradient), its products (or the output's transform), and
    /// the padded, sample-minor copy of a chunk the transforms read.
    var u: FloatBuffer?, du: FloatBuffer?, v: FloatBuffer?, m: FloatBuffer?, scratch: FloatBuffer?

    init(name: String, input: (Int, Int, Int), channels: Int, kernel: Int, stride: Int, padding: Int, output: (Int, Int)) {
        (c, h, w) = input
        out = channels; k = kernel; self.stride = stride; pad = padding
        (oh, ow) = output
        inputShape = [c, h, w]
        outputShape = [out, oh, ow]
        algorithm = pst_wino_supported(Int32(kernel), Int32(stride)) != 0 && c >= 8 ? .winograd : .im2col
        tile = kernel == 5 ? 4 : 2
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
        if algorithm == .winograd { return winogradForward(x: x, y: y, batch: batch, params: params) }
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
        if algorithm == .winograd { return winogradBackward(x: x, dy: dy, dx: dx, batch: batch, params: params, grads: grads) }
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

    /// Multiply-adds of a forward pass over `batch` samples as this layer
    /// does them: im2col's sgemm, or Winograd's sgemms (its transforms, a
    /// few additions per element, not counted). Backward does twice as many
    /// with the input gradient, as many without.
    public func forwardMultiplyAdds(batch: Int) -> Double {
        guard algorithm == .winograd else { return Double(out * patch * pixels * batch) }
        let s = wino, tiles = Double(s.th * s.tw)
        let lanes = chunks(batch).reduce(0) { $0 + $1.2 }
        return Double(alpha * alpha * out * c) * tiles * Double(lanes)
    }

    // MARK: Winograd

    var wino: pst_wino {
        precondition(pst_wino_tile(Int32(k), Int32(tile)) != 0, "no Winograd F(\(tile), \(k))")
        return pst_wino(c: Int32(c), h: Int32(h), w: Int32(w), out: Int32(out), k: Int32(k), pad: Int32(pad), oh: Int32(oh), ow: Int32(ow),
                        m: Int32(tile), th: Int32((oh + tile - 1) / tile), tw: Int32((ow + tile - 1) / tile))
    }

    /// Transformed tiles are alpha x alpha, alpha = m + k - 1.
    var alpha: Int { tile + k - 1 }

    /// Buffers for chunks of `g` samples.
    func reserveWinograd(_ g: Int) {
        let s = wino, a2 = alpha * alpha, tiles = Int(s.th * s.tw)
        let ph = tile * Int(s.th) + k - 1, pw = tile * Int(s.tw) + k - 1
        func ensure(_ b: inout FloatBuffer?, _ n: Int) { if (b?.count ?? 0) < n { b = FloatBuffer(count: n) } }
        ensure(&u, a2 * out * c)
        ensure(&du, a2 * out * c)
        ensure(&v, a2 * pst_wino_plane(c * tiles * g))
        ensure(&m, a2 * pst_wino_plane(out * tiles * g))
        ensure(&scratch, max(c * ph * pw, out * tile * tile * tiles) * g)
    }

    /// Samples a chunk holds: `chunk` as a multiple of 8.
    var chunkSize: Int { max(8, chunk / 8 * 8) }

    /// The chunks of a batch: (first sample, samples, lanes: samples rounded up to 8).
    func chunks(_ batch: Int) -> [(Int, Int, Int)] {
        let size = chunkSize
        return Swift.stride(from: 0, to: batch, by: size).map { n0 in
            let n = min(size, batch - n0)
            return (n0, n, (n + 7) / 8 * 8)
        }
    }

    func winogradForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>) {
        var s = wino
        let a2 = alpha * alpha, tiles = Int(s.th * s.tw), inSize = c * h * w, outSize = out * pixels
        reserveWinograd(min(chunkSize, (batch + 7) / 8 * 8))
        let u = u!.pointer, v = v!.pointer, m = m!.pointer
        pst_wino_weights(&s, params, u)
        for (n0, n, g) in chunks(batch) {
            let T = tiles * g, vp = pst_wino_plane(c * T), mp = pst_wino_plane(out * T)
            pst_wino_input(&s, x + n0 * inSize, Int32(n), Int32(g), scratch!.pointer, v)
            for e in 0..<a2 {
                // M_e (out, T) = U_e (out, c) x V_e (c, T)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(out), Int32(T), Int32(c),
                            1, u + e * out * c, Int32(c), v + e * vp, Int32(T), 0, m + e * mp, Int32(T))
            }
            pst_wino_output(&s, m, params + out * patch, Int32(n), Int32(g), scratch!.pointer, y + n0 * outSize)
        }
    }

    func winogradBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, batch: Int,
                          params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        var s = wino
        let a2 = alpha * alpha, tiles = Int(s.th * s.tw), inSize = c * h * w, outSize = out * pixels
        let db = grads + out * patch
        db.update(repeating: 0, count: out)
        reserveWinograd(min(chunkSize, (batch + 7) / 8 * 8))
        let u = u!.pointer, du = du!.pointer, v = v!.pointer, m = m!.pointer
        pst_wino_weights(&s, params, u)
        for (index, (n0, n, g)) in chunks(batch).enumerated() {
            let T = tiles * g, vp = pst_wino_plane(c * T), mp = pst_wino_plane(out * T)
            pst_wino_input(&s, x + n0 * inSize, Int32(n), Int32(g), scratch!.pointer, v)
            pst_wino_output_grad(&s, dy + n0 * outSize, Int32(n), Int32(g), scratch!.pointer, m, db)
            for e in 0..<a2 {
                // dU_e (out, c) += M'_e (out, T) x V_e^T (T, c)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(out), Int32(c), Int32(T),
                            1, m + e * mp, Int32(T), v + e * vp, Int32(T), index == 0 ? 0 : 1, du + e * out * c, Int32(c))
            }
            if let dx {
                for e in 0..<a2 {
                    // dV_e (c, T) = U_e^T (c, out) x M'_e (out, T), into V's place
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(c), Int32(T), Int32(out),
                                1, u + e * out * c, Int32(c), m + e * mp, Int32(T), 0, v + e * vp, Int32(T))
                }
                pst_wino_input_grad(&s, v, Int32(n), Int32(g), scratch!.pointer, dx + n0 * inSize)
            }
        }
        if batch == 0 { grads.update(repeating: 0, count: out * patch) } else { pst_wino_weight_grad(&s, du, grads) }
    }
}
