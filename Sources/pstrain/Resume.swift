import ArgumentParser
import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import PSLaunch

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a run from its newest valid checkpoint (or --from step-N), on the same or another world size.",
        discussion: """
        Checkpoints store tensors by name and full shape, so --servers re-cuts the server shards and \
        --workers re-splits every global batch; the data order, learning-rate schedule and loss scale \
        continue where they were. A damaged newest checkpoint is reported and the previous complete one is used.
        Examples:
          pstrain resume runs/demo
          pstrain resume runs/demo --workers 3 --servers 3 --from step-936
        """)

    @Argument(help: "The run directory.")
    var runDir: String

    @Option(name: .long, parsing: .unconditional, help: "Worker ranks (default: as the run had).")
    var workers: Int?

    @Option(name: .long, parsing: .unconditional, help: "Server ranks (default: as the run had).")
    var servers: Int?

    @Option(name: .long, help: "The checkpoint to continue from, e.g. step-936 (default: the newest valid one).")
    var from: String?

    @Option(name: .long, parsing: .unconditional, help: "Train to N epochs in all: more than the run had extends it, also a finished one (shortcut for --set train.epochs=N).")
    var epochs: Int?

    @Option(name: .customLong("set"), help: ArgumentHelp("Change a configuration key for the rest of the run, e.g. --set train.lr=0.01 (repeatable); run.toml keeps it.", valueName: "key=value"))
    var overrides: [String] = []

    @OptionGroup var job: JobOptions


    func validate() throws {
        if let w = workers, w < 1 { throw ValidationError("--workers must be at least 1 (got \(w))") }
        if let s = servers, s < 1 { throw ValidationError("--servers must be at least 1 (got \(s))") }
        if let e = epochs, e < 1 { throw ValidationError("--epochs must be at least 1 (got \(e))") }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let absDir = runDir.hasPrefix("/") ? runDir : FileManager.default.currentDirectoryPath + "/" + runDir
        let tomlPath = absDir + "/run.toml"
        guard FileManager.default.fileExists(atPath: tomlPath) else {
            throw Refusal("\(runDir) is not a run directory (no run.toml)")
        }
        var cfg = try userFacing { try Config.load(path: tomlPath) }
        let chosen = try userFacing { try CheckpointStore.choose(absDir, from: from, warn: { print("pstrain: warning: \($0)") }) }
        let m = chosen.manifest, name = (chosen.path as NSString).lastPathComponent
        let saved = try? m.configuration(folder: chosen.path)   // nil: the ranks say why
        // An edit of run.toml since the checkpoint is used, and said (it used to be silently of no effect on a finished run).
        if let saved {
            let edits = cfg.differences(from: saved).filter { !["run.workers", "run.servers"].contains($0.key) }
            if !edits.isEmpty {
                print("pstrain: run.toml differs from the configuration \(name) was written with: "
                      + edits.map { "\($0.key) \($0.theirs) -> \($0.mine)" }.joined(separator: ", ") + "; the run continues with run.toml's")
            }
        }
        let changes = (epochs.map { ["train.epochs=\($0)"] } ?? []) + overrides
        if !changes.isEmpty {
            try userFacing { try cfg.apply(overrides: changes) }
            cfg.resolveDataPaths(against: FileManager.default.currentDirectoryPath)
        }
        if let saved, saved.train.stepBatch != cfg.train.stepBatch {
            throw Refusal("\(name) was written by a run of global batch \(saved.train.stepBatch) (train.batch_size x train.accumulate), "
                          + "this configuration has \(cfg.train.stepBatch): the data would be cut into other steps; "
                          + "resume with the run's own train.batch_size and train.accumulate (or start a new run from its weights: launch --init-from)")
        }
        let total = saved.flatMap { Self.totalSteps(cfg, saved: $0, m) }
        if let total, m.step >= total {
            print("pstrain: \(name) is the end of the run (step \(m.step) of \(total)); nothing to do. "
                  + "To train on, give it more epochs: pstrain resume \(runDir) --epochs \(cfg.train.epochs + 1)"
                  + (cfg.train.maxSteps > 0 ? " --set train.max_steps=0" : ""))
            return
        }
        if let total, total != m.totalSteps { print(Self.lengthNote(cfg, m, total: total)) }
        let W = workers ?? m.workers, S = servers ?? m.servers
        var plan = try job.plan(workers: W, servers: S, config: cfg, configPath: tomlPath, runDir: absDir)   // checks the path before writing
        try job.requireMpirun()
        // The changed configuration is checked against the data before run.toml takes it: a refusal changes nothing.
        try userFacing {
            try DataSplit.prepare(cfg.data, runDir: absDir)
            try Preflight.check(cfg, runDir: absDir, clickLogs: true)
        }
        try userFacing {
            try cfg.apply(override: "run.workers=\(W)")
            try cfg.apply(override: "run.servers=\(S)")
            let what = changes.isEmpty ? "world" : "world and \(changes.joined(separator: ", "))"
            try Durable.replace(tomlPath, with: "# pstrain run configuration, resolved; \(what) updated by pstrain resume\n" + cfg.canonicalTOML)
        }
        plan.resume = chosen.path
        print("pstrain: resuming \(runDir) from \((chosen.path as NSString).lastPathComponent) (step \(m.step) of \(total ?? m.totalSteps)) with \(W) worker(s) and \(S) server(s)"
              + (W != m.workers || S != m.servers ? " (the checkpoint was written by \(m.workers) and \(m.servers))" : ""))
        try Job.run(plan: plan, dir: absDir, shown: runDir, attempt: Job.nextAttempt(absDir), maxRestarts: job.maxRestarts, kind: ResumeRecord.self)
    }

    /// The line that says a resume changes the run's length, and what that
    /// does to the learning rate when the schedule follows the length.
    static func lengthNote(_ cfg: Config, _ m: Manifest, total: Int) -> String {
        var note = "pstrain: the run's length changes from \(m.totalSteps) to \(total) steps"
        let old = LRSchedule(cfg.train).rate(step: m.step, total: m.totalSteps), new = LRSchedule(cfg.train).rate(step: m.step, total: total)
        if abs(old - new) > 1e-12 * max(abs(old), 1e-30) {
            note += String(format: "; train.lr_schedule = \"%@\" follows the new length, so the learning rate at step %d goes from %.6g to %.6g", cfg.train.lrSchedule.rawValue, m.step, old, new)
                + " (to fine-tune from the weights on a schedule of its own: pstrain ckpt export, then pstrain launch --init-from)"
        }
        return note
    }

    /// The run's steps in all under `cfg`, when the checkpoint (written under
    /// `saved`) tells the steps per epoch (the same global batch); nil otherwise (the ranks check).
    static func totalSteps(_ cfg: Config, saved: Config, _ m: Manifest) -> Int? {
        guard saved.train.stepBatch == cfg.train.stepBatch else { return nil }
        let (total, overflow) = m.stepsPerEpoch.multipliedReportingOverflow(by: cfg.train.epochs)
        if overflow { return nil }
        return cfg.train.maxSteps > 0 ? min(total, cfg.train.maxSteps) : total
    }
}
