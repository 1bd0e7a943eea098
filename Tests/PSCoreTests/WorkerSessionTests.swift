import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSRunLog
@testable import PSProtocol
import PSTestSupport

/// The worker session as a library: an engine other than the native one
/// drives it through the same calls, and its misuse is refused by name.
final class WorkerSessionTests: XCTestCase {
    /// The native engine with its gradients handed over in another order:
    /// backward runs whole, then `layerDone` goes first layer first (as a
    /// torch engine's hooks may). `skip` leaves a layer out.
    final class ReorderingEngine: ComputeEngine {
        let native: WorkerRole
        let skip: Int?
        init(_ native: WorkerRole, skip: Int? = nil) { self.native = native; self.skip = skip }

        func load(_ plan: StepPlan, part: Range<Int>, session: WorkerSession) throws -> [[UInt64]]? {
            try native.load(plan, part: part, session: session)
        }
        func useRows(_ session: WorkerSession) throws { try native.useRows(session) }
        func forward(_ plan: StepPlan, part: Range<Int>, beforeLayer: (Int) throws -> Void) throws {
            try native.forward(plan, part: part, beforeLayer: beforeLayer)
        }
        func backward(_ plan: StepPlan, part: Range<Int>, gradScale: Float, accumulate: Bool, layerDone: (Int) -> Void) throws -> Double {
            var done: [Int] = []
            let loss = try native.backward(plan, part: part, gradScale: gradScale, accumulate: accumulate, layerDone: { done.append($0) })
            for layer in done.reversed() where layer != skip { layerDone(layer) }
            return loss
        }
        func rowGradients(_ session: WorkerSession) throws { try native.rowGradients(session) }
        func evaluate(_ plan: EvaluationPlan, session: WorkerSession) throws -> (test: EvaluationPart, validation: EvaluationPart?, scores: ScoreHistogram?) {
            try native.evaluate(plan, session: session)
        }
    }

    func config(_ extra: [String] = []) throws -> Config {
        var c = Config()
        for o in ["data.kind=synthetic", "data.synthetic_train=384", "data.synthetic_test=96", "model.input=48",
                  "model.layers=[{type=\"dense\",units=40},{type=\"relu\"},{type=\"dense\",units=24},{type=\"relu\"},{type=\"dense\",units=10}]",
                  "train.batch_size=48", "train.epochs=2", "train.lr=0.05", "run.chunk_elements=300", "run.timeout_seconds=60",
                  "checkpoint.every_steps=5"] + extra {
            try c.apply(override: o)
        }
        return c
    }

    func digests(_ logs: [LogFile], ranks: Int) -> [String] {
        (0..<ranks).map { records(logs, rank: $0, (any DoneRecord).self).first?.paramsDigest ?? "missing" }
    }

    /// Layers pushed first layer first leave in piece order all the same:
    /// every rank's final parameters equal the native engine's, under the
    /// adversarial transport (which poisons a frame reused too early), in
    /// bsp and in async, with top-k's residual in play.
    func testAnEngineThatPushesLayersInAnotherOrderGivesTheSameBits() throws {
        for extra in [["compression.topk=0.1", "compression.adaptive=false"], ["train.consistency=async"]] {
            let c = try config(extra)
            let d = DataSplit.synthetic(train: c.data.syntheticTrain, test: c.data.syntheticTest, features: c.model.inputSize, classes: 10, seed: 4)
            let native = try runInProcess(config: c, servers: 2, workers: 2, data: d, checkpoints: true)
            let reordered = try runInProcess(config: c, servers: 2, workers: 2, workerData: .dense(d), mode: .adversarial(seed: 7), checkpoints: true,
                                             worker: { ctx, data in
                let engine = ReorderingEngine(try WorkerRole(context: ctx, data: data))
                try engine.native.session.drive(engine)
            })
            if extra.contains("train.consistency=async") {
                // async's arrival order is not reproducible: the run completes and evaluates.
                XCTAssertFalse(digests(reordered, ranks: 4).contains("missing"), "\(extra)")
                XCTAssertEqual(records(reordered, rank: 0, EvalRecord.self).count, 2, "\(extra)")
            } else {
                XCTAssertEqual(digests(reordered, ranks: 4), digests(native, ranks: 4), "\(extra)")
                XCTAssertFalse(digests(native, ranks: 4).contains("missing"))
            }
        }
    }

