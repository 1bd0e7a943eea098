import ArgumentParser
import Foundation
import PSSupport
import PSLaunch
import PSData

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Make data sets.",
        subcommands: [MakeCTR.self, Cache.self])

    struct MakeCTR: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "make-ctr",
            abstract: "Write a SYNTHETIC click log in the Criteo format from a planted model.",
            discussion: """
            Writes DIR/train.tsv and DIR/test.tsv (label, I1..I13, C1..C26), DIR/planted.json (the options and the \
            planted model's test AUC and log loss: what is achievable) and DIR/ctr.toml (a configuration that trains \
            on them). Ids are Zipf-distributed per field and written as hex of a permutation of [0, vocabulary), so \
            tables with rows = vocabulary need no hashing. The same arguments give the same bytes. Presets: tiny \
            (16,000 + 4,000 rows, 6,230 ids, seconds) and bench (1,000,000 + 100,000 rows, 10,072,222 ids); the other \
            options override the preset's values.
            """)
        @Option(help: "The folder to write to (created).") var out: String
        @Option(help: "tiny or bench.") var preset: String = "tiny"
        @Option(help: "Training rows.") var trainRows: Int?
        @Option(help: "Test rows.") var testRows: Int?
        @Option(help: "The seed of every random choice.") var seed: UInt64?
        @Option(help: "26 vocabulary sizes, comma-separated (C1..C26).") var fields: String?
        @Option(help: "The Zipf exponent of the ids.") var zipf: Double?
        @Option(help: "The dimension of the planted interaction vectors.") var dim: Int?
        @Option(help: "The fraction of empty fields.") var missing: Double?
        @Option(help: "The dim of ctr.toml's tables.") var tableDim: Int?

        func options() throws -> CTRGeneratorOptions {
            var o = try CTRGeneratorOptions.preset(preset)
            if let trainRows { o.trainRows = trainRows }
            if let testRows { o.testRows = testRows }
            if let seed { o.seed = seed }
            if let fields {
                let parts = fields.split(separator: ",", omittingEmptySubsequences: false)
                o.vocabularies = try parts.map { p in
                    guard let v = Int(p.trimmingCharacters(in: .whitespaces)) else { throw PSError("--fields: '\(p)' is not a whole number") }
                    return v
                }
            }
            if let zipf { o.zipf = zipf }
            if let dim { o.dim = dim }
            if let missing { o.missing = missing }
            if let tableDim { o.tableDim = tableDim }
            return o
        }

        func run() throws {
            try userFacing {
                let o = try options()
                let t0 = Date()
                let s = try CTRGenerator.write(o, to: out)
                let secs = Date().timeIntervalSince(t0)
                print("wrote \(out)/train.tsv (\(o.trainRows) rows), test.tsv (\(o.testRows) rows), planted.json, ctr.toml "
                      + "in \(String(format: "%.1f", secs)) s")
                print("synthetic: \(o.vocabularies.reduce(0, +)) ids in 26 fields, zipf \(o.zipf), seed \(o.seed); click rate "
                      + String(format: "%.3f (train) %.3f (test); planted model's test AUC %.4f, log loss %.4f",
                               s.trainClickRate, s.testClickRate, s.testAUC, s.testLogLoss))
            }
        }
    }
}
