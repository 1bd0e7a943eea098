import ArgumentParser
import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSLaunch

struct Ckpt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, verify and export a run's checkpoints.",
        subcommands: [List.self, Verify.self, Export.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The checkpoints of a run, newest last, with their verification state.")
        @Argument(help: "The run directory.") var runDir: String

        func run() throws {
            let all = CheckpointStore.list(runDir)
            if all.isEmpty { print("no checkpoints in \(CheckpointStore.folder(runDir))"); return }
            let latest = CheckpointStore.latestName(runDir)
            print("step       state     files  MB      world  scale      written")
            for c in all {
                let name = "step-\(c.step)"
                var line = name.padding(toLength: 11, withPad: " ", startingAt: 0)
                do {
                    let m = try CheckpointStore.verify(c.path)
                    let mb = Double(m.files.reduce(0) { $0 + $1.bytes }) / 1e6
                    let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: m.created))
                    line += "ok        \(String(m.files.count).padding(toLength: 7, withPad: " ", startingAt: 0))"
                        + "\(String(format: "%-8.1f", mb))\("W\(m.workers) S\(m.servers)".padding(toLength: 7, withPad: " ", startingAt: 0))"
                        + "\(String(format: "%-11g", m.scaler.scale))\(date)"
                } catch {
                    line += "DAMAGED   \(error)"
                }
                if name == latest { line += "   <- LATEST" }
                print(line)
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a checkpoint: the manifest (its own SHA-256, step, file names, shard ranges) and every file (size, SHA-256, safetensors header, shard contents).")
        @Argument(help: "The run directory.") var runDir: String
        @Argument(help: "The checkpoint (step-N or N); default: every one.") var step: String?

        func run() throws {
            var targets = CheckpointStore.list(runDir)
            if let step { targets = targets.filter { "step-\($0.step)" == step || String($0.step) == step } }
            if targets.isEmpty { throw Refusal("no checkpoint \(step ?? "") in \(CheckpointStore.folder(runDir))") }
            var bad = 0
            for c in targets {
                do {
                    let m = try CheckpointStore.verify(c.path)
                    print("step-\(c.step): ok (\(m.files.count) files, \(m.tensors.count) tensors, SHA-256 verified)")
                } catch {
                    bad += 1
                    print("step-\(c.step): DAMAGED: \(error)")
                }
            }
            if bad > 0 { throw ExitCode(1) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the full model weights (FP32) of a checkpoint as one safetensors file.")
        @Argument(help: "The run directory.") var runDir: String
        @Option(name: .long, help: "The output file (a new file; see --force).") var out: String
        @Option(name: .long, help: "The checkpoint (default: the newest valid one).") var from: String?
        @Flag(name: .long, help: "Replace --out when it is an existing regular file (never a folder or anything else).") var force = false

        func run() throws {
            try Ckpt.checkOut(out, force: force)
            let chosen = try userFacing { try CheckpointStore.choose(runDir, from: from, warn: { print("pstrain: warning: \($0)") }) }
            let cfg = try userFacing { try chosen.manifest.configuration(folder: chosen.path) }
            let layout = try Model(cfg.model, capacity: 1).layout
            let all = FloatBuffer(count: layout.totalCount)
            try CheckpointStore.loadRange(chosen.path, chosen.manifest, layout: layout, suffix: "", lo: 0, hi: layout.totalCount, into: all.pointer)
            // The standardisation numbers of the run, when it standardised its data (NormalizationFile).
            let normalization = try userFacing { try NormalizationFile.load(chosen.path, chosen.manifest) }
            let tensors = layout.tensors.map {
                Safetensors.Tensor(name: $0.name, shape: $0.spec.shape, floats: UnsafeBufferPointer(start: all.pointer + $0.offset, count: $0.count))
            } + normalization
            var metadata = ["format": "pstrain-model", "step": String(chosen.manifest.step), "layers": cfg.model.layersTOML]
            // The sample shape of image models ("[1, 28, 28]"); flat models keep the exports they always had.
            if cfg.model.inputShape.count > 1 { metadata["input"] = cfg.model.inputShape.shapeText }
            // How the run normalised its inputs, so that a model built from the export takes raw inputs
            // (docs/python.md): "standardize" carries its tensors (data.mean, data.std); "scalar" its two numbers.
            if cfg.model.tables.isEmpty {
                switch cfg.data.normalizeInEffect {
                case .none, .auto: metadata["normalize"] = "none"
                case .standardize: metadata["normalize"] = "standardize"
                case .scalar:
                    metadata["normalize"] = "scalar"
                    let numbers = cfg.data.fromFiles ? cfg.data : Config().data   // a synthetic set always has Fashion-MNIST's
                    metadata["mean"] = String(numbers.mean)
                    metadata["std"] = String(numbers.std)
                }
            }
            let tables = try userFacing { try Ckpt.tables(chosen.path, chosen.manifest, cfg) }
            if !tables.isEmpty {
                metadata["input"] = cfg.model.inputShape.shapeText
                metadata["tables"] = cfg.model.tablesTOML
                metadata["loss"] = "\"\(cfg.model.loss.rawValue)\""
                metadata["interaction"] = "\"\(cfg.model.interaction.rawValue)\""
            }
            let bytes = Safetensors.encode(tables + tensors, metadata: metadata)
            // Written beside --out and renamed over it: never a half-written export, and nothing but a regular file replaced.
            try Ckpt.checkOut(out, force: force)
            try userFacing { try Durable.replace(out, bytes: bytes) }
            print("pstrain: wrote \(out): \(tables.count + tensors.count) tensors, \(layout.totalCount) parameters\(tables.isEmpty ? "" : " and \(tables.count) embedding tables")\(normalization.isEmpty ? "" : " and the data's standardisation"), from \((chosen.path as NSString).lastPathComponent)")
        }
    }

    /// Refuses an --out that would lose something: a folder or anything
    /// but a regular file, or an existing file without --force (the export
    /// never deletes; it replaces a file by renaming the new one over it).
    static func checkOut(_ out: String, force: Bool) throws {
        var st = stat()
        guard lstat(out, &st) == 0 else {
            if errno == ENOENT { return }
            throw Refusal("--out \(out): \(String(cString: strerror(errno)))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            if !force { throw Refusal("--out \(out) exists: pass --force to replace it, or name a new file") }
        case S_IFDIR:
            throw Refusal("--out \(out) is a folder: name the file to write, for example \(out)/model.safetensors")
        default:
            throw Refusal("--out \(out) exists and is not a regular file (a link, a pipe or a device): name a new file")
        }
    }

    /// Each embedding table whole, as torch.nn.EmbeddingBag's weight
    /// (`embeddings.<t>.weight`, [rows, dim]): the rows the servers stored,
    /// every other row its initial value (what it would hold untouched).
    static func tables(_ dir: String, _ m: Manifest, _ cfg: Config) throws -> [Safetensors.Tensor] {
        guard !cfg.model.tables.isEmpty else { return [] }
        try TableRows.checkExportable(cfg.model.tables, dir: dir)
        let shard = TableShard(tables: cfg.model.tables, optimizer: cfg.train.sparseOptimizer, hyper: cfg.train.sparseHyper, seed: cfg.train.seed)
        try TableRows.restore(dir, m, into: shard) { _ in true }
        return cfg.model.tables.enumerated().map { t, spec in
            let all = FloatBuffer(count: spec.rows * spec.dim)
            for r in 0..<spec.rows { shard.peek(table: t, row: UInt64(r), into: all.pointer + r * spec.dim) }
            return Safetensors.Tensor(name: TableSpec.name(t), shape: [spec.rows, spec.dim], floats: UnsafeBufferPointer(start: all.pointer, count: all.count))
        }
    }
}
