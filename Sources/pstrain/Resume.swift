import ArgumentParser
import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSData
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

    @OptionGroup var job: JobOptions


    func validate() throws {
        if let w = workers, w < 1 { throw ValidationError("--workers must be at least 1 (got \(w))") }
        if let s = servers, s < 1 { throw ValidationError("--servers must be at least 1 (got \(s))") }
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
        let m = chosen.manifest
        if m.step >= m.totalSteps {
            print("pstrain: \((chosen.path as NSString).lastPathComponent) is the end of the run (step \(m.step) of \(m.totalSteps)); nothing to do")
            return
        }
        let W = workers ?? m.workers, S = servers ?? m.servers
        var plan = try job.plan(workers: W, servers: S, config: cfg, configPath: tomlPath, runDir: absDir)   // checks the path before writing
        try userFacing {
            try cfg.apply(override: "run.workers=\(W)")
            try cfg.apply(override: "run.servers=\(S)")
            try Durable.replace(tomlPath, with: "# pstrain run configuration, resolved; world updated by pstrain resume\n" + cfg.canonicalTOML)
        }
        try job.requireMpirun()
        try userFacing {
            try DataSplit.prepare(cfg.data, runDir: absDir)
            try Preflight.check(cfg, runDir: absDir, clickLogs: true)
        }
        plan.resume = chosen.path
        print("pstrain: resuming \(runDir) from \((chosen.path as NSString).lastPathComponent) (step \(m.step) of \(m.totalSteps)) with \(W) worker(s) and \(S) server(s)"
              + (W != m.workers || S != m.servers ? " (the checkpoint was written by \(m.workers) and \(m.servers))" : ""))
        try Job.run(plan: plan, dir: absDir, shown: runDir, attempt: Job.nextAttempt(absDir), maxRestarts: job.maxRestarts, kind: ResumeRecord.self)
    }
}
