import Foundation

/// The sets of a run: training, test and (when `data.validation` holds some
/// out) validation, and the per-feature statistics the normalisation used
/// when it standardises (stored in the run directory and the checkpoints).
public struct DataSplit {
    public let train: Dataset
    public let test: Dataset
    public let validation: Dataset?
    public let statistics: FeatureStatistics?

    public init(train: Dataset, test: Dataset, validation: Dataset? = nil, statistics: FeatureStatistics? = nil) {
        self.train = train; self.test = test; self.validation = validation; self.statistics = statistics
    }

    /// A small learnable data set for fast tests: each class has a fixed
    /// random prototype; a sample is its prototype plus noise, as bytes.
    public static func synthetic(train: Int, test: Int, features: Int, classes: Int, seed: UInt64) -> DataSplit {
        func make(_ n: Int, stream: UInt64) -> Dataset {
            var px = [UInt8](repeating: 0, count: n * features)
            var lb = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                let c = Int(CounterRNG.bits(seed: seed, stream: stream, index: UInt64(i)) % UInt64(classes))
                lb[i] = UInt8(c)
                for j in 0..<features {
                    let proto = CounterRNG.uniform(seed: seed, stream: 1000 + UInt64(c), index: UInt64(j))
                    let noise = CounterRNG.uniform(seed: seed, stream: stream + 7, index: UInt64(i * features + j))
                    let v = 0.7 * proto + 0.3 * noise
                    px[i * features + j] = UInt8(min(255, max(0, v * 255)))
                }
            }
            return Dataset(count: n, features: features, classes: classes, pixels: px, labels: lb)
        }
        return DataSplit(train: make(train, stream: 1), test: make(test, stream: 2))
    }
}
