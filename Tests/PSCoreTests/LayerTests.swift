import Foundation
import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSProtocol
@testable import PSRunLog

/// One layer of a kind, its parameters and an input, for the checks below.
struct LayerCase {
    let type: String
    let options: [String: LayerValue]
    let input: [Int]
    let batch: Int
    var training = true
    /// Inputs spread at least `spacing` apart (max pooling's choice must not
    /// flip under the finite-difference step).
    var distinctInputs = false

    var label: String { "\(type) \(options) on \(input.shapeText) x \(batch)\(training ? "" : " (evaluation)")" }

    func layer() throws -> Layer {
        try LayerKinds.named(type)!.make(LayerEntry(type: type, options: options), index: 3, input: input)
    }

    func x(_ l: Layer) -> FloatBuffer {
        let n = batch * l.inputSize
        let b = FloatBuffer(count: n)
        for i in 0..<n {
            if distinctInputs {
                b[i] = Float((i * 7919) % n) / Float(n) * 4 - 2
            } else {
                b[i] = 2 * CounterRNG.uniform(seed: 11, stream: 1, index: UInt64(i)) - 1
            }
        }
        return b
    }

    /// Trained tensors random around their initial value; running variances
    /// positive; counters small.
    func params(_ l: Layer) -> FloatBuffer {
        let n = l.parameters.reduce(0) { $0 + $1.count }
        let b = FloatBuffer(count: max(n, 1))
        var off = 0
        for (t, s) in l.parameters.enumerated() {
            for i in 0..<s.count {
                let u = CounterRNG.uniform(seed: 12, stream: UInt64(t), index: UInt64(i))
                switch (s.role, s.initializer) {
                case (.counter, _): b[off + i] = 3
                case (_, .ones): b[off + i] = 0.5 + u
                default: b[off + i] = u - 0.5
                }
            }
            off += s.count
        }
        return b
    }

    func dy(_ l: Layer) -> FloatBuffer {
        let n = batch * l.outputSize
        let b = FloatBuffer(count: n)
        for i in 0..<n { b[i] = 2 * CounterRNG.uniform(seed: 13, stream: 1, index: UInt64(i)) - 1 }
        return b
    }

    var context: LayerContext { LayerContext(training: training, step: 5, seed: 9, firstRow: 0, globalBatch: batch) }
}

/// Every layer kind against finite differences of its own forward pass and
/// against PyTorch's module of the same name given the same weights.
final class LayerReleaseTests: XCTestCase {
    static let cases: [LayerCase] = [
        LayerCase(type: "dense", options: ["units": 5], input: [7], batch: 3),
        LayerCase(type: "conv2d", options: ["channels": 4, "kernel": 3, "padding": 1], input: [3, 6, 6], batch: 2),
        LayerCase(type: "conv2d", options: ["channels": 2, "kernel": 3, "stride": 2], input: [2, 7, 7], batch: 2),
        LayerCase(type: "conv2d", options: ["channels": 3, "kernel": 5, "padding": 2, "stride": 2], input: [1, 8, 8], batch: 2),
        // Winograd F(2x2, kxk): stride 1, 3x3 and 5x5, at least 8 input channels (odd sizes: partial tiles).
        LayerCase(type: "conv2d", options: ["channels": 3, "kernel": 3, "padding": 1], input: [8, 5, 5], batch: 2),
        LayerCase(type: "conv2d", options: ["channels": 2, "kernel": 5, "padding": 1], input: [8, 6, 7], batch: 2),
        LayerCase(type: "maxpool2d", options: ["kernel": 2], input: [2, 6, 6], batch: 2, distinctInputs: true),
        LayerCase(type: "maxpool2d", options: ["kernel": 3, "stride": 2], input: [2, 7, 7], batch: 2, distinctInputs: true),
        LayerCase(type: "avgpool2d", options: ["kernel": 2], input: [2, 6, 6], batch: 2),
        LayerCase(type: "avgpool2d", options: ["kernel": 3, "stride": 1], input: [1, 5, 5], batch: 2),
        LayerCase(type: "flatten", options: [:], input: [2, 3, 3], batch: 2),
        LayerCase(type: "batchnorm", options: [:], input: [4], batch: 5),
        LayerCase(type: "batchnorm", options: ["momentum": 0.3, "eps": 1e-3], input: [3, 4, 4], batch: 2),
        LayerCase(type: "batchnorm", options: [:], input: [3, 4, 4], batch: 2, training: false),
        LayerCase(type: "layernorm", options: [:], input: [2, 3, 3], batch: 3),
        LayerCase(type: "layernorm", options: ["eps": 1e-3], input: [6], batch: 4),
        LayerCase(type: "tanh", options: [:], input: [10], batch: 2),
        LayerCase(type: "sigmoid", options: [:], input: [10], batch: 2),
        LayerCase(type: "gelu", options: [:], input: [2, 5], batch: 2),
        LayerCase(type: "silu", options: [:], input: [2, 5], batch: 2),
        LayerCase(type: "dropout", options: ["p": 0.3], input: [10], batch: 2, training: false),
    ]

