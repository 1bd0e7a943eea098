import Foundation
import PSSupport
import PSNumerics
import PSProtocol

// ---------------------------------------------------------------------------
// The in-process transport: a whole world of ranks as threads of one
// process, for tests (and any tool that runs a world without MPI). It is
// kept out of PSProtocol, as swift-nio keeps EmbeddedChannel out of NIOCore
// in NIOEmbedded: the executables never link it.
// ---------------------------------------------------------------------------

/// How an in-process world delivers messages.
public enum InProcessMode {
    /// Sends copy the bytes at `isend` (as MPI's eager protocol does) and
    /// complete at once.
    case eager
    /// Seeded adversary. No send is copied at `isend`: each message is moved
    /// later, either by the receiver while it waits for it (as Open MPI's
    /// shared-memory single-copy rendezvous does) or by the sender while it
    /// waits for anything (as a TCP rendezvous without a progress thread
    /// does), chosen at random per message; a send completes only once its
    /// bytes were moved, and `waitAll` completes its requests late and in a
    /// shuffled order. A receive buffer holds a poison pattern while its
    /// request is open. Every misuse is recorded in `violations`: a send
    /// buffer changed or released between `isend` and the move, a receive
    /// buffer written by its owner while the receive was open, and requests
    /// still open when a rank finished (`InProcessTransport.finish`).
    case adversarial(seed: UInt64)
}

/// Mailboxes shared by the ranks of one in-process world. As in MPI,
/// messages from one sender with one tag match receives in the order the
/// receives were posted.
public final class InProcessHub: @unchecked Sendable {
    public let size: Int
    public let mode: InProcessMode
    let cond = NSCondition()
    struct Key: Hashable { let dst: Int, src: Int, tag: Int32 }
    /// Eager: message bytes by (destination, source, tag) and send number, until taken.
    var mail: [Key: [Int: [UInt8]]] = [:]
    /// Adversarial: sends not yet completed, by key and send number.
    /// A send not yet completed; `frame` keeps its bytes alive even if the sending rank has gone.
    struct Slot { let frame: FrameBuffer; let bytes: UnsafeRawBufferPointer; let hash: UInt64; let senderMoves: Bool; var moved = false }
    var slots: [Key: [Int: Slot]] = [:]
    /// Adversarial: posted receives, by key and receive number, until completed.
    /// A posted receive; `frame` keeps its buffer alive even if the receiving rank has gone.
    struct Posted { let frame: FrameBuffer; let buffer: UnsafeMutableRawBufferPointer; var count: Int? }
    var posted: [Key: [Int: Posted]] = [:]
    var sent: [Key: Int] = [:]
    var violationList: [String] = []

    public init(size: Int, mode: InProcessMode = .eager) { self.size = size; self.mode = mode }

    public func transport(rank: Int) -> InProcessTransport { InProcessTransport(hub: self, rank: rank) }

    /// What the adversary caught, in the order it happened.
    public var violations: [String] {
        cond.lock(); defer { cond.unlock() }
        return violationList
    }

    /// Moves message `seq` of `key` into its posted receive, checking both
    /// buffers on the way. Called with the lock held.
    func move(_ key: Key, _ seq: Int) throws {
        guard let slot = slots[key]?[seq], !slot.moved, let recv = posted[key]?[seq], recv.count == nil else { return }
        let buf = recv.buffer
        if let b = buf.baseAddress, (0..<buf.count).contains(where: { b.load(fromByteOffset: $0, as: UInt8.self) != InProcessTransport.poison }) {
            violationList.append("rank \(key.dst) wrote its receive buffer (from rank \(key.src), tag \(key.tag), receive #\(seq)) before the receive completed")
        }
        if xxh64(slot.bytes) != slot.hash {
            violationList.append("rank \(key.src) changed or released its send buffer (to rank \(key.dst), tag \(key.tag), send #\(seq), \(slot.bytes.count) bytes) before the send completed")
        }
        guard slot.bytes.count <= buf.count else {
            throw PSError("message of \(slot.bytes.count) bytes from rank \(key.src) does not fit the \(buf.count)-byte buffer")
        }
        if slot.bytes.count > 0 { buf.baseAddress!.copyMemory(from: slot.bytes.baseAddress!, byteCount: slot.bytes.count) }
        slots[key]![seq]!.moved = true
        posted[key]![seq]!.count = slot.bytes.count
        cond.broadcast()
    }
}

