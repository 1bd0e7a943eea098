import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import PSInspect
import XCTest

/// pstrain inspect on runs made here (not on hand-written fixtures).
final class InspectTests: XCTestCase {
    func inspect(_ args: [String], cwd: String) throws -> ProcessResult {
        Harness.run(try Harness.executable("pstrain"), ["inspect"] + args, cwd: cwd, timeout: 60)
    }

    /// A run with a restart, then a truncated last line and an older-schema
    /// record added to its logs: the summary, the JSON and the trace.
    func testSummaryJSONAndTraceOfARunWithARestartAndATruncatedLog() throws {
        let dir = Harness.tempDir("inspect")
        let r = try Harness.launch(["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--epochs", "2",
                                    "--set", "checkpoint.every_steps=10", "--max-restarts", "1", "--set", "debug.die_at_steps=15",
                                    "--run-dir", "r"], cwd: dir)
        assertEnded(r, status: 0, "run with a restart")
        let w1 = dir + "/r/logs/worker-1.jsonl"
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: w1))
        h.seekToEndOfFile()
        h.write(Data("{\"event\":\"note\",\"rank\":2}\n{\"v\":1,\"event\":\"st".utf8))   // an old record, then a line cut short
        h.closeFile()

        let text = try inspect(["r"], cwd: dir)
        assertEnded(text, status: 0, "inspect")
        let o = text.stdout
        XCTAssertTrue(o.contains("status      finished, restarted 1 time; 2 attempts"), o)
        XCTAssertTrue(o.contains("progress    step 32/32, epoch 2/2"), o)
        XCTAssertTrue(o.contains("accuracy    final "), o)
        XCTAssertTrue(o.range(of: "loss        [▁▂▃▄▅▆▇█]{20,}", options: .regularExpression) != nil, "sparkline\n\(o)")
        XCTAssertTrue(o.contains("worker-1.jsonl: its last line is truncated"), o)
        XCTAssertTrue(o.contains("records without a schema version"), o)
        XCTAssertTrue(o.contains("checkpoints step-20 ok, step-30 ok, step-32 ok (LATEST)"), o)
        for rank in ["server 0", "worker 0", "worker 1"] { XCTAssertTrue(o.contains("\n" + rank), "straggler table row \(rank)\n\(o)") }

        let js = try inspect(["r", "--json"], cwd: dir)
        assertEnded(js, status: 0, "inspect --json")
        let obj = try JSONDecoder().decode(RunSummary.self, from: Data(js.stdout.utf8))
        XCTAssertEqual(obj.restarts, 1)
        XCTAssertEqual(obj.stepsDone, 32)
        XCTAssertEqual(obj.ranks.count, 3)
        XCTAssertEqual(obj.loss.count, 32, "one loss per step, the restarted steps counted once")
        let finalAcc = try XCTUnwrap(obj.finalAccuracy)
        XCTAssertEqual(finalAcc, Harness.records(dir + "/r/logs/server-0.jsonl", EvalRecord.self).last?.testAccuracy)

        let tr = try inspect(["r", "--trace", "trace.json"], cwd: dir)
        assertEnded(tr, status: 0, "inspect --trace")
        // name, ph, ts, pid and tid are not optional: every event that decodes has them.
        let trace = try JSONDecoder().decode(ChromeTrace.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/trace.json")))
        let events = trace.traceEvents
        XCTAssertGreaterThan(events.count, 100)
        for e in events where e.ph == "X" { XCTAssertNotNil(e.dur, "complete event lacks dur: \(e)") }
        XCTAssertEqual(Set(events.map { $0.pid }), [0, 1, 2], "every rank has a track")
    }

    /// The straggler sleeps 40 ms a step: at 8 ms a loaded machine once gave
    /// a worker without the sleep a slower median compute (13.4 ms against 12.8).
    func testAStragglerStandsOut() throws {
        let dir = Harness.tempDir("straggler")
        let r = try Harness.launch(["--workers", "3", "--servers", "1", "--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048",
                                    "--epochs", "1", "--set", "debug.slow_worker=2", "--set", "debug.slow_ms=40", "--run-dir", "r"], cwd: dir)
        assertEnded(r, status: 0, "run with a straggler")
        let t = try inspect(["r"], cwd: dir)
        assertEnded(t, status: 0, "inspect")
        XCTAssertTrue(t.stdout.contains("straggler   worker 2 computes"), t.stdout)
        let cmp = try inspect(["r", "r"], cwd: dir)
        assertEnded(cmp, status: 0, "compare")
        XCTAssertTrue(cmp.stdout.contains("final acc"), cmp.stdout)
    }

    /// A click-through-rate run with embedding tables (W=2 S=2): the test AUC
    /// and log loss per epoch, the tables' summary from the ranks' logs, and
    /// an HTML report whose eight charts draw in chromium.
    func testAUCAndEmbeddingTablesOfACTRRun() throws {
        let chromium = try XCTUnwrap(Harness.which("chromium"), "chromium is not installed: run scripts/bootstrap --python")
        let dir = Harness.tempDir("inspectctr")
        let r = try Harness.launch(["--workers", "2", "--servers", "2", "--set", "data.kind=synthetic", "--set", "data.synthetic_train=4000",
                                    "--set", "data.synthetic_test=1000", "--set", "model.input=3", "--set", "model.loss=bce",
                                    "--set", "model.tables=[{type=\"embedding_bag\",rows=500,dim=4},{type=\"embedding_bag\",rows=40,dim=4}]",
                                    "--set", "model.layers=[{type=\"dense\",units=8},{type=\"relu\"},{type=\"dense\",units=1}]",
                                    "--set", "train.batch_size=100", "--set", "train.optimizer=adagrad", "--epochs", "2",
                                    "--set", "run.poll=sleep", "--run-dir", "r"], cwd: dir)
        assertEnded(r, status: 0, "CTR run")
        let evals = Harness.records(dir + "/r/logs/server-0.jsonl", EvalRecord.self)
        let aucs = evals.compactMap { $0.auc }
        XCTAssertEqual(aucs.count, 2, "an AUC per epoch in the eval records")
        // The launcher's last line gives a CTR model's AUC and log loss, not its accuracy (issue 21).
        XCTAssertTrue(r.stdout.contains(String(format: "pstrain: final test AUC %.4f, log loss %.4f after 2 epoch(s), 80 steps", aucs[1], evals[1].logloss ?? .nan)),
                      r.stdout)
        // The job line names the tables; the wire line gives the rows apart (it said "552% of raw FP32").
        let summary = try inspect(["r"], cwd: dir)
        XCTAssertTrue(summary.stdout.contains("job         MLP 11-8-1 on 3 dense features + 2 embedding tables (540 rows, dim 4)"), summary.stdout)
        XCTAssertTrue(summary.stdout.contains("per step (all workers, both directions): table rows ")
                      && summary.stdout.contains("of the dense parameters' raw FP32"), summary.stdout)

        let js = try inspect(["r", "--json"], cwd: dir)
        assertEnded(js, status: 0, "inspect --json")
        let s = try JSONDecoder().decode(RunSummary.self, from: Data(js.stdout.utf8))
        XCTAssertEqual(s.evals.compactMap { $0.auc }, aucs)
        XCTAssertEqual(s.evals.compactMap { $0.logloss }, evals.compactMap { $0.logloss })
        let t = try XCTUnwrap(s.tables, "a tables' summary")
        // The same figures from the worker logs, computed here.
        let w = (0..<2).flatMap { Harness.records(dir + "/r/logs/worker-\($0).jsonl", WorkerStepRecord.self) }
        XCTAssertEqual(w.count, 160, "80 steps of two workers")
        let pulled = Double(w.reduce(0) { $0 + ($1.rowsPulled ?? 0) })
        XCTAssertEqual(t.rowsPulledPerWorkerStep, pulled / 160, accuracy: 1e-9)
        XCTAssertGreaterThan(t.rowsPulledPerWorkerStep, 0)
        XCTAssertLessThanOrEqual(t.rowsPulledPerWorkerStep, 100, "at most the 50 samples x 2 fields of a microbatch")
        XCTAssertEqual(t.rowIdBytesPerId, Double(w.reduce(0) { $0 + ($1.rowIdBytes ?? 0) }) / pulled, accuracy: 1e-9)
        XCTAssertEqual(t.rowBytesSentPerStep, Double(w.reduce(0) { $0 + ($1.rowBytesSent ?? 0) }) / 80, accuracy: 1e-9)
        XCTAssertEqual(t.rowBytesRecvPerStep, Double(w.reduce(0) { $0 + ($1.rowBytesRecv ?? 0) }) / 80, accuracy: 1e-9)
        XCTAssertGreaterThan(t.wireShare, 0)
        XCTAssertLessThan(t.wireShare, 1, "row bytes are part of the wire")
        let last = (0..<2).map { Harness.records(dir + "/r/logs/server-\($0).jsonl", ServerStepRecord.self).last }
        XCTAssertEqual(t.held.map { $0.rows }, last.map { $0?.tableRows ?? -1 })
        XCTAssertEqual(t.held.map { $0.bytes }, last.map { $0?.tableBytes ?? -1 })
        let held = t.held.reduce(0) { $0 + $1.rows }
        XCTAssertGreaterThan(held, 0)
        XCTAssertLessThanOrEqual(held, 540, "no more rows than the two tables have")

        let text = try inspect(["r"], cwd: dir)
        assertEnded(text, status: 0, "inspect")
        XCTAssertTrue(text.stdout.contains("\ntest AUC    final \(String(format: "%.4f", aucs[1])), best \(String(format: "%.4f", aucs.max()!))  "),
                      text.stdout)
        for label in ["log loss    final ", "rows pulled ", "row bytes   ", "rows held   server 0 \(t.held[0].rows) rows, "] {
            XCTAssertTrue(text.stdout.contains("\n" + label), "\(label)\n\(text.stdout)")
        }

        let h = try inspect(["r", "--html", "report.html"], cwd: dir)
        assertEnded(h, status: 0, "inspect --html")
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        let dom = Harness.run(chromium, flags + ["--dump-dom", "file://\(dir)/report.html"], cwd: dir, timeout: 90)
        XCTAssertEqual(dom.status, 0, dom.stderr)
        XCTAssertTrue(dom.stdout.contains("data-charts=\"8/8\""), "every chart drew a path\n\(dom.stdout.prefix(300))")
        XCTAssertTrue(dom.stdout.contains("<title>pstrain run "), "the script leaves the page title alone (issue 21)\n\(dom.stdout.prefix(300))")
        XCTAssertTrue(dom.stdout.contains("<h2>embedding tables</h2>"), "the tables' section")
    }

    func testNotARunIsAClearError() throws {
        let dir = Harness.tempDir("notrun")
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        let e = try inspect(["empty"], cwd: dir)
        assertEnded(e, status: nil, "empty folder")
        XCTAssertTrue(e.stderr.contains("is not a pstrain run directory"), e.stderr)
        try FileManager.default.createDirectory(atPath: dir + "/other/logs", withIntermediateDirectories: true)
        try "{\"a\":1}\n{\"b\":2}\n".write(toFile: dir + "/other/logs/server-0.jsonl", atomically: true, encoding: .utf8)
        let o = try inspect(["other"], cwd: dir)
        assertEnded(o, status: nil, "foreign JSON lines")
        XCTAssertTrue(o.stderr.contains("is not a pstrain run log"), o.stderr)
    }
}

