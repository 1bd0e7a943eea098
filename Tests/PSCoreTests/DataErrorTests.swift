import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSData
@testable import PSConfig

/// A bad data file is refused with a message that names the file, the array
/// or column (and the row or line) and the problem.
final class DataErrorTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = TestFiles.tempDir("data-errors") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let x12: [UInt8] = (0..<12).map { UInt8($0) }

    /// The message of opening `file` (written from `bytes`) as train and test set.
    func open(_ format: DataFormat, _ name: String, _ bytes: [UInt8], label: String = "label", classes: Int = 0) -> String {
        TestFiles.write(dir + "/" + name, bytes)
        var r = DataRequest()
        r.format = format; r.train = dir + "/" + name; r.test = r.train; r.label = label; r.classes = classes
        return TestFiles.message { _ = try DataSplit.open(r) }
    }

    func csv(_ name: String, _ text: String, label: String = "label") -> String { open(.csv, name, Array(text.utf8), label: label) }

    func assertNames(_ m: String, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(m.isEmpty, "no error", file: file, line: line)
        for p in parts { XCTAssertTrue(m.contains(p), "'\(p)' missing in: \(m)", file: file, line: line) }
    }

    func testWrongDtypeIsNamed() {
        let y: (String, [Int], [UInt8]) = ("|u1", [3], [0, 1, 2])
        assertNames(open(.npz, "i64.npz", TestFiles.npz(x: ("<i8", [3, 2], [UInt8](repeating: 0, count: 48)), y: y)),
                    ["i64.npz", "array 'x'", "dtype int64", "uint8, float32 or float64"])
        assertNames(open(.npz, "fy.npz", TestFiles.npz(x: ("|u1", [3, 4], Self.x12), y: ("<f4", [3], [UInt8](repeating: 0, count: 12)))),
                    ["fy.npz", "array 'y'", "dtype float32", "labels must be integers"])
        assertNames(open(.npz, "f16.npz", TestFiles.npz(x: ("<f2", [3, 2], [UInt8](repeating: 0, count: 12)), y: y)),
                    ["f16.npz", "array 'x'", "float16"])
        assertNames(open(.npz, "be.npz", TestFiles.npz(x: (">f4", [3, 1], [UInt8](repeating: 0, count: 12)), y: y)),
                    ["be.npz", "array 'x'", "big-endian"])
        assertNames(open(.npz, "obj.npz", TestFiles.npz(x: ("|O", [3, 1], [UInt8](repeating: 0, count: 24)), y: y)),
                    ["obj.npz", "array 'x'", "object"])
        assertNames(open(.npz, "fo.npz", TestFiles.zip([("x.npy", TestFiles.npy("|u1", [3, 4], Self.x12, fortran: true)),
                                                         ("y.npy", TestFiles.npy(y.0, y.1, y.2))])),
                    ["fo.npz", "array 'x'", "Fortran order"])
        assertNames(open(.safetensors, "bf.safetensors", TestFiles.safetensors([("x", "BF16", [3, 2], [UInt8](repeating: 0, count: 12)),
                                                                               ("y", "U8", [3], [0, 1, 2])])),
                    ["bf.safetensors", "tensor 'x'", "dtype BF16"])
    }

    func testRaggedCSVRowNamesTheLine() {
        assertNames(csv("r.csv", "label,a,b\n1,2,3\n0,4\n"), ["r.csv", "line 3 has 2 columns", "the header (line 1) has 3"])
        assertNames(csv("r2.csv", "label,a\n1,2\n\n0,4,5\n"), ["r2.csv", "line 4 has 3 columns"])
        assertNames(csv("e.csv", "label,a,b\n1,,3\n"), ["e.csv", "line 2, column 'a': empty"])
        assertNames(csv("w.csv", "label,a,b\n1,x7,3\n"), ["w.csv", "line 2, column 'a'", "\"x7\" is not a number"])
    }

    func testLabelsOutOfRangeAreNamed() {
        let x = ("|u1", [3, 4], Self.x12)
        assertNames(open(.npz, "big.npz", TestFiles.npz(x: x, y: ("<i4", [3], TestFiles.bytes([Int32(1), 300, 2])))),
                    ["big.npz", "array 'y' row 1: label 300 is out of range", "0 to 255"])
        assertNames(open(.safetensors, "neg.safetensors", TestFiles.safetensors([("x", "U8", [3, 4], Self.x12),
                                                                                 ("y", "I64", [3], TestFiles.bytes([Int64(0), 1, -1]))])),
                    ["neg.safetensors", "tensor 'y' row 2: label -1 is out of range"])
        assertNames(open(.npz, "cls.npz", TestFiles.npz(x: x, y: ("|u1", [3], [0, 9, 2])), classes: 4),
                    ["cls.npz", "array 'y' row 1: label 9 is not a class in 0..<4", "data.classes = 4"])
        assertNames(csv("l.csv", "a,label\n1,3.5\n"), ["l.csv", "line 2, column 'label'", "\"3.5\" is not a class number"])
        assertNames(csv("l2.csv", "a,label\n1,2\n1,256\n"), ["l2.csv", "line 3, column 'label'", "\"256\""])
    }

    func testNonFiniteFeaturesNameTheRow() {
        var v = [Float](repeating: 1, count: 8)
        v[5] = .nan
        assertNames(open(.npz, "nan.npz", TestFiles.npz(x: ("<f4", [4, 2], TestFiles.bytes(v)), y: ("|u1", [4], [0, 1, 0, 1]))),
                    ["nan.npz", "array 'x' row 2, feature 1: NaN"])
        var d = [Double](repeating: 0, count: 6)
        d[4] = -.infinity
        assertNames(open(.safetensors, "inf.safetensors", TestFiles.safetensors([("x", "F64", [3, 2], TestFiles.bytes(d)),
                                                                                 ("y", "U8", [3], [0, 1, 2])])),
                    ["inf.safetensors", "tensor 'x' row 2, feature 0: -inf"])
        assertNames(csv("n.csv", "label,a,b\n1,2,3\n0,nan,1\n"), ["n.csv", "line 3 (row 1), column 'a': NaN"])
        assertNames(csv("i.csv", "label,a,b\n1,2,1e39\n"), ["i.csv", "line 2 (row 0), column 'b': inf"])
    }

    /// A zero axis does not hide an impossible shape: (0, 2^62, 2^62) passed
    /// the size check and trapped the worker (issue 20).
    func testZeroAxisShapesAreRefused() {
        let huge = [0, 1 << 62, 1 << 62]
        assertNames(open(.npz, "z.npz", TestFiles.npz(x: ("<f4", huge, []), y: ("|u1", [0], []))), ["z.npz", "array 'x'", "too large"])
        assertNames(open(.safetensors, "z.safetensors", TestFiles.safetensors([("x", "F32", huge, []), ("y", "U8", [0], [])])),
                    ["z.safetensors", "tensor 'x'", "too large"])
        assertNames(open(.npz, "z2.npz", TestFiles.npz(x: ("<f8", [0, 1 << 40, 1 << 20], []), y: ("|u1", [0], []))), ["z2.npz", "too large"])
        assertNames(open(.npz, "empty.npz", TestFiles.npz(x: ("<f4", [0, 3], []), y: ("|u1", [0], []))), ["empty.npz", "holds no samples"])
    }

    /// Values are checked in the precision they are used in (issue 20):
    /// float64 features beyond FP32's range, and a normalisation that takes
    /// finite features beyond it, trained to NaN and exited 0.
    func testFeaturesAreCheckedInFP32() {
        var d = [Double](repeating: 0.5, count: 6)
        d[3] = 1e39
        assertNames(open(.safetensors, "big.safetensors", TestFiles.safetensors([("x", "F64", [3, 2], TestFiles.bytes(d)), ("y", "U8", [3], [0, 1, 2])])),
                    ["big.safetensors", "tensor 'x' row 1, feature 1", "beyond FP32's range"])
        d[3] = 3e38
        XCTAssertEqual(open(.safetensors, "edge.safetensors", TestFiles.safetensors([("x", "F64", [3, 2], TestFiles.bytes(d)), ("y", "U8", [3], [0, 1, 2])])), "")
        // Finite features, a tiny deviation: the inputs would be infinite.
        let f: [Float] = [1, 2, 3e30, 4, 5, 6]
        let file = TestFiles.safetensors([("x", "F32", [3, 2], TestFiles.bytes(f)), ("y", "U8", [3], [0, 1, 2])])
        TestFiles.write(dir + "/n.safetensors", file)
        var r = DataRequest()
        r.format = .safetensors; r.train = dir + "/n.safetensors"; r.test = r.train
        r.normalize = .scalar; r.mean = 0; r.std = 1e-10
        assertNames(TestFiles.message { _ = try DataSplit.open(r) }, ["n.safetensors", "feature 0", "normalised is inf", "data.std"])
        r.std = 1
        XCTAssertEqual(TestFiles.message { _ = try DataSplit.open(r) }, "")
        // data.std as FP32 uses it: 1e-50 was 0 there.
        var c = Config()
        XCTAssertThrowsError(try c.apply(override: "data.std=1e-50")) { e in XCTAssertTrue("\(e)".contains("data.std"), "\(e)") }
        XCTAssertNoThrow(try c.apply(override: "data.std=1e-30"))
    }

    /// An edited CSV cache is checked like the file (its key is the CSV's
    /// size and time, not its contents): NaN written into one trained (issue 20).
    func testEditedCSVCacheIsChecked() throws {
        XCTAssertEqual(csv("c.csv", "label,a,b\n1,2,3\n0,4,5\n"), "")
        let cache = dir + "/c.csv.pstrain-cache"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: cache)))
        let offset = Int(UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 48, as: UInt64.self) }))
        bytes.replaceSubrange(offset + 4..<offset + 8, with: TestFiles.bytes([Float.nan]))
        TestFiles.write(cache, bytes)
        var r = DataRequest()
        r.format = .csv; r.train = dir + "/c.csv"; r.test = r.train; r.label = "label"
        assertNames(TestFiles.message { _ = try DataSplit.open(r) }, ["c.csv", "row 0, feature 1: NaN"])
    }

    func testCountMismatchIsNamed() {
        assertNames(open(.npz, "m.npz", TestFiles.npz(x: ("|u1", [3, 4], Self.x12), y: ("|u1", [2], [0, 1]))),
                    ["m.npz", "array 'x' holds 3 samples but array 'y' holds 2 labels"])
        assertNames(open(.safetensors, "m.safetensors", TestFiles.safetensors([("x", "U8", [4, 3], Self.x12), ("y", "U8", [3], [0, 1, 2])])),
                    ["m.safetensors", "tensor 'x' holds 4 samples but tensor 'y' holds 3 labels"])
        assertNames(open(.npz, "y2.npz", TestFiles.npz(x: ("|u1", [2, 6], Self.x12), y: ("|u1", [2, 2], [0, 1, 1, 0]))),
                    ["y2.npz", "array 'y' has shape [2, 2]", "shape [n]"])
        assertNames(open(.npz, "x1.npz", TestFiles.npz(x: ("|u1", [12], Self.x12), y: ("|u1", [12], Self.x12))),
                    ["x1.npz", "array 'x' has shape [12]"])
    }

    func testMissingArrayOrColumnIsNamed() {
        assertNames(open(.npz, "noy.npz", TestFiles.zip([("x.npy", TestFiles.npy("|u1", [3, 4], Self.x12)),
                                                          ("labels.npy", TestFiles.npy("|u1", [3], [0, 1, 2]))])),
                    ["noy.npz", "has no array 'y'", "it holds x, labels", "numpy.savez(path, x=features, y=labels)"])
        assertNames(open(.safetensors, "nox.safetensors", TestFiles.safetensors([("y", "U8", [3], [0, 1, 2])])),
                    ["nox.safetensors", "has no tensor 'x'", "it holds y"])
        assertNames(csv("nol.csv", "class,a\n1,2\n"), ["nol.csv", "no column is named 'label'", "'class', 'a'", "data.label"])
        assertNames(csv("only.csv", "label\n1\n"), ["only.csv", "only column"])
        assertNames(csv("empty.csv", ""), ["empty.csv", "empty"])
        assertNames(csv("head.csv", "label,a\n"), ["head.csv", "no rows"])
    }

    func testTruncatedFilesAreNamed() {
        let good = TestFiles.npz(x: ("|u1", [3, 4], Self.x12), y: ("|u1", [3], [0, 1, 2]))
        assertNames(open(.npz, "half.npz", Array(good.prefix(good.count / 2))), ["half.npz", "no end-of-central-directory record"])
        // The npy header promises more data than the member holds.
        let short = TestFiles.zip([("x.npy", Array(TestFiles.npy("|u1", [3, 4], Self.x12).dropLast(5))), ("y.npy", TestFiles.npy("|u1", [3], [0, 1, 2]))])
        assertNames(open(.npz, "short.npz", short), ["short.npz", "array 'x'", "truncated", "needs 12 bytes", "holds 7"])
        let st = TestFiles.safetensors([("x", "U8", [3, 4], Self.x12), ("y", "U8", [3], [0, 1, 2])])
        assertNames(open(.safetensors, "cut.safetensors", Array(st.dropLast(2))), ["cut.safetensors", "tensor 'y'", "truncated"])
        assertNames(open(.safetensors, "head.safetensors", Array(st.prefix(20))), ["head.safetensors", "header length"])
        assertNames(open(.npz, "zero.npz", []), ["zero.npz", "empty"])
        // A compressed member whose bytes are damaged.
        var z = TestFiles.zip([("x.npy", TestFiles.npy("|u1", [3, 4], Self.x12)), ("y.npy", TestFiles.npy("|u1", [3], [0, 1, 2]))])
        z[8] = 8   // local header of x.npy: method deflate; the central directory says stored
        z[z.count - 22 - 2 * 46 - 5 - 5 + 10] = 8   // central directory entry of x.npy: method 8 over stored bytes
        assertNames(open(.npz, "deflate.npz", z), ["deflate.npz", "x.npy"])
    }

    func testMissingFilesNameTheKey() {
        var r = DataRequest()
        r.format = .npz; r.train = dir + "/nothing.npz"; r.test = r.train
        let m = TestFiles.message { _ = try DataSplit.open(r) }
        XCTAssertTrue(m.contains("not found") && m.contains("nothing.npz") && m.contains("data.train"), m)
        r.format = .csv
        XCTAssertTrue(TestFiles.message { _ = try DataSplit.open(r) }.contains("data.train"))
    }

    /// A FIFO (or any file that is not a regular one) named as data or
    /// configuration is refused at once; it used to hang the reader until
    /// the start-up deadline (issue 20).
    func testPipesAreRefusedWithoutWaiting() {
        let fifo = dir + "/train-images-idx3-ubyte"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let start = Date()
        for format in [DataFormat.idx, .npz, .safetensors, .csv] {
            var r = DataRequest()
            r.format = format; r.train = fifo; r.test = fifo
            assertNames(TestFiles.message { _ = try DataSplit.open(r) }, ["train-images-idx3-ubyte", "not a regular file"])
        }
        XCTAssertThrowsError(try Config.load(path: fifo)) { e in XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)") }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "no read waited for a writer")
    }
}
