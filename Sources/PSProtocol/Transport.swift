import PSSupport

/// A pending send or receive.
public struct TransportRequest {
    public let id: Int
    public let peer: Int
    public let isReceive: Bool
    public init(id: Int, peer: Int, isReceive: Bool) { self.id = id; self.peer = peer; self.isReceive = isReceive }
}

/// A wait that ran out of time: `peer` sent nothing before the deadline.
public struct TransportTimeout: Error {
    public let peer: Int
    public let seconds: Double
    public init(peer: Int, seconds: Double) { self.peer = peer; self.seconds = seconds }
}

/// Point-to-point messages between the ranks of a fixed world. Server and
/// worker logic talk only to this; `MPITransport` (module PSMPI) is the real
/// one, `InProcessTransport` (module PSTestSupport) runs a whole world on
/// threads for fast tests.
///
/// Ownership: `isend` sends `frame.sealed` as it is at the call, `irecv`
/// receives into `frame.whole`. The transport keeps a strong reference to
/// the frame until `waitAll` has completed the request, so a frame can never
/// be freed while the peer still reads or writes it (in optimised builds
/// Swift may end a local's lifetime at its last use, which is what damaged
/// the last parameters before: see docs/architecture.md). The caller must
/// not write a frame with an open send, nor read one with an open receive.
///
/// Ordering: messages from one sender with one tag match receives in the
/// order the receives were posted (MPI's non-overtaking rule); the protocol
/// relies on it, nothing else is ordered.
public protocol Transport: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    func isend(_ frame: FrameBuffer, to peer: Int, tag: Int32) throws -> TransportRequest
    func irecv(_ frame: FrameBuffer, from peer: Int, tag: Int32) throws -> TransportRequest
    /// Requests started and not yet completed by `waitAll`.
    var outstanding: Int { get }
    /// Completes all requests; returns the byte count of each (0 for sends).
    /// Throws TransportTimeout naming a peer still silent at the deadline.
    func waitAll(_ requests: [TransportRequest], timeout: Double) throws -> [Int]
    /// Completes one of `requests` (at least one must be open) and returns
    /// its position in the list and its byte count; the others stay open.
    /// Throws TransportTimeout naming the first request's peer at the deadline.
    func waitAny(_ requests: [TransportRequest], timeout: Double) throws -> (index: Int, count: Int)
}

extension Transport {
    /// Every rank contributes `mine` (same length everywhere) and gets all,
    /// by rank; throws TransportTimeout naming a rank still silent at the
    /// deadline. Made of point-to-point messages, so that it has a deadline
    /// and names a silent rank (MPI's collectives have neither).
    public func allgather(_ mine: [UInt8], timeout: Double) throws -> [[UInt8]] {
        let tag: Int32 = 999
        let peers = (0..<size).filter { $0 != rank }
        let out = FrameBuffer(payloadCapacity: mine.count)
        mine.withUnsafeBytes { if $0.count > 0 { out.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        out.length = mine.count
        let ins = peers.map { _ in FrameBuffer(payloadCapacity: mine.count) }
        var reqs = try zip(peers, ins).map { try irecv($0.1, from: $0.0, tag: tag) }
        reqs += try peers.map { try isend(out, to: $0, tag: tag) }
        let counts = try waitAll(reqs, timeout: timeout)
        var result = Array(repeating: mine, count: size)
        for (i, p) in peers.enumerated() {
            guard counts[i] == mine.count else { throw PSError("rank \(p) sent \(counts[i]) bytes at start-up, expected \(mine.count)") }
            result[p] = Array(UnsafeRawBufferPointer(start: ins[i].raw, count: counts[i]))
        }
        return result
    }
}
