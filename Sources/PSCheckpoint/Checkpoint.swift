import Crypto
import Foundation
import PSSupport
import PSNumerics
import PSData
import PSConfig

// ---------------------------------------------------------------------------
// Checkpoints (docs/checkpoints.md):
//   runs/<name>/checkpoints/step-<N>/manifest.json
//                                    server-<i>.safetensors   (FP32 weights and optimizer state of its shard)
//                                    worker-<j>.safetensors   (its error-feedback residual, if any)
//   runs/<name>/checkpoints/LATEST   "step-<N>\n": the newest complete checkpoint
// Written into checkpoints/.tmp-step-<N>/, every file fsynced, the folder
// renamed into place and its parent fsynced, and only then LATEST replaced
// (write a temporary file, fsync, rename, fsync the folder).
// ---------------------------------------------------------------------------

/// SHA-256 (swift-crypto) of bytes in memory, as 64 lowercase hex digits.
public func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    var hasher = SHA256()
    hasher.update(bufferPointer: bytes)
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

public func sha256Hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { sha256Hex($0) } }

/// Durable file-system steps, each failure a message naming the path.
public enum Durable {
    static func errno(_ what: String, _ path: String) -> CheckpointError {
        CheckpointError.io("\(what) \(path): \(String(cString: strerror(Foundation.errno)))")
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
        try replace(path, bytes: Array(text.utf8))
    }

    /// Replaces `path` with `bytes` atomically, as `replace(_:with:)`.
    public static func replace(_ path: String, bytes: [UInt8]) throws {
        let parent = (path as NSString).deletingLastPathComponent
        let dir = parent.isEmpty ? "." : parent   // a bare file name lives in the working folder
        let tmp = "\(path).tmp-\(getpid())"
        unlink(tmp)
        do {
            try writeNew(tmp, bytes)
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
        // Test hook: skip the check, so that a test reaches the write's own ENOSPC.
        if ProcessInfo.processInfo.environment["PSTRAIN_TEST_NO_ROOM_CHECK"] == "1" { return }
        let margin = 1 << 20
        if let free = freeBytes(dir), free < bytes + margin {
            throw CheckpointError.noRoom(dir: dir, neededMB: bytes / 1_000_000 + 1, freeMB: free / 1_000_000)
        }
    }
}

/// Everything a checkpoint holds besides the tensors.
public struct Manifest: Codable, Equatable {
    /// 2: the manifest carries its own SHA-256 (`checksum`).
    public static let formatVersion = 2
    /// The largest manifest.json the reader accepts.
    public static let maxBytes = 64 << 20
    /// The longest file name a manifest may give.
    public static let maxFileNameLength = 255

    public struct FileEntry: Codable, Equatable {
        public var name: String
        public var role: String
        public var index: Int
        public var bytes: Int
        public var sha256: String
        public init(name: String, role: String, index: Int, bytes: Int, sha256: String) {
            self.name = name; self.role = role; self.index = index; self.bytes = bytes; self.sha256 = sha256
        }
    }
    /// A tensor of the model: its full shape, and which file holds which
    /// contiguous range of its flattened elements.
    public struct TensorEntry: Codable, Equatable {
        public struct Shard: Codable, Equatable {
            public var file: String
            public var start: Int
            public var count: Int
            public init(file: String, start: Int, count: Int) { self.file = file; self.start = start; self.count = count }
        }
        public var name: String
        public var shape: [Int]
        public var shards: [Shard]
        public init(name: String, shape: [Int], shards: [Shard]) { self.name = name; self.shape = shape; self.shards = shards }
    }
    public typealias ScalerState = LossScaler.State

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
    /// SHA-256 (hex) of `canonicalJSON()`: set by `sealed()` when the
    /// checkpoint is written, checked by every reader.
    public var checksum: String? = nil

