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
        try userFacing { try RankHello.checkRunDir(runDir) }
        var plan = MpirunPlan(workers: workers, servers: servers, binDir: try Job.rankBinDir(), configPath: configPath,
                              runDir: runDir, hostfile: hostfile, isRoot: geteuid() == 0,
                              cores: ProcessInfo.processInfo.activeProcessorCount, blasThreads: config.run.blasThreads)
        plan.mpirun = mpirun
        plan.mapBy = mapBy
        if let core = BLASInfo.recommendedCoreType() { plan.environment.append(("OPENBLAS_CORETYPE", core)) }
        return plan
    }

    /// Fails with a plain message when mpirun is not there.
    func requireMpirun() throws {
        guard Job.which(mpirun) != nil else {
            throw Refusal("'\(mpirun)' not found on PATH; install Open MPI (scripts/bootstrap installs openmpi-bin)")
        }
    }
}

/// Running a job's attempts: mpirun, the events, the restarts, the report.
enum Job {
    /// Runs `plan` as attempt `attempt` of the run in `dir` (shown as `shown`),
    /// restarting from the newest valid checkpoint up to `maxRestarts` times.
    /// `kind` records the first attempt (`LaunchRecord`, `ResumeRecord`); later ones are `RestartRecord`s.
    static func run(plan first: MpirunPlan, dir: String, shown: String, attempt firstAttempt: Int, maxRestarts: Int,
                    kind: any AttemptRecord.Type) throws {
        let events = try RunLog(path: dir + "/events.jsonl", fixed: LauncherStamp(run: (dir as NSString).lastPathComponent))
        events.onFailure = { Console.err("pstrain: warning: \($0)\n") }
        Preemption.install(runDir: dir)
        var plan = first
        var attempt = firstAttempt
        // Server 0's attempts before this launch: their training time is not this launch's.
        let earlier = LogFile(path: dir + "/logs/server-0.jsonl")?.count(HelloRecord.event) ?? 0
        var restarts = 0
        while true {
            print("pstrain: running: \(plan.commandLine)")
            let fields = AttemptFields(attempt: attempt, workers: plan.workers, servers: plan.servers, command: plan.arguments, from: plan.resume)
            let begins: any AttemptRecord = attempt == firstAttempt ? kind.init(fields) : RestartRecord(fields)
            events.write(begins)
            events.flush()
            let started = Date()
            unlink(dir + "/STOP")   // a request of an earlier attempt must not stop this one
            let status = try runMpirun(plan: plan, logPath: dir + "/logs/mpirun-\(attempt).log", runDir: dir, silence: watchdogSeconds(dir))
            events.write(ExitRecord(attempt: attempt, code: Int(status.code), signal: Int(status.signal),
                                    seconds: Date().timeIntervalSince(started)))
            events.flush()
            if status.code == 0 && status.signal == 0 {
                if let stopped = Self.stoppedStep(dir) {
                    events.write(LauncherStoppedRecord(attempt: attempt, step: stopped))
                    events.flush()
                    unlink(dir + "/STOP")
                    print("pstrain: stopped after step \(stopped) as asked; checkpoint step-\(stopped) holds the state. Continue with: pstrain resume \(shown)")
                    return
                }
                break
            }
            if Preemption.requested {
                Console.err("pstrain: " + Self.abortedState(dir, shown: shown) + "\n")
                throw ExitCode(status.code != 0 ? status.code : 1)
            }
            let out = (try? String(contentsOfFile: dir + "/logs/mpirun-\(attempt).log", encoding: .utf8)) ?? ""
            var msg = "pstrain: error: attempt \(attempt) failed (mpirun exited with status \(status.code)\(status.signal != 0 ? ", signal \(status.signal)" : ""))."
            if let why = explainMpirunFailure(out, plan: plan) { msg += "\n  \(why)" }
            msg += anyShown ? "\n  The ranks' messages are above; mpirun's full output is in \(shown)/logs/mpirun-\(attempt).log."
                            : "\n  mpirun's full output is in \(shown)/logs/mpirun-\(attempt).log."
            Console.err(msg + "\n")
            guard restarts < maxRestarts else {
                if maxRestarts > 0 { Console.err("pstrain: giving up after \(restarts) restart(s) (--max-restarts \(maxRestarts))\n") }
                throw ExitCode(status.code != 0 ? status.code : 1)
            }
            guard let chosen = try? CheckpointStore.choose(dir, from: nil, warn: { print("pstrain: warning: \($0)") }) else {
                Console.err("pstrain: no complete checkpoint to restart from; the run cannot continue by itself\n")
                throw ExitCode(status.code != 0 ? status.code : 1)
            }
            restarts += 1
            attempt += 1
            plan.resume = chosen.path
            print("pstrain: restart \(restarts) of \(maxRestarts) from \((chosen.path as NSString).lastPathComponent)")
        }
        if let summary = finalSummary(runDir: dir, since: earlier + 1) { print("pstrain: \(summary)") }
        if restarts > 0 { print("pstrain: the run needed \(restarts) restart(s); events.jsonl has them") }
        print("pstrain: run directory \(shown)")
    }

