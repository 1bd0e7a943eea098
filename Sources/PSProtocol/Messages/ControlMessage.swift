
/// A control message between ranks: a small value type of fixed size that
/// seals itself into a frame and is opened and checked from one. Each kind
/// lives in a file of its own in this folder and is the only code that knows
/// its payload's byte layout (docs/architecture.md, "how to add a message").
///
/// Control payloads are little-endian f64 fields (the frame's element type
/// is f64), plus any fixed-size text fields the message declares.
public protocol ControlMessage {
    /// The frame kind, which is also the MPI tag (FrameKind lists them all).
    static var kind: FrameKind { get }
    /// The payload's size in bytes; every frame of this kind has exactly this many.
    static var payloadBytes: Int { get }
    /// Writes the payload; the bytes were zeroed before.
    func encode(into payload: UnsafeMutableRawPointer)
    /// Reads a payload whose frame was checked; throws on a value that
    /// cannot be (the message names what is wrong).
    static func decode(from payload: UnsafeRawPointer) throws -> Self
}

extension ControlMessage {
    /// A buffer that holds one message of this kind.
    public static func buffer() -> FrameBuffer { FrameBuffer(payloadCapacity: payloadBytes) }

    /// Seals this message as the frame of `step` with header index `index` in `buffer`.
    public func seal(into buffer: FrameBuffer, step: Int, index: Int = 0) {
        buffer.payload.initializeMemory(as: UInt8.self, repeating: 0, count: Self.payloadBytes)
        encode(into: buffer.payload)
        buffer.length = Frame.seal(FrameHeader(kind: Self.kind, step: UInt64(step), index: UInt32(index), elementType: .f64,
                                               rawLength: UInt64(Self.payloadBytes), encodedLength: UInt64(Self.payloadBytes)),
                                   buffer: buffer.raw)
    }

    /// Checks the `length` bytes that arrived in `buffer` (kind, step, index,
    /// size, checksum) and reads the message; `sender` names the peer in errors.
    public static func open(_ buffer: FrameBuffer, length: Int, step: Int, index: Int = 0, sender: String) throws -> Self {
        _ = try Frame.open(buffer: buffer.raw, length: length,
                           expect: FrameExpectation(kind: kind, step: UInt64(step), index: UInt32(index), elementType: .f64,
                                                    rawLength: payloadBytes),
                           sender: sender)
        do {
            return try decode(from: UnsafeRawPointer(buffer.payload))
        } catch let e as FrameError {
            throw FrameError.badPayload(sender: sender, what: "\(kind) of step \(step)", problem: e.description)
        }
    }
}

/// Field access for the f64 payloads of control messages.
extension UnsafeMutableRawPointer {
    func storeF64(_ v: Double, at field: Int) { storeBytes(of: v.bitPattern.littleEndian, toByteOffset: field * 8, as: UInt64.self) }
}
extension UnsafeRawPointer {
    func loadF64(at field: Int) -> Double { Double(bitPattern: UInt64(littleEndian: loadUnaligned(fromByteOffset: field * 8, as: UInt64.self))) }
}
