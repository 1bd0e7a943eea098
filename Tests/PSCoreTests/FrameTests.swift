import XCTest
import CPSKernels
@testable import PSCore

final class FrameTests: XCTestCase {
    func testXXH64KnownValues() {
        // Reference values of the public xxHash XXH64 specification.
        XCTAssertEqual(pst_xxh64(nil, 0, 0), 0xEF46_DB37_51D8_E999)
        let abc = Array("abc".utf8)
        XCTAssertEqual(abc.withUnsafeBytes { pst_xxh64($0.baseAddress, 3, 0) }, 0x44BC_2CF5_AD77_0999)
    }

    func makeFrame(n: Int = 100) -> (FrameBuffer, FrameExpectation) {
        let f = FrameBuffer(payloadCapacity: n * 4)
        for i in 0..<n { f.floats[i] = Float(i) * 0.5 }
        f.length = Frame.seal(FrameHeader(kind: .grads, step: 7, chunk: 1, elementType: .f32, rawLength: UInt64(n * 4),
                                          encodedLength: UInt64(n * 4), aux0: 3.25, aux1: 64), buffer: f.raw)
        return (f, FrameExpectation(kind: .grads, step: 7, chunk: 1, elementType: .f32, rawLength: n * 4))
    }

    func testRoundTrip() throws {
        let (f, e) = makeFrame()
        let h = try Frame.open(buffer: f.raw, length: f.length, expect: e, sender: "worker 0 (rank 1)")
        XCTAssertEqual(h.aux0, 3.25); XCTAssertEqual(h.aux1, 64); XCTAssertEqual(h.step, 7)
        XCTAssertEqual(f.length, 64 + 400)
    }

    /// Every header byte and a payload byte, flipped, is caught with a message
    /// that names the sender; so are short and over-long frames.
    func testCorruptionIsCaughtAndNamed() {
        let (f, e) = makeFrame()
        for offset in Array(0..<64) + [64, 200, f.length - 1] {
            let copy = FrameBuffer(payloadCapacity: 400)
            copy.raw.copyMemory(from: f.raw, byteCount: f.length)
            copy.raw.storeBytes(of: copy.raw.load(fromByteOffset: offset, as: UInt8.self) ^ 0x10, toByteOffset: offset, as: UInt8.self)
            XCTAssertThrowsError(try Frame.open(buffer: copy.raw, length: f.length, expect: e, sender: "worker 3 (rank 4)"),
                                 "flipped byte \(offset)") { err in
                XCTAssertTrue("\(err)".contains("bad frame from worker 3 (rank 4)"), "\(err)")
            }
        }
        for len in [0, 10, 63, f.length - 1] {
            XCTAssertThrowsError(try Frame.open(buffer: f.raw, length: len, expect: e, sender: "s")) { err in
                XCTAssertTrue("\(err)".contains("bad frame"), "\(err)")
            }
        }
        var wrongStep = e
        wrongStep.step = 8
        XCTAssertThrowsError(try Frame.open(buffer: f.raw, length: f.length, expect: wrongStep, sender: "s")) { err in
            XCTAssertTrue("\(err)".contains("step 7"), "\(err)")
        }
    }
}

final class ChecksumTests: XCTestCase {
    /// Every vector variant this CPU can run agrees with the plain C one on
    /// every length (each variant is called by name, so the comparison is
    /// never generic against itself), the variant pst_checksum64 picks is
    /// the best one available, and a single flipped bit anywhere changes the value.
    func testVariantsAgreeAndBitFlipsShow() throws {
        var bytes = [UInt8](repeating: 0, count: 5000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: CounterRNG.bits(seed: 3, stream: 4, index: UInt64(i))) }
        let vector = [1, 2].filter { pst_checksum64_variant_runs(Int32($0)) != 0 }
        #if arch(x86_64)
        let avx2 = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" avx2") ?? false
        if avx2 { XCTAssertTrue(vector.contains(1), "the CPU has AVX2, so the AVX2 variant must be compared") }
        #endif
        let picked = String(cString: pst_checksum64_variant())
        XCTAssertEqual(picked, vector.contains(2) ? "avx512" : vector.contains(1) ? "avx2" : "generic")
        bytes.withUnsafeMutableBytes { b in
            for v in vector {
                for len in Array(0...300) + [1023, 1024, 1025, 4096, 5000] {
                    XCTAssertEqual(pst_checksum64_with(Int32(v), b.baseAddress, len, 9), pst_checksum64_generic(b.baseAddress, len, 9),
                                   "variant \(v), length \(len)")
                }
            }
            let base = pst_checksum64(b.baseAddress, 5000, 0)
            for pos in stride(from: 0, to: 5000 * 8, by: 37) {
                b[pos / 8] ^= UInt8(1 << (pos % 8))
                XCTAssertNotEqual(pst_checksum64(b.baseAddress, 5000, 0), base, "bit \(pos)")
                b[pos / 8] ^= UInt8(1 << (pos % 8))
            }
            XCTAssertNotEqual(pst_checksum64(b.baseAddress, 5000, 1), base, "the seed matters")
        }
    }
}
