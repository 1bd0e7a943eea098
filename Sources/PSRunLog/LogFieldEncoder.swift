import Foundation

// ---------------------------------------------------------------------------
// Records to log lines. JSONEncoder will not do for writing: it promises no
// key order (`.sortedKeys` sorts them) and formats numbers its own way (an
// integral Double loses its ".0", for one), while the log's bytes must stay
// exactly as docs/run-log.md shows them: other tools and tests parse them.
// So a small Encoder of our own keeps the keys in the order a record's
// `encode(to:)` writes them (for synthesized conformances, the order the
// properties are declared in) and turns values into `JSONValue`, whose
// `write(into:)` formats them as the log always has: Double in its shortest
// round-trip form with ".0" on integers and null when not finite, Float
// widened to Double, integers as integers, optionals absent when nil
// (`encodeIfPresent`), keys snake_case (the key strategy of LogKeys.swift:
// `fp32Bytes` is written `fp32_bytes`). Reading is LogFieldDecoder.swift.
// ---------------------------------------------------------------------------

enum LogFieldEncoder {
    /// A record's fields, in the order it encodes them. Throws when it does
    /// not encode as an object, or holds an unsigned integer beyond Int.
    static func fields(of value: some Encodable) throws -> [(String, JSONValue)] {
        let node = try FieldNode.encoding(value, at: [])
        guard case .object(let fields) = node.resolved else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "a log record encodes as a JSON object"))
        }
        return fields
    }
}

/// What is encoded at one place, filled in as containers are used (a
/// reference: a nested container is handed out before it is filled).
final class FieldNode {
    enum Content { case empty, value(JSONValue), object([(String, FieldNode)]), array([FieldNode]) }
    var content: Content = .empty

    init() {}
    init(_ v: JSONValue) { content = .value(v) }

    var resolved: JSONValue {
        switch content {
        case .empty: return .object([])            // a value that encoded nothing: {} (as JSONEncoder has it)
        case .value(let v): return v
        case .object(let f): return .object(f.map { ($0.0, $0.1.resolved) })
        case .array(let a): return .array(a.map { $0.resolved })
        }
    }

    /// Sets `key` (in place when it is there already: the last write wins, as in JSONEncoder).
    func set(_ key: String, _ child: FieldNode) {
        guard case .object(var f) = content else { return }
        content = .empty   // no second reference to f while it changes
        if let i = f.firstIndex(where: { $0.0 == key }) { f[i].1 = child } else { f.append((key, child)) }
        content = .object(f)
    }

    func append(_ child: FieldNode) {
        guard case .array(var a) = content else { return }
        content = .empty
        a.append(child)
        content = .array(a)
    }

    func becomeObject() {
        switch content {
        case .object: break
        case .empty: content = .object([])
        default: preconditionFailure("a log field encoded as a value, then as an object")
        }
    }

    func becomeArray() {
        switch content {
        case .array: break
        case .empty: content = .array([])
        default: preconditionFailure("a log field encoded as a value, then as an array")
        }
    }

    var count: Int {
        switch content {
        case .array(let a): return a.count
        case .object(let f): return f.count
        default: return 0
        }
    }

    /// A value's node: a number, string or bool directly, anything else
    /// through its own `encode(to:)`.
    static func encoding<T: Encodable>(_ value: T, at path: [CodingKey]) throws -> FieldNode {
        if let p = value as? LogScalar { return FieldNode(try p.jsonValue(at: path)) }
        let node = FieldNode()
        try value.encode(to: FieldEncoder(node: node, codingPath: path))
        return node
    }
}

