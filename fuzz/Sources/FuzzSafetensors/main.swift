// Safetensors.decode: the reader of checkpoint files and exports. A file it
// accepts must encode back to the same tensors (a second decode agrees).
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol

func seeds() -> [(String, [UInt8])] {
    let w = (0..<6).map { Float($0) * 0.5 - 1 }
    let a = w.withUnsafeBufferPointer { Safetensors.Tensor(name: "fc1.weight", shape: [2, 3], floats: $0) }
    let b = Safetensors.Tensor(name: "step", dtype: .i64, shape: [], data: [7, 0, 0, 0, 0, 0, 0, 0])
    let c = Safetensors.Tensor(name: "half", dtype: .f16, shape: [2], data: [0, 0x3c, 0, 0xc0])
    let d = Safetensors.Tensor(name: "empty", dtype: .u8, shape: [0, 4], data: [])
    let full = Safetensors.encode([a, b, c, d], metadata: ["format": "pt", "pstrain": "1"])
    var truncated = full; truncated.removeLast(3)
    return [
        ("one", Safetensors.encode([a])),
        ("four-meta", full),
        ("empty", Safetensors.encode([])),
        ("bf16-f64", Safetensors.encode([Safetensors.Tensor(name: "x", dtype: .bf16, shape: [1, 1], data: [0x80, 0x3f]),
                                         Safetensors.Tensor(name: "y", dtype: .f64, shape: [1], data: [0, 0, 0, 0, 0, 0, 0xf0, 0x3f])])),
        ("truncated", truncated),
    ]
}


@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let (tensors, metadata) = try? Safetensors.decode(bytes, source: "fuzz") else { return 0 }
    // What was accepted is consistent: it encodes, and decodes back the same.
    let again = Safetensors.encode(tensors, metadata: metadata)
    guard let (t2, m2) = try? Safetensors.decode(again, source: "fuzz re-encoded") else {
        fatalError("a decoded file does not decode after encoding")
    }
    precondition(m2 == metadata, "metadata changed in a round trip")
    // Tensors with equal byte ranges (empty ones) may come back in another order.
    precondition(t2.sorted { $0.name < $1.name } == tensors.sorted { $0.name < $1.name }, "tensors changed in a round trip")
    return 0
}

writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
