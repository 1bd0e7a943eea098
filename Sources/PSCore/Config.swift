import Foundation

/// One configuration key: its dotted name, type, default, allowed values
/// (numbers) and meaning.
public struct ConfigField {
    public enum Kind { case string, integer, float, bool, layers }
    public let key: String
    public let kind: Kind
    public let defaultValue: TOMLValue
    /// The values a numeric key accepts (nil: any value of its type).
    public let range: ConfigRange?
    public let doc: String

    init(key: String, kind: Kind, defaultValue: TOMLValue, range: ConfigRange? = nil, doc: String) {
        self.key = key; self.kind = kind; self.defaultValue = defaultValue; self.range = range; self.doc = doc
    }
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

/// The resolved configuration of a run: every key of the schema has a value
/// (the file's, a command-line override's, or the default). Unknown keys and
/// wrong types are errors that name the key.
public struct Config: Equatable {
    public private(set) var values: [String: TOMLValue]
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
    public static let maxWidth = 1 << 20
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
    static let lossScale = ConfigRange.closed(1e-6, 1e12)

    public static let schema: [ConfigField] = [
        .init(key: "model.input", kind: .integer, defaultValue: .integer(784), range: .closed(1, Double(maxWidth)), doc: "features per sample (28x28 images: 784)"),
        .init(key: "model.layers", kind: .layers, defaultValue: .array([
            layer("dense", 256), layer("relu"), layer("dense", 128), layer("relu"), layer("dense", 10),
        ]), doc: "the network, in order: {type = \"dense\", units = N} or {type = \"relu\"}"),
        .init(key: "data.kind", kind: .string, defaultValue: .string("fashion-mnist"), doc: "\"fashion-mnist\" (gzipped IDX files in data.dir) or \"synthetic\""),
        .init(key: "data.dir", kind: .string, defaultValue: .string("/usr/share/datasets/fashion-mnist"), doc: "folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-*"),
        .init(key: "data.synthetic_train", kind: .integer, defaultValue: .integer(4096), range: .closed(1, 1_000_000), doc: "training samples of the synthetic data set"),
        .init(key: "data.synthetic_test", kind: .integer, defaultValue: .integer(1024), range: .closed(1, 1_000_000), doc: "test samples of the synthetic data set"),
        .init(key: "train.epochs", kind: .integer, defaultValue: .integer(10), range: .closed(1, 1_000_000), doc: "passes over the training set"),
        .init(key: "train.max_steps", kind: .integer, defaultValue: .integer(0), range: steps, doc: "stop after this many steps (0: no limit)"),
        .init(key: "train.batch_size", kind: .integer, defaultValue: .integer(128), range: .closed(1, Double(maxWidth)), doc: "global batch, split over the workers"),
        .init(key: "train.lr", kind: .float, defaultValue: .float(0.05), range: .openClosed(0, 1000), doc: "learning rate (SGD)"),
        .init(key: "train.lr_schedule", kind: .string, defaultValue: .string("cosine"), doc: "\"constant\", or \"cosine\" (decay from train.lr to 0 over the run)"),
        .init(key: "train.momentum", kind: .float, defaultValue: .float(0.9), range: .closedOpen(0, 1), doc: "SGD momentum"),
        .init(key: "train.weight_decay", kind: .float, defaultValue: .float(0.0001), range: .closed(0, 1), doc: "L2 weight decay, added to the gradient"),
        .init(key: "train.seed", kind: .integer, defaultValue: .integer(1), doc: "seeds initialisation and the per-epoch shuffle"),
        .init(key: "train.precision", kind: .string, defaultValue: .string("fp32"), doc: "\"fp32\", \"fp16\" or \"bf16\": what workers hold and send (servers keep FP32 masters)"),
        .init(key: "scaler.initial", kind: .float, defaultValue: .float(65536), range: lossScale, doc: "initial loss scale (fp16)"),
        .init(key: "scaler.growth_factor", kind: .float, defaultValue: .float(2), range: .closed(1, 1000), doc: "scale multiplier after growth_interval finite steps"),
        .init(key: "scaler.backoff_factor", kind: .float, defaultValue: .float(0.5), range: .open(0, 1), doc: "scale multiplier when backing off"),
        .init(key: "scaler.growth_interval", kind: .integer, defaultValue: .integer(2000), range: .closed(1, 1_000_000_000), doc: "consecutive finite steps before the scale grows"),
        .init(key: "scaler.hysteresis", kind: .integer, defaultValue: .integer(2), range: .closed(1, 1_000_000), doc: "consecutive overflows before the scale backs off"),
        .init(key: "scaler.min", kind: .float, defaultValue: .float(1), range: lossScale, doc: "smallest loss scale"),
        .init(key: "scaler.max", kind: .float, defaultValue: .float(16_777_216), range: lossScale, doc: "largest loss scale (2^24)"),
        .init(key: "scaler.max_skips_at_min", kind: .integer, defaultValue: .integer(50), range: .closed(1, 1_000_000), doc: "consecutive overflows at the minimum scale before the run stops as diverged"),
        .init(key: "compression.topk", kind: .float, defaultValue: .float(0), range: .closed(0, 1), doc: "fraction of each gradient piece sent (largest magnitudes, with error feedback); 0: dense"),
        .init(key: "compression.shuffle", kind: .bool, defaultValue: .bool(true), doc: "byte-shuffle payloads before zstd"),
        .init(key: "compression.zstd_level", kind: .integer, defaultValue: .integer(1), range: .closed(0, 19), doc: "zstd level (0: no zstd)"),
        .init(key: "compression.adaptive", kind: .bool, defaultValue: .bool(true), doc: "skip shuffle and zstd for a piece when they cost more time than they save on the link"),
        .init(key: "compression.link_gbps", kind: .float, defaultValue: .float(10), range: .openClosed(0, 1_000_000), doc: "link speed the adaptive decision assumes, Gbit/s"),
        .init(key: "checkpoint.every_steps", kind: .integer, defaultValue: .integer(0), range: steps, doc: "write a checkpoint every N steps (0: only at the end)"),
        .init(key: "checkpoint.every_seconds", kind: .float, defaultValue: .float(0), range: .closed(0, 31_536_000), doc: "also write a checkpoint when this many seconds passed since the last one (0: off)"),
        .init(key: "checkpoint.at_end", kind: .bool, defaultValue: .bool(true), doc: "write a checkpoint when the run ends"),
        .init(key: "checkpoint.keep", kind: .integer, defaultValue: .integer(3), range: .closed(1, 10_000), doc: "complete checkpoints kept; older ones are deleted after a new one is complete"),
        .init(key: "debug.die_at_steps", kind: .string, defaultValue: .string(""), doc: "for tests: comma-separated steps at which worker debug.die_worker kills itself with SIGKILL, each at most once per run directory"),
        .init(key: "debug.slow_worker", kind: .integer, defaultValue: .integer(-1), range: .closed(-1, Double(maxRanks - 1)), doc: "for tests: this worker is a straggler (-1: none)"),
        .init(key: "debug.slow_ms", kind: .float, defaultValue: .float(0), range: .closed(0, 60_000), doc: "for tests: milliseconds the straggler sleeps in every step's compute"),
        .init(key: "debug.die_in_checkpoint", kind: .string, defaultValue: .string(""), doc: "for tests: \"N:point\": server 0 kills itself while completing checkpoint N, at point after-files, after-manifest or after-rename (once per run directory)"),
        .init(key: "debug.die_worker", kind: .integer, defaultValue: .integer(0), range: workerIndex, doc: "for tests: the worker debug.die_at_step kills"),
        .init(key: "debug.overflow_step", kind: .integer, defaultValue: .integer(-1), range: stepOrNever, doc: "for tests: put +inf into a worker's gradient at this step (-1: never)"),
        .init(key: "debug.overflow_steps", kind: .integer, defaultValue: .integer(1), range: steps, doc: "for tests: how many consecutive steps from debug.overflow_step are spoilt"),
        .init(key: "debug.overflow_worker", kind: .integer, defaultValue: .integer(0), range: workerIndex, doc: "for tests: the worker whose gradient debug.overflow_step spoils"),
        .init(key: "debug.corrupt_step", kind: .integer, defaultValue: .integer(-1), range: stepOrNever, doc: "for tests: worker 0 flips a payload byte of its first gradient piece at this step, after sealing (-1: never)"),
        .init(key: "debug.digest_every_step", kind: .bool, defaultValue: .bool(false), doc: "for tests: log each server's parameter digest after every step"),
        .init(key: "run.timeout_seconds", kind: .float, defaultValue: .float(120), range: .openClosed(0, 86_400), doc: "longest wait for any message before a rank gives up"),
        .init(key: "run.blas_threads", kind: .integer, defaultValue: .integer(1), range: .closed(1, 1024), doc: "OpenBLAS threads per worker"),
        .init(key: "run.chunk_elements", kind: .integer, defaultValue: .integer(65536), range: .closed(256, Double(maxChunkElements)), doc: "largest message, in elements: tensors are cut into pieces so that servers and transfers overlap"),
        .init(key: "run.poll", kind: .string, defaultValue: .string("yield"), doc: "how a waiting rank polls MPI: \"yield\" (sched_yield between polls), \"spin\", or \"sleep\" (20 us naps)"),
        .init(key: "run.pin_workers", kind: .bool, defaultValue: .bool(true), doc: "pin each worker to a core when mpirun did not bind it (oversubscribed)"),
        .init(key: "run.progress_seconds", kind: .float, defaultValue: .float(10), range: .closed(0, 86_400), doc: "seconds between progress lines within an epoch"),
        .init(key: "run.workers", kind: .integer, defaultValue: .integer(0), range: .closed(0, Double(maxRanks)), doc: "expected workers (0: whatever MPI starts); the launcher sets it"),
        .init(key: "run.servers", kind: .integer, defaultValue: .integer(0), range: .closed(0, Double(maxRanks)), doc: "expected servers (0: whatever MPI starts); the launcher sets it"),
    ]

