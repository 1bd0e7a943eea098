import Foundation
import PSSupport
import PSNumerics

/// Reading and checking checkpoints. Every read goes through one checked
/// path: `readManifest` (bounded size, format, checksum, step against the
/// folder name, file names, shard ranges) and `readListedFile` (listed in
/// the manifest, size from fstat before reading, SHA-256, safetensors
/// header). `verify`, `loadRange` and `loadResidual` are built on them.
public enum CheckpointStore {
    public static func folder(_ runDir: String) -> String { runDir + "/checkpoints" }

    /// The FP32 tensors a server file holds for each of its shards: the
    /// weights ("<name>", suffix "") and each state tensor of the optimizer
    /// ("<name>.momentum" for SGD, "<name>.exp_avg" and "<name>.exp_avg_sq"
    /// for Adam and AdamW, "<name>.sum" for Adagrad), as the manifest
    /// records them; for a manifest written before it recorded them, as the
    /// server file holding the first tensor's first shard names them.
    public static func serverSuffixes(_ m: Manifest, dir: String) throws -> [String] {
        if let states = m.optimizerStates { return [""] + states }
        guard let first = m.tensors.first, let shard = first.shards.first else { return [""] }
        let prefix = first.name + "."
        let states = try readListedFile(dir, m, shard.file).keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        return [""] + states.sorted()
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
    static let nonNegativeStates: Set<String> = ["exp_avg_sq", "sum", "square_avg"]

    static func shardPiece(_ tensors: [String: Safetensors.Tensor], dir: String, tensor: String, suffix: String,
                           shard: Manifest.TensorEntry.Shard) throws -> Safetensors.Tensor {
        let key = suffix.isEmpty ? tensor : "\(tensor).\(suffix)"
        guard let piece = tensors[key], piece.dtype == .f32, piece.count == shard.count else {
            throw CheckpointError.invalid("\(dir)/\(shard.file) lacks \(key) with \(shard.count) FP32 elements (the manifest's shard of \(tensor) says so): damaged or crafted checkpoint")
        }
        // Values a run can hold: finite, and not negative for the states
        // that are sums of squares (Adam's exp_avg_sq, Adagrad's sum, RMSprop's square_avg).
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
