import Foundation
import CZlib
import PSNumerics

// The IDX format of the MNIST family (Fashion-MNIST, MNIST, KMNIST, EMNIST):
// gzipped or plain, read whole into memory (a gzipped file cannot be mapped).

/// The IDX format of MNIST-style data sets: a big-endian header (two zero
/// bytes, a type byte 0x08 for unsigned bytes, the number of dimensions, then
/// each dimension as a 32-bit integer) followed by the data. The files are
/// read through zlib, gzipped or not.
public enum IDX {
    public struct Array3 { public let dims: [Int]; public let data: [UInt8] }

    /// Reads a whole file, inflating it if it is gzipped. Bounded: a file that
    /// inflates past `limit` bytes is an error, not an allocation.
    /// `what` says which key named the file (nil: the default Fashion-MNIST
    /// folder, whose message says which Debian package installs it).
    public static func readAll(_ path: String, limit: Int = 1 << 30, what: String? = nil) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw what.map { DataError.notFound(file: path, what: $0) } ?? DataError.missing(file: path)
        }
        // Opened without blocking and checked to be a regular file first: a
        // FIFO named as data.train hung the worker until the start-up deadline.
        let fd = try MappedFile.openRegular(path, what: what ?? "the data set")
        guard let f = gzdopen(fd, "rb") else { close(fd); throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
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

    /// An images file (n, rows, cols) and its labels file (n) as samples of
    /// shape [1, rows, cols] (one channel). `what` as in readAll.
    public static func samples(images: String, labels: String, what: String? = nil) throws -> Samples {
        let im = try parse(readAll(images, what: what), path: images, expectedDims: 3)
        let lb = try parse(readAll(labels, what: what.map { "the labels beside \(images), for \($0)" }), path: labels, expectedDims: 1)
        let x = MemoryBlock(copying: im.data), y = MemoryBlock(copying: lb.data)
        let found = FoundArrays(
            x: .init(view: ArrayView(base: x.pointer, type: .uint8, shape: [im.dims[0], 1, im.dims[1], im.dims[2]], owner: x),
                     file: images, name: "images"),
            y: .init(view: ArrayView(base: y.pointer, type: .uint8, shape: [lb.dims[0]], owner: y), file: labels, name: "labels"))
        return try found.checked()
    }

    /// Where the labels of IDX images file `images` are: the same folder and
    /// name with "images" replaced by "labels" and "idx3" by "idx1"
    /// (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz).
    public static func labelsPath(images: String) throws -> String {
        let dir = (images as NSString).deletingLastPathComponent
        let name = (images as NSString).lastPathComponent
        guard let r = name.range(of: "images", options: .backwards) else {
            throw DataError.malformed(file: images, problem: "cannot tell where its labels are: an IDX images file's name must contain "
                                      + "\"images\" (its labels are the same name with \"labels\", and idx1 for idx3)")
        }
        var labels = name.replacingCharacters(in: r, with: "labels")
        if let k = labels.range(of: "idx3") { labels = labels.replacingCharacters(in: k, with: "idx1") }
        return dir.isEmpty ? labels : dir + "/" + labels
    }

    /// An images file and its labels as a Dataset of `classes` classes with
    /// today's normalisation (tests).
    public static func loadPair(images: String, labels: String, classes: Int = 10) throws -> Dataset {
        let s = try samples(images: images, labels: labels)
        try s.checkLabels(below: classes, name: "labels", why: "the data set has \(classes) classes")
        return Dataset(samples: s, classes: classes, normalization: .fashionMNIST)
    }
}
