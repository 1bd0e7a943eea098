import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSRunLog
import XCTest

/// Convolutional models with batchnorm and dropout as real jobs: exact
/// resume after kill -9, resume on another world size, the running
/// statistics the servers keep, gradient accumulation.
final class DenseWorkloadMPITests: XCTestCase {
    /// A small CNN on 8x8 synthetic images: conv, batchnorm, relu, pool,
    /// flatten, dropout, dense; AdamW.
    static let cnn = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--set", "data.synthetic_test=256",
                      "--set", "model.input=[1, 8, 8]",
                      "--set", "model.layers=[{type=\"conv2d\", channels=4, kernel=3, padding=1}, {type=\"batchnorm\"}, {type=\"relu\"}, "
                        + "{type=\"maxpool2d\", kernel=2}, {type=\"flatten\"}, {type=\"dropout\", p=0.25}, {type=\"dense\", units=10}]",
                      "--set", "train.batch_size=64", "--set", "train.optimizer=\"adamw\"", "--set", "train.lr=0.005",
                      "--set", "train.weight_decay=0.01", "--epochs", "1", "--set", "checkpoint.every_steps=10"]

    func exported(_ dir: String, _ run: String) throws -> [String: Safetensors.Tensor] {
        let ex = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", run, "--out", run + ".safetensors"], cwd: dir)
        assertEnded(ex, status: 0, "export of \(run)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(run).safetensors")))
        return Dictionary(uniqueKeysWithValues: try Safetensors.decode(bytes, source: run).tensors.map { ($0.name, $0) })
    }

    /// 32 steps straight, against: a worker killed with SIGKILL at step 25
    /// and the run resumed from step-20: the same final bits (AdamW's
    /// moments and update count come back from the checkpoint; batchnorm's
    /// running statistics live on the servers; dropout's masks depend on
    /// (seed, step, row) only). Then step-20 resumed on S=2 W=3 runs to the
    /// end, and the running statistics and the step counter are those of
    /// all 32 steps.
    func testExactResumeWithBatchnormAndDropout() throws {
        let dir = Harness.tempDir("cnnresume")
        let straight = try Harness.launch(Self.cnn + ["--run-dir", "a"], cwd: dir)
        assertEnded(straight, status: 0, "straight")
        let killed = try Harness.launch(Self.cnn + ["--run-dir", "b", "--set", "debug.die_at_steps=25"], cwd: dir)
        assertEnded(killed, status: nil, "killed")
        XCTAssertTrue(killed.stderr.contains("killed by signal 9"), killed.stderr)
        let r = Harness.run(try Harness.executable("pstrain"), ["resume", "b"], cwd: dir, timeout: 180)
        assertEnded(r, status: 0, "resume")
        XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
        let a = Harness.finalState(dir + "/a", servers: 1, workers: 2), b = Harness.finalState(dir + "/b", servers: 1, workers: 2)
        Harness.assertComplete(a)
        XCTAssertEqual(a, b, "bit-identical after kill and resume")

        let t = try exported(dir, "a")
        XCTAssertEqual(t["layers.1.num_batches_tracked"]?.floats, [32], "one count per applied step")
        let rv = try XCTUnwrap(t["layers.1.running_var"]?.floats)
        XCTAssertEqual(rv.count, 4)
        XCTAssertTrue(rv.allSatisfy { $0.isFinite && $0 > 0 && $0 != 1 }, "the running variance moved: \(rv)")

        try FileManager.default.copyItem(atPath: dir + "/b", toPath: dir + "/c")
        let w3 = Harness.run(try Harness.executable("pstrain"), ["resume", "c", "--workers", "3", "--servers", "2", "--from", "step-20"],
                             cwd: dir, timeout: 180)
        assertEnded(w3, status: 0, "resume on S=2 W=3")
        let c = try exported(dir, "c")
        XCTAssertEqual(c["layers.1.num_batches_tracked"]?.floats, [32])
        let resumed = Harness.records(dir + "/c/logs/server-1.jsonl", RankResumedRecord.self).first
        XCTAssertEqual(resumed?.step, 20, "server 1 of the new world loaded its shard (weights and AdamW's state) of step-20")
        let acc = Harness.records(dir + "/c/logs/server-0.jsonl", EvalRecord.self).last?.testAccuracy ?? 0
        XCTAssertGreaterThan(acc, 0.5, "the CNN learns the synthetic set after the resume on another world size")
    }
}
