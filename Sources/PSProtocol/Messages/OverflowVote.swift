import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog

/// Server -> every other server, once per step when there are several: did
/// this server see an overflow (in a worker's summary or its own sum), and
/// server 0's requests for the step (FrameFlags.checkpoint, .stop), which
/// every server then applies the same way. Payload: two f64.
public struct OverflowVote: ControlMessage, Equatable {
    public static let kind = FrameKind.vote
    public static let payloadBytes = 16
    public var overflow: Bool
    public var request: UInt8

    public init(overflow: Bool, request: UInt8) { self.overflow = overflow; self.request = request }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(overflow ? 1 : 0, at: 0); p.storeF64(Double(request), at: 1)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> OverflowVote {
        let r = p.loadF64(at: 1)
        guard r >= 0 && r <= 255 && r == r.rounded(), UInt8(r) & ~FrameFlags.known == 0 else {
            throw FrameError.impossible(message: "overflow vote", problem: "carries an unknown request \(r)")
        }
        return OverflowVote(overflow: p.loadF64(at: 0) != 0, request: UInt8(r))
    }
}
