import Foundation
import PSNumerics

/// Seeds: when PSTRAIN_FUZZ_SEEDS names a folder, a harness's
/// LLVMFuzzerInitialize writes its seed inputs there and exits, so that the
/// committed corpus (fuzz/corpus/<target>) can be regenerated from the code
/// that defines the formats.
public func writeSeedsIfAsked(_ make: () throws -> [(String, [UInt8])]) {
    guard let dir = ProcessInfo.processInfo.environment["PSTRAIN_FUZZ_SEEDS"] else { return }
    do {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, bytes) in try make() {
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        exit(0)
    } catch {
        fputs("cannot write seeds: \(error)\n", stderr)
        exit(2)
    }
}

/// A private temporary folder for a harness that must hand files to the code under test.
/// Under $TMPDIR (scripts/fuzz points it into its work folder, so that a
/// harness killed by a finding leaves nothing behind elsewhere).
public func makeTempDir(_ tag: String) -> String {
    let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    var t = Array("\(base)/pstrain-fuzz-\(tag)-XXXXXX".utf8CString)
    guard let p = mkdtemp(&t) else { fatalError("mkdtemp failed") }
    return String(cString: p)
}

/// Writes `bytes` to `path`, replacing it.
public func writeFile(_ path: String, _ bytes: UnsafeBufferPointer<UInt8>) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "cannot create \(path)")
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        precondition(n > 0, "cannot write \(path)")
        off += n
    }
    close(fd)
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// What a harness hands its test function for an empty input (libFuzzer may pass a null pointer).
public let emptyInput = UnsafePointer<UInt8>(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))

/// Runs libFuzzer's driver on the command line with `callback` as
/// LLVMFuzzerTestOneInput. SwiftPM links an executable's main to its
/// module's top-level code, so the harnesses are main.swift files that set
/// up, then call this (rather than relying on libFuzzer's own main).
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}

/// A click-log batch of `rows` rows is well-formed: labels 0 or 1, `dense`
/// finite features a row, per field offsets from 0, non-decreasing and
/// ending at the ids, and finite weights, one per id or none (the ctr and
/// cache targets).
public func checkBatch(_ b: CTRBatch, rows: Int, dense: Int) {
    precondition(b.rows == rows && b.labels.count == rows && b.dense.count == rows * dense)
    precondition(b.labels.allSatisfy { $0 == 0 || $0 == 1 } && b.dense.allSatisfy { $0.isFinite })
    for f in 0..<b.offsets.count {
        let o = b.offsets[f]
        precondition(o.count == rows + 1 && o[0] == 0 && Int(o[rows]) == b.ids[f].count)
        precondition(zip(o, o.dropFirst()).allSatisfy { $0 <= $1 })
        precondition(b.weights[f].isEmpty || b.weights[f].count == b.ids[f].count)
        precondition(b.weights[f].allSatisfy { $0.isFinite })
    }
}
