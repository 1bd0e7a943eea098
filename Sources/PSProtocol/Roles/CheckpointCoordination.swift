import Foundation
import PSSupport
import PSConfig
import PSNumerics
import PSCheckpoint

/// How the ranks write a checkpoint together (docs/checkpoints.md): every
/// rank writes its own file into the temporary folder of the step and
/// reports it to server 0, which waits for every report, writes the
/// manifest and completes the checkpoint; on any failure it removes the
/// temporary folder, leaving the previous checkpoint and LATEST as they were.
extension RankContext {
    /// Writes this rank's file of checkpoint `step` and, on every rank but
    /// server 0, reports it. Server 0 gets its own result back to complete
    /// the checkpoint with (`completeCheckpoint`).
    func writeCheckpointFile(step: Int, role: Role, index: Int, tensors: [Safetensors.Tensor]) throws -> Result<CheckpointFileInfo, CheckpointFailure> {
        let result = Result { try CheckpointWriter(runDir: runDir).writeRankFile(step: step, role: role, index: index, tensors: tensors) }
            .mapError { CheckpointFailure($0) }
        if rank != world.serverRanks[0] {
            try send(CheckpointReport(result), to: [world.serverRanks[0]], step: step, index: rank, for: "sending the checkpoint report")
        }
        return result
    }

    /// Server 0: collects every other rank's report, then writes the
    /// manifest that `manifest` builds from the files, and completes
    /// checkpoint `step`. Returns its folder.
    func completeCheckpoint(step: Int, mine: Result<CheckpointFileInfo, CheckpointFailure>,
                            manifest: (_ files: [Manifest.FileEntry]) -> Manifest) throws -> String {
        let writer = CheckpointWriter(runDir: runDir)
        let others = (0..<world.hellos.count).filter { $0 != rank }
        let reports = try receive(CheckpointReport.self, from: others, step: step, index: { others[$0] }, for: "checkpoint reports")
        var files: [Manifest.FileEntry] = []
        var failures: [String] = []
        for (r, result) in [(rank, mine)] + zip(others, reports.map { $0.result }) {
            let role = world.hellos[r].role, index = world.index(ofRank: r)
            switch result {
            case .success(let v): files.append(.init(name: checkpointFile(role, index), role: role.name, index: index, bytes: v.bytes, sha256: v.sha256))
            case .failure(let e): failures.append("\(world.describe(r)): \(e)")
            }
        }
        let previous = CheckpointStore.latestName(runDir).map { "the previous checkpoint (\($0)) and LATEST are untouched" }
            ?? "no earlier checkpoint exists; LATEST was not written"
        if !failures.isEmpty {
            try? FileManager.default.removeItem(atPath: writer.tempDir(step))
            throw ProtocolError.checkpointFailed(step: step, reasons: failures, previous: previous)
        }
        files.sort { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) }
        do {
            return try writer.complete(manifest(files), keep: config.checkpoint.keep,
                                       crashPoint: { TestHooks(config.debug, runDir: runDir, log: log).crashInCheckpoint(step: step, at: $0) })
        } catch {
            try? FileManager.default.removeItem(atPath: writer.tempDir(step))
            throw ProtocolError.checkpointFailed(step: step, reasons: ["\(error)"], previous: previous)
        }
    }
}

extension Manifest {
    /// The manifest server 0 writes for checkpoint `step` of a run with
    /// `schedule`, with the tensors of `layout` cut into the shards `shards`.
    init(context ctx: RankContext, step: Int, schedule s: Schedule, scaler: LossScaler, layout: ModelLayout, shards: [ShardPlan.Piece],
         files: [FileEntry]) {
        let cfg = ctx.config
        self.init(run: (ctx.runDir as NSString).lastPathComponent, step: step, epoch: step / s.perEpoch,
                  epochCursor: (step % s.perEpoch) * cfg.train.stepBatch, stepsPerEpoch: s.perEpoch, totalSteps: s.total, seed: cfg.train.seed,
                  dataOrder: "epoch e visits the training set in the Fisher-Yates order drawn from (seed, e); global batch k of an epoch is samples [k*B, (k+1)*B) of that order, split over the workers in contiguous slices",
                  rng: "counter-based (SplitMix64 of seed, stream, index): no state to save",
                  lrSchedule: cfg.train.lrSchedule.rawValue, learningRate: cfg.train.learningRate(step: step, total: s.total),
                  scaler: scaler.state, servers: ctx.world.servers, workers: ctx.world.workers, precision: cfg.train.precision.rawValue,
                  compression: cfg.compression.settings.summary, build: String(ctx.world.hellos[ctx.rank].buildHash, radix: 16),
                  configHash: String(cfg.hash, radix: 16), config: cfg.canonicalTOML, created: Date().timeIntervalSince1970,
                  files: files,
                  tensors: layout.tensors.map { t in
                      TensorEntry(name: t.name, shape: t.spec.shape, shards: shards.filter { $0.tensor == t.index }.map {
                          .init(file: checkpointFile(.server, $0.server), start: $0.range.lowerBound - t.offset, count: $0.range.count)
                      })
                  },
                  optimizerStates: Optimizers.make(cfg.train).stateNames)
    }

    /// The run's configuration embedded in the manifest of checkpoint
    /// `folder`, read and checked like any configuration file (every range
    /// and rule), naming the manifest in its messages.
    public func configuration(folder: String) throws -> Config {
        try Config.parse(config, source: folder + "/manifest.json (config)")
    }
}
