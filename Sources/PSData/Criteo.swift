import Foundation

/// The Criteo click-log format (docs/formats.md, "Criteo"): one row per
/// line, 40 fields separated by tabs: the label (0 or 1), I1..I13 (whole
/// numbers, may be negative or empty) and C1..C26 (ids of up to 16
/// hexadecimal digits, may be empty). Dense feature j is
/// log1p(max(I_j, 0)) computed in double and rounded to FP32 (an empty
/// field gives 0); an empty categorical field is an empty bag, any other a
/// bag of one id, the hexadecimal value as UInt64.
public enum Criteo {
    public static let denseCount = 13
    public static let fieldCount = 26
    public static let columns = 1 + denseCount + fieldCount

    /// The name of column `k` (0-based): label, I1..I13, C1..C26.
    public static func columnName(_ k: Int) -> String {
        k == 0 ? "label" : k <= denseCount ? "I\(k)" : "C\(k - denseCount)"
    }

    static let countFix = "a Criteo line has 40 fields separated by tabs: label, I1..I13, C1..C26 (a field may be empty, its tab may not)"

    /// Parses one line (without its line end) into `row`.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>, into row: inout CTRRow, file: String, line number: Int) throws {
        if row.dense.count != denseCount { row.dense = Array(repeating: 0, count: denseCount) }
        if row.ids.count != fieldCount { row.ids = Array(repeating: 0, count: fieldCount) }
        row.weights.removeAll(keepingCapacity: true)
        row.present = 0
        var tabs = 0
        for c in line where c == 0x09 { tabs += 1 }
        guard tabs == columns - 1 else { throw fieldCount(line, file: file, line: number) }
        var start = 0
        for k in 0..<columns {
            var end = start
            while end < line.count && line[end] != 0x09 { end += 1 }
            let field = UnsafeBufferPointer(rebasing: line[start..<end])
            try parseField(k, field, into: &row, file: file, line: number)
            start = end + 1
        }
    }

    static func parseField(_ k: Int, _ field: UnsafeBufferPointer<UInt8>, into row: inout CTRRow, file: String, line: Int) throws {
        func bad(_ problem: String, _ fix: String) -> DataError {
            .badRecord(file: file, line: line, field: columnName(k), problem: problem, fix: fix)
        }
        if k == 0 {
            guard field.count == 1, field[0] == 0x30 || field[0] == 0x31 else {
                throw bad("the label \(quoted(field)) is not 0 or 1", "the label is 0 (no click) or 1 (click)")
            }
            row.label = field[0] - 0x30
        } else if k <= denseCount {
            guard let v = integer(field) else {
                throw bad("\(quoted(field)) is not an integer (or is out of the 64-bit range)", "I1..I13 are whole numbers, may be negative or empty")
            }
            row.dense[k - 1] = Float(log1p(Double(max(v, 0))))
        } else if !field.isEmpty {
            let f = k - 1 - denseCount
            guard field.count <= 16 else {
                throw bad("\(quoted(field)) is longer than 16 hexadecimal digits", "C1..C26 are ids of up to 16 hexadecimal digits (64 bits), or empty")
            }
            guard let id = hex(field) else {
                throw bad("\(quoted(field)) is not hexadecimal", "C1..C26 are ids of up to 16 hexadecimal digits (0-9, a-f, A-F), or empty")
            }
            row.ids[f] = id
            row.present |= 1 << UInt32(f)
        }
    }

    /// The error of a line with other than 40 fields.
    static func fieldCount(_ line: UnsafeBufferPointer<UInt8>, file: String, line number: Int) -> DataError {
        let n = line.reduce(1) { $0 + ($1 == 0x09 ? 1 : 0) }
        let hint = n == columns - 1 ? " (39 fields: a file without labels, like Kaggle's test.txt, cannot be scored)" : ""
        return .badRecord(file: file, line: number, field: n < columns ? columnName(n) : "after C26",
                          problem: "the line has \(n) fields\(hint)", fix: countFix)
    }

    /// An optionally signed decimal integer, 0 when empty; nil when not one.
    static func integer(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        if b.isEmpty { return 0 }
        var i = 0
        let negative = b[0] == 0x2D
        if b[0] == 0x2D || b[0] == 0x2B { i = 1 }
        guard i < b.count else { return nil }
        var v: Int64 = 0
        while i < b.count {
            let d = Int64(b[i]) - 0x30
            guard d >= 0 && d <= 9 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            guard !o1 && !o2 else { return nil }
            v = s
            i += 1
        }
        return v
    }

    /// 1 to 16 hexadecimal digits as a UInt64; nil when a byte is not one.
    static func hex(_ b: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var v: UInt64 = 0
        for c in b {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            case 0x41...0x46: d = c - 0x41 + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }
}
