import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

/// Finite-difference checks of every layer's backward pass.
/// Tolerance: |analytic - numeric| <= 2e-3 + 2e-2 * |numeric|, with central
/// differences of step 1e-2 evaluated in Float (whose rounding bounds what
/// can be asked of the comparison).
final class GradientCheckReleaseTests: XCTestCase {
    let atol: Float = 2e-3, rtol: Float = 2e-2

    func randomBuffer(_ n: Int, seed: UInt64, scale: Float = 1) -> FloatBuffer {
        let b = FloatBuffer(count: n)
        for i in 0..<n { b[i] = (2 * CounterRNG.uniform(seed: seed, stream: 9, index: UInt64(i)) - 1) * scale }
        return b
    }

    /// For L = sum(y * r), checks dL/dx and dL/dparams of `layer`.
    func check(_ layer: Layer, batch: Int, file: StaticString = #filePath, line: UInt = #line) {
        let nIn = batch * layer.inputSize, nOut = batch * layer.outputSize
        let np = layer.parameters.reduce(0) { $0 + $1.count }
        let x = randomBuffer(nIn, seed: 1)
        let p = randomBuffer(max(np, 1), seed: 2, scale: 0.5)
        let r = randomBuffer(nOut, seed: 3)
        let y = FloatBuffer(count: nOut), dx = FloatBuffer(count: nIn), g = FloatBuffer(count: max(np, 1))
        func loss() -> Float {
            layer.forward(x: x.pointer, y: y.pointer, batch: batch, params: p.pointer)
            var s: Float = 0
            for i in 0..<nOut { s += y[i] * r[i] }
            return s
        }
        _ = loss()
        layer.backward(x: x.pointer, y: y.pointer, dy: r.pointer, dx: dx.pointer, batch: batch, params: p.pointer, grads: g.pointer)
        let h: Float = 1e-2
        func numeric(_ b: FloatBuffer, _ i: Int) -> Float {
            let saved = b[i]
            b[i] = saved + h; let up = loss()
            b[i] = saved - h; let down = loss()
            b[i] = saved
            return (up - down) / (2 * h)
        }
        for i in 0..<nIn {
            // ReLU is not differentiable at 0: skip inputs within h of the kink.
            if layer is ReLU && abs(x[i]) < 2 * h { continue }
            let n = numeric(x, i)
            XCTAssertLessThanOrEqual(abs(dx[i] - n), atol + rtol * abs(n), "\(layer.kind) dx[\(i)]: \(dx[i]) vs \(n)", file: file, line: line)
        }
        for i in 0..<np {
            let n = numeric(p, i)
            XCTAssertLessThanOrEqual(abs(g[i] - n), atol + rtol * abs(n), "\(layer.kind) dparam[\(i)]: \(g[i]) vs \(n)", file: file, line: line)
        }
    }

    func testDense() { check(Dense(name: "d", inputs: 7, outputs: 5), batch: 3) }
    func testReLU() { check(ReLU(size: 11), batch: 4) }

    func testSoftmaxCrossEntropy() {
        let batch = 4, classes = 6
        let z = randomBuffer(batch * classes, seed: 5, scale: 3)
        var labels: [UInt8] = [0, 5, 2, 2]
        let d = FloatBuffer(count: batch * classes)
        let scale: Float = 0.25
        let (lossSum, _) = labels.withUnsafeBufferPointer {
            SoftmaxCrossEntropy.evaluate(logits: z.pointer, labels: $0.baseAddress!, batch: batch, classes: classes, dlogits: d.pointer, gradScale: scale)
        }
        XCTAssertGreaterThan(lossSum, 0)
        let h: Float = 1e-2
        for i in 0..<(batch * classes) {
            let saved = z[i]
            func l() -> Double {
                labels.withUnsafeMutableBufferPointer {
                    SoftmaxCrossEntropy.evaluate(logits: z.pointer, labels: $0.baseAddress!, batch: batch, classes: classes, dlogits: nil, gradScale: 0).lossSum
                }
            }
            z[i] = saved + h; let up = l()
            z[i] = saved - h; let down = l()
            z[i] = saved
            let n = Float((up - down) / Double(2 * h)) * scale
            XCTAssertLessThanOrEqual(abs(d[i] - n), atol + rtol * abs(n), "dlogits[\(i)]: \(d[i]) vs \(n)")
        }
    }

    /// The whole model: trainStep's gradients against differences of the loss.
    func testModelEndToEnd() throws {
        let m = try Model(inputSize: 6, entries: [.dense(5), .relu, .dense(4), .relu, .dense(3)], capacity: 4)
        let batch = 4
        let params = FloatBuffer(count: m.layout.totalCount)
        m.layout.initialize(seed: 3, range: 0, m.layout.totalCount, into: params.pointer)
        let xs = randomBuffer(batch * 6, seed: 8)
        var labels: [UInt8] = [0, 1, 2, 1]
        let grads = FloatBuffer(count: m.layout.totalCount)
        func load() { m.input.update(from: xs.pointer, count: batch * 6) }
        load()
        _ = labels.withUnsafeBufferPointer { m.trainStep(batch: batch, labels: $0.baseAddress!, gradScale: 1, params: params.pointer, grads: grads.pointer) }
        let h: Float = 1e-2
        var checked = 0
        for i in 0..<m.layout.totalCount {
            let saved = params[i]
            func l() -> Double { load(); return labels.withUnsafeMutableBufferPointer { m.evaluate(batch: batch, labels: $0.baseAddress!, params: params.pointer).lossSum } }
            params[i] = saved + h; let up = l()
            params[i] = saved - h; let down = l()
            params[i] = saved
            let n = Float((up - down) / Double(2 * h))
            XCTAssertLessThanOrEqual(abs(grads[i] - n), atol + rtol * abs(n), "param \(i): \(grads[i]) vs \(n)")
            checked += 1
        }
        XCTAssertEqual(checked, 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3)
    }

    func testSGDMatchesTheFormula() {
        let w = FloatBuffer([1, -2]), v = FloatBuffer([0.5, 0]), g = FloatBuffer([0.1, 0.2])
        SGD(momentum: 0.9, weightDecay: 0.01).apply(weights: w.pointer, state: [v.pointer], grads: g.pointer, count: 2, step: OptimizerStep(lr: 0.1, gradScale: 1, t: 1))
        // v = 0.9*0.5 + (0.1 + 0.01*1) = 0.56; w = 1 - 0.056
        XCTAssertEqual(v[0], 0.56, accuracy: 1e-6)
        XCTAssertEqual(w[0], 0.944, accuracy: 1e-6)
        // v = 0 + (0.2 - 0.02) = 0.18; w = -2 - 0.018
        XCTAssertEqual(v[1], 0.18, accuracy: 1e-6)
        XCTAssertEqual(w[1], -2.018, accuracy: 1e-6)
    }
}
