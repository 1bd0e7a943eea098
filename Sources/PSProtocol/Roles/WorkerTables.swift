import PSSupport
import PSNumerics
import PSCodec

/// A worker's embedding tables: its click-log sets, the bags of the
/// current microbatch and the row buffers of its servers.
final class WorkerTables {
    let sets: CTRSets
    let bags: EmbeddingBags
    let buffers: RowBuffers
    var batch: CTRBatch
    /// This step's row traffic, for the step record.
    var rowsPulled = 0, idBytes = 0, bytesIn = 0, bytesOut = 0, waited = 0.0
    /// A row request sent whose values are still to come (receives, sends, step, chunk).
    var pending: (receives: [TransportRequest], sends: [TransportRequest], step: Int, chunk: Int)?

    init(sets: CTRSets, tables: [TableSpec], features: [TableFeature], denseCount: Int, servers: Int, settings: CodecSettings, precision: Precision) {
        self.sets = sets
        bags = EmbeddingBags(tables: tables, features: features, denseCount: denseCount, servers: servers)
        buffers = RowBuffers(peers: servers, settings: settings, precision: precision)
        batch = CTRBatch(fields: sets.train.fieldCount)
    }

    func resetCounters() { rowsPulled = 0; idBytes = 0; bytesIn = 0; bytesOut = 0; waited = 0 }
}

extension WorkerRole {
    /// Rows `indices` of `set` as the microbatch: labels, and the bags'
    /// rows worked out (what to pull from which server).
    func loadCTRRows(_ set: any CTRSource, _ indices: [Int]) throws {
        let tb = tables!
        tb.batch.removeAll(fields: set.fieldCount)
        try set.gather(indices, into: &tb.batch)
        for (r, y) in tb.batch.labels.enumerated() { labels[r] = y != 0 ? 1 : 0 }
        try tb.bags.prepare(tb.batch)
    }

    /// Asks every server for its rows of the microbatch (an announcement,
    /// then the request), waits for the values and writes the model's input
    /// (dense features, then each table's bags). `chunk` 0 is a training
    /// step; evaluation rounds are 1, 2, ... and announce `rounds`.
    func pullRows(step: Int, chunk: Int, rounds: Int = 0) throws {
        try askForRows(step: step, chunk: chunk, rounds: rounds)
        try receiveRows()
    }

    /// The first half of `pullRows`: the announcements and requests go out
    /// and the receives of the values are posted (`tables.pending`).
    func askForRows(step: Int, chunk: Int, rounds: Int = 0) throws {
        let tb = tables!, b = tb.buffers, bags = tb.bags
        var reqs: [TransportRequest] = []
        var receives: [TransportRequest] = []
        for (s, rank) in world.serverRanks.enumerated() {
            let rows = bags.tables.indices.map { bags.requestedRows(server: s, table: $0) }
            let bytes = RowRequest.encode(rows)
            let n = bags.rowCount(server: s), elements = bags.elementCount(server: s)
            RowAnnounce(rows: n, bytes: bytes.count, rounds: rounds).seal(into: b.announce[s], step: step, chunk: chunk)
            RowRequest.seal(b.room(\.request, s, bytes: bytes.count), bytes: bytes, step: step, chunk: chunk)
            let into = b.room(\.rows, s, bytes: b.wireBytes(elements))
            receives.append(try ctx.transport.irecv(into, from: rank, tag: FrameKind.rowValues.tag))
            reqs.append(try ctx.transport.isend(b.announce[s], to: rank, tag: RowAnnounce.kind.tag))
            reqs.append(try ctx.transport.isend(b.request[s], to: rank, tag: RowRequest.kind.tag))
            tb.rowsPulled += n
            tb.idBytes += bytes.count
            tb.bytesOut += b.announce[s].length + b.request[s].length
        }
        tb.pending = (receives, reqs, step, chunk)
    }

