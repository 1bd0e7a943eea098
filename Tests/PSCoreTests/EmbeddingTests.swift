import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSProtocol
@testable import PSRunLog

/// The pieces of embedding tables: hashing, the row-id wire coding, bags
/// forward and backward, the sparse optimizers, a server's table shard, the
/// AUC histogram and binary cross-entropy.
final class EmbeddingReleaseTests: XCTestCase {
    /// The hash of docs/models.md, against values computed by an
    /// independent implementation (Python integers, mod 2^64).
    func testBucketIsTheDocumentedHash() {
        XCTAssertEqual(TableSpec.bucket(0, table: 0, rows: 1000), 535)
        XCTAssertEqual(TableSpec.bucket(0xDEAD_BEEF, table: 3, rows: 1_000_003), 980_247)
        XCTAssertEqual(TableSpec.bucket(UInt64.max, table: 25, rows: 10_000_000), 6_811_504)
        XCTAssertEqual(TableSpec.bucket(12345, table: 1, rows: 7), 6)
        let plain = TableSpec(rows: 10, dim: 2)
        XCTAssertEqual(plain.row(of: 9, table: 0), 9)
        XCTAssertNil(plain.row(of: 10, table: 0))
        XCTAssertEqual(TableSpec(rows: 1000, dim: 2, hash: true).row(of: 0, table: 0), 535)
    }

    func testRowCodingRoundTripsAndRefusesBadLists() throws {
        var g = SplitMix(seed: 3)
        for n in [0, 1, 2, 100, 5000] {
            var rows = Set<UInt64>()
            while rows.count < n { rows.insert(g.next() % (n % 2 == 0 ? 1 << 40 : 10_000)) }
            let sorted = rows.sorted()
            var bytes: [UInt8] = []
            sorted.withUnsafeBufferPointer { RowCoding.encode($0, into: &bytes) }
            XCTAssertLessThanOrEqual(bytes.count, RowCoding.maxBytes(n))
            var back: [UInt64] = []
            var at = 0
            try bytes.withUnsafeBytes { try RowCoding.decode($0, at: &at, count: n, limit: 1 << 40, into: &back) }
            XCTAssertEqual(back, sorted)
            XCTAssertEqual(at, bytes.count)
        }
        func refuse(_ bytes: [UInt8], count: Int, limit: UInt64 = 100) -> String {
            var out: [UInt64] = []
            var at = 0
            do { try bytes.withUnsafeBytes { try RowCoding.decode($0, at: &at, count: count, limit: limit, into: &out) } } catch { return "\(error)" }
            return "accepted"
        }
        XCTAssertTrue(refuse([5, 0], count: 2).contains("repeats"), refuse([5, 0], count: 2))
        XCTAssertTrue(refuse([5], count: 2).contains("ends"))
        XCTAssertTrue(refuse([100], count: 1).contains("outside the table"))
        XCTAssertTrue(refuse([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], count: 1, limit: .max).contains("longer"))
        // Sorted Zipf-like ids take far fewer bytes than eight each.
        let dense = (0..<4096).map { UInt64($0 * 3) }
        var bytes: [UInt8] = []
        dense.withUnsafeBufferPointer { RowCoding.encode($0, into: &bytes) }
        XCTAssertEqual(bytes.count, 4096)
    }

