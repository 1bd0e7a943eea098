import CPSKernels
import Foundation

// ---------------------------------------------------------------------------
// Checkpoints (docs/checkpoints.md):
//   runs/<name>/checkpoints/step-<N>/manifest.json
//                                    server-<i>.safetensors   (FP32 weights and momentum of its shard)
//                                    worker-<j>.safetensors   (its error-feedback residual, if any)
//   runs/<name>/checkpoints/LATEST   "step-<N>\n": the newest complete checkpoint
// Written into checkpoints/.tmp-step-<N>/, every file fsynced, the folder
// renamed into place and its parent fsynced, and only then LATEST replaced
// (write a temporary file, fsync, rename, fsync the folder).
// ---------------------------------------------------------------------------

public func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    var out = [UInt8](repeating: 0, count: 32)
    pst_sha256(bytes.baseAddress, bytes.count, &out)
    return out.map { String(format: "%02x", $0) }.joined()
}

public func sha256Hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { sha256Hex($0) } }

/// Durable file-system steps, each failure a message naming the path.
public enum Durable {
    static func errno(_ what: String, _ path: String) -> PSError {
        PSError("\(what) \(path): \(String(cString: strerror(Foundation.errno)))")
    }

    /// Creates `path` (which must not exist), writes all of `bytes`, fsyncs it.
    public static func writeNew(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw errno("cannot create", path) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 { if Foundation.errno == EINTR { continue }; throw errno("cannot write", path) }
                off += n
            }
        }
        if fsync(fd) != 0 { throw errno("cannot fsync", path) }
    }

    public static func fsyncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw errno("cannot open folder", path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw errno("cannot fsync folder", path) }
    }

    /// Replaces `path` with `text` atomically: temporary file, fsync, rename,
    /// fsync of the folder. On failure the temporary file is removed.
    public static func replace(_ path: String, with text: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = "\(path).tmp-\(getpid())"
        unlink(tmp)
        do {
            try writeNew(tmp, Array(text.utf8))
            if rename(tmp, path) != 0 { throw errno("cannot rename \(tmp) to", path) }
        } catch {
            unlink(tmp)  // whatever failed, no temporary file stays behind
            throw error
        }
        try fsyncDirectory(dir)
    }

    /// Bytes free for an unprivileged writer on the file system holding `path`.
    public static func freeBytes(_ path: String) -> Int? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// Refuses to start a write of `bytes` when the file system lacks room for it plus a margin.
    public static func checkRoom(_ dir: String, for bytes: Int) throws {
        let margin = 1 << 20
        if let free = freeBytes(dir), free < bytes + margin {
            throw PSError("not enough free space in \(dir): a checkpoint file needs \(bytes / 1_000_000 + 1) MB, \(free / 1_000_000) MB are free")
        }
    }
}

/// Everything a checkpoint holds besides the tensors.
public struct Manifest: Codable, Equatable {
    public static let formatVersion = 1

    public struct FileEntry: Codable, Equatable {
        public var name: String
        public var role: String
        public var index: Int
        public var bytes: Int
        public var sha256: String
    }
    /// A tensor of the model: its full shape, and which file holds which
    /// contiguous range of its flattened elements.
    public struct TensorEntry: Codable, Equatable {
        public struct Shard: Codable, Equatable {
            public var file: String
            public var start: Int
            public var count: Int
        }
        public var name: String
        public var shape: [Int]
        public var shards: [Shard]
    }
    public struct ScalerState: Codable, Equatable {
        public var scale: Double
        public var goodSteps: Int
        public var hysteresisLeft: Int
        public var skipped: Int
        public var overflowsAtMin: Int
        public var lastFiniteStep: Int
    }

    public var format: Int = Manifest.formatVersion
    public var run: String
    public var step: Int
    public var epoch: Int
    /// Samples of the current epoch already consumed (global batches x batch size).
    public var epochCursor: Int
    public var stepsPerEpoch: Int
    public var totalSteps: Int
    public var seed: UInt64
    /// "(seed, epoch) Fisher-Yates; counter-based, no mutable state"
    public var dataOrder: String
    public var rng: String
    public var lrSchedule: String
    public var learningRate: Double
    public var scaler: ScalerState
    public var servers: Int
    public var workers: Int
    public var precision: String
    public var compression: String
    public var build: String
    public var configHash: String
    public var config: String
    public var created: Double
    public var files: [FileEntry]
    public var tensors: [TensorEntry]
}

/// Reading and checking checkpoints.
public enum CheckpointStore {
    public static func folder(_ runDir: String) -> String { runDir + "/checkpoints" }

