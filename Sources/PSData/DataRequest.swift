import Foundation
import PSNumerics

/// The file formats a data set may come in (data.format).
public enum DataFormat: String, CaseIterable, Sendable {
    /// MNIST-family IDX files, gzipped or not (an images file and a labels file).
    case idx
    /// A NumPy archive with arrays x and y.
    case npz
    /// A CSV file with a header row and a label column.
    case csv
    /// A safetensors file with tensors x and y.
    case safetensors
    /// A Criteo click log (tab-separated: label, I1..I13, C1..C26), for a
    /// model with embedding tables (CTRSplit).
    case criteo
    /// A libsvm / svmlight file (`label index:value ...`), for a model with
    /// one embedding table (CTRSplit).
    case libsvm

    /// Whether the format holds categorical ids for embedding tables
    /// (CTRSplit) rather than dense samples (DataSplit).
    public var isCTR: Bool { self == .criteo || self == .libsvm }

    /// The dense features and categorical fields of every row of a click-log
    /// format (nil for a dense format): the format fixes them, so they are
    /// known before a file is read.
    public var clickLogColumns: (dense: Int, fields: Int)? {
        switch self {
        case .criteo: return (Criteo.denseCount, Criteo.fieldCount)
        case .libsvm: return (0, 1)
        default: return nil
        }
    }
}

/// How features become the model's inputs (data.normalize).
public enum DataNormalize: String, CaseIterable, Sendable {
    /// "scalar" with Fashion-MNIST's numbers for idx (today's), "standardize" for the others.
    case auto
    case none
    /// (x - data.mean) / data.std for every feature.
    case scalar
    /// Per feature, with the training set's mean and deviation.
    case standardize

    /// What `auto` means for `format`.
    public func resolved(for format: DataFormat) -> DataNormalize {
        self != .auto ? self : (format == .idx ? .scalar : .standardize)
    }
}

/// What a worker needs to open its data set: the files, their format and
/// the treatment of features and labels. (PSConfig builds it from [data];
/// this module knows nothing of the configuration.)
public struct DataRequest {
    public var format = DataFormat.idx
    /// The folder of the default IDX files (when `train` or `test` is empty).
    public var dir = "/usr/share/datasets/fashion-mnist"
    /// The training and test files (for idx, the images files; empty: the default names in `dir`).
    public var train = ""
    public var test = ""
    /// The CSV label column.
    public var label = "label"
    /// The number of classes (0: the training set's largest label + 1).
    public var classes = 0
    public var normalize = DataNormalize.auto
    public var mean = 0.2860
    public var std = 0.3530
    /// The fraction of the training file held out, from its end, for validation.
    public var validation = 0.0
    /// Where CSV, Criteo and libsvm caches go (the run directory's data-cache folder; empty: next to each file).
    public var cacheDir = ""
    /// Standardisation numbers to use instead of computing them (from a checkpoint).
    public var statistics: FeatureStatistics?

    public init() {}

    /// The training file (for idx, the images file).
    public var trainFile: String { !train.isEmpty ? train : dir + "/train-images-idx3-ubyte.gz" }
    public var testFile: String { !test.isEmpty ? test : dir + "/t10k-images-idx3-ubyte.gz" }
}
