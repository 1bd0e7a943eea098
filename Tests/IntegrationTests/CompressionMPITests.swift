import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import XCTest

/// The codec pipeline between real ranks.
final class CompressionMPITests: XCTestCase {
    let common = ["--workers", "2", "--servers", "2", "--epochs", "1", "--precision", "fp16",
                  "--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048"]

    func digests(_ run: String) -> [String] { Harness.finalState(run, servers: 2, workers: 2) }

    func wireShare(_ run: String, _ bytes: KeyPath<WorkerStepRecord, Int>) -> Double {
        let steps = Harness.records("\(run)/logs/worker-0.jsonl", WorkerStepRecord.self)
        return Double(steps.reduce(0) { $0 + $1[keyPath: bytes] }) / Double(steps.reduce(0) { $0 + $1.fp32Bytes })
    }

    /// Lossless stages change the bytes, never the numbers: a run with
    /// shuffle + zstd forced on ends bit-identical to one without them.
    func testLosslessCompressionLeavesTrainingBitIdentical() throws {
        let dir = Harness.tempDir("lossless")
        let plain = try Harness.launch(common + ["--run-dir", "plain", "--set", "compression.zstd_level=0", "--set", "compression.shuffle=false"], cwd: dir)
        assertEnded(plain, status: 0, "uncompressed")
        let packed = try Harness.launch(common + ["--run-dir", "packed", "--set", "compression.adaptive=false"], cwd: dir)
        assertEnded(packed, status: 0, "compressed")
        Harness.assertComplete(digests(dir + "/plain"))
        XCTAssertEqual(digests(dir + "/plain"), digests(dir + "/packed"))
        XCTAssertGreaterThan(wireShare(dir + "/plain", \.bytesSent), 0.49, "FP16 raw is half of FP32")
        XCTAssertLessThan(wireShare(dir + "/packed", \.bytesSent), wireShare(dir + "/plain", \.bytesSent), "zstd made it smaller")
        // Adaptive (the default) on shared memory: compressing does not pay at 10 Gbit/s.
        let auto = try Harness.launch(common + ["--run-dir", "auto"], cwd: dir)
        assertEnded(auto, status: 0, "adaptive")
        XCTAssertEqual(digests(dir + "/auto"), digests(dir + "/plain"))
    }

    func testTopKWithErrorFeedbackTrains() throws {
        let dir = Harness.tempDir("topk")
        let r = try Harness.launch(common + ["--run-dir", "r", "--set", "compression.topk=0.01", "--set", "compression.adaptive=false",
                                             "--set", "train.epochs=3"], cwd: dir)
        assertEnded(r, status: 0, "top-k run")
        XCTAssertLessThan(wireShare(dir + "/r", \.bytesSent), 0.02, "top 1% of gradients")
        let acc = Harness.records(dir + "/r/logs/server-0.jsonl", EvalRecord.self).last?.testAccuracy ?? 0
        XCTAssertGreaterThan(acc, 0.5, "it learns")
    }

    /// A damaged message stops the job with one line naming the sender and
    /// the step; nothing hangs.
    func testDamagedFrameStopsTheJobAndNamesTheSender() throws {
        let dir = Harness.tempDir("corrupt")
        let r = try Harness.launch(common + ["--run-dir", "r", "--set", "debug.corrupt_step=3", "--set", "compression.adaptive=false"],
                                   cwd: dir, timeout: 90)
        assertEnded(r, status: nil, "corrupted frame")
        XCTAssertTrue(r.stderr.contains("bad frame from worker 0 (rank 2) (expected grads of step 3, piece ") && r.stderr.contains("checksum mismatch"), r.stderr)
        XCTAssertLessThan(r.seconds, 60)
        let errors = Harness.records(dir + "/r/logs/server-0.jsonl", ErrorRecord.self) + Harness.records(dir + "/r/logs/server-1.jsonl", ErrorRecord.self)
        XCTAssertFalse(errors.isEmpty, "the error is in the run log too")
    }
}
