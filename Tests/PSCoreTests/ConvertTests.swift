import XCTest
import CPSKernels
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

/// FP32 <-> FP16/BF16 array conversions: exact (bit-for-bit) agreement with
/// Swift's own Float16 conversion and with the plain C build, on special
/// values, ties, subnormals and a large random sample; lengths that are not a
/// multiple of the vector width.
final class ConvertReleaseTests: XCTestCase {
    static func specials() -> [Float] {
        var v: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7f80_0001),
                          65504, 65519.99, 65520, 65536, -65520, 1e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, 6.1e-5, 6.103515625e-5,
                          .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, 1 + .ulpOfOne]
        // Ties: values exactly halfway between two halves, and between two bfloat16s.
        for k in 0..<64 {
            v.append(Float(bitPattern: 0x3f80_1000 | UInt32(k) << 13))          // FP16 ties around 1.0
            v.append(Float(bitPattern: 0x3f80_8000 | UInt32(k) << 16))          // BF16 ties around 1.0
        }
        for i in 0..<20_000 {
            v.append(Float(bitPattern: UInt32(truncatingIfNeeded: CounterRNG.bits(seed: 11, stream: 1, index: UInt64(i)))))
            v.append((CounterRNG.uniform(seed: 11, stream: 2, index: UInt64(i)) - 0.5) * 1e-3)   // gradient-sized values
        }
        return v
    }

    func testFP16MatchesSwiftAndThePlainBuild() {
        let src = Self.specials()
        for n in [src.count, 1, 7, 15, 17, 0] {
            var fast = [UInt16](repeating: 0, count: n), plain = [UInt16](repeating: 0, count: n)
            pst_f32_to_f16(src, &fast, n)
            pst_f32_to_f16_generic(src, &plain, n)
            XCTAssertEqual(fast, plain, "builds disagree at length \(n)")
            for i in 0..<n where !src[i].isNaN {
                if fast[i] != Float16(src[i]).bitPattern {
                    XCTFail("f32 \(String(src[i].bitPattern, radix: 16)) -> f16 \(String(fast[i], radix: 16)), Swift says \(String(Float16(src[i]).bitPattern, radix: 16))")
                    break
                }
            }
            for i in 0..<n where src[i].isNaN { XCTAssertTrue(Float16(bitPattern: fast[i]).isNaN) }
        }
    }

    func testEveryFP16ValueWidensExactly() {
        let all = (0...UInt16.max).map { $0 }
        var fast = [Float](repeating: 0, count: all.count), plain = [Float](repeating: 0, count: all.count)
        pst_f16_to_f32(all, &fast, all.count)
        pst_f16_to_f32_generic(all, &plain, all.count)
        XCTAssertEqual(fast.map { $0.bitPattern }, plain.map { $0.bitPattern })
        for h in all {
            let want = Float(Float16(bitPattern: h))
            if want.isNaN { XCTAssertTrue(fast[Int(h)].isNaN); continue }
            XCTAssertEqual(fast[Int(h)].bitPattern, want.bitPattern, "f16 \(String(h, radix: 16))")
        }
    }

    func testBF16RoundsToNearestEvenAndKeepsSubnormals() {
        let src = Self.specials()
        var fast = [UInt16](repeating: 0, count: src.count), plain = [UInt16](repeating: 0, count: src.count)
        pst_f32_to_bf16(src, &fast, src.count)
        pst_f32_to_bf16_generic(src, &plain, src.count)
        XCTAssertEqual(fast, plain)
        for (i, x) in src.enumerated() {
            let b = x.bitPattern
            if x.isNaN { XCTAssertTrue(Float(bitPattern: UInt32(fast[i]) << 16).isNaN); continue }
            // Reference: the two neighbours, pick the nearer, ties to the even one.
            let lo = b & 0xffff_0000, hi = lo &+ 0x1_0000, rest = b & 0xffff
            let want = rest < 0x8000 ? lo : rest > 0x8000 ? hi : ((lo >> 16) & 1 == 0 ? lo : hi)
            XCTAssertEqual(UInt32(fast[i]), want >> 16, "f32 \(String(b, radix: 16))")
        }
        var back = [Float](repeating: 0, count: 1)
        var one: [UInt16] = [0]
        pst_f32_to_bf16([Float.leastNonzeroMagnitude * 65536], &one, 1)
        pst_bf16_to_f32(one, &back, 1)
        XCTAssertEqual(back[0], Float.leastNonzeroMagnitude * 65536, "a subnormal that fits survives")
    }
}
