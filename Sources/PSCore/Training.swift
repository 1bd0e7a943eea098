import Foundation
import CBLAS

// ---------------------------------------------------------------------------
// One synchronous step (docs/architecture.md):
//   worker: params v_t -> forward/backward on its slice -> grads to servers
//   server: wait for all W grads of step t -> sum in worker-rank order -> SGD
//           -> params v_{t+1} to every worker
// After the last step of each epoch the workers evaluate their slice of the
// test set and send (loss, correct, count) to server 0, which logs it.
// ---------------------------------------------------------------------------

/// What a rank needs to run its role. Built by the executable (PSRank) or by
/// a test over an in-process transport.
public final class RankContext {
    public let config: Config
    public let world: World
    public let transport: Transport
    public let log: RunLog?
    /// Human progress lines (server 0 only prints them).
    public let say: (String) -> Void

    /// The run directory (checkpoints go to its checkpoints/ folder).
    public let runDir: String
    /// The checkpoint this run continues from, already verified.
    public let resume: (path: String, manifest: Manifest)?

    public init(config: Config, world: World, transport: Transport, log: RunLog?, say: @escaping (String) -> Void,
                runDir: String = "", resume: (path: String, manifest: Manifest)? = nil) {
        self.config = config; self.world = world; self.transport = transport; self.log = log; self.say = say
        self.runDir = runDir; self.resume = resume
    }

    /// The first step this run computes, after checking that a checkpoint
    /// being resumed belongs to a run of this length.
    func startStep(perEpoch: Int, total: Int) throws -> Int {
        guard let (path, m) = resume else { return 0 }
        guard m.stepsPerEpoch == perEpoch, m.totalSteps == total else {
            throw PSError("\(path) was written by a run of \(m.totalSteps) steps (\(m.stepsPerEpoch) per epoch); this configuration gives \(total) (\(perEpoch)): "
                + "resume with the run's own configuration (train.epochs, train.batch_size, train.max_steps)")
        }
        return m.step
    }

    /// Rank r's report on its checkpoint file, to server 0.
    static let reportBytes = 480
    func sendCheckpointReport(step: Int, result: Result<(bytes: Int, sha256: String), Error>, buffer: FrameBuffer) throws {
        let p = buffer.payload
        p.initializeMemory(as: UInt8.self, repeating: 0, count: RankContext.reportBytes)
        switch result {
        case .success(let r):
            p.storeBytes(of: 1.0, as: Double.self)
            p.storeBytes(of: Double(r.bytes), toByteOffset: 8, as: Double.self)
            for (i, c) in r.sha256.utf8.prefix(64).enumerated() { p.storeBytes(of: c, toByteOffset: 16 + i, as: UInt8.self) }
        case .failure(let e):
            for (i, c) in "\(e)".utf8.prefix(399).enumerated() { p.storeBytes(of: c, toByteOffset: 80 + i, as: UInt8.self) }
        }
        buffer.length = Frame.seal(FrameHeader(kind: .checkpoint, step: UInt64(step), chunk: UInt32(rank), elementType: .f64,
                                               rawLength: UInt64(RankContext.reportBytes), encodedLength: UInt64(RankContext.reportBytes)),
                                   buffer: buffer.raw)
        let req = try transport.isend(buffer, to: world.serverRanks[0], tag: FrameKind.checkpoint.tag)
        _ = try wait([req], for: "sending the checkpoint report", step: step)
    }
}

/// A rank's checkpoint file name.
func checkpointFile(_ role: Role, _ index: Int) -> String { "\(role.name)-\(index).safetensors" }

extension RankContext {
    /// Server 0: waits for every other rank's report, then writes the
    /// manifest and completes the checkpoint; on any failure removes the
    /// temporary folder, leaving the previous checkpoint and LATEST as they were.
    func completeCheckpoint(step: Int, mine: Result<(bytes: Int, sha256: String), Error>,
                            manifest: (_ files: [Manifest.FileEntry]) -> Manifest) throws -> String {
        /// Test hook: die at a chosen point of completing a chosen checkpoint, once per run directory.
        func crashPoint(_ point: String) {
            guard let d = config.dieInCheckpoint, d.step == step, d.point == point else { return }
            let marker = runDir + "/.died-in-checkpoint-\(step)-\(point)"
            if FileManager.default.fileExists(atPath: marker) { return }
            _ = FileManager.default.createFile(atPath: marker, contents: nil)
            log?.flush()
            kill(getpid(), SIGKILL)
        }
        let writer = CheckpointWriter(runDir: runDir)
        let others = (0..<world.hellos.count).filter { $0 != rank }
        let frames = others.map { _ in FrameBuffer(payloadCapacity: RankContext.reportBytes) }
        let reqs = try others.enumerated().map { (i, r) in try transport.irecv(frames[i], from: r, tag: FrameKind.checkpoint.tag) }
        let counts = try wait(reqs, for: "checkpoint reports", step: step)
        var files: [Manifest.FileEntry] = []
        var failures: [String] = []
        func add(_ r: Int, _ res: Result<(bytes: Int, sha256: String), Error>) {
            let h = world.hellos[r]
            switch res {
            case .success(let v): files.append(.init(name: checkpointFile(h.role, world.index(ofRank: r)), role: h.role.name,
                                                     index: world.index(ofRank: r), bytes: v.bytes, sha256: v.sha256))
            case .failure(let e): failures.append("\(world.describe(r)): \(e)")
            }
        }
        add(rank, mine)
        for (i, r) in others.enumerated() {
            _ = try Frame.open(buffer: frames[i].raw, length: counts[i],
                               expect: FrameExpectation(kind: .checkpoint, step: UInt64(step), chunk: UInt32(r), elementType: .f64,
                                                        rawLength: RankContext.reportBytes), sender: world.describe(r))
            let p = frames[i].payload
            if p.load(as: Double.self) == 1 {
                let sha = String(decoding: (0..<64).map { p.load(fromByteOffset: 16 + $0, as: UInt8.self) }, as: UTF8.self)
                add(r, .success((Int(p.load(fromByteOffset: 8, as: Double.self)), sha)))
            } else {
                let bytes = (0..<400).map { p.load(fromByteOffset: 80 + $0, as: UInt8.self) }.prefix { $0 != 0 }
                add(r, .failure(PSError(String(decoding: bytes, as: UTF8.self))))
            }
        }
        let previous = CheckpointStore.latestName(runDir).map { "the previous checkpoint (\($0)) and LATEST are untouched" }
            ?? "no earlier checkpoint exists; LATEST was not written"
        if !failures.isEmpty {
            try? FileManager.default.removeItem(atPath: writer.tempDir(step))
            throw PSError("checkpoint step-\(step) failed: " + failures.joined(separator: "; ") + "; " + previous)
        }
        files.sort { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) }
        do {
            return try writer.complete(manifest(files), keep: config.checkpointKeep, crashPoint: crashPoint)
        } catch {
            try? FileManager.default.removeItem(atPath: writer.tempDir(step))
            throw PSError("checkpoint step-\(step) failed: \(error); " + previous)
        }
    }
}

