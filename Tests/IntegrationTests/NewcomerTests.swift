import Foundation
import PSSupport
import PSConfig
import PSRunLog
import XCTest

/// What a new user trips over (issue 21), as a user meets it: the built
/// launcher on the command line.
final class NewcomerTests: XCTestCase {
    let synthetic = ["--set", "data.kind=synthetic", "--set", "data.synthetic_train=1024", "--set", "data.synthetic_test=256"]

    /// A tiny Criteo click log: label, 13 integer features, 26 categorical fields.
    static func writeCriteo(_ path: String, rows: Int) throws {
        var text = ""
        for r in 0..<rows {
            let ints = (0..<13).map { String(($0 + r) % 5) }
            let cats = (0..<26).map { String(format: "%08x", ($0 * 7 + r) % 3) }
            text += "\(r % 2)\t" + ints.joined(separator: "\t") + "\t" + cats.joined(separator: "\t") + "\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// `--dry-run` checks the configuration against the data's header and the
    /// model's shape, with one message and no mpirun (it said OK, then every
    /// rank failed with the same message).
    func testDryRunChecksTheModelAgainstTheData() throws {
        let dir = Harness.tempDir("dryrun")
        try Self.writeCriteo(dir + "/train.txt", rows: 8)
        try Self.writeCriteo(dir + "/test.txt", rows: 4)
        let ctr = ["--set", "data.format=criteo", "--set", "data.train=train.txt", "--set", "data.test=test.txt",
                   "--set", "model.loss=\"bce\"", "--set", "model.input=13", "--set", "model.layers=[{type=\"dense\",units=1}]"]
        let three = "--set model.tables=[{rows=8,dim=4},{rows=8,dim=4},{rows=8,dim=4}]"
        let cases: [([String], String)] = [
            (["--set", "model.layers=[{type=\"dense\",units=5}]"], "the last layer of model.layers has 5 outputs but the data set has 10 classes"),
            (["--set", "model.input=100"], "model.input = [100] (100 elements) but the data set's samples have 784"),
            (["--set", "model.loss=\"bce\"", "--set", "model.layers=[{type=\"dense\",units=2}]"], "model.loss = \"bce\" takes one logit per row, but the last layer of model.layers has 2 outputs"),
            (ctr + three.split(separator: " ").map(String.init), "model.tables has 3 table(s) but"),
            (ctr + ["--set", "model.input=4"] + three.split(separator: " ").map(String.init), "model.input = 4 dense features but"),
        ]
        for (args, want) in cases {
            let r = try Harness.launch(["--dry-run", "--run-dir", "r"] + args, cwd: dir, timeout: 60)
            assertEnded(r, status: 64, "dry run with \(args)")
            XCTAssertTrue(r.stderr.contains(want), "\(args)\n\(r.stderr)")
            XCTAssertEqual(r.stderr.components(separatedBy: "Error:").count, 2, "one message\n\(r.stderr)")
            XCTAssertFalse(r.output.contains("would run"), "no OK before the error\n\(r.output)")
            XCTAssertFalse(r.stderr.contains("Usage:"), "a configuration refusal is not a usage error\n\(r.stderr)")
        }
        // A configuration that fits says so.
        let tables = "[" + Array(repeating: "{rows=8,dim=4}", count: 26).joined(separator: ",") + "]"
        let ok = try Harness.launch(["--dry-run"] + ctr + ["--set", "model.tables=\(tables)"], cwd: dir, timeout: 60)
        assertEnded(ok, status: 0, "a CTR configuration that fits")
        XCTAssertTrue(ok.stdout.contains("checked: the model builds and fits the data set"), ok.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"), "a dry run writes nothing")
        // The real launch refuses the same before mpirun, and leaves no run directory.
        let l = try Harness.launch(["--run-dir", "r", "--set", "model.input=100"], cwd: dir, timeout: 60)
        assertEnded(l, status: 64, "launch with a model that does not fit")
        XCTAssertTrue(l.stderr.contains("model.input = [100]"), l.stderr)
        XCTAssertFalse(l.output.contains("pstrain: running:"), l.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"), "a refused launch leaves no run directory")
    }

    /// A failed launch no longer uses up its --run-dir: one refused before
    /// mpirun leaves nothing, one whose every attempt failed before a
    /// checkpoint is replaced; a run with a result is still refused.
    func testAFailedLaunchDoesNotUseUpItsRunDirectory() throws {
        let dir = Harness.tempDir("rundir")
        let bad = try Harness.launch(["--run-dir", "r", "--set", "model.layers=[{type=\"dense\",units=5}]"] + synthetic, cwd: dir, timeout: 60)
        assertEnded(bad, status: 64, "refused before mpirun")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"))
        let died = try Harness.launch(["--workers", "2", "--servers", "1", "--run-dir", "r", "--epochs", "1", "--set", "debug.die_at_steps=1"] + synthetic,
                                      cwd: dir, timeout: 120)
        assertEnded(died, status: nil, "a rank that dies before any checkpoint")
        XCTAssertFalse(died.output.contains("remote hosts"), "no hostfile, no remote hosts (mpirun's 'aborted' holds 'orted')\n\(died.output)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/r/events.jsonl"), "the failed run is kept for inspect")
        let retry = try Harness.launch(["--workers", "2", "--servers", "1", "--run-dir", "r", "--epochs", "1"] + synthetic, cwd: dir, timeout: 120)
        assertEnded(retry, status: 0, "the retry in the same run directory")
        XCTAssertTrue(retry.stdout.contains("pstrain: replacing the run in r: its 1 attempt(s) failed and it wrote no checkpoint"), retry.stdout)
        XCTAssertEqual(Harness.records(dir + "/r/events.jsonl", ExitRecord.self).map { $0.code }, [0], "the old attempt is gone")
        let again = try Harness.launch(["--run-dir", "r", "--epochs", "1"] + synthetic, cwd: dir, timeout: 60)
        assertEnded(again, status: 64, "a finished run is kept")
        XCTAssertTrue(again.stderr.contains("run directory r already holds a run"), again.stderr)
        XCTAssertFalse(again.stderr.contains("Usage:"), again.stderr)
    }

    /// Error output: no usage line after a configuration refusal, a negative
    /// count is read as a number, PyTorch's names get ours.
    func testErrorsNameTheFixWithoutNoise() throws {
        let dir = Harness.tempDir("noise")
        try "[train]\nlearning_rate = 0.1\n".write(toFile: dir + "/c.toml", atomically: true, encoding: .utf8)
        let file = try Harness.launch(["--config", "c.toml"], cwd: dir, timeout: 30)
        assertEnded(file, status: 64, "a PyTorch name in a file")
        XCTAssertTrue(file.stderr.contains("unknown configuration key 'train.learning_rate'; did you mean 'train.lr'? (PyTorch's learning_rate)"), file.stderr)
        XCTAssertFalse(file.stderr.contains("Usage:"), "the arguments were fine\n\(file.stderr)")
        let neg = try Harness.launch(["--workers", "-1", "--dry-run"], cwd: dir, timeout: 30)
        assertEnded(neg, status: 64, "--workers -1")
        XCTAssertTrue(neg.stderr.contains("--workers must be at least 1 (got -1)"), neg.stderr)
        let layer = try Harness.launch(["--dry-run", "--set", "model.layers=[{type=\"dense\",out_features=10}]"], cwd: dir, timeout: 30)
        assertEnded(layer, status: 64, "out_features")
        XCTAssertTrue(layer.stderr.contains("PyTorch's out_features is 'units' here"), layer.stderr)
        let conv = try Harness.launch(["--dry-run", "--set", "model.input=[1,28,28]", "--set",
                                       "model.layers=[{type=\"conv2d\",channels=4,kernel_size=3},{type=\"flatten\"},{type=\"dense\",units=10}]"], cwd: dir, timeout: 30)
        XCTAssertTrue(conv.stderr.contains("PyTorch's kernel_size is 'kernel' here"), conv.stderr)
    }
}

/// A second Ctrl-C (here SIGINT to the launcher) while the ranks shut down
/// after the checkpoint of the first: the launcher's last word agrees with
/// the checkpoint (it said "stopped before it could checkpoint" while
/// `ckpt list` showed that checkpoint complete and latest).
final class DoubleSignalTests: XCTestCase {
    func testASecondSignalAfterTheStopCheckpointNamesIt() throws {
        let dir = Harness.tempDir("double-int")
        let args = ["PSTRAIN_TEST_HANG=finalize:0", try Harness.executable("pstrain"), "launch", "--workers", "2", "--servers", "1",
                    "--set", "data.kind=synthetic", "--set", "data.synthetic_train=16384", "--epochs", "2", "--run-dir", "r"]
        let run = try XCTUnwrap(Harness.start("/usr/bin/env", args, cwd: dir))
        var deadline = Date().addingTimeInterval(60)
        while Date() < deadline && Harness.records(dir + "/r/logs/server-0.jsonl", ServerStepRecord.self).count < 20 { usleep(20_000) }
        let launcher = try XCTUnwrap(Harness.sessionMembers(run.pid).first { (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))?.hasPrefix("pstrain") == true },
                                     "the launcher's process")
        kill(launcher, SIGINT)
        deadline = Date().addingTimeInterval(60)
        while Date() < deadline && Harness.records(dir + "/r/logs/server-0.jsonl", StoppedRecord.self).isEmpty { usleep(20_000) }
        let stopped = try XCTUnwrap(Harness.records(dir + "/r/logs/server-0.jsonl", StoppedRecord.self).first?.step, "the stop's checkpoint")
        usleep(300_000)   // server 0 now waits in its hang before MPI_Finalize
        kill(launcher, SIGINT)
        let r = Harness.finish(run, timeout: 60)
        assertEnded(r, status: nil, "aborted by a second signal")
        XCTAssertTrue(r.stderr.contains("aborting now"), r.stderr)
        XCTAssertTrue(r.stderr.contains("after they had completed checkpoint step-\(stopped) for the stop; continue with: pstrain resume r"), r.stderr)
        XCTAssertFalse(r.stderr.contains("before it could checkpoint"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir + "/r/checkpoints/LATEST", encoding: .utf8), "step-\(stopped)\n")
    }
}
