import PSSupport
import PSNumerics
import PSCodec

/// What a frame carries.
public enum FrameKind: UInt8, CaseIterable {
    case parameterPiece = 1         // server -> worker: a shard of parameters of a version
    case gradientPiece = 2          // worker -> server: a shard of one step's gradients
    case evalResult = 3             // worker -> server 0: test-set loss sum, correct, count
    case stepSummary = 4            // worker -> every server, after its last piece: loss sum, samples, overflow
    case overflowVote = 5           // server -> every other server: overflow seen in its sums
    case checkpointReport = 6       // every rank -> server 0: its checkpoint file is written (or why not)
    case goodbye = 7                // worker -> every server, at the end: all parameters arrived; the server may shut down
    case rowAnnounce = 8            // worker -> a server holding table rows: how many rows (and bytes) its row request has
    case rowRequest = 9             // worker -> that server: the rows it needs, per table, sorted and delta-coded
    case rowValues = 10             // server -> worker: the values of those rows, in request order
    case rowGrads = 11              // worker -> server: one summed gradient per requested row, in request order
    case evalScores = 12            // worker -> server 0, after an epoch: its test rows' predicted probabilities as histograms
    case pullRequest = 13           // worker -> every server, ssp and async: send me the newest parameters for this step
    case assignment = 14            // server 0 -> worker, ssp and async: the work it does next (a slice of a step, evaluation, the end)
    public var tag: Int32 { Int32(rawValue) }
}

extension FrameKind: CustomStringConvertible {
    /// The short word messages and docs/formats.md use for the kind
    /// ("expected grads of step 3, piece 1"), unchanged since the cases
    /// were named after their message types.
    public var description: String {
        switch self {
        case .parameterPiece: return "params"
        case .gradientPiece: return "grads"
        case .evalResult: return "eval"
        case .stepSummary: return "stepInfo"
        case .overflowVote: return "vote"
        case .checkpointReport: return "checkpoint"
        case .goodbye: return "bye"
        case .rowAnnounce: return "rowAnnounce"
        case .rowRequest: return "rowRequest"
        case .rowValues: return "rowValues"
        case .rowGrads: return "rowGrads"
        case .evalScores: return "scores"
        case .pullRequest: return "pull"
        case .assignment: return "assign"
        }
    }

    /// What the header's index holds for this kind, as messages name it.
    public var indexName: String {
        switch self {
        case .parameterPiece, .gradientPiece: return "piece"
        case .rowAnnounce, .rowRequest, .rowValues, .rowGrads: return "round"
        case .overflowVote: return "server"
        case .checkpointReport: return "rank"
        default: return "index"
        }
    }
}

/// The header's flags byte.
public enum FrameFlags {
    /// The adaptive bypass sent this piece without shuffle and zstd, because
    /// compressing it does not pay for the configured link (the codec sets it).
    public static let bypassed: UInt8 = EncodedPiece.bypassedFlag
    /// Parameters: the state after this version is checkpointed (decided by server 0).
    public static let checkpoint: UInt8 = 2
    /// Parameters: the run stops after that checkpoint (preemption).
    public static let stop: UInt8 = 4
    public static let known: UInt8 = bypassed | checkpoint | stop
}

/// The 64-byte header in front of every message between ranks (all fields
/// little-endian; docs/formats.md):
///
///     0  magic "PSTF" (u32)     4 version (u16)   6 kind (u8)   7 codec stages (u8)
///     8  step (u64)            16 index (u32)    20 element type (u8)
///    21  flags (u8)            22 reserved (u16, zero)
///    24  raw length (u64)      32 encoded length (u64)
///    40  aux0 (f64)            48 aux1 (f64)
///    56  checksum (u64): XXH3-64 of the payload, seeded with XXH64 of bytes 0..<56
public struct FrameHeader: Equatable {
    public static let size = 64
    public static let magic: UInt32 = 0x4654_5350   // "PSTF" read little-endian
    public static let version: UInt16 = 2   // 2: the checksum is libxxhash's XXH3 (1: a hand-written one)

