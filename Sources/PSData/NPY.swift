import Foundation
import PSNumerics

/// NumPy's .npy format (numpy.lib.format): the magic "\x93NUMPY", a major
/// and minor version, the header's length (2 bytes little-endian in version
/// 1, 4 in versions 2 and 3), then the header, a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }`,
/// and the data in C order. Only little-endian numbers of the types in
/// `NumericType` are read; nothing is ever unpickled (object arrays are
/// refused).
public enum NPY {
    public struct Header: Equatable {
        public let type: NumericType
        public let shape: [Int]
        /// Where the data starts, from the start of the .npy bytes.
        public let dataOffset: Int
    }

    /// Parses the header of the .npy bytes `b`, checking that the data the
    /// shape implies is all there. `what` names the array in messages
    /// ("train.npz: array 'x'").
    public static func header(_ b: UnsafeRawBufferPointer, file: String, array: String) throws -> Header {
        func bad(_ why: String) -> DataError { .malformed(file: file, problem: "array '\(array)': \(why)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard b.count >= 10, Array(b[0..<6]) == magic else { throw bad("not a .npy array (no \\x93NUMPY magic); save it with numpy.savez") }
        let major = b[6]
        let lenBytes = major == 1 ? 2 : 4
        guard major >= 1 && major <= 3 else { throw bad(".npy format version \(major) is not one numpy writes (1 to 3)") }
        guard b.count >= 8 + lenBytes else { throw bad("truncated .npy header") }
        var n = 0
        for k in 0..<lenBytes { n |= Int(b[8 + k]) << (8 * k) }
        let start = 8 + lenBytes
        guard n <= b.count - start else { throw bad("truncated: the .npy header says \(n) bytes, \(b.count - start) remain") }
        guard let text = String(bytes: b[start..<(start + n)], encoding: .utf8) else { throw bad("the .npy header is not text") }
        let (type, shape) = try parseDict(text, bad)
        guard let bytes = Self.product(shape + [type.size]) else { throw bad("shape \(shape) is too large") }
        let have = b.count - start - n
        guard have >= bytes else {
            throw bad("truncated: shape \(shape) of \(type.rawValue) needs \(bytes) bytes of data, the file holds \(have)")
        }
        return Header(type: type, shape: shape, dataOffset: start + n)
    }

    /// The product, or nil when a factor is negative or the product of the
    /// non-zero factors overflows: a zero axis must not hide an impossible
    /// shape, since a row's size is the product of the others
    /// ((0, 2^62, 2^62) passed and trapped in ArrayView, issue 20).
    static func product(_ xs: [Int]) -> Int? {
        var p = 1
        var zero = false
        for x in xs {
            guard x >= 0 else { return nil }
            if x == 0 { zero = true; continue }
            let (m, o) = p.multipliedReportingOverflow(by: x)
            if o { return nil }
            p = m
        }
        return zero ? 0 : p
    }

    static func parseDict(_ text: String, _ bad: (String) -> DataError) throws -> (NumericType, [Int]) {
        guard let descr = value(of: "descr", in: text) else { throw bad("the .npy header has no 'descr'") }
        guard descr.first == "'" || descr.first == "\"" else {
            throw bad("a structured dtype (\(descr.prefix(40))) is not read; save a plain numeric array")
        }
        let type = try dtype(String(descr.dropFirst().prefix { $0 != "'" && $0 != "\"" }), bad)
        guard let fo = value(of: "fortran_order", in: text) else { throw bad("the .npy header has no 'fortran_order'") }
        if fo.hasPrefix("True") { throw bad("is in Fortran order; save numpy.ascontiguousarray(a) instead") }
        guard fo.hasPrefix("False") else { throw bad("the .npy header's fortran_order is \(fo.prefix(10))") }
        guard let sh = value(of: "shape", in: text), sh.first == "(", let close = sh.firstIndex(of: ")") else {
            throw bad("the .npy header has no shape tuple")
        }
        let parts = sh[sh.index(after: sh.startIndex)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let shape = try parts.filter { !$0.isEmpty }.map { p -> Int in
            guard let d = Int(p.hasSuffix("L") ? String(p.dropLast()) : p), d >= 0 else { throw bad("the .npy shape has a bad dimension '\(p)'") }
            return d
        }
        return (type, shape)
    }

    /// The text after `'key':` (spaces skipped), or nil.
    static func value(of key: String, in text: String) -> Substring? {
        for q in ["'", "\""] {
            if let r = text.range(of: q + key + q) {
                var rest = text[r.upperBound...].drop { $0 == " " }
                guard rest.first == ":" else { return nil }
                rest = rest.dropFirst().drop { $0 == " " }
                return rest
            }
        }
        return nil
    }

    /// A numpy type string ('<f4', '|u1') as a NumericType.
    static func dtype(_ s: String, _ bad: (String) -> DataError) throws -> NumericType {
        guard let order = s.first, s.count >= 2 else { throw bad("unknown dtype '\(s)'") }
        let code = String(s.dropFirst())
        if order == ">" && !code.hasSuffix("1") { throw bad("dtype '\(s)' is big-endian; save it little-endian (a.astype('<\(code)'))") }
        guard "<|=>".contains(order) else { throw bad("unknown dtype '\(s)'") }
        let table: [String: NumericType] = ["u1": .uint8, "i1": .int8, "u2": .uint16, "i2": .int16, "u4": .uint32, "i4": .int32,
                                            "u8": .uint64, "i8": .int64, "f4": .float32, "f8": .float64]
        guard let t = table[code] else {
            let named = ["b1": "bool", "f2": "float16", "O": "object (pickled Python objects)", "c8": "complex64", "c16": "complex128"][code] ?? "'\(s)'"
            throw bad("has dtype \(named), which is not read (features: uint8, float32 or float64; labels: an integer type)")
        }
        return t
    }
}
