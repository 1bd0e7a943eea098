// The IDX data-set reader: IDX.parse of the bytes of a file (as images, 3
// dimensions, and as labels, 1), and IDX.readAll (zlib, gzipped or not, with
// its size bound) of the same bytes written to a file. An images file that
// parses is turned into a Dataset as loadPair does and a sample is gathered.
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

let dir = makeTempDir("idx")
let path = dir + "/input-idx-ubyte.gz"

func seeds() -> [(String, [UInt8])] {
    func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    let images = [0, 0, 8, 3] + be(2) + be(3) + be(4) + (0..<24).map { UInt8($0 * 10) }
    let labels = [0, 0, 8, 1] + be(5) + [0, 1, 2, 9, 3]
    return [
        ("images", images),
        ("labels", labels),
        ("images-truncated", Array(images.dropLast(1))),
        ("images-zero-dim", [0, 0, 8, 3] + be(0) + be(3) + be(4)),
        ("labels-huge-dim", [0, 0, 8, 1] + be(0x7fff_ffff)),
    ]
}


func parseBoth(_ bytes: [UInt8]) {
    if let im = try? IDX.parse(bytes, path: "fuzz", expectedDims: 3) {
        precondition(im.dims.count == 3 && im.data.count == im.dims.reduce(1, *))
        let ds = Dataset(count: im.dims[0], features: im.dims[1] * im.dims[2], classes: 10, pixels: im.data,
                         labels: [UInt8](repeating: 0, count: im.dims[0]))
        var out = [Float](repeating: 0, count: ds.features)
        var label: UInt8 = 0
        out.withUnsafeMutableBufferPointer { ds.gather([ds.count - 1], into: $0.baseAddress!, labels: &label) }
    }
    if let lb = try? IDX.parse(bytes, path: "fuzz", expectedDims: 1) {
        precondition(lb.dims.count == 1 && lb.data.count == lb.dims[0])
    }
}

@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    parseBoth(Array(input))
    // Through zlib only when the input is gzipped (zlib passes other bytes
    // through unchanged): a small bound, so that inflating past it is tried.
    if size >= 2 && data[0] == 0x1f && data[1] == 0x8b {
        writeFile(path, input)
        if let bytes = try? IDX.readAll(path, limit: 1 << 16) { parseBoth(bytes) }
    }
    return 0
}

atexit { try? FileManager.default.removeItem(atPath: dir) }
writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
