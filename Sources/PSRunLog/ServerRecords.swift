// The records a server writes to logs/server-<i>.jsonl (docs/run-log.md);
// what every rank writes is in RankRecords.swift.

import Foundation
import PSSupport

// MARK: Servers

/// `start` of a server.
public struct ServerStartRecord: LogRecord, Equatable {
    public static let event = "start"
    public var servers: Int
    public var workers: Int
    /// The global element range of the shard.
    public var shardLo: Int
    public var shardHi: Int
    public var pieces: Int
    public var precision: String
    public var compression: String
    /// The initial loss scale.
    public var lossScale: Double
    /// Of the run.
    public var steps: Int
    public var stepsPerEpoch: Int

    public init(servers: Int, workers: Int, shardLo: Int, shardHi: Int, pieces: Int, precision: String, compression: String,
                lossScale: Double, steps: Int, stepsPerEpoch: Int) {
        self.servers = servers; self.workers = workers; self.shardLo = shardLo; self.shardHi = shardHi; self.pieces = pieces
        self.precision = precision; self.compression = compression; self.lossScale = lossScale; self.steps = steps
        self.stepsPerEpoch = stepsPerEpoch
    }
}

/// `step` of a server.
public struct ServerStepRecord: StepRecord, Equatable {
    public static let event = "step"
    public var step: Int
    public var epoch: Int
    public var loss: Double?
    public var fp32Bytes: Int
    public var encodeS: Double
    public var decodeS: Double
    public var lr: Double
    public var lossScale: Double
    /// Running count of skipped steps, this one included.
    public var skipped: Int
    /// The step was skipped.
    public var overflow: Bool
    public var samples: Int
    public var stepS: Double
    public var waitS: Double
    /// Checking, summing, the optimizer and sending.
    public var applyS: Double
    public var bytesRecv: Int
    public var bytesSent: Int
    public var samplesPerS: Double
    /// With debug.digest_every_step: the shard's parameters after the step.
    public var paramsDigest: String?
    /// With train.clip_norm: the global norm of the unscaled gradient,
    /// before clipping (absent on a step that overflowed).
    public var gradNorm: Double?
    /// With embedding tables: the rows this server answered for, the bytes
    /// of row requests and gradients in and of row values out (included in
    /// bytes_recv / bytes_sent), and the rows it holds with their bytes
    /// (values and optimizer state).
    public var rowsServed: Int?
    public var rowBytesRecv: Int?
    public var rowBytesSent: Int?
    public var tableRows: Int?
    public var tableBytes: Int?
    /// ssp and async: one record per applied push: the worker whose push it
    /// was, and its staleness (this server's updates since it answered that
    /// worker's pull).
    public var worker: Int?
    public var staleness: Int?

    public init(step: Int, epoch: Int, loss: Double?, fp32Bytes: Int, encodeS: Double, decodeS: Double, lr: Double, lossScale: Double,
                skipped: Int, overflow: Bool, samples: Int, stepS: Double, waitS: Double, applyS: Double, bytesRecv: Int, bytesSent: Int,
                samplesPerS: Double, paramsDigest: String?, gradNorm: Double? = nil) {
        self.step = step; self.epoch = epoch; self.loss = loss; self.fp32Bytes = fp32Bytes; self.encodeS = encodeS; self.decodeS = decodeS
        self.lr = lr; self.lossScale = lossScale; self.skipped = skipped; self.overflow = overflow; self.samples = samples
        self.stepS = stepS; self.waitS = waitS; self.applyS = applyS; self.bytesRecv = bytesRecv; self.bytesSent = bytesSent
        self.samplesPerS = samplesPerS; self.paramsDigest = paramsDigest; self.gradNorm = gradNorm
    }
}

/// `overflow`: every server, per skipped step.
public struct OverflowRecord: LogRecord, Equatable {
    public static let event = "overflow"
    public var step: Int
    /// e.g. ["worker 1"], ["sum on server 0"], ["server 1"].
    public var seenBy: [String]
    public var lossScale: Double
    public var newLossScale: Double

    public init(step: Int, seenBy: [String], lossScale: Double, newLossScale: Double) {
        self.step = step; self.seenBy = seenBy; self.lossScale = lossScale; self.newLossScale = newLossScale
    }
}

/// `scale`: every server, when the loss scale moves.
public struct ScaleRecord: LogRecord, Equatable {
    public static let event = "scale"
    public var step: Int
    public var from: Double
    public var to: Double
    /// "growth" or "overflow".
    public var why: String

    public init(step: Int, from: Double, to: Double, why: String) {
        self.step = step; self.from = from; self.to = to; self.why = why
    }
}