    /// How long the job may go without any rank writing its log before the
    /// launcher stops it: twice the ranks' own deadline plus 20 s, so that a
    /// rank's timeout always fires first where one applies.
    static func watchdogSeconds(_ dir: String) -> Double {
        ((try? Config.load(path: dir + "/run.toml"))?.run.timeoutSeconds ?? Config().run.timeoutSeconds) * 2 + 20
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
        let dir = executableDirectory()
        for name in ["pstrain-server", "pstrain-worker"] where !FileManager.default.isExecutableFile(atPath: dir + "/" + name) {
            throw Refusal("cannot find \(name) next to pstrain (in \(dir)); build all products with `swift build -c release`")
        }
        return dir
    }

    /// Runs mpirun: its standard output passes through (progress lines); its
    /// standard error goes to `logPath`, and the ranks' own lines (those that
    /// start with "pstrain") are shown too.
    static func runMpirun(plan: MpirunPlan, logPath: String, runDir: String, silence: Double) throws -> (code: Int32, signal: Int32) {
        guard let exe = which(plan.mpirun) else { throw Refusal("'\(plan.mpirun)' not found on PATH") }
        var fds: [Int32] = [0, 0], outFds: [Int32] = [0, 0]
        guard pipe(&fds) == 0, pipe(&outFds) == 0 else { throw Refusal("cannot create a pipe: \(String(cString: strerror(errno)))") }
        // mpirun runs in its own process group: a Ctrl-C at the terminal reaches
        // only the launcher, which turns it into "checkpoint and stop".
        //
        // Why posix_spawn and not swiftlang/swift-subprocess (1.0.2, checked):
        // it can start the child in its own group (PlatformOptions.processGroupID
        // = 0, or createSession) with default signal dispositions, but it reaps
        // the child itself, inside `run`, as soon as the body closure has
        // returned and its monitor (a pidfd on Linux) has seen the exit. The
        // body cannot wait for the exit itself (Execution offers no wait), and
        // there is no step between exit and reap to hook into (no WNOWAIT wait,
        // no preSpawnProcessConfigurator outside Darwin). Signalling the group,
        // which the second Ctrl-C and the watchdog below do, is a plain
        // kill(-pgid) there too (pidfd_send_signal cannot address a group). So
        // either the launcher forgets the group before mpirun has exited (and
        // a second Ctrl-C in between is lost) or after `run` reaped it (and a
        // signal could reach a process group that reuses the id). Here the
        // launcher waits with waitid(WNOWAIT), forgets the group under the
        // lock the signal paths take, and only then reaps it.
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
        guard rc == 0 else { close(fds[0]); close(outFds[0]); throw Refusal("cannot start \(plan.mpirun): \(String(cString: strerror(rc)))") }
        // The job's standard output (server 0's progress) on its own thread.
        let screen = Screen(tty: isatty(1) != 0)
        let outRead = outFds[0]
        let outReader = Thread {
            let h = FileHandle(fileDescriptor: outRead, closeOnDealloc: true)
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
        Preemption.started(pid)
        let watchdog = Watchdog(runDir: runDir, group: pid, silence: silence)
        watchdog.start()
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        var logFailed = log < 0
        if logFailed { Console.err("pstrain: warning: cannot write \(logPath): \(String(cString: strerror(errno))); mpirun's output is not saved\n") }
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        var pending = Data()
        var lastShown = false
        anyShown = false
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            if !logFailed {
                let err = chunk.withUnsafeBytes { writeAll(log, $0) }
                if err != 0 {
                    logFailed = true
                    Console.err("pstrain: warning: cannot write \(logPath): \(String(cString: strerror(err))); the rest of mpirun's output is shown but not saved\n")
                }
            }
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
        // Wait for mpirun without reaping it, so that its process id (and
        // group) cannot be reused while a signal handler may still kill it;
        // forget it, then reap it.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        Preemption.finished()
        watchdog.stop()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        while !outReader.isFinished { usleep(1000) }
        if log >= 0 { close(log) }
        if let why = watchdog.fired { Console.err("pstrain: error: \(why)\n") }
        if status & 0x7f != 0 { return (0, status & 0x7f) }
        return ((status >> 8) & 0xff, 0)
    }

    /// The step at which the last attempt stopped on request, from server 0's log.
    static func stoppedStep(_ dir: String) -> Int? {
        var stopped: Int?
        for e in LogFile(path: dir + "/logs/server-0.jsonl")?.entries ?? [] {
            switch e.event {
            case StoppedRecord.event: stopped = (e.record as? StoppedRecord)?.step
            case HelloRecord.event: stopped = nil   // a later attempt started
            default: break
            }
        }
        return stopped
    }
    nonisolated(unsafe) static var anyShown = false

    /// What a stop that became an abort (a second signal) left: the
    /// checkpoint the ranks completed before it, or the newest one before
    /// the stop, or none. Read from the checkpoints themselves, so that it
    /// agrees with `pstrain ckpt list`.
    static func abortedState(_ dir: String, shown: String) -> String {
        guard let chosen = try? CheckpointStore.choose(dir, from: nil, warn: { _ in }) else {
            return "the job was aborted before it wrote any checkpoint; the run cannot be resumed"
        }
        let name = (chosen.path as NSString).lastPathComponent
        if let stopped = stoppedStep(dir), chosen.manifest.step == stopped {
            return "the job was aborted while its ranks were shutting down, after they had completed checkpoint \(name) "
                + "for the stop; continue with: pstrain resume \(shown)"
        }
        return "the job was aborted before it could checkpoint for the stop; the newest complete checkpoint is \(name) "
            + "(step \(chosen.manifest.step)); continue from it with: pstrain resume \(shown)"
    }

    /// "final test accuracy 88.41% after 10 epoch(s), 4680 steps, 62.3 s of training", from server 0's log;
    /// a click-through-rate model's says its test AUC and log loss. The seconds are this launch's
    /// attempts' (a resumed run's earlier attempts are not counted again).
    static func finalSummary(runDir: String, since attempt: Int = 1) -> String? {
        var last: EvalRecord?, steps = 0, wall = 0.0, attempts = 0
        for r in LogFile(path: runDir + "/logs/server-0.jsonl")?.records((any LogRecord).self) ?? [] {
            switch r {
            case is HelloRecord: attempts += 1
            case let e as EvalRecord: last = e
            case let d as ServerDoneRecord:
                steps = d.steps
                if attempts >= attempt { wall += d.wallS }
            default: break
            }
        }
        guard let e = last else { return nil }
        let what = e.auc.map { auc in String(format: "final test AUC %.4f, log loss %.4f", auc, e.logloss ?? .nan) }
            ?? String(format: "final test accuracy %.2f%%", e.testAccuracy * 100)
        return what + String(format: " after %d epoch(s), %d steps, %.1f s of training", e.epoch, steps, wall)
    }

    /// The next attempt number of a run: one more than the attempts events.jsonl records.
    static func nextAttempt(_ dir: String) -> Int {
        (LogFile(path: dir + "/events.jsonl")?.count(ExitRecord.event) ?? 0) + 1
    }
}

/// SIGINT or SIGTERM to the launcher (Ctrl-C, a scheduler's preemption):
/// the first asks the ranks to finish the step, checkpoint and exit 0 (a
/// STOP file server 0 looks for every step); a second one stops mpirun now.
/// The signal handlers run on a dispatch queue, the job on the main thread:
/// the state they share is read and written under one lock.
enum Preemption {
    final class State: @unchecked Sendable {
        let lock = NSLock()
        var requested = false
        /// mpirun's process id while it may be signalled (0 once it exited, before it is reaped).
        var child: pid_t = 0
    }
    static let state = State()
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    static var requested: Bool { state.lock.lock(); defer { state.lock.unlock() }; return state.requested }
    static func started(_ pid: pid_t) { state.lock.lock(); state.child = pid; state.lock.unlock() }
    static func finished() { state.lock.lock(); state.child = 0; state.lock.unlock() }

