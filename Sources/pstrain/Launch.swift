import ArgumentParser
import Foundation
import PSCore

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

    @Option(name: .long, help: "Open MPI hostfile, to place ranks on several machines.")
    var hostfile: String?

    @Option(name: .long, help: "The mpirun program to use.")
    var mpirun: String = "mpirun"

    @Flag(name: .long, help: "Print the mpirun command and the resolved configuration; start nothing, write nothing.")
    var dryRun = false

    func validate() throws {
        if workers < 1 { throw ValidationError("--workers must be at least 1 (got \(workers)): a job needs a worker to compute gradients") }
        if servers < 1 { throw ValidationError("--servers must be at least 1 (got \(servers)): a job needs a server to hold the parameters") }
        if let e = epochs, e < 1 { throw ValidationError("--epochs must be at least 1 (got \(e))") }
        if let h = hostfile, !FileManager.default.isReadableFile(atPath: h) {
            throw ValidationError("cannot read the hostfile \(h)")
        }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        var cfg: Config
        do {
            cfg = try config.map { try Config.load(path: $0) } ?? Config()
            if let e = epochs { try cfg.apply(override: "train.epochs=\(e)") }
            if let p = precision { try cfg.apply(override: "train.precision=\"\(p)\"") }
            for o in overrides { try cfg.apply(override: o) }
            try cfg.apply(override: "run.workers=\(workers)")
            try cfg.apply(override: "run.servers=\(servers)")
        } catch let e as PSError {
            throw ValidationError(e.message)
        }
        let binDir = try rankBinDir()
        let dir = runDir ?? "runs/" + Self.stamp()
        let absDir = dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir
        var plan = MpirunPlan(workers: workers, servers: servers, binDir: binDir, configPath: absDir + "/run.toml",
                              runDir: absDir, hostfile: hostfile, isRoot: geteuid() == 0,
                              cores: ProcessInfo.processInfo.activeProcessorCount, blasThreads: cfg.blasThreads)
        plan.mpirun = mpirun
        if let core = BLASInfo.recommendedCoreType() {
            plan.environment.append(("OPENBLAS_CORETYPE", core))
        }
        if dryRun {
            print("pstrain: dry run; would write \(dir)/run.toml:\n")
            print(cfg.canonicalTOML)
            print("pstrain: would run: \(plan.commandLine)")
            return
        }
        guard Self.which(mpirun) != nil else {
            throw ValidationError("'\(mpirun)' not found on PATH; install Open MPI (scripts/bootstrap installs openmpi-bin)")
        }
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
        let events = try RunLog(path: absDir + "/events.jsonl", fixed: [("run", .string((absDir as NSString).lastPathComponent))])
        print("pstrain: run directory \(dir)")
        print("pstrain: running: \(plan.commandLine)")
        events.write("launch", [("attempt", .int(1)), ("workers", .int(workers)), ("servers", .int(servers)),
                                ("command", .array(plan.arguments.map { .string($0) }))])
        events.flush()

        let started = Date()
        let status = try Self.runMpirun(plan: plan, logPath: absDir + "/logs/mpirun.log")
        let seconds = Date().timeIntervalSince(started)
        events.write("exit", [("attempt", .int(1)), ("code", .int(Int(status.code))), ("signal", .int(Int(status.signal))),
                              ("seconds", .double(seconds))])
        events.flush()
        if status.code != 0 || status.signal != 0 {
            let out = (try? String(contentsOfFile: absDir + "/logs/mpirun.log", encoding: .utf8)) ?? ""
            let why = explainMpirunFailure(out, plan: plan)
            var msg = "pstrain: error: the job failed (mpirun exited with status \(status.code)\(status.signal != 0 ? ", signal \(status.signal)" : ""))."
            if let why { msg += "\n  \(why)" }
            msg += Self.anyShown ? "\n  The ranks' messages are above; mpirun's full output is in \(dir)/logs/mpirun.log."
                                 : "\n  mpirun's full output is in \(dir)/logs/mpirun.log."
            FileHandle.standardError.write((msg + "\n").data(using: .utf8)!)
            throw ExitCode(status.code != 0 ? status.code : 1)
        }
        if let summary = Self.finalSummary(runDir: absDir) {
            print("pstrain: \(summary)")
        }
        print("pstrain: run directory \(dir)")
    }

    static func stamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }

    static func which(_ cmd: String) -> String? {
        if cmd.contains("/") { return FileManager.default.isExecutableFile(atPath: cmd) ? cmd : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/\(cmd)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// The folder holding pstrain-server and pstrain-worker: next to this executable.
    func rankBinDir() throws -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let dir = (exe as NSString).deletingLastPathComponent
        for name in ["pstrain-server", "pstrain-worker"] where !FileManager.default.isExecutableFile(atPath: dir + "/" + name) {
            throw ValidationError("cannot find \(name) next to pstrain (in \(dir)); build all products with `swift build -c release`")
        }
        return dir
    }

    /// Runs mpirun: its standard output passes through (progress lines); its
    /// standard error goes to `logPath`, and the ranks' own lines (those that
    /// start with "pstrain") are shown too.
    static func runMpirun(plan: MpirunPlan, logPath: String) throws -> (code: Int32, signal: Int32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: which(plan.mpirun)!)
        p.arguments = Array(plan.arguments.dropFirst())
        let errPipe = Pipe()
        p.standardError = errPipe
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        do { try p.run() } catch {
            throw ValidationError("cannot start \(plan.mpirun): \(error.localizedDescription)")
        }
        let reader = errPipe.fileHandleForReading
        var pending = Data()
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            log.write(chunk)
            pending.append(chunk)
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<nl]
                pending.removeSubrange(pending.startIndex...nl)
                if line.starts(with: Data("pstrain".utf8)) || line.starts(with: Data("  ".utf8)) && lastShown {
                    FileHandle.standardError.write(line + Data([0x0A]))
                    lastShown = true
                    anyShown = true
                } else {
                    lastShown = false
                }
            }
        }
        p.waitUntilExit()
        try? log.close()
        if p.terminationReason == .uncaughtSignal { return (0, p.terminationStatus) }
        return (p.terminationStatus, 0)
    }
    nonisolated(unsafe) static var lastShown = false
    nonisolated(unsafe) static var anyShown = false

    /// "final test accuracy 88.41% after 10 epochs (4680 steps) in 62.3 s", from server 0's log.
    static func finalSummary(runDir: String) -> String? {
        guard let text = try? String(contentsOfFile: runDir + "/logs/server-0.jsonl", encoding: .utf8) else { return nil }
        var acc: Double?, epoch = 0, steps = 0, wall = 0.0
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            switch obj["event"] as? String {
            case "eval":
                acc = obj["test_accuracy"] as? Double
                epoch = obj["epoch"] as? Int ?? epoch
            case "done":
                steps = obj["steps"] as? Int ?? 0
                wall = obj["wall_s"] as? Double ?? 0
            default: break
            }
        }
        guard let acc else { return nil }
        return String(format: "final test accuracy %.2f%% after %d epoch(s), %d steps, %.1f s of training", acc * 100, epoch, steps, wall)
    }
}
