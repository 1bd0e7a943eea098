import Foundation
import PSNumerics

/// The features and labels as a format found them, before they are checked:
/// each array with the file that holds it and its name there ("array 'x'",
/// "tensor 'y'", "images").
public struct FoundArrays {
    public struct Named {
        public let view: ArrayView
        public let file: String
        public let name: String
        public init(view: ArrayView, file: String, name: String) { self.view = view; self.file = file; self.name = name }
    }
    public let x: Named
    public let y: Named

    public init(x: Named, y: Named) { self.x = x; self.y = y }

    /// Checks the arrays and reads the labels: x has a sample axis and at
    /// least one feature of a feature type, y one integer label per sample,
    /// each from 0 to 255. Errors name the file, the array and the row.
    public func checked() throws -> Samples {
        let xv = x.view, yv = y.view
        func bad(_ a: Named, _ why: String) -> DataError { .malformed(file: a.file, problem: "\(a.name) \(why)") }
        guard xv.shape.count >= 2 else {
            throw bad(x, "has shape \(xv.shape): it needs the samples on its first axis and each sample's features after it (for example [n, 784] or [n, 1, 28, 28])")
        }
        guard xv.rows > 0 else { throw bad(x, "holds no samples (shape \(xv.shape))") }
        guard xv.rowElements > 0 else { throw bad(x, "has samples of no features (shape \(xv.shape))") }
        guard NumericType.features.contains(xv.type) else {
            throw bad(x, "has dtype \(xv.type.rawValue); features must be uint8, float32 or float64")
        }
        guard yv.type.isInteger else {
            throw bad(y, "has dtype \(yv.type.rawValue); labels must be integers (uint8, int32 or int64: the class of each sample)")
        }
        guard yv.shape.count == 1 || (yv.shape.count == 2 && yv.shape[1] == 1) else {
            throw bad(y, "has shape \(yv.shape); labels must be one integer per sample, shape [n]")
        }
        guard yv.rows == xv.rows else {
            if x.file == y.file {
                throw DataError.mismatch("\(x.file): \(x.name) holds \(xv.rows) samples but \(y.name) holds \(yv.rows) labels")
            }
            throw DataError.mismatch("\(x.file) holds \(xv.rows) \(x.name) but \(y.file) holds \(yv.rows) \(y.name)")
        }
        var labels = [UInt8](repeating: 0, count: yv.rows)
        for i in 0..<yv.rows {
            guard let v = yv.integer(i), v >= 0, v < 256 else {
                let shown = yv.integer(i).map(String.init) ?? String(UInt64(littleEndian: (yv.base + 8 * i).loadUnaligned(as: UInt64.self)))
                throw bad(y, "row \(i): label \(shown) is out of range; labels are class numbers from 0 to 255")
            }
            labels[i] = UInt8(v)
        }
        return Samples(x: xv, labels: labels, source: x.file, labelsSource: y.file)
    }
}

extension Samples {
    /// Refuses a NaN or infinite feature (or one beyond FP32's range),
    /// naming the row and the feature; returns each feature's smallest and
    /// largest value (nil for uint8 features, which cannot be either).
    /// A pass over every float feature; a mapped file's pages are given back
    /// as it goes.
    public func checkFinite(name: String) throws -> FeatureRange? {
        guard x.type != .uint8 else { return nil }
        let f = features
        let v = UnsafeMutablePointer<Double>.allocate(capacity: f)
        defer { v.deallocate() }
        var range = FeatureRange(lo: Array(repeating: .infinity, count: f), hi: Array(repeating: -.infinity, count: f))
        var chunk = 0
        for i in 0..<count {
            x.values(row: i, into: v)
            // In the precision the model computes in: a float64 feature
            // beyond FP32's range is infinite once it is a model input.
            var finite = true
            for j in 0..<f { finite = finite && Float(v[j]).isFinite }
            if !finite, let j = (0..<f).first(where: { !Float(v[$0]).isFinite }) {
                let what = v[j].isNaN ? "NaN" : v[j].isFinite ? "\(v[j]), beyond FP32's range (the model computes in FP32)," : "\(v[j])"
                throw DataError.malformed(file: source, problem: "\(name) row \(i), feature \(j): \(what) in the features; "
                                          + "every feature must be a finite number")
            }
            range.lo.withUnsafeMutableBufferPointer { lo in range.hi.withUnsafeMutableBufferPointer { hi in
                for j in 0..<f { lo[j] = min(lo[j], v[j]); hi[j] = max(hi[j], v[j]) }
            } }
            if i - chunk == 4095 { x.release(rows: chunk..<(i + 1)); chunk = i + 1 }
        }
        x.release(rows: chunk..<count)
        return range
    }

    /// Refuses a label that is not one of `classes` classes; `why` says where the number comes from.
    public func checkLabels(below classes: Int, name: String, why: String) throws {
        if let i = labels.firstIndex(where: { Int($0) >= classes }) {
            throw DataError.malformed(file: labelsSource, problem: "\(name) row \(i): label \(labels[i]) is not a class in 0..<\(classes) (\(why))")
        }
    }
}

/// Each feature's smallest and largest value in a file (checkFinite).
public struct FeatureRange {
    public var lo: [Double]
    public var hi: [Double]

    /// Refuses a normalisation that takes a feature beyond FP32's range
    /// (a tiny data.std or a near-constant feature's deviation): the inputs
    /// would be infinite and every step skipped. Normalisation is monotonic
    /// per feature, so the extremes decide.
    public func check(_ norm: Normalization, type: NumericType, source: String, name: String) throws {
        for j in lo.indices {
            for v in [lo[j], hi[j]] {
                let y = norm.value(v, feature: j, type: type)
                guard y.isFinite else {
                    throw DataError.malformed(file: source, problem: "\(name) feature \(j): the value \(v) normalised is \(y) in FP32 "
                        + "(mean \(norm.mean[norm.uniform ? 0 : j]), deviation \(norm.std[norm.uniform ? 0 : j])); use a larger data.std or another data.normalize")
                }
            }
        }
    }
}
