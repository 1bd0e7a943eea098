import XCTest
import CPSKernels
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch
import PSTestSupport

final class LossScalerReleaseTests: XCTestCase {
    func settings() -> LossScaler.Settings {
        var s = LossScaler.Settings()
        s.initialScale = 1024; s.growthInterval = 3; s.hysteresis = 2; s.minScale = 256; s.maxScale = 4096; s.maxSkipsAtMin = 3
        return s
    }

    func testGrowsAfterTheIntervalUpToTheCeiling() {
        var sc = LossScaler(settings: settings(), dynamic: true)
        XCTAssertEqual(sc.update(step: 0, overflow: false), .none)
        XCTAssertEqual(sc.update(step: 1, overflow: false), .none)
        XCTAssertEqual(sc.update(step: 2, overflow: false), .grew(from: 1024, to: 2048))
        XCTAssertEqual(sc.goodSteps, 0, "the interval restarts after growth")
        for s in 3..<6 { sc.update(step: s, overflow: false) }
        XCTAssertEqual(sc.scale, 4096)
        for s in 6..<9 { XCTAssertEqual(sc.update(step: s, overflow: false), .none, "at the ceiling") }
        XCTAssertEqual(sc.scale, 4096)
        XCTAssertEqual(sc.skipped, 0)
    }

    func testHysteresisBacksOffOnTheSecondConsecutiveOverflowAndResetsCounters() {
        var sc = LossScaler(settings: settings(), dynamic: true)
        sc.update(step: 0, overflow: false); sc.update(step: 1, overflow: false)
        XCTAssertEqual(sc.goodSteps, 2)
        XCTAssertEqual(sc.update(step: 2, overflow: true), .none, "first overflow: hysteresis absorbs it")
        XCTAssertEqual(sc.goodSteps, 0, "an overflow restarts the growth interval")
        XCTAssertEqual(sc.skipped, 1)
        XCTAssertEqual(sc.update(step: 3, overflow: true), .backedOff(from: 1024, to: 512))
        // A finite step refills the hysteresis budget: the next lone overflow does not back off.
        sc.update(step: 4, overflow: false)
        XCTAssertEqual(sc.update(step: 5, overflow: true), .none)
        XCTAssertEqual(sc.scale, 512)
        XCTAssertEqual(sc.skipped, 3)
        XCTAssertEqual(sc.lastFiniteStep, 4)
    }

    func testFloorAndDivergence() {
        var sc = LossScaler(settings: settings(), dynamic: true)
        var step = 0
        while sc.scale > 256 { sc.update(step: step, overflow: true); step += 1 }
        XCTAssertEqual(sc.scale, 256)
        XCTAssertFalse(sc.diverged)
        for _ in 0..<4 { sc.update(step: step, overflow: true); step += 1 }
        XCTAssertEqual(sc.scale, 256, "never below the floor")
        XCTAssertTrue(sc.diverged)
        XCTAssertEqual(sc.lastFiniteStep, -1)
        sc.update(step: step, overflow: false)
        XCTAssertFalse(sc.diverged, "a finite step ends the streak")
    }

    func testStaticScalerOnlySkips() {
        var sc = LossScaler(settings: settings(), dynamic: false)
        XCTAssertEqual(sc.scale, 1)
        for s in 0..<5 { XCTAssertEqual(sc.update(step: s, overflow: s % 2 == 0), .none) }
        XCTAssertEqual(sc.scale, 1)
        XCTAssertEqual(sc.skipped, 3)
    }
}

/// Why FP16 needs a loss scale, on real gradients: the MLP's gradient on a
/// Fashion-MNIST batch, stored as FP16 with scale 1, loses a measurable share
/// of its nonzero values to zero; scaled by the default 2^16 it loses far
/// fewer.
final class UnderflowTests: XCTestCase {
    func flushedShare(_ g: [Float], scale: Float) -> Double {
        var scaled = g.map { $0 * scale }
        var h = [UInt16](repeating: 0, count: g.count)
        pst_f32_to_f16(&scaled, &h, g.count)
        var nonzero = 0, flushed = 0
        for i in g.indices where g[i] != 0 {
            nonzero += 1
            if h[i] & 0x7fff == 0 { flushed += 1 }
        }
        return Double(flushed) / Double(nonzero)
    }

    func testScalingKeepsGradientsFromFlushingToZero() throws {
        // After 100 FP32 steps: gradients shrink as the loss falls, which is when underflow bites.
        let g = try realGradients(steps: 100)
        let atOne = flushedShare(g, scale: 1)
        let atDefault = flushedShare(g, scale: Float(LossScaler.Settings().initialScale))
        print(String(format: "FP16 flush-to-zero share of nonzero gradient values after 100 steps: scale 1: %.4f%%, scale 2^16: %.4f%%",
                     atOne * 100, atDefault * 100))
        XCTAssertGreaterThan(atOne, 1e-4, "with scale 1 a measurable share (over 0.01%) flushes to zero")
        XCTAssertLessThan(atDefault, atOne / 10, "the default scale keeps at least ten times more")
    }
}

