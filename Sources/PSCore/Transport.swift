import Foundation

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
/// one, `InProcessTransport` runs a whole world on threads for fast tests.
///
/// Buffers passed to `isend`/`irecv` must stay valid, and a send buffer
/// unchanged, until `waitAll` has completed the request.
public protocol Transport: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    func isend(_ buffer: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> TransportRequest
    func irecv(_ buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> TransportRequest
    /// Completes all requests; returns the byte count of each (0 for sends).
    /// Throws TransportTimeout naming a peer still silent at the deadline.
    func waitAll(_ requests: [TransportRequest], timeout: Double) throws -> [Int]
    /// Every rank contributes `mine` (same length everywhere) and gets all, by rank.
    func allgather(_ mine: [UInt8]) throws -> [[UInt8]]
}

// MARK: - In-process transport

/// Mailboxes shared by the ranks of one in-process world. As in MPI,
/// messages from one sender with one tag match receives in the order the
/// receives were posted.
public final class InProcessHub: @unchecked Sendable {
    public let size: Int
    let cond = NSCondition()
    struct Key: Hashable { let dst: Int, src: Int, tag: Int32 }
    /// Messages by (destination, source, tag) and arrival number, until taken.
    var mail: [Key: [Int: [UInt8]]] = [:]
    var arrived: [Key: Int] = [:]

    public init(size: Int) { self.size = size }

    public func transport(rank: Int) -> InProcessTransport { InProcessTransport(hub: self, rank: rank) }
}

/// A Transport whose ranks are threads of one process. Sends copy eagerly.
public final class InProcessTransport: Transport {
    let hub: InProcessHub
    public let rank: Int
    public var size: Int { hub.size }
    var nextID = 0
    /// Posted receives: buffer, peer, tag, and their number among receives of that peer and tag.
    var pendingRecv: [Int: (UnsafeMutableRawBufferPointer, Int, Int32, Int)] = [:]
    var posted: [InProcessHub.Key: Int] = [:]

    init(hub: InProcessHub, rank: Int) { self.hub = hub; self.rank = rank }

    public func isend(_ buffer: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> TransportRequest {
        let bytes = [UInt8](buffer)
        let key = InProcessHub.Key(dst: peer, src: rank, tag: tag)
        hub.cond.lock()
        let n = hub.arrived[key, default: 0]
        hub.mail[key, default: [:]][n] = bytes
        hub.arrived[key] = n + 1
        hub.cond.broadcast()
        hub.cond.unlock()
        nextID += 1
        return TransportRequest(id: nextID, peer: peer, isReceive: false)
    }

    public func irecv(_ buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> TransportRequest {
        nextID += 1
        let key = InProcessHub.Key(dst: rank, src: peer, tag: tag)
        let seq = posted[key, default: 0]
        posted[key] = seq + 1
        pendingRecv[nextID] = (buffer, peer, tag, seq)
        return TransportRequest(id: nextID, peer: peer, isReceive: true)
    }

    public func waitAll(_ requests: [TransportRequest], timeout: Double) throws -> [Int] {
        let deadline = Date().addingTimeInterval(timeout)
        var counts: [Int] = []
        for r in requests {
            guard r.isReceive else { counts.append(0); continue }
            guard let (buf, peer, tag, seq) = pendingRecv.removeValue(forKey: r.id) else { counts.append(0); continue }
            let key = InProcessHub.Key(dst: rank, src: peer, tag: tag)
            hub.cond.lock()
            while hub.mail[key]?[seq] == nil {
                if !hub.cond.wait(until: deadline) {
                    hub.cond.unlock()
                    throw TransportTimeout(peer: peer, seconds: timeout)
                }
            }
            let msg = hub.mail[key]!.removeValue(forKey: seq)!
            hub.cond.unlock()
            guard msg.count <= buf.count else {
                throw PSError("message of \(msg.count) bytes from rank \(peer) does not fit the \(buf.count)-byte buffer")
            }
            msg.withUnsafeBytes { buf.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: msg.count) }
            counts.append(msg.count)
        }
        return counts
    }

    public func allgather(_ mine: [UInt8]) throws -> [[UInt8]] {
        let tag: Int32 = 999
        for p in 0..<size where p != rank { _ = try mine.withUnsafeBytes { try isend($0, to: p, tag: tag) } }
        var out = Array(repeating: [UInt8](), count: size)
        out[rank] = mine
        for p in 0..<size where p != rank {
            var buf = [UInt8](repeating: 0, count: mine.count)
            let n = try buf.withUnsafeMutableBytes { b -> Int in
                let r = try irecv(b, from: p, tag: tag)
                return try waitAll([r], timeout: 60)[0]
            }
            out[p] = Array(buf[0..<n])
        }
        return out
    }
}
