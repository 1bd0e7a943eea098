import Foundation
import CBLAS
import CPSKernels

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

    public init(config: Config, world: World, transport: Transport, log: RunLog?, say: @escaping (String) -> Void) {
        self.config = config; self.world = world; self.transport = transport; self.log = log; self.say = say
    }

    var rank: Int { transport.rank }
    var timeout: Double { config.timeoutSeconds }

    /// Waits, turning a timeout into a message that names the silent rank.
    func wait(_ reqs: [TransportRequest], for what: String, step: Int) throws -> [Int] {
        do {
            return try transport.waitAll(reqs, timeout: timeout)
        } catch let t as TransportTimeout {
            throw PSError("\(world.describe(t.peer)) sent nothing for \(Int(t.seconds)) s while \(world.describe(rank)) waited for \(what) of step \(step); "
                + "that rank is hung or dead (run.timeout_seconds sets this deadline); last checkpoint: none")
        }
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

func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

/// XXH64 of a Float range: the parameter digest runs log and tests compare.
public func digest(_ p: UnsafePointer<Float>, count: Int) -> String {
    hex64(pst_xxh64(p, count * 4, 0))
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
    public let weights: FloatBuffer
    let velocity: FloatBuffer
    let gradSum: FloatBuffer
    let trainCount: Int

    /// `layout` comes from the model the configuration builds; `trainCount`
    /// is the size of the training set (servers do not load the data).
    public init(context: RankContext, layout: ModelLayout, trainCount: Int) {
        ctx = context
        index = context.world.index(ofRank: context.rank)
        self.layout = layout
        plan = ShardPlan(total: layout.totalCount, servers: context.world.servers)
        range = plan.range(index)
        weights = FloatBuffer(count: range.count)
        velocity = FloatBuffer(count: range.count)
        gradSum = FloatBuffer(count: range.count)
        self.trainCount = trainCount
        layout.initialize(seed: context.config.seed, range: range.lowerBound, range.upperBound, into: weights.pointer)
    }

    public func run() throws {
        let cfg = ctx.config, world = ctx.world, t = ctx.transport
        let (perEpoch, total) = try ctx.schedule(trainCount: trainCount)
        let n = range.count
        let W = world.workers
        var sgd = SGD(lr: Float(cfg.lr), momentum: Float(cfg.momentum), weightDecay: Float(cfg.weightDecay))
        let paramFrame = FrameBuffer(payloadCapacity: n * 4)
        let gradFrames = (0..<W).map { _ in FrameBuffer(payloadCapacity: n * 4) }
        let evalFrames = (0..<W).map { _ in FrameBuffer(payloadCapacity: 24) }
        let isLead = index == 0
        ctx.log?.write("start", [("servers", .int(world.servers)), ("workers", .int(W)), ("shard_lo", .int(range.lowerBound)),
                                 ("shard_hi", .int(range.upperBound)), ("steps", .int(total)), ("steps_per_epoch", .int(perEpoch))])
        ctx.log?.flush()

        var sends: [TransportRequest] = []
        func sendParams(version: Int) throws {
            _ = try ctx.wait(sends, for: "parameter sends", step: version)
            weights.pointer.withMemoryRebound(to: UInt8.self, capacity: n * 4) {
                paramFrame.payload.copyMemory(from: $0, byteCount: n * 4)
            }
            paramFrame.length = Frame.seal(FrameHeader(kind: .params, step: UInt64(version), chunk: UInt32(index), elementType: .f32,
                                                       rawLength: UInt64(n * 4), encodedLength: UInt64(n * 4)), buffer: paramFrame.raw)
            sends = try world.workerRanks.map { try t.isend(paramFrame.sealed, to: $0, tag: FrameKind.params.tag) }
        }
        func postGradRecvs() throws -> [TransportRequest] {
            try world.workerRanks.enumerated().map { (w, r) in try t.irecv(gradFrames[w].whole, from: r, tag: FrameKind.grads.tag) }
        }

        try sendParams(version: 0)
        var recvs = try postGradRecvs()
        let started = now()
        var progress = Progress(lead: isLead, say: ctx.say, every: cfg.progressSeconds, total: total, perEpoch: perEpoch,
                                epochs: cfg.epochs, batch: cfg.batchSize, start: started)
        var stepStart = started
        for step in 0..<total {
            // Wait for every worker's gradient of this step.
            let waitStart = now()
            let counts = try ctx.wait(recvs, for: "gradients", step: step)
            let waited = now() - waitStart
            let applyStart = now()
            var lossSum = 0.0
            var samples = 0.0
            var bytesIn = 0
            // Sum in worker-rank order (never arrival order): reproducible bits.
            for w in 0..<W {
                let h = try Frame.open(buffer: gradFrames[w].raw, length: counts[w],
                                       expect: FrameExpectation(kind: .grads, step: UInt64(step), chunk: UInt32(index),
                                                                elementType: .f32, rawLength: n * 4),
                                       sender: world.describe(world.workerRanks[w]))
                lossSum += h.aux0
                samples += h.aux1
                bytesIn += counts[w]
                let g = gradFrames[w].floats
                if w == 0 {
                    gradSum.pointer.update(from: g, count: n)
                } else {
                    let s = gradSum.pointer
                    for i in 0..<n { s[i] += g[i] }
                }
            }
            sgd.lr = Float(cfg.learningRate(step: step, total: total))
            sgd.apply(weights: weights.pointer, velocity: velocity.pointer, grads: gradSum.pointer, count: n)
            let applied = now() - applyStart
            try sendParams(version: step + 1)
            if step + 1 < total { recvs = try postGradRecvs() }
            let end = now()
            let loss = lossSum / max(samples, 1)
            ctx.log?.write("step", [("step", .int(step)), ("epoch", .int(step / perEpoch)), ("loss", .double(loss)),
                                    ("lr", .double(Double(sgd.lr))),
                                    ("samples", .int(Int(samples))), ("step_s", .double(end - stepStart)),
                                    ("wait_s", .double(waited)), ("apply_s", .double(applied)),
                                    ("bytes_recv", .int(bytesIn)), ("bytes_sent", .int(paramFrame.length * W)),
                                    ("samples_per_s", .double(samples / max(end - stepStart, 1e-9)))])
            stepStart = end
            progress.step(step, loss: loss, at: end)

            // Epoch end: the workers evaluate the new parameters.
            if (step + 1) % perEpoch == 0 || step + 1 == total {
                if isLead {
                    let reqs = try world.workerRanks.enumerated().map { (w, r) in
                        try t.irecv(evalFrames[w].whole, from: r, tag: FrameKind.eval.tag)
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
            }
            ctx.log?.flush()
        }
        _ = try ctx.wait(sends, for: "parameter sends", step: total)
        let wall = now() - started
        ctx.log?.write("done", [("steps", .int(total)), ("wall_s", .double(wall)),
                                ("params_digest", .string(digest(weights.pointer, count: n)))])
        ctx.log?.flush()
    }
}

/// Server 0's human progress lines: one per epoch, and one every few seconds.
struct Progress {
    let lead: Bool
    let say: (String) -> Void
    let every: Double
    let total: Int, perEpoch: Int, epochs: Int, batch: Int
    let start: Double
    var lastLine: Double
    var lossAcc = 0.0, lossN = 0
    var lastLoss = Double.nan

    init(lead: Bool, say: @escaping (String) -> Void, every: Double, total: Int, perEpoch: Int, epochs: Int, batch: Int, start: Double) {
        self.lead = lead; self.say = say; self.every = every; self.total = total; self.perEpoch = perEpoch
        self.epochs = epochs; self.batch = batch; self.start = start; lastLine = start
    }

    func head(_ step: Int) -> String {
        let e = step / perEpoch + 1
        return "epoch \(min(e, epochs))/\(epochs)  step \(step + 1)/\(total)"
    }

    func rate(_ step: Int, _ t: Double) -> String {
        let sps = Double((step + 1) * batch) / max(t - start, 1e-9)
        return "\(Int(sps.rounded())) samples/s"
    }

    mutating func step(_ step: Int, loss: Double, at t: Double) {
        guard lead else { return }
        lossAcc += loss; lossN += 1
        if t - lastLine >= every && (step + 1) % perEpoch != 0 {
            lastLoss = lossAcc / Double(lossN)
            say("\(head(step))  loss \(String(format: "%.4f", lastLoss))  \(rate(step, t))")
            lastLine = t; lossAcc = 0; lossN = 0
        }
    }

    mutating func epochEnd(_ step: Int, accuracy: Double, at t: Double) {
        guard lead else { return }
        if lossN > 0 { lastLoss = lossAcc / Double(lossN) }
        say("\(head(step))  loss \(String(format: "%.4f", lastLoss))  test accuracy \(String(format: "%.2f", accuracy * 100))%  \(rate(step, t))  \(String(format: "%.1f", t - start)) s")
        lastLine = t; lossAcc = 0; lossN = 0
    }
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

    public init(context: RankContext, data: DataSplit) throws {
        ctx = context
        index = context.world.index(ofRank: context.rank)
        self.data = data
        let cfg = context.config
        let micro = Sampler.slice(batch: cfg.batchSize, worker: 0, of: context.world.workers).count
        let m = try Model(config: cfg, capacity: max(micro, 256))
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
    }

    public func run() throws {
        let cfg = ctx.config, world = ctx.world, t = ctx.transport
        let S = world.servers, W = world.workers
        let B = cfg.batchSize
        let sampler = Sampler(count: data.train.count, batchSize: B, seed: cfg.seed)
        let (perEpoch, total) = try ctx.schedule(trainCount: data.train.count)
        let mine = Sampler.slice(batch: B, worker: index, of: W)
        let paramFrames = (0..<S).map { FrameBuffer(payloadCapacity: plan.range($0).count * 4) }
        let gradFrames = (0..<S).map { FrameBuffer(payloadCapacity: plan.range($0).count * 4) }
        let evalFrame = FrameBuffer(payloadCapacity: 24)
        let labels = UnsafeMutablePointer<UInt8>.allocate(capacity: model.capacity)
        defer { labels.deallocate() }
        let gradScale = 1 / Float(B)
        ctx.log?.write("start", [("servers", .int(S)), ("workers", .int(W)), ("microbatch", .int(mine.count)),
                                 ("train_samples", .int(data.train.count)), ("test_samples", .int(data.test.count)),
                                 ("steps", .int(total)), ("steps_per_epoch", .int(perEpoch))])
        ctx.log?.flush()

        /// Receives parameters of `version` from every server into `params`.
        func receiveParams(version: Int, also: [TransportRequest]) throws -> Int {
            let reqs = try world.serverRanks.enumerated().map { (s, r) in
                try t.irecv(paramFrames[s].whole, from: r, tag: FrameKind.params.tag)
            }
            let counts = try ctx.wait(reqs + also, for: "parameters", step: version)
            var bytes = 0
            for s in 0..<S {
                let r = plan.range(s)
                _ = try Frame.open(buffer: paramFrames[s].raw, length: counts[s],
                                   expect: FrameExpectation(kind: .params, step: UInt64(version), chunk: UInt32(s),
                                                            elementType: .f32, rawLength: r.count * 4),
                                   sender: world.describe(world.serverRanks[s]))
                (params.pointer + r.lowerBound).update(from: paramFrames[s].floats, count: r.count)
                bytes += counts[s]
            }
            return bytes
        }

        _ = try receiveParams(version: 0, also: [])
        var perm: [Int32] = []
        var last = now()
        for step in 0..<total {
            let epoch = step / perEpoch, within = step % perEpoch
            if within == 0 || perm.isEmpty { perm = sampler.permutation(epoch: epoch) }
            let computeStart = now()
            let base = within * B
            let rows = perm[(base + mine.lowerBound)..<(base + mine.upperBound)].lazy.map { Int($0) }
            data.train.gather(rows, into: model.input, labels: labels)
            let r = model.trainStep(batch: mine.count, labels: labels, gradScale: gradScale,
                                    params: params.pointer, grads: grads.pointer)
            // One frame per server holding its range of the gradient.
            var sends: [TransportRequest] = []
            var bytesOut = 0
            for s in 0..<S {
                let rg = plan.range(s)
                gradFrames[s].floats.update(from: grads.pointer + rg.lowerBound, count: rg.count)
                gradFrames[s].length = Frame.seal(FrameHeader(kind: .grads, step: UInt64(step), chunk: UInt32(s), elementType: .f32,
                                                              rawLength: UInt64(rg.count * 4), encodedLength: UInt64(rg.count * 4),
                                                              aux0: r.lossSum, aux1: Double(mine.count)),
                                                  buffer: gradFrames[s].raw)
                sends.append(try t.isend(gradFrames[s].sealed, to: world.serverRanks[s], tag: FrameKind.grads.tag))
                bytesOut += gradFrames[s].length
            }
            let computed = now() - computeStart
            let waitStart = now()
            let bytesIn = try receiveParams(version: step + 1, also: sends)
            let end = now()
            ctx.log?.write("step", [("step", .int(step)), ("epoch", .int(epoch)),
                                    ("loss", .double(r.lossSum / Double(max(mine.count, 1)))),
                                    ("samples", .int(mine.count)), ("step_s", .double(end - last)),
                                    ("compute_s", .double(computed)), ("wait_s", .double(end - waitStart)),
                                    ("bytes_sent", .int(bytesOut)), ("bytes_recv", .int(bytesIn)),
                                    ("samples_per_s", .double(Double(mine.count) / max(end - last, 1e-9)))])
            last = end
            if (step + 1) % perEpoch == 0 || step + 1 == total {
                let e = evaluate()
                let v = evalFrame.payload.assumingMemoryBound(to: Double.self)
                v[0] = e.lossSum; v[1] = Double(e.correct); v[2] = Double(e.count)
                evalFrame.length = Frame.seal(FrameHeader(kind: .eval, step: UInt64(step + 1), chunk: 0, elementType: .f64,
                                                          rawLength: 24, encodedLength: 24), buffer: evalFrame.raw)
                let req = try t.isend(evalFrame.sealed, to: world.serverRanks[0], tag: FrameKind.eval.tag)
                _ = try ctx.wait([req], for: "sending test results", step: step + 1)
                ctx.log?.write("eval_part", [("step", .int(step + 1)), ("epoch", .int(epoch + 1)), ("correct", .int(e.correct)),
                                             ("test_samples", .int(e.count)), ("test_loss_sum", .double(e.lossSum))])
                last = now()
            }
            ctx.log?.flush()
        }
        ctx.log?.write("done", [("steps", .int(total)), ("params_digest", .string(digest(params.pointer, count: params.count)))])
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
