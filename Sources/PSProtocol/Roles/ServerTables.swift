import PSSupport
import PSNumerics
import PSCodec

/// A server's rows of the embedding tables and what one step asked of them.
final class ServerTables {
    let shard: TableShard
    let specs: [TableSpec]
    let buffers: RowBuffers
    /// This step's requests: per worker, per table, the slots of the rows asked for (request order).
    var slots: [[[Int32]]]
    /// Per worker: the elements (rows x dim) of its request.
    var elements: [Int]
    /// This step's row traffic, for the step record.
    var rowsServed = 0, bytesIn = 0, bytesOut = 0

    init(shard: TableShard, workers: Int, settings: CodecSettings, precision: Precision) {
        self.shard = shard
        specs = shard.tables.map(\.spec)
        buffers = RowBuffers(peers: workers, settings: settings, precision: precision)
        slots = (0..<workers).map { _ in shard.tables.map { _ in [] } }
        elements = Array(repeating: 0, count: workers)
    }
}

extension ServerRole {
    /// Answers every worker's row request of `step` (`chunk` 0: training;
    /// evaluation rounds 1, 2, ...): reads the announcement, then the
    /// request, and sends the rows' values in request order. Training
    /// creates rows never seen before (their initial values); evaluation
    /// reads them without keeping them. Returns the rounds worker 0 announced.
    @discardableResult
    func serveRows(step: Int, chunk: Int) throws -> Int {
        let tb = tables!, b = tb.buffers
        let t0 = now()
        let peers = world.workerRanks
        let said = try ctx.receive(RowAnnounce.self, from: peers, step: step, chunk: { _ in chunk }, into: b.announce, for: "row requests")
        var reqs: [TransportRequest] = []
        for (w, rank) in peers.enumerated() {
            reqs.append(try ctx.transport.irecv(b.room(\.request, w, bytes: said[w].bytes), from: rank, tag: RowRequest.kind.tag))
        }
        let counts = try ctx.wait(reqs, for: "row requests", step: step)
        let waitEnd = now()
        meter.waited += waitEnd - t0
        for (w, rank) in peers.enumerated() {
            let sender = world.describe(rank)
            if said[w].rounds != said[0].rounds {
                throw FrameError.badPayload(sender: sender, what: "row request of step \(step)",
                                            problem: "announces \(said[w].rounds) evaluation rounds, worker 0 \(said[0].rounds)")
            }
            let rows = try RowRequest.open(b.request[w], length: counts[w], step: step, chunk: chunk, bytes: said[w].bytes, rows: said[w].rows,
                                           tables: tb.specs, sender: sender)
            for (t, r) in rows.enumerated() where !r.isEmpty {
                if let bad = r.first(where: { TableSpec.owner(row: $0, servers: world.servers) != index }) {
                    throw FrameError.badPayload(sender: sender, what: "row request of step \(step)",
                                                problem: "asks for row \(bad) of table \(t), which server \(TableSpec.owner(row: bad, servers: world.servers)) holds")
                }
            }
            let n = zip(rows, tb.specs).reduce(0) { $0 + $1.0.count * $1.1.dim }
            _ = try ctx.wait(b.sends[w], for: "row sends", step: step)
            b.sends[w] = []
            b.reserve(elements: n)
            var at = 0
            for (t, r) in rows.enumerated() {
                let d = tb.specs[t].dim
                if chunk == 0 {
                    tb.slots[w][t] = r.map { tb.shard.slot(table: t, row: $0) }
                    tb.shard.read(table: t, slots: tb.slots[w][t], into: b.scratch.pointer + at)
                } else {
                    for (k, row) in r.enumerated() { tb.shard.peek(table: t, row: row, into: b.scratch.pointer + at + k * d) }
                }
                at += r.count * d
            }
            tb.elements[w] = n
            let frame = b.room(\.rows, w, bytes: b.wireBytes(n))
            let e = b.codec.encode(b.scratch.pointer, count: n, as: precision, sparse: false, chunk: w, step: step,
                                   into: frame.payload, capacity: frame.capacity - FrameHeader.size)
            RowValues.seal(frame, kind: .rowValues, step: step, chunk: chunk, count: n, precision: precision, encoded: e)
            b.sends[w] = [try ctx.transport.isend(frame, to: rank, tag: FrameKind.rowValues.tag)]
            tb.rowsServed += said[w].rows
            tb.bytesIn += counts[w] + b.announce[w].length
            tb.bytesOut += frame.length
        }
        meter.applied += now() - waitEnd
        return said[0].rounds
    }

    /// Every worker's row gradients of `step`, summed per row in worker order.
    func receiveRowGradients(_ step: Int) throws {
        let tb = tables!, b = tb.buffers
        let t0 = now()
        var reqs: [TransportRequest] = []
        for (w, rank) in world.workerRanks.enumerated() {
            reqs.append(try ctx.transport.irecv(b.room(\.grads, w, bytes: b.wireBytes(tb.elements[w])), from: rank, tag: FrameKind.rowGrads.tag))
        }
        let counts = try ctx.wait(reqs, for: "row gradients", step: step)
        let t1 = now()
        meter.waited += t1 - t0
        for (w, rank) in world.workerRanks.enumerated() {
            let n = tb.elements[w], sender = world.describe(rank)
            let h = try RowValues.open(b.grads[w], kind: .rowGrads, length: counts[w], step: step, chunk: 0, count: n,
                                       precision: precision, sender: sender)
            b.reserve(elements: n)
            do {
                try b.codec.decode(b.grads[w].payload, length: Int(h.encodedLength), stages: h.codec, count: n, as: precision,
                                   into: b.scratch.pointer, add: false)
            } catch let e as CodecError {
                throw FrameError.badPayload(sender: sender, what: "row gradients of step \(step)", problem: e.description)
            }
            var at = 0
            for (t, s) in tb.slots[w].enumerated() {
                tb.shard.accumulate(table: t, slots: s, grads: b.scratch.pointer + at)
                at += s.count * tb.specs[t].dim
            }
            tb.bytesIn += counts[w]
        }
        meter.applied += now() - t1
    }

    /// After the last step of an epoch: the workers' evaluation rounds.
    func serveEvaluation(_ step: Int) throws {
        let rounds = try serveRows(step: step + 1, chunk: 1)
        if rounds > 1 { for c in 2...rounds { try serveRows(step: step + 1, chunk: c) } }
    }
}
