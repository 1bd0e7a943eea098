import CPSKernels

/// Element encodings of frame payloads: FP32 as is, or FP16/BF16 (two bytes
/// an element, round to nearest even). Lossless stages come later (issue 4).
public enum Payload {
    /// Bytes that `count` elements take.
    public static func bytes(_ count: Int, _ p: Precision) -> Int { count * p.elementType.size }

    /// Writes `count` FP32 values as `p` into `out`.
    public static func encode(_ src: UnsafePointer<Float>, count: Int, as p: Precision, into out: UnsafeMutableRawPointer) {
        switch p {
        case .fp32: out.copyMemory(from: src, byteCount: count * 4)
        case .fp16: pst_f32_to_f16(src, out.assumingMemoryBound(to: UInt16.self), count)
        case .bf16: pst_f32_to_bf16(src, out.assumingMemoryBound(to: UInt16.self), count)
        }
    }

    /// Widens `count` elements of `p` into FP32 (exact).
    public static func decode(_ src: UnsafeRawPointer, count: Int, as p: Precision, into out: UnsafeMutablePointer<Float>) {
        switch p {
        case .fp32: UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: count * 4)
        case .fp16: pst_f16_to_f32(src.assumingMemoryBound(to: UInt16.self), out, count)
        case .bf16: pst_bf16_to_f32(src.assumingMemoryBound(to: UInt16.self), out, count)
        }
    }

    /// Whether casting these FP32 values to `p` would give an infinity or a
    /// NaN: NaN, infinities, and values at or past the rounding threshold of
    /// the format's largest finite value (65520 for FP16).
    public static func overflows(_ v: UnsafePointer<Float>, count: Int, as p: Precision) -> Bool {
        let limit: Float
        switch p {
        case .fp32: limit = .infinity
        case .fp16: limit = 65520
        case .bf16: limit = Float(bitPattern: 0x7F7F_8000)   // halfway between BF16's max and 2^128
        }
        return pst_any_not_below(v, count, limit) != 0
    }
}

/// The element type of a payload on the wire (a frame header says it).
public enum ElementType: UInt8 {
    case f32 = 0, f16 = 1, bf16 = 2, f64 = 3
    public var size: Int { switch self { case .f32: return 4; case .f16, .bf16: return 2; case .f64: return 8 } }
}
