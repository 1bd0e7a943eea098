import PSNumerics

/// Worker -> every server, with train.consistency = "ssp" or "async": send
/// me the newest parameters (and, with tables, the rows I ask for next) to
/// compute step `step` on (the frame's step). A server answers when the
/// staleness bound and the barriers allow. Payload: one f64, the purpose.
public struct PullRequest: ControlMessage, Equatable {
    public static let kind = FrameKind.pullRequest
    public static let payloadBytes = 8

    public enum Purpose: Int, Equatable {
        /// Parameters and rows to train step `step` on.
        case train = 0
        /// Parameters to evaluate with after the epoch that ends before `step` (a barrier).
        case eval = 1
        /// The last parameters, after the last step (a barrier).
        case final = 2
        /// No more pulls: sent just before the goodbye (no answer).
        case done = 3
        /// To server 0 alone: what do I do next (answered with an Assignment).
        case assign = 4
    }
    public var purpose: Purpose

    public init(_ purpose: Purpose) { self.purpose = purpose }

    public func encode(into p: UnsafeMutableRawPointer) { p.storeF64(Double(purpose.rawValue), at: 0) }

    public static func decode(from p: UnsafeRawPointer) throws -> PullRequest {
        let v = p.loadF64(at: 0)
        guard v == v.rounded(), v >= 0, v <= 4, let purpose = Purpose(rawValue: Int(v)) else {
            throw FrameError.impossible(message: "pull request", problem: "asks for purpose \(v)")
        }
        return PullRequest(purpose)
    }
}
