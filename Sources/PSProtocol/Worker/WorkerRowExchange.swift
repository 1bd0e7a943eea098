import PSSupport
import PSNumerics

/// Which server holds which of a batch's rows, and the order requests and
/// answers list them in: per server, table by table, ascending.
public struct RowPlan {
    public let dims: [Int]
    public let servers: Int
    /// Per table: the batch's distinct rows, ascending.
    public private(set) var unique: [[UInt64]]
    /// Per server, per table: indices into `unique[t]` of the rows it holds, ascending.
    public private(set) var wanted: [[[Int32]]]

    public init(dims: [Int], servers: Int) {
        self.dims = dims; self.servers = servers
        unique = dims.map { _ in [] }
        wanted = (0..<servers).map { _ in dims.map { _ in [] } }
    }

    /// The batch's rows: per table, distinct and ascending (checked: a
    /// caller in another language may get it wrong).
    public mutating func plan(_ rows: [[UInt64]]) throws {
        guard rows.count == dims.count else { throw SessionError.tableCount(expected: dims.count, got: rows.count) }
        for (t, u) in rows.enumerated() {
            for k in u.indices.dropFirst() where u[k - 1] >= u[k] { throw SessionError.rowsNotAscending(table: t) }
            for s in 0..<servers { wanted[s][t].removeAll(keepingCapacity: true) }
            for (k, r) in u.enumerated() { wanted[TableSpec.owner(row: r, servers: servers)][t].append(Int32(k)) }
        }
        unique = rows
    }

    /// Server s's rows of each table, in request order.
    public func requested(server s: Int) -> [[UInt64]] { dims.indices.map { t in wanted[s][t].map { unique[t][Int($0)] } } }
    /// Rows server s must send, over all tables, and their elements (rows x dim).
    public func rowCount(server s: Int) -> Int { wanted[s].reduce(0) { $0 + $1.count } }
    public func elementCount(server s: Int) -> Int { zip(wanted[s], dims).reduce(0) { $0 + $1.0.count * $1.1 } }

    /// Server s's answer (table by table, in request order) into the tables' values (`unique` order).
    public func scatter(server s: Int, from v: UnsafePointer<Float>, into values: [UnsafeMutablePointer<Float>]) {
        var at = 0
        for (t, d) in dims.enumerated() {
            for k in wanted[s][t] { (values[t] + Int(k) * d).update(from: v + at, count: d); at += d }
        }
    }

    /// Server s's rows' gradients, table by table in request order, from the tables' (`unique` order) into `out`.
    public func gather(server s: Int, from grads: [UnsafeMutablePointer<Float>], into out: UnsafeMutablePointer<Float>) {
        var at = 0
        for (t, d) in dims.enumerated() {
            for k in wanted[s][t] { (out + at).update(from: grads[t] + Int(k) * d, count: d); at += d }
        }
    }
}

/// A worker's half of the table exchange (ServerTables.swift has the
/// servers'): for a batch's distinct rows of each table, which server holds
/// which (`TableSpec.owner`), the announcement and request to each, the
/// values they answer with and the gradients sent back, in request order
/// (table by table, ascending). It owns every buffer of it: the frames, the
/// rows' values and their gradients, which a compute engine reads and
/// writes in place.
final class WorkerRowExchange {
    /// A request sent whose values are still to come.
    struct Asked {
        let receives: [TransportRequest]
        let sends: [TransportRequest]
        let step: Int, round: Int
    }

    let ctx: RankContext
    let dims: [Int]
    let room: RowRoom
    var announce: [FrameBuffer]
    var request: [FrameBuffer]
    var values: [FrameBuffer]
    var grads: [FrameBuffer]
    private(set) var rows: RowPlan
    /// Per table: the rows' values and gradients (unique[t].count x dim of each is in use).
    private var tableValues: [FloatBuffer]
    private var tableGrads: [FloatBuffer]
    /// The request whose values are awaited (`ask` to `receive`).
    private(set) var asked: Asked?
    /// This step's row traffic, for the step record.
    var rowsPulled = 0, idBytes = 0, bytesIn = 0, bytesOut = 0, waited = 0.0

    init(context: RankContext, tables: [TableSpec]) {
        ctx = context
        dims = tables.map(\.dim)
        let servers = context.world.servers, cfg = context.config
        room = RowRoom(settings: cfg.compression.settings, precision: cfg.train.precision)
        announce = (0..<servers).map { _ in RowAnnounce.buffer() }
        request = RowRoom.frames(servers)
        values = RowRoom.frames(servers)
        grads = RowRoom.frames(servers)
        rows = RowPlan(dims: dims, servers: servers)
        tableValues = tables.map { _ in FloatBuffer(count: 0) }
        tableGrads = tables.map { _ in FloatBuffer(count: 0) }
    }

