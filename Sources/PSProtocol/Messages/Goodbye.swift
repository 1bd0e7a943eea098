import PSNumerics

/// Worker -> every server at the very end: every parameter message has
/// arrived, so the server may let go of its buffers and of MPI (over TCP,
/// shutting down earlier lost data). Payload: one f64, zero.
public struct Goodbye: ControlMessage, Equatable {
    public static let kind = FrameKind.goodbye
    public static let payloadBytes = 8
    public init() {}
    public func encode(into p: UnsafeMutableRawPointer) {}
    public static func decode(from p: UnsafeRawPointer) throws -> Goodbye { Goodbye() }
}
