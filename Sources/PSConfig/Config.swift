import Foundation
import PSSupport
import PSNumerics
import PSCodec

/// The resolved configuration of a run: one typed section per TOML table,
/// every key holding the file's value, a command-line override's or its
/// default. Each component takes its own section (`cfg.train`,
/// `cfg.compression.settings`, ...); there are no flat accessors.
///
/// Files are parsed by the TOML reader in TOMLDocument.swift. An unknown key, a
/// wrong type, a number out of range or a bad layer is a ConfigError naming
/// the source, the key and what is allowed.
public struct Config: Equatable {
    public internal(set) var model = ModelSection()
    public internal(set) var data = DataSection()
    public internal(set) var train = TrainSection()
    public internal(set) var scaler = ScalerSection()
    public internal(set) var compression = CompressionSection()
    public internal(set) var checkpoint = CheckpointSection()
    /// Test hooks; the defaults (any production run) make every one inert.
    public internal(set) var debug = DebugSection()
    public internal(set) var run = RunSection()
    /// Where the configuration came from, for error messages.
    public var source: String

    // MARK: limits
    //
    // Sizes derived from the configuration become byte counts of buffers and
    // of MPI messages, whose counts are Int32. These limits keep every such
    // count below Int32.max (2^31 - 1) and every product of them far from
    // Int overflow; docs/config.md repeats them.

    /// Largest message, in elements (run.chunk_elements): the biggest frame
    /// is FrameHeader.size + PieceCodec.maxEncodedBytes, at worst top-k's
    /// 4-byte count plus 8 bytes per element (UInt32 index + FP32 value):
    /// 64 + 4 + 8 * 2^26 = 536,870,980 bytes; the codec's scratch is
    /// 8 + 8 * 2^26. Both stay well below Int32.max (a unit test checks it
    /// with the real functions).
    public static let maxChunkElements = 1 << 26
    /// Widest layer and model.input: 2^20 features.
    public static let maxWidth = Model.maxWidth
    /// Most entries in model.layers (keeps run.toml, whose length each rank
    /// announces in its hello, small).
    public static let maxLayers = 1000
    /// Most parameters (weights and biases) in the model: 2^28, so the FP32
    /// model is at most 1 GiB and every tensor's, shard's and checkpoint
    /// file's byte count (4 bytes a parameter) stays at most 2^30, half of
    /// Int32.max (OpenBLAS takes 32-bit sizes). Messages never carry a
    /// whole tensor: run.chunk_elements bounds them.
    public static let maxParameters = 1 << 28
    /// Most elements in one activation buffer (rows x layer width; a worker
    /// holds max(its batch slice, Model.minimumCapacity) rows): 2^28, 1 GiB
    /// of FP32, so its byte count stays below Int32.max as well.
    public static let maxActivationElements = 1 << 28
    /// Largest synthetic data set, in bytes (samples x model.input).
    public static let maxDatasetBytes = Int(Int32.max)
    /// Most ranks of either role (run.workers, run.servers and the debug
    /// hooks that name a worker).
    public static let maxRanks = 4096

    static let steps = ConfigRange.closed(0, 1_000_000_000)
    static let stepOrNever = ConfigRange.closed(-1, 1_000_000_000)
    static let workerIndex = ConfigRange.closed(0, Double(maxRanks - 1))

    /// The sections in canonical order (run.toml's).
    static let sectionNames = ["model", "data", "train", "scaler", "compression", "checkpoint", "debug", "run"]

    /// Every key, in canonical order, with its type, default, range and meaning.
    public static let schema: [ConfigField] = {
        func fields<S: ConfigSection>(_: S.Type) -> [ConfigField] { S.keys.map { $0.field(section: S.name, defaults: S()) } }
        return fields(ModelSection.self) + fields(DataSection.self) + fields(TrainSection.self) + fields(ScalerSection.self)
            + fields(CompressionSection.self) + fields(CheckpointSection.self) + fields(DebugSection.self) + fields(RunSection.self)
    }()

    static let fields: [String: ConfigField] = Dictionary(uniqueKeysWithValues: schema.map { ($0.key, $0) })

    /// The defaults alone.
    public init() {
        source = "defaults"
    }

    /// Equal when every key has the same value, wherever each came from.
    public static func == (a: Config, b: Config) -> Bool {
        a.model == b.model && a.data == b.data && a.train == b.train && a.scaler == b.scaler
            && a.compression == b.compression && a.checkpoint == b.checkpoint && a.debug == b.debug && a.run == b.run
    }

    // MARK: reading

