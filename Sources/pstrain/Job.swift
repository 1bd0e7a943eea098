import ArgumentParser
import Foundation
import PSCore

/// Options every command that starts a job takes.
struct JobOptions: ParsableArguments {
    @Option(name: .long, help: "When the job dies, restart it from the newest valid checkpoint up to N times.")
    var maxRestarts: Int = 0

    @Option(name: .long, help: "The mpirun program to use.")
    var mpirun: String = "mpirun"

    @Option(name: .long, help: "Open MPI hostfile, to place ranks on several machines (adds the TCP transport).")
    var hostfile: String?

    @Option(name: .long, help: "Open MPI placement: slot (fill each host in turn, servers first; the default) or node (one rank per host in turn).")
    var mapBy: String?

    func validate() throws {
        if maxRestarts < 0 { throw ValidationError("--max-restarts must be 0 or more") }
        if let h = hostfile, !FileManager.default.isReadableFile(atPath: h) {
            throw ValidationError("cannot read the hostfile \(h)")
        }
    }

    /// The mpirun command line of a job with these options.
    /// Refuses a run directory the ranks could not carry whole (before mpirun starts).
    func plan(workers: Int, servers: Int, config: Config, configPath: String, runDir: String) throws -> MpirunPlan {
        do { try RankHello.checkRunDir(runDir) } catch let e as PSError { throw ValidationError(e.message) }
        var plan = MpirunPlan(workers: workers, servers: servers, binDir: try Job.rankBinDir(), configPath: configPath,
                              runDir: runDir, hostfile: hostfile, isRoot: geteuid() == 0,
                              cores: ProcessInfo.processInfo.activeProcessorCount, blasThreads: config.blasThreads)
        plan.mpirun = mpirun
        plan.mapBy = mapBy
        if let core = BLASInfo.recommendedCoreType() { plan.environment.append(("OPENBLAS_CORETYPE", core)) }
        return plan
    }

    /// Fails with a plain message when mpirun is not there.
    func requireMpirun() throws {
        guard Job.which(mpirun) != nil else {
            throw ValidationError("'\(mpirun)' not found on PATH; install Open MPI (scripts/bootstrap installs openmpi-bin)")
        }
    }
}

