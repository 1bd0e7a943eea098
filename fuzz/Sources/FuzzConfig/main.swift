// Configuration parsing: Config.parse (the pre-scan, TOMLKit, the typed
// sections, then validate), as `pstrain launch` and every rank do with a
// configuration file.
// A configuration it accepts must survive its canonical form (run.toml):
// parsing the canonical TOML gives the same canonical TOML. The values the
// ranks derive at start-up are computed too.
import Foundation
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol

func seeds() throws -> [(String, [UInt8])] {
    let here = URL(fileURLWithPath: #filePath)
    let example = here.deletingLastPathComponent().appendingPathComponent("../../../examples/fashion-mlp.toml").standardized
    let canonical = Config().canonicalTOML
    return [
        ("fashion-mlp.toml", Array(try Data(contentsOf: example))),
        ("defaults-canonical.toml", Array(canonical.utf8)),
        ("small.toml", Array("""
            [train]
            lr = 1e-2   # comment
            precision = "fp16"
            [compression]
            topk = 0.01
            zstd_level = 0x3
            [model]
            layers = [{ type = "dense", units = 1_000 }, { type = "relu" }, { type = "dense", units = 10 }]
            [debug]
            die_at_steps = "3, 5"
            die_in_checkpoint = '4:after-files'

            """.utf8)),
        ("dotted.toml", Array("train.lr = 0.5\n\"data\".kind = \"synthetic\"\nrun = { poll = \"spin\", chunk_elements = 256 }\n".utf8)),
        ("strings.toml", Array("[data]\ndir = \"a\\u00e9\\tb\\\\ \\U0001F600\"\n".utf8)),
        ("bad.toml", Array("[train\nlr = [1, 2,\n".utf8)),
        // Deeper than TOMLDocument.maxDepth allows (nesting used to overflow the stack).
        ("deep.toml", Array(("model.layers = " + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "\n").utf8)),
        ("deep-keys.toml", Array(("[" + Array(repeating: "k", count: 40).joined(separator: ".") + "]\nx.y = 1\n").utf8)),
        // TOML the hand-written reader refused and TOMLKit reads.
        ("tables.toml", Array("""
            [[model.layers]]
            type = "dense"
            units = 32
            [[model.layers]]
            type = 'relu'
            [[model.layers]]
            type = "dense"
            units = 10
            [data]
            dir = \"""
            /tmp/\\
              data\"""
            kind = '''synthetic'''

            """.utf8)),
        ("date.toml", Array("[train]\nlr = 1979-05-27 07:32:00\n".utf8)),
    ]
}


@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    // Config.load takes the file as UTF-8 text.
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    guard let c = try? Config.parse(text, source: "fuzz.toml") else { return 0 }
    let canonical = c.canonicalTOML
    guard let again = try? Config.parse(canonical, source: "run.toml") else {
        fatalError("the canonical form of an accepted configuration does not parse:\n\(canonical)")
    }
    precondition(again.canonicalTOML == canonical, "the canonical form changed in a round trip")
    precondition(again.hash == c.hash)
    _ = c.compression.settings; _ = c.scaler.settings; _ = c.train.precision; _ = c.train.seed
    _ = c.debug.dieAtSteps; _ = c.debug.dieInCheckpoint
    _ = c.train.learningRate(step: 0, total: 1)
    _ = c.model.layers.map { $0.toml }
    return 0
}

writeSeedsIfAsked { try seeds() }
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
