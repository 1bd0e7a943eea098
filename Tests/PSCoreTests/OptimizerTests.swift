import Foundation
import XCTest
import CPSKernels
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig

/// The servers' optimizers (Sources/PSNumerics/Optimizers/): each against a
/// double-precision transcription of PyTorch's update, and against
/// torch.optim itself on the same inputs (Debian's python3-torch).
final class OptimizerReleaseTests: XCTestCase {
    /// One optimizer to check: ours, and the torch.optim call that should
    /// give the same numbers (`p` is the parameter; its state keys in our
    /// `stateNames` order).
    struct Case {
        let name: String
        let optimizer: Optimizer
        let torch: String
        let torchState: [String]
    }

    static let cases: [Case] = [
        Case(name: "sgd", optimizer: SGD(momentum: 0.9, weightDecay: 1e-4),
             torch: "torch.optim.SGD([p], lr=1.0, momentum=0.9, weight_decay=1e-4)", torchState: ["momentum_buffer"]),
        Case(name: "sgd-nesterov", optimizer: SGD(momentum: 0.8, weightDecay: 1e-3, nesterov: true),
             torch: "torch.optim.SGD([p], lr=1.0, momentum=0.8, weight_decay=1e-3, nesterov=True)", torchState: ["momentum_buffer"]),
        Case(name: "adam", optimizer: Adam(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01),
             torch: "torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)", torchState: ["exp_avg", "exp_avg_sq"]),
        Case(name: "adam-betas", optimizer: Adam(beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0),
             torch: "torch.optim.Adam([p], lr=1.0, betas=(0.8, 0.99), eps=1e-6)", torchState: ["exp_avg", "exp_avg_sq"]),
        Case(name: "adamw", optimizer: AdamW(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1),
             torch: "torch.optim.AdamW([p], lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)", torchState: ["exp_avg", "exp_avg_sq"]),
        Case(name: "adagrad", optimizer: Adagrad(eps: 1e-10, weightDecay: 0.01),
             torch: "torch.optim.Adagrad([p], lr=1.0, lr_decay=0, weight_decay=0.01, initial_accumulator_value=0, eps=1e-10)", torchState: ["sum"]),
        Case(name: "rmsprop", optimizer: RMSprop(alpha: 0.99, eps: 1e-8, weightDecay: 0.01),
             torch: "torch.optim.RMSprop([p], lr=1.0, alpha=0.99, eps=1e-8, weight_decay=0.01)", torchState: ["square_avg"]),
        Case(name: "rmsprop-centered-momentum", optimizer: RMSprop(alpha: 0.9, eps: 1e-6, weightDecay: 0, momentum: 0.5, centered: true),
             torch: "torch.optim.RMSprop([p], lr=1.0, alpha=0.9, eps=1e-6, momentum=0.5, centered=True)",
             torchState: ["square_avg", "momentum_buffer", "grad_avg"]),
    ]

    /// The inputs every case runs on: n weights (not a multiple of any
    /// vector width), `steps` gradients as the servers hold them (scaled by
    /// a loss scale of 1024), a learning rate per step.
    static let n = 1003, steps = 6, lossScale: Float = 1024
    static let lrs: [Float] = [0.01, 0.02, 0.015, 0.0125, 0.01, 0.005]

    static func uniform(_ stream: UInt64, _ i: Int) -> Float { CounterRNG.uniform(seed: 42, stream: stream, index: UInt64(i)) * 2 - 1 }
    static let initial: [Float] = (0..<n).map { uniform(1, $0) }
    /// Gradients of several magnitudes (1e-3 to 1), loss-scaled.
    static let grads: [[Float]] = (0..<steps).map { s in
        (0..<n).map { i in uniform(UInt64(10 + s), i) * [1, 0.1, 0.01, 0.001][i % 4] * lossScale }
    }

