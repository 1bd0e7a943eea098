import CPSKernels
import CZstd

/// Which stages a frame's payload went through (the frame's codec byte).
public struct CodecStages: OptionSet, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Top-k sparsification: [u32 k][k u32 index deltas][k values].
    public static let topk = CodecStages(rawValue: 1)
    /// Byte shuffle: each field's bytes grouped into planes.
    public static let shuffle = CodecStages(rawValue: 2)
    /// zstd, with its content checksum on.
    public static let zstd = CodecStages(rawValue: 4)
    public static let known: CodecStages = [.topk, .shuffle, .zstd]
}

/// Frame flags.
public enum FrameFlags {
    /// The adaptive bypass sent this piece without shuffle and zstd, because
    /// compressing it does not pay for the configured link.
    public static let bypassed: UInt8 = 1
    /// Parameters: the state after this version is checkpointed (decided by server 0).
    public static let checkpoint: UInt8 = 2
    /// Parameters: the run stops after that checkpoint (preemption).
    public static let stop: UInt8 = 4
    public static let known: UInt8 = bypassed | checkpoint | stop
}

/// The codec pipeline of a run (`[compression]` in the configuration).
public struct CodecSettings: Equatable {
    /// Fraction of each gradient piece kept by top-k (0: dense). Gradients only.
    public var topk: Double = 0
    public var shuffle = true
    /// zstd level (0: no zstd).
    public var zstdLevel = 1
    /// Skip shuffle and zstd for a piece when they cost more time than they save on the link.
    public var adaptiveBypass = true
    /// The link speed the bypass decision assumes, bytes per second.
    public var linkBytesPerSecond = 10e9 / 8
    public init() {}
}

/// What `encode` produced.
public struct EncodedPiece {
    public var stages: CodecStages
    public var flags: UInt8
    public var length: Int
    /// Entries kept by top-k (their indices are in `PieceCodec.selected`).
    public var kept: Int
}

/// Encodes and decodes the payload of one piece through the configured
/// stages. One instance per rank and direction; its scratch buffers are
/// sized for the largest piece once, so a hostile length claim can never
/// make it allocate. Every decoding step checks sizes before it trusts them.
public final class PieceCodec {
    public let settings: CodecSettings
    let maxElements: Int
    let capacity: Int
    let bufA: UnsafeMutableRawPointer
    let bufB: UnsafeMutableRawPointer
    let floats: UnsafeMutablePointer<Float>
    /// The FP32 values of the entries the last top-k encode kept, in index order.
    public var keptValues: UnsafeMutablePointer<Float> { floats }
    /// Indices selected by the last top-k encode, ascending.
    public let selected: UnsafeMutablePointer<UInt32>
    let hist: UnsafeMutablePointer<UInt32>
    let cctx: OpaquePointer
    let dctx: OpaquePointer
    /// Per piece: compressed/raw ratio, encode seconds per raw byte, step of the last measurement.
    var stats: [Int: (ratio: Double, secondsPerByte: Double, probed: Int)] = [:]
    /// Totals since the last `takeStats()`.
    public private(set) var encodeSeconds = 0.0
    public private(set) var decodeSeconds = 0.0

