import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSConfig
import PSCheckpoint
import PSRunLog

/// A worker: it holds a copy of the parameters, computes gradients on its
/// slice of every global batch and pushes them, as these phases
/// (docs/architecture.md, "one step"):
///
///     load its slice -> forward (each layer waits for its parameters)
///     -> checkpoint if due -> backward and push each layer's gradients
///     -> send the step summary -> post the next parameters -> log
///     -> evaluate at epoch end
/// What a worker computes on.
public enum WorkerData {
    /// Images or feature rows (DataSplit).
    case dense(DataSplit)
    /// A click log, for a model with embedding tables.
    case ctr(CTRSets)

    /// Rows of the training set.
    public var trainCount: Int {
        switch self { case .dense(let d): return d.train.count; case .ctr(let c): return c.train.count }
    }
}

public final class WorkerRole {
    let ctx: RankContext
    let index: Int
    /// The data set: images or feature rows (`data`), or a click log with
    /// categorical fields for a model with embedding tables (`tables`).
    let data: DataSplit?
    let tables: WorkerTables?
    let model: Model
    let plan: ShardPlan
    let schedule: Schedule
    let precision: Precision
    public let params: FloatBuffer
    let grads: FloatBuffer
    /// Top-k's error feedback (nil for dense gradients): training state.
    public let feedback: ErrorFeedback?
    let hooks: TestHooks

    /// This worker's rows of each step's global batch (train.batch_size x
    /// train.accumulate rows), and its microbatches: consecutive ranges of
    /// its slice (offsets within it), computed one after the other.
    let slice: Range<Int>
    let microbatches: [Range<Int>]
    /// The slice of the step being computed: this worker's own in bsp; in
    /// ssp and async the one server 0 handed out (one microbatch).
    var current: Range<Int>
    /// Its number (the test hooks that pick a worker pick this slice in ssp and async).
    var currentSlice: Int
    /// ssp and async: the request for work sent ahead (its frame, receive and step).
    var pendingWork: (frame: FrameBuffer, recv: TransportRequest, step: Int)?
    /// The microbatches of `current`.
    var parts: [Range<Int>] { ctx.config.train.asynchronous ? [0..<current.count] : microbatches }
    /// Gradients of the microbatches after the first, added into `grads`
    /// layer by layer (nil with one microbatch).
    let microGrads: FloatBuffer?
    let sampler: Sampler
    let pieces: [ShardPlan.Chunk]
    let codec: PieceCodec
    let paramFrames: [FrameBuffer]
    let gradFrames: [FrameBuffer]
    let summaryFrame = StepSummary.buffer()
    /// Which pieces each parameter tensor fills, and which tensors each layer has, in send order.
    let piecesOfTensor: [[Int]]
    let tensorsOfLayer: [[Int]]
    /// The pieces each layer's forward waits for, ascending.
    let piecesOfLayer: [[Int]]
    let labels: UnsafeMutablePointer<UInt8>
    /// 0..<pieces.count, for waiting on every piece.
    let pieceNumbers: [Int]

    /// The parameters being received: their version and open receives.
    var pulled = Pull()
    /// What the latest parameters' headers said.
    var lossScale = 1.0, skipped = 0, flags: UInt8 = 0
    var skippedBefore = 0
    /// This step's push, filled in by `push(layer:)` during the backward pass.
    var push = Push()
    var permutation: [Int32] = []
    var last = now()

    public convenience init(context: RankContext, data: DataSplit) throws {
        try self.init(context: context, data: .dense(data))
    }

    /// The rows of the widest microbatch any worker computes (worker 0's
    /// slice of a step, cut by train.microbatch or train.accumulate).
    static func microbatchRows(_ cfg: Config, workers: Int) -> Int {
        let widest = Sampler.slice(batch: cfg.train.stepBatch, worker: 0, of: workers).count
        return cfg.train.microbatch > 0 ? min(cfg.train.microbatch, widest) : (widest + cfg.train.accumulate - 1) / cfg.train.accumulate
    }

