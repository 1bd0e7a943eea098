import Foundation
import PSSupport
import PSNumerics

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

extension CodecSettings {
    /// "top-k 1% + shuffle + zstd 1, adaptive at 10 Gbit/s", for logs and manifests.
    public var summary: String {
        var parts: [String] = []
        if topk > 0 { parts.append("top-k \(topk * 100)%") }
        if shuffle { parts.append("shuffle") }
        if zstdLevel > 0 { parts.append("zstd \(zstdLevel)") }
        if parts.isEmpty { return "none" }
        return parts.joined(separator: " + ") + (adaptiveBypass ? ", adaptive at \(linkBytesPerSecond * 8 / 1e9) Gbit/s" : "")
    }
}

/// What `encode` produced.
public struct EncodedPiece {
    /// The flag of a piece the adaptive bypass sent without shuffle and zstd
    /// (FrameFlags.bypassed in the frame's header).
    public static let bypassedFlag: UInt8 = 1

    public var stages: CodecStages
    public var flags: UInt8
    public var length: Int
    /// Entries kept by top-k (their indices are in `PieceCodec.selected`).
    public var kept: Int
}

/// Encodes and decodes the payload of one piece through the configured
/// stages: a value stage (the precision cast, or TopK then the cast of the
/// kept values), then the byte stages in `stages` order (Shuffle, Zstd).
/// One instance per rank and direction; its scratch buffers are sized for
/// the largest piece once, so a hostile length claim can never make it
/// allocate. Every decoding step checks sizes before it trusts them.
public final class PieceCodec {
    public let settings: CodecSettings
    let maxElements: Int
    /// The most elements one piece may have.
    public var maxElementCount: Int { maxElements }
    let capacity: Int
    let bufA: UnsafeMutableRawPointer
    let bufB: UnsafeMutableRawPointer
    let floats: UnsafeMutablePointer<Float>
    let topk: TopK
    /// The byte stages, in encoding order; decoding runs them backwards.
    let stages: [CodecStage]
    /// Those the settings turn on, for encoding.
    let active: [CodecStage]
    /// The FP32 values of the entries the last top-k encode kept, in index order.
    public var keptValues: UnsafeMutablePointer<Float> { floats }
    /// Indices selected by the last top-k encode, ascending.
    public var selected: UnsafeMutablePointer<UInt32> { topk.selected }
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
        topk = TopK(fraction: settings.topk, maxElements: self.maxElements)
        stages = [Shuffle(enabled: settings.shuffle), Zstd(level: settings.zstdLevel)]
        active = stages.filter { $0.enabled }
    }

    deinit {
        bufA.deallocate(); bufB.deallocate(); floats.deallocate()
    }

    /// Entries top-k keeps of a piece of n.
    public func keepCount(_ n: Int) -> Int { TopK.keepCount(n, fraction: settings.topk) }

    /// The most bytes an encoded piece of n elements can take.
    public static func maxEncodedBytes(_ n: Int, _ p: Precision, _ s: CodecSettings, sparse: Bool) -> Int {
        let es = p.elementType.size
        let dense = n * es
        guard sparse && s.topk > 0 else { return dense }
        return max(dense, TopK.bytes(TopK.keepCount(n, fraction: s.topk), elementSize: es))
    }

    public func takeStats() -> (encode: Double, decode: Double) {
        defer { encodeSeconds = 0; decodeSeconds = 0 }
        return (encodeSeconds, decodeSeconds)
    }

    /// Whether to run the byte stages on `key` (a piece, or a peer's rows) at `step`: the
    /// adaptive bypass skips them when they cost more time than they save on
    /// the link.
    func worthCompressing(key: Int, rawBytes: Int, step: Int) -> Bool {
        guard settings.adaptiveBypass else { return true }
        guard let s = stats[key], step - s.probed < 100 else { return true }
        let bps = settings.linkBytesPerSecond
        let raw = Double(rawBytes)
        // Decoding zstd runs about three times faster than encoding it.
        let compressed = s.secondsPerByte * raw * (4.0 / 3.0) + raw * s.ratio / bps
        return compressed < raw / bps
    }

    /// Encodes n FP32 values as `p`, top-k first when `sparse` and configured.
    public func encode(_ v: UnsafePointer<Float>, count n: Int, as p: Precision, sparse: Bool, key: Int, step: Int,
                       into out: UnsafeMutableRawPointer, capacity outCapacity: Int) -> EncodedPiece {
        let t0 = now()
        precondition(n <= maxElements)
        let es = p.elementType.size
        var applied: CodecStages = []
        var kept = n
        let compress = !active.isEmpty && worthCompressing(key: key, rawBytes: n * es, step: step)
        // The value stage, straight into `out` when no byte stage follows.
        let first = compress ? bufA : out
        var len: Int
        let fields: PayloadFields
        if sparse && settings.topk > 0 {
            applied.insert(TopK.flag)
            kept = topk.encode(v, count: n, as: p, values: floats, into: first)
            len = TopK.bytes(kept, elementSize: es)
            fields = TopK.fields(kept, elementSize: es)
        } else {
            Payload.encode(v, count: n, as: p, into: first)
            len = n * es
            fields = PayloadFields((n, es))
        }
        guard compress else {
            encodeSeconds += now() - t0
            return EncodedPiece(stages: applied, flags: active.isEmpty ? 0 : EncodedPiece.bypassedFlag, length: len, kept: kept)
        }
        // The byte stages; the last writes into `out`.
        var cur = bufA, spare = bufB
        for (i, stage) in active.enumerated() {
            let last = i == active.count - 1
            guard let m = stage.encode(cur, length: len, fields: fields, into: last ? out : spare,
                                       capacity: last ? outCapacity : capacity) else { continue }
            applied.insert(stage.flag)
            len = m
            if last { cur = out } else { swap(&cur, &spare) }
        }
        if cur != out { out.copyMemory(from: cur, byteCount: len) }
        let took = now() - t0
        encodeSeconds += took
        stats[key] = (Double(len) / Double(max(n * es, 1)), took / Double(max(n * es, 1)), step)
        return EncodedPiece(stages: applied, flags: 0, length: len, kept: kept)
    }

    /// Decodes a payload of n elements of `p` into `out`, or adds it to `out`.
    /// Every size and index is checked against n first; errors say what is wrong.
    public func decode(_ src: UnsafeRawPointer, length: Int, stages flagged: CodecStages, count n: Int, as p: Precision,
                       into out: UnsafeMutablePointer<Float>, add: Bool) throws {
        let t0 = now()
        defer { decodeSeconds += now() - t0 }
        guard flagged.isSubset(of: .known) else { throw CodecError.unknownStages(flagged.rawValue) }
        guard n <= maxElements else { throw CodecError.pieceTooLarge(elements: n, limit: maxElements) }
        let es = p.elementType.size
        let sparse = flagged.contains(TopK.flag)
        let limit = sparse ? TopK.bytes(n, elementSize: es) : n * es
        var cur = src
        var len = length
        for stage in stages.reversed() where flagged.contains(stage.flag) {
            let dst = cur == UnsafeRawPointer(bufA) ? bufB : bufA
            let here = cur, length = len
            len = try stage.decode(here, length: length, limit: limit,
                                   fields: { try Self.fields(here, length: length, count: n, elementSize: es, sparse: sparse) }, into: dst)
            cur = UnsafeRawPointer(dst)
        }
        let layout = try Self.fields(cur, length: len, count: n, elementSize: es, sparse: sparse)
        if sparse {
            try TopK.decode(cur, count: n, kept: layout.first.count, as: p, values: floats, into: out, add: add)
        } else if add && p == .fp32 {
            let g = cur.assumingMemoryBound(to: Float.self)
            for i in 0..<n { out[i] += g[i] }
        } else if add {
            Payload.decode(cur, count: n, as: p, into: floats)
            for i in 0..<n { out[i] += floats[i] }
        } else {
            Payload.decode(cur, count: n, as: p, into: out)
        }
    }

    /// The layout of a payload of `length` bytes for a piece of n, checked against the piece.
    static func fields(_ src: UnsafeRawPointer, length: Int, count n: Int, elementSize es: Int, sparse: Bool) throws -> PayloadFields {
        if sparse { return try TopK.fields(of: src, length: length, count: n, elementSize: es) }
        guard length == n * es else { throw CodecError.wrongLength(bytes: length, elements: n, elementSize: es) }
        return PayloadFields((n, es))
    }
}
