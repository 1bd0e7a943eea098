import PSNumerics
import PSCodec

extension PieceCodec {
    /// Decodes the payload of a frame whose header `h` was checked (kind,
    /// sizes, checksum): a codec failure becomes the error that names the
    /// peer and what it sent (`what`: "gradients of step 5, piece 3").
    func decode(_ frame: FrameBuffer, _ h: FrameHeader, count: Int, as p: Precision, into out: UnsafeMutablePointer<Float>,
                add: Bool, sender: String, what: @autoclosure () -> String) throws {
        do {
            try decode(frame.payload, length: Int(h.encodedLength), stages: h.codec, count: count, as: p, into: out, add: add)
        } catch let e as CodecError {
            throw FrameError.badPayload(sender: sender, what: what(), problem: e.description)
        }
    }
}