    public static func load(path: String) throws -> Config {
        guard FileManager.default.fileExists(atPath: path) else { throw ConfigError.fileNotFound(path: path) }
        // A regular file only: reading a FIFO would block, a device never end.
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= Config.maxFileBytes else {
            throw ConfigError.unreadable(path: path)
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError.unreadable(path: path)
        }
        return try parse(text, source: path)
    }

    /// Reads TOML `text`; `source` names it in error messages. Keys the text
    /// leaves out keep their defaults.
    /// The largest configuration file read (a configuration is a few KiB).
    static let maxFileBytes = 16 << 20

    public static func parse(_ text: String, source: String) throws -> Config {
        let doc = try TOMLDocument(text, source: source)
        var c = Config()
        c.source = source
        // Every key is tried: all the wrong ones are reported together, in the order of the file.
        var problems: [(SourcePosition?, ConfigError)] = []
        for name in doc.root.keys.sorted() {
            let v = doc.root[name]!
            guard sectionNames.contains(name) else {
                let key = leafPath(name, v)
                problems.append((doc.position(key), ConfigError.unknownKey(source: source, key: key.joined(separator: "."), at: doc.position(key),
                                                                           suggestion: suggestion(for: key.joined(separator: ".")))))
                continue
            }
            guard case .table(let t) = v else {
                problems.append((doc.position([name]), ConfigError.wrongType(source: source, key: name, at: doc.position([name]),
                                                                             expected: "a table ([\(name)])", given: v)))
                continue
            }
            for k in t.keys.sorted() {
                do {
                    try c.assign(name + "." + k, t[k]!, at: doc.position([name, k])) { doc.position([name, k] + $0) }
                } catch let e as ConfigError {
                    problems.append((doc.position([name, k]), e))
                }
            }
        }
        try Self.throwAll(problems)
        try c.validate()
        return c
    }

    /// `model.tables[2].dim` -> ("model.tables", 2, "dim"); nil for a plain key.
    static func indexedKey(_ key: String) -> (String, Int, String)? {
        guard let open = key.firstIndex(of: "["), let close = key[open...].firstIndex(of: "]"),
              key[key.index(after: close)...].hasPrefix("."),
              let index = Int(key[key.index(after: open)..<close]), index >= 0 else { return nil }
        let name = String(key[key.index(close, offsetBy: 2)...])
        return name.isEmpty ? nil : (String(key[..<open]), index, name)
    }

    /// Sets key `name` of entry `index` of the array key `array`
    /// (model.tables, model.layers), the other entries and keys as they are.
    mutating func setEntry(_ array: String, index: Int, _ name: String, _ value: ConfigValue, text: String) throws {
        guard let field = Config.fields[array], let current = entries.first(where: { $0.field.key == array })?.value,
              case .array(var items) = current else {
            throw ConfigError.invalid(source: source, key: array, at: nil,
                                      problem: "is not an array of tables: `--set \(text)` needs model.tables[i].key or model.layers[i].key")
        }
        guard index < items.count, case .table(var entry) = items[index] else {
            throw ConfigError.invalid(source: source, key: "\(array)[\(index)]", at: nil,
                                      problem: "does not exist: \(array) has \(items.count) entr\(items.count == 1 ? "y" : "ies") (0 to \(items.count - 1))")
        }
        entry[name] = value
        items[index] = .table(entry)
        try set(field.key, .array(items))
    }

    /// Throws the problems found (one as itself, several together), in the order of their positions.
    static func throwAll(_ problems: [(SourcePosition?, ConfigError)]) throws {
        let sorted = problems.enumerated().sorted { a, b in
            let pa = a.element.0.map { ($0.line, $0.column) } ?? (Int.max, a.offset), pb = b.element.0.map { ($0.line, $0.column) } ?? (Int.max, b.offset)
            return pa < pb
        }.map { $0.element.1 }
        if sorted.count == 1 { throw sorted[0] }
        if sorted.count > 1 { throw ConfigError.several(sorted) }
    }

    /// The first key path under `key` that holds no table (an unknown
    /// [section]'s first key), for the message.
    static func leafPath(_ key: String, _ v: ConfigValue) -> [String] {
        var path = [key], v = v
        while case .table(let t) = v, let k = t.keys.min() { path.append(k); v = t[k]! }
        return path
    }

    /// Sets one key, checking that it exists and that the value has its type
    /// (ranges and the rules across keys are `validate()`'s).
    public mutating func set(_ key: String, _ value: ConfigValue) throws {
        try assign(key, value, at: nil)
    }

