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
        let v = UnsafeMutablePointer<Double>.allocate(capacity: f), pivot = UnsafeMutablePointer<Double>.allocate(capacity: f)
        let s1 = UnsafeMutablePointer<Double>.allocate(capacity: f), s2 = UnsafeMutablePointer<Double>.allocate(capacity: f)
        defer { v.deallocate(); pivot.deallocate(); s1.deallocate(); s2.deallocate() }
        s1.initialize(repeating: 0, count: f); s2.initialize(repeating: 0, count: f)
        x.values(row: rows.lowerBound, into: pivot)
        for j in 0..<f { pivot[j] *= unit }
        var chunk = rows.lowerBound
        for i in rows {
            x.values(row: i, into: v)
            for j in 0..<f {
                let d = v[j] * unit - pivot[j]
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
            // A deviation below FP32's normal range (a near-constant feature) would blow its inputs up: left at 1.
            std[j] = s >= .leastNormalMagnitude && s.isFinite ? s : 1
        }
        return FeatureStatistics(mean: mean, std: std)
    }
}

/// How stored features become the model's inputs, from a mean m and a
/// deviation s (FP32, one for every feature or one per feature) in the
/// model's units:
///
/// - float features: x' = (x - m) / s, computed in FP32 (float32 data) or
///   FP64 then rounded (float64 data), as torchvision's Normalize does;
/// - uint8 features: x' = Float(x) * (1 / (255 s)) + (-m / s), the
///   expression pstrain has always used for IDX pixels (x / 255 as
///   torchvision's ToTensor, then normalised), with the two constants
///   computed in FP32 in that order.
///
/// The same m and s give the same bits wherever they come from (the
/// configuration, a fresh computation, a checkpoint).
public struct Normalization: Equatable {
    public let mean: [Float]
    public let std: [Float]
    public let byteScaled: Bool
    /// uint8 features: the constants of the affine form.
    let scale: [Float], shift: [Float]

    public init(mean: [Float], std: [Float], byteScaled: Bool) {
        precondition(mean.count == std.count && !mean.isEmpty)
        self.mean = mean; self.std = std; self.byteScaled = byteScaled
        scale = byteScaled ? std.map { 1 / (255 * $0) } : []
        shift = byteScaled ? zip(mean, std).map { -$0 / $1 } : []
    }

    public static func == (a: Normalization, b: Normalization) -> Bool {
        a.mean.map { $0.bitPattern } == b.mean.map { $0.bitPattern } && a.std.map { $0.bitPattern } == b.std.map { $0.bitPattern }
            && a.byteScaled == b.byteScaled
    }

    /// x' = (x/u - mean) / std for every feature.
    public static func scalar(mean: Float, std: Float, byteScaled: Bool) -> Normalization {
        Normalization(mean: [mean], std: [std], byteScaled: byteScaled)
    }

    /// x' = x / u (float features unchanged).
    public static func none(byteScaled: Bool) -> Normalization { scalar(mean: 0, std: 1, byteScaled: byteScaled) }

    /// x' = (x/u - mean_j) / std_j per feature.
    public static func standardize(_ s: FeatureStatistics, byteScaled: Bool) -> Normalization {
        Normalization(mean: s.mean, std: s.std, byteScaled: byteScaled)
    }

    /// Fashion-MNIST's published training-set mean 0.2860 and deviation
    /// 0.3530 on bytes: pixels p become (p/255 - 0.2860)/0.3530, the
    /// normalisation pstrain has always used for IDX files.
    public static let fashionMNIST = scalar(mean: 0.2860, std: 0.3530, byteScaled: true)

    public var uniform: Bool { mean.count == 1 }

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
            each(n) { j, m, s in dst[j] = (src.loadUnaligned(fromByteOffset: 4 * j, as: Float.self) - m) / s }
        default:
            each(n) { j, m, s in dst[j] = Float((src.loadUnaligned(fromByteOffset: 8 * j, as: Double.self) - Double(m)) / Double(s)) }
        }
    }

    /// Feature j's value `v` (as a float32 or float64 file stores it) as
    /// the model's input: the arithmetic of `apply`.
    public func value(_ v: Double, feature j: Int, type: NumericType) -> Float {
        let m = mean[uniform ? 0 : j], s = std[uniform ? 0 : j]
        return type == .float32 ? (Float(v) - m) / s : Float((v - Double(m)) / Double(s))
    }

    /// Calls `body(j, mean_j, std_j)` for the n features.
    @inline(__always)
    func each(_ n: Int, _ body: (Int, Float, Float) -> Void) {
        if uniform {
            let m = mean[0], s = std[0]
            for j in 0..<n { body(j, m, s) }
        } else {
            mean.withUnsafeBufferPointer { m in std.withUnsafeBufferPointer { s in
                for j in 0..<n { body(j, m[j], s[j]) }
            } }
        }
    }
}
