import Foundation
import PSRunLog

/// A self-contained HTML report of a run: no network, inline SVG charts
/// (loss, test accuracy, with embedding tables the test AUC and log loss,
/// samples per second, loss scale, wire bytes per step, per-rank step time;
/// with tables also a short "embedding tables" section). A few lines of script check that every chart drew and
/// put the result in the body's data-charts attribute ("6/6"), so a headless browser can tell; the
/// page title stays the run's.
public enum HTMLReport {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// One line chart: `series` of (name, points (x, y)).
    static func chart(_ title: String, unit: String, series: [(String, [(Double, Double)])], logY: Bool = false) -> String {
        let w = 560.0, h = 220.0, left = 64.0, right = 12.0, top = 26.0, bottom = 30.0
        let pts = series.flatMap { $0.1 }.filter { $0.0.isFinite && $0.1.isFinite && (!logY || $0.1 > 0) }
        guard let x0 = pts.map({ $0.0 }).min(), let x1 = pts.map({ $0.0 }).max(),
              var y0 = pts.map({ $0.1 }).min(), var y1 = pts.map({ $0.1 }).max() else {
            return "<figure class=\"chart\"><figcaption>\(esc(title))</figcaption><p>no data</p></figure>"
        }
        func ty(_ y: Double) -> Double { logY ? log10(y) : y }
        y0 = ty(y0); y1 = ty(y1)
        if y1 - y0 < 1e-12 { y0 -= 0.5; y1 += 0.5 }
        let xs = max(x1 - x0, 1e-12)
        func px(_ x: Double) -> Double { left + (x - x0) / xs * (w - left - right) }
        func py(_ y: Double) -> Double { top + (1 - (ty(y) - y0) / (y1 - y0)) * (h - top - bottom) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        var svg = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\">"
        svg += "<text x=\"\(left)\" y=\"16\" class=\"t\">\(esc(title))</text>"
        svg += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" class=\"axis\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" class=\"axis\"/>"
        let fmt = { (v: Double) -> String in abs(v) >= 1000 || (abs(v) < 0.01 && v != 0) ? String(format: "%.3g", v) : String(format: "%.3f", v) }
        let yLo = logY ? pow(10, y0) : y0, yHi = logY ? pow(10, y1) : y1
        svg += "<text x=\"\(left - 4)\" y=\"\(h - bottom)\" class=\"l\" text-anchor=\"end\">\(fmt(yLo))</text>"
        svg += "<text x=\"\(left - 4)\" y=\"\(top + 8)\" class=\"l\" text-anchor=\"end\">\(fmt(yHi))</text>"
        svg += "<text x=\"\(left)\" y=\"\(h - 10)\" class=\"l\">\(String(format: "%.0f", x0))</text>"
        svg += "<text x=\"\(w - right)\" y=\"\(h - 10)\" class=\"l\" text-anchor=\"end\">\(String(format: "%.0f", x1)) \(esc(unit))</text>"
        for (i, (name, points)) in series.enumerated() {
            let p = points.filter { $0.0.isFinite && $0.1.isFinite && (!logY || $0.1 > 0) }
            guard !p.isEmpty else { continue }
            // At most ~800 points per path: enough for the eye, small files.
            let stride = max(1, p.count / 800)
            let sampled = Swift.stride(from: 0, to: p.count, by: stride).map { p[$0] }
            let d = sampled.enumerated().map { (j, q) in (j == 0 ? "M" : "L") + String(format: "%.1f,%.1f", px(q.0), py(q.1)) }.joined()
            let c = colors[i % colors.count]
            svg += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\"/>"
            if series.count > 1 { svg += "<text x=\"\(w - right - 4)\" y=\"\(top + 12 + Double(i) * 12)\" class=\"l\" text-anchor=\"end\" fill=\"\(c)\">\(esc(name))</text>" }
        }
        return svg + "</svg>"
    }

    public static func render(_ r: RunReport) -> String {
        let s = r.summary()
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>pstrain run \(esc(s.run))</title>
        <style>
        body { font: 14px/1.4 sans-serif; margin: 24px; color: #222; }
        table { border-collapse: collapse; margin: 12px 0; } td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #ddd; }
        .charts { display: flex; flex-wrap: wrap; gap: 12px; }
        svg.chart { border: 1px solid #ddd; background: #fff; }
        .t { font: bold 13px sans-serif; } .l { font: 11px sans-serif; fill: #555; } .axis { stroke: #999; }
        </style></head><body>
        <h1>pstrain run \(esc(s.run))</h1>
        \(factTable(facts(s)))
        <div class="charts">\(charts(r, s).joined(separator: "\n"))</div>\(tablesSection(s))
        <h2>ranks</h2>
        <table><tr><th>rank</th><th>steps</th><th>step p50 ms</th><th>p95</th><th>max</th><th>compute p50</th><th>waiting</th></tr>\(rankRows(s))</table>
        <script>
        (function () {
          var svgs = document.querySelectorAll('svg.chart');
          var drawn = 0;
          svgs.forEach(function (s) { var p = s.querySelector('path'); if (p && p.getAttribute('d').length > 2) drawn++; });
          document.body.setAttribute('data-charts', drawn + '/' + svgs.length);
        })();
        </script>
        </body></html>
        """
    }

    /// The charts: loss, test accuracy (with tables: AUC and log loss), samples/s, loss scale, wire, step time per rank.
    static func charts(_ r: RunReport, _ s: RunSummary) -> [String] {
        var steps: [Int: ServerStepRecord] = [:]
        for rec in r.log("server", 0)?.records(ServerStepRecord.self) ?? [] { steps[rec.step] = rec }
        let keys = steps.keys.sorted()
        func series(_ value: (ServerStepRecord) -> Double?) -> [(Double, Double)] { keys.compactMap { k in steps[k].flatMap(value).map { (Double(k), $0) } } }
        func evalSeries(_ value: (RunSummary.Eval) -> Double?) -> [(Double, Double)] { s.evals.compactMap { e in value(e).map { (Double(e.step), $0) } } }
        let rankTimes = r.logs.sorted { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) }.map { l in
            ("\(l.role) \(l.index)", l.records((any StepRecord).self).map { (Double($0.step), $0.stepS * 1e3) })
        }
        let auc = evalSeries { $0.auc }, logloss = evalSeries { $0.logloss }
        return [chart("training loss (server 0, global batch)", unit: "step", series: [("loss", series { $0.loss })]),
                chart("test accuracy (%)", unit: "step", series: [("accuracy", evalSeries { $0.accuracy * 100 })])]
            + (auc.isEmpty ? [] : [chart("test AUC", unit: "step", series: [("AUC", auc)])])
            + (logloss.isEmpty ? [] : [chart("test log loss", unit: "step", series: [("log loss", logloss)])])
            + [chart("samples per second (server 0)", unit: "step", series: [("samples/s", series { $0.samplesPerS })]),
               chart("loss scale (log scale)", unit: "step", series: [("scale", series { $0.lossScale })], logY: true),
               chart("wire MB per step (all workers, both directions)", unit: "step", series: [("MB", wireSeries(r))]),
               chart("step time per rank (ms)", unit: "step", series: rankTimes)]
    }

    /// MB per step: the latest record of each step per worker (a restarted step is logged twice), summed over workers.
    static func wireSeries(_ r: RunReport) -> [(Double, Double)] {
        var perStep: [Int: Double] = [:]
        for w in r.logs.filter({ $0.role == "worker" }) {
            var last: [Int: Double] = [:]
            for rec in w.records(WorkerStepRecord.self) { last[rec.step] = Double(rec.bytesSent) + Double(rec.bytesRecv) }
            for (k, v) in last { perStep[k, default: 0] += v }
        }
        return perStep.keys.sorted().map { (Double($0), perStep[$0]! / 1e6) }
    }

    /// The facts at the top (with tables: the test AUC and log loss after the accuracy).
    static func facts(_ s: RunSummary) -> [(String, String)] {
        let pct = { (x: Double?) in x.map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
        return [
            ("status", s.status)] + (s.failure.map { [("why", $0)] } ?? []) + [("job", "\(s.model), \(s.precision), batch \(s.batchSize), \(s.servers) server(s) + \(s.workers) worker(s)"),
            ("compression", s.compression), ("progress", "step \(s.stepsDone)/\(s.stepsTotal), epoch \(s.epochsDone)/\(s.epochsTotal)"),
            ("training time", String(format: "%.1f s, %.0f samples/s", s.trainingSeconds, s.samplesPerSecond)),
            ("test accuracy", "final \(pct(s.finalAccuracy)), best \(pct(s.bestAccuracy))"),
        ] + s.ctrEvalFacts + [
            ("wire", s.wireText),
            ("skipped steps", String(s.skippedSteps)),
            ("checkpoints", s.checkpoints.isEmpty ? "none" : s.checkpoints.map { "\($0.name) \($0.state == "ok" ? "ok" : "DAMAGED")\($0.latest ? " (LATEST)" : "")" }.joined(separator: ", ")),
        ] + s.notes.map { ("note", $0) }
    }

    static func factTable(_ facts: [(String, String)]) -> String {
        "<table>\(facts.map { "<tr><th>\(esc($0.0))</th><td>\(esc($0.1))</td></tr>" }.joined())</table>"
    }

    /// The embedding tables' section; empty without tables.
    static func tablesSection(_ s: RunSummary) -> String {
        s.tables == nil ? "" : "\n<h2>embedding tables</h2>\n" + factTable(s.tableFacts)
            + (s.staleness == nil ? "" : "\n<h2>staleness (ssp, async)</h2>\n" + factTable(s.stalenessFacts))
    }

    static func rankRows(_ s: RunSummary) -> String {
        s.ranks.map { rk in
            "<tr><td>\(esc(rk.rank))</td><td>\(rk.steps)</td><td>\(String(format: "%.2f", rk.stepP50 * 1e3))</td><td>\(String(format: "%.2f", rk.stepP95 * 1e3))</td>"
                + "<td>\(String(format: "%.2f", rk.stepMax * 1e3))</td><td>\(rk.computeP50.map { String(format: "%.2f", $0 * 1e3) } ?? "-")</td>"
                + "<td>\(String(format: "%.0f%%", rk.waitShare * 100))</td></tr>"
        }.joined()
    }
}
