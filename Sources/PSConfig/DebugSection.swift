import Foundation
import PSSupport

/// [debug]: test hooks. Every default leaves every hook inert, so a
/// production configuration (which never names [debug]) runs none of them.
public struct DebugSection: ConfigSection {
    /// Where server 0 kills itself while completing a checkpoint
    /// (debug.die_in_checkpoint = "N:point").
    public struct CheckpointCrash: Equatable {
        public let step: Int
        /// after-files, after-manifest or after-rename (CheckpointStore's crash points).
        public let point: String
        public static let points = ["after-files", "after-manifest", "after-rename"]
    }

    /// debug.die_at_steps as written ("3, 5"); run.toml keeps the text.
    public internal(set) var dieAtStepsText = ""
    /// The steps of debug.die_at_steps at which worker `dieWorker` kills itself.
    public internal(set) var dieAtSteps: [Int] = []
    /// debug.slow_worker (-1: none)
    public internal(set) var slowWorker = -1
    /// debug.slow_ms
    public internal(set) var slowMilliseconds = 0.0
    /// debug.die_in_checkpoint as written ("4:after-files"; "": never).
    public internal(set) var dieInCheckpointText = ""
    /// debug.die_in_checkpoint, read.
    public internal(set) var dieInCheckpoint: CheckpointCrash?
    /// debug.die_worker
    public internal(set) var dieWorker = 0
    /// debug.die_server (-1: a worker dies, not a server)
    public internal(set) var dieServer = -1
    /// debug.overflow_step (-1: never)
    public internal(set) var overflowStep = -1
    /// debug.overflow_steps
    public internal(set) var overflowSteps = 1
    /// debug.overflow_worker
    public internal(set) var overflowWorker = 0
    /// debug.corrupt_step (-1: never)
    public internal(set) var corruptStep = -1
    /// debug.digest_every_step
    public internal(set) var digestEveryStep = false

    public init() {}

    /// Whether no hook is set (the defaults).
    public var isInert: Bool { self == DebugSection() }

    /// Whether the hook spoils worker `w`'s gradient at `step`.
    public func spoilsGradient(step: Int, worker w: Int) -> Bool {
        overflowStep >= 0 && w == overflowWorker && step >= overflowStep && step < overflowStep + overflowSteps
    }

    static let name = "debug"
    static let keys: [ConfigKey<DebugSection>] = [
        ConfigKey(name: "die_at_steps", kind: .string, range: nil,
                  doc: "for tests: comma-separated steps at which worker debug.die_worker kills itself with SIGKILL, each at most once per run directory",
                  read: { .string($0.dieAtStepsText) }) { s, v, ctx in
            guard case .string(let text) = v else { throw ctx.wrongType(v, "a string") }
            var steps: [Int] = []
            for item in text.split(separator: ",") {
                let t = item.trimmingCharacters(in: .whitespaces)
                if t.isEmpty { continue }
                guard let n = Int(t) else {
                    throw ConfigError.invalid(source: ctx.source, key: ctx.key, at: ctx.at,
                                              problem: "must be step numbers separated by commas, such as \"3, 5\" (is \(tomlQuote(text)))")
                }
                steps.append(n)
            }
            s.dieAtStepsText = text
            s.dieAtSteps = steps
        },
        .integer("slow_worker", \.slowWorker, .closed(-1, Double(Config.maxRanks - 1)), "for tests: this worker is a straggler (-1: none)"),
        .number("slow_ms", \.slowMilliseconds, .closed(0, 60_000), "for tests: milliseconds the straggler sleeps in every step's compute"),
        ConfigKey(name: "die_in_checkpoint", kind: .string, range: nil,
                  doc: "for tests: \"N:point\": server 0 kills itself while completing checkpoint N, at point after-files, after-manifest or after-rename (once per run directory)",
                  read: { .string($0.dieInCheckpointText) }) { s, v, ctx in
            guard case .string(let text) = v else { throw ctx.wrongType(v, "a string") }
            var crash: CheckpointCrash?
            if !text.isEmpty {
                let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2, let n = Int(parts[0]), CheckpointCrash.points.contains(parts[1]) else {
                    throw ConfigError.invalid(source: ctx.source, key: ctx.key, at: ctx.at,
                                              problem: "must be \"\" or \"N:point\" with point \(ConfigError.list(CheckpointCrash.points)) (is \(tomlQuote(text)))")
                }
                crash = CheckpointCrash(step: n, point: parts[1])
            }
            s.dieInCheckpointText = text
            s.dieInCheckpoint = crash
        },
        .integer("die_worker", \.dieWorker, Config.workerIndex, "for tests: the worker debug.die_at_step kills (ssp and async: whoever computes that slice of the step)"),
        .integer("die_server", \.dieServer, .closed(-1, Double(Config.maxRanks - 1)),
                 "for tests: the server debug.die_at_steps kills instead of a worker, at the start of the step (-1: a worker dies)"),
        .integer("overflow_step", \.overflowStep, Config.stepOrNever, "for tests: put +inf into a worker's gradient at this step, in the last piece it pushes (-1: never)"),
        .integer("overflow_steps", \.overflowSteps, Config.steps, "for tests: how many consecutive steps from debug.overflow_step are spoilt"),
        .integer("overflow_worker", \.overflowWorker, Config.workerIndex, "for tests: the worker whose gradient debug.overflow_step spoils (ssp and async: the slice of the step, whoever computes it)"),
        .integer("corrupt_step", \.corruptStep, Config.stepOrNever,
                 "for tests: worker 0 flips a payload byte of its first gradient piece at this step, after sealing (-1: never)"),
        .flag("digest_every_step", \.digestEveryStep, "for tests: log each server's parameter digest after every step"),
    ]
}
