import Foundation
import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

/// The run log's record types (Sources/PSCore/RunLog/): the bytes they write
/// and what reads back.
final class RunLogRecordTests: XCTestCase {
    // Golden lines written by the run log before the record types existed
    // (commit 90dbfd8's RunLog.swift and the field lists of its call sites,
    // the clock fixed), with awkward values: NaN and infinite losses (null),
    // integral doubles (".0"), exponents, Int.max, -0.0, escapes, an empty
    // array, a future optimizer's two state digests in its own order.
    static let serverLines = [
        #"{"v":1,"event":"hello","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"blas_core":"Haswell","ranks_on_node":4,"address":"10.0.0.7","config_hash":"81b9e4af28bd3b2","build":"1b91596c25523e86","host":"node-1","pid":17165,"servers":2,"workers":3}"#,
        #"{"v":1,"event":"pinned","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"core":5}"#,
        #"{"v":1,"event":"error","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"message":"bad frame from worker 1:\n\t\"x\" \\ \u0001 é"}"#,
        #"{"v":1,"event":"start","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"servers":2,"workers":3,"shard_lo":0,"shard_hi":117573,"pieces":5,"precision":"fp16","compression":"top-k 1.0% + shuffle + zstd 1, adaptive at 10.0 Gbit/s","loss_scale":65536.0,"steps":936,"steps_per_epoch":468}"#,
        #"{"v":1,"event":"resumed","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":10,"from":"/tmp/r/checkpoints/step-10","params_digest":"aa300563cfa2ada9","loss_scale":32768.0,"skipped":2}"#,
        #"{"v":1,"event":"step","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":0,"epoch":0,"loss":2.2951366808265448,"fp32_bytes":940584,"encode_s":0.0010874530007640715,"decode_s":5.00939986523008e-05,"lr":0.05000000074505806,"loss_scale":65536.0,"skipped":0,"overflow":false,"samples":128,"step_s":0.12287979299981089,"wait_s":0.0,"apply_s":1e-07,"bytes_recv":837586,"bytes_sent":941736,"samples_per_s":1041.668421431968,"params_digest":"aa300563cfa2ada9"}"#,
        #"{"v":1,"event":"step","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":3,"epoch":0,"loss":null,"fp32_bytes":940584,"encode_s":1.0,"decode_s":0.30000000000000004,"lr":0.04727516323328018,"loss_scale":1e+300,"skipped":1,"overflow":true,"samples":128,"step_s":123456789.0,"wait_s":-0.0,"apply_s":1e+16,"bytes_recv":0,"bytes_sent":9223372036854775807,"samples_per_s":127999999999.99998}"#,
        #"{"v":1,"event":"step","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":4,"epoch":1,"loss":null,"fp32_bytes":4,"encode_s":0.0,"decode_s":0.0,"lr":0.0,"loss_scale":1.0,"skipped":1,"overflow":false,"samples":0,"step_s":0.0,"wait_s":0.0,"apply_s":0.0,"bytes_recv":-1,"bytes_sent":0,"samples_per_s":0.0}"#,
        // With train.clip_norm (after the golden lines above were captured): the global gradient norm last.
        #"{"v":1,"event":"step","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":5,"epoch":1,"loss":0.5,"fp32_bytes":4,"encode_s":0.0,"decode_s":0.0,"lr":0.0,"loss_scale":1.0,"skipped":1,"overflow":false,"samples":2,"step_s":0.0,"wait_s":0.0,"apply_s":0.0,"bytes_recv":1,"bytes_sent":0,"samples_per_s":0.0,"grad_norm":1.2345678901234567}"#,
        #"{"v":1,"event":"overflow","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":3,"seen_by":["worker 0","sum on server 0","server 1"],"loss_scale":65536.0,"new_loss_scale":32768.0}"#,
        #"{"v":1,"event":"overflow","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":5,"seen_by":[],"loss_scale":1.0,"new_loss_scale":0.5}"#,
        #"{"v":1,"event":"scale","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":3,"from":65536.0,"to":32768.0,"why":"overflow"}"#,
        #"{"v":1,"event":"scale","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":2003,"from":32768.0,"to":65536.0,"why":"growth"}"#,
        #"{"v":1,"event":"eval","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":468,"epoch":1,"test_accuracy":0.6048,"test_loss":1.1060812345678,"test_samples":10000}"#,
        #"{"v":1,"event":"eval","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":936,"epoch":2,"test_accuracy":0.0,"test_loss":null,"test_samples":0}"#,
        #"{"v":1,"event":"checkpoint","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":10,"path":"/tmp/records-before/checkpoints/step-10","bytes":1886705,"seconds":0.046}"#,
        #"{"v":1,"event":"stopped","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"step":31,"why":"the launcher asked (SIGINT/SIGTERM)"}"#,
        #"{"v":1,"event":"done","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"steps":20,"wall_s":1.1618301149992476,"peak_rss_bytes":50872320,"skipped":1,"loss_scale":65536.0,"params_digest":"719221ab6a2de6bd","momentum_digest":"86467c5f4d07a776"}"#,
        #"{"v":1,"event":"done","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"steps":20,"wall_s":2.0,"peak_rss_bytes":1,"skipped":0,"loss_scale":1.0,"params_digest":"0000000000000000","velocity_digest":"1111111111111111","m_digest":"2222222222222222"}"#,
    ]
    static let workerLines = [
        #"{"v":1,"event":"start","t":1795487182.4285,"run":"demo","rank":4,"role":"worker","index":0,"servers":2,"workers":3,"microbatch":43,"train_samples":60000,"test_samples":10000,"precision":"bf16","compression":"none","pieces":9,"steps":20,"steps_per_epoch":468}"#,
        #"{"v":1,"event":"step","t":1795487182.4285,"run":"demo","rank":4,"role":"worker","index":0,"step":1,"epoch":0,"loss":2.2941217962652445,"fp32_bytes":940584,"encode_s":0.00093,"decode_s":0.00087,"loss_scale":1.0,"overflow":false,"skipped":0,"samples":64,"step_s":0.00181,"compute_s":0.00093,"wait_s":0.00087,"bytes_sent":941224,"bytes_recv":941224,"samples_per_s":35359.1}"#,
        #"{"v":1,"event":"eval_part","t":1795487182.4285,"run":"demo","rank":4,"role":"worker","index":0,"step":468,"epoch":1,"correct":3024,"test_samples":5000,"test_loss_sum":null}"#,
        #"{"v":1,"event":"checkpoint","t":1795487182.4285,"run":"demo","rank":4,"role":"worker","index":0,"step":20,"params_digest":"4f39335635f89c67"}"#,
        #"{"v":1,"event":"done","t":1795487182.4285,"run":"demo","rank":4,"role":"worker","index":0,"steps":20,"peak_rss_bytes":129515520,"params_digest":"4f39335635f89c67","residual_digest":"ef46db3751d8e999"}"#,
    ]
    static let gapLine = [
        #"{"v":1,"event":"log_gap","t":1795487182.4285,"run":"demo \"q\"","rank":3,"role":"server","index":1,"dropped_records":12}"#,
    ][0]
    static let launcherLines = [
        #"{"v":1,"event":"launch","t":1795487182.4285,"run":"demo","attempt":1,"workers":2,"servers":1,"command":["mpirun","-np","1","/x/pstrain-server","--run-dir","/tmp/demo",":","-x","A=b c"]}"#,
        #"{"v":1,"event":"exit","t":1795487182.4285,"run":"demo","attempt":1,"code":137,"signal":9,"seconds":2.2112557888031006}"#,
        #"{"v":1,"event":"restart","t":1795487182.4285,"run":"demo","attempt":2,"workers":2,"servers":1,"command":[],"from":"/tmp/demo/checkpoints/step-10"}"#,
        #"{"v":1,"event":"resume","t":1795487182.4285,"run":"demo","attempt":3,"workers":3,"servers":2,"command":["mpirun","-np","1","/x/pstrain-server","--run-dir","/tmp/demo",":","-x","A=b c"],"from":"/tmp/demo/checkpoints/step-20"}"#,
        #"{"v":1,"event":"stopped","t":1795487182.4285,"run":"demo","attempt":3,"step":31}"#,
    ]
    static let t = 1795487182.4285
    static let serverStamp = RankStamp(run: "demo \"q\"", rank: 3, role: "server", index: 1)
    static let workerStamp = RankStamp(run: "demo", rank: 4, role: "worker", index: 0)
    static let command = ["mpirun", "-np", "1", "/x/pstrain-server", "--run-dir", "/tmp/demo", ":", "-x", "A=b c"]

