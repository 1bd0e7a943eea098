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

/// Checkpoints, exact resume, resharding, restarts, damage, interop: real jobs.
final class CheckpointMPITests: XCTestCase {
    let synthetic = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--epochs", "2",
                     "--set", "checkpoint.every_steps=10"]

    func digests(_ run: String, servers: Int, workers: Int) -> [String] { Harness.finalState(run, servers: servers, workers: workers) }

    func resume(_ args: [String], cwd: String) throws -> ProcessResult {
        Harness.run(try Harness.executable("pstrain"), ["resume"] + args, cwd: cwd, timeout: 180)
    }

    /// 32 steps straight, against: killed (SIGKILL of a worker) at step 25,
    /// resumed from step-20: the same final bits, in FP32 and in FP16 with a
    /// loss scale that grew before the kill.
    func testExactResumeAfterKill() throws {
        for extra in [["--precision", "fp32"], ["--precision", "fp16", "--set", "scaler.growth_interval=7"]] {
            let dir = Harness.tempDir("exact")
            let straight = try Harness.launch(synthetic + extra + ["--run-dir", "a"], cwd: dir)
            assertEnded(straight, status: 0, "straight \(extra)")
            let killed = try Harness.launch(synthetic + extra + ["--run-dir", "b", "--set", "debug.die_at_steps=25"], cwd: dir)
            assertEnded(killed, status: nil, "killed \(extra)")
            XCTAssertTrue(killed.stderr.contains("killed by signal 9"), killed.stderr)
            let r = try resume(["b"], cwd: dir)
            assertEnded(r, status: 0, "resume \(extra)")
            XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
            let a = digests(dir + "/a", servers: 1, workers: 2), b = digests(dir + "/b", servers: 1, workers: 2)
            Harness.assertComplete(a)
            XCTAssertEqual(a, b, "bit-identical after kill and resume \(extra)")
            if extra.contains("fp16") {
                let resumed = Harness.records(dir + "/b/logs/server-0.jsonl", RankResumedRecord.self).first
                XCTAssertEqual(resumed?.lossScale, 65536 * 4, "the scale had grown twice (steps 7 and 14) before step 20")
            }
        }
    }

    /// A checkpoint of S=2 W=2 resumes with S=1 W=1 and S=3 W=3: the loaded
    /// parameters are the saved ones bit for bit, and training goes on.
    func testReshard() throws {
        let dir = Harness.tempDir("reshard")
        let r = try Harness.launch(synthetic + ["--workers", "2", "--servers", "2", "--run-dir", "orig"], cwd: dir)
        assertEnded(r, status: 0, "S=2 W=2")
        let saved = Harness.records(dir + "/orig/logs/worker-0.jsonl", WorkerCheckpointRecord.self).first { $0.step == 20 }?.paramsDigest
        XCTAssertNotNil(saved)
        for (w, s) in [(1, 1), (3, 3)] {
            let copy = "w\(w)s\(s)"
            try FileManager.default.copyItem(atPath: dir + "/orig", toPath: dir + "/" + copy)
            let res = try resume([copy, "--workers", "\(w)", "--servers", "\(s)", "--from", "step-20"], cwd: dir)
            assertEnded(res, status: 0, "resume W=\(w) S=\(s)")
            for j in 0..<w {
                let loaded = Harness.records("\(dir)/\(copy)/logs/worker-\(j).jsonl", RankResumedRecord.self).first?.paramsDigest
                XCTAssertEqual(loaded, saved, "worker \(j) of W=\(w) S=\(s) starts from the saved parameters")
            }
            let evals = Harness.records("\(dir)/\(copy)/logs/server-0.jsonl", EvalRecord.self)
            XCTAssertEqual(evals.last?.step, 32, "training continued to the end")
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(copy)/checkpoints/step-32/server-\(s - 1).safetensors"))
        }
    }

    /// --max-restarts 3, a worker killed twice: the run finishes with the
    /// uninterrupted run's parameters (and so its accuracy), and events.jsonl
    /// records both restarts.
    func testAutomaticRestart() throws {
        let dir = Harness.tempDir("restart")
        let straight = try Harness.launch(synthetic + ["--run-dir", "a"], cwd: dir)
        assertEnded(straight, status: 0, "straight")
        // Two random steps, in different checkpoint intervals (every 10 steps).
        let first = Int.random(in: 11...19), second = Int.random(in: 21...31)
        print("killing worker 1 at steps \(first) and \(second)")
        let r = try Harness.launch(synthetic + ["--run-dir", "b", "--max-restarts", "3", "--set", "debug.die_at_steps=\(first),\(second)",
                                                "--set", "debug.die_worker=1"], cwd: dir)
        assertEnded(r, status: 0, "run with two kills (steps \(first), \(second))")
        XCTAssertTrue(r.stdout.contains("restart 1 of 3 from step-10") && r.stdout.contains("restart 2 of 3 from step-\(second > 30 ? 30 : 20)"), r.stdout)
        XCTAssertEqual(Harness.records(dir + "/b/events.jsonl", RestartRecord.self).count, 2)
        XCTAssertEqual(digests(dir + "/a", servers: 1, workers: 2), digests(dir + "/b", servers: 1, workers: 2))
        let accA = Harness.records(dir + "/a/logs/server-0.jsonl", EvalRecord.self).last?.testAccuracy
        let accB = Harness.records(dir + "/b/logs/server-0.jsonl", EvalRecord.self).last?.testAccuracy
        XCTAssertEqual(accA, accB)
    }

    /// A flipped byte or a truncated file is caught; resume falls back to the
    /// previous complete checkpoint.
    func testDamageIsDetectedAndSkipped() throws {
        let dir = Harness.tempDir("damage")
        let r = try Harness.launch(synthetic + ["--run-dir", "a", "--set", "debug.die_at_steps=31"], cwd: dir)
        assertEnded(r, status: nil, "killed at 31")
        // Damage the newest (step-30) server file: one flipped byte.
        let f = dir + "/a/checkpoints/step-30/server-0.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: f))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: f))
        let v = Harness.run(try Harness.executable("pstrain"), ["ckpt", "verify", "a"], cwd: dir)
        XCTAssertEqual(v.status, 1)
        XCTAssertTrue(v.stdout.contains("step-30: DAMAGED") && v.stdout.contains("SHA-256 mismatch") && v.stdout.contains("step-20: ok"), v.stdout)
        // Truncate step-20's worker file too: only step-10 is left intact.
        let w = dir + "/a/checkpoints/step-20/worker-1.safetensors"
        let wb = try Data(contentsOf: URL(fileURLWithPath: w))
        try wb.prefix(wb.count - 3).write(to: URL(fileURLWithPath: w))
        let res = try resume(["a"], cwd: dir)
        assertEnded(res, status: 0, "resume past damage")
        XCTAssertTrue(res.stdout.contains("step-30 is damaged and is skipped") && res.stdout.contains("step-20 is damaged and is skipped"), res.stdout)
        XCTAssertTrue(res.stdout.contains("from step-10"), res.stdout)
    }

    /// Python (numpy + safetensors) loads an exported checkpoint and computes
    /// the MLP's test accuracy on Fashion-MNIST; it matches what pstrain
    /// reported to within 0.05 points (5 of 10,000 images: numpy's and
    /// OpenBLAS's float sums may round differently near a tie).
    func testExportedModelScoresTheSameInNumpy() throws {
        let dir = Harness.tempDir("export")
        let r = try Harness.launch(["--epochs", "1", "--set", "train.max_steps=150", "--run-dir", "a"], cwd: dir)
        assertEnded(r, status: 0, "short Fashion-MNIST run")
        let ex = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", "a", "--out", "model.safetensors"], cwd: dir)
        assertEnded(ex, status: 0, "export")
        // The export never deletes (issue 20: --out naming the run wiped it) and replaces only a regular file it is asked to.
        let again = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", "a", "--out", "model.safetensors"], cwd: dir)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("model.safetensors exists: pass --force"), again.output)
        let before = try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors"))
        for out in ["a", dir + "/a/checkpoints", "."] {
            let r = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", "a", "--out", out, "--force"], cwd: dir)
            XCTAssertNotEqual(r.status, 0, out)
            XCTAssertTrue(r.output.contains("is a folder"), r.output)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/a/checkpoints/LATEST"), "the run is intact")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/a/logs/server-0.jsonl"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: dir + "/model.safetensors")
        let link = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", "a", "--out", "link.safetensors", "--force"], cwd: dir)
        XCTAssertNotEqual(link.status, 0)
        XCTAssertTrue(link.output.contains("not a regular file"), link.output)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")), before, "nothing replaced")
        let forced = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", "a", "--out", "model.safetensors", "--force"], cwd: dir)
        assertEnded(forced, status: 0, "export --force over its own file")
        XCTAssertFalse((try FileManager.default.contentsOfDirectory(atPath: dir)).contains { $0.contains(".tmp-") }, "no temporary file left")
        let reported = Harness.records(dir + "/a/logs/server-0.jsonl", EvalRecord.self).last?.testAccuracy ?? -1
        let script = """
        import gzip, sys, numpy as np
        from safetensors.numpy import load_file
        t = load_file(sys.argv[1])
        d = '/usr/share/datasets/fashion-mnist'
        x = np.frombuffer(gzip.open(d + '/t10k-images-idx3-ubyte.gz').read()[16:], np.uint8).reshape(-1, 784)
        y = np.frombuffer(gzip.open(d + '/t10k-labels-idx1-ubyte.gz').read()[8:], np.uint8)
        h = (x.astype(np.float32) * np.float32(1 / (255 * 0.3530)) + np.float32(-0.2860 / 0.3530))
        h = np.maximum(h @ t['layers.0.weight'].T + t['layers.0.bias'], 0)
        h = np.maximum(h @ t['layers.2.weight'].T + t['layers.2.bias'], 0)
        z = h @ t['layers.4.weight'].T + t['layers.4.bias']
        print('%.6f' % (z.argmax(1) == y).mean())
        """
        let py = Harness.run("/usr/bin/env", ["python3", "-c", script, dir + "/model.safetensors"], cwd: dir)
        assertEnded(py, status: 0, "numpy evaluation")
        let acc = Double(py.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -2
        XCTAssertGreaterThan(acc, 0.6)
        XCTAssertLessThanOrEqual(abs(acc - reported), 0.0005, "numpy \(acc) vs pstrain \(reported)")
    }
}

