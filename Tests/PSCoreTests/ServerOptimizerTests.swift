import Foundation
import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
import PSTestSupport

/// The optimizer as the servers run it, whole worlds over the in-process
/// transport: global gradient-norm clipping agreed among the servers, and
/// the update count Adam's bias correction takes.
final class ServerOptimizerReleaseTests: XCTestCase {
    func config(_ extra: [String]) throws -> Config { try mlpConfig(["train.epochs=1"] + extra) }

    /// The servers' final FP32 weights, their shards put end to end.
    final class Weights: @unchecked Sendable {
        let lock = NSLock()
        var shards: [Int: [Float]] = [:]
        var all: [Float] { shards.keys.sorted().flatMap { shards[$0]! } }
        func keep(_ index: Int, _ s: ServerRole) {
            let w = Array(UnsafeBufferPointer(start: s.weights.pointer, count: s.weights.count))
            lock.lock(); shards[index] = w; lock.unlock()
        }
    }

    func run(_ c: Config, servers: Int, workers: Int) throws -> (logs: [LogFile], weights: [Float]) {
        let box = Weights()
        let logs = try runInProcess(config: c, servers: servers, workers: workers, data: syntheticData(c), finished: { box.keep($0, $1) })
        return (logs, box.all)
    }

    func norms(_ logs: [LogFile], server: Int) -> [Double?] { records(logs, rank: server, ServerStepRecord.self).map { $0.gradNorm } }

