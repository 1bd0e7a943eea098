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

/// Peak resident memory of this process, in bytes (getrusage).
public func peakRSSBytes() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
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
        let W = world.workers
        var sgd = SGD(lr: Float(cfg.lr), momentum: Float(cfg.momentum), weightDecay: Float(cfg.weightDecay))
        // This server's pieces, in the order the workers send them.
        let all = plan.pieces(layout, maxElements: cfg.chunkElements)
        let mine = all.indices.filter { all[$0].server == index }
        let paramFrames = mine.map { FrameBuffer(payloadCapacity: all[$0].range.count * 4) }
        let gradFrames = (0..<W).map { _ in mine.map { FrameBuffer(payloadCapacity: all[$0].range.count * 4) } }
        let evalFrames = (0..<W).map { _ in FrameBuffer(payloadCapacity: 24) }
        let isLead = index == 0
        ctx.log?.write("start", [("servers", .int(world.servers)), ("workers", .int(W)), ("shard_lo", .int(range.lowerBound)),
                                 ("shard_hi", .int(range.upperBound)), ("pieces", .int(mine.count)),
                                 ("steps", .int(total)), ("steps_per_epoch", .int(perEpoch))])
        ctx.log?.flush()

        var sends = [[TransportRequest]](repeating: [], count: mine.count)
        var bytesOut = 0
        /// Seals piece k of parameters `version` (already in its frame) and sends it to every worker.
        func sendPiece(_ k: Int, version: Int) throws {
            let c = all[mine[k]]
            paramFrames[k].length = Frame.seal(FrameHeader(kind: .params, step: UInt64(version), chunk: UInt32(mine[k]), elementType: .f32,
                                                           rawLength: UInt64(c.range.count * 4), encodedLength: UInt64(c.range.count * 4)),
                                               buffer: paramFrames[k].raw)
            sends[k] = try world.workerRanks.map { try t.isend(paramFrames[k].sealed, to: $0, tag: FrameKind.params.tag) }
            bytesOut += paramFrames[k].length * W
        }
        func postGradRecvs() throws -> [[TransportRequest]] {
            // recvs[k][w]: MPI keeps messages of one sender and tag in order,
            // so posting in piece order matches the pieces.
            var r = [[TransportRequest]](repeating: [], count: mine.count)
            for (w, rank) in world.workerRanks.enumerated() {
                for k in mine.indices { r[k].append(try t.irecv(gradFrames[w][k].whole, from: rank, tag: FrameKind.grads.tag)) }
            }
            return r
        }

        for k in mine.indices {
            let c = all[mine[k]]
            paramFrames[k].floats.update(from: weights.pointer + (c.range.lowerBound - range.lowerBound), count: c.range.count)
            try sendPiece(k, version: 0)
        }
        var recvs = try postGradRecvs()
        let started = now()
        var progress = Progress(lead: isLead, say: ctx.say, every: cfg.progressSeconds, total: total, perEpoch: perEpoch,
                                epochs: cfg.epochs, batch: cfg.batchSize, start: started)
        var stepStart = started
        for step in 0..<total {
            sgd.lr = Float(cfg.learningRate(step: step, total: total))
            var waited = 0.0, applied = 0.0
            var lossSum = 0.0, samples = 0.0
            var bytesIn = 0
            bytesOut = 0
            // Piece by piece, as the workers' backward produces them: wait for
            // all W contributions, sum in worker-rank order (never arrival
            // order: reproducible bits), apply SGD, send the new values.
            for k in mine.indices {
                let c = all[mine[k]]
                let n = c.range.count
                let waitStart = now()
                let counts = try ctx.wait(recvs[k], for: "gradients", step: step)
                _ = try ctx.wait(sends[k], for: "parameter sends", step: step)
                let applyStart = now()
                waited += applyStart - waitStart
                let expect = FrameExpectation(kind: .grads, step: UInt64(step), chunk: UInt32(mine[k]), elementType: .f32, rawLength: n * 4)
                for w in 0..<W {
                    let h = try Frame.open(buffer: gradFrames[w][k].raw, length: counts[w], expect: expect,
                                           sender: world.describe(world.workerRanks[w]))
                    if k == 0 { lossSum += h.aux0; samples += h.aux1 }
                    bytesIn += counts[w]
                }
                let g: UnsafePointer<Float>
                if W == 1 {
                    g = UnsafePointer(gradFrames[0][k].floats)
                } else {
                    let sum = gradSum.pointer
                    sum.update(from: gradFrames[0][k].floats, count: n)
                    for w in 1..<W {
                        let gw = gradFrames[w][k].floats
                        for i in 0..<n { sum[i] += gw[i] }
                    }
                    g = UnsafePointer(sum)
                }
                let off = c.range.lowerBound - range.lowerBound
                sgd.apply(weights: weights.pointer + off, velocity: velocity.pointer + off, grads: g, count: n,
                          copyTo: paramFrames[k].floats)
                try sendPiece(k, version: step + 1)
                applied += now() - applyStart
            }
            if step + 1 < total { recvs = try postGradRecvs() }
            let end = now()
            let loss = lossSum / max(samples, 1)
            ctx.log?.write("step", [("step", .int(step)), ("epoch", .int(step / perEpoch)), ("loss", .double(loss)),
                                    ("lr", .double(Double(sgd.lr))),
                                    ("samples", .int(Int(samples))), ("step_s", .double(end - stepStart)),
                                    ("wait_s", .double(waited)), ("apply_s", .double(applied)),
                                    ("bytes_recv", .int(bytesIn)), ("bytes_sent", .int(bytesOut)),
                                    ("samples_per_s", .double(samples / max(end - stepStart, 1e-9)))])
            stepStart = end
            progress.step(step, loss: loss, at: end)

            // Epoch end: the workers evaluate the new parameters.
            if isLead && ((step + 1) % perEpoch == 0 || step + 1 == total) {
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
            ctx.log?.flush()
        }
        for k in mine.indices { _ = try ctx.wait(sends[k], for: "parameter sends", step: total) }
        let wall = now() - started
        ctx.log?.write("done", [("steps", .int(total)), ("wall_s", .double(wall)), ("peak_rss_bytes", .int(peakRSSBytes())),
                                ("params_digest", .string(digest(weights.pointer, count: range.count)))])
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
        let pieces = plan.pieces(model.layout, maxElements: cfg.chunkElements)
        let paramFrames = pieces.map { FrameBuffer(payloadCapacity: $0.range.count * 4) }
        let gradFrames = pieces.map { FrameBuffer(payloadCapacity: $0.range.count * 4) }
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
        let gradScale = 1 / Float(B)
        ctx.log?.write("start", [("servers", .int(S)), ("workers", .int(W)), ("microbatch", .int(mine.count)),
                                 ("train_samples", .int(data.train.count)), ("test_samples", .int(data.test.count)),
                                 ("pieces", .int(pieces.count)), ("steps", .int(total)), ("steps_per_epoch", .int(perEpoch))])
        ctx.log?.flush()

        /// Receives parameters of `version` from every server into `params`.
        func receiveParams(version: Int, also: [TransportRequest]) throws -> Int {
            let reqs = try pieces.indices.map { i in
                try t.irecv(paramFrames[i].whole, from: world.serverRanks[pieces[i].server], tag: FrameKind.params.tag)
            }
            let counts = try ctx.wait(reqs + also, for: "parameters", step: version)
            var bytes = 0
            for (i, p) in pieces.enumerated() {
                _ = try Frame.open(buffer: paramFrames[i].raw, length: counts[i],
                                   expect: FrameExpectation(kind: .params, step: UInt64(version), chunk: UInt32(i),
                                                            elementType: .f32, rawLength: p.range.count * 4),
                                   sender: world.describe(world.serverRanks[p.server]))
                (params.pointer + p.range.lowerBound).update(from: paramFrames[i].floats, count: p.range.count)
                bytes += counts[i]
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
            // The loss is known after forward; it rides on every piece's header.
            var sends: [TransportRequest] = []
            var bytesOut = 0
            var lossSum = 0.0
            var sendError: Error?
            func push(layer: Int) {
                for tensor in tensorsOfLayer[layer].reversed() {
                    for i in piecesOfTensor[tensor] {
                        let p = pieces[i]
                        gradFrames[i].floats.update(from: grads.pointer + p.range.lowerBound, count: p.range.count)
                        gradFrames[i].length = Frame.seal(FrameHeader(kind: .grads, step: UInt64(step), chunk: UInt32(i), elementType: .f32,
                                                                      rawLength: UInt64(p.range.count * 4), encodedLength: UInt64(p.range.count * 4),
                                                                      aux0: lossSum, aux1: Double(mine.count)),
                                                          buffer: gradFrames[i].raw)
                        do {
                            sends.append(try t.isend(gradFrames[i].sealed, to: world.serverRanks[p.server], tag: FrameKind.grads.tag))
                        } catch { sendError = error }
                        bytesOut += gradFrames[i].length
                    }
                }
            }
            model.forward(batch: mine.count, params: params.pointer)
            let r = SoftmaxCrossEntropy.evaluate(logits: model.logits, labels: labels, batch: mine.count, classes: model.classes,
                                                 dlogits: model.dLogits, gradScale: gradScale)
            lossSum = r.lossSum
            model.backward(batch: mine.count, params: params.pointer, grads: grads.pointer, layerDone: push)
            if let sendError { throw sendError }
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
        ctx.log?.write("done", [("steps", .int(total)), ("peak_rss_bytes", .int(peakRSSBytes())), ("params_digest", .string(digest(params.pointer, count: params.count)))])
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
