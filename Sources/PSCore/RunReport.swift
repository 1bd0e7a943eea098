import Foundation

// ---------------------------------------------------------------------------
// Reading a run directory back (pstrain inspect): every rank's log, the
// launcher's events, the checkpoints. Tolerant: a truncated last line, a run
// that died mid-way, several attempts, older schema versions are read and
// reported for what they are; a folder that is not a run is a clear error.
// ---------------------------------------------------------------------------

/// One rank's log, parsed.
public struct RankLog {
    public let file: String
    public let role: String
    public let index: Int
    public var records: [[String: Any]] = []
    /// Lines that did not parse (a crash can truncate the last one).
    public var badLines: [Int] = []
    public var lineCount = 0
    /// Schema versions seen (1 today; records without "v" count as 0).
    public var versions: Set<Int> = []

    public func events(_ name: String) -> [[String: Any]] { records.filter { $0["event"] as? String == name } }
}

public func readJSONLines(_ path: String) -> (records: [[String: Any]], bad: [Int], lines: Int)? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    var records: [[String: Any]] = []
    var bad: [Int] = []
    var n = 0
    for (i, line) in data.split(separator: 0x0A, omittingEmptySubsequences: true).enumerated() {
        n += 1
        if let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] { records.append(obj) } else { bad.append(i + 1) }
    }
    return (records, bad, n)
}

/// What `pstrain inspect` says about a run, as one JSON-friendly value.
public struct RunSummary: Codable {
    public struct RankStat: Codable {
        public var rank: String
        public var steps: Int
        public var stepP50: Double, stepP95: Double, stepMax: Double
        public var waitShare: Double
        public var samplesPerSecond: Double?
        /// Workers: median seconds of compute per step.
        public var computeP50: Double?
    }
    public struct Phase: Codable { public var name: String; public var seconds: Double; public var share: Double }
    public struct CheckpointInfo: Codable { public var name: String; public var state: String; public var latest: Bool }
    public struct Eval: Codable { public var epoch: Int; public var step: Int; public var accuracy: Double }
    public struct ScaleChange: Codable { public var step: Int; public var from: Double; public var to: Double; public var why: String }

    public var run: String
    public var path: String
    public var status: String
    public var attempts: Int
    public var restarts: Int
    public var servers: Int
    public var workers: Int
    public var model: String
    public var precision: String
    public var compression: String
    public var batchSize: Int
    public var stepsDone: Int
    public var stepsTotal: Int
    public var epochsDone: Int
    public var epochsTotal: Int
    public var trainingSeconds: Double
    public var samplesPerSecond: Double
    public var finalAccuracy: Double?
    public var bestAccuracy: Double?
    public var evals: [Eval]
    public var loss: [Double]
    public var phases: [Phase]
    public var wireBytesPerStep: Double
    public var fp32BytesPerStep: Double
    public var compressionRatio: Double
    public var lossScale: Double?
    public var skippedSteps: Int
    public var scaleChanges: [ScaleChange]
    public var ranks: [RankStat]
    public var checkpoints: [CheckpointInfo]
    public var notes: [String]
}

public struct RunReport {
    public let dir: String
    public var logs: [RankLog] = []
    public var events: [[String: Any]] = []
    public var config: Config?

