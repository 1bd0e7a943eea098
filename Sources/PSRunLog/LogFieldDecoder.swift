import Foundation

// ---------------------------------------------------------------------------
// Log lines to records, the reverse of LogFieldEncoder. JSONDecoder parses a
// line once into a `LogValue` tree (`LogLine`); the envelope and then the
// record of its event are decoded from that tree by this Decoder, which
// finds a property under the key the encoder wrote it as (`logKey`, the key
// strategy of LogKeys.swift). Values convert as JSONDecoder converts them: an
// integer reads as a Double, a Double with an integral value as an integer,
// `null` as nil; anything else that does not fit the property's type throws,
// which makes the line unreadable for that type (LogFile counts it).
// ---------------------------------------------------------------------------

/// One log line: a JSON object, its keys in no particular order.
struct LogLine: Decodable {
    let fields: [String: LogValue]

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyLogKey.self)
        var fields: [String: LogValue] = [:]
        for key in c.allKeys { fields[key.stringValue] = try c.decode(LogValue.self, forKey: key) }
        self.fields = fields
    }

    /// Decodes `T` from the line's fields.
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: LogFieldDecoder(value: .object(fields), codingPath: [])) }
}

/// A JSON value of a line read back (`JSONValue` is the one written).
enum LogValue: Decodable {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null
    case array([LogValue])
    case object([String: LogValue])
    /// A number JSONDecoder reads as no Swift number (1e400): an error only
    /// when a record reads it, as it was when records were read by JSONDecoder.
    case unrepresentable

    /// Any JSON value, tried in the order the log's values are most often found (numbers first).
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let i = try? c.decode(Int.self) {
            // "-0.0" reads as the integer 0: keep its sign for a Double field.
            if i == 0, let d = try? c.decode(Double.self), d.sign == .minus { self = .double(d) } else { self = .int(i) }
            return
        }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let a = try? c.decode([LogValue].self) { self = .array(a); return }
        if let o = try? c.decode(LogLine.self) { self = .object(o.fields); return }
        self = .unrepresentable
    }

    /// What a value is, for error messages.
    var kind: String {
        switch self {
        case .int, .double: return "a number"
        case .string: return "a string"
        case .bool: return "a bool"
        case .null: return "null"
        case .array: return "an array"
        case .object: return "an object"
        case .unrepresentable: return "a number beyond Double's range"
        }
    }
}

/// A key of any name: the keys of a line as JSONDecoder lists them.
struct AnyLogKey: LogVerbatimKey {
    let stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = "Index \(intValue)"; self.intValue = intValue }
}

/// The types read from JSON scalars, with JSONDecoder's conversions.
protocol LogScalarDecodable { init?(logValue: LogValue) }
extension Bool: LogScalarDecodable {
    init?(logValue v: LogValue) { guard case .bool(let b) = v else { return nil }; self = b }
}
extension String: LogScalarDecodable {
    init?(logValue v: LogValue) { guard case .string(let s) = v else { return nil }; self = s }
}
extension Double: LogScalarDecodable {
    init?(logValue v: LogValue) {
        switch v {
        case .double(let d): self = d
        case .int(let i): self = Double(i)
        default: return nil
        }
    }
}
extension Float: LogScalarDecodable {
    init?(logValue v: LogValue) {
        guard let d = Double(logValue: v), abs(d) <= Double(Float.greatestFiniteMagnitude) else { return nil }
        self = Float(d)
    }
}
extension FixedWidthInteger {
    init?(logInteger v: LogValue) {
        switch v {
        case .int(let i): self.init(exactly: i)
        case .double(let d): self.init(exactly: d)
        default: return nil
        }
    }
}
extension Int: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension Int8: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension Int16: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension Int32: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension Int64: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension UInt: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension UInt8: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension UInt16: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension UInt32: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }
extension UInt64: LogScalarDecodable { init?(logValue v: LogValue) { self.init(logInteger: v) } }

