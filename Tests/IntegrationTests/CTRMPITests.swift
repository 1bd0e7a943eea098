import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSRunLog
import XCTest

/// A click-through-rate model with embedding tables as real jobs (W=2 S=2):
/// kill -9 of a worker and, separately, of a server, then resume: the final
/// bits of every rank (tables included) equal an uninterrupted run's; a
/// resume onto S=3 moves the rows to their new servers and ends with the
/// uninterrupted run's exported tables and weights, bit for bit.
final class CTRMPITests: XCTestCase {
    static let ctr = ["--workers", "2", "--servers", "2",
                      "--set", "data.kind=synthetic", "--set", "data.synthetic_train=4000", "--set", "data.synthetic_test=1000",
                      "--set", "model.input=3", "--set", "model.loss=bce",
                      "--set", "model.tables=[{type=\"embedding_bag\",rows=500,dim=4},{type=\"embedding_bag\",rows=40,dim=4,mode=\"mean\"},"
                        + "{type=\"embedding_bag\",rows=50000,dim=4,hash=true}]",
                      "--set", "model.layers=[{type=\"dense\",units=8},{type=\"relu\"},{type=\"dense\",units=1}]",
                      "--set", "train.batch_size=100", "--set", "train.lr=0.05", "--set", "train.lr_schedule=constant",
                      "--set", "train.optimizer=adagrad", "--set", "train.sparse_optimizer=lazy_adam", "--set", "train.sparse_lr=0.01",
                      "--epochs", "1", "--set", "checkpoint.every_steps=10", "--set", "run.poll=sleep"]

