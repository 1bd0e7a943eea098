import Foundation
import PSSupport

/// What each rank announces at start-up, exchanged with one allgather of
/// fixed-size records before the world is known (so not a framed message):
/// its role, configuration and build hashes, pid, host, run directory and
/// any start-up error. The only code that knows the record's byte layout.
public struct RankHello: Equatable {
    public static let size = 1024
    /// Where each text field lies in the encoded hello: a UInt16 length, then
    /// at most `length - 2` bytes of UTF-8.
    static let hostField = (offset: 32, length: 64)
    static let runDirField = (offset: 96, length: 416)
    static let errorField = (offset: 512, length: 480)
    /// The longest run directory (UTF-8 bytes) a hello carries whole. The
    /// ranks write where rank 0's hello says: a longer path would be cut and
    /// the run written elsewhere, so `checkRunDir` refuses it.
    public static let maxRunDirBytes = runDirField.length - 2

    /// Refuses a run directory whose UTF-8 form does not fit in the hello.
    public static func checkRunDir(_ path: String) throws {
        let n = path.utf8.count
        if n > maxRunDirBytes {
            throw PSError("the run directory path is \(n) bytes long (UTF-8), more than the \(maxRunDirBytes) bytes the ranks can "
                + "exchange at start-up; choose a shorter path: \(path)")
        }
    }

    public var role: Role
    public var configHash: UInt64
    public var buildHash: UInt64
    public var pid: Int32
    public var configLength: Int
    public var host: String
    public var runDir: String
    /// Non-empty when the rank failed before training (bad config, missing data).
    public var error: String
    /// Training samples this rank sees (workers; 0 on servers).
    public var trainCount: Int

    public init(role: Role, configHash: UInt64, buildHash: UInt64, pid: Int32, configLength: Int,
                host: String, runDir: String, error: String, trainCount: Int = 0) {
        self.role = role; self.configHash = configHash; self.buildHash = buildHash; self.pid = pid
        self.configLength = configLength; self.host = host; self.runDir = runDir; self.error = error
        self.trainCount = trainCount
    }

    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: RankHello.size)
        b[0] = role.rawValue
        func put<T: FixedWidthInteger>(_ v: T, _ off: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[off + i] = x } }
        }
        // Cuts what does not fit. The host and the error are only shown (the
        // host name is at most 64 bytes on Linux, so at worst its end is
        // lost); the run directory is checked beforehand (`checkRunDir`).
        func putString(_ s: String, _ field: (offset: Int, length: Int)) {
            let u = Array(s.utf8.prefix(field.length - 2))
            put(UInt16(u.count), field.offset)
            for (i, x) in u.enumerated() { b[field.offset + 2 + i] = x }
        }
        put(configHash, 8); put(buildHash, 16); put(pid, 24); put(UInt32(configLength), 28)
        putString(host, Self.hostField)
        putString(runDir, Self.runDirField)
        putString(error, Self.errorField)
        put(UInt64(trainCount), 1000)
        return b
    }

    public static func decode(_ b: [UInt8]) -> RankHello? {
        guard b.count == size, let role = Role(rawValue: b[0]) else { return nil }
        func get<T: FixedWidthInteger>(_ off: Int, _: T.Type) -> T {
            var v: T = 0
            withUnsafeMutableBytes(of: &v) { for i in 0..<MemoryLayout<T>.size { $0[i] = b[off + i] } }
            return T(littleEndian: v)
        }
        func getString(_ field: (offset: Int, length: Int)) -> String {
            let n = min(Int(get(field.offset, UInt16.self)), field.length - 2)
            return String(decoding: b[(field.offset + 2)..<(field.offset + 2 + n)], as: UTF8.self)
        }
        return RankHello(role: role, configHash: get(8, UInt64.self), buildHash: get(16, UInt64.self),
                         pid: get(24, Int32.self), configLength: Int(get(28, UInt32.self)),
                         host: getString(hostField), runDir: getString(runDirField), error: getString(errorField),
                         trainCount: Int(get(1000, UInt64.self)))
    }
}
