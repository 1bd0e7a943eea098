import Foundation
import PSSupport

/// A rank's part of writing a checkpoint, and server 0's part of completing it.
/// A rank's checkpoint file as written: what the manifest lists.
public struct CheckpointFileInfo: Equatable {
    public var bytes: Int
    public var sha256: String
    public init(bytes: Int, sha256: String) { self.bytes = bytes; self.sha256 = sha256 }
}

/// A rank's checkpoint file name.
public func checkpointFile(_ role: Role, _ index: Int) -> String { "\(role.name)-\(index).safetensors" }

public struct CheckpointWriter {
    public let runDir: String
    public init(runDir: String) { self.runDir = runDir }

    public var folder: String { CheckpointStore.folder(runDir) }
    public func tempDir(_ step: Int) -> String { folder + "/.tmp-step-\(step)" }

    /// Removes temporary folders of attempts that died (server 0, at start).
    public func removeStale() {
        for n in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where n.hasPrefix(".tmp-") {
            try? FileManager.default.removeItem(atPath: folder + "/" + n)
        }
    }

    /// Writes one rank's file into the temporary folder of `step`; returns its size and SHA-256.
    public func writeRankFile(step: Int, name: String, tensors: [Safetensors.Tensor], metadata: [String: String]) throws -> (bytes: Int, sha256: String) {
        let dir = tempDir(step)
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError.io("cannot create \(dir): \(error.localizedDescription)")
        }
        let bytes = Safetensors.encode(tensors, metadata: metadata)
        try Durable.checkRoom(dir, for: bytes.count)
        try Durable.writeNew(dir + "/" + name, bytes)
        return (bytes.count, sha256Hex(bytes))
    }

    /// Rank `role` `index`'s file of checkpoint `step` (`server-0.safetensors`),
    /// with the metadata every rank's file carries.
    public func writeRankFile(step: Int, role: Role, index: Int, tensors: [Safetensors.Tensor]) throws -> CheckpointFileInfo {
        let r = try writeRankFile(step: step, name: checkpointFile(role, index), tensors: tensors,
                                  metadata: ["format": "pstrain-checkpoint", "step": String(step), "role": role.name, "index": String(index)])
        return CheckpointFileInfo(bytes: r.bytes, sha256: r.sha256)
    }

    /// Server 0, once every rank's file is written: the manifest (sealed with
    /// its checksum), the rename
    /// into place, LATEST, and the pruning of old checkpoints. Returns the final folder.
    public func complete(_ m: Manifest, keep: Int, crashPoint: (String) -> Void = { _ in }) throws -> String {
        let tmp = tempDir(m.step)
        crashPoint("after-files")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(m.sealed())
        try Durable.checkRoom(tmp, for: data.count)
        try Durable.writeNew(tmp + "/manifest.json", Array(data))
        try Durable.fsyncDirectory(tmp)
        crashPoint("after-manifest")
        let final = folder + "/step-\(m.step)"
        if FileManager.default.fileExists(atPath: final) { try? FileManager.default.removeItem(atPath: final) }
        if rename(tmp, final) != 0 { throw CheckpointError.io("cannot rename \(tmp) to \(final): \(String(cString: strerror(errno)))") }
        try Durable.fsyncDirectory(folder)
        crashPoint("after-rename")
        try Durable.replace(folder + "/LATEST", with: "step-\(m.step)\n")
        let all = CheckpointStore.list(runDir)
        for old in all.dropLast(keep) where old.step != m.step {
            try? FileManager.default.removeItem(atPath: old.path)
        }
        return final
    }
}
