import Foundation
import PSSupport
import PSNumerics
import PSRunLog

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

/// One step's push of gradients, filled in layer by layer during backward.
struct Push {
    var step = 0
    var lossScale = 1.0
    var spoil = false
    var overflow = false
    var sends: [TransportRequest] = []
    var bytesOut = 0
    var error: Error?
}

extension WorkerRole {
    /// Posts the receives of parameters `version`: servers send their pieces
    /// in reverse piece order and the transport matches one sender's messages
    /// in posting order, so they are posted the same way.
    func postParameters(version: Int) throws {
        var p = Pull(version: version, pending: [TransportRequest?](repeating: nil, count: pieces.count), sends: push.sends)
        push.sends = []
        for i in pieces.indices.reversed() {
            p.pending[i] = try ctx.transport.irecv(paramFrames[i], from: world.serverRanks[pieces[i].server], tag: ParameterPiece.kind.tag)
        }
        pulled = p
    }

    /// Waits for the given pieces of the parameters being received (and for
    /// the last pushes), checks and decodes them into `params`.
    func awaitParameters(_ wanted: [Int]) throws {
        let open = wanted.filter { pulled.pending[$0] != nil }
        if open.isEmpty && pulled.sends.isEmpty { return }
        let t0 = now()
        let counts = try ctx.wait(open.map { pulled.pending[$0]! } + pulled.sends, for: "parameters", step: pulled.version)
        pulled.sends = []
        pulled.waited += now() - t0
        for (j, i) in open.enumerated() {
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

    /// Encodes and sends the pieces of a layer whose gradients are final.
    /// With top-k, error feedback adds what earlier steps did not send
    /// first, and keeps what this step does not send.
    func push(layer: Int) {
        let L = Float(push.lossScale)
        for tensor in tensorsOfLayer[layer].reversed() {
            for i in piecesOfTensor[tensor] {
                let p = pieces[i], n = p.range.count
                let g = grads.pointer + p.range.lowerBound
                feedback?.add(to: g, at: p.range.lowerBound, count: n, scale: L)
                // The last piece pushed (the first layer's): a server has
                // updated every other piece ahead of the outcome by then
                // (ServerUpdateAhead.swift) and must put them back.
                if push.spoil && i == pieces.count - 1 { g[0] = .infinity }
                if Payload.overflows(g, count: n, as: precision) { push.overflow = true }
                let e = codec.encode(g, count: n, as: precision, sparse: true, chunk: i, step: push.step,
                                     into: gradFrames[i].payload, capacity: gradFrames[i].capacity - FrameHeader.size)
                // The wire format's rounding is the model's (model.storage == precision).
                feedback?.keep(unsent: g, at: p.range.lowerBound, count: n, scale: L, codec: codec, kept: e.kept,
                               round: { self.model.round($0, $1) })
                GradientPiece.seal(gradFrames[i], step: push.step, piece: i, count: n, precision: precision, encoded: e)
                hooks.corrupt(gradFrames[i], step: push.step, worker: index, piece: i)
                do {
                    push.sends.append(try ctx.transport.isend(gradFrames[i], to: world.serverRanks[p.server], tag: GradientPiece.kind.tag))
                } catch { push.error = error }
                push.bytesOut += gradFrames[i].length
            }
        }
    }

    /// If the servers skipped the last step, the residual goes back to what
    /// it was before it: as if that step never happened.
    func syncResidual() {
        if skipped > skippedBefore { feedback?.undoStep() }
        skippedBefore = skipped
    }

    /// The `step` record.
    func logStep(_ step: Int, lossSum: Double, computed: Double, received: Pull) {
        let end = now()
        let codecTime = codec.takeStats()
        let n = current.count
        var record = WorkerStepRecord(step: step, epoch: schedule.epoch(of: step), loss: lossSum / Double(max(n, 1)),
                                      fp32Bytes: params.count * 4, encodeS: codecTime.encode, decodeS: codecTime.decode,
                                      lossScale: push.lossScale, overflow: push.overflow, skipped: skipped,
                                      samples: n, stepS: end - last, computeS: computed, waitS: received.waited,
                                      bytesSent: push.bytesOut, bytesRecv: received.bytesIn,
                                      samplesPerS: Double(n) / max(end - last, 1e-9))
        if let tb = tables {
            record.rowsPulled = tb.rowsPulled; record.rowIdBytes = tb.idBytes; record.rowBytesSent = tb.bytesOut
            record.rowBytesRecv = tb.bytesIn; record.rowWaitS = tb.waited
            record.bytesSent += tb.bytesOut; record.bytesRecv += tb.bytesIn
            tb.resetCounters()
        }
        ctx.log?.write(record)
        last = end
    }

    /// This worker's contiguous slice of `set` (the test or the validation set), in chunks.
    func evaluate(_ set: Dataset) -> (lossSum: Double, correct: Int, count: Int) {
        let part = Sampler.slice(batch: set.count, worker: index, of: world.workers)
        var lossSum = 0.0, correct = 0
        var i = part.lowerBound
        while i < part.upperBound {
            let n = min(model.capacity, part.upperBound - i)
            set.gather(i..<(i + n), into: model.input, labels: labels)
            let r = model.evaluate(batch: n, labels: labels, params: params.pointer)
            lossSum += r.lossSum; correct += r.correct
            i += n
        }
        return (lossSum, correct, part.count)
    }
}