/// The HTML report in a real headless browser (Debian's chromium, installed by scripts/bootstrap --python).
final class HTMLReportTests: XCTestCase {
    func testChartsDrawInChromium() throws {
        let chromium = try XCTUnwrap(Harness.which("chromium"), "chromium is not installed: run scripts/bootstrap --python")
        let dir = Harness.tempDir("html")
        let r = try Harness.launch(["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--epochs", "2", "--precision", "fp16",
                                    "--run-dir", "r"], cwd: dir)
        assertEnded(r, status: 0, "run")
        let h = Harness.run(try Harness.executable("pstrain"), ["inspect", "r", "--html", "report.html"], cwd: dir)
        assertEnded(h, status: 0, "inspect --html")
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        // Self-contained: nothing loaded from elsewhere (an SVG's xmlns names a namespace, it loads nothing).
        XCTAssertNil(html.range(of: #"(src|href)\s*=\s*["']?[a-z]*:?//"#, options: .regularExpression), "an external resource")
        XCTAssertNil(html.range(of: #"@import|url\(\s*["']?[a-z]*:?//"#, options: .regularExpression), "an external stylesheet or font")
        XCTAssertFalse(html.contains("<script src") || html.contains("<link"), "an external script or stylesheet")
        XCTAssertEqual(html.components(separatedBy: "<svg class=\"chart\"").count - 1, 6, "six charts")
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        // The page's own script counts the charts that have a drawn path and puts the count in the title:
        // a script error would leave the title as it was ("pstrain run r").
        let dom = Harness.run(chromium, flags + ["--dump-dom", "file://\(dir)/report.html"], cwd: dir, timeout: 90)
        XCTAssertEqual(dom.status, 0, dom.stderr)
        XCTAssertTrue(dom.stdout.contains("data-charts=\"6/6\""), "every chart drew a path\n\(dom.stdout.prefix(300))")
        XCTAssertTrue(dom.stdout.contains("<title>pstrain run "), "the script leaves the page title alone (issue 21)\n\(dom.stdout.prefix(300))")
        let shot = Harness.run(chromium, flags + ["--window-size=1200,1400", "--screenshot=\(dir)/report.png", "file://\(dir)/report.html"], cwd: dir, timeout: 90)
        XCTAssertEqual(shot.status, 0, shot.stderr)
        let png = try Data(contentsOf: URL(fileURLWithPath: dir + "/report.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG")
        XCTAssertGreaterThan(png.count, 20_000, "not a blank page")
    }
}

/// Live progress: a bar redrawn in place on a terminal, plain lines otherwise;
/// --follow watches a running job until it ends.
final class ProgressTests: XCTestCase {
    func testBarOnATerminalAndFollow() throws {
        let dir = Harness.tempDir("progress")
        let pstrain = try Harness.executable("pstrain")
        let script = try XCTUnwrap(Harness.which("script"), "script (util-linux) gives the launcher a terminal")
        let launch = "\(pstrain) launch --run-dir r --set data.kind=synthetic --set data.synthetic_train=16384 --epochs 2"
        let run = try XCTUnwrap(Harness.start(script, ["-q", "-e", "-c", launch, dir + "/tty.log"], cwd: dir))
        // Follow it while it runs.
        var waited = 0
        while !FileManager.default.fileExists(atPath: dir + "/r/logs/server-0.jsonl") && waited < 600 { usleep(50_000); waited += 1 }
        let follow = Harness.run(pstrain, ["inspect", "r", "--follow", "--interval", "0.3"], cwd: dir, timeout: 120)
        let r = Harness.finish(run, timeout: 120)
        assertEnded(r, status: 0, "launch on a terminal")
        let tty = try String(contentsOfFile: dir + "/tty.log", encoding: .utf8)
        XCTAssertTrue(tty.contains("\r\u{1B}[K[") && tty.contains("] epoch "), "a bar redrawn in place")
        XCTAssertTrue(tty.contains("ETA "), "with an ETA")
        XCTAssertTrue(tty.contains("test accuracy"), "epoch results printed as lines")
        assertEnded(follow, status: 0, "inspect --follow")
        XCTAssertTrue(follow.stdout.contains("status      finished"), "follow ends when the run does\n\(follow.stdout.suffix(500))")
        // Without a terminal the same job prints plain lines (tested throughout): no escape codes.
        let plain = try Harness.launch(["--run-dir", "p", "--set", "data.kind=synthetic", "--epochs", "1"], cwd: dir)
        assertEnded(plain, status: 0, "launch without a terminal")
        XCTAssertFalse(plain.stdout.contains("\u{1B}["), "no escape codes when stdout is not a terminal")
    }
}
