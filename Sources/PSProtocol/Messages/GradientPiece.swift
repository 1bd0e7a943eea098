import PSNumerics
import PSCodec

/// Worker -> the server that owns it: one piece of a step's gradients,
/// encoded in place by the codec (top-k when configured). Zero-copy like
/// ParameterPiece: only the header is written and checked here.
public enum GradientPiece {
    public static let kind = FrameKind.gradientPiece

    public static func seal(_ buffer: FrameBuffer, step: Int, piece: Int, count: Int, precision: Precision, encoded e: EncodedPiece) {
        buffer.length = Frame.seal(FrameHeader(kind: kind, step: UInt64(step), index: UInt32(piece), elementType: precision.elementType,
                                               rawLength: UInt64(Payload.bytes(count, precision)), encodedLength: UInt64(e.length),
                                               codec: e.stages, flags: e.flags),
                                   buffer: buffer.raw)
    }

    public static func open(_ buffer: FrameBuffer, length: Int, step: Int, piece: Int, count: Int, precision: Precision,
                            sender: String) throws -> FrameHeader {
        try Frame.open(buffer: buffer.raw, length: length,
                       expect: FrameExpectation(kind: kind, step: UInt64(step), index: UInt32(piece), elementType: precision.elementType,
                                                rawLength: Payload.bytes(count, precision)),
                       sender: sender)
    }
}
