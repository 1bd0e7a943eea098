import Foundation
import PSSupport
import PSNumerics

/// A CSV data set: a header row naming the columns, then one sample per
/// line; the column `label` names holds the class (a whole number from 0 to
/// 255) and every other column is a feature (a finite number). Fields are
/// separated by commas and may be double-quoted; a field cannot hold a line
/// break. Blank lines are skipped; a "\r\n" line end and a UTF-8 byte-order
/// mark are accepted.
///
/// The text is converted once into a binary cache (CSVCache) that the
/// workers map: in `cacheDir` (the run directory's data-cache folder) or,
/// without one, next to the CSV file. Workers that start together take a
/// lock on the cache (flock), so one converts while the others wait, and
/// the cache appears by an atomic rename: no worker ever maps a half-written
/// cache. A cache whose source has another size or modification time, or
/// that was made with another label column, is made again.
public enum CSV {
    public static func open(_ path: String, label: String, cacheDir: String, what: String) throws -> Samples {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { throw DataError.notFound(file: path, what: what) }
            throw DataError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw DataError.unreadable(file: path, reason: "not a regular file") }
        let key = CSVCache.Key(size: Int(st.st_size), seconds: Int(st.st_mtim.tv_sec), nanoseconds: Int(st.st_mtim.tv_nsec), label: label)
        let cache = try cachePath(path, cacheDir: cacheDir)
        let lock = try CacheLock(cache + ".lock")
        defer { lock.release() }
        if let s = CSVCache.read(cache, key: key, source: path) { return s }
        let tmp = cache + ".tmp-\(getpid())"
        do {
            try convert(path, key: key, to: tmp)
        } catch {
            unlink(tmp)
            throw error
        }
        guard rename(tmp, cache) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw DataError.unreadable(file: cache, reason: "cannot put the CSV cache in place: \(why)")
        }
        guard let s = CSVCache.read(cache, key: key, source: path) else {
            throw DataError.unreadable(file: cache, reason: "the CSV cache just written does not read back (changed while it was written?)")
        }
        return s
    }

    /// `<csv>.pstrain-cache` (or another `suffix`) next to the file, or in `cacheDir` named after
    /// the file and a hash of its absolute path (two files of one name do
    /// not share a cache).
    public static func cachePath(_ path: String, cacheDir: String, suffix: String = ".pstrain-cache") throws -> String {
        if cacheDir.isEmpty { return path + suffix }
        do {
            try FileManager.default.createDirectory(atPath: cacheDir, withIntermediateDirectories: true)
        } catch {
            throw DataError.unreadable(file: cacheDir, reason: "cannot create the folder for the CSV cache: \(error.localizedDescription)")
        }
        let abs = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let h = Array(abs.utf8).withUnsafeBytes { xxh64($0) }
        let hex = String(h, radix: 16)
        return cacheDir + "/" + (path as NSString).lastPathComponent + "." + String(repeating: "0", count: 16 - hex.count) + hex + suffix
    }

    /// Reads the CSV text at `path` and writes its cache to `out`.
    static func convert(_ path: String, key: CSVCache.Key, to out: String) throws {
        let reader = try LineReader(path)
        func bad(_ why: String) -> DataError { .malformed(file: path, problem: why) }
        var splitter = FieldSplitter()
        guard let (headerLine, headerText) = try reader.nextNonBlank() else { throw bad("is empty; a CSV data set needs a header row naming the columns") }
        var head = Array(UnsafeBufferPointer(headerText))
        if head.starts(with: [0xEF, 0xBB, 0xBF]) { head.removeFirst(3) }
        let names = head.withUnsafeBufferPointer { splitter.names($0) }
        guard let labelColumn = names.firstIndex(of: key.label) else {
            let shown = names.prefix(12).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 12 ? ", ..." : "")
            throw bad("no column is named '\(key.label)' (line \(headerLine), the header, has \(shown)); data.label names the label column")
        }
        let features = names.count - 1
        guard features > 0 else { throw bad("the label column '\(key.label)' is its only column; there are no features") }
        let columns = names.enumerated().filter { $0.offset != labelColumn }.map { $0.element }
        let writer = try CacheWriter(out, header: CSVCache.header(key, rows: 0, features: features, columns: columns))
        var row = [Float](repeating: 0, count: features)
        var labels: [UInt8] = []
        var number = NumberParser()
        let fast = FastRow(columns: names.count, labelColumn: labelColumn)
        while let (line, text) = try reader.nextNonBlank() {
            if let label = row.withUnsafeMutableBufferPointer({ fast.parse(text, into: $0.baseAddress!) }) {
                labels.append(label)
                try writer.append(row)
                continue
            }
            // Quotes, or something wrong: the careful path, which names the problem.
            let fields = splitter.split(UnsafeBufferPointer(text))
            guard fields.count == names.count else {
                throw bad("line \(line) has \(fields.count) columns but the header (line \(headerLine)) has \(names.count); every row needs one value per column")
            }
            var k = 0
            let rowIndex = labels.count
            for (c, f) in fields.enumerated() {
                let field = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(text)[f])
                if c == labelColumn {
                    guard let v = number.double(field), v == v.rounded(), v >= 0, v < 256 else {
                        throw bad("line \(line), column '\(key.label)': \"\(String(decoding: field, as: UTF8.self))\" is not a class number; "
                                  + "labels are whole numbers from 0 to 255")
                    }
                    labels.append(UInt8(v))
                    continue
                }
                guard let v = number.float(field) else {
                    let shown = String(decoding: field, as: UTF8.self).trimmingCharacters(in: .whitespaces)
                    throw bad("line \(line), column '\(names[c])': " + (shown.isEmpty ? "empty; every feature needs a value" : "\"\(shown.prefix(40))\" is not a number"))
                }
                guard v.isFinite else {
                    throw bad("line \(line) (row \(rowIndex)), column '\(names[c])': \(v.isNaN ? "NaN" : "\(v)") in the features; every feature must be a finite number")
                }
                row[k] = v
                k += 1
            }
            try writer.append(row)
        }
        guard !labels.isEmpty else { throw bad("has a header but no rows; there are no samples") }
        try writer.finish(labels: labels, header: CSVCache.header(key, rows: labels.count, features: features, columns: columns))
    }
}

