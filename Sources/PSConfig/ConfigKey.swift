
// How a section's typed fields meet TOML: one ConfigKey per key, naming the
// field (a key path), the key's type, range and meaning. Reading a file,
// applying `--set`, checking ranges, writing the canonical form and the
// public schema all go through these lists, so a key is declared once.

/// One configuration key as the documentation and tools see it: its dotted
/// name, type, default, allowed values (numbers) and meaning.
public struct ConfigField {
    public enum Kind { case string, integer, float, bool, layers, shape, tables }
    public let key: String
    public let kind: Kind
    public let defaultValue: ConfigValue
    /// The values a numeric key accepts (nil: any value of its type).
    public let range: ConfigRange?
    public let doc: String
}

/// The values a numeric key accepts: an interval, each end open or closed.
/// Only finite numbers lie in one.
public struct ConfigRange: Equatable {
    public let lower: Double, upper: Double
    public let lowerOpen: Bool, upperOpen: Bool

    public static func closed(_ a: Double, _ b: Double) -> ConfigRange { .init(lower: a, upper: b, lowerOpen: false, upperOpen: false) }
    public static func openClosed(_ a: Double, _ b: Double) -> ConfigRange { .init(lower: a, upper: b, lowerOpen: true, upperOpen: false) }
    public static func closedOpen(_ a: Double, _ b: Double) -> ConfigRange { .init(lower: a, upper: b, lowerOpen: false, upperOpen: true) }
    public static func open(_ a: Double, _ b: Double) -> ConfigRange { .init(lower: a, upper: b, lowerOpen: true, upperOpen: true) }

    public func contains(_ v: Double) -> Bool {
        v.isFinite && (lowerOpen ? v > lower : v >= lower) && (upperOpen ? v < upper : v <= upper)
    }

    /// As error messages and docs/config.md write it: "[1, 1000000]", "(0, 86400]".
    public var text: String {
        func num(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : "\(v)" }
        return (lowerOpen ? "(" : "[") + num(lower) + ", " + num(upper) + (upperOpen ? ")" : "]")
    }
}

/// A string key that takes one of a few words, as a Swift enum.
protocol ConfigChoice: RawRepresentable where RawValue == String {
    /// The words, in the order messages list them.
    static var choices: [Self] { get }
}

/// A section of the configuration: one TOML table ([train]) as a struct
/// whose fields are its keys. `init()` gives the defaults.
protocol ConfigSection: Equatable {
    static var name: String { get }
    /// The keys, in canonical order (run.toml's).
    static var keys: [ConfigKey<Self>] { get }
    init()
}

extension ConfigSection {
    static func key(_ name: String) -> ConfigKey<Self>? { keys.first { $0.name == name } }
}

/// What a key's reader knows for its messages: the source, the full key and
/// where the file defines it.
struct KeyContext {
    let source: String
    let key: String
    let at: SourcePosition?
    /// Where the file defines a sub-path of the key (the layers' entries).
    var locate: ([String]) -> SourcePosition? = { _ in nil }

    func wrongType(_ v: ConfigValue, _ expected: String) -> ConfigError {
        .wrongType(source: source, key: key, at: at, expected: expected, given: v)
    }
}

/// One key of section `S`: how its field is read from a TOML value and
/// written back.
struct ConfigKey<S> {
    let name: String
    let kind: ConfigField.Kind
    let range: ConfigRange?
    let doc: String
    /// The field as a TOML value (canonical form, differences, ranges).
    let read: (S) -> ConfigValue
    /// Sets the field from a TOML value, refusing a wrong type.
    let write: (inout S, ConfigValue, KeyContext) throws -> Void

    static func integer(_ name: String, _ path: WritableKeyPath<S, Int>, _ range: ConfigRange, _ doc: String) -> ConfigKey {
        ConfigKey(name: name, kind: .integer, range: range, doc: doc, read: { .integer($0[keyPath: path]) }) { s, v, ctx in
            guard case .integer(let i) = v else { throw ctx.wrongType(v, "an integer") }
            s[keyPath: path] = i
        }
    }

    /// A float key; an integer is taken as its float (`lr = 1` is 1.0).
    static func number(_ name: String, _ path: WritableKeyPath<S, Double>, _ range: ConfigRange, _ doc: String) -> ConfigKey {
        ConfigKey(name: name, kind: .float, range: range, doc: doc, read: { .float($0[keyPath: path]) }) { s, v, ctx in
            switch v {
            case .float(let d): s[keyPath: path] = d
            case .integer(let i): s[keyPath: path] = Double(i)
            default: throw ctx.wrongType(v, "a number")
            }
        }
    }

    static func flag(_ name: String, _ path: WritableKeyPath<S, Bool>, _ doc: String) -> ConfigKey {
        ConfigKey(name: name, kind: .bool, range: nil, doc: doc, read: { .bool($0[keyPath: path]) }) { s, v, ctx in
            guard case .bool(let b) = v else { throw ctx.wrongType(v, "true or false") }
            s[keyPath: path] = b
        }
    }

    static func text(_ name: String, _ path: WritableKeyPath<S, String>, _ doc: String) -> ConfigKey {
        ConfigKey(name: name, kind: .string, range: nil, doc: doc, read: { .string($0[keyPath: path]) }) { s, v, ctx in
            guard case .string(let t) = v else { throw ctx.wrongType(v, "a string") }
            s[keyPath: path] = t
        }
    }

    static func choice<E: ConfigChoice>(_ name: String, _ path: WritableKeyPath<S, E>, _ doc: String) -> ConfigKey {
        ConfigKey(name: name, kind: .string, range: nil, doc: doc, read: { .string($0[keyPath: path].rawValue) }) { s, v, ctx in
            guard case .string(let t) = v else { throw ctx.wrongType(v, "a string") }
            guard let e = E(rawValue: t) else {
                throw ConfigError.notAChoice(source: ctx.source, key: ctx.key, at: ctx.at, value: t, allowed: E.choices.map { $0.rawValue })
            }
            s[keyPath: path] = e
        }
    }

    /// The key as the public schema lists it.
    func field(section: String, defaults: S) -> ConfigField {
        ConfigField(key: section + "." + name, kind: kind, defaultValue: read(defaults), range: range, doc: doc)
    }
}
