import Foundation

/// Converts a Criteo or libsvm text file into its cache (CTRCache): lines
/// are parsed one at a time and written as records, so the conversion's
/// memory does not grow with the file either. libsvm's offset table goes
/// to a side file first and is appended at the end.
enum CTRConvert {
    /// Reads `path` in `format` and writes its cache to `out`.
    static func convert(_ path: String, format: DataFormat, key: CTRCache.Key, to out: String) throws {
        let criteo = format == .criteo
        guard let (dense, fields) = format.clickLogColumns else { throw DataError.mismatch("\(path): data.format = \"\(format.rawValue)\" is not a click-log format") }
        var h = CTRCache.Header(key: key, dense: dense, fields: fields, recordBytes: criteo ? CTRCache.recordBytes(fields: fields, dense: dense) : 0)
        h.recordsOffset = h.bytes
        h.idLimits = Array(repeating: 0, count: fields)
        let writer = try CacheWriter(out, header: CTRCache.encode(h), what: "the \(format.rawValue) cache")
        let side = criteo ? nil : try CacheWriter(out + ".offsets", header: [], what: "the \(format.rawValue) cache's offsets")
        defer { if side != nil { unlink(out + ".offsets") } }
        let reader = try LineReader(path)
        var row = CTRRow(), record: [UInt8] = [], end: UInt64 = 0
        if let side { try withUnsafeBytes(of: UInt64(0)) { try side.append(bytes: $0) } }
        while let l = try reader.next() {
            let line = UnsafeBufferPointer(l)
            if criteo {
                guard !line.isEmpty else { continue }
                try Criteo.parse(line, into: &row, file: path, line: reader.number)
                encodeFixed(row, bytes: h.recordBytes, into: &record)
            } else {
                guard LibSVM.holdsRow(line) else { continue }
                try LibSVM.parse(line, into: &row, file: path, line: reader.number)
                encodeBag(row, into: &record)
                end += UInt64(record.count)
                try withUnsafeBytes(of: end.littleEndian) { try side!.append(bytes: $0) }
            }
            note(row, criteo: criteo, in: &h)
            try record.withUnsafeBytes { try writer.append(bytes: $0) }
        }
        guard h.rows > 0 else {
            throw DataError.malformed(file: path, problem: "holds no rows; a \(format.rawValue) file needs at least one line with a row")
        }
        if let side {
            try side.flush()
            h.tableOffset = h.recordsOffset + Int(end)
            try append(side.path, to: writer)
        }
        try writer.finish(header: CTRCache.encode(h))
    }

    /// Counts the row and its ids in the header.
    static func note(_ row: CTRRow, criteo: Bool, in h: inout CTRCache.Header) {
        h.rows += 1
        for (k, id) in row.ids.enumerated() {
            let f = criteo ? k : 0
            guard !criteo || row.present & (1 << UInt32(k)) != 0 else { continue }
            h.ids += 1
            h.idLimits[f] = max(h.idLimits[f], id == .max ? id : id + 1)
        }
    }

    /// Criteo's fixed record: fields x u64 ids, dense x f32, present bits, label.
    static func encodeFixed(_ row: CTRRow, bytes: Int, into record: inout [UInt8]) {
        record.removeAll(keepingCapacity: true)
        for id in row.ids { withUnsafeBytes(of: id.littleEndian) { record.append(contentsOf: $0) } }
        for v in row.dense { withUnsafeBytes(of: v.bitPattern.littleEndian) { record.append(contentsOf: $0) } }
        withUnsafeBytes(of: row.present.littleEndian) { record.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(row.label).littleEndian) { record.append(contentsOf: $0) }
        while record.count < bytes { record.append(0) }
    }

    /// libsvm's record: label, n, n ids, n weights.
    static func encodeBag(_ row: CTRRow, into record: inout [UInt8]) {
        record.removeAll(keepingCapacity: true)
        withUnsafeBytes(of: UInt32(row.label).littleEndian) { record.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(row.ids.count).littleEndian) { record.append(contentsOf: $0) }
        for id in row.ids { withUnsafeBytes(of: id.littleEndian) { record.append(contentsOf: $0) } }
        for w in row.weights { withUnsafeBytes(of: w.bitPattern.littleEndian) { record.append(contentsOf: $0) } }
    }

    /// Appends the file at `path` to `writer` in 1 MiB pieces.
    static func append(_ path: String, to writer: CacheWriter) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
            if n == 0 { return }
            try chunk.withUnsafeBytes { try writer.append(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}
