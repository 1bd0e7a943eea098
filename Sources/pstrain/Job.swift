import ArgumentParser
import Foundation
import PSCore

/// Running a job's attempts: mpirun, the events, the restarts, the report.
enum Job {
    /// Runs `plan` as attempt `attempt` of the run in `dir` (shown as `shown`),
    /// restarting from the newest valid checkpoint up to `maxRestarts` times.
    static func run(plan first: MpirunPlan, dir: String, shown: String, attempt firstAttempt: Int, maxRestarts: Int,
                    kind: String) throws {
        let events = try RunLog(path: dir + "/events.jsonl", fixed: [("run", .string((dir as NSString).lastPathComponent))])
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
            let status = try runMpirun(plan: plan, logPath: dir + "/logs/mpirun-\(attempt).log")
            events.write("exit", [("attempt", .int(attempt)), ("code", .int(Int(status.code))), ("signal", .int(Int(status.signal))),
                                  ("seconds", .double(Date().timeIntervalSince(started)))])
            events.flush()
            if status.code == 0 && status.signal == 0 { break }
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
                wall += obj["wall_s"] as? Double ?? 0
            default: break
            }
        }
        guard let acc else { return nil }
        return String(format: "final test accuracy %.2f%% after %d epoch(s), %d steps, %.1f s of training", acc * 100, epoch, steps, wall)
    }

    /// The next attempt number of a run: one more than the attempts events.jsonl records.
    static func nextAttempt(_ dir: String) -> Int {
        let text = (try? String(contentsOfFile: dir + "/events.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("\"event\":\"exit\"") }.count + 1
    }
}