    /// What a signal does: the first asks for a stop, a later one kills mpirun's group (if it still runs).
    static func signalled(runDir: String) {
        state.lock.lock()
        defer { state.lock.unlock() }
        if !state.requested {
            state.requested = true
            _ = FileManager.default.createFile(atPath: runDir + "/STOP", contents: Data("stop\n".utf8))
            Console.err("pstrain: stopping: the ranks finish this step, write a checkpoint and exit (signal again to abort now)\n")
        } else if state.child > 0 {
            Console.err("pstrain: aborting now (a second signal): mpirun and the ranks are stopped without waiting\n")
            kill(-state.child, SIGTERM)
        }
    }

    static func install(runDir: String) {
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { signalled(runDir: runDir) }
            src.resume()
            sources.append(src)
        }
    }
}

/// The launcher's last line of defence against a job that hangs where no
/// rank's own deadline reaches (MPI start-up, a rank stopped inside
/// MPI_Finalize): when no rank has written its log for `silence` seconds,
/// mpirun's process group is killed and the job fails with a message that
/// names the ranks that wrote last and those that never did.
final class Watchdog: @unchecked Sendable {
    let runDir: String
    let group: pid_t
    let silence: Double
    let lock = NSLock()
    var stopped = false
    var why: String?

    init(runDir: String, group: pid_t, silence: Double) { self.runDir = runDir; self.group = group; self.silence = silence }