    /// The second half: waits for every server's values and writes the model's input.
    func receiveRows() throws {
        let tb = tables!, b = tb.buffers, bags = tb.bags
        let (receives, reqs, step, chunk) = tb.pending!
        tb.pending = nil
        let t0 = now()
        let counts = try ctx.wait(receives + reqs, for: "table rows", step: step)
        for (s, rank) in world.serverRanks.enumerated() {
            let n = bags.elementCount(server: s), sender = world.describe(rank)
            let h = try RowValues.open(b.rows[s], kind: .rowValues, length: counts[s], step: step, chunk: chunk, count: n,
                                       precision: precision, sender: sender)
            b.reserve(elements: n)
            try b.codec.decode(b.rows[s], h, count: n, as: precision, into: b.scratch.pointer, add: false, sender: sender,
                               what: "table rows of step \(step)")
            bags.store(server: s, values: b.scratch.pointer)
            tb.bytesIn += counts[s]
        }
        tb.waited += now() - t0
        bags.forward(dense: tb.batch.dense, into: model.input)
    }

    /// After backward: one summed gradient per pulled row, to the server
    /// that holds it (request order), flagged as an overflow like the
    /// dense pieces.
    func pushRows(step: Int) throws {
        let tb = tables!, b = tb.buffers, bags = tb.bags
        bags.backward(inputGradient: model.inputGradient!.pointer)
        for (s, rank) in world.serverRanks.enumerated() {
            let n = bags.elementCount(server: s)
            b.reserve(elements: n)
            bags.gatherGradients(server: s, into: b.scratch.pointer)
            if push.spoil && n > 0 { b.scratch.pointer[0] = .infinity }
            if Payload.overflows(b.scratch.pointer, count: n, as: precision) { push.overflow = true }
            let frame = b.room(\.grads, s, bytes: b.wireBytes(n))
            let e = b.codec.encode(b.scratch.pointer, count: n, as: precision, sparse: false, chunk: s, step: step,
                                   into: frame.payload, capacity: frame.capacity - FrameHeader.size)
            RowValues.seal(frame, kind: .rowGrads, step: step, chunk: 0, count: n, precision: precision, encoded: e)
            push.sends.append(try ctx.transport.isend(frame, to: rank, tag: FrameKind.rowGrads.tag))
            tb.bytesOut += frame.length
        }
    }

    /// This worker's contiguous slice of the test set and of the validation
    /// set, in rounds of at most `model.capacity` rows; every worker makes
    /// the same number of rounds (the servers answer round by round), some
    /// of them empty. Returns the test and validation scores.
    func evaluateCTR(step: Int) throws -> (test: CTRScore, validation: CTRScore?) {
        let tb = tables!
        let sets: [any CTRSource] = [tb.sets.test] + (tb.sets.validation.map { [$0] } ?? [])
        let rounds = sets.map { set in
            max(1, (Sampler.slice(batch: set.count, worker: 0, of: world.workers).count + model.capacity - 1) / model.capacity)
        }
        var scores: [CTRScore] = []
        var chunk = 1
        for (k, set) in sets.enumerated() {
            let part = Sampler.slice(batch: set.count, worker: index, of: world.workers)
            var score = CTRScore()
            for c in 0..<rounds[k] {
                let lo = min(part.upperBound, part.lowerBound + c * model.capacity), hi = min(part.upperBound, lo + model.capacity)
                try loadCTRRows(set, Array(lo..<hi))
                try pullRows(step: step, chunk: chunk, rounds: rounds.reduce(0, +))
                chunk += 1
                guard hi > lo else { continue }
                let r = model.evaluate(batch: hi - lo, labels: labels, params: params.pointer)
                score.lossSum += r.lossSum; score.correct += r.correct; score.count += hi - lo
                if model.loss == .bce {
                    for i in 0..<(hi - lo) {
                        score.histogram.add(probability: BinaryCrossEntropy.sigmoid(model.logits[i]), clicked: labels[i] != 0)
                    }
                }
            }
            scores.append(score)
        }
        return (scores[0], scores.count > 1 ? scores[1] : nil)
    }
}

/// A worker's evaluation of one set of a click log.
struct CTRScore {
    var lossSum = 0.0, correct = 0, count = 0
    var histogram = ScoreHistogram()
}
