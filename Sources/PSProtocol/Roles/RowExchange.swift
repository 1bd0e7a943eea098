import PSNumerics
import PSCodec

/// Buffers and codec for rows of embedding tables on one rank, one set per
/// peer (a worker's servers, a server's workers). Frames and the codec
/// grow when a step needs more room; a frame is only replaced when no
/// request on it is open (callers wait for their sends first).
final class RowBuffers {
    let settings: CodecSettings
    let precision: Precision
    var announce: [FrameBuffer]
    var request: [FrameBuffer]
    var rows: [FrameBuffer]
    /// A worker's gradient frames (apart from `rows`, which receive values).
    var grads: [FrameBuffer]
    private(set) var codec: PieceCodec
    private(set) var scratch: FloatBuffer
    /// A server's open sends of values, per worker (a frame must not change until they complete).
    var sends: [[TransportRequest]]

    init(peers: Int, settings: CodecSettings, precision: Precision) {
        var s = settings
        s.topk = 0
        self.settings = s
        self.precision = precision
        announce = (0..<peers).map { _ in RowAnnounce.buffer() }
        request = (0..<peers).map { _ in FrameBuffer(payloadCapacity: 4096) }
        rows = (0..<peers).map { _ in FrameBuffer(payloadCapacity: 4096) }
        grads = (0..<peers).map { _ in FrameBuffer(payloadCapacity: 4096) }
        codec = PieceCodec(settings: s, maxElements: 4096)
        scratch = FloatBuffer(count: 4096)
        sends = (0..<peers).map { _ in [] }
    }

    /// Room for `elements` values in the codec and the scratch buffer.
    func reserve(elements n: Int) {
        if n > codec.maxElementCount { codec = PieceCodec(settings: settings, maxElements: Self.grown(codec.maxElementCount, n)) }
        if n > scratch.count { scratch = FloatBuffer(count: Self.grown(scratch.count, n)) }
    }

    /// A frame of peer p's `which` list with room for `bytes` of payload.
    func room(_ list: ReferenceWritableKeyPath<RowBuffers, [FrameBuffer]>, _ p: Int, bytes: Int) -> FrameBuffer {
        if self[keyPath: list][p].capacity - FrameHeader.size < bytes {
            self[keyPath: list][p] = FrameBuffer(payloadCapacity: Self.grown(self[keyPath: list][p].capacity, bytes))
        }
        return self[keyPath: list][p]
    }

    /// The bytes `n` row values can take on the wire.
    func wireBytes(_ n: Int) -> Int { PieceCodec.maxEncodedBytes(n, precision, settings, sparse: false) }

    static func grown(_ old: Int, _ need: Int) -> Int { max(need, old * 2) }
}
