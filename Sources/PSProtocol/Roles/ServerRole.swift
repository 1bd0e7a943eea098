import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog

/// A server: it holds the FP32 master weights of its shard and the
/// optimizer's state, and runs one synchronous step as these phases
/// (docs/architecture.md, "one step"):
///
///     receive gradients -> collect step summaries -> agree on overflow
///     -> apply and send -> log -> evaluate at epoch end -> checkpoint if due
///
/// Every phase is a method below; the messages they exchange are in
/// Messages/, one file each.
public final class ServerRole {
    let ctx: RankContext
    let index: Int
    let lead: Bool
    let layout: ModelLayout
    let plan: ShardPlan
    let range: Range<Int>
    let schedule: Schedule
    let precision: Precision
    /// FP32 master weights of this server's shard.
    public let weights: FloatBuffer
    let optimizer: Optimizer
    /// train.clip_norm (0: no clipping).
    let clipNorm: Double
    /// The optimizer's per-element state, in `optimizer.stateNames` order.
    let state: [FloatBuffer]
    /// statesOfPiece[k]: where piece k's elements start in each state tensor.
    let statesOfPiece: [[UnsafeMutablePointer<Float>]]
    /// The step's summed gradient (FP32, still scaled by the loss scale).
    let gradSum: FloatBuffer
    public internal(set) var scaler: LossScaler
    /// This server's rows of the embedding tables (nil: a model without tables).
    let tables: ServerTables?

    /// This server's pieces (global piece numbers and ranges), in the order the workers send them.
    let pieceIDs: [Int]
    let pieces: [ShardPlan.Piece]
    let codec: PieceCodec
    let paramFrames: [FrameBuffer]
    /// gradFrames[w][k]: worker w's gradients of piece k.
    let gradFrames: [[FrameBuffer]]
    let summaryFrames: [FrameBuffer]
    let voteOut = OverflowVote.buffer()
    let voteIn: [FrameBuffer]
    let evalFrames: [FrameBuffer]

    /// In flight: the parameter sends of each piece, the receives of the next step.
    var sends: [[TransportRequest]]
    var gradRecvs: [[TransportRequest]] = []
    var summaryRecvs: [TransportRequest] = []
    var meter = StepMeter()
    var progress: Progress
    /// bsp without tables or clipping: each piece is updated and encoded as
    /// soon as its gradients are in, before the step's outcome is known
    /// (ServerUpdateAhead.swift). nil: pieces wait for the outcome.
    var updateAhead: UpdateAhead?
    var lastCheckpoint = now()