extension RankContext {
    var rank: Int { transport.rank }
    var timeout: Double { config.timeoutSeconds }

    /// Waits, turning a timeout into a message that names the silent rank.
    func wait(_ reqs: [TransportRequest], for what: String, step: Int) throws -> [Int] {
        do {
            return try transport.waitAll(reqs, timeout: timeout)
        } catch let t as TransportTimeout {
            throw PSError(blame(WaitClaim(rank: rank, peer: t.peer, what: what, step: step, seconds: t.seconds)))
        }
    }

    /// The attempt of the job this rank belongs to: server 0's process id.
    var attempt: Int32 { world.hellos[world.serverRanks[0]].pid }

    /// The message for a wait that timed out: after a grace period in which
    /// the other ranks' deadlines fire too, the rank at the end of the chain
    /// of waits is named, not merely this rank's peer (Blame.swift).
    func blame(_ mine: WaitClaim) -> String {
        var last = mine
        var through = ""
        if !runDir.isEmpty {
            let claims = WaitClaims(runDir: runDir, attempt: attempt)
            claims.leave(mine)
            Thread.sleep(forTimeInterval: max(1, min(timeout / 2, 10)))
            let (chain, cycle) = claims.follow(from: mine)
            if cycle {
                return "deadlock: " + chain.map { "\(world.describe($0.rank)) waits for \(world.describe($0.peer)) (\($0.what) of step \($0.step))" }
                    .joined(separator: ", ") + "; no rank is silent, the ranks wait on each other (a pstrain bug: please report it with the run directory)"
            }
            last = chain.last!
            if chain.count > 1 {
                through = "; \(world.describe(rank)) timed out as well, waiting for " + chain.dropLast().map { "\(world.describe($0.peer))" }.joined(separator: ", which waited for ")
            }
        }
        return "\(world.describe(last.peer)) sent nothing for \(Int(last.seconds)) s while \(world.describe(last.rank)) waited for \(last.what) of step \(last.step); "
            + "that rank is hung or dead (run.timeout_seconds sets this deadline)\(through); last checkpoint: \(runDir.isEmpty ? "none" : CheckpointStore.latestName(runDir) ?? "none")"
    }

    /// Number of steps in the run and per epoch.
    func schedule(trainCount: Int) throws -> (perEpoch: Int, total: Int) {
        let perEpoch = trainCount / config.batchSize
        guard perEpoch > 0 else {
            throw PSError("train.batch_size = \(config.batchSize) is larger than the training set (\(trainCount) samples)")
        }
        var total = perEpoch * config.epochs
        if config.maxSteps > 0 { total = min(total, config.maxSteps) }
        return (perEpoch, total)
    }
}

/// Peak resident memory of this process, in bytes (getrusage).
public func peakRSSBytes() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
}

/// "top-k 1% + shuffle + zstd 1, adaptive at 10 Gbit/s", for logs.
func describe(_ c: CodecSettings) -> String {
    var parts: [String] = []
    if c.topk > 0 { parts.append("top-k \(c.topk * 100)%") }
    if c.shuffle { parts.append("shuffle") }
    if c.zstdLevel > 0 { parts.append("zstd \(c.zstdLevel)") }
    if parts.isEmpty { return "none" }
    return parts.joined(separator: " + ") + (c.adaptiveBypass ? ", adaptive at \(c.linkBytesPerSecond * 8 / 1e9) Gbit/s" : "")
}

func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

/// XXH64 of a Float range: the parameter digest runs log and tests compare.
public func digest(_ p: UnsafePointer<Float>, count: Int) -> String {
    hex64(xxh64(UnsafeRawBufferPointer(start: p, count: count * 4)))
}

@inline(__always) func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

// MARK: - Server

public final class ServerRole {
    let ctx: RankContext
    let index: Int
    let layout: ModelLayout
    let plan: ShardPlan
    let range: Range<Int>
    /// FP32 master weights and momentum of this server's shard.
    public let weights: FloatBuffer
    let velocity: FloatBuffer
    /// The step's summed gradient (FP32).
    let gradSum: FloatBuffer
    let trainCount: Int
    public private(set) var scaler: LossScaler

    /// `layout` comes from the model the configuration builds; `trainCount`
    /// is the size of the training set (servers do not load the data).
    public init(context: RankContext, layout: ModelLayout, trainCount: Int) throws {
        ctx = context
        index = context.world.index(ofRank: context.rank)
        self.layout = layout
        plan = ShardPlan(total: layout.totalCount, servers: context.world.servers)
        range = plan.range(index)
        weights = FloatBuffer(count: range.count)
        velocity = FloatBuffer(count: range.count)
        gradSum = FloatBuffer(count: range.count)
        self.trainCount = trainCount
        scaler = LossScaler(settings: context.config.scalerSettings, dynamic: context.config.precision.usesLossScaling)
        if let (path, m) = context.resume {
            // Tensors are stored by name and full shape: any server count re-cuts them.
            try CheckpointStore.loadRange(path, m, layout: layout, suffix: "", lo: range.lowerBound, hi: range.upperBound, into: weights.pointer)
            try CheckpointStore.loadRange(path, m, layout: layout, suffix: "momentum", lo: range.lowerBound, hi: range.upperBound, into: velocity.pointer)
            scaler.restore(m.scaler)
        } else {
            layout.initialize(seed: context.config.seed, range: range.lowerBound, range.upperBound, into: weights.pointer)
        }
    }

    /// This server's file of a checkpoint: its slice of every tensor it holds
    /// (full shape when it holds all of it), weights and momentum.
    func checkpointTensors() -> [Safetensors.Tensor] {
        var out: [Safetensors.Tensor] = []
        for t in layout.tensors {
            let a = max(range.lowerBound, t.offset), b = min(range.upperBound, t.offset + t.count)
            if a >= b { continue }
            let shape = (a == t.offset && b == t.offset + t.count) ? t.spec.shape : [b - a]
            let off = a - range.lowerBound
            out.append(Safetensors.Tensor(name: t.name, shape: shape, floats: UnsafeBufferPointer(start: weights.pointer + off, count: b - a)))
            out.append(Safetensors.Tensor(name: t.name + ".momentum", shape: shape, floats: UnsafeBufferPointer(start: velocity.pointer + off, count: b - a)))
        }
        return out
    }

