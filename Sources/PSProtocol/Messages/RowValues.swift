import PSNumerics
import PSCodec

/// Rows of embedding tables on the wire, in the order of a row request:
/// server -> worker the values (kind rowValues), worker -> server one summed
/// gradient per row (kind rowGrads). The payload is `count` elements in the
/// run's precision through the codec pipeline (cast, shuffle, zstd; never
/// top-k); zero-copy like ParameterPiece: only the header is written and
/// checked here.
public enum RowValues {
    public static func seal(_ buffer: FrameBuffer, kind: FrameKind, step: Int, round: Int, count: Int, precision: Precision,
                            encoded e: EncodedPiece) {
        buffer.length = Frame.seal(FrameHeader(kind: kind, step: UInt64(step), index: UInt32(round), elementType: precision.elementType,
                                               rawLength: UInt64(Payload.bytes(count, precision)), encodedLength: UInt64(e.length),
                                               codec: e.stages, flags: e.flags),
                                   buffer: buffer.raw)
    }

    public static func open(_ buffer: FrameBuffer, kind: FrameKind, length: Int, step: Int, round: Int, count: Int, precision: Precision,
                            sender: String) throws -> FrameHeader {
        let h = try Frame.open(buffer: buffer.raw, length: length,
                               expect: FrameExpectation(kind: kind, step: UInt64(step), index: UInt32(round), elementType: precision.elementType,
                                                        rawLength: Payload.bytes(count, precision)),
                               sender: sender)
        guard !h.codec.contains(.topk) else {
            throw FrameError.badPayload(sender: sender, what: "\(kind) of step \(step)", problem: "rows never travel top-k encoded")
        }
        return h
    }
}