    mutating func assign(_ key: String, _ value: ConfigValue, at: SourcePosition?,
                         locate: @escaping ([String]) -> SourcePosition? = { _ in nil }) throws {
        let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
        let ctx = KeyContext(source: source, key: key, at: at, locate: locate)
        func write<S: ConfigSection>(_ s: inout S) throws {
            guard parts.count == 2, let k = S.key(parts[1]) else {
                let path = Config.leafPath(key, value).joined(separator: ".")
                throw ConfigError.unknownKey(source: source, key: path, at: at, suggestion: Config.suggestion(for: path))
            }
            try k.write(&s, value, ctx)
        }
        // `--set =1` or `--set .x=1`: no section (the config fuzzer's first finding on the --set path).
        switch parts.first ?? "" {
        case ModelSection.name: try write(&model)
        case DataSection.name: try write(&data)
        case TrainSection.name: try write(&train)
        case ScalerSection.name: try write(&scaler)
        case CompressionSection.name: try write(&compression)
        case CheckpointSection.name: try write(&checkpoint)
        case DebugSection.name: try write(&debug)
        case RunSection.name: try write(&run)
        default: throw ConfigError.unknownKey(source: source, key: key, at: at, suggestion: Config.suggestion(for: key))
        }
    }

    /// Applies a command-line override written as `key=value`: TOML value
    /// syntax, and a value that is not TOML (a bare word) is a string. A
    /// string key takes the text as written unless it is a TOML string
    /// (`--set debug.die_at_steps=25` is "25"). Nothing changes if the
    /// override is refused.
    public mutating func apply(override text: String) throws { try apply(overrides: [text]) }

    /// Applies several overrides, then checks the result once: keys that
    /// depend on each other (model.input and model.layers) can change
    /// together. Nothing changes if any is refused.
    public mutating func apply(overrides texts: [String]) throws {
        var c = self
        c.source = "command line"
        var problems: [(SourcePosition?, ConfigError)] = []
        for text in texts {
            guard let eq = text.firstIndex(of: "=") else { problems.append((nil, ConfigError.badOverride(text: text))); continue }
            let key = text[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = text[text.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            var value = TOMLDocument.value(raw) ?? .string(raw)
            if Config.fields[key]?.kind == .string, case .string = value {} else if Config.fields[key]?.kind == .string {
                value = .string(raw)
            }
            do {
                if let (array, index, name) = Self.indexedKey(key) {
                    try c.setEntry(array, index: index, name, value, text: text)
                } else {
                    try c.set(key, value)
                }
            } catch let e as ConfigError { problems.append((nil, e)) }
        }
        try Self.throwAll(problems)
        try c.validate()
        c.source = source
        self = c
    }

    /// Makes the data set's relative paths absolute against `base` (the
    /// launcher's working directory), so that run.toml names the same files
    /// whatever folder a resume runs from.
    public mutating func resolveDataPaths(against base: String) {
        data = data.resolvingPaths(against: base)
        if !train.initFrom.isEmpty && !train.initFrom.hasPrefix("/") { train.initFrom = (base as NSString).appendingPathComponent(train.initFrom) }
    }

    // MARK: canonical form

    /// The whole resolved configuration as TOML, in schema order. This is
    /// what run.toml holds and what the configuration hash is taken over;
    /// byte for byte what the hand-written TOML reader's Config wrote (a
    /// unit test pins it), so run.toml files and checkpoint manifests keep
    /// their hashes.
    public var canonicalTOML: String {
        var out = ""
        var section = ""
        for (f, v) in entries {
            let parts = f.key.split(separator: ".", maxSplits: 1).map(String.init)
            if parts[0] != section {
                section = parts[0]
                out += (out.isEmpty ? "" : "\n") + "[\(section)]\n"
            }
            if f.kind == .layers {
                out += "\(parts[1]) = [\n" + model.layers.map { "  \($0.toml),\n" }.joined() + "]\n"
            } else if f.kind == .tables, case .array(let items) = v, !items.isEmpty {
                out += "\(parts[1]) = [\n" + items.map { "  \($0.description),\n" }.joined() + "]\n"
            } else {
                out += "\(parts[1]) = \(v.description)\n"
            }
        }
        return out
    }

    /// XXH64 of the canonical form: ranks compare it at start-up.
    public var hash: UInt64 {
        let bytes = Array(canonicalTOML.utf8)
        return bytes.withUnsafeBytes { xxh64($0) }
    }

    /// The keys whose values differ, with both values: for the message that
    /// tells a person why two ranks disagree.
    public func differences(from other: Config) -> [(key: String, mine: String, theirs: String)] {
        zip(entries, other.entries).compactMap { a, b in
            a.value == b.value ? nil : (a.field.key, a.value.description, b.value.description)
        }
    }
}
