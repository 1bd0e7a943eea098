import PSSupport
import PSNumerics

/// Worker -> a server holding table rows: the rows of each table it needs
/// for a microbatch. Payload: per table the number of rows (LEB128 varint),
/// then per table its rows, ascending, delta-coded (RowCoding). The frame's
/// raw and encoded lengths are the payload's bytes (element type f64 as for
/// control messages: the payload is bytes).
public enum RowRequest {
    public static let kind = FrameKind.rowRequest

    /// Encodes `rows[t]` (ascending, distinct) for every table.
    public static func encode(_ rows: [[UInt64]]) -> [UInt8] {
        var out: [UInt8] = []
        for r in rows { RowCoding.appendVarint(UInt64(r.count), to: &out) }
        for r in rows { r.withUnsafeBufferPointer { RowCoding.encode($0, into: &out) } }
        return out
    }

    public static func seal(_ buffer: FrameBuffer, bytes: [UInt8], step: Int, round: Int) {
        bytes.withUnsafeBytes { buffer.payload.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        buffer.length = Frame.seal(FrameHeader(kind: kind, step: UInt64(step), index: UInt32(round), elementType: .f64,
                                               rawLength: UInt64(bytes.count), encodedLength: UInt64(bytes.count)), buffer: buffer.raw)
    }

    /// Checks the frame and reads every table's rows; `rows` is what the
    /// announcement said, `tables` the model's tables (each row below its
    /// table's size).
    public static func open(_ buffer: FrameBuffer, length: Int, step: Int, round: Int, bytes: Int, rows: Int,
                            tables: [TableSpec], sender: String) throws -> [[UInt64]] {
        _ = try Frame.open(buffer: buffer.raw, length: length,
                           expect: FrameExpectation(kind: kind, step: UInt64(step), index: UInt32(round), elementType: .f64, rawLength: bytes),
                           sender: sender)
        let payload = UnsafeRawBufferPointer(start: buffer.payload, count: bytes)
        do {
            var at = 0
            var counts: [Int] = []
            for _ in tables {
                let n = try RowCoding.readVarint(payload, at: &at)
                guard n <= UInt64(rows) else { throw PSError("a table claims \(n) rows of the \(rows) announced") }
                counts.append(Int(n))
            }
            guard counts.reduce(0, +) == rows else {
                throw PSError("the tables' row counts add up to \(counts.reduce(0, +)), not the \(rows) announced")
            }
            var out: [[UInt64]] = []
            for (t, spec) in tables.enumerated() {
                var r: [UInt64] = []
                r.reserveCapacity(counts[t])
                do { try RowCoding.decode(payload, at: &at, count: counts[t], limit: UInt64(spec.rows), into: &r) } catch {
                    throw PSError("table \(t): \(error)")
                }
                out.append(r)
            }
            guard at == bytes else { throw PSError("\(bytes - at) bytes left after the last row") }
            return out
        } catch let e as PSError {
            throw FrameError.badPayload(sender: sender, what: "row request of step \(step)", problem: e.message)
        }
    }
}
