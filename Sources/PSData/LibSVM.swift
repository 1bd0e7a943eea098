import Foundation

/// The libsvm / svmlight format (docs/formats.md, "libsvm"): one row per
/// line, `label idx:val idx:val ...` separated by spaces or tabs; the label
/// is 0 or 1, or -1 or +1 (-1 is read as 0); idx is a non-negative decimal
/// integer and val a finite number (as FP32); `#` starts a comment that
/// runs to the end of the line. A line with nothing but a comment or
/// spaces is skipped. No dense features; one categorical field whose bag
/// holds the row's indices, weighted by their values.
public enum LibSVM {
    /// The most index:value pairs a line may hold: a bound on the rows one
    /// sample asks the servers for (ServerTables.requestRowLimit).
    public static let maxPairsPerRow = 1 << 16

    static let pairFix = "a libsvm line is `label index:value ...`: index a non-negative integer, value a finite number"

    /// Whether the line holds a row (anything before a `#` but spaces).
    public static func holdsRow(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        for c in line {
            if c == 0x23 { return false }
            if c != 0x20 && c != 0x09 { return true }
        }
        return false
    }

    /// Parses one line (without its line end) that holds a row into `row`.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>, into row: inout CTRRow, file: String, line number: Int) throws {
        row.dense.removeAll(keepingCapacity: true)
        row.ids.removeAll(keepingCapacity: true)
        row.weights.removeAll(keepingCapacity: true)
        row.present = 0
        var end = line.count
        if let hash = line.firstIndex(of: 0x23) { end = hash }
        var i = 0, token = 0
        while true {
            while i < end && (line[i] == 0x20 || line[i] == 0x09) { i += 1 }
            guard i < end else { break }
            var j = i
            while j < end && line[j] != 0x20 && line[j] != 0x09 { j += 1 }
            let t = UnsafeBufferPointer(rebasing: line[i..<j])
            if token > maxPairsPerRow {
                throw DataError.badRecord(file: file, line: number, field: "pair \(token)", problem: "the line holds more than \(maxPairsPerRow) index:value pairs",
                                          fix: "split the features over several fields or rows; a row may hold at most \(maxPairsPerRow)")
            }
            if token == 0 { try parseLabel(t, into: &row, file: file, line: number) } else { try parsePair(t, token, into: &row, file: file, line: number) }
            token += 1
            i = j
        }
        if token == 0 {
            throw DataError.badRecord(file: file, line: number, field: "label", problem: "the line holds no label", fix: pairFix)
        }
    }

    static func parseLabel(_ t: UnsafeBufferPointer<UInt8>, into row: inout CTRRow, file: String, line: Int) throws {
        guard let v = number(t), v == 0 || v == 1 || v == -1 else {
            throw DataError.badRecord(file: file, line: line, field: "label", problem: "the label \(quoted(t)) is not 0/1 or -1/+1",
                                      fix: "the label is 0 or 1 (or -1 or +1; -1 is read as 0)")
        }
        row.label = v == 1 ? 1 : 0
    }

    static func parsePair(_ t: UnsafeBufferPointer<UInt8>, _ k: Int, into row: inout CTRRow, file: String, line: Int) throws {
        func bad(_ problem: String) -> DataError {
            .badRecord(file: file, line: line, field: "pair \(k) \(quoted(t))", problem: problem, fix: pairFix)
        }
        guard let colon = t.firstIndex(of: 0x3A) else { throw bad("no ':' between index and value") }
        let idx = UnsafeBufferPointer(rebasing: t[..<colon]), val = UnsafeBufferPointer(rebasing: t[(colon + 1)...])
        guard let id = index(idx) else { throw bad("the index \(quoted(idx)) is not a non-negative integer (below 2^64)") }
        guard let v = number(val) else { throw bad("the value \(quoted(val)) is not a number") }
        let w = Float(v)
        guard w.isFinite else { throw bad("the value \(quoted(val)) is not finite (as FP32)") }
        row.ids.append(id)
        row.weights.append(w)
    }

    /// 1 or more decimal digits as a UInt64; nil otherwise or on overflow.
    static func index(_ b: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard !b.isEmpty else { return nil }
        var v: UInt64 = 0
        for c in b {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
            guard !o1 && !o2 else { return nil }
            v = s
        }
        return v
    }

    /// The token as a double (strtod's syntax, the whole token); nil when
    /// it is not one. NaN and infinities parse (the caller refuses them).
    static func number(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        // strtod for every length, and no NUL inside: a NUL ends a C string,
        // so "1" and 130 NULs read as 1 (the differential test against the
        // Python reader found it; tokens of 128 bytes or more went through
        // Double(String), which stopped at the NUL too).
        guard !b.isEmpty, !b.contains(0) else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: b.count + 1) { s -> Double? in
            for k in 0..<b.count { s[k] = CChar(bitPattern: b[k]) }
            s[b.count] = 0
            var end: UnsafeMutablePointer<CChar>?
            let v = strtod(s.baseAddress!, &end)
            guard let end, end - s.baseAddress! == b.count, isspace(Int32(b[0])) == 0 else { return nil }
            return v
        }
    }
}
