import PSSupport
import PSNumerics
import PSCodec
import PSCheckpoint

/// The parameters a worker is receiving: their version, the receives still
/// open (by piece), and its own last pushes, which complete alongside.
struct Pull {
    var version = 0
    var pending: [TransportRequest?] = []
    var sends: [TransportRequest] = []
    /// Seconds spent waiting for these parameters, and their bytes on the wire.
    var waited = 0.0
    var bytesIn = 0
}

/// One step's push of gradients, filled in piece by piece during backward.
struct Push {
    var step = 0
    var lossScale = 1.0
    var spoil = false
    var overflow = false
    var sends: [TransportRequest] = []
    var bytesOut = 0
    var error: Error?
    /// Pieces encoded so far, and the first piece not yet sent: pieces
    /// leave in piece order (the order each server posts its receives in),
    /// whatever order the layers' gradients become final in.
    var encoded: [Bool] = []
    var cursor = 0
}

/// A worker's half of the dense exchange: the parameter pieces it receives
/// and the gradient pieces it sends, with their frames, the codec both
/// share, the open receives and sends, what the latest parameters' headers
/// said, and top-k's error feedback. It owns the parameter and gradient
/// vectors a compute engine works in.
final class WorkerPieceExchange {
    let ctx: RankContext
    let precision: Precision
    let pieces: [ShardPlan.Piece]
    let codec: PieceCodec
    let paramFrames: [FrameBuffer]
    let gradFrames: [FrameBuffer]
    let summaryFrame = StepSummary.buffer()
    /// Which pieces each layer's forward waits for, ascending.
    let piecesOfLayer: [[Int]]
    /// 0..<pieces.count, for waiting on every piece.
    let allPieces: [Int]
    let params: FloatBuffer
    let grads: FloatBuffer
    /// Top-k's error feedback (nil for dense gradients): training state.
    let feedback: ErrorFeedback?

    /// The parameters being received: their version and open receives.
    var pulled = Pull()
    /// What the latest parameters' headers said.
    var lossScale = 1.0, skipped = 0, flags: UInt8 = 0
    var skippedBefore = 0
    /// This step's push, filled in by `push(layer:)` during the backward pass.
    var push = Push()

