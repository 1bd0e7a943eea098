import Foundation
import PSSupport
import PSNumerics

/// What a synthetic click log is made of (`pstrain data make-ctr`).
public struct CTRGeneratorOptions: Equatable, Sendable {
    public var trainRows = 16_000
    public var testRows = 4_000
    public var seed: UInt64 = 1
    /// One vocabulary size per categorical field (26, C1..C26).
    public var vocabularies = CTRGeneratorOptions.tinyVocabularies
    /// The Zipf exponent of the ids of each field.
    public var zipf = 1.1
    /// The dimension of the planted pairwise-interaction vectors.
    public var dim = 4
    /// The fraction of empty fields (categorical and integer).
    public var missing = 0.03
    /// The `dim` of the tables in the ctr.toml it writes.
    public var tableDim = 16

    public init() {}

    /// 26 vocabularies of 3 to 2,000 ids (6,230 in all).
    public static let tinyVocabularies = [2000, 1000, 700, 500, 400, 300, 250, 200, 150, 120, 100, 90, 80,
                                          70, 60, 50, 40, 30, 25, 20, 15, 10, 8, 5, 4, 3]
    /// 26 vocabularies of 3 to 4,100,000 ids (10,072,222 in all).
    public static let benchVocabularies = [4_100_000, 3_000_000, 1_500_000, 800_000, 300_000, 150_000, 100_000, 50_000, 30_000, 20_000,
                                           10_000, 5_000, 3_000, 2_000, 1_000, 500, 300, 200, 100, 50, 30, 20, 10, 5, 4, 3]

    /// "tiny": 16,000 + 4,000 rows over tinyVocabularies (tests, seconds);
    /// "bench": 1,000,000 + 100,000 rows over benchVocabularies (10M ids).
    public static func preset(_ name: String) throws -> CTRGeneratorOptions {
        var o = CTRGeneratorOptions()
        switch name {
        case "tiny": break
        case "bench":
            o.trainRows = 1_000_000; o.testRows = 100_000; o.vocabularies = benchVocabularies
        default: throw PSError("unknown preset '\(name)'; the presets are tiny (20,000 rows, tests) and bench (1,100,000 rows, 10M ids)")
        }
        return o
    }

    /// The most ids the 26 vocabularies may hold together (the bench
    /// preset has 10,072,222), the most training rows and the most test rows.
    public static let maxVocabulary = 100_000_000
    public static let maxTrainRows = 1 << 40
    public static let maxTestRows = 50_000_000

    /// Refuses options that cannot make a Criteo file.
    public func check() throws {
        guard vocabularies.count == Criteo.fieldCount else {
            throw PSError("--fields has \(vocabularies.count) vocabulary sizes; the Criteo format has \(Criteo.fieldCount) categorical fields (C1..C26)")
        }
        // The generator keeps a permutation and a Zipf table per field (12
        // bytes an id) and a score per test row (8 bytes): bounded so that
        // a large request is refused here, not by the allocator.
        for (f, v) in vocabularies.enumerated() where v < 1 || v > Self.maxVocabulary {
            throw PSError("--fields: C\(f + 1) has a vocabulary of \(v); it takes 1 to \(Self.maxVocabulary) ids")
        }
        let ids = vocabularies.reduce(0, +)
        guard ids <= Self.maxVocabulary else {
            throw PSError("--fields: the vocabularies add up to \(ids) ids; the generator takes at most \(Self.maxVocabulary) in all (12 bytes each in memory)")
        }
        guard trainRows >= 1, testRows >= 2 else { throw PSError("--train-rows must be at least 1 and --test-rows at least 2 (the planted AUC needs both labels)") }
        guard trainRows <= Self.maxTrainRows else { throw PSError("--train-rows \(trainRows): at most \(Self.maxTrainRows)") }
        guard testRows <= Self.maxTestRows else {
            throw PSError("--test-rows \(testRows): at most \(Self.maxTestRows) (the planted AUC keeps a score per test row in memory)")
        }
        guard zipf > 0 && zipf <= 10 else { throw PSError("--zipf \(zipf): the exponent must be in (0, 10]") }
        guard dim >= 1 && dim <= 64 else { throw PSError("--dim \(dim): the planted interaction dimension must be 1 to 64") }
        guard missing >= 0 && missing < 1 else { throw PSError("--missing \(missing): the fraction of empty fields must be in [0, 1)") }
        guard tableDim >= 1 && tableDim <= TableSpec.maxDim else { throw PSError("--table-dim \(tableDim): the tables' dim must be 1 to \(TableSpec.maxDim)") }
    }
}

