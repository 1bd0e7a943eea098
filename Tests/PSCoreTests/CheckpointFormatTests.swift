import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch
import PSTestSupport

final class SHA256Tests: XCTestCase {
    /// FIPS 180-4 example vectors.
    func testKnownDigests() {
        XCTAssertEqual(sha256Hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256Hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

final class SafetensorsTests: XCTestCase {
    func sample() -> [Safetensors.Tensor] {
        let w: [Float] = [1, 2, 3, 4, 5, 6]
        return [w.withUnsafeBufferPointer { Safetensors.Tensor(name: "layers.0.weight", shape: [2, 3], floats: $0) },
                Safetensors.Tensor(name: "b", dtype: .f16, shape: [3], data: [0, 60, 0, 64, 0, 66])]
    }

    func testRoundTripAndLayout() throws {
        let bytes = Safetensors.encode(sample(), metadata: ["step": "5"])
        let n = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + n) % 8, 0, "data section 8-byte aligned")
        let (t, meta) = try Safetensors.decode(bytes, source: "x")
        XCTAssertEqual(meta, ["step": "5"])
        XCTAssertEqual(t.first { $0.name == "layers.0.weight" }?.floats, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.first { $0.name == "b" }?.shape, [3])
    }

    func testDamagedFilesAreRejectedWithReasons() {
        let good = Safetensors.encode(sample())
        func err(_ b: [UInt8]) -> String { do { _ = try Safetensors.decode(b, source: "f.safetensors"); return "" } catch { return "\(error)" } }
        XCTAssertTrue(err([1, 2, 3]).contains("only 3 bytes"))
        var huge = good
        huge.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        XCTAssertTrue(err(huge).contains("out of range") || err(huge).contains("runs past"), err(huge))
        XCTAssertTrue(err(Array(good.dropLast(2))).contains("outside") || err(Array(good.dropLast(2))).contains("cover"), err(Array(good.dropLast(2))))
        func withHeader(_ json: String, data: Int) -> [UInt8] {
            var h = Array(json.utf8); while h.count % 8 != 0 { h.append(0x20) }
            var out: [UInt8] = []; withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
            return out + h + [UInt8](repeating: 0, count: data)
        }
        XCTAssertTrue(err(withHeader(#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#, data: 4)).contains("unknown dtype"))
        XCTAssertTrue(err(withHeader(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: 4)).contains("needs 8 bytes"))
        XCTAssertTrue(err(withHeader(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, data: 8)).contains("overlap or gap"))
        XCTAssertTrue(err(withHeader(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 12)).contains("cover 4 of the 12"))
        XCTAssertTrue(err(withHeader("not json", data: 0)).contains("not a JSON object"))
        XCTAssertEqual(err(good), "")
    }

    /// The files load in Python's safetensors and numpy when both are installed
    /// (scripts/test installs them).
    func testPythonReadsIt() throws {
        let dir = NSTemporaryDirectory() + "pstrain-st-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Durable.writeNew(dir + "/t.safetensors", Safetensors.encode(sample(), metadata: ["k": "v"]))
        let script = """
        import sys
        from safetensors.numpy import load_file
        t = load_file(sys.argv[1])
        assert t['layers.0.weight'].tolist() == [[1, 2, 3], [4, 5, 6]], t
        assert t['b'].dtype.name == 'float16' and t['b'].tolist() == [1.0, 2.0, 3.0], t['b']
        print('ok')
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir + "/t.safetensors"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, "python3 with numpy and safetensors (pip install safetensors): \(text)")
        XCTAssertTrue(text.contains("ok"), text)
    }
}

final class DurableTests: XCTestCase {
    /// `pstrain ckpt export` writes whole tables: a legal hashed table of
    /// 2^34 rows of 4096 is refused with its size (it asked for 256 TiB and
    /// aborted, issue 20), and sizes that overflow are caught.
    func testExportRefusesTablesBeyondItsBound() throws {
        XCTAssertNoThrow(try TableRows.checkExportable([TableSpec(rows: 1 << 20, dim: 16)], dir: "c"))
        for tables in [[TableSpec(rows: TableSpec.maxRows, dim: TableSpec.maxDim, hash: true)],
                       [TableSpec(rows: 1 << 30, dim: 8), TableSpec(rows: 1 << 30, dim: 8)],
                       [TableSpec(rows: Int.max / 2, dim: 4096)]] {
            XCTAssertThrowsError(try TableRows.checkExportable(tables, dir: "runs/a/checkpoints/step-5")) { e in
                XCTAssertTrue("\(e)".contains("runs/a/checkpoints/step-5") && "\(e)".contains("16 GiB"), "\(e)")
            }
        }
    }

    func testWriteNewRefusesToOverwriteAndReplaceIsAtomic() throws {
        let dir = NSTemporaryDirectory() + "pstrain-dur-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Durable.writeNew(dir + "/a", [1, 2, 3])
        XCTAssertThrowsError(try Durable.writeNew(dir + "/a", [4])) { XCTAssertTrue("\($0)".contains("cannot create \(dir)/a")) }
        try Durable.replace(dir + "/LATEST", with: "step-1\n")
        try Durable.replace(dir + "/LATEST", with: "step-2\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/LATEST", encoding: .utf8), "step-2\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["LATEST", "a"], "no temporary file left")
        XCTAssertThrowsError(try Durable.checkRoom(dir, for: Int.max / 2)) { XCTAssertTrue("\($0)".contains("not enough free space")) }
    }

    /// replace leaves no temporary file when the rename fails (the target is
    /// a non-empty folder) or when the write fails half-way (a file size
    /// limit of 4 bytes, with SIGXFSZ ignored, makes write fail with EFBIG
    /// after the temporary file exists: we run as root, so permissions
    /// cannot make it fail).
    func testReplaceLeavesNoTemporaryFileOnFailure() throws {
        let dir = NSTemporaryDirectory() + "pstrain-dur-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/LATEST", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Durable.writeNew(dir + "/LATEST/x", [1])
        XCTAssertThrowsError(try Durable.replace(dir + "/LATEST", with: "step-1\n")) { XCTAssertTrue("\($0)".contains("cannot rename"), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["LATEST"], "rename failed: no temporary file left")

        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        var small = saved
        small.rlim_cur = 4
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &small), 0)
        let result = Result { try Durable.replace(dir + "/OTHER", with: "step-12345\n") }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        signal(SIGXFSZ, oldHandler)
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue("\($0)".contains("cannot write \(dir)/OTHER.tmp-"), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["LATEST"], "write failed: no temporary file left")
    }
}

/// The checked reader refuses crafted or damaged safetensors headers
/// before any size is used.
final class SafetensorsBoundsTests: XCTestCase {
    func header(_ json: String, data: Int = 0) -> [UInt8] {
        var h = Array(json.utf8); while h.count % 8 != 0 { h.append(0x20) }
        var out: [UInt8] = []; withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
        return out + h + [UInt8](repeating: 0, count: data)
    }
    func err(_ b: [UInt8]) -> String { do { _ = try Safetensors.decode(b, source: "f.safetensors"); return "" } catch { return "\(error)" } }

    /// Element counts and byte counts that do not fit in an Int are refused,
    /// whichever product overflows: [2^62, 4] elements, [2^60, 4] x 4 bytes
    /// (the element count fits, the byte count does not), and 2^64, which
    /// JSONSerialization's intValue would have wrapped to 0.
    func testOverflowingShapesAreRefused() {
        for shape in ["[4611686018427387904,4]", "[1152921504606846976,4]", "[18446744073709551616]", "[2.5]", "[true]"] {
            let e = err(header(#"{"a":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,0]}}"#))
            XCTAssertTrue(e.contains("f.safetensors") && e.contains("tensor a") && (e.contains("overflows") || e.contains("bad shape")), "\(shape): \(e)")
        }
        XCTAssertNil(Safetensors.byteCount(shape: [1 << 62, 4], dtype: .f32))
        XCTAssertNil(Safetensors.byteCount(shape: [1 << 60, 4], dtype: .f32))
        XCTAssertNil(Safetensors.checkedProduct([3, -1]))
        XCTAssertEqual(Safetensors.byteCount(shape: [2, 3], dtype: .f64), 48)
        // A Tensor's count comes from its data: no product of a crafted shape is taken.
        XCTAssertEqual(Safetensors.Tensor(name: "x", dtype: .f32, shape: [1 << 62, 4], data: [0, 0, 0, 0]).count, 1)
    }

    /// Header lengths beyond maxHeaderBytes are refused, including ones that
    /// do not fit in an Int (2^64 - 1 would have trapped the conversion).
    func testOversizedHeaderIsRefused() {
        for n: UInt64 in [UInt64.max, UInt64(Int.max) + 1, UInt64(Safetensors.maxHeaderBytes) + 8] {
            var b: [UInt8] = []; withUnsafeBytes(of: n.littleEndian) { b += $0 }
            b += Array("{}      ".utf8)
            XCTAssertTrue(err(b).contains("header length \(n) is out of range"), err(b))
        }
    }
}

/// Checkpoints crafted or damaged in every way the reader must catch. Each
/// starts from a valid checkpoint written by CheckpointWriter:
/// step-5 of a model with w [2, 3] (elements [0, 4) in server-0, [4, 6) in
/// server-1) and b [2] (server-1), and worker-0's residual of 8 elements.
final class CheckpointReadingTests: XCTestCase {
    var runDir = ""
    var dir: String { runDir + "/checkpoints/step-5" }
    var mpath: String { dir + "/manifest.json" }
    let layout = ModelLayout(specs: [ParamSpec(name: "w", shape: [2, 3], initializer: .zeros), ParamSpec(name: "b", shape: [2], initializer: .zeros)])
    let weights: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
    var momentum: [Float] { weights.map { -$0 / 10 } }
    var residual: [Float] { weights.map { $0 / 4 } }

    override func setUpWithError() throws {
        runDir = NSTemporaryDirectory() + "pstrain-ckread-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        try writeCheckpoint()
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: runDir) }

    func tensor(_ name: String, _ values: [Float], _ shape: [Int]) -> Safetensors.Tensor {
        values.withUnsafeBufferPointer { Safetensors.Tensor(name: name, shape: shape, floats: $0) }
    }

    func writeCheckpoint() throws {
        try writeExampleCheckpoint(runDir: runDir, weights: weights, momentum: momentum, residual: residual, build: "test")
    }

    func manifest() throws -> Manifest { try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: mpath))) }

    /// Rewrites the manifest with `edit` applied and a checksum that matches
    /// it (a crafted manifest), or without resealing (an edited one).
    func rewrite(seal: Bool = true, _ edit: (inout Manifest) -> Void) throws {
        var m = try manifest()
        edit(&m)
        if seal { m = try m.sealed() }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(m).write(to: URL(fileURLWithPath: mpath))
    }

    /// What verify, loadRange (weights) and loadResidual say about the
    /// checkpoint ("" where they accept it; loaders absent when the
    /// manifest does not even decode).
    func failures() -> [String: String] {
        func text(_ f: () throws -> Void) -> String { do { try f(); return "" } catch { return "\(error)" } }
        var out = ["verify": text { try CheckpointStore.verify(dir) }]
        guard let m = try? manifest() else { return out }
        var weights = [Float](repeating: 0, count: layout.totalCount)
        out["loadRange"] = text { try CheckpointStore.loadRange(dir, m, layout: layout, suffix: "", lo: 0, hi: layout.totalCount, into: &weights) }
        out["loadResidual"] = text { _ = try CheckpointStore.loadResidual(dir, m, file: "worker-0.safetensors", count: 8) }
        return out
    }

    /// verify, and each reader in `also`, refuse with a message holding every one of `parts`.
    func assertRefused(_ parts: [String], also: [String] = ["loadRange", "loadResidual"], file: StaticString = #filePath, line: UInt = #line) {
        let f = failures()
        for reader in ["verify"] + also {
            let e = f[reader] ?? "(not run)"
            XCTAssertFalse(e.isEmpty, "\(reader) accepted it", file: file, line: line)
            for p in parts { XCTAssertTrue(e.contains(p), "\(reader): \(e) lacks \(p)", file: file, line: line) }
        }
    }

    func testValidCheckpointVerifiesAndLoadsExactly() throws {
        XCTAssertEqual(failures(), ["verify": "", "loadRange": "", "loadResidual": ""])
        let m = try CheckpointStore.verify(dir)
        XCTAssertEqual(m.checksum, try m.computedChecksum())
        XCTAssertEqual(m.format, 2)
        var out = [Float](repeating: .nan, count: 8)
        try CheckpointStore.loadRange(dir, m, layout: layout, suffix: "", lo: 0, hi: 8, into: &out)
        XCTAssertEqual(out, weights, "bit-exact")
        try CheckpointStore.loadRange(dir, m, layout: layout, suffix: "momentum", lo: 3, hi: 7, into: &out)
        XCTAssertEqual(Array(out[0..<4]), Array(momentum[3..<7]), "a range across both server files, bit-exact")
        XCTAssertEqual(try CheckpointStore.loadResidual(dir, m, file: "worker-0.safetensors", count: 8), residual)
    }

    /// Shards with a negative start, past the end of the tensor, with an
    /// overflowing end, overlapping, leaving a gap, or empty are refused
    /// before any file is read (the old check only summed the counts).
    /// verify checks the values a checkpoint carries, not only their
    /// checksums (issue 20: a loss scale of 0 or NaN verified "ok").
    func testValuesAreChecked() throws {
        for (field, edit) in [("scaler.scale", { (m: inout Manifest) in m.scaler.scale = 0 }),
                              ("scaler.scale", { (m: inout Manifest) in m.scaler.scale = -2 }),
                              ("scaler.skipped", { (m: inout Manifest) in m.scaler.skipped = -1 }),
                              ("learningRate", { (m: inout Manifest) in m.learningRate = -0.1 }),
                              ("epochCursor", { (m: inout Manifest) in m.epochCursor = -5 })] as [(String, (inout Manifest) -> Void)] {
            try writeCheckpoint()
            try rewrite(edit)
            assertRefused(["field \(field)"])
        }
        // A NaN weight, written and sealed as a checkpoint: refused by verify and by the loader.
        var w = weights
        w[6] = .nan
        try FileManager.default.removeItem(atPath: runDir + "/checkpoints")
        try writeExampleCheckpoint(runDir: runDir, weights: w, momentum: momentum, residual: residual, build: "test")
        assertRefused(["server-1.safetensors", "b[0] is nan", "finite"], also: ["loadRange"])
        // Momentum may be negative; a sum of squares may not (Adam's exp_avg_sq, Adagrad's sum).
        XCTAssertTrue(CheckpointStore.nonNegativeStates.isSuperset(of: ["exp_avg_sq", "sum"]))
        XCTAssertFalse(CheckpointStore.nonNegativeStates.contains("momentum"))
        try FileManager.default.removeItem(atPath: runDir + "/checkpoints")
        try writeCheckpoint()
        XCTAssertEqual(failures(), ["verify": "", "loadRange": "", "loadResidual": ""], "negative momentum is fine")
    }

    func testShardRangesAreChecked() throws {
        let cases: [(start0: Int, count0: Int, start1: Int, count1: Int, field: String, why: String)] = [
            (-1, 5, 4, 2, "shards[0].start", "is -1: negative"),
            (0, 4, 4, 3, "shards[1].count", "runs past the tensor's 6 elements"),
            (0, 4, 4, Int.max, "shards[1].count", "runs past"),
            (0, 4, 2, 2, "shards[1].start", "overlaps the one before it, which ends at 4"),   // counts sum to 6
            (0, 3, 4, 3, "shards[1].start", "elements 3..<4 of the tensor are in no shard"),  // counts sum to 6
            (0, 6, 6, 0, "shards[1].count", "is 0"),
        ]
        for c in cases {
            try writeCheckpoint()
            try rewrite { m in
                m.tensors[0].shards[0].start = c.start0; m.tensors[0].shards[0].count = c.count0
                m.tensors[0].shards[1].start = c.start1; m.tensors[0].shards[1].count = c.count1
            }
            assertRefused([mpath, "field tensors[0] (w).\(c.field)", c.why])
        }
    }

    /// A shard whose range is valid but whose file holds another number of
    /// elements is refused by verify (not only when loaded).
    func testShardDataMustHoldTheShardsElements() throws {
        try rewrite { m in
            m.tensors[0].shards[0].count = 3
            m.tensors[0].shards[1].start = 3; m.tensors[0].shards[1].count = 3
        }
        assertRefused([dir + "/server-0.safetensors lacks w with 3 FP32 elements"], also: ["loadRange"])
    }

    /// File names that would leave the checkpoint folder (or are not plain
    /// names) are refused, in the files list and in a shard, naming the
    /// manifest, the field and the name; /dev/zero is never opened.
    func testFileNamesMustBePlainNamesInTheFolder() throws {
        let names = ["../../dev/zero", "/etc/passwd", "..", ".", "", "a\u{0}b", String(repeating: "x", count: 300)]
        for name in names {
            try writeCheckpoint()
            try rewrite { $0.files[1].name = name }
            assertRefused([mpath, "field files[1].name is \(name.debugDescription)", "plain files inside its own folder"])
            try writeCheckpoint()
            try rewrite { $0.tensors[1].shards[0].file = name }
            assertRefused([mpath, "field tensors[1] (b).shards[0].file is \(name.debugDescription)"])
        }
    }

    /// A shard naming a file missing from the files list (so without a
    /// SHA-256) is refused, even when that file exists, is damaged, and
    /// the manifest's checksum matches.
    func testShardFileMustBeListed() throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/server-1.safetensors")))
        bytes[bytes.count - 1] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/extra.safetensors"))
        try rewrite { $0.tensors[1].shards[0].file = "extra.safetensors" }
        assertRefused([mpath, "field tensors[1] (b).shards[0].file is extra.safetensors", "files list does not hold"])
    }

    /// Edits that keep the JSON valid (the step, the loss scale) break the
    /// manifest's checksum; a manifest without a checksum, or of format 1,
    /// is refused with a message saying so.
    func testEditedManifestIsRefused() throws {
        let original = try String(contentsOfFile: mpath, encoding: .utf8)
        for (from, to) in [("\"step\" : 5", "\"step\" : 6"), ("\"scale\" : 65536", "\"scale\" : 1024")] {
            XCTAssertTrue(original.contains(from), original)
            try original.replacingOccurrences(of: from, with: to).write(toFile: mpath, atomically: false, encoding: .utf8)
            assertRefused([mpath, "field checksum is", "the manifest was edited or damaged"])
        }
        try original.write(toFile: mpath, atomically: false, encoding: .utf8)
        try rewrite(seal: false) { $0.checksum = nil }
        assertRefused([mpath, "field checksum is missing"])
        try rewrite { $0.format = 1 }
        assertRefused([mpath, "field format is 1, this build reads format 2"])
    }

    /// The manifest's step must be its folder's name.
    func testFolderNameMustMatchTheStep() throws {
        let moved = runDir + "/checkpoints/step-6"
        try FileManager.default.moveItem(atPath: dir, toPath: moved)
        XCTAssertThrowsError(try CheckpointStore.verify(moved)) {
            XCTAssertTrue("\($0)".contains("\(moved)/manifest.json: field step is 5 but the folder is named step-6"), "\($0)")
        }
        XCTAssertThrowsError(try CheckpointStore.choose(runDir, from: nil, warn: { _ in }))
    }

    /// Sizes are bounded before anything is read: a listed file larger than
    /// the manifest says, a FIFO in place of a file (reading it would
    /// block), a manifest larger than Manifest.maxBytes (a sparse file).
    func testSizesAreCheckedBeforeReading() throws {
        let f = dir + "/server-1.safetensors"
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: f))
        h.seekToEndOfFile(); h.write(Data(count: 1 << 20)); h.closeFile()
        assertRefused(["\(f) has", "the manifest says", "truncated or damaged"], also: ["loadRange"])
        try FileManager.default.removeItem(atPath: f)
        XCTAssertEqual(mkfifo(f, 0o644), 0)
        assertRefused(["\(f) is not a regular file"], also: ["loadRange"])
        try writeCheckpoint()
        XCTAssertEqual(truncate(mpath, off_t(Manifest.maxBytes + 1)), 0)
        assertRefused(["\(mpath) has \(Manifest.maxBytes + 1) bytes, more than a manifest may have"], also: [])
    }

    /// A worker file whose residual does not have the model's element count is refused by verify.
    func testResidualSizeIsChecked() throws {
        let w = CheckpointWriter(runDir: runDir)
        try? FileManager.default.removeItem(atPath: w.tempDir(5))
        let r = try w.writeRankFile(step: 5, name: "worker-0.safetensors", tensors: [tensor("residual", [1, 2, 3], [3])], metadata: [:])
        try FileManager.default.removeItem(atPath: dir + "/worker-0.safetensors")
        try FileManager.default.moveItem(atPath: w.tempDir(5) + "/worker-0.safetensors", toPath: dir + "/worker-0.safetensors")
        try rewrite { $0.files[2].bytes = r.bytes; $0.files[2].sha256 = r.sha256 }
        assertRefused([dir + "/worker-0.safetensors: residual has 3 F32 elements, the model has 8"], also: ["loadResidual"])
    }
}

/// A rank's log on a file system that fills up.
final class RunLogFullDiskTests: XCTestCase {
    /// Writes fail with a real ENOSPC: no half line is left, the records are
    /// kept, the failure is reported once, and everything is written when
    /// room comes back. Needs root for the small tmpfs (CI runs as root).
    func testNoHalfLineAndNothingLostWhenTheDiskIsFull() throws {
        let mnt = NSTemporaryDirectory() + "pstrain-logfull-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mnt) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "mounting a small tmpfs needs root")
        guard p.terminationStatus == 0 else { return }
        defer { let u = Process(); u.executableURL = URL(fileURLWithPath: "/bin/umount"); u.arguments = ["-l", mnt]; try? u.run(); u.waitUntilExit() }

        let log = try RunLog(path: mnt + "/logs/worker-0.jsonl", fixed: RankStamp(run: "full", rank: 1, role: "worker", index: 0))
        var reported: [String] = []
        log.onFailure = { reported.append($0) }
        log.write(PinnedRecord(core: 0))
        XCTAssertTrue(log.flush())
        // Fill the file system but for a few bytes.
        let filler = mnt + "/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: nil)
        let fd = open(filler, O_WRONLY)
        let block = [UInt8](repeating: 0x41, count: 4096)
        while block.withUnsafeBytes({ writeAll(fd, $0) }) == 0 {}
        close(fd)
        for i in 1...200 { log.write(WorkerCheckpointRecord(step: i, paramsDigest: String(repeating: "x", count: 40))) }
        XCTAssertFalse(log.flush(), "the disk is full")
        XCTAssertFalse(log.flush(), "still full")
        XCTAssertEqual(reported.count, 1, "one report per failure, not one per flush: \(reported)")
        XCTAssertTrue(reported.first?.contains("No space left on device") ?? false, "\(reported)")
        let during = try String(contentsOfFile: mnt + "/logs/worker-0.jsonl", encoding: .utf8)
        XCTAssertTrue(during.hasSuffix("\n"), "no half line")
        XCTAssertEqual(LogFile(path: mnt + "/logs/worker-0.jsonl")?.entries.count, 1)
        // Room again: every record arrives, each line whole.
        try FileManager.default.removeItem(atPath: filler)
        XCTAssertTrue(log.flush())
        XCTAssertNil(log.failure)
        let file = try XCTUnwrap(LogFile(path: mnt + "/logs/worker-0.jsonl"))
        XCTAssertEqual(file.badLines, [])
        XCTAssertEqual(file.entries.count, 201)
        XCTAssertEqual(file.records(WorkerCheckpointRecord.self).last?.step, 200)
    }
}
