// Reading TOML: a TOML 1.0 reader written here, in memory-safe Swift.
//
// Why not a library: the package mirror's one TOML reader, LebJe/TOMLKit,
// wraps toml++, whose asserts stay live because SwiftPM compiles C++
// dependencies without NDEBUG. Malformed bytes could abort the process
// (SIGABRT inside toml++), from a configuration file, from `--set`, or from
// the configuration a checkpoint's manifest embeds, which `ckpt verify`,
// `inspect` and `resume` read: a damaged checkpoint must be reported, never
// crash the tool reading it (issue 20). A pre-scan that guessed toml++'s
// asserts one shape at a time kept missing shapes. This reader reports every
// malformed input as a ConfigError with its line and column, bounds nesting,
// and is fuzzed (fuzz/Sources/FuzzConfig, docs/fuzzing.md).

import PSSupport
import PSNumerics
import PSCodec

/// A configuration file read as TOML: its values, and where its keys are
/// defined.
struct TOMLDocument {
    /// The deepest a value may sit: each table-header part, dotted-key part,
    /// array and inline table is one level (`a.b = [1]`: the 1 is at level 3).
    static let maxDepth = 32

    let root: [String: ConfigValue]
    private let text: [UInt8]
    private let offsets: [[String]: TOMLReader.Offset]

    init(_ text: String, source: String) throws {
        var reader = TOMLReader(s: Array(text.utf8), source: source)
        try reader.document()
        self.text = reader.s
        offsets = reader.offsets
        root = reader.root.values
    }

    /// Where the file defines `path` (a key path; entries of arrays as
    /// "[n]").
    func position(_ path: [String]) -> SourcePosition? {
        guard let o = offsets[path] else { return nil }
        return SourcePosition(line: o.line, column: TOMLReader.column(text, lineStart: o.lineStart, at: o.at))
    }

    /// The value of `raw` as TOML value syntax (`--set key=raw`), or nil if
    /// it is not one.
    static func value(_ raw: String) -> ConfigValue? {
        (try? TOMLDocument("v = " + raw, source: "override"))?.root["v"]
    }
}

/// A table while the document is read. Its kind decides what may still add
/// to it (TOML 1.0): a table a header path only passed through (`[a.b]`
/// makes `a` implicit) may be defined by its own header later; a table
/// made by dotted keys takes more dotted keys, never a header of its own; a
/// header defines a table once. Inline tables and arrays are values, closed
/// as soon as they are read.
final class TOMLTable {
    enum Kind { case implicit, header, dotted }
    enum Entry {
        case value(ConfigValue)
        case table(TOMLTable)
        /// An array of tables (`[[a]]`), which later `[[a]]` headers extend.
        case tables([TOMLTable])
    }
    var kind: Kind
    var entries: [String: Entry] = [:]
    init(_ kind: Kind) { self.kind = kind }

    /// The table as plain values (depth is bounded by the reader).
    var values: [String: ConfigValue] {
        entries.mapValues {
            switch $0 {
            case .value(let v): return v
            case .table(let t): return .table(t.values)
            case .tables(let a): return .array(a.map { .table($0.values) })
            }
        }
    }
}

/// The reader: one pass over the UTF-8 bytes, building the tables and noting
/// where each key and array entry is defined (messages about values, such as
/// a wrong type or an unknown key, take their positions from there).
///
/// Every index is checked before it is read (`peek` answers 0 past the end),
/// integers are accumulated with overflow checks, and recursion is bounded by
/// TOMLDocument.maxDepth, so no input can trap.
struct TOMLReader {
    struct Offset { let line: Int; let lineStart: Int; let at: Int }

    let s: [UInt8]
    let source: String
    var i = 0
    var line = 1
    var lineStart = 0
    var offsets: [[String]: Offset] = [:]
    let root = TOMLTable(.header)

    init(s: [UInt8], source: String) { self.s = s; self.source = source }