    /// Bags against a plain reference: sum, mean, weights, empty bags, ids
    /// repeated within and across rows; backward against the derivative of
    /// sum(c * output) for fixed c (each row's gradient adds c over its uses).
    func testBagsForwardAndBackwardMatchAPlainReference() throws {
        let specs = [TableSpec(rows: 50, dim: 3), TableSpec(rows: 7, dim: 2, mode: .mean), TableSpec(rows: 1000, dim: 4, hash: true)]
        let bags = EmbeddingBags(tables: specs, denseCount: 2)
        var batch = CTRBatch(fields: 3)
        let ids: [[[UInt64]]] = [[[1, 4, 1], [], [77]], [[4], [6, 6, 0], [1 << 40]], [[], [3], []]]
        for (r, row) in ids.enumerated() {
            batch.labels.append(Float(r % 2)); batch.dense += [Float(r), -Float(r)]
            for f in 0..<3 { batch.ids[f] += row[f]; batch.offsets[f].append(Int32(batch.ids[f].count)) }
            batch.rows += 1
        }
        batch.weights[0] = batch.ids[0].enumerated().map { Float($0.offset + 1) * 0.5 }
        try bags.prepare(batch)
        XCTAssertEqual(bags.unique[0], [1, 4])
        XCTAssertEqual(bags.unique[1], [0, 3, 6])
        XCTAssertEqual(bags.unique[2].count, 2)
        // Every row goes to the server that holds it, once.
        var plan = RowPlan(dims: specs.map(\.dim), servers: 3)
        try plan.plan(bags.unique)
        for t in 0..<3 {
            let asked: [(Int, UInt64)] = (0..<3).flatMap { s in plan.requested(server: s)[t].map { (s, $0) } }
            XCTAssertEqual(asked.map { $0.1 }.sorted(), bags.unique[t])
            XCTAssertTrue(asked.allSatisfy { TableSpec.owner(row: $0.1, servers: 3) == $0.0 })
        }
        // The servers' answers: value of row r, element j of table t = t + r / 8 + j / 100.
        func value(_ t: Int, _ r: UInt64, _ j: Int) -> Float { Float(t) + Float(r % 1000) / 8 + Float(j) / 100 }
        let store = TableBuffers(plan)
        for s in 0..<3 {
            var v: [Float] = []
            for t in 0..<3 { for r in plan.requested(server: s)[t] { for j in 0..<specs[t].dim { v.append(value(t, r, j)) } } }
            v.withUnsafeBufferPointer { plan.scatter(server: s, from: $0.baseAddress!, into: store.values.map(\.pointer)) }
        }
        let width = bags.width
        XCTAssertEqual(width, 2 + 3 + 2 + 4)
        var input = [Float](repeating: .nan, count: 3 * width)
        input.withUnsafeMutableBufferPointer { bags.forward(dense: batch.dense, values: store.valueBuffers, into: $0.baseAddress!) }
        var expected = [Float](repeating: 0, count: 3 * width)
        var col = [2, 5, 7]
        var e0 = 0
        for r in 0..<3 {
            expected[r * width] = Float(r); expected[r * width + 1] = -Float(r)
            for t in 0..<3 {
                let list = ids[r][t]
                for id in list {
                    let row = specs[t].row(of: id, table: t)!
                    let w: Float = t == 0 ? Float(e0 + 1) * 0.5 : (t == 1 ? 1 / Float(list.count) : 1)
                    if t == 0 { e0 += 1 }
                    for j in 0..<specs[t].dim { expected[r * width + col[t] + j] += value(t, row, j) * w }
                }
            }
        }
        for i in 0..<expected.count { XCTAssertEqual(input[i], expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), "element \(i)") }
        // Backward of sum(c * input) with c[i] = i / 10: row r's gradient = sum over its uses of weight x c.
        let c = (0..<(3 * width)).map { Float($0) / 10 }
        c.withUnsafeBufferPointer { bags.backward(inputGradient: $0.baseAddress!, into: store.gradBuffers) }
        col = [2, 5, 7]
        for t in 0..<3 {
            for (k, row) in bags.unique[t].enumerated() {
                for j in 0..<specs[t].dim {
                    var want: Float = 0
                    var e = 0
                    for r in 0..<3 {
                        for id in ids[r][t] {
                            let w: Float = t == 0 ? Float(e + 1) * 0.5 : (t == 1 ? 1 / Float(ids[r][t].count) : 1)
                            if t == 0 { e += 1 }
                            if specs[t].row(of: id, table: t) == row { want += w * c[r * width + col[t] + j] }
                        }
                    }
                    XCTAssertEqual(store.grads[t].pointer[k * specs[t].dim + j], want, accuracy: 1e-5 * max(1, abs(want)), "table \(t) row \(row)")
                }
            }
        }
        // An id outside a table that does not hash names the table and what to do.
        var bad = CTRBatch(fields: 3)
        bad.ids[0] = [50]; bad.offsets[0].append(1); bad.offsets[1].append(0); bad.offsets[2].append(0); bad.rows = 1
        bad.labels = [0]; bad.dense = [0, 0]
        XCTAssertThrowsError(try bags.prepare(bad)) { XCTAssertTrue("\($0)".contains("model.tables[0] (rows = 50)") && "\($0)".contains("hash = true"), "\($0)") }
    }

    /// Fields chosen and shared (model.tables[i].fields): table 0 embeds
    /// fields 2 then 0, table 1 field 1, field 3 is left out (its ids fit no
    /// table and are never read). A shared table pulls each row once, each
    /// field gets its own bag in input order, and a row's gradient sums its
    /// uses in both bags. Tolerance 1e-5 relative (sums of a few floats).
    func testBagsOfFieldsThatShareATableOrAreLeftOut() throws {
        let specs = [TableSpec(rows: 20, dim: 2), TableSpec(rows: 10, dim: 3, mode: .mean)]
        let features = [TableFeature(field: 2, table: 0), TableFeature(field: 0, table: 0), TableFeature(field: 1, table: 1)]
        let bags = EmbeddingBags(tables: specs, features: features, denseCount: 1)
        XCTAssertEqual(bags.fieldsNeeded, 3)
        var batch = CTRBatch(fields: 4)
        let ids: [[[UInt64]]] = [[[3, 5], [1], [5, 7], [999]], [[], [2, 2], [3], [1 << 50]], [[11], [], [], []]]
        for (r, row) in ids.enumerated() {
            batch.labels.append(0); batch.dense.append(Float(r) + 0.5)
            for f in 0..<4 { batch.ids[f] += row[f]; batch.offsets[f].append(Int32(batch.ids[f].count)) }
            batch.rows += 1
        }
        try bags.prepare(batch)
        XCTAssertEqual(bags.unique[0], [3, 5, 7, 11], "rows of fields 0 and 2 together, once each")
        XCTAssertEqual(bags.unique[1], [1, 2])
        var plan = RowPlan(dims: specs.map(\.dim), servers: 2)
        try plan.plan(bags.unique)
        XCTAssertEqual((0..<2).reduce(0) { $0 + plan.rowCount(server: $1) }, 6)
        func value(_ t: Int, _ r: UInt64, _ j: Int) -> Float { Float(t * 100) + Float(r) + Float(j) / 10 }
        let store = TableBuffers(plan)
        for s in 0..<2 {
            var v: [Float] = []
            for t in 0..<2 { for r in plan.requested(server: s)[t] { for j in 0..<specs[t].dim { v.append(value(t, r, j)) } } }
            v.withUnsafeBufferPointer { plan.scatter(server: s, from: $0.baseAddress!, into: store.values.map(\.pointer)) }
        }
        let width = bags.width
        XCTAssertEqual(width, 1 + 2 + 2 + 3)
        var input = [Float](repeating: .nan, count: 3 * width)
        input.withUnsafeMutableBufferPointer { bags.forward(dense: batch.dense, values: store.valueBuffers, into: $0.baseAddress!) }
        let cols = [1, 3, 5]
        var expected = [Float](repeating: 0, count: 3 * width)
        for r in 0..<3 {
            expected[r * width] = Float(r) + 0.5
            for (k, f) in features.enumerated() {
                let list = ids[r][f.field], w: Float = specs[f.table].mode == .mean ? 1 / Float(max(1, list.count)) : 1
                for id in list { for j in 0..<specs[f.table].dim { expected[r * width + cols[k] + j] += value(f.table, id, j) * w } }
            }
        }
        for i in 0..<expected.count { XCTAssertEqual(input[i], expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), "element \(i)") }
        let c = (0..<(3 * width)).map { Float($0) / 10 }
        c.withUnsafeBufferPointer { bags.backward(inputGradient: $0.baseAddress!, into: store.gradBuffers) }
        for t in 0..<2 {
            for (u, row) in bags.unique[t].enumerated() {
                for j in 0..<specs[t].dim {
                    var want: Float = 0
                    for r in 0..<3 {
                        for (k, f) in features.enumerated() where f.table == t {
                            let list = ids[r][f.field], w: Float = specs[t].mode == .mean ? 1 / Float(max(1, list.count)) : 1
                            for id in list where id == row { want += w * c[r * width + cols[k] + j] }
                        }
                    }
                    XCTAssertEqual(store.grads[t].pointer[u * specs[t].dim + j], want, accuracy: 1e-5 * max(1, abs(want)), "table \(t) row \(row)")
                }
            }
        }
        // Row 5 of table 0 is used by field 0 (row 0) and field 2 (row 0): both uses add up.
        let five = bags.unique[0].firstIndex(of: 5)!
        XCTAssertEqual(store.grads[0].pointer[five * 2], c[0 * width + 1] + c[0 * width + 3], accuracy: 1e-5)
    }

    /// One update of each sparse optimizer against its formula in Double
    /// (torch.optim's for sparse gradients), to 1e-6 relative.
    func testSparseOptimizersFollowPyTorchsFormulas() {
        let n = 5
        let g: [Float] = [0.5, -1.25, 2, 0, 1e-3]
        let w0: [Float] = [0.1, -0.2, 0.3, 0.4, -0.5]
        for opt in SparseOptimizer.allCases {
            var w = w0
            var st = opt.stateNames.map { _ in [Float](repeating: 0.25, count: n) }
            let h = SparseOptimizer.Hyper()
            let scale: Float = 0.5, lr: Float = 0.1, t = 3
            w.withUnsafeMutableBufferPointer { wp in
                let ptrs = st.indices.map { i in st[i].withUnsafeMutableBufferPointer { $0.baseAddress! } }
                g.withUnsafeBufferPointer { opt.apply(wp.baseAddress!, state: ptrs, grad: $0.baseAddress!, count: n, lr: lr, gradScale: scale, t: t, hyper: h) }
            }
            for j in 0..<n {
                let gj = Double(g[j]) * 0.5
                var want = Double(w0[j])
                switch opt {
                case .sgd: want -= 0.1 * gj
                case .adagrad:
                    let s = 0.25 + gj * gj
                    want -= 0.1 * gj / (s.squareRoot() + 1e-10)
                    XCTAssertEqual(Double(st[0][j]), s, accuracy: 1e-6)
                case .lazyAdam:
                    let m = 0.25 + (gj - 0.25) * 0.1, v = 0.25 + (gj * gj - 0.25) * 0.001
                    let stepSize = 0.1 * (1 - pow(0.999, 3)).squareRoot() / (1 - pow(0.9, 3))
                    want -= stepSize * m / (v.squareRoot() + 1e-8)
                    XCTAssertEqual(Double(st[0][j]), m, accuracy: 1e-6)
                    XCTAssertEqual(Double(st[1][j]), v, accuracy: 1e-6)
                }
                XCTAssertEqual(Double(w[j]), want, accuracy: 1e-6 * max(1, abs(want)), "\(opt) element \(j)")
            }
        }
    }

    /// A shard creates a row from the counter RNG on first use, sums a
    /// step's gradients per row over workers, and moves only touched rows
    /// and their state; a skipped step moves nothing.
    func testTableShardTouchesOnlyTheRowsOfAStep() {
        let spec = TableSpec(rows: 1 << 30, dim: 2)
        let shard = TableShard(tables: [spec], optimizer: .lazyAdam, hyper: .init(), seed: 9)
        let a = shard.slot(table: 0, row: 123_456_789), b = shard.slot(table: 0, row: 5)
        XCTAssertEqual(shard.slot(table: 0, row: 123_456_789), a)
        XCTAssertEqual(shard.storedRows, 2, "only rows asked for exist")
        var initial = [Float](repeating: 0, count: 2)
        initial.withUnsafeMutableBufferPointer { spec.initialize(row: 5, table: 0, seed: 9, into: $0.baseAddress!) }
        var got = [Float](repeating: 0, count: 2)
        got.withUnsafeMutableBufferPointer { shard.read(table: 0, slots: [b], into: $0.baseAddress!) }
        XCTAssertEqual(got, initial)
        XCTAssertTrue(initial.allSatisfy { abs($0) <= TableSpec.initBound } && initial[0] != initial[1])
        // Two workers push row a; the sum is what the optimizer sees.
        [Float](arrayLiteral: 1, 2).withUnsafeBufferPointer { shard.accumulate(table: 0, slots: [a], grads: $0.baseAddress!) }
        [Float](arrayLiteral: 3, -4).withUnsafeBufferPointer { shard.accumulate(table: 0, slots: [a], grads: $0.baseAddress!) }
        XCTAssertEqual(shard.stepRows, 1)
        let before = (0..<2).map { shard.tables[0].weights[Int(a) * 2 + $0] }
        shard.finishStep(apply: true, lr: 0.01, gradScale: 1, t: 1)
        let after = (0..<2).map { shard.tables[0].weights[Int(a) * 2 + $0] }
        // Adam's first step moves each element by lr x sign(g) (to 1e-6).
        XCTAssertEqual(after[0] - before[0], -0.01, accuracy: 1e-6)
        XCTAssertEqual(after[1] - before[1], 0.01, accuracy: 1e-6)
        got.withUnsafeMutableBufferPointer { shard.read(table: 0, slots: [b], into: $0.baseAddress!) }
        XCTAssertEqual(got, initial, "an untouched row does not move")
        XCTAssertEqual(shard.tables[0].state[0][Int(b) * 2], 0, "nor does its state")
        // A skipped step (overflow) leaves everything as it was.
        [Float](arrayLiteral: .infinity, 1).withUnsafeBufferPointer { shard.accumulate(table: 0, slots: [a], grads: $0.baseAddress!) }
        XCTAssertTrue(shard.stepOverflows())
        shard.finishStep(apply: false, lr: 0.01, gradScale: 1, t: 2)
        XCTAssertEqual((0..<2).map { shard.tables[0].weights[Int(a) * 2 + $0] }, after)
        XCTAssertFalse(shard.stepOverflows())
    }

    /// The histogram's AUC against the pairwise definition (ties one half)
    /// on scores that fall into separate bins, and on ties.
    func testHistogramAUCIsThePairwiseAUC() {
        var g = SplitMix(seed: 11)
        var h = ScoreHistogram()
        var scored: [(Float, Bool)] = []
        for _ in 0..<2000 {
            let clicked = g.next() % 3 == 0
            let p = Float(g.next() % 50_000) / 50_000 * 0.6 + (clicked ? 0.3 : 0.1)
            scored.append((p, clicked)); h.add(probability: p, clicked: clicked)
        }
        var num = 0.0, pairs = 0.0
        for (p, c) in scored where c { for (q, d) in scored where !d { pairs += 1; num += p > q ? 1 : (p == q ? 0.5 : 0) } }
        XCTAssertEqual(h.auc!, num / pairs, accuracy: 1e-3, "2^16 bins: only pairs within one bin can differ")
        var ties = ScoreHistogram()
        for _ in 0..<10 { ties.add(probability: 0.5, clicked: true); ties.add(probability: 0.5, clicked: false) }
        XCTAssertEqual(ties.auc, 0.5)
        XCTAssertNil(ScoreHistogram().auc)
        var merged = ScoreHistogram(); merged.add(h); merged.add(ties)
        XCTAssertEqual(merged.count, 2020)
    }

    /// The FM term against its definition, and its input gradient against
    /// central differences (to 1e-3 relative).
    func testFMInteractionAndItsGradient() {
        let fm = FMInteraction(start: 2, fields: 3, dim: 2, width: 8)
        var g = SplitMix(seed: 5)
        var x = (0..<16).map { _ in Float(Int(g.next() % 200) - 100) / 100 }
        func term(_ x: [Float], _ r: Int) -> Double {
            var acc = 0.0
            for j in 0..<2 {
                let v = (0..<3).map { Double(x[r * 8 + 2 + $0 * 2 + j]) }
                acc += v.reduce(0, +) * v.reduce(0, +) - v.map { $0 * $0 }.reduce(0, +)
            }
            return 0.5 * acc
        }
        var logits: [Float] = [1, -1]
        fm.forward(input: x, logits: &logits, batch: 2)
        XCTAssertEqual(Double(logits[0]), 1 + term(x, 0), accuracy: 1e-5)
        XCTAssertEqual(Double(logits[1]), -1 + term(x, 1), accuracy: 1e-5)
        var dIn = [Float](repeating: 0, count: 16)
        fm.backward(input: x, dlogits: [2, -3], dInput: &dIn, batch: 2)
        for i in 0..<16 {
            let r = i / 8, c = i % 8, h: Float = 1e-2
            let saved = x[i]
            x[i] = saved + h; let up = term(x, r)
            x[i] = saved - h; let down = term(x, r)
            x[i] = saved
            let want = (c < 2 ? 0 : (up - down) / Double(2 * h)) * (r == 0 ? 2 : -3)
            XCTAssertEqual(Double(dIn[i]), want, accuracy: 1e-3 * max(1, abs(want)), "element \(i)")
        }
    }

    /// Binary cross-entropy's gradient against central differences of its
    /// loss (to 1e-3 relative), its loss against log(1 + exp(-z)) forms.
    func testBinaryCrossEntropy() {
        let z: [Float] = [-30, -2, -0.1, 0, 0.7, 3, 40]
        let y: [UInt8] = [0, 1, 0, 1, 1, 0, 1]
        var d = [Float](repeating: 0, count: z.count)
        let r = BinaryCrossEntropy.evaluate(logits: z, labels: y, batch: z.count, dlogits: &d, gradScale: 2)
        var want = 0.0
        for i in z.indices {
            let zi = Double(z[i]), yi = Double(y[i])
            want += max(zi, 0) - zi * yi + log1p(exp(-abs(zi)))
            let h = 1e-2
            func loss(_ v: Double) -> Double { max(v, 0) - v * yi + log1p(exp(-abs(v))) }
            XCTAssertEqual(Double(d[i]), 2 * (loss(zi + h) - loss(zi - h)) / (2 * h), accuracy: 1e-3 * max(1, abs(Double(d[i]))), "row \(i)")
        }
        XCTAssertEqual(r.lossSum, want, accuracy: 1e-5 * want)
        XCTAssertEqual(r.correct, 4)   // 0->0 (-30, -0.1), 1->1 (0.7, 40); 0 is not > 0
    }
}

/// splitmix64, for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 { state &+= 0x9E37_79B9_7F4A_7C15; return CounterRNG.mix(state) }
}

/// Per table, room for a plan's rows' values and gradients (`unique` order).
final class TableBuffers {
    let values: [FloatBuffer], grads: [FloatBuffer], counts: [Int]
    init(_ plan: RowPlan) {
        counts = zip(plan.unique, plan.dims).map { $0.count * $1 }
        values = counts.map { FloatBuffer(count: $0) }
        grads = counts.map { FloatBuffer(count: $0) }
    }
    var valueBuffers: [UnsafeMutableBufferPointer<Float>] { zip(values, counts).map { UnsafeMutableBufferPointer(start: $0.pointer, count: $1) } }
    var gradBuffers: [UnsafeMutableBufferPointer<Float>] { zip(grads, counts).map { UnsafeMutableBufferPointer(start: $0.pointer, count: $1) } }
}