    /// Finite differences: for L = sum(y * r), dL/dx and dL/d(trained
    /// tensors). Tolerance |analytic - numeric| <= 2e-3 + 2e-2 |numeric|,
    /// central differences of step 1e-2 in Float (as GradientCheckReleaseTests).
    func testEveryLayerAgainstFiniteDifferences() throws {
        var kinds = Set<String>()
        for c in Self.cases + [LayerCase(type: "dropout", options: ["p": 0.4], input: [12], batch: 3)] where c.training {
            kinds.insert(c.type)
            try finiteDifferences(c)
        }
        XCTAssertEqual(kinds, Set(LayerKinds.types.filter { $0 != "relu" }), "every kind but relu (GradientCheckReleaseTests) is checked")
    }

    func finiteDifferences(_ c: LayerCase) throws {
        let l = try c.layer()
        l.prepare(capacity: c.batch)
        let x = c.x(l), p = c.params(l), r = c.dy(l)
        let y = FloatBuffer(count: c.batch * l.outputSize), dx = FloatBuffer(count: c.batch * l.inputSize), g = FloatBuffer(count: p.count)
        func loss() -> Float {
            l.forward(x: x.pointer, y: y.pointer, batch: c.batch, params: p.pointer, context: c.context)
            var s: Float = 0
            for i in 0..<y.count { s += y[i] * r[i] }
            return s
        }
        _ = loss()
        l.backward(x: x.pointer, y: y.pointer, dy: r.pointer, dx: dx.pointer, batch: c.batch, params: p.pointer, grads: g.pointer,
                   context: c.context)
        let h: Float = 1e-2, atol: Float = 2e-3, rtol: Float = 2e-2
        func numeric(_ b: FloatBuffer, _ i: Int) -> Float {
            let saved = b[i]
            b[i] = saved + h; let up = loss()
            b[i] = saved - h; let down = loss()
            b[i] = saved
            return (up - down) / (2 * h)
        }
        for i in 0..<x.count {
            let n = numeric(x, i)
            XCTAssertLessThanOrEqual(abs(dx[i] - n), atol + rtol * abs(n), "\(c.label) dx[\(i)]: \(dx[i]) vs \(n)")
        }
        var off = 0
        for s in l.parameters {
            defer { off += s.count }
            guard s.role == .trainable else { continue }
            for i in off..<(off + s.count) {
                let n = numeric(p, i)
                XCTAssertLessThanOrEqual(abs(g[i] - n), atol + rtol * abs(n), "\(c.label) \(s.name)[\(i - off)]: \(g[i]) vs \(n)")
            }
        }
    }

    /// PyTorch (Debian's python3-torch, installed by scripts/bootstrap
    /// --python) computes y, dx and the trained tensors' gradients of
    /// sum(y * dy) with its module of the same name and the same weights
    /// (Tests/Reference/torch_layer.py); batchnorm also the updated running
    /// statistics. Tolerance |pstrain - torch| <= 1e-4 + 1e-3 |torch|
    /// (FP32, sums in another order).
    func testEveryLayerAgainstPyTorch() throws {
        let python = "/usr/bin/python3"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Reference/torch_layer.py").path
        guard torchAvailable(python) else {
            return XCTFail("PyTorch is missing for \(python): run scripts/bootstrap --python (it installs Debian's python3-torch)")
        }
        var kinds = Set<String>()
        for c in Self.cases {
            kinds.insert(c.type)
            try compareWithTorch(c, python: python, script: script)
        }
        XCTAssertEqual(kinds, Set(LayerKinds.types.filter { $0 != "relu" }), "every kind but relu is compared")
    }