    public var kind: FrameKind
    public var codec: CodecStages = []
    public var step: UInt64
    /// Which one of the step's messages of this kind: the piece number
    /// (parameter and gradient pieces), the evaluation round (row messages:
    /// 0 for a training step, 1, 2, ... after an epoch), the sending
    /// server's index (overflow votes) or rank (checkpoint reports); 0 else.
    public var index: UInt32
    public var elementType: ElementType
    public var flags: UInt8 = 0
    public var rawLength: UInt64
    public var encodedLength: UInt64
    public var aux0: Double = 0
    public var aux1: Double = 0

    public init(kind: FrameKind, step: UInt64, index: UInt32, elementType: ElementType,
                rawLength: UInt64, encodedLength: UInt64, aux0: Double = 0, aux1: Double = 0,
                codec: CodecStages = [], flags: UInt8 = 0) {
        self.kind = kind; self.step = step; self.index = index; self.elementType = elementType
        self.codec = codec; self.flags = flags
        self.rawLength = rawLength; self.encodedLength = encodedLength; self.aux0 = aux0; self.aux1 = aux1
    }
}

/// What a receiver expects of the next frame from a peer.
public struct FrameExpectation {
    public var kind: FrameKind
    public var step: UInt64
    public var index: UInt32
    public var elementType: ElementType
    public var rawLength: Int
    public init(kind: FrameKind, step: UInt64, index: UInt32, elementType: ElementType, rawLength: Int) {
        self.kind = kind; self.step = step; self.index = index; self.elementType = elementType; self.rawLength = rawLength
    }
}

