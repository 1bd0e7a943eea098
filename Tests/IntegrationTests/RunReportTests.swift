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

/// PSInspect on a run directory written here through the record types (no
/// MPI): what the summary, the trace and the HTML report make of it.
final class RunReportTests: XCTestCase {
    func step(_ k: Int, loss: Double, scale: Double = 1, skipped: Int = 0) -> ServerStepRecord {
        ServerStepRecord(step: k, epoch: 0, loss: loss, fp32Bytes: 400, encodeS: 0.001, decodeS: 0.002, lr: 0.1, lossScale: scale,
                         skipped: skipped, overflow: false, samples: 10, stepS: 0.5, waitS: 0.25, applyS: 0.125, bytesRecv: 100,
                         bytesSent: 200, samplesPerS: 20, paramsDigest: nil)
    }

    func workerStep(_ k: Int, compute: Double) -> WorkerStepRecord {
        WorkerStepRecord(step: k, epoch: 0, loss: 1, fp32Bytes: 400, encodeS: 0.01, decodeS: 0.02, lossScale: 1, overflow: false,
                         skipped: 0, samples: 10, stepS: 0.5, computeS: compute, waitS: 0.5 - compute, bytesSent: 50, bytesRecv: 150,
                         samplesPerS: 20)
    }

    /// Logs are input too (issue 20): huge integers and losses of +-1e308,
    /// which trapped inspect on sums, step + 1 and the sparkline, give a
    /// summary, its text, the HTML report and the trace.
    func testCraftedLogsDoNotCrashInspect() throws {
        let dir = Harness.tempDir("crafted") + "/r"
        let server = try RunLog(path: dir + "/logs/server-0.jsonl", fixed: RankStamp(run: "r", rank: 0, role: "server", index: 0))
        server.write(ServerStartRecord(servers: 1, workers: 1, shardLo: 0, shardHi: 100, pieces: 1, precision: "fp32", compression: "none",
                                       lossScale: 1, steps: Int.max, stepsPerEpoch: 1))
        for (k, loss) in [(0, 1e308), (1, -1e308), (Int.max, 1e308)] {
            server.write(ServerStepRecord(step: k, epoch: 0, loss: loss, fp32Bytes: Int.max, encodeS: 0, decodeS: 0, lr: 0.1, lossScale: 1,
                                          skipped: 0, overflow: false, samples: Int.max, stepS: 1e308, waitS: 0, applyS: 0,
                                          bytesRecv: Int.max, bytesSent: Int.max, samplesPerS: 1e308, paramsDigest: nil))
        }
        server.flush()
        let worker = try RunLog(path: dir + "/logs/worker-0.jsonl", fixed: RankStamp(run: "r", rank: 1, role: "worker", index: 0))
        for k in 0..<3 {
            worker.write(WorkerStepRecord(step: k, epoch: 0, loss: 1e308, fp32Bytes: Int.max, encodeS: 0, decodeS: 0, lossScale: 1, overflow: false,
                                          skipped: 0, samples: Int.max, stepS: 0, computeS: 1e308, waitS: -1e308, bytesSent: Int.max,
                                          bytesRecv: Int.max, samplesPerS: 1e308))
        }
        worker.flush()
        let r = try RunReport(dir: dir)
        let s = r.summary()
        XCTAssertEqual(s.stepsDone, Int.max, "held at Int.max, not trapped")
        let text = SummaryText.text(s)
        XCTAssertTrue(text.contains("progress    step"), text)
        XCTAssertFalse(SummaryText.compare(s, s).isEmpty)
        XCTAssertTrue(HTMLReport.render(r).contains("<svg"))
        XCTAssertEqual(RunReport.sparkline([1e308, -1e308, 1e308, .nan, .infinity]).count, 3)
        _ = try? JSONEncoder().encode(r.chromeTrace())
    }

