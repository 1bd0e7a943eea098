import PSSupport
import PSNumerics

/// Where in a configuration file something is: 1-based line and column
/// (columns count Unicode scalars).
public struct SourcePosition: Equatable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "\(line):\(column)" }
}

/// Why a layer of `model.layers` is refused.
public enum LayerProblem: Equatable {
    /// The entry is not a table (it holds this value).
    case notATable(ConfigValue)
    /// The table has no string key `type`.
    case missingType
    /// A key other than `type` whose value is not a number.
    case notANumber(String, ConfigValue)
    /// What the layer kind says is wrong (LayerKinds.check).
    case kind(LayerEntryProblem)
}

/// A configuration that cannot be used: what is wrong, where (the file, or
/// `command line` for `--set`, and the line and column where known), and what
/// is allowed. Its description is the message a person reads.
public enum ConfigError: UserFacingError, Equatable {
    case fileNotFound(path: String)
    case unreadable(path: String)
    /// The text is not TOML (the reader's message and position).
    case parse(source: String, line: Int, column: Int, message: String)
    /// Values nest deeper than `TOMLDocument.maxDepth`.
    case tooDeep(source: String, line: Int, column: Int, limit: Int)
    /// No such key; `suggestion` is the near miss or the known keys.
    case unknownKey(source: String, key: String, at: SourcePosition?, suggestion: String)
    /// The key holds another type (`expected` as "an integer", "a number"...).
    case wrongType(source: String, key: String, at: SourcePosition?, expected: String, given: ConfigValue)
    /// A number outside its key's range (`value` as TOML writes it).
    case outOfRange(source: String, key: String, value: String, integer: Bool, range: ConfigRange)
    /// A string key that takes one of a few words.
    case notAChoice(source: String, key: String, at: SourcePosition?, value: String, allowed: [String])
    /// An entry of `model.layers`.
    case badLayer(source: String, index: Int, at: SourcePosition?, problem: LayerProblem)
    /// A value that breaks a rule across keys or a size limit; `problem`
    /// follows the key in the message.
    case invalid(source: String, key: String, at: SourcePosition?, problem: String)
    /// `--set` text without `=`.
    case badOverride(text: String)
    /// Several keys of one file (or of the command line) are wrong: each one,
    /// in the order read, so that one edit fixes them all. Not `indirect`
    /// (the array is indirection enough): with it, Swift 6.3.1's -O build
    /// of the ranks read run.timeout_seconds from a loaded Config as NaN and
    /// trapped at start-up, where the debug build was right.
    case several([ConfigError])

    public var description: String {
        func place(_ source: String, _ at: SourcePosition?) -> String { at.map { "\(source):\($0)" } ?? source }
        switch self {
        case .several(let all):
            return "\(all.count) problems in the configuration:\n" + all.map { "  " + $0.description }.joined(separator: "\n")
        case .fileNotFound(let path):
            return "configuration file not found: \(path)"
        case .unreadable(let path):
            return "cannot read configuration file \(path) (not a regular file of at most 16 MiB of readable UTF-8 text)"
        case .parse(let source, let line, let column, let message):
            return "\(source):\(line):\(column): \(message)"
        case .tooDeep(let source, let line, let column, let limit):
            return "\(source):\(line):\(column): values nest more than \(limit) levels deep (tables, dotted keys, arrays and inline tables)"
        case .unknownKey(let source, let key, let at, let suggestion):
            return "\(place(source, at)): unknown configuration key '\(key)'\(suggestion)"
        case .wrongType(let source, let key, let at, let expected, let given):
            return "\(place(source, at)): key '\(key)' must be \(expected), not \(given.typeName) \(given)"
        case .outOfRange(let source, let key, let value, let integer, let range):
            return "\(source): \(key) = \(value) is out of range: it must be \(integer ? "an integer" : "a finite number") in \(range.text)"
        case .notAChoice(let source, let key, let at, let value, let allowed):
            return "\(place(source, at)): \(key) must be \(ConfigError.list(allowed.map { "\"\($0)\"" })) (is \"\(value)\")"
        case .badLayer(let source, let n, let at, let problem):
            let w = place(source, at)
            switch problem {
            case .notATable(let v):
                return "\(w): model.layers[\(n)] must be an inline table such as {type = \"relu\"}, not \(v.typeName)"
            case .missingType:
                return "\(w): model.layers[\(n)] needs a string key 'type' (\(ConfigError.list(LayerKinds.types.map { "\"\($0)\"" })))"
            case .notANumber(let key, let v):
                return "\(w): model.layers[\(n)] key '\(key)' must be a number, not \(v.typeName) \(v)"
            case .kind(let p):
                return "\(w): model.layers[\(n)] \(p.text)"
            }
        case .invalid(let source, let key, let at, let problem):
            return "\(place(source, at)): \(key) \(problem)"
        case .badOverride(let text):
            return "override '\(text)' is not of the form key=value (for example train.lr=0.1)"
        }
    }

    /// The source the error names.
    public var source: String {
        switch self {
        case .fileNotFound(let p), .unreadable(let p): return p
        case .badOverride: return "command line"
        case .several(let all): return all.first?.source ?? "command line"
        case .parse(let s, _, _, _), .tooDeep(let s, _, _, _), .unknownKey(let s, _, _, _), .wrongType(let s, _, _, _, _),
             .outOfRange(let s, _, _, _, _), .notAChoice(let s, _, _, _, _), .badLayer(let s, _, _, _), .invalid(let s, _, _, _):
            return s
        }
    }

    /// The line and column the message names, if any.
    public var position: SourcePosition? {
        switch self {
        case .parse(_, let l, let c, _), .tooDeep(_, let l, let c, _): return SourcePosition(line: l, column: c)
        case .unknownKey(_, _, let at, _), .wrongType(_, _, let at, _, _), .notAChoice(_, _, let at, _, _),
             .badLayer(_, _, let at, _), .invalid(_, _, let at, _):
            return at
        case .several(let all): return all.first?.position
        default: return nil
        }
    }

    /// "a", "a or b", "a, b or c".
    static func list(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items.last!
    }
}
