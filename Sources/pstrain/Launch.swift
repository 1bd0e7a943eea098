import ArgumentParser
import Foundation
import PSNumerics
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

    @Option(name: .long, parsing: .unconditional, help: "Worker ranks (each trains on a slice of every global batch).")
    var workers: Int = 2

    @Option(name: .long, parsing: .unconditional, help: "Server ranks (each owns a shard of the parameters).")
    var servers: Int = 1

    @Option(name: .long, help: "TOML configuration file (default: the built-in Fashion-MNIST MLP).")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a configuration key, e.g. --set train.lr=0.1 (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    @Option(name: .long, parsing: .unconditional, help: "Shortcut for --set train.epochs=N.")
    var epochs: Int?

    @Option(name: .long, help: "Shortcut for --set train.precision=P: fp32, fp16 (with dynamic loss scaling) or bf16.")
    var precision: String?

    @Option(name: .long, help: ArgumentHelp("Start from these weights (a model written by `pstrain ckpt export`) instead of the random initialisation: fine-tuning. Shortcut for --set train.init_from=FILE.", valueName: "file"))
    var initFrom: String?

    @Option(name: .long, help: "Run directory (default: runs/<date>-<time>, with -2, -3, ... when that is taken). Must not hold a run already.")
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
            if let f = initFrom { try cfg.set("train.init_from", .string(f)) }
            try cfg.apply(overrides: overrides)
            if isatty(1) != 0 && !overrides.contains(where: { $0.hasPrefix("run.progress_seconds") }) {
                try cfg.apply(override: "run.progress_seconds=0.5")   // a live bar on a terminal
            }
            try cfg.apply(override: "run.workers=\(workers)")
            try cfg.apply(override: "run.servers=\(servers)")
            cfg.resolveDataPaths(against: FileManager.default.currentDirectoryPath)
            return cfg
        }
        let dir = runDir ?? Self.freshRunDir()
        let absDir = dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir
        let plan = try job.plan(workers: workers, servers: servers, config: cfg, configPath: absDir + "/run.toml", runDir: absDir)
        if dryRun {
            // CSV caches go to a scratch folder, removed afterwards; click logs are checked by their format only.
            let scratch = NSTemporaryDirectory() + "pstrain-dry-run-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            try userFacing { try Preflight.check(cfg, runDir: scratch, clickLogs: false) }
            print("pstrain: dry run; would write \(dir)/run.toml:\n")
            print(cfg.canonicalTOML)
            print("pstrain: checked: the model builds and fits the data set's shape, classes and fields")
            print("pstrain: would run: \(plan.commandLine)")
            return
        }
        try job.requireMpirun()
        try Self.claim(absDir, shown: dir)
        let fm = FileManager.default
        let existed = fm.fileExists(atPath: absDir)
        // The outermost folder this launch creates (runs/ on a first launch): a refusal removes it.
        var made = absDir
        while !existed, case let up = (made as NSString).deletingLastPathComponent, up != made, !up.isEmpty, !fm.fileExists(atPath: up) { made = up }
        do {
            try fm.createDirectory(atPath: absDir + "/logs", withIntermediateDirectories: true)
            let header = "# pstrain run configuration, resolved (defaults, \(config ?? "no file"), overrides)\n"
            try (header + cfg.canonicalTOML).write(toFile: absDir + "/run.toml", atomically: true, encoding: .utf8)
        } catch {
            Self.release(absDir, existed: existed, made: made)
            throw Refusal("cannot write the run directory \(dir): \(error.localizedDescription)")
        }
        do {
            try userFacing {
                try DataSplit.prepare(cfg.data, runDir: absDir)
                try Preflight.check(cfg, runDir: absDir, clickLogs: true)
            }
        } catch {
            // Refused before mpirun started: the directory is left as it was, for the retry.
            Self.release(absDir, existed: existed, made: made)
            throw error
        }
        print("pstrain: run directory \(dir)")
        try Job.run(plan: plan, dir: absDir, shown: dir, attempt: 1, maxRestarts: job.maxRestarts, kind: LaunchRecord.self)
    }

    /// Refuses a run directory that holds a run worth keeping: one that
    /// finished, wrote a checkpoint, or may still be running. One whose every
    /// attempt failed before its first checkpoint (or that never started) is
    /// emptied for the new launch, with a line that says so.
    static func claim(_ absDir: String, shown: String) throws {
        let fm = FileManager.default
        guard let items = try? fm.contentsOfDirectory(atPath: absDir), !items.isEmpty else { return }
        let events = LogFile(path: absDir + "/events.jsonl")
        let attempts = events?.entries.filter { attemptEvents.contains($0.event ?? "") }.count ?? 0
        let exits = events?.records(ExitRecord.self) ?? []
        let checkpoints = CheckpointStore.list(absDir)
        let known = Set(["run.toml", "events.jsonl", "logs", "data-cache", "checkpoints", "STOP", ".waits"])
        guard items.allSatisfy({ known.contains($0) || $0.hasPrefix(".died-at-") }), checkpoints.isEmpty, attempts == exits.count,
              exits.allSatisfy({ $0.code != 0 || $0.signal != 0 }), items.contains("run.toml") || items.contains("events.jsonl") else {
            let what = !checkpoints.isEmpty ? " with \(checkpoints.count) checkpoint(s); continue it with `pstrain resume \(shown)`, or"
                : attempts > exits.count ? " that may still be running;" : ";"
            throw Refusal("run directory \(shown) already holds a run\(what) choose another --run-dir")
        }
        print("pstrain: replacing the run in \(shown): " + (exits.isEmpty ? "it never started" : "its \(exits.count) attempt(s) failed")
              + " and it wrote no checkpoint")
        for item in items { try? fm.removeItem(atPath: absDir + "/" + item) }
    }

    /// Leaves a run directory refused before mpirun as it was: removed with
    /// the folders this launch made for it (`made`, the outermost), emptied
    /// if it was an empty folder.
    static func release(_ absDir: String, existed: Bool, made: String) {
        let fm = FileManager.default
        if !existed { try? fm.removeItem(atPath: made); return }
        for item in (try? fm.contentsOfDirectory(atPath: absDir)) ?? [] { try? fm.removeItem(atPath: absDir + "/" + item) }
    }

    /// runs/<date>-<time>, or with -2, -3, ... when a launch in the same
    /// second took that name (two quick launches were refused as one run).
    static func freshRunDir() -> String {
        let base = "runs/" + stamp()
        var dir = base, n = 2
        while FileManager.default.fileExists(atPath: dir) { dir = base + "-\(n)"; n += 1 }
        return dir
    }

    static func stamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
