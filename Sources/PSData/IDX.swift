import Foundation
import CZlib
import PSSupport
import PSNumerics

// Data-set file formats: the readers of untrusted bytes, apart from the
// numeric core that holds data sets in memory (one reason to change each).

extension DataSplit {
    /// The Fashion-MNIST files in `dir` (gzipped IDX). Errors name the file.
    public static func fashionMNIST(dir d: String) throws -> DataSplit {
        let train = try IDX.loadPair(images: d + "/train-images-idx3-ubyte.gz", labels: d + "/train-labels-idx1-ubyte.gz")
        let test = try IDX.loadPair(images: d + "/t10k-images-idx3-ubyte.gz", labels: d + "/t10k-labels-idx1-ubyte.gz")
        if train.features != test.features {
            throw DataError.mismatch("\(d): train images have \(train.features) pixels but test images have \(test.features)")
        }
        return DataSplit(train: train, test: test)
    }
}

/// The IDX format of MNIST-style data sets: a big-endian header (two zero
/// bytes, a type byte 0x08 for unsigned bytes, the number of dimensions, then
/// each dimension as a 32-bit integer) followed by the data. The files are
/// read through zlib, gzipped or not.
public enum IDX {
    public struct Array3 { public let dims: [Int]; public let data: [UInt8] }

    /// Reads a whole file, inflating it if it is gzipped. Bounded: a file that
    /// inflates past `limit` bytes is an error, not an allocation.
    public static func readAll(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError.missing(file: path)
        }
        guard let f = gzopen(path, "rb") else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { gzclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var errnum: Int32 = 0
                let msg = String(cString: gzerror(f, &errnum))
                throw DataError.malformed(file: path, problem: "cannot decompress (\(msg)); the file is damaged, download or reinstall it")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
            if out.count > limit { throw DataError.malformed(file: path, problem: "larger than \(limit) bytes once decompressed; not an IDX file of this data set") }
        }
        return out
    }

    /// Parses an IDX file of unsigned bytes with `expectedDims` dimensions.
    public static func parse(_ bytes: [UInt8], path: String, expectedDims: Int) throws -> Array3 {
        guard bytes.count >= 4 else { throw DataError.malformed(file: path, problem: "only \(bytes.count) bytes, too short for an IDX header") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw DataError.malformed(file: path, problem: "bad IDX magic number (first bytes \(hex(bytes[0..<4]))); expected 00 00 08 0\(expectedDims)")
        }
        guard bytes[2] == 0x08 else {
            throw DataError.malformed(file: path, problem: "IDX element type 0x\(String(bytes[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let nd = Int(bytes[3])
        guard nd == expectedDims else {
            throw DataError.malformed(file: path, problem: "IDX file has \(nd) dimensions, expected \(expectedDims) (\(expectedDims == 1 ? "labels" : "images"))")
        }
        let headerLen = 4 + 4 * nd
        guard bytes.count >= headerLen else { throw DataError.malformed(file: path, problem: "truncated IDX header (\(bytes.count) bytes)") }
        var dims: [Int] = []
        var total = 1
        for k in 0..<nd {
            let o = 4 + 4 * k
            let d = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            guard d > 0 else { throw DataError.malformed(file: path, problem: "IDX dimension \(k) is zero") }
            dims.append(d)
            total = total.multipliedReportingOverflow(by: d).overflow ? Int.max : total * d
        }
        guard bytes.count - headerLen == total else {
            throw DataError.malformed(file: path, problem: "header says \(dims.map(String.init).joined(separator: "x")) = \(total) bytes of data but the file holds \(bytes.count - headerLen); the file is truncated or damaged")
        }
        return Array3(dims: dims, data: Array(bytes[headerLen...]))
    }

    static func hex(_ b: ArraySlice<UInt8>) -> String { b.map { String(format: "%02x", $0) }.joined(separator: " ") }

    /// Loads an images file (n, rows, cols) and its labels file (n).
    public static func loadPair(images: String, labels: String, classes: Int = 10) throws -> Dataset {
        let im = try parse(readAll(images), path: images, expectedDims: 3)
        let lb = try parse(readAll(labels), path: labels, expectedDims: 1)
        guard im.dims[0] == lb.dims[0] else {
            throw DataError.mismatch("\(images) holds \(im.dims[0]) images but \(labels) holds \(lb.dims[0]) labels")
        }
        if let bad = lb.data.firstIndex(where: { Int($0) >= classes }) {
            throw DataError.malformed(file: labels, problem: "label \(lb.data[bad]) at index \(bad) is not a class in 0..<\(classes)")
        }
        return Dataset(count: im.dims[0], features: im.dims[1] * im.dims[2], classes: classes, pixels: im.data, labels: lb.data)
    }
}
