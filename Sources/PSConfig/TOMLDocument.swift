// Reading TOML: LebJe/TOMLKit (toml++) parses; this file turns its tree into
// ConfigValues at once and frees it, after a pre-scan that TOMLKit needs
// around it (see TOMLScanner).

import TOMLKit
import PSSupport
import PSNumerics
import PSCodec

/// A configuration file read with TOMLKit: its values, and where its keys
/// are defined.
struct TOMLDocument {
    /// The deepest a value may sit: each table-header part, dotted-key part,
    /// array and inline table is one level (`a.b = [1]`: the 1 is at level 3).
    static let maxDepth = 32

    let root: [String: ConfigValue]
    private let text: [UInt8]
    private let offsets: [[String]: TOMLScanner.Offset]

    init(_ text: String, source: String) throws {
        let scan = try TOMLScanner.scan(text, source: source)
        self.text = scan.s
        offsets = scan.offsets
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError.parse(source: source, line: e.source.begin.line, column: e.source.begin.column,
                                    message: TOMLDocument.explain(e.description))
        }
        // TOMLKit 0.6.0 never deletes a parsed document; clearing the root
        // frees every node under it (only the empty root table is left).
        defer { table.clear() }
        root = TOMLDocument.dictionary(table)
    }

    /// Where the file defines `path` (a key path; entries of arrays as
    /// "[n]"), if the scan saw it.
    func position(_ path: [String]) -> SourcePosition? {
        guard let o = offsets[path] else { return nil }
        return SourcePosition(line: o.line, column: TOMLScanner.column(text, lineStart: o.lineStart, at: o.at))
    }

    /// The value of `raw` as TOML value syntax (`--set key=raw`), or nil if
    /// it is not one.
    static func value(_ raw: String) -> ConfigValue? {
        (try? TOMLDocument("v = " + raw, source: "override"))?.root["v"]
    }

    static func dictionary(_ t: TOMLTable) -> [String: ConfigValue] {
        var d: [String: ConfigValue] = [:]
        for k in t.keys { d[k] = value(t[k]!) }
        return d
    }

    static func value(_ v: TOMLValueConvertible) -> ConfigValue {
        switch v.type {
        case .string: return .string(v.string!)
        case .int: return .integer(v.int!)
        case .double: return .float(v.double!)
        case .bool: return .bool(v.bool!)
        case .array:
            let a = v.array!
            return .array((0..<a.count).map { value(a[$0]) })
        case .table: return .table(dictionary(v.table!))
        case .date: return .dateTime(v.date!.debugDescription)
        case .time: return .dateTime(v.time!.debugDescription)
        case .dateTime:
            // Written here: TOMLKit's own text gives a local date-time a "Z".
            let dt = v.dateTime!
            var offset = ""
            if let o = dt.offset?.offset {
                let m = abs(o)
                offset = o == 0 ? "Z" : (o < 0 ? "-" : "+") + (m / 60 < 10 ? "0" : "") + "\(m / 60):" + (m % 60 < 10 ? "0" : "") + "\(m % 60)"
            }
            return .dateTime(dt.date.debugDescription + "T" + dt.time.debugDescription + offset)
        }
    }

    /// toml++'s message ("Error while parsing value: could not determine
    /// value type") as "invalid TOML (value): could not determine value
    /// type", with the likely fix for the commonest mistake.
    static func explain(_ message: String) -> String {
        var m = message
        let prefix = "Error while parsing "
        if m.hasPrefix(prefix), let colon = m.range(of: ": ") {
            m = "invalid TOML (" + m[m.index(m.startIndex, offsetBy: prefix.count)..<colon.lowerBound] + "): " + m[colon.upperBound...]
        } else {
            m = "invalid TOML: " + m
        }
        if m.hasSuffix("could not determine value type") { m += " (strings need quotes)" }
        return m
    }
}