    /// Writes this server's file of checkpoint `step`; server 0 then completes it.
    func checkpoint(step: Int, perEpoch: Int, total: Int, report: FrameBuffer) throws {
        let cfg = ctx.config, world = ctx.world
        let writer = CheckpointWriter(runDir: ctx.runDir)
        let t0 = now()
        let mine = Result { try writer.writeRankFile(step: step, name: checkpointFile(.server, index), tensors: checkpointTensors(),
                                                    metadata: ["format": "pstrain-checkpoint", "step": String(step), "role": "server", "index": String(index)]) }
        guard index == 0 else {
            try ctx.sendCheckpointReport(step: step, result: mine, buffer: report)
            return
        }
        let chunks = plan.chunks(layout)
        let dir = try ctx.completeCheckpoint(step: step, mine: mine) { files in
            Manifest(run: (ctx.runDir as NSString).lastPathComponent, step: step, epoch: step / perEpoch,
                     epochCursor: (step % perEpoch) * cfg.batchSize, stepsPerEpoch: perEpoch, totalSteps: total, seed: cfg.seed,
                     dataOrder: "epoch e visits the training set in the Fisher-Yates order drawn from (seed, e); global batch k of an epoch is samples [k*B, (k+1)*B) of that order, split over the workers in contiguous slices",
                     rng: "counter-based (SplitMix64 of seed, stream, index): no state to save",
                     lrSchedule: cfg.lrSchedule, learningRate: cfg.learningRate(step: step, total: total),
                     scaler: scaler.state, servers: world.servers, workers: world.workers, precision: cfg.precision.rawValue,
                     compression: describe(cfg.codecSettings), build: String(world.hellos[ctx.rank].buildHash, radix: 16),
                     configHash: String(cfg.hash, radix: 16), config: cfg.canonicalTOML, created: Date().timeIntervalSince1970,
                     files: files,
                     tensors: layout.tensors.map { t in
                         Manifest.TensorEntry(name: t.name, shape: t.spec.shape, shards: chunks.filter { $0.tensor == t.index }.map {
                             .init(file: checkpointFile(.server, $0.server), start: $0.range.lowerBound - t.offset, count: $0.range.count)
                         })
                     })
        }
        let took = now() - t0
        let size = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).reduce(0) {
            $0 + ((try? FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as? Int) ?? 0)
        }
        ctx.log?.write("checkpoint", [("step", .int(step)), ("path", .string(dir)), ("bytes", .int(size)), ("seconds", .double(took))])
        ctx.say("checkpoint step-\(step) written (\(String(format: "%.1f", Double(size) / 1e6)) MB, \(String(format: "%.0f", took * 1000)) ms)")
    }

    public func run() throws {
        let cfg = ctx.config, world = ctx.world, t = ctx.transport
        let (perEpoch, total) = try ctx.schedule(trainCount: trainCount)
        let W = world.workers
        let prec = cfg.precision
        var sgd = SGD(lr: Float(cfg.lr), momentum: Float(cfg.momentum), weightDecay: Float(cfg.weightDecay))
        // This server's pieces, in the order the workers send them.
        let all = plan.pieces(layout, maxElements: cfg.chunkElements)
        let mine = all.indices.filter { all[$0].server == index }
        let cs = cfg.codecSettings
        let codec = PieceCodec(settings: cs, maxElements: mine.map { all[$0].range.count }.max() ?? 1)
        let paramFrames = mine.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes(all[$0].range.count, prec, cs, sparse: false)) }
        let gradFrames = (0..<W).map { _ in mine.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes(all[$0].range.count, prec, cs, sparse: true)) } }
        let infoFrames = (0..<W).map { _ in FrameBuffer(payloadCapacity: 24) }
        let voteOut = FrameBuffer(payloadCapacity: 16)
        let voteIn = world.serverRanks.map { _ in FrameBuffer(payloadCapacity: 16) }
        /// Server 0's requests for this step (FrameFlags.checkpoint, .stop), shared by the vote
        /// with the other servers and by the parameters' flags with the workers.
        var request: UInt8 = 0
        var lastCheckpoint = now()
        let evalFrames = (0..<W).map { _ in FrameBuffer(payloadCapacity: 24) }
        let isLead = index == 0
        ctx.log?.write("start", [("servers", .int(world.servers)), ("workers", .int(W)), ("shard_lo", .int(range.lowerBound)),
                                 ("shard_hi", .int(range.upperBound)), ("pieces", .int(mine.count)), ("precision", .string(prec.rawValue)),
                                 ("compression", .string(describe(cs))),
                                 ("loss_scale", .double(scaler.scale)), ("steps", .int(total)), ("steps_per_epoch", .int(perEpoch))])
        ctx.log?.flush()

        var sends = [[TransportRequest]](repeating: [], count: mine.count)
        var bytesOut = 0
        /// Encodes piece k of the current weights as parameters `version` and
        /// sends it to every worker; the header carries the loss scale to use.
        func sendPiece(_ k: Int, version: Int) throws {
            let c = all[mine[k]]
            let n = c.range.count
            _ = try ctx.wait(sends[k], for: "parameter sends", step: version)
            let e = codec.encode(weights.pointer + (c.range.lowerBound - range.lowerBound), count: n, as: prec, sparse: false,
                                 chunk: mine[k], step: version, into: paramFrames[k].payload, capacity: paramFrames[k].capacity - FrameHeader.size)
            paramFrames[k].length = Frame.seal(FrameHeader(kind: .params, step: UInt64(version), chunk: UInt32(mine[k]), elementType: prec.elementType,
                                                           rawLength: UInt64(Payload.bytes(n, prec)), encodedLength: UInt64(e.length),
                                                           aux0: scaler.scale, aux1: Double(scaler.skipped), codec: e.stages, flags: e.flags | request),
                                               buffer: paramFrames[k].raw)
            sends[k] = try world.workerRanks.map { try t.isend(paramFrames[k], to: $0, tag: FrameKind.params.tag) }
            bytesOut += paramFrames[k].length * W
        }
        func postRecvs() throws -> (grads: [[TransportRequest]], info: [TransportRequest]) {
            // grads[k][w]: MPI keeps messages of one sender and tag in order,
            // so posting in piece order matches the pieces.
            var r = [[TransportRequest]](repeating: [], count: mine.count)
            var info: [TransportRequest] = []
            for (w, rank) in world.workerRanks.enumerated() {
                for k in mine.indices { r[k].append(try t.irecv(gradFrames[w][k], from: rank, tag: FrameKind.grads.tag)) }
                info.append(try t.irecv(infoFrames[w], from: rank, tag: FrameKind.stepInfo.tag))
            }
            return (r, info)
        }

        let start = try ctx.startStep(perEpoch: perEpoch, total: total)
        let report = FrameBuffer(payloadCapacity: RankContext.reportBytes)
        if isLead && !ctx.runDir.isEmpty {
            CheckpointWriter(runDir: ctx.runDir).removeStale()
            WaitClaims.removeStale(runDir: ctx.runDir, keep: ctx.attempt)
        }
        if start > 0 {
            ctx.log?.write("resumed", [("step", .int(start)), ("from", .string(ctx.resume!.path)),
                                       ("params_digest", .string(digest(weights.pointer, count: range.count))),
                                       ("loss_scale", .double(scaler.scale)), ("skipped", .int(scaler.skipped))])
            if isLead { ctx.say("resuming from \(ctx.resume!.path) at step \(start) of \(total)") }
        }
        for k in mine.indices.reversed() { try sendPiece(k, version: start) }
        var recvs = try postRecvs()
        let started = now()
        var progress = Progress(lead: isLead, say: ctx.say, every: cfg.progressSeconds, total: total, perEpoch: perEpoch,
                                epochs: cfg.epochs, batch: cfg.batchSize, start: started, firstStep: start)
        var stepStart = started
        var finished = total
        for step in start..<total {
            sgd.lr = Float(cfg.learningRate(step: step, total: total))
            var waited = 0.0, applied = 0.0
            var bytesIn = 0
            bytesOut = 0
            // 1. Sum the pieces as they arrive, each in worker-rank order
            //    (never arrival order: reproducible bits), widening to FP32.
            for k in mine.indices {
                let c = all[mine[k]]
                let n = c.range.count
                let waitStart = now()
                let counts = try ctx.wait(recvs.grads[k], for: "gradients", step: step)
                let workStart = now()
                waited += workStart - waitStart
                let expect = FrameExpectation(kind: .grads, step: UInt64(step), chunk: UInt32(mine[k]), elementType: prec.elementType,
                                              rawLength: Payload.bytes(n, prec))
                let sum = gradSum.pointer + (c.range.lowerBound - range.lowerBound)
                for w in 0..<W {
                    let sender = world.describe(world.workerRanks[w])
                    let h = try Frame.open(buffer: gradFrames[w][k].raw, length: counts[w], expect: expect, sender: sender)
                    bytesIn += counts[w]
                    do {
                        try codec.decode(gradFrames[w][k].payload, length: Int(h.encodedLength), stages: h.codec, count: n, as: prec,
                                         into: sum, add: w > 0)
                    } catch let e as PSError {
                        throw PSError("bad frame from \(sender) (gradients of step \(step), piece \(mine[k])): \(e.message)")
                    }
                }
                applied += now() - workStart
            }
            // 2. The workers' step summaries: loss, samples, overflow flags.
            let waitInfo = now()
            let infoCounts = try ctx.wait(recvs.info, for: "step summaries", step: step)
            var lossSum = 0.0, samples = 0.0
            var overflow = false
            var overflowBy: [String] = []
            for w in 0..<W {
                _ = try Frame.open(buffer: infoFrames[w].raw, length: infoCounts[w],
                                   expect: FrameExpectation(kind: .stepInfo, step: UInt64(step), chunk: 0, elementType: .f64, rawLength: 24),
                                   sender: world.describe(world.workerRanks[w]))
                let v = infoFrames[w].payload.assumingMemoryBound(to: Double.self)
                lossSum += v[0]; samples += v[1]
                if v[2] != 0 { overflow = true; overflowBy.append("worker \(w)") }
            }
            if Payload.overflows(gradSum.pointer, count: range.count, as: .fp32) { overflow = true; overflowBy.append("sum on server \(index)") }
            // Server 0 alone decides on time-based checkpoints and on stopping
            // (the launcher asks for it with a STOP file in the run directory).
            request = 0
            if isLead && !ctx.runDir.isEmpty {
                if cfg.checkpointSeconds > 0 && now() - lastCheckpoint >= cfg.checkpointSeconds { request |= FrameFlags.checkpoint }
                if FileManager.default.fileExists(atPath: ctx.runDir + "/STOP") { request |= FrameFlags.checkpoint | FrameFlags.stop }
            }
            // 3. Every server agrees: apply or skip, the same everywhere.
            if world.servers > 1 {
                voteOut.payload.storeBytes(of: overflow ? 1.0 : 0.0, as: Double.self)
                voteOut.payload.storeBytes(of: Double(request), toByteOffset: 8, as: Double.self)
                voteOut.length = Frame.seal(FrameHeader(kind: .vote, step: UInt64(step), chunk: UInt32(index), elementType: .f64,
                                                        rawLength: 16, encodedLength: 16), buffer: voteOut.raw)
                var reqs: [TransportRequest] = []
                for (s, r) in world.serverRanks.enumerated() where s != index {
                    reqs.append(try t.isend(voteOut, to: r, tag: FrameKind.vote.tag))
                    reqs.append(try t.irecv(voteIn[s], from: r, tag: FrameKind.vote.tag))
                }
                let vc = try ctx.wait(reqs, for: "overflow votes", step: step)
                var i = 1
                for (s, r) in world.serverRanks.enumerated() where s != index {
                    _ = try Frame.open(buffer: voteIn[s].raw, length: vc[i],
                                       expect: FrameExpectation(kind: .vote, step: UInt64(step), chunk: UInt32(s), elementType: .f64, rawLength: 16),
                                       sender: world.describe(r))
                    if voteIn[s].payload.load(as: Double.self) != 0 { overflow = true; overflowBy.append("server \(s)") }
                    if s == 0 { request = UInt8(voteIn[s].payload.load(fromByteOffset: 8, as: Double.self)) }
                    i += 2
                }
            }
            waited += now() - waitInfo
            // 4. Apply (FP32, unscaled) or skip, then send version step+1.
            let applyStart = now()
            let oldScale = scaler.scale
            let inv = Float(1 / scaler.scale)
            let change = scaler.update(step: step, overflow: overflow)
            // Piece by piece, so each is updated and encoded while in cache,
            // first layer first: workers start their next forward with it.
            for k in mine.indices.reversed() {
                let c = all[mine[k]]
                let off = c.range.lowerBound - range.lowerBound
                if !overflow {
                    sgd.apply(weights: weights.pointer + off, velocity: velocity.pointer + off, grads: gradSum.pointer + off,
                              count: c.range.count, gradScale: inv)
                }
                try sendPiece(k, version: step + 1)
            }
            applied += now() - applyStart
            let stopping = request & FrameFlags.stop != 0
            if step + 1 < total && !stopping { recvs = try postRecvs() }
            let end = now()
            let loss = lossSum / max(samples, 1)
            let codecTime = codec.takeStats()
            var fields: [(String, JSONValue)] = [
                ("step", .int(step)), ("epoch", .int(step / perEpoch)), ("loss", .double(loss)),
                ("fp32_bytes", .int(range.count * 4)), ("encode_s", .double(codecTime.encode)), ("decode_s", .double(codecTime.decode)),
                ("lr", .double(Double(sgd.lr))), ("loss_scale", .double(oldScale)), ("skipped", .int(scaler.skipped)),
                ("overflow", .bool(overflow)),
                ("samples", .int(Int(samples))), ("step_s", .double(end - stepStart)),
                ("wait_s", .double(waited)), ("apply_s", .double(applied)),
                ("bytes_recv", .int(bytesIn)), ("bytes_sent", .int(bytesOut)),
                ("samples_per_s", .double(samples / max(end - stepStart, 1e-9)))]
            if cfg.digestEveryStep { fields.append(("params_digest", .string(digest(weights.pointer, count: range.count)))) }
            ctx.log?.write("step", fields)
            if overflow {
                ctx.log?.write("overflow", [("step", .int(step)), ("seen_by", .array(overflowBy.map { .string($0) })),
                                            ("loss_scale", .double(oldScale)), ("new_loss_scale", .double(scaler.scale))])
            }
            if case .grew(let a, let b) = change {
                ctx.log?.write("scale", [("step", .int(step)), ("from", .double(a)), ("to", .double(b)), ("why", .string("growth"))])
            } else if case .backedOff(let a, let b) = change {
                ctx.log?.write("scale", [("step", .int(step)), ("from", .double(a)), ("to", .double(b)), ("why", .string("overflow"))])
            }
            stepStart = end
            progress.step(step, loss: loss, skipped: overflow, scale: (oldScale, scaler.scale), at: end)
            if scaler.diverged {
                ctx.log?.flush()
                throw PSError("training diverged: steps kept overflowing for \(scaler.overflowsAtMin) steps with the loss scale at its minimum (\(scaler.scale)); "
                    + "the last step with finite gradients was \(scaler.lastFiniteStep < 0 ? "none" : String(scaler.lastFiniteStep)). "
                    + "This is not a scaling problem: lower train.lr or check the data (scaler.max_skips_at_min sets the patience)")
            }

            // Epoch end: the workers evaluate the new parameters.
            if isLead && ((step + 1) % perEpoch == 0 || step + 1 == total) {
                let reqs = try world.workerRanks.enumerated().map { (w, r) in
                    try t.irecv(evalFrames[w], from: r, tag: FrameKind.eval.tag)
                }
                let c = try ctx.wait(reqs, for: "test results", step: step)
                var loss = 0.0, correct = 0.0, count = 0.0
                for w in 0..<W {
                    _ = try Frame.open(buffer: evalFrames[w].raw, length: c[w],
                                       expect: FrameExpectation(kind: .eval, step: UInt64(step + 1), chunk: 0,
                                                                elementType: .f64, rawLength: 24),
                                       sender: world.describe(world.workerRanks[w]))
                    let v = evalFrames[w].payload.assumingMemoryBound(to: Double.self)
                    loss += v[0]; correct += v[1]; count += v[2]
                }
                let acc = correct / max(count, 1)
                ctx.log?.write("eval", [("step", .int(step + 1)), ("epoch", .int(step / perEpoch + 1)),
                                        ("test_accuracy", .double(acc)), ("test_loss", .double(loss / max(count, 1))),
                                        ("test_samples", .int(Int(count)))])
                progress.epochEnd(step, accuracy: acc, at: now())
            }
            if !ctx.runDir.isEmpty && (cfg.checkpointDue(after: step + 1, total: total) || request & FrameFlags.checkpoint != 0) {
                try checkpoint(step: step + 1, perEpoch: perEpoch, total: total, report: report)
                lastCheckpoint = now()
            }
            ctx.log?.flush()
            if stopping {
                finished = step + 1
                ctx.log?.write("stopped", [("step", .int(step + 1)), ("why", .string("the launcher asked (SIGINT/SIGTERM)"))])
                if isLead { ctx.say("stopped after step \(step + 1) of \(total) as asked; checkpoint step-\(step + 1) holds the state") }
                break
            }
        }
        progress.finish()
        for k in mine.indices { _ = try ctx.wait(sends[k], for: "parameter sends", step: finished) }
        // A completed send only means the buffer may be reused; wait until every
        // worker says it has the last parameters before this rank lets go of
        // its buffers and of MPI (over TCP, shutting down earlier lost data).
        let byes = (0..<W).map { _ in FrameBuffer(payloadCapacity: 8) }
        let byeReqs = try world.workerRanks.enumerated().map { (w, r) in try t.irecv(byes[w], from: r, tag: FrameKind.bye.tag) }
        let byeCounts = try ctx.wait(byeReqs, for: "the workers' goodbyes", step: finished)
        for w in 0..<W {
            _ = try Frame.open(buffer: byes[w].raw, length: byeCounts[w],
                               expect: FrameExpectation(kind: .bye, step: UInt64(finished), chunk: 0, elementType: .f64, rawLength: 8),
                               sender: world.describe(world.workerRanks[w]))
        }
        let wall = now() - started
        ctx.log?.write("done", [("steps", .int(finished)), ("wall_s", .double(wall)), ("peak_rss_bytes", .int(peakRSSBytes())),
                                ("skipped", .int(scaler.skipped)), ("loss_scale", .double(scaler.scale)),
                                ("params_digest", .string(digest(weights.pointer, count: range.count))),
                                ("momentum_digest", .string(digest(velocity.pointer, count: range.count)))])
        ctx.log?.flush()
    }
}

