import Foundation
import PSNumerics

/// A safetensors file (https://github.com/huggingface/safetensors) holding
/// the features as tensor `x` and the labels as tensor `y`: an 8-byte
/// little-endian header length, a JSON header (dtype, shape and
/// data_offsets of each tensor, relative to the data after the header),
/// then the data. Only the header is parsed; the tensors are mapped from the
/// file. Other tensors may be present and are ignored. (PSCheckpoint's
/// Safetensors reads whole checkpoint files into memory and sits above this
/// module, so the data sets have this reader of their own.)
public enum SafetensorsFile {
    static let types: [String: NumericType] = ["U8": .uint8, "I8": .int8, "U16": .uint16, "I16": .int16, "U32": .uint32, "I32": .int32,
                                               "U64": .uint64, "I64": .int64, "F32": .float32, "F64": .float64]

    public static func open(_ path: String, what: String) throws -> FoundArrays {
        let file = try MappedFile(path, what: what)
        func bad(_ why: String) -> DataError { .malformed(file: path, problem: "not a valid safetensors file: \(why)") }
        guard file.size >= 8 else { throw bad("only \(file.size) bytes") }
        let n64 = file.pointer.loadUnaligned(as: UInt64.self).littleEndian
        guard n64 >= 2, n64 <= 100_000_000, Int(n64) <= file.size - 8 else {
            throw bad("header length \(n64) does not fit the \(file.size)-byte file (truncated or not safetensors)")
        }
        let n = Int(n64)
        let json = try? JSONSerialization.jsonObject(with: Data(bytes: file.pointer + 8, count: n))
        guard let header = json as? [String: Any] else { throw bad("the header is not a JSON object") }
        let dataStart = 8 + n, dataLength = file.size - dataStart
        func tensor(_ name: String) throws -> FoundArrays.Named {
            guard let t = header[name] as? [String: Any] else {
                let held = header.keys.filter { $0 != "__metadata__" }.sorted()
                throw DataError.malformed(file: path, problem: "has no tensor '\(name)' (it holds \(held.isEmpty ? "none" : held.joined(separator: ", "))); "
                                          + "write the features as x and the labels as y: safetensors.numpy.save_file({\"x\": features, \"y\": labels}, path)")
            }
            func badT(_ why: String) -> DataError { .malformed(file: path, problem: "tensor '\(name)' \(why)") }
            let ds = t["dtype"] as? String ?? "?"
            guard let type = types[ds] else {
                throw badT("has dtype \(ds), which is not read (features: U8, F32 or F64; labels: an integer type such as U8, I32 or I64)")
            }
            guard let shapeAny = t["shape"] as? [Any], let shape = counts(shapeAny),
                  let offAny = t["data_offsets"] as? [Any], let offs = counts(offAny), offs.count == 2 else {
                throw badT("has a bad shape or data_offsets")
            }
            guard let size = NPY.product(shape + [type.size]) else { throw badT("has a shape \(shape) too large to count") }
            guard offs[0] <= offs[1], offs[1] - offs[0] == size else {
                throw badT("of shape \(shape) and dtype \(ds) needs \(size) bytes, its data_offsets \(offs) give \(offs[1] - offs[0])")
            }
            guard offs[1] <= dataLength else {
                throw badT("ends at byte \(offs[1]) of the data, which holds \(dataLength): the file is truncated")
            }
            return .init(view: ArrayView(base: file.pointer + dataStart + offs[0], type: type, shape: shape, owner: file),
                         file: path, name: "tensor '\(name)'")
        }
        return FoundArrays(x: try tensor("x"), y: try tensor("y"))
    }

    /// JSON numbers that are all non-negative integers (not booleans).
    static func counts(_ a: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in a {
            guard let num = v as? NSNumber, String(cString: num.objCType) != "c", let i = v as? Int, i >= 0 else { return nil }
            out.append(i)
        }
        return out
    }
}