/// A pass over the text before TOMLKit parses it, for three things TOMLKit
/// does not do:
///
/// - Bound nesting. toml++ stops nested arrays and inline tables at 256
///   levels, but not dotted keys or table headers (`[k.k.k...]`), and it
///   builds and frees nested tables recursively: a key 100,000 parts long
///   would overflow the stack. The scan refuses anything nested deeper than
///   TOMLDocument.maxDepth, counting as the hand-written reader did, with
///   the line and column.
/// - Refuse NUL: TOMLKit hands the text and takes strings back as C strings,
///   so a NUL byte or a \u0000 escape would silently cut them short.
/// - Note where each key and array entry is defined: TOMLKit 0.6.0 gives a
///   position only with a syntax error, none for a node, so messages about
///   values (wrong type, unknown key, bad layer) take theirs from here.
///
/// The scan follows TOML's lexical rules (strings, comments, keys, arrays,
/// inline tables); where it cannot follow a line it skips to the next one and
/// leaves the error to TOMLKit.
struct TOMLScanner {
    struct Offset { let line: Int; let lineStart: Int; let at: Int }

    let s: [UInt8]
    let source: String
    var i = 0
    var line = 1
    var lineStart = 0
    var offsets: [[String]: Offset] = [:]
    var tableArrays: [[String]: Int] = [:]

    static func scan(_ text: String, source: String) throws -> TOMLScanner {
        var sc = TOMLScanner(s: Array(text.utf8), source: source)
        if let z = sc.s.firstIndex(of: 0) {
            let lineStart = (sc.s[..<z].lastIndex(of: 0x0A) ?? -1) + 1
            throw ConfigError.parse(source: source, line: sc.s[..<z].filter { $0 == 0x0A }.count + 1,
                                    column: column(sc.s, lineStart: lineStart, at: z), message: "a NUL byte (TOML allows no control characters)")
        }
        if sc.s.starts(with: [0xEF, 0xBB, 0xBF]) { sc.i = 3; sc.lineStart = 3 }   // a UTF-8 byte order mark, which toml++ skips
        try sc.document()
        return sc
    }

    static func column(_ s: [UInt8], lineStart: Int, at: Int) -> Int {
        s[lineStart..<min(at, s.count)].reduce(1) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
    }

    // MARK: characters

    var atEnd: Bool { i >= s.count }
    var peek: UInt8 { i < s.count ? s[i] : 0 }
    func peek(_ k: Int) -> UInt8 { i + k < s.count ? s[i + k] : 0 }
    var offset: Offset { Offset(line: line, lineStart: lineStart, at: i) }

    mutating func newline() { i += 1; line += 1; lineStart = i }

    func tooDeep() -> ConfigError {
        .tooDeep(source: source, line: line, column: TOMLScanner.column(s, lineStart: lineStart, at: i), limit: TOMLDocument.maxDepth)
    }

    mutating func skipSpaces() { while peek == 0x20 || peek == 0x09 { i += 1 } }

    /// Spaces, tabs, comments and line ends.
    mutating func skipBlank() {
        while !atEnd {
            switch peek {
            case 0x20, 0x09, 0x0D: i += 1
            case 0x0A: newline()
            case UInt8(ascii: "#"): while !atEnd && peek != 0x0A { i += 1 }
            default: return
            }
        }
    }

    mutating func skipLine() {
        while !atEnd && peek != 0x0A { i += 1 }
        if !atEnd { newline() }
    }

    mutating func note(_ path: [String], _ o: Offset) {
        if offsets[path] == nil { offsets[path] = o }
    }

    // MARK: structure

    mutating func document() throws {
        var table: [String] = []
        while true {
            skipBlank()
            if atEnd { return }
            let ok = peek == UInt8(ascii: "[") ? try header(&table) : try keyValue(table, depth: table.count)
            if !ok { skipLine() }
        }
    }

    /// `[a.b]` or `[[a.b]]`; `table` becomes the path later keys sit under
    /// (an array of tables' entry as "[n]").
    mutating func header(_ table: inout [String]) throws -> Bool {
        let start = offset
        i += 1
        let isArray = peek == UInt8(ascii: "[")
        if isArray { i += 1 }
        // toml++ 3.4.0 asserts (aborts, in a debug build) when a header's key
        // starts with anything but a key character, a quote or ']'.
        skipSpaces()
        if !atEnd && !(isKeyStart(peek) || peek == UInt8(ascii: "]")) {
            let hex = String(peek, radix: 16, uppercase: true)
            let shown = peek < 0x20 || peek == 0x7F ? "control character 0x" + (hex.count < 2 ? "0" : "") + hex
                : "'" + String(String(decoding: s[i..<min(i + 4, s.count)], as: UTF8.self).prefix(1)) + "'"
            throw ConfigError.parse(source: source, line: line, column: TOMLScanner.column(s, lineStart: lineStart, at: i),
                                    message: "invalid TOML (table header): expected a key, saw \(shown)")
        }
        guard let parts = try keyPath(depth: isArray ? 1 : 0) else { return false }
        skipSpaces()
        guard peek == UInt8(ascii: "]"), !isArray || peek(1) == UInt8(ascii: "]") else { return false }
        i += isArray ? 2 : 1
        var path = parts.map { $0.0 }
        for k in parts.indices { note(Array(path[...k]), parts[k].1) }
        if isArray {
            let n = tableArrays[path, default: 0]
            tableArrays[path] = n + 1
            path.append("[\(n)]")
            note(path, start)
        }
        table = path
        return true
    }