    func torchAvailable(_ python: String) -> Bool {
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import torch, numpy"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    func compareWithTorch(_ c: LayerCase, python: String, script: String) throws {
        let l = try c.layer()
        l.prepare(capacity: c.batch)
        let x = c.x(l), p = c.params(l), dy = c.dy(l)
        let y = FloatBuffer(count: c.batch * l.outputSize), dx = FloatBuffer(count: c.batch * l.inputSize), g = FloatBuffer(count: p.count)
        var ctx = c.context
        ctx.gradScale = 1 / Float(c.batch)
        l.forward(x: x.pointer, y: y.pointer, batch: c.batch, params: p.pointer, context: ctx)
        l.backward(x: x.pointer, y: y.pointer, dy: dy.pointer, dx: dx.pointer, batch: c.batch, params: p.pointer, grads: g.pointer, context: ctx)
        var ours = y.array + dx.array
        var off = 0
        var running: [Float] = []
        for s in l.parameters {
            let values = Array(UnsafeBufferPointer(start: g.pointer + off, count: s.count))
            // A worker pushes momentum (statistic - running) x its share (rows x gradScale = 1 here).
            if s.role == .trainable { ours += values }
            if s.role == .runningStat && c.training { running += zip(values, (off..<(off + s.count)).map { p[$0] }).map { $1 + $0 } }
            off += s.count
        }
        ours += running

        let dir = NSTemporaryDirectory() + "pstrain-torch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec: [String: Any] = [
            "type": c.type, "options": c.options.mapValues { v -> Any in if case .integer(let i) = v { return i } else { return v.double } },
            "input": c.input, "batch": c.batch, "training": c.training,
            "params": l.parameters.map { [$0.name, $0.shape] as [Any] },
        ]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: dir + "/case.json"))
        func write(_ b: FloatBuffer, _ name: String) throws {
            try Data(bytes: b.pointer, count: b.count * 4).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        try write(x, "x.bin"); try write(p, "params.bin"); try write(dy, "dy.bin")
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: python)
        proc.arguments = [script, dir]
        let err = Pipe()
        proc.standardError = err
        try proc.run()
        proc.waitUntilExit()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(proc.terminationStatus, 0, "\(c.label): torch_layer.py failed: \(errText)")
        let out = try Data(contentsOf: URL(fileURLWithPath: dir + "/out.bin"))
        let theirs = out.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(theirs.count, ours.count, "\(c.label): PyTorch gave \(theirs.count) values, pstrain \(ours.count)")
        for (i, (a, b)) in zip(ours, theirs).enumerated() {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-4 + 1e-3 * abs(b), "\(c.label) value \(i): pstrain \(a), PyTorch \(b)")
        }
    }

    /// conv2d lowering several samples into one sgemm (a group) computes
    /// what one sample at a time does. Tolerance: 1e-5 + 1e-5 |value|
    /// (sums in another order).
    func testConvolutionGroupsAgree() throws {
        let c = LayerCase(type: "conv2d", options: ["channels": 4, "kernel": 3, "padding": 1, "stride": 2], input: [3, 9, 9], batch: 7)
        func run(group: Int) throws -> [Float] {
            let l = try c.layer() as! Conv2d
            l.group = group
            l.prepare(capacity: c.batch)
            let x = c.x(l), p = c.params(l), dy = c.dy(l)
            let y = FloatBuffer(count: c.batch * l.outputSize), dx = FloatBuffer(count: c.batch * l.inputSize), g = FloatBuffer(count: p.count)
            l.forward(x: x.pointer, y: y.pointer, batch: c.batch, params: p.pointer, context: c.context)
            l.backward(x: x.pointer, y: y.pointer, dy: dy.pointer, dx: dx.pointer, batch: c.batch, params: p.pointer, grads: g.pointer, context: c.context)
            return y.array + dx.array + g.array
        }
        let one = try run(group: 1)
        for group in [3, 7] {
            for (i, (a, b)) in zip(try run(group: group), one).enumerated() {
                XCTAssertLessThanOrEqual(abs(a - b), 1e-5 + 1e-5 * abs(b), "group \(group), value \(i)")
            }
        }
    }

    /// conv2d's two algorithms compute the same function: Winograd (F(2x2,
    /// 3x3), F(2x2, 5x5) and F(4x4, 5x5)) against im2col, paddings 0 to 2,
    /// sizes that fill the tiles and sizes that leave partial tiles, batches
    /// that fill no chunk, some chunks and a partial last one. Tolerance: 2e-5
    /// of the largest magnitude of each of y, dx and the gradients
    /// (Winograd's transforms round otherwise: about 3e-6 on the tutorial
    /// CNN, `pstrain-bench layers`). Winograd is also bit-reproducible, and
    /// chosen only where it applies.
    func testWinogradAgreesWithIm2col() throws {
        let shapes: [(k: Int, pad: Int, input: [Int], out: Int, batch: Int, chunk: Int)] = [
            (3, 1, [8, 9, 9], 5, 3, 8), (3, 0, [9, 8, 10], 4, 17, 8), (5, 2, [8, 14, 14], 6, 9, 16), (5, 0, [12, 11, 9], 3, 20, 8),
            (5, 1, [8, 7, 7], 2, 1, 8), (3, 2, [10, 6, 5], 7, 16, 16), (5, 2, [8, 16, 13], 4, 8, 8),
        ]
        for s in shapes {
            let c = LayerCase(type: "conv2d", options: ["channels": .integer(s.out), "kernel": .integer(s.k), "padding": .integer(s.pad)], input: s.input,
                              batch: s.batch)
            func run(_ algorithm: Conv2d.Algorithm, tile: Int = 2) throws -> (y: [Float], dx: [Float], g: [Float]) {
                let l = try c.layer() as! Conv2d
                XCTAssertEqual(l.algorithm, .winograd, "\(c.label) is done with Winograd by default")
                XCTAssertEqual(l.tile, s.k == 5 ? 4 : 2, "\(c.label): F(4x4, 5x5) for 5x5 kernels, F(2x2, 3x3) for 3x3")
                l.algorithm = algorithm
                l.tile = tile
                l.chunk = s.chunk
                l.prepare(capacity: c.batch)
                let x = c.x(l), p = c.params(l), dy = c.dy(l)
                let y = FloatBuffer(count: c.batch * l.outputSize), dx = FloatBuffer(count: c.batch * l.inputSize), g = FloatBuffer(count: p.count)
                // Stale values in the outputs must not matter.
                y.pointer.update(repeating: .nan, count: y.count); dx.pointer.update(repeating: .nan, count: dx.count)
                g.pointer.update(repeating: .nan, count: g.count)
                l.forward(x: x.pointer, y: y.pointer, batch: c.batch, params: p.pointer, context: c.context)
                l.backward(x: x.pointer, y: y.pointer, dy: dy.pointer, dx: dx.pointer, batch: c.batch, params: p.pointer, grads: g.pointer,
                           context: c.context)
                return (y.array, dx.array, g.array)
            }
            let ref = try run(.im2col)
            for tile in s.k == 5 ? [2, 4] : [2] {
                let w = try run(.winograd, tile: tile), again = try run(.winograd, tile: tile)
                for (name, a, b) in [("y", w.y, ref.y), ("dx", w.dx, ref.dx), ("gradients", w.g, ref.g)] {
                    let scale = b.map(abs).max() ?? 0
                    XCTAssertGreaterThan(scale, 0, "\(c.label) \(name) is not all zero")
                    for (i, (u, v)) in zip(a, b).enumerated() {
                        XCTAssertLessThanOrEqual(abs(u - v), 2e-5 * scale, "\(c.label) F(\(tile), \(s.k)) \(name)[\(i)]: winograd \(u), im2col \(v)")
                    }
                }
                XCTAssertEqual(w.y.map(\.bitPattern) + w.dx.map(\.bitPattern) + w.g.map(\.bitPattern),
                               again.y.map(\.bitPattern) + again.dx.map(\.bitPattern) + again.g.map(\.bitPattern), "\(c.label) F(\(tile), \(s.k)) twice")
            }
        }
        // Where Winograd does not apply: stride 2, a 4x4 kernel, fewer than 8 input channels.
        for (options, input) in [(["channels": LayerValue.integer(4), "kernel": 3, "stride": 2], [8, 9, 9]),
                                 (["channels": 4, "kernel": 4], [8, 9, 9]), (["channels": 4, "kernel": 5], [7, 9, 9])] {
            let l = try LayerCase(type: "conv2d", options: options, input: input, batch: 1).layer() as! Conv2d
            XCTAssertEqual(l.algorithm, .im2col, "\(options) on \(input)")
        }
    }

    /// Dropout in training: each element is kept with probability 1 - p and
    /// scaled by 1/(1-p); the mask is a function of (seed, layer, step,
    /// global row): the same rows computed in another cut get the same mask,
    /// another step another mask. Tolerance: the kept fraction within 0.01
    /// of 0.7 over 120,000 elements (about 7 standard deviations).
    func testDropoutMasksDependOnTheGlobalRowAlone() throws {
        let l = try LayerKinds.named("dropout")!.make(LayerEntry(type: "dropout", options: ["p": 0.3]), index: 2, input: [1000])
        let rows = 120, n = 1000
        l.prepare(capacity: rows)
        let x = FloatBuffer(count: rows * n), y = FloatBuffer(count: rows * n)
        for i in 0..<x.count { x[i] = 1 + Float(i % 7) }
        let ctx = LayerContext(training: true, step: 4, seed: 1, firstRow: 0, globalBatch: rows)
        l.forward(x: x.pointer, y: y.pointer, batch: rows, params: x.pointer, context: ctx)
        var kept = 0
        for i in 0..<y.count where y[i] != 0 {
            kept += 1
            XCTAssertEqual(y[i], x[i] * (1 / Float(0.7)), accuracy: 0)
        }
        XCTAssertEqual(Double(kept) / Double(y.count), 0.7, accuracy: 0.01)
        // Rows 60..<120 computed alone (a second worker's slice) get the same mask.
        let y2 = FloatBuffer(count: 60 * n)
        var late = ctx
        late.firstRow = 60
        l.forward(x: x.pointer + 60 * n, y: y2.pointer, batch: 60, params: x.pointer, context: late)
        XCTAssertEqual(y2.array, Array(y.array[(60 * n)...]))
        // Another step: another mask.
        var next = ctx
        next.step = 5
        let y3 = FloatBuffer(count: rows * n)
        l.forward(x: x.pointer, y: y3.pointer, batch: rows, params: x.pointer, context: next)
        XCTAssertNotEqual(y3.array, y.array)
        // Evaluation: the identity.
        l.forward(x: x.pointer, y: y3.pointer, batch: rows, params: x.pointer, context: .evaluation)
        XCTAssertEqual(y3.array, x.array)
    }

    /// Shapes are checked when the configuration is read; a mismatch names
    /// the layer and both shapes.
    func testShapeMismatchesNameTheLayerAndBothShapes() throws {
        func message(_ input: String, _ layers: String) -> String {
            do { _ = try Config.parse("[model]\ninput = \(input)\nlayers = [\(layers)]\n", source: "m.toml"); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(message("784", "{type = \"conv2d\", channels = 8, kernel = 3}, {type = \"flatten\"}, {type = \"dense\", units = 10}"),
                       "m.toml: model.layers[0] (conv2d) needs samples of shape [channels, height, width], but gets [784] (set model.input to the image shape, e.g. [1, 28, 28])")
        XCTAssertEqual(message("[1, 28, 28]", "{type = \"conv2d\", channels = 8, kernel = 3}, {type = \"dense\", units = 10}"),
                       "m.toml: model.layers[1] (dense) needs flat samples, but gets [8, 26, 26]: put { type = \"flatten\" } before it")
        XCTAssertEqual(message("[1, 4, 4]", "{type = \"maxpool2d\", kernel = 5}, {type = \"flatten\"}, {type = \"dense\", units = 10}"),
                       "m.toml: model.layers[0] (maxpool2d) has a 5x5 window, larger than its input [1, 4, 4]")
        XCTAssertEqual(message("[1, 8, 8]", "{type = \"conv2d\", channels = 4, kernel = 3}"),
                       "m.toml: model.layers[0] (conv2d) gives samples of shape [4, 6, 6], but the last layer must give the class scores as a flat vector (end with { type = \"flatten\" } and a dense layer)")
        XCTAssertEqual(message("[1, 28, 28]", "{type = \"conv2d\", channels = 8, kernel = 5, padding = 2}, {type = \"maxpool2d\", kernel = 2}, "
                               + "{type = \"batchnorm\"}, {type = \"flatten\"}, {type = \"dropout\", p = 0.25}, {type = \"dense\", units = 10}"), "")
        let c = try Config.parse("[model]\ninput = [1, 28, 28]\nlayers = [{type = \"conv2d\", channels = 8, kernel = 5, padding = 2}, "
                                 + "{type = \"batchnorm\"}, {type = \"flatten\"}, {type = \"dense\", units = 10}]\n", source: "m.toml")
        let m = try Model(c.model, capacity: 2)
        XCTAssertEqual(m.layout.tensors.map(\.name), ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.1.running_mean",
                                                      "layers.1.running_var", "layers.1.num_batches_tracked", "layers.3.weight", "layers.3.bias"])
        XCTAssertEqual(m.layout.tensors.map(\.spec.shape), [[8, 1, 5, 5], [8], [8], [8], [8], [8], [], [10, 8 * 28 * 28], [10]])
        // The canonical form keeps the shape and the float key.
        XCTAssertTrue(c.canonicalTOML.contains("input = [1, 28, 28]\n"), c.canonicalTOML)
        XCTAssertEqual(try Config.parse(c.canonicalTOML, source: "run.toml"), c)
    }
}
