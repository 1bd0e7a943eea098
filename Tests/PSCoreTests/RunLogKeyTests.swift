import Foundation
import XCTest
@testable import PSRunLog

/// The JSON keys of every run-log record, pinned: Python (python/src/pstrain),
/// pstrain inspect and docs/run-log.md read these names, so a key that
/// drifts (a renamed property, a key strategy that converts a name another
/// way) must fail here. The lists were written from the records' encoding
/// at 458cc31, before the key strategy replaced the CodingKeys enums.
final class RunLogKeyTests: XCTestCase {
    /// Each record type with every optional field set, so that every key it can write is written.
    static let records: [any LogRecord] = {
        var workerStep = WorkerStepRecord(step: 1, epoch: 0, loss: 0.5, fp32Bytes: 4, encodeS: 0, decodeS: 0, lossScale: 1, overflow: false,
                                          skipped: 0, samples: 2, stepS: 0.25, computeS: 0.125, waitS: 0.0625, bytesSent: 5, bytesRecv: 6,
                                          samplesPerS: 8)
        workerStep.rowsPulled = 7; workerStep.rowIdBytes = 9; workerStep.rowBytesSent = 10; workerStep.rowBytesRecv = 11; workerStep.rowWaitS = 0.5
        var serverStep = ServerStepRecord(step: 2, epoch: 1, loss: 0.25, fp32Bytes: 4, encodeS: 0, decodeS: 0, lr: 0.1, lossScale: 1,
                                          skipped: 0, overflow: false, samples: 2, stepS: 0.5, waitS: 0.25, applyS: 0.125, bytesRecv: 3,
                                          bytesSent: 4, samplesPerS: 4, paramsDigest: "00", gradNorm: 1.5)
        serverStep.rowsServed = 1; serverStep.rowBytesRecv = 2; serverStep.rowBytesSent = 3; serverStep.tableRows = 4
        serverStep.tableBytes = 5; serverStep.worker = 1; serverStep.staleness = 2
        var eval = EvalRecord(step: 3, epoch: 1, testAccuracy: 0.5, testLoss: 0.75, testSamples: 10, validationAccuracy: 0.25,
                              validationLoss: 1.25, validationSamples: 4)
        eval.auc = 0.75; eval.logloss = 0.5
        let attempt = AttemptFields(attempt: 2, workers: 2, servers: 1, command: ["mpirun"], from: "/tmp/r/checkpoints/step-4")
        return [
            HelloRecord(blasCore: "Haswell", ranksOnNode: 2, address: "a", configHash: "c", build: "b", host: "h", pid: 1, servers: 1, workers: 2),
            PinnedRecord(core: 1),
            ErrorRecord(message: "m"),
            LogGapRecord(droppedRecords: 3),
            RankResumedRecord(step: 4, from: "/tmp/r/checkpoints/step-4", paramsDigest: "00", lossScale: 2, skipped: 1),
            ServerStartRecord(servers: 1, workers: 2, shardLo: 0, shardHi: 10, pieces: 1, precision: "fp32", compression: "none",
                              lossScale: 1, steps: 10, stepsPerEpoch: 5),
            serverStep,
            OverflowRecord(step: 3, seenBy: ["worker 0"], lossScale: 2, newLossScale: 1),
            ScaleRecord(step: 3, from: 2, to: 1, why: "overflow"),
            eval,
            ServerCheckpointRecord(step: 4, path: "/tmp/r/checkpoints/step-4", bytes: 10, seconds: 0.5),
            ServerStoppedRecord(step: 5, why: "asked"),
            ServerDoneRecord(steps: 10, wallS: 1.5, peakRSSBytes: 100, skipped: 1, lossScale: 1, paramsDigest: "00",
                             stateDigests: [StateDigest(name: "exp_avg", digest: "11"), StateDigest(name: "exp_avg_sq", digest: "22")]),
            StalenessRecord(step: 5, epoch: 1, counts: [1, 2], maxLead: 1),
            WorkerStartRecord(servers: 1, workers: 2, microbatch: 4, trainSamples: 8, testSamples: 2, precision: "fp32", compression: "none",
                              pieces: 1, steps: 10, stepsPerEpoch: 5),
            workerStep,
            EvalPartRecord(step: 3, epoch: 1, correct: 1, testSamples: 2, testLossSum: 0.5, validationCorrect: 1, validationSamples: 2,
                           validationLossSum: 0.25),
            WorkerCheckpointRecord(step: 4, paramsDigest: "00"),
            WorkerDoneRecord(steps: 10, peakRSSBytes: 100, paramsDigest: "00", residualDigest: "11"),
            LaunchRecord(attempt),
            ResumeRecord(attempt),
            RestartRecord(attempt),
            ExitRecord(attempt: 1, code: 0, signal: 0, seconds: 1.5),
            LauncherStoppedRecord(attempt: 1, step: 5),
        ]
    }()