/// The types written as JSON scalars.
protocol LogScalar { func jsonValue(at path: [CodingKey]) throws -> JSONValue }
extension Bool: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .bool(self) } }
extension String: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .string(self) } }
extension Double: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .double(self) } }
extension Float: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .double(Double(self)) } }
extension Int: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(self) } }
extension Int8: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension Int16: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension Int32: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension Int64: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension UInt8: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension UInt16: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension UInt32: LogScalar { func jsonValue(at path: [CodingKey]) -> JSONValue { .int(Int(self)) } }
extension UInt: LogScalar {
    func jsonValue(at path: [CodingKey]) throws -> JSONValue {
        guard let i = Int(exactly: self) else {
            throw EncodingError.invalidValue(self, .init(codingPath: path, debugDescription: "\(self) is beyond the log's integers"))
        }
        return .int(i)
    }
}
extension UInt64: LogScalar {
    func jsonValue(at path: [CodingKey]) throws -> JSONValue { try UInt(self).jsonValue(at: path) }
}

struct FieldEncoder: Encoder {
    let node: FieldNode
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(KeyedFields<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        node.becomeArray()
        return UnkeyedFields(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { SingleField(node: node, codingPath: codingPath) }
}

struct KeyedFields<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: FieldNode
    let codingPath: [CodingKey]
    /// Keys written as they are (`LogVerbatimKey`); the others through the key strategy (LogKeys.swift).
    private let verbatim = Key.self is any LogVerbatimKey.Type

    private func name(_ key: Key) -> String { logKey(key, verbatim: verbatim) }

    mutating func encodeNil(forKey key: Key) throws { node.set(name(key), FieldNode(.null)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.set(name(key), try FieldNode.encoding(value, at: codingPath + [key]))
    }

    // The scalar types every record is made of, written straight away: the
    // generic path above casts and builds a coding path per field, which made
    // a step record cost about 18 us (pstrain-bench runlog).
    mutating func encode(_ value: Int, forKey key: Key) throws { node.set(name(key), FieldNode(.int(value))) }
    mutating func encode(_ value: Double, forKey key: Key) throws { node.set(name(key), FieldNode(.double(value))) }
    mutating func encode(_ value: Float, forKey key: Key) throws { node.set(name(key), FieldNode(.double(Double(value)))) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { node.set(name(key), FieldNode(.bool(value))) }
    mutating func encode(_ value: String, forKey key: Key) throws { node.set(name(key), FieldNode(.string(value))) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = FieldNode()
        child.becomeObject()
        node.set(name(key), child)
        return KeyedEncodingContainer(KeyedFields<NestedKey>(node: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        let child = FieldNode()
        child.becomeArray()
        node.set(name(key), child)
        return UnkeyedFields(node: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> Encoder { superEncoder(named: "super") }
    mutating func superEncoder(forKey key: Key) -> Encoder { superEncoder(named: name(key)) }

    private func superEncoder(named name: String) -> Encoder {
        let child = FieldNode()
        node.set(name, child)
        return FieldEncoder(node: child, codingPath: codingPath)
    }
}

struct UnkeyedFields: UnkeyedEncodingContainer {
    let node: FieldNode
    let codingPath: [CodingKey]
    var count: Int { node.count }

    private struct Index: CodingKey {
        let intValue: Int?
        var stringValue: String { "Index \(intValue ?? 0)" }
        init(_ i: Int) { intValue = i }
        init?(stringValue: String) { return nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    mutating func encodeNil() throws { node.append(FieldNode(.null)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.append(try FieldNode.encoding(value, at: codingPath + [Index(count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = FieldNode()
        child.becomeObject()
        let path = codingPath + [Index(count)]
        node.append(child)
        return KeyedEncodingContainer(KeyedFields<NestedKey>(node: child, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        let child = FieldNode()
        child.becomeArray()
        let path = codingPath + [Index(count)]
        node.append(child)
        return UnkeyedFields(node: child, codingPath: path)
    }

    mutating func superEncoder() -> Encoder {
        let child = FieldNode()
        node.append(child)
        return FieldEncoder(node: child, codingPath: codingPath)
    }
}

struct SingleField: SingleValueEncodingContainer {
    let node: FieldNode
    let codingPath: [CodingKey]

    mutating func encodeNil() throws { node.content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.content = try FieldNode.encoding(value, at: codingPath).content
    }
}