/// Server 0's human progress lines: one per epoch, one every few seconds,
/// and one line per burst of skipped steps (never one per skipped step).
struct Progress {
    let lead: Bool
    let say: (String) -> Void
    let every: Double
    let total: Int, perEpoch: Int, epochs: Int, batch: Int
    let start: Double
    var lastLine: Double
    var lossAcc = 0.0, lossN = 0
    var lastLoss = Double.nan
    /// The burst of skipped steps being collected: first, last, scale before.
    var burst: (first: Int, last: Int, scale: Double, newScale: Double)?

    let firstStep: Int

    init(lead: Bool, say: @escaping (String) -> Void, every: Double, total: Int, perEpoch: Int, epochs: Int, batch: Int, start: Double,
         firstStep: Int = 0) {
        self.lead = lead; self.say = say; self.every = every; self.total = total; self.perEpoch = perEpoch
        self.epochs = epochs; self.batch = batch; self.start = start; lastLine = start; self.firstStep = firstStep
    }

    func head(_ step: Int) -> String {
        let e = step / perEpoch + 1
        return "epoch \(min(e, epochs))/\(epochs)  step \(step + 1)/\(total)"
    }

    func rate(_ step: Int, _ t: Double) -> String {
        let sps = Double((step + 1 - firstStep) * batch) / max(t - start, 1e-9)
        return "\(Int(sps.rounded())) samples/s"
    }

