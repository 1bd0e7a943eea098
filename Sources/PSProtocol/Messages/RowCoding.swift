import PSSupport

/// Sorted, distinct row numbers on the wire: each as the LEB128 varint of
/// its difference from the one before (the first from 0). Frequent rows of
/// Zipf-distributed ids sit close together once sorted, so most take one or
/// two bytes instead of eight.
public enum RowCoding {
    /// The most bytes `n` rows can take.
    public static func maxBytes(_ n: Int) -> Int { n * 10 }

    /// Appends the rows (ascending, distinct) to `out`.
    public static func encode(_ rows: UnsafeBufferPointer<UInt64>, into out: inout [UInt8]) {
        var prev: UInt64 = 0
        for (i, r) in rows.enumerated() {
            appendVarint(i == 0 ? r : r &- prev, to: &out)
            prev = r
        }
    }

    /// Appends `v` as a LEB128 varint.
    public static func appendVarint(_ v: UInt64, to out: inout [UInt8]) {
        var d = v
        while d >= 0x80 { out.append(UInt8(truncatingIfNeeded: d) | 0x80); d >>= 7 }
        out.append(UInt8(d))
    }

    /// Reads one LEB128 varint at `at` (moved past it).
    public static func readVarint(_ bytes: UnsafeRawBufferPointer, at: inout Int) throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard at < bytes.count else { throw PSError("the list ends inside a number") }
            let b = bytes[at]; at += 1
            guard shift < 64 else { throw PSError("a varint is longer than 10 bytes") }
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    /// Reads `count` rows from `bytes` starting at `at` (moved past them).
    /// Throws on a truncated or overlong varint, rows not ascending, or a row
    /// at or above `limit`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, at: inout Int, count: Int, limit: UInt64,
                              into out: inout [UInt64]) throws {
        var prev: UInt64 = 0
        for i in 0..<count {
            var v: UInt64
            do { v = try readVarint(bytes, at: &at) } catch let e as PSError { throw PSError("row \(i) of \(count): \(e.message)") }
            if i > 0 {
                guard v > 0 else { throw PSError("row \(i) repeats or goes back (difference 0)") }
                let (r, o) = prev.addingReportingOverflow(v)
                guard !o else { throw PSError("row \(i) overflows 64 bits") }
                v = r
            }
            guard v < limit else { throw PSError("row \(v) is outside the table (\(limit) rows)") }
            out.append(v)
            prev = v
        }
    }
}