/// What the planted model achieves on the test rows.
public struct CTRPlantedSummary: Equatable, Sendable {
    public var trainClickRate = 0.0
    public var testClickRate = 0.0
    public var testAUC = 0.0
    public var testLogLoss = 0.0
    public var bias = 0.0
}

/// Writes a SYNTHETIC click log in the Criteo format (docs/formats.md,
/// "Synthetic click logs"): DIR/train.tsv, DIR/test.tsv, DIR/planted.json
/// (the options and what the planted model scores: the achievable AUC) and
/// DIR/ctr.toml (a configuration that trains on the files). The same
/// options give the same bytes.
public enum CTRGenerator {
    /// Rows used to set the planted model's bias.
    static let calibrationRows = 20_000

    public static func write(_ o: CTRGeneratorOptions, to dir: String) throws -> CTRPlantedSummary {
        try o.check()
        // The folder is written into ctr.toml's strings and comments.
        if let c = dir.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw PSError("--out \(dir.debugDescription) holds a control character (U+\(String(format: "%04X", c.value))); name a folder without one")
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw DataError.unreadable(file: dir, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        var model = CTRPlanted(seed: o.seed, vocabularies: o.vocabularies, zipf: o.zipf, dim: o.dim, missing: o.missing)
        model.calibrate(rows: min(o.trainRows, calibrationRows))
        var s = CTRPlantedSummary()
        s.bias = model.bias
        s.trainClickRate = try writeRows(model, 0..<o.trainRows, to: dir + "/train.tsv", keepScores: false).rate
        let (rate, scores) = try writeRows(model, o.trainRows..<(o.trainRows + o.testRows), to: dir + "/test.tsv", keepScores: true)
        s.testClickRate = rate
        (s.testAUC, s.testLogLoss) = Self.score(scores)
        try writeText(CTRGeneratorText.planted(o, model, s), to: dir + "/planted.json")
        let abs = dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir
        try writeText(CTRGeneratorText.config(o, dir: abs), to: dir + "/ctr.toml")
        return s
    }

    /// Writes rows `rows` as Criteo lines; the click rate, and with
    /// `keepScores` each row's planted probability and label.
    static func writeRows(_ m: CTRPlanted, _ rows: Range<Int>, to path: String, keepScores: Bool) throws -> (rate: Double, scores: [(Float, Bool)]) {
        let out = try CacheWriter(path, header: [], what: "the click log")
        var r = CTRPlanted.Row(), line: [UInt8] = [], clicks = 0, scores: [(Float, Bool)] = []
        line.reserveCapacity(1024)
        if keepScores { scores.reserveCapacity(rows.count) }
        for g in rows {
            m.draw(g, into: &r)
            let logit = m.bias + r.z
            let click = m.label(g, logit: logit)
            if click { clicks += 1 }
            if keepScores { scores.append((Float(1 / (1 + exp(-logit))), click)) }
            CTRGeneratorText.line(click: click, r, perm: m.perm, into: &line)
            try line.withUnsafeBytes { try out.append(bytes: $0) }
        }
        try out.flush()
        return (Double(clicks) / Double(max(rows.count, 1)), scores)
    }

    /// AUC (ties count one half) and mean log loss of probabilities against labels.
    public static func score(_ s: [(Float, Bool)]) -> (auc: Double, logLoss: Double) {
        let sorted = s.sorted { $0.0 < $1.0 }
        var rankSum = 0.0, positives = 0, i = 0
        while i < sorted.count {
            var j = i
            while j < sorted.count && sorted[j].0 == sorted[i].0 { j += 1 }
            let mid = Double(i + j + 1) / 2
            for k in i..<j where sorted[k].1 { rankSum += mid; positives += 1 }
            i = j
        }
        let negatives = s.count - positives
        let auc = positives == 0 || negatives == 0 ? 0.5 : (rankSum - Double(positives) * Double(positives + 1) / 2) / (Double(positives) * Double(negatives))
        let eps = 1e-7
        let ll = s.reduce(0.0) { acc, e in
            let p = min(max(Double(e.0), eps), 1 - eps)
            return acc - (e.1 ? log(p) : log(1 - p))
        } / Double(max(s.count, 1))
        return (auc, ll)
    }

    static func writeText(_ text: String, to path: String) throws {
        let out = try CacheWriter(path, header: Array(text.utf8), what: (path as NSString).lastPathComponent)
        try out.flush()
    }
}
