import Foundation
import PSNumerics

/// The weights a new run starts from instead of its random initialisation
/// (train.init_from, `pstrain launch --init-from FILE`): a model exported by
/// `pstrain ckpt export`, or any safetensors file whose FP32 tensors carry
/// this model's names and shapes (`layers.<i>.weight`, ...; a torch
/// state_dict saved with safetensors). Tensors the model does not have
/// (an export's data.mean and data.std) are ignored; every tensor the model
/// has must be there. Read through the checked safetensors decoder.
public enum InitialWeights {
    /// The largest file read (the file is read whole; 2^28 parameters are 1 GiB of FP32).
    public static let maxBytes = 4 << 30

    /// The file's tensors, by name, checked against `layout`.
    public static func load(_ path: String, layout: ModelLayout) throws -> [String: Safetensors.Tensor] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError.notFound("train.init_from: \(path) does not exist; name a model written by `pstrain ckpt export`")
        }
        let bytes = try CheckpointStore.readRegularFile(path) { size in
            guard size <= maxBytes else {
                throw CheckpointError.invalid("train.init_from: \(path) is \(size) bytes, more than the \(maxBytes) read")
            }
        }
        let decoded = try Safetensors.decode(bytes, source: "train.init_from: \(path)")
        let byName = Dictionary(decoded.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for slot in layout.tensors {
            guard let t = byName[slot.spec.name] else {
                throw CheckpointError.doesNotFit("train.init_from: \(path) has no tensor \(slot.spec.name), which this model has "
                                                 + "(it has \(decoded.tensors.map(\.name).sorted().prefix(8).joined(separator: ", "))\(decoded.tensors.count > 8 ? ", ..." : "")): "
                                                 + "start from a model of the same layers")
            }
            guard t.dtype == .f32, t.shape == slot.spec.shape else {
                throw CheckpointError.doesNotFit("train.init_from: \(path) holds \(slot.spec.name) as \(t.dtype.rawValue) \(t.shape) but this model's is F32 \(slot.spec.shape)")
            }
            for v in t.floats where !v.isFinite {
                throw CheckpointError.invalid("train.init_from: \(path) holds a NaN or infinite value in \(slot.spec.name)")
            }
        }
        return byName
    }

    /// Copies global elements [lo, hi) of `layout` from `tensors` into `out`.
    public static func copy(_ tensors: [String: Safetensors.Tensor], layout: ModelLayout, lo: Int, hi: Int, into out: UnsafeMutablePointer<Float>) {
        for slot in layout.tensors {
            let a = max(lo, slot.offset), b = min(hi, slot.offset + slot.count)
            guard a < b, let t = tensors[slot.spec.name] else { continue }
            t.data.withUnsafeBytes { raw in
                (out + (a - lo)).update(from: raw.bindMemory(to: Float.self).baseAddress! + (a - slot.offset), count: b - a)
            }
        }
    }
}
