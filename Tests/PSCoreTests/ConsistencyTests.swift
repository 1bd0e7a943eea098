import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSProtocol
@testable import PSRunLog
import PSTestSupport

/// train.consistency = "ssp" and "async" on whole worlds (threads over the
/// in-process transport): the staleness bound holds, every push is applied
/// once with its staleness recorded, evaluation and the end go through the
/// barriers, a straggler does not stop the others beyond the bound.
final class ConsistencyReleaseTests: XCTestCase {
    func ctr(_ extra: [String]) throws -> Config {
        var c = Config()
        try c.apply(overrides: ["data.kind=synthetic", "data.synthetic_train=4800", "data.synthetic_test=1000", "model.input=3",
                                "model.loss=bce", TableTrainingReleaseTests.tables,
                                "model.layers=[{type=\"dense\",units=8},{type=\"relu\"},{type=\"dense\",units=1}]",
                                "train.epochs=2", "train.batch_size=150", "train.lr=0.05", "train.lr_schedule=constant",
                                "train.optimizer=adagrad", "train.sparse_lr=0.1"] + extra)
        return c
    }

    func run(_ c: Config, servers: Int = 2, workers: Int = 3, mode: InProcessMode = .eager) throws -> [LogFile] {
        try runInProcess(config: c, servers: servers, workers: workers, workerData: .ctr(try CTRSets.load(c.data, model: c.model)), mode: mode)
    }

    /// Every server applied every slice of every step exactly once (W pushes a step), each with its staleness.
    func assertEveryPushApplied(_ logs: [LogFile], servers: Int, workers: Int, steps: Int, file: StaticString = #filePath, line: UInt = #line) {
        for s in 0..<servers {
            let recs = records(logs, rank: s, ServerStepRecord.self)
            XCTAssertEqual(recs.count, steps * workers, "server \(s)", file: file, line: line)
            let perStep = Dictionary(grouping: recs, by: \.step).mapValues(\.count)
            XCTAssertEqual(perStep, Dictionary(uniqueKeysWithValues: (0..<steps).map { ($0, workers) }), "server \(s)", file: file, line: line)
            XCTAssertTrue(recs.allSatisfy { $0.staleness != nil && $0.worker != nil }, file: file, line: line)
        }
    }

    /// How many slices each worker computed (from server 0's records).
    func slicesPerWorker(_ logs: [LogFile], workers: Int) -> [Int] {
        let recs = records(logs, rank: 0, ServerStepRecord.self)
        return (0..<workers).map { w in recs.filter { $0.worker == w }.count }
    }

    /// ssp's bound read from the order of server 0's step records (one per
    /// push, in the order it applied them): server 0 hands out no slice of
    /// step t before every slice of step t - staleness is applied there, so
    /// no push of step t comes before that. Returns the steps of the pushes
    /// that did. An order, not a time: it holds at any machine's speed.
    static func pushesBeyondTheBound(_ steps: [Int], staleness: Int, workers: Int) -> [Int] {
        var applied: [Int: Int] = [:], completeThrough = -1, beyond: [Int] = []
        for t in steps {
            if completeThrough < t - staleness { beyond.append(t) }
            applied[t, default: 0] += 1
            while applied[completeThrough + 1] == workers { completeThrough += 1 }
        }
        return beyond
    }

