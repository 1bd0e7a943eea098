
/// [checkpoint]: when checkpoints are written and how many are kept.
public struct CheckpointSection: ConfigSection {
    /// checkpoint.every_steps (0: only at the end)
    public internal(set) var everySteps = 0
    /// checkpoint.every_seconds (0: off)
    public internal(set) var everySeconds = 0.0
    /// checkpoint.at_end
    public internal(set) var atEnd = true
    /// checkpoint.keep
    public internal(set) var keep = 3

    public init() {}

    /// Whether the state after `step` steps (of `total`) is checkpointed.
    public func due(after step: Int, total: Int) -> Bool {
        (everySteps > 0 && step % everySteps == 0) || (atEnd && step == total)
    }

    static let name = "checkpoint"
    static let keys: [ConfigKey<CheckpointSection>] = [
        .integer("every_steps", \.everySteps, Config.steps, "write a checkpoint every N steps (0: only at the end)"),
        .number("every_seconds", \.everySeconds, .closed(0, 31_536_000), "also write a checkpoint when this many seconds passed since the last one (0: off)"),
        .flag("at_end", \.atEnd, "write a checkpoint when the run ends"),
        .integer("keep", \.keep, .closed(1, 10_000), "complete checkpoints kept; older ones are deleted after a new one is complete"),
    ]
}
