import Foundation

/// The binary cache of a Criteo or libsvm file (docs/formats.md, "CTR
/// cache"): rows as records behind a header, one record per row, so that a
/// worker reads a row with one pread. All numbers little-endian.
///
///      0  "PSTRCTR1"          8 bytes
///      8  source size         u64
///     16  source mtime        i64 seconds, then i64 nanoseconds at 24
///     32  rows                u64
///     40  format              u32: 1 criteo, 2 libsvm
///     44  dense per row       u32
///     48  fields              u32
///     52  record bytes        u32 (criteo: every record's size; libsvm: 0)
///     56  records offset      u64, a multiple of 64
///     64  offset table offset u64 (libsvm; 0 for criteo)
///     72  ids                 u64 (in all rows)
///     80  per field: largest id + 1 (u64, saturating; 0: no id), then zeros
///  records
///     criteo: fields x u64 ids, dense x f32, u32 present bits, u32 label, zeros up to a multiple of 8
///     libsvm: u32 label, u32 n, n x u64 ids, n x f32 weights (8 + 12n bytes)
///  libsvm's offset table: rows + 1 u64, record r is [off[r], off[r+1]) from the records offset
enum CTRCache {
    static let magic = Array("PSTRCTR1".utf8)

    /// What a cache must have been made from.
    struct Key: Equatable {
        var size: Int
        var seconds: Int
        var nanoseconds: Int
        var format: UInt32
    }

    struct Header: Equatable {
        var key: Key
        var rows = 0
        var dense = 0
        var fields = 0
        var recordBytes = 0
        var recordsOffset = 0
        var tableOffset = 0
        var ids = 0
        var idLimits: [UInt64] = []

        var bytes: Int { (80 + 8 * fields + 63) / 64 * 64 }
    }

    static func code(_ f: DataFormat) -> UInt32 { f == .criteo ? 1 : 2 }

    /// Criteo's record size for `fields` and `dense`.
    static func recordBytes(fields: Int, dense: Int) -> Int { (8 * fields + 4 * dense + 8 + 7) / 8 * 8 }

    static func encode(_ h: Header) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: h.bytes)
        func put(_ v: UInt64, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { for k in 0..<8 { b[at + k] = $0[k] } } }
        func put32(_ v: Int, _ at: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { for k in 0..<4 { b[at + k] = $0[k] } } }
        b.replaceSubrange(0..<8, with: magic)
        put(UInt64(h.key.size), 8); put(UInt64(bitPattern: Int64(h.key.seconds)), 16); put(UInt64(bitPattern: Int64(h.key.nanoseconds)), 24)
        put(UInt64(h.rows), 32); put32(Int(h.key.format), 40); put32(h.dense, 44); put32(h.fields, 48); put32(h.recordBytes, 52)
        put(UInt64(h.recordsOffset), 56); put(UInt64(h.tableOffset), 64); put(UInt64(h.ids), 72)
        for (f, v) in h.idLimits.enumerated() { put(v, 80 + 8 * f) }
        return b
    }

    /// The header of the cache open as `fd` (`size` bytes) when it is
    /// complete, consistent and made from `key`; nil otherwise (to be made again).
    static func decode(fd: Int32, size: Int, key: Key) -> Header? {
        var b = [UInt8](repeating: 0, count: 80)
        guard size >= 128, pread(fd, &b, 80, 0) == 80, Array(b[0..<8]) == magic else { return nil }
        func u64(_ at: Int) -> UInt64 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian } }
        func int(_ at: Int) -> Int? { Int(exactly: u64(at)) }
        func u32(_ at: Int) -> Int { Int(b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }) }
        guard int(8) == key.size, Int64(bitPattern: u64(16)) == key.seconds, Int64(bitPattern: u64(24)) == key.nanoseconds,
              u32(40) == Int(key.format), let rows = int(32), let records = int(56), let table = int(64), let ids = int(72) else { return nil }
        var h = Header(key: key, rows: rows, dense: u32(44), fields: u32(48), recordBytes: u32(52), recordsOffset: records, tableOffset: table, ids: ids)
        guard rows > 0, h.fields > 0, h.fields <= 32, h.dense <= 4096, records == h.bytes, records <= size else { return nil }
        if key.format == 1 {
            guard h.recordBytes == recordBytes(fields: h.fields, dense: h.dense), table == 0,
                  rows <= (size - records) / h.recordBytes, records + rows * h.recordBytes == size else { return nil }
        } else {
            guard h.recordBytes == 0, table >= records, table <= size, (size - table) % 8 == 0, (size - table) / 8 == rows + 1 else { return nil }
        }
        var limits = [UInt64](repeating: 0, count: h.fields)
        guard limits.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, $0.count, 80) }) == 8 * h.fields else { return nil }
        h.idLimits = limits.map { UInt64(littleEndian: $0) }
        return h
    }
}
