import PSNumerics

/// Worker -> a server that holds table rows, before each row request: how
/// many rows it asks for and the request's size in bytes (the server then
/// posts a receive of exactly that size), and during evaluation the number
/// of rounds the evaluation takes. Payload: three f64.
public struct RowAnnounce: ControlMessage, Equatable {
    public static let kind = FrameKind.rowAnnounce
    public static let payloadBytes = 24
    public var rows: Int
    public var bytes: Int
    /// Evaluation: the rounds of row requests the worker makes (0 in training).
    public var rounds: Int

    public init(rows: Int, bytes: Int, rounds: Int = 0) { self.rows = rows; self.bytes = bytes; self.rounds = rounds }

    /// The most rows (and so bytes) one request may carry: 2^28.
    public static let maxRows = 1 << 28

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(Double(rows), at: 0); p.storeF64(Double(bytes), at: 1); p.storeF64(Double(rounds), at: 2)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> RowAnnounce {
        let rows = p.loadF64(at: 0), bytes = p.loadF64(at: 1), rounds = p.loadF64(at: 2)
        func whole(_ v: Double, _ hi: Int) -> Bool { v >= 0 && v <= Double(hi) && v == v.rounded() }
        // The request can take no more than 10 bytes a row plus a count per table (at most 4096 tables).
        guard whole(rows, maxRows), whole(bytes, RowCoding.maxBytes(Int(rows)) + 10 * 4096), whole(rounds, Int(Int32.max)) else {
            throw FrameError.impossible(message: "row announcement", problem: "claims \(rows) rows in \(bytes) bytes over \(rounds) rounds")
        }
        return RowAnnounce(rows: Int(rows), bytes: Int(bytes), rounds: Int(rounds))
    }
}