/// `eval`: server 0, after each epoch.
public struct EvalRecord: LogRecord, Equatable {
    public static let event = "eval"
    /// The parameter version evaluated.
    public var step: Int
    /// 1-based, completed.
    public var epoch: Int
    /// 0...1.
    public var testAccuracy: Double
    /// nil: not finite.
    public var testLoss: Double?
    public var testSamples: Int
    /// The held-out part of the training file (data.validation); absent
    /// when none is held out (nil fields are not written, so a run without
    /// validation logs the same bytes as before). The loss is null when not finite.
    public var validationAccuracy: Double?
    public var validationLoss: Double?
    public var validationSamples: Int?
    /// With model.loss = "bce": the test set's AUC and log loss (its mean binary cross-entropy).
    public var auc: Double?
    public var logloss: Double?

    public init(step: Int, epoch: Int, testAccuracy: Double, testLoss: Double?, testSamples: Int,
                validationAccuracy: Double? = nil, validationLoss: Double? = nil, validationSamples: Int? = nil) {
        self.step = step; self.epoch = epoch; self.testAccuracy = testAccuracy; self.testLoss = testLoss; self.testSamples = testSamples
        self.validationAccuracy = validationAccuracy; self.validationLoss = validationLoss; self.validationSamples = validationSamples
    }
}

/// `checkpoint` of server 0: a checkpoint is complete.
public struct ServerCheckpointRecord: CheckpointRecord, Equatable {
    public static let event = "checkpoint"
    public var step: Int
    public var path: String
    public var bytes: Int
    public var seconds: Double

    public init(step: Int, path: String, bytes: Int, seconds: Double) {
        self.step = step; self.path = path; self.bytes = bytes; self.seconds = seconds
    }
}

/// `stopped`: every server, when it stopped on the launcher's request.
public struct ServerStoppedRecord: LogRecord, Equatable {
    public static let event = "stopped"
    public var step: Int
    public var why: String

    public init(step: Int, why: String) {
        self.step = step; self.why = why
    }
}

/// One optimizer state's digest in a server's `done` record, written as `<name>_digest`.
public struct StateDigest: Sendable, Equatable {
    /// The optimizer's name for the state (SGD: "momentum").
    public var name: String
    /// XXH64 of the shard's state, in hex.
    public var digest: String
    public init(name: String, digest: String) { self.name = name; self.digest = digest }
}

/// `done` of a server.
public struct ServerDoneRecord: DoneRecord, Equatable {
    public static let event = "done"
    public var steps: Int
    public var wallS: Double
    public var peakRSSBytes: Int
    public var skipped: Int
    /// The final loss scale.
    public var lossScale: Double
    public var paramsDigest: String
    /// One per optimizer state, written after the fields above as
    /// `<name>_digest` in the optimizer's `stateNames` order (SGD:
    /// `momentum_digest`); read back as every other key ending in `_digest`,
    /// sorted by name.
    public var stateDigests: [StateDigest]

    public func stateDigest(_ name: String) -> String? { stateDigests.first { $0.name == name }?.digest }

    /// The fixed fields, for the hand-written coding below (their keys: the key strategy's, LogKeys.swift).
    enum CodingKeys: String, CodingKey { case steps, wallS, peakRSSBytes, skipped, lossScale, paramsDigest }

    /// The keys of the state digests, made from the state names and
    /// written as they are (PyTorch's names, `exp_avg_sq`: not converted).
    struct StateKey: LogVerbatimKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
        static let suffix = "_digest"
    }

    public init(steps: Int, wallS: Double, peakRSSBytes: Int, skipped: Int, lossScale: Double, paramsDigest: String,
                stateDigests: [StateDigest]) {
        self.steps = steps; self.wallS = wallS; self.peakRSSBytes = peakRSSBytes; self.skipped = skipped
        self.lossScale = lossScale; self.paramsDigest = paramsDigest; self.stateDigests = stateDigests
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(steps, forKey: .steps)
        try c.encode(wallS, forKey: .wallS)
        try c.encode(peakRSSBytes, forKey: .peakRSSBytes)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(lossScale, forKey: .lossScale)
        try c.encode(paramsDigest, forKey: .paramsDigest)
        var states = encoder.container(keyedBy: StateKey.self)
        for s in stateDigests { try states.encode(s.digest, forKey: StateKey(s.name + StateKey.suffix)) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        steps = try c.decode(Int.self, forKey: .steps)
        wallS = try c.decode(Double.self, forKey: .wallS)
        peakRSSBytes = try c.decode(Int.self, forKey: .peakRSSBytes)
        skipped = try c.decode(Int.self, forKey: .skipped)
        lossScale = try c.decode(Double.self, forKey: .lossScale)
        paramsDigest = try c.decode(String.self, forKey: .paramsDigest)
        let states = try decoder.container(keyedBy: StateKey.self)
        stateDigests = try states.allKeys
            .filter { $0.stringValue.hasSuffix(StateKey.suffix) && $0.stringValue != logKey(CodingKeys.paramsDigest.stringValue) }
            .sorted { $0.stringValue < $1.stringValue }
            .map { key in
                StateDigest(name: String(key.stringValue.dropLast(StateKey.suffix.count)), digest: try states.decode(String.self, forKey: key))
            }
    }
}
