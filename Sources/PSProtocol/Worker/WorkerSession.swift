import PSSupport
import PSNumerics
import PSCheckpoint
import PSConfig
import PSRunLog

/// A worker's side of the protocol, driven by a compute engine that holds
/// the model (docs/architecture.md, "A worker session"). The session holds
/// no model: it knows the model's shape, and owns everything that is
/// protocol or run state: the frames, the codecs, top-k's error feedback,
/// the agreed loss scale, the data order (sampler, slices, microbatches),
/// the schedule, checkpoints, the test hooks and the step records.
///
/// One step, in the order of the calls (`drive` makes them for an engine):
///
///     next() -> .train(plan)
///     loaded(rows:)             microbatch 0 is loaded (tables: its rows)
///     [parametersReady()]       unless plan.layerByLayer: parameters (and rows) first
///     awaitLayer(i) ...         forward, layer by layer
///     parametersReady()         -> .compute(gradScale:) or .stop
///     pushLayer(i) ...          backward, as each layer's gradients are final
///     [pushRowGradients()]      tables
///     finishStep(lossSum:)
///
/// Memory: every float that crosses is the session's, at addresses fixed
/// for its life (`parameters`, `gradients`) or until the next `loaded` /
/// `pullEvaluationRows` (`rowValues`, `rowGradients`). The engine reads a
/// layer's parameters after its `awaitLayer` (or `parametersReady`) and
/// never writes them; it writes a layer's gradients before `pushLayer`,
/// which may change them in place (top-k adds its residual) and is done
/// with them on return. Misuse is thrown as a `SessionError`.
public final class WorkerSession {
    /// The sizes of the data sets the engine holds.
    public struct DataCounts {
        public var train: Int, test: Int, validation: Int?
        public init(train: Int, test: Int, validation: Int?) { self.train = train; self.test = test; self.validation = validation }
    }

    enum WorkSource {
        /// bsp: the schedule's steps from `next` on.
        case steps(next: Int)
        /// ssp and async: what server 0 hands out.
        case assignments(AsyncAssignments)
    }

    let ctx: RankContext
    let index: Int
    let counts: DataCounts
    let schedule: Schedule
    let hooks: TestHooks
    let exchange: WorkerPieceExchange
    /// The table exchange: nil exactly when the model has no tables.
    let rows: WorkerRowExchange?
    var source: WorkSource
    /// This worker's rows of each step's global batch, and its microbatches
    /// (consecutive ranges of its slice, offsets within it).
    let slice: Range<Int>
    let microbatches: [Range<Int>]
    let sampler: Sampler
    var permutation: [Int32] = []
    /// Tensors the engine adds to this worker's checkpoint file.
    let checkpointExtras: () -> [Safetensors.Tensor]

    /// The step in progress, and what `parametersReady` said of it.
    var plan: StepPlan?
    var readiness: Readiness?
    /// Tables: this step's row gradients are pushed.
    var rowsPushed = false
    /// bsp: the step after which the workers evaluate next.
    var evaluationDue: Int?
    /// Evaluation: its step, the next round (1, 2, ...), and the rounds the plan has.
    var evaluation: (step: Int, round: Int, rounds: Int)?
    /// The steps done when the run ended (a stop ends it early).
    var finished: Int
    var ended = false
    var computeStart = 0.0, last = now()

