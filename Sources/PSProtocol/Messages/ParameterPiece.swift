import PSNumerics
import PSCodec

/// Server -> every worker: one piece of the parameters of a version, encoded
/// in place by the codec (never top-k). Zero-copy: the codec writes the
/// payload straight into the frame buffer, and this file only writes and
/// checks the header around it. The header carries what every worker must
/// apply the same way: aux0 the loss scale for the next step, aux1 the
/// number of steps skipped so far, flags server 0's requests (FrameFlags).
public enum ParameterPiece {
    public static let kind = FrameKind.parameterPiece

    /// Seals the encoded piece `piece` of parameters `version` in `buffer`.
    public static func seal(_ buffer: FrameBuffer, version: Int, piece: Int, count: Int, precision: Precision, encoded e: EncodedPiece,
                            lossScale: Double, skipped: Int, request: UInt8) {
        buffer.length = Frame.seal(FrameHeader(kind: kind, step: UInt64(version), index: UInt32(piece), elementType: precision.elementType,
                                               rawLength: UInt64(Payload.bytes(count, precision)), encodedLength: UInt64(e.length),
                                               aux0: lossScale, aux1: Double(skipped), codec: e.stages, flags: e.flags | request),
                                   buffer: buffer.raw)
    }

    /// What a worker reads from a parameter frame's header.
    public struct Received {
        public var header: FrameHeader
        public var lossScale: Double { header.aux0 }
        public var skipped: Int { Int(header.aux1) }
        public var flags: UInt8 { header.flags }
    }

    /// Checks the frame of piece `piece` of parameters `version` from `sender`.
    public static func open(_ buffer: FrameBuffer, length: Int, version: Int, piece: Int, count: Int, precision: Precision,
                            sender: String) throws -> Received {
        let h = try Frame.open(buffer: buffer.raw, length: length,
                               expect: FrameExpectation(kind: kind, step: UInt64(version), index: UInt32(piece),
                                                        elementType: precision.elementType, rawLength: Payload.bytes(count, precision)),
                               sender: sender)
        guard !h.codec.contains(.topk) else {
            throw FrameError.badPayload(sender: sender, what: "parameters of version \(version), piece \(piece)", problem: "parameters are never top-k encoded")
        }
        let skipped = h.aux1
        guard h.aux0.isFinite && h.aux0 > 0, skipped >= 0 && skipped <= 1e15 && skipped == skipped.rounded() else {
            throw FrameError.badPayload(sender: sender, what: "parameters of version \(version), piece \(piece)",
                                        problem: "loss scale \(h.aux0), skipped \(skipped)")
        }
        return Received(header: h)
    }
}
