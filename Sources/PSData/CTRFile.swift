import Foundation
import PSNumerics

/// A Criteo or libsvm file as a worker reads it: through its binary cache
/// (CTRCache), made once next to the file (or in the run's data-cache
/// folder) under a lock and renamed into place, reused while the file keeps
/// its size and modification time.
///
/// Rows are read with pread into one reusable buffer, not through mmap. A
/// worker must not grow with the file: the pages of a mapping that a gather
/// touched stay in the process's resident set until released, so mmap
/// would need madvise(MADV_DONTNEED) after every gather, one page (4 KiB)
/// resident per 272-byte row meanwhile. pread copies only the records asked
/// for into a buffer of fixed size (1 MiB; grown only to hold one libsvm row
/// larger than that), leaves the file in the page cache (shared by every
/// worker on the machine, not part of any process's RSS), and takes one
/// system call per run of consecutive rows (a test set's slice is one run).
public final class CTRFile: CTRSource {
    public let count: Int
    public let denseCount: Int
    public let fieldCount: Int
    /// The text file the rows come from.
    public let source: String
    public let format: DataFormat
    /// Where its cache is.
    public let cachePath: String
    /// Per field, the largest id in the file + 1 (0: no id; saturates at 2^64 - 1).
    public let idLimits: [UInt64]
    let header: CTRCache.Header
    let fd: Int32
    var buffer: UnsafeMutableRawPointer
    var capacity: Int
    /// libsvm: the offsets of a run of rows.
    var offsets: [UInt64] = []