    var world: World { ctx.world }
    var precision: Precision { room.precision }

    func resetCounters() { rowsPulled = 0; idBytes = 0; bytesIn = 0; bytesOut = 0; waited = 0 }

    /// The batch's rows (per table, distinct and ascending): which server
    /// holds which, and room for their values and gradients.
    func plan(_ batchRows: [[UInt64]]) throws {
        guard asked == nil else { throw SessionError.outOfOrder(call: "loaded", phase: "rows asked for and not received") }
        try rows.plan(batchRows)
        for (t, u) in batchRows.enumerated() where u.count * dims[t] > tableValues[t].count {
            tableValues[t] = FloatBuffer(count: RowRoom.grown(tableValues[t].count, u.count * dims[t]))
            tableGrads[t] = FloatBuffer(count: tableValues[t].count)
        }
    }

    /// Table t's rows' values, in `unique[t]` order (valid until the next `plan`).
    func values(table t: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: tableValues[t].pointer, count: rows.unique[t].count * dims[t])
    }

    /// The buffer for table t's rows' gradients, in `unique[t]` order (valid until the next `plan`).
    func gradients(table t: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: tableGrads[t].pointer, count: rows.unique[t].count * dims[t])
    }

    /// Asks every server for its rows (an announcement, then the request),
    /// with the receives of the values posted first. `round` 0 is a
    /// training step; evaluation rounds are 1, 2, ... and announce `rounds`.
    func ask(step: Int, round: Int, rounds: Int = 0) throws {
        var sends: [TransportRequest] = []
        var receives: [TransportRequest] = []
        for (s, rank) in world.serverRanks.enumerated() {
            let bytes = RowRequest.encode(rows.requested(server: s))
            let n = rows.rowCount(server: s), elements = rows.elementCount(server: s)
            RowAnnounce(rows: n, bytes: bytes.count, rounds: rounds).seal(into: announce[s], step: step, index: round)
            RowRequest.seal(RowRoom.fit(&request[s], bytes: bytes.count), bytes: bytes, step: step, round: round)
            let into = RowRoom.fit(&values[s], bytes: room.wireBytes(elements))
            receives.append(try ctx.transport.irecv(into, from: rank, tag: FrameKind.rowValues.tag))
            sends.append(try ctx.transport.isend(announce[s], to: rank, tag: RowAnnounce.kind.tag))
            sends.append(try ctx.transport.isend(request[s], to: rank, tag: RowRequest.kind.tag))
            rowsPulled += n
            idBytes += bytes.count
            bytesOut += announce[s].length + request[s].length
        }
        asked = Asked(receives: receives, sends: sends, step: step, round: round)
    }

    /// Waits for every server's values of the request asked and stores them.
    func receive() throws {
        guard let a = asked else { throw SessionError.outOfOrder(call: "receive rows", phase: "no rows asked for") }
        asked = nil
        let t0 = now()
        let counts = try ctx.wait(a.receives + a.sends, for: "table rows", step: a.step)
        for (s, rank) in world.serverRanks.enumerated() {
            let n = rows.elementCount(server: s), sender = world.describe(rank)
            let h = try RowValues.open(values[s], kind: .rowValues, length: counts[s], step: a.step, round: a.round, count: n,
                                       precision: precision, sender: sender)
            room.reserve(elements: n)
            try room.codec.decode(values[s], h, count: n, as: precision, into: room.scratch.pointer, add: false, sender: sender,
                                  what: "table rows of step \(a.step)")
            rows.scatter(server: s, from: room.scratch.pointer, into: tableValues.map(\.pointer))
            bytesIn += counts[s]
        }
        waited += now() - t0
    }

    /// After backward: one summed gradient per pulled row, to the server
    /// that holds it (request order), flagged as an overflow like the dense
    /// pieces. The sends join the step's push.
    func pushGradients(step: Int, push: inout Push) throws {
        for (s, rank) in world.serverRanks.enumerated() {
            let n = rows.elementCount(server: s)
            room.reserve(elements: n)
            rows.gather(server: s, from: tableGrads.map(\.pointer), into: room.scratch.pointer)
            if push.spoil && n > 0 { room.scratch.pointer[0] = .infinity }
            if Payload.overflows(room.scratch.pointer, count: n, as: precision) { push.overflow = true }
            let frame = RowRoom.fit(&grads[s], bytes: room.wireBytes(n))
            let e = room.codec.encode(room.scratch.pointer, count: n, as: precision, sparse: false, key: s, step: step,
                                      into: frame.payload, capacity: frame.capacity - FrameHeader.size)
            RowValues.seal(frame, kind: .rowGrads, step: step, round: 0, count: n, precision: precision, encoded: e)
            push.sends.append(try ctx.transport.isend(frame, to: rank, tag: FrameKind.rowGrads.tag))
            bytesOut += frame.length
        }
    }
}
