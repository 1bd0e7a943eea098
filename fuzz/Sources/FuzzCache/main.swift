// The data caches as a reader meets them (issue 20: an edited cache was
// trusted): the input is written as the binary cache of a small source file,
// with the source's key (size and time) written over its header's, so that
// mutations reach what the key does not cover. The first byte picks the
// cache (its value mod 3; 0: a Criteo cache, 1: a libsvm cache, 2: a CSV
// cache); the rest is the cache. CTR caches are opened and every row is
// gathered, forwards, backwards and at both ends; each batch must be
// well-formed with finite values. A CSV cache is opened through CSV.open
// and its values checked (checkFinite). A cache that fails its header
// checks is made again from the source, as pstrain does.
import Foundation
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSData

let dir = makeTempDir("cache")
let criteoSource = dir + "/c.tsv", svmSource = dir + "/s.svm", csvSource = dir + "/t.csv"

func write(_ path: String, _ text: String) {
    Array(text.utf8).withUnsafeBufferPointer { writeFile(path, $0) }
}

func setUp() throws {
    write(criteoSource, ["1\t3\t-1\t\t0\t9\t\t\t\t\t\t\t\t12\t68fd1e64\t\t0\tFFFFFFFFFFFFFFFF" + String(repeating: "\ta", count: 22),
                         "0" + String(repeating: "\t", count: 39),
                         "1\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13" + String(repeating: "\t1f", count: 26)].joined(separator: "\n") + "\n")
    write(svmSource, "+1 3:0.5 17:2 3:1e-3\n-1\t0:1\n0\n1 18446744073709551615:-2.5\n")
    write(csvSource, "label,a,b\n1,2,3\n0,-4.5,1e3\n1,0,0\n")
    _ = try CTRFile.open(criteoSource, format: .criteo)
    _ = try CTRFile.open(svmSource, format: .libsvm)
    _ = try CSV.open(csvSource, label: "label", cacheDir: "", what: "data.train")
}

func cachePath(_ k: Int) -> String {
    [criteoSource + ".pstrain-ctr", svmSource + ".pstrain-ctr", csvSource + ".pstrain-cache"][k]
}

func seeds() throws -> [(String, [UInt8])] {
    let valid = try (0..<3).map { k in [UInt8(k)] + Array(try Data(contentsOf: URL(fileURLWithPath: cachePath(k)))) }
    // Issue 20: NaN written into a Criteo cache (record 1, dense feature 0) and a CSV cache (its first value) trained silently.
    var criteoNaN = valid[0], csvNaN = valid[2]
    let nan = withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Array($0) }
    criteoNaN.replaceSubrange((1 + 320 + 272 + 208)..<(1 + 320 + 272 + 212), with: nan)
    let offset = Int(UInt64(littleEndian: csvNaN.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 1 + 48, as: UInt64.self) }))
    csvNaN.replaceSubrange((1 + offset)..<(1 + offset + 4), with: nan)
    return [("criteo", valid[0]), ("libsvm", valid[1]), ("csv", valid[2]), ("criteo-nan", criteoNaN), ("csv-nan", csvNaN)]
}

/// The source's key (size, seconds, nanoseconds: bytes 8..<32 of both cache headers).
func key(_ path: String) -> [UInt8] {
    var st = stat()
    precondition(stat(path, &st) == 0)
    return [Int64(st.st_size), Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec)].withUnsafeBytes { Array($0) }
}

@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let k = Int(data[0]) % 3
    let source = [criteoSource, svmSource, csvSource][k]
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if bytes.count >= 32 { bytes.replaceSubrange(8..<32, with: key(source)) }
    bytes.withUnsafeBufferPointer { writeFile(cachePath(k), $0) }
    if k == 2 {
        guard let s = try? CSV.open(csvSource, label: "label", cacheDir: "", what: "data.train") else { return 0 }
        precondition(s.count == s.labels.count && s.count > 0)
        _ = try? s.checkFinite(name: "features")
        return 0
    }
    guard let f = try? CTRFile.open(source, format: k == 0 ? .criteo : .libsvm) else { return 0 }
    var b = CTRBatch(fields: f.fieldCount)
    for order in [Array(0..<f.count), Array((0..<f.count).reversed()), [0, f.count - 1].filter { $0 >= 0 }] {
        b.removeAll(fields: f.fieldCount)
        guard (try? f.gather(order, into: &b)) != nil else { return 0 }
        checkBatch(b, rows: order.count, dense: f.denseCount)
    }
    return 0
}

do { try setUp() } catch { fatalError("cannot write the cache fuzzer's files: \(error)") }
atexit { try? FileManager.default.removeItem(atPath: dir) }
writeSeedsIfAsked { try seeds() }
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