struct LogFieldDecoder: Decoder {
    let value: LogValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// `T` from `value`: a scalar directly, anything else through its own `init(from:)`.
    static func decode<T: Decodable>(_ type: T.Type, from value: LogValue, at path: [CodingKey]) throws -> T {
        guard let scalar = T.self as? LogScalarDecodable.Type else { return try T(from: LogFieldDecoder(value: value, codingPath: path)) }
        if let v = scalar.init(logValue: value) as? T { return v }
        let context = DecodingError.Context(codingPath: path, debugDescription: "expected \(T.self), found \(value.kind)")
        if case .null = value { throw DecodingError.valueNotFound(T.self, context) }
        throw DecodingError.typeMismatch(T.self, context)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let fields) = value else { throw mismatch([String: Any].self) }
        return KeyedDecodingContainer(KeyedLogFields<Key>(fields: fields, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch([Any].self) }
        return UnkeyedLogFields(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleLogField(value: value, codingPath: codingPath) }

    func mismatch(_ type: Any.Type) -> DecodingError {
        .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(type), found \(value.kind)"))
    }
}

struct KeyedLogFields<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let codingPath: [CodingKey]
    /// By the key in the log.
    private let fields: [String: LogValue]
    private let verbatim = Key.self is any LogVerbatimKey.Type

    init(fields: [String: LogValue], codingPath: [CodingKey]) {
        self.fields = fields
        self.codingPath = codingPath
    }

    private func name(_ key: Key) -> String { logKey(key, verbatim: verbatim) }

    /// The keys of the line that name a key of `Key`: verbatim keys as they
    /// are; others where the camelCase reading of a log key is a name whose
    /// log key it is (so `peak_rss_bytes`, written from `peakRSSBytes`, is
    /// read by name but not listed).
    var allKeys: [Key] {
        fields.keys.compactMap { k in
            if verbatim { return Key(stringValue: k) }
            return Key(stringValue: camelCase(k)).flatMap { name($0) == k ? $0 : nil }
        }
    }

    func contains(_ key: Key) -> Bool { fields[name(key)] != nil }

    private func field(_ key: Key) throws -> LogValue {
        guard let v = fields[name(key)] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no \"\(name(key))\""))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try field(key) { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try LogFieldDecoder.decode(type, from: try field(key), at: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try LogFieldDecoder(value: try field(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try LogFieldDecoder(value: try field(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { LogFieldDecoder(value: fields["super"] ?? .null, codingPath: codingPath) }

    func superDecoder(forKey key: Key) throws -> Decoder { LogFieldDecoder(value: fields[name(key)] ?? .null, codingPath: codingPath + [key]) }
}

/// The camelCase reading of a snake_case key (`steps_per_epoch`: `stepsPerEpoch`).
func camelCase(_ key: String) -> String {
    let words = key.split(separator: "_", omittingEmptySubsequences: false)
    guard words.count > 1 else { return key }
    return words.dropFirst().reduce(String(words[0])) { $0 + $1.prefix(1).uppercased() + $1.dropFirst() }
}

struct UnkeyedLogFields: UnkeyedDecodingContainer {
    let items: [LogValue]
    let codingPath: [CodingKey]
    private(set) var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [LogValue], codingPath: [CodingKey]) { self.items = items; self.codingPath = codingPath }

    private mutating func next(_ type: Any.Type) throws -> (LogValue, [CodingKey]) {
        let path = codingPath + [AnyLogKey(intValue: currentIndex)]
        guard !isAtEnd else { throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "the array ends")) }
        currentIndex += 1
        return (items[currentIndex - 1], path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .null = items[currentIndex] else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, path) = try next(type)
        return try LogFieldDecoder.decode(type, from: v, at: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, path) = try next([String: Any].self)
        return try LogFieldDecoder(value: v, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (v, path) = try next([Any].self)
        return try LogFieldDecoder(value: v, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder {
        let (v, path) = try next(Any.self)
        return LogFieldDecoder(value: v, codingPath: path)
    }
}

struct SingleLogField: SingleValueDecodingContainer {
    let value: LogValue
    let codingPath: [CodingKey]

    func decodeNil() -> Bool {
        if case .null = value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try LogFieldDecoder.decode(type, from: value, at: codingPath) }
}
