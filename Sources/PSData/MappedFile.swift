import Foundation
import PSNumerics

/// A regular file mapped read-only into memory (MAP_PRIVATE): pages are
/// read from the file (through the page cache, which every worker on a
/// machine shares) when a sample on them is first gathered.
public final class MappedFile: PageReleasing {
    public let path: String
    public let pointer: UnsafeRawPointer
    public let size: Int
    /// The file's modification time (seconds, nanoseconds) when mapped.
    public let modified: (seconds: Int, nanoseconds: Int)

    /// Maps `path`; `what` says what the file is for in the message when it
    /// does not exist ("data.train", "the labels of ...").
    /// A descriptor of `path` for reading, which must be a regular file:
    /// opened with O_NONBLOCK (so that a FIFO or a device cannot block the
    /// open), checked with fstat, then set blocking again.
    public static func openRegular(_ path: String, what: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { throw DataError.notFound(file: path, what: what) }
            throw DataError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw DataError.unreadable(file: path, reason: why)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw DataError.unreadable(file: path, reason: "not a regular file (a folder, pipe or device); name the data file itself")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    public init(_ path: String, what: String) throws {
        self.path = path
        let fd = try Self.openRegular(path, what: what)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        size = Int(st.st_size)
        modified = (Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec))
        guard size > 0 else { throw DataError.malformed(file: path, problem: "the file is empty (0 bytes)") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw DataError.unreadable(file: path, reason: "mmap: \(String(cString: strerror(errno)))")
        }
        pointer = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: pointer), size) }

    /// The bytes [offset, offset + count), checked to lie inside the file.
    public func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
        return UnsafeRawBufferPointer(start: pointer + offset, count: count)
    }

    public func release(_ start: UnsafeRawPointer, bytes: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = max(0, (start - pointer) / page * page)
        let hi = min(size, start - pointer + bytes)
        guard hi > lo else { return }
        madvise(UnsafeMutableRawPointer(mutating: pointer + lo), hi - lo, MADV_DONTNEED)
    }
}