    init(context: RankContext, shape: ModelShape, worker: Int) throws {
        ctx = context
        let cfg = context.config, cs = cfg.compression.settings
        precision = cfg.train.precision
        let layout = shape.layout
        pieces = ShardPlan(total: layout.totalCount, servers: context.world.servers).pieces(layout, maxElements: cfg.run.chunkElements)
        codec = PieceCodec(settings: cs, maxElements: pieces.map { $0.range.count }.max() ?? 1)
        let prec = precision
        paramFrames = pieces.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: false)) }
        gradFrames = pieces.map { FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes($0.range.count, prec, cs, sparse: true)) }
        var byTensor = [[Int]](repeating: [], count: layout.tensors.count)
        for (i, p) in pieces.enumerated() { byTensor[p.tensor].append(i) }
        piecesOfLayer = shape.layerTensors.map { $0.flatMap { byTensor[$0] }.sorted() }
        allPieces = Array(pieces.indices)
        params = FloatBuffer(count: layout.totalCount)
        grads = FloatBuffer(count: layout.totalCount)
        feedback = cs.topk > 0 ? ErrorFeedback(count: layout.totalCount) : nil
        if let (path, man) = context.resume, let feedback {
            try feedback.restore(worker: worker, workers: context.world.workers, saved: man.workers) { j in
                try CheckpointStore.loadResidual(path, man, file: checkpointFile(.worker, j), count: feedback.residual.count)
            }
        }
    }

    var world: World { ctx.world }
    var stopped: Bool { flags & FrameFlags.stop != 0 }

    /// Posts the receives of parameters `version`: servers send their pieces
    /// in reverse piece order and the transport matches one sender's messages
    /// in posting order, so they are posted the same way. The last push's
    /// sends complete with them.
    func post(version: Int) throws {
        var p = Pull(version: version, pending: [TransportRequest?](repeating: nil, count: pieces.count), sends: push.sends)
        push.sends = []
        for i in pieces.indices.reversed() {
            p.pending[i] = try ctx.transport.irecv(paramFrames[i], from: world.serverRanks[pieces[i].server], tag: ParameterPiece.kind.tag)
        }
        pulled = p
    }

    /// Waits for the given pieces of the parameters being received (and for
    /// the last pushes), checks and decodes them into `params`.
    func await(_ wanted: [Int]) throws {
        let open = wanted.compactMap { i in pulled.pending[i].map { (piece: i, request: $0) } }
        if open.isEmpty && pulled.sends.isEmpty { return }
        let t0 = now()
        let counts = try ctx.wait(open.map(\.request) + pulled.sends, for: "parameters", step: pulled.version)
        pulled.sends = []
        pulled.waited += now() - t0
        for (j, (i, _)) in open.enumerated() {
            pulled.pending[i] = nil
            let p = pieces[i]
            let sender = world.describe(world.serverRanks[p.server])
            let got = try ParameterPiece.open(paramFrames[i], length: counts[j], version: pulled.version, piece: i, count: p.range.count,
                                              precision: precision, sender: sender)
            try codec.decode(paramFrames[i], got.header, count: p.range.count, as: precision, into: params.pointer + p.range.lowerBound,
                             add: false, sender: sender, what: "parameters of version \(pulled.version), piece \(i)")
            pulled.bytesIn += counts[j]
            // Server 0's scale (in ssp and async the servers' scalers see pushes in their own orders).
            if p.server == 0 { lossScale = got.lossScale }
            skipped = got.skipped
            flags = got.flags
        }
    }

    /// Before backward: a fresh push at the loss scale every piece agreed on.
    func beginPush(step: Int, spoil: Bool) {
        push = Push(step: step, lossScale: lossScale, spoil: spoil, encoded: [Bool](repeating: false, count: pieces.count))
        feedback?.beginStep()
    }

    /// Encodes the given pieces, whose gradients are final, then sends every
    /// encoded piece the cursor reaches. With top-k, error feedback adds what
    /// earlier steps did not send first, and keeps what this step does not send.
    func push(pieces wanted: [Int], hooks: TestHooks, worker: Int) {
        let L = Float(push.lossScale)
        for i in wanted where !push.encoded[i] {
            let p = pieces[i], n = p.range.count
            let g = grads.pointer + p.range.lowerBound
            feedback?.add(to: g, at: p.range.lowerBound, count: n, scale: L)
            // The last piece pushed (the first layer's): a server has
            // updated every other piece ahead of the outcome by then
            // (ServerUpdateAhead.swift) and must put them back.
            if push.spoil && i == pieces.count - 1 { g[0] = .infinity }
            if Payload.overflows(g, count: n, as: precision) { push.overflow = true }
            let e = codec.encode(g, count: n, as: precision, sparse: true, key: i, step: push.step,
                                 into: gradFrames[i].payload, capacity: gradFrames[i].capacity - FrameHeader.size)
            // The wire format's rounding (the model's storage is the precision).
            let prec = precision
            feedback?.keep(unsent: g, at: p.range.lowerBound, count: n, scale: L, codec: codec, kept: e.kept, round: { prec.round($0, $1) })
            GradientPiece.seal(gradFrames[i], step: push.step, piece: i, count: n, precision: precision, encoded: e)
            hooks.corrupt(gradFrames[i], step: push.step, worker: worker, piece: i)
            push.encoded[i] = true
            sendReady()
        }
    }

    /// Sends the encoded pieces from the cursor on, up to the first one not encoded yet.
    func sendReady() {
        while push.cursor < pieces.count && push.encoded[push.cursor] {
            let i = push.cursor
            do {
                push.sends.append(try ctx.transport.isend(gradFrames[i], to: world.serverRanks[pieces[i].server], tag: GradientPiece.kind.tag))
            } catch { push.error = push.error ?? error }
            push.bytesOut += gradFrames[i].length
            push.cursor += 1
        }
    }

    /// The pieces no layer pushed (an engine that left a layer out).
    var unpushed: [Int] { push.encoded.indices.filter { !push.encoded[$0] } }

    /// After the last piece: loss, samples and whether anything overflowed, to every server.
    func sendSummary(step: Int, lossSum: Double, samples: Int) throws {
        StepSummary(lossSum: lossSum, samples: samples, overflow: push.overflow, lossScale: push.lossScale).seal(into: summaryFrame, step: step)
        for r in world.serverRanks { push.sends.append(try ctx.transport.isend(summaryFrame, to: r, tag: StepSummary.kind.tag)) }
        push.bytesOut += summaryFrame.length * world.servers
    }

    /// If the servers skipped the last step, the residual goes back to what
    /// it was before it: as if that step never happened.
    func syncResidual() {
        if skipped > skippedBefore { feedback?.undoStep() }
        skippedBefore = skipped
    }
}