    static func scaleText(_ s: Double) -> String {
        s == s.rounded() && abs(s) < 1e15 ? String(Int(s)) : String(s)
    }

    mutating func flushBurst() {
        guard let b = burst else { return }
        burst = nil
        let which = b.first == b.last ? "step \(b.first) skipped" : "steps \(b.first)-\(b.last) skipped"
        let scale = b.scale == b.newScale ? "scale \(Self.scaleText(b.scale))" : "scale \(Self.scaleText(b.scale)) -> \(Self.scaleText(b.newScale))"
        say("\(which) for overflow, \(scale)")
    }

    /// "ETA 1m05s" from the pace so far.
    func eta(_ step: Int, _ t: Double) -> String {
        let done = step + 1 - firstStep
        guard done > 0, step + 1 < total else { return "" }
        let left = (t - start) / Double(done) * Double(total - step - 1)
        return left >= 60 ? "  ETA \(Int(left) / 60)m\(String(format: "%02d", Int(left) % 60))s" : "  ETA \(Int(left.rounded()))s"
    }

    mutating func step(_ step: Int, loss: Double, skipped: Bool, scale: (old: Double, new: Double), at t: Double) {
        guard lead else { return }
        if skipped {
            if let b = burst, b.last == step - 1 {
                burst = (b.first, step, b.scale, scale.new)
            } else {
                flushBurst()
                burst = (step, step, scale.old, scale.new)
            }
            return
        }
        flushBurst()
        lossAcc += loss; lossN += 1
        if t - lastLine >= every && (step + 1) % perEpoch != 0 {
            lastLoss = lossAcc / Double(lossN)
            say("\(head(step))  loss \(String(format: "%.4f", lastLoss))  \(rate(step, t))\(eta(step, t))")
            lastLine = t; lossAcc = 0; lossN = 0
        }
    }