    /// Builds frames, codecs and error feedback (restored from the resumed
    /// checkpoint); sends nothing.
    public init(context: RankContext, shape: ModelShape, counts: DataCounts, tables: [TableSpec],
                checkpointExtras: @escaping () -> [Safetensors.Tensor] = { [] }) throws {
        ctx = context
        let cfg = context.config, world = context.world
        index = world.index(ofRank: context.rank)
        self.counts = counts
        slice = Sampler.slice(batch: cfg.train.stepBatch, worker: index, of: world.workers)
        let rowsEach = Self.microbatchRows(cfg, workers: world.workers), mine = slice.count
        // A worker with no rows (more workers than rows in a step) still takes part, with one empty microbatch.
        microbatches = mine == 0 ? [0..<0] : stride(from: 0, to: mine, by: rowsEach).map { $0..<min($0 + rowsEach, mine) }
        schedule = try Schedule(context: context, trainCount: counts.train)
        hooks = TestHooks(cfg.debug, runDir: context.runDir, log: context.log)
        sampler = Sampler(count: counts.train, batchSize: cfg.train.stepBatch, seed: cfg.train.seed)
        exchange = try WorkerPieceExchange(context: context, shape: shape, worker: index)
        rows = tables.isEmpty ? nil : WorkerRowExchange(context: context, tables: tables)
        source = cfg.train.asynchronous ? .assignments(AsyncAssignments(context: context, start: schedule.start)) : .steps(next: schedule.start)
        finished = schedule.total
        self.checkpointExtras = checkpointExtras
    }

    /// The rows of the widest microbatch any worker computes (worker 0's
    /// slice of a step, cut by train.microbatch or train.accumulate).
    public static func microbatchRows(_ cfg: Config, workers: Int) -> Int {
        let widest = Sampler.slice(batch: cfg.train.stepBatch, worker: 0, of: workers).count
        return cfg.train.microbatch > 0 ? min(cfg.train.microbatch, widest) : (widest + cfg.train.accumulate - 1) / cfg.train.accumulate
    }

    /// The rows an evaluation round (or a dense evaluation chunk) holds at most:
    /// the servers' bound on a row request assumes this.
    public static func evaluationRows(_ cfg: Config, workers: Int) -> Int {
        max(microbatchRows(cfg, workers: workers), Model.minimumCapacity)
    }

    public var parameters: UnsafeMutablePointer<Float> { exchange.params.pointer }
    public var gradients: UnsafeMutablePointer<Float> { exchange.grads.pointer }
    public var parameterCount: Int { exchange.params.count }
    public var hasTables: Bool { rows != nil }
    var world: World { ctx.world }
    var asynchronous: Bool { if case .assignments = source { return true } else { return false } }

    // MARK: The run

    /// Logs the start; bsp: receives the parameters the first step computes on.
    public func begin() throws {
        logStart()
        if !asynchronous {
            try exchange.post(version: schedule.start)
            try exchange.await(exchange.allPieces)
            exchange.skippedBefore = exchange.skipped
            if let (path, _) = ctx.resume, schedule.start > 0 {
                ctx.log?.write(RankResumedRecord(step: schedule.start, from: path, paramsDigest: digest(parameters, count: parameterCount),
                                                 lossScale: exchange.lossScale, skipped: exchange.skipped))
            }
        }
        last = now()
    }

    /// The next thing to do. bsp: after an epoch's last step, evaluate;
    /// then the schedule's next step. ssp and async: server 0's answer.
    public func next() throws -> SessionWork {
        ctx.log?.flush()
        if ended { return .end }   // (after a stop, the step stopped is not finished)
        guard plan == nil else { throw SessionError.outOfOrder(call: "next", phase: "step \(plan.map(\.step) ?? 0) not finished") }
        switch source {
        case .steps(let step):
            if let e = evaluationDue {
                evaluationDue = nil
                try exchange.await(exchange.allPieces)
                return .evaluate(beginEvaluation(step: e + 1))
            }
            guard step < schedule.total else { ended = true; return .end }
            source = .steps(next: step + 1)
            return .train(startStep(step, slice: index, rows: slice, parts: microbatches))
        case .assignments(var work):
            let a = try work.receive()
            source = .assignments(work)
            switch a.work {
            case .eval:
                try pull(a.step, .eval)
                return .evaluate(beginEvaluation(step: a.step))
            case .final:
                try pull(a.step, .final)
                ended = true
                return .end
            case .train:
                let rows = Sampler.slice(batch: ctx.config.train.stepBatch, worker: a.slice, of: world.workers)
                let plan = startStep(a.step, slice: a.slice, rows: rows, parts: [0..<rows.count])
                // The pull travels while the rows are read.
                try pull(a.step, .train, wait: false)
                return .train(plan)
            }
        }
    }

