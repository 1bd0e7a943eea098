import Foundation
import CZlib
import PSSupport

/// A labelled image data set kept in memory as bytes (one byte per pixel),
/// converted to Float only for the samples of the current batch.
public struct Dataset {
    public let count: Int
    public let features: Int
    public let classes: Int
    public let pixels: [UInt8]   // (count, features)
    public let labels: [UInt8]   // (count)

    public init(count: Int, features: Int, classes: Int, pixels: [UInt8], labels: [UInt8]) {
        precondition(pixels.count == count * features && labels.count == count)
        self.count = count; self.features = features; self.classes = classes
        self.pixels = pixels; self.labels = labels
    }

    /// Writes samples `indices` as normalised Floats into `out` (rows of
    /// `features`) and their labels into `labelsOut`.
    public func gather<C: Collection>(_ indices: C, into out: UnsafeMutablePointer<Float>,
                                      labels labelsOut: UnsafeMutablePointer<UInt8>) where C.Element == Int {
        pixels.withUnsafeBufferPointer { px in
            var r = 0
            for idx in indices {
                let src = px.baseAddress! + idx * features
                let dst = out + r * features
                for j in 0..<features { dst[j] = Float(src[j]) * Dataset.scale + Dataset.shift }
                labelsOut[r] = labels[idx]
                r += 1
            }
        }
    }

    /// Pixels p in 0...255 become (p/255 - mean)/std with Fashion-MNIST's
    /// published training-set mean 0.2860 and std 0.3530.
    public static let mean: Float = 0.2860
    public static let std: Float = 0.3530
    public static let scale: Float = 1 / (255 * std)
    public static let shift: Float = -mean / std
}

/// The train and test halves of a data set.
public struct DataSplit {
    public let train: Dataset
    public let test: Dataset

    /// The Fashion-MNIST files in `dir` (gzipped IDX). Errors name the file.
    public static func fashionMNIST(dir d: String) throws -> DataSplit {
        let train = try IDX.loadPair(images: d + "/train-images-idx3-ubyte.gz", labels: d + "/train-labels-idx1-ubyte.gz")
        let test = try IDX.loadPair(images: d + "/t10k-images-idx3-ubyte.gz", labels: d + "/t10k-labels-idx1-ubyte.gz")
        if train.features != test.features {
            throw DataError.mismatch("\(d): train images have \(train.features) pixels but test images have \(test.features)")
        }
        return DataSplit(train: train, test: test)
    }

    /// A small learnable data set for fast tests: each class has a fixed
    /// random prototype; a sample is its prototype plus noise, as bytes.
    public static func synthetic(train: Int, test: Int, features: Int, classes: Int, seed: UInt64) -> DataSplit {
        func make(_ n: Int, stream: UInt64) -> Dataset {
            var px = [UInt8](repeating: 0, count: n * features)
            var lb = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                let c = Int(CounterRNG.bits(seed: seed, stream: stream, index: UInt64(i)) % UInt64(classes))
                lb[i] = UInt8(c)
                for j in 0..<features {
                    let proto = CounterRNG.uniform(seed: seed, stream: 1000 + UInt64(c), index: UInt64(j))
                    let noise = CounterRNG.uniform(seed: seed, stream: stream + 7, index: UInt64(i * features + j))
                    let v = 0.7 * proto + 0.3 * noise
                    px[i * features + j] = UInt8(min(255, max(0, v * 255)))
                }
            }
            return Dataset(count: n, features: features, classes: classes, pixels: px, labels: lb)
        }
        return DataSplit(train: make(train, stream: 1), test: make(test, stream: 2))
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

/// The order of samples in an epoch and how a global batch is cut over the
/// workers. Everything is a function of (seed, epoch): any rank, after any
/// restart, computes the same order.
public struct Sampler {
    public let count: Int
    public let batchSize: Int
    public let seed: UInt64

    public init(count: Int, batchSize: Int, seed: UInt64) {
        self.count = count; self.batchSize = batchSize; self.seed = seed
    }

    /// Whole batches per epoch (the last partial batch is dropped).
    public var stepsPerEpoch: Int { count / batchSize }

    /// Fisher-Yates shuffle driven by the counter RNG of (seed, epoch).
    public func permutation(epoch: Int) -> [Int32] {
        var p = (0..<count).map { Int32($0) }
        var i = count - 1
        while i > 0 {
            let r = CounterRNG.bits(seed: seed, stream: 0xE90C_0000 &+ UInt64(epoch), index: UInt64(i))
            let j = Int(r % UInt64(i + 1))
            p.swapAt(i, j)
            i -= 1
        }
        return p
    }

    /// Worker `w` of `workers` takes rows [lo, hi) of every global batch.
    /// Slices differ in size by at most one and are disjoint and complete.
    public static func slice(batch: Int, worker w: Int, of workers: Int) -> Range<Int> {
        let base = batch / workers, extra = batch % workers
        let lo = w * base + min(w, extra)
        return lo..<(lo + base + (w < extra ? 1 : 0))
    }
}
