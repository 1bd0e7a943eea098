import PSNumerics
import PSData

// How each component is built from its own section of the configuration,
// and nothing else: the numeric core, the codec and the data know nothing
// of the configuration; this file is the one place that reads sections
// into their parameters.

extension Model {
    /// The network of `[model]`, with activation buffers for `capacity` rows.
    public convenience init(_ model: ModelSection, capacity: Int) throws {
        try self.init(input: model.layerInputShape, entries: model.layers, capacity: capacity, loss: model.loss,
                      inputGradient: !model.tables.isEmpty)
        interaction = model.fmInteraction
    }
}

extension DataSplit {
    /// The data set `[data]` names; synthetic sets have `features` features.
    /// CSV caches go to `runDir`/data-cache (next to the CSV files without a
    /// run directory); `statistics` are standardisation numbers from a
    /// checkpoint, used instead of computing them again.
    public static func load(_ data: DataSection, features: Int, runDir: String = "", statistics: FeatureStatistics? = nil) throws -> DataSplit {
        switch data.kind {
        case .synthetic:
            return synthetic(train: data.syntheticTrain, test: data.syntheticTest, features: features, classes: 10, seed: 7)
        case .fashionMNIST:
            try data.checkFiles()
            return try open(data.request(cacheDir: cacheDir(runDir), statistics: statistics))
        }
    }

    /// What the launcher does before it starts the ranks: converts CSV files
    /// into their caches in `runDir` (a large file is converted before the
    /// ranks' start-up deadline runs, and a bad one is reported at once);
    /// the workers then find the caches.
    public static func prepare(_ data: DataSection, runDir: String) throws {
        guard data.fromFiles, data.format == .csv || data.format.isCTR else { return }
        try data.checkFiles()
        let r = data.request(cacheDir: cacheDir(runDir))
        if data.format.isCTR {
            _ = try CTRFile.open(r.train, format: r.format, cacheDir: r.cacheDir, what: "data.train")
            _ = try CTRFile.open(r.test, format: r.format, cacheDir: r.cacheDir, what: "data.test")
            return
        }
        _ = try CSV.open(r.train, label: r.label, cacheDir: r.cacheDir, what: "data.train")
        _ = try CSV.open(r.test, label: r.label, cacheDir: r.cacheDir, what: "data.test")
    }

    static func cacheDir(_ runDir: String) -> String { runDir.isEmpty ? "" : runDir + "/data-cache" }
}

extension CTRSplit {
    /// The click log `[data]` names (data.format "criteo" or "libsvm"); the
    /// caches go to `runDir`/data-cache (next to the files without a run
    /// directory).
    public static func load(_ data: DataSection, runDir: String = "") throws -> CTRSplit {
        guard data.fromFiles else {
            throw DataError.mismatch("data.kind = \"synthetic\" has no click-log rows; write a synthetic click log with "
                                     + "`pstrain data make-ctr --out DIR` and set data.format = \"criteo\", data.train and data.test")
        }
        guard data.format.isCTR else {
            throw DataError.mismatch("a model with embedding tables (model.tables) reads a click log: data.format = \"criteo\" or \"libsvm\", "
                                     + "not \"\(data.format.rawValue)\"")
        }
        try data.checkFiles()
        return try open(data.request(cacheDir: DataSplit.cacheDir(runDir)))
    }
}

extension CTRSets {
    /// What the workers of a model with tables read: the click log `[data]`
    /// names (CTRSplit.load), or with data.kind = "synthetic" one made from
    /// the seed (as many ids in a field as its table has rows, one id in a
    /// field no table embeds; model.input dense features; for tests).
    public static func load(_ data: DataSection, model: ModelSection, runDir: String = "") throws -> CTRSets {
        guard data.fromFiles else {
            var v = [Int](repeating: 1, count: model.fieldsNeeded), d = model.inputSize
            for f in model.features { v[f.field] = model.tables[f.table].rows }
            return CTRSets(train: SyntheticCTR(rows: data.syntheticTrain, dense: d, vocabularies: v, seed: 7, stream: 1),
                           test: SyntheticCTR(rows: data.syntheticTest, dense: d, vocabularies: v, seed: 7, stream: 2))
        }
        let s = try CTRSplit.load(data, runDir: runDir)
        for f in model.features where f.field < s.idLimits.count {
            let t = f.table, spec = model.tables[t], limit = s.idLimits[f.field]
            guard spec.hash || limit <= UInt64(spec.rows) else {
                throw DataError.mismatch("field \(f.field) of \(data.train) / \(data.test) has ids up to \(limit - 1) but model.tables[\(t)] has rows = \(spec.rows): "
                                         + "raise rows to at least \(limit) or set hash = true")
            }
        }
        return CTRSets(train: s.train, test: s.test, validation: s.validation)
    }
}

/// The optimizers a configuration can name.
public enum Optimizers {
    /// The servers' optimizer for `[train]` (train.optimizer and its keys).
    public static func make(_ train: TrainSection) -> Optimizer {
        let wd = train.weightDecay, eps = train.effectiveEps
        switch train.optimizer {
        case .sgd: return SGD(momentum: Float(train.momentum), weightDecay: Float(wd), nesterov: train.nesterov)
        case .adam: return Adam(beta1: train.beta1, beta2: train.beta2, eps: eps, weightDecay: wd)
        case .adamw: return AdamW(beta1: train.beta1, beta2: train.beta2, eps: eps, weightDecay: wd)
        case .adagrad: return Adagrad(eps: eps, weightDecay: wd)
        case .rmsprop: return RMSprop(alpha: train.alpha, eps: eps, weightDecay: wd, momentum: train.momentum, centered: train.centered)
        }
    }
}

extension LRSchedule {
    /// The schedule of `[train]`: train.lr, train.lr_schedule (with
    /// train.lr_step_every and train.lr_gamma), train.warmup_steps.
    public init(_ train: TrainSection) {
        let decay: Decay
        switch train.lrSchedule {
        case .constant: decay = .constant
        case .cosine: decay = .cosine
        case .step: decay = .step(every: train.lrStepEvery, gamma: train.lrGamma)
        case .linear: decay = .linear
        }
        self.init(lr: train.lr, decay: decay, warmupSteps: train.warmupSteps)
    }
}