    /// With S=2 both servers log the same global norm, bit for bit, every
    /// step (each adds the two partial sums in server order), so both scale
    /// by the same factor. The run equals the S=1 run with the same workers:
    /// norms within 1e-12 relative (only the order of the Double sum of
    /// squares differs), final weights within 1e-6 of the largest weight.
    /// Clipping is really on (norms above train.clip_norm; weights differ from
    /// the unclipped run's).
    func testServersAgreeOnTheClippingNorm() throws {
        // The unclipped norms first (a clip_norm no gradient reaches logs them).
        let probe = try run(try config(["train.clip_norm=1e9"]), servers: 1, workers: 2)
        let free = norms(probe.logs, server: 0).compactMap { $0 }
        XCTAssertEqual(free.count, 16)
        let clip = free.sorted()[free.count / 2]
        let c = try config(["train.clip_norm=\(clip)"])
        let one = try run(c, servers: 1, workers: 2)
        let two = try run(c, servers: 2, workers: 2)
        let n1 = norms(one.logs, server: 0), a = norms(two.logs, server: 0), b = norms(two.logs, server: 1)
        XCTAssertEqual(a.count, 16)
        XCTAssertEqual(a.map { $0?.bitPattern }, b.map { $0?.bitPattern }, "both servers hold the same norm")
        XCTAssertTrue(a.allSatisfy { $0 != nil })
        for (i, (x, y)) in zip(n1, a).enumerated() {
            XCTAssertEqual(x!, y!, accuracy: 1e-12 * x!, "step \(i)")
        }
        XCTAssertGreaterThan(n1.filter { $0! > clip }.count, 3, "clipping acted on several steps")
        XCTAssertEqual(one.weights.count, two.weights.count)
        let scale = one.weights.map { abs($0) }.max()!
        let worst = zip(one.weights, two.weights).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-6 * scale)
        XCTAssertNotEqual(one.weights, probe.weights, "clipping changed the training")
    }

    /// A clip_norm no gradient reaches scales by exactly 1: the weights are
    /// the unclipped run's bit for bit, and only then is grad_norm logged.
    func testClippingThatNeverActsChangesNoBit() throws {
        let plain = try run(try config([]), servers: 2, workers: 2)
        let wide = try run(try config(["train.clip_norm=1e9"]), servers: 2, workers: 2)
        XCTAssertEqual(plain.weights.map { $0.bitPattern }, wide.weights.map { $0.bitPattern })
        XCTAssertTrue(norms(plain.logs, server: 0).allSatisfy { $0 == nil }, "no grad_norm without clipping")
        XCTAssertTrue(norms(wide.logs, server: 1).allSatisfy { $0 != nil })
    }

    /// The logged norm is the norm of the step's gradient: step 0's equals
    /// the norm of the first global batch's gradient computed here with the
    /// model alone (W=1, so the same FP32 gradient), within 1e-9 relative.
    func testTheNormIsTheGradientsNorm() throws {
        let c = try config(["train.clip_norm=1e9"])
        let logs = try runInProcess(config: c, servers: 2, workers: 1, data: syntheticData(c))
        let logged = try XCTUnwrap(records(logs, rank: 1, ServerStepRecord.self).first?.gradNorm)
        let d = syntheticData(c), batch = c.train.batchSize
        let model = try Model(c.model, capacity: batch)
        let n = model.layout.totalCount
        let params = FloatBuffer(count: n), grads = FloatBuffer(count: n)
        model.layout.initialize(seed: c.train.seed, range: 0, n, into: params.pointer)
        let order = Sampler(count: d.train.count, batchSize: batch, seed: c.train.seed).permutation(epoch: 0)
        var labels = [UInt8](repeating: 0, count: batch)
        labels.withUnsafeMutableBufferPointer { l in
            d.train.gather(order[0..<batch].map { Int($0) }, into: model.input, labels: l.baseAddress!)
            _ = model.trainStep(batch: batch, labels: l.baseAddress!, gradScale: 1 / Float(batch), params: params.pointer, grads: grads.pointer)
        }
        let want = (0..<n).reduce(0.0) { $0 + Double(grads[$1]) * Double(grads[$1]) }.squareRoot()
        XCTAssertGreaterThan(want, 0)
        XCTAssertEqual(logged, want, accuracy: 1e-9 * want)
    }

    /// A skipped step is no update: with step 0 overflowing (a worker's
    /// gradient spoilt), step 1 is Adam's first update (t = 1), which moves
    /// each weight by lr against its gradient's sign. Were the skipped step
    /// counted (t = 2), the moves would be about 0.74 lr.
    func testASkippedStepDoesNotCountForAdam() throws {
        let lr = 0.01
        let c = try config(["train.optimizer=\"adam\"", "train.weight_decay=0", "train.lr=\(lr)", "train.lr_schedule=\"constant\"",
                            "train.max_steps=2", "debug.overflow_step=0"])
        let r = try run(c, servers: 2, workers: 2)
        let steps = records(r.logs, rank: 0, ServerStepRecord.self)
        XCTAssertEqual(steps.map { $0.overflow }, [true, false])
        XCTAssertEqual(steps.last?.skipped, 1)
        let n = try Model(c.model, capacity: 1).layout.totalCount
        let start = FloatBuffer(count: n)
        try Model(c.model, capacity: 1).layout.initialize(seed: c.train.seed, range: 0, n, into: start.pointer)
        XCTAssertEqual(r.weights.count, n)
        let moves = (0..<n).map { abs(Double(r.weights[$0]) - Double(start[$0])) / lr }.filter { $0 > 0 }
        XCTAssertGreaterThan(moves.count, n / 2, "most weights have a gradient")
        XCTAssertLessThanOrEqual(moves.max()!, 1 + 1e-3, "no move is larger than lr")
        let atLR = moves.filter { abs($0 - 1) < 1e-3 }.count
        XCTAssertGreaterThan(Double(atLR), 0.95 * Double(moves.count), "moves of lr: \(atLR) of \(moves.count); median \(moves.sorted()[moves.count / 2]) lr")
    }

    /// A checkpoint holds its optimizer's state tensors: resuming it with
    /// another optimizer is refused naming both (and a checkpoint written
    /// before train.optimizer existed is SGD's); `ckpt verify` looks for the
    /// state its configuration names.
    func testACheckpointResumesOnlyWithItsOptimizer() throws {
        let adamw = try config(["train.optimizer=\"adamw\""])
        let m = Manifest(run: "t", step: 5, epoch: 0, epochCursor: 0, stepsPerEpoch: 10, totalSteps: 20, seed: 1, dataOrder: "", rng: "",
                         lrSchedule: "constant", learningRate: 0.1,
                         scaler: .init(scale: 1, goodSteps: 0, hysteresisLeft: 2, skipped: 0, overflowsAtMin: 0, lastFiniteStep: 4),
                         servers: 1, workers: 1, precision: "fp32", compression: "none", build: "test", configHash: "0",
                         config: adamw.canonicalTOML, created: 0, files: [], tensors: [])
        XCTAssertNoThrow(try ServerRole.checkOptimizer(of: "/r/step-5", m, is: adamw.train))
        XCTAssertThrowsError(try ServerRole.checkOptimizer(of: "/r/step-5", m, is: try config([]).train)) { e in
            XCTAssertEqual("\(e)", "/r/step-5 holds the state of train.optimizer = \"adamw\"; this configuration has \"sgd\": "
                           + "resume with the run's own optimizer (its state cannot be carried over to another)")
        }
        // The manifest records the state names (PSCheckpoint reads no configuration)...
        var recorded = m
        recorded.optimizerStates = ["exp_avg", "exp_avg_sq"]
        XCTAssertEqual(try CheckpointStore.serverSuffixes(recorded, dir: "/r/step-5"), ["", "exp_avg", "exp_avg_sq"])
        // ...and for a manifest written before it did, the server file of the first tensor names them.
        let dir = NSTemporaryDirectory() + "pstrain-states-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/checkpoints", withIntermediateDirectories: true)
        try writeExampleCheckpoint(runDir: dir, weights: (0..<8).map { Float($0) }, momentum: [Float](repeating: 0.5, count: 8),
                                   residual: [Float](repeating: 0, count: 8), build: "t")
        let old = try CheckpointStore.verify(dir + "/checkpoints/step-5")
        XCTAssertNil(old.optimizerStates)
        XCTAssertEqual(try CheckpointStore.serverSuffixes(old, dir: dir + "/checkpoints/step-5"), ["", "momentum"])
    }
}
