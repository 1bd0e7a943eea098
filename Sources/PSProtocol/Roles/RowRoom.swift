import PSNumerics
import PSCodec

/// The codec and scratch buffer for rows of embedding tables on one rank
/// (dense, never top-k), grown when a step needs more room. Each side of
/// the table exchange (WorkerRowExchange, ServerRowFrames) owns one.
final class RowRoom {
    let settings: CodecSettings
    let precision: Precision
    private(set) var codec: PieceCodec
    private(set) var scratch: FloatBuffer

    init(settings: CodecSettings, precision: Precision) {
        var s = settings
        s.topk = 0
        self.settings = s
        self.precision = precision
        codec = PieceCodec(settings: s, maxElements: 4096)
        scratch = FloatBuffer(count: 4096)
    }

    /// Room for `elements` values in the codec and the scratch buffer.
    func reserve(elements n: Int) {
        if n > codec.maxElementCount { codec = PieceCodec(settings: settings, maxElements: Self.grown(codec.maxElementCount, n)) }
        if n > scratch.count { scratch = FloatBuffer(count: Self.grown(scratch.count, n)) }
    }

    /// The bytes `n` row values can take on the wire.
    func wireBytes(_ n: Int) -> Int { PieceCodec.maxEncodedBytes(n, precision, settings, sparse: false) }

    /// `frame`, replaced by a larger one when its payload has no room for
    /// `bytes`. A frame is only replaced when no request on it is open
    /// (callers wait for their sends first).
    static func fit(_ frame: inout FrameBuffer, bytes: Int) -> FrameBuffer {
        if frame.capacity - FrameHeader.size < bytes { frame = FrameBuffer(payloadCapacity: grown(frame.capacity, bytes)) }
        return frame
    }

    /// Frames of a message with a payload of its own size, one per peer.
    static func frames(_ peers: Int) -> [FrameBuffer] { (0..<peers).map { _ in FrameBuffer(payloadCapacity: 4096) } }

    static func grown(_ old: Int, _ need: Int) -> Int { max(need, old * 2) }
}
