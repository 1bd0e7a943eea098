import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSRunLog
import PSLaunch

// ---------------------------------------------------------------------------
// Reading a run directory back (pstrain inspect): every rank's log, the
// launcher's events, the checkpoints. Tolerant: a truncated last line, a run
// that died mid-way, several attempts, older schema versions are read and
// reported for what they are; a folder that is not a run is a clear error.
// ---------------------------------------------------------------------------

/// One rank's log, read into its record types (PSCore's RunLog/).
public struct RankLog {
    public let file: String
    public let role: String
    public let index: Int
    public var log: LogFile
    /// Lines that did not parse (a crash can truncate the last one).
    public var badLines: [Int] { log.badLines }
    public var lineCount: Int { log.lineCount }
    /// Schema versions seen (1 today; records without "v" count as 0).
    public var versions: Set<Int> { log.versions }

    /// The records of one type (or protocol: `(any StepRecord).self`), in file order.
    public func records<R>(_ type: R.Type) -> [R] { log.records(type) }
    public func logged<R>(_ type: R.Type) -> [Logged<R>] { log.logged(type) }
    public func count(_ event: String) -> Int { log.count(event) }
}

public struct RunReport {
    public let dir: String
    public var logs: [RankLog] = []
    /// The launcher's events.jsonl (nil: none).
    public var events: LogFile?
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
            guard parts.count == 2, let i = Int(parts[1]), let source = LogSource(fileName: n), source != .launcher else { continue }
            guard let file = LogFile(path: logDir + "/" + n, source: source) else { continue }
            if !file.entries.isEmpty && !file.entries.contains(where: { $0.event != nil }) {
                throw PSError("\(logDir)/\(n) is not a pstrain run log (no record has an \"event\")")
            }
            logs.append(RankLog(file: logDir + "/" + n, role: source.rawValue, index: i, log: file))
        }
        events = LogFile(path: dir + "/events.jsonl", source: .launcher)
    }

    public func log(_ role: String, _ index: Int) -> RankLog? { logs.first { $0.role == role && $0.index == index } }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }

    public func summary() -> RunSummary {
        let server0 = log("server", 0)
        let attempts = max(1, attemptEvents.reduce(0) { $0 + (events?.count($1) ?? 0) }, server0?.count(HelloRecord.event) ?? 0)
        let restarts = events?.count(RestartRecord.event) ?? 0
        let lastStart = server0?.records(ServerStartRecord.self).last
        let stepsTotal = lastStart?.steps ?? 0
        let perEpoch = lastStart?.stepsPerEpoch ?? 1
        let (serverSteps, evalRecords) = lineage(server0)
        let stepKeys = serverSteps.keys.sorted()
        let stepsDone = clampedSum(stepKeys.last ?? -1, 1)
        let workers = logs.filter { $0.role == "worker" }
        let servers = logs.filter { $0.role == "server" }
        let hello = server0?.records(HelloRecord.self).last
        let evals = evalRecords.map { RunSummary.Eval(epoch: $0.epoch, step: $0.step, accuracy: $0.testAccuracy, auc: $0.auc, logloss: $0.logloss) }
        let trainSeconds = stepKeys.reduce(0.0) { $0 + (serverSteps[$1]?.stepS ?? 0) }
        let samples = stepKeys.reduce(0) { clampedSum($0, serverSteps[$1]?.samples ?? 0) }
        let wSteps = workers.flatMap { $0.records(WorkerStepRecord.self) }
        let wire = wSteps.reduce(0.0) { $0 + Double($1.bytesSent) + Double($1.bytesRecv) }
        let fp32 = wSteps.reduce(0.0) { $0 + 2 * Double($1.fp32Bytes) }
        // Per step: average over the step records (a restarted step is logged twice).
        let stepCount = max(Double(wSteps.count) / Double(max(workers.count, 1)), 1)
        var summary = RunSummary(
            run: (dir as NSString).lastPathComponent, path: dir,
            status: status(server0: server0, stepsTotal: stepsTotal, stepsDone: stepsDone, restarts: restarts),
            attempts: attempts, restarts: restarts,
            servers: hello?.servers ?? servers.count, workers: hello?.workers ?? workers.count,
            model: modelDescription(), precision: lastStart?.precision ?? config?.train.precision.rawValue ?? "fp32",
            compression: workers.first?.records(WorkerStartRecord.self).last?.compression ?? "?",
            batchSize: config?.train.stepBatch ?? 0, stepsDone: stepsDone, stepsTotal: stepsTotal,
            epochsDone: evals.last?.epoch ?? stepsDone / max(perEpoch, 1), epochsTotal: config?.train.epochs ?? 0,
            trainingSeconds: trainSeconds, samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9),
            finalAccuracy: evals.last?.accuracy, bestAccuracy: evals.map { $0.accuracy }.max(), evals: evals,
            loss: stepKeys.compactMap { serverSteps[$0]?.loss },
            phases: phases(workers: workers, servers: servers), wireBytesPerStep: wire / stepCount, fp32BytesPerStep: fp32 / stepCount,
            compressionRatio: fp32 > 0 ? wire / fp32 : 1,
            lossScale: serverSteps[stepKeys.last ?? -1]?.lossScale,
            skippedSteps: serverSteps[stepKeys.last ?? -1]?.skipped ?? 0,
            scaleChanges: (server0?.records(ScaleRecord.self) ?? []).map {
                RunSummary.ScaleChange(step: $0.step, from: $0.from, to: $0.to, why: $0.why)
            },
            ranks: rankStats(), checkpoints: checkpointInfos(), notes: notes())
        summary.failure = failure()
        summary.tables = tableSummary(wireBytesPerStep: summary.wireBytesPerStep, servers: summary.servers)
        let stale = server0?.records(StalenessRecord.self) ?? []
        summary.staleness = stale.isEmpty ? nil : stale.map { r in
            let n = r.counts.reduce(0.0) { $0 + Double($1) }
            let mean = n == 0 ? 0 : r.counts.enumerated().reduce(0.0) { $0 + Double($1.offset) * Double($1.element) } / n
            return RunSummary.Staleness(epoch: r.epoch, max: r.max ?? 0, mean: mean, maxLead: r.maxLead)
        }
        return summary
    }

    /// Server 0's step and eval records of the run's final line of attempts:
    /// an attempt that resumed from step k replaces what the attempts before
    /// it logged from step k on (steps past their last checkpoint, trained
    /// again), so that a restarted run shows each step and epoch once.
    func lineage(_ server0: RankLog?) -> (steps: [Int: ServerStepRecord], evals: [EvalRecord]) {
        var steps: [Int: ServerStepRecord] = [:], evals: [EvalRecord] = [], attemptBegins = false
        for e in server0?.log.entries ?? [] {
            switch e.record {
            case is HelloRecord: attemptBegins = true
            case let r as ServerStepRecord:
                if attemptBegins {
                    steps = steps.filter { $0.key < r.step }
                    evals.removeAll { $0.step > r.step }
                    attemptBegins = false
                }
                // ssp and async: one record per push; a step's pushes add up.
                if r.worker != nil, var had = steps[r.step], had.worker != nil, had.worker != r.worker {
                    had.samples = clampedSum(had.samples, r.samples); had.stepS += r.stepS; had.worker = r.worker
                    steps[r.step] = had
                } else {
                    steps[r.step] = r
                }
            case let r as EvalRecord:
                evals.removeAll { $0.epoch == r.epoch }
                evals.append(r)
            default: break
            }
        }
        return (steps, evals)
    }

    /// Why the last attempt failed, in the words of the rank that said so:
    /// the last error record of the ranks' logs written after the attempt
    /// began, else the first error line of its mpirun output (a run refused
    /// at start-up has no rank logs). nil when the last attempt did not fail.
    func failure() -> String? {
        guard let exit = events?.logged(ExitRecord.self).last, exit.record.code != 0 || exit.record.signal != 0 else { return nil }
        let began = events?.entries.last { attemptEvents.contains($0.event ?? "") }?.envelope.t ?? 0
        var last: (t: Double, text: String)?
        for l in logs {
            for e in l.logged(ErrorRecord.self) where (e.t ?? 0) >= began && (last == nil || (e.t ?? 0) >= last!.t) {
                last = (e.t ?? 0, "\(l.role) \(l.index): \(e.record.message)")
            }
        }
        if let last { return last.text }
        let out = (try? String(contentsOfFile: dir + "/logs/mpirun-\(exit.record.attempt).log", encoding: .utf8)) ?? ""
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let i = lines.firstIndex(where: { $0.hasPrefix("pstrain") && $0.contains("error") }) else {
            if let death = mpirunRankDeath(out) {
                let servers = log("server", 0)?.records(HelloRecord.self).last?.servers ?? config?.run.servers ?? 1
                let who = death.rank < servers ? "server \(death.rank)" : "worker \(death.rank - servers)"
                return "\(who) (rank \(death.rank)) was killed by signal \(death.signal) (\(death.name)); mpirun then stopped the others"
            }
            return "no rank said why; see \(dir)/logs/mpirun-\(exit.record.attempt).log"
        }
        // The message and its indented continuation lines, as the ranks print them.
        let text = ([lines[i]] + lines[(i + 1)...].prefix { $0.hasPrefix("  ") }).joined(separator: "\n")
        return String(text.prefix(2000))
    }

    /// What the logs themselves say about the run's records: truncated or
    /// unreadable lines, other schema versions.
    func notes() -> [String] {
        var notes: [String] = []
        for l in logs {
            let name = (l.file as NSString).lastPathComponent
            if !l.badLines.isEmpty {
                let last = l.badLines == [l.lineCount] ? "its last line is truncated (the rank stopped while writing)" : "lines \(l.badLines.prefix(5).map(String.init).joined(separator: ", ")) do not parse"
                notes.append("\(name): \(last)")
            }
            if l.versions.contains(where: { $0 > RunLog.schemaVersion }) { notes.append("\(name): written by a newer pstrain (schema \(l.versions.max()!)); fields this version does not know are ignored") }
            if l.versions.contains(0) { notes.append("\(name): records without a schema version (older than schema 1)") }
            let odd = l.log.unreadableLines
            if !odd.isEmpty { notes.append("\(name): lines \(odd.prefix(5).map(String.init).joined(separator: ", ")) lack fields of their event or hold other types; left out") }
        }
        return notes
    }

    /// Finished, stopped, failed, running or ended without a result.
    func status(server0: RankLog?, stepsTotal: Int, stepsDone: Int, restarts: Int) -> String {
        let done = server0?.records(ServerDoneRecord.self).last
        let lastExit = events?.records(ExitRecord.self).last
        let stopped = server0?.records(ServerStoppedRecord.self).last != nil && (done?.steps ?? 0) < stepsTotal
        var status: String
        if let d = done, d.steps == stepsTotal, stepsTotal > 0 { status = "finished" }
        else if stopped { status = "stopped (preempted) at step \(stepsDone); resume it with pstrain resume" }
        else if let e = lastExit, e.code != 0 || e.signal != 0 { status = "failed (attempt \(e.attempt) exited with \(e.code))" }
        else {
            let mod = (try? FileManager.default.attributesOfItem(atPath: server0?.file ?? "")[.modificationDate] as? Date) ?? .distantPast
            status = Date().timeIntervalSince(mod) < 30 ? "running" : "ended without a result (no exit recorded)"
        }
        if restarts > 0 { status += ", restarted \(restarts) time\(restarts == 1 ? "" : "s")" }
        return status
    }

    /// Where the ranks' time went, summed over their step records.
    func phases(workers: [RankLog], servers: [RankLog]) -> [RunSummary.Phase] {
        func sum<R>(_ logs: [RankLog], _ type: R.Type, _ value: (R) -> Double) -> Double {
            logs.reduce(0) { $0 + $1.records(type).reduce(0) { $0 + value($1) } }
        }
        let wCompute = sum(workers, WorkerStepRecord.self) { $0.computeS }, wWait = sum(workers, WorkerStepRecord.self) { $0.waitS }
        let wEncode = sum(workers, WorkerStepRecord.self) { $0.encodeS }, wDecode = sum(workers, WorkerStepRecord.self) { $0.decodeS }
        let wTotal = max(sum(workers, WorkerStepRecord.self) { $0.stepS }, 1e-12)
        let sApply = sum(servers, ServerStepRecord.self) { $0.applyS }, sTotal = max(sum(servers, ServerStepRecord.self) { $0.stepS }, 1e-12)
        return [RunSummary.Phase(name: "worker compute (forward, backward, encode)", seconds: wCompute, share: wCompute / wTotal),
                .init(name: "worker waiting for parameters", seconds: wWait, share: wWait / wTotal),
                .init(name: "  of which codec encode", seconds: wEncode, share: wEncode / wTotal),
                .init(name: "  of which codec decode", seconds: wDecode, share: wDecode / wTotal),
                .init(name: "server sum + SGD + send", seconds: sApply, share: sApply / sTotal)]
    }

    /// Per rank: steps, step-time percentiles, share of time waiting.
    func rankStats() -> [RunSummary.RankStat] {
        logs.sorted(by: { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) }).map { l in
            let st = l.records((any StepRecord).self)
            // A step an attempt trained again after a restart counts once.
            let distinct = Set(st.map(\.step)).count
            let times = st.map { $0.stepS }
            let waits = st.reduce(0.0) { $0 + $1.waitS }
            let ws = l.role == "worker" ? l.records(WorkerStepRecord.self) : []
            let sps = l.role == "worker" ? ws.map { $0.samplesPerS }.sorted().dropFirst(st.count / 2).first : nil
            let compute = l.role == "worker" ? Self.percentile(ws.map { $0.computeS }, 0.5) : nil
            return .init(rank: "\(l.role) \(l.index)", steps: distinct, stepP50: Self.percentile(times, 0.5), stepP95: Self.percentile(times, 0.95),
                         stepMax: times.max() ?? 0, waitShare: waits / max(times.reduce(0, +), 1e-12), samplesPerSecond: sps,
                         computeP50: compute)
        }
    }

    /// Every checkpoint of the run, verified.
    func checkpointInfos() -> [RunSummary.CheckpointInfo] {
        let latest = CheckpointStore.latestName(dir)
        return CheckpointStore.list(dir).map { c in
            let state: String
            do { try CheckpointStore.verify(c.path); state = "ok" } catch { state = "DAMAGED: \(error)" }
            return .init(name: "step-\(c.step)", state: state, latest: "step-\(c.step)" == latest)
        }
    }

    /// "MLP 784-256-128-10" (the input and the dense layers' widths) for a
    /// network of dense layers and activations; otherwise the input shape
    /// and the layer types: "[1, 28, 28] conv2d-relu-maxpool2d-...-dense".
    /// With tables: "MLP 117-64-32-1 on 13 dense features + 26 embedding tables (6230 rows, dim 4)",
    /// the MLP's input being the dense features and every table's bag; with
    /// model.tables[i].fields, "(... dim 4; fields 0,3,1)", the fields whose bags it takes, in order.
    func modelDescription() -> String {
        guard let c = config, !c.model.layers.isEmpty else { return "?" }
        let input = c.model.layerInputShape
        let tables = c.model.tables
        let onTables = tables.isEmpty ? "" : " on \(c.model.inputSize) dense feature\(c.model.inputSize == 1 ? "" : "s") + \(tables.count) embedding table\(tables.count == 1 ? "" : "s") "
            + "(\(tables.reduce(0) { clampedSum($0, $1.rows) }) rows, dim \(Set(tables.map(\.dim)).sorted().map(String.init).joined(separator: "/"))"
            + (!c.model.namesFields ? ")" : "; fields \(c.model.features.map { String($0.field) }.joined(separator: ","))" + ")")
        let plain = input.count == 1 && c.model.layers.allSatisfy { $0.type == "dense" || LayerKinds.named($0.type) is Activation.Type }
        guard plain else { return input.shapeText + " " + c.model.layers.map(\.type).joined(separator: "-") + onTables }
        var dims = [input.reduce(1, *)]
        for e in c.model.layers where e.options["units"] != nil { dims.append(e.int("units")) }
        return "MLP " + dims.map(String.init).joined(separator: "-") + onTables
    }

    /// The events that begin an attempt.

    /// Eight levels of block characters over `width` bins.
    public static func sparkline(_ xs: [Double], width: Int = 60) -> String {
        // Halved, so that differences and means of values near Double's
        // limits stay finite (a log holding +-1e308 made one NaN, issue 20).
        let v = xs.filter { $0.isFinite }.map { $0 / 2 }
        guard let lo = v.min(), let hi = v.max(), !v.isEmpty else { return "" }
        let bars = Array("▁▂▃▄▅▆▇█")
        let bins = min(width, v.count)
        return String((0..<bins).map { b -> Character in
            let a = b * v.count / bins, e = max(a + 1, (b + 1) * v.count / bins)
            let m = v[a..<e].reduce(0) { $0 + $1 / Double(e - a) }
            let t = hi > lo ? (m - lo) / (hi - lo) * 7.999 : 0
            return bars[t.isFinite ? max(0, min(7, Int(max(0, min(7.999, t))))) : 0]
        })
    }

    /// The Chrome trace event format (Perfetto, chrome://tracing): one
    /// process per rank, complete events ("X") for its phases of every step.
}
