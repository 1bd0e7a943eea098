import Foundation

/// What `pstrain inspect` says about a run, as one JSON-friendly value.
public struct RunSummary: Codable {
    public struct RankStat: Codable {
        public var rank: String
        public var steps: Int
        public var stepP50: Double, stepP95: Double, stepMax: Double
        public var waitShare: Double
        public var samplesPerSecond: Double?
        /// Workers: median seconds of compute per step.
        public var computeP50: Double?
    }
    public struct Phase: Codable { public var name: String; public var seconds: Double; public var share: Double }
    public struct CheckpointInfo: Codable { public var name: String; public var state: String; public var latest: Bool }
    public struct Eval: Codable {
        public var epoch: Int; public var step: Int; public var accuracy: Double
        /// With model.tables and model.loss = "bce": the test AUC and log loss (absent otherwise).
        public var auc: Double? = nil, logloss: Double? = nil
    }
    public struct ScaleChange: Codable { public var step: Int; public var from: Double; public var to: Double; public var why: String }

    public var run: String
    public var path: String
    public var status: String
    public var attempts: Int
    public var restarts: Int
    public var servers: Int
    public var workers: Int
    public var model: String
    public var precision: String
    public var compression: String
    public var batchSize: Int
    public var stepsDone: Int
    public var stepsTotal: Int
    public var epochsDone: Int
    public var epochsTotal: Int
    public var trainingSeconds: Double
    public var samplesPerSecond: Double
    public var finalAccuracy: Double?
    public var bestAccuracy: Double?
    public var evals: [Eval]
    public var loss: [Double]
    public var phases: [Phase]
    public var wireBytesPerStep: Double
    public var fp32BytesPerStep: Double
    public var compressionRatio: Double
    public var lossScale: Double?
    public var skippedSteps: Int
    public var scaleChanges: [ScaleChange]
    public var ranks: [RankStat]
    public var checkpoints: [CheckpointInfo]
    public var notes: [String]
    /// Why the last attempt failed, as the rank that said so (absent when it did not fail).
    public var failure: String? = nil
    /// With model.tables: rows and row bytes on the wire, rows held (absent otherwise).
    public var tables: Tables? = nil
    /// ssp and async: per epoch, server 0's staleness record (absent in bsp).
    public var staleness: [Staleness]? = nil
    public struct Staleness: Codable {
        public var epoch: Int
        /// The largest and the mean staleness of the epoch's pushes (server 0's updates in between).
        public var max: Int
        public var mean: Double
        /// The most steps a slice handed out was past the oldest unfinished step.
        public var maxLead: Int
    }

    /// The "staleness" line (none in bsp).
    public var stalenessFacts: [(String, String)] {
        guard let st = staleness else { return [] }
        return [("staleness", st.map { "epoch \($0.epoch): max \($0.max), mean " + String(format: "%.2f", $0.mean) + ", lead \($0.maxLead)" }
            .joined(separator: "; "))]
    }
}
