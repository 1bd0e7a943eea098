// The data-set readers of data.format "npz", "safetensors" and "csv": the
// input, written to a file, is opened as the training and test set of each
// format through DataSplit.open (the zip directory with zip64 and deflate,
// .npy headers, the safetensors header, the CSV conversion and its cache,
// then the shared checks, classes, "standardize" and a held-out validation
// set), and an accepted set gathers its first and last samples. The first
// byte picks the format (its value mod 3; 0: npz, 1: safetensors, 2: csv)
// and whether half the training file is held out (value / 3 odd); the rest
// is the file.
import Foundation
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSData

let dir = makeTempDir("data")
let formats: [(DataFormat, String)] = [(.npz, "input.npz"), (.safetensors, "input.safetensors"), (.csv, "input.csv")]

func le<T>(_ v: [T]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

func npy(_ descr: String, _ shape: [Int], _ data: [UInt8]) -> [UInt8] {
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var h = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
    while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
    h += "\n"
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xff), UInt8(h.utf8.count >> 8)] + Array(h.utf8) + data
}

/// CRC-32 (zip's), bit by bit.
func crc32(_ data: [UInt8]) -> Int {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
    }
    return Int(~c)
}

/// A zip of members, stored, or deflated as one stored deflate block
/// (BFINAL, type 0, LEN, NLEN, the bytes; members under 64 KiB).
func zip(_ members: [(String, [UInt8])], deflate: Bool) -> [UInt8] {
    func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    func u32(_ v: Int) -> [UInt8] { u16(v & 0xffff) + u16(v >> 16 & 0xffff) }
    var out: [UInt8] = [], central: [UInt8] = []
    for (name, data) in members {
        let crc = crc32(data)
        let body = deflate ? [1] + u16(data.count) + u16(~data.count & 0xffff) + data : data
        let n = Array(name.utf8), offset = out.count, method = deflate ? 8 : 0
        out += u32(0x0403_4b50) + u16(20) + u16(0) + u16(method) + u16(0) + u16(0) + u32(crc) + u32(body.count) + u32(data.count)
            + u16(n.count) + u16(0) + n + body
        central += u32(0x0201_4b50) + u16(20) + u16(20) + u16(0) + u16(method) + u16(0) + u16(0) + u32(crc) + u32(body.count)
            + u32(data.count) + u16(n.count) + u16(0) + u16(0) + u16(0) + u16(0) + u32(0) + u32(offset) + n
    }
    let at = out.count
    return out + central + u32(0x0605_4b50) + u16(0) + u16(0) + u16(members.count) + u16(members.count) + u32(central.count) + u32(at) + u16(0)
}

func safetensors(_ tensors: [(String, String, [Int], [UInt8])]) -> [UInt8] {
    var entries: [String] = [], offset = 0
    for (name, dtype, shape, data) in tensors {
        entries.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + data.count)]}")
        offset += data.count
    }
    var h = Array(("{" + entries.joined(separator: ",") + "}").utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    return le([UInt64(h.count)]) + h + tensors.flatMap { $0.3 }
}

func seeds() -> [(String, [UInt8])] {
    let x: [UInt8] = (0..<24).map { UInt8($0 * 10) }, y: [UInt8] = [0, 1, 2, 1]
    let xf = le((0..<24).map { Float($0) / 3 })
    let members = [("x.npy", npy("|u1", [4, 2, 3], x)), ("y.npy", npy("<i8", [4], le(y.map { Int64($0) })))]
    return [
        ("npz-stored", [0] + zip(members, deflate: false)),
        ("npz-deflated", [3] + zip(members, deflate: true)),
        ("npz-f4", [0] + zip([("x.npy", npy("<f4", [4, 6], xf)), ("y.npy", npy("|u1", [4], y))], deflate: false)),
        ("safetensors-u8", [1] + safetensors([("x", "U8", [4, 6], x), ("y", "I32", [4], le(y.map { Int32($0) }))])),
        ("safetensors-f64", [1] + safetensors([("y", "U8", [4], y), ("x", "F64", [4, 6], le((0..<24).map { Double($0) * 0.5 }))])),
        ("csv", [5] + Array("label,a,\"b\",c\n1,0.5,2,3\n0,-1,1e3,4\r\n2, 7 ,8,9\n\n1,1,1,1\n".utf8)),
        // Issue 20: a zero axis hid an impossible shape (trapped), and float64 features beyond FP32 trained to NaN.
        ("npz-zero-axis", [0] + zip([("x.npy", npy("<f4", [0, 1 << 62, 1 << 62], [])), ("y.npy", npy("|u1", [0], []))], deflate: false)),
        ("safetensors-zero-axis", [1] + safetensors([("x", "F32", [0, 1 << 62, 1 << 62], []), ("y", "U8", [0], [])])),
        ("safetensors-f64-beyond-fp32", [1] + safetensors([("x", "F64", [2, 2], le([0.5, 1e39, 2, 3])), ("y", "U8", [2], [0, 1])])),
    ]
}

@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let (format, name) = formats[Int(data[0]) % formats.count]
    let path = dir + "/" + name
    writeFile(path, UnsafeBufferPointer(start: data + 1, count: size - 1))
    var r = DataRequest()
    r.format = format; r.train = path; r.test = path; r.normalize = .standardize; r.cacheDir = dir + "/cache"
    r.validation = (Int(data[0]) / formats.count) % 2 == 1 ? 0.5 : 0
    if let split = try? DataSplit.open(r) {
        var out = [Float](repeating: 0, count: 2 * split.train.features)
        var labels: [UInt8] = [0, 0]
        for set in [split.train, split.test] + (split.validation.map { [$0] } ?? []) where set.count > 0 {
            out.withUnsafeMutableBufferPointer { o in labels.withUnsafeMutableBufferPointer { set.gather([0, set.count - 1], into: o.baseAddress!, labels: $0.baseAddress!) } }
            precondition(labels.allSatisfy { Int($0) < set.classes })
        }
    }
    try? FileManager.default.removeItem(atPath: dir + "/cache")
    return 0
}

atexit { try? FileManager.default.removeItem(atPath: dir) }
writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
