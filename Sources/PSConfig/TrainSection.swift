import Foundation
import PSNumerics

extension Precision: ConfigChoice {
    static var choices: [Precision] { allCases }
}

extension SparseOptimizer: ConfigChoice {
    static var choices: [SparseOptimizer] { allCases }
}

/// [train]: the optimisation.
public struct TrainSection: ConfigSection {
    /// train.lr_schedule (LRSchedule in PSNumerics has the formulas).
    public enum ScheduleKind: String, ConfigChoice {
        case constant
        /// From lr down to 0 over the run.
        case cosine
        /// Times train.lr_gamma every train.lr_step_every steps.
        case step
        /// Linearly from lr down to 0 over the run.
        case linear
        static let choices: [ScheduleKind] = [.constant, .cosine, .step, .linear]
    }

    /// train.consistency
    public enum Consistency: String, ConfigChoice {
        /// Bulk synchronous: every step waits for every worker (bit-exact).
        case bsp
        /// Stale synchronous: a worker starts step t once every worker finished step t - train.staleness.
        case ssp
        /// No bound.
        case async
        static let choices: [Consistency] = [.bsp, .ssp, .async]
    }

    /// train.optimizer
    public enum OptimizerKind: String, ConfigChoice, CaseIterable {
        case sgd, adam, adamw, adagrad, rmsprop
        static var choices: [OptimizerKind] { allCases }
    }

    /// train.epochs
    public internal(set) var epochs = 10
    /// train.init_from: a safetensors file of this model's tensors a new run starts from ("": the random initialisation).
    public internal(set) var initFrom = ""
    /// train.max_steps (0: no limit)
    public internal(set) var maxSteps = 0
    /// train.batch_size: the global batch, split over the workers.
    public internal(set) var batchSize = 128
    /// train.lr
    public internal(set) var lr = 0.05
    /// train.lr_schedule
    public internal(set) var lrSchedule = ScheduleKind.cosine
    /// train.momentum
    public internal(set) var momentum = 0.9
    /// train.weight_decay
    public internal(set) var weightDecay = 0.0001
    /// train.seed, as the 64-bit pattern the random generators take (the
    /// file holds it as a signed TOML integer: -1 is 2^64 - 1).
    public internal(set) var seed: UInt64 = 1
    /// train.precision
    public internal(set) var precision = Precision.fp32
    /// train.optimizer
    public internal(set) var optimizer = OptimizerKind.sgd
    /// train.nesterov (SGD only)
    public internal(set) var nesterov = false
    /// train.beta1, train.beta2 (Adam, AdamW)
    public internal(set) var beta1 = 0.9
    public internal(set) var beta2 = 0.999
    /// train.alpha, train.centered (RMSprop)
    public internal(set) var alpha = 0.99
    public internal(set) var centered = false
    /// train.eps (0: the optimizer's PyTorch default, `effectiveEps`)
    public internal(set) var eps = 0.0
    /// train.clip_norm (0: off)
    public internal(set) var clipNorm = 0.0
    /// train.warmup_steps
    public internal(set) var warmupSteps = 0
    /// train.lr_step_every, train.lr_gamma (lr_schedule = "step")
    public internal(set) var lrStepEvery = 0
    public internal(set) var lrGamma = 0.1
    /// train.accumulate: microbatches per push (gradient accumulation).
    public internal(set) var accumulate = 1
    /// train.microbatch: the most rows a worker computes at once (0: its
    /// slice of the step divided into train.accumulate parts).
    public internal(set) var microbatch = 0
    /// train.sparse_optimizer: the embedding tables' optimizer.
    public internal(set) var sparseOptimizer = SparseOptimizer.adagrad
    /// train.sparse_lr (0: train.lr)
    public internal(set) var sparseLR = 0.0
    /// train.consistency
    public internal(set) var consistency = Consistency.bsp
    /// train.staleness (ssp)
    public internal(set) var staleness = 2

    /// Whether workers run without waiting for each other at every step (ssp, async).
    public var asynchronous: Bool { consistency != .bsp }

    /// Rows of one step (one push per worker): batch_size x accumulate.
    public var stepBatch: Int { batchSize * accumulate }

    public init() {}

    /// The learning rate of step `step` of a run of `total` steps.
    public func learningRate(step: Int, total: Int) -> Double {
        LRSchedule(self).rate(step: step, total: total)
    }

    /// The eps the optimizer uses: train.eps, or when it is 0 PyTorch's
    /// default for the optimizer (1e-8 for Adam and AdamW, 1e-10 for Adagrad).
    public var effectiveEps: Double {
        if eps > 0 { return eps }
        return optimizer == .adagrad ? Adagrad.defaultEps : 1e-8
    }

    /// The tables' learning rate at step `step`: train.sparse_lr (or
    /// train.lr) under the same schedule and warmup as the dense part.
    public func sparseLearningRate(step: Int, total: Int) -> Double {
        let r = learningRate(step: step, total: total)
        return sparseLR > 0 ? r * (sparseLR / lr) : r
    }

    /// The tables' optimizer's hyper-parameters (train.beta1, beta2, eps).
    public var sparseHyper: SparseOptimizer.Hyper {
        var h = SparseOptimizer.Hyper()
        h.beta1 = beta1; h.beta2 = beta2; h.eps = eps
        return h
    }

    /// Whether gradients are clipped to a global norm.
    public var clips: Bool { clipNorm > 0 }

