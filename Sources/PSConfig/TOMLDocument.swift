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