    /// Runs `opt` over the inputs; the weights and each state tensor.
    static func run(_ opt: Optimizer) -> [[Float]] {
        let w = FloatBuffer(initial)
        let state = opt.stateNames.map { _ in FloatBuffer(count: n) }
        for s in 0..<steps {
            let g = FloatBuffer(grads[s])
            opt.apply(weights: w.pointer, state: state.map { $0.pointer }, grads: g.pointer, count: n,
                      step: OptimizerStep(lr: lrs[s], gradScale: 1 / lossScale, t: s + 1))
        }
        return [Array(UnsafeBufferPointer(start: w.pointer, count: n))] + state.map { Array(UnsafeBufferPointer(start: $0.pointer, count: n)) }
    }

    /// Fails unless every element of `got` is within `rtol` times the largest
    /// magnitude in `want` of `want`; returns how many elements differ in any bit.
    @discardableResult
    func assertClose(_ got: [Float], _ want: [Double], rtol: Double, _ what: String) -> Int {
        XCTAssertEqual(got.count, want.count, what)
        let scale = max(want.map { abs($0) }.max() ?? 0, 1e-30)
        var differ = 0, worst = 0.0, at = 0
        for (i, (a, b)) in zip(got, want).enumerated() {
            if Float(b).bitPattern != a.bitPattern { differ += 1 }
            let d = abs(Double(a) - b)
            if d > worst { worst = d; at = i }
        }
        XCTAssertLessThanOrEqual(worst, rtol * scale, "\(what): element \(at) is \(got[at]), expected \(want[at]) (largest magnitude \(scale))")
        return differ
    }

    // MARK: Double-precision references (no Python needed)

    /// PyTorch's updates transcribed in Double, one element at a time.
    static func reference(_ name: String, w: inout Double, state: inout [Double], g raw: Double, lr: Double, t: Int) {
        switch name {
        case "sgd", "sgd-nesterov":
            let (mu, wd, nesterov) = name == "sgd" ? (0.9, 1e-4, false) : (0.8, 1e-3, true)
            let g = raw + wd * w
            state[0] = mu * state[0] + g
            w -= lr * (nesterov ? g + mu * state[0] : state[0])
        case "adam", "adam-betas", "adamw":
            let (b1, b2, eps, wd) = name == "adam" ? (0.9, 0.999, 1e-8, 0.01) : name == "adamw" ? (0.9, 0.999, 1e-8, 0.1) : (0.8, 0.99, 1e-6, 0)
            var g = raw
            if name == "adamw" { w *= 1 - lr * wd } else { g += wd * w }
            state[0] = b1 * state[0] + (1 - b1) * g
            state[1] = b2 * state[1] + (1 - b2) * g * g
            let tt = Double(t)
            let denom = state[1].squareRoot() / (1 - pow(b2, tt)).squareRoot() + eps
            w -= lr / (1 - pow(b1, tt)) * state[0] / denom
        case "adagrad":
            let g = raw + 0.01 * w
            state[0] += g * g
            w -= lr * g / (state[0].squareRoot() + 1e-10)
        case "rmsprop", "rmsprop-centered-momentum":
            let (alpha, eps, wd, mu, centered) = name == "rmsprop" ? (0.99, 1e-8, 0.01, 0.0, false) : (0.9, 1e-6, 0.0, 0.5, true)
            let g = raw + wd * w
            state[0] = alpha * state[0] + (1 - alpha) * g * g
            var avg = state[0].squareRoot() + eps
            if centered {
                state[2] = alpha * state[2] + (1 - alpha) * g
                avg = (state[0] - state[2] * state[2]).squareRoot() + eps
            }
            if mu > 0 {
                state[1] = mu * state[1] + g / avg
                w -= lr * state[1]
            } else {
                w -= lr * g / avg
            }
        default: fatalError("no reference for \(name)")
        }
    }

