import PSSupport
import PSNumerics
import PSCodec

/// [data]: the data set.
public struct DataSection: ConfigSection {
    public enum Kind: String, ConfigChoice {
        /// Gzipped IDX files in `dir`.
        case fashionMNIST = "fashion-mnist"
        /// A small learnable set made from the seed (tests).
        case synthetic
        static let choices: [Kind] = [.fashionMNIST, .synthetic]
    }

    /// data.kind
    public internal(set) var kind = Kind.fashionMNIST
    /// data.dir
    public internal(set) var dir = "/usr/share/datasets/fashion-mnist"
    /// data.synthetic_train
    public internal(set) var syntheticTrain = 4096
    /// data.synthetic_test
    public internal(set) var syntheticTest = 1024

    public init() {}

    static let name = "data"
    static let keys: [ConfigKey<DataSection>] = [
        .choice("kind", \.kind, "\"fashion-mnist\" (gzipped IDX files in data.dir) or \"synthetic\""),
        .text("dir", \.dir, "folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-*"),
        .integer("synthetic_train", \.syntheticTrain, .closed(1, 1_000_000), "training samples of the synthetic data set"),
        .integer("synthetic_test", \.syntheticTest, .closed(1, 1_000_000), "test samples of the synthetic data set"),
    ]
}
