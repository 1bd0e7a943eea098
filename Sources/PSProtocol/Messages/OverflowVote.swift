import PSNumerics
import PSCodec

/// Server -> every other server, once per step when there are several: did
/// this server see an overflow (in a worker's summary or its own sum),
/// server 0's requests for the step (FrameFlags.checkpoint, .stop), which
/// every server then applies the same way, and, with train.clip_norm, the
/// sum of squares of this server's shard of the unscaled summed gradient
/// (0 without clipping or after an overflow), which every server adds in
/// server order into the same global norm. Payload: three f64.
public struct OverflowVote: ControlMessage, Equatable {
    public static let kind = FrameKind.overflowVote
    public static let payloadBytes = 24
    public var overflow: Bool
    public var request: UInt8
    public var sumSquares: Double

    public init(overflow: Bool, request: UInt8, sumSquares: Double = 0) {
        self.overflow = overflow; self.request = request; self.sumSquares = sumSquares
    }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(overflow ? 1 : 0, at: 0); p.storeF64(Double(request), at: 1); p.storeF64(sumSquares, at: 2)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> OverflowVote {
        let r = p.loadF64(at: 1)
        guard r >= 0 && r <= 255 && r == r.rounded(), UInt8(r) & ~FrameFlags.known == 0 else {
            throw FrameError.impossible(message: "overflow vote", problem: "carries an unknown request \(r)")
        }
        let q = p.loadF64(at: 2)
        guard q.isFinite && q >= 0 else {
            throw FrameError.impossible(message: "overflow vote", problem: "carries the sum of squares \(q), which is negative or not finite")
        }
        return OverflowVote(overflow: p.loadF64(at: 0) != 0, request: UInt8(r), sumSquares: q)
    }
}
