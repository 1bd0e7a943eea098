import Foundation
import PSSupport
import PSNumerics
import PSCodec

extension Precision: ConfigChoice {
    static var choices: [Precision] { allCases }
}

/// [train]: the optimisation.
public struct TrainSection: ConfigSection {
    public enum LRSchedule: String, ConfigChoice {
        case constant
        /// From lr down to 0 over the run.
        case cosine
        static let choices: [LRSchedule] = [.constant, .cosine]
    }

    /// train.epochs
    public internal(set) var epochs = 10
    /// train.max_steps (0: no limit)
    public internal(set) var maxSteps = 0
    /// train.batch_size: the global batch, split over the workers.
    public internal(set) var batchSize = 128
    /// train.lr
    public internal(set) var lr = 0.05
    /// train.lr_schedule
    public internal(set) var lrSchedule = LRSchedule.cosine
    /// train.momentum
    public internal(set) var momentum = 0.9
    /// train.weight_decay
    public internal(set) var weightDecay = 0.0001
    /// train.seed, as the 64-bit pattern the random generators take (the
    /// file holds it as a signed TOML integer: -1 is 2^64 - 1).
    public internal(set) var seed: UInt64 = 1
    /// train.precision
    public internal(set) var precision = Precision.fp32
    /// train.accumulate: microbatches per push (gradient accumulation).
    public internal(set) var accumulate = 1
    /// train.microbatch: the most rows a worker computes at once (0: its
    /// slice of the step divided into train.accumulate parts).
    public internal(set) var microbatch = 0

    /// Rows of one step (one push per worker): batch_size x accumulate.
    public var stepBatch: Int { batchSize * accumulate }

    public init() {}

    /// The learning rate of step `step` of a run of `total` steps.
    public func learningRate(step: Int, total: Int) -> Double {
        switch lrSchedule {
        case .cosine: return lr * 0.5 * (1 + cos(Double.pi * Double(step) / Double(max(total, 1))))
        case .constant: return lr
        }
    }

    static let name = "train"
    static let keys: [ConfigKey<TrainSection>] = [
        .integer("epochs", \.epochs, .closed(1, 1_000_000), "passes over the training set"),
        .integer("max_steps", \.maxSteps, Config.steps, "stop after this many steps (0: no limit)"),
        .integer("batch_size", \.batchSize, .closed(1, Double(Config.maxWidth)), "global batch, split over the workers"),
        .number("lr", \.lr, .openClosed(0, 1000), "learning rate (SGD)"),
        .choice("lr_schedule", \.lrSchedule, "\"constant\", or \"cosine\" (decay from train.lr to 0 over the run)"),
        .number("momentum", \.momentum, .closedOpen(0, 1), "SGD momentum"),
        .number("weight_decay", \.weightDecay, .closed(0, 1), "L2 weight decay, added to the gradient"),
        ConfigKey(name: "seed", kind: .integer, range: nil, doc: "seeds initialisation and the per-epoch shuffle",
                  read: { .integer(Int(Int64(bitPattern: $0.seed))) }) { s, v, ctx in
            guard case .integer(let i) = v else { throw ctx.wrongType(v, "an integer") }
            s.seed = UInt64(bitPattern: Int64(i))
        },
        .choice("precision", \.precision, "\"fp32\", \"fp16\" or \"bf16\": what workers hold and send (servers keep FP32 masters)"),
        .integer("accumulate", \.accumulate, .closed(1, 1024),
                 "microbatches of train.batch_size per optimizer step: each worker sums their gradients and pushes once"),
        .integer("microbatch", \.microbatch, .closed(0, Double(Config.maxWidth)),
                 "the most rows a worker computes at once (0: its slice of the step divided into train.accumulate parts)"),
    ]
}
