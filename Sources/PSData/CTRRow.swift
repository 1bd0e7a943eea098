import PSNumerics

/// One parsed row of a click log, reused from line to line by the parsers
/// (Criteo, LibSVM) and the cache. Criteo fills `dense` (13 values, already
/// log1p(max(I, 0))), `ids` (one slot per field, 26) and `present` (bit f:
/// field f has an id; an empty field is an empty bag). LibSVM fills `ids`
/// and `weights` with the row's indices and values (one field) and sets
/// no `present` bits.
public struct CTRRow: Equatable {
    /// 0 or 1.
    public var label: UInt8 = 0
    public var dense: [Float] = []
    public var ids: [UInt64] = []
    public var weights: [Float] = []
    public var present: UInt32 = 0

    public init() {}

    /// Appends the row to `batch` as Criteo's fixed fields (one bag of 0 or
    /// 1 id per field, no weights).
    func appendFixed(to batch: inout CTRBatch) {
        batch.rows += 1
        batch.labels.append(Float(label))
        batch.dense.append(contentsOf: dense)
        for f in 0..<ids.count {
            if present & (1 << UInt32(f)) != 0 { batch.ids[f].append(ids[f]) }
            batch.offsets[f].append(Int32(batch.ids[f].count))
        }
    }

    /// Appends the row to `batch` as libsvm's one weighted bag.
    func appendBag(to batch: inout CTRBatch) {
        batch.rows += 1
        batch.labels.append(Float(label))
        batch.ids[0].append(contentsOf: ids)
        batch.weights[0].append(contentsOf: weights)
        batch.offsets[0].append(Int32(batch.ids[0].count))
    }
}

/// Text of a field for a message: at most 40 characters, quoted.
func quoted(_ b: UnsafeBufferPointer<UInt8>) -> String {
    let s = String(decoding: b.prefix(40), as: UTF8.self)
    return "\"" + s + (b.count > 40 ? "..." : "") + "\""
}