/// Crashes while a checkpoint is written, a full disk, a hung rank.
final class CheckpointFailureMPITests: XCTestCase {
    let synthetic = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--epochs", "2",
                     "--set", "checkpoint.every_steps=10"]

    func latestVerifies(_ run: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        guard let latest = try? String(contentsOfFile: run + "/checkpoints/LATEST", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else {
            XCTFail("no LATEST in \(run)", file: file, line: line); return nil
        }
        let v = Harness.run((try? Harness.executable("pstrain")) ?? "", ["ckpt", "verify", run, latest], cwd: run)
        XCTAssertEqual(v.status, 0, "LATEST (\(latest)) must verify: \(v.output)", file: file, line: line)
        return latest
    }

    /// Server 0 dies after the files are written, after the manifest, and
    /// after the rename (before LATEST moves): LATEST always names a complete
    /// checkpoint, and resuming from it gives the uninterrupted run's bits.
    func testCrashWhileWritingACheckpoint() throws {
        let dir = Harness.tempDir("ckcrash")
        let straight = try Harness.launch(synthetic + ["--run-dir", "a"], cwd: dir)
        assertEnded(straight, status: 0, "straight")
        let want = Harness.finalState(dir + "/a", servers: 1, workers: 2)
        Harness.assertComplete(want)
        for point in ["after-files", "after-manifest", "after-rename"] {
            let run = "c-\(point)"
            let r = try Harness.launch(synthetic + ["--run-dir", run, "--set", "debug.die_in_checkpoint=20:\(point)"], cwd: dir)
            assertEnded(r, status: nil, "crash \(point)")
            XCTAssertEqual(latestVerifies(dir + "/" + run), "step-10", "\(point): LATEST still names step-10")
            if point == "after-rename" {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(run)/checkpoints/step-20/manifest.json"),
                              "renamed but not yet LATEST")
            }
            let res = Harness.run(try Harness.executable("pstrain"), ["resume", run], cwd: dir, timeout: 120)
            assertEnded(res, status: 0, "resume after \(point)")
            XCTAssertFalse(((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/\(run)/checkpoints")) ?? []).contains { $0.hasPrefix(".tmp") },
                           "no temporary folder is left behind")
            XCTAssertEqual(Harness.finalState("\(dir)/\(run)", servers: 1, workers: 2), want, point)
        }
    }

    /// A file system that fills up: the checkpoint fails with a clear
    /// message, the previous checkpoint and LATEST stay intact.
    func testFullDisk() throws {
        // First the free-space check refuses the write; then, with that check
        // off (a test hook), the write itself meets ENOSPC. Both end the same way.
        for (hook, why) in [("0", "not enough free space"), ("1", "No space left on device")] {
            let dir = Harness.tempDir("full")
            let mnt = dir + "/small"
            try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
            // 3 MB holds one checkpoint of this model (1.9 MB) and the logs, not two.
            let m = Harness.run("/bin/mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], cwd: dir, timeout: 20)
            XCTAssertEqual(m.status, 0, "mounting a small tmpfs needs root: \(m.output)")
            guard m.status == 0 else { return }
            defer { _ = Harness.run("/bin/umount", ["-l", mnt], cwd: dir, timeout: 20) }
            let r = Harness.run("/usr/bin/env", ["PSTRAIN_TEST_NO_ROOM_CHECK=\(hook)", try Harness.executable("pstrain"), "launch"]
                                + synthetic + ["--run-dir", "small/run"], cwd: dir, timeout: 120)
            assertEnded(r, status: nil, "disk full, hook \(hook)")
            XCTAssertTrue(r.stderr.contains("checkpoint step-20 failed") && r.stderr.contains(why), r.stderr)
            XCTAssertTrue(r.stderr.contains("the previous checkpoint (step-10) and LATEST are untouched"), r.stderr)
            XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
            XCTAssertEqual(latestVerifies(mnt + "/run"), "step-10")
            XCTAssertFalse(((try? FileManager.default.contentsOfDirectory(atPath: mnt + "/run/checkpoints")) ?? []).contains { $0.hasPrefix(".tmp") })
            // The logs on the full disk hold whole lines only.
            for name in ["server-0", "worker-0", "worker-1"] {
                let text = (try? String(contentsOfFile: "\(mnt)/run/logs/\(name).jsonl", encoding: .utf8)) ?? ""
                XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"), "\(name).jsonl ends in a half line")
            }
        }
    }

    /// A worker stopped with SIGSTOP: every other rank gives up within the
    /// deadline naming it, and the launcher restarts from the last checkpoint.
    func testHungRankIsDetectedAndRestarted() throws {
        let dir = Harness.tempDir("hung")
        let run = try XCTUnwrap(Harness.start(try Harness.executable("pstrain"),
                                               ["launch"] + synthetic + ["--run-dir", "r", "--max-restarts", "1", "--set", "run.timeout_seconds=5",
                                                                         "--set", "data.synthetic_train=8192"], cwd: dir))
        // Wait for worker 1 to pass step 12, then stop it.
        var pid: Int?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let steps = Harness.records(dir + "/r/logs/worker-1.jsonl", WorkerStepRecord.self)
            if steps.count > 12 { pid = Harness.records(dir + "/r/logs/worker-1.jsonl", HelloRecord.self).first?.pid; break }
            usleep(20_000)
        }
        let victim = try XCTUnwrap(pid, "worker 1 never reached step 12")
        let stoppedAt = Date()
        kill(pid_t(victim), SIGSTOP)
        let r = Harness.finish(run, timeout: 150)
        assertEnded(r, status: 0, "the run finishes after a restart")
        // Every rank that gave up names worker 1, never the server that was itself waiting for it.
        let errors = r.stderr.split(separator: "\n").filter { $0.contains("]: error:") }
        XCTAssertFalse(errors.isEmpty, r.stderr)
        for e in errors { XCTAssertTrue(e.contains("error: worker 1 (rank 2) sent nothing for 5 s while server 0 (rank 0) waited"), String(e)) }
        // The checkpoint the message names is the one the restart resumed from.
        let named = try XCTUnwrap(errors.first.flatMap { $0.range(of: #"last checkpoint: step-\d+"#, options: .regularExpression).map { String(errors.first![$0].dropFirst(17)) } })
        let restarts = Harness.records(dir + "/r/events.jsonl", RestartRecord.self)
        XCTAssertEqual(restarts.count, 1)
        XCTAssertEqual(restarts.first?.from.map { ($0 as NSString).lastPathComponent }, named, r.stderr)
        let exits = LogFile(path: dir + "/r/events.jsonl")?.logged(ExitRecord.self) ?? []
        let firstExit = try XCTUnwrap(exits.first?.t, "the launcher recorded the stuck attempt's exit")
        XCTAssertLessThan(firstExit - stoppedAt.timeIntervalSince1970, 20, "the stuck attempt ended within the deadline and shutdown")
    }
}

/// Preemption and time-based checkpoints.
final class PreemptionMPITests: XCTestCase {
    let longer = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=16384", "--epochs", "2"]

    /// SIGTERM to the launcher: the ranks finish the step, checkpoint, exit 0;
    /// resuming gives the bits of a run that was never stopped.
    func testSIGTERMCheckpointsAndExitsZero() throws {
        let dir = Harness.tempDir("preempt")
        let straight = try Harness.launch(longer + ["--run-dir", "a"], cwd: dir, timeout: 180)
        assertEnded(straight, status: 0, "straight")
        let run = try XCTUnwrap(Harness.start(try Harness.executable("pstrain"), ["launch"] + longer + ["--run-dir", "b"], cwd: dir))
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && Harness.records(dir + "/b/logs/server-0.jsonl", ServerStepRecord.self).count < 30 { usleep(20_000) }
        kill(run.pid, SIGTERM)
        let r = Harness.finish(run, timeout: 120)
        assertEnded(r, status: 0, "preempted launcher")
        let stopped = try XCTUnwrap(Harness.records(dir + "/b/logs/server-0.jsonl", ServerStoppedRecord.self).first?.step)
        XCTAssertLessThan(stopped, 256)
        XCTAssertTrue(r.stdout.contains("stopped after step \(stopped) as asked") && r.stdout.contains("pstrain resume b"), r.stdout)
        XCTAssertEqual(try String(contentsOfFile: dir + "/b/checkpoints/LATEST", encoding: .utf8), "step-\(stopped)\n")
        let res = Harness.run(try Harness.executable("pstrain"), ["resume", "b"], cwd: dir, timeout: 180)
        assertEnded(res, status: 0, "resume after preemption")
        let want = Harness.finalState(dir + "/a", servers: 1, workers: 2)
        Harness.assertComplete(want)
        XCTAssertEqual(Harness.finalState(dir + "/b", servers: 1, workers: 2), want)
    }

    func testCheckpointsEverySoManySeconds() throws {
        let dir = Harness.tempDir("seconds")
        // A straggler of 8 ms a step makes the 256 steps last at least 2 s in any build (the release build is otherwise done in under 1 s).
        let r = try Harness.launch(longer + ["--run-dir", "r", "--set", "checkpoint.every_seconds=0.4", "--set", "checkpoint.keep=100",
                                             "--set", "debug.slow_worker=0", "--set", "debug.slow_ms=8"], cwd: dir, timeout: 180)
        assertEnded(r, status: 0, "run with time-based checkpoints")
        let steps = Harness.records(dir + "/r/logs/server-0.jsonl", ServerCheckpointRecord.self).map { $0.step }
        XCTAssertGreaterThanOrEqual(steps.count, 3, "several during the run and one at the end: \(steps)")
        XCTAssertEqual(steps.last, 256)
        let v = Harness.run(try Harness.executable("pstrain"), ["ckpt", "verify", "r"], cwd: dir)
        XCTAssertEqual(v.status, 0, v.output)
        // Every worker wrote its file at the same steps the servers chose.
        let w = Harness.records(dir + "/r/logs/worker-1.jsonl", WorkerCheckpointRecord.self).map { $0.step }
        XCTAssertEqual(w, steps)
    }
}