    /// The keys each record type writes, in order (by its Swift type, since
    /// some events name two types: `step`, `done`, `checkpoint`, `stopped`, `start`).
    static let keys: [String: [String]] = [
        "HelloRecord": ["blas_core", "ranks_on_node", "address", "config_hash", "build", "host", "pid", "servers", "workers"],
        "PinnedRecord": ["core"],
        "ErrorRecord": ["message"],
        "LogGapRecord": ["dropped_records"],
        "RankResumedRecord": ["step", "from", "params_digest", "loss_scale", "skipped"],
        "ServerStartRecord": ["servers", "workers", "shard_lo", "shard_hi", "pieces", "precision", "compression", "loss_scale", "steps",
                              "steps_per_epoch"],
        "ServerStepRecord": ["step", "epoch", "loss", "fp32_bytes", "encode_s", "decode_s", "lr", "loss_scale", "skipped", "overflow",
                             "samples", "step_s", "wait_s", "apply_s", "bytes_recv", "bytes_sent", "samples_per_s", "params_digest",
                             "grad_norm", "rows_served", "row_bytes_recv", "row_bytes_sent", "table_rows", "table_bytes", "worker",
                             "staleness"],
        "OverflowRecord": ["step", "seen_by", "loss_scale", "new_loss_scale"],
        "ScaleRecord": ["step", "from", "to", "why"],
        "EvalRecord": ["step", "epoch", "test_accuracy", "test_loss", "test_samples", "validation_accuracy", "validation_loss",
                       "validation_samples", "auc", "logloss"],
        "ServerCheckpointRecord": ["step", "path", "bytes", "seconds"],
        "ServerStoppedRecord": ["step", "why"],
        "ServerDoneRecord": ["steps", "wall_s", "peak_rss_bytes", "skipped", "loss_scale", "params_digest", "exp_avg_digest",
                             "exp_avg_sq_digest"],
        "StalenessRecord": ["step", "epoch", "counts", "max_lead"],
        "WorkerStartRecord": ["servers", "workers", "microbatch", "train_samples", "test_samples", "precision", "compression", "pieces",
                              "steps", "steps_per_epoch"],
        "WorkerStepRecord": ["step", "epoch", "loss", "fp32_bytes", "encode_s", "decode_s", "loss_scale", "overflow", "skipped", "samples",
                             "step_s", "compute_s", "wait_s", "bytes_sent", "bytes_recv", "samples_per_s", "rows_pulled", "row_id_bytes",
                             "row_bytes_sent", "row_bytes_recv", "row_wait_s"],
        "EvalPartRecord": ["step", "epoch", "correct", "test_samples", "test_loss_sum", "validation_correct", "validation_samples",
                           "validation_loss_sum"],
        "WorkerCheckpointRecord": ["step", "params_digest"],
        "WorkerDoneRecord": ["steps", "peak_rss_bytes", "params_digest", "residual_digest"],
        "LaunchRecord": ["attempt", "workers", "servers", "command", "from"],
        "ResumeRecord": ["attempt", "workers", "servers", "command", "from"],
        "RestartRecord": ["attempt", "workers", "servers", "command", "from"],
        "ExitRecord": ["attempt", "code", "signal", "seconds"],
        "LauncherStoppedRecord": ["attempt", "step"],
    ]