    /// Each optimizer against its Double transcription over 6 steps with a
    /// changing learning rate: within 1e-5 of each tensor's largest magnitude
    /// (FP32 rounding accumulated over the steps).
    func testEachOptimizerMatchesItsDoubleReference() {
        for c in Self.cases {
            let got = Self.run(c.optimizer)
            var w = Self.initial.map { Double($0) }
            var state = [[Double]](repeating: [Double](repeating: 0, count: c.optimizer.stateNames.count), count: Self.n)
            for s in 0..<Self.steps {
                for i in 0..<Self.n {
                    Self.reference(c.name, w: &w[i], state: &state[i], g: Double(Self.grads[s][i]) / Double(Self.lossScale),
                                   lr: Double(Self.lrs[s]), t: s + 1)
                }
            }
            assertClose(got[0], w, rtol: 1e-5, "\(c.name) weights")
            for (k, name) in c.optimizer.stateNames.enumerated() {
                assertClose(got[k + 1], state.map { $0[k] }, rtol: 1e-5, "\(c.name) \(name)")
            }
            XCTAssertNotEqual(got[0], Self.initial, "\(c.name) moved the weights")
        }
    }

    /// Adam's first update (t = 1) moves every weight by lr in the direction
    /// against its gradient (bias correction makes m/sqrt(v) = g/|g|): the
    /// count the servers pass matters.
    func testAdamsFirstStepIsLrTimesTheSign() {
        let w = FloatBuffer([1, -1, 0.5]), m = FloatBuffer(count: 3), v = FloatBuffer(count: 3), g = FloatBuffer([0.3, -2e-3, 5])
        Adam().apply(weights: w.pointer, state: [m.pointer, v.pointer], grads: g.pointer, count: 3, step: OptimizerStep(lr: 0.1, gradScale: 1, t: 1))
        XCTAssertEqual(w[0], 0.9, accuracy: 1e-6)
        XCTAssertEqual(w[1], -0.9, accuracy: 1e-5)
        XCTAssertEqual(w[2], 0.4, accuracy: 1e-6)
        // The same moments at t = 2 would give a smaller step (0.1 * 0.1/0.19 / sqrt(0.001/0.001999) ~ 0.074).
        let w2 = FloatBuffer([1]), m2 = FloatBuffer(count: 1), v2 = FloatBuffer(count: 1), g2 = FloatBuffer([0.3])
        Adam().apply(weights: w2.pointer, state: [m2.pointer, v2.pointer], grads: g2.pointer, count: 1, step: OptimizerStep(lr: 0.1, gradScale: 1, t: 2))
        XCTAssertEqual(w2[0], 1 - 0.1 * (0.1 / 0.19) / (0.001 / 0.001999).squareRoot(), accuracy: 1e-6)
    }

    /// The update that keeps the old values (a bsp server updating ahead of
    /// the step's outcome, ServerUpdateAhead.swift) gives the bits of the
    /// plain update, and what it keeps is the weights and state as they were
    /// before it: SGD's fused loop and the copy-then-update of the others.
    func testKeepingTheOldValuesChangesNoBit() {
        for c in Self.cases {
            let plain = Self.run(c.optimizer)
            let o = c.optimizer, n = Self.n
            let w = FloatBuffer(Self.initial), state = o.stateNames.map { _ in FloatBuffer(count: n) }
            let keptW = FloatBuffer(count: n), keptS = o.stateNames.map { _ in FloatBuffer(count: n) }
            for s in 0..<Self.steps {
                let before = [w.array] + state.map(\.array)
                let g = FloatBuffer(Self.grads[s])
                o.apply(weights: w.pointer, state: state.map { $0.pointer }, grads: g.pointer, count: n,
                        step: OptimizerStep(lr: Self.lrs[s], gradScale: 1 / Self.lossScale, t: s + 1),
                        keepingIn: keptW.pointer, keptS.map { $0.pointer })
                XCTAssertEqual(([keptW.array] + keptS.map(\.array)).map { $0.map(\.bitPattern) }, before.map { $0.map(\.bitPattern) },
                               "\(c.name) step \(s): kept the values before the update")
            }
            XCTAssertEqual(([w.array] + state.map(\.array)).map { $0.map(\.bitPattern) }, plain.map { $0.map(\.bitPattern) }, "\(c.name)")
        }
    }

