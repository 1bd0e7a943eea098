import Foundation
import PSNumerics
import PSData
import PSConfig
import PSCheckpoint

/// Whether a configuration and its data set fit together: the model builds,
/// the data opens, and the model's input, outputs and tables agree with what
/// the data holds. The launcher runs these checks before mpirun starts (and
/// `--dry-run` runs them), so a mistake is one message, not one per rank;
/// the workers run the same checks on what they load, for ranks started by
/// hand.
public enum Preflight {
    /// What the launcher checks. `cacheDir` is where CSV caches may be
    /// written (the run's data-cache, or a scratch folder for a dry run);
    /// `clickLogs` says whether click logs may be opened (their caches are
    /// large: a dry run checks only what their format fixes).
    public static func check(_ cfg: Config, runDir: String, clickLogs: Bool) throws {
        let model = try Model(cfg.model, capacity: 1)
        if !cfg.train.initFrom.isEmpty { _ = try InitialWeights.load(cfg.train.initFrom, layout: model.layout) }
        if cfg.model.tables.isEmpty {
            guard !cfg.data.format.isCTR || !cfg.data.fromFiles else {
                throw ProtocolError.dataDoesNotFit("data.format = \"\(cfg.data.format.rawValue)\" is a click log of categorical ids: "
                                                   + "the model needs embedding tables, one per field (model.tables, docs/models.md#embedding-tables)")
            }
            let data = try DataSplit.load(cfg.data, features: cfg.model.inputSize, runDir: runDir)
            try check(model: model, fits: data, data: cfg.data)
            return
        }
        if !clickLogs || !cfg.data.fromFiles {
            // A dry run: the format fixes the columns; the files must be there.
            if cfg.data.fromFiles {
                guard let (dense, fields) = cfg.data.format.clickLogColumns else {
                    _ = try CTRSplit.load(cfg.data, runDir: runDir)   // says why a dense format does not serve tables
                    return
                }
                for (key, path) in [("data.train", cfg.data.train), ("data.test", cfg.data.test)] where !FileManager.default.fileExists(atPath: path) {
                    throw DataError.mismatch(path.isEmpty ? "\(key) is empty; data.format = \"\(cfg.data.format.rawValue)\" needs the file"
                                                          : "data set file not found: \(path) (\(key))")
                }
                try check(model: cfg.model, fields: fields, dense: dense, source: "\(cfg.data.train) (data.format = \"\(cfg.data.format.rawValue)\")")
            }
            return
        }
        let sets = try CTRSets.load(cfg.data, model: cfg.model, runDir: runDir)
        try check(model: cfg.model, fields: sets.train.fieldCount, dense: sets.train.denseCount, source: sets.train.source)
    }

    /// A model without tables on an image or feature set: sizes, shapes and classes agree.
    public static func check(model m: Model, fits data: DataSplit, data section: DataSection) throws {
        guard m.inputSize == data.train.features else {
            throw ProtocolError.dataDoesNotFit("model.input = \(m.inputShape.shapeText) (\(m.inputSize) elements) but the data set's samples "
                                               + "have \(data.train.features) (shape \(data.train.shape.shapeText)): set model.input = \(data.train.features)"
                                               + (data.train.shape.count > 1 ? " (or \(data.train.shape.shapeText) for a model with conv2d layers)" : ""))
        }
        // Flat samples (a CSV row) feed any model of their size; shaped ones must be laid out as the model's input.
        let squeezed = { (s: [Int]) in s.filter { $0 != 1 } }
        guard data.train.shape.count < 2 || m.inputShape.count < 2 || squeezed(data.train.shape) == squeezed(m.inputShape) else {
            throw ProtocolError.dataDoesNotFit("model.input = \(m.inputShape.shapeText) but the data set's samples have the shape "
                                               + "\(data.train.shape.shapeText): reshape x to [n] + \(m.inputShape.shapeText) (channels first)")
        }
        guard m.classes == data.train.classes else {
            throw ProtocolError.dataDoesNotFit("the last layer of model.layers has \(m.classes) outputs but the data set has \(data.train.classes) classes"
                                               + " (make the last dense layer's units \(data.train.classes))"
                                               + (section.classes == 0 && section.fromFiles
                                                  ? "; its training labels go up to \(data.train.classes - 1): set data.classes if some classes have no training sample" : ""))
        }
    }

    /// A model with tables on a click log: the dense features and fields agree.
    public static func check(model: ModelSection, fields: Int, dense: Int, source: String) throws {
        guard dense == model.inputSize else {
            throw ProtocolError.dataDoesNotFit("model.input = \(model.inputSize) dense features but \(source) has \(dense) per row: set model.input = \(dense)")
        }
        if model.namesFields {
            for (t, named) in model.tableFields.enumerated() {
                guard let f = named.first(where: { $0 >= fields }) else { continue }
                throw ProtocolError.dataDoesNotFit("model.tables[\(t)] names field \(f) but \(source) has \(fields) categorical field(s) per row, "
                                                   + "numbered 0 to \(fields - 1)")
            }
            return
        }
        guard fields == model.tables.count else {
            throw ProtocolError.dataDoesNotFit("model.tables has \(model.tables.count) table(s) but \(source) has \(fields) categorical field(s) per row; "
                                               + "table i embeds field i, so give one table per field "
                                               + "(an entry with count = N stands for N tables alike, e.g. { type = \"embedding_bag\", rows = 100000, dim = 16, hash = true, count = \(fields) }), "
                                               + "or name the fields each table embeds (fields = [0, 1] in every entry: a table may embed several fields, and a field may be left out)")
        }
    }
}
