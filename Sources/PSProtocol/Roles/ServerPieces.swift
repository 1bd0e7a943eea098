import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSConfig
import PSCheckpoint
import PSRunLog

/// What a server learns in one step and decides about it.
struct StepOutcome {
    var lr: Float
    /// The loss scale the workers used for this step.
    var scaleBefore: Double
    var lossSum = 0.0
    var samples = 0
    /// Who saw an overflow ("worker 1", "sum on server 0", "server 1"); empty: none.
    var overflowBy: [String] = []
    /// Server 0's requests (FrameFlags.checkpoint, .stop), the same on every server.
    var request: UInt8 = 0
    var scaleChange: LossScaler.Change = .none
    /// With train.clip_norm: the sum of squares of the unscaled summed
    /// gradient, this server's shard until the vote, then the whole model's.
    var sumSquares = 0.0
    /// What the gradient is multiplied by after unscaling (clipping; 1: none).
    var clipFactor = 1.0
    /// The global gradient norm, for the log (nil: clipping off or the step overflowed).
    var gradNorm: Double?

    init(lr: Float, scaleBefore: Double) { self.lr = lr; self.scaleBefore = scaleBefore }

    /// torch.nn.utils.clip_grad_norm_: norm = sqrt(sum of squares),
    /// factor = min(1, maxNorm / (norm + 1e-6)). Nothing after an overflow
    /// (the step is skipped).
    mutating func clip(to maxNorm: Double) {
        guard !overflow else { return }
        let norm = sumSquares.squareRoot()
        gradNorm = norm
        clipFactor = min(1, maxNorm / (norm + 1e-6))
    }

    var overflow: Bool { !overflowBy.isEmpty }
    var stops: Bool { request & FrameFlags.stop != 0 }
    var loss: Double { lossSum / Double(max(samples, 1)) }
}

/// Where a rank's time and bytes went in one step (the `step` record).
struct StepMeter {
    /// When the step began (the previous one ended) and ended.
    var start: Double
    var end: Double
    var waited = 0.0, applied = 0.0
    var bytesIn = 0, bytesOut = 0
    init(start: Double = 0) { self.start = start; end = start }
}

extension ServerRole {
    /// The `step` record, and `overflow` / `scale` records when they happened; the progress line.
    func logStep(_ step: Int, _ o: StepOutcome, worker: Int? = nil, staleness: Int? = nil) {
        let end = now()
        meter.end = end
        let codecTime = codec.takeStats()
        let took = end - meter.start
        var record = ServerStepRecord(
            step: step, epoch: schedule.epoch(of: step), loss: o.loss,
            fp32Bytes: range.count * 4, encodeS: codecTime.encode, decodeS: codecTime.decode,
            lr: Double(o.lr), lossScale: o.scaleBefore, skipped: scaler.skipped, overflow: o.overflow,
            samples: o.samples, stepS: took, waitS: meter.waited, applyS: meter.applied,
            bytesRecv: meter.bytesIn, bytesSent: meter.bytesOut, samplesPerS: Double(o.samples) / max(took, 1e-9),
            paramsDigest: ctx.config.debug.digestEveryStep ? digest(weights.pointer, count: range.count) : nil, gradNorm: o.gradNorm)
        record.worker = worker
        record.staleness = staleness
        if let tb = tables {
            record.rowsServed = tb.rowsServed; record.rowBytesRecv = tb.bytesIn; record.rowBytesSent = tb.bytesOut
            record.tableRows = tb.shard.storedRows; record.tableBytes = tb.shard.storedBytes
            record.bytesRecv += tb.bytesIn; record.bytesSent += tb.bytesOut
            tb.rowsServed = 0; tb.bytesIn = 0; tb.bytesOut = 0
        }
        ctx.log?.write(record)
        if o.overflow {
            ctx.log?.write(OverflowRecord(step: step, seenBy: o.overflowBy, lossScale: o.scaleBefore, newLossScale: scaler.scale))
        }
        switch o.scaleChange {
        case .grew(let a, let b):
            ctx.log?.write(ScaleRecord(step: step, from: a, to: b, why: "growth"))
        case .backedOff(let a, let b):
            ctx.log?.write(ScaleRecord(step: step, from: a, to: b, why: "overflow"))
        case .none: break
        }
        progress.step(step, loss: o.loss, skipped: o.overflow, scale: (o.scaleBefore, scaler.scale), at: end)
    }