    /// Reads a run directory; throws when `dir` is not one.
    public init(dir: String) throws {
        self.dir = dir
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw PSError("\(dir) is not a directory")
        }
        let logDir = dir + "/logs"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: logDir)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        let hasToml = FileManager.default.fileExists(atPath: dir + "/run.toml")
        guard hasToml || !names.isEmpty else {
            throw PSError("\(dir) is not a pstrain run directory (no run.toml and no logs/*.jsonl)")
        }
        if hasToml { config = try? Config.load(path: dir + "/run.toml") }
        for n in names {
            let parts = n.dropLast(6).split(separator: "-")
            guard parts.count == 2, let i = Int(parts[1]), ["server", "worker"].contains(String(parts[0])) else { continue }
            guard let (recs, bad, lines) = readJSONLines(logDir + "/" + n) else { continue }
            if !recs.isEmpty && !recs.contains(where: { $0["event"] != nil }) {
                throw PSError("\(logDir)/\(n) is not a pstrain run log (no record has an \"event\")")
            }
            var log = RankLog(file: logDir + "/" + n, role: String(parts[0]), index: i)
            log.records = recs
            log.badLines = bad
            log.lineCount = lines
            log.versions = Set(recs.map { $0["v"] as? Int ?? 0 })
            logs.append(log)
        }
        events = readJSONLines(dir + "/events.jsonl")?.records ?? []
    }

    public func log(_ role: String, _ index: Int) -> RankLog? { logs.first { $0.role == role && $0.index == index } }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }

    public func summary() -> RunSummary {
        var notes: [String] = []
        for l in logs {
            if !l.badLines.isEmpty {
                let last = l.badLines == [l.lineCount] ? "its last line is truncated (the rank stopped while writing)" : "lines \(l.badLines.prefix(5).map(String.init).joined(separator: ", ")) do not parse"
                notes.append("\((l.file as NSString).lastPathComponent): \(last)")
            }
            if l.versions.contains(where: { $0 > RunLog.schemaVersion }) { notes.append("\((l.file as NSString).lastPathComponent): written by a newer pstrain (schema \(l.versions.max()!)); fields this version does not know are ignored") }
            if l.versions.contains(0) { notes.append("\((l.file as NSString).lastPathComponent): records without a schema version (older than schema 1)") }
        }
        let server0 = log("server", 0)
        let attempts = max(1, events.filter { ["launch", "resume", "restart"].contains($0["event"] as? String ?? "") }.count,
                           server0?.events("hello").count ?? 0)
        let restarts = events.filter { $0["event"] as? String == "restart" }.count
        let lastStart = server0?.events("start").last
        let stepsTotal = lastStart?["steps"] as? Int ?? 0
        let perEpoch = lastStart?["steps_per_epoch"] as? Int ?? 1
        // The steps of the latest attempt win over earlier attempts' records of the same step.
        var serverSteps: [Int: [String: Any]] = [:]
        for r in server0?.events("step") ?? [] { if let s = r["step"] as? Int { serverSteps[s] = r } }
        let stepKeys = serverSteps.keys.sorted()
        let stepsDone = (stepKeys.last ?? -1) + 1
        let done = server0?.events("done").last
        let lastExit = events.last { $0["event"] as? String == "exit" }
        let stopped = server0?.events("stopped").last != nil && (done?["steps"] as? Int ?? 0) < stepsTotal
        var status: String
        if let d = done, d["steps"] as? Int == stepsTotal, stepsTotal > 0 { status = "finished" }
        else if stopped { status = "stopped (preempted) at step \(stepsDone); resume it with pstrain resume" }
        else if let e = lastExit, (e["code"] as? Int ?? 0) != 0 || (e["signal"] as? Int ?? 0) != 0 { status = "failed (attempt \(e["attempt"] ?? "?") exited with \(e["code"] ?? "?"))" }
        else {
            let mod = (try? FileManager.default.attributesOfItem(atPath: server0?.file ?? "")[.modificationDate] as? Date) ?? .distantPast
            status = Date().timeIntervalSince(mod) < 30 ? "running" : "ended without a result (no exit recorded)"
        }
        if restarts > 0 { status += ", restarted \(restarts) time\(restarts == 1 ? "" : "s")" }

        let workers = logs.filter { $0.role == "worker" }
        let servers = logs.filter { $0.role == "server" }
        let hello = server0?.events("hello").last
        let evals = (server0?.events("eval") ?? []).compactMap { r -> RunSummary.Eval? in
            guard let a = r["test_accuracy"] as? Double else { return nil }
            return .init(epoch: r["epoch"] as? Int ?? 0, step: r["step"] as? Int ?? 0, accuracy: a)
        }
        let loss = stepKeys.compactMap { serverSteps[$0]?["loss"] as? Double }
        let trainSeconds = stepKeys.reduce(0.0) { $0 + (serverSteps[$1]?["step_s"] as? Double ?? 0) }
        let samples = stepKeys.reduce(0) { $0 + (serverSteps[$1]?["samples"] as? Int ?? 0) }

        func sum(_ logs: [RankLog], _ key: String) -> Double {
            logs.reduce(0) { $0 + $1.events("step").reduce(0) { $0 + ($1[key] as? Double ?? 0) } }
        }
        let wCompute = sum(workers, "compute_s"), wWait = sum(workers, "wait_s"), wEncode = sum(workers, "encode_s"), wDecode = sum(workers, "decode_s")
        let wTotal = max(sum(workers, "step_s"), 1e-12)
        var phases = [RunSummary.Phase(name: "worker compute (forward, backward, encode)", seconds: wCompute, share: wCompute / wTotal),
                      .init(name: "worker waiting for parameters", seconds: wWait, share: wWait / wTotal),
                      .init(name: "  of which codec encode", seconds: wEncode, share: wEncode / wTotal),
                      .init(name: "  of which codec decode", seconds: wDecode, share: wDecode / wTotal)]
        let sApply = sum(servers, "apply_s"), sTotal = max(sum(servers, "step_s"), 1e-12)
        phases.append(.init(name: "server sum + SGD + send", seconds: sApply, share: sApply / sTotal))
        let wSteps = workers.flatMap { $0.events("step") }
        let wire = Double(wSteps.reduce(0) { $0 + ($1["bytes_sent"] as? Int ?? 0) + ($1["bytes_recv"] as? Int ?? 0) })
        let fp32 = Double(wSteps.reduce(0) { $0 + 2 * ($1["fp32_bytes"] as? Int ?? 0) })
        // Per step: average over the step records (a restarted step is logged twice).
        let stepCount = max(Double(wSteps.count) / Double(max(workers.count, 1)), 1)

        var ranks: [RunSummary.RankStat] = []
        for l in logs.sorted(by: { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) }) {
            let st = l.events("step")
            let times = st.compactMap { $0["step_s"] as? Double }
            let waits = st.reduce(0.0) { $0 + ($1["wait_s"] as? Double ?? 0) }
            let sps = l.role == "worker" ? st.compactMap { $0["samples_per_s"] as? Double }.sorted().dropFirst(st.count / 2).first : nil
            let compute = l.role == "worker" ? Self.percentile(st.compactMap { $0["compute_s"] as? Double }, 0.5) : nil
            ranks.append(.init(rank: "\(l.role) \(l.index)", steps: st.count, stepP50: Self.percentile(times, 0.5), stepP95: Self.percentile(times, 0.95),
                               stepMax: times.max() ?? 0, waitShare: waits / max(times.reduce(0, +), 1e-12), samplesPerSecond: sps,
                               computeP50: compute))
        }
        let scaleChanges = (server0?.events("scale") ?? []).map {
            RunSummary.ScaleChange(step: $0["step"] as? Int ?? 0, from: $0["from"] as? Double ?? 0, to: $0["to"] as? Double ?? 0, why: $0["why"] as? String ?? "")
        }
        let latest = CheckpointStore.latestName(dir)
        let checkpoints = CheckpointStore.list(dir).map { c -> RunSummary.CheckpointInfo in
            let state: String
            do { try CheckpointStore.verify(c.path); state = "ok" } catch { state = "DAMAGED: \(error)" }
            return .init(name: "step-\(c.step)", state: state, latest: "step-\(c.step)" == latest)
        }
        let layers: String = {
            guard let c = config, let specs = try? c.layerSpecs() else { return "?" }
            var dims = [c.inputSize]
            for s in specs { if case .dense(let u) = s { dims.append(u) } }
            return "MLP " + dims.map(String.init).joined(separator: "-")
        }()
        return RunSummary(
            run: (dir as NSString).lastPathComponent, path: dir, status: status, attempts: attempts, restarts: restarts,
            servers: hello?["servers"] as? Int ?? servers.count, workers: hello?["workers"] as? Int ?? workers.count,
            model: layers, precision: lastStart?["precision"] as? String ?? config?.precision.rawValue ?? "fp32",
            compression: (workers.first?.events("start").last?["compression"] as? String) ?? "?",
            batchSize: config?.batchSize ?? 0, stepsDone: stepsDone, stepsTotal: stepsTotal,
            epochsDone: evals.last?.epoch ?? stepsDone / max(perEpoch, 1), epochsTotal: config?.epochs ?? 0,
            trainingSeconds: trainSeconds, samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9),
            finalAccuracy: evals.last?.accuracy, bestAccuracy: evals.map { $0.accuracy }.max(), evals: evals, loss: loss,
            phases: phases, wireBytesPerStep: wire / stepCount, fp32BytesPerStep: fp32 / stepCount,
            compressionRatio: fp32 > 0 ? wire / fp32 : 1,
            lossScale: serverSteps[stepKeys.last ?? -1]?["loss_scale"] as? Double,
            skippedSteps: serverSteps[stepKeys.last ?? -1]?["skipped"] as? Int ?? 0,
            scaleChanges: scaleChanges, ranks: ranks, checkpoints: checkpoints, notes: notes)
    }

    /// Eight levels of block characters over `width` bins.
    public static func sparkline(_ xs: [Double], width: Int = 60) -> String {
        let v = xs.filter { $0.isFinite }
        guard let lo = v.min(), let hi = v.max(), !v.isEmpty else { return "" }
        let bars = Array("▁▂▃▄▅▆▇█")
        let bins = min(width, v.count)
        return String((0..<bins).map { b -> Character in
            let a = b * v.count / bins, e = max(a + 1, (b + 1) * v.count / bins)
            let m = v[a..<e].reduce(0, +) / Double(e - a)
            let k = hi > lo ? Int((m - lo) / (hi - lo) * 7.999) : 0
            return bars[max(0, min(7, k))]
        })
    }

    /// The Chrome trace event format (Perfetto, chrome://tracing): one
    /// process per rank, complete events ("X") for its phases of every step.
    public func chromeTrace() -> [String: Any] {
        var events: [[String: Any]] = []
        let ordered = logs.sorted(by: { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) })
        for (pid, l) in ordered.enumerated() {
            let rank = l.records.first?["rank"] as? Int ?? pid
            events.append(["name": "process_name", "ph": "M", "pid": rank, "tid": 0, "ts": 0, "args": ["name": "\(l.role) \(l.index) (rank \(rank))"]])
            events.append(["name": "thread_name", "ph": "M", "pid": rank, "tid": 0, "ts": 0, "args": ["name": l.role]])
            for r in l.events("step") {
                guard let t = r["t"] as? Double, let stepS = r["step_s"] as? Double, let step = r["step"] as? Int else { continue }
                let end = t * 1e6, start = end - stepS * 1e6
                let wait = (r["wait_s"] as? Double ?? 0) * 1e6
                if l.role == "worker" {
                    let compute = (r["compute_s"] as? Double ?? 0) * 1e6
                    events.append(["name": "compute", "cat": "step", "ph": "X", "pid": rank, "tid": 0, "ts": start, "dur": compute, "args": ["step": step]])
                    events.append(["name": "wait for parameters", "cat": "step", "ph": "X", "pid": rank, "tid": 0,
                                   "ts": start + compute, "dur": max(0, min(wait, stepS * 1e6 - compute)), "args": ["step": step]])
                } else {
                    let apply = (r["apply_s"] as? Double ?? 0) * 1e6
                    events.append(["name": "wait for gradients", "cat": "step", "ph": "X", "pid": rank, "tid": 0, "ts": start, "dur": max(0, stepS * 1e6 - apply), "args": ["step": step]])
                    events.append(["name": "sum + SGD + send", "cat": "step", "ph": "X", "pid": rank, "tid": 0, "ts": end - apply, "dur": apply, "args": ["step": step]])
                }
            }
            for r in l.events("checkpoint") + l.events("eval") {
                guard let t = r["t"] as? Double else { continue }
                events.append(["name": r["event"] as? String ?? "", "ph": "i", "s": "p", "pid": rank, "tid": 0, "ts": t * 1e6])
            }
        }
        return ["traceEvents": events, "displayTimeUnit": "ms"]
    }
}
