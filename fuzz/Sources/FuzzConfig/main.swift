// Configuration parsing, on the three paths untrusted TOML takes:
// Config.parse (the TOML reader, the typed sections, then validate), as
// `pstrain launch` and every rank do with a configuration file; each line
// as a `--set` override (Config.apply(overrides:)); and the configuration a
// checkpoint's manifest embeds (Manifest.configuration), which `ckpt
// verify`, `inspect` and `resume` read.
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
        // Aborted toml++ (its reader's history buffer overflowed), from a file, --set or a manifest (issue 20).
        ("date-underscores.toml", Array(("[train]\nlr = 1" + String(repeating: "_", count: 117) + "979-05-27 07:32:00\n").utf8)),
        ("overrides.txt", Array(("train.lr=1" + String(repeating: "_", count: 117) + "979-05-27 07:32:00\nmodel.layers=[{type=\"dense\",units=3}]\ntrain.epochs=2\n").utf8)),
    ]
}


@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    // Config.load takes the file as UTF-8 text.
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    // --set: each line an override, applied all together (atomic: a refusal changes nothing).
    var o = Config()
    let before = o
    do { try o.apply(overrides: text.split(separator: "\n").map(String.init)) } catch {
        precondition(o == before, "a refused override changed the configuration")
    }
    // The manifest's embedded configuration reads like a file.
    let m = Manifest(run: "f", step: 1, epoch: 0, epochCursor: 0, stepsPerEpoch: 1, totalSteps: 1, seed: 1, dataOrder: "", rng: "",
                     lrSchedule: "constant", learningRate: 0.1,
                     scaler: .init(scale: 1, goodSteps: 0, hysteresisLeft: 1, skipped: 0, overflowsAtMin: 0, lastFiniteStep: 0),
                     servers: 1, workers: 1, precision: "fp32", compression: "none", build: "fuzz", configHash: "0", config: text,
                     created: 0, files: [], tensors: [])
    let fromManifest = try? m.configuration(folder: "step-1")
    guard let c = try? Config.parse(text, source: "fuzz.toml") else {
        precondition(fromManifest == nil, "a manifest's configuration read where the same file did not")
        return 0
    }
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
