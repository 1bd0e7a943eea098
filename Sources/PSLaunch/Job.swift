import Foundation
import PSSupport
import PSConfig
import PSCheckpoint
import PSRunLog

/// Running a job's attempts: mpirun, the events, the restarts, the report.
public enum Job {
    /// Runs `plan` as attempt `attempt` of the run in `dir` (shown as `shown`),
    /// restarting from the newest valid checkpoint up to `maxRestarts` times.
    /// `kind` records the first attempt (`LaunchRecord`, `ResumeRecord`); later ones are `RestartRecord`s.
    public static func run(plan first: MpirunPlan, dir: String, shown: String, attempt firstAttempt: Int, maxRestarts: Int,
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
                throw JobFailed(status: status.code != 0 ? status.code : 1)
            }
            let out = (try? String(contentsOfFile: dir + "/logs/mpirun-\(attempt).log", encoding: .utf8)) ?? ""
            var msg = "pstrain: error: attempt \(attempt) failed (mpirun exited with status \(status.code)\(status.signal != 0 ? ", signal \(status.signal)" : ""))."
            if let why = explainMpirunFailure(out, plan: plan) { msg += "\n  \(why)" }
            msg += anyShown ? "\n  The ranks' messages are above; mpirun's full output is in \(shown)/logs/mpirun-\(attempt).log."
                            : "\n  mpirun's full output is in \(shown)/logs/mpirun-\(attempt).log."
            Console.err(msg + "\n")
            guard restarts < maxRestarts else {
                if maxRestarts > 0 { Console.err("pstrain: giving up after \(restarts) restart(s) (--max-restarts \(maxRestarts))\n") }
                throw JobFailed(status: status.code != 0 ? status.code : 1)
            }
            guard let chosen = try? CheckpointStore.choose(dir, from: nil, warn: { print("pstrain: warning: \($0)") }) else {
                Console.err("pstrain: no complete checkpoint to restart from; the run cannot continue by itself\n")
                throw JobFailed(status: status.code != 0 ? status.code : 1)
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
    public static func watchdogSeconds(_ dir: String) -> Double {
        ((try? Config.load(path: dir + "/run.toml"))?.run.timeoutSeconds ?? Config().run.timeoutSeconds) * 2 + 20
    }

    public static func which(_ cmd: String) -> String? {
        if cmd.contains("/") { return FileManager.default.isExecutableFile(atPath: cmd) ? cmd : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/\(cmd)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// The folder holding pstrain-server and pstrain-worker: next to this executable.
    public static func rankBinDir() throws -> String {
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
        let child = try spawn(plan, exe)
        let screen = Screen(tty: isatty(1) != 0)
        let outReader = relayOutput(child.out, to: screen)
        Preemption.started(child.pid)
        let watchdog = Watchdog(runDir: runDir, group: child.pid, silence: silence)
        watchdog.start()
        anyShown = relayErrors(child.err, logPath: logPath, to: screen)
        let status = reap(child.pid) { watchdog.stop() }
        while !outReader.isFinished { usleep(1000) }
        if let why = watchdog.fired { Console.err("pstrain: error: \(why)\n") }
        return status
    }

    /// Starts mpirun in a process group of its own, its standard error and
    /// output on two pipes (the read ends returned).
    static func spawn(_ plan: MpirunPlan, _ exe: String) throws -> (pid: pid_t, err: Int32, out: Int32) {
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
        // lock the signal paths take, and only then reaps it (`reap`).
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
        return (pid, fds[0], outFds[0])
    }

    /// The job's standard output (server 0's progress), line by line to the
    /// screen, on a thread of its own (returned, to wait for).
    static func relayOutput(_ fd: Int32, to screen: Screen) -> Thread {
        let reader = Thread {
            let h = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
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
        reader.start()
        return reader
    }

    /// mpirun's standard error until it closes: all of it to `logPath`, and
    /// the ranks' own lines (and their indented continuations) to the
    /// screen. Returns whether any line was shown.
    static func relayErrors(_ fd: Int32, logPath: String, to screen: Screen) -> Bool {
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { if log >= 0 { close(log) } }
        var logFailed = log < 0
        if logFailed { Console.err("pstrain: warning: cannot write \(logPath): \(String(cString: strerror(errno))); mpirun's output is not saved\n") }
        let reader = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var pending = Data()
        var lastShown = false, shown = false
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            if !logFailed, case let err = chunk.withUnsafeBytes({ writeAll(log, $0) }), err != 0 {
                logFailed = true
                Console.err("pstrain: warning: cannot write \(logPath): \(String(cString: strerror(err))); the rest of mpirun's output is shown but not saved\n")
            }
            pending.append(chunk)
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<nl]
                pending.removeSubrange(pending.startIndex...nl)
                lastShown = line.starts(with: Data("pstrain".utf8)) || line.starts(with: Data("  ".utf8)) && lastShown
                if lastShown { screen.err(String(decoding: line, as: UTF8.self)); shown = true }
            }
        }
        return shown
    }

    /// Waits for mpirun without reaping it, so that its process id (and
    /// group) cannot be reused while a signal handler may still kill it;
    /// forgets it (and runs `forget`), then reaps it. Returns (exit code, 0)
    /// or (0, signal).
    static func reap(_ pid: pid_t, forget: () -> Void) -> (code: Int32, signal: Int32) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        Preemption.finished()
        forget()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7f != 0 { return (0, status & 0x7f) }
        return ((status >> 8) & 0xff, 0)
    }

    /// The step at which the last attempt stopped on request, from server 0's log.
    public static func stoppedStep(_ dir: String) -> Int? {
        var stopped: Int?
        for e in LogFile(path: dir + "/logs/server-0.jsonl")?.entries ?? [] {
            switch e.event {
            case ServerStoppedRecord.event: stopped = (e.record as? ServerStoppedRecord)?.step
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
    public static func abortedState(_ dir: String, shown: String) -> String {
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
    public static func finalSummary(runDir: String, since attempt: Int = 1) -> String? {
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
    public static func nextAttempt(_ dir: String) -> Int {
        (LogFile(path: dir + "/events.jsonl")?.count(ExitRecord.event) ?? 0) + 1
    }
}

/// A job that ended in failure: the launcher exits with `status` (mpirun's,
/// or 1), its messages already printed.
public struct JobFailed: Error, CustomStringConvertible {
    public let status: Int32
    public init(status: Int32) { self.status = status }
    public var description: String { "the job failed (status \(status))" }
}