/// The common line, parsed where it lies: no quotes, every field a number
/// that strtof (features) or strtod (the label) reads whole, the label a
/// whole number from 0 to 255. Each field is cut with a NUL written over
/// the comma after it (the line's buffer has a spare byte after the line
/// for the last field), then the byte is put back. nil: the line needs the
/// careful path (quotes, or a problem to name).
struct FastRow {
    let columns: Int
    let labelColumn: Int

    func parse(_ line: UnsafeMutableBufferPointer<UInt8>, into row: UnsafeMutablePointer<Float>) -> UInt8? {
        let base = line.baseAddress!, n = line.count
        if memchr(base, 0x22, n) != nil { return nil }
        var p = 0, col = 0, k = 0
        var label: UInt8 = 0
        while true {
            guard col < columns else { return nil }
            let e = memchr(base + p, 0x2C, n - p).map { $0.assumingMemoryBound(to: UInt8.self) - base } ?? n
            let saved = base[e]
            base[e] = 0
            defer { base[e] = saved }
            let start = UnsafeMutableRawPointer(base + p).assumingMemoryBound(to: CChar.self)
            var end: UnsafeMutablePointer<CChar>?
            if col == labelColumn {
                let v = strtod(start, &end)
                guard whole(end, from: p, to: e, base), v == v.rounded(), v >= 0, v < 256 else { return nil }
                label = UInt8(v)
            } else {
                let v = strtof(start, &end)
                guard whole(end, from: p, to: e, base), v.isFinite else { return nil }
                row[k] = v
                k += 1
            }
            col += 1
            if e == n { break }
            p = e + 1
        }
        return col == columns ? label : nil
    }

    /// Whether the number ended at `end` took something and only spaces follow up to `e`.
    @inline(__always)
    func whole(_ end: UnsafeMutablePointer<CChar>?, from p: Int, to e: Int, _ base: UnsafeMutablePointer<UInt8>) -> Bool {
        guard let end else { return false }
        var q = UnsafeMutableRawPointer(end).assumingMemoryBound(to: UInt8.self) - base
        guard q > p else { return false }
        while q < e && (base[q] == 0x20 || base[q] == 0x09) { q += 1 }
        return q == e
    }
}

/// Splits a line into fields at commas outside double quotes.
struct FieldSplitter {
    var ranges: [Range<Int>] = []

    /// The fields' byte ranges (a quoted field's range is inside its quotes).
    mutating func split(_ line: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        ranges.removeAll(keepingCapacity: true)
        var i = 0
        let n = line.count
        while true {
            var start = i
            while start < n && line[start] == 0x20 { start += 1 }
            if start < n && line[start] == 0x22 {   // "quoted"
                var j = start + 1
                while j < n && !(line[j] == 0x22 && (j + 1 >= n || line[j + 1] != 0x22)) { j += line[j] == 0x22 ? 2 : 1 }
                ranges.append((start + 1)..<min(j, n))
                i = j + 1
                while i < n && line[i] != 0x2C { i += 1 }
            } else {
                var j = i
                while j < n && line[j] != 0x2C { j += 1 }
                ranges.append(i..<j)
                i = j
            }
            if i >= n { break }
            i += 1   // the comma
            if i == n { ranges.append(n..<n); break }
        }
        return ranges
    }

    /// The header's column names, trimmed, with "" in quoted names unescaped.
    mutating func names(_ line: UnsafeBufferPointer<UInt8>) -> [String] {
        split(line).map {
            String(decoding: UnsafeBufferPointer(rebasing: line[$0]), as: UTF8.self)
                .replacingOccurrences(of: "\"\"", with: "\"").trimmingCharacters(in: .whitespaces)
        }
    }
}

/// Numbers of fields through strtof/strtod on a NUL-terminated copy.
struct NumberParser {
    var scratch = [CChar](repeating: 0, count: 128)

    mutating func float(_ f: UnsafeBufferPointer<UInt8>) -> Float? {
        parse(f) { p, end in strtof(p, end) }
    }

    mutating func double(_ f: UnsafeBufferPointer<UInt8>) -> Double? {
        parse(f) { p, end in strtod(p, end) }
    }

    mutating func parse<T>(_ f: UnsafeBufferPointer<UInt8>, _ conv: (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T? {
        var lo = 0, hi = f.count
        while lo < hi && (f[lo] == 0x20 || f[lo] == 0x09) { lo += 1 }
        while hi > lo && (f[hi - 1] == 0x20 || f[hi - 1] == 0x09) { hi -= 1 }
        guard hi > lo, hi - lo < scratch.count else { return nil }
        return scratch.withUnsafeMutableBufferPointer { s -> T? in
            for k in lo..<hi { s[k - lo] = CChar(bitPattern: f[k]) }
            s[hi - lo] = 0
            var end: UnsafeMutablePointer<CChar>?
            let v = conv(s.baseAddress!, &end)
            return end == s.baseAddress! + (hi - lo) ? v : nil
        }
    }
}
