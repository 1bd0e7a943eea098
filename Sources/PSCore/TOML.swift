// A small TOML reader: the subset pstrain's configuration uses.
//
// Supported: comments, [tables] and [dotted.tables], bare/quoted/dotted keys,
// basic and literal strings (single line), integers (with _ separators, hex),
// floats (exponents, inf, nan), booleans, arrays (multi-line, trailing comma)
// and inline tables. Not supported (a clear error): multi-line strings, dates,
// arrays of tables. Every error names the file and line.

public indirect enum TOMLValue: Equatable, CustomStringConvertible {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .bool: return "boolean"
        case .array: return "array"
        case .table: return "table"
        }
    }

    /// The value written back as TOML (used for run.toml and diffs).
    public var description: String {
        switch self {
        case .string(let s): return tomlQuote(s)
        case .integer(let i): return String(i)
        case .float(let d):
            if d.isNaN { return "nan" }
            if d.isInfinite { return d < 0 ? "-inf" : "inf" }
            let s = "\(d)"
            return s.contains(".") || s.contains("e") ? s : s + ".0"
        case .bool(let b): return b ? "true" : "false"
        case .array(let a): return "[" + a.map { $0.description }.joined(separator: ", ") + "]"
        case .table(let t):
            return "{ " + t.keys.map { "\(tomlKey($0)) = \(t[$0]!.description)" }.joined(separator: ", ") + " }"
        }
    }
}

