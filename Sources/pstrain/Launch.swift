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

struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a training job under mpirun: servers first, then workers.",
        discussion: """
        Writes the run directory (run.toml, events.jsonl, logs/), prints the exact \
        mpirun command, forwards the job's progress, and exits with the job's status.
        Examples:
          pstrain launch --workers 2 --servers 1
          pstrain launch --config examples/fashion-mlp.toml --set train.epochs=3 --run-dir runs/try
        """)

    @Option(name: .long, help: "Worker ranks (each trains on a slice of every global batch).")
    var workers: Int = 2

    @Option(name: .long, help: "Server ranks (each owns a shard of the parameters).")
    var servers: Int = 1

    @Option(name: .long, help: "TOML configuration file (default: the built-in Fashion-MNIST MLP).")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a configuration key, e.g. --set train.lr=0.1 (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    @Option(name: .long, help: "Shortcut for --set train.epochs=N.")
    var epochs: Int?

    @Option(name: .long, help: "Shortcut for --set train.precision=P: fp32, fp16 (with dynamic loss scaling) or bf16.")
    var precision: String?

    @Option(name: .long, help: "Run directory (default: runs/<date>-<time>). Must not hold a run already.")
    var runDir: String?



    @OptionGroup var job: JobOptions

    @Flag(name: .long, help: "Print the mpirun command and the resolved configuration; start nothing, write nothing.")
    var dryRun = false

    func validate() throws {
        if workers < 1 { throw ValidationError("--workers must be at least 1 (got \(workers)): a job needs a worker to compute gradients") }
        if servers < 1 { throw ValidationError("--servers must be at least 1 (got \(servers)): a job needs a server to hold the parameters") }
        if let e = epochs, e < 1 { throw ValidationError("--epochs must be at least 1 (got \(e))") }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let cfg: Config = try userFacing {
            var cfg = try config.map { try Config.load(path: $0) } ?? Config()
            if let e = epochs { try cfg.apply(override: "train.epochs=\(e)") }
            if let p = precision { try cfg.apply(override: "train.precision=\"\(p)\"") }
            try cfg.apply(overrides: overrides)
            if isatty(1) != 0 && !overrides.contains(where: { $0.hasPrefix("run.progress_seconds") }) {
                try cfg.apply(override: "run.progress_seconds=0.5")   // a live bar on a terminal
            }
            try cfg.apply(override: "run.workers=\(workers)")
            try cfg.apply(override: "run.servers=\(servers)")
            cfg.resolveDataPaths(against: FileManager.default.currentDirectoryPath)
            return cfg
        }
        let dir = runDir ?? "runs/" + Self.stamp()
        let absDir = dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir
        let plan = try job.plan(workers: workers, servers: servers, config: cfg, configPath: absDir + "/run.toml", runDir: absDir)
        if dryRun {
            print("pstrain: dry run; would write \(dir)/run.toml:\n")
            print(cfg.canonicalTOML)
            print("pstrain: would run: \(plan.commandLine)")
            return
        }
        try job.requireMpirun()
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: absDir), !items.isEmpty {
            throw ValidationError("run directory \(dir) already holds a run; choose another --run-dir")
        }
        do {
            try fm.createDirectory(atPath: absDir + "/logs", withIntermediateDirectories: true)
            let header = "# pstrain run configuration, resolved (defaults, \(config ?? "no file"), overrides)\n"
            try (header + cfg.canonicalTOML).write(toFile: absDir + "/run.toml", atomically: true, encoding: .utf8)
        } catch {
            throw ValidationError("cannot write the run directory \(dir): \(error.localizedDescription)")
        }
        print("pstrain: run directory \(dir)")
        try userFacing { try DataSplit.prepare(cfg.data, runDir: absDir) }
        try Job.run(plan: plan, dir: absDir, shown: dir, attempt: 1, maxRestarts: job.maxRestarts, kind: LaunchRecord.self)
    }

    static func stamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