    func startStep(_ step: Int, slice s: Int, rows: Range<Int>, parts: [Range<Int>]) -> StepPlan {
        hooks.workerStep(step, worker: s)   // (in ssp and async the hooks that pick a worker pick a slice)
        computeStart = now()
        let p = StepPlan(step: step, slice: s, rows: rows, parts: parts, globalBatch: ctx.config.train.stepBatch, seed: ctx.config.train.seed,
                         layerByLayer: !asynchronous && self.rows == nil)
        plan = p
        readiness = nil; rowsPushed = false
        return p
    }

    /// ssp and async: posts the receives of parameters `step`, asks every
    /// server for them and (unless told not to) waits for all of them.
    func pull(_ step: Int, _ purpose: PullRequest.Purpose, wait: Bool = true) throws {
        try exchange.post(version: step)
        try ctx.send(PullRequest(purpose), to: world.serverRanks, step: step, for: "pull requests")
        if wait { try exchange.await(exchange.allPieces) }
    }

    /// The training-set indices of microbatch `part` of the step, in the epoch's order.
    public func samples(_ plan: StepPlan, _ part: Range<Int>) -> [Int] {
        let step = plan.step, within = step % schedule.perEpoch
        if within == 0 || permutation.isEmpty { permutation = sampler.permutation(epoch: schedule.epoch(of: step)) }
        let base = within * plan.globalBatch + plan.rows.lowerBound
        return permutation[(base + part.lowerBound)..<(base + part.upperBound)].map { Int($0) }
    }

    /// Microbatch 0 is loaded; with tables, `rows[t]` are table t's distinct
    /// rows, ascending. ssp and async off a barrier: asks for them now.
    public func loaded(rows batchRows: [[UInt64]]? = nil) throws {
        guard let plan, readiness == nil else { throw SessionError.outOfOrder(call: "loaded", phase: "no step begun") }
        if let rows {
            guard let batchRows else { throw SessionError.tableCount(expected: rows.dims.count, got: 0) }
            try rows.plan(batchRows)
            // Unless the step is a barrier (where the servers may say stop and serve none).
            if asynchronous && !schedule.isBarrier(plan.step) {
                try rows.ask(step: plan.step, round: 0)
            }
        }
        hooks.straggle(worker: index)
    }

    /// Waits for layer `layer`'s pieces of the parameters and decodes them.
    public func awaitLayer(_ layer: Int) throws {
        guard let plan else { throw SessionError.outOfOrder(call: "awaitLayer", phase: "no step begun") }
        try exchange.await(plan.layerByLayer ? exchange.piecesOfLayer[layer] : exchange.allPieces)
    }

    /// Every piece is in: bsp undoes top-k's residual after a skipped step;
    /// the checkpoint is written if due; the servers may say stop; ssp and
    /// async ask for the next slice; with tables the rows are pulled.
    /// A second call within a step returns the first's answer.
    public func parametersReady() throws -> Readiness {
        if let readiness { return readiness }
        guard let plan else { throw SessionError.outOfOrder(call: "parametersReady", phase: "no step begun") }
        let step = plan.step
        try exchange.await(exchange.allPieces)
        // bsp dense: the residual, then the checkpoint; with tables the
        // checkpoint comes first (servers wait for its reports before they
        // answer rows); ssp and async sync the residual only at the end.
        if !asynchronous && rows == nil { exchange.syncResidual() }
        try checkpointIfDue(step)
        if exchange.stopped {
            finished = step
            ended = true
            readiness = .stop
            return .stop
        }
        if case .assignments(var work) = source {
            // Ask for the next slice now: the answer comes while this one computes.
            try work.ask(step: step)
            source = .assignments(work)
        }
        if let rows {
            if rows.asked == nil { try rows.ask(step: step, round: 0) }
            try rows.receive()
            if !asynchronous { exchange.syncResidual() }
        }
        exchange.beginPush(step: step, spoil: hooks.spoilsGradient(step: step, worker: plan.slice))
        let r = Readiness.compute(gradScale: Float(exchange.lossScale) / Float(plan.globalBatch), lossScale: exchange.lossScale)
        readiness = r
        return r
    }

