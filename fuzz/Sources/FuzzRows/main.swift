// RowAnnounce.decode, the server's bound on what an announcement may ask
// (ServerTables.check against requestRowLimit: nothing past it is
// allocated, and what passes stays under requestByteLimit) and
// RowRequest.open, as a server does with a worker's row request for
// embedding tables (ServerTables.swift).
//
// Input: [rows u16 LE][announcement: 24 bytes][request payload...]
//   rows: the row count the announcement is taken to say (the announcement
//   bytes are decoded too, for their own checks); the payload is sealed in a
//   valid frame so that mutations reach the row decoding past the checksum.
// On success every table's rows must be ascending and inside the table, the
// counts must add up, and encoding the rows again must decode to the same.
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol

let tables = [TableSpec(rows: 1000, dim: 4), TableSpec(rows: 1 << 34, dim: 2, hash: true), TableSpec(rows: 3, dim: 8)]
/// Server 0 of 2, a microbatch of 256 samples, one id per field.
let maxRows = ServerTables.requestRowLimit(specs: tables, server: 0, servers: 2, samples: 256, idsPerSample: 1)

func input(_ rows: [[UInt64]]) -> [UInt8] {
    let payload = RowRequest.encode(rows)
    let n = rows.reduce(0) { $0 + $1.count }
    let a = RowAnnounce.buffer()
    RowAnnounce(rows: n, bytes: payload.count).seal(into: a, step: 1)
    return [UInt8(n & 0xff), UInt8(n >> 8)] + Array(UnsafeRawBufferPointer(start: a.payload, count: RowAnnounce.payloadBytes)) + payload
}

/// An announcement of `rows` rows in `bytes` bytes before a small request.
func announced(rows: Int, bytes: Int) -> [UInt8] {
    let a = RowAnnounce.buffer()
    RowAnnounce(rows: rows, bytes: bytes).seal(into: a, step: 1)
    return [3, 0] + Array(UnsafeRawBufferPointer(start: a.payload, count: RowAnnounce.payloadBytes)) + RowRequest.encode([[0], [1], [2]])
}

func seeds() -> [(String, [UInt8])] {
    [("empty", input([[], [], []])),
     ("small", input([[0, 1, 999], [5, 1 << 33], [2]])),
     ("gaps", input([Array(stride(from: 0, to: 1000, by: 7)).map(UInt64.init), [], [0, 1, 2]])),
     // Issue 20: 2^28 rows announced made a server allocate 2.68 GB, then trap.
     ("huge-announcement", announced(rows: RowAnnounce.maxRows, bytes: RowCoding.maxBytes(RowAnnounce.maxRows))),
     ("two-billion-bytes", announced(rows: 3, bytes: 2_000_000_000))]
}

@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 2 + RowAnnounce.payloadBytes else { return 0 }
    let n = Int(data[0]) | Int(data[1]) << 8
    if let said = try? RowAnnounce.decode(from: UnsafeRawPointer(data + 2)),
       (try? ServerTables.check(said, maxRows: maxRows, tables: tables.count, sender: "fuzz", step: 4)) != nil {
        precondition(said.rows <= maxRows && RowCoding.maxBytes(said.rows) <= ServerTables.requestByteLimit(rows: maxRows, specs: tables))
        precondition(said.bytes <= ServerTables.requestByteLimit(rows: maxRows, specs: tables))
    }
    let payload = UnsafeRawBufferPointer(start: data + 2 + RowAnnounce.payloadBytes, count: size - 2 - RowAnnounce.payloadBytes)
    let frame = FrameBuffer(payloadCapacity: payload.count)
    RowRequest.seal(frame, bytes: Array(payload), step: 4, round: 0)
    guard let rows = try? RowRequest.open(frame, length: frame.length, step: 4, round: 0, bytes: payload.count, rows: n,
                                          tables: tables, sender: "fuzz") else { return 0 }
    precondition(rows.count == tables.count && rows.reduce(0) { $0 + $1.count } == n)
    for (t, r) in rows.enumerated() {
        precondition(zip(r, r.dropFirst()).allSatisfy { $0 < $1 } && (r.last ?? 0) < UInt64(tables[t].rows))
    }
    let again = RowRequest.encode(rows)
    let f2 = FrameBuffer(payloadCapacity: again.count)
    RowRequest.seal(f2, bytes: again, step: 4, round: 0)
    let back = try! RowRequest.open(f2, length: f2.length, step: 4, round: 0, bytes: again.count, rows: n, tables: tables, sender: "fuzz")
    precondition(back == rows)
    return 0
}

writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
