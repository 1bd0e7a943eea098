// ---------------------------------------------------------------------------
// Checkpoints (docs/checkpoints.md):
//   runs/<name>/checkpoints/step-<N>/manifest.json
//                                    server-<i>.safetensors   (FP32 weights and optimizer state of its shard)
//                                    worker-<j>.safetensors   (its error-feedback residual, if any)
//   runs/<name>/checkpoints/LATEST   "step-<N>\n": the newest complete checkpoint
// Written into checkpoints/.tmp-step-<N>/, every file fsynced, the folder
// renamed into place and its parent fsynced, and only then LATEST replaced
// (write a temporary file, fsync, rename, fsync the folder).
// ---------------------------------------------------------------------------

import Foundation
import PSSupport
import PSNumerics

/// Everything a checkpoint holds besides the tensors.
public struct Manifest: Codable, Equatable {
    /// 2: the manifest carries its own SHA-256 (`checksum`).
    public static let formatVersion = 2
    /// The largest manifest.json the reader accepts.
    public static let maxBytes = 64 << 20
    /// The longest file name a manifest may give.
    public static let maxFileNameLength = 255

    public struct FileEntry: Codable, Equatable {
        public var name: String
        public var role: String
        public var index: Int
        public var bytes: Int
        public var sha256: String
        public init(name: String, role: String, index: Int, bytes: Int, sha256: String) {
            self.name = name; self.role = role; self.index = index; self.bytes = bytes; self.sha256 = sha256
        }
    }
    /// A tensor of the model: its full shape, and which file holds which
    /// contiguous range of its flattened elements.
    public struct TensorEntry: Codable, Equatable {
        public struct Shard: Codable, Equatable {
            public var file: String
            public var start: Int
            public var count: Int
            public init(file: String, start: Int, count: Int) { self.file = file; self.start = start; self.count = count }
        }
        public var name: String
        public var shape: [Int]
        public var shards: [Shard]
        public init(name: String, shape: [Int], shards: [Shard]) { self.name = name; self.shape = shape; self.shards = shards }
    }
    public typealias ScalerState = LossScaler.State

    public var format: Int = Manifest.formatVersion
    public var run: String
    public var step: Int
    public var epoch: Int
    /// Samples of the current epoch already consumed (global batches x batch size).
    public var epochCursor: Int
    public var stepsPerEpoch: Int
    public var totalSteps: Int
    public var seed: UInt64
    /// "(seed, epoch) Fisher-Yates; counter-based, no mutable state"
    public var dataOrder: String
    public var rng: String
    public var lrSchedule: String
    public var learningRate: Double
    public var scaler: ScalerState
    public var servers: Int
    public var workers: Int
    public var precision: String
    public var compression: String
    public var build: String
    public var configHash: String
    public var config: String
    public var created: Double
    public var files: [FileEntry]
    public var tensors: [TensorEntry]
    /// The state tensors the servers' optimizer keeps beside each weight
    /// tensor ("<name>.<state>"): ["momentum"] for SGD, ["exp_avg",
    /// "exp_avg_sq"] for Adam. nil in manifests written before it was
    /// recorded; readers then take the names from the server files.
    public var optimizerStates: [String]?
    /// SHA-256 (hex) of `canonicalJSON()`: set by `sealed()` when the
    /// checkpoint is written, checked by every reader.
    public var checksum: String? = nil

    /// (Public: the coordination protocol builds the manifest server 0 writes.)
    public init(run: String, step: Int, epoch: Int, epochCursor: Int, stepsPerEpoch: Int, totalSteps: Int, seed: UInt64,
                dataOrder: String, rng: String, lrSchedule: String, learningRate: Double, scaler: ScalerState, servers: Int,
                workers: Int, precision: String, compression: String, build: String, configHash: String, config: String,
                created: Double, files: [FileEntry], tensors: [TensorEntry], optimizerStates: [String]? = nil) {
        self.run = run; self.step = step; self.epoch = epoch; self.epochCursor = epochCursor; self.stepsPerEpoch = stepsPerEpoch
        self.totalSteps = totalSteps; self.seed = seed; self.dataOrder = dataOrder; self.rng = rng; self.lrSchedule = lrSchedule
        self.learningRate = learningRate; self.scaler = scaler; self.servers = servers; self.workers = workers
        self.precision = precision; self.compression = compression; self.build = build; self.configHash = configHash
        self.config = config; self.created = created; self.files = files; self.tensors = tensors; self.optimizerStates = optimizerStates
    }

    /// The bytes the checksum covers: this manifest without `checksum`,
    /// encoded as compact JSON with sorted keys.
    public func canonicalJSON() throws -> [UInt8] {
        var m = self
        m.checksum = nil
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(m))
    }

    public func computedChecksum() throws -> String { sha256Hex(try canonicalJSON()) }

    /// This manifest with its checksum set.
    public func sealed() throws -> Manifest {
        var m = self
        m.checksum = try computedChecksum()
        return m
    }

}
