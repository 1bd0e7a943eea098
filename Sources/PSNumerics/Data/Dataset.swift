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
    public init(train: Dataset, test: Dataset) { self.train = train; self.test = test }

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
