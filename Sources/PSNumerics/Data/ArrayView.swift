import Foundation

/// The element types a data set's arrays may hold, by numpy's names.
public enum NumericType: String, CaseIterable, Sendable {
    case uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .uint8, .int8: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        }
    }

    public var isInteger: Bool { self != .float32 && self != .float64 }

    /// The types a sample's features may have.
    public static let features: [NumericType] = [.uint8, .float32, .float64]
}

/// Memory that can give back the pages of a range it no longer needs now
/// (a mapped file: they are read again from the file when touched).
public protocol PageReleasing: AnyObject {
    func release(_ start: UnsafeRawPointer, bytes: Int)
}

/// Bytes in memory that this process owns (an inflated archive member, an
/// IDX file, a synthetic set), 16-byte aligned, freed with the last reference.
public final class MemoryBlock {
    public let pointer: UnsafeMutableRawPointer
    public let count: Int

    public init(count: Int) {
        self.count = count
        pointer = .allocate(byteCount: max(count, 1), alignment: 16)
    }

    public convenience init(copying bytes: [UInt8]) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { pointer.copyMemory(from: b, byteCount: bytes.count) } }
    }

    deinit { pointer.deallocate() }
}

/// A read-only C-order array of little-endian elements that `owner` keeps
/// alive (a mapped file, a MemoryBlock). The data need not be aligned: an
/// array inside a zip archive starts wherever its member does.
public struct ArrayView {
    public let base: UnsafeRawPointer
    public let type: NumericType
    /// The first axis counts the samples.
    public let shape: [Int]
    public let owner: AnyObject

    /// The number of rows (samples): the first axis.
    public let rows: Int
    /// Elements per row: the product of the other axes.
    public let rowElements: Int
    public let rowBytes: Int

    /// `shape`'s element count must fit in an Int (the readers check it against the file).
    public init(base: UnsafeRawPointer, type: NumericType, shape: [Int], owner: AnyObject) {
        self.base = base; self.type = type; self.shape = shape; self.owner = owner
        rows = shape.first ?? 1
        rowElements = shape.dropFirst().reduce(1, *)
        rowBytes = rowElements * type.size
    }

    public func row(_ i: Int) -> UnsafeRawPointer { base + i * rowBytes }

    /// Element `i` of an integer array as an Int64 (nil: an unsigned 64-bit
    /// value beyond Int64).
    public func integer(_ i: Int) -> Int64? {
        let p = base + i * type.size
        switch type {
        case .uint8: return Int64(p.load(as: UInt8.self))
        case .int8: return Int64(p.load(as: Int8.self))
        case .uint16: return Int64(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
        case .int16: return Int64(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
        case .uint32: return Int64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
        case .int32: return Int64(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
        case .uint64: return Int64(exactly: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
        case .int64: return Int64(littleEndian: p.loadUnaligned(as: Int64.self))
        case .float32, .float64: return nil
        }
    }

    /// Row `i` of a feature array (uint8, float32, float64) as Doubles, into `out` (rowElements).
    public func values(row i: Int, into out: UnsafeMutablePointer<Double>) {
        let p = row(i), n = rowElements
        switch type {
        case .uint8:
            let b = p.assumingMemoryBound(to: UInt8.self)
            for j in 0..<n { out[j] = Double(b[j]) }
        case .float32:
            for j in 0..<n { out[j] = Double(p.loadUnaligned(fromByteOffset: 4 * j, as: Float.self)) }
        case .float64:
            out.withMemoryRebound(to: UInt8.self, capacity: 8 * n) { $0.update(from: p.assumingMemoryBound(to: UInt8.self), count: 8 * n) }
        default:
            for j in 0..<n { out[j] = Double(integer(i * n + j) ?? 0) }
        }
    }

    /// Gives back the pages of rows `r` when the memory is a mapped file (a
    /// pass over the whole array need not stay resident).
    public func release(rows r: Range<Int>) {
        guard let p = owner as? PageReleasing, !r.isEmpty else { return }
        p.release(row(r.lowerBound), bytes: r.count * rowBytes)
    }
}
