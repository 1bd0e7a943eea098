import Foundation

/// The summary `pstrain inspect` prints, and two runs side by side. Every
/// figure comes from log records, which are input like any other: a
/// crafted log must give odd text, never a trap (issue 20).
public enum SummaryText {
    /// A figure as a whole number; "-" when it is not finite (a log can
    /// make a rate infinite, and Int(inf) traps).
    static func whole(_ x: Double) -> String { x.isFinite ? String(format: "%.0f", x.rounded()) : "-" }

    static func pct(_ x: Double?) -> String { x.map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
    static func mb(_ x: Double) -> String { String(format: "%.2f MB", x / 1e6) }

    public static func text(_ s: RunSummary) -> String {
        var o: [String] = []
        o.append("run \(s.run)  (\(s.path))")
        o.append("status      \(s.status); \(s.attempts) attempt\(s.attempts == 1 ? "" : "s")")
        if let why = s.failure { o.append("why         " + why.replacingOccurrences(of: "\n", with: "\n            ")) }
        o.append("job         \(s.model), \(s.precision), batch \(s.batchSize), \(s.servers) server(s) + \(s.workers) worker(s); compression: \(s.compression)")
        o.append("progress    step \(s.stepsDone)/\(s.stepsTotal), epoch \(s.epochsDone)/\(s.epochsTotal), \(String(format: "%.1f", s.trainingSeconds)) s of training, \(whole(s.samplesPerSecond)) samples/s")
        o.append("accuracy    final \(pct(s.finalAccuracy)), best \(pct(s.bestAccuracy))  " + s.evals.map { String(format: "%.1f", $0.accuracy * 100) }.joined(separator: " "))
        o += s.ctrEvalFacts.map(labelled)
        o.append("loss        \(RunReport.sparkline(s.loss))  \(s.loss.first.map { String(format: "%.3f", $0) } ?? "-") -> \(s.loss.last.map { String(format: "%.3f", $0) } ?? "-")")
        o.append("wire        " + s.wireText)
        o += s.tableFacts.map(labelled)
        o += s.stalenessFacts.map(labelled)
        var scale = "loss scale  " + (s.lossScale.map { String(format: "%g", $0) } ?? "-") + ", \(s.skippedSteps) skipped step\(s.skippedSteps == 1 ? "" : "s")"
        if !s.scaleChanges.isEmpty { scale += "; " + s.scaleChanges.suffix(4).map { "step \($0.step): \(String(format: "%g", $0.from)) -> \(String(format: "%g", $0.to)) (\($0.why))" }.joined(separator: ", ") }
        o.append(scale)
        o.append("time        " + s.phases.map { "\($0.name) \(String(format: "%.0f%%", $0.share * 100))" }.joined(separator: "; "))
        o.append("")
        func col(_ x: String, _ w: Int) -> String { x.padding(toLength: max(w, x.count + 1), withPad: " ", startingAt: 0) }
        o.append(col("rank", 12) + col("steps", 7) + col("step p50", 10) + col("p95", 10) + col("max", 10) + col("compute p50", 13) + col("waiting", 9) + "samples/s")
        for r in s.ranks {
            o.append(col(r.rank, 12) + col(String(r.steps), 7) + col(ms(r.stepP50), 10) + col(ms(r.stepP95), 10) + col(ms(r.stepMax), 10)
                     + col(r.computeP50.map(ms) ?? "-", 13) + col(String(format: "%.0f%%", r.waitShare * 100), 9)
                     + (r.samplesPerSecond.map(whole) ?? "-"))
        }
        if let slow = straggler(s) { o.append("straggler   \(slow)") }
        o.append("")
        if s.checkpoints.isEmpty { o.append("checkpoints none") } else {
            o.append("checkpoints " + s.checkpoints.map { "\($0.name) \($0.state == "ok" ? "ok" : "DAMAGED")\($0.latest ? " (LATEST)" : "")" }.joined(separator: ", "))
        }
        for n in s.notes { o.append("note        \(n)") }
        return o.joined(separator: "\n")
    }

    /// "label       value", the summary's first column 12 wide.
    static func labelled(_ fact: (String, String)) -> String { fact.0.padding(toLength: max(12, fact.0.count + 1), withPad: " ", startingAt: 0) + fact.1 }

    static func ms(_ x: Double) -> String { String(format: "%.2fms", x * 1e3) }

    /// The worker whose compute stands out, if one does: in a synchronous
    /// step everyone's step time is the same, so the straggler shows as the
    /// one that computes longest and waits least.
    static func straggler(_ s: RunSummary) -> String? {
        let w = s.ranks.filter { $0.rank.hasPrefix("worker") && $0.computeP50 != nil }
        guard w.count >= 2 else { return nil }
        let sorted = w.sorted { $0.computeP50! > $1.computeP50! }
        let slow = sorted[0], others = sorted.dropFirst()
        let typical = others.map { $0.computeP50! }.sorted()[others.count / 2]
        guard slow.computeP50! > 1.3 * typical && slow.computeP50! - typical > 0.5e-3 else { return nil }
        let otherWait = others.map { $0.waitShare }.reduce(0, +) / Double(others.count)
        return "\(slow.rank) computes \(ms(slow.computeP50!)) a step against \(ms(typical)) for the others, who wait \(String(format: "%.0f%%", otherWait * 100)) of their steps (it waits \(String(format: "%.0f%%", slow.waitShare * 100)))"
    }

    public static func compare(_ a: RunSummary, _ b: RunSummary) -> String {
        func row(_ k: String, _ x: String, _ y: String) -> String {
            k.padding(toLength: 14, withPad: " ", startingAt: 0) + x.padding(toLength: 34, withPad: " ", startingAt: 0) + y
        }
        let rows = [row("", a.run, b.run), row("status", a.status, b.status),
                row("job", "\(a.model) \(a.precision) S\(a.servers) W\(a.workers)", "\(b.model) \(b.precision) S\(b.servers) W\(b.workers)"),
                row("steps", "\(a.stepsDone)/\(a.stepsTotal)", "\(b.stepsDone)/\(b.stepsTotal)"),
                row("final acc", pct(a.finalAccuracy), pct(b.finalAccuracy)), row("best acc", pct(a.bestAccuracy), pct(b.bestAccuracy)),
                row("samples/s", whole(a.samplesPerSecond), whole(b.samplesPerSecond)),
                row("wire/step", mb(a.wireBytesPerStep) + " (" + pct(a.compressionRatio) + ")", mb(b.wireBytesPerStep) + " (" + pct(b.compressionRatio) + ")"),
                row("skipped", String(a.skippedSteps), String(b.skippedSteps))]
            + compareCTR(a, b, row) + [row("loss", RunReport.sparkline(a.loss, width: 30), RunReport.sparkline(b.loss, width: 30))]
        return rows.joined(separator: "\n")
    }

    /// The final test AUC and log loss side by side, when either run has them.
    static func compareCTR(_ a: RunSummary, _ b: RunSummary, _ row: (String, String, String) -> String) -> [String] {
        func f4(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        guard a.evals.contains(where: { $0.auc != nil }) || b.evals.contains(where: { $0.auc != nil }) else { return [] }
        return [row("final AUC", f4(a.evals.last?.auc), f4(b.evals.last?.auc)),
                row("log loss", f4(a.evals.last?.logloss), f4(b.evals.last?.logloss))]
    }
}