    static func layer(_ type: String, _ units: Int? = nil) -> TOMLValue {
        var t = TOMLTable()
        t["type"] = .string(type)
        if let u = units { t["units"] = .integer(u) }
        return .table(t)
    }

    static let fields: [String: ConfigField] = Dictionary(uniqueKeysWithValues: schema.map { ($0.key, $0) })

    /// The defaults alone.
    public init() {
        values = Dictionary(uniqueKeysWithValues: Config.schema.map { ($0.key, $0.defaultValue) })
        source = "defaults"
    }

    public static func load(path: String) throws -> Config {
        guard FileManager.default.fileExists(atPath: path) else {
            throw PSError("configuration file not found: \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw PSError("cannot read configuration file \(path) (not readable UTF-8 text)")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ text: String, source: String) throws -> Config {
        let table = try TOML.parse(text, source: source)
        var c = Config()
        c.source = source
        try c.merge(table, prefix: "")
        try c.validate()
        return c
    }

    mutating func merge(_ table: TOMLTable, prefix: String) throws {
        for k in table.keys {
            let key = prefix.isEmpty ? k : prefix + "." + k
            let v = table[k]!
            if Config.fields[key] == nil, case .table(let sub) = v {
                try merge(sub, prefix: key)
                continue
            }
            try set(key, v)
        }
    }

    /// Sets one key, checking that it exists and that the value has its type.
    public mutating func set(_ key: String, _ value: TOMLValue) throws {
        guard let f = Config.fields[key] else {
            throw PSError("\(source): unknown configuration key '\(key)'\(Config.suggestion(for: key))")
        }
        values[key] = try Config.coerce(value, to: f, source: source)
    }

    /// Applies a command-line override written as `key=value` (TOML value
    /// syntax; a bare word is taken as a string).
    public mutating func apply(override text: String) throws {
        guard let eq = text.firstIndex(of: "=") else {
            throw PSError("override '\(text)' is not of the form key=value (for example train.lr=0.1)")
        }
        let key = text[..<eq].trimmingCharacters(in: .whitespaces)
        let raw = text[text.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        let saved = source
        source = "command line"
        defer { source = saved }
        var value: TOMLValue
        do {
            let t = try TOML.parse("v = \(raw)", source: "override \(key)")
            value = t["v"]!
        } catch {
            value = .string(raw)
        }
        // A string key takes the text as written (e.g. --set debug.die_at_steps=25).
        if Config.fields[key]?.kind == .string, case .string = value {} else if Config.fields[key]?.kind == .string {
            value = .string(raw)
        }
        try set(key, value)
        try validate()
    }

    static func coerce(_ v: TOMLValue, to f: ConfigField, source: String) throws -> TOMLValue {
        func wrong() -> PSError {
            PSError("\(source): key '\(f.key)' must be \(kindName(f.kind)), not \(v.typeName) \(v)")
        }
        switch (f.kind, v) {
        case (.string, .string), (.integer, .integer), (.float, .float), (.bool, .bool): return v
        case (.float, .integer(let i)): return .float(Double(i))
        case (.layers, .array(let items)):
            for (n, item) in items.enumerated() {
                guard case .table(let t) = item else {
                    throw PSError("\(source): model.layers[\(n)] must be an inline table such as {type = \"relu\"}, not \(item.typeName)")
                }
                guard case .string(let type)? = t["type"] else {
                    throw PSError("\(source): model.layers[\(n)] needs a string key 'type' (\"dense\" or \"relu\")")
                }
                switch type {
                case "dense":
                    guard case .integer(let u)? = t["units"], u > 0 else {
                        throw PSError("\(source): model.layers[\(n)] (dense) needs a positive integer 'units'")
                    }
                    for k in t.keys where k != "type" && k != "units" {
                        throw PSError("\(source): unknown key '\(k)' in model.layers[\(n)] (dense takes 'units')")
                    }
                case "relu":
                    for k in t.keys where k != "type" {
                        throw PSError("\(source): unknown key '\(k)' in model.layers[\(n)] (relu takes no options)")
                    }
                default:
                    throw PSError("\(source): model.layers[\(n)] has unknown type '\(type)' (known: dense, relu)")
                }
            }
            return v
        default: throw wrong()
        }
    }

    static func kindName(_ k: ConfigField.Kind) -> String {
        switch k {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .bool: return "true or false"
        case .layers: return "an array of layer tables"
        }
    }

    static func suggestion(for key: String) -> String {
        let best = schema.map { ($0.key, editDistance($0.key, key)) }.min { $0.1 < $1.1 }
        if let b = best, b.1 <= 3 { return "; did you mean '\(b.0)'?" }
        let section = key.split(separator: ".").first.map(String.init) ?? ""
        let known = schema.filter { $0.key.hasPrefix(section + ".") }.map { $0.key }
        return known.isEmpty ? "; known sections: model, data, train, scaler, compression, checkpoint, run, debug" : "; known keys: " + known.joined(separator: ", ")
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }

    /// Checks every value: each number against its key's range (finite),
    /// then the keys that depend on each other and the sizes derived from
    /// the model. The messages name the source, the key, the value and what
    /// is allowed.
    public func validate() throws {
        func bad(_ key: String, _ why: String) -> PSError { PSError("\(source): \(key) \(why)") }
        for f in Config.schema {
            guard let r = f.range, let v = values[f.key] else { continue }
            let x: Double
            switch v {
            case .integer(let i): x = Double(i)
            case .float(let d): x = d
            default: continue
            }
            if !r.contains(x) {
                throw bad(f.key, "= \(v) is out of range: it must be \(f.kind == .integer ? "an integer" : "a finite number") in \(r.text)")
            }
        }
        if !["constant", "cosine"].contains(lrSchedule) {
            throw bad("train.lr_schedule", "must be \"constant\" or \"cosine\" (is \"\(lrSchedule)\")")
        }
        if Precision(rawValue: string("train.precision")) == nil {
            throw bad("train.precision", "must be \"fp32\", \"fp16\" or \"bf16\" (is \"\(string("train.precision"))\")")
        }
        let sc = scalerSettings
        if !(sc.minScale <= sc.initialScale && sc.initialScale <= sc.maxScale) {
            throw bad("scaler.initial", "= \(sc.initialScale) must lie in [scaler.min, scaler.max] = [\(sc.minScale), \(sc.maxScale)]")
        }
        if !["yield", "spin", "sleep"].contains(poll) { throw bad("run.poll", "must be \"yield\", \"spin\" or \"sleep\" (is \"\(poll)\")") }
        if !["fashion-mnist", "synthetic"].contains(dataKind) {
            throw bad("data.kind", "must be \"fashion-mnist\" or \"synthetic\" (is \"\(dataKind)\")")
        }
        if dataKind == "synthetic" {
            for (key, n) in [("data.synthetic_train", syntheticTrain), ("data.synthetic_test", syntheticTest)] where n * inputSize > Config.maxDatasetBytes {
                throw bad(key, "= \(n) samples of model.input = \(inputSize) bytes is \(n * inputSize) bytes, more than the \(Config.maxDatasetBytes) allowed")
            }
        }
        try validateModel()
    }

    /// Checks the layers and the sizes they imply: layer widths, the number
    /// of parameters and the largest activation buffer (see the limits).
    /// Runs after the per-key ranges, so no product here can overflow.
    func validateModel() throws {
        let specs = try layerSpecs()
        if specs.count > Config.maxLayers {
            throw PSError("\(source): model.layers has \(specs.count) layers, more than the \(Config.maxLayers) allowed")
        }
        var width = inputSize, widest = inputSize, parameters = 0
        for (n, spec) in specs.enumerated() {
            guard case .dense(let units) = spec else { continue }
            if units > Config.maxWidth {
                throw PSError("\(source): model.layers[\(n)].units = \(units) is out of range: it must be an integer in [1, \(Config.maxWidth)]")
            }
            parameters += width * units + units   // weight (units, width) and bias
            width = units
            widest = max(widest, units)
        }
        if parameters > Config.maxParameters {
            throw PSError("\(source): model.layers with model.input = \(inputSize) has \(parameters) parameters, more than the \(Config.maxParameters) (2^28) allowed")
        }
        let rows = max(batchSize, Model.minimumCapacity)
        if rows * widest > Config.maxActivationElements {
            throw PSError("\(source): train.batch_size = \(batchSize) with a layer \(widest) wide needs an activation buffer of \(rows) x \(widest) = \(rows * widest) "
                + "elements, more than the \(Config.maxActivationElements) (2^28) allowed; use a smaller batch or narrower layers")
        }
    }

    // MARK: typed access

    func int(_ k: String) -> Int { if case .integer(let v)? = values[k] { return v }; fatalError("config key \(k)") }
    func double(_ k: String) -> Double { if case .float(let v)? = values[k] { return v }; fatalError("config key \(k)") }
    func string(_ k: String) -> String { if case .string(let v)? = values[k] { return v }; fatalError("config key \(k)") }
    func bool(_ k: String) -> Bool { if case .bool(let v)? = values[k] { return v }; fatalError("config key \(k)") }

    public var inputSize: Int { int("model.input") }
    public var dataKind: String { string("data.kind") }
    public var dataDir: String { string("data.dir") }
    public var syntheticTrain: Int { int("data.synthetic_train") }
    public var syntheticTest: Int { int("data.synthetic_test") }
    public var epochs: Int { int("train.epochs") }
    public var maxSteps: Int { int("train.max_steps") }
    public var batchSize: Int { int("train.batch_size") }
    public var lr: Double { double("train.lr") }
    public var momentum: Double { double("train.momentum") }
    public var lrSchedule: String { string("train.lr_schedule") }

    /// The learning rate of step `step` of a run of `total` steps.
    public func learningRate(step: Int, total: Int) -> Double {
        switch lrSchedule {
        case "cosine": return lr * 0.5 * (1 + cos(Double.pi * Double(step) / Double(max(total, 1))))
        default: return lr
        }
    }
    public var weightDecay: Double { double("train.weight_decay") }
    public var seed: UInt64 { UInt64(bitPattern: Int64(int("train.seed"))) }
    public var timeoutSeconds: Double { double("run.timeout_seconds") }
    public var blasThreads: Int { int("run.blas_threads") }
    public var poll: String { string("run.poll") }
    public var pinWorkers: Bool { bool("run.pin_workers") }
    public var chunkElements: Int { int("run.chunk_elements") }
    public var precision: Precision { Precision(rawValue: string("train.precision")) ?? .fp32 }
    public var scalerSettings: LossScaler.Settings {
        var s = LossScaler.Settings()
        s.initialScale = double("scaler.initial"); s.growthFactor = double("scaler.growth_factor")
        s.backoffFactor = double("scaler.backoff_factor"); s.growthInterval = int("scaler.growth_interval")
        s.hysteresis = int("scaler.hysteresis"); s.minScale = double("scaler.min"); s.maxScale = double("scaler.max")
        s.maxSkipsAtMin = int("scaler.max_skips_at_min")
        return s
    }
    public var codecSettings: CodecSettings {
        var c = CodecSettings()
        c.topk = double("compression.topk")
        c.shuffle = bool("compression.shuffle")
        c.zstdLevel = int("compression.zstd_level")
        c.adaptiveBypass = bool("compression.adaptive")
        c.linkBytesPerSecond = double("compression.link_gbps") * 1e9 / 8
        return c
    }
    public var overflowStep: Int { int("debug.overflow_step") }
    public var overflowWorker: Int { int("debug.overflow_worker") }
    public var overflowSteps: Int { int("debug.overflow_steps") }
    public var corruptStep: Int { int("debug.corrupt_step") }
    public var checkpointEvery: Int { int("checkpoint.every_steps") }
    public var checkpointAtEnd: Bool { bool("checkpoint.at_end") }
    public var checkpointKeep: Int { int("checkpoint.keep") }
    public var checkpointSeconds: Double { double("checkpoint.every_seconds") }
    public var dieAtSteps: [Int] { string("debug.die_at_steps").split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    public var dieWorker: Int { int("debug.die_worker") }
    public var slowWorker: Int { int("debug.slow_worker") }
    public var slowMilliseconds: Double { double("debug.slow_ms") }
    /// The (step, point) of debug.die_in_checkpoint, if set.
    public var dieInCheckpoint: (step: Int, point: String)? {
        let parts = string("debug.die_in_checkpoint").split(separator: ":")
        guard parts.count == 2, let n = Int(parts[0]) else { return nil }
        return (n, String(parts[1]))
    }
    /// Whether the state after `step` steps (of `total`) is checkpointed.
    public func checkpointDue(after step: Int, total: Int) -> Bool {
        (checkpointEvery > 0 && step % checkpointEvery == 0) || (checkpointAtEnd && step == total)
    }
    /// Whether the test hook spoils worker `w`'s gradient at `step`.
    public func spoilsGradient(step: Int, worker w: Int) -> Bool {
        overflowStep >= 0 && w == overflowWorker && step >= overflowStep && step < overflowStep + overflowSteps
    }
    public var digestEveryStep: Bool { bool("debug.digest_every_step") }
    public var progressSeconds: Double { double("run.progress_seconds") }
    public var expectedWorkers: Int { int("run.workers") }
    public var expectedServers: Int { int("run.servers") }

    public enum LayerSpec: Equatable { case dense(units: Int), relu }

    /// `model.layers` as entries of the layer kinds (Layers/).
    public func layerEntries() throws -> [LayerEntry] {
        try layerSpecs().map {
            switch $0 {
            case .dense(let u): return LayerEntry(type: "dense", options: ["units": u])
            case .relu: return LayerEntry(type: "relu")
            }
        }
    }

    public func layerSpecs() throws -> [LayerSpec] {
        guard case .array(let items)? = values["model.layers"] else { return [] }
        if items.isEmpty { throw PSError("\(source): model.layers is empty; the network needs at least one dense layer") }
        return items.map { item in
            guard case .table(let t) = item, case .string(let type)? = t["type"] else { return .relu }
            if type == "dense", case .integer(let u)? = t["units"] { return .dense(units: u) }
            return .relu
        }
    }

    // MARK: canonical form

    /// The whole resolved configuration as TOML, in schema order. This is
    /// what run.toml holds and what the configuration hash is taken over.
    public var canonicalTOML: String {
        var out = ""
        var section = ""
        for f in Config.schema {
            let parts = f.key.split(separator: ".", maxSplits: 1).map(String.init)
            if parts[0] != section {
                section = parts[0]
                out += (out.isEmpty ? "" : "\n") + "[\(section)]\n"
            }
            let v = values[f.key]!
            if f.kind == .layers, case .array(let items) = v {
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
        Config.schema.compactMap { f in
            let a = values[f.key]!, b = other.values[f.key]!
            return a == b ? nil : (f.key, a.description, b.description)
        }
    }
}