    /// The server's records of the golden lines; `read` with what a non-finite value reads back as.
    static func serverRecords(read: Bool = false) -> [any LogRecord] {
        let nan: Double? = read ? nil : .nan, inf: Double? = read ? nil : .infinity, minusInf: Double? = read ? nil : -.infinity
        let states = [StateDigest(name: "velocity", digest: "1111111111111111"), StateDigest(name: "m", digest: "2222222222222222")]
        return [
            HelloRecord(blasCore: "Haswell", ranksOnNode: 4, address: "10.0.0.7", configHash: "81b9e4af28bd3b2", build: "1b91596c25523e86",
                        host: "node-1", pid: 17165, servers: 2, workers: 3),
            PinnedRecord(core: 5),
            ErrorRecord(message: "bad frame from worker 1:\n\t\"x\" \\ \u{01} é"),
            ServerStartRecord(servers: 2, workers: 3, shardLo: 0, shardHi: 117573, pieces: 5, precision: "fp16",
                              compression: "top-k 1.0% + shuffle + zstd 1, adaptive at 10.0 Gbit/s", lossScale: 65536, steps: 936, stepsPerEpoch: 468),
            RankResumedRecord(step: 10, from: "/tmp/r/checkpoints/step-10", paramsDigest: "aa300563cfa2ada9", lossScale: 32768, skipped: 2),
            ServerStepRecord(step: 0, epoch: 0, loss: 2.2951366808265448, fp32Bytes: 940584, encodeS: 0.0010874530007640715,
                             decodeS: 5.00939986523008e-05, lr: Double(Float(0.05)), lossScale: 65536, skipped: 0, overflow: false, samples: 128,
                             stepS: 0.12287979299981089, waitS: 0, applyS: 1e-7, bytesRecv: 837586, bytesSent: 941736,
                             samplesPerS: 1041.668421431968, paramsDigest: "aa300563cfa2ada9"),
            ServerStepRecord(step: 3, epoch: 0, loss: nan, fp32Bytes: 940584, encodeS: 1, decodeS: 0.1 + 0.2,
                             lr: Double(Float(0.04727516323328018)), lossScale: 1e300, skipped: 1, overflow: true, samples: 128,
                             stepS: 123456789.0, waitS: -0.0, applyS: 1e16, bytesRecv: 0, bytesSent: Int.max, samplesPerS: 128 / 1e-9,
                             paramsDigest: nil),
            ServerStepRecord(step: 4, epoch: 1, loss: inf, fp32Bytes: 4, encodeS: 0, decodeS: 0, lr: 0, lossScale: 1, skipped: 1,
                             overflow: false, samples: 0, stepS: 0, waitS: 0, applyS: 0, bytesRecv: -1, bytesSent: 0, samplesPerS: 0,
                             paramsDigest: nil),
            ServerStepRecord(step: 5, epoch: 1, loss: 0.5, fp32Bytes: 4, encodeS: 0, decodeS: 0, lr: 0, lossScale: 1, skipped: 1,
                             overflow: false, samples: 2, stepS: 0, waitS: 0, applyS: 0, bytesRecv: 1, bytesSent: 0, samplesPerS: 0,
                             paramsDigest: nil, gradNorm: 1.2345678901234567),
            OverflowRecord(step: 3, seenBy: ["worker 0", "sum on server 0", "server 1"], lossScale: 65536, newLossScale: 32768),
            OverflowRecord(step: 5, seenBy: [], lossScale: 1, newLossScale: 0.5),
            ScaleRecord(step: 3, from: 65536, to: 32768, why: "overflow"),
            ScaleRecord(step: 2003, from: 32768, to: 65536, why: "growth"),
            EvalRecord(step: 468, epoch: 1, testAccuracy: 0.6048, testLoss: 1.1060812345678, testSamples: 10000),
            EvalRecord(step: 936, epoch: 2, testAccuracy: 0, testLoss: minusInf, testSamples: 0),
            ServerCheckpointRecord(step: 10, path: "/tmp/records-before/checkpoints/step-10", bytes: 1886705, seconds: 0.046),
            ServerStoppedRecord(step: 31, why: "the launcher asked (SIGINT/SIGTERM)"),
            ServerDoneRecord(steps: 20, wallS: 1.1618301149992476, peakRSSBytes: 50872320, skipped: 1, lossScale: 65536,
                             paramsDigest: "719221ab6a2de6bd", stateDigests: [StateDigest(name: "momentum", digest: "86467c5f4d07a776")]),
            // Written in the optimizer's order, read back sorted by name.
            ServerDoneRecord(steps: 20, wallS: 2, peakRSSBytes: 1, skipped: 0, lossScale: 1, paramsDigest: "0000000000000000",
                             stateDigests: read ? states.sorted { $0.name < $1.name } : states),
        ]
    }

