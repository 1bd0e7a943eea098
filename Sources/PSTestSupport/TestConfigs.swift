import Foundation
import PSNumerics
import PSConfig

/// The small dense model most in-process training tests train: 64 inputs,
/// dense 32, ReLU, dense 10, on 512 synthetic training and 256 test
/// samples, batches of 32, two epochs at lr 0.05. `overrides` come after
/// these, so they change any of them ("train.epochs=1").
public func mlpConfig(_ overrides: [String] = []) throws -> Config {
    var c = Config()
    try c.apply(overrides: ["data.kind=synthetic", "data.synthetic_train=512", "data.synthetic_test=256", "model.input=64",
                            "model.layers=[{type=\"dense\",units=32},{type=\"relu\"},{type=\"dense\",units=10}]",
                            "train.batch_size=32", "train.epochs=2", "train.lr=0.05"] + overrides)
    return c
}

/// The synthetic data set of a configuration: its train and test sizes,
/// its model's input size, 10 classes.
public func syntheticData(_ c: Config, seed: UInt64 = 7) -> DataSplit {
    DataSplit.synthetic(train: c.data.syntheticTrain, test: c.data.syntheticTest, features: c.model.inputSize, classes: 10, seed: seed)
}

/// A fresh folder under the temporary directory (`pstrain-<tag>-<pid>-<uuid>`), removed by the caller.
public func temporaryFolder(_ tag: String) -> String {
    let d = NSTemporaryDirectory() + "pstrain-\(tag)-\(getpid())-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}