    /// Throws unless `parametersReady` said compute in this step.
    func computing(_ call: String) throws {
        guard case .compute = readiness else { throw SessionError.outOfOrder(call: call, phase: "parameters not ready") }
    }

    /// Layer `layer`'s gradients (in `gradients`) are final: encodes its
    /// pieces and sends every piece whose predecessors are sent. An error
    /// is kept and thrown by `finishStep`.
    public func pushLayer(_ layer: Int) {
        do { try computing("pushLayer") } catch { exchange.push.error = exchange.push.error ?? error; return }
        exchange.push(pieces: exchange.piecesOfLayer[layer], hooks: hooks, worker: index)
    }

    /// Tables, after backward: one summed gradient per pulled row (written
    /// into `rowGradients`) to its server.
    public func pushRowGradients() throws {
        guard let rows, let plan else { throw SessionError.noTables }
        try computing("pushRowGradients")
        try rows.pushGradients(step: plan.step, push: &exchange.push)
        rowsPushed = true
    }

    /// Table t's pulled rows' values (rows x dim, in `loaded` order) and the
    /// buffer for their gradients (written whole by the engine).
    public func rowValues(table t: Int) throws -> UnsafeMutableBufferPointer<Float> {
        guard let rows else { throw SessionError.noTables }
        return rows.values(table: t)
    }
    public func rowGradients(table t: Int) throws -> UnsafeMutableBufferPointer<Float> {
        guard let rows else { throw SessionError.noTables }
        return rows.gradients(table: t)
    }

    /// Every piece pushed: the summary to every server; bsp posts the next
    /// parameters; the step record.
    public func finishStep(lossSum: Double) throws {
        guard let plan else { throw SessionError.outOfOrder(call: "finishStep", phase: "no step begun") }
        try computing("finishStep")
        if let e = exchange.push.error { throw e }
        guard exchange.unpushed.isEmpty else { throw SessionError.missingGradients(pieces: exchange.unpushed) }
        if rows != nil && !rowsPushed { throw SessionError.outOfOrder(call: "finishStep", phase: "row gradients not pushed") }
        let step = plan.step
        try exchange.sendSummary(step: step, lossSum: lossSum, samples: plan.rows.count)
        let computed = now() - computeStart - exchange.pulled.waited
        let received = exchange.pulled
        if !asynchronous {
            try exchange.post(version: step + 1)
            if schedule.endsEpoch(step) { evaluationDue = step }
        }
        logStep(plan, lossSum: lossSum, computed: computed, received: received)
        self.plan = nil
        readiness = nil
    }

    /// After the last step: the last parameters, the final checkpoint, goodbyes.
    public func finish() throws {
        guard ended, plan == nil || readiness == .stop else { throw SessionError.outOfOrder(call: "finish", phase: "the run has not ended") }
        plan = nil
        try exchange.await(exchange.allPieces)
        exchange.syncResidual()
        let total = schedule.total
        if finished == total && total > schedule.start && ctx.hasRunDir && schedule.checkpointDue(after: total, flags: exchange.flags) {
            try checkpoint(total)
        }
        // ssp and async: after the checkpoint's report, which server 0 waits
        // for before it takes this (a send may wait until it is received).
        if asynchronous { try ctx.send(PullRequest(.done), to: world.serverRanks, step: finished, for: "the last pull request") }
        try ctx.send(Goodbye(), to: world.serverRanks, step: finished, for: "sending goodbyes")
        let residual = exchange.feedback?.residual
        ctx.log?.write(WorkerDoneRecord(steps: finished, peakRSSBytes: peakRSSBytes(), paramsDigest: digest(parameters, count: parameterCount),
                                        residualDigest: digest(residual?.pointer ?? parameters, count: residual?.count ?? 0)))
        ctx.log?.flush()
    }
}
