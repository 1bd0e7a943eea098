import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSRunLog
import XCTest

/// The Adam family and RMSprop through real jobs: their state (exp_avg,
/// exp_avg_sq; square_avg, momentum_buffer, grad_avg) checkpointed, restored
/// exactly after kill -9, and re-cut on resume with another number of servers.
final class OptimizerMPITests: XCTestCase {
    let synthetic = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--epochs", "2",
                     "--set", "checkpoint.every_steps=10"]
    let adamw = ["--set", "train.optimizer=\"adamw\"", "--set", "train.lr=0.002", "--set", "train.weight_decay=0.01",
                 "--set", "train.warmup_steps=5"]

    func resume(_ args: [String], cwd: String) throws -> ProcessResult {
        Harness.run(try Harness.executable("pstrain"), ["resume"] + args, cwd: cwd, timeout: 180)
    }

    /// 32 steps straight, against: a worker killed (SIGKILL) at step 25 and
    /// the run resumed from step-20. AdamW in FP16 with gradient clipping and
    /// two forced overflows (steps 3 and 4 are skipped, so Adam's update count
    /// trails the step number by 2, restored from the checkpoint's scaler):
    /// every rank ends with the same bits, the AdamW state included.
    func testAdamWResumesExactlyAfterKill() throws {
        let dir = Harness.tempDir("adamw-exact")
        let extra = adamw + ["--precision", "fp16", "--set", "train.clip_norm=0.5", "--set", "debug.overflow_step=3",
                             "--set", "debug.overflow_steps=2"]
        let straight = try Harness.launch(synthetic + extra + ["--run-dir", "a"], cwd: dir)
        assertEnded(straight, status: 0, "straight")
        let killed = try Harness.launch(synthetic + extra + ["--run-dir", "b", "--set", "debug.die_at_steps=25"], cwd: dir)
        assertEnded(killed, status: nil, "killed")
        XCTAssertTrue(killed.stderr.contains("killed by signal 9"), killed.stderr)
        let r = try resume(["b"], cwd: dir)
        assertEnded(r, status: 0, "resume")
        XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
        let a = Harness.finalState(dir + "/a", servers: 1, workers: 2), b = Harness.finalState(dir + "/b", servers: 1, workers: 2)
        Harness.assertComplete(a)
        XCTAssertTrue(a[0].contains("exp_avg_digest=") && a[0].contains("exp_avg_sq_digest=") && a[0].contains("skipped=2"), a[0])
        XCTAssertEqual(a, b, "bit-identical after kill and resume")
        let norms = Harness.records(dir + "/a/logs/server-0.jsonl", ServerStepRecord.self).compactMap { $0.gradNorm }
        XCTAssertEqual(norms.count, 30, "a norm on every step but the two skipped ones")
    }

    /// RMSprop (centered, with momentum: three state tensors) as a real job,
    /// W=2 S=2: a worker killed at step 25 and the run resumed from step-20
    /// ends with the uninterrupted run's bits, its state digests included.
    func testRMSpropResumesExactlyAfterKill() throws {
        let dir = Harness.tempDir("rmsprop-exact")
        let extra = ["--workers", "2", "--servers", "2", "--set", "train.optimizer=\"rmsprop\"", "--set", "train.lr=0.001",
                     "--set", "train.centered=true", "--set", "train.momentum=0.5"]
        let straight = try Harness.launch(synthetic + extra + ["--run-dir", "a"], cwd: dir)
        assertEnded(straight, status: 0, "straight")
        let killed = try Harness.launch(synthetic + extra + ["--run-dir", "b", "--set", "debug.die_at_steps=25"], cwd: dir)
        assertEnded(killed, status: nil, "killed")
        let r = try resume(["b"], cwd: dir)
        assertEnded(r, status: 0, "resume\n\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
        let a = Harness.finalState(dir + "/a", servers: 2, workers: 2)
        Harness.assertComplete(a)
        for state in ["square_avg_digest=", "momentum_buffer_digest=", "grad_avg_digest="] { XCTAssertTrue(a[0].contains(state), a[0]) }
        XCTAssertEqual(a, Harness.finalState(dir + "/b", servers: 2, workers: 2), "bit-identical after kill and resume")
        let evals = Harness.records(dir + "/a/logs/server-0.jsonl", EvalRecord.self)
        XCTAssertGreaterThan(evals.last?.testAccuracy ?? 0, 0.5, "RMSprop learns the synthetic classes")
    }

    /// A W=2 S=1 AdamW run resumed from step-20 with S=2 ends with the same
    /// weights, exp_avg and exp_avg_sq as the run that went on with S=1, bit
    /// for bit, read back from both runs' final checkpoints: the state was
    /// re-cut over the servers and restored exactly (with the workers
    /// unchanged, each element's arithmetic does not depend on S).
    func testAdamWStateIsReshardedOnResume() throws {
        let dir = Harness.tempDir("adamw-reshard")
        let r = try Harness.launch(synthetic + adamw + ["--workers", "2", "--servers", "1", "--run-dir", "one"], cwd: dir)
        assertEnded(r, status: 0, "S=1")
        try FileManager.default.copyItem(atPath: dir + "/one", toPath: dir + "/two")
        try FileManager.default.removeItem(atPath: dir + "/two/checkpoints/step-30")
        try FileManager.default.removeItem(atPath: dir + "/two/checkpoints/step-32")
        let res = try resume(["two", "--servers", "2", "--from", "step-20"], cwd: dir)
        assertEnded(res, status: 0, "resume with S=2")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/two/checkpoints/step-32/server-1.safetensors"), "S=2 wrote the last checkpoint")
        let saved = try finalTensors(dir + "/one/checkpoints/step-32"), resharded = try finalTensors(dir + "/two/checkpoints/step-32")
        XCTAssertEqual(saved.keys.sorted(), ["", "exp_avg", "exp_avg_sq"])
        for (name, values) in saved {
            XCTAssertTrue(values.contains { $0 != 0 }, "\(name) is not all zeros")
            XCTAssertEqual(values.map { $0.bitPattern }, resharded[name]?.map { $0.bitPattern }, "\(name.isEmpty ? "weights" : name) after the reshard")
        }
    }

    /// The whole model's weights ("") and each optimizer state of a checkpoint, as the servers load them.
    func finalTensors(_ folder: String) throws -> [String: [Float]] {
        let m = try CheckpointStore.verify(folder)
        let cfg = try m.configuration(folder: folder)
        let layout = try Model(cfg.model, capacity: 1).layout
        var out: [String: [Float]] = [:]
        for suffix in try CheckpointStore.serverSuffixes(m, dir: folder) {
            var v = [Float](repeating: 0, count: layout.totalCount)
            try v.withUnsafeMutableBufferPointer {
                try CheckpointStore.loadRange(folder, m, layout: layout, suffix: suffix, lo: 0, hi: layout.totalCount, into: $0.baseAddress!)
            }
            out[suffix] = v
        }
        return out
    }
}