    /// Without Nesterov, SGD is the update pstrain always had, bit for bit
    /// (the loop before this file changed: v = mu v + (g s + wd w); w -= lr v).
    func testPlainSGDIsTheOldLoopBitForBit() {
        let got = Self.run(SGD(momentum: 0.9, weightDecay: 1e-4))
        var w = Self.initial, v = [Float](repeating: 0, count: Self.n)
        let mu: Float = 0.9, wd: Float = 1e-4
        for s in 0..<Self.steps {
            for i in 0..<Self.n {
                let gi = Self.grads[s][i] * (1 / Self.lossScale) + wd * w[i]
                let vi = mu * v[i] + gi
                v[i] = vi
                w[i] -= Self.lrs[s] * vi
            }
        }
        XCTAssertEqual(got[0].map { $0.bitPattern }, w.map { $0.bitPattern })
        XCTAssertEqual(got[1].map { $0.bitPattern }, v.map { $0.bitPattern })
    }

    /// The C element loops (CPSKernels/optim.c) give the same bits in the
    /// vectorised build this machine runs and in the plain C build.
    func testEveryKernelBuildGivesTheSameBits() {
        print("OptimizerReleaseTests: optimizer kernels: \(String(cString: pst_optim_variant()))")
        for (decoupled, l2) in [(Int32(0), Float(0.01)), (0, 0), (1, 0)] {
            var outs: [[Float]] = []
            for generic in [false, true] {
                let w = FloatBuffer(Self.initial), m = FloatBuffer(count: Self.n), v = FloatBuffer(count: Self.n)
                for s in 0..<Self.steps {
                    let g = FloatBuffer(Self.grads[s])
                    var k = pst_adam_step(beta1: 0.9, beta2: 0.999, eps: 1e-8, step: OptimizerStep(lr: Self.lrs[s], gradScale: 1 / Self.lossScale, t: s + 1))
                    k.l2 = l2; k.decoupled = decoupled; k.shrink = decoupled == 1 ? 0.999 : 1
                    if generic { pst_adam_generic(w.pointer, m.pointer, v.pointer, g.pointer, Self.n, &k) } else { pst_adam(w.pointer, m.pointer, v.pointer, g.pointer, Self.n, &k) }
                }
                outs.append([w, m, v].flatMap { b in (0..<Self.n).map { b[$0] } })
            }
            XCTAssertEqual(outs[0].map { $0.bitPattern }, outs[1].map { $0.bitPattern }, "adam decoupled \(decoupled) l2 \(l2)")
        }
        var outs: [[Float]] = []
        for generic in [false, true] {
            let w = FloatBuffer(Self.initial), sum = FloatBuffer(count: Self.n)
            for s in 0..<Self.steps {
                let g = FloatBuffer(Self.grads[s])
                if generic { pst_adagrad_generic(w.pointer, sum.pointer, g.pointer, Self.n, 1 / Self.lossScale, 0.01, 1e-10, -Self.lrs[s]) }
                else { pst_adagrad(w.pointer, sum.pointer, g.pointer, Self.n, 1 / Self.lossScale, 0.01, 1e-10, -Self.lrs[s]) }
            }
            outs.append([w, sum].flatMap { b in (0..<Self.n).map { b[$0] } })
        }
        XCTAssertEqual(outs[0].map { $0.bitPattern }, outs[1].map { $0.bitPattern }, "adagrad")
    }

    // MARK: PyTorch

