import Foundation

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR. Returns 0,
/// or the errno of the failure (ENOSPC, EPIPE, EIO...). Used instead of
/// Foundation's FileHandle.write, which traps on such errors.
@discardableResult
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        if n == 0 { return EIO }
        off += n
    }
    return 0
}

@discardableResult
public func writeAll(_ fd: Int32, _ text: String) -> Int32 {
    var t = text
    return t.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
}

/// Writes `text` to standard output or error; a closed pipe or a full disk
/// loses the text but never stops the program (SIGPIPE must be ignored, as
/// the launcher and the ranks do).
public enum Console {
    public static func out(_ text: String) { writeAll(1, text) }
    public static func err(_ text: String) { writeAll(2, text) }
}