/// An ordered table: keys keep the order they were written in.
public struct TOMLTable: Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]
    public init() {}
    public subscript(key: String) -> TOMLValue? {
        get { values[key] }
        set {
            if let v = newValue {
                if values[key] == nil { keys.append(key) }
                values[key] = v
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// TOML basic strings escape exactly as JSON strings do.
func tomlQuote(_ s: String) -> String { jsonQuote(s) }

func tomlKey(_ k: String) -> String {
    let bare = !k.isEmpty && k.unicodeScalars.allSatisfy {
        ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "_" || $0 == "-"
    }
    return bare ? k : tomlQuote(k)
}

public enum TOML {
    /// Parses `text`; `source` names the file in error messages.
    public static func parse(_ text: String, source: String) throws -> TOMLTable {
        var p = TOMLParser(Array(text.utf8), source: source)
        return try p.parseDocument()
    }
}

struct TOMLParser {
    let s: [UInt8]
    let source: String
    var i = 0
    var line = 1
    /// How deep the value being parsed lies: the table a line's key path
    /// names, then each array, inline table and dotted key part inside it.
    var depth = 0
    /// The deepest nesting a document may have (and the most parts a dotted
    /// key may have). The parser and the code that walks its tables recurse
    /// once per level: deeper input is an error, not a stack overflow.
    static let maxDepth = 64

    init(_ s: [UInt8], source: String) { self.s = s; self.source = source }

    func error(_ msg: String) -> PSError { PSError("\(source):\(line): \(msg)") }

    /// Enters `levels` more levels of nesting.
    mutating func nest(_ levels: Int) throws {
        depth += levels
        if depth > TOMLParser.maxDepth {
            throw error("tables, arrays and dotted keys nested deeper than \(TOMLParser.maxDepth) levels")
        }
    }

    var atEnd: Bool { i >= s.count }
    var peek: UInt8 { i < s.count ? s[i] : 0 }

    mutating func skipSpaces() { while !atEnd && (peek == 0x20 || peek == 0x09) { i += 1 } }
    mutating func skipComment() {
        if peek == UInt8(ascii: "#") { while !atEnd && peek != 0x0A { i += 1 } }
    }
    /// Skips spaces, comments and newlines (inside arrays).
    mutating func skipBlank() {
        while !atEnd {
            skipSpaces(); skipComment()
            if peek == 0x0D { i += 1; continue }
            if peek == 0x0A { i += 1; line += 1; continue }
            break
        }
    }
    mutating func expectLineEnd() throws {
        skipSpaces(); skipComment()
        if peek == 0x0D { i += 1 }
        if atEnd { return }
        guard peek == 0x0A else { throw error("expected the end of the line, found '\(String(decoding: [peek], as: UTF8.self))'") }
        i += 1; line += 1
    }

    mutating func parseDocument() throws -> TOMLTable {
        var root = TOMLTable()
        var current: [String] = []
        var definedTables = Set<[String]>()
        while true {
            skipBlank()
            if atEnd { break }
            if peek == UInt8(ascii: "[") {
                i += 1
                if peek == UInt8(ascii: "[") { throw error("arrays of tables ([[...]]) are not supported") }
                skipSpaces()
                let path = try parseKeyPath()
                skipSpaces()
                guard peek == UInt8(ascii: "]") else { throw error("expected ']' to close the table header") }
                i += 1
                if definedTables.contains(path) { throw error("table [\(path.joined(separator: "."))] is defined twice") }
                definedTables.insert(path)
                try ensureTable(&root, path, 0)
                current = path
                try expectLineEnd()
            } else {
                let path = try parseKeyPath()
                skipSpaces()
                guard peek == UInt8(ascii: "=") else { throw error("expected '=' after key '\(path.joined(separator: "."))'") }
                i += 1
                skipSpaces()
                depth = 0
                try nest(current.count + path.count)
                let v = try parseValue()
                try insert(&root, current + path, v, 0)
                try expectLineEnd()
            }
        }
        return root
    }

    func ensureTable(_ t: inout TOMLTable, _ path: [String], _ k: Int) throws {
        if k == path.count { return }
        var sub: TOMLTable
        switch t[path[k]] {
        case nil: sub = TOMLTable()
        case .table(let existing)?: sub = existing
        case let other?: throw error("key '\(path[...k].joined(separator: "."))' is a \(other.typeName), not a table")
        }
        try ensureTable(&sub, path, k + 1)
        t[path[k]] = .table(sub)
    }

    func insert(_ t: inout TOMLTable, _ path: [String], _ v: TOMLValue, _ k: Int) throws {
        let key = path[k]
        if k == path.count - 1 {
            if t[key] != nil { throw error("key '\(path.joined(separator: "."))' is defined twice") }
            t[key] = v
            return
        }
        var sub: TOMLTable
        switch t[key] {
        case nil: sub = TOMLTable()
        case .table(let existing)?: sub = existing
        case let other?: throw error("key '\(path[...k].joined(separator: "."))' is a \(other.typeName), not a table")
        }
        try insert(&sub, path, v, k + 1)
        t[key] = .table(sub)
    }

    mutating func parseKeyPath() throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            parts.append(try parseKey())
            if parts.count > TOMLParser.maxDepth { throw error("a key of more than \(TOMLParser.maxDepth) dotted parts") }
            skipSpaces()
            if peek == UInt8(ascii: ".") { i += 1; continue }
            return parts
        }
    }

    mutating func parseKey() throws -> String {
        if peek == UInt8(ascii: "\"") { return try parseBasicString() }
        if peek == UInt8(ascii: "'") { return try parseLiteralString() }
        let start = i
        while !atEnd {
            let c = peek
            if (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D { i += 1 } else { break }
        }
        if start == i { throw error(atEnd ? "expected a key, found the end of the file" : "expected a key, found '\(String(decoding: [peek], as: UTF8.self))'") }
        return String(decoding: s[start..<i], as: UTF8.self)
    }

    mutating func parseValue() throws -> TOMLValue {
        switch peek {
        case UInt8(ascii: "\""):
            if i + 2 < s.count && s[i + 1] == UInt8(ascii: "\"") && s[i + 2] == UInt8(ascii: "\"") {
                throw error("multi-line strings are not supported")
            }
            return .string(try parseBasicString())
        case UInt8(ascii: "'"): return .string(try parseLiteralString())
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "{"): return try parseInlineTable()
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            if s[i...].starts(with: Array("true".utf8)) { i += 4; return .bool(true) }
            if s[i...].starts(with: Array("false".utf8)) { i += 5; return .bool(false) }
            throw error("expected a value")
        default: return try parseNumber()
        }
    }

    mutating func parseBasicString() throws -> String {
        i += 1
        var bytes: [UInt8] = []
        while true {
            guard !atEnd, peek != 0x0A else { throw error("unterminated string") }
            let c = peek
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                guard !atEnd else { throw error("unterminated string") }
                let e = peek; i += 1
                switch e {
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "\""): bytes.append(e)
                case UInt8(ascii: "\\"): bytes.append(e)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    guard i + n <= s.count, let v = UInt32(String(decoding: s[i..<i + n], as: UTF8.self), radix: 16),
                          let scalar = Unicode.Scalar(v) else { throw error("bad unicode escape in string") }
                    i += n
                    bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw error("unknown escape '\\\(String(decoding: [e], as: UTF8.self))' in string")
                }
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func parseLiteralString() throws -> String {
        i += 1
        let start = i
        while true {
            guard !atEnd, peek != 0x0A else { throw error("unterminated string") }
            if peek == UInt8(ascii: "'") { break }
            i += 1
        }
        let str = String(decoding: s[start..<i], as: UTF8.self)
        i += 1
        return str
    }

    mutating func parseArray() throws -> TOMLValue {
        try nest(1)
        defer { depth -= 1 }
        i += 1
        var items: [TOMLValue] = []
        while true {
            skipBlank()
            if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
            guard !atEnd else { throw error("unterminated array") }
            items.append(try parseValue())
            skipBlank()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw error("expected ',' or ']' in array")
        }
    }

    mutating func parseInlineTable() throws -> TOMLValue {
        try nest(1)
        defer { depth -= 1 }
        i += 1
        var t = TOMLTable()
        skipSpaces()
        if peek == UInt8(ascii: "}") { i += 1; return .table(t) }
        while true {
            skipSpaces()
            let path = try parseKeyPath()
            skipSpaces()
            guard peek == UInt8(ascii: "=") else { throw error("expected '=' in inline table") }
            i += 1
            skipSpaces()
            try nest(path.count)
            let v = try parseValue()
            depth -= path.count
            try insert(&t, path, v, 0)
            skipSpaces()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            if peek == UInt8(ascii: "}") { i += 1; return .table(t) }
            throw error("expected ',' or '}' in inline table")
        }
    }

    mutating func parseNumber() throws -> TOMLValue {
        let start = i
        while !atEnd {
            let c = peek
            if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == UInt8(ascii: ",") || c == UInt8(ascii: "]")
                || c == UInt8(ascii: "}") || c == UInt8(ascii: "#") { break }
            i += 1
        }
        let raw = String(decoding: s[start..<i], as: UTF8.self)
        if raw.isEmpty { throw error(atEnd ? "expected a value, found the end of the file" : "expected a value") }
        switch raw {
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if raw.contains("__") || raw.hasPrefix("_") || raw.hasSuffix("_") { throw error("bad number '\(raw)'") }
        let text = raw.replacingOccurrences(of: "_", with: "")
        if text.hasPrefix("0x") { if let v = Int(text.dropFirst(2), radix: 16) { return .integer(v) } }
        if text.hasPrefix("0o") { if let v = Int(text.dropFirst(2), radix: 8) { return .integer(v) } }
        if text.hasPrefix("0b") { if let v = Int(text.dropFirst(2), radix: 2) { return .integer(v) } }
        let isFloat = text.contains(".") || text.contains("e") || text.contains("E")
        if !isFloat, let v = Int(text) { return .integer(v) }
        if isFloat, text.first != ".", text.last != ".", let v = Double(text) { return .float(v) }
        if text.contains("-") && text.count >= 8 && text.first?.isNumber == true {
            throw error("dates and times are not supported ('\(raw)')")
        }
        throw error("cannot read value '\(raw)' (strings need quotes)")
    }
}

import Foundation