public enum Frame {
    /// Writes the header (with its checksum) in front of a payload that is
    /// already at `buffer + FrameHeader.size`. Returns the frame's length.
    @discardableResult
    public static func seal(_ h: FrameHeader, buffer: UnsafeMutableRawPointer) -> Int {
        assert(h.codec.isSubset(of: .known))
        let b = buffer
        b.storeBytes(of: FrameHeader.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        b.storeBytes(of: FrameHeader.version.littleEndian, toByteOffset: 4, as: UInt16.self)
        b.storeBytes(of: h.kind.rawValue, toByteOffset: 6, as: UInt8.self)
        b.storeBytes(of: h.codec.rawValue, toByteOffset: 7, as: UInt8.self)
        b.storeBytes(of: h.step.littleEndian, toByteOffset: 8, as: UInt64.self)
        b.storeBytes(of: h.index.littleEndian, toByteOffset: 16, as: UInt32.self)
        b.storeBytes(of: h.elementType.rawValue, toByteOffset: 20, as: UInt8.self)
        b.storeBytes(of: h.flags, toByteOffset: 21, as: UInt8.self)
        b.storeBytes(of: UInt16(0), toByteOffset: 22, as: UInt16.self)
        b.storeBytes(of: h.rawLength.littleEndian, toByteOffset: 24, as: UInt64.self)
        b.storeBytes(of: h.encodedLength.littleEndian, toByteOffset: 32, as: UInt64.self)
        b.storeBytes(of: h.aux0.bitPattern.littleEndian, toByteOffset: 40, as: UInt64.self)
        b.storeBytes(of: h.aux1.bitPattern.littleEndian, toByteOffset: 48, as: UInt64.self)
        let sum = checksum(buffer: UnsafeRawPointer(buffer), payloadLength: Int(h.encodedLength))
        b.storeBytes(of: sum.littleEndian, toByteOffset: 56, as: UInt64.self)
        return FrameHeader.size + Int(h.encodedLength)
    }

    /// The step a received frame's header claims, before the frame is
    /// opened (a server in ssp and async learns which step a pull request
    /// is for from it, then `open` checks everything against that step).
    /// nil when `length` is shorter than a header or the step is no Int.
    public static func peekStep(_ buffer: UnsafeRawPointer, length: Int) -> Int? {
        guard length >= FrameHeader.size else { return nil }
        return Int(exactly: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    static func checksum(buffer: UnsafeRawPointer, payloadLength: Int) -> UInt64 {
        let headerSum = xxh64(UnsafeRawBufferPointer(start: buffer, count: 56))
        return xxh3(buffer + FrameHeader.size, count: payloadLength, seed: headerSum)
    }

    /// Checks every field of a received frame of `length` bytes against what
    /// is expected, before anything trusts the payload. `sender` names the
    /// peer in the error.
    public static func open(buffer: UnsafeRawPointer, length: Int, expect e: FrameExpectation,
                            sender: String) throws -> FrameHeader {
        func bad(_ why: String) -> FrameError {
            .badFrame(sender: sender, expected: "\(e.kind) of step \(e.step), \(e.kind.indexName) \(e.index)", length: length, problem: why)
        }
        guard length >= FrameHeader.size else { throw bad("only \(length) bytes, shorter than the 64-byte header") }
        let b = buffer
        let magic = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        guard magic == FrameHeader.magic else { throw bad("wrong magic 0x\(String(magic, radix: 16)); not a pstrain frame") }
        let version = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        guard version == FrameHeader.version else {
            throw bad("format version \(version), this build speaks \(FrameHeader.version); run the same pstrain build on every rank")
        }
        guard let kind = FrameKind(rawValue: b.load(fromByteOffset: 6, as: UInt8.self)) else {
            throw bad("unknown kind \(b.load(fromByteOffset: 6, as: UInt8.self))")
        }
        guard kind == e.kind else { throw bad("kind \(kind)") }
        let codec = CodecStages(rawValue: b.load(fromByteOffset: 7, as: UInt8.self))
        guard codec.isSubset(of: .known) else { throw bad("unknown codec 0x\(String(codec.rawValue, radix: 16))") }
        let step = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard step == e.step else { throw bad("step \(step)") }
        let index = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        guard index == e.index else { throw bad("\(e.kind.indexName) \(index), expected \(e.index)") }
        guard let et = ElementType(rawValue: b.load(fromByteOffset: 20, as: UInt8.self)) else {
            throw bad("unknown element type \(b.load(fromByteOffset: 20, as: UInt8.self))")
        }
        guard et == e.elementType else { throw bad("element type \(et), expected \(e.elementType)") }
        let flags = b.load(fromByteOffset: 21, as: UInt8.self)
        guard flags & ~FrameFlags.known == 0 else { throw bad("unknown flags 0x\(String(flags, radix: 16))") }
        guard b.loadUnaligned(fromByteOffset: 22, as: UInt16.self) == 0 else { throw bad("reserved bytes are not zero") }
        let raw = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        let enc = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        guard raw == UInt64(e.rawLength) else { throw bad("raw length \(raw), expected \(e.rawLength)") }
        guard enc == UInt64(length - FrameHeader.size) else {
            throw bad("header claims \(enc) payload bytes but \(length - FrameHeader.size) arrived")
        }
        if !codec.contains(.zstd) && !codec.contains(.topk) && enc != raw {
            throw bad("uncompressed payload of \(enc) bytes for raw length \(raw)")
        }
        if codec.contains(.zstd) && enc > raw * 4 + 64 { throw bad("compressed payload of \(enc) bytes exceeds any encoding of \(raw) bytes") }
        let sum = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 56, as: UInt64.self))
        guard sum == checksum(buffer: buffer, payloadLength: Int(enc)) else { throw bad("checksum mismatch; the message was damaged") }
        var h = FrameHeader(kind: kind, step: step, index: index, elementType: et, rawLength: raw, encodedLength: enc,
                            aux0: Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 40, as: UInt64.self))),
                            aux1: Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 48, as: UInt64.self))))
        h.codec = codec
        h.flags = flags
        return h
    }
}

/// A reusable message buffer: 64-byte header followed by a payload.
public final class FrameBuffer {
    public let capacity: Int
    public let raw: UnsafeMutableRawPointer
    public var length = 0

    public init(payloadCapacity: Int) {
        capacity = FrameHeader.size + payloadCapacity
        raw = .allocate(byteCount: capacity, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
    }
    /// Scribbled over before it is freed, so that a transfer still reading
    /// it shows up as damage rather than as stale, plausible bytes.
    deinit {
        raw.initializeMemory(as: UInt8.self, repeating: 0xDD, count: capacity)
        raw.deallocate()
    }

    public var payload: UnsafeMutableRawPointer { raw + FrameHeader.size }
    public var floats: UnsafeMutablePointer<Float> { payload.assumingMemoryBound(to: Float.self) }
    public var whole: UnsafeMutableRawBufferPointer { .init(start: raw, count: capacity) }
    public var sealed: UnsafeRawBufferPointer { .init(start: raw, count: length) }
}
