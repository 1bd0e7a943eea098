import Foundation
import PSRunLog

// ---------------------------------------------------------------------------
// What `pstrain inspect` and the HTML report add for a run with embedding
// tables (model.tables): the test AUC and log loss per epoch, and the rows
// and row bytes on the wire. A run without tables has none of these records'
// fields, so its summary, text and report are what they were.
// ---------------------------------------------------------------------------

extension RunSummary {
    /// The embedding tables of a run, from its ranks' step records.
    public struct Tables: Codable {
        /// A server's rows (over all tables) and their bytes (values and optimizer state) at its last step.
        public struct Held: Codable { public var rank: String; public var rows: Int; public var bytes: Int }
        /// Rows a worker pulls per step (unique ids of its microbatch), mean over its step records.
        public var rowsPulledPerWorkerStep: Double
        /// Wire bytes of the (delta-coded) row ids per row pulled.
        public var rowIdBytesPerId: Double
        /// Per step over all workers: row announcements, requests and gradients out; row values in.
        public var rowBytesSentPerStep: Double
        public var rowBytesRecvPerStep: Double
        /// Both directions' row bytes as a share of the whole wire (wireBytesPerStep).
        public var wireShare: Double
        public var held: [Held]
    }

    /// (label, value) lines of the test AUC and log loss per epoch; none without them.
    public var ctrEvalFacts: [(String, String)] {
        let auc = evals.compactMap(\.auc), ll = evals.compactMap(\.logloss)
        var facts: [(String, String)] = []
        func f4(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        func epochs(_ xs: [Double]) -> String { xs.map { String(format: "%.3f", $0) }.joined(separator: " ") }
        if !auc.isEmpty { facts.append(("test AUC", "final \(f4(auc.last)), best \(f4(auc.max()))  " + epochs(auc))) }
        if !ll.isEmpty { facts.append(("log loss", "final \(f4(ll.last)), best \(f4(ll.min()))  " + epochs(ll))) }
        return facts
    }

    /// The wire bytes per step and their share of raw FP32. With tables the
    /// rows are given apart and the share is of the rest (dense parameters,
    /// frame headers, control messages) against the dense parameters' raw
    /// FP32: row bytes have no FP32 parameter traffic to compare with (a share
    /// of 552% of the whole wire said nothing).
    public var wireText: String {
        func pct(_ x: Double) -> String { String(format: "%.2f%%", x * 100) }
        guard let t = tables else {
            return String(format: "%.2f MB", wireBytesPerStep / 1e6) + " per step (all workers, both directions) = \(pct(compressionRatio)) of raw FP32"
        }
        let b = Self.bytes, rows = t.rowBytesSentPerStep + t.rowBytesRecvPerStep, rest = max(wireBytesPerStep - rows, 0)
        return "\(b(wireBytesPerStep)) per step (all workers, both directions): table rows \(b(rows)), the rest \(b(rest)) = "
            + "\(pct(fp32BytesPerStep > 0 ? rest / fp32BytesPerStep : 1)) of the dense parameters' raw FP32 (\(b(fp32BytesPerStep)))"
    }

    /// (label, value) lines of the embedding tables; none without tables.
    public var tableFacts: [(String, String)] {
        guard let t = tables else { return [] }
        let b = Self.bytes
        return [("rows pulled", String(format: "%.1f per worker per step (mean), %.2f B of row id per id", t.rowsPulledPerWorkerStep, t.rowIdBytesPerId)),
                ("row bytes", "\(b(t.rowBytesSentPerStep)) out + \(b(t.rowBytesRecvPerStep)) in per step (all workers) = "
                    + String(format: "%.1f%%", t.wireShare * 100) + " of the wire (\(b(wireBytesPerStep)))"),
                ("rows held", t.held.map { "\($0.rank) \($0.rows) rows, \(b(Double($0.bytes)))" }.joined(separator: "; "))]
    }

    /// "512 B", "12.3 kB", "4.56 MB", "1.23 GB".
    public static func bytes(_ x: Double) -> String {
        switch abs(x) {
        case ..<1e3: return String(format: "%.0f B", x)
        case ..<1e6: return String(format: "%.1f kB", x / 1e3)
        case ..<1e9: return String(format: "%.2f MB", x / 1e6)
        default: return String(format: "%.2f GB", x / 1e9)
        }
    }
}

extension RunReport {
    /// The tables' figures from the step records that carry them (nil when none does).
    func tableSummary(wireBytesPerStep: Double, servers: Int) -> RunSummary.Tables? {
        let perWorker = logs.filter { $0.role == "worker" }.map { $0.records(WorkerStepRecord.self).filter { $0.rowsPulled != nil } }
        let steps = perWorker.flatMap { $0 }
        guard !steps.isEmpty else { return nil }
        func total(_ v: (WorkerStepRecord) -> Int?) -> Double { steps.reduce(0.0) { $0 + Double(v($1) ?? 0) } }
        let rows = total(\.rowsPulled)
        // Per step over all workers, as the wire: the records per worker that logged rows.
        let stepCount = max(Double(steps.count) / Double(perWorker.filter { !$0.isEmpty }.count), 1)
        let sent = total(\.rowBytesSent) / stepCount, recv = total(\.rowBytesRecv) / stepCount
        return .init(rowsPulledPerWorkerStep: rows / Double(steps.count), rowIdBytesPerId: rows > 0 ? total(\.rowIdBytes) / rows : 0,
                     rowBytesSentPerStep: sent, rowBytesRecvPerStep: recv,
                     wireShare: wireBytesPerStep > 0 ? (sent + recv) / wireBytesPerStep : 0, held: heldRows(servers: servers))
    }

    /// Each server's rows and bytes at its last step (the latest record of that step), servers of the last world only.
    func heldRows(servers: Int) -> [RunSummary.Tables.Held] {
        logs.filter { $0.role == "server" && $0.index < max(servers, 1) }.sorted { $0.index < $1.index }.compactMap { l in
            let recs = l.records(ServerStepRecord.self).filter { $0.tableRows != nil }
            guard let lastStep = recs.map(\.step).max(), let r = recs.last(where: { $0.step == lastStep }) else { return nil }
            return .init(rank: "server \(l.index)", rows: r.tableRows ?? 0, bytes: r.tableBytes ?? 0)
        }
    }
}
