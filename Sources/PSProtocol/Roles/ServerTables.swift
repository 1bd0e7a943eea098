import PSSupport
import PSNumerics

/// A server's rows of the embedding tables and what one step asked of them.
final class ServerTables {
    let ctx: RankContext
    /// This server's index, and the wire's number format.
    let index: Int
    let precision: Precision
    let shard: TableShard
    let specs: [TableSpec]
    let buffers: ServerRowFrames
    /// This step's requests: per worker, per table, the slots of the rows asked for (request order).
    var slots: [[[Int32]]]
    /// Per worker: the elements (rows x dim) of its request.
    var elements: [Int]
    /// This step's row traffic, for the step record.
    var rowsServed = 0, bytesIn = 0, bytesOut = 0
    /// The most rows one request may ask for (`requestRowLimit`): an
    /// announcement of more is refused before anything is allocated.
    let maxRequestRows: Int

    init(context: RankContext, index: Int, shard: TableShard, maxRequestRows: Int) {
        ctx = context
        self.index = index
        let workers = context.world.workers, settings = context.config.compression.settings
        precision = context.config.train.precision
        self.shard = shard
        self.maxRequestRows = maxRequestRows
        specs = shard.tables.map(\.spec)
        buffers = ServerRowFrames(workers: workers, room: RowRoom(settings: settings, precision: precision))
        slots = (0..<workers).map { _ in shard.tables.map { _ in [] } }
        elements = Array(repeating: 0, count: workers)
    }

    var world: World { ctx.world }
}

/// A server's frames of the table exchange, one set per worker: the
/// announcements and requests it receives, the values it sends (with the
/// sends still open: a frame must not change until they complete) and the
/// gradients it receives.
final class ServerRowFrames {
    let room: RowRoom
    var announce: [FrameBuffer]
    var request: [FrameBuffer]
    var values: [FrameBuffer]
    var grads: [FrameBuffer]
    var sends: [[TransportRequest]]

    init(workers: Int, room: RowRoom) {
        self.room = room
        announce = (0..<workers).map { _ in RowAnnounce.buffer() }
        request = RowRoom.frames(workers)
        values = RowRoom.frames(workers)
        grads = RowRoom.frames(workers)
        sends = (0..<workers).map { _ in [] }
    }
}

extension ServerTables {
    /// The most rows one worker's request may ask server `server` (of
    /// `servers`) for, from what the server knows of the run: per table, no
    /// more than the rows it holds (rows are distinct and ascending), nor
    /// than a request's samples times the ids a sample may hold in that
    /// table. A request covers at most `samples` rows of data (a training
    /// microbatch or an evaluation round); a sample holds one id per Criteo
    /// field and up to LibSVM.maxPairsPerRow in libsvm's one field, and a
    /// table that embeds several fields (`fieldsPerTable[t]`; nil: one each)
    /// takes the ids of all of them.
    static func requestRowLimit(specs: [TableSpec], fieldsPerTable: [Int]? = nil, server: Int, servers: Int, samples: Int,
                                idsPerSample: Int) -> Int {
        specs.enumerated().reduce(0) { sum, entry in
            let (t, spec) = entry
            let held = spec.rows / servers + (server < spec.rows % servers ? 1 : 0)
            let (perSample, o1) = idsPerSample.multipliedReportingOverflow(by: fieldsPerTable?[t] ?? 1)
            let (asked, o2) = samples.multipliedReportingOverflow(by: perSample)
            let (total, o3) = sum.addingReportingOverflow(min(held, o1 || o2 ? Int.max : asked))
            return o3 ? Int.max : total
        }
    }

    /// Refuses an announcement of more rows than `maxRows`, or of more
    /// bytes than its rows can take (10 a row plus a count per table),
    /// before anything is allocated for it; names the sender.
    static func check(_ said: RowAnnounce, maxRows: Int, tables: Int, sender: String, step: Int) throws {
        guard said.rows <= maxRows, said.bytes <= RowCoding.maxBytes(said.rows) + 10 * tables else {
            throw FrameError.badPayload(sender: sender, what: "row announcement of step \(step)",
                                        problem: "claims \(said.rows) rows in \(said.bytes) bytes; this server accepts at most \(maxRows) rows "
                                            + "in \(RowCoding.maxBytes(min(said.rows, maxRows)) + 10 * tables) bytes "
                                            + "(the rows it holds, and train.batch_size's rows times the ids a sample may hold)")
        }
    }

    /// The most bytes one request can make a server allocate: the request
    /// (at most 10 bytes a row plus a count per table), the rows' FP32
    /// values, their encoded frame (at most 4 bytes an element plus the
    /// codec's bound) and a slot per row (docs/robustness.md).
    static func requestByteLimit(rows: Int, specs: [TableSpec]) -> Int {
        let dim = specs.map(\.dim).max() ?? 0
        return RowCoding.maxBytes(rows) + 10 * specs.count + rows * (8 * dim + 4) + (1 << 16)
    }
}

/// The server's half of the table exchange: each worker's announcement,
/// request and gradients in, the rows' values out. `meter` takes the
/// step's waiting and working time.
extension ServerTables {
    /// Answers every worker's row request of `step` (`round` 0: training;
    /// evaluation rounds 1, 2, ...), worker by worker. Returns the rounds
    /// worker 0 announced (every worker must announce the same).
    @discardableResult
    func serveRows(step: Int, round: Int, meter: inout StepMeter) throws -> Int {
        var rounds: Int?
        for w in world.workerRanks.indices {
            let r = try serveRows(worker: w, step: step, round: round, meter: &meter)
            if let first = rounds, first != r {
                throw FrameError.badPayload(sender: world.describe(world.workerRanks[w]), what: "row request of step \(step)",
                                            problem: "announces \(r) evaluation rounds, worker 0 \(first)")
            }
            rounds = rounds ?? r
        }
        return rounds ?? 0
    }

