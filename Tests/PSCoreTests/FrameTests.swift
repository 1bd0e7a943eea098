import XCTest
import CXXHash
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

final class FrameReleaseTests: XCTestCase {
    func testXXH64KnownValues() {
        // Reference values of the public xxHash XXH64 specification.
        XCTAssertEqual(xxh64(UnsafeRawBufferPointer(start: nil, count: 0)), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(Array("abc".utf8).withUnsafeBytes { xxh64($0) }, 0x44BC_2CF5_AD77_0999)
        // Values of the hand-written pst_xxh64 this project used before
        // libxxhash (computed with it before it was removed): run logs'
        // digests and the baseline of scripts/digest-matrix depend on them.
        XCTAssertEqual(Array("pstrain parameter digest".utf8).withUnsafeBytes { xxh64($0) }, 0xA773_FB55_0A73_6C78)
        XCTAssertEqual((0..<256).map { UInt8($0) }.withUnsafeBytes { xxh64($0) }, 0x1FAC_BE84_06CD_904B)
        XCTAssertEqual((0..<100).map { UInt8($0) }.withUnsafeBytes { xxh64($0) }, 0x6AC1_E580_3216_6597)
        let floats = (0..<1000).map { Float($0) * 0.25 - 3 }
        XCTAssertEqual(floats.withUnsafeBufferPointer { digest($0.baseAddress!, count: 1000) }, "3855d479cc0f8742")
    }

    func makeFrame(n: Int = 100) -> (FrameBuffer, FrameExpectation) {
        let f = FrameBuffer(payloadCapacity: n * 4)
        for i in 0..<n { f.floats[i] = Float(i) * 0.5 }
        f.length = Frame.seal(FrameHeader(kind: .gradientPiece, step: 7, index: 1, elementType: .f32, rawLength: UInt64(n * 4),
                                          encodedLength: UInt64(n * 4), aux0: 3.25, aux1: 64), buffer: f.raw)
        return (f, FrameExpectation(kind: .gradientPiece, step: 7, index: 1, elementType: .f32, rawLength: n * 4))
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

final class ChecksumReleaseTests: XCTestCase {
    /// The frame checksum is what docs/formats.md says: XXH3-64 of the
    /// payload seeded with XXH64 of header bytes 0..<56, stored little-endian
    /// at offset 56 (computed here with libxxhash's plain entry points, the
    /// frame code using its run-time dispatch).
    func testFrameChecksumIsXXH3SeededWithTheHeadersXXH64() {
        XCTAssertEqual(XXH3_64bits_withSeed(nil, 0, 0), 0x2D06_8005_38D3_94C2)   // xxHash's reference value
        for n in [0, 1, 3, 16, 17, 128, 129, 240, 241, 1000, 65536] {
            let f = FrameBuffer(payloadCapacity: n * 4)
            for i in 0..<n { f.floats[i] = Float(i) * 0.5 - 7 }
            f.length = Frame.seal(FrameHeader(kind: .gradientPiece, step: 9, index: 2, elementType: .f32, rawLength: UInt64(n * 4),
                                              encodedLength: UInt64(n * 4)), buffer: f.raw)
            let header = XXH64(f.raw, 56, 0)
            let expected = XXH3_64bits_withSeed(f.raw + FrameHeader.size, n * 4, header)
            XCTAssertEqual(UInt64(littleEndian: f.raw.loadUnaligned(fromByteOffset: 56, as: UInt64.self)), expected, "\(n) floats")
        }
    }

    /// libxxhash's dispatched XXH3 (what frames use) agrees with its plain
    /// build on every length, and a single flipped bit anywhere, or another
    /// seed, changes the value.
    func testDispatchAgreesAndBitFlipsShow() throws {
        var bytes = [UInt8](repeating: 0, count: 5000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: CounterRNG.bits(seed: 3, stream: 4, index: UInt64(i))) }
        bytes.withUnsafeMutableBytes { b in
            for len in Array(0...300) + [1023, 1024, 1025, 4096, 5000] {
                XCTAssertEqual(xxh3(b.baseAddress, count: len, seed: 9), xxh3Dispatched(b.baseAddress, count: len, seed: 9), "length \(len)")
            }
            let base = xxh3(b.baseAddress, count: 5000, seed: 0)
            for pos in stride(from: 0, to: 5000 * 8, by: 37) {
                b[pos / 8] ^= UInt8(1 << (pos % 8))
                XCTAssertNotEqual(xxh3(b.baseAddress, count: 5000, seed: 0), base, "bit \(pos)")
                b[pos / 8] ^= UInt8(1 << (pos % 8))
            }
            XCTAssertNotEqual(xxh3(b.baseAddress, count: 5000, seed: 1), base, "the seed matters")
        }
    }
}
