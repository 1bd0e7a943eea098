import Foundation
import PSNumerics
import PSData

extension DataFormat: ConfigChoice {
    static var choices: [DataFormat] { allCases }
}

extension DataNormalize: ConfigChoice {
    static var choices: [DataNormalize] { allCases }
}

/// [data]: the data set.
public struct DataSection: ConfigSection {
    public enum Kind: String, ConfigChoice {
        /// Files in data.format (Fashion-MNIST's IDX files by default; the
        /// name is kept so that existing configurations read the same).
        case fashionMNIST = "fashion-mnist"
        /// A small learnable set made from the seed (tests).
        case synthetic
        static let choices: [Kind] = [.fashionMNIST, .synthetic]
    }

    /// data.kind
    public internal(set) var kind = Kind.fashionMNIST
    /// data.format
    public internal(set) var format = DataFormat.idx
    /// data.dir
    public internal(set) var dir = "/usr/share/datasets/fashion-mnist"
    /// data.train, data.test: the files (empty: for idx, the default names in data.dir).
    public internal(set) var train = ""
    public internal(set) var test = ""
    /// data.label: the CSV label column.
    public internal(set) var label = "label"
    /// data.classes (0: the training set's largest label + 1).
    public internal(set) var classes = 0
    /// data.normalize
    public internal(set) var normalize = DataNormalize.auto
    /// data.mean, data.std: the numbers of "scalar".
    public internal(set) var mean = 0.2860
    public internal(set) var std = 0.3530
    /// data.validation: the fraction of the training file held out.
    public internal(set) var validation = 0.0
    /// data.synthetic_train
    public internal(set) var syntheticTrain = 4096
    /// data.synthetic_test
    public internal(set) var syntheticTest = 1024

    public init() {}

    /// Whether the set is read from files (not synthetic).
    public var fromFiles: Bool { kind != .synthetic }

    /// The section with relative paths made absolute against `base` (the
    /// launcher's working directory), so that a resume from elsewhere
    /// finds the same files.
    public func resolvingPaths(against base: String) -> DataSection {
        func abs(_ p: String) -> String { p.isEmpty || p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
        var s = self
        s.dir = abs(dir); s.train = abs(train); s.test = abs(test)
        return s
    }

    static let name = "data"
    static let keys: [ConfigKey<DataSection>] = [
        .choice("kind", \.kind, "\"fashion-mnist\" (files in data.format, Fashion-MNIST's by default) or \"synthetic\""),
        .text("dir", \.dir, "folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-* (idx, when data.train / data.test are empty)"),
        .integer("synthetic_train", \.syntheticTrain, .closed(1, 1_000_000), "training samples of the synthetic data set"),
        .integer("synthetic_test", \.syntheticTest, .closed(1, 1_000_000), "test samples of the synthetic data set"),
        .choice("format", \.format, "\"idx\", \"npz\" (arrays x, y), \"csv\" (header row, data.label column), \"safetensors\" (tensors x, y), "
                + "or for a model with embedding tables \"criteo\" (tab-separated label, I1..I13, C1..C26) or \"libsvm\" (label index:value ...)"),
        .text("train", \.train, "the training file (idx: the images file, labels beside it; empty: data.dir's)"),
        .text("test", \.test, "the test file (idx: the images file, labels beside it; empty: data.dir's)"),
        .text("label", \.label, "the CSV column that holds the labels"),
        .integer("classes", \.classes, .closed(0, 256), "number of classes (0: the training set's largest label + 1)"),
        .choice("normalize", \.normalize, "\"auto\" (scalar for idx, standardize otherwise), \"none\", \"scalar\" or \"standardize\""),
        .number("mean", \.mean, .closed(-1e12, 1e12), "the mean that \"scalar\" subtracts (after x/255 for uint8 features)"),
        .number("std", \.std, .closed(Double(Float.leastNormalMagnitude), 1e12), "the deviation that \"scalar\" divides by (after x/255 for uint8 features)"),
        .number("validation", \.validation, .closedOpen(0, 1), "fraction of the training file held out from its end and evaluated each epoch"),
    ]

    /// The request a worker opens its files with; `cacheDir` takes CSV, Criteo and libsvm caches.
    public func request(cacheDir: String, statistics: FeatureStatistics? = nil) -> DataRequest {
        var r = DataRequest()
        r.format = format
        r.dir = dir; r.train = train; r.test = test; r.label = label; r.classes = classes
        r.normalize = normalize; r.mean = mean; r.std = std; r.validation = validation
        r.cacheDir = cacheDir; r.statistics = statistics
        return r
    }

    /// The normalisation rule in effect ("auto" resolved).
    public var normalizeInEffect: DataNormalize { fromFiles ? normalize.resolved(for: format) : .scalar }

    /// Checks the keys that depend on each other when the files are opened
    /// (not in Config.validate: `--set data.format=npz --set data.train=...`
    /// applies one key at a time).
    func checkFiles() throws {
        guard fromFiles else { return }
        if format != .idx {
            for (key, v) in [("data.train", train), ("data.test", test)] where v.isEmpty {
                throw DataError.mismatch("\(key) is empty; data.format = \"\(format.rawValue)\" needs the file (data.dir serves only idx)")
            }
        }
        if format == .csv && label.isEmpty { throw DataError.mismatch("data.label is empty; it names the CSV column that holds the labels") }
    }
}
