import PSSupport
import PSNumerics
import PSCodec
import PSData

// How each component is built from its own section of the configuration,
// and nothing else: the numeric core, the codec and the data know nothing
// of the configuration; this file is the one place that reads sections
// into their parameters.

extension Model {
    /// The network of `[model]`, with activation buffers for `capacity` rows.
    public convenience init(_ model: ModelSection, capacity: Int) throws {
        try self.init(input: model.inputShape, entries: model.layers, capacity: capacity)
    }
}

extension DataSplit {
    /// The data set `[data]` names; synthetic sets have `features` features.
    public static func load(_ data: DataSection, features: Int) throws -> DataSplit {
        switch data.kind {
        case .synthetic:
            return synthetic(train: data.syntheticTrain, test: data.syntheticTest, features: features, classes: 10, seed: 7)
        case .fashionMNIST:
            return try fashionMNIST(dir: data.dir)
        }
    }
}

/// The optimizers a configuration can name.
public enum Optimizers {
    /// The servers' optimizer for `[train]`: SGD with momentum
    /// (`train.momentum`, `train.weight_decay`), the only one today.
    public static func make(_ train: TrainSection) -> Optimizer {
        SGD(momentum: Float(train.momentum), weightDecay: Float(train.weightDecay))
    }
}
