import PSSupport

/// A message from a peer that cannot be trusted: its frame fails a check,
/// its payload does not decode, or a value in it cannot be. Every case names
/// the sender, so the user knows which rank (or link) to look at.
public enum FrameError: UserFacingError, Equatable {
    /// The frame's header, length or checksum is not what was expected.
    case badFrame(sender: String, expected: String, length: Int, problem: String)
    /// The frame checked out but its payload (`what`: "gradients of step 3,
    /// piece 2") does not decode.
    case badPayload(sender: String, what: String, problem: String)
    /// A control message carries a value no honest peer sends.
    case impossible(message: String, problem: String)

    public var description: String {
        switch self {
        case .badFrame(let sender, let expected, let length, let problem):
            return "bad frame from \(sender) (expected \(expected); \(length) bytes arrived): \(problem)"
        case .badPayload(let sender, let what, let problem):
            return "bad frame from \(sender) (\(what)): \(problem)"
        case .impossible(let message, let problem):
            return "\(message) \(problem)"
        }
    }
}