    public init(settings: CodecSettings, maxElements: Int) {
        self.settings = settings
        self.maxElements = max(maxElements, 1)
        capacity = 8 + self.maxElements * 8
        bufA = .allocate(byteCount: capacity, alignment: 64)
        bufB = .allocate(byteCount: capacity, alignment: 64)
        floats = .allocate(capacity: self.maxElements)
        selected = .allocate(capacity: self.maxElements)
        hist = .allocate(capacity: 65536)
        cctx = ZSTD_createCCtx()!
        dctx = ZSTD_createDCtx()!
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(settings.zstdLevel))
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
    }

    deinit {
        bufA.deallocate(); bufB.deallocate(); floats.deallocate(); selected.deallocate(); hist.deallocate()
        ZSTD_freeCCtx(cctx); ZSTD_freeDCtx(dctx)
    }

    /// Entries top-k keeps of a piece of n.
    public func keepCount(_ n: Int) -> Int { min(n, max(1, Int((settings.topk * Double(n)).rounded(.up)))) }

    /// The most bytes an encoded piece of n elements can take.
    public static func maxEncodedBytes(_ n: Int, _ p: Precision, _ s: CodecSettings, sparse: Bool) -> Int {
        let es = p.elementType.size
        let dense = n * es
        guard sparse && s.topk > 0 else { return dense }
        let k = min(n, max(1, Int((s.topk * Double(n)).rounded(.up))))
        return max(dense, 4 + k * (4 + es))
    }

    public func takeStats() -> (encode: Double, decode: Double) {
        defer { encodeSeconds = 0; decodeSeconds = 0 }
        return (encodeSeconds, decodeSeconds)
    }

    /// Whether to shuffle and compress piece `chunk` at `step`.
    func worthCompressing(chunk: Int, rawBytes: Int, step: Int) -> Bool {
        guard settings.adaptiveBypass else { return true }
        guard let s = stats[chunk], step - s.probed < 100 else { return true }
        let bps = settings.linkBytesPerSecond
        let raw = Double(rawBytes)
        // Decoding zstd runs about three times faster than encoding it.
        let compressed = s.secondsPerByte * raw * (4.0 / 3.0) + raw * s.ratio / bps
        return compressed < raw / bps
    }

    /// Encodes n FP32 values as `p`, top-k first when `sparse` and configured.
    public func encode(_ v: UnsafePointer<Float>, count n: Int, as p: Precision, sparse: Bool, chunk: Int, step: Int,
                       into out: UnsafeMutableRawPointer, capacity outCapacity: Int) -> EncodedPiece {
        let t0 = now()
        precondition(n <= maxElements)
        let es = p.elementType.size
        var stages: CodecStages = []
        var kept = n
        // Stage 1: the precision cast, or top-k then the cast of the kept values.
        var len: Int
        let useTopK = sparse && settings.topk > 0
        let compress = (settings.shuffle || settings.zstdLevel > 0) && worthCompressing(chunk: chunk, rawBytes: n * es, step: step)
        let stage1 = compress ? bufA : out
        if useTopK {
            stages.insert(.topk)
            kept = pst_topk_indices(v, n, keepCount(n), selected, hist)
            stage1.storeBytes(of: UInt32(kept).littleEndian, as: UInt32.self)
            let deltas = (stage1 + 4).assumingMemoryBound(to: UInt32.self)
            var prev: UInt32 = 0
            for j in 0..<kept {
                deltas[j] = (selected[j] &- prev).littleEndian
                prev = selected[j]
                floats[j] = v[Int(selected[j])]
            }
            Payload.encode(floats, count: kept, as: p, into: stage1 + 4 + 4 * kept)
            len = 4 + kept * (4 + es)
        } else {
            Payload.encode(v, count: n, as: p, into: stage1)
            len = n * es
        }
        var flags: UInt8 = 0
        if !compress {
            if settings.shuffle || settings.zstdLevel > 0 { flags |= FrameFlags.bypassed }
            encodeSeconds += now() - t0
            return EncodedPiece(stages: stages, flags: flags, length: len, kept: kept)
        }
        // Stage 2: byte shuffle, field by field.
        var cur = bufA
        if settings.shuffle {
            stages.insert(.shuffle)
            if useTopK {
                bufB.copyMemory(from: bufA, byteCount: 4)
                pst_shuffle(bufA + 4, bufB + 4, kept, 4)
                pst_shuffle(bufA + 4 + 4 * kept, bufB + 4 + 4 * kept, kept, es)
            } else {
                pst_shuffle(bufA, bufB, n, es)
            }
            cur = bufB
        }
        // Stage 3: zstd, kept only if it makes the piece smaller.
        var outLen = len
        if settings.zstdLevel > 0 {
            let c = ZSTD_compress2(cctx, out, outCapacity, cur, len)
            if ZSTD_isError(c) == 0 && c < len {
                stages.insert(.zstd)
                outLen = c
            } else {
                out.copyMemory(from: cur, byteCount: len)
            }
        } else {
            out.copyMemory(from: cur, byteCount: len)
        }
        let took = now() - t0
        encodeSeconds += took
        stats[chunk] = (Double(outLen) / Double(max(n * es, 1)), took / Double(max(n * es, 1)), step)
        return EncodedPiece(stages: stages, flags: flags, length: outLen, kept: kept)
    }

    /// Decodes a payload of n elements of `p` into `out`, or adds it to `out`.
    /// Every size and index is checked against n first; errors say what is wrong.
    public func decode(_ src: UnsafeRawPointer, length: Int, stages: CodecStages, count n: Int, as p: Precision,
                       into out: UnsafeMutablePointer<Float>, add: Bool) throws {
        let t0 = now()
        defer { decodeSeconds += now() - t0 }
        guard stages.isSubset(of: .known) else { throw PSError("unknown codec stages 0x\(String(stages.rawValue, radix: 16))") }
        guard n <= maxElements else { throw PSError("piece of \(n) elements is larger than this codec's \(maxElements)") }
        let es = p.elementType.size
        let sparse = stages.contains(.topk)
        let maxLen = sparse ? 4 + n * (4 + es) : n * es
        var cur = src
        var len = length
        if stages.contains(.zstd) {
            let size = ZSTD_getFrameContentSize(src, length)
            guard size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN else {
                throw PSError("zstd frame is damaged or has no content size")
            }
            guard size <= UInt64(maxLen) else { throw PSError("zstd frame claims \(size) bytes, more than the piece's \(maxLen)") }
            let d = ZSTD_decompressDCtx(dctx, bufA, Int(size), src, length)
            if ZSTD_isError(d) != 0 { throw PSError("zstd decompression failed: \(String(cString: ZSTD_getErrorName(d)))") }
            guard d == Int(size) else { throw PSError("zstd gave \(d) bytes, its header said \(size)") }
            cur = UnsafeRawPointer(bufA)
            len = d
        }
        if sparse {
            guard len >= 4 else { throw PSError("top-k payload of \(len) bytes has no count") }
            let k = Int(UInt32(littleEndian: cur.loadUnaligned(as: UInt32.self)))
            guard k <= n, len == 4 + k * (4 + es) else {
                throw PSError("top-k payload claims \(k) entries of a piece of \(n) in \(len) bytes")
            }
            if stages.contains(.shuffle) {
                let dst = cur == UnsafeRawPointer(bufA) ? bufB : bufA
                dst.copyMemory(from: cur, byteCount: 4)
                pst_unshuffle(cur.assumingMemoryBound(to: UInt8.self) + 4, dst.assumingMemoryBound(to: UInt8.self) + 4, k, 4)
                pst_unshuffle(cur.assumingMemoryBound(to: UInt8.self) + 4 + 4 * k, dst.assumingMemoryBound(to: UInt8.self) + 4 + 4 * k, k, es)
                cur = UnsafeRawPointer(dst)
            }
            Payload.decode(cur + 4 + 4 * k, count: k, as: p, into: floats)
            if !add { out.update(repeating: 0, count: n) }
            var index = -1
            for j in 0..<k {
                let delta = Int(UInt32(littleEndian: cur.loadUnaligned(fromByteOffset: 4 + 4 * j, as: UInt32.self)))
                index = j == 0 ? delta : index + delta
                guard index < n, j == 0 || delta > 0 else {
                    throw PSError("top-k index \(index) at entry \(j) is out of order or outside the piece of \(n)")
                }
                out[index] += floats[j]
            }
            return
        }
        guard len == n * es else { throw PSError("payload of \(len) bytes for \(n) elements of \(es) bytes") }
        if stages.contains(.shuffle) {
            let dst = cur == UnsafeRawPointer(bufA) ? bufB : bufA
            pst_unshuffle(cur.assumingMemoryBound(to: UInt8.self), dst.assumingMemoryBound(to: UInt8.self), n, es)
            cur = UnsafeRawPointer(dst)
        }
        if add && p == .fp32 {
            let g = cur.assumingMemoryBound(to: Float.self)
            for i in 0..<n { out[i] += g[i] }
        } else if add {
            Payload.decode(cur, count: n, as: p, into: floats)
            for i in 0..<n { out[i] += floats[i] }
        } else {
            Payload.decode(cur, count: n, as: p, into: out)
        }
    }
}
