import Foundation

/// Per-feature mean and standard deviation of a training set (FP32, one
/// per feature), in the units the model sees before normalisation: x for
/// float features, x / 255 for byte features. A feature whose deviation is
/// zero (constant over the set) gets 1, so it is only shifted.
public struct FeatureStatistics: Equatable {
    public let mean: [Float]
    public let std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count)
        self.mean = mean; self.std = std
    }

    /// Computed over `rows` of `samples` in file order, in FP64 (sums of
    /// the differences from the first row's values, so that a large offset
    /// does not cancel the variance away), population deviation (numpy's
    /// `std()`, scikit-learn's StandardScaler). Deterministic: every worker
    /// computes the same bits. Pages of a mapped file are given back as the
    /// pass goes, so it does not leave the whole file resident.
    public static func compute(_ samples: Samples, rows: Range<Int>) -> FeatureStatistics {
        let f = samples.features, x = samples.x
        let unit = samples.byteScaled ? 1.0 / 255 : 1.0
        let first = rows.lowerBound
        var pivot = [Double](repeating: 0, count: f)
        for j in 0..<f { pivot[j] = x.value(row: first, j) * unit }
        var s1 = [Double](repeating: 0, count: f), s2 = [Double](repeating: 0, count: f)
        var chunk = first
        for i in rows {
            for j in 0..<f {
                let d = x.value(row: i, j) * unit - pivot[j]
                s1[j] += d; s2[j] += d * d
            }
            if i - chunk == 4095 { x.release(rows: chunk..<(i + 1)); chunk = i + 1 }
        }
        x.release(rows: chunk..<rows.upperBound)
        let n = Double(max(rows.count, 1))
        var mean = [Float](repeating: 0, count: f), std = [Float](repeating: 1, count: f)
        for j in 0..<f {
            mean[j] = Float(pivot[j] + s1[j] / n)
            let s = Float(max(0, (s2[j] - s1[j] * s1[j] / n) / n).squareRoot())
            std[j] = s > 0 && s.isFinite ? s : 1
        }
        return FeatureStatistics(mean: mean, std: std)
    }
}

/// How stored features become the model's inputs: x' = Float(x) * scale +
/// shift, with one (scale, shift) for every feature or one per feature.
/// From a mean m and deviation s (FP32) in the model's units, and u = 255
/// for byte features (1 otherwise): scale = 1 / (u * s), shift = -m / s,
/// computed in FP32 in that order, so that the same m and s give the same
/// bits wherever they come from (the configuration, a fresh computation, a
/// checkpoint).
public struct Normalization: Equatable {
    public let scale: [Float]
    public let shift: [Float]

    /// x' = (x/u - mean) / std for every feature.
    public static func scalar(mean: Float, std: Float, byteScaled: Bool) -> Normalization {
        let u: Float = byteScaled ? 255 : 1
        return Normalization(scale: [1 / (u * std)], shift: [-mean / std])
    }

    /// x' = x / u.
    public static func none(byteScaled: Bool) -> Normalization { scalar(mean: 0, std: 1, byteScaled: byteScaled) }

    /// x' = (x/u - mean_j) / std_j per feature.
    public static func standardize(_ s: FeatureStatistics, byteScaled: Bool) -> Normalization {
        let u: Float = byteScaled ? 255 : 1
        return Normalization(scale: s.std.map { 1 / (u * $0) }, shift: zip(s.mean, s.std).map { -$0 / $1 })
    }

    /// Fashion-MNIST's published training-set mean 0.2860 and deviation
    /// 0.3530 on bytes: pixels p become (p/255 - 0.2860)/0.3530, the
    /// normalisation pstrain has always used for IDX files.
    public static let fashionMNIST = scalar(mean: 0.2860, std: 0.3530, byteScaled: true)

    public var uniform: Bool { scale.count == 1 }

    /// Writes row `i` of `x`, normalised, into `dst` (`x.rowElements` Floats).
    func apply(_ x: ArrayView, row i: Int, into dst: UnsafeMutablePointer<Float>) {
        let src = x.row(i), n = x.rowElements
        switch x.type {
        case .uint8:
            let b = src.assumingMemoryBound(to: UInt8.self)
            if uniform {
                let a = scale[0], c = shift[0]
                for j in 0..<n { dst[j] = Float(b[j]) * a + c }
            } else {
                scale.withUnsafeBufferPointer { a in shift.withUnsafeBufferPointer { c in
                    for j in 0..<n { dst[j] = Float(b[j]) * a[j] + c[j] }
                } }
            }
        case .float32:
            dst.withMemoryRebound(to: UInt8.self, capacity: 4 * n) { $0.update(from: src.assumingMemoryBound(to: UInt8.self), count: 4 * n) }
            affine(dst, n)
        default:
            for j in 0..<n { dst[j] = Float(src.loadUnaligned(fromByteOffset: 8 * j, as: Double.self)) }
            affine(dst, n)
        }
    }

    /// dst[j] = dst[j] * scale + shift, in place.
    func affine(_ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        if uniform {
            let a = scale[0], c = shift[0]
            for j in 0..<n { dst[j] = dst[j] * a + c }
        } else {
            scale.withUnsafeBufferPointer { a in shift.withUnsafeBufferPointer { c in
                for j in 0..<n { dst[j] = dst[j] * a[j] + c[j] }
            } }
        }
    }
}
