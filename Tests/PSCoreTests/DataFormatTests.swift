import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSData
@testable import PSConfig

/// The data-set formats (idx, npz, csv, safetensors) read the same samples,
/// normalise them the same way, hold out validation rows from the end and
/// count classes as docs/config.md says.
final class DataFormatTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = TestFiles.tempDir("formats") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// 24 samples of shape [1, 3, 4] and 5 classes.
    static let n = 24, shape = [1, 3, 4], features = 12
    static let pixels: [UInt8] = (0..<(n * features)).map { (k: Int) -> UInt8 in UInt8((k * 37 + (k / 12) * 11) % 256) }
    static let labels: [UInt8] = (0..<n).map { (i: Int) -> UInt8 in UInt8((i * 7) % 5) }

    /// The set as files of each format; returns the path of each (train and test are the same file).
    func writeAll() -> [DataFormat: String] {
        let n = Self.n
        TestFiles.writeGz(dir + "/a-images-idx3-ubyte.gz", TestFiles.idx([n, 3, 4], Self.pixels))
        TestFiles.writeGz(dir + "/a-labels-idx1-ubyte.gz", TestFiles.idx([n], Self.labels))
        TestFiles.write(dir + "/a.npz", TestFiles.npz(x: ("|u1", [n, 1, 3, 4], Self.pixels), y: ("<i8", [n], TestFiles.bytes(Self.labels.map { Int64($0) }))))
        TestFiles.write(dir + "/a.safetensors", TestFiles.safetensors([("y", "I32", [n], TestFiles.bytes(Self.labels.map { Int32($0) })),
                                                                         ("x", "U8", [n, 1, 3, 4], Self.pixels)]))
        // Float features: the same values, not byte-scaled (a CSV holds numbers, not bytes).
        TestFiles.write(dir + "/f.npz", TestFiles.npz(x: ("<f4", [n, 12], TestFiles.bytes(Self.pixels.map { Float($0) })),
                                                      y: ("|u1", [n], Self.labels)))
        var csv = "label," + (0..<12).map { "p\($0)" }.joined(separator: ",") + "\n"
        for i in 0..<n { csv += "\(Self.labels[i])," + (0..<12).map { String(Self.pixels[i * 12 + $0]) }.joined(separator: ",") + "\n" }
        TestFiles.write(dir + "/f.csv", Array(csv.utf8))
        return [.idx: dir + "/a-images-idx3-ubyte.gz", .npz: dir + "/a.npz", .safetensors: dir + "/a.safetensors", .csv: dir + "/f.csv"]
    }

    func request(_ format: DataFormat, _ path: String, _ normalize: DataNormalize = .auto, validation: Double = 0) -> DataRequest {
        var r = DataRequest()
        r.format = format; r.train = path; r.test = path; r.normalize = normalize; r.validation = validation
        return r
    }

    /// idx, npz and safetensors of the same bytes gather the same Floats,
    /// bit for bit, under every normalisation; so do a CSV and an npz of the
    /// same float values. Shapes and labels as written.
    func testEveryFormatGivesTheSameSamples() throws {
        let files = writeAll()
        for norm in [DataNormalize.none, .scalar, .standardize] {
            let sets = try [DataFormat.idx, .npz, .safetensors].map { try DataSplit.open(request($0, files[$0]!, norm)).train }
            let ref = TestFiles.gatherAll(sets[0])
            XCTAssertEqual(ref.y, Self.labels)
            XCTAssertFalse(ref.x.contains { !$0.isFinite })
            for s in sets {
                XCTAssertEqual(s.shape, Self.shape)
                XCTAssertEqual(s.features, 12)
                XCTAssertEqual(s.classes, 5)
                let g = TestFiles.gatherAll(s)
                XCTAssertEqual(g.x.map { $0.bitPattern }, ref.x.map { $0.bitPattern }, "\(norm) \(s.samples.source)")
                XCTAssertEqual(g.y, ref.y)
            }
            let csv = try DataSplit.open(request(.csv, files[.csv]!, norm)).train
            let f32 = try DataSplit.open(request(.npz, dir + "/f.npz", norm)).train
            XCTAssertEqual(csv.shape, [12])
            XCTAssertEqual(csv.samples.columns, (0..<12).map { "p\($0)" })
            XCTAssertEqual(TestFiles.gatherAll(csv).x.map { $0.bitPattern }, TestFiles.gatherAll(f32).x.map { $0.bitPattern }, "\(norm) csv")
            XCTAssertEqual(TestFiles.gatherAll(csv).y, Self.labels)
        }
    }

    /// The default for idx is today's fixed Fashion-MNIST normalisation, bit
    /// for bit (the old code's expression with its constants); npz's default
    /// is "standardize".
    func testDefaultNormalisationOfIDXIsTodays() throws {
        let files = writeAll()
        let mean: Float = 0.2860, std: Float = 0.3530
        let scale: Float = 1 / (255 * std), shift: Float = -mean / std
        let old = Self.pixels.map { Float($0) * scale + shift }
        let g = TestFiles.gatherAll(try DataSplit.open(request(.idx, files[.idx]!)).train)
        XCTAssertEqual(g.x.map { $0.bitPattern }, old.map { $0.bitPattern })
        XCTAssertEqual(Normalization.fashionMNIST.scale.map { $0.bitPattern }, [scale.bitPattern])
        XCTAssertEqual(Normalization.fashionMNIST.shift.map { $0.bitPattern }, [shift.bitPattern])
        let npz = try DataSplit.open(request(.npz, files[.npz]!))
        XCTAssertNotNil(npz.statistics, "npz standardises by default")
        XCTAssertEqual(npz.train.normalization, .standardize(npz.statistics!, byteScaled: true))
    }

    /// Per-feature mean and population deviation, in FP64 from the first
    /// row's values: right to 1e-6 relative even on an offset of 1e6, a
    /// constant feature gets deviation 1, and the validation rows do not
    /// count. The standardised training features have mean 0 and
    /// deviation 1 (to 1e-4, and the FP32 mean's resolution).
    func testStandardizeComputesPerFeatureStatistics() throws {
        let n = 40, f = 3
        var x = [Double](repeating: 0, count: n * f)
        for i in 0..<n { x[i * f] = 1e6 + Double(i % 7) * 0.25; x[i * f + 1] = 5; x[i * f + 2] = sin(Double(i)) * 3 }
        TestFiles.write(dir + "/s.npz", TestFiles.npz(x: ("<f8", [n, f], TestFiles.bytes(x)), y: ("|u1", [n], [UInt8](repeating: 1, count: n))))
        let split = try DataSplit.open(request(.npz, dir + "/s.npz", .standardize, validation: 0.25))
        let s = try XCTUnwrap(split.statistics)
        let rows = 30   // 40 - floor(40 x 0.25)
        for j in 0..<f {
            let v = (0..<rows).map { x[$0 * f + j] }
            let m = v.reduce(0, +) / Double(rows)
            let sd = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(rows)).squareRoot()
            XCTAssertEqual(Double(s.mean[j]), m, accuracy: abs(m) * 1e-6 + 1e-6, "feature \(j)")
            XCTAssertEqual(Double(s.std[j]), sd == 0 ? 1 : sd, accuracy: sd * 1e-5 + 1e-6, "feature \(j)")
        }
        XCTAssertEqual(s.std[1], 1, "a constant feature is only shifted")
        let g = TestFiles.gatherAll(split.train).x
        for j in [0, 2] {
            let col = (0..<rows).map { Double(g[$0 * f + j]) }
            let m = col.reduce(0, +) / Double(rows)
            // To 1e-4, plus what an FP32 mean can resolve at the feature's offset (0.0625 at 1e6).
            XCTAssertEqual(m, 0, accuracy: 1e-4 + Double(s.mean[j].ulp / s.std[j]), "feature \(j)")
            XCTAssertEqual((col.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(rows)).squareRoot(), 1, accuracy: 1e-4)
        }
    }

    /// Statistics handed in (from a checkpoint) are used as they are.
    func testGivenStatisticsAreUsedInsteadOfComputed() throws {
        let files = writeAll()
        var r = request(.npz, files[.npz]!, .standardize)
        let given = FeatureStatistics(mean: (0..<12).map { Float($0) / 100 }, std: (0..<12).map { 0.5 + Float($0) / 10 })
        r.statistics = given
        let split = try DataSplit.open(r)
        XCTAssertEqual(split.statistics, given)
        XCTAssertEqual(split.train.normalization, .standardize(given, byteScaled: true))
        r.statistics = FeatureStatistics(mean: [0], std: [1])
        XCTAssertTrue(TestFiles.message { _ = try DataSplit.open(r) }.contains("1 features"))
    }

    /// data.validation = 0.25 of 24 holds out the last 6 rows of the training
    /// file; the test set is untouched; a fraction that holds out none is refused.
    func testValidationIsTheEndOfTheTrainingFile() throws {
        let files = writeAll()
        let whole = try DataSplit.open(request(.npz, files[.npz]!, .scalar))
        let split = try DataSplit.open(request(.npz, files[.npz]!, .scalar, validation: 0.25))
        XCTAssertNil(whole.validation)
        XCTAssertEqual(split.train.count, 18)
        XCTAssertEqual(split.test.count, 24)
        let v = try XCTUnwrap(split.validation)
        XCTAssertEqual(v.count, 6)
        XCTAssertEqual(v.rows, 18..<24)
        let all = TestFiles.gatherAll(whole.train), held = TestFiles.gatherAll(v), kept = TestFiles.gatherAll(split.train)
        XCTAssertEqual(held.x, Array(all.x[(18 * 12)...]))
        XCTAssertEqual(held.y, Array(all.y[18...]))
        XCTAssertEqual(kept.x, Array(all.x[..<(18 * 12)]))
        let m = TestFiles.message { _ = try DataSplit.open(request(.npz, files[.npz]!, validation: 0.01)) }
        XCTAssertTrue(m.contains("data.validation = 0.01") && m.contains("holds out none") && m.contains("a.npz"), m)
    }

    /// Classes: the training set's largest label + 1, or data.classes; a label
    /// outside them is refused, naming the file, the array and the row.
    func testClassesAreInferredOrGiven() throws {
        let files = writeAll()
        var r = request(.npz, files[.npz]!)
        XCTAssertEqual(try DataSplit.open(r).train.classes, 5)
        r.classes = 8
        XCTAssertEqual(try DataSplit.open(r).test.classes, 8)
        r.classes = 3
        var m = TestFiles.message { _ = try DataSplit.open(r) }
        XCTAssertTrue(m.contains("a.npz") && m.contains("array 'y' row 2: label 4 is not a class in 0..<3") && m.contains("data.classes = 3"), m)
        // A test label the training set does not have.
        TestFiles.write(dir + "/t.npz", TestFiles.npz(x: ("|u1", [2, 1, 3, 4], Array(Self.pixels[0..<24])), y: ("|u1", [2], [0, 6])))
        r.classes = 0; r.test = dir + "/t.npz"
        m = TestFiles.message { _ = try DataSplit.open(r) }
        XCTAssertTrue(m.contains("t.npz") && m.contains("row 1: label 6 is not a class in 0..<5") && m.contains("set data.classes"), m)
    }

    /// Files written by numpy itself (np.savez with zip64 members,
    /// np.savez_compressed, safetensors.numpy) read as the values numpy wrote.
    func testRealNumpyAndSafetensorsFilesRead() throws {
        let script = """
        import sys, numpy as np
        from safetensors.numpy import save_file
        d = sys.argv[1]
        i = np.arange(30 * 6).reshape(30, 6)
        v = ((i * 13) % 29).astype(np.float64) / 4 - 3
        y = (np.arange(30) * 3) % 7
        np.savez(d + "/f64.npz", x=v, y=y.astype(np.int64))
        np.savez_compressed(d + "/u8.npz", x=((i * 13) % 256).astype(np.uint8).reshape(30, 2, 3), y=y.astype(np.int32))
        save_file({"x": v.astype(np.float32), "y": y.astype(np.uint8), "extra": np.zeros(3, np.float32)}, d + "/f32.safetensors")
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir]
        let err = Pipe()
        p.standardError = err
        try p.run(); p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, "python3 with numpy and safetensors (scripts/bootstrap --python): \(text)")
        let v = (0..<180).map { Float(Double(($0 * 13) % 29) / 4 - 3) }
        let y = (0..<30).map { UInt8(($0 * 3) % 7) }
        for (format, file) in [(DataFormat.npz, "f64.npz"), (.safetensors, "f32.safetensors")] {
            let s = try DataSplit.open(request(format, dir + "/" + file, .none)).train
            XCTAssertEqual(s.shape, [6])
            let g = TestFiles.gatherAll(s)
            XCTAssertEqual(g.x, v, file)
            XCTAssertEqual(g.y, y, file)
        }
        let u8 = try DataSplit.open(request(.npz, dir + "/u8.npz", .none)).train
        XCTAssertEqual(u8.shape, [2, 3])
        XCTAssertEqual(TestFiles.gatherAll(u8).x.map { $0 * 255 }.map { $0.rounded() }, (0..<180).map { Float(($0 * 13) % 256) })
    }

    /// An IDX images file named directly finds its labels beside it
    /// ("images" -> "labels", idx3 -> idx1); a missing labels file is named.
    func testIDXFilesNamedDirectlyFindTheirLabels() throws {
        XCTAssertEqual(try IDX.labelsPath(images: "/d/emnist-train-images-idx3-ubyte"), "/d/emnist-train-labels-idx1-ubyte")
        XCTAssertEqual(try IDX.labelsPath(images: "k/images.idx3.gz"), "k/labels.idx1.gz")
        XCTAssertTrue(TestFiles.message { _ = try IDX.labelsPath(images: "/d/x.gz") }.contains("must contain \"images\""))
        TestFiles.writeGz(dir + "/b-images-idx3-ubyte.gz", TestFiles.idx([2, 3, 4], Array(Self.pixels[0..<24])))
        let m = TestFiles.message { _ = try DataSplit.open(self.request(.idx, self.dir + "/b-images-idx3-ubyte.gz")) }
        XCTAssertTrue(m.contains("not found") && m.contains("b-labels-idx1-ubyte.gz") && m.contains("data.train"), m)
        XCTAssertFalse(m.contains("dataset-fashion-mnist"), m)
    }

    /// A CSV file is converted once: the cache is reused while the file's
    /// size and time are the same, made again when the file or the label
    /// column changes; four workers opening at once share one conversion.
    func testCSVCacheIsMadeOnceAndReused() throws {
        let files = writeAll()
        let csv = files[.csv]!, cacheDir = dir + "/run/data-cache"
        let cache = try CSV.cachePath(csv, cacheDir: cacheDir)
        XCTAssertTrue(cache.hasPrefix(cacheDir + "/f.csv.") && cache.hasSuffix(".pstrain-cache"), cache)
        XCTAssertEqual(try CSV.cachePath(csv, cacheDir: ""), csv + ".pstrain-cache")
        final class Results: @unchecked Sendable { var list: [Result<[Float], Error>] = []; let lock = NSLock() }
        let results = Results()
        let threads = (0..<4).map { _ in
            Thread {
                let r = Result { TestFiles.gatherAll(Dataset(samples: try CSV.open(csv, label: "label", cacheDir: cacheDir, what: "data.train"),
                                                             classes: 5, normalization: .none(byteScaled: false))).x }
                results.lock.lock(); results.list.append(r); results.lock.unlock()
            }
        }
        for t in threads { t.start() }
        while results.list.count < 4 { usleep(1000) }
        let values = try results.list.map { try $0.get() }
        XCTAssertEqual(values[0], Self.pixels.map { Float($0) })
        for v in values { XCTAssertEqual(v, values[0]) }
        let made = try FileManager.default.attributesOfItem(atPath: cache)[.modificationDate] as! Date
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cacheDir).filter { $0.contains(".tmp-") }, [])
        usleep(20_000)
        _ = try CSV.open(csv, label: "label", cacheDir: cacheDir, what: "data.train")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: cache)[.modificationDate] as? Date, made, "reused, not made again")
        // Another label column: made again.
        let byP0 = try CSV.open(csv, label: "p0", cacheDir: cacheDir, what: "data.train")
        XCTAssertEqual(byP0.columns?.first, "label")
        XCTAssertEqual(Array(byP0.labels[0..<2]), [Self.pixels[0], Self.pixels[12]])
        // The file changes: made again from the new text.
        TestFiles.write(csv, Array("label,a,b\n1,2.5,3\n0,-1,7e2\n".utf8))
        let changed = try CSV.open(csv, label: "label", cacheDir: cacheDir, what: "data.train")
        XCTAssertEqual(changed.count, 2)
        XCTAssertEqual(TestFiles.gatherAll(Dataset(samples: changed, classes: 2, normalization: .none(byteScaled: false))).x, [2.5, 3, -1, 700])
    }

    /// Quoted fields and names, a byte-order mark, "\r\n" ends, blank lines
    /// and spaces around numbers; the label column anywhere.
    func testCSVSyntax() throws {
        let text = "\u{FEFF}\"x, one\",label , \"y\"\"q\"\r\n1.5, 2 ,\"3\"\r\n\r\n  -4,0,5e-1\r\n\n"
        TestFiles.write(dir + "/q.csv", Array(text.utf8))
        let s = try CSV.open(dir + "/q.csv", label: "label", cacheDir: "", what: "data.train")
        XCTAssertEqual(s.columns, ["x, one", "y\"q"])
        XCTAssertEqual(s.labels, [2, 0])
        XCTAssertEqual(TestFiles.gatherAll(Dataset(samples: s, classes: 3, normalization: .none(byteScaled: false))).x, [1.5, 3, -4, 0.5])
    }
}