/// A Transport whose ranks are threads of one process.
public final class InProcessTransport: Transport {
    let hub: InProcessHub
    public let rank: Int
    public var size: Int { hub.size }
    var nextID = 0
    struct Pending {
        let key: InProcessHub.Key
        let seq: Int
        let isReceive: Bool
        /// Held until the request completes (see Transport).
        let frame: FrameBuffer
    }
    var pending: [Int: Pending] = [:]
    /// Receives posted per (this rank, source, tag).
    var postedCount: [InProcessHub.Key: Int] = [:]
    var rng: UInt64
    /// What an open receive's buffer holds in adversarial mode.
    public static let poison: UInt8 = 0xA5

    init(hub: InProcessHub, rank: Int) {
        self.hub = hub; self.rank = rank
        if case .adversarial(let seed) = hub.mode { rng = CounterRNG.mix(seed ^ UInt64(rank) &* 0x9E37_79B9) } else { rng = 0 }
    }

    var adversarial: Bool { if case .adversarial = hub.mode { return true }; return false }

    func random(_ n: Int) -> Int {
        rng = CounterRNG.mix(rng)
        return Int(rng % UInt64(max(n, 1)))
    }

    /// Requests started and not yet completed by `waitAll`.
    public var outstanding: Int { pending.count }

    public func isend(_ frame: FrameBuffer, to peer: Int, tag: Int32) throws -> TransportRequest {
        let buffer = frame.sealed
        let key = InProcessHub.Key(dst: peer, src: rank, tag: tag)
        let senderMoves = adversarial && random(2) == 0
        hub.cond.lock()
        let n = hub.sent[key, default: 0]
        hub.sent[key] = n + 1
        if adversarial {
            hub.slots[key, default: [:]][n] = .init(frame: frame, bytes: buffer, hash: xxh64(buffer), senderMoves: senderMoves)
        } else {
            hub.mail[key, default: [:]][n] = [UInt8](buffer)
        }
        hub.cond.broadcast()
        hub.cond.unlock()
        nextID += 1
        if adversarial { pending[nextID] = Pending(key: key, seq: n, isReceive: false, frame: frame) }
        return TransportRequest(id: nextID, peer: peer, isReceive: false)
    }

    public func irecv(_ frame: FrameBuffer, from peer: Int, tag: Int32) throws -> TransportRequest {
        let buffer = frame.whole
        nextID += 1
        let key = InProcessHub.Key(dst: rank, src: peer, tag: tag)
        let seq = postedCount[key, default: 0]
        postedCount[key] = seq + 1
        if adversarial {
            if let b = buffer.baseAddress { b.initializeMemory(as: UInt8.self, repeating: Self.poison, count: buffer.count) }
            hub.cond.lock()
            hub.posted[key, default: [:]][seq] = .init(frame: frame, buffer: buffer, count: nil)
            hub.cond.broadcast()
            hub.cond.unlock()
        }
        pending[nextID] = Pending(key: key, seq: seq, isReceive: true, frame: frame)
        return TransportRequest(id: nextID, peer: peer, isReceive: true)
    }

