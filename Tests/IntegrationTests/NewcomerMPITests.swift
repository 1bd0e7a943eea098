import Foundation
import PSSupport
import PSConfig
import PSCheckpoint
import PSRunLog
import XCTest

/// What a new user trips over (issue 21), as a user meets it: the built
/// launcher on the command line.
final class NewcomerMPITests: XCTestCase {
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
            (ctr + ["--set", "data.train=/nonexistent/train.tsv", "--set", "model.tables=[{rows=8,dim=4,count=26}]"],
             "data set file not found: /nonexistent/train.tsv (data.train)"),
            // Fields chosen (model.tables[i].fields): each within the log's, each in one table, every table naming its own.
            (ctr + ["--set", "model.tables=[{rows=8,dim=4,fields=[0,26]}]"], "model.tables[0] names field 26 but"),
            (ctr + ["--set", "model.tables=[{rows=8,dim=4,fields=[0,1]},{rows=8,dim=4,fields=[1]}]"],
             "model.tables[1] names field 1, which model.tables[0] embeds already"),
            (ctr + ["--set", "model.tables=[{rows=8,dim=4,fields=[0]},{rows=8,dim=4}]"], "model.tables[1] has no fields while other tables name theirs"),
            (ctr + ["--set", "model.tables=[{rows=8,dim=4,fields=[0],count=2}]"], "has both count and fields"),
        ]
        for (args, want) in cases {
            let r = try Harness.launch(["--dry-run", "--run-dir", "r"] + args, cwd: dir, timeout: 60)
            assertEnded(r, status: 64, "dry run with \(args)")
            XCTAssertTrue(r.stderr.contains(want), "\(args)\n\(r.stderr)")
            XCTAssertEqual(r.stderr.components(separatedBy: "Error:").count, 2, "one message\n\(r.stderr)")
            XCTAssertFalse(r.output.contains("would run"), "no OK before the error\n\(r.output)")
            XCTAssertFalse(r.stderr.contains("Usage:"), "a configuration refusal is not a usage error\n\(r.stderr)")
        }
        // A configuration that fits says so: one entry with count = 26 stands for the 26 tables, and
        // --set model.tables[i].key changes one table (it was refused).
        let ok = try Harness.launch(["--dry-run"] + ctr + ["--set", "model.tables=[{rows=8,dim=4,count=26}]", "--set", "model.tables[3].dim=2"],
                                    cwd: dir, timeout: 60)
        assertEnded(ok, status: 0, "a CTR configuration that fits")
        XCTAssertTrue(ok.stdout.contains("checked: the model builds and fits the data set"), ok.stdout)
        let entries = ok.stdout.components(separatedBy: "type = \"embedding_bag\"").count - 1
        XCTAssertEqual(entries, 26, ok.stdout)
        XCTAssertEqual(ok.stdout.components(separatedBy: "dim = 2,").count - 1, 1, "table 3 alone has dim 2\n\(ok.stdout)")
        // Fields chosen and shared: one table for fields 0, 2 and 5, one for field 7; the other 22 left out.
        let chosen = try Harness.launch(["--dry-run"] + ctr + ["--set", "model.tables=[{rows=8,dim=4,fields=[0,2,5]},{rows=8,dim=4,fields=[7]}]"],
                                        cwd: dir, timeout: 60)
        assertEnded(chosen, status: 0, "tables that name their fields")
        XCTAssertTrue(chosen.stdout.contains("fields = [0, 2, 5]") && chosen.stdout.contains("fields = [7]"), chosen.stdout)
        // One table's fields changed with the indexed --set (the layout is checked once, after every override).
        let moved = try Harness.launch(["--dry-run"] + ctr + ["--set", "model.tables=[{rows=8,dim=4,fields=[0,2,5]},{rows=8,dim=4,fields=[7]}]",
                                                          "--set", "model.tables[1].fields=[3,4]"], cwd: dir, timeout: 60)
        assertEnded(moved, status: 0, "--set model.tables[1].fields")
        XCTAssertTrue(moved.stdout.contains("fields = [3, 4]"), moved.stdout)
        let missing = try Harness.launch(["--dry-run"] + ctr + ["--set", "model.tables=[{rows=8,dim=4,count=26}]", "--set", "model.tables[26].dim=2"],
                                         cwd: dir, timeout: 60)
        assertEnded(missing, status: 64, "a table that does not exist")
        XCTAssertTrue(missing.stderr.contains("model.tables[26] does not exist: model.tables has 26 entries (0 to 25)"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"), "a dry run writes nothing")
        // The real launch refuses the same before mpirun, and leaves no run directory.
        let l = try Harness.launch(["--run-dir", "runs/r", "--set", "model.input=100"], cwd: dir, timeout: 60)
        assertEnded(l, status: 64, "launch with a model that does not fit")
        XCTAssertTrue(l.stderr.contains("model.input = [100]"), l.stderr)
        XCTAssertFalse(l.output.contains("pstrain: running:"), l.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/runs"), "a refused launch leaves no run directory, nor the runs/ it made for it")
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
        // Without --run-dir, a launch in a second another launch's default name took gets its own (it was refused
        // as "already holds a run" when the README's two launches ran within one second): the next 20 seconds' names are taken.
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        let now = Date()
        let taken = (0..<20).map { f.string(from: now.addingTimeInterval(Double($0))) }
        for name in taken { try FileManager.default.createDirectory(atPath: "\(dir)/runs/\(name)", withIntermediateDirectories: true) }
        let quick = try Harness.launch(["--epochs", "1"] + synthetic, cwd: dir, timeout: 120)
        assertEnded(quick, status: 0, "a launch whose default run directory is taken")
        let made = try FileManager.default.contentsOfDirectory(atPath: dir + "/runs").filter { !taken.contains($0) }
        XCTAssertEqual(made.count, 1, "\(made)")
        XCTAssertTrue(made.first.map { n in n.hasSuffix("-2") && taken.contains(String(n.dropLast(2))) } ?? false, "\(made)")
        XCTAssertTrue(quick.stdout.contains("runs/\(made.first ?? "?")"), quick.stdout)
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
        // Every wrong key of a file at once (only the first was reported).
        try "[train]\nlearning_rate = 0.1\nepochs = \"two\"\n[model]\nlayers = [{ type = \"dense\", out_features = 10 }]\n"
            .write(toFile: dir + "/three.toml", atomically: true, encoding: .utf8)
        let three = try Harness.launch(["--config", "three.toml", "--dry-run"], cwd: dir, timeout: 30)
        assertEnded(three, status: 64, "three wrong keys")
        XCTAssertTrue(three.stderr.contains("3 problems in the configuration:"), three.stderr)
        for want in ["three.toml:2:1: unknown configuration key 'train.learning_rate'", "train.epochs", "PyTorch's out_features is 'units' here"] {
            XCTAssertTrue(three.stderr.contains(want), "\(want)\n\(three.stderr)")
        }
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
final class DoubleSignalMPITests: XCTestCase {
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
        while Date() < deadline && Harness.records(dir + "/r/logs/server-0.jsonl", ServerStoppedRecord.self).isEmpty { usleep(20_000) }
        let stopped = try XCTUnwrap(Harness.records(dir + "/r/logs/server-0.jsonl", ServerStoppedRecord.self).first?.step, "the stop's checkpoint")
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

/// A finished run can be extended and changed (`resume --epochs`, `--set`,
/// an edited run.toml), and a new run can start from exported weights
/// (`launch --init-from`); it used to say "nothing to do" and take neither.
final class ExtendRunMPITests: XCTestCase {
    let synthetic = ["--workers", "2", "--servers", "1", "--set", "data.kind=synthetic", "--set", "data.synthetic_train=1024",
                     "--set", "data.synthetic_test=256"]

    func testAFinishedRunCanBeExtendedEditedAndFineTuned() throws {
        let dir = Harness.tempDir("extend")
        let pstrain = try Harness.executable("pstrain")
        let first = try Harness.launch(synthetic + ["--epochs", "1", "--run-dir", "r"], cwd: dir)
        assertEnded(first, status: 0, "one epoch")
        let perEpoch = try XCTUnwrap(Harness.records(dir + "/r/logs/server-0.jsonl", ServerStartRecord.self).first?.stepsPerEpoch)
        let done = Harness.run(pstrain, ["resume", "r"], cwd: dir, timeout: 60)
        assertEnded(done, status: 0, "resume of a finished run")
        XCTAssertTrue(done.stdout.contains("nothing to do. To train on, give it more epochs: pstrain resume r --epochs 2"), done.stdout)
        // --epochs 2: the run goes on from its last checkpoint to twice the steps.
        let more = Harness.run(pstrain, ["resume", "r", "--epochs", "2"], cwd: dir, timeout: 180)
        assertEnded(more, status: 0, "resume --epochs 2")
        XCTAssertTrue(more.stdout.contains("the run's length changes from \(perEpoch) to \(2 * perEpoch) steps"), more.stdout)
        XCTAssertTrue(more.stdout.contains("train.lr_schedule = \"cosine\" follows the new length"), more.stdout)
        XCTAssertTrue(more.stdout.contains("after 2 epoch(s), \(2 * perEpoch) steps"), more.stdout)
        XCTAssertTrue(try String(contentsOfFile: dir + "/r/run.toml", encoding: .utf8).contains("epochs = 2"))
        XCTAssertEqual(try String(contentsOfFile: dir + "/r/checkpoints/LATEST", encoding: .utf8), "step-\(2 * perEpoch)\n")
        // An edit of run.toml is used and said.
        let toml = try String(contentsOfFile: dir + "/r/run.toml", encoding: .utf8)
        try toml.replacingOccurrences(of: "epochs = 2", with: "epochs = 3").write(toFile: dir + "/r/run.toml", atomically: true, encoding: .utf8)
        let edited = Harness.run(pstrain, ["resume", "r"], cwd: dir, timeout: 180)
        assertEnded(edited, status: 0, "resume after an edit of run.toml")
        XCTAssertTrue(edited.stdout.contains("run.toml differs from the configuration step-\(2 * perEpoch) was written with: train.epochs 2 -> 3"), edited.stdout)
        XCTAssertTrue(edited.stdout.contains("after 3 epoch(s), \(3 * perEpoch) steps"), edited.stdout)
        // The launcher's seconds are this resume's attempt's only (it added every earlier attempt's).
        XCTAssertEqual(Harness.records(dir + "/r/events.jsonl", ExitRecord.self).count, 3)
        let dones = Harness.records(dir + "/r/logs/server-0.jsonl", ServerDoneRecord.self)
        XCTAssertEqual(dones.count, 3)
        XCTAssertTrue(edited.stdout.contains(String(format: "%d steps, %.1f s of training", 3 * perEpoch, dones[2].wallS)), edited.stdout)
        // --set changes a key for the rest of the run; a change of the steps' cut is refused with why,
        // before mpirun, and run.toml is left as it was.
        let kept = try String(contentsOfFile: dir + "/r/run.toml", encoding: .utf8)
        let batch = Harness.run(pstrain, ["resume", "r", "--epochs", "4", "--set", "train.batch_size=64"], cwd: dir, timeout: 120)
        assertEnded(batch, status: 64, "resume with another batch size")
        XCTAssertTrue(batch.stderr.contains("resume with the run's own train.batch_size"), batch.stderr)
        XCTAssertFalse(batch.output.contains("pstrain: running:"), batch.output)
        XCTAssertEqual(try String(contentsOfFile: dir + "/r/run.toml", encoding: .utf8), kept)
        // A change the data refuses leaves run.toml as it was.
        let before = try String(contentsOfFile: dir + "/r/run.toml", encoding: .utf8)
        let misfit = Harness.run(pstrain, ["resume", "r", "--epochs", "4", "--set", "model.layers=[{type=\"dense\",units=5}]"], cwd: dir, timeout: 60)
        assertEnded(misfit, status: 64, "resume with a model that does not fit the data")
        XCTAssertTrue(misfit.stderr.contains("has 5 outputs but the data set has 10 classes"), misfit.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir + "/r/run.toml", encoding: .utf8), before, "a refused resume changes nothing")
        // Fine-tuning: a new run from the exported weights. With a learning rate too small to move
        // an FP32 weight, its final weights are the export's, bit for bit.
        let export = Harness.run(pstrain, ["ckpt", "export", "r", "--out", "m.safetensors"], cwd: dir, timeout: 60)
        assertEnded(export, status: 0, "export")
        let tuned = try Harness.launch(synthetic + ["--epochs", "1", "--run-dir", "f", "--init-from", "m.safetensors",
                                                    "--set", "train.lr=1e-30"], cwd: dir)
        assertEnded(tuned, status: 0, "launch --init-from")
        XCTAssertTrue(try String(contentsOfFile: dir + "/f/run.toml", encoding: .utf8).contains("init_from = \"\(dir)/m.safetensors\""))
        let again = Harness.run(pstrain, ["ckpt", "export", "f", "--out", "f.safetensors"], cwd: dir, timeout: 60)
        assertEnded(again, status: 0, "export of the fine-tuned run")
        func layers(_ path: String) throws -> [String: [UInt8]] {
            let t = try Safetensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path).tensors
            return Dictionary(uniqueKeysWithValues: t.filter { $0.name.hasPrefix("layers.") }.map { ($0.name, $0.data) })
        }
        let want = try layers(dir + "/m.safetensors")
        XCTAssertFalse(want.isEmpty)
        XCTAssertEqual(try layers(dir + "/f.safetensors"), want, "the run started from the exported weights")
        // A file that does not fit the model is refused before mpirun, naming the tensor.
        let wrong = try Harness.launch(synthetic + ["--run-dir", "g", "--init-from", "m.safetensors", "--set", "model.layers=[{type=\"dense\",units=10}]"], cwd: dir)
        assertEnded(wrong, status: 64, "init-from a file of another model")
        XCTAssertTrue(wrong.stderr.contains("train.init_from: \(dir)/m.safetensors holds layers.0.weight as F32"), wrong.stderr)
        XCTAssertFalse(wrong.output.contains("pstrain: running:"), wrong.output)
    }
}

/// `pstrain inspect` on runs that did not go straight: a restarted run shows
/// each step and epoch once (it showed 1,404 steps of a 936-step run and
/// three evaluations for two epochs), a failed run says why, and the HTML
/// report keeps its title.
final class InspectAttemptsMPITests: XCTestCase {
    let synthetic = ["--workers", "2", "--servers", "1", "--set", "data.kind=synthetic", "--set", "data.synthetic_train=1024",
                     "--set", "data.synthetic_test=256", "--set", "run.timeout_seconds=3"]

    func testARestartedRunCountsEachStepOnceAndAFailedRunSaysWhy() throws {
        let dir = Harness.tempDir("inspect-attempts")
        let pstrain = try Harness.executable("pstrain")
        // Worker 0 dies at step 10 of 16; the restart resumes from step-8 and trains steps 8 and 9 again.
        let r = try Harness.launch(synthetic + ["--epochs", "2", "--run-dir", "a", "--max-restarts", "1", "--set", "checkpoint.every_steps=4",
                                                "--set", "debug.die_at_steps=10"], cwd: dir)
        assertEnded(r, status: 0, "a run with one restart")
        let steps = Harness.records(dir + "/a/logs/server-0.jsonl", ServerStepRecord.self)
        XCTAssertGreaterThan(steps.count, 16, "steps 8 and 9 were logged twice\n\(r.output)")
        let json = Harness.run(pstrain, ["inspect", "a", "--json"], cwd: dir, timeout: 60)
        assertEnded(json, status: 0, "inspect --json")
        let s = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(s["stepsDone"] as? Int, 16)
        XCTAssertEqual((s["evals"] as? [[String: Any]])?.map { $0["epoch"] as? Int }, [1, 2], "one evaluation per epoch")
        XCTAssertEqual((s["loss"] as? [Any])?.count, 16, "one loss per step")
        let server0 = (s["ranks"] as? [[String: Any]])?.first { $0["rank"] as? String == "server 0" }
        XCTAssertEqual(server0?["steps"] as? Int, 16, "a step trained again counts once")
        XCTAssertNil(s["failure"], "the run did not fail")
        // A run whose worker dies with no restart left: inspect says why, in the words of the rank that said it.
        let f = try Harness.launch(synthetic + ["--epochs", "1", "--run-dir", "b", "--set", "debug.die_at_steps=3"], cwd: dir)
        assertEnded(f, status: nil, "a failed run")
        let text = Harness.run(pstrain, ["inspect", "b"], cwd: dir, timeout: 60)
        assertEnded(text, status: 0, "inspect of a failed run")
        XCTAssertTrue(text.stdout.contains("status      failed (attempt 1 exited with"), text.stdout)
        XCTAssertTrue(text.stdout.contains("why         ") && text.stdout.contains("worker 0 (rank 1)"), text.stdout)
        let html = Harness.run(pstrain, ["inspect", "b", "--html", "b.html"], cwd: dir, timeout: 60)
        assertEnded(html, status: 0, "inspect --html")
        let page = try String(contentsOfFile: dir + "/b.html", encoding: .utf8)
        XCTAssertTrue(page.contains("<title>pstrain run b</title>") && !page.contains("document.title"), "the script leaves the title alone")
        XCTAssertTrue(page.contains("<th>why</th>") || page.contains(">why<"), "the report says why too")
    }
}
