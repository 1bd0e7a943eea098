// The click-log readers of data.format "criteo" and "libsvm": the input,
// written to a file, is opened as the training and test set through
// CTRSplit.open (the line parsers, the conversion into the binary cache and
// the cache's header checks), and an accepted set gathers every row, its
// first and last rows and its rows backwards; each batch must be
// well-formed (offsets from 0, non-decreasing, ending at the ids; labels 0
// or 1; finite dense features; one weight per id or none), and a second
// open (which reuses the cache) must give the same rows. The first byte
// picks the format (its value mod 2; 0: criteo, 1: libsvm) and whether a
// quarter of the training file is held out (value / 2 odd); the rest is
// the file.
import Foundation
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSData

let dir = makeTempDir("ctr")

func seeds() -> [(String, [UInt8])] {
    let criteo = ["1\t3\t-1\t\t0\t9\t\t\t\t\t\t\t\t12\t68fd1e64\t\t0\tFFFFFFFFFFFFFFFF" + String(repeating: "\ta", count: 22),
                  "0" + String(repeating: "\t", count: 39),
                  "1\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13" + String(repeating: "\t1f", count: 26)].joined(separator: "\n") + "\n"
    let svm = "# comment\n+1 3:0.5 17:2 3:1e-3\n-1\t0:1  # trailing\n\n0\n1 18446744073709551615:-2.5\n"
    return [("criteo", [0] + Array(criteo.utf8)), ("criteo-validation", [2] + Array(criteo.utf8)),
            ("libsvm", [1] + Array(svm.utf8)), ("libsvm-validation", [3] + Array(svm.utf8)),
            // Issue 20: an infinite FP32 weight, and NUL-padded tokens that strtod cut short.
            ("libsvm-1e39", [1] + Array("1 2:1 4:1e39\n".utf8)),
            ("libsvm-nul-label", [1] + Array("1".utf8) + [UInt8](repeating: 0, count: 130) + Array(" 2:1\n".utf8)),
            ("libsvm-nul-value", [1] + Array("1 3:1".utf8) + [UInt8](repeating: 0, count: 130) + Array("junk\n".utf8))]
}

func rows(_ s: any CTRSource, _ idx: [Int]) -> CTRBatch {
    var b = CTRBatch(fields: s.fieldCount)
    try! s.gather(idx, into: &b)
    checkBatch(b, rows: idx.count, dense: s.denseCount)
    return b
}

@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let path = dir + "/input.txt"
    writeFile(path, UnsafeBufferPointer(start: data + 1, count: size - 1))
    var r = DataRequest()
    r.format = data[0] % 2 == 0 ? .criteo : .libsvm; r.train = path; r.test = path; r.cacheDir = dir + "/cache"
    r.validation = (Int(data[0]) / 2) % 2 == 1 ? 0.25 : 0
    if let split = try? CTRSplit.open(r) {
        for set in [split.train, split.test] + (split.validation.map { [$0] } ?? []) where set.count > 0 {
            let all = rows(set, Array(0..<set.count))
            _ = rows(set, [0, set.count - 1])
            _ = rows(set, Array((0..<set.count).reversed()))
            precondition(all.labels == rows(set, Array(0..<set.count)).labels)
        }
        let again = try! CTRSplit.open(r)
        let a = rows(split.test, Array(0..<split.test.count)), b = rows(again.test, Array(0..<again.test.count))
        precondition(a.ids == b.ids && a.offsets == b.offsets && a.labels == b.labels)
        precondition(a.dense.map(\.bitPattern) == b.dense.map(\.bitPattern) && a.weights.map { $0.map(\.bitPattern) } == b.weights.map { $0.map(\.bitPattern) })
    }
    try? FileManager.default.removeItem(atPath: dir + "/cache")
    return 0
}

atexit { try? FileManager.default.removeItem(atPath: dir) }
writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
