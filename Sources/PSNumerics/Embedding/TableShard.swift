import PSSupport

/// A server's rows of every embedding table: only rows some worker has
/// pulled exist (created from the counter RNG on first pull), each with its
/// optimizer state. One step's gradients are summed per row, in worker order
/// then request order (fixed bits), and applied to those rows alone.
public final class TableShard {
    public final class Table {
        public let spec: TableSpec
        /// Row number -> slot; slot k's values are weights[k*dim ..< (k+1)*dim].
        var slots: [UInt64: Int32] = [:]
        public internal(set) var rowOf: [UInt64] = []
        public let weights = GrowableFloats()
        public let state: [GrowableFloats]
        /// This step: the slots touched (first-touch order) and each one's sum.
        var stepIndex: [Int32] = []
        var stepSlots: [Int32] = []
        let stepGrad = GrowableFloats()

        init(spec: TableSpec, states: Int) {
            self.spec = spec
            state = (0..<states).map { _ in GrowableFloats() }
        }

        public var count: Int { rowOf.count }
    }

    public let tables: [Table]
    public let optimizer: SparseOptimizer
    public let hyper: SparseOptimizer.Hyper
    let seed: UInt64

    public init(tables specs: [TableSpec], optimizer: SparseOptimizer, hyper: SparseOptimizer.Hyper, seed: UInt64) {
        tables = specs.map { Table(spec: $0, states: optimizer.stateNames.count) }
        self.optimizer = optimizer; self.hyper = hyper; self.seed = seed
    }

    /// Rows held over all tables, and their bytes with state.
    public var storedRows: Int { tables.reduce(0) { $0 + $1.count } }
    public var storedBytes: Int { tables.reduce(0) { $0 + $1.count * $1.spec.dim * 4 * (1 + optimizer.stateNames.count) } }

    /// The slot of row `row` of table `t`, creating it (initial values, zero state) on first use.
    public func slot(table t: Int, row: UInt64) -> Int32 {
        let tb = tables[t]
        if let s = tb.slots[row] { return s }
        let s = Int32(tb.rowOf.count), d = tb.spec.dim
        tb.slots[row] = s
        tb.rowOf.append(row)
        tb.weights.append(repeating: 0, count: d)
        tb.spec.initialize(row: row, table: t, seed: seed, into: tb.weights.pointer + Int(s) * d)
        for st in tb.state { st.append(repeating: 0, count: d) }
        tb.stepIndex.append(-1)
        return s
    }

    /// Restores a row (from a checkpoint): its values are arrays[0][at ..<
    /// at + dim], its state arrays[1...] at the same place.
    public func restore(table t: Int, row: UInt64, from arrays: [[Float]], at: Int) {
        let s = Int(slot(table: t, row: row)), d = tables[t].spec.dim, tb = tables[t]
        for (k, dst) in ([tb.weights] + tb.state).enumerated() {
            arrays[k].withUnsafeBufferPointer { (dst.pointer + s * d).update(from: $0.baseAddress! + at, count: d) }
        }
    }

    /// XXH64 over every stored row of every table in (table, row) order:
    /// the row number, its values, its state. The same rows with the same
    /// bits give the same digest whatever order they were created in.
    public func digest() -> String {
        var bytes: [UInt8] = []
        for tb in tables {
            let d = tb.spec.dim
            for s in tb.rowOf.indices.sorted(by: { tb.rowOf[$0] < tb.rowOf[$1] }) {
                withUnsafeBytes(of: tb.rowOf[s].littleEndian) { bytes += $0 }
                for arr in [tb.weights] + tb.state {
                    bytes += UnsafeRawBufferPointer(start: arr.pointer + s * d, count: d * 4)
                }
            }
        }
        return bytes.withUnsafeBytes { hex64(xxh64($0)) }
    }

    /// Row `row` of table t as it stands, without creating it (evaluation).
    public func peek(table t: Int, row: UInt64, into out: UnsafeMutablePointer<Float>) {
        let tb = tables[t], d = tb.spec.dim
        if let s = tb.slots[row] { out.update(from: tb.weights.pointer + Int(s) * d, count: d) } else { tb.spec.initialize(row: row, table: t, seed: seed, into: out) }
    }

    /// Copies the values of `slots` of table t, in order, to `out`.
    public func read(table t: Int, slots: [Int32], into out: UnsafeMutablePointer<Float>) {
        let tb = tables[t], d = tb.spec.dim
        let w = tb.weights.pointer
        for (k, s) in slots.enumerated() { (out + k * d).update(from: w + Int(s) * d, count: d) }
    }

    /// Adds gradients for `slots` of table t (dim values each, in order) into this step's sums.
    public func accumulate(table t: Int, slots: [Int32], grads g: UnsafePointer<Float>) {
        let tb = tables[t], d = tb.spec.dim
        for (k, s) in slots.enumerated() {
            var i = tb.stepIndex[Int(s)]
            if i < 0 {
                i = Int32(tb.stepSlots.count)
                tb.stepIndex[Int(s)] = i
                tb.stepSlots.append(s)
                tb.stepGrad.append(repeating: 0, count: d)
            }
            let src = g + k * d, dst = tb.stepGrad.pointer + Int(i) * d
            for j in 0..<d { dst[j] += src[j] }
        }
    }

    /// Whether any of this step's sums is not finite.
    public func stepOverflows() -> Bool {
        tables.contains { tb in (0..<tb.stepGrad.count).contains { !tb.stepGrad[$0].isFinite } }
    }

    /// Rows and elements touched this step.
    public var stepRows: Int { tables.reduce(0) { $0 + $1.stepSlots.count } }

    /// Applies the step's sums to their rows (`apply` false: a skipped step)
    /// and forgets them.
    public func finishStep(apply: Bool, lr: Float, gradScale: Float, t: Int) {
        for tb in tables {
            let d = tb.spec.dim
            if apply {
                let w = tb.weights.pointer, g = tb.stepGrad.pointer
                let s0 = tb.state.first?.pointer, s1 = tb.state.count > 1 ? tb.state[1].pointer : nil
                for (i, s) in tb.stepSlots.enumerated() {
                    let off = Int(s) * d
                    optimizer.apply(w + off, s0.map { $0 + off }, s1.map { $0 + off }, grad: g + i * d, count: d,
                                    lr: lr, gradScale: gradScale, t: t, hyper: hyper)
                }
            }
            for s in tb.stepSlots { tb.stepIndex[Int(s)] = -1 }
            tb.stepSlots.removeAll(keepingCapacity: true)
            tb.stepGrad.removeAll()
        }
    }
}