    /// step-<N> folders, oldest first (temporary folders are not listed).
    public static func list(_ runDir: String) -> [(step: Int, path: String)] {
        let dir = folder(runDir)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("step-"), let s = Int(n.dropFirst(5)) else { return nil }
            return (s, dir + "/" + n)
        }.sorted { $0.0 < $1.0 }
    }

    /// What LATEST names, if anything.
    public static func latestName(_ runDir: String) -> String? {
        guard let t = try? String(contentsOfFile: folder(runDir) + "/LATEST", encoding: .utf8) else { return nil }
        let name = t.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.isEmpty ? nil : name
    }

    /// Reads the manifest and checks every file's size and SHA-256 and every
    /// safetensors header against it. Throws a message naming what is wrong.
    @discardableResult
    public static func verify(_ dir: String) throws -> Manifest {
        let mpath = dir + "/manifest.json"
        guard let data = FileManager.default.contents(atPath: mpath) else { throw PSError("\(mpath) is missing: the checkpoint is incomplete") }
        let m: Manifest
        do { m = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw PSError("\(mpath) is not a valid manifest: \(error)")
        }
        guard m.format == Manifest.formatVersion else { throw PSError("\(mpath): format \(m.format), this build reads \(Manifest.formatVersion)") }
        for f in m.files {
            let path = dir + "/" + f.name
            guard let bytes = FileManager.default.contents(atPath: path) else { throw PSError("\(path) is missing") }
            guard bytes.count == f.bytes else { throw PSError("\(path) has \(bytes.count) bytes, the manifest says \(f.bytes): truncated or damaged") }
            let sum = bytes.withUnsafeBytes { sha256Hex($0) }
            guard sum == f.sha256 else { throw PSError("\(path): SHA-256 mismatch (file damaged)") }
            _ = try Safetensors.decode(Array(bytes), source: path)
        }
        for t in m.tensors {
            let total = t.shape.reduce(1, *)
            let covered = t.shards.reduce(0) { $0 + $1.count }
            guard covered == total else { throw PSError("\(mpath): tensor \(t.name) shards cover \(covered) of \(total) elements") }
        }
        return m
    }

    /// The checkpoint to resume from: `from` ("step-N") if given, else what
    /// LATEST names, else the newest that verifies. A damaged one is reported
    /// through `warn` and the previous complete one is used.
    public static func choose(_ runDir: String, from: String?, warn: (String) -> Void) throws -> (path: String, manifest: Manifest) {
        let all = list(runDir)
        if let from {
            guard let c = all.first(where: { "step-\($0.step)" == from || String($0.step) == from }) else {
                throw PSError("no checkpoint \(from) in \(folder(runDir)) (have: \(all.map { "step-\($0.step)" }.joined(separator: ", ")))")
            }
            return (c.path, try verify(c.path))
        }
        var candidates = all.reversed().map { $0 }
        if let latest = latestName(runDir), let i = candidates.firstIndex(where: { "step-\($0.step)" == latest }) {
            let c = candidates.remove(at: i)
            candidates.insert(c, at: 0)
        }
        for c in candidates {
            do { return (c.path, try verify(c.path)) } catch { warn("checkpoint \(c.path) is damaged and is skipped: \(error)") }
        }
        throw PSError("no complete checkpoint in \(folder(runDir))")
    }

    /// Reads the elements [lo, hi) of the model's flat weights (`suffix` "")
    /// or momentum ("momentum") from the server files of a checkpoint,
    /// whatever the number of servers that wrote it.
    public static func loadRange(_ dir: String, _ m: Manifest, layout: ModelLayout, suffix: String,
                                 lo: Int, hi: Int, into out: UnsafeMutablePointer<Float>) throws {
        var files: [String: [String: Safetensors.Tensor]] = [:]
        func file(_ name: String) throws -> [String: Safetensors.Tensor] {
            if let f = files[name] { return f }
            let path = dir + "/" + name
            guard let bytes = FileManager.default.contents(atPath: path) else { throw PSError("\(path) is missing") }
            let t = try Safetensors.decode(Array(bytes), source: path).tensors
            let map = Dictionary(uniqueKeysWithValues: t.map { ($0.name, $0) })
            files[name] = map
            return map
        }
        guard m.tensors.map({ $0.name }) == layout.tensors.map({ $0.name }),
              m.tensors.map({ $0.shape }) == layout.tensors.map({ $0.spec.shape }) else {
            throw PSError("\(dir): the checkpoint's tensors (\(m.tensors.map { "\($0.name)\($0.shape)" }.joined(separator: ", "))) do not match the model of this configuration")
        }
        for (t, slot) in zip(m.tensors, layout.tensors) {
            for sh in t.shards {
                let a = max(lo, slot.offset + sh.start), b = min(hi, slot.offset + sh.start + sh.count)
                if a >= b { continue }
                let f = try file(sh.file)
                let key = suffix.isEmpty ? t.name : "\(t.name).\(suffix)"
                guard let piece = f[key], piece.dtype == .f32, piece.count == sh.count else {
                    throw PSError("\(dir)/\(sh.file) lacks \(key) with \(sh.count) FP32 elements")
                }
                piece.data.withUnsafeBytes { raw in
                    let src = raw.bindMemory(to: Float.self).baseAddress! + (a - slot.offset - sh.start)
                    (out + (a - lo)).update(from: src, count: b - a)
                }
            }
        }
    }
}

/// A rank's part of writing a checkpoint, and server 0's part of completing it.
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
            throw PSError("cannot create \(dir): \(error.localizedDescription)")
        }
        let bytes = Safetensors.encode(tensors, metadata: metadata)
        try Durable.checkRoom(dir, for: bytes.count)
        try Durable.writeNew(dir + "/" + name, bytes)
        return (bytes.count, sha256Hex(bytes))
    }

    /// Server 0, once every rank's file is written: the manifest, the rename
    /// into place, LATEST, and the pruning of old checkpoints. Returns the final folder.
    public func complete(_ m: Manifest, keep: Int, crashPoint: (String) -> Void = { _ in }) throws -> String {
        let tmp = tempDir(m.step)
        crashPoint("after-files")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(m)
        try Durable.checkRoom(tmp, for: data.count)
        try Durable.writeNew(tmp + "/manifest.json", Array(data))
        try Durable.fsyncDirectory(tmp)
        crashPoint("after-manifest")
        let final = folder + "/step-\(m.step)"
        if FileManager.default.fileExists(atPath: final) { try? FileManager.default.removeItem(atPath: final) }
        if rename(tmp, final) != 0 { throw PSError("cannot rename \(tmp) to \(final): \(String(cString: strerror(errno)))") }
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
