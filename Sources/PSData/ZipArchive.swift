import Foundation
import CZlib
import PSNumerics

/// The members of a zip archive (an .npz file), read from its central
/// directory, with the zip64 extensions numpy writes for large arrays. Every
/// offset and size is checked against the file before it is used.
public struct ZipArchive {
    public struct Member {
        public let name: String
        /// 0: stored, 8: deflated.
        public let method: Int
        public let crc: UInt32
        public let compressedSize: Int
        public let size: Int
        /// Where the member's (compressed) bytes start in the file.
        public let dataOffset: Int
    }

    public let file: MappedFile
    public let members: [Member]

    public init(_ file: MappedFile) throws {
        self.file = file
        members = try Self.directory(file)
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> Int { u16(b, o) | u16(b, o + 2) << 16 }
    static func u64(_ b: UnsafeRawBufferPointer, _ o: Int) -> Int? {
        let hi = u32(b, o + 4)
        return hi >= 0x8000_0000 ? nil : u32(b, o) | hi << 32
    }

    static func directory(_ f: MappedFile) throws -> [Member] {
        func bad(_ why: String) -> DataError { .malformed(file: f.path, problem: "not a valid .npz (zip) file: \(why)") }
        let all = UnsafeRawBufferPointer(start: f.pointer, count: f.size)
        // The end-of-central-directory record: 22 bytes and a comment of at most 65,535.
        guard f.size >= 22 else { throw bad("only \(f.size) bytes") }
        var eocd = -1
        var o = f.size - 22
        while o >= max(0, f.size - 22 - 65_535) {
            if u32(all, o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (truncated, or not a zip archive)") }
        var entries = u16(all, eocd + 10), cdSize = u32(all, eocd + 12), cdOffset = u32(all, eocd + 16)
        if entries == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            guard eocd >= 20, u32(all, eocd - 20) == 0x0706_4b50, let z = u64(all, eocd - 12),
                  let rec = f.bytes(at: z, count: 56), u32(rec, 0) == 0x0606_4b50,
                  let e = u64(rec, 32), let s = u64(rec, 40), let c = u64(rec, 48) else { throw bad("damaged zip64 end record") }
            entries = e; cdSize = s; cdOffset = c
        }
        guard let cd = f.bytes(at: cdOffset, count: cdSize) else { throw bad("the central directory lies outside the file (truncated)") }
        var members: [Member] = []
        var p = 0
        for _ in 0..<entries {
            guard p + 46 <= cd.count, u32(cd, p) == 0x0201_4b50 else { throw bad("damaged central directory entry \(members.count)") }
            let flags = u16(cd, p + 8), method = u16(cd, p + 10), crc = UInt32(u32(cd, p + 16))
            var csize = u32(cd, p + 20), usize = u32(cd, p + 24), local = u32(cd, p + 42)
            let nlen = u16(cd, p + 28), xlen = u16(cd, p + 30), clen = u16(cd, p + 32)
            guard p + 46 + nlen + xlen + clen <= cd.count else { throw bad("damaged central directory entry \(members.count)") }
            let name = String(decoding: cd[(p + 46)..<(p + 46 + nlen)], as: UTF8.self)
            try zip64(cd, from: p + 46 + nlen, count: xlen, usize: &usize, csize: &csize, local: &local, bad)
            guard flags & 1 == 0 else { throw bad("member \(name) is encrypted") }
            guard let lh = f.bytes(at: local, count: 30), u32(lh, 0) == 0x0403_4b50 else { throw bad("member \(name): damaged local header") }
            let data = local + 30 + u16(lh, 26) + u16(lh, 28)
            guard f.bytes(at: data, count: csize) != nil else {
                throw bad("member \(name) runs past the end of the \(f.size)-byte file (truncated)")
            }
            members.append(Member(name: name, method: method, crc: crc, compressedSize: csize, size: usize, dataOffset: data))
            p += 46 + nlen + xlen + clen
        }
        return members
    }

    /// The zip64 extra field (id 1): the 64-bit sizes and offset of the fields that hold 0xFFFFFFFF.
    static func zip64(_ cd: UnsafeRawBufferPointer, from start: Int, count: Int, usize: inout Int, csize: inout Int, local: inout Int,
                      _ bad: (String) -> DataError) throws {
        var q = start
        while q + 4 <= start + count {
            let id = u16(cd, q), len = u16(cd, q + 2)
            guard q + 4 + len <= start + count else { throw bad("damaged extra field") }
            if id == 1 {
                var r = q + 4
                func next() throws -> Int {
                    guard r + 8 <= q + 4 + len, let v = u64(cd, r) else { throw bad("damaged zip64 extra field") }
                    r += 8
                    return v
                }
                if usize == 0xFFFF_FFFF { usize = try next() }
                if csize == 0xFFFF_FFFF { csize = try next() }
                if local == 0xFFFF_FFFF { local = try next() }
            }
            q += 4 + len
        }
    }

    /// The bytes of a stored member, in the mapping.
    public func stored(_ m: Member) -> UnsafeRawBufferPointer { file.bytes(at: m.dataOffset, count: m.compressedSize)! }

    /// A deflated member inflated into memory, its size and CRC-32 checked.
    /// A member that claims to inflate more than deflate can (1,032 times
    /// its compressed size) is refused before anything is allocated.
    public func inflated(_ m: Member) throws -> MemoryBlock {
        func bad(_ why: String) -> DataError { .malformed(file: file.path, problem: "member \(m.name): \(why)") }
        guard m.size <= m.compressedSize * 1032 + 1024 else { throw bad("claims \(m.size) bytes from \(m.compressedSize) compressed: damaged") }
        let out = MemoryBlock(count: m.size)
        var s = z_stream()
        guard inflateInit2_(&s, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { throw bad("zlib cannot start") }
        defer { inflateEnd(&s) }
        let src = stored(m)
        var inAt = 0, outAt = 0, status = Z_OK
        // zlib counts in UInt32: feed and drain in chunks of at most 1 GiB.
        while status == Z_OK {
            let inN = min(src.count - inAt, 1 << 30), outN = min(m.size - outAt, 1 << 30)
            s.next_in = UnsafeMutablePointer(mutating: src.baseAddress!.advanced(by: inAt).assumingMemoryBound(to: Bytef.self))
            s.avail_in = uInt(inN)
            s.next_out = (out.pointer + outAt).assumingMemoryBound(to: Bytef.self)
            s.avail_out = uInt(outN)
            status = inflate(&s, Z_NO_FLUSH)
            let usedIn = inN - Int(s.avail_in), madeOut = outN - Int(s.avail_out)
            inAt += usedIn; outAt += madeOut
            if status == Z_BUF_ERROR || (status == Z_OK && usedIn == 0 && madeOut == 0) { break }
        }
        guard status == Z_STREAM_END, outAt == m.size else {
            throw bad("cannot inflate (\(status == Z_DATA_ERROR ? "corrupt data" : "truncated or damaged")): \(outAt) of \(m.size) bytes")
        }
        guard Self.crc(out) == m.crc else { throw bad("CRC-32 mismatch after inflating: the file is damaged") }
        return out
    }

    static func crc(_ b: MemoryBlock) -> UInt32 {
        var c: uLong = 0, at = 0
        while at < b.count {
            let n = min(b.count - at, 1 << 30)
            c = crc32(c, (b.pointer + at).assumingMemoryBound(to: Bytef.self), uInt(n))
            at += n
        }
        return UInt32(c)
    }
}
