import Foundation
import PSSupport
import PSNumerics

/// Rows `range` of another click-log source (the validation rows held out
/// from the end of a training file, and the training rows before them).
public final class CTRRows: CTRSource {
    public let base: any CTRSource
    public let range: Range<Int>
    var mapped: [Int] = []

    public init(_ base: any CTRSource, rows range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= base.count, "rows \(range) of a source of \(base.count)")
        self.base = base
        self.range = range
    }

    public var count: Int { range.count }
    public var denseCount: Int { base.denseCount }
    public var fieldCount: Int { base.fieldCount }
    public var source: String { "\(base.source) rows \(range.lowerBound)..<\(range.upperBound)" }

    public func gather(_ indices: [Int], into batch: inout CTRBatch) throws {
        mapped.removeAll(keepingCapacity: true)
        for i in indices {
            guard i >= 0 && i < count else { throw DataError.mismatch("row \(i) of \(source) was asked for; it has rows 0..<\(count)") }
            mapped.append(range.lowerBound + i)
        }
        try base.gather(mapped, into: &batch)
    }
}

/// The sets of a click-through-rate run: training, test and (when
/// data.validation holds some out, from the end of the training file)
/// validation, with the dense and categorical field counts they share.
public struct CTRSplit {
    public let train: any CTRSource
    public let test: any CTRSource
    public let validation: (any CTRSource)?
    public let denseCount: Int
    public let fieldCount: Int
    /// Per field, the largest id in the training or test file + 1 (0: none):
    /// a table without hashing needs at least this many rows.
    public let idLimits: [UInt64]

    public init(train: any CTRSource, test: any CTRSource, validation: (any CTRSource)? = nil, idLimits: [UInt64] = []) {
        self.train = train; self.test = test; self.validation = validation
        denseCount = train.denseCount; fieldCount = train.fieldCount
        self.idLimits = idLimits
    }

    /// Opens the Criteo or libsvm files `r` names (making their caches in
    /// r.cacheDir, or next to them) and holds out r.validation of the
    /// training rows from its end.
    public static func open(_ r: DataRequest) throws -> CTRSplit {
        guard r.format.isCTR else {
            throw DataError.mismatch("data.format = \"\(r.format.rawValue)\" holds dense samples, not click-log rows; use \"criteo\" or \"libsvm\"")
        }
        for (key, v) in [("data.train", r.train), ("data.test", r.test)] where v.isEmpty {
            throw DataError.mismatch("\(key) is empty; data.format = \"\(r.format.rawValue)\" needs the file")
        }
        let train = try CTRFile.open(r.train, format: r.format, cacheDir: r.cacheDir, what: "data.train")
        let test = try CTRFile.open(r.test, format: r.format, cacheDir: r.cacheDir, what: "data.test")
        guard train.denseCount == test.denseCount, train.fieldCount == test.fieldCount else {
            throw DataError.mismatch("the training set \(r.train) has \(train.denseCount) dense features and \(train.fieldCount) categorical fields "
                                     + "but the test set \(r.test) has \(test.denseCount) and \(test.fieldCount); they must be the same")
        }
        let held = try DataSplit.heldOut(train.count, r.validation, file: r.train)
        let limits = zip(train.idLimits, test.idLimits).map { max($0, $1) }
        guard held > 0 else { return CTRSplit(train: train, test: test, idLimits: limits) }
        let cut = train.count - held
        // A file of its own (the cache is there now): each source reads through its own buffer.
        let rest = try CTRFile.open(r.train, format: r.format, cacheDir: r.cacheDir, what: "data.train")
        return CTRSplit(train: CTRRows(train, rows: 0..<cut), test: test, validation: CTRRows(rest, rows: cut..<train.count), idLimits: limits)
    }
}