    /// Answers worker w's row request of `step`: reads the announcement,
    /// then the request, and sends the rows' values in request order.
    /// Training creates rows never seen before (their initial values);
    /// evaluation reads them without keeping them. Returns the rounds announced.
    func serveRows(worker w: Int, step: Int, round: Int, meter: inout StepMeter) throws -> Int {
        let b = buffers, rank = world.workerRanks[w]
        let t0 = now()
        let said = try ctx.receive(RowAnnounce.self, from: [rank], step: step, index: { _ in round }, into: [b.announce[w]], for: "row requests")[0]
        meter.waited += now() - t0
        try serveRequest(worker: w, said, step: step, round: round, meter: &meter)
        return said.rounds
    }

    /// Worker w's row request after its announcement `said`: the request,
    /// then the rows' values sent in request order.
    func serveRequest(worker w: Int, _ said: RowAnnounce, step: Int, round: Int, meter: inout StepMeter) throws {
        let b = buffers, rank = world.workerRanks[w], sender = world.describe(rank)
        try ServerTables.check(said, maxRows: maxRequestRows, tables: specs.count, sender: sender, step: step)
        let t0 = now()
        let req = try ctx.transport.irecv(RowRoom.fit(&b.request[w], bytes: said.bytes), from: rank, tag: RowRequest.kind.tag)
        let count = try ctx.wait([req], for: "row requests", step: step)[0]
        let waitEnd = now()
        meter.waited += waitEnd - t0
        let rows = try RowRequest.open(b.request[w], length: count, step: step, round: round, bytes: said.bytes, rows: said.rows,
                                       tables: specs, sender: sender)
        for (t, r) in rows.enumerated() where !r.isEmpty {
            if let bad = r.first(where: { TableSpec.owner(row: $0, servers: world.servers) != index }) {
                throw FrameError.badPayload(sender: sender, what: "row request of step \(step)",
                                            problem: "asks for row \(bad) of table \(t), which server \(TableSpec.owner(row: bad, servers: world.servers)) holds")
            }
        }
        let n = zip(rows, specs).reduce(0) { $0 + $1.0.count * $1.1.dim }
        _ = try ctx.wait(b.sends[w], for: "row sends", step: step)
        b.sends[w] = []
        b.room.reserve(elements: n)
        var at = 0
        for (t, r) in rows.enumerated() {
            let d = specs[t].dim
            if round == 0 {
                slots[w][t] = r.map { shard.slot(table: t, row: $0) }
                shard.read(table: t, slots: slots[w][t], into: b.room.scratch.pointer + at)
            } else {
                for (k, row) in r.enumerated() { shard.peek(table: t, row: row, into: b.room.scratch.pointer + at + k * d) }
            }
            at += r.count * d
        }
        elements[w] = n
        let frame = RowRoom.fit(&b.values[w], bytes: b.room.wireBytes(n))
        let e = b.room.codec.encode(b.room.scratch.pointer, count: n, as: precision, sparse: false, key: w, step: step,
                               into: frame.payload, capacity: frame.capacity - FrameHeader.size)
        RowValues.seal(frame, kind: .rowValues, step: step, round: round, count: n, precision: precision, encoded: e)
        b.sends[w] = [try ctx.transport.isend(frame, to: rank, tag: FrameKind.rowValues.tag)]
        rowsServed += said.rows
        bytesIn += count + b.announce[w].length
        bytesOut += frame.length
        meter.applied += now() - waitEnd
    }

    /// Every worker's row gradients of `step`, summed per row in worker order.
    func receiveRowGradients(_ step: Int, meter: inout StepMeter) throws {
        let t0 = now()
        let reqs = try world.workerRanks.indices.map { try postRowGradients(worker: $0) }
        let counts = try ctx.wait(reqs, for: "row gradients", step: step)
        let t1 = now()
        meter.waited += t1 - t0
        for w in world.workerRanks.indices { try addRowGradients(worker: w, length: counts[w], step: step) }
        meter.applied += now() - t1
    }

    /// The receive of worker w's row gradients (the size of its last request's rows).
    func postRowGradients(worker w: Int) throws -> TransportRequest {
        let b = buffers
        return try ctx.transport.irecv(RowRoom.fit(&b.grads[w], bytes: b.room.wireBytes(elements[w])), from: world.workerRanks[w], tag: FrameKind.rowGrads.tag)
    }

    /// Checks and decodes worker w's row gradients of `step` and adds them into the step's sums.
    func addRowGradients(worker w: Int, length: Int, step: Int) throws {
        let b = buffers
        let n = elements[w], sender = world.describe(world.workerRanks[w])
        let h = try RowValues.open(b.grads[w], kind: .rowGrads, length: length, step: step, round: 0, count: n,
                                   precision: precision, sender: sender)
        b.room.reserve(elements: n)
        try b.room.codec.decode(b.grads[w], h, count: n, as: precision, into: b.room.scratch.pointer, add: false, sender: sender,
                           what: "row gradients of step \(step)")
        var at = 0
        for (t, s) in slots[w].enumerated() {
            shard.accumulate(table: t, slots: s, grads: b.room.scratch.pointer + at)
            at += s.count * specs[t].dim
        }
        bytesIn += length
    }

    /// After the last step of an epoch: the workers' evaluation rounds.
    func serveEvaluation(_ step: Int, meter: inout StepMeter) throws {
        let rounds = try serveRows(step: step + 1, round: 1, meter: &meter)
        if rounds > 1 { for c in 2...rounds { try serveRows(step: step + 1, round: c, meter: &meter) } }
    }
}
