import PSSupport
import PSNumerics

/// Embedding tables in a checkpoint: each server's file holds, per table,
/// the rows it stores (never the whole table): `embeddings.<t>.row_ids`
/// (I64, ascending), `embeddings.<t>.weight.rows` (F32 [n, dim]) and one
/// `embeddings.<t>.weight.rows.<state>` per optimizer state. A resume on
/// any number of servers reads every server file and keeps the rows it now
/// owns; rows in no file start from their initial values, as they would
/// have.
public enum TableRows {
    /// The most bytes the whole tables of an export (`pstrain ckpt export`)
    /// may take: an export writes every row (those the servers never made
    /// at their initial values), so a hashed table configured far larger
    /// than the rows it holds is refused with its size instead of
    /// exhausting memory (docs/config.md).
    public static let maxExportBytes = 1 << 34

    /// Refuses tables whose full FP32 weights exceed `maxExportBytes`,
    /// naming the checkpoint folder `dir`, the table and its size.
    public static func checkExportable(_ tables: [TableSpec], dir: String) throws {
        var total = 0
        for (t, spec) in tables.enumerated() {
            let (bytes, o1) = spec.rows.multipliedReportingOverflow(by: spec.dim * 4)
            let (sum, o2) = total.addingReportingOverflow(bytes)
            guard !o1, !o2, sum <= maxExportBytes else {
                throw CheckpointError.doesNotFit("\(dir): table \(t) (\(TableSpec.name(t))) is \(spec.rows) rows of \(spec.dim), "
                    + "\(o1 ? "more than 2^63" : String(bytes)) bytes as FP32, and an export writes every row: the tables would take more than "
                    + "the \(maxExportBytes >> 30) GiB an export may hold. The rows the servers created are in the checkpoint's server files "
                    + "(\(idsName(t)), \(valuesName(t)); docs/checkpoints.md)")
            }
            total = sum
        }
    }

    public static func idsName(_ t: Int) -> String { "embeddings.\(t).row_ids" }
    public static func valuesName(_ t: Int, state: String? = nil) -> String {
        "embeddings.\(t).weight.rows" + (state.map { "." + $0 } ?? "")
    }

    /// The tensors of table t of a shard, rows ascending.
    public static func tensors(_ shard: TableShard, table t: Int) -> [Safetensors.Tensor] {
        let tb = shard.tables[t], d = tb.spec.dim
        let order = tb.rowOf.indices.sorted { tb.rowOf[$0] < tb.rowOf[$1] }
        var ids: [UInt8] = []
        ids.reserveCapacity(order.count * 8)
        for s in order { withUnsafeBytes(of: Int64(tb.rowOf[s]).littleEndian) { ids += $0 } }
        var out = [Safetensors.Tensor(name: idsName(t), dtype: .i64, shape: [order.count], data: ids)]
        for (name, arr) in zip([nil] + shard.optimizer.stateNames.map { Optional($0) }, [tb.weights] + tb.state) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(order.count * d * 4)
            for s in order { bytes += UnsafeRawBufferPointer(start: arr.pointer + s * d, count: d * 4) }
            out.append(Safetensors.Tensor(name: valuesName(t, state: name), dtype: .f32, shape: [order.count, d], data: bytes))
        }
        return out
    }

    /// Restores into `shard` the rows of every table that `keep` accepts,
    /// from every server file of checkpoint `dir`. Each file's tensors are
    /// checked (dtype, shape, rows inside the table, no row twice).
    public static func restore(_ dir: String, _ m: Manifest, into shard: TableShard, keep: (UInt64) -> Bool) throws {
        for f in m.files where f.role == Role.server.name {
            let tensors = try CheckpointStore.readListedFile(dir, m, f.name)
            for (t, tb) in shard.tables.enumerated() {
                let d = tb.spec.dim, path = "\(dir)/\(f.name)"
                func bad(_ why: String) -> CheckpointError { .invalid("\(path): table \(t): \(why): damaged or crafted checkpoint") }
                guard let ids = tensors[idsName(t)], ids.dtype == .i64, ids.shape.count == 1 else {
                    throw CheckpointError.doesNotFit("\(path) has no rows of table \(t) (\(idsName(t))): the checkpoint was written for a model without model.tables[\(t)]")
                }
                let n = ids.shape[0]
                let names = [nil] + shard.optimizer.stateNames.map { Optional($0) }
                let arrays = try names.map { name -> [Float] in
                    guard let v = tensors[valuesName(t, state: name)], v.dtype == .f32, v.shape == [n, d] else {
                        throw bad("lacks \(valuesName(t, state: name)) as F32 [\(n), \(d)] (the optimizer's state, or another dim)")
                    }
                    return v.floats
                }
                var previous: Int64 = -1
                try ids.data.withUnsafeBytes { raw in
                    for k in 0..<n {
                        let row = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * k, as: Int64.self))
                        guard row > previous, row < Int64(tb.spec.rows) else {
                            throw bad("row \(row) is out of order or outside the table (\(tb.spec.rows) rows)")
                        }
                        previous = row
                        guard keep(UInt64(row)) else { continue }
                        shard.restore(table: t, row: UInt64(row), from: arrays, at: k * d)
                    }
                }
            }
        }
    }
}
