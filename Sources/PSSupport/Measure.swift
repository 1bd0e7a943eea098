import Foundation

/// Peak resident memory of this process, in bytes (getrusage).
public func peakRSSBytes() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
}

public func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

/// XXH64 of a Float range: the parameter digest runs log and tests compare.
public func digest(_ p: UnsafePointer<Float>, count: Int) -> String {
    hex64(xxh64(UnsafeRawBufferPointer(start: p, count: count * 4)))
}

/// Monotonic seconds, for durations.
@inlinable public func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The folder of this process's executable (/proc/self/exe; argv[0] where
/// that cannot be read): where the rank executables are looked for.
public func executableDirectory() -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return (exe as NSString).deletingLastPathComponent
}