    /// (Public: the coordination protocol builds the manifest server 0 writes.)
    public init(run: String, step: Int, epoch: Int, epochCursor: Int, stepsPerEpoch: Int, totalSteps: Int, seed: UInt64,
                dataOrder: String, rng: String, lrSchedule: String, learningRate: Double, scaler: ScalerState, servers: Int,
                workers: Int, precision: String, compression: String, build: String, configHash: String, config: String,
                created: Double, files: [FileEntry], tensors: [TensorEntry]) {
        self.run = run; self.step = step; self.epoch = epoch; self.epochCursor = epochCursor; self.stepsPerEpoch = stepsPerEpoch
        self.totalSteps = totalSteps; self.seed = seed; self.dataOrder = dataOrder; self.rng = rng; self.lrSchedule = lrSchedule
        self.learningRate = learningRate; self.scaler = scaler; self.servers = servers; self.workers = workers
        self.precision = precision; self.compression = compression; self.build = build; self.configHash = configHash
        self.config = config; self.created = created; self.files = files; self.tensors = tensors
    }

    /// The bytes the checksum covers: this manifest without `checksum`,
    /// encoded as compact JSON with sorted keys.
    public func canonicalJSON() throws -> [UInt8] {
        var m = self
        m.checksum = nil
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(m))
    }

    public func computedChecksum() throws -> String { sha256Hex(try canonicalJSON()) }

    /// This manifest with its checksum set.
    public func sealed() throws -> Manifest {
        var m = self
        m.checksum = try computedChecksum()
        return m
    }

    /// The run's configuration embedded in the manifest of checkpoint
    /// `folder`, read and checked like any configuration file (every range
    /// and model size limit): its sizes become buffers.
    public func configuration(folder: String) throws -> Config {
        try Config.parse(config, source: folder + "/manifest.json (config)")
    }
}

/// Reading and checking checkpoints. Every read goes through one checked
/// path: `readManifest` (bounded size, format, checksum, step against the
/// folder name, file names, shard ranges) and `readListedFile` (listed in
/// the manifest, size from fstat before reading, SHA-256, safetensors
/// header). `verify`, `loadRange` and `loadResidual` are built on them.
public enum CheckpointStore {
    public static func folder(_ runDir: String) -> String { runDir + "/checkpoints" }

    /// The FP32 tensors a server file holds for each of its shards: the
    /// weights ("<name>", suffix "") and each state tensor of the optimizer
    /// that the checkpoint's configuration names ("<name>.momentum" for SGD,
    /// "<name>.exp_avg" and "<name>.exp_avg_sq" for Adam and AdamW,
    /// "<name>.sum" for Adagrad).
    public static func serverSuffixes(_ m: Manifest, dir: String) throws -> [String] {
        [""] + Optimizers.make(try m.configuration(folder: dir).train).stateNames
    }

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
        // A regular file of a few bytes, read without blocking (a FIFO or a
        // link to /dev/zero is no LATEST); it only ever picks among the
        // step-<N> folders listed inside the run, never a path of its own.
        guard let b = try? readRegularFile(folder(runDir) + "/LATEST", checkSize: { if $0 > 64 { throw CheckpointError.invalid("LATEST is too long") } }) else { return nil }
        let name = String(decoding: b, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard name.hasPrefix("step-"), name.count > 5, name.dropFirst(5).allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return name
    }

