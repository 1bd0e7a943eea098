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
        XCTAssertEqual(s.ranks.map { $0.steps }, [5, 4])
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
    }
}