    public init(context: RankContext, data source: WorkerData) throws {
        ctx = context
        let cfg = context.config, world = context.world
        index = world.index(ofRank: context.rank)
        let stepBatch = cfg.train.stepBatch
        slice = Sampler.slice(batch: stepBatch, worker: index, of: world.workers)
        current = slice
        currentSlice = index
        let rows = Self.microbatchRows(cfg, workers: world.workers)
        let mine = slice.count
        // A worker with no rows (more workers than rows in a step) still takes part, with one empty microbatch.
        microbatches = mine == 0 ? [0..<0] : stride(from: 0, to: mine, by: rows).map { $0..<min($0 + rows, mine) }
        let m = try Model(cfg.model, capacity: max(rows, Model.minimumCapacity))
        microGrads = microbatches.count > 1 ? FloatBuffer(count: m.layout.totalCount) : nil
        switch source {
        case .dense(let d):
            data = d; tables = nil
            try Preflight.check(model: m, fits: d, data: cfg.data)
        case .ctr(let sets):
            data = nil
            try Preflight.check(model: cfg.model, fields: sets.train.fieldCount, dense: sets.train.denseCount, source: sets.train.source)
            tables = WorkerTables(sets: sets, tables: cfg.model.tables, features: cfg.model.features, denseCount: cfg.model.inputSize, servers: world.servers,
                                  settings: cfg.compression.settings, precision: cfg.train.precision)
        }
        model = m
        precision = cfg.train.precision
        model.storage = precision
        plan = ShardPlan(total: m.layout.totalCount, servers: world.servers)
        let trainCount = data?.train.count ?? tables!.sets.train.count
        schedule = try Schedule(context: context, trainCount: trainCount)
        params = FloatBuffer(count: m.layout.totalCount)
        grads = FloatBuffer(count: m.layout.totalCount)
        let cs = cfg.compression.settings
        feedback = cs.topk > 0 ? ErrorFeedback(count: m.layout.totalCount) : nil
        hooks = TestHooks(cfg.debug, runDir: context.runDir, log: context.log)
        sampler = Sampler(count: trainCount, batchSize: stepBatch, seed: cfg.train.seed)
        pieces = plan.pieces(m.layout, maxElements: cfg.run.chunkElements)
        codec = PieceCodec(settings: cs, maxElements: pieces.map { $0.range.count }.max() ?? 1)
        let prec = precision
        paramFrames = pieces.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: false)) }
        gradFrames = pieces.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: true)) }
        var byTensor = [[Int]](repeating: [], count: m.layout.tensors.count)
        for (i, p) in pieces.enumerated() { byTensor[p.tensor].append(i) }
        var byLayer = [[Int]](repeating: [], count: m.layers.count)
        var ti = 0
        for (li, l) in m.layers.enumerated() { for _ in l.parameters { byLayer[li].append(ti); ti += 1 } }
        piecesOfTensor = byTensor
        tensorsOfLayer = byLayer
        piecesOfLayer = byLayer.map { $0.flatMap { byTensor[$0] }.sorted() }
        labels = .allocate(capacity: m.capacity)
        pieceNumbers = Array(pieces.indices)
        if let (path, man) = context.resume, let feedback {
            try feedback.restore(worker: index, workers: world.workers, saved: man.workers) { j in
                try CheckpointStore.loadResidual(path, man, file: checkpointFile(.worker, j), count: feedback.residual.count)
            }
        }
    }

    deinit { labels.deallocate() }

    var world: World { ctx.world }
    var allPieces: [Int] { pieceNumbers }

    public func run() throws {
        if ctx.config.train.asynchronous { return try runAsync() }
        try begin()
        var finished = schedule.total
        for step in schedule.steps {
            hooks.workerStep(step, worker: index)
            let computeStart = now()
            try loadRows(step, microbatches[0])
            hooks.straggle(worker: index)
            // With tables the step's rows are pulled before forward; the
            // checkpoint comes first (servers wait for its reports before
            // they answer), and no rows are asked for once the servers stop.
            let early = tables != nil
            if early {
                try awaitParameters(allPieces)
                try checkpointIfDue(step)
                if flags & FrameFlags.stop == 0 { try pullRows(step: step, chunk: 0) }
            }
            try forward(step)
            syncResidual()
            if !early { try checkpointIfDue(step) }
            if flags & FrameFlags.stop != 0 {
                finished = step
                break
            }
            let lossSum = try backwardAndPush(step)
            try sendSummary(step, lossSum: lossSum)
            let computed = now() - computeStart - pulled.waited
            let received = pulled
            try postParameters(version: step + 1)
            logStep(step, lossSum: lossSum, computed: computed, received: received)
            if schedule.endsEpoch(step) { try evaluateAndReport(step) }
            ctx.log?.flush()
        }
        try finish(steps: finished)
    }

    // MARK: Phases

    /// Before the first step: log, and receive the parameters it computes on.
    func begin() throws {
        logStart()
        try writeNormalization()
        try postParameters(version: schedule.start)
        try awaitParameters(allPieces)
        skippedBefore = skipped
        if schedule.start > 0 {
            ctx.log?.write(RankResumedRecord(step: schedule.start, from: ctx.resume!.path, paramsDigest: digest(params.pointer, count: params.count),
                                         lossScale: lossScale, skipped: skipped))
        }
        last = now()
    }

    /// The start record.
    func logStart() {
        ctx.log?.write(WorkerStartRecord(servers: world.servers, workers: world.workers, microbatch: microbatches.map(\.count).max() ?? 0,
                                         trainSamples: data?.train.count ?? tables!.sets.train.count,
                                         testSamples: data?.test.count ?? tables!.sets.test.count,
                                         precision: precision.rawValue, compression: ctx.config.compression.settings.summary,
                                         pieces: pieces.count, steps: schedule.total, stepsPerEpoch: schedule.perEpoch))
        ctx.log?.flush()
    }

    /// Microbatch `part` of this worker's rows of the step's global batch,
    /// in the epoch's order.
    func loadRows(_ step: Int, _ part: Range<Int>) throws {
        let within = step % schedule.perEpoch
        if within == 0 || permutation.isEmpty { permutation = sampler.permutation(epoch: schedule.epoch(of: step)) }
        let base = within * ctx.config.train.stepBatch + current.lowerBound
        let rows = permutation[(base + part.lowerBound)..<(base + part.upperBound)].lazy.map { Int($0) }
        if let data { data.train.gather(rows, into: model.input, labels: labels) } else { try loadCTRRows(tables!.sets.train, Array(rows)) }
    }

    /// What the layers see of microbatch `part` of step `step`: training,
    /// and where its rows sit in the step (dropout masks depend on it).
    func layerContext(_ step: Int, _ part: Range<Int>) -> LayerContext {
        LayerContext(training: true, step: step, seed: ctx.config.train.seed, firstRow: current.lowerBound + part.lowerBound,
                     globalBatch: ctx.config.train.stepBatch)
    }

    /// The forward pass of the first microbatch; each layer waits for its
    /// own pieces of the parameters just before it needs them (they arrive
    /// first layer first).
    func forward(_ step: Int) throws {
        var failure: Error?
        let part = parts[0]
        model.forward(batch: part.count, params: params.pointer, context: layerContext(step, part), beforeLayer: { li in
            guard failure == nil else { return }
            do { try self.awaitParameters(self.piecesOfLayer[li]) } catch { failure = error }
        })
        if let failure { throw failure }
        try awaitParameters(allPieces)   // layers without parameters of their own
    }

    /// Backward of each microbatch (after the first, each is loaded and
    /// run forward first). The first writes `grads`; each later one writes
    /// `microGrads`, added into `grads` layer by layer, so the sum goes in
    /// microbatch order. In the last microbatch each layer's summed
    /// gradients are encoded and pushed as soon as they are final
    /// (`push(layer:)`). Returns the loss sum of the slice.
    func backwardAndPush(_ step: Int) throws -> Double {
        push = Push(step: step, lossScale: lossScale, spoil: hooks.spoilsGradient(step: step, worker: currentSlice))
        feedback?.beginStep()
        // The loss is multiplied by the loss scale (FP16); the servers divide it out.
        let gradScale = Float(lossScale) / Float(ctx.config.train.stepBatch)
        var lossSum = 0.0
        let parts = parts
        for (c, part) in parts.enumerated() {
            let context = layerContext(step, part), last = c == parts.count - 1
            if c > 0 {
                try loadRows(step, part)
                model.forward(batch: part.count, params: params.pointer, context: context)
            }
            let target = c == 0 ? grads : microGrads!
            let r = model.lossAndBackward(batch: part.count, labels: labels, gradScale: gradScale, params: params.pointer,
                                          grads: target.pointer, context: context, layerDone: { li in
                if c > 0 { self.addMicrobatchGradients(layer: li) }
                if last { self.push(layer: li) }
            })
            lossSum += r.lossSum
        }
        if tables != nil { try pushRows(step: step) }
        if let e = push.error { throw e }
        return lossSum
    }

    /// grads += microGrads over layer `li`'s parameters.
    func addMicrobatchGradients(layer li: Int) {
        let range = model.parameterRange(layer: li), g = grads.pointer, m = microGrads!.pointer
        for i in range { g[i] += m[i] }
    }

    /// After the last piece: loss, samples and whether anything overflowed, to every server.
    func sendSummary(_ step: Int, lossSum: Double) throws {
        StepSummary(lossSum: lossSum, samples: current.count, overflow: push.overflow, lossScale: push.lossScale).seal(into: summaryFrame, step: step)
        for r in world.serverRanks { push.sends.append(try ctx.transport.isend(summaryFrame, to: r, tag: StepSummary.kind.tag)) }
        push.bytesOut += summaryFrame.length * world.servers
    }

    /// After an epoch's last step: this worker's slice of the test set, scored
    /// with the new parameters and sent to server 0.
    func evaluateAndReport(_ step: Int) throws {
        try awaitParameters(allPieces)
        let e: (lossSum: Double, correct: Int, count: Int), v: (lossSum: Double, correct: Int, count: Int)?
        var scores: ScoreHistogram?
        if let data {
            e = evaluate(data.test)
            v = data.validation.map { evaluate($0) }
        } else {
            let s = try evaluateCTR(step: step + 1)
            e = (s.test.lossSum, s.test.correct, s.test.count)
            v = s.validation.map { ($0.lossSum, $0.correct, $0.count) }
            scores = model.loss == .bce ? s.test.histogram : nil
        }
        try ctx.send(EvalResult(lossSum: e.lossSum, correct: e.correct, count: e.count, validationLossSum: v?.lossSum ?? 0,
                                validationCorrect: v?.correct ?? 0, validationCount: v?.count ?? 0),
                     to: [world.serverRanks[0]], step: step + 1, for: "sending test results")
        // After the results: server 0 receives them in this order.
        if let scores { try ctx.send(EvalScores(scores), to: [world.serverRanks[0]], step: step + 1, for: "sending test scores") }
        ctx.log?.write(EvalPartRecord(step: step + 1, epoch: schedule.epoch(of: step) + 1, correct: e.correct,
                                      testSamples: e.count, testLossSum: e.lossSum,
                                      validationCorrect: v?.correct, validationSamples: v?.count, validationLossSum: v?.lossSum))
        last = now()
    }

    /// The checkpoint the servers asked for (or the schedule has) before step `step`.
    func checkpointIfDue(_ step: Int) throws {
        if step > schedule.start && ctx.hasRunDir && schedule.checkpointDue(after: step, flags: flags) { try checkpoint(step) }
    }

    /// This worker's file of checkpoint `step` (its error feedback's
    /// residual; worker 0 adds the standardisation numbers), reported to server 0.
    func checkpoint(_ step: Int) throws {
        let residual = feedback.map { f in
            [Safetensors.Tensor(name: f.checkpointTensor.name, shape: [f.residual.count], floats: f.checkpointTensor.values)]
        } ?? []
        let statistics = index == 0 ? data.flatMap { d in d.statistics.map { NormalizationFile.tensors($0, shape: d.train.shape) } } ?? [] : []
        _ = try ctx.writeCheckpointFile(step: step, role: .worker, index: index, tensors: residual + statistics)
        ctx.log?.write(WorkerCheckpointRecord(step: step, paramsDigest: digest(params.pointer, count: params.count)))
    }

    /// Worker 0, when the data set is standardised: the numbers in the run
    /// directory (NormalizationFile), for export and for people.
    func writeNormalization() throws {
        guard index == 0, ctx.hasRunDir, let data, let s = data.statistics else { return }
        try Durable.replace(ctx.runDir + "/" + NormalizationFile.runFile,
                            bytes: NormalizationFile.encode(s, shape: data.train.shape, byteScaled: data.train.samples.byteScaled))
    }

    /// After the last step: the last parameters, the final checkpoint, goodbyes.
    func finish(steps finished: Int) throws {
        try awaitParameters(allPieces)
        syncResidual()
        let total = schedule.total
        if finished == total && total > schedule.start && ctx.hasRunDir && schedule.checkpointDue(after: total, flags: flags) {
            try checkpoint(total)
        }
        try ctx.send(Goodbye(), to: world.serverRanks, step: finished, for: "sending goodbyes")
        ctx.log?.write(WorkerDoneRecord(steps: finished, peakRSSBytes: peakRSSBytes(),
                                        paramsDigest: digest(params.pointer, count: params.count),
                                        residualDigest: digest(feedback?.residual.pointer ?? params.pointer, count: feedback?.residual.count ?? 0)))
        ctx.log?.flush()
    }
}
