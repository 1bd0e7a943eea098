import Foundation
import CZlib
import XCTest
@testable import PSNumerics
@testable import PSData
import PSTestSupport

/// Small data-set files written from Swift, byte by byte, so that tests can
/// also write what numpy never would (truncated, mislabelled, ragged).
enum TestFiles {
    /// The little-endian bytes of `values`.
    static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    /// A .npy file: version 1 header padded to 64 bytes, then `data`.
    static func npy(_ descr: String, _ shape: [Int], _ data: [UInt8], fortran: Bool = false) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = header.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xff), UInt8(n >> 8)] + Array(header.utf8) + data
    }

    /// A zip archive of stored members, as numpy.savez writes them.
    static func zip(_ members: [(name: String, data: [UInt8])]) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
        func u32(_ v: Int) -> [UInt8] { u16(v & 0xffff) + u16(v >> 16 & 0xffff) }
        var out: [UInt8] = [], central: [UInt8] = []
        for m in members {
            let crc = m.data.withUnsafeBytes { Int(crc32(0, $0.bindMemory(to: Bytef.self).baseAddress, uInt($0.count))) }
            let name = Array(m.name.utf8)
            let offset = out.count
            out += u32(0x0403_4b50) + u16(20) + u16(0) + u16(0) + u16(0) + u16(0) + u32(crc) + u32(m.data.count) + u32(m.data.count)
                + u16(name.count) + u16(0) + name + m.data
            central += u32(0x0201_4b50) + u16(20) + u16(20) + u16(0) + u16(0) + u16(0) + u16(0) + u32(crc) + u32(m.data.count)
                + u32(m.data.count) + u16(name.count) + u16(0) + u16(0) + u16(0) + u16(0) + u32(0) + u32(offset) + name
        }
        let cdOffset = out.count
        out += central
        out += u32(0x0605_4b50) + u16(0) + u16(0) + u16(members.count) + u16(members.count) + u32(central.count) + u32(cdOffset) + u16(0)
        return out
    }

    /// An .npz of x and y.
    static func npz(x: (String, [Int], [UInt8]), y: (String, [Int], [UInt8])) -> [UInt8] {
        zip([("x.npy", npy(x.0, x.1, x.2)), ("y.npy", npy(y.0, y.1, y.2))])
    }

    /// A safetensors file of the tensors given, in order.
    static func safetensors(_ tensors: [(name: String, dtype: String, shape: [Int], data: [UInt8])]) -> [UInt8] {
        var entries: [String] = [], offset = 0
        for t in tensors {
            entries.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.data.count)]}")
            offset += t.data.count
        }
        var h = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return bytes([UInt64(h.count).littleEndian]) + h + tensors.flatMap { $0.data }
    }

    /// A gzipped IDX file of unsigned bytes.
    static func idx(_ dims: [Int], _ data: [UInt8]) -> [UInt8] {
        var h: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims { h += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)] }
        return h + data
    }

    static func write(_ path: String, _ bytes: [UInt8]) {
        precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
    }

    static func writeGz(_ path: String, _ bytes: [UInt8]) {
        let f = gzopen(path, "wb")!
        _ = bytes.withUnsafeBytes { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
        gzclose(f)
    }

    /// A fresh temporary folder, removed by the caller.
    static func tempDir(_ tag: String) -> String { temporaryFolder(tag) }

    /// The message of the error `body` throws ("" when it throws none).
    static func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    /// Gathers every sample of `set` as Floats and labels.
    static func gatherAll(_ set: Dataset) -> (x: [Float], y: [UInt8]) {
        var x = [Float](repeating: .nan, count: set.count * set.features), y = [UInt8](repeating: 0, count: set.count)
        x.withUnsafeMutableBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
            set.gather(0..<set.count, into: xb.baseAddress!, labels: yb.baseAddress!)
        } }
        return (x, y)
    }
}
