// The TOML reader's structure: documents, tables, keys, arrays and inline
// tables (TOMLScalars.swift reads the values inside them).


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
        var (t, path) = try headerParent(parts.dropLast())
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

    /// The table a header's last key goes into: its leading keys walked from
    /// the root, creating implicit tables (an array of tables: its last entry).
    mutating func headerParent(_ parts: ArraySlice<(String, Offset)>) throws -> (TOMLTable, [String]) {
        var t = root
        var path: [String] = []
        for (k, o) in parts {
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
        return (t, path)
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
}