    func exported(_ dir: String, _ run: String) throws -> [String: Safetensors.Tensor] {
        let ex = Harness.run(try Harness.executable("pstrain"), ["ckpt", "export", run, "--out", run + ".safetensors"], cwd: dir)
        assertEnded(ex, status: 0, "export of \(run)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(run).safetensors")))
        return Dictionary(uniqueKeysWithValues: try Safetensors.decode(bytes, source: run).tensors.map { ($0.name, $0) })
    }

    func testKillAndResumeKeepTheTablesBitForBit() throws {
        let dir = Harness.tempDir("ctrresume")
        let straight = try Harness.launch(Self.ctr + ["--run-dir", "a"], cwd: dir)
        assertEnded(straight, status: 0, "straight")
        let a = Harness.finalState(dir + "/a", servers: 2, workers: 2)
        Harness.assertComplete(a)
        XCTAssertTrue(a[0].contains("tables_digest="), a[0])
        let auc = try XCTUnwrap(Harness.records(dir + "/a/logs/server-0.jsonl", EvalRecord.self).last?.auc)
        XCTAssertGreaterThan(auc, 0.6, "the model learns the synthetic click log")

        for (name, who) in [("w", ["--set", "debug.die_worker=1"]), ("s", ["--set", "debug.die_server=1"])] {
            let killed = try Harness.launch(Self.ctr + ["--run-dir", name, "--set", "debug.die_at_steps=25"] + who, cwd: dir)
            assertEnded(killed, status: nil, "killed (\(name))")
            XCTAssertTrue(killed.stderr.contains("killed by signal 9"), killed.stderr)
            let r = Harness.run(try Harness.executable("pstrain"), ["resume", name], cwd: dir, timeout: 180)
            assertEnded(r, status: 0, "resume (\(name))")
            XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
            XCTAssertEqual(Harness.finalState(dir + "/" + name, servers: 2, workers: 2), a, "bit-identical after kill (\(name)) and resume")
        }

        // Onto three servers: every row moves to its new owner; the arithmetic does not change.
        let s3 = Harness.run(try Harness.executable("pstrain"), ["resume", "w", "--servers", "3", "--workers", "2", "--from", "step-20"],
                             cwd: dir, timeout: 180)
        assertEnded(s3, status: 0, "resume on S=3")
        let moved = Harness.records(dir + "/w/logs/server-2.jsonl", ServerStepRecord.self)
        XCTAssertGreaterThan(moved.last?.tableRows ?? 0, 0, "server 2 of the new world holds rows")
        let ta = try exported(dir, "a"), tw = try exported(dir, "w")
        XCTAssertEqual(Set(ta.keys), Set(tw.keys))
        XCTAssertEqual(ta["embeddings.2.weight"]?.shape, [50000, 4], "one tensor per table, EmbeddingBag's name and shape")
        for (k, t) in ta { XCTAssertEqual(tw[k], t, "\(k) after the resume on S=3") }
    }

    /// One hashed table shared by six fields (model.tables[i].fields), W=2
    /// S=2: a microbatch of 50 rows asks a server for about 150 rows of that
    /// one table, more than its 50 samples; the servers' bound on a request
    /// counts the table's fields (it refused such a request before).
    func testATableSharedBySixFieldsTrains() throws {
        let dir = Harness.tempDir("ctrshared")
        let r = try Harness.launch(["--workers", "2", "--servers", "2", "--run-dir", "a", "--epochs", "1",
                                    "--set", "data.kind=synthetic", "--set", "data.synthetic_train=2000", "--set", "data.synthetic_test=500",
                                    "--set", "model.input=3", "--set", "model.loss=bce",
                                    "--set", "model.tables=[{type=\"embedding_bag\",rows=100000,dim=4,hash=true,fields=[0,1,2,3,4,5]}]",
                                    "--set", "model.layers=[{type=\"dense\",units=8},{type=\"relu\"},{type=\"dense\",units=1}]",
                                    "--set", "train.batch_size=100", "--set", "train.optimizer=adagrad", "--set", "run.poll=sleep"], cwd: dir)
        assertEnded(r, status: 0, "a table shared by six fields")
        let pulled = Harness.records(dir + "/a/logs/worker-0.jsonl", WorkerStepRecord.self).map { $0.rowsPulled ?? 0 }
        XCTAssertGreaterThan(pulled.max() ?? 0, 2 * 50, "a step pulls more rows than it has samples (both servers together)")
        let auc = try XCTUnwrap(Harness.records(dir + "/a/logs/server-0.jsonl", EvalRecord.self).last?.auc)
        XCTAssertGreaterThan(auc, 0.55, "the shared table learns")
    }

    /// ssp (staleness 2) as real jobs: a worker and, separately, a server
    /// killed at step 25 and the run resumed from step-20 runs to the end;
    /// each server starts again from exactly the state its checkpoint holds
    /// (the resumed shard's digest is the checkpoint's), which is what ssp
    /// promises (not a replay of the arrival order); the per-epoch
    /// staleness records show the bound held.
    func testSSPKillAndResumeFromTheCheckpointedState() throws {
        let dir = Harness.tempDir("ctrssp")
        let ssp = Self.ctr + ["--set", "train.consistency=ssp", "--set", "train.staleness=2", "--set", "debug.slow_worker=0",
                              "--set", "debug.slow_ms=2"]
        for (name, who) in [("w", ["--set", "debug.die_worker=1"]), ("s", ["--set", "debug.die_server=1"])] {
            let killed = try Harness.launch(ssp + ["--run-dir", name, "--set", "debug.die_at_steps=25"] + who, cwd: dir)
            assertEnded(killed, status: nil, "killed (\(name))")
            XCTAssertTrue(killed.stderr.contains("killed by signal 9"), killed.stderr)
            let r = Harness.run(try Harness.executable("pstrain"), ["resume", name], cwd: dir, timeout: 180)
            assertEnded(r, status: 0, "resume (\(name))")
            XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
            Harness.assertComplete(Harness.finalState(dir + "/" + name, servers: 2, workers: 2))
            let ck = dir + "/\(name)/checkpoints/step-20"
            let m = try CheckpointStore.verify(ck)
            let cfg = try m.configuration(folder: ck)
            let layout = try Model(cfg.model, capacity: 1).layout
            for s in 0..<2 {
                let resumed = try XCTUnwrap(Harness.records(dir + "/\(name)/logs/server-\(s).jsonl", RankResumedRecord.self).last)
                XCTAssertEqual(resumed.step, 20)
                let start = Harness.records(dir + "/\(name)/logs/server-\(s).jsonl", ServerStartRecord.self).last!
                let shard = FloatBuffer(count: start.shardHi - start.shardLo)
                try CheckpointStore.loadRange(ck, m, layout: layout, suffix: "", lo: start.shardLo, hi: start.shardHi, into: shard.pointer)
                XCTAssertEqual(resumed.paramsDigest, digest(shard.pointer, count: shard.count), "server \(s) resumed exactly the checkpointed shard")
                let st = Harness.records(dir + "/\(name)/logs/server-\(s).jsonl", StalenessRecord.self)
                XCTAssertFalse(st.isEmpty)
                XCTAssertTrue(st.allSatisfy { $0.maxLead <= 2 }, "\(st.map(\.maxLead))")
            }
            let auc = try XCTUnwrap(Harness.records(dir + "/\(name)/logs/server-0.jsonl", EvalRecord.self).last?.auc)
            XCTAssertGreaterThan(auc, 0.6)
            // pstrain inspect shows the staleness of each epoch.
            let ins = Harness.run(try Harness.executable("pstrain"), ["inspect", name], cwd: dir)
            assertEnded(ins, status: 0, "inspect (\(name))")
            XCTAssertTrue(ins.stdout.contains("staleness   epoch 1: max "), ins.stdout)
        }
    }
}
