import CPSKernels
import PSNumerics

/// Top-k sparsification of gradients: the k entries of largest magnitude of
/// a piece, as [u32 k][k u32 index deltas][k values in the wire precision].
/// What it leaves out is carried by ErrorFeedback. Parameters are never
/// sparsified.
public final class TopK {
    public static let flag = CodecStages.topk
    /// Fraction of each piece kept (0: off).
    public let fraction: Double
    let maxElements: Int
    /// Indices selected by the last encode, ascending.
    public let selected: UnsafeMutablePointer<UInt32>
    let hist: UnsafeMutablePointer<UInt32>

    public init(fraction: Double, maxElements: Int) {
        self.fraction = fraction
        self.maxElements = maxElements
        selected = .allocate(capacity: maxElements)
        hist = .allocate(capacity: 65536)
    }

    deinit { selected.deallocate(); hist.deallocate() }

    /// Entries kept of a piece of n.
    public static func keepCount(_ n: Int, fraction: Double) -> Int { min(n, max(1, Int((fraction * Double(n)).rounded(.up)))) }

    /// The encoded size of k entries of `elementSize` bytes.
    public static func bytes(_ k: Int, elementSize es: Int) -> Int { 4 + k * (4 + es) }

    public static func fields(_ k: Int, elementSize es: Int) -> PayloadFields { PayloadFields(leading: 4, (k, 4), (k, es)) }

    /// Selects and writes the kept entries of `v` (n values) into `out`;
    /// `values` receives their FP32 values in index order. Returns k.
    public func encode(_ v: UnsafePointer<Float>, count n: Int, as p: Precision, values: UnsafeMutablePointer<Float>,
                       into out: UnsafeMutableRawPointer) -> Int {
        let kept = pst_topk_indices(v, n, Self.keepCount(n, fraction: fraction), selected, hist)
        out.storeBytes(of: UInt32(kept).littleEndian, as: UInt32.self)
        let deltas = (out + 4).assumingMemoryBound(to: UInt32.self)
        var prev: UInt32 = 0
        for j in 0..<kept {
            deltas[j] = (selected[j] &- prev).littleEndian
            prev = selected[j]
            values[j] = v[Int(selected[j])]
        }
        Payload.encode(values, count: kept, as: p, into: out + 4 + 4 * kept)
        return kept
    }

    /// The layout of a received top-k payload of `length` bytes for a piece
    /// of n, checked: its count must fit the piece and the length.
    public static func fields(of src: UnsafeRawPointer, length: Int, count n: Int, elementSize es: Int) throws -> PayloadFields {
        guard length >= 4 else { throw CodecError.topkWithoutCount(bytes: length) }
        let k = Int(UInt32(littleEndian: src.loadUnaligned(as: UInt32.self)))
        guard k <= n, length == bytes(k, elementSize: es) else {
            throw CodecError.topkCount(kept: k, elements: n, bytes: length)
        }
        return fields(k, elementSize: es)
    }

    /// Scatters (adds) a checked top-k payload into `out` (n values), zeroing
    /// `out` first unless `add`; `values` is scratch for k floats.
    public static func decode(_ src: UnsafeRawPointer, count n: Int, kept k: Int, as p: Precision, values: UnsafeMutablePointer<Float>,
                              into out: UnsafeMutablePointer<Float>, add: Bool) throws {
        Payload.decode(src + 4 + 4 * k, count: k, as: p, into: values)
        if !add { out.update(repeating: 0, count: n) }
        var index = -1
        for j in 0..<k {
            let delta = Int(UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 + 4 * j, as: UInt32.self)))
            index = j == 0 ? delta : index + delta
            guard index < n, j == 0 || delta > 0 else {
                throw CodecError.topkIndex(index: index, entry: j, elements: n)
            }
            out[index] += values[j]
        }
    }
}