    /// `layout` comes from the model the configuration builds; `trainCount`
    /// is the size of the training set (servers do not load the data).
    public init(context: RankContext, layout: ModelLayout, trainCount: Int) throws {
        ctx = context
        let cfg = context.config, world = context.world
        index = world.index(ofRank: context.rank)
        lead = index == 0
        self.layout = layout
        plan = ShardPlan(total: layout.totalCount, servers: world.servers)
        range = plan.range(index)
        schedule = try Schedule(context: context, trainCount: trainCount)
        precision = cfg.train.precision
        weights = FloatBuffer(count: range.count)
        let opt = Optimizers.make(cfg.train), n = range.count
        optimizer = opt
        clipNorm = cfg.train.clipNorm
        state = opt.stateNames.map { _ in FloatBuffer(count: n) }
        gradSum = FloatBuffer(count: range.count)
        scaler = LossScaler(settings: cfg.scaler.settings, dynamic: precision.usesLossScaling)
        tables = Self.tables(context, index: index)
        let all = plan.pieces(layout, maxElements: cfg.run.chunkElements)
        let me = index
        let ids = all.indices.filter { all[$0].server == me }
        let mine = ids.map { all[$0] }
        pieceIDs = ids
        pieces = mine
        let cs = cfg.compression.settings, prec = precision
        codec = PieceCodec(settings: cs, maxElements: mine.map { $0.range.count }.max() ?? 1)
        paramFrames = mine.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: false)) }
        gradFrames = world.workerRanks.map { _ in mine.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: true)) } }
        summaryFrames = world.workerRanks.map { _ in StepSummary.buffer() }
        voteIn = world.serverRanks.map { _ in OverflowVote.buffer() }
        evalFrames = world.workerRanks.map { _ in EvalResult.buffer() }
        sends = mine.map { _ in [] }
        let lo = range.lowerBound, states = state
        statesOfPiece = mine.map { c in states.map { $0.pointer + (c.range.lowerBound - lo) } }
        progress = Progress(lead: lead, say: context.say, every: cfg.run.progressSeconds, total: schedule.total, perEpoch: schedule.perEpoch,
                            epochs: cfg.train.epochs, batch: cfg.train.stepBatch, start: now(), firstStep: schedule.start)
        if tables == nil && clipNorm == 0 && !cfg.train.asynchronous {
            updateAhead = UpdateAhead(pieces: mine, layout: layout, elements: n, states: state.count)
        }
        try loadStart()
    }

    /// This server's table shard, when the model has tables.
    static func tables(_ ctx: RankContext, index: Int) -> ServerTables? {
        let cfg = ctx.config, world = ctx.world
        guard !cfg.model.tables.isEmpty else { return nil }
        return ServerTables(context: ctx, index: index,
                            shard: TableShard(tables: cfg.model.tables, optimizer: cfg.train.sparseOptimizer, hyper: cfg.train.sparseHyper,
                                              seed: cfg.train.seed),
                            maxRequestRows: ServerTables.requestRowLimit(
                                specs: cfg.model.tables, fieldsPerTable: cfg.model.features.reduce(into: [Int](repeating: 0, count: cfg.model.tables.count)) { $0[$1.table] += 1 },
                                server: index, servers: world.servers,
                                samples: WorkerSession.evaluationRows(cfg, workers: world.workers),
                                idsPerSample: cfg.data.format == .libsvm ? LibSVM.maxPairsPerRow : 1))
    }

    /// The shard's starting state: the checkpoint's (weights, optimizer
    /// state, loss scale, table rows), train.init_from's weights, or the
    /// seed's initial values.
    func loadStart() throws {
        let cfg = ctx.config, lo = range.lowerBound, hi = range.upperBound
        if let (path, m) = ctx.resume {
            try Self.checkOptimizer(of: path, m, is: cfg.train)
            // Tensors are stored by name and full shape: any server count re-cuts them.
            try CheckpointStore.loadRange(path, m, layout: layout, suffix: "", lo: lo, hi: hi, into: weights.pointer)
            for (name, s) in zip(optimizer.stateNames, state) {
                try CheckpointStore.loadRange(path, m, layout: layout, suffix: name, lo: lo, hi: hi, into: s.pointer)
            }
            scaler.restore(m.scaler)
            if let tables {
                let me = index, servers = world.servers
                try TableRows.restore(path, m, into: tables.shard) { TableSpec.owner(row: $0, servers: servers) == me }
            }
        } else if !cfg.train.initFrom.isEmpty {
            let start = try InitialWeights.load(cfg.train.initFrom, layout: layout)
            InitialWeights.copy(start, layout: layout, lo: lo, hi: hi, into: weights.pointer)
        } else {
            layout.initialize(seed: cfg.train.seed, range: lo, hi, into: weights.pointer)
        }
    }

    var world: World { ctx.world }

    public func run() throws {
        if ctx.config.train.asynchronous { return try runAsync() }
        try begin()
        var finished = schedule.total
        let hooks = TestHooks(ctx.config.debug, runDir: ctx.runDir, log: ctx.log)
        for step in schedule.steps {
            hooks.serverStep(step, server: index)
            meter = StepMeter(start: meter.end)
            if let tables { try tables.serveRows(step: step, round: 0, meter: &meter) }
            try receiveGradients(step)
            if let tables { try tables.receiveRowGradients(step, meter: &meter) }
            var outcome = try collectSummaries(step)
            outcome.request = leadRequests()
            if clipNorm > 0 && !outcome.overflow { outcome.sumSquares = gradientSquares(scale: outcome.scaleBefore) }
            if world.servers > 1 { try agreeOnOverflow(step, &outcome) }
            if clipNorm > 0 { outcome.clip(to: clipNorm) }
            try applyAndSend(step, &outcome)
            logStep(step, outcome)
            try stopIfDiverged()
            if let tables, schedule.endsEpoch(step) { try tables.serveEvaluation(step, meter: &meter) }
            if lead && schedule.endsEpoch(step) { try collectEvaluation(step) }
            if ctx.hasRunDir && schedule.checkpointDue(after: step + 1, flags: outcome.request) {
                try checkpoint(step: step + 1)
                lastCheckpoint = now()
            }
            ctx.log?.flush()
            if outcome.stops {
                finished = step + 1
                logStopped(after: finished)
                break
            }
        }
        try finish(steps: finished)
    }

    // MARK: Phases

    /// Before the first step: clean up after a dead attempt, log, send the
    /// parameters the first step computes on and post its receives.
    func begin() throws {
        startUp()
        let start = schedule.start
        for k in pieces.indices.reversed() { try sendPiece(k, version: start, request: 0) }
        try postReceives()
        meter = StepMeter(start: now())
        progress.restart(at: meter.start)
    }

    /// Logs the start (and a resume), cleans up after a dead attempt.
    func startUp() {
        ctx.log?.write(ServerStartRecord(servers: world.servers, workers: world.workers, shardLo: range.lowerBound,
                                         shardHi: range.upperBound, pieces: pieces.count, precision: precision.rawValue,
                                         compression: ctx.config.compression.settings.summary, lossScale: scaler.scale,
                                         steps: schedule.total, stepsPerEpoch: schedule.perEpoch))
        ctx.log?.flush()
        if lead && ctx.hasRunDir {
            CheckpointWriter(runDir: ctx.runDir).removeStale()
            WaitClaims.removeStale(runDir: ctx.runDir, keep: ctx.attempt)
        }
        if let (path, _) = ctx.resume, schedule.start > 0 {
            ctx.log?.write(RankResumedRecord(step: schedule.start, from: path, paramsDigest: digest(weights.pointer, count: range.count),
                                             lossScale: scaler.scale, skipped: scaler.skipped))
            if lead { ctx.say("resuming from \(path) at step \(schedule.start) of \(schedule.total)") }
        }
    }

    /// Sums the pieces as they arrive, each in worker-rank order (never
    /// arrival order: reproducible bits), widening to FP32.
    func receiveGradients(_ step: Int) throws {
        for (k, c) in pieces.enumerated() {
            let n = c.range.count
            let waitStart = now()
            let counts = try ctx.wait(gradRecvs[k], for: "gradients", step: step)
            let workStart = now()
            meter.waited += workStart - waitStart
            let sum = gradSum.pointer + (c.range.lowerBound - range.lowerBound)
            for w in 0..<world.workers {
                let sender = world.describe(world.workerRanks[w])
                let h = try GradientPiece.open(gradFrames[w][k], length: counts[w], step: step, piece: pieceIDs[k], count: n,
                                               precision: precision, sender: sender)
                meter.bytesIn += counts[w]
                try codec.decode(gradFrames[w][k], h, count: n, as: precision, into: sum, add: w > 0, sender: sender,
                                 what: "gradients of step \(step), piece \(pieceIDs[k])")
            }
            if let updateAhead { try applyAhead(updateAhead, piece: k, step: step) }
            meter.applied += now() - workStart
        }
    }

    /// The workers' step summaries: loss, samples, overflow; and whether this server's own sum overflowed.
    func collectSummaries(_ step: Int) throws -> StepOutcome {
        let t0 = now()
        let counts = try ctx.wait(summaryRecvs, for: "step summaries", step: step)
        let summaries = try (0..<world.workers).map { w in
            (w, try StepSummary.open(summaryFrames[w], length: counts[w], step: step, sender: world.describe(world.workerRanks[w])))
        }
        // (UpdateAhead checked each piece of the sum as it came in.)
        let o = outcome(step, scaleBefore: scaler.scale, summaries: summaries,
                        sumOverflows: updateAhead?.sumOverflowed ?? Payload.overflows(gradSum.pointer, count: range.count, as: .fp32))
        meter.waited += now() - t0
        return o
    }

    /// A step's (bsp) or a push's (ssp, async) outcome so far: the
    /// workers' loss and samples, and who overflowed (workers, this
    /// server's sum, its table rows).
    func outcome(_ step: Int, scaleBefore: Double, summaries: [(worker: Int, summary: StepSummary)], sumOverflows: Bool) -> StepOutcome {
        var o = StepOutcome(lr: Float(ctx.config.train.learningRate(step: step, total: schedule.total)), scaleBefore: scaleBefore)
        for (w, s) in summaries {
            o.lossSum += s.lossSum
            o.samples += s.samples
            if s.overflow { o.overflowBy.append("worker \(w)") }
        }
        if sumOverflows { o.overflowBy.append("sum on server \(index)") }
        if let tables, tables.shard.stepOverflows() { o.overflowBy.append("table rows on server \(index)") }
        return o
    }

    /// Server 0 alone decides on time-based checkpoints and on stopping (the
    /// launcher asks for it with a STOP file in the run directory).
    func leadRequests() -> UInt8 {
        guard lead && ctx.hasRunDir else { return 0 }
        var request: UInt8 = 0
        let every = ctx.config.checkpoint.everySeconds
        if every > 0 && now() - lastCheckpoint >= every { request |= FrameFlags.checkpoint }
        if FileManager.default.fileExists(atPath: ctx.runDir + "/STOP") { request |= FrameFlags.checkpoint | FrameFlags.stop }
        return request
    }

    /// Every server learns every other's overflow and server 0's requests, so
    /// all apply or skip the step alike and checkpoint or stop alike; with
    /// clipping, every server adds the partial sums of squares in server
    /// order, so all hold the same bits of the global norm.
    func agreeOnOverflow(_ step: Int, _ o: inout StepOutcome) throws {
        let t0 = now()
        OverflowVote(overflow: o.overflow, request: o.request, sumSquares: o.sumSquares).seal(into: voteOut, step: step, index: index)
        let peers = world.serverRanks.enumerated().filter { $0.offset != index }
        var reqs: [TransportRequest] = []
        for (s, r) in peers {
            reqs.append(try ctx.transport.isend(voteOut, to: r, tag: OverflowVote.kind.tag))
            reqs.append(try ctx.transport.irecv(voteIn[s], from: r, tag: OverflowVote.kind.tag))
        }
        let counts = try ctx.wait(reqs, for: "overflow votes", step: step)
        var partials = [Double](repeating: 0, count: world.servers)
        partials[index] = o.sumSquares
        for (i, (s, r)) in peers.enumerated() {
            let v = try OverflowVote.open(voteIn[s], length: counts[2 * i + 1], step: step, index: s, sender: world.describe(r))
            if v.overflow { o.overflowBy.append("server \(s)") }
            if s == 0 { o.request = v.request }
            partials[s] = v.sumSquares
        }
        o.sumSquares = partials.reduce(0, +)
        meter.waited += now() - t0
    }

    /// Applies the optimizer (FP32, unscaled) or skips the step, sends
    /// parameters step+1 and posts the next step's receives. Piece by piece,
    /// so each is updated and encoded while in cache, first layer first:
    /// workers start their next forward with it.
    func applyAndSend(_ step: Int, _ o: inout StepOutcome) throws {
        let t0 = now()
        // t: this update's number, counting the steps before it less the skipped ones.
        let update = OptimizerStep(lr: o.lr, gradScale: Float(1 / scaler.scale * o.clipFactor), t: step - scaler.skipped + 1)
        let unscale = Float(1 / scaler.scale)
        tables?.shard.finishStep(apply: !o.overflow, lr: Float(ctx.config.train.sparseLearningRate(step: step, total: schedule.total)),
                                 gradScale: unscale, t: update.t)
        o.scaleChange = scaler.update(step: step, overflow: o.overflow)
        if let updateAhead {
            try settleUpdateAhead(updateAhead, step, o)
        } else {
            for k in pieces.indices.reversed() {
                let off = pieces[k].range.lowerBound - range.lowerBound
                if !o.overflow { apply(piece: k, at: off, update: update, unscale: unscale) }
                try sendPiece(k, version: step + 1, request: o.request)
            }
        }
        meter.applied += now() - t0
        if step + 1 < schedule.total && !o.stops { try postReceives() }
    }

    /// Server 0, after the last step of an epoch: the workers' test results.
    func collectEvaluation(_ step: Int) throws {
        let results = try ctx.receive(EvalResult.self, from: world.workerRanks, step: step + 1, into: evalFrames, for: "test results")
        let loss = results.reduce(0.0) { $0 + $1.lossSum }
        let correct = results.reduce(0) { $0 + $1.correct }, count = results.reduce(0) { $0 + $1.count }
        let accuracy = Double(correct) / Double(max(count, 1))
        // Validation (data.validation > 0): logged only when there is some, so a run without it logs what it always did.
        let vCount = results.reduce(0) { $0 + $1.validationCount }
        let vLoss = results.reduce(0.0) { $0 + $1.validationLossSum }, vCorrect = results.reduce(0) { $0 + $1.validationCorrect }
        let vAccuracy = vCount > 0 ? Double(vCorrect) / Double(vCount) : nil
        var record = EvalRecord(step: step + 1, epoch: schedule.epoch(of: step) + 1, testAccuracy: accuracy,
                                testLoss: loss / Double(max(count, 1)), testSamples: count, validationAccuracy: vAccuracy,
                                validationLoss: vCount > 0 ? vLoss / Double(vCount) : nil, validationSamples: vCount > 0 ? vCount : nil)
        if tables != nil && ctx.config.model.loss == .bce {
            let parts = try ctx.receive(EvalScores.self, from: world.workerRanks, step: step + 1, for: "test scores")
            var h = ScoreHistogram()
            for p in parts { h.add(p.histogram) }
            record.auc = h.auc
            record.logloss = record.testLoss
        }
        ctx.log?.write(record)
        progress.epochEnd(step, accuracy: accuracy, validation: vAccuracy, auc: record.auc, at: now())
    }

    /// Writes this server's file of checkpoint `step`; server 0 then completes it.
    func checkpoint(step: Int) throws {
        let t0 = now()
        let mine = try ctx.writeCheckpointFile(step: step, role: .server, index: index, tensors: checkpointTensors())
        guard lead else { return }
        let dir = try ctx.completeCheckpoint(step: step, mine: mine) { files in
            Manifest(context: ctx, step: step, schedule: schedule, scaler: scaler, layout: layout, shards: plan.shards(layout), files: files)
        }
        let took = now() - t0
        let size = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).reduce(0) {
            $0 + ((try? FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as? Int) ?? 0)
        }
        ctx.log?.write(ServerCheckpointRecord(step: step, path: dir, bytes: size, seconds: took))
        ctx.say("checkpoint step-\(step) written (\(String(format: "%.1f", Double(size) / 1e6)) MB, \(String(format: "%.0f", took * 1000)) ms)")
    }

    /// After the last step: every send completed and every worker's goodbye
    /// (it has the last parameters) before this rank lets go of its buffers
    /// and of MPI (a completed send only means the buffer may be reused).
    func finish(steps finished: Int, openPulls: [TransportRequest] = []) throws {
        progress.finish()
        for k in pieces.indices { _ = try ctx.wait(sends[k], for: "parameter sends", step: finished) }
        // ssp and async: each worker's last pull request says it is done.
        _ = try ctx.wait(openPulls, for: "the workers' last pull requests", step: finished)
        for w in tables?.buffers.sends ?? [] { _ = try ctx.wait(w, for: "row sends", step: finished) }
        _ = try ctx.receive(Goodbye.self, from: world.workerRanks, step: finished, for: "the workers' goodbyes")
        ctx.log?.write(ServerDoneRecord(
            steps: finished, wallS: now() - progress.start, peakRSSBytes: peakRSSBytes(),
            skipped: scaler.skipped, lossScale: scaler.scale, paramsDigest: digest(weights.pointer, count: range.count),
            stateDigests: zip(optimizer.stateNames, state).map { StateDigest(name: $0, digest: digest($1.pointer, count: range.count)) }
                + (tables.map { [StateDigest(name: "tables", digest: $0.shard.digest())] } ?? [])))
        ctx.log?.flush()
    }
}