    /// Every case against torch.optim on the same inputs (torch gets the
    /// unscaled gradients, lr set per step): weights and state within 1e-6
    /// of each tensor's largest magnitude. The Adam family uses PyTorch's
    /// FP32 operations and fused multiply-adds, so on this machine it is
    /// expected to agree bit for bit; the count of differing elements is
    /// printed. Needs /usr/bin/python3 with torch (scripts/bootstrap --python).
    func testEachOptimizerMatchesTorchOptim() throws {
        let dir = NSTemporaryDirectory() + "pstrain-optim-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputs = Self.initial + Self.grads.flatMap { $0 }
        try inputs.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/in.f32")) }
        let script = """
        import sys, numpy as np, torch
        torch.set_num_threads(1)
        n, steps, scale = \(Self.n), \(Self.steps), np.float32(\(1 / Self.lossScale))
        lrs = [\(Self.lrs.map { "\(Double($0))" }.joined(separator: ", "))]
        x = np.fromfile(sys.argv[1], dtype=np.float32)
        w0, gs = x[:n], x[n:].reshape(steps, n)
        out = []
        for ctor, keys in [\(Self.cases.map { "(lambda p: \($0.torch), \($0.torchState))" }.joined(separator: ", "))]:
            p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
            opt = ctor(p)
            for s in range(steps):
                for g in opt.param_groups: g['lr'] = lrs[s]
                p.grad = torch.from_numpy(gs[s] * scale)
                opt.step()
            out.append(p.detach().numpy())
            out += [opt.state[p][k].numpy() for k in keys]
        np.concatenate(out).astype(np.float32).tofile(sys.argv[2])
        """
        let torchPython = "/usr/bin/python3"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: torchPython)
        p.arguments = ["-c", script, dir + "/in.f32", dir + "/out.f32"]
        p.environment = ["OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"]
        let errPipe = Pipe()
        p.standardError = errPipe
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch {
            return XCTFail("cannot start \(torchPython) (\(error)): run scripts/bootstrap --python, which installs Debian's python3-torch and python3-numpy")
        }
        let err = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            return XCTFail("\(torchPython) with torch failed (status \(p.terminationStatus)); if torch or numpy is missing, run scripts/bootstrap --python "
                           + "(Debian's python3-torch and python3-numpy):\n\(err.suffix(2000))")
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/out.f32"))
        let torch = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let tensors = Self.cases.reduce(0) { $0 + 1 + $1.optimizer.stateNames.count }
        XCTAssertEqual(torch.count, tensors * Self.n, "torch's output")
        guard torch.count == tensors * Self.n else { return }
        var at = 0
        for c in Self.cases {
            let got = Self.run(c.optimizer)
            for (k, name) in (["weights"] + c.optimizer.stateNames).enumerated() {
                let want = torch[at..<(at + Self.n)].map { Double($0) }
                let differ = assertClose(got[k], want, rtol: 1e-6, "\(c.name) \(name) against torch.optim")
                print("OptimizerReleaseTests: \(c.name) \(name): \(differ) of \(Self.n) elements differ from torch.optim in any bit")
                at += Self.n
            }
        }
    }
}

/// The learning-rate schedules (Optimizers/LRSchedule.swift) and the keys
/// that choose them.
final class LRScheduleTests: XCTestCase {
    /// Without warmup, cosine is the formula pstrain always had, bit for bit.
    func testCosineWithoutWarmupIsTheOldFormula() {
        let s = LRSchedule(lr: 0.05, decay: .cosine)
        for total in [1, 7, 100, 4680] {
            for step in [0, 1, total / 3, total - 1] {
                let old = 0.05 * 0.5 * (1 + cos(Double.pi * Double(step) / Double(max(total, 1))))
                XCTAssertEqual(s.rate(step: step, total: total).bitPattern, old.bitPattern, "step \(step) of \(total)")
            }
        }
        XCTAssertEqual(Config().train.learningRate(step: 7, total: 100), s.rate(step: 7, total: 100))
    }

