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

/// Real jobs: the launcher, mpirun and the rank executables, on this machine.
/// Each test bounds every process with a deadline (Harness.run).
final class TrainingMPITests: XCTestCase {
    let synthetic = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--set", "data.synthetic_test=512"]

    func testLaunchTrainsWritesTheRunDirectoryAndReports() throws {
        let dir = Harness.tempDir("launch")
        let r = try Harness.launch(["--workers", "2", "--servers", "1", "--epochs", "2", "--run-dir", "run"] + synthetic, cwd: dir)
        assertEnded(r, status: 0, "pstrain launch")
        XCTAssertTrue(r.stdout.contains("pstrain: running: mpirun"), r.stdout)
        XCTAssertTrue(r.stdout.contains("-np 1 ") && r.stdout.contains("pstrain-server") && r.stdout.contains(": "), "MPMD command shown")
        XCTAssertTrue(r.stdout.contains("epoch 2/2"), "progress lines\n\(r.stdout)")
        XCTAssertTrue(r.stdout.contains("final test accuracy"), r.stdout)
        let run = dir + "/run"
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/run.toml"))
        XCTAssertEqual(Harness.records(run + "/events.jsonl", LaunchRecord.self).count, 1)
        XCTAssertEqual(Harness.records(run + "/events.jsonl", ExitRecord.self).first?.code, 0)
        for name in ["server-0", "worker-0", "worker-1"] {
            let log = try XCTUnwrap(LogFile(path: "\(run)/logs/\(name).jsonl"))
            XCTAssertEqual(log.badLines + log.unreadableLines, [], "\(name): every line reads as its record type")
            // Every field of the step records is there: they read as their types.
            let steps = log.logged((any StepRecord).self)
            XCTAssertEqual(steps.count, 32, name)   // 2048 / 128 = 16 steps per epoch, 2 epochs
            XCTAssertEqual(log.count("step"), 32, name)
            let e = steps.first?.envelope
            XCTAssertTrue(e?.run == "run" && e?.rank != nil && e?.role == String(name.prefix(6)) && e?.t != nil, "\(name): \(String(describing: e))")
            XCTAssertNotNil(steps.first?.loss, name)
        }
        XCTAssertEqual(Harness.records(run + "/logs/worker-0.jsonl", WorkerStepRecord.self).count, 32)
        let evals = Harness.records(run + "/logs/server-0.jsonl", EvalRecord.self)
        XCTAssertEqual(evals.count, 2)
        XCTAssertGreaterThan(evals.last?.testAccuracy ?? 0, 0.5)
    }

    func losses(_ run: String) -> [Double] {
        Harness.records(run + "/logs/server-0.jsonl", ServerStepRecord.self).map { $0.loss! }
    }

    /// W=2 S=2 and W=1 S=1 on Fashion-MNIST, same seed and global batch: the
    /// same losses for the first 50 steps within 1e-4 relative.
    func testDataParallelIsTheSingleProcessComputation() throws {
        let dir = Harness.tempDir("equiv")
        let common = ["--set", "train.max_steps=50", "--epochs", "1"]
        let a = try Harness.launch(["--workers", "1", "--servers", "1", "--run-dir", "a"] + common, cwd: dir)
        assertEnded(a, status: 0, "W=1 S=1")
        let b = try Harness.launch(["--workers", "2", "--servers", "2", "--run-dir", "b"] + common, cwd: dir)
        assertEnded(b, status: 0, "W=2 S=2")
        let la = losses(dir + "/a"), lb = losses(dir + "/b")
        XCTAssertEqual(la.count, 50)
        XCTAssertEqual(lb.count, 50)
        for (i, (x, y)) in zip(la, lb).enumerated() {
            XCTAssertLessThanOrEqual(abs(x - y), 1e-4 * abs(x), "step \(i): W=1 \(x) vs W=2 \(y)")
        }
        XCTAssertLessThan(la.last!, la.first!, "the loss falls")
    }

    func testTwoIdenticalRunsEndWithBitIdenticalParameters() throws {
        let dir = Harness.tempDir("bits")
        var digests: [[String]] = []
        for name in ["a", "b"] {
            let r = try Harness.launch(["--workers", "2", "--servers", "2", "--epochs", "1", "--run-dir", name] + synthetic, cwd: dir)
            assertEnded(r, status: 0, "run \(name)")
            digests.append(Harness.finalState("\(dir)/\(name)", servers: 2, workers: 2))
        }
        Harness.assertComplete(digests[0])
        XCTAssertEqual(digests[0], digests[1])
        let workers = (0..<2).map { Harness.records("\(dir)/a/logs/worker-\($0).jsonl", WorkerDoneRecord.self).first?.paramsDigest }
        XCTAssertNotNil(workers[0])
        XCTAssertEqual(workers[0], workers[1], "both workers hold the same final parameters")
    }

