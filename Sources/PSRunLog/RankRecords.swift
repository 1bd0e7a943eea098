import Foundation
import PSSupport

// ---------------------------------------------------------------------------
// The records a rank writes to logs/server-<i>.jsonl or logs/worker-<j>.jsonl
// (docs/run-log.md has the table). Fields are declared in the order they are
// written; keep it so, the lines' bytes depend on it. Doubles that a run can
// make non-finite (losses) are optional: the log writes a NaN or an infinity
// as null, which reads back as nil.
// ---------------------------------------------------------------------------

// MARK: Every rank

/// `hello`: once per attempt, right after the start-up exchange.
public struct HelloRecord: LogRecord, Equatable {
    public static let event = "hello"
    /// The OpenBLAS kernels in use.
    public var blasCore: String
    /// OMPI_COMM_WORLD_LOCAL_SIZE (0: not under Open MPI).
    public var ranksOnNode: Int
    public var address: String
    public var configHash: String
    public var build: String
    public var host: String
    public var pid: Int
    public var servers: Int
    public var workers: Int

    public init(blasCore: String, ranksOnNode: Int, address: String, configHash: String, build: String, host: String, pid: Int,
                servers: Int, workers: Int) {
        self.blasCore = blasCore; self.ranksOnNode = ranksOnNode; self.address = address; self.configHash = configHash
        self.build = build; self.host = host; self.pid = pid; self.servers = servers; self.workers = workers
    }
}

/// `pinned`: a worker pinned to a core.
public struct PinnedRecord: LogRecord, Equatable {
    public static let event = "pinned"
    public var core: Int
    public init(core: Int) { self.core = core }
}

/// `error`: a rank that stops on an error.
public struct ErrorRecord: LogRecord, Equatable {
    public static let event = "error"
    public var message: String
    public init(message: String) { self.message = message }
}

/// `log_gap`: records were dropped while the log could not be written
/// (RunLog; also in the launcher's events.jsonl).
public struct LogGapRecord: LogRecord, Equatable {
    public static let event = "log_gap"
    public var droppedRecords: Int

    public init(droppedRecords: Int) {
        self.droppedRecords = droppedRecords
    }
}

/// `resumed`: a rank that starts from a checkpoint (servers and workers alike).
public struct RankResumedRecord: LogRecord, Equatable {
    public static let event = "resumed"
    public var step: Int
    /// The checkpoint folder.
    public var from: String
    /// Servers: the loaded shard; workers: the full parameters received.
    public var paramsDigest: String
    public var lossScale: Double
    public var skipped: Int

    public init(step: Int, from: String, paramsDigest: String, lossScale: Double, skipped: Int) {
        self.step = step; self.from = from; self.paramsDigest = paramsDigest; self.lossScale = lossScale; self.skipped = skipped
    }
}

/// What the `step` records of servers and workers share.
public protocol StepRecord: LogRecord {
    var step: Int { get }
    /// 0-based, of the step.
    var epoch: Int { get }
    /// Servers: mean over the global batch; workers: over their microbatch. nil: not finite.
    var loss: Double? { get }
    var fp32Bytes: Int { get }
    var encodeS: Double { get }
    var decodeS: Double { get }
    var lossScale: Double { get }
    var overflow: Bool { get }
    var skipped: Int { get }
    var samples: Int { get }
    var stepS: Double { get }
    var waitS: Double { get }
    var bytesSent: Int { get }
    var bytesRecv: Int { get }
    var samplesPerS: Double { get }
}

/// What the `done` records of servers and workers share.
public protocol DoneRecord: LogRecord {
    var steps: Int { get }
    var peakRSSBytes: Int { get }
    /// XXH64 of the rank's final FP32 parameters (a server's shard, a worker's whole vector).
    var paramsDigest: String { get }
}

/// What the `checkpoint` records of server 0 and workers share.
public protocol CheckpointRecord: LogRecord {
    var step: Int { get }
}
