import PSSupport

/// Why a run cannot go on, as the coordination protocol sees it.
public enum ProtocolError: UserFacingError, Equatable {
    /// A wait ran out of time; the message names the rank that is really
    /// silent, found by following the other ranks' wait claims (Blame.swift).
    case silentRank(String)
    /// Steps kept overflowing with the loss scale at its floor.
    case diverged(stepsAtMinimum: Int, scale: Double, lastFiniteStep: Int)
    /// A checkpoint could not be completed; the previous one is intact.
    case checkpointFailed(step: Int, reasons: [String], previous: String)
    /// The checkpoint being resumed belongs to a run of another length.
    case otherRunLength(checkpoint: String, steps: Int, perEpoch: Int, configured: Int, configuredPerEpoch: Int)
    /// The configuration and the data set do not fit together.
    case dataDoesNotFit(String)
    /// The checkpoint being resumed holds the state of another optimizer.
    case otherOptimizer(checkpoint: String, saved: String, configured: String, key: String = "train.optimizer")

    public var description: String {
        switch self {
        case .silentRank(let m): return m
        case .diverged(let n, let scale, let last):
            return "training diverged: steps kept overflowing for \(n) steps with the loss scale at its minimum (\(scale)); "
                + "the last step with finite gradients was \(last < 0 ? "none" : String(last)). "
                + "This is not a scaling problem: lower train.lr or check the data (scaler.max_skips_at_min sets the patience)"
        case .checkpointFailed(let step, let reasons, let previous):
            return "checkpoint step-\(step) failed: " + reasons.joined(separator: "; ") + "; " + previous
        case .otherRunLength(let path, let total, let perEpoch, let configured, let configuredPerEpoch):
            return "\(path) was written by a run of \(total) steps (\(perEpoch) per epoch); this configuration gives \(configured) (\(configuredPerEpoch) per epoch): "
                + (perEpoch != configuredPerEpoch ? "resume with the run's own train.batch_size, train.accumulate and data set (they cut the data into its steps)"
                   : "the checkpoint is past the end of this run: raise train.epochs (or train.max_steps) to train on")
        case .dataDoesNotFit(let m): return m
        case .otherOptimizer(let path, let saved, let configured, let key):
            return "\(path) holds the state of \(key) = \"\(saved)\"; this configuration has \"\(configured)\": "
                + "resume with the run's own optimizer (its state cannot be carried over to another)"
        }
    }
}