    /// Tries to complete one request without blocking; its byte count when
    /// done. Called with the hub locked.
    func tryComplete(_ id: Int) throws -> Int? {
        guard let p = pending[id] else { return 0 }   // completed earlier, or an eager send
        if adversarial {
            if p.isReceive {
                if let slot = hub.slots[p.key]?[p.seq], !slot.senderMoves { try hub.move(p.key, p.seq) }
                guard let n = hub.posted[p.key]?[p.seq]?.count else { return nil }
                hub.posted[p.key]![p.seq] = nil
                pending[id] = nil
                return n
            }
            guard hub.slots[p.key]?[p.seq]?.moved == true else { return nil }
            hub.slots[p.key]![p.seq] = nil
            pending[id] = nil
            return 0
        }
        let buf = p.frame.whole
        guard let msg = hub.mail[p.key]?[p.seq] else { return nil }
        hub.mail[p.key]![p.seq] = nil
        guard msg.count <= buf.count else {
            throw PSError("message of \(msg.count) bytes from rank \(p.key.src) does not fit the \(buf.count)-byte buffer")
        }
        msg.withUnsafeBytes { if $0.count > 0 { buf.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        pending[id] = nil
        return msg.count
    }

    /// The sender's side of progress: while it waits for anything, it moves
    /// those of its open sends that it moves itself and whose receive is
    /// posted (now and then leaving one for later). Called with the hub locked.
    func progressSends() throws {
        for p in pending.values where !p.isReceive {
            guard hub.slots[p.key]?[p.seq]?.senderMoves == true, random(4) != 0 else { continue }
            try hub.move(p.key, p.seq)
        }
    }

    public func waitAll(_ requests: [TransportRequest], timeout: Double) throws -> [Int] {
        let deadline = Date().addingTimeInterval(timeout)
        var counts = [Int](repeating: 0, count: requests.count)
        var open = Array(requests.indices)
        hub.cond.lock()
        defer { hub.cond.unlock() }
        while !open.isEmpty {
            let late = Date() >= deadline
            if adversarial {
                try progressSends()
                // Shuffled, and now and then a completable request is left for later (never at the deadline).
                for i in stride(from: open.count - 1, to: 0, by: -1) { open.swapAt(i, random(i + 1)) }
            }
            var still: [Int] = []
            for i in open {
                if adversarial && !late && random(4) == 0 { still.append(i); continue }
                if let n = try tryComplete(requests[i].id) { counts[i] = n } else { still.append(i) }
            }
            // Completing an adversarial request frees its peer's send; an eager one concerns nobody else.
            if adversarial && still.count < open.count { hub.cond.broadcast() }
            open = still
            if open.isEmpty { break }
            if late { throw TransportTimeout(peer: requests[open[0]].peer, seconds: timeout) }
            let nap = adversarial ? Date().addingTimeInterval(Double(1 + random(200)) * 1e-6) : deadline
            _ = hub.cond.wait(until: min(nap, deadline))
        }
        return counts
    }

    public func waitAny(_ requests: [TransportRequest], timeout: Double) throws -> (index: Int, count: Int) {
        precondition(!requests.isEmpty, "waitAny of no request")
        let deadline = Date().addingTimeInterval(timeout)
        var order = Array(requests.indices)
        hub.cond.lock()
        defer { hub.cond.unlock() }
        while true {
            let late = Date() >= deadline
            if adversarial {
                try progressSends()
                for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, random(i + 1)) }
            }
            for i in order {
                if adversarial && !late && random(4) == 0 { continue }
                if let n = try tryComplete(requests[i].id) {
                    if adversarial { hub.cond.broadcast() }
                    return (i, n)
                }
            }
            if late { throw TransportTimeout(peer: requests[0].peer, seconds: timeout) }
            let nap = adversarial ? Date().addingTimeInterval(Double(1 + random(200)) * 1e-6) : deadline
            _ = hub.cond.wait(until: min(nap, deadline))
        }
    }

    /// At the end of a rank's work: every request must have completed, or
    /// its buffer could be released while the peer still reads or writes it.
    public func finish(_ who: String) {
        guard !pending.isEmpty else { return }
        hub.cond.lock()
        hub.violationList.append("\(who) finished with \(pending.count) request(s) still open: " +
            pending.values.prefix(4).map { $0.isReceive ? "receive from rank \($0.key.src) tag \($0.key.tag)" : "send to rank \($0.key.dst) tag \($0.key.tag)" }
            .joined(separator: ", "))
        hub.cond.unlock()
    }
}
