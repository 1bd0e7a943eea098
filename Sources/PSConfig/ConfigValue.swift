import PSSupport

// The values configuration keys are read from and written back as: what
// the TOML reader parsed, as plain Swift values, and what the
// canonical form (run.toml) and the error messages print.

/// A TOML value as the configuration sees it: read from a file (through
/// TOMLDocument), from a `--set key=value` override, or printed back into the
/// canonical form. The sections turn these into typed fields.
public indirect enum ConfigValue: Equatable, CustomStringConvertible {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([ConfigValue])
    /// A table; it keeps no key order, so keys print sorted.
    case table([String: ConfigValue])
    /// A date, time or date-time, as TOML text. No key holds one; it exists
    /// so that the message refusing it can name it.
    case dateTime(String)

    /// The TOML type, as error messages name it.
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .bool: return "boolean"
        case .array: return "array"
        case .table: return "table"
        case .dateTime: return "date-time"
        }
    }

    /// The value written as TOML: what run.toml, differences and error
    /// messages show. Byte for byte what the hand-written TOML reader's
    /// values printed (run.toml and its hash depend on it).
    public var description: String {
        switch self {
        case .string(let s): return tomlQuote(s)
        case .integer(let i): return String(i)
        case .float(let d): return tomlFloat(d)
        case .bool(let b): return b ? "true" : "false"
        case .array(let a): return "[" + a.map { $0.description }.joined(separator: ", ") + "]"
        case .table(let t):
            return "{ " + t.keys.sorted().map { "\(tomlKey($0)) = \(t[$0]!.description)" }.joined(separator: ", ") + " }"
        case .dateTime(let text): return text
        }
    }
}


/// A TOML basic string literal: JSON's escapes, plus \u007f (TOML allows no
/// raw DEL in a basic string; the old reader let it through).
func tomlQuote(_ v: String) -> String { jsonQuote(v, escapingDEL: true) }

/// A key as TOML writes it: bare when it can be, quoted otherwise.
func tomlKey(_ k: String) -> String {
    let bare = !k.isEmpty && k.unicodeScalars.allSatisfy {
        ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "_" || $0 == "-"
    }
    return bare ? k : tomlQuote(k)
}
