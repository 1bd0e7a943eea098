import Foundation
import PSSupport

/// A JSON value of a run-log line, as `LogFieldEncoder` makes it from a
/// record and `write(into:)` formats it: the one place the log's number
/// format lives (docs/run-log.md; other tools parse these bytes).
enum JSONValue {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null
    case array([JSONValue])
    /// Keys in the order they were encoded (no record nests one today).
    case object([(String, JSONValue)])

    func write(into s: inout String) {
        switch self {
        case .int(let i): s += String(i)
        case .double(let d):
            if d.isFinite {
                // Shortest round-tripping form; integers keep a ".0".
                var t = "\(d)"
                if t.contains("e") == false && t.contains(".") == false { t += ".0" }
                s += t
            } else { s += "null" }
        case .string(let v): s += jsonQuote(v)
        case .bool(let b): s += b ? "true" : "false"
        case .null: s += "null"
        case .array(let a):
            s += "["
            for (i, v) in a.enumerated() { if i > 0 { s += "," }; v.write(into: &s) }
            s += "]"
        case .object(let fields):
            s += "{"
            for (i, (k, v)) in fields.enumerated() { if i > 0 { s += "," }; s += jsonQuote(k) + ":"; v.write(into: &s) }
            s += "}"
        }
    }
}


/// Appends one JSON object per line to a rank's log file (docs/run-log.md):
/// `write(_:)` takes one of the record types of RankRecords.swift or
/// LauncherRecords.swift and writes
/// `{"v":1,"event":<its event>,"t":<unix seconds>,<fixed fields>,<its fields>}`.
/// Lines are buffered and written at `flush()` (once per step), so a crash
/// loses at most the lines of the step in progress and can truncate only the
/// last line.
///
/// A write that fails (a full disk, an I/O error) never leaves half a line:
/// the file is cut back to where the flush began and the records stay in
/// memory, to be written by the next flush that succeeds. `failure` says
/// why meanwhile, and `onFailure` hears of each new failure once. Past
/// `maxPending` bytes kept in memory, the oldest records are dropped and
/// counted (`dropped`), and a record saying how many goes in first when
/// writing works again.
public final class RunLog {
    public static let schemaVersion = 1
    public static let maxPending = 16 << 20
    let fd: Int32
    public let path: String
    var buffer: [UInt8] = []
    let fixed: String
    public private(set) var failure: String?
    public private(set) var dropped = 0
    public var onFailure: ((String) -> Void)?
    /// Unix seconds for "t" (tests fix it).
    var clock: () -> Double = { Date().timeIntervalSince1970 }

    /// Opens (creating folders) `path` for appending. `fixed`'s fields (a
    /// `RankStamp`: run id, rank, role, index; the launcher's `LauncherStamp`)
    /// go into every record, after "t".
    public init(path: String, fixed: some Encodable) throws {
        let stamp: [(String, JSONValue)]
        do { stamp = try LogFieldEncoder.fields(of: fixed) } catch { throw PSError("cannot encode the log's fixed fields: \(error)") }
        let dir = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw PSError("cannot create log folder \(dir): \(error.localizedDescription)")
        }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw PSError("cannot open log file \(path): \(String(cString: strerror(errno)))") }
        self.path = path
        var f = ""
        for (k, v) in stamp { f += ",\(jsonQuote(k)):"; v.write(into: &f) }
        self.fixed = f
    }

    deinit { flush(); close(fd) }

    func record(_ event: String, _ fields: [(String, JSONValue)]) -> String {
        var s = "{\"v\":\(RunLog.schemaVersion),\"event\":\(jsonQuote(event)),\"t\":"
        JSONValue.double((clock() * 1e6).rounded() / 1e6).write(into: &s)
        s += fixed
        for (k, v) in fields { s += ",\(jsonQuote(k)):"; v.write(into: &s) }
        return s + "}\n"
    }

    /// The line of a record: {"v":1,"event":..., "t": unix seconds, fixed..., fields...}.
    func line<R: LogRecord>(_ record: R) -> String {
        let fields: [(String, JSONValue)]
        do { fields = try LogFieldEncoder.fields(of: record) } catch {
            // Only a record type of ours that encodes something the log cannot hold: a bug, caught by the tests.
            preconditionFailure("the \(R.event) record cannot be written to the log: \(error)")
        }
        return self.record(R.event, fields)
    }

    /// Adds a record (written at the next `flush()`).
    public func write<R: LogRecord>(_ record: R) {
        buffer.append(contentsOf: line(record).utf8)
        if buffer.count > RunLog.maxPending, let cut = buffer[(buffer.count - RunLog.maxPending)...].firstIndex(of: 0x0A) {
            dropped += buffer[..<cut].filter { $0 == 0x0A }.count + 1
            buffer.removeSubrange(...cut)
        }
    }

    /// Writes the buffered records; returns false (and keeps them) when the write failed.
    @discardableResult
    public func flush() -> Bool {
        guard !buffer.isEmpty else { return true }
        // The count of dropped records goes first, and is forgotten only once written.
        let gap = dropped > 0 ? Array(line(LogGapRecord(droppedRecords: dropped)).utf8) : []
        let start = lseek(fd, 0, SEEK_END)
        var err = gap.withUnsafeBytes { writeAll(fd, $0) }
        if err == 0 { err = buffer.withUnsafeBytes { writeAll(fd, $0) } }
        if err == 0 {
            buffer.removeAll(keepingCapacity: true)
            dropped = 0
            failure = nil
            return true
        }
        // No half line: cut the file back to where this flush began.
        if start >= 0 { _ = ftruncate(fd, start) }
        let why = "cannot write the log \(path): \(String(cString: strerror(err))); its records are kept in memory and written when it works again"
        if failure != why { failure = why; onFailure?(why) }
        return false
    }
}