    /// Warmup: lr (k+1)/W for k < W, then the decay over the T - W steps left.
    func testWarmupThenDecay() {
        let total = 110, w = 10
        for decay in [LRSchedule.Decay.constant, .cosine, .step(every: 30, gamma: 0.5), .linear] {
            let s = LRSchedule(lr: 0.2, decay: decay, warmupSteps: w)
            XCTAssertEqual(s.rate(step: 0, total: total), 0.02, accuracy: 1e-15, "\(decay)")
            XCTAssertEqual(s.rate(step: 4, total: total), 0.1, accuracy: 1e-15, "\(decay)")
            XCTAssertEqual(s.rate(step: 9, total: total), 0.2, accuracy: 1e-15, "\(decay): the last warmup step reaches lr")
            XCTAssertEqual(s.rate(step: 10, total: total), 0.2, accuracy: 1e-15, "\(decay): the decay starts at lr")
        }
        let cosine = LRSchedule(lr: 0.2, decay: .cosine, warmupSteps: w)
        XCTAssertEqual(cosine.rate(step: 60, total: total), 0.1, accuracy: 1e-15, "half way through the decay")
        XCTAssertEqual(cosine.rate(step: 109, total: total), 0.2 * 0.5 * (1 + cos(Double.pi * 99 / 100)), accuracy: 1e-15)
        let linear = LRSchedule(lr: 0.2, decay: .linear, warmupSteps: w)
        XCTAssertEqual(linear.rate(step: 60, total: total), 0.1, accuracy: 1e-15)
        XCTAssertEqual(linear.rate(step: 109, total: total), 0.002, accuracy: 1e-15, "lr / n on the last step, 0 after it")
        let step = LRSchedule(lr: 0.2, decay: .step(every: 30, gamma: 0.5), warmupSteps: w)
        XCTAssertEqual(step.rate(step: 39, total: total), 0.2)
        XCTAssertEqual(step.rate(step: 40, total: total), 0.1)
        XCTAssertEqual(step.rate(step: 70, total: total), 0.05)
        XCTAssertEqual(LRSchedule(lr: 0.2, decay: .constant).rate(step: 99, total: total), 0.2)
        // A warmup as long as the run: the last step reaches lr.
        XCTAssertEqual(LRSchedule(lr: 0.2, decay: .cosine, warmupSteps: 50).rate(step: 49, total: 50), 0.2, accuracy: 1e-15)
    }

