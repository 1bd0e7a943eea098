import XCTest
import Foundation
@testable import PSSupport
@testable import PSNumerics
@testable import PSData
@testable import PSConfig

/// Click logs (issue 13): the Criteo and libsvm parsers, their binary
/// cache, CTRFile's gather, CTRSplit and the synthetic generator.
final class CTRDataTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = TestFiles.tempDir("ctr") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A Criteo line: label, 13 integer fields, 26 categorical fields (missing ones empty).
    static func criteo(_ label: String, _ ints: [String] = [], _ cats: [String] = []) -> String {
        ([label] + (0..<13).map { $0 < ints.count ? ints[$0] : "" } + (0..<26).map { $0 < cats.count ? cats[$0] : "" }).joined(separator: "\t")
    }

    func write(_ name: String, _ text: String) -> String {
        let p = dir + "/" + name
        TestFiles.write(p, Array(text.utf8))
        return p
    }

    func all(_ s: any CTRSource) throws -> CTRBatch {
        var b = CTRBatch(fields: s.fieldCount)
        try s.gather(Array(0..<s.count), into: &b)
        return b
    }

    /// The rows of a text file parsed line by line (the reference that gather must equal), one batch per row.
    func parsedRows(_ path: String, format: DataFormat) throws -> [CTRBatch] {
        let reader = try LineReader(path)
        var rows: [CTRBatch] = [], row = CTRRow()
        while let l = try reader.next() {
            let line = UnsafeBufferPointer(l)
            var b = CTRBatch(fields: format == .criteo ? 26 : 1)
            if format == .criteo {
                if line.isEmpty { continue }
                try Criteo.parse(line, into: &row, file: path, line: reader.number)
                row.appendFixed(to: &b)
            } else {
                if !LibSVM.holdsRow(line) { continue }
                try LibSVM.parse(line, into: &row, file: path, line: reader.number)
                row.appendBag(to: &b)
            }
            rows.append(b)
        }
        return rows
    }

    /// Row batches end to end, as one gather of those rows would give them.
    func concatenated(_ rows: [CTRBatch], fields: Int) -> CTRBatch {
        var b = CTRBatch(fields: fields)
        for r in rows {
            b.rows += 1
            b.labels += r.labels
            b.dense += r.dense
            for f in 0..<fields {
                b.ids[f] += r.ids[f]
                b.weights[f] += r.weights[f]
                b.offsets[f].append(Int32(b.ids[f].count))
            }
        }
        return b
    }

    func assertSame(_ a: CTRBatch, _ b: CTRBatch, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.rows, b.rows, file: file, line: line)
        XCTAssertEqual(a.labels, b.labels, file: file, line: line)
        XCTAssertEqual(a.dense.map(\.bitPattern), b.dense.map(\.bitPattern), file: file, line: line)
        XCTAssertEqual(a.offsets, b.offsets, file: file, line: line)
        XCTAssertEqual(a.ids, b.ids, file: file, line: line)
        XCTAssertEqual(a.weights.map { $0.map(\.bitPattern) }, b.weights.map { $0.map(\.bitPattern) }, file: file, line: line)
    }

    func assertNames(_ m: String, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(m.isEmpty, "no error", file: file, line: line)
        for p in parts { XCTAssertTrue(m.contains(p), "'\(p)' missing in: \(m)", file: file, line: line) }
    }

    // MARK: Criteo

    func testCriteoFieldsEmptyNegativeAndSixteenDigitHex() throws {
        let text = [Self.criteo("1", ["3", "-2", "", "0", "+7"], ["ffffffffffffffff", "", "A1b2", "0"]),
                    "",
                    Self.criteo("0", [], []) + "\r"].joined(separator: "\n") + "\n"
        let f = try CTRFile.open(write("c.tsv", text), format: .criteo)
        XCTAssertEqual([f.count, f.denseCount, f.fieldCount], [2, 13, 26])
        let b = try all(f)
        XCTAssertEqual(b.labels, [1, 0])
        XCTAssertEqual(Array(b.dense[0..<5]), [Float(log1p(3.0)), 0, 0, 0, Float(log1p(7.0))])
        XCTAssertEqual(b.dense.count, 26)
        XCTAssertEqual(Array(b.dense[13...]), [Float](repeating: 0, count: 13), "an empty row: every dense feature 0")
        XCTAssertEqual(b.ids[0], [UInt64.max])
        XCTAssertEqual(b.offsets[0], [0, 1, 1])
        XCTAssertEqual(b.ids[1], [], "an empty field is an empty bag")
        XCTAssertEqual(b.offsets[1], [0, 0, 0])
        XCTAssertEqual(b.ids[2], [0xA1B2])
        XCTAssertEqual(b.ids[3], [0])
        XCTAssertEqual(b.weights[0], [], "Criteo ids weigh 1")
        XCTAssertEqual(f.idLimits[0], UInt64.max)
        XCTAssertEqual(f.idLimits[2], 0xA1B3)
        XCTAssertEqual(f.idLimits[1], 0)
    }

    func testCriteoErrorsNameFileLineFieldAndFix() {
        let good = Self.criteo("0", ["1"], ["a"])
        func message(_ bad: String) -> String {
            let p = write("bad.tsv", good + "\n" + bad + "\n")
            return TestFiles.message { _ = try CTRFile.open(p, format: .criteo) }
        }
        assertNames(message(Array(good.split(separator: "\t", omittingEmptySubsequences: false).dropLast()).joined(separator: "\t")),
                    ["bad.tsv line 2", "field C26", "the line has 39 fields", "without labels", "40 fields separated by tabs"])
        assertNames(message(good + "\tx"), ["bad.tsv line 2", "field after C26", "41 fields"])
        assertNames(message(Self.criteo("2")), ["bad.tsv line 2", "field label", "\"2\" is not 0 or 1", "0 (no click) or 1 (click)"])
        assertNames(message(Self.criteo("1", ["", "", "3.5"])), ["line 2", "field I3", "\"3.5\" is not an integer", "whole numbers"])
        assertNames(message(Self.criteo("1", ["99999999999999999999"])), ["line 2", "field I1", "not an integer (or is out of the 64-bit range)"])
        assertNames(message(Self.criteo("1", ["-"])), ["field I1", "\"-\" is not an integer"])
        assertNames(message(Self.criteo("1", [], ["", "", "", "", "", "", "12g4"])), ["line 2", "field C7", "\"12g4\" is not hexadecimal"])
        assertNames(message(Self.criteo("1", [], ["0x12"])), ["field C1", "\"0x12\" is not hexadecimal"])
        assertNames(message(Self.criteo("1", [], ["10000000000000000"])), ["field C1", "longer than 16 hexadecimal digits", "64 bits"])
        let empty = write("empty.tsv", "\n\n")
        assertNames(TestFiles.message { _ = try CTRFile.open(empty, format: .criteo) }, ["empty.tsv", "holds no rows"])
        assertNames(TestFiles.message { _ = try CTRFile.open(self.dir + "/none.tsv", format: .criteo, what: "data.test") },
                    ["none.tsv", "data.test"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") || $0.hasSuffix(".offsets") }, [],
                       "a failed conversion leaves no temporary file")
    }

    // MARK: libsvm

    func testLibSVMLabelsWeightsAndComments() throws {
        let text = "# a comment line\n+1 3:0.5 17:2 3:1e-3\n-1\t0:1  # trailing comment\n\n0\n1 18446744073709551615:-2.5\n   \n"
        let f = try CTRFile.open(write("s.svm", text), format: .libsvm)
        XCTAssertEqual([f.count, f.denseCount, f.fieldCount], [4, 0, 1])
        let b = try all(f)
        XCTAssertEqual(b.labels, [1, 0, 0, 1])
        XCTAssertEqual(b.dense, [])
        XCTAssertEqual(b.ids[0], [3, 17, 3, 0, UInt64.max])
        XCTAssertEqual(b.weights[0], [0.5, 2, 1e-3, 1, -2.5])
        XCTAssertEqual(b.offsets[0], [0, 3, 4, 4, 5], "a row without pairs is an empty bag")
        XCTAssertEqual(f.idLimits, [UInt64.max])
    }

    func testLibSVMErrorsNameFileLineFieldAndFix() {
        func message(_ bad: String) -> String {
            let p = write("bad.svm", "1 1:1\n" + bad + "\n")
            return TestFiles.message { _ = try CTRFile.open(p, format: .libsvm) }
        }
        assertNames(message("2 1:1"), ["bad.svm line 2", "field label", "\"2\" is not 0/1 or -1/+1", "-1 is read as 0"])
        assertNames(message("yes 1:1"), ["line 2", "field label", "\"yes\""])
        assertNames(message("1 1:1 5"), ["line 2", "field pair 2 \"5\"", "no ':'", "label index:value"])
        assertNames(message("1 -3:1"), ["line 2", "field pair 1 \"-3:1\"", "index \"-3\" is not a non-negative integer"])
        assertNames(message("1 a:1"), ["pair 1", "index \"a\""])
        assertNames(message("1 :1"), ["pair 1", "index \"\""])
        assertNames(message("1 99999999999999999999:1"), ["pair 1", "not a non-negative integer (below 2^64)"])
        assertNames(message("1 4:x"), ["pair 1", "the value \"x\" is not a number"])
        assertNames(message("1 4:"), ["pair 1", "the value \"\" is not a number"])
        assertNames(message("1 4:nan"), ["pair 1", "\"nan\" is not finite"])
        assertNames(message("1 2:1 4:1e39"), ["pair 2", "\"1e39\" is not finite (as FP32)"])
        assertNames(message("1 4:1.5.2"), ["pair 1", "\"1.5.2\" is not a number"])
        // A NUL ends a C string: "1" and 130 NULs was read as the label 1 (found by the Python bridge's differential test).
        assertNames(message("1" + String(repeating: "\0", count: 130) + " 2:1"), ["line 2", "field label"])
        assertNames(message("1 3:1" + String(repeating: "\0", count: 130) + "junk"), ["line 2", "pair 1", "is not a number"])
        assertNames(message("1 3:1\0"), ["line 2", "pair 1", "is not a number"])
        // A bound on the rows one sample asks the servers for (ServerTables.requestRowLimit).
        let many = "1" + (0...LibSVM.maxPairsPerRow).map { " \($0):1" }.joined()
        assertNames(message(many), ["line 2", "field pair 65537", "more than 65536 index:value pairs"])
        XCTAssertEqual(message("1" + (0..<LibSVM.maxPairsPerRow).map { " \($0):1" }.joined()), "", "65,536 pairs are fine")
    }

    // MARK: The cache

    func testCacheIsReusedRebuiltOnChangeAndOnDamage() throws {
        let text = (0..<50).map { Self.criteo(String($0 % 2), [String($0)], [String($0, radix: 16)]) }.joined(separator: "\n") + "\n"
        let path = write("c.tsv", text), cacheDir = dir + "/run/data-cache"
        let f = try CTRFile.open(path, format: .criteo, cacheDir: cacheDir)
        XCTAssertTrue(f.cachePath.hasPrefix(cacheDir + "/c.tsv.") && f.cachePath.hasSuffix(".pstrain-ctr"), f.cachePath)
        XCTAssertEqual(try CTRFile.open(path, format: .criteo).cachePath, path + ".pstrain-ctr")
        let size = try FileManager.default.attributesOfItem(atPath: f.cachePath)[.size] as! Int
        XCTAssertEqual(size, 320 + 50 * 272, "header (80 + 26 x 8 rounded up to 64) + 50 records of 272 bytes")
        let made = try FileManager.default.attributesOfItem(atPath: f.cachePath)[.modificationDate] as! Date
        usleep(20_000)
        let again = try CTRFile.open(path, format: .criteo, cacheDir: cacheDir)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: f.cachePath)[.modificationDate] as? Date, made, "reused, not made again")
        XCTAssertEqual(try all(again).ids[0], (0..<50).map { UInt64($0) })
        // The file changes: made again.
        _ = write("c.tsv", Self.criteo("1", ["5"], ["ff"]) + "\n")
        let changed = try CTRFile.open(path, format: .criteo, cacheDir: cacheDir)
        XCTAssertEqual(changed.count, 1)
        XCTAssertEqual(try all(changed).ids[0], [255])
        // A damaged (truncated) cache: made again.
        XCTAssertEqual(truncate(changed.cachePath, 300), 0)
        let repaired = try CTRFile.open(path, format: .criteo, cacheDir: cacheDir)
        XCTAssertEqual(try all(repaired).labels, [1])
        // The same file read as libsvm gets a cache of that format (and its own parse).
        let svm = write("x.txt", "1 2:3\n")
        XCTAssertEqual(try CTRFile.open(svm, format: .libsvm).fieldCount, 1)
        assertNames(TestFiles.message { _ = try CTRFile.open(svm, format: .criteo) }, ["x.txt line 1", "the line has 1 fields"])
        XCTAssertEqual(try CTRFile.open(svm, format: .libsvm).count, 1)
    }

    /// A cache's temporary file is created anew: a link planted at its
    /// name in a shared folder is replaced, its target left alone (issue 20).
    func testCacheWritesDoNotFollowPlantedLinks() throws {
        let path = write("l.tsv", Self.criteo("1", ["5"], ["ff"]) + "\n")
        let victim = write("victim.txt", "precious\n")
        let cache = path + ".pstrain-ctr"
        for pid in [getpid()] {
            try FileManager.default.createSymbolicLink(atPath: cache + ".tmp-\(pid)", withDestinationPath: victim)
        }
        let f = try CTRFile.open(path, format: .criteo)
        XCTAssertEqual(f.count, 1)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious\n", "the link's target is untouched")
        var st = stat()
        XCTAssertEqual(lstat(cache, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG, "the cache is a file of its own")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache + ".tmp-\(getpid())"))
        // The same for the CSV cache.
        let csv = write("t.csv", "label,a\n1,2\n")
        try FileManager.default.createSymbolicLink(atPath: csv + ".pstrain-cache.tmp-\(getpid())", withDestinationPath: victim)
        _ = try CSV.open(csv, label: "label", cacheDir: "", what: "data.train")
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious\n")
    }

    /// An edited Criteo cache: its values are checked as rows are read (a
    /// NaN dense feature trained silently, issue 20).
    func testEditedCTRCacheIsRefusedWhenRead() throws {
        let path = write("e.tsv", Self.criteo("1", ["5"], ["ff"]) + "\n" + Self.criteo("0", ["7"], ["aa"]) + "\n")
        let f = try CTRFile.open(path, format: .criteo)
        XCTAssertEqual(try all(f).labels, [1, 0])
        let fd = Foundation.open(f.cachePath, O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var nan = Float.nan.bitPattern.littleEndian
        XCTAssertEqual(pwrite(fd, &nan, 4, off_t(320 + 272 + 26 * 8)), 4, "record 1, dense feature 0")
        close(fd)
        let again = try CTRFile.open(path, format: .criteo)
        assertNames(TestFiles.message { _ = try all(again) }, [".pstrain-ctr", "damaged", "dense feature of nan", "e.tsv"])
    }

    func testGatherEqualsParseForRandomRows() throws {
        let rows = 700
        var c = "", s = ""
        for r in 0..<rows {
            let h = { (k: Int) in CounterRNG.bits(seed: 5, stream: UInt64(k), index: UInt64(r)) }
            let ints = (0..<13).map { j in h(j) % 5 == 0 ? "" : String(Int64(h(100 + j) % 2000) - 100) }
            let cats = (0..<26).map { f in h(200 + f) % 7 == 0 ? "" : String(h(300 + f) >> (h(400 + f) % 64), radix: 16) }
            c += Self.criteo(String(h(999) % 2), ints, cats) + "\n"
            let pairs = (0..<Int(h(500) % 40)).map { k in "\(h(600 + k) % 100_000):\(Float(Int64(h(700 + k) % 2000) - 1000) / 64)" }
            s += ([h(998) % 2 == 0 ? "-1" : "+1"] + pairs).joined(separator: " ") + (r % 9 == 0 ? " # note" : "") + "\n"
        }
        for (format, path) in [(DataFormat.criteo, write("r.tsv", c)), (.libsvm, write("r.svm", s))] {
            let reference = try parsedRows(path, format: format)
            XCTAssertEqual(reference.count, rows)
            // A small buffer (a few records) so that runs are cut into several reads.
            let f = try CTRFile.open(path, format: format, bufferBytes: 2000)
            XCTAssertEqual(f.count, rows)
            for trial in 0..<20 {
                let n = 1 + Int(CounterRNG.bits(seed: 9, stream: 1, index: UInt64(trial)) % 300)
                var idx = (0..<n).map { Int(CounterRNG.bits(seed: 9, stream: 2 + UInt64(trial), index: UInt64($0)) % UInt64(rows)) }
                if trial % 3 == 0 { let a = idx[0] % (rows - n); idx = Array(a..<(a + n)) }   // one consecutive run
                if trial % 3 == 1 { idx += idx.prefix(5) }                                     // repeats
                var b = CTRBatch(fields: f.fieldCount)
                try f.gather(idx, into: &b)
                assertSame(b, concatenated(idx.map { reference[$0] }, fields: f.fieldCount))
                // Appending to a batch that holds rows, then emptied and reused.
                try f.gather([idx[0]], into: &b)
                XCTAssertEqual(b.rows, idx.count + 1)
                b.removeAll(fields: f.fieldCount)
                try f.gather(idx, into: &b)
                assertSame(b, concatenated(idx.map { reference[$0] }, fields: f.fieldCount))
            }
            var b = CTRBatch()
            assertNames(TestFiles.message { try f.gather([0, rows], into: &b) }, ["row \(rows)", "rows 0..<\(rows)"])
            assertNames(TestFiles.message { try f.gather([-1], into: &b) }, ["row -1"])
        }
    }

    // MARK: Splits

    func testValidationIsHeldOutFromTheEndOfTheTrainingFile() throws {
        let train = write("t.tsv", (0..<40).map { Self.criteo(String($0 % 2), [], [String($0, radix: 16)]) }.joined(separator: "\n"))
        let test = write("u.tsv", Self.criteo("1", [], ["abc"]) + "\n")
        var r = DataRequest()
        r.format = .criteo; r.train = train; r.test = test; r.validation = 0.25; r.cacheDir = dir + "/cache"
        let split = try CTRSplit.open(r)
        XCTAssertEqual([split.train.count, split.test.count, split.validation?.count], [30, 1, 10])
        XCTAssertEqual([split.denseCount, split.fieldCount], [13, 26])
        XCTAssertEqual(try all(split.train).ids[0], (0..<30).map { UInt64($0) })
        XCTAssertEqual(try all(split.validation!).ids[0], (30..<40).map { UInt64($0) })
        XCTAssertEqual(split.idLimits[0], 0xABC + 1)
        var b = CTRBatch()
        try split.validation!.gather([9, 0], into: &b)
        XCTAssertEqual(b.ids[0], [39, 30])
        assertNames(TestFiles.message { try split.validation!.gather([10], into: &b) }, ["row 10", "rows 30..<40", "rows 0..<10"])
        r.validation = 0
        XCTAssertNil(try CTRSplit.open(r).validation)
        r.validation = 0.01
        assertNames(TestFiles.message { _ = try CTRSplit.open(r) }, ["data.validation = 0.01", "holds out none"])
    }

    func testDenseSplitRefusesClickLogsAndCTRSplitNeedsOne() throws {
        let p = write("t.tsv", Self.criteo("1") + "\n")
        var r = DataRequest()
        r.format = .criteo; r.train = p; r.test = p
        assertNames(TestFiles.message { _ = try DataSplit.open(r) }, ["data.format = \"criteo\"", "model.tables"])
        r.format = .csv
        assertNames(TestFiles.message { _ = try CTRSplit.open(r) }, ["data.format = \"csv\"", "\"criteo\" or \"libsvm\""])
        var d = DataSection()
        d.kind = .synthetic
        assertNames(TestFiles.message { _ = try CTRSplit.load(d) }, ["data.kind = \"synthetic\"", "pstrain data make-ctr"])
        d.kind = .fashionMNIST; d.format = .libsvm; d.train = write("a.svm", "1 1:1\n0 2:1\n"); d.test = d.train
        let s = try CTRSplit.load(d, runDir: dir + "/run")
        XCTAssertEqual([s.train.count, s.denseCount, s.fieldCount], [2, 0, 1])
        XCTAssertTrue(FileManager.default.fileExists(atPath: try CSV.cachePath(d.train, cacheDir: dir + "/run/data-cache", suffix: ".pstrain-ctr")))
        // The launcher makes the caches before the ranks start.
        try DataSplit.prepare(d, runDir: dir + "/run2")
        XCTAssertTrue(FileManager.default.fileExists(atPath: try CSV.cachePath(d.train, cacheDir: dir + "/run2/data-cache", suffix: ".pstrain-ctr")))
        d.test = ""
        assertNames(TestFiles.message { _ = try CTRSplit.load(d) }, ["data.test is empty"])
    }

    // MARK: Memory

    /// Reading every row of a file several times larger than the buffer, a
    /// few times over, leaves the resident set where it was (pread, no mapping).
    func testReadingEveryRowDoesNotGrowResidentMemory() throws {
        let rows = 70_000
        var text = ""
        text.reserveCapacity(rows * 120)
        for r in 0..<rows {
            text += Self.criteo(String(r & 1), [String(r % 977), "", String(r)], (0..<26).map { String((r * 31 + $0 * 7919) % 100_003, radix: 16) }) + "\n"
        }
        let f = try CTRFile.open(write("big.tsv", text), format: .criteo, bufferBytes: 1 << 16)
        text = ""
        let cacheBytes = try FileManager.default.attributesOfItem(atPath: f.cachePath)[.size] as! Int
        XCTAssertGreaterThan(cacheBytes, 16 << 20, "the cache is over 250 times the 64 KiB buffer")
        func resident() -> Int {
            let s = try! String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
            return Int(s[1])! * Int(sysconf(Int32(_SC_PAGESIZE)))
        }
        var b = CTRBatch(fields: 26)
        let batch = 512
        try f.gather(Array(0..<batch), into: &b)
        let before = resident()
        for pass in 0..<3 {
            for start in stride(from: 0, to: rows, by: batch) {
                b.removeAll(fields: 26)
                let idx = pass == 1 ? (0..<min(batch, rows - start)).map { (start + $0 * 7) % rows } : Array(start..<min(start + batch, rows))
                try f.gather(idx, into: &b)
            }
        }
        let grown = resident() - before
        XCTAssertLessThan(grown, cacheBytes / 4, "resident memory grew by \(grown) bytes reading a \(cacheBytes)-byte cache 3 times")
        XCTAssertEqual(b.labels.count, rows % batch == 0 ? batch : rows % batch)
    }

    // MARK: The generator

    func testMakeCTRIsDeterministic() throws {
        var o = CTRGeneratorOptions()
        o.trainRows = 3000; o.testRows = 1000; o.seed = 11
        let a = dir + "/a", b = dir + "/b", c = dir + "/c"
        _ = try CTRGenerator.write(o, to: a)
        _ = try CTRGenerator.write(o, to: b)
        for name in ["train.tsv", "test.tsv", "planted.json"] {
            XCTAssertEqual(FileManager.default.contents(atPath: a + "/" + name), FileManager.default.contents(atPath: b + "/" + name), name)
        }
        let toml = try String(contentsOfFile: a + "/ctr.toml", encoding: .utf8)
        XCTAssertEqual(toml.replacingOccurrences(of: a, with: b), try String(contentsOfFile: b + "/ctr.toml", encoding: .utf8))
        XCTAssertTrue(toml.contains("rows = 2000, dim = 16, mode = \"sum\", hash = false"))
        XCTAssertTrue(toml.contains("train = \"\(a)/train.tsv\""))
        o.seed = 12
        _ = try CTRGenerator.write(o, to: c)
        XCTAssertNotEqual(FileManager.default.contents(atPath: a + "/train.tsv"), FileManager.default.contents(atPath: c + "/train.tsv"))
        // The files read back: 26 fields, every id below its vocabulary.
        let f = try CTRFile.open(a + "/train.tsv", format: .criteo)
        XCTAssertEqual(f.count, 3000)
        for (k, v) in o.vocabularies.enumerated() { XCTAssertLessThanOrEqual(f.idLimits[k], UInt64(v), "C\(k + 1)") }
        let batch = try all(f)
        let empty = (0..<26).reduce(0) { $0 + 3000 - batch.ids[$1].count }
        XCTAssertEqual(Double(empty) / (26 * 3000), o.missing, accuracy: 0.01, "empty categorical fields")
        XCTAssertEqual(Double(batch.labels.reduce(0, +)) / 3000, 0.25, accuracy: 0.04, "click rate")
        assertNames(TestFiles.message { var p = o; p.vocabularies = [10]; _ = try CTRGenerator.write(p, to: c) }, ["--fields has 1", "26 categorical fields"])
        assertNames(TestFiles.message { _ = try CTRGeneratorOptions.preset("huge") }, ["unknown preset 'huge'", "tiny", "bench"])
        // Sizes that overflowed or crashed the allocator, and a folder that broke ctr.toml (issue 20): refused first.
        func refused(_ change: (inout CTRGeneratorOptions) -> Void, to out: String = c) -> String {
            var p = o
            change(&p)
            return TestFiles.message { _ = try CTRGenerator.write(p, to: out) }
        }
        assertNames(refused { $0.testRows = Int.max - 5 }, ["--test-rows", "at most 50000000"])
        assertNames(refused { $0.testRows = 1_000_000_000_000 }, ["--test-rows", "at most"])
        assertNames(refused { $0.trainRows = Int.max }, ["--train-rows", "at most"])
        assertNames(refused { $0.vocabularies[0] = Int(UInt32.max) }, ["C1 has a vocabulary of 4294967295", "1 to 100000000"])
        assertNames(refused { $0.vocabularies = Array(repeating: 50_000_000, count: 26) }, ["add up to 1300000000 ids"])
        assertNames(refused { $0.tableDim = 5000 }, ["--table-dim 5000"])
        assertNames(refused({ _ in }, to: dir + "/new\nline"), ["holds a control character (U+000A)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/new\nline"), "nothing written")
    }

    func testPlantedModelScoresInTheStatedRange() throws {
        let o = try CTRGeneratorOptions.preset("tiny")
        XCTAssertEqual(o.trainRows + o.testRows, 20_000)
        let s = try CTRGenerator.write(o, to: dir + "/tiny")
        XCTAssertGreaterThanOrEqual(s.testAUC, 0.75); XCTAssertLessThanOrEqual(s.testAUC, 0.85)
        XCTAssertGreaterThanOrEqual(s.trainClickRate, 0.2); XCTAssertLessThanOrEqual(s.trainClickRate, 0.3)
        XCTAssertGreaterThanOrEqual(s.testClickRate, 0.2); XCTAssertLessThanOrEqual(s.testClickRate, 0.3)
        XCTAssertGreaterThan(s.testLogLoss, 0.3); XCTAssertLessThan(s.testLogLoss, 0.56, "below the 0.56 of predicting the click rate")
        let json = try JSONSerialization.jsonObject(with: FileManager.default.contents(atPath: dir + "/tiny/planted.json")!) as! [String: Any]
        XCTAssertEqual(json["planted_test_auc"] as? Double ?? 0, s.testAUC, accuracy: 1e-12)
        XCTAssertEqual(json["seed"] as? Int, 1)
        XCTAssertEqual(json["total_ids"] as? Int, o.vocabularies.reduce(0, +))
        XCTAssertGreaterThanOrEqual(CTRGeneratorOptions.benchVocabularies.reduce(0, +), 10_000_000)
        XCTAssertEqual(Set(CTRGeneratorOptions.benchVocabularies).count, 26, "fields of different sizes")
        // The scorer itself: ties count one half, a perfect ranking scores 1.
        XCTAssertEqual(CTRGenerator.score([(0.1, false), (0.9, true), (0.5, true), (0.5, false)]).auc, 0.875, accuracy: 1e-12)
        XCTAssertEqual(CTRGenerator.score([(0.2, false), (0.8, true)]).auc, 1)
        XCTAssertEqual(CTRGenerator.score([(0.5, false), (0.5, true)]).logLoss, log(2), accuracy: 1e-9)
    }
}
