import Foundation

// ---------------------------------------------------------------------------
// The records the launcher writes to a run's events.jsonl (docs/run-log.md),
// fields in the order they are written. An attempt begins with `launch`
// (pstrain launch), `resume` (pstrain resume) or `restart` (the launcher
// restarting a failed job): the same fields under three events.
// ---------------------------------------------------------------------------

/// The fields of the record that begins an attempt.
public struct AttemptFields: Codable, Sendable, Equatable {
    /// 1 for the run's first attempt, counting on over resumes and restarts.
    public var attempt: Int
    public var workers: Int
    public var servers: Int
    /// The mpirun command line, one argument per element.
    public var command: [String]
    /// The checkpoint folder the attempt starts from (absent: from scratch).
    public var from: String?

    public init(attempt: Int, workers: Int, servers: Int, command: [String], from: String?) {
        self.attempt = attempt; self.workers = workers; self.servers = servers; self.command = command; self.from = from
    }
}

/// A record that begins an attempt: `LaunchRecord`, `ResumeRecord` or `RestartRecord`.
public protocol AttemptRecord: LogRecord {
    var fields: AttemptFields { get }
    init(_ fields: AttemptFields)
}

extension AttemptRecord {
    public var attempt: Int { fields.attempt }
    public var from: String? { fields.from }
}

/// The events of the records that begin an attempt, one per attempt in events.jsonl.
public let attemptEvents: Set<String> = [LaunchRecord.event, ResumeRecord.event, RestartRecord.event]

/// `launch`: the first attempt of a run (pstrain launch).
public struct LaunchRecord: AttemptRecord, Equatable {
    public static let event = "launch"
    public var fields: AttemptFields
    public init(_ fields: AttemptFields) { self.fields = fields }
    public init(from decoder: Decoder) throws { fields = try AttemptFields(from: decoder) }
    public func encode(to encoder: Encoder) throws { try fields.encode(to: encoder) }
}

/// `resume`: the first attempt of pstrain resume.
public struct ResumeRecord: AttemptRecord, Equatable {
    public static let event = "resume"
    public var fields: AttemptFields
    public init(_ fields: AttemptFields) { self.fields = fields }
    public init(from decoder: Decoder) throws { fields = try AttemptFields(from: decoder) }
    public func encode(to encoder: Encoder) throws { try fields.encode(to: encoder) }
}

/// `restart`: the launcher restarts a failed job from a checkpoint (--max-restarts).
public struct RestartRecord: AttemptRecord, Equatable {
    public static let event = "restart"
    public var fields: AttemptFields
    public init(_ fields: AttemptFields) { self.fields = fields }
    public init(from decoder: Decoder) throws { fields = try AttemptFields(from: decoder) }
    public func encode(to encoder: Encoder) throws { try fields.encode(to: encoder) }
}

/// `exit`: mpirun of an attempt ended.
public struct ExitRecord: LogRecord, Equatable {
    public static let event = "exit"
    public var attempt: Int
    public var code: Int
    public var signal: Int
    public var seconds: Double
    public init(attempt: Int, code: Int, signal: Int, seconds: Double) {
        self.attempt = attempt; self.code = code; self.signal = signal; self.seconds = seconds
    }
}

/// `stopped` in events.jsonl: the job stopped as asked (SIGINT/SIGTERM) after checkpointing `step`.
public struct LauncherStoppedRecord: LogRecord, Equatable {
    public static let event = "stopped"
    public var attempt: Int
    public var step: Int
    public init(attempt: Int, step: Int) { self.attempt = attempt; self.step = step }
}