    mutating func epochEnd(_ step: Int, accuracy: Double, at t: Double) {
        guard lead else { return }
        flushBurst()
        if lossN > 0 { lastLoss = lossAcc / Double(lossN) }
        say("\(head(step))  loss \(String(format: "%.4f", lastLoss))  test accuracy \(String(format: "%.2f", accuracy * 100))%  \(rate(step, t))  \(String(format: "%.1f", t - start)) s\(eta(step, t))")
        lastLine = t; lossAcc = 0; lossN = 0
    }

    mutating func finish() { if lead { flushBurst() } }
}

// MARK: - Worker

public final class WorkerRole {
    let ctx: RankContext
    let index: Int
    let data: DataSplit
    let model: Model
    let plan: ShardPlan
    public let params: FloatBuffer
    let grads: FloatBuffer
    /// Top-k error-feedback residual (unscaled gradient units): training state.
    public let residual: FloatBuffer

    public init(context: RankContext, data: DataSplit) throws {
        ctx = context
        index = context.world.index(ofRank: context.rank)
        self.data = data
        let cfg = context.config
        let micro = Sampler.slice(batch: cfg.batchSize, worker: 0, of: context.world.workers).count
        let m = try Model(config: cfg, capacity: max(micro, Model.minimumCapacity))
        guard m.inputSize == data.train.features else {
            throw PSError("model.input = \(m.inputSize) but the data set's samples have \(data.train.features) features")
        }
        guard m.classes == data.train.classes else {
            throw PSError("the last layer of model.layers has \(m.classes) outputs but the data set has \(data.train.classes) classes")
        }
        model = m
        plan = ShardPlan(total: m.layout.totalCount, servers: context.world.servers)
        params = FloatBuffer(count: m.layout.totalCount)
        grads = FloatBuffer(count: m.layout.totalCount)
        residual = FloatBuffer(count: cfg.codecSettings.topk > 0 ? m.layout.totalCount : 0)
        if let (path, man) = context.resume, residual.count > 0 {
            // Same number of workers: each takes its own residual back. Another
            // number: worker 0 takes the sum of them all (no gradient mass is
            // lost), the others start from zero.
            let W = context.world.workers
            let sources = man.workers == W ? [index] : (index == 0 ? Array(0..<man.workers) : [])
            for j in sources {
                guard let r = try CheckpointStore.loadResidual(path, man, file: checkpointFile(.worker, j), count: residual.count) else { continue }
                for i in 0..<residual.count { residual.pointer[i] += r[i] }
            }
        }
    }

