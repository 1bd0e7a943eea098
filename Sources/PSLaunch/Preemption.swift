import Foundation
import PSSupport

/// SIGINT or SIGTERM to the launcher (Ctrl-C, a scheduler's preemption):
/// the first asks the ranks to finish the step, checkpoint and exit 0 (a
/// STOP file server 0 looks for every step); a second one stops mpirun now.
/// The signal handlers run on a dispatch queue, the job on the main thread:
/// the state they share is read and written under one lock.
public enum Preemption {
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
