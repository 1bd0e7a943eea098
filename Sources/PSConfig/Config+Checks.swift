// Checking a configuration as a whole (the rules between keys and
// sections) and suggesting a key for a misspelt one.

import Foundation
import PSSupport
import PSNumerics

extension Config {
    static func suggestion(for key: String) -> String {
        if let dot = key.lastIndex(of: "."), let mine = PyTorchNames.ours[String(key[key.index(after: dot)...])] {
            let ours = key[..<dot] + "." + mine
            if schema.contains(where: { $0.key == ours }) { return "; did you mean '\(ours)'? (PyTorch's \(key[key.index(after: dot)...]))" }
        }
        let best = schema.map { ($0.key, editDistance($0.key, key)) }.min { $0.1 < $1.1 }
        if let b = best, b.1 <= 3 { return "; did you mean '\(b.0)'?" }
        let section = key.split(separator: ".").first.map(String.init) ?? ""
        let known = schema.filter { $0.key.hasPrefix(section + ".") }.map { $0.key }
        return known.isEmpty ? "; known sections: model, data, train, scaler, compression, checkpoint, run, debug" : "; known keys: " + known.joined(separator: ", ")
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }

    /// Every key as a (section-qualified key, schema entry, value) triple, in canonical order.
    var entries: [(field: ConfigField, value: ConfigValue)] {
        func of<S: ConfigSection>(_ s: S) -> [ConfigValue] { S.keys.map { $0.read(s) } }
        let values = of(model) + of(data) + of(train) + of(scaler) + of(compression) + of(checkpoint) + of(debug) + of(run)
        return Array(zip(Config.schema, values))
    }

    /// Checks every value: each number against its key's range (finite),
    /// then the keys that depend on each other and the sizes derived from
    /// the model. The messages name the source, the key, the value and what
    /// is allowed. (The words a string key takes, the layers and the debug
    /// hooks' texts were checked when they were read.)
    public func validate() throws {
        func bad(_ key: String, _ why: String) -> ConfigError { .invalid(source: source, key: key, at: nil, problem: why) }
        for (f, v) in entries {
            guard let r = f.range else { continue }
            let x: Double
            switch v {
            case .integer(let i): x = Double(i)
            case .float(let d): x = d
            default: continue
            }
            if !r.contains(x) {
                throw ConfigError.outOfRange(source: source, key: f.key, value: v.description, integer: f.kind == .integer, range: r)
            }
        }
        if !(scaler.minScale <= scaler.initialScale && scaler.initialScale <= scaler.maxScale) {
            throw bad("scaler.initial", "= \(scaler.initialScale) must lie in [scaler.min, scaler.max] = [\(scaler.minScale), \(scaler.maxScale)]")
        }
        try train.validate(bad)
        if data.kind == .synthetic {
            for (key, n) in [("data.synthetic_train", data.syntheticTrain), ("data.synthetic_test", data.syntheticTest)] where n * model.inputSize > Config.maxDatasetBytes {
                throw bad(key, "= \(n) samples of model.input = \(model.inputSize) bytes is \(n * model.inputSize) bytes, more than the \(Config.maxDatasetBytes) allowed")
            }
        }
        try validateModel()
    }