    static func workerRecords(read: Bool = false) -> [any LogRecord] {
        [
            WorkerStartRecord(servers: 2, workers: 3, microbatch: 43, trainSamples: 60000, testSamples: 10000, precision: "bf16",
                              compression: "none", pieces: 9, steps: 20, stepsPerEpoch: 468),
            WorkerStepRecord(step: 1, epoch: 0, loss: 2.2941217962652445, fp32Bytes: 940584, encodeS: 0.00093, decodeS: 0.00087, lossScale: 1,
                             overflow: false, skipped: 0, samples: 64, stepS: 0.00181, computeS: 0.00093, waitS: 0.00087,
                             bytesSent: 941224, bytesRecv: 941224, samplesPerS: 35359.1),
            EvalPartRecord(step: 468, epoch: 1, correct: 3024, testSamples: 5000, testLossSum: read ? nil : .nan),
            WorkerCheckpointRecord(step: 20, paramsDigest: "4f39335635f89c67"),
            WorkerDoneRecord(steps: 20, peakRSSBytes: 129515520, paramsDigest: "4f39335635f89c67", residualDigest: "ef46db3751d8e999"),
        ]
    }

    static let launcherRecords: [any LogRecord] = [
        LaunchRecord(AttemptFields(attempt: 1, workers: 2, servers: 1, command: command, from: nil)),
        ExitRecord(attempt: 1, code: 137, signal: 9, seconds: 2.2112557888031006),
        RestartRecord(AttemptFields(attempt: 2, workers: 2, servers: 1, command: [], from: "/tmp/demo/checkpoints/step-10")),
        ResumeRecord(AttemptFields(attempt: 3, workers: 3, servers: 2, command: command, from: "/tmp/demo/checkpoints/step-20")),
        LauncherStoppedRecord(attempt: 3, step: 31),
    ]

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "pstrain-records-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Writes `records` through a RunLog with its clock fixed; the file's lines.
    func written(_ records: [any LogRecord], fixed: some Encodable, in dir: String, name: String) throws -> [String] {
        let log = try RunLog(path: "\(dir)/\(name)", fixed: fixed)
        log.clock = { Self.t }
        for r in records { log.write(r) }
        XCTAssertTrue(log.flush())
        return try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func testEveryRecordWritesTheBytesTheLogAlwaysHad() throws {
        let dir = try tempDir()
        let server = try written(Self.serverRecords(), fixed: Self.serverStamp, in: dir, name: "server-1.jsonl")
        XCTAssertEqual(server.count, Self.serverLines.count)
        for (a, b) in zip(server, Self.serverLines) { XCTAssertEqual(a, b) }
        let worker = try written(Self.workerRecords(), fixed: Self.workerStamp, in: dir, name: "worker-0.jsonl")
        XCTAssertEqual(worker, Self.workerLines)
        let launcher = try written(Self.launcherRecords, fixed: LauncherStamp(run: "demo"), in: dir, name: "events.jsonl")
        XCTAssertEqual(launcher, Self.launcherLines)
        let log = try RunLog(path: dir + "/gap.jsonl", fixed: Self.serverStamp)
        log.clock = { Self.t }
        XCTAssertEqual(log.line(LogGapRecord(droppedRecords: 12)), Self.gapLine + "\n")
    }

    /// Every golden line reads back (envelope, then the type of its event
    /// for its source) as the record it was written from; null as nil.
    func testEveryRecordReadsBackAsWritten() throws {
        func check(_ lines: [String], _ source: LogSource?, _ expected: [any LogRecord], file: StaticString = #filePath, line: UInt = #line) {
            let log = LogFile(data: Data((lines.joined(separator: "\n") + "\n").utf8), source: source)
            XCTAssertEqual(log.badLines, [], file: file, line: line)
            XCTAssertEqual(log.unreadableLines, [], file: file, line: line)
            XCTAssertEqual(log.entries.count, expected.count, file: file, line: line)
            for (e, want) in zip(log.entries, expected) {
                XCTAssertEqual(e.envelope.t, Self.t, file: file, line: line)
                XCTAssertEqual(e.envelope.v, 1, file: file, line: line)
                XCTAssertEqual(e.event, type(of: want).event, file: file, line: line)
                XCTAssertTrue(Self.same(e.record, want), "line \(e.line): read \(String(describing: e.record)), wrote \(want)", file: file, line: line)
            }
        }
        check(Self.serverLines, .server, Self.serverRecords(read: true))
        check(Self.serverLines, nil, Self.serverRecords(read: true))      // the records' own role says whose they are
        check(Self.workerLines, .worker, Self.workerRecords(read: true))
        check(Self.launcherLines, .launcher, Self.launcherRecords)
        check([Self.gapLine], .server, [LogGapRecord(droppedRecords: 12)])
        let envelope = LogFile(data: Data(Self.serverLines[0].utf8), source: nil).entries[0].envelope
        XCTAssertEqual(envelope, LogEnvelope(v: 1, event: "hello", t: Self.t, run: "demo \"q\"", rank: 3, role: "server", index: 1))
        let done = LogFile(data: Data(Self.serverLines.joined(separator: "\n").utf8), source: .server).records(ServerDoneRecord.self)
        XCTAssertEqual(done.first?.stateDigest("momentum"), "86467c5f4d07a776")
        XCTAssertEqual(done.last?.stateDigests.map { $0.name }, ["m", "velocity"])
        XCTAssertEqual(LogFile(data: Data(Self.serverLines.joined(separator: "\n").utf8), source: .server).records((any StepRecord).self).count, 4)
    }

    static func same(_ a: (any LogRecord)?, _ b: any LogRecord) -> Bool {
        guard let a else { return false }
        func eq<T: Equatable>(_ x: T) -> Bool { (b as? T) == x }
        guard let e = a as? any Equatable else { return false }
        return eq(e)
    }

    /// What pstrain inspect meets in real run directories: a line cut short
    /// by a crash, an empty line, a line that is not an object, a record
    /// older than schema 1, an event this version does not know, a known
    /// event with a field missing, and a record of the other role.
    func testTheReaderToleratesWhatItDoesNotKnow() throws {
        let text = Self.serverLines[0] + "\n\n[1,2]\n"
            + #"{"event":"note","rank":2}"# + "\n"
            + #"{"v":2,"event":"stretch","t":1.5,"how":"far"}"# + "\n"
            + #"{"v":1,"event":"eval","step":3,"epoch":1,"test_accuracy":0.5}"# + "\n"
            + Self.workerLines[1] + "\n"
            + #"{"v":1,"event":"st"#
        let log = LogFile(data: Data(text.utf8), path: "x/server-0.jsonl", source: .server)
        XCTAssertEqual(log.lineCount, 7, "empty lines are not counted")
        XCTAssertEqual(log.badLines, [2, 7])
        XCTAssertEqual(log.unreadableLines, [5])
        XCTAssertEqual(log.entries.map { $0.event }, ["hello", "note", "stretch", "eval", "step"])
        XCTAssertEqual(log.entries.map { $0.line }, [1, 3, 4, 5, 6])
        XCTAssertEqual(log.versions, [0, 1, 2])
        XCTAssertNil(log.entries[1].record)
        XCTAssertNil(log.entries[2].record)
        XCTAssertEqual(log.count("eval"), 1)
        XCTAssertEqual(log.records(EvalRecord.self).count, 0)
        XCTAssertEqual(log.records(WorkerStepRecord.self).count, 1, "a record's own role wins over the file's")
        XCTAssertEqual(log.logged(HelloRecord.self).first?.pid, 17165)
        XCTAssertEqual(LogSource(fileName: "server-12.jsonl"), .server)
        XCTAssertEqual(LogSource(fileName: "worker-0.jsonl"), .worker)
        XCTAssertEqual(LogSource(fileName: "events.jsonl"), .launcher)
        XCTAssertNil(LogSource(fileName: "launcher-0.jsonl"))
        XCTAssertNil(LogSource(fileName: "mpirun-1.log"))
        XCTAssertNil(LogFile(path: "/nonexistent/server-0.jsonl"))
    }

    /// Past RunLog.maxPending bytes unwritten the oldest records go, and a
    /// log_gap record saying how many is written first.
    func testDroppedRecordsAreCountedInALogGapRecord() throws {
        let dir = try tempDir()
        let log = try RunLog(path: dir + "/server-0.jsonl", fixed: RankStamp(run: "r", rank: 0, role: "server", index: 0))
        let big = String(repeating: "x", count: 1 << 20)
        for i in 0..<20 { log.write(ErrorRecord(message: "\(i) " + big)) }
        XCTAssertGreaterThan(log.dropped, 0)
        let dropped = log.dropped
        XCTAssertTrue(log.flush())
        let file = try XCTUnwrap(LogFile(path: dir + "/server-0.jsonl"))
        XCTAssertEqual(file.badLines, [])
        XCTAssertEqual(file.records(LogGapRecord.self), [LogGapRecord(droppedRecords: dropped)])
        XCTAssertEqual(file.entries.first?.event, "log_gap")
        let kept = file.records(ErrorRecord.self)
        XCTAssertEqual(kept.count, 20 - dropped)
        XCTAssertEqual(kept.last?.message.hasPrefix("19 "), true)
        XCTAssertEqual(log.dropped, 0)
    }

    /// Records of a shape no record has today still encode in order.
    func testTheEncoderKeepsOrderAndNesting() throws {
        struct Inner: Encodable { var b = 1; var a: [Double?] = [1, nil, .nan] }
        struct Odd: Encodable {
            var z = "z"; var y: Int? = nil; var x = Inner(); var w: UInt8 = 7; var v: Float = 0.1; var u: [[Int]] = [[1], []]
        }
        var s = ""
        JSONValue.object(try LogFieldEncoder.fields(of: Odd())).write(into: &s)
        XCTAssertEqual(s, #"{"z":"z","x":{"b":1,"a":[1.0,null,null]},"w":7,"v":0.10000000149011612,"u":[[1],[]]}"#)
        XCTAssertThrowsError(try LogFieldEncoder.fields(of: UInt64.max))
        XCTAssertThrowsError(try LogFieldEncoder.fields(of: [1, 2]), "a record is an object")
    }
}
