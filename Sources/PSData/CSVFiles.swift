import Foundation
import PSSupport

// The file handling of the CSV conversion: lines in, the cache out, and the
// lock that lets one worker convert while the others wait.

/// Reads a file line by line through a growing buffer (a line may be longer
/// than the buffer). A line excludes its "\n" and a "\r" before it; the
/// byte after a line is always in the buffer and may be overwritten
/// (FastRow cuts its last field there).
final class LineReader {
    let path: String
    let fd: Int32
    var buffer: UnsafeMutablePointer<UInt8>
    var capacity = 1 << 20
    var start = 0, end = 0
    var atEOF = false
    /// The number of the line returned last (1-based).
    var number = 0

    init(_ path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        buffer = .allocate(capacity: capacity + 1)
    }

    deinit { close(fd); buffer.deallocate() }

    /// The next line with anything but spaces in it, and its number; nil at the end.
    func nextNonBlank() throws -> (Int, UnsafeMutableBufferPointer<UInt8>)? {
        while let l = try next() {
            if l.contains(where: { $0 != 0x20 && $0 != 0x09 }) { return (number, l) }
        }
        return nil
    }

    /// The next line (valid until the next call), nil at the end of the file.
    func next() throws -> UnsafeMutableBufferPointer<UInt8>? {
        while true {
            if let nl = memchr(buffer + start, 0x0A, end - start) {
                let at = nl.assumingMemoryBound(to: UInt8.self) - buffer
                defer { start = at + 1 }
                return line(start, at)
            }
            if atEOF {
                guard start < end else { return nil }
                defer { start = end }
                return line(start, end)
            }
            try fill()
        }
    }

    func line(_ a: Int, _ b: Int) -> UnsafeMutableBufferPointer<UInt8> {
        number += 1
        let hi = b > a && buffer[b - 1] == 0x0D ? b - 1 : b
        return UnsafeMutableBufferPointer(start: buffer + a, count: hi - a)
    }

    /// Moves the partial line to the front (growing the buffer when it fills it) and reads more.
    func fill() throws {
        if start > 0 {
            (buffer).update(from: buffer + start, count: end - start)
            end -= start; start = 0
        }
        if end == capacity {
            let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2 + 1)
            bigger.update(from: buffer, count: end)
            buffer.deallocate()
            buffer = bigger; capacity *= 2
        }
        while true {
            let n = read(fd, buffer + end, capacity - end)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
            if n == 0 { atEOF = true } else { end += n }
            return
        }
    }
}

/// Writes a cache file: the header, the feature rows as they come, then the
/// labels; the header is written again with the row count and the file is
/// synced before the caller renames it into place.
final class CacheWriter {
    let path: String
    let fd: Int32
    /// What the file is, for messages ("the CSV cache").
    let what: String
    var pending: [UInt8] = []

    init(_ path: String, header: [UInt8], what: String = "the CSV cache") throws {
        self.path = path
        self.what = what
        // A new file, never one found at the path: in a shared folder a link
        // planted at a predictable temporary name must not send the write to
        // its target. unlink removes a link itself (never what it points to);
        // O_EXCL | O_NOFOLLOW refuses whatever appears there in between.
        unlink(path)
        fd = open(path, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DataError.unreadable(file: path, reason: "cannot write \(what): \(String(cString: strerror(errno))) (the folder must be writable)")
        }
        pending.reserveCapacity(1 << 22)
        pending += header
    }

    deinit { close(fd) }

    func append(_ row: [Float]) throws {
        row.withUnsafeBytes { pending.append(contentsOf: $0) }
        if pending.count >= 1 << 22 { try flush() }
    }

    func append(bytes: UnsafeRawBufferPointer) throws {
        pending.append(contentsOf: bytes)
        if pending.count >= 1 << 22 { try flush() }
    }

    func flush() throws {
        try pending.withUnsafeBytes { try writeAll($0, at: nil) }
        pending.removeAll(keepingCapacity: true)
    }

    func writeAll(_ b: UnsafeRawBufferPointer, at offset: Int?) throws {
        var done = 0
        while done < b.count {
            let n = offset.map { pwrite(fd, b.baseAddress! + done, b.count - done, off_t($0 + done)) } ?? write(fd, b.baseAddress! + done, b.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DataError.unreadable(file: path, reason: "cannot write \(what): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    func finish(labels: [UInt8], header: [UInt8]) throws {
        pending += labels
        try finish(header: header)
    }

    /// Writes what is pending, the header again at 0, and syncs the file.
    func finish(header: [UInt8]) throws {
        try flush()
        try header.withUnsafeBytes { try writeAll($0, at: 0) }
        guard fsync(fd) == 0 else { throw DataError.unreadable(file: path, reason: "cannot sync \(what): \(String(cString: strerror(errno)))") }
    }
}

/// An exclusive flock on `<cache>.lock`, held while a worker checks and
/// (if needed) makes the cache.
final class CacheLock {
    let fd: Int32

    init(_ path: String, what: String = "CSV") throws {
        fd = open(path, O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DataError.unreadable(file: path, reason: "cannot create the \(what) cache's lock file: \(String(cString: strerror(errno))) "
                                       + "(the cache goes to the run directory, or next to the \(what) file when there is none: it must be writable)")
        }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
    }

    func release() { close(fd) }
}
