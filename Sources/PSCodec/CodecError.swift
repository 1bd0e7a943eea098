import PSSupport

/// Why a received payload cannot be decoded. The caller adds who sent it
/// and which piece (FrameError.badPayload).
public enum CodecError: UserFacingError, Equatable {
    case unknownStages(UInt8)
    case pieceTooLarge(elements: Int, limit: Int)
    case wrongLength(bytes: Int, elements: Int, elementSize: Int)
    case topkWithoutCount(bytes: Int)
    case topkCount(kept: Int, elements: Int, bytes: Int)
    case topkIndex(index: Int, entry: Int, elements: Int)
    case zstdWithoutSize
    case zstdTooLarge(claimed: UInt64, limit: Int)
    case zstdFailed(String)
    case zstdSize(got: Int, header: UInt64)

    public var description: String {
        switch self {
        case .unknownStages(let s): return "unknown codec stages 0x\(String(s, radix: 16))"
        case .pieceTooLarge(let n, let limit): return "piece of \(n) elements is larger than this codec's \(limit)"
        case .wrongLength(let len, let n, let es): return "payload of \(len) bytes for \(n) elements of \(es) bytes"
        case .topkWithoutCount(let len): return "top-k payload of \(len) bytes has no count"
        case .topkCount(let k, let n, let len): return "top-k payload claims \(k) entries of a piece of \(n) in \(len) bytes"
        case .topkIndex(let index, let j, let n): return "top-k index \(index) at entry \(j) is out of order or outside the piece of \(n)"
        case .zstdWithoutSize: return "zstd frame is damaged or has no content size"
        case .zstdTooLarge(let size, let limit): return "zstd frame claims \(size) bytes, more than the piece's \(limit)"
        case .zstdFailed(let why): return "zstd decompression failed: \(why)"
        case .zstdSize(let d, let size): return "zstd gave \(d) bytes, its header said \(size)"
        }
    }
}
