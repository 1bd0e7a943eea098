import Foundation
import PSNumerics

extension DataSplit {
    /// Opens the training and test files `r` names and checks them
    /// together: the same sample shape and feature type, labels below the
    /// number of classes, finite features. Holds out the validation rows
    /// from the end of the training file and builds the normalisation (for
    /// "standardize" from the training rows alone, unless `r.statistics`
    /// brings them from a checkpoint).
    public static func open(_ r: DataRequest) throws -> DataSplit {
        let train = try samples(r, r.trainFile, what: r.train.isEmpty ? nil : "data.train")
        let test = try samples(r, r.testFile, what: r.test.isEmpty ? nil : "data.test")
        guard test.shape == train.shape, test.x.type == train.x.type else {
            throw DataError.mismatch("the training set \(train.source) has samples of shape \(train.shape) and dtype \(train.x.type.rawValue) "
                                     + "but the test set \(test.source) has \(test.shape) and \(test.x.type.rawValue); they must be the same")
        }
        if let a = train.columns, let b = test.columns, a != b {
            let k = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
            throw DataError.mismatch("the test set \(test.source) has other feature columns than the training set \(train.source): "
                                     + "feature \(k) is '\(k < b.count ? b[k] : "")' there, '\(k < a.count ? a[k] : "")' in the training set")
        }
        let classes = try classCount(train, r)
        try test.checkLabels(below: classes, name: labelsName(r),
                             why: r.classes > 0 ? "data.classes = \(classes)" : "the training set's largest label is \(classes - 1); set data.classes if the test set has more classes")
        let trainRange = try train.checkFinite(name: featuresName(r))
        let testRange = try test.checkFinite(name: featuresName(r))
        let held = try heldOut(train.count, r.validation, file: train.source)
        let rows = 0..<(train.count - held)
        var statistics: FeatureStatistics?
        let norm: Normalization
        switch r.normalize.resolved(for: r.format) {
        case .none, .auto: norm = .none(byteScaled: train.byteScaled)
        case .scalar: norm = .scalar(mean: Float(r.mean), std: Float(r.std), byteScaled: train.byteScaled)
        case .standardize:
            let s = r.statistics ?? FeatureStatistics.compute(train, rows: rows)
            guard s.mean.count == train.features else {
                throw DataError.mismatch("the stored standardisation numbers have \(s.mean.count) features but \(train.source) has \(train.features)")
            }
            statistics = s
            norm = .standardize(s, byteScaled: train.byteScaled)
        }
        try trainRange?.check(norm, type: train.x.type, source: train.source, name: featuresName(r))
        try testRange?.check(norm, type: test.x.type, source: test.source, name: featuresName(r))
        return DataSplit(train: Dataset(samples: train, rows: rows, classes: classes, normalization: norm),
                         test: Dataset(samples: test, classes: classes, normalization: norm),
                         validation: held > 0 ? Dataset(samples: train, rows: rows.upperBound..<train.count, classes: classes, normalization: norm) : nil,
                         statistics: statistics)
    }

    /// One file of the request's format; `what` names the key that named it
    /// (nil: a default Fashion-MNIST file).
    static func samples(_ r: DataRequest, _ path: String, what: String?) throws -> Samples {
        switch r.format {
        case .idx:
            let labels = what == nil ? (path as NSString).deletingLastPathComponent + "/" + defaultLabels(path) : try IDX.labelsPath(images: path)
            return try IDX.samples(images: path, labels: labels, what: what)
        case .npz: return try NPZ.open(path, what: what ?? "data.train").checked()
        case .safetensors: return try SafetensorsFile.open(path, what: what ?? "data.train").checked()
        case .csv: return try CSV.open(path, label: r.label, cacheDir: r.cacheDir, what: what ?? "data.train")
        case .criteo, .libsvm:
            throw DataError.mismatch("data.format = \"\(r.format.rawValue)\" is a click log of categorical ids: the model needs embedding tables "
                                     + "(model.tables, docs/config.md) and reads it as a CTRSplit, not as dense samples")
        }
    }

    /// The default labels file of a default images file.
    static func defaultLabels(_ images: String) -> String {
        (images as NSString).lastPathComponent.hasPrefix("t10k") ? "t10k-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte.gz"
    }

    static func labelsName(_ r: DataRequest) -> String {
        switch r.format {
        case .idx: return "labels"
        case .npz: return "array 'y'"
        case .safetensors: return "tensor 'y'"
        case .csv: return "column '\(r.label)'"
        case .criteo, .libsvm: return "label"
        }
    }

    static func featuresName(_ r: DataRequest) -> String {
        switch r.format {
        case .idx, .csv, .criteo, .libsvm: return "features"
        case .npz: return "array 'x'"
        case .safetensors: return "tensor 'x'"
        }
    }

    /// data.classes, or the training file's largest label + 1; every training label below it.
    static func classCount(_ train: Samples, _ r: DataRequest) throws -> Int {
        guard r.classes > 0 else { return Int(train.labels.max() ?? 0) + 1 }
        try train.checkLabels(below: r.classes, name: labelsName(r), why: "data.classes = \(r.classes)")
        return r.classes
    }

    /// The rows held out for validation: the last floor(count x fraction).
    static func heldOut(_ count: Int, _ fraction: Double, file: String) throws -> Int {
        guard fraction > 0 else { return 0 }
        let n = Int((Double(count) * fraction).rounded(.down))
        guard n > 0 else {
            throw DataError.mismatch("data.validation = \(fraction) of the \(count) samples of \(file) holds out none; raise it or set it to 0")
        }
        guard n < count else { throw DataError.mismatch("data.validation = \(fraction) holds out all \(count) samples of \(file)") }
        return n
    }
}