    /// Reads the manifest and checks it (see `check`), then every file's
    /// size, SHA-256 and safetensors header, and that each shard's file
    /// holds its elements. Throws a message naming what is wrong.
    @discardableResult
    public static func verify(_ dir: String) throws -> Manifest {
        let m = try readManifest(dir)
        let modelCount = try m.tensors.reduce(0) { sum, t in
            let (s, o) = sum.addingReportingOverflow(Safetensors.checkedProduct(t.shape) ?? 0)
            if o { throw CheckpointError.invalid("\(dir)/manifest.json: field tensors: the model's element count overflows an Int") }
            return s
        }
        let serverSuffixes = try serverSuffixes(m, dir: dir)
        for f in m.files {
            let tensors = try readListedFile(dir, m, f.name)
            for t in m.tensors {
                for sh in t.shards where sh.file == f.name {
                    for suffix in serverSuffixes { _ = try shardPiece(tensors, dir: dir, tensor: t.name, suffix: suffix, shard: sh) }
                }
            }
            if f.role == Role.worker.name { _ = try residual(tensors, dir: dir, file: f.name, count: modelCount) }
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
                throw CheckpointError.notFound("no checkpoint \(from) in \(folder(runDir)) (have: \(all.map { "step-\($0.step)" }.joined(separator: ", ")))")
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
        throw CheckpointError.notFound("no complete checkpoint in \(folder(runDir))")
    }

    /// Reads the elements [lo, hi) of the model's flat weights (`suffix` "")
    /// or an optimizer state ("momentum", "exp_avg", ...) from the server files of a checkpoint,
    /// whatever the number of servers that wrote it. The manifest is checked
    /// again and every file read is verified as it is read.
    public static func loadRange(_ dir: String, _ m: Manifest, layout: ModelLayout, suffix: String,
                                 lo: Int, hi: Int, into out: UnsafeMutablePointer<Float>) throws {
        try check(m, dir: dir)
        guard m.tensors.map({ $0.name }) == layout.tensors.map({ $0.name }),
              m.tensors.map({ $0.shape }) == layout.tensors.map({ $0.spec.shape }) else {
            throw CheckpointError.doesNotFit("\(dir): the checkpoint's tensors (\(m.tensors.map { "\($0.name)\($0.shape)" }.joined(separator: ", "))) do not match the model of this configuration")
        }
        guard 0 <= lo, lo <= hi, hi <= layout.totalCount else {
            throw CheckpointError.doesNotFit("\(dir): elements [\(lo), \(hi)) asked for, the model has \(layout.totalCount)")
        }
        var files: [String: [String: Safetensors.Tensor]] = [:]
        for (t, slot) in zip(m.tensors, layout.tensors) {
            // check() put every shard inside its tensor: these sums cannot overflow.
            for sh in t.shards {
                let a = max(lo, slot.offset + sh.start), b = min(hi, slot.offset + sh.start + sh.count)
                if a >= b { continue }
                if files[sh.file] == nil { files[sh.file] = try readListedFile(dir, m, sh.file) }
                let piece = try shardPiece(files[sh.file]!, dir: dir, tensor: t.name, suffix: suffix, shard: sh)
                piece.data.withUnsafeBytes { raw in
                    let src = raw.bindMemory(to: Float.self).baseAddress! + (a - slot.offset - sh.start)
                    (out + (a - lo)).update(from: src, count: b - a)
                }
            }
        }
    }

    /// The error-feedback residual in `file` (a worker's file) of a
    /// checkpoint, or nil when that worker saved none; `count` is the
    /// model's element count. Checked like every other read.
    public static func loadResidual(_ dir: String, _ m: Manifest, file: String, count: Int) throws -> [Float]? {
        try check(m, dir: dir)
        return try residual(readListedFile(dir, m, file), dir: dir, file: file, count: count)?.floats
    }

    // MARK: the checked reader

    /// Reads and decodes `dir`/manifest.json (at most `Manifest.maxBytes`)
    /// and checks it.
    static func readManifest(_ dir: String) throws -> Manifest {
        let mpath = dir + "/manifest.json"
        let bytes = try readRegularFile(mpath) { n in
            guard n <= Manifest.maxBytes else {
                throw CheckpointError.invalid("\(mpath) has \(n) bytes, more than a manifest may have (\(Manifest.maxBytes)): it is not a pstrain manifest")
            }
        }
        struct Format: Decodable { var format: Int }
        guard let f = try? JSONDecoder().decode(Format.self, from: Data(bytes)) else {
            throw CheckpointError.invalid("\(mpath) is not a valid manifest: not a JSON object with an integer field format")
        }
        guard f.format == Manifest.formatVersion else {
            throw CheckpointError.invalid("\(mpath): field format is \(f.format), this build reads format \(Manifest.formatVersion) only (format 2 added the manifest's own SHA-256, field checksum); "
                + "the checkpoint was written by another version of pstrain: read it with that version, or start the run again")
        }
        let m: Manifest
        do { m = try JSONDecoder().decode(Manifest.self, from: Data(bytes)) } catch {
            throw CheckpointError.invalid("\(mpath) is not a valid manifest: \(describe(error))")
        }
        try check(m, dir: dir)
        return m
    }

    /// Every check that needs only the manifest and the name of its folder,
    /// made before any other file is opened: its checksum, its step against
    /// the folder's name, its world, its file names, and that each tensor's
    /// shards lie inside it, do not overlap, cover it, and name listed files.
    static func check(_ m: Manifest, dir: String) throws {
        let mpath = dir + "/manifest.json"
        func bad(_ field: String, _ why: String) -> CheckpointError { CheckpointError.invalid("\(mpath): field \(field) \(why)") }
        guard let stored = m.checksum, !stored.isEmpty else {
            throw bad("checksum", "is missing: every manifest of format \(Manifest.formatVersion) carries its own SHA-256; the manifest was edited or damaged")
        }
        let computed = try m.computedChecksum()
        guard stored == computed else {
            throw bad("checksum", "is \(stored) but the manifest's content hashes to \(computed): the manifest was edited or damaged after it was written; use another checkpoint")
        }
        guard m.format == Manifest.formatVersion else { throw bad("format", "is \(m.format), this build reads format \(Manifest.formatVersion)") }
        let folderName = (dir as NSString).lastPathComponent
        guard m.step >= 0, folderName == "step-\(m.step)" else {
            throw bad("step", "is \(m.step) but the folder is named \(folderName): a checkpoint's folder is step-<its step>; give it back its name (step-\(m.step)) or use another checkpoint")
        }
        // The values themselves, not only their checksum (issue 20: a loss
        // scale of 0 or NaN verified "ok"): what a resume would start from.
        let sc = m.scaler
        guard sc.scale.isFinite, sc.scale > 0 else { throw bad("scaler.scale", "is \(sc.scale): a loss scale is a positive finite number") }
        for (name, v) in [("goodSteps", sc.goodSteps), ("hysteresisLeft", sc.hysteresisLeft), ("skipped", sc.skipped), ("overflowsAtMin", sc.overflowsAtMin)] where v < 0 {
            throw bad("scaler.\(name)", "is \(v): a count is never negative")
        }
        guard sc.lastFiniteStep >= -1 else { throw bad("scaler.lastFiniteStep", "is \(sc.lastFiniteStep): a step number or -1") }
        guard m.learningRate.isFinite, m.learningRate >= 0 else { throw bad("learningRate", "is \(m.learningRate): a learning rate is finite and not negative") }
        for (name, v) in [("epoch", m.epoch), ("epochCursor", m.epochCursor), ("stepsPerEpoch", m.stepsPerEpoch), ("totalSteps", m.totalSteps)] where v < 0 {
            throw bad(name, "is \(v): it is never negative")
        }
        guard m.servers >= 1 else { throw bad("servers", "is \(m.servers): a run has at least one server") }
        guard m.workers >= 1 else { throw bad("workers", "is \(m.workers): a run has at least one worker") }
        var listed = Set<String>()
        for (i, f) in m.files.enumerated() {
            try checkFileName(f.name, field: "files[\(i)].name", bad)
            guard listed.insert(f.name).inserted else { throw bad("files[\(i)].name", "lists \(f.name) a second time") }
        }
        for (i, t) in m.tensors.enumerated() { try checkShards(t, field: "tensors[\(i)] (\(t.name))", listed: listed, bad) }
    }

    /// A name from a manifest must be a plain file name inside the checkpoint folder.
    static func checkFileName(_ name: String, field: String, _ bad: (String, String) -> CheckpointError) throws {
        let why: String? =
            name.isEmpty ? "is empty"
            : name.utf8.count > Manifest.maxFileNameLength ? "is longer than \(Manifest.maxFileNameLength) bytes"
            : name == "." || name == ".." ? "names a folder"
            : name.contains("/") ? "contains '/'"
            : name.utf8.contains(0) ? "contains a NUL byte"
            : nil
        if let why {
            throw bad(field, "is \(name.debugDescription), which \(why): a checkpoint names only plain files inside its own folder; the manifest is damaged or crafted and nothing is read from it")
        }
    }

    /// The shards of a tensor, in order of `start`: each inside the tensor,
    /// none overlapping, together covering it, each naming a listed file.
    static func checkShards(_ t: Manifest.TensorEntry, field: String, listed: Set<String>, _ bad: (String, String) -> CheckpointError) throws {
        guard let total = Safetensors.checkedProduct(t.shape) else {
            throw bad("\(field).shape", "is \(t.shape): a dimension is negative or the element count overflows an Int")
        }
        var at = 0
        for i in t.shards.indices.sorted(by: { t.shards[$0].start < t.shards[$1].start }) {
            let sh = t.shards[i], f = "\(field).shards[\(i)]"
            try checkFileName(sh.file, field: "\(f).file", bad)
            guard listed.contains(sh.file) else {
                throw bad("\(f).file", "is \(sh.file), which the manifest's files list does not hold: its content cannot be verified and it is not read")
            }
            guard sh.start >= 0 else { throw bad("\(f).start", "is \(sh.start): negative") }
            guard sh.count > 0 else { throw bad("\(f).count", "is \(sh.count): a shard holds at least one element") }
            guard sh.start <= at else { throw bad("\(f).start", "is \(sh.start): elements \(at)..<\(sh.start) of the tensor are in no shard") }
            guard sh.start == at else { throw bad("\(f).start", "is \(sh.start): the shard overlaps the one before it, which ends at \(at)") }
            let (end, o) = sh.start.addingReportingOverflow(sh.count)
            guard !o, end <= total else {
                throw bad("\(f).count", "is \(sh.count): from start \(sh.start) it runs past the tensor's \(total) elements")
            }
            at = end
        }
        guard at == total else { throw bad("\(field).shards", "cover \(at) of the tensor's \(total) elements") }
    }

    /// Reads a file the manifest lists: its size (fstat) must be the
    /// manifest's before a byte is read, then its SHA-256 must match and it
    /// must be a valid safetensors file. Returns its tensors by name.
    static func readListedFile(_ dir: String, _ m: Manifest, _ name: String) throws -> [String: Safetensors.Tensor] {
        guard let entry = m.files.first(where: { $0.name == name }) else {
            throw CheckpointError.invalid("\(dir)/manifest.json: field files does not list \(name.debugDescription): the file cannot be verified and is not read")
        }
        let path = dir + "/" + name
        let bytes = try readRegularFile(path) { n in
            guard n == entry.bytes else { throw CheckpointError.invalid("\(path) has \(n) bytes, the manifest says \(entry.bytes): truncated or damaged") }
        }
        guard sha256Hex(bytes) == entry.sha256 else { throw CheckpointError.invalid("\(path): SHA-256 mismatch (file damaged); use another checkpoint") }
        let tensors = try Safetensors.decode(bytes, source: path).tensors
        return Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The FP32 piece of `tensor` (with `suffix`) that `shard` names, which
    /// must hold exactly the shard's element count.
    /// Optimizer states that are sums of squares, never negative.
    static let nonNegativeStates: Set<String> = ["exp_avg_sq", "sum"]

    static func shardPiece(_ tensors: [String: Safetensors.Tensor], dir: String, tensor: String, suffix: String,
                           shard: Manifest.TensorEntry.Shard) throws -> Safetensors.Tensor {
        let key = suffix.isEmpty ? tensor : "\(tensor).\(suffix)"
        guard let piece = tensors[key], piece.dtype == .f32, piece.count == shard.count else {
            throw CheckpointError.invalid("\(dir)/\(shard.file) lacks \(key) with \(shard.count) FP32 elements (the manifest's shard of \(tensor) says so): damaged or crafted checkpoint")
        }
        // Values a run can hold: finite, and not negative for the states
        // that are sums of squares (Adam's exp_avg_sq, Adagrad's sum).
        let nonNegative = nonNegativeStates.contains(suffix)
        let found = piece.data.withUnsafeBytes { b -> (Int, Float)? in
            for k in 0..<piece.count {
                let v = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
                if !v.isFinite || (nonNegative && v < 0) { return (k, v) }
            }
            return nil
        }
        if let (at, v) = found {
            throw CheckpointError.invalid("\(dir)/\(shard.file): \(key)[\(at)] is \(v), which a checkpoint of a healthy run never holds "
                                          + "(\(nonNegative ? "finite and not negative" : "finite")): the run had diverged, or the file was edited; use another checkpoint")
        }
        return piece
    }

    /// A worker file's residual: none, or FP32 with the model's element count.
    static func residual(_ tensors: [String: Safetensors.Tensor], dir: String, file: String, count: Int) throws -> Safetensors.Tensor? {
        guard let r = tensors["residual"] else { return nil }
        guard r.dtype == .f32, r.count == count else {
            throw CheckpointError.doesNotFit("\(dir)/\(file): residual has \(r.count) \(r.dtype.rawValue) elements, the model has \(count) (FP32)")
        }
        return r
    }

    /// Reads a regular file whole after `checkSize` accepted its size from
    /// fstat, so that no more than that is ever read or allocated (a FIFO
    /// or a device is refused before it is read).
    static func readRegularFile(_ path: String, checkSize: (Int) throws -> Void) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { throw CheckpointError.invalid("\(path) is missing: the checkpoint is incomplete") }
            throw Durable.errno("cannot open", path)
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw Durable.errno("cannot stat", path) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw CheckpointError.invalid("\(path) is not a regular file: a checkpoint holds only plain files") }
        let size = Int(st.st_size)
        try checkSize(size)
        var bytes = [UInt8](repeating: 0, count: size)
        var off = 0
        while off < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, size - off) }
            if n < 0 { if errno == EINTR { continue }; throw Durable.errno("cannot read", path) }
            if n == 0 { throw CheckpointError.invalid("\(path) shrank from \(size) to \(off) bytes while it was read") }
            off += n
        }
        return bytes
    }

    /// A decoding error as the field it concerns and what is wrong.
    static func describe(_ error: Error) -> String {
        func field(_ path: [CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: ["."])
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let c)?: return "field \(field(c.codingPath + [key])) is missing"
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?: return "field \(field(c.codingPath)): \(c.debugDescription)"
        case .dataCorrupted(let c)?: return c.codingPath.isEmpty ? "not valid JSON" : "field \(field(c.codingPath)): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}

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

/// A small, valid checkpoint `step-5` of a two-tensor model (`w` [2, 3] cut
/// over two servers, `b` [2] on server 1) with one worker's residual: the
/// fixture the checkpoint tests and the manifest fuzzer craft their inputs
/// from. `weights`, `momentum` and `residual` hold 8 values each (w then b).
func writeExampleCheckpoint(runDir: String, weights p: [Float], momentum v: [Float], residual: [Float], build: String) throws {
    precondition(p.count == 8 && v.count == 8 && residual.count == 8)
    func tensor(_ name: String, _ values: ArraySlice<Float>, _ shape: [Int]) -> Safetensors.Tensor {
        Array(values).withUnsafeBufferPointer { Safetensors.Tensor(name: name, shape: shape, floats: $0) }
    }
    let w = CheckpointWriter(runDir: runDir)
    let s0 = try w.writeRankFile(step: 5, name: "server-0.safetensors",
                                 tensors: [tensor("w", p[0..<4], [4]), tensor("w.momentum", v[0..<4], [4])], metadata: [:])
    let s1 = try w.writeRankFile(step: 5, name: "server-1.safetensors",
                                 tensors: [tensor("w", p[4..<6], [2]), tensor("w.momentum", v[4..<6], [2]),
                                           tensor("b", p[6..<8], [2]), tensor("b.momentum", v[6..<8], [2])], metadata: [:])
    let w0 = try w.writeRankFile(step: 5, name: "worker-0.safetensors", tensors: [tensor("residual", residual[...], [8])], metadata: [:])
    let m = Manifest(run: "t", step: 5, epoch: 0, epochCursor: 40, stepsPerEpoch: 10, totalSteps: 20, seed: 1, dataOrder: "", rng: "",
                     lrSchedule: "constant", learningRate: 0.1,
                     scaler: .init(scale: 65536, goodSteps: 5, hysteresisLeft: 2, skipped: 0, overflowsAtMin: 0, lastFiniteStep: 4),
                     servers: 2, workers: 1, precision: "fp16", compression: "none", build: build, configHash: "0", config: "", created: 0,
                     files: [.init(name: "server-0.safetensors", role: "server", index: 0, bytes: s0.bytes, sha256: s0.sha256),
                             .init(name: "server-1.safetensors", role: "server", index: 1, bytes: s1.bytes, sha256: s1.sha256),
                             .init(name: "worker-0.safetensors", role: "worker", index: 0, bytes: w0.bytes, sha256: w0.sha256)],
                     tensors: [.init(name: "w", shape: [2, 3], shards: [.init(file: "server-0.safetensors", start: 0, count: 4),
                                                                        .init(file: "server-1.safetensors", start: 4, count: 2)]),
                               .init(name: "b", shape: [2], shards: [.init(file: "server-1.safetensors", start: 0, count: 2)])])
    _ = try w.complete(m, keep: 3)
}
