import Foundation

// ---------------------------------------------------------------------------
// Reading a log back into the record types it was written from: each line
// parsed once by JSONDecoder (`LogLine`), then read by LogFieldDecoder, first
// as a `LogEnvelope` (any JSON object is one) for its event, then as the type
// of that event for the log's source. A line
// that is not a JSON object (a crash can truncate the last one) is counted,
// not fatal; so is a record of a known event whose fields do not fit its
// type; an event this version does not know is kept with its envelope only.
// ---------------------------------------------------------------------------

/// Whose log a file is, which decides the type of each event.
public enum LogSource: String, Sendable {
    case server, worker, launcher

    /// From a run directory's file names: logs/server-<i>.jsonl,
    /// logs/worker-<j>.jsonl, events.jsonl; nil for any other name.
    public init?(fileName: String) {
        if fileName == "events.jsonl" { self = .launcher; return }
        guard fileName.hasSuffix(".jsonl") else { return nil }
        let parts = fileName.dropLast(6).split(separator: "-")
        guard parts.count == 2, Int(parts[1]) != nil, let s = LogSource(rawValue: String(parts[0])), s != .launcher else { return nil }
        self = s
    }

    /// The record types of this source, by event.
    public var recordTypes: [String: any LogRecord.Type] {
        switch self {
        case .server: return Self.serverTypes
        case .worker: return Self.workerTypes
        case .launcher: return Self.launcherTypes
        }
    }

    static func byEvent(_ types: [any LogRecord.Type]) -> [String: any LogRecord.Type] {
        Dictionary(uniqueKeysWithValues: types.map { ($0.event, $0) })
    }
    static let rankTypes: [any LogRecord.Type] = [HelloRecord.self, PinnedRecord.self, ErrorRecord.self, LogGapRecord.self, RankResumedRecord.self]
    static let serverTypes = byEvent(rankTypes + [ServerStartRecord.self, ServerStepRecord.self, OverflowRecord.self, ScaleRecord.self,
                                                  EvalRecord.self, ServerCheckpointRecord.self, ServerStoppedRecord.self, ServerDoneRecord.self,
                                                  StalenessRecord.self])
    static let workerTypes = byEvent(rankTypes + [WorkerStartRecord.self, WorkerStepRecord.self, EvalPartRecord.self,
                                                  WorkerCheckpointRecord.self, WorkerDoneRecord.self])
    static let launcherTypes = byEvent([LaunchRecord.self, ResumeRecord.self, RestartRecord.self, ExitRecord.self,
                                        LauncherStoppedRecord.self, LogGapRecord.self])
}

/// One line of a log that is a JSON object.
public struct LogEntry: Sendable {
    /// 1-based, counting the lines that are not empty.
    public let line: Int
    public let envelope: LogEnvelope
    /// nil: an event this version does not know, or a known event whose fields do not fit its type.
    public let record: (any LogRecord)?

    public var event: String? { envelope.event }
}

/// A log file read back.
public struct LogFile: Sendable {
    public let path: String
    /// Every line that is a JSON object, in file order.
    public private(set) var entries: [LogEntry] = []
    /// Lines that are not a JSON object (a crash can truncate the last one).
    public private(set) var badLines: [Int] = []
    /// Lines of known events whose fields do not fit the event's type (a
    /// field missing or of another type: not written by this schema).
    public private(set) var unreadableLines: [Int] = []
    /// Lines that are not empty.
    public private(set) var lineCount = 0

    /// Reads `path`; nil when it cannot be read. `source` defaults to what
    /// the file's name says; in a rank's log a record's own `role` wins.
    public init?(path: String, source: LogSource? = nil) {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        self.init(data: data, path: path, source: source ?? LogSource(fileName: (path as NSString).lastPathComponent))
    }

    public init(data: Data, path: String = "", source: LogSource?) {
        self.path = path
        let decoder = JSONDecoder()
        for (i, line) in data.split(separator: 0x0A, omittingEmptySubsequences: true).enumerated() {
            lineCount += 1
            guard let fields = try? decoder.decode(LogLine.self, from: Data(line)), let envelope = try? fields.decode(LogEnvelope.self) else {
                badLines.append(i + 1)
                continue
            }
            var record: (any LogRecord)?
            if let event = envelope.event, let type = Self.source(of: envelope, in: source)?.recordTypes[event] {
                record = try? fields.decode(type)
                if record == nil { unreadableLines.append(i + 1) }
            }
            entries.append(LogEntry(line: i + 1, envelope: envelope, record: record))
        }
    }

    static func source(of envelope: LogEnvelope, in file: LogSource?) -> LogSource? {
        if file == .launcher { return .launcher }
        switch envelope.role {
        case "server": return .server
        case "worker": return .worker
        default: return file
        }
    }

    /// Every record that reads as `R`, in file order: a record type
    /// (`EvalRecord.self`) or what several share (`(any StepRecord).self`).
    public func records<R>(_ type: R.Type) -> [R] { entries.compactMap { $0.record as? R } }

    /// The same with each record's envelope (its time, its rank).
    public func logged<R>(_ type: R.Type) -> [Logged<R>] {
        entries.compactMap { e in (e.record as? R).map { Logged(envelope: e.envelope, record: $0) } }
    }

    /// How many lines have this event, whatever their fields.
    public func count(_ event: String) -> Int { entries.reduce(0) { $0 + ($1.event == event ? 1 : 0) } }

    /// Schema versions seen (0: a record without one).
    public var versions: Set<Int> { Set(entries.map { $0.envelope.v ?? 0 }) }
}
