import Foundation
import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSProtocol
@testable import PSRunLog
import PSTestSupport

/// Whole worlds (threads over the in-process transport) training a
/// click-through-rate model with embedding tables on the servers: sparse
/// pull and push, reproducible bits, the adversarial transport, FP16 skips,
/// and the configuration's checks.
final class TableTrainingReleaseTests: XCTestCase {
    static let tables = "model.tables=[{type=\"embedding_bag\",rows=400,dim=4},{type=\"embedding_bag\",rows=30,dim=4,mode=\"mean\"},"
        + "{type=\"embedding_bag\",rows=100000,dim=4,hash=true}]"

    func config(_ extra: [String] = []) throws -> Config {
        var c = Config()
        try c.apply(overrides: ["data.kind=synthetic", "data.synthetic_train=6000", "data.synthetic_test=2000", "model.input=3",
                                "model.loss=bce", Self.tables,
                                "model.layers=[{type=\"dense\",units=8},{type=\"relu\"},{type=\"dense\",units=1}]",
                                "train.epochs=2", "train.batch_size=200", "train.lr=0.05", "train.lr_schedule=constant",
                                "train.optimizer=adagrad", "train.sparse_lr=0.1"] + extra)
        return c
    }

    func run(_ c: Config, servers: Int = 2, workers: Int = 2, mode: InProcessMode = .eager) throws -> [LogFile] {
        try runInProcess(config: c, servers: servers, workers: workers, workerData: .ctr(try CTRSets.load(c.data, model: c.model)), mode: mode)
    }

    /// Every rank's final digests: dense parameters, optimizer state and the servers' table rows.
    func digests(_ logs: [LogFile], servers: Int) -> [String] {
        var out: [String] = []
        for r in logs.indices {
            guard let d = records(logs, rank: r, (any DoneRecord).self).first else { continue }
            out.append(d.paramsDigest)
            if r < servers, let s = records(logs, rank: r, ServerDoneRecord.self).first { out += s.stateDigests.map(\.digest) }
        }
        return out
    }

    func testTablesTrainSparselyAndReproducibly() throws {
        let c = try config()
        let a = try run(c), b = try run(c)
        let da = digests(a, servers: 2)
        XCTAssertEqual(da.count, 4 + 2 * 2, "params of 4 ranks, adagrad's sum and the tables of 2 servers")
        XCTAssertEqual(da, digests(b, servers: 2), "two runs end with the same bits on every rank")
        let evals = records(a, rank: 0, EvalRecord.self)
        XCTAssertEqual(evals.count, 2)
        let auc = try XCTUnwrap(evals.last?.auc)
        XCTAssertGreaterThan(auc, 0.62, "the planted model is learnt: \(evals.map(\.auc))")
        XCTAssertEqual(evals.last?.logloss, evals.last?.testLoss)
        XCTAssertEqual(evals.last?.testSamples, 2000)
        // Sparse: each server holds only rows some worker pulled, and a step moves a small part of the tables.
        let tableBytes = (400 + 30 + 100_000) * 4 * 4
        for s in 0..<2 {
            let steps = records(a, rank: s, ServerStepRecord.self)
            XCTAssertEqual(steps.count, 60)
            let last = try XCTUnwrap(steps.last)
            XCTAssertLessThan(try XCTUnwrap(last.tableRows), 100_430 / 4, "server \(s) holds only touched rows")
            XCTAssertGreaterThan(try XCTUnwrap(last.rowsServed), 0)
        }
        for w in 2..<4 {
            let steps = records(a, rank: w, WorkerStepRecord.self)
            for st in steps {
                let wire = try XCTUnwrap(st.rowBytesSent) + XCTUnwrap(st.rowBytesRecv)
                XCTAssertLessThan(wire, tableBytes / 10, "worker \(w) step \(st.step): \(wire) row bytes on the wire")
                XCTAssertLessThan(try XCTUnwrap(st.rowIdBytes), try XCTUnwrap(st.rowsPulled) * 3, "delta-coded ids: < 3 bytes each here")
            }
        }
    }