    var fired: String? { lock.lock(); defer { lock.unlock() }; return why }

    func stop() { lock.lock(); stopped = true; lock.unlock() }

    /// Seconds since each rank's log last changed (nil: no log yet), by file name.
    func quietness(now: Double) -> [(String, Double?)] {
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: runDir + "/logs")) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        return logs.map { name in
            let m = (try? FileManager.default.attributesOfItem(atPath: runDir + "/logs/" + name)[.modificationDate] as? Date)?.timeIntervalSince1970
            return (String(name.dropLast(6)), m.map { now - $0 })
        }
    }

    func start() {
        let t = Thread { [self] in
            let began = Date().timeIntervalSince1970
            while true {
                usleep(250_000)
                lock.lock()
                if stopped { lock.unlock(); return }
                lock.unlock()
                let now = Date().timeIntervalSince1970
                let quiet = quietness(now: now)
                let newest = quiet.compactMap { $0.1 }.min() ?? (now - began)
                guard newest > silence && now - began > silence else { continue }
                let text = quiet.isEmpty ? "no rank started its log" : quiet.map { "\($0.0) \($0.1.map { "quiet for \(Int($0)) s" } ?? "no log")" }.joined(separator: ", ")
                lock.lock()
                if !stopped {
                    why = "the job made no progress for \(Int(silence)) s (no rank wrote its log; \(text)); the launcher stopped mpirun. "
                        + "A rank is hung where its own deadline does not reach (start-up or shutdown); run.timeout_seconds sets the deadlines"
                    kill(-group, SIGTERM)
                }
                lock.unlock()
                usleep(3_000_000)
                lock.lock()
                if !stopped { kill(-group, SIGKILL) }   // under the lock: mpirun is not reaped before stop()
                lock.unlock()
                return
            }
        }
        t.start()
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
            Console.out("\r\u{1B}[K" + Screen.bar(line) + line)
            live = true
            return
        }
        if live { Console.out("\r\u{1B}[K"); live = false }
        Console.out(line + "\n")
    }

    func err(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        if live { Console.out("\r\u{1B}[K"); live = false }
        Console.err(line + "\n")
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if live { Console.out("\n"); live = false }
    }
}