    /// The rules across the keys of this section (Config.validate).
    func validate(_ bad: (String, String) -> ConfigError) throws {
        if nesterov && optimizer != .sgd {
            throw bad("train.nesterov", "= true applies to train.optimizer = \"sgd\" only (this configuration has \"\(optimizer.rawValue)\"); remove it")
        }
        if nesterov && momentum == 0 {
            throw bad("train.nesterov", "= true needs train.momentum > 0 (PyTorch's rule: Nesterov momentum without momentum is plain SGD); set train.momentum or remove train.nesterov")
        }
        if centered && optimizer != .rmsprop {
            throw bad("train.centered", "= true applies to train.optimizer = \"rmsprop\" only (this configuration has \"\(optimizer.rawValue)\"); remove it")
        }
        if lrSchedule == .step && lrStepEvery == 0 {
            throw bad("train.lr_step_every", "must be set (steps between decays, at least 1) with train.lr_schedule = \"step\"")
        }
    }

    static let name = "train"
    static let keys: [ConfigKey<TrainSection>] = [
        .integer("epochs", \.epochs, .closed(1, 1_000_000), "passes over the training set"),
        .integer("max_steps", \.maxSteps, Config.steps, "stop after this many steps (0: no limit)"),
        .text("init_from", \.initFrom, "a new run starts from these weights instead of its random initialisation: a model written by "
              + "`pstrain ckpt export` (or a safetensors file of this model's FP32 tensors by name); \"\": random. A resume ignores it"),
        .integer("batch_size", \.batchSize, .closed(1, Double(Config.maxWidth)), "global batch, split over the workers"),
        .number("lr", \.lr, .openClosed(0, 1000), "learning rate (the peak, after any warmup)"),
        .choice("lr_schedule", \.lrSchedule, "\"constant\", \"cosine\" (from train.lr to 0 over the run), \"step\" (times train.lr_gamma every train.lr_step_every steps) or \"linear\" (from train.lr to 0)"),
        .number("momentum", \.momentum, .closedOpen(0, 1), "momentum (sgd, rmsprop; for rmsprop set it, as torch.optim.RMSprop's default is 0)"),
        .number("weight_decay", \.weightDecay, .closed(0, 1), "weight decay: L2 added to the gradient (sgd, adam, adagrad), decoupled (adamw)"),
        ConfigKey(name: "seed", kind: .integer, range: nil, doc: "seeds initialisation and the per-epoch shuffle",
                  read: { .integer(Int(Int64(bitPattern: $0.seed))) }) { s, v, ctx in
            guard case .integer(let i) = v else { throw ctx.wrongType(v, "an integer") }
            s.seed = UInt64(bitPattern: Int64(i))
        },
        .choice("precision", \.precision, "\"fp32\", \"fp16\" or \"bf16\": what workers hold and send (servers keep FP32 masters)"),
        .choice("optimizer", \.optimizer, "\"sgd\", \"adam\", \"adamw\", \"adagrad\" or \"rmsprop\" (torch.optim's of the same name)"),
        .flag("nesterov", \.nesterov, "Nesterov momentum (sgd only)"),
        .number("beta1", \.beta1, .closedOpen(0, 1), "Adam's and AdamW's first-moment decay"),
        .number("beta2", \.beta2, .closedOpen(0, 1), "Adam's and AdamW's second-moment decay"),
        .number("eps", \.eps, .closed(0, 1), "added to the denominator (adam, adamw, adagrad, rmsprop); 0: PyTorch's default, 1e-8 (adam, adamw, rmsprop) or 1e-10 (adagrad)"),
        .number("alpha", \.alpha, .closedOpen(0, 1), "RMSprop's smoothing constant (torch.optim.RMSprop's alpha)"),
        .flag("centered", \.centered, "RMSprop divides by the centered second moment, an estimate of the gradient's variance (rmsprop only)"),
        .number("clip_norm", \.clipNorm, .closed(0, 1e9), "clip the global gradient norm to this (0: off), as torch.nn.utils.clip_grad_norm_"),
        .integer("warmup_steps", \.warmupSteps, Config.steps, "linear warmup from train.lr / warmup_steps to train.lr over these first steps"),
        .integer("lr_step_every", \.lrStepEvery, Config.steps, "lr_schedule = \"step\": steps between decays"),
        .number("lr_gamma", \.lrGamma, .openClosed(0, 1), "lr_schedule = \"step\": the factor of each decay"),
        .integer("accumulate", \.accumulate, .closed(1, 1024),
                 "microbatches of train.batch_size per optimizer step: each worker sums their gradients and pushes once"),
        .integer("microbatch", \.microbatch, .closed(0, Double(Config.maxWidth)),
                 "the most rows a worker computes at once (0: its slice of the step divided into train.accumulate parts)"),
        .choice("sparse_optimizer", \.sparseOptimizer,
                "the embedding tables' optimizer: \"adagrad\", \"lazy_adam\" (torch.optim.SparseAdam) or \"sgd\"; only the rows a step touched move"),
        .number("sparse_lr", \.sparseLR, .closed(0, 1000), "the embedding tables' learning rate, under train.lr_schedule like train.lr (0: train.lr)"),
        .choice("consistency", \.consistency,
                "\"bsp\" (every step waits for every worker; bit-exact), \"ssp\" (a worker starts step t once every worker finished step t - train.staleness) or \"async\" (no bound); servers apply each worker's push as it arrives in ssp and async"),
        .integer("staleness", \.staleness, .closed(1, 1_000_000), "ssp: how many steps the fastest worker may run ahead of the slowest"),
    ]
}