    /// W=1 S=1 and W=2 S=2 see the same global batches: the same losses to
    /// 1e-4 relative (sums in another order).
    func testWorldSizesGiveTheSameLosses() throws {
        let c = try config(["train.epochs=1", "train.max_steps=12"])
        let one = records(try run(c, servers: 1, workers: 1), rank: 0, ServerStepRecord.self).compactMap(\.loss)
        let four = records(try run(c, servers: 2, workers: 2), rank: 0, ServerStepRecord.self).compactMap(\.loss)
        XCTAssertEqual(one.count, 12)
        XCTAssertEqual(one.count, four.count)
        for (x, y) in zip(one, four) { XCTAssertEqual(x, y, accuracy: 1e-4 * abs(x)) }
        XCTAssertLessThan(one.last!, one.first!)
    }

    /// The adversarial transport (late, reordered completions, poisoned
    /// receive buffers) ends with the eager transport's bits: no row frame
    /// is reused while MPI may still read or write it.
    func testAdversarialTransportKeepsTheBits() throws {
        let c = try config(["train.epochs=1", "train.max_steps=15", "data.synthetic_test=500"])
        let eager = try run(c, servers: 2, workers: 3)
        for seed: UInt64 in [1, 2] {
            let adv = try run(c, servers: 2, workers: 3, mode: .adversarial(seed: seed))
            XCTAssertEqual(digests(adv, servers: 2), digests(eager, servers: 2), "seed \(seed)")
        }
    }

    /// FP16: a forced overflow (an infinite gradient in the dense pieces and
    /// in the rows each worker pushes) is seen in the servers' table sums
    /// and skips the step everywhere; the run goes on and still learns.
    func testFP16OverflowInRowsSkipsTheStep() throws {
        let c = try config(["train.precision=fp16", "train.epochs=1", "debug.overflow_step=3"])
        let logs = try run(c)
        let over = records(logs, rank: 0, OverflowRecord.self)
        XCTAssertEqual(over.map(\.step), [3])
        XCTAssertTrue(over[0].seenBy.contains("table rows on server 0"), "\(over[0].seenBy)")
        let steps = records(logs, rank: 1, ServerStepRecord.self)
        XCTAssertEqual(steps.filter(\.overflow).map(\.step), [3])
        XCTAssertEqual(steps.last?.skipped, 1)
        XCTAssertGreaterThan(try XCTUnwrap(records(logs, rank: 0, EvalRecord.self).last?.auc), 0.55)
    }

    /// DeepFM's term on the bags: the model still learns the planted clicks.
    func testFMInteractionTrains() throws {
        let logs = try run(try config(["model.interaction=fm", "train.epochs=1"]))
        XCTAssertGreaterThan(try XCTUnwrap(records(logs, rank: 0, EvalRecord.self).last?.auc), 0.6)
    }