/// Running a job's attempts: mpirun, the events, the restarts, the report.
enum Job {
    /// Runs `plan` as attempt `attempt` of the run in `dir` (shown as `shown`),
    /// restarting from the newest valid checkpoint up to `maxRestarts` times.
    static func run(plan first: MpirunPlan, dir: String, shown: String, attempt firstAttempt: Int, maxRestarts: Int,
                    kind: String) throws {
        let events = try RunLog(path: dir + "/events.jsonl", fixed: [("run", .string((dir as NSString).lastPathComponent))])
        Preemption.install(runDir: dir)
        var plan = first
        var attempt = firstAttempt
        var restarts = 0
        while true {
            print("pstrain: running: \(plan.commandLine)")
            var fields: [(String, JSONValue)] = [("attempt", .int(attempt)), ("workers", .int(plan.workers)), ("servers", .int(plan.servers)),
                                                 ("command", .array(plan.arguments.map { .string($0) }))]
            if let r = plan.resume { fields.append(("from", .string(r))) }
            events.write(attempt == firstAttempt ? kind : "restart", fields)
            events.flush()
            let started = Date()
            unlink(dir + "/STOP")   // a request of an earlier attempt must not stop this one
            let status = try runMpirun(plan: plan, logPath: dir + "/logs/mpirun-\(attempt).log")
            events.write("exit", [("attempt", .int(attempt)), ("code", .int(Int(status.code))), ("signal", .int(Int(status.signal))),
                                  ("seconds", .double(Date().timeIntervalSince(started)))])
            events.flush()
            if status.code == 0 && status.signal == 0 {
                if let stopped = Self.stoppedStep(dir) {
                    events.write("stopped", [("attempt", .int(attempt)), ("step", .int(stopped))])
                    events.flush()
                    unlink(dir + "/STOP")
                    print("pstrain: stopped after step \(stopped) as asked; checkpoint step-\(stopped) holds the state. Continue with: pstrain resume \(shown)")
                    return
                }
                break
            }
            if Preemption.requested {
                FileHandle.standardError.write("pstrain: the job was stopped before it could checkpoint\n".data(using: .utf8)!)
                throw ExitCode(status.code != 0 ? status.code : 1)
            }
            let out = (try? String(contentsOfFile: dir + "/logs/mpirun-\(attempt).log", encoding: .utf8)) ?? ""
            var msg = "pstrain: error: attempt \(attempt) failed (mpirun exited with status \(status.code)\(status.signal != 0 ? ", signal \(status.signal)" : ""))."
            if let why = explainMpirunFailure(out, plan: plan) { msg += "\n  \(why)" }
            msg += anyShown ? "\n  The ranks' messages are above; mpirun's full output is in \(shown)/logs/mpirun-\(attempt).log."
                            : "\n  mpirun's full output is in \(shown)/logs/mpirun-\(attempt).log."
            FileHandle.standardError.write((msg + "\n").data(using: .utf8)!)
            guard restarts < maxRestarts else {
                if maxRestarts > 0 { FileHandle.standardError.write("pstrain: giving up after \(restarts) restart(s) (--max-restarts \(maxRestarts))\n".data(using: .utf8)!) }
                throw ExitCode(status.code != 0 ? status.code : 1)
            }
            guard let chosen = try? CheckpointStore.choose(dir, from: nil, warn: { print("pstrain: warning: \($0)") }) else {
                FileHandle.standardError.write("pstrain: no complete checkpoint to restart from; the run cannot continue by itself\n".data(using: .utf8)!)
                throw ExitCode(status.code != 0 ? status.code : 1)
            }
            restarts += 1
            attempt += 1
            plan.resume = chosen.path
            print("pstrain: restart \(restarts) of \(maxRestarts) from \((chosen.path as NSString).lastPathComponent)")
        }
        if let summary = finalSummary(runDir: dir) { print("pstrain: \(summary)") }
        if restarts > 0 { print("pstrain: the run needed \(restarts) restart(s); events.jsonl has them") }
        print("pstrain: run directory \(shown)")
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
    static func rankBinDir() throws -> String {
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
        guard let exe = which(plan.mpirun) else { throw ValidationError("'\(plan.mpirun)' not found on PATH") }
        var fds: [Int32] = [0, 0], outFds: [Int32] = [0, 0]
        guard pipe(&fds) == 0, pipe(&outFds) == 0 else { throw ValidationError("cannot create a pipe: \(String(cString: strerror(errno)))") }
        // mpirun runs in its own process group: a Ctrl-C at the terminal reaches
        // only the launcher, which turns it into "checkpoint and stop".
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        posix_spawn_file_actions_adddup2(&fa, fds[1], 2)
        posix_spawn_file_actions_adddup2(&fa, outFds[1], 1)
        for fd in fds + outFds { posix_spawn_file_actions_addclose(&fa, fd) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        let argv = plan.arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &fa, &attr, argv, environ)
        posix_spawn_file_actions_destroy(&fa)
        posix_spawnattr_destroy(&attr)
        close(fds[1]); close(outFds[1])
        guard rc == 0 else { close(fds[0]); close(outFds[0]); throw ValidationError("cannot start \(plan.mpirun): \(String(cString: strerror(rc)))") }
        // The job's standard output (server 0's progress) on its own thread.
        let screen = Screen(tty: isatty(1) != 0)
        let outReader = Thread {
            let h = FileHandle(fileDescriptor: outFds[0], closeOnDealloc: true)
            var pending = Data()
            while true {
                let chunk = h.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 0x0A) {
                    screen.out(String(decoding: pending[pending.startIndex..<nl], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...nl)
                }
            }
            screen.finish()
        }
        outReader.start()
        Preemption.child = pid
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        var pending = Data()
        var lastShown = false
        anyShown = false
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            log.write(chunk)
            pending.append(chunk)
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<nl]
                pending.removeSubrange(pending.startIndex...nl)
                if line.starts(with: Data("pstrain".utf8)) || line.starts(with: Data("  ".utf8)) && lastShown {
                    screen.err(String(decoding: line, as: UTF8.self))
                    lastShown = true
                    anyShown = true
                } else {
                    lastShown = false
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        while !outReader.isFinished { usleep(1000) }
        Preemption.child = 0
        try? log.close()
        if status & 0x7f != 0 { return (0, status & 0x7f) }
        return ((status >> 8) & 0xff, 0)
    }

    /// The step at which the last attempt stopped on request, from server 0's log.
    static func stoppedStep(_ dir: String) -> Int? {
        var stopped: Int?
        for r in readJSONLines(dir + "/logs/server-0.jsonl")?.records ?? [] {
            switch r["event"] as? String {
            case "stopped": stopped = r["step"] as? Int
            case "hello": stopped = nil   // a later attempt started
            default: break
            }
        }
        return stopped
    }
    nonisolated(unsafe) static var anyShown = false

    /// "final test accuracy 88.41% after 10 epochs (4680 steps) in 62.3 s", from server 0's log.
    static func finalSummary(runDir: String) -> String? {
        var acc: Double?, epoch = 0, steps = 0, wall = 0.0
        for r in readJSONLines(runDir + "/logs/server-0.jsonl")?.records ?? [] {
            switch r["event"] as? String {
            case "eval":
                acc = r["test_accuracy"] as? Double
                epoch = r["epoch"] as? Int ?? epoch
            case "done":
                steps = r["steps"] as? Int ?? 0
                wall += r["wall_s"] as? Double ?? 0
            default: break
            }
        }
        guard let acc else { return nil }
        return String(format: "final test accuracy %.2f%% after %d epoch(s), %d steps, %.1f s of training", acc * 100, epoch, steps, wall)
    }

    /// The next attempt number of a run: one more than the attempts events.jsonl records.
    static func nextAttempt(_ dir: String) -> Int {
        (readJSONLines(dir + "/events.jsonl")?.records ?? []).filter { $0["event"] as? String == "exit" }.count + 1
    }
}

/// SIGINT or SIGTERM to the launcher (Ctrl-C, a scheduler's preemption):
/// the first asks the ranks to finish the step, checkpoint and exit 0 (a
/// STOP file server 0 looks for every step); a second one stops mpirun now.
enum Preemption {
    nonisolated(unsafe) static var requested = false
    nonisolated(unsafe) static var child: pid_t = 0
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    static func install(runDir: String) {
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler {
                if !requested {
                    requested = true
                    _ = FileManager.default.createFile(atPath: runDir + "/STOP", contents: Data("stop\n".utf8))
                    FileHandle.standardError.write("pstrain: stopping: the ranks finish this step, write a checkpoint and exit (signal again to abort now)\n".data(using: .utf8)!)
                } else if child > 0 {
                    FileHandle.standardError.write("pstrain: aborting now\n".data(using: .utf8)!)
                    kill(-child, SIGTERM)
                }
            }
            src.resume()
            sources.append(src)
        }
    }
}