    /// ssp with a straggler: server 0 hands out no slice of step t before
    /// every slice of step t - staleness is applied (its per-epoch record's
    /// max_lead: at most staleness - 1 steps past the oldest unfinished one;
    /// and the order in which it applied the pushes), and the model learns.
    /// That the fast workers then do more slices than the straggler depends
    /// on the machine's speed: scripts/bench-consistency checks it.
    func testSSPBoundHoldsWithAStraggler() throws {
        let T = 2
        let logs = try run(try ctr(["train.consistency=ssp", "train.staleness=\(T)", "debug.slow_worker=0", "debug.slow_ms=3"]))
        assertEveryPushApplied(logs, servers: 2, workers: 3, steps: 64)
        for s in 0..<2 {
            let st = records(logs, rank: s, StalenessRecord.self)
            XCTAssertEqual(st.map(\.epoch), [1, 2])
            XCTAssertEqual(st.map { $0.counts.reduce(0, +) }, [96, 96], "every push of the epoch counted")
            for r in st {
                XCTAssertLessThanOrEqual(r.maxLead, T - 1, "server \(s) epoch \(r.epoch): the bound held")
                // A push can be overtaken by the pushes of the slices of at most T steps.
                XCTAssertLessThanOrEqual(r.max ?? 0, (T + 1) * 3, "server \(s) epoch \(r.epoch): \(r.counts.prefix(12))")
            }
        }
        XCTAssertEqual(slicesPerWorker(logs, workers: 3).reduce(0, +), 192, "every push names its worker")
        let order = records(logs, rank: 0, ServerStepRecord.self).map(\.step)
        XCTAssertEqual(Self.pushesBeyondTheBound(order, staleness: T, workers: 3), [], "server 0 applied these before the bound let them out")
        // The check itself sees a push of step 1 applied before step 0 is complete, with a bound of 1 step.
        XCTAssertEqual(Self.pushesBeyondTheBound([0, 0, 1, 0, 1, 1, 2], staleness: 1, workers: 3), [1])
        XCTAssertGreaterThan(try XCTUnwrap(records(logs, rank: 0, EvalRecord.self).last?.auc), 0.6)
    }

    /// async: no bound, the same bookkeeping; FP16 with a forced overflow
    /// skips that one push (on every server) and the run goes on.
    func testAsyncRunsAndSkipsAnOverflowingPush() throws {
        let logs = try run(try ctr(["train.consistency=async", "train.precision=fp16", "debug.overflow_step=5", "debug.overflow_worker=1"]))
        assertEveryPushApplied(logs, servers: 2, workers: 3, steps: 64)
        for s in 0..<2 {
            let over = records(logs, rank: s, ServerStepRecord.self).filter(\.overflow)
            XCTAssertEqual(over.count, 1, "server \(s): one push skipped")
            XCTAssertEqual(over.first?.step, 5, "server \(s)")
            XCTAssertEqual(records(logs, rank: s, ServerStepRecord.self).last?.skipped, 1)
        }
        XCTAssertGreaterThan(try XCTUnwrap(records(logs, rank: 0, EvalRecord.self).last?.auc), 0.6)
    }

    /// A dense model (no tables) in ssp, and ssp on the adversarial transport
    /// (late, reordered completions, poisoned receive buffers): no frame is
    /// reused while a transfer may still touch it, nothing is left open.
    func testDenseSSPAndTheAdversarialTransport() throws {
        let c = try mlpConfig(["data.synthetic_train=2048", "data.synthetic_test=512", "train.batch_size=64", "train.consistency=ssp",
                               "train.staleness=1"])
        let logs = try runInProcess(config: c, servers: 2, workers: 2, data: syntheticData(c))
        assertEveryPushApplied(logs, servers: 2, workers: 2, steps: 64)
        XCTAssertEqual(Self.pushesBeyondTheBound(records(logs, rank: 0, ServerStepRecord.self).map(\.step), staleness: 1, workers: 2), [])
        XCTAssertGreaterThan(try XCTUnwrap(records(logs, rank: 0, EvalRecord.self).last?.testAccuracy), 0.5)
        for seed: UInt64 in [3, 4] {
            let adv = try run(try ctr(["train.consistency=ssp", "train.epochs=1", "data.synthetic_test=300"]), workers: 3,
                              mode: .adversarial(seed: seed))
            assertEveryPushApplied(adv, servers: 2, workers: 3, steps: 32)
        }
    }

    func testConfigurationRefusesWhatSSPDoesNotDo() throws {
        func message(_ o: [String]) -> String {
            var c = Config()
            do { try c.apply(overrides: o); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["train.consistency=ssp", "compression.topk=0.01"]).contains("compression.topk"))
        XCTAssertTrue(message(["train.consistency=async", "train.clip_norm=1"]).contains("train.clip_norm"))
        XCTAssertTrue(message(["train.consistency=ssp", "checkpoint.every_seconds=5"]).contains("checkpoint.every_steps"))
        XCTAssertTrue(message(["train.consistency=eventual"]).contains("\"bsp\""))
        XCTAssertTrue(message(["train.consistency=ssp", "train.staleness=0"]).contains("train.staleness"))
        XCTAssertEqual(message(["train.consistency=ssp", "train.staleness=3"]), "accepted")
    }
}