    /// `a.b = value` under `table`, whose value sits at `depth` plus the
    /// key's parts.
    mutating func keyValue(_ table: [String], depth: Int) throws -> Bool {
        guard let parts = try keyPath(depth: depth) else { return false }
        for k in parts.indices { note(table + parts[...k].map { $0.0 }, parts[k].1) }
        skipSpaces()
        guard peek == UInt8(ascii: "=") else { return false }
        i += 1
        skipSpaces()
        return try value(table + parts.map { $0.0 }, depth: depth + parts.count)
    }

    /// A dotted key; each part counts one level above `depth`.
    mutating func keyPath(depth: Int) throws -> [(String, Offset)]? {
        var parts: [(String, Offset)] = []
        while true {
            skipSpaces()
            if depth + parts.count + 1 > TOMLDocument.maxDepth { throw tooDeep() }
            let o = offset
            guard let k = try key() else { return nil }
            parts.append((k, o))
            skipSpaces()
            guard peek == UInt8(ascii: ".") else { return parts }
            i += 1
        }
    }

    /// A bare-key character or a quote.
    func isKeyStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
            || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")
    }

    mutating func key() throws -> String? {
        switch peek {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            if peek(1) == peek && peek(2) == peek { return nil }   // no multi-line keys
            return try string()
        default:
            let start = i
            while !atEnd {
                let c = peek
                guard (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D else { break }
                i += 1
            }
            return start == i ? nil : String(decoding: s[start..<i], as: UTF8.self)
        }
    }

    /// A value at `depth` (its key path `path`).
    mutating func value(_ path: [String], depth: Int) throws -> Bool {
        if depth > TOMLDocument.maxDepth { throw tooDeep() }
        switch peek {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            return try string() != nil
        case UInt8(ascii: "["):
            i += 1
            var n = 0
            while true {
                skipBlank()
                if atEnd { return false }
                if peek == UInt8(ascii: "]") { i += 1; return true }
                if peek == UInt8(ascii: ",") { return false }
                // toml++ asserts when an entry starts with what ends a value.
                if isValueTerminator(i) { throw syntax("array", "expected a value or ']'") }
                let entry = path + ["[\(n)]"]
                note(entry, offset)
                guard try value(entry, depth: depth + 1) else { return false }
                n += 1
                skipBlank()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                if peek == UInt8(ascii: "]") { i += 1; return true }
                return false
            }
        case UInt8(ascii: "{"):
            i += 1
            skipSpaces()
            if peek == UInt8(ascii: "}") { i += 1; return true }
            while true {
                guard try keyValue(path, depth: depth) else { return false }
                skipSpaces()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                if peek == UInt8(ascii: "}") { i += 1; return true }
                return false
            }
        default:   // number, boolean, date: up to what toml++ takes as its end
            let start = i
            var chars: [UInt8] = []
            while !atEnd && !isValueTerminator(i) {
                if peek != UInt8(ascii: "_") { chars.append(peek) }
                i += scalarLength(i)
            }
            // A date, one space and a time ("1979-05-27 07:32:00"), as toml++
            // looks ahead for one. It asserts (aborts, in a debug build) when
            // the time is a single digit: "1979-05-27 1".
            // Any ten characters with dashes where a date has them count:
            // toml++ also took "19'9-05-27 0" for a date and asserted (the
            // config fuzzer found it); a value followed by a space and one
            // digit is never valid TOML anyway.
            if chars.count == 10, chars[4] == UInt8(ascii: "-"), chars[7] == UInt8(ascii: "-"),
               peek == 0x20, peek(1) >= 0x30 && peek(1) <= 0x39 {
                if i + 2 >= s.count || isValueTerminator(i + 2) {
                    i += 1
                    throw syntax("date-time", "expected a time (HH:MM:SS) after the date and space, saw one digit")
                }
                i += 2
                while !atEnd && !isValueTerminator(i) { i += scalarLength(i) }
            }
            return i > start
        }
    }

    /// A syntax error TOMLKit would report, reported first because toml++
    /// 3.4.0 asserts on it instead (aborting a debug build).
    func syntax(_ what: String, _ why: String) -> ConfigError {
        .parse(source: source, line: line, column: TOMLScanner.column(s, lineStart: lineStart, at: i), message: "invalid TOML (\(what)): \(why)")
    }

    /// The length of the UTF-8 sequence at `j` (1 for a stray byte).
    func scalarLength(_ j: Int) -> Int {
        let b = s[j]
        let n = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
        return min(n, s.count - j)
    }

    /// Whether the character at `j` ends a value for toml++: whitespace
    /// (its list, Unicode's included), a line break, ']', '}', ',' or '#'.
    func isValueTerminator(_ j: Int) -> Bool {
        let b = s[j]
        if b < 0x80 {
            return b == 0x20 || b == 0x09 || (b >= 0x0A && b <= 0x0D) || b == UInt8(ascii: "]") || b == UInt8(ascii: "}")
                || b == UInt8(ascii: ",") || b == UInt8(ascii: "#")
        }
        let n = scalarLength(j)
        guard let u = String(decoding: s[j..<(j + n)], as: UTF8.self).unicodeScalars.first?.value else { return false }
        return u == 0xA0 || u == 0x85 || u == 0x1680 || u == 0x180E || (u >= 0x2000 && u <= 0x200B) || u == 0x2028 || u == 0x2029
            || u == 0x202F || u == 0x205F || u == 0x2060 || u == 0x3000 || u == 0xFEFF
    }

    /// A string of any of TOML's four kinds, starting at its quote; its
    /// contents (escapes decoded for basic strings), or nil if it does not
    /// end where TOML says it must.
    mutating func string() throws -> String? {
        let q = peek
        let basic = q == UInt8(ascii: "\"")
        let multi = peek(1) == q && peek(2) == q
        i += multi ? 3 : 1
        var bytes: [UInt8] = []
        while true {
            guard !atEnd else { return nil }
            let c = peek
            if c == q {
                if !multi { i += 1; return String(decoding: bytes, as: UTF8.self) }
                if peek(1) == q && peek(2) == q {
                    i += 3
                    // Up to two quotes may end the contents right before the closing three.
                    var extra = 0
                    while extra < 2 && peek == q { i += 1; extra += 1; bytes.append(q) }
                    return String(decoding: bytes, as: UTF8.self)
                }
                bytes.append(c)
                i += 1
            } else if c == 0x0A {
                guard multi else { return nil }
                bytes.append(c)
                newline()
            } else if c == UInt8(ascii: "\\") && basic {
                let e = peek(1)
                switch e {
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    let digits = i + 2 + n <= s.count ? String(decoding: s[(i + 2)..<(i + 2 + n)], as: UTF8.self) : ""
                    if let v = UInt32(digits, radix: 16), v == 0 {
                        throw ConfigError.parse(source: source, line: line, column: TOMLScanner.column(s, lineStart: lineStart, at: i),
                                                message: "a string holds \\\(String(UnicodeScalar(e)))\(digits) (NUL), which configuration values cannot carry")
                    }
                    if let v = UInt32(digits, radix: 16), let u = Unicode.Scalar(v) {
                        bytes.append(contentsOf: Array(String(Character(u)).utf8))
                        i += 2 + n
                    } else {
                        i += 2
                    }
                case UInt8(ascii: "n"): bytes.append(0x0A); i += 2
                case UInt8(ascii: "t"): bytes.append(0x09); i += 2
                case UInt8(ascii: "r"): bytes.append(0x0D); i += 2
                case UInt8(ascii: "b"): bytes.append(0x08); i += 2
                case UInt8(ascii: "f"): bytes.append(0x0C); i += 2
                case 0x0A:
                    i += 1
                    newline()   // a line-ending backslash (multi-line strings)
                default:
                    if e != 0 { bytes.append(e) }
                    i += e == 0 ? 1 : 2
                }
            } else {
                bytes.append(c)
                i += 1
            }
        }
    }
}
