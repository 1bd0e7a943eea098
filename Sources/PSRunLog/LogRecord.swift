import Foundation

/// One kind of run-log record (docs/run-log.md): the ranks' in
/// RankRecords.swift, the launcher's in LauncherRecords.swift. A record
/// holds only its own fields; `v`, `event`, `t` and the log's fixed fields
/// (`RankStamp`, `LauncherStamp`) are the envelope `RunLog` writes around
/// it. Fields are written in the order `encode(to:)` encodes them (the
/// declaration order of the synthesized conformances), optionals only when
/// set, under the snake_case keys of their camelCase names (LogKeys.swift):
/// see LogFieldEncoder.swift for why and how. Write and read records only
/// through `RunLog` and `LogFile`: JSONEncoder would write the Swift names.
public protocol LogRecord: Codable, Sendable {
    /// The record's `event`.
    static var event: String { get }
}

/// The fixed fields of a rank's log, in every record after `t`.
public struct RankStamp: Encodable, Sendable {
    /// The run directory's name.
    public var run: String
    /// MPI rank.
    public var rank: Int
    /// `server` or `worker`.
    public var role: String
    /// Position among the ranks of that role.
    public var index: Int

    public init(run: String, rank: Int, role: String, index: Int) {
        self.run = run; self.rank = rank; self.role = role; self.index = index
    }
}

/// The fixed field of the launcher's events.jsonl.
public struct LauncherStamp: Encodable, Sendable {
    public var run: String
    public init(run: String) { self.run = run }
}

/// What every line has, read before the record itself (its `event` says
/// which type that is): schema version, event, time and the fixed fields.
/// Each field is nil when the line lacks it or holds something else, so any
/// JSON object reads as an envelope.
public struct LogEnvelope: Decodable, Sendable, Equatable {
    /// Schema version; nil: none (records older than schema 1).
    public var v: Int?
    public var event: String?
    /// Unix time in seconds.
    public var t: Double?
    public var run: String?
    public var rank: Int?
    public var role: String?
    public var index: Int?

    enum CodingKeys: String, CodingKey { case v, event, t, run, rank, role, index }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        v = try? c.decodeIfPresent(Int.self, forKey: .v)
        event = try? c.decodeIfPresent(String.self, forKey: .event)
        t = try? c.decodeIfPresent(Double.self, forKey: .t)
        run = try? c.decodeIfPresent(String.self, forKey: .run)
        rank = try? c.decodeIfPresent(Int.self, forKey: .rank)
        role = try? c.decodeIfPresent(String.self, forKey: .role)
        index = try? c.decodeIfPresent(Int.self, forKey: .index)
    }

    public init(v: Int? = RunLog.schemaVersion, event: String?, t: Double? = nil, run: String? = nil, rank: Int? = nil,
                role: String? = nil, index: Int? = nil) {
        self.v = v; self.event = event; self.t = t; self.run = run; self.rank = rank; self.role = role; self.index = index
    }
}

/// A record read back with its envelope (for its time and rank); its fields
/// read as the record's own (`step.loss`).
@dynamicMemberLookup
public struct Logged<R> {
    public let envelope: LogEnvelope
    public let record: R

    public init(envelope: LogEnvelope, record: R) { self.envelope = envelope; self.record = record }

    public var t: Double? { envelope.t }

    public subscript<T>(dynamicMember path: KeyPath<R, T>) -> T { record[keyPath: path] }
}
