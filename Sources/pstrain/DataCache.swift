import ArgumentParser
import Foundation
import PSSupport
import PSLaunch
import PSNumerics
import PSData

extension DataCommand {
    struct Cache: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert Criteo or libsvm files into their binary caches (or check the caches) and report them.",
            discussion: """
            Makes the cache next to each file (or in --cache-dir) as a run does, unless one made from the file \
            as it is now is there, and prints its rows, fields and ids. --bench N then gathers N random rows in \
            batches of 1,024, and every row in order, and prints rows per second.
            """)
        @Argument(help: "The files.") var files: [String]
        @Option(help: "criteo or libsvm.") var format: String = "criteo"
        @Option(help: "Where the caches go (default: next to each file).") var cacheDir: String = ""
        @Option(help: "Rows to gather at random for a speed measurement (0: none).") var bench: Int = 0

        func run() throws {
            try userFacing {
                guard let f = DataFormat(rawValue: format), f.isCTR else { throw PSError("--format \(format): criteo or libsvm") }
                for path in files {
                    let t0 = Date()
                    let file = try CTRFile.open(path, format: f, cacheDir: cacheDir, what: "the file")
                    let size = (try? FileManager.default.attributesOfItem(atPath: file.cachePath)[.size] as? Int) ?? 0
                    print("\(path): \(file.count) rows, \(file.denseCount) dense, \(file.fieldCount) fields; cache \(file.cachePath) "
                          + "(\(size) bytes), ready in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
                    print("  largest id + 1 per field: \(file.idLimits.map(String.init).joined(separator: " "))")
                    if bench > 0 { try measure(file) }
                }
            }
        }

        func measure(_ file: CTRFile) throws {
            var batch = CTRBatch(fields: file.fieldCount)
            var t0 = Date(), done = 0
            while done < bench {
                let n = min(1024, bench - done)
                let idx = (0..<n).map { Int(CounterRNG.bits(seed: 1, stream: 7, index: UInt64(done + $0)) % UInt64(file.count)) }
                batch.removeAll(fields: file.fieldCount)
                try file.gather(idx, into: &batch)
                done += n
            }
            let random = Double(done) / Date().timeIntervalSince(t0)
            t0 = Date()
            for start in stride(from: 0, to: file.count, by: 1024) {
                batch.removeAll(fields: file.fieldCount)
                try file.gather(Array(start..<min(start + 1024, file.count)), into: &batch)
            }
            let inOrder = Double(file.count) / Date().timeIntervalSince(t0)
            print(String(format: "  gather: %.0f rows/s at random (%d rows), %.0f rows/s in order (every row), batches of 1,024", random, done, inOrder))
        }
    }
}