/// The launcher's terminal. On a terminal, server 0's periodic progress
/// lines are redrawn in place as a bar with epoch, step, loss, samples per
/// second and ETA, and every other line (epoch results, checkpoints,
/// errors) is printed above it; otherwise lines pass through as they come.
final class Screen: @unchecked Sendable {
    let tty: Bool
    let lock = NSLock()
    var live = false

    init(tty: Bool) { self.tty = tty }

    /// "[######------] " for "step X/Y" in a progress line.
    static func bar(_ line: String) -> String {
        guard let r = line.range(of: #"step (\d+)/(\d+)"#, options: .regularExpression) else { return "" }
        let nums = line[r].dropFirst(5).split(separator: "/").compactMap { Double($0) }
        guard nums.count == 2, nums[1] > 0 else { return "" }
        let width = 24, fill = Int((nums[0] / nums[1] * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: fill) + String(repeating: "-", count: width - fill) + "] "
    }

    func out(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        let periodic = line.hasPrefix("epoch ") && !line.contains("test accuracy")
        if tty && periodic {
            FileHandle.standardOutput.write(("\r\u{1B}[K" + Screen.bar(line) + line).data(using: .utf8)!)
            live = true
            return
        }
        if live { FileHandle.standardOutput.write("\r\u{1B}[K".data(using: .utf8)!); live = false }
        FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
    }

    func err(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        if live { FileHandle.standardOutput.write("\r\u{1B}[K".data(using: .utf8)!); live = false }
        FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if live { FileHandle.standardOutput.write("\n".data(using: .utf8)!); live = false }
    }
}