    /// Checks the layers and the sizes they imply: layer widths, the number
    /// of parameters and the largest activation buffer (see the limits).
    /// Runs after the per-key ranges, so no product here can overflow.
    func validateModel() throws {
        func bad(_ key: String, _ why: String) -> ConfigError { .invalid(source: source, key: key, at: nil, problem: why) }
        let specs = model.layers
        if specs.isEmpty { throw bad("model.layers", "is empty; the network needs at least one dense layer") }
        if specs.count > Config.maxLayers {
            throw bad("model.layers", "has \(specs.count) layers, more than the \(Config.maxLayers) allowed")
        }
        let inputSize = model.layerInputShape.reduce(1, *), batchSize = train.stepBatch
        try validateTables(bad)
        try validateConsistency(bad)
        // Each entry was checked against its kind (and its keys' ranges)
        // when read; here the shapes each layer gets are checked.
        let layers: [Layer]
        switch LayerKinds.build(specs, input: model.layerInputShape) {
        case .success(let l): layers = l
        case .failure(let p): throw ConfigError.badLayer(source: source, index: p.index, at: nil, problem: .kind(p.problem))
        }
        let parameters = layers.reduce(0) { $0 + $1.parameters.reduce(0) { $0 + $1.count } }
        let widest = layers.reduce(inputSize) { max($0, $1.outputSize) }
        if parameters > Config.maxParameters {
            throw bad("model.layers", "with model.input = \(model.inputShape.shapeText) has \(parameters) parameters, more than the \(Config.maxParameters) (2^28) allowed")
        }
        let rows = max(train.microbatch > 0 ? min(train.microbatch, batchSize) : batchSize, Model.minimumCapacity)
        if rows * widest > Config.maxActivationElements {
            throw bad("train.batch_size", "= \(batchSize) rows per step with a layer \(widest) wide needs an activation buffer of \(rows) x \(widest) = \(rows * widest) "
                + "elements, more than the \(Config.maxActivationElements) (2^28) allowed; use a smaller batch or narrower layers")
        }
    }

    /// What ssp and async do not do (yet).
    func validateConsistency(_ bad: (String, String) -> ConfigError) throws {
        guard train.asynchronous else { return }
        let mode = "train.consistency = \"\(train.consistency.rawValue)\""
        if compression.topk > 0 { throw bad("compression.topk", "is not supported with \(mode) (error feedback assumes every step is applied or skipped everywhere); set it to 0") }
        if train.clips { throw bad("train.clip_norm", "is not supported with \(mode) (each push is applied alone; there is no global norm of a step); remove it") }
        if train.accumulate > 1 || train.microbatch > 0 {
            throw bad(train.accumulate > 1 ? "train.accumulate" : "train.microbatch",
                      "is not supported with \(mode): each slice server 0 hands out is one microbatch; remove it")
        }
        if checkpoint.everySeconds > 0 {
            throw bad("checkpoint.every_seconds", "is not supported with \(mode): checkpoints are taken at a step every worker stops at; use checkpoint.every_steps")
        }
    }

    /// The rules for a model with embedding tables.
    func validateTables(_ bad: (String, String) -> ConfigError) throws {
        if let (t, problem) = model.fieldLayoutProblem() { throw bad("model.tables[\(t)]", problem) }
        if model.interaction == .fm {
            if model.tables.isEmpty { throw bad("model.interaction", "= \"fm\" works on the bags of model.tables, and there are none") }
            if Set(model.tables.map(\.dim)).count > 1 {
                throw bad("model.interaction", "= \"fm\" needs every table of one dim (model.tables have dims \(model.tables.map(\.dim)))")
            }
            if model.loss != .bce { throw bad("model.interaction", "= \"fm\" adds to one logit: it needs model.loss = \"bce\"") }
        }
        if model.tables.isEmpty {
            if model.inputSize == 0 { throw bad("model.input", "= 0 (no dense features) needs model.tables: a model with no input has nothing to learn from") }
            return
        }
        if model.inputShape.count != 1 {
            throw bad("model.input", "= \(model.inputShape.shapeText) with model.tables: it counts the dense features per row, one integer such as 13")
        }
        if train.accumulate > 1 || train.microbatch > 0 {
            throw bad(train.accumulate > 1 ? "train.accumulate" : "train.microbatch",
                      "is not supported with model.tables yet (one microbatch per step); remove it")
        }
        if train.clips { throw bad("train.clip_norm", "is not supported with model.tables yet; remove it") }
        if !train.initFrom.isEmpty { throw bad("train.init_from", "is not supported with model.tables yet (the tables would start random); remove it") }
        if compression.topk > 0 { throw bad("compression.topk", "does not apply to model.tables (rows travel sparse already); set it to 0") }
    }
}
