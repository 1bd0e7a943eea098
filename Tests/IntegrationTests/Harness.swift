import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import XCTest
import PSTestSupport

/// Runs real executables (the launcher, mpirun, the ranks) as child
/// processes. MPI never starts inside the test runner (it forks daemons that
/// can hang the suite): every child gets its own process group, writes to
/// files rather than pipes, and is killed with its whole group at a deadline.
struct ProcessResult {
    let status: Int32
    let signal: Int32
    let stdout: String
    let stderr: String
    let timedOut: Bool
    let seconds: Double
    var output: String { stdout + stderr }
}

struct HarnessError: Error, CustomStringConvertible { let message: String; var description: String { message } }

enum Harness {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Where the built executables are: $PSTRAIN_BIN_DIR or .build/debug.
    static var binDir: String {
        ProcessInfo.processInfo.environment["PSTRAIN_BIN_DIR"] ?? root + "/.build/debug"
    }

    static func executable(_ name: String) throws -> String {
        let p = binDir + "/" + name
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw HarnessError(message: "\(p) is not built; run `swift build` first (scripts/test does)")
        }
        return p
    }

    static func tempDir(_ tag: String) -> String { temporaryFolder("it-\(tag)") }

    static func which(_ cmd: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(cmd)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// A child started with `start`, to be finished with `finish`.
    struct Running {
        let pid: pid_t
        let outPath: String
        let errPath: String
        let started: Date
    }

    /// Runs `exe args` in `cwd` with a deadline of `timeout` seconds.
    static func run(_ exe: String, _ args: [String], cwd: String, timeout: Double = 120) -> ProcessResult {
        guard let r = start(exe, args, cwd: cwd) else {
            return ProcessResult(status: -1, signal: 0, stdout: "", stderr: "spawn failed", timedOut: false, seconds: 0)
        }
        return finish(r, timeout: timeout)
    }

    /// Starts `exe args` in `cwd`, in its own process group, output to files.
    static func start(_ exe: String, _ args: [String], cwd: String) -> Running? {
        let outPath = cwd + "/.stdout-\(UUID().uuidString)", errPath = cwd + "/.stderr-\(UUID().uuidString)"
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&fa, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        // A session of its own: mpirun moves itself into another process
        // group, but every process it starts stays in the child's session.
        posix_spawnattr_setflags(&attr, Int16(0x80 /* POSIX_SPAWN_SETSID */))
        // env -C: start in `cwd` (exec'd in place, so the pid and group stay).
        let argv = (["/usr/bin/env", "-C", cwd, exe] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/usr/bin/env", &fa, &attr, argv, environ)
        posix_spawn_file_actions_destroy(&fa)
        posix_spawnattr_destroy(&attr)
        guard rc == 0 else { return nil }
        return Running(pid: pid, outPath: outPath, errPath: errPath, started: Date())
    }

    /// Waits for a started child until `timeout` seconds after its start,
    /// then kills its whole group; returns what it printed.
    static func finish(_ r: Running, timeout: Double) -> ProcessResult {
        let pid = r.pid, start = r.started, outPath = r.outPath, errPath = r.errPath
        var status: Int32 = 0
        var timedOut = false
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                signalSession(pid, SIGTERM)
                usleep(2_000_000)
                signalSession(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(20_000)
        }
        // Anything left in the session (mpirun and its ranks, in groups of their own) goes too.
        signalSession(pid, SIGKILL)
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
        let exited = status & 0x7f == 0
        return ProcessResult(status: exited ? (status >> 8) & 0xff : -1, signal: exited ? 0 : status & 0x7f,
                             stdout: out, stderr: err, timedOut: timedOut, seconds: Date().timeIntervalSince(start))
    }

    /// The processes of session `sid` (from /proc/PID/stat, whose sixth field is the session).
    static func sessionMembers(_ sid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> pid_t? in
            guard let p = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 3 && pid_t(fields[3]) == sid ? p : nil
        }
    }

    /// Signals every process of the session a child leads, whatever group it moved to.
    static func signalSession(_ sid: pid_t, _ sig: Int32) {
        kill(-sid, sig)
        for p in sessionMembers(sid) { kill(p, sig) }
    }

    /// `pstrain launch ...` in `cwd`.
    static func launch(_ args: [String], cwd: String, timeout: Double = 180) throws -> ProcessResult {
        run(try executable("pstrain"), ["launch"] + args, cwd: cwd, timeout: timeout)
    }

    /// The flags a user needs for mpirun on this machine (root, 2 cores).
    static func mpirunFlags(ranks: Int) -> [String] {
        var f: [String] = []
        if geteuid() == 0 { f.append("--allow-run-as-root") }
        if ranks > ProcessInfo.processInfo.activeProcessorCount { f.append("--oversubscribe") }
        return f + ["--mca", "pml", "ob1", "--mca", "btl", "self,vader"]
    }

    /// A plain MPMD `mpirun` as a user would type it: `servers` ranks of
    /// pstrain-server with `serverArgs`, then `workers` ranks of
    /// pstrain-worker with `workerArgs` (either count may be 0).
    static func mpirun(servers: Int, _ serverArgs: [String], workers: Int, _ workerArgs: [String],
                       cwd: String, timeout: Double = 60) throws -> ProcessResult {
        var args = mpirunFlags(ranks: servers + workers)
        if servers > 0 { args += ["-np", String(servers), try executable("pstrain-server")] + serverArgs }
        if servers > 0 && workers > 0 { args.append(":") }
        if workers > 0 { args += ["-np", String(workers), try executable("pstrain-worker")] + workerArgs }
        return run(which("mpirun")!, args, cwd: cwd, timeout: timeout)
    }

    /// A log file's records of one type (`EvalRecord.self`) or protocol
    /// (`(any DoneRecord).self`), read as pstrain inspect reads them; none
    /// when the file is missing.
    static func records<R>(_ path: String, _ type: R.Type) -> [R] { LogFile(path: path)?.records(type) ?? [] }

    /// Everything a run ends with, per rank, from the `done` records:
    /// servers their FP32 master weights, optimizer state (each tensor's
    /// digest: SGD's momentum, Adam's exp_avg and exp_avg_sq, ...) and
    /// loss-scaler state; workers their parameters and top-k residual. A
    /// rank without a `done` record gives "missing ...", a last `done` record
    /// that does not read as its type (a field missing) or has no state digest "...=absent", so
    /// two runs that both failed never compare equal by accident.
    static func finalState(_ run: String, servers: Int, workers: Int) -> [String] {
        let names = (0..<servers).map { "server-\($0)" } + (0..<workers).map { "worker-\($0)" }
        return names.map { name in
            guard let last = LogFile(path: "\(run)/logs/\(name).jsonl")?.entries.last(where: { $0.event == "done" }) else {
                return "missing \(name) in \(run)"
            }
            let fields: [(String, String?)]
            if name.hasPrefix("server") {
                guard let done = last.record as? ServerDoneRecord else { return "\(name) done=absent (it does not read as a server's done record)" }
                let states: [(String, String?)] = done.stateDigests.isEmpty ? [("state_digest", nil)]
                    : done.stateDigests.map { ("\($0.name)_digest", $0.digest) }
                fields = [("params_digest", done.paramsDigest)] + states
                    + [("loss_scale", "\(done.lossScale)"), ("skipped", "\(done.skipped)"), ("steps", "\(done.steps)")]
            } else {
                guard let done = last.record as? WorkerDoneRecord else { return "\(name) done=absent (it does not read as a worker's done record)" }
                fields = [("params_digest", done.paramsDigest), ("residual_digest", done.residualDigest), ("steps", "\(done.steps)")]
            }
            return name + " " + fields.map { "\($0.0)=\($0.1 ?? "absent")" }.joined(separator: " ")
        }
    }

    /// Fails unless the run ended on every rank with every field present.
    static func assertComplete(_ state: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(state.isEmpty || state.contains { $0.hasPrefix("missing") || $0.contains("absent") }, "\(state)", file: file, line: line)
    }
}

/// Fails the test with everything the process printed when it did not end as expected.
func assertEnded(_ r: ProcessResult, status expected: Int32?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "\(what) hung (killed at the deadline after \(Int(r.seconds)) s)\n\(r.output)", file: file, line: line)
    if let expected {
        XCTAssertEqual(r.status, expected, "\(what): exit status\n--- stdout\n\(r.stdout)\n--- stderr\n\(r.stderr)", file: file, line: line)
    } else {
        XCTAssertNotEqual(r.status, 0, "\(what) should have failed\n\(r.output)", file: file, line: line)
    }
}
