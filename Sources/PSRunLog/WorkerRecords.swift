// The records a worker writes to logs/worker-<j>.jsonl (docs/run-log.md);
// what every rank writes is in RankRecords.swift.

import Foundation
import PSSupport

// MARK: Workers

/// `start` of a worker.
public struct WorkerStartRecord: LogRecord, Equatable {
    public static let event = "start"
    public var servers: Int
    public var workers: Int
    public var microbatch: Int
    public var trainSamples: Int
    public var testSamples: Int
    public var precision: String
    /// e.g. "top-k 1.0% + shuffle + zstd 1, adaptive at 10.0 Gbit/s".
    public var compression: String
    public var pieces: Int
    public var steps: Int
    public var stepsPerEpoch: Int

    public init(servers: Int, workers: Int, microbatch: Int, trainSamples: Int, testSamples: Int, precision: String, compression: String,
                pieces: Int, steps: Int, stepsPerEpoch: Int) {
        self.servers = servers; self.workers = workers; self.microbatch = microbatch; self.trainSamples = trainSamples
        self.testSamples = testSamples; self.precision = precision; self.compression = compression; self.pieces = pieces
        self.steps = steps; self.stepsPerEpoch = stepsPerEpoch
    }
}

/// `step` of a worker.
public struct WorkerStepRecord: StepRecord, Equatable {
    public static let event = "step"
    public var step: Int
    public var epoch: Int
    public var loss: Double?
    public var fp32Bytes: Int
    public var encodeS: Double
    public var decodeS: Double
    /// The scale this step's gradients carry.
    public var lossScale: Double
    /// Its own gradient overflowed.
    public var overflow: Bool
    /// The count of skipped steps before this one, as the servers reported it.
    public var skipped: Int
    public var samples: Int
    public var stepS: Double
    /// Gather, forward, backward and encoding, without the waits.
    public var computeS: Double
    /// Blocked on the step's parameters.
    public var waitS: Double
    public var bytesSent: Int
    public var bytesRecv: Int
    public var samplesPerS: Double
    /// With embedding tables: rows pulled, the bytes of their ids on the
    /// wire (delta-coded), all row bytes out (requests, gradients) and in
    /// (values), included in bytes_sent / bytes_recv, and the wait for rows.
    public var rowsPulled: Int?
    public var rowIdBytes: Int?
    public var rowBytesSent: Int?
    public var rowBytesRecv: Int?
    public var rowWaitS: Double?

    public init(step: Int, epoch: Int, loss: Double?, fp32Bytes: Int, encodeS: Double, decodeS: Double, lossScale: Double, overflow: Bool,
                skipped: Int, samples: Int, stepS: Double, computeS: Double, waitS: Double, bytesSent: Int, bytesRecv: Int,
                samplesPerS: Double) {
        self.step = step; self.epoch = epoch; self.loss = loss; self.fp32Bytes = fp32Bytes; self.encodeS = encodeS; self.decodeS = decodeS
        self.lossScale = lossScale; self.overflow = overflow; self.skipped = skipped; self.samples = samples; self.stepS = stepS
        self.computeS = computeS; self.waitS = waitS; self.bytesSent = bytesSent; self.bytesRecv = bytesRecv; self.samplesPerS = samplesPerS
    }
}

/// `eval_part`: a worker's slice of the test set, after each epoch.
public struct EvalPartRecord: LogRecord, Equatable {
    public static let event = "eval_part"
    public var step: Int
    public var epoch: Int
    public var correct: Int
    public var testSamples: Int
    /// nil: not finite.
    public var testLossSum: Double?
    /// This worker's slice of the validation set; absent without one.
    public var validationCorrect: Int?
    public var validationSamples: Int?
    public var validationLossSum: Double?

    public init(step: Int, epoch: Int, correct: Int, testSamples: Int, testLossSum: Double?,
                validationCorrect: Int? = nil, validationSamples: Int? = nil, validationLossSum: Double? = nil) {
        self.step = step; self.epoch = epoch; self.correct = correct; self.testSamples = testSamples; self.testLossSum = testLossSum
        self.validationCorrect = validationCorrect; self.validationSamples = validationSamples; self.validationLossSum = validationLossSum
    }
}

/// `checkpoint` of a worker: its file is written.
public struct WorkerCheckpointRecord: CheckpointRecord, Equatable {
    public static let event = "checkpoint"
    public var step: Int
    /// Of the parameters at that step.
    public var paramsDigest: String

    public init(step: Int, paramsDigest: String) {
        self.step = step; self.paramsDigest = paramsDigest
    }
}

/// `done` of a worker.
public struct WorkerDoneRecord: DoneRecord, Equatable {
    public static let event = "done"
    public var steps: Int
    public var peakRSSBytes: Int
    public var paramsDigest: String
    /// XXH64 of the top-k error-feedback residual (of nothing without top-k).
    public var residualDigest: String

    public init(steps: Int, peakRSSBytes: Int, paramsDigest: String, residualDigest: String) {
        self.steps = steps; self.peakRSSBytes = peakRSSBytes; self.paramsDigest = paramsDigest; self.residualDigest = residualDigest
    }
}

/// ssp and async, every server after each epoch: how stale the pushes it
/// applied in the epoch were (counts[s]: pushes of staleness s, the last
/// bucket counting that or more), and the most steps the fastest worker was
/// ahead of the slowest when a pull was answered (ssp: at most train.staleness).
public struct StalenessRecord: LogRecord, Equatable {
    public static let event = "staleness"
    public static let buckets = 64
    public var step: Int
    public var epoch: Int
    public var counts: [Int]
    public var maxLead: Int

    public init(step: Int, epoch: Int, counts: [Int], maxLead: Int) {
        self.step = step; self.epoch = epoch; self.counts = counts; self.maxLead = maxLead
    }

    /// The largest staleness seen (nil: no push).
    public var max: Int? { counts.lastIndex { $0 > 0 } }
}
