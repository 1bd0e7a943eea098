import Foundation

/// The samples a worker trains or evaluates on: rows `rows` of a file's
/// `Samples`, normalised as they are gathered. A worker reads only the rows
/// of its slice of each batch (from a mapped file for npz, safetensors and
/// CSV), so its memory does not grow with the number of workers.
public final class Dataset {
    public let samples: Samples
    /// The file's rows this set is made of (a validation set is the end of the training file).
    public let rows: Range<Int>
    public let classes: Int
    public let normalization: Normalization

    public init(samples: Samples, rows: Range<Int>? = nil, classes: Int, normalization: Normalization) {
        let r = rows ?? 0..<samples.count
        precondition(r.lowerBound >= 0 && r.upperBound <= samples.count)
        precondition(normalization.uniform || normalization.mean.count == samples.features)
        self.samples = samples; self.rows = r; self.classes = classes; self.normalization = normalization
    }

    /// Bytes in memory with today's Fashion-MNIST normalisation (tests, the fuzzer).
    public convenience init(count: Int, features: Int, classes: Int, pixels: [UInt8], labels: [UInt8]) {
        precondition(pixels.count == count * features && labels.count == count)
        self.init(samples: Samples(bytes: pixels, shape: [features], labels: labels, source: "memory"),
                  classes: classes, normalization: .fashionMNIST)
    }

    public var count: Int { rows.count }
    /// Elements per sample (the model's input size).
    public var features: Int { samples.features }
    /// A sample's shape (for images [channels, height, width]).
    public var shape: [Int] { samples.shape }
    public var labels: ArraySlice<UInt8> { samples.labels[rows] }

    /// Writes samples `indices` (0..<count) as normalised Floats into `out`
    /// (rows of `features`) and their labels into `labelsOut`.
    public func gather<C: Collection>(_ indices: C, into out: UnsafeMutablePointer<Float>,
                                      labels labelsOut: UnsafeMutablePointer<UInt8>) where C.Element == Int {
        let f = features, base = rows.lowerBound
        samples.labels.withUnsafeBufferPointer { lb in
            var r = 0
            for idx in indices {
                precondition(idx >= 0 && idx < rows.count, "sample index out of range")
                normalization.apply(samples.x, row: base + idx, into: out + r * f)
                labelsOut[r] = lb[base + idx]
                r += 1
            }
        }
    }

    /// Today's IDX normalisation, as its constants (Normalization.fashionMNIST).
    public static let mean: Float = 0.2860
    public static let std: Float = 0.3530
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