    /// A worker cannot make a server allocate what it likes (issue 20): an
    /// announcement of more rows than the server holds or a request can
    /// carry is refused, naming the worker, before any buffer grows. It used
    /// to allocate 2.68 GB for 2^28 rows, then trap on an MPI count.
    func testRowAnnouncementsAreBoundedByTheServersLimit() throws {
        let c = try config()
        // Server 0 of 2 holds 200 + 15 + 50,000 rows; a request covers at most max(100, 256) samples, one id per field.
        let limit = ServerTables.requestRowLimit(specs: c.model.tables, server: 0, servers: 2, samples: 256, idsPerSample: 1)
        XCTAssertEqual(limit, 200 + 15 + 256)
        XCTAssertEqual(ServerTables.requestRowLimit(specs: c.model.tables, server: 1, servers: 2, samples: 1 << 40, idsPerSample: 1 << 30),
                       200 + 15 + 50_000, "no more than the rows the server holds, without overflow")
        XCTAssertEqual(ServerTables.requestRowLimit(specs: [TableSpec(rows: 7, dim: 4)], server: 2, servers: 3, samples: 256, idsPerSample: 1), 2)
        // A table that embeds 26 fields (model.tables[i].fields) may be asked for 26 ids a sample.
        XCTAssertEqual(ServerTables.requestRowLimit(specs: [TableSpec(rows: 1_000_000, dim: 4, hash: true)], fieldsPerTable: [26],
                                                    server: 0, servers: 2, samples: 128, idsPerSample: 1), 26 * 128)
        XCTAssertLessThan(ServerTables.requestByteLimit(rows: limit, specs: c.model.tables), 1 << 20, "under 1 MiB for this model")

        let hub = InProcessHub(size: 4, mode: .eager)
        let hellos = (0..<4).map {
            RankHello(role: $0 < 2 ? .server : .worker, configHash: c.hash, buildHash: 0, pid: 0, configLength: 0,
                      host: "test", runDir: "", error: "", trainCount: 6000)
        }
        let world = World(hellos: hellos)
        let dir = NSTemporaryDirectory() + "pstrain-rows-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try RunLog(path: dir + "/server-0.jsonl", fixed: RankStamp(run: "t", rank: 0, role: "server", index: 0))
        let ctx = RankContext(config: c, world: world, transport: hub.transport(rank: 0), log: log, say: { _ in }, runDir: "")
        let server = try ServerRole(context: ctx, layout: try Model(c.model, capacity: 1).layout, trainCount: 6000)
        let tb = try XCTUnwrap(server.tables)
        XCTAssertEqual(tb.maxRequestRows, limit)
        let before = tb.buffers.request[1].capacity
        for said in [RowAnnounce(rows: RowAnnounce.maxRows, bytes: RowCoding.maxBytes(RowAnnounce.maxRows)),
                     RowAnnounce(rows: limit + 1, bytes: limit + 1),
                     RowAnnounce(rows: 3, bytes: 1 << 30)] {
            var meter = StepMeter()
            XCTAssertThrowsError(try tb.serveRequest(worker: 1, said, step: 4, round: 0, meter: &meter)) { e in
                let m = "\(e)"
                XCTAssertTrue(m.contains("worker 1") && m.contains("row announcement of step 4") && m.contains("at most \(limit) rows"), m)
            }
        }
        XCTAssertEqual(tb.buffers.request[1].capacity, before, "nothing was allocated for a refused announcement")
    }

    func testConfigurationChecksTables() throws {
        func message(_ o: [String]) -> String {
            do { _ = try config(o); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["model.tables=[{type=\"embedding_bag\",rows=10}]"]).contains("needs dim"))
        XCTAssertTrue(message(["model.tables=[{rows=10,dim=4,mode=\"max\"}]"]).contains("\"sum\" or \"mean\""))
        XCTAssertTrue(message(["model.tables=[{rows=10,dim=4,width=3}]"]).contains("unknown key 'width'"))
        XCTAssertTrue(message(["model.tables=[{type=\"embedding\",rows=10,dim=4}]"]).contains("embedding_bag"))
        XCTAssertTrue(message(["train.accumulate=2"]).contains("train.accumulate"))
        XCTAssertTrue(message(["compression.topk=0.1"]).contains("compression.topk"))
        XCTAssertEqual(message(["model.interaction=fm"]), "accepted", "every table has dim 4")
        XCTAssertTrue(message(["model.interaction=fm", "model.tables=[{rows=10,dim=4},{rows=10,dim=2}]"]).contains("one dim"))
        XCTAssertTrue(message(["model.interaction=fm", "model.loss=softmax", "model.layers=[{type=\"dense\",units=2}]"]).contains("bce"))
        XCTAssertTrue(message(["model.layers=[{type=\"dense\",units=2}]"]).contains("accepted"), "the layers alone are fine")
        var c = Config()
        XCTAssertThrowsError(try c.apply(overrides: ["model.input=0"])) { XCTAssertTrue("\($0)".contains("needs model.tables"), "\($0)") }
        // With tables the layers see the dense features and every table's dim.
        let t = try config()
        XCTAssertEqual(t.model.layerInputShape, [3 + 12])
        XCTAssertEqual(try Model(t.model, capacity: 4).inputSize, 15)
        // A bce model must end in one logit (Model refuses more).
        XCTAssertThrowsError(try Model(try config(["model.layers=[{type=\"dense\",units=2}]"]).model, capacity: 4)) {
            XCTAssertTrue("\($0)".contains("units = 1"), "\($0)")
        }
    }
}