    /// Against PyTorch's schedulers stepped once per step (LinearLR warmup,
    /// SequentialLR, CosineAnnealingLR / StepLR / LinearLR): needs
    /// /usr/bin/python3 with torch (scripts/bootstrap --python). Within 1e-12
    /// relative (PyTorch's chained form multiplies factors step by step).
    func testSchedulesMatchTorchSchedulers() throws {
        let total = 40, w = 5, lr = 0.1
        let script = """
        import torch
        from torch.optim.lr_scheduler import LinearLR, SequentialLR, CosineAnnealingLR, StepLR, ConstantLR
        total, w, n = \(total), \(w), \(total - w)
        def run(make):
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=\(lr))
            warm = LinearLR(opt, start_factor=1 / w, end_factor=1, total_iters=w - 1)
            sched = SequentialLR(opt, [warm, make(opt)], milestones=[w])
            out = []
            for _ in range(total):
                out.append(opt.param_groups[0]['lr']); opt.step(); sched.step()
            return out
        rows = [run(lambda o: ConstantLR(o, factor=1, total_iters=0)), run(lambda o: CosineAnnealingLR(o, T_max=n)),
                run(lambda o: StepLR(o, step_size=7, gamma=0.5)), run(lambda o: LinearLR(o, start_factor=1, end_factor=0, total_iters=n))]
        for r in rows: print(' '.join(repr(x) for x in r))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-W", "ignore", "-c", script]
        p.environment = ["OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { return XCTFail("cannot start /usr/bin/python3 (\(error)): run scripts/bootstrap --python (Debian's python3-torch)") }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            return XCTFail("/usr/bin/python3 with torch failed; if torch is missing, run scripts/bootstrap --python (Debian's python3-torch):\n\(errText.suffix(2000))")
        }
        let rows = text.split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }
        XCTAssertEqual(rows.count, 4)
        let decays: [LRSchedule.Decay] = [.constant, .cosine, .step(every: 7, gamma: 0.5), .linear]
        for (decay, row) in zip(decays, rows) {
            XCTAssertEqual(row.count, total, "\(decay)")
            let s = LRSchedule(lr: lr, decay: decay, warmupSteps: w)
            for (k, want) in row.enumerated() {
                XCTAssertEqual(s.rate(step: k, total: total), want, accuracy: 1e-12 * lr, "\(decay) step \(k)")
            }
        }
    }

    /// The keys: read, carried into the schedule and the optimizer, and
    /// the rules across them with messages that name the key.
    func testKeysChooseOptimizerAndSchedule() throws {
        let c = try Config.parse("""
            [train]
            optimizer = "adamw"
            beta1 = 0.8
            beta2 = 0.95
            weight_decay = 0.05
            lr = 0.001
            lr_schedule = "step"
            lr_step_every = 100
            lr_gamma = 0.5
            warmup_steps = 10
            clip_norm = 1.5
            """, source: "t.toml")
        let opt = try XCTUnwrap(Optimizers.make(c.train) as? AdamW)
        XCTAssertEqual(opt, AdamW(beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.05))
        XCTAssertEqual(opt.stateNames, ["exp_avg", "exp_avg_sq"])
        XCTAssertEqual(LRSchedule(c.train), LRSchedule(lr: 0.001, decay: .step(every: 100, gamma: 0.5), warmupSteps: 10))
        XCTAssertEqual(c.train.clipNorm, 1.5)
        XCTAssertTrue(c.train.clips)
        // eps: 0 picks PyTorch's default of the optimizer; a value set is used as it is.
        var a = Config()
        try a.apply(override: "train.optimizer=\"adagrad\"")
        XCTAssertEqual((Optimizers.make(a.train) as? Adagrad)?.eps, 1e-10)
        XCTAssertEqual(Optimizers.make(a.train).stateNames, ["sum"])
        try a.apply(override: "train.eps=1e-7")
        XCTAssertEqual((Optimizers.make(a.train) as? Adagrad)?.eps, 1e-7)
        try a.apply(override: "train.optimizer=\"adam\"")
        XCTAssertEqual((Optimizers.make(a.train) as? Adam)?.eps, 1e-7)
        // The default is today's SGD.
        let d = try XCTUnwrap(Optimizers.make(Config().train) as? SGD)
        XCTAssertEqual(d.momentum, 0.9)
        XCTAssertFalse(d.nesterov)
        XCTAssertFalse(Config().train.clips)
        var n = Config()
        try n.apply(override: "train.nesterov=true")
        XCTAssertEqual((Optimizers.make(n.train) as? SGD)?.nesterov, true)

        func refused(_ overrides: [String], _ key: String, _ words: String) {
            var c = Config()
            do {
                for o in overrides { try c.apply(override: o) }
                XCTFail("\(overrides) was accepted")
            } catch {
                XCTAssertTrue("\(error)".contains(key) && "\(error)".contains(words), "\(error)")
            }
        }
        refused(["train.optimizer=\"adam\"", "train.nesterov=true"], "train.nesterov", "sgd")
        refused(["train.nesterov=true", "train.momentum=0"], "train.nesterov", "train.momentum")
        refused(["train.lr_schedule=\"step\""], "train.lr_step_every", "at least 1")
        refused(["train.optimizer=\"lamb\""], "train.optimizer", "rmsprop")
        refused(["train.centered=true"], "train.centered", "rmsprop")
        // RMSprop takes train.alpha, train.centered, train.momentum and train.eps (PyTorch's 1e-8 by default).
        var r = Config()
        for o in ["train.optimizer=\"rmsprop\"", "train.alpha=0.9", "train.centered=true", "train.momentum=0"] { try r.apply(override: o) }
        XCTAssertEqual(Optimizers.make(r.train) as? RMSprop, RMSprop(alpha: 0.9, eps: 1e-8, weightDecay: 1e-4, momentum: 0, centered: true))
        XCTAssertEqual(Optimizers.make(r.train).stateNames, ["square_avg", "grad_avg"])
        refused(["train.beta2=1"], "train.beta2", "[0, 1)")
        refused(["train.clip_norm=-1"], "train.clip_norm", "[0,")
        refused(["train.lr_gamma=0"], "train.lr_gamma", "(0, 1]")
    }
}