    func testSummaryTraceAndReportOfRecordsWrittenHere() throws {
        let dir = Harness.tempDir("report") + "/r"
        let events = try RunLog(path: dir + "/events.jsonl", fixed: LauncherStamp(run: "r"))
        events.write(LaunchRecord(AttemptFields(attempt: 1, workers: 1, servers: 1, command: ["mpirun"], from: nil)))
        events.write(ExitRecord(attempt: 1, code: 0, signal: 0, seconds: 3))
        events.flush()
        let server = try RunLog(path: dir + "/logs/server-0.jsonl", fixed: RankStamp(run: "r", rank: 0, role: "server", index: 0))
        server.write(HelloRecord(blasCore: "x", ranksOnNode: 2, address: "a", configHash: "c", build: "b", host: "h", pid: 1, servers: 1, workers: 1))
        server.write(ServerStartRecord(servers: 1, workers: 1, shardLo: 0, shardHi: 100, pieces: 1, precision: "fp16", compression: "none",
                                       lossScale: 4, steps: 4, stepsPerEpoch: 4))
        server.write(step(0, loss: 2.5, scale: 4))
        server.write(step(1, loss: 9))                        // replaced by the restarted step 1 below
        server.write(step(1, loss: 2.25, scale: 4))
        server.write(step(2, loss: .nan, scale: 4, skipped: 1))   // null in the log: no loss point
        server.write(ScaleRecord(step: 2, from: 4, to: 2, why: "overflow"))
        server.write(step(3, loss: 2.0, scale: 2, skipped: 1))
        server.write(EvalRecord(step: 4, epoch: 1, testAccuracy: 0.75, testLoss: 0.5, testSamples: 8))
        server.write(ServerCheckpointRecord(step: 4, path: dir + "/checkpoints/step-4", bytes: 10, seconds: 0.1))
        server.write(ServerDoneRecord(steps: 4, wallS: 2, peakRSSBytes: 1, skipped: 1, lossScale: 2, paramsDigest: "p",
                                      stateDigests: [StateDigest(name: "momentum", digest: "m")]))
        server.flush()
        let worker = try RunLog(path: dir + "/logs/worker-0.jsonl", fixed: RankStamp(run: "r", rank: 1, role: "worker", index: 0))
        worker.write(WorkerStartRecord(servers: 1, workers: 1, microbatch: 10, trainSamples: 40, testSamples: 8, precision: "fp16",
                                       compression: "shuffle", pieces: 1, steps: 4, stepsPerEpoch: 4))
        for k in 0..<4 { worker.write(workerStep(k, compute: 0.125 * Double(k + 1))) }
        worker.flush()
        // An event this version does not know, a step without its fields, a line cut short.
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: dir + "/logs/worker-0.jsonl"))
        h.seekToEndOfFile()
        h.write(Data("{\"v\":1,\"event\":\"later\",\"t\":1}\n{\"v\":1,\"event\":\"step\",\"step\":9}\n{\"v\":1,\"ev".utf8))
        h.closeFile()

        let report = try RunReport(dir: dir)
        let s = report.summary()
        XCTAssertEqual(s.status, "finished")
        XCTAssertEqual(s.attempts, 1)
        XCTAssertEqual(s.stepsDone, 4)
        XCTAssertEqual(s.stepsTotal, 4)
        XCTAssertEqual(s.loss, [2.5, 2.25, 2.0], "the latest record of a step wins; a null loss gives no point")
        XCTAssertEqual(s.trainingSeconds, 2)
        XCTAssertEqual(s.samplesPerSecond, 20)
        XCTAssertEqual(s.precision, "fp16")
        XCTAssertEqual(s.compression, "shuffle")
        XCTAssertEqual(s.servers, 1)
        XCTAssertEqual(s.finalAccuracy, 0.75)
        XCTAssertEqual(s.evals.map { $0.step }, [4])
        XCTAssertEqual(s.lossScale, 2)
        XCTAssertEqual(s.skippedSteps, 1)
        XCTAssertEqual(s.scaleChanges.map { "\($0.step) \($0.from) \($0.to) \($0.why)" }, ["2 4.0 2.0 overflow"])
        XCTAssertEqual(s.wireBytesPerStep, 200)
        XCTAssertEqual(s.fp32BytesPerStep, 800)
        XCTAssertEqual(s.ranks.map { $0.rank }, ["server 0", "worker 0"])
        XCTAssertEqual(s.ranks.map { $0.steps }, [4, 4], "a step logged twice (trained again after a restart) counts once")
        XCTAssertEqual(s.ranks[1].computeP50, 0.375)
        XCTAssertEqual(s.ranks[1].samplesPerSecond, 20)
        XCTAssertEqual(s.phases.first?.seconds, 1.25)
        XCTAssertEqual(s.notes, ["worker-0.jsonl: its last line is truncated (the rank stopped while writing)",
                                 "worker-0.jsonl: lines 7 lack fields of their event or hold other types; left out"])

        let trace = report.chromeTrace()
        XCTAssertEqual(trace.traceEvents.filter { $0.ph == "M" }.count, 4)
        XCTAssertEqual(trace.traceEvents.filter { $0.ph == "X" && $0.pid == 0 }.count, 10, "two phases per server step record")
        XCTAssertEqual(trace.traceEvents.filter { $0.ph == "X" && $0.pid == 1 }.count, 8)
        XCTAssertEqual(trace.traceEvents.filter { $0.ph == "i" }.map { $0.name }, ["checkpoint", "eval"])
        let compute = try XCTUnwrap(trace.traceEvents.first { $0.name == "compute" })
        XCTAssertEqual(compute.dur, 0.125e6)
        XCTAssertEqual(compute.args?.step, 0)

        let html = HTMLReport.render(report)
        XCTAssertEqual(html.components(separatedBy: "<svg class=\"chart\"").count - 1, 6, "six charts")
        // Without embedding tables: no tables' summary, no AUC in the JSON or the report.
        XCTAssertNil(s.tables)
        let json = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        for key in ["\"tables\"", "\"auc\"", "\"logloss\""] { XCTAssertFalse(json.contains(key), "\(key) in \(json)") }
        XCTAssertFalse(html.contains("embedding tables") || html.contains("AUC"), "tables or AUC in a report without tables")
    }

    /// A run with embedding tables, written here: two workers and two
    /// servers of the last world, and a server 2 left from an earlier world
    /// of three servers (its rows are not counted).
    func writeTablesRun(_ dir: String) throws {
        let server = try RunLog(path: dir + "/logs/server-0.jsonl", fixed: RankStamp(run: "t", rank: 0, role: "server", index: 0))
        server.write(HelloRecord(blasCore: "x", ranksOnNode: 4, address: "a", configHash: "c", build: "b", host: "h", pid: 1, servers: 2, workers: 2))
        server.write(ServerStartRecord(servers: 2, workers: 2, shardLo: 0, shardHi: 50, pieces: 1, precision: "fp32", compression: "none",
                                       lossScale: 1, steps: 2, stepsPerEpoch: 1))
        for (i, (k, rows)) in [(0, 5), (1, 7), (1, 9)].enumerated() {   // step 1 restarted: its latest record (9 rows) wins
            var r = step(k, loss: 0.6 - 0.1 * Double(i))
            r.rowsServed = 3; r.rowBytesRecv = 40; r.rowBytesSent = 60; r.tableRows = rows; r.tableBytes = 32 * rows
            server.write(r)
        }
        for (k, auc, ll) in [(1, 0.75, 0.45), (2, 0.70, 0.5)] {
            var e = EvalRecord(step: k, epoch: k, testAccuracy: 0.8, testLoss: ll, testSamples: 100)
            e.auc = auc; e.logloss = ll
            server.write(e)
        }
        server.flush()
        for (index, rows) in [(1, 11), (2, 13)] {
            let l = try RunLog(path: dir + "/logs/server-\(index).jsonl", fixed: RankStamp(run: "t", rank: index, role: "server", index: index))
            var r = step(1, loss: 0.5)
            r.tableRows = rows; r.tableBytes = 32 * rows
            l.write(r)
            l.flush()
        }
        // Worker j, step k: rows pulled, row-id bytes, row bytes out and in.
        let rows = [[(10, 15, 100, 200), (30, 25, 300, 400)], [(20, 20, 200, 300), (20, 20, 200, 300)]]
        for (j, steps) in rows.enumerated() {
            let l = try RunLog(path: dir + "/logs/worker-\(j).jsonl", fixed: RankStamp(run: "t", rank: 3 + j, role: "worker", index: j))
            for (k, (pulled, ids, out, inb)) in steps.enumerated() {
                var r = workerStep(k, compute: 0.25)
                r.bytesSent = 1000; r.bytesRecv = 1000
                r.rowsPulled = pulled; r.rowIdBytes = ids; r.rowBytesSent = out; r.rowBytesRecv = inb; r.rowWaitS = 0.01
                l.write(r)
            }
            l.flush()
        }
    }

    /// The AUC and log loss per epoch and the tables' summary: the figures,
    /// `pstrain inspect`'s lines, the JSON and the HTML report.
    func testAUCAndEmbeddingTablesOfRecordsWrittenHere() throws {
        let dir = Harness.tempDir("tables") + "/t"
        try writeTablesRun(dir)
        let s = try RunReport(dir: dir).summary()
        XCTAssertEqual(s.evals.map { $0.auc }, [0.75, 0.70])
        XCTAssertEqual(s.evals.map { $0.logloss }, [0.45, 0.5])
        let t = try XCTUnwrap(s.tables)
        XCTAssertEqual(t.rowsPulledPerWorkerStep, 20, "(10 + 30 + 20 + 20) / 4 worker steps")
        XCTAssertEqual(t.rowIdBytesPerId, 1, "80 bytes of ids for 80 rows")
        XCTAssertEqual(t.rowBytesSentPerStep, 400, "800 bytes out over two steps")
        XCTAssertEqual(t.rowBytesRecvPerStep, 600)
        XCTAssertEqual(s.wireBytesPerStep, 4000)
        XCTAssertEqual(t.wireShare, 0.25)
        XCTAssertEqual(t.held.map { "\($0.rank) \($0.rows) \($0.bytes)" }, ["server 0 9 288", "server 1 11 352"])

        let text = Harness.run(try Harness.executable("pstrain"), ["inspect", dir], cwd: dir)
        assertEnded(text, status: 0, "inspect")
        let lines = text.stdout.components(separatedBy: "\n")
        let expected = ["test AUC    final 0.7000, best 0.7500  0.750 0.700",
                        "log loss    final 0.5000, best 0.4500  0.450 0.500",
                        "rows pulled 20.0 per worker per step (mean), 1.00 B of row id per id",
                        "row bytes   400 B out + 600 B in per step (all workers) = 25.0% of the wire (4.0 kB)",
                        "rows held   server 0 9 rows, 288 B; server 1 11 rows, 352 B"]
        for e in expected { XCTAssertTrue(lines.contains(e), "no line \"\(e)\" in\n\(text.stdout)") }
        let order = expected.compactMap { lines.firstIndex(of: $0) }
        let accuracy = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("accuracy ") }), wire = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("wire ") })
        XCTAssertEqual(order, [accuracy + 1, accuracy + 2, wire + 1, wire + 2, wire + 3], "AUC under the accuracy, tables under the wire")

        let js = Harness.run(try Harness.executable("pstrain"), ["inspect", dir, "--json"], cwd: dir)
        assertEnded(js, status: 0, "inspect --json")
        let decoded = try JSONDecoder().decode(RunSummary.self, from: Data(js.stdout.utf8))
        XCTAssertEqual(decoded.tables?.held.map { $0.rows }, [9, 11])
        XCTAssertEqual(decoded.evals.last?.auc, 0.70)

        let html = HTMLReport.render(try RunReport(dir: dir))
        XCTAssertEqual(html.components(separatedBy: "<svg class=\"chart\"").count - 1, 8, "six charts, and the AUC and the log loss")
        XCTAssertTrue(html.contains("<text x=\"64.0\" y=\"16\" class=\"t\">test AUC</text>"), "an AUC chart")
        XCTAssertTrue(html.contains("<h2>embedding tables</h2>"), "the tables' section")
        XCTAssertTrue(html.contains("<tr><th>rows held</th><td>server 0 9 rows, 288 B; server 1 11 rows, 352 B</td></tr>"), "rows held")
        XCTAssertTrue(html.contains("<tr><th>test AUC</th><td>final 0.7000, best 0.7500  0.750 0.700</td></tr>"), "AUC per epoch")
    }
}