    static func column(_ s: [UInt8], lineStart: Int, at: Int) -> Int {
        guard lineStart < s.count, lineStart < at else { return 1 }
        return s[lineStart..<min(at, s.count)].reduce(1) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
    }

    // MARK: characters

    var atEnd: Bool { i >= s.count }
    var peek: UInt8 { i < s.count ? s[i] : 0 }
    func peek(_ k: Int) -> UInt8 { i + k < s.count ? s[i + k] : 0 }
    var offset: Offset { Offset(line: line, lineStart: lineStart, at: i) }
    var isNewline: Bool { peek == 0x0A || (peek == 0x0D && peek(1) == 0x0A) }

    /// Past a line end (LF or CRLF) at `i`.
    mutating func newline() {
        i += peek == 0x0D ? 2 : 1
        line += 1
        lineStart = i
    }

    /// A syntax error at `o` (default: where the reader is).
    func error(_ what: String, _ why: String, at o: Offset? = nil) -> ConfigError {
        let o = o ?? offset
        return .parse(source: source, line: o.line, column: TOMLReader.column(s, lineStart: o.lineStart, at: o.at), message: "invalid TOML (\(what)): \(why)")
    }

    func tooDeep() -> ConfigError {
        .tooDeep(source: source, line: line, column: TOMLReader.column(s, lineStart: lineStart, at: i), limit: TOMLDocument.maxDepth)
    }

    /// The character at `i` as a message shows it.
    var shown: String {
        if atEnd { return "the end of the file" }
        let c = peek
        if c == 0x0A || (c == 0x0D && peek(1) == 0x0A) { return "the end of the line" }
        if c == 0x0D { return "a carriage return without a line feed" }
        if c < 0x20 || c == 0x7F {
            let hex = String(c, radix: 16, uppercase: true)
            return "control character 0x" + (hex.count < 2 ? "0" : "") + hex
        }
        let n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4
        return "'" + String(String(decoding: s[i..<min(i + n, s.count)], as: UTF8.self).prefix(1)) + "'"
    }

    /// Whether `c` may stand in a comment or a literal string: anything but
    /// control characters other than tab.
    static func isAllowedText(_ c: UInt8) -> Bool { c == 0x09 || (c >= 0x20 && c != 0x7F) }

    mutating func skipSpaces() { while peek == 0x20 || peek == 0x09 { i += 1 } }

    mutating func comment() throws {
        guard peek == UInt8(ascii: "#") else { return }
        i += 1
        while !atEnd && !isNewline {
            if !TOMLReader.isAllowedText(peek) {
                if peek == 0x0D { throw error("comment", "a carriage return must be followed by a line feed") }
                throw error("comment", "\(shown) is not allowed in a comment")
            }
            i += 1
        }
    }

    /// Spaces, comments and line ends (inside arrays).
    mutating func skipBlank() throws {
        while true {
            skipSpaces()
            if peek == UInt8(ascii: "#") { try comment() }
            if isNewline { newline() } else { return }
        }
    }

    /// The rest of a line after a key-value pair or a header: spaces and a
    /// comment, then a line end or the end of the file.
    mutating func endOfLine(after what: String) throws {
        skipSpaces()
        try comment()
        if atEnd { return }
        guard isNewline else { throw error(what, "expected the end of the line after it, saw \(shown)") }
        newline()
    }

    mutating func note(_ path: [String], _ o: Offset) {
        if offsets[path] == nil { offsets[path] = o }
    }

    // MARK: structure

