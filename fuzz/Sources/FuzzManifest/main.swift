// Checkpoint manifest verification: CheckpointStore.verify reads
// <dir>/manifest.json and every file it lists. The harness keeps a small
// valid checkpoint (two server files, one worker file, step 5) in a
// temporary folder and writes each input as its manifest.
//
// Input: [ctl u8][manifest.json bytes...]
//   ctl bit 0: if the bytes decode as a Manifest, seal it (set its checksum)
//   before writing it, so that mutations reach the checks behind the checksum.
// A manifest verify accepts is then read as a resume does: loadRange of the
// weights and momentum for the model of the checkpoint, loadResidual of each
// worker file.
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
import PSTestSupport

let root = makeTempDir("manifest")
let dir = CheckpointStore.folder(root) + "/step-5"
let layout = ModelLayout(specs: [ParamSpec(name: "w", shape: [2, 3], initializer: .zeros),
                                 ParamSpec(name: "b", shape: [2], initializer: .zeros)])
var validManifest: [UInt8] = []

func writeCheckpoint() throws {
    let p: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
    try writeExampleCheckpoint(runDir: root, weights: p, momentum: p.map { -$0 / 10 }, residual: p.map { $0 / 4 }, build: "fuzz")
    validManifest = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
    try CheckpointStore.verify(dir)
}

func seeds() throws -> [(String, [UInt8])] {
    let m = try JSONDecoder().decode(Manifest.self, from: Data(validManifest))
    func encoded(_ m: Manifest) throws -> [UInt8] { Array(try JSONEncoder().encode(m)) }
    var shards = m; shards.tensors[0].shards[1].start = 3
    var files = m; files.files[2].name = "../worker-0.safetensors"
    var noSum = m; noSum.checksum = nil
    var scaleZero = m; scaleZero.scaler.scale = 0   // verified "ok" before issue 20
    return [
        ("valid", [0] + validManifest),
        ("valid-compact", [0] + (try encoded(m))),
        ("reseal-overlap", [1] + (try encoded(shards))),
        ("reseal-path", [1] + (try encoded(files))),
        ("no-checksum", [0] + (try encoded(noSum))),
        ("reseal-scale-zero", [1] + (try encoded(scaleZero))),
        ("format-1", [0] + Array(#"{"format":1}"#.utf8)),
    ]
}


@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if data[0] & 1 != 0, let m = try? JSONDecoder().decode(Manifest.self, from: Data(bytes)), let s = try? m.sealed(),
       let e = try? JSONEncoder().encode(s) {
        bytes = Array(e)
    }
    bytes.withUnsafeBufferPointer { writeFile(dir + "/manifest.json", $0) }
    guard let m = try? CheckpointStore.verify(dir) else { return 0 }
    for suffix in (try? CheckpointStore.serverSuffixes(m, dir: dir)) ?? [""] {
        let out = UnsafeMutablePointer<Float>.allocate(capacity: layout.totalCount)
        defer { out.deallocate() }
        _ = try? CheckpointStore.loadRange(dir, m, layout: layout, suffix: suffix, lo: 0, hi: layout.totalCount, into: out)
        _ = try? CheckpointStore.loadRange(dir, m, layout: layout, suffix: suffix, lo: 3, hi: 7, into: out)
    }
    for f in m.files where f.role == "worker" {
        _ = try? CheckpointStore.loadResidual(dir, m, file: f.name, count: layout.totalCount)
    }
    return 0
}

do { try writeCheckpoint() } catch { fatalError("cannot write the fuzzer's checkpoint: \(error)") }
atexit { try? FileManager.default.removeItem(atPath: root) }
writeSeedsIfAsked { try seeds() }
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