    init(source: String, format: DataFormat, cachePath: String, fd: Int32, header: CTRCache.Header, bufferBytes: Int) {
        self.source = source; self.format = format; self.cachePath = cachePath; self.fd = fd; self.header = header
        count = header.rows; denseCount = header.dense; fieldCount = header.fields; idLimits = header.idLimits
        capacity = max(bufferBytes, header.recordBytes, 64)
        buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit { close(fd); buffer.deallocate() }

    /// Opens the Criteo or libsvm file at `path` (`what` names the key
    /// that names it), making its cache first when there is none for it.
    public static func open(_ path: String, format: DataFormat, cacheDir: String = "", what: String = "data.train",
                            bufferBytes: Int = 1 << 20) throws -> CTRFile {
        guard format.isCTR else { throw DataError.mismatch("\(path): data.format = \"\(format.rawValue)\" is not a click-log format (criteo, libsvm)") }
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { throw DataError.notFound(file: path, what: what) }
            throw DataError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw DataError.unreadable(file: path, reason: "not a regular file") }
        let key = CTRCache.Key(size: Int(st.st_size), seconds: Int(st.st_mtim.tv_sec), nanoseconds: Int(st.st_mtim.tv_nsec), format: CTRCache.code(format))
        let cache = try CSV.cachePath(path, cacheDir: cacheDir, suffix: ".pstrain-ctr")
        let lock = try CacheLock(cache + ".lock", what: format.rawValue)
        defer { lock.release() }
        if let f = reading(cache, key: key, source: path, format: format, bufferBytes: bufferBytes) { return f }
        let tmp = cache + ".tmp-\(getpid())"
        do {
            try CTRConvert.convert(path, format: format, key: key, to: tmp)
        } catch {
            unlink(tmp)
            throw error
        }
        guard rename(tmp, cache) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw DataError.unreadable(file: cache, reason: "cannot put the \(format.rawValue) cache in place: \(why)")
        }
        guard let f = reading(cache, key: key, source: path, format: format, bufferBytes: bufferBytes) else {
            throw DataError.unreadable(file: cache, reason: "the \(format.rawValue) cache just written does not read back (was \(path) changed while it was converted?)")
        }
        return f
    }

    /// The cache at `path` when it is complete and was made from `key`.
    static func reading(_ path: String, key: CTRCache.Key, source: String, format: DataFormat, bufferBytes: Int) -> CTRFile? {
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, let h = CTRCache.decode(fd: fd, size: Int(st.st_size), key: key) else { close(fd); return nil }
        return CTRFile(source: source, format: format, cachePath: path, fd: fd, header: h, bufferBytes: bufferBytes)
    }

    public func gather(_ indices: [Int], into batch: inout CTRBatch) throws {
        for i in indices where i < 0 || i >= count {
            throw DataError.mismatch("row \(i) of \(source) was asked for; it has rows 0..<\(count)")
        }
        if batch.offsets.count != fieldCount {
            guard batch.rows == 0 else {
                throw DataError.mismatch("a batch of \(batch.offsets.count) fields cannot take the rows of \(source), which have \(fieldCount)")
            }
            batch = CTRBatch(fields: fieldCount)
        }
        if header.key.format == 1 { try gatherFixed(indices, into: &batch) } else { try gatherBags(indices, into: &batch) }
    }

    /// The number of indices from `k` on that are consecutive rows, at most `limit`.
    static func run(_ indices: [Int], from k: Int, limit: Int) -> Int {
        var n = 1
        while k + n < indices.count && n < limit && indices[k + n] == indices[k] + n { n += 1 }
        return n
    }

    func gatherFixed(_ indices: [Int], into batch: inout CTRBatch) throws {
        let rb = header.recordBytes
        var k = 0
        while k < indices.count {
            let n = Self.run(indices, from: k, limit: capacity / rb)
            try read(at: header.recordsOffset + indices[k] * rb, bytes: n * rb)
            for r in 0..<n { try appendFixed(UnsafeRawPointer(buffer + r * rb), to: &batch) }
            k += n
        }
    }

    func appendFixed(_ p: UnsafeRawPointer, to batch: inout CTRBatch) throws {
        let f = fieldCount, d = denseCount
        let present = p.loadUnaligned(fromByteOffset: 8 * f + 4 * d, as: UInt32.self).littleEndian
        let label = p.loadUnaligned(fromByteOffset: 8 * f + 4 * d + 4, as: UInt32.self).littleEndian
        guard label <= 1 else { throw damaged("a label of \(label)") }
        batch.rows += 1
        batch.labels.append(Float(label))
        // The values are checked as they are read: the cache is keyed by the
        // source's size and time, so an edited cache would otherwise train on
        // whatever it holds (NaN written into one trained silently, issue 20).
        for j in 0..<d {
            let v = Float(bitPattern: p.loadUnaligned(fromByteOffset: 8 * f + 4 * j, as: UInt32.self).littleEndian)
            guard v.isFinite else { throw damaged("a dense feature of \(v)") }
            batch.dense.append(v)
        }
        for g in 0..<f {
            if present & (1 << UInt32(g)) != 0 { batch.ids[g].append(p.loadUnaligned(fromByteOffset: 8 * g, as: UInt64.self).littleEndian) }
            batch.offsets[g].append(Int32(truncatingIfNeeded: batch.ids[g].count))
        }
    }

    func gatherBags(_ indices: [Int], into batch: inout CTRBatch) throws {
        var k = 0
        while k < indices.count {
            let n = Self.run(indices, from: k, limit: 4096)
            try readOffsets(indices[k], n)
            var r = 0
            while r < n {
                var s = r + 1
                while s < n && offsets[s + 1] - offsets[r] <= UInt64(capacity) { s += 1 }
                let span = Int(offsets[s] - offsets[r])
                if span > capacity { grow(span) }
                try read(at: header.recordsOffset + Int(offsets[r]), bytes: span)
                for q in r..<s { try appendBag(UnsafeRawPointer(buffer + Int(offsets[q] - offsets[r])), bytes: Int(offsets[q + 1] - offsets[q]), to: &batch) }
                r = s
            }
            k += n
        }
    }

    /// Offsets of rows first ..< first + n, and of the row after, checked to be in order and inside the records.
    func readOffsets(_ first: Int, _ n: Int) throws {
        if offsets.count != n + 1 { offsets = Array(repeating: 0, count: n + 1) }
        let want = 8 * (n + 1), at = header.tableOffset + 8 * first
        let got = offsets.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(at)) }
        guard got == want else { throw damaged("an offset table shorter than its rows") }
        let limit = UInt64(header.tableOffset - header.recordsOffset)
        for q in 0...n {
            offsets[q] = UInt64(littleEndian: offsets[q])
            guard offsets[q] <= limit, q == 0 || offsets[q] >= offsets[q - 1] + 8 else { throw damaged("offsets out of order") }
        }
    }

    func appendBag(_ p: UnsafeRawPointer, bytes: Int, to batch: inout CTRBatch) throws {
        let label = p.loadUnaligned(as: UInt32.self).littleEndian
        let n = Int(p.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian)
        guard label <= 1, bytes == 8 + 12 * n else { throw damaged("a record of \(bytes) bytes for \(n) ids") }
        guard n <= LibSVM.maxPairsPerRow else { throw damaged("a row of \(n) ids, more than the \(LibSVM.maxPairsPerRow) a line may hold") }
        batch.rows += 1
        batch.labels.append(Float(label))
        for q in 0..<n {
            // Checked as it is read, as appendFixed's dense values (a batch that throws is not used).
            let w = Float(bitPattern: p.loadUnaligned(fromByteOffset: 8 + 8 * n + 4 * q, as: UInt32.self).littleEndian)
            guard w.isFinite else { throw damaged("a weight of \(w)") }
            batch.ids[0].append(p.loadUnaligned(fromByteOffset: 8 + 8 * q, as: UInt64.self).littleEndian)
            batch.weights[0].append(w)
        }
        batch.offsets[0].append(Int32(truncatingIfNeeded: batch.ids[0].count))
    }

    func grow(_ bytes: Int) {
        buffer.deallocate()
        capacity = bytes
        buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    /// Reads `bytes` at `offset` of the cache into the buffer.
    func read(at offset: Int, bytes: Int) throws {
        var done = 0
        while done < bytes {
            let n = pread(fd, buffer + done, bytes - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw DataError.unreadable(file: cachePath, reason: String(cString: strerror(errno))) }
            guard n > 0 else { throw damaged("a file shorter than its header says") }
            done += n
        }
    }

    func damaged(_ what: String) -> DataError {
        .malformed(file: cachePath, problem: "the \(format.rawValue) cache is damaged (\(what)); delete it and it is made again from \(source)")
    }
}
