import PSSupport

/// Why a checkpoint cannot be written, found or used. Each case carries the
/// whole message, which names the file (and field) and what to do.
public enum CheckpointError: UserFacingError, Equatable {
    /// The system refused a file operation; the message gives its reason.
    case io(String)
    /// The checkpoint asked for does not exist, or none is complete.
    case notFound(String)
    /// A manifest or file that is damaged, crafted or of another format.
    case invalid(String)
    /// A valid checkpoint that does not fit this configuration's model.
    case doesNotFit(String)

    public var description: String {
        switch self {
        case .io(let m), .notFound(let m), .invalid(let m), .doesNotFit(let m): return m
        }
    }
}