    /// An engine that never pushes one layer's gradients gets the pieces it
    /// left out named, instead of a hang.
    func testALayerLeftOutIsNamed() throws {
        let c = try config(["run.timeout_seconds=2"])
        let d = DataSplit.synthetic(train: c.data.syntheticTrain, test: c.data.syntheticTest, features: c.model.inputSize, classes: 10, seed: 4)
        XCTAssertThrowsError(try runInProcess(config: c, servers: 1, workers: 1, workerData: .dense(d), worker: { ctx, data in
            let engine = ReorderingEngine(try WorkerRole(context: ctx, data: data), skip: 2)
            try engine.native.session.drive(engine)
        })) { e in
            XCTAssertTrue("\(e)".contains("never pushed (a layer was left out)"), "\(e)")
        }
    }

    /// Calls out of order are refused as values, before anything is sent.
    func testCallsOutOfOrderAreRefused() throws {
        let c = try config()
        let d = DataSplit.synthetic(train: c.data.syntheticTrain, test: c.data.syntheticTest, features: c.model.inputSize, classes: 10, seed: 4)
        let hellos = (0..<2).map {
            RankHello(role: $0 == 0 ? .server : .worker, configHash: c.hash, buildHash: 0, pid: 0, configLength: 0,
                      host: "test", runDir: "", error: "", trainCount: d.train.count)
        }
        let ctx = RankContext(config: c, world: World(hellos: hellos), transport: InProcessHub(size: 2).transport(rank: 1), log: nil, say: { _ in })
        let session = try WorkerRole(context: ctx, data: d).session
        XCTAssertThrowsError(try session.parametersReady()) { XCTAssertEqual($0 as? SessionError, .outOfOrder(call: "parametersReady", phase: "no step begun")) }
        XCTAssertThrowsError(try session.finishStep(lossSum: 0)) { XCTAssertEqual($0 as? SessionError, .outOfOrder(call: "finishStep", phase: "no step begun")) }
        XCTAssertThrowsError(try session.rowValues(table: 0)) { XCTAssertEqual($0 as? SessionError, .noTables) }
        XCTAssertThrowsError(try session.finish()) { XCTAssertEqual($0 as? SessionError, .outOfOrder(call: "finish", phase: "the run has not ended")) }
        XCTAssertEqual(ModelShape(try Model(c.model, capacity: 1)).layerTensors, [[0, 1], [], [2, 3], [], [4, 5]])
    }

    /// Rows handed to the session must be distinct and ascending per table.
    func testRowPlansRefuseRowsOutOfOrder() throws {
        var plan = RowPlan(dims: [2, 3], servers: 2)
        XCTAssertThrowsError(try plan.plan([[1, 1], []])) { XCTAssertEqual($0 as? SessionError, .rowsNotAscending(table: 0)) }
        XCTAssertThrowsError(try plan.plan([[], [5, 4]])) { XCTAssertEqual($0 as? SessionError, .rowsNotAscending(table: 1)) }
        XCTAssertThrowsError(try plan.plan([[1]])) { XCTAssertEqual($0 as? SessionError, .tableCount(expected: 2, got: 1)) }
        try plan.plan([[0, 3, 4], [1]])
        XCTAssertEqual(plan.requested(server: 0), [[0, 4], []])
        XCTAssertEqual(plan.requested(server: 1), [[3], [1]])
        XCTAssertEqual(plan.elementCount(server: 1), 2 + 3)
    }
}