    /// Stops the run when steps keep overflowing with the loss scale at its floor.
    func stopIfDiverged() throws {
        guard scaler.diverged else { return }
        ctx.log?.flush()
        throw ProtocolError.diverged(stepsAtMinimum: scaler.overflowsAtMin, scale: scaler.scale, lastFiniteStep: scaler.lastFiniteStep)
    }

    func logStopped(after steps: Int) {
        ctx.log?.write(ServerStoppedRecord(step: steps, why: "the launcher asked (SIGINT/SIGTERM)"))
        if lead { ctx.say("stopped after step \(steps) of \(schedule.total) as asked; checkpoint step-\(steps) holds the state") }
    }

    /// This server's file of a checkpoint: its slice of every tensor it holds
    /// (full shape when it holds all of it), weights and optimizer state.
    func checkpointTensors() -> [Safetensors.Tensor] {
        var out: [Safetensors.Tensor] = []
        for t in layout.tensors {
            let a = max(range.lowerBound, t.offset), b = min(range.upperBound, t.offset + t.count)
            if a >= b { continue }
            let shape = (a == t.offset && b == t.offset + t.count) ? t.spec.shape : [b - a]
            let off = a - range.lowerBound
            out.append(Safetensors.Tensor(name: t.name, shape: shape, floats: UnsafeBufferPointer(start: weights.pointer + off, count: b - a)))
            for (name, s) in zip(optimizer.stateNames, state) {
                out.append(Safetensors.Tensor(name: t.name + "." + name, shape: shape, floats: UnsafeBufferPointer(start: s.pointer + off, count: b - a)))
            }
        }
        if let tables { for t in tables.specs.indices { out += TableRows.tensors(tables.shard, table: t) } }
        return out
    }

    // MARK: Pieces of the phases

    /// Updates piece k (at offset `off` of this shard) as its tensor's role
    /// says: the optimizer for trained parameters; the unscaled sum of the
    /// workers' changes for running statistics; +1 for step counters.
    /// (`unscale`: 1 / the loss scale of the step, without clipping.)
    /// With `kept` (weights and state buffers of the shard's size), the old
    /// values of the piece are copied there first.
    func apply(piece k: Int, at off: Int, update: OptimizerStep, unscale inv: Float, keepingIn kept: (FloatBuffer, [FloatBuffer])? = nil) {
        let n = pieces[k].range.count, w = weights.pointer + off, g = gradSum.pointer + off
        let role = layout.tensors[pieces[k].tensor].spec.role
        if let (kw, ks) = kept {
            if role == .trainable {
                return optimizer.apply(weights: w, state: statesOfPiece[k], grads: g, count: n, step: update,
                                       keepingIn: kw.pointer + off, ks.map { $0.pointer + off })
            }
            (kw.pointer + off).update(from: w, count: n)
            for (copy, s) in zip(ks, state) { (copy.pointer + off).update(from: s.pointer + off, count: n) }
        }
        switch role {
        case .trainable:
            optimizer.apply(weights: w, state: statesOfPiece[k], grads: g, count: n, step: update)
        case .runningStat:
            for i in 0..<n { w[i] += g[i] * inv }
        case .counter:
            for i in 0..<n { w[i] += 1 }
        }
    }

    /// Whether piece k's gradient counts in the clipping norm: pieces of
    /// trained tensors (a piece lies inside one tensor), not batchnorm's
    /// running statistics or counters.
    func isTrainable(piece k: Int) -> Bool { layout.tensors[pieces[k].tensor].spec.role == .trainable }

    /// The sum of squares of this server's trainable pieces of the summed
    /// gradient, unscaled (times 1 / `scale`), in Double, piece by piece in
    /// piece order: the same bits on every run with this shard.
    func gradientSquares(scale: Double) -> Double {
        let t0 = now()
        var total = 0.0
        for k in pieces.indices where isTrainable(piece: k) {
            total += Self.sumOfSquares(gradSum.pointer + (pieces[k].range.lowerBound - range.lowerBound),
                                       count: pieces[k].range.count, times: 1 / scale)
        }
        meter.applied += now() - t0
        return total
    }