    mutating func document() throws {
        if let z = s.firstIndex(of: 0) {
            let lineStart = (s[..<z].lastIndex(of: 0x0A) ?? -1) + 1
            throw ConfigError.parse(source: source, line: s[..<z].filter { $0 == 0x0A }.count + 1,
                                    column: TOMLReader.column(s, lineStart: lineStart, at: z), message: "a NUL byte (TOML allows no control characters)")
        }
        if s.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3; lineStart = 3 }   // a UTF-8 byte order mark
        var table = root
        var path: [String] = []
        while true {
            skipSpaces()
            if atEnd { return }
            if peek == UInt8(ascii: "#") || isNewline {
                try endOfLine(after: "comment")
            } else if peek == UInt8(ascii: "[") {
                (table, path) = try header()
                try endOfLine(after: "table header")
            } else {
                try keyValue(into: table, path: path, depth: path.count)
                try endOfLine(after: "key-value pair")
            }
        }
    }

    /// `[a.b]` or `[[a.b]]`: the table later keys go into, and its path (an
    /// array of tables' entry as "[n]").
    mutating func header() throws -> (TOMLTable, [String]) {
        let start = offset
        i += 1
        let isArray = peek == UInt8(ascii: "[")
        if isArray { i += 1 }
        let parts = try keyPath(depth: isArray ? 1 : 0, what: "table header")
        guard peek == UInt8(ascii: "]"), !isArray || peek(1) == UInt8(ascii: "]") else {
            throw error("table header", "expected '\(isArray ? "]]" : "]")' after the key, saw \(shown)")
        }
        i += isArray ? 2 : 1
        var t = root
        var path: [String] = []
        for (k, o) in parts.dropLast() {
            path.append(k)
            note(path, o)
            switch t.entries[k] {
            case nil:
                let n = TOMLTable(.implicit)
                t.entries[k] = .table(n)
                t = n
            case .table(let n)?:
                t = n
            case .tables(let a)?:
                path.append("[\(a.count - 1)]")
                t = a[a.count - 1]
            case .value(let v)?:
                throw error("table header", "'\(path.joined(separator: "."))' is already \(v.typeName) \(v), not a table", at: o)
            }
        }
        let (k, o) = parts[parts.count - 1]
        path.append(k)
        note(path, o)
        let name = path.joined(separator: ".")
        func twice(_ what: String) -> ConfigError {
            error("table header", "cannot define \(isArray ? "an array of tables" : "table") '\(name)': \(what)", at: o)
        }
        if isArray {
            let n = TOMLTable(.header)
            switch t.entries[k] {
            case nil:
                t.entries[k] = .tables([n])
                path.append("[0]")
            case .tables(var a)?:
                a.append(n)
                t.entries[k] = .tables(a)
                path.append("[\(a.count - 1)]")
            case .table?: throw twice("it is already a table")
            case .value(let v)?: throw twice("it is already \(v.typeName) \(v)")
            }
            note(path, start)
            return (n, path)
        }
        switch t.entries[k] {
        case nil:
            let n = TOMLTable(.header)
            t.entries[k] = .table(n)
            return (n, path)
        case .table(let n)? where n.kind == .implicit:
            n.kind = .header
            return (n, path)
        case .table(let n)?: throw twice(n.kind == .header ? "it is defined twice" : "dotted keys already defined it")
        case .tables?: throw twice("it is already an array of tables")
        case .value(let v)?: throw twice("it is already \(v.typeName) \(v)")
        }
    }

    /// `a.b = value` into `table`, whose keys sit at `depth`; `path` is the
    /// table's key path.
    mutating func keyValue(into table: TOMLTable, path: [String], depth: Int) throws {
        let parts = try keyPath(depth: depth, what: "key-value pair")
        guard peek == UInt8(ascii: "=") else { throw error("key-value pair", "expected '=' after the key, saw \(shown)") }
        i += 1
        skipSpaces()
        var t = table
        var full = path
        for (k, o) in parts.dropLast() {
            full.append(k)
            note(full, o)
            switch t.entries[k] {
            case nil:
                let n = TOMLTable(.dotted)
                t.entries[k] = .table(n)
                t = n
            case .table(let n)? where n.kind == .dotted:
                t = n
            default:
                throw error("key-value pair", "dotted keys cannot add to '\(full.joined(separator: "."))', "
                                + "defined elsewhere as \(describe(t.entries[k]))", at: o)
            }
        }
        let (k, o) = parts[parts.count - 1]
        full.append(k)
        note(full, o)
        if let e = t.entries[k] {
            throw error("key-value pair", "cannot redefine existing \(describe(e)) '\(full.joined(separator: "."))'", at: o)
        }
        t.entries[k] = .value(try value(full, depth: depth + parts.count))
    }

    func describe(_ e: TOMLTable.Entry?) -> String {
        switch e {
        case .value(let v)?: return v.typeName
        case .table?: return "table"
        case .tables?: return "array of tables"
        case nil: return "nothing"
        }
    }

    /// A dotted key; each part counts one level above `depth`. Spaces after
    /// it are skipped.
    mutating func keyPath(depth: Int, what: String) throws -> [(String, Offset)] {
        var parts: [(String, Offset)] = []
        while true {
            skipSpaces()
            if depth + parts.count + 1 > TOMLDocument.maxDepth { throw tooDeep() }
            let o = offset
            parts.append((try key(what), o))
            skipSpaces()
            guard peek == UInt8(ascii: ".") else { return parts }
            i += 1
        }
    }

    static func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }

    mutating func key(_ what: String) throws -> String {
        switch peek {
        case UInt8(ascii: "\""), UInt8(ascii: "'"): return try string(multiLine: false)
        default:
            let start = i
            while TOMLReader.isBareKey(peek) { i += 1 }
            guard i > start else { throw error(what, "expected a key, saw \(shown)") }
            return String(decoding: s[start..<i], as: UTF8.self)
        }
    }

    // MARK: values

    /// A value at `depth` (its key path `path`).
    mutating func value(_ path: [String], depth: Int) throws -> ConfigValue {
        if depth > TOMLDocument.maxDepth { throw tooDeep() }
        switch peek {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            return .string(try string(multiLine: peek(1) == peek && peek(2) == peek))
        case UInt8(ascii: "["):
            return try array(path, depth: depth)
        case UInt8(ascii: "{"):
            return try inlineTable(path, depth: depth)
        default:
            return try scalar()
        }
    }

    mutating func array(_ path: [String], depth: Int) throws -> ConfigValue {
        i += 1
        var entries: [ConfigValue] = []
        while true {
            try skipBlank()
            if peek == UInt8(ascii: "]") { i += 1; return .array(entries) }
            if atEnd || peek == UInt8(ascii: ",") || peek == UInt8(ascii: "}") {
                throw error("array", "expected a value or ']', saw \(shown)")
            }
            let entry = path + ["[\(entries.count)]"]
            note(entry, offset)
            entries.append(try value(entry, depth: depth + 1))
            try skipBlank()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            if peek == UInt8(ascii: "]") { i += 1; return .array(entries) }
            throw error("array", "expected ',' or ']' after an entry, saw \(shown)")
        }
    }

    /// `{ a = 1, b.c = 2 }`: on one line, no comma after the last pair
    /// (TOML 1.0); closed once read.
    mutating func inlineTable(_ path: [String], depth: Int) throws -> ConfigValue {
        i += 1
        let t = TOMLTable(.dotted)
        skipSpaces()
        if peek == UInt8(ascii: "}") { i += 1; return .table([:]) }
        while true {
            try keyValue(into: t, path: path, depth: depth)
            skipSpaces()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            if peek == UInt8(ascii: "}") { i += 1; return .table(t.values) }
            throw error("inline table", "expected ',' or '}' after a key-value pair (an inline table is one line), saw \(shown)")
        }
    }

    /// A boolean, number, date or time: the word up to what ends a value.
    mutating func scalar() throws -> ConfigValue {
        let start = offset
        func isWord(_ c: UInt8) -> Bool {
            TOMLReader.isBareKey(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":")
        }
        while isWord(peek) { i += 1 }
        // A date, one space and a time: "1979-05-27 07:32:00".
        if i - start.at == 10, s[start.at + 4] == UInt8(ascii: "-"), peek == 0x20,
           TOMLReader.isDigit(peek(1)), TOMLReader.isDigit(peek(2)), peek(3) == UInt8(ascii: ":") {
            i += 1
            while isWord(peek) { i += 1 }
        }
        let word = Array(s[start.at..<i])
        func bad(_ what: String, _ why: String) -> ConfigError { error(what, why, at: start) }
        let text = String(decoding: word, as: UTF8.self)
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        guard let first = word.first, TOMLReader.isDigit(first) || first == UInt8(ascii: "+") || first == UInt8(ascii: "-") else {
            throw bad("value", "could not determine value type (strings need quotes)")
        }
        let isTime = word.count >= 3 && word[0..<2].allSatisfy(TOMLReader.isDigit) && word[2] == UInt8(ascii: ":")
        let isDate = word.count >= 5 && word[0..<4].allSatisfy(TOMLReader.isDigit) && word[4] == UInt8(ascii: "-")
        if isTime || isDate {
            guard let d = TOMLReader.dateTime(word) else {
                throw bad("date-time", "'\(text)' is not a date (YYYY-MM-DD), a time (HH:MM:SS) or a date and time with an optional offset")
            }
            return .dateTime(d)
        }
        return try TOMLReader.number(word, text) { bad($0, $1) }
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// Digits of `radix` with single underscores between them; nil if `w`
    /// breaks that rule.
    static func digits(_ w: ArraySlice<UInt8>, radix: Int) -> [UInt8]? {
        var out: [UInt8] = []
        var lastWasDigit = false
        for c in w {
            if c == UInt8(ascii: "_") {
                guard lastWasDigit else { return nil }
                lastWasDigit = false
                continue
            }
            let v: Int
            switch c {
            case 0x30...0x39: v = Int(c - 0x30)
            case 0x61...0x66: v = Int(c - 0x61 + 10)
            case 0x41...0x46: v = Int(c - 0x41 + 10)
            default: return nil
            }
            guard v < radix else { return nil }
            out.append(UInt8(v))
            lastWasDigit = true
        }
        return lastWasDigit ? out : nil
    }

    /// An integer or a float, by TOML's grammar (not Swift's or C's).
    static func number(_ w: [UInt8], _ text: String, _ bad: (String, String) -> ConfigError) throws -> ConfigValue {
        if w.count > 2, w[0] == UInt8(ascii: "0"), let radix = [UInt8(ascii: "x"): 16, UInt8(ascii: "o"): 8, UInt8(ascii: "b"): 2][w[1]] {
            guard let ds = digits(w[2...], radix: radix) else { throw bad("integer", "'\(text)' is not a base-\(radix) integer") }
            var v: UInt64 = 0
            for d in ds {
                let (m, o1) = v.multipliedReportingOverflow(by: UInt64(radix))
                let (a, o2) = m.addingReportingOverflow(UInt64(d))
                guard !o1 && !o2 else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
                v = a
            }
            guard v <= UInt64(Int64.max) else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
            return .integer(Int(v))
        }
        var j = 0
        let negative = w.first == UInt8(ascii: "-")
        if w.first == UInt8(ascii: "-") || w.first == UInt8(ascii: "+") { j = 1 }
        // The integer part: up to '.', 'e' or 'E'.
        var k = j
        while k < w.count && w[k] != UInt8(ascii: ".") && w[k] != UInt8(ascii: "e") && w[k] != UInt8(ascii: "E") { k += 1 }
        guard let whole = digits(w[j..<k], radix: 10) else {
            throw bad("number", "'\(text)' is not a number (digits, with single underscores between them)")
        }
        if whole.count > 1 && whole[0] == 0 { throw bad("number", "'\(text)': leading zeroes are not allowed") }
        if k == w.count {
            var v: UInt64 = 0
            for d in whole {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(d))
                guard !o1 && !o2 else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
                v = a
            }
            if negative {
                guard v <= UInt64(Int64.max) + 1 else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
                return .integer(v == UInt64(Int64.max) + 1 ? Int.min : -Int(v))
            }
            guard v <= UInt64(Int64.max) else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
            return .integer(Int(v))
        }
        var clean = String(decoding: w[0..<j], as: UTF8.self) + String(decoding: whole.map { $0 + 0x30 }, as: UTF8.self)
        if w[k] == UInt8(ascii: ".") {
            var e = k + 1
            while e < w.count && w[e] != UInt8(ascii: "e") && w[e] != UInt8(ascii: "E") { e += 1 }
            guard let frac = digits(w[(k + 1)..<e], radix: 10) else {
                throw bad("float", "'\(text)' needs digits after the decimal point")
            }
            clean += "." + String(decoding: frac.map { $0 + 0x30 }, as: UTF8.self)
            k = e
        }
        if k < w.count {   // an exponent
            var e = k + 1
            var sign = ""
            if e < w.count && (w[e] == UInt8(ascii: "+") || w[e] == UInt8(ascii: "-")) { sign = w[e] == UInt8(ascii: "-") ? "-" : ""; e += 1 }
            guard let exp = digits(w[e...], radix: 10) else { throw bad("float", "'\(text)' has no exponent digits") }
            // Beyond 4 significant digits an exponent only over- or underflows.
            let significant = exp.drop { $0 == 0 }
            clean += "e" + sign + (significant.count > 5 ? "99999" : (significant.isEmpty ? "0" : String(decoding: significant.map { $0 + 0x30 }, as: UTF8.self)))
        }
        guard let d = Double(clean) else { throw bad("float", "'\(text)' is not a float") }
        guard d.isFinite else { throw bad("float", "'\(text)' is beyond a 64-bit float's range (write inf for infinity)") }
        return .float(d)
    }

    /// A date, time or date-time checked field by field; as text (the
    /// separator written 'T', a zone 'Z').
    static func dateTime(_ w: [UInt8]) -> String? {
        var j = 0
        func num(_ n: Int) -> Int? {
            guard j + n <= w.count else { return nil }
            var v = 0
            for c in w[j..<(j + n)] { guard isDigit(c) else { return nil }; v = v * 10 + Int(c - 0x30) }
            j += n
            return v
        }
        func take(_ c: Character) -> Bool {
            guard j < w.count, w[j] == c.asciiValue! else { return false }
            j += 1
            return true
        }
        func time() -> Bool {
            guard let h = num(2), h < 24, take(":"), let m = num(2), m < 60, take(":"), let sec = num(2), sec <= 60 else { return false }
            if take(".") {
                let from = j
                while j < w.count && isDigit(w[j]) { j += 1 }
                if j == from { return false }
            }
            return true
        }
        var out = w
        if w.count > 2 && w[2] == UInt8(ascii: ":") {
            return time() && j == w.count ? String(decoding: w, as: UTF8.self) : nil
        }
        guard let y = num(4), take("-"), let mo = num(2), (1...12).contains(mo), take("-"), let d = num(2) else { return nil }
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]
        guard d >= 1 && d <= days else { return nil }
        if j == w.count { return String(decoding: w, as: UTF8.self) }
        guard w[j] == UInt8(ascii: "T") || w[j] == UInt8(ascii: "t") || w[j] == 0x20 else { return nil }
        out[j] = UInt8(ascii: "T")
        j += 1
        guard time() else { return nil }
        if j < w.count {
            if w[j] == UInt8(ascii: "Z") || w[j] == UInt8(ascii: "z") {
                out[j] = UInt8(ascii: "Z")
                j += 1
            } else if w[j] == UInt8(ascii: "+") || w[j] == UInt8(ascii: "-") {
                j += 1
                guard let h = num(2), h < 24, take(":"), let m = num(2), m < 60 else { return nil }
            } else {
                return nil
            }
        }
        return j == w.count ? String(decoding: out, as: UTF8.self) : nil
    }

    // MARK: strings

    /// A string of either kind, starting at its first quote: basic ("..."
    /// or """...""", escapes decoded) or literal ('...' or '''...''', taken
    /// as written).
    mutating func string(multiLine: Bool) throws -> String {
        let q = peek, basic = q == UInt8(ascii: "\"")
        i += multiLine ? 3 : 1
        if multiLine && isNewline { newline() }   // a line end right after the quotes is not content
        var bytes: [UInt8] = []
        while true {
            if atEnd { throw error("string", "the string does not end (no closing quote)") }
            let c = peek
            if c == q {
                if !multiLine { i += 1; return String(decoding: bytes, as: UTF8.self) }
                if peek(1) == c && peek(2) == c {
                    // Up to two quotes may end the contents right before the closing three.
                    var extra = 0
                    while extra < 2 && peek(3) == c { bytes.append(c); i += 1; extra += 1 }
                    i += 3
                    return String(decoding: bytes, as: UTF8.self)
                }
                bytes.append(c)
                i += 1
            } else if isNewline {
                guard multiLine else { throw error("string", "the string does not end on its line (no closing quote)") }
                bytes.append(0x0A)
                newline()
            } else if basic && c == UInt8(ascii: "\\") {
                try escape(into: &bytes, multiLine: multiLine)
            } else if TOMLReader.isAllowedText(c) {
                bytes.append(c)
                i += 1
            } else {
                throw error("string", basic ? "\(shown) must be escaped in a string" : "\(shown) is not allowed in a literal string")
            }
        }
    }

    mutating func escape(into bytes: inout [UInt8], multiLine: Bool) throws {
        let e = peek(1)
        switch e {
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = e == UInt8(ascii: "u") ? 4 : 8
            guard i + 2 + n <= s.count, s[(i + 2)..<(i + 2 + n)].allSatisfy({ TOMLReader.isHex($0) }) else {
                throw error("string", "\\\(Character(UnicodeScalar(e))) needs \(n) hexadecimal digits")
            }
            let digits = String(decoding: s[(i + 2)..<(i + 2 + n)], as: UTF8.self)
            guard let v = UInt32(digits, radix: 16), let u = Unicode.Scalar(v) else {
                throw error("string", "\\\(Character(UnicodeScalar(e)))\(digits) is not a Unicode scalar value")
            }
            if v == 0 {
                throw ConfigError.parse(source: source, line: line, column: TOMLReader.column(s, lineStart: lineStart, at: i),
                                        message: "a string holds \\\(Character(UnicodeScalar(e)))\(digits) (NUL), which configuration values cannot carry")
            }
            bytes.append(contentsOf: Array(String(Character(u)).utf8))
            i += 2 + n
        case UInt8(ascii: "n"): bytes.append(0x0A); i += 2
        case UInt8(ascii: "t"): bytes.append(0x09); i += 2
        case UInt8(ascii: "r"): bytes.append(0x0D); i += 2
        case UInt8(ascii: "b"): bytes.append(0x08); i += 2
        case UInt8(ascii: "f"): bytes.append(0x0C); i += 2
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(e); i += 2
        default:
            // A line-ending backslash (multi-line strings): drop the line end
            // and the blanks after it.
            if multiLine {
                var j = i + 1
                while j < s.count && (s[j] == 0x20 || s[j] == 0x09) { j += 1 }
                if j < s.count && (s[j] == 0x0A || (s[j] == 0x0D && j + 1 < s.count && s[j + 1] == 0x0A)) {
                    i = j
                    while true {
                        skipSpaces()
                        if isNewline { newline() } else { return }
                    }
                }
            }
            throw error("string", "a backslash must start one of TOML's escapes (\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)")
        }
    }

    static func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) }
}
