import XCTest
import CPSKernels
@testable import PSCore

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