    func testPlainMpirunWorksTheSameWay() throws {
        let dir = Harness.tempDir("plain")
        let cfg = dir + "/job.toml"
        try "[data]\nkind = \"synthetic\"\nsynthetic_train = 1024\n[train]\nepochs = 1\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let rankArgs = ["--config", cfg, "--run-dir", "r"]
        let r = try Harness.mpirun(servers: 1, rankArgs, workers: 2, rankArgs, cwd: dir, timeout: 120)
        assertEnded(r, status: 0, "plain mpirun")
        XCTAssertTrue(r.stdout.contains("test accuracy"), r.output)
        XCTAssertEqual(Harness.records(dir + "/r/logs/worker-1.jsonl", WorkerDoneRecord.self).count, 1)
        let hello = Harness.records(dir + "/r/logs/server-0.jsonl", HelloRecord.self).first
        XCTAssertEqual(hello?.workers, 2)
    }
}

/// Bad input ends with a clear message and a non-zero exit, never a hang.
final class BadInputTests: XCTestCase {
    func testMissingDataSet() throws {
        let dir = Harness.tempDir("nodata")
        // The launcher opens the data before mpirun starts (issue 21): one message, nothing left behind.
        let r = try Harness.launch(["--workers", "2", "--servers", "1", "--run-dir", "r", "--set", "data.dir=/nonexistent/fm"], cwd: dir, timeout: 60)
        assertEnded(r, status: nil, "missing data set")
        XCTAssertTrue(r.stderr.contains("data set file not found: /nonexistent/fm/train-images-idx3-ubyte.gz"), r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "data set file not found").count, 2, "said once\n\(r.stderr)")
        XCTAssertFalse(r.output.contains("pstrain: running:"), "refused before mpirun\n\(r.output)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"), "a launch refused before mpirun leaves no run directory")
        // Ranks started by hand say it once for both workers.
        let cfg = dir + "/c.toml"
        try "[data]\ndir = \"/nonexistent/fm\"\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let m = try Harness.mpirun(servers: 1, ["--config", cfg], workers: 2, ["--config", cfg], cwd: dir)
        assertEnded(m, status: nil, "missing data set via mpirun")
        XCTAssertTrue(m.stderr.contains("worker 0 (rank 1), worker 1 (rank 2)"), "one message for both workers\n\(m.stderr)")
        XCTAssertEqual(m.stderr.components(separatedBy: "data set file not found").count, 2, "said once\n\(m.stderr)")
    }

    func testCorruptIDXHeader() throws {
        let dir = Harness.tempDir("badidx")
        let data = dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let real = "/usr/share/datasets/fashion-mnist"
        for f in ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            try FileManager.default.copyItem(atPath: real + "/" + f, toPath: data + "/" + f)
        }
        // An uncompressed file whose magic number is wrong (zlib reads plain files too).
        try Data([0x12, 0x34, 0x08, 0x03] + [UInt8](repeating: 0, count: 64)).write(to: URL(fileURLWithPath: data + "/train-images-idx3-ubyte.gz"))
        let r = try Harness.launch(["--workers", "1", "--servers", "1", "--run-dir", "r", "--set", "data.dir=\(data)"], cwd: dir, timeout: 60)
        assertEnded(r, status: nil, "corrupt IDX")
        XCTAssertTrue(r.stderr.contains("\(data)/train-images-idx3-ubyte.gz: bad IDX magic number"), r.stderr)
    }

    func testUnknownConfigKey() throws {
        let dir = Harness.tempDir("badkey")
        let cfg = dir + "/bad.toml"
        try "[train]\nlrr = 0.1\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let r = try Harness.launch(["--config", cfg, "--run-dir", "r"], cwd: dir, timeout: 30)
        assertEnded(r, status: nil, "unknown key via launch")
        XCTAssertTrue(r.stderr.contains("unknown configuration key 'train.lrr'") && r.stderr.contains("did you mean 'train.lr'"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"), "nothing written for a bad config")
        // The ranks say the same under a plain mpirun.
        let m = try Harness.mpirun(servers: 1, ["--config", cfg], workers: 1, ["--config", cfg], cwd: dir)
        assertEnded(m, status: nil, "unknown key via mpirun")
        XCTAssertTrue(m.stderr.contains("unknown configuration key 'train.lrr'"), m.stderr)
    }

    /// A run directory longer than the ranks' hello carries is refused by the
    /// launcher before mpirun starts, and by ranks started by hand with one
    /// message (it used to be cut, and the ranks wrote elsewhere).
    func testRunDirectoryTooLong() throws {
        let dir = Harness.tempDir("longdir")
        let long = (1...5).map { _ in String(repeating: "d", count: 100) }.joined(separator: "/")   // 504 bytes, relative
        let abs = dir + "/" + long
        let r = try Harness.launch(["--run-dir", long, "--set", "data.kind=synthetic"], cwd: dir, timeout: 30)
        assertEnded(r, status: nil, "run directory too long via launch")
        XCTAssertTrue(r.stderr.contains("the run directory path is \(abs.utf8.count) bytes long (UTF-8), more than the 414 bytes")
                      && r.stderr.contains(abs), r.stderr)
        XCTAssertFalse(r.output.contains("Fatal error"), "refused without a crash\n\(r.output)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + String(repeating: "d", count: 100)), "refused before writing or starting mpirun")
        // The ranks say the same under a plain mpirun, once for all of them.
        let cfg = dir + "/c.toml"
        try "[data]\nkind = \"synthetic\"\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let m = try Harness.mpirun(servers: 1, ["--config", cfg, "--run-dir", long], workers: 1, ["--config", cfg, "--run-dir", long], cwd: dir)
        assertEnded(m, status: nil, "run directory too long via mpirun")
        XCTAssertTrue(m.stderr.contains("server 0 (rank 0), worker 0 (rank 1): the run directory path is 504 bytes long (UTF-8), more than the 414 bytes"), m.stderr)
        XCTAssertEqual(m.stderr.components(separatedBy: "the run directory path is").count, 2, "said once\n\(m.stderr)")
    }

    /// The rank executables' own arguments (swift-argument-parser): --help
    /// before MPI starts; a bad argument on one rank stops every rank with
    /// one message that names it and shows the usage, and a non-zero exit.
    func testBadRankArguments() throws {
        let dir = Harness.tempDir("rankargs")
        let help = Harness.run(try Harness.executable("pstrain-worker"), ["--help"], cwd: dir, timeout: 30)
        XCTAssertEqual(help.status, 0, help.output)
        XCTAssertTrue(help.stdout.contains("USAGE: pstrain-worker --config <file> [--run-dir <dir>] [--resume <checkpoint-dir>] [--set <key=value> ...]"),
                      help.stdout)
        let cfg = dir + "/c.toml"
        try "[data]\nkind = \"synthetic\"\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        for (bad, why) in [(["--bogus"], "Unknown option '--bogus'"), (["--set"], "Missing value for '--set <key=value>'"),
                           (["stray"], "Unexpected argument 'stray'")] {
            let m = try Harness.mpirun(servers: 1, ["--config", cfg], workers: 1, ["--config", cfg] + bad, cwd: dir)
            assertEnded(m, status: nil, "worker argument \(bad)")
            XCTAssertTrue(m.stderr.contains("worker 0 (rank 1): \(why); usage: pstrain-worker --config <file>"), m.stderr)
        }
        let m = try Harness.mpirun(servers: 1, [], workers: 1, ["--config", cfg], cwd: dir)
        assertEnded(m, status: nil, "server without --config")
        XCTAssertTrue(m.stderr.contains("server 0 (rank 0): Missing expected argument '--config <file>'; usage: pstrain-server"), m.stderr)
    }

    func testEmptyRoles() throws {
        let dir = Harness.tempDir("empty")
        for (flag, word) in [("--workers", "worker"), ("--servers", "server")] {
            let r = try Harness.launch([flag, "0"], cwd: dir, timeout: 30)
            assertEnded(r, status: nil, "\(flag) 0")
            XCTAssertTrue(r.stderr.contains("\(flag) must be at least 1") && r.stderr.contains("needs a \(word)"), r.stderr)
        }
        let cfg = dir + "/c.toml"
        try "[data]\nkind = \"synthetic\"\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let m = try Harness.mpirun(servers: 0, [], workers: 2, ["--config", cfg], cwd: dir)
        assertEnded(m, status: nil, "workers without a server")
        XCTAssertTrue(m.stderr.contains("the world has no server"), m.stderr)
    }

    /// When mpirun itself refuses (here: a hostfile with too few slots), the
    /// launcher says why in plain words and where mpirun's own output is.
    func testMpirunRefusalInPlainWords() throws {
        let dir = Harness.tempDir("slots")
        try "localhost slots=1\n".write(toFile: dir + "/hosts", atomically: true, encoding: .utf8)
        let r = try Harness.launch(["--hostfile", dir + "/hosts", "--run-dir", "r", "--set", "data.kind=synthetic"], cwd: dir, timeout: 60)
        assertEnded(r, status: nil, "too few slots")
        XCTAssertTrue(r.stderr.contains("mpirun refused to start 3 ranks: not enough slots"), r.stderr)
        XCTAssertTrue(r.stderr.contains("slots=N") && r.stderr.contains("r/logs/mpirun-1.log"), r.stderr)
        XCTAssertEqual(Harness.records(dir + "/r/events.jsonl", ExitRecord.self).count, 1, "the failure is recorded")
    }

    func testRanksWithDifferentConfigs() throws {
        let dir = Harness.tempDir("diffcfg")
        let cfg = dir + "/c.toml"
        try "[data]\nkind = \"synthetic\"\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let m = try Harness.mpirun(servers: 1, ["--config", cfg, "--set", "train.lr=0.1"], workers: 2, ["--config", cfg], cwd: dir)
        assertEnded(m, status: nil, "different configs")
        XCTAssertTrue(m.stderr.contains("different configurations"), m.stderr)
        XCTAssertTrue(m.stderr.contains("worker 0 (rank 1): train.lr = 0.05 (server 0 (rank 0) has 0.1)"), m.stderr)
    }
}
