import Foundation
import PSNumerics

/// A NumPy archive (numpy.savez) holding the features as `x` and the labels
/// as `y`: a zip file of .npy members. Members stored as numpy.savez writes
/// them are mapped from the file, so a worker's memory holds only the pages
/// of the rows it gathers. Members of numpy.savez_compressed are deflated:
/// each worker inflates them into its own memory (the whole arrays), so for
/// a large set prefer numpy.savez.
public enum NPZ {
    public static func open(_ path: String, what: String) throws -> FoundArrays {
        let file = try MappedFile(path, what: what)
        let zip = try ZipArchive(file)
        func array(_ name: String) throws -> FoundArrays.Named {
            guard let m = zip.members.first(where: { $0.name == name + ".npy" }) else {
                let held = zip.members.map { $0.name.hasSuffix(".npy") ? String($0.name.dropLast(4)) : $0.name }
                throw DataError.malformed(file: path, problem: "has no array '\(name)' (it holds \(held.isEmpty ? "none" : held.joined(separator: ", "))); "
                                          + "write the features as x and the labels as y: numpy.savez(path, x=features, y=labels)")
            }
            let bytes: UnsafeRawBufferPointer, owner: AnyObject
            switch m.method {
            case 0:
                guard m.size == m.compressedSize else {
                    throw DataError.malformed(file: path, problem: "member \(m.name) is stored with \(m.compressedSize) bytes but claims \(m.size): damaged")
                }
                bytes = zip.stored(m); owner = file
            case 8:
                let block = try zip.inflated(m)
                bytes = UnsafeRawBufferPointer(start: block.pointer, count: block.count); owner = block
            default:
                throw DataError.malformed(file: path, problem: "member \(m.name) uses zip compression method \(m.method); "
                                          + "numpy.savez (stored) and numpy.savez_compressed (deflate) are read")
            }
            let h = try NPY.header(bytes, file: path, array: name)
            return .init(view: ArrayView(base: bytes.baseAddress! + h.dataOffset, type: h.type, shape: h.shape, owner: owner),
                         file: path, name: "array '\(name)'")
        }
        return FoundArrays(x: try array("x"), y: try array("y"))
    }
}
