import Foundation
import PSNumerics

/// The standardisation numbers of data.normalize = "standardize": the
/// training set's per-feature mean and deviation, FP32 tensors `data.mean`
/// and `data.std` of a sample's shape. Worker 0 writes them into the run
/// directory (`normalization.safetensors`) when the run starts and into its
/// file of every checkpoint (`worker-0.safetensors`); a resume reads them
/// from the checkpoint instead of computing them again, and `pstrain ckpt
/// export` copies them into the exported model. A model's input is
/// (x/255 - mean)/std for uint8 features, (x - mean)/std for float features.
public enum NormalizationFile {
    public static let meanName = "data.mean"
    public static let stdName = "data.std"
    /// In the run directory.
    public static let runFile = "normalization.safetensors"

    public static func tensors(_ s: FeatureStatistics, shape: [Int]) -> [Safetensors.Tensor] {
        let shape = shape.reduce(1, *) == s.mean.count ? shape : [s.mean.count]
        return [s.mean.withUnsafeBufferPointer { Safetensors.Tensor(name: meanName, shape: shape, floats: $0) },
                s.std.withUnsafeBufferPointer { Safetensors.Tensor(name: stdName, shape: shape, floats: $0) }]
    }

    /// The run directory's file: the tensors and what they mean.
    public static func encode(_ s: FeatureStatistics, shape: [Int], byteScaled: Bool) -> [UInt8] {
        Safetensors.encode(tensors(s, shape: shape), metadata: [
            "format": "pstrain-normalization",
            "rule": byteScaled ? "x' = (x / 255 - data.mean) / data.std (uint8 features)" : "x' = (x - data.mean) / data.std",
        ])
    }

    /// The two tensors in worker 0's file of checkpoint `dir`, or none when
    /// that run did not standardise. The file is verified as it is read.
    public static func load(_ dir: String, _ m: Manifest) throws -> [Safetensors.Tensor] {
        try CheckpointStore.check(m, dir: dir)
        let file = checkpointFile(.worker, 0)
        let t = try CheckpointStore.readListedFile(dir, m, file)
        guard let mean = t[meanName], let std = t[stdName] else { return [] }
        guard mean.dtype == .f32, std.dtype == .f32, mean.count == std.count, mean.count > 0 else {
            throw CheckpointError.invalid("\(dir)/\(file): \(meanName) and \(stdName) must be FP32 tensors of one size (damaged or crafted checkpoint)")
        }
        return [mean, std]
    }

    /// The statistics in checkpoint `dir`, or nil.
    public static func statistics(_ dir: String, _ m: Manifest) throws -> FeatureStatistics? {
        let t = try load(dir, m)
        return t.isEmpty ? nil : FeatureStatistics(mean: t[0].floats, std: t[1].floats)
    }
}
