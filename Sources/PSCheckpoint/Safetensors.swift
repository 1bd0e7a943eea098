import Foundation
import PSSupport

/// The safetensors format (https://github.com/huggingface/safetensors):
/// an 8-byte little-endian header length N, N bytes of JSON (padded with
/// spaces to a multiple of 8) naming each tensor's dtype, shape and
/// data_offsets (relative to the data section), then the raw little-endian
/// data, tensors back to back. Python's `safetensors` and numpy read it;
/// nothing is ever unpickled.
public enum Safetensors {
    public enum DType: String, CaseIterable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64", i64 = "I64", u8 = "U8"
        public var size: Int {
            switch self { case .f32: return 4; case .f16, .bf16: return 2; case .f64, .i64: return 8; case .u8: return 1 }
        }
    }

    public struct Tensor: Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var data: [UInt8]
        public init(name: String, dtype: DType, shape: [Int], data: [UInt8]) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.data = data
        }
        public init(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) {
            self.init(name: name, dtype: .f32, shape: shape, data: Array(UnsafeRawBufferPointer(floats)))
        }
        /// The number of elements the data holds (decode and encode check
        /// that it is what the shape says).
        public var count: Int { data.count / dtype.size }
        /// The values as FP32 (F32 only).
        public var floats: [Float] {
            precondition(dtype == .f32)
            return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
    }

    /// The largest header this reader accepts (the reference reader's limit).
    public static let maxHeaderBytes = 100_000_000

    /// The product of `factors`, or nil when one is negative or it overflows.
    public static func checkedProduct(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (m, o) = p.multipliedReportingOverflow(by: f)
            if o { return nil }
            p = m
        }
        return p
    }

    /// The bytes a tensor of `shape` and `dtype` takes, or nil when that
    /// does not fit in an Int (or a dimension is negative).
    public static func byteCount(shape: [Int], dtype: DType) -> Int? {
        checkedProduct(shape + [dtype.size])
    }

    /// A JSON number that is exactly a non-negative Int: not a fraction,
    /// not too large (JSONSerialization's `intValue` would wrap 2^64 to 0),
    /// not a bool (an NSNumber of type "c"; `is Bool` is also true of 0 and 1).
    static func jsonCount(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c", let i = v as? Int, i >= 0 else { return nil }
        return i
    }

    /// The bytes of a file holding `tensors` (written in the order given) and
    /// string metadata.
    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> [UInt8] {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            parts.append(jsonQuote("__metadata__") + ":{" + metadata.keys.sorted().map { jsonQuote($0) + ":" + jsonQuote(metadata[$0]!) }.joined(separator: ",") + "}")
        }
        var offset = 0
        for t in tensors {
            precondition(byteCount(shape: t.shape, dtype: t.dtype) == t.data.count, "tensor \(t.name): data does not match its shape")
            parts.append(jsonQuote(t.name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[" + t.shape.map(String.init).joined(separator: ",")
                         + "],\"data_offsets\":[\(offset),\(offset + t.data.count)]}")
            offset += t.data.count
        }
        header += parts.joined(separator: ",") + "}"
        var h = Array(header.utf8)
        while (8 + h.count) % 8 != 0 { h.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + h.count + offset)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
        out += h
        for t in tensors { out += t.data }
        return out
    }

    /// Parses and checks a whole file: header length bounded and inside the
    /// file, valid JSON, known dtypes, shapes that match their byte ranges,
    /// ranges inside the data, back to back, covering it exactly. `source`
    /// names the file in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws -> (tensors: [Tensor], metadata: [String: String]) {
        func bad(_ why: String) -> CheckpointError { .invalid("\(source): not a valid safetensors file: \(why)") }
        guard bytes.count >= 8 else { throw bad("only \(bytes.count) bytes") }
        let n64 = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n64 >= 2, n64 <= UInt64(maxHeaderBytes) else {
            throw bad("header length \(n64) is out of range (2 to \(maxHeaderBytes) bytes)")
        }
        let n = Int(n64)
        guard 8 + n <= bytes.count else { throw bad("header length \(n) runs past the end of the \(bytes.count)-byte file") }
        let json = try? JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)]))
        guard let obj = json as? [String: Any] else { throw bad("the header is not a JSON object") }
        let dataLen = bytes.count - 8 - n
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], lo: Int, hi: Int)] = []
        for (name, value) in obj {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("__metadata__[\(k)] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let t = value as? [String: Any] else { throw bad("entry \(name) is not an object") }
            guard let ds = t["dtype"] as? String, let dtype = DType(rawValue: ds) else {
                throw bad("tensor \(name) has unknown dtype \(t["dtype"] ?? "none")")
            }
            guard let shapeAny = t["shape"] as? [Any], let offAny = t["data_offsets"] as? [Any], offAny.count == 2 else {
                throw bad("tensor \(name) lacks shape or data_offsets")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = jsonCount(v) else { throw bad("tensor \(name) has a bad shape \(shapeAny) (dimensions must be integers from 0 to \(Int.max))") }
                return i
            }
            let offs = try offAny.map { v -> Int in
                guard let i = jsonCount(v) else { throw bad("tensor \(name) has bad data_offsets \(offAny)") }
                return i
            }
            guard offs[0] <= offs[1], offs[1] <= dataLen else {
                throw bad("tensor \(name) data_offsets \(offs) fall outside the \(dataLen) bytes of data")
            }
            guard let size = byteCount(shape: shape, dtype: dtype) else {
                throw bad("tensor \(name) of shape \(shape) and dtype \(ds) has more bytes than an Int can count (the shape overflows)")
            }
            guard size == offs[1] - offs[0] else {
                throw bad("tensor \(name) of shape \(shape) and dtype \(ds) needs \(size) bytes, its offsets give \(offs[1] - offs[0])")
            }
            entries.append((name, dtype, shape, offs[0], offs[1]))
        }
        entries.sort { $0.lo != $1.lo ? $0.lo < $1.lo : $0.hi < $1.hi }
        var at = 0
        for e in entries {
            guard e.lo == at else { throw bad("tensor \(e.name) starts at \(e.lo), expected \(at) (overlap or gap)") }
            at = e.hi
        }
        guard at == dataLen else { throw bad("tensors cover \(at) of the \(dataLen) data bytes") }
        let base = 8 + n
        let tensors = entries.map { Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, data: Array(bytes[(base + $0.lo)..<(base + $0.hi)])) }
        return (tensors, metadata)
    }
}
