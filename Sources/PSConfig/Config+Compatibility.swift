import PSSupport
import PSNumerics
import PSCodec

// MARK: - Compatibility accessors
//
// The flat accessors call sites used before the configuration was split into
// sections. Each forwards to its section and returns exactly what it did
// (same type, same value). New code should take the section instead
// (`cfg.train.batchSize`, `cfg.compression.settings`); once no call site
// uses one of these, delete it. Nothing else belongs in this extension.

extension Config {
    // [model]
    public var inputSize: Int { model.inputSize }
    // [data]
    public var dataKind: String { data.kind.rawValue }
    public var dataDir: String { data.dir }
    public var syntheticTrain: Int { data.syntheticTrain }
    public var syntheticTest: Int { data.syntheticTest }

    // [train]
    public var epochs: Int { train.epochs }
    public var maxSteps: Int { train.maxSteps }
    public var batchSize: Int { train.batchSize }
    public var lr: Double { train.lr }
    public var momentum: Double { train.momentum }
    public var lrSchedule: String { train.lrSchedule.rawValue }
    public var weightDecay: Double { train.weightDecay }
    public var seed: UInt64 { train.seed }
    public var precision: Precision { train.precision }
    public func learningRate(step: Int, total: Int) -> Double { train.learningRate(step: step, total: total) }

    // [scaler], [compression]
    public var scalerSettings: LossScaler.Settings { scaler.settings }
    public var codecSettings: CodecSettings { compression.settings }

    // [checkpoint]
    public var checkpointEvery: Int { checkpoint.everySteps }
    public var checkpointSeconds: Double { checkpoint.everySeconds }
    public var checkpointAtEnd: Bool { checkpoint.atEnd }
    public var checkpointKeep: Int { checkpoint.keep }
    public func checkpointDue(after step: Int, total: Int) -> Bool { checkpoint.due(after: step, total: total) }

    // [run]
    public var timeoutSeconds: Double { run.timeoutSeconds }
    public var blasThreads: Int { run.blasThreads }
    public var poll: String { run.poll.rawValue }
    public var pinWorkers: Bool { run.pinWorkers }
    public var chunkElements: Int { run.chunkElements }
    public var progressSeconds: Double { run.progressSeconds }
    public var expectedWorkers: Int { run.workers }
    public var expectedServers: Int { run.servers }

    // [debug]
    public var dieAtSteps: [Int] { debug.dieAtSteps }
    public var dieWorker: Int { debug.dieWorker }
    public var slowWorker: Int { debug.slowWorker }
    public var slowMilliseconds: Double { debug.slowMilliseconds }
    public var dieInCheckpoint: (step: Int, point: String)? { debug.dieInCheckpoint.map { ($0.step, $0.point) } }
    public var overflowStep: Int { debug.overflowStep }
    public var overflowWorker: Int { debug.overflowWorker }
    public var overflowSteps: Int { debug.overflowSteps }
    public var corruptStep: Int { debug.corruptStep }
    public var digestEveryStep: Bool { debug.digestEveryStep }
    public func spoilsGradient(step: Int, worker w: Int) -> Bool { debug.spoilsGradient(step: step, worker: w) }
}