final class SkipSummaryTests: XCTestCase {
    /// One line per burst of skipped steps, never one per step.
    func testBurstsAreSummarised() {
        var lines: [String] = []
        var p = Progress(lead: true, say: { lines.append($0) }, every: 1e9, total: 100, perEpoch: 100, epochs: 1, batch: 1, start: 0)
        for s in 0..<10 { p.step(s, loss: 1, skipped: false, scale: (65536, 65536), at: 0) }
        p.step(10, loss: .nan, skipped: true, scale: (65536, 65536), at: 0)
        p.step(11, loss: .nan, skipped: true, scale: (65536, 32768), at: 0)
        p.step(12, loss: .nan, skipped: true, scale: (32768, 32768), at: 0)
        p.step(13, loss: .nan, skipped: true, scale: (32768, 16384), at: 0)
        p.step(14, loss: 1, skipped: false, scale: (16384, 16384), at: 0)
        p.step(20, loss: .nan, skipped: true, scale: (16384, 16384), at: 0)
        p.finish()
        XCTAssertEqual(lines, ["steps 10-13 skipped for overflow, scale 65536 -> 16384",
                               "step 20 skipped for overflow, scale 16384"])
    }
}

final class MixedPrecisionTrainingReleaseTests: XCTestCase {
    func config(_ precision: String, extra: [String] = []) throws -> Config {
        try mlpConfig(["train.epochs=1", "train.precision=\(precision)"] + extra)
    }

    func testHalfPrecisionsTrainAndHalveTheWire() throws {
        var bytes: [String: Int] = [:]
        var accuracy: [String: Double] = [:]
        for p in ["fp32", "fp16", "bf16"] {
            let c = try config(p, extra: ["train.epochs=3"])
            let recs = try runInProcess(config: c, servers: 2, workers: 2, data: syntheticData(c))
            let acc = records(recs, rank: 0, EvalRecord.self).last!.testAccuracy
            accuracy[p] = acc
            // Tolerance: half precision may cost at most 3 points on this small set.
            XCTAssertGreaterThan(acc, (accuracy["fp32"] ?? acc) - 0.03, p)
            XCTAssertGreaterThan(acc, 0.8, p)
            bytes[p] = records(recs, rank: 2, WorkerStepRecord.self).last!.bytesSent
            let steps = records(recs, rank: 0, ServerStepRecord.self)
            XCTAssertEqual(steps.last!.lossScale, p == "fp16" ? 65536 : 1, p)
        }
        // 2 bytes instead of 4 per element; headers and the step summary are the same size.
        XCTAssertLessThan(Double(bytes["fp16"]!), 0.55 * Double(bytes["fp32"]!))
        XCTAssertEqual(bytes["fp16"], bytes["bf16"])
    }

    /// An overflow in one worker's gradient at step 5, S=2: both servers skip
    /// it (parameters bit-identical before and after), back off the same way.
    func testInjectedOverflowIsSkippedByEveryServer() throws {
        let c = try config("fp16", extra: ["debug.overflow_step=5", "debug.overflow_worker=1", "debug.overflow_steps=2",
                                           "debug.digest_every_step=true"])
        let recs = try runInProcess(config: c, servers: 2, workers: 2, data: syntheticData(c))
        for s in 0..<2 {
            let steps = records(recs, rank: s, ServerStepRecord.self)
            let d = steps.map { $0.paramsDigest! }
            XCTAssertEqual(steps[5].overflow, true)
            XCTAssertEqual(steps[6].overflow, true)
            XCTAssertEqual(d[4], d[5], "server \(s): parameters unchanged by skipped step 5")
            XCTAssertEqual(d[5], d[6], "server \(s): parameters unchanged by skipped step 6")
            XCTAssertNotEqual(d[6], d[7], "server \(s): step 7 applies")
            XCTAssertEqual(steps[6].lossScale, 65536)
            XCTAssertEqual(steps[7].lossScale, 32768, "backed off after the 2nd consecutive overflow")
            XCTAssertEqual(steps.last!.skipped, 2)
            let ov = records(recs, rank: s, OverflowRecord.self)
            XCTAssertEqual(ov.map { $0.step }, [5, 6])
        }
        // Server 1 learned of it through worker 1's flag, server 0 likewise: both name worker 1.
        XCTAssertTrue(records(recs, rank: 1, OverflowRecord.self).first!.seenBy.contains("worker 1"))
    }

    func testPersistentOverflowStopsTheRunAndNamesTheLastFiniteStep() throws {
        let c = try config("fp16", extra: ["debug.overflow_step=3", "debug.overflow_steps=1000", "scaler.initial=2",
                                           "scaler.min=1", "scaler.hysteresis=1", "scaler.max_skips_at_min=5",
                                           "run.timeout_seconds=1"])
        XCTAssertThrowsError(try runInProcess(config: c, servers: 1, workers: 1, data: syntheticData(c))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("training diverged"), m)
            XCTAssertTrue(m.contains("the last step with finite gradients was 2"), m)
        }
    }
}