    /// Sum of (x[i] * s)^2 in Double, in four interleaved partial sums
    /// (a fixed order, so fixed bits) for speed.
    static func sumOfSquares(_ x: UnsafePointer<Float>, count n: Int, times s: Double) -> Double {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        while i + 4 <= n {
            let x0 = Double(x[i]) * s, x1 = Double(x[i + 1]) * s, x2 = Double(x[i + 2]) * s, x3 = Double(x[i + 3]) * s
            a0 += x0 * x0; a1 += x1 * x1; a2 += x2 * x2; a3 += x3 * x3
            i += 4
        }
        while i < n { let v = Double(x[i]) * s; a0 += v * v; i += 1 }
        return (a0 + a1) + (a2 + a3)
    }

    /// A checkpoint holds the state tensors of the optimizer its run used:
    /// resuming it with another one is refused with the two names.
    static func checkOptimizer(of path: String, _ m: Manifest, is configured: TrainSection) throws {
        let saved = try m.configuration(folder: path).train
        guard saved.optimizer == configured.optimizer else {
            throw ProtocolError.otherOptimizer(checkpoint: path, saved: saved.optimizer.rawValue, configured: configured.optimizer.rawValue)
        }
        guard saved.sparseOptimizer == configured.sparseOptimizer else {
            throw ProtocolError.otherOptimizer(checkpoint: path, saved: saved.sparseOptimizer.rawValue,
                                               configured: configured.sparseOptimizer.rawValue, key: "train.sparse_optimizer")
        }
    }

    /// Encodes piece k of the current weights as parameters `version` and
    /// sends it to every worker, once its previous sends completed.
    func sendPiece(_ k: Int, version: Int, request: UInt8) throws {
        try sealAndSend(k, version: version, encoded: try encodePiece(k, version: version), request: request)
    }

    /// Encodes piece k of the current weights into its frame, once the
    /// frame's previous sends completed.
    func encodePiece(_ k: Int, version: Int) throws -> EncodedPiece {
        _ = try ctx.wait(sends[k], for: "parameter sends", step: version)
        sends[k] = []
        return encodeWeights(k, version: version, into: paramFrames[k])
    }

    /// Encodes piece k of the current weights as parameters `version` into
    /// frame `f`'s payload (bsp: the piece's one frame; ssp and async: the
    /// frame of the worker that pulled).
    func encodeWeights(_ k: Int, version: Int, into f: FrameBuffer) -> EncodedPiece {
        let c = pieces[k]
        return codec.encode(weights.pointer + (c.range.lowerBound - range.lowerBound), count: c.range.count, as: precision, sparse: false,
                            key: pieceIDs[k], step: version, into: f.payload, capacity: f.capacity - FrameHeader.size)
    }

    /// Seals frame `f`, piece k encoded, as parameters `version`, with the
    /// loss scale, skip count and server 0's requests of now.
    func sealParameters(_ f: FrameBuffer, _ k: Int, version: Int, encoded e: EncodedPiece, request: UInt8) {
        ParameterPiece.seal(f, version: version, piece: pieceIDs[k], count: pieces[k].range.count, precision: precision, encoded: e,
                            lossScale: scaler.scale, skipped: scaler.skipped, request: request)
    }

    /// Seals piece k's encoded frame as parameters `version` and sends it to every worker.
    func sealAndSend(_ k: Int, version: Int, encoded e: EncodedPiece, request: UInt8) throws {
        sealParameters(paramFrames[k], k, version: version, encoded: e, request: request)
        sends[k] = try world.workerRanks.map { try ctx.transport.isend(paramFrames[k], to: $0, tag: ParameterPiece.kind.tag) }
        meter.bytesOut += paramFrames[k].length * world.workers
    }

    /// The next step's receives: every worker's gradient pieces, then its
    /// summary. The transport matches one sender's messages of one tag in
    /// posting order, so posting in piece order matches the pieces.
    func postReceives() throws {
        let t = ctx.transport
        gradRecvs = pieces.map { _ in [] }
        summaryRecvs = []
        for (w, rank) in world.workerRanks.enumerated() {
            for k in pieces.indices { gradRecvs[k].append(try t.irecv(gradFrames[w][k], from: rank, tag: GradientPiece.kind.tag)) }
            summaryRecvs.append(try t.irecv(summaryFrames[w], from: rank, tag: StepSummary.kind.tag))
        }
    }
}