    public func run() throws {
        let cfg = ctx.config, world = ctx.world, t = ctx.transport
        let S = world.servers, W = world.workers
        let B = cfg.batchSize
        let prec = cfg.precision
        model.storage = prec
        let sampler = Sampler(count: data.train.count, batchSize: B, seed: cfg.seed)
        let (perEpoch, total) = try ctx.schedule(trainCount: data.train.count)
        let mine = Sampler.slice(batch: B, worker: index, of: W)
        let pieces = plan.pieces(model.layout, maxElements: cfg.chunkElements)
        let cs = cfg.codecSettings
        let codec = PieceCodec(settings: cs, maxElements: pieces.map { $0.range.count }.max() ?? 1)
        let paramFrames = pieces.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: false)) }
        let gradFrames = pieces.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: true)) }
        let infoFrame = FrameBuffer(payloadCapacity: 24)
        // Top-k error feedback: what was not sent is carried into the next
        // step (in unscaled units); restored if the servers skip the step.
        let sparse = cs.topk > 0
        let residualBackup = sparse ? FloatBuffer(count: residual.count) : nil
        // Which pieces each layer's gradients fill, in send order.
        var piecesOfTensor = [[Int]](repeating: [], count: model.layout.tensors.count)
        for (i, p) in pieces.enumerated() { piecesOfTensor[p.tensor].append(i) }
        var tensorsOfLayer = [[Int]](repeating: [], count: model.layers.count)
        do {
            var ti = 0
            for (li, l) in model.layers.enumerated() {
                for _ in l.parameters { tensorsOfLayer[li].append(ti); ti += 1 }
            }
        }
        let evalFrame = FrameBuffer(payloadCapacity: 24)
        let labels = UnsafeMutablePointer<UInt8>.allocate(capacity: model.capacity)
        defer { labels.deallocate() }
        ctx.log?.write("start", [("servers", .int(S)), ("workers", .int(W)), ("microbatch", .int(mine.count)),
                                 ("train_samples", .int(data.train.count)), ("test_samples", .int(data.test.count)),
                                 ("precision", .string(prec.rawValue)), ("compression", .string(describe(cs))),
                                 ("pieces", .int(pieces.count)), ("steps", .int(total)), ("steps_per_epoch", .int(perEpoch))])
        ctx.log?.flush()

        // Parameters arrive piece by piece, first layer first; the forward
        // pass waits for each layer's pieces just before it needs them.
        var pending = [TransportRequest?](repeating: nil, count: pieces.count)
        var pendingSends: [TransportRequest] = []
        var version = 0
        var bytesIn = 0, scaleIn = 1.0, skippedIn = 0
        var flagsIn: UInt8 = 0
        var waited = 0.0
        var piecesOfLayer = tensorsOfLayer.map { $0.flatMap { piecesOfTensor[$0] } }
        for li in piecesOfLayer.indices { piecesOfLayer[li].sort() }
        func postParams(_ v: Int) throws {
            version = v
            bytesIn = 0
            // Servers send their pieces in reverse piece order; MPI matches
            // messages of one sender in posting order, so post the same way.
            for i in pieces.indices.reversed() {
                pending[i] = try t.irecv(paramFrames[i], from: world.serverRanks[pieces[i].server], tag: FrameKind.params.tag)
            }
        }
        func completeParams(_ idxs: [Int]) throws {
            let open = idxs.filter { pending[$0] != nil }
            if open.isEmpty && pendingSends.isEmpty { return }
            let t0 = now()
            let counts = try ctx.wait(open.map { pending[$0]! } + pendingSends, for: "parameters", step: version)
            pendingSends = []
            waited += now() - t0
            for (j, i) in open.enumerated() {
                pending[i] = nil
                let p = pieces[i]
                let sender = world.describe(world.serverRanks[p.server])
                let h = try Frame.open(buffer: paramFrames[i].raw, length: counts[j],
                                       expect: FrameExpectation(kind: .params, step: UInt64(version), chunk: UInt32(i),
                                                                elementType: prec.elementType, rawLength: Payload.bytes(p.range.count, prec)),
                                       sender: sender)
                guard !h.codec.contains(.topk) else { throw PSError("bad frame from \(sender): parameters are never top-k encoded") }
                do {
                    try codec.decode(paramFrames[i].payload, length: Int(h.encodedLength), stages: h.codec, count: p.range.count, as: prec,
                                     into: params.pointer + p.range.lowerBound, add: false)
                } catch let e as PSError {
                    throw PSError("bad frame from \(sender) (parameters of version \(version), piece \(i)): \(e.message)")
                }
                bytesIn += counts[j]
                scaleIn = h.aux0
                skippedIn = Int(h.aux1)
                flagsIn = h.flags
            }
        }
        let allPieces = Array(pieces.indices)

        let start = try ctx.startStep(perEpoch: perEpoch, total: total)
        let report = FrameBuffer(payloadCapacity: RankContext.reportBytes)
        try postParams(start)
        try completeParams(allPieces)
        var skippedBefore = skippedIn
        if start > 0 {
            ctx.log?.write("resumed", [("step", .int(start)), ("from", .string(ctx.resume!.path)),
                                       ("params_digest", .string(digest(params.pointer, count: params.count))),
                                       ("loss_scale", .double(scaleIn)), ("skipped", .int(skippedIn))])
        }
        /// If the servers skipped the last step, the residual goes back to
        /// what it was before it: as if that step never happened.
        func syncResidual() {
            if skippedIn > skippedBefore, let residualBackup {
                residual.pointer.update(from: residualBackup.pointer, count: residual.count)
            }
            skippedBefore = skippedIn
        }
        /// This worker's file of checkpoint `step` (its residual), reported to server 0.
        func checkpoint(_ step: Int) throws {
            let writer = CheckpointWriter(runDir: ctx.runDir)
            let tensors = residual.count > 0 ? [Safetensors.Tensor(name: "residual", shape: [residual.count], floats: UnsafeBufferPointer(residual.buffer))] : []
            let result = Result { try writer.writeRankFile(step: step, name: checkpointFile(.worker, index), tensors: tensors,
                                                          metadata: ["format": "pstrain-checkpoint", "step": String(step), "role": "worker", "index": String(index)]) }
            try ctx.sendCheckpointReport(step: step, result: result, buffer: report)
            ctx.log?.write("checkpoint", [("step", .int(step)), ("params_digest", .string(digest(params.pointer, count: params.count)))])
        }
        var perm: [Int32] = []
        var last = now()
        var finished = total
        for step in start..<total {
            if index == cfg.dieWorker && cfg.dieAtSteps.contains(step) && !ctx.runDir.isEmpty {
                // Test hook: this rank dies the hardest way there is, once per step and run directory.
                let marker = ctx.runDir + "/.died-at-\(step)"
                if !FileManager.default.fileExists(atPath: marker) {
                    _ = FileManager.default.createFile(atPath: marker, contents: nil)
                    ctx.log?.flush()
                    kill(getpid(), SIGKILL)
                }
            }
            let epoch = step / perEpoch, within = step % perEpoch
            if within == 0 || perm.isEmpty { perm = sampler.permutation(epoch: epoch) }
            let computeStart = now()
            let base = within * B
            let rows = perm[(base + mine.lowerBound)..<(base + mine.upperBound)].lazy.map { Int($0) }
            data.train.gather(rows, into: model.input, labels: labels)
            if index == cfg.slowWorker && cfg.slowMilliseconds > 0 { usleep(UInt32(cfg.slowMilliseconds * 1000)) }   // test hook: a straggler
            var paramError: Error?
            model.forward(batch: mine.count, params: params.pointer, beforeLayer: { li in
                guard paramError == nil else { return }
                do { try completeParams(piecesOfLayer[li]) } catch { paramError = error }
            })
            if let paramError { throw paramError }
            try completeParams(allPieces)   // layers without parameters of their own
            let scale = scaleIn
            syncResidual()
            if step > start && !ctx.runDir.isEmpty && (cfg.checkpointDue(after: step, total: total) || flagsIn & FrameFlags.checkpoint != 0) {
                try checkpoint(step)
            }
            if flagsIn & FrameFlags.stop != 0 {
                finished = step
                break
            }
            var sends: [TransportRequest] = []
            var bytesOut = 0
            var overflow = false
            var sendError: Error?
            let spoil = cfg.spoilsGradient(step: step, worker: index)
            if let residualBackup { residualBackup.pointer.update(from: residual.pointer, count: residual.count) }
            let L = Float(scale)
            /// Encodes and sends the pieces of a layer whose gradients are final.
            func push(layer: Int) {
                for tensor in tensorsOfLayer[layer].reversed() {
                    for i in piecesOfTensor[tensor] {
                        let p = pieces[i]
                        let n = p.range.count
                        let g = grads.pointer + p.range.lowerBound
                        let r = residual.pointer + p.range.lowerBound
                        if sparse { for j in 0..<n { g[j] += r[j] * L } }
                        if spoil { g[0] = .infinity }
                        if Payload.overflows(g, count: n, as: prec) { overflow = true }
                        let e = codec.encode(g, count: n, as: prec, sparse: true, chunk: i, step: step,
                                             into: gradFrames[i].payload, capacity: gradFrames[i].capacity - FrameHeader.size)
                        if sparse {
                            // What was sent is the kept values rounded to the wire format;
                            // everything else, and that rounding error, stays behind.
                            for j in 0..<n { r[j] = g[j] / L }
                            let kept = codec.keptValues
                            model.round(kept, e.kept)   // the wire format's rounding (model.storage == prec)
                            for j in 0..<e.kept {
                                let idx = Int(codec.selected[j])
                                r[idx] = (g[idx] - kept[j]) / L
                            }
                        }
                        gradFrames[i].length = Frame.seal(FrameHeader(kind: .grads, step: UInt64(step), chunk: UInt32(i), elementType: prec.elementType,
                                                                      rawLength: UInt64(Payload.bytes(n, prec)), encodedLength: UInt64(e.length),
                                                                      codec: e.stages, flags: e.flags),
                                                          buffer: gradFrames[i].raw)
                        if step == cfg.corruptStep && index == 0 && i == 0 {
                            // Test hook: damage the message after its checksum was taken.
                            gradFrames[i].payload.storeBytes(of: gradFrames[i].payload.load(as: UInt8.self) ^ 0x01, as: UInt8.self)
                        }
                        do {
                            sends.append(try t.isend(gradFrames[i], to: world.serverRanks[p.server], tag: FrameKind.grads.tag))
                        } catch { sendError = error }
                        bytesOut += gradFrames[i].length
                    }
                }
            }
            // The loss is multiplied by the loss scale (FP16); the servers divide it out.
            let r = model.lossAndBackward(batch: mine.count, labels: labels, gradScale: Float(scale) / Float(B),
                                          params: params.pointer, grads: grads.pointer, layerDone: push)
            if let sendError { throw sendError }
            // After the last piece: loss, samples and whether anything overflowed.
            let v = infoFrame.payload.assumingMemoryBound(to: Double.self)
            v[0] = r.lossSum; v[1] = Double(mine.count); v[2] = overflow ? 1 : 0
            infoFrame.length = Frame.seal(FrameHeader(kind: .stepInfo, step: UInt64(step), chunk: 0, elementType: .f64,
                                                      rawLength: 24, encodedLength: 24), buffer: infoFrame.raw)
            for r in world.serverRanks { sends.append(try t.isend(infoFrame, to: r, tag: FrameKind.stepInfo.tag)) }
            bytesOut += infoFrame.length * S
            let computed = now() - computeStart - waited
            let waitedForParams = waited, paramBytes = bytesIn
            pendingSends = sends
            try postParams(step + 1)
            waited = 0
            let end = now()
            let codecTime = codec.takeStats()
            ctx.log?.write("step", [("step", .int(step)), ("epoch", .int(epoch)),
                                    ("loss", .double(r.lossSum / Double(max(mine.count, 1)))),
                                    ("fp32_bytes", .int(params.count * 4)), ("encode_s", .double(codecTime.encode)),
                                    ("decode_s", .double(codecTime.decode)),
                                    ("loss_scale", .double(scale)), ("overflow", .bool(overflow)), ("skipped", .int(skippedIn)),
                                    ("samples", .int(mine.count)), ("step_s", .double(end - last)),
                                    ("compute_s", .double(computed)), ("wait_s", .double(waitedForParams)),
                                    ("bytes_sent", .int(bytesOut)), ("bytes_recv", .int(paramBytes)),
                                    ("samples_per_s", .double(Double(mine.count) / max(end - last, 1e-9)))])
            last = end
            if (step + 1) % perEpoch == 0 || step + 1 == total {
                try completeParams(allPieces)
                let e = evaluate()
                let v = evalFrame.payload.assumingMemoryBound(to: Double.self)
                v[0] = e.lossSum; v[1] = Double(e.correct); v[2] = Double(e.count)
                evalFrame.length = Frame.seal(FrameHeader(kind: .eval, step: UInt64(step + 1), chunk: 0, elementType: .f64,
                                                          rawLength: 24, encodedLength: 24), buffer: evalFrame.raw)
                let req = try t.isend(evalFrame, to: world.serverRanks[0], tag: FrameKind.eval.tag)
                _ = try ctx.wait([req], for: "sending test results", step: step + 1)
                ctx.log?.write("eval_part", [("step", .int(step + 1)), ("epoch", .int(epoch + 1)), ("correct", .int(e.correct)),
                                             ("test_samples", .int(e.count)), ("test_loss_sum", .double(e.lossSum))])
                last = now()
            }
            ctx.log?.flush()
        }
        try completeParams(allPieces)
        syncResidual()
        if finished == total && total > start && !ctx.runDir.isEmpty
            && (cfg.checkpointDue(after: total, total: total) || flagsIn & FrameFlags.checkpoint != 0) { try checkpoint(total) }
        let bye = FrameBuffer(payloadCapacity: 8)
        bye.length = Frame.seal(FrameHeader(kind: .bye, step: UInt64(finished), chunk: 0, elementType: .f64, rawLength: 8, encodedLength: 8),
                                buffer: bye.raw)
        let byeReqs = try world.serverRanks.map { try t.isend(bye, to: $0, tag: FrameKind.bye.tag) }
        _ = try ctx.wait(byeReqs, for: "sending goodbyes", step: finished)
        ctx.log?.write("done", [("steps", .int(finished)), ("peak_rss_bytes", .int(peakRSSBytes())), ("params_digest", .string(digest(params.pointer, count: params.count))),
                                ("residual_digest", .string(digest(residual.pointer, count: residual.count)))])
        ctx.log?.flush()
    }

    /// This worker's contiguous slice of the test set, in chunks.
    func evaluate() -> (lossSum: Double, correct: Int, count: Int) {
        let slice = Sampler.slice(batch: data.test.count, worker: index, of: ctx.world.workers)
        let labels = UnsafeMutablePointer<UInt8>.allocate(capacity: model.capacity)
        defer { labels.deallocate() }
        var lossSum = 0.0, correct = 0
        var i = slice.lowerBound
        while i < slice.upperBound {
            let n = min(model.capacity, slice.upperBound - i)
            data.test.gather(i..<(i + n), into: model.input, labels: labels)
            let r = model.evaluate(batch: n, labels: labels, params: params.pointer)
            lossSum += r.lossSum; correct += r.correct
            i += n
        }
        return (lossSum, correct, slice.count)
    }
}
