import Foundation
import PSNumerics

/// The binary cache of a CSV data set (docs/formats.md, "CSV cache"): the
/// features as FP32 rows and the labels as bytes behind a 64-byte header,
/// made once from the text and then mapped by every worker. It records the
/// source's size and modification time and the label column it was made
/// with; a cache that does not match them (or is incomplete) is made again.
///
///     0  "PSTRCSV1"        8 bytes
///     8  source size       u64 little-endian
///    16  source mtime      i64 seconds, then i64 nanoseconds at 24
///    32  rows              u64
///    40  features          u64
///    48  data offset       u64, a multiple of 64 (where the features start)
///    56  label name bytes  u32, then column names bytes u32 at 60
///    64  the label column's name, then the feature columns' names joined
///        by "\n" (UTF-8), zero padding up to the data offset
///  data  rows x features FP32 little-endian, row by row; then rows label bytes
enum CSVCache {
    static let magic = Array("PSTRCSV1".utf8)

    /// What a cache must have been made from.
    struct Key: Equatable {
        var size: Int
        var seconds: Int
        var nanoseconds: Int
        var label: String
    }

    /// The header of a cache of `rows` x `features` (rows may be filled in later).
    static func header(_ key: Key, rows: Int, features: Int, columns: [String]) -> [UInt8] {
        let label = Array(key.label.utf8), names = Array(columns.joined(separator: "\n").utf8)
        let offset = (64 + label.count + names.count + 63) / 64 * 64
        var h = [UInt8](repeating: 0, count: offset)
        func put(_ v: UInt64, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { for k in 0..<8 { h[at + k] = $0[k] } } }
        func put32(_ v: UInt32, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { for k in 0..<4 { h[at + k] = $0[k] } } }
        h.replaceSubrange(0..<8, with: magic)
        put(UInt64(key.size), 8); put(UInt64(bitPattern: Int64(key.seconds)), 16); put(UInt64(bitPattern: Int64(key.nanoseconds)), 24)
        put(UInt64(rows), 32); put(UInt64(features), 40); put(UInt64(offset), 48)
        put32(UInt32(label.count), 56); put32(UInt32(names.count), 60)
        h.replaceSubrange(64..<(64 + label.count), with: label)
        h.replaceSubrange((64 + label.count)..<(64 + label.count + names.count), with: names)
        return h
    }

    /// The samples of the cache at `path` when it is complete and was made
    /// from `key`; nil when it is missing, stale or damaged (to be made again).
    static func read(_ path: String, key: Key, source: String) -> Samples? {
        guard let f = try? MappedFile(path, what: "cache"), f.size >= 64 else { return nil }
        let b = UnsafeRawBufferPointer(start: f.pointer, count: f.size)
        func u64(_ at: Int) -> Int? { Int(exactly: b.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian) }
        func u32(_ at: Int) -> Int { Int(b.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian) }
        guard Array(b[0..<8]) == magic, let size = u64(8), let rows = u64(32), let features = u64(40), let offset = u64(48),
              size == key.size else { return nil }
        let seconds = Int(Int64(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: Int64.self)))
        let nanos = Int(Int64(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: Int64.self)))
        let ln = u32(56), cn = u32(60)
        guard seconds == key.seconds, nanos == key.nanoseconds, rows > 0, features > 0, offset % 64 == 0,
              64 + ln + cn <= offset, offset <= f.size,
              let xBytes = NPY.product([rows, features, 4]), xBytes <= f.size - offset, rows == f.size - offset - xBytes,
              String(decoding: b[64..<(64 + ln)], as: UTF8.self) == key.label else { return nil }
        let columns = String(decoding: b[(64 + ln)..<(64 + ln + cn)], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard columns.count == features else { return nil }
        let labels = Array(b[(offset + xBytes)..<f.size])
        let x = ArrayView(base: f.pointer + offset, type: .float32, shape: [rows, features], owner: f)
        // Its values are checked again (checkFinite) like any file's: the key
        // is the CSV's size and time, not the cache's contents (issue 20).
        return Samples(x: x, labels: labels, source: source, columns: columns)
    }
}