    func testEveryRecordWritesTheKeysTheLogHad() throws {
        for record in Self.records {
            let name = String(describing: type(of: record))
            let written = try LogFieldEncoder.fields(of: record).map { $0.0 }
            XCTAssertEqual(written, Self.keys[name], name)
        }
        XCTAssertEqual(try LogFieldEncoder.fields(of: RankStamp(run: "r", rank: 0, role: "server", index: 0)).map { $0.0 },
                       ["run", "rank", "role", "index"])
        XCTAssertEqual(try LogFieldEncoder.fields(of: LauncherStamp(run: "r")).map { $0.0 }, ["run"])
    }

    /// The lists above cover every record type a log can hold.
    func testTheKeyListsCoverEveryRecordType() {
        let listed = Set(Self.records.map { String(describing: type(of: $0)) })
        XCTAssertEqual(listed, Set(Self.keys.keys))
        for source in [LogSource.server, .worker, .launcher] {
            for (event, type) in source.recordTypes {
                XCTAssertTrue(listed.contains(String(describing: type)), "\(source) \(event): \(type) has no key list")
            }
        }
    }

    /// With every optional field set, each record reads back as written
    /// (the golden lines of RunLogRecordTests leave most optionals out).
    func testEveryFieldReadsBack() throws {
        let dir = NSTemporaryDirectory() + "pstrain-keys-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let sources: [(LogSource, String, any Encodable)] = [
            (.server, "server-0.jsonl", RankStamp(run: "r", rank: 0, role: "server", index: 0)),
            (.worker, "worker-0.jsonl", RankStamp(run: "r", rank: 1, role: "worker", index: 0)),
            (.launcher, "events.jsonl", LauncherStamp(run: "r")),
        ]
        for (source, name, stamp) in sources {
            let types = source.recordTypes.values.map { String(describing: $0) }
            let records = Self.records.filter { types.contains(String(describing: type(of: $0))) }
            let log = try RunLog(path: "\(dir)/\(name)", fixed: stamp)
            for r in records { log.write(r) }
            XCTAssertTrue(log.flush())
            let file = try XCTUnwrap(LogFile(path: "\(dir)/\(name)"))
            XCTAssertEqual(file.unreadableLines, [], name)
            XCTAssertEqual(file.entries.count, records.count, name)
            for (e, want) in zip(file.entries, records) {
                XCTAssertTrue(RunLogRecordTests.same(e.record, want), "\(name) line \(e.line): read \(String(describing: e.record)), wrote \(want)")
            }
        }
    }

    /// The key strategy on the names that a plain snake_case reversal gets
    /// wrong, and the reader's conversions (JSONDecoder's): a number read as
    /// the type of its field, -0.0 keeping its sign, a wrong type refused,
    /// a number beyond Double's range refused only where a record reads it.
    func testTheKeyStrategyAndTheReadersConversions() throws {
        XCTAssertEqual(["fp32Bytes", "rowIdBytes", "peakRSSBytes", "paramsDigest", "samplesPerS", "auc", "exp_avg_sq", "URLPath"].map(logKey),
                       ["fp32_bytes", "row_id_bytes", "peak_rss_bytes", "params_digest", "samples_per_s", "auc", "exp_avg_sq", "url_path"])
        let line = #"{"v":1,"event":"scale","t":2,"step":3.0,"from":-0.0,"to":4,"why":"growth","x":[1e400,{"y":-1e400}]}"#
        let read = try XCTUnwrap(LogFile(data: Data(line.utf8), source: .server).records(ScaleRecord.self).first)
        XCTAssertEqual(read, ScaleRecord(step: 3, from: 0, to: 4, why: "growth"))
        XCTAssertEqual(read.from.sign, .minus)
        let wrong = #"{"v":1,"event":"scale","t":2,"step":3.5,"from":1,"to":4,"why":"growth"}"#
            + "\n" + #"{"v":1,"event":"scale","t":2,"step":3,"from":1e400,"to":4,"why":"growth"}"#
        let file = LogFile(data: Data(wrong.utf8), source: .server)
        XCTAssertEqual(file.unreadableLines, [1, 2])
        XCTAssertEqual(file.badLines, [])
    }
}
