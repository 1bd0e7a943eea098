// Durable writes and hashing: what checkpoints, run.toml, exports and the
// normalization file are written and checked with.

import Crypto
import Foundation

/// SHA-256 (swift-crypto) of bytes in memory, as 64 lowercase hex digits.
public func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    var hasher = SHA256()
    hasher.update(bufferPointer: bytes)
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

public func sha256Hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { sha256Hex($0) } }

/// Durable file-system steps, each failure a message naming the path.
public enum Durable {
    /// The failure of `what` on `path`, with the system's reason (errno).
    public static func errno(_ what: String, _ path: String) -> DurableError {
        DurableError.io("\(what) \(path): \(String(cString: strerror(Foundation.errno)))")
    }

    /// Creates `path` (which must not exist), writes all of `bytes`, fsyncs it.
    public static func writeNew(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw errno("cannot create", path) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 { if Foundation.errno == EINTR { continue }; throw errno("cannot write", path) }
                off += n
            }
        }
        if fsync(fd) != 0 { throw errno("cannot fsync", path) }
    }

    public static func fsyncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw errno("cannot open folder", path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw errno("cannot fsync folder", path) }
    }

    /// Replaces `path` with `text` atomically: temporary file, fsync, rename,
    /// fsync of the folder. On failure the temporary file is removed.
    public static func replace(_ path: String, with text: String) throws {
        try replace(path, bytes: Array(text.utf8))
    }

    /// Replaces `path` with `bytes` atomically, as `replace(_:with:)`.
    public static func replace(_ path: String, bytes: [UInt8]) throws {
        let parent = (path as NSString).deletingLastPathComponent
        let dir = parent.isEmpty ? "." : parent   // a bare file name lives in the working folder
        let tmp = "\(path).tmp-\(getpid())"
        unlink(tmp)
        do {
            try writeNew(tmp, bytes)
            if rename(tmp, path) != 0 { throw errno("cannot rename \(tmp) to", path) }
        } catch {
            unlink(tmp)  // whatever failed, no temporary file stays behind
            throw error
        }
        try fsyncDirectory(dir)
    }

    /// Bytes free for an unprivileged writer on the file system holding `path`.
    public static func freeBytes(_ path: String) -> Int? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// Refuses to start a write of `bytes` when the file system lacks room for it plus a margin.
    public static func checkRoom(_ dir: String, for bytes: Int) throws {
        // Test hook: skip the check, so that a test reaches the write's own ENOSPC.
        if ProcessInfo.processInfo.environment["PSTRAIN_TEST_NO_ROOM_CHECK"] == "1" { return }
        let margin = 1 << 20
        if let free = freeBytes(dir), free < bytes + margin {
            throw DurableError.noRoom(dir: dir, neededMB: bytes / 1_000_000 + 1, freeMB: free / 1_000_000)
        }
    }
}

/// Why a durable write failed. Each case carries the whole message, which names the path.
public enum DurableError: UserFacingError, Equatable {
    /// The system refused a file operation; the message gives its reason.
    case io(String)
    /// Not enough free space for a file (checked before writing).
    case noRoom(dir: String, neededMB: Int, freeMB: Int)

    public var description: String {
        switch self {
        case .io(let m): return m
        case .noRoom(let dir, let need, let free):
            return "not enough free space in \(dir): a checkpoint file needs \(need) MB, \(free) MB are free"
        }
    }
}
