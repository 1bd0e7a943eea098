import CMPI
import CPSKernels
import Foundation
import PSProtocol

/// An Open MPI call that failed: the function and Open MPI's own words.
public struct MPIError: Error, CustomStringConvertible {
    public let function: String
    public let code: Int32
    public var description: String {
        var buf = [CChar](repeating: 0, count: Int(pst_mpi_max_error_string()) + 1)
        var len: Int32 = 0
        MPI_Error_string(code, &buf, &len)
        return "\(function) failed (code \(code)): \(String(cString: buf))"
    }
}

/// A message larger than one MPI call can carry (2^31 - 1 bytes).
public struct MessageTooLarge: Error, CustomStringConvertible {
    public let function: String
    public let peer: Int
    public let bytes: Int
    public var description: String {
        "\(function) with rank \(peer): \(bytes) bytes is more than one MPI message carries (2147483647)"
    }
}

@inline(__always)
func check(_ rc: Int32, _ function: String) throws {
    if rc != MPI_SUCCESS { throw MPIError(function: function, code: rc) }
}

/// The Transport over Open MPI point-to-point messages on MPI_COMM_WORLD.
///
/// Waiting polls MPI_Test. Between polls a waiting rank by default calls
/// sched_yield, so that on a machine where servers and workers share cores
/// the ranks that compute get the core while a reply is microseconds away
/// (`run.poll`; docs/benchmarks.md has the measurements behind the default).
public final class MPITransport: Transport {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm?
    /// Open requests, each with the frame it reads or writes: the frame
    /// stays alive until MPI is done with it (see Transport).
    var requests: [Int: (request: MPI_Request?, frame: FrameBuffer)] = [:]
    var nextID = 0
    /// How to wait between polls.
    public enum Poll: String { case yield, spin, sleep }
    public var poll = Poll.yield
    /// The nap of `.sleep`.
    public var napNanoseconds = 20_000

    /// Initialises MPI (once per process). Never call this inside a test
    /// runner: MPI_Init forks daemons that can hang it (MACHINE-FACTS.md).
    public static func initialize() throws -> MPITransport {
        var provided: Int32 = 0
        var argc: Int32 = 0
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        try check(MPI_Init_thread(&argc, &argv, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread")
        let comm = pst_mpi_comm_world()
        try check(MPI_Comm_set_errhandler(comm, pst_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        _ = pst_set_timer_slack_ns(1000)
        return MPITransport(rank: Int(r), size: Int(s), comm: comm)
    }

    init(rank: Int, size: Int, comm: MPI_Comm?) {
        self.rank = rank; self.size = size; self.comm = comm
    }

    public func finalize() { MPI_Finalize() }

    public var outstanding: Int { requests.count }
    /// The frame kinds of the open requests (as their frames say: sends are sealed), for the shutdown message.
    public var outstandingKinds: String {
        Dictionary(grouping: requests.values.map { Int($0.frame.raw.load(fromByteOffset: 6, as: UInt8.self)) }, by: { $0 })
            .map { "kind \($0.key): \($0.value.count)" }.sorted().joined(separator: ", ")
    }

    /// Starts a non-blocking call and keeps its request, and its frame, until waitAll completes it.
    func start(_ name: String, peer: Int, isReceive: Bool, frame: FrameBuffer,
               _ call: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws -> TransportRequest {
        var req: MPI_Request? = pst_mpi_request_null()
        try check(call(&req), name)
        nextID += 1
        requests[nextID] = (req, frame)
        return TransportRequest(id: nextID, peer: peer, isReceive: isReceive)
    }

    /// An MPI count for `bytes`: never a trap on a size beyond Int32 (a
    /// crafted announcement could ask for one), an error naming the peer.
    static func count(_ bytes: Int, _ function: String, peer: Int) throws -> Int32 {
        guard let n = Int32(exactly: bytes) else { throw MessageTooLarge(function: function, peer: peer, bytes: bytes) }
        return n
    }

    public func isend(_ frame: FrameBuffer, to peer: Int, tag: Int32) throws -> TransportRequest {
        let buffer = frame.sealed
        let n = try Self.count(buffer.count, "MPI_Isend", peer: peer)
        return try start("MPI_Isend", peer: peer, isReceive: false, frame: frame) {
            MPI_Isend(buffer.baseAddress, n, pst_mpi_byte(), Int32(peer), tag, comm, $0)
        }
    }

    public func irecv(_ frame: FrameBuffer, from peer: Int, tag: Int32) throws -> TransportRequest {
        let buffer = frame.whole
        let n = try Self.count(buffer.count, "MPI_Irecv", peer: peer)
        return try start("MPI_Irecv", peer: peer, isReceive: true, frame: frame) {
            MPI_Irecv(buffer.baseAddress, n, pst_mpi_byte(), Int32(peer), tag, comm, $0)
        }
    }

    public func waitAll(_ reqs: [TransportRequest], timeout: Double) throws -> [Int] {
        var counts = [Int](repeating: 0, count: reqs.count)
        var open = Array(reqs.indices)
        let start = Self.clock()
        while !open.isEmpty {
            var still: [Int] = []
            for i in open {
                if let n = try test(reqs[i]) { counts[i] = n } else { still.append(i) }
            }
            open = still
            if open.isEmpty { break }
            let waited = Self.clock() - start
            if waited > timeout { throw TransportTimeout(peer: reqs[open[0]].peer, seconds: timeout) }
            pause(waited: waited)
        }
        return counts
    }

    public func waitAny(_ reqs: [TransportRequest], timeout: Double) throws -> (index: Int, count: Int) {
        precondition(!reqs.isEmpty, "waitAny of no request")
        let start = Self.clock()
        while true {
            for (i, r) in reqs.enumerated() {
                if let n = try test(r) { return (i, n) }
            }
            let waited = Self.clock() - start
            if waited > timeout { throw TransportTimeout(peer: reqs[0].peer, seconds: timeout) }
            pause(waited: waited)
        }
    }

    /// MPI_Test of one request: its byte count (0 for a send, or one
    /// completed before) when it is complete, nil while it is open.
    func test(_ r: TransportRequest) throws -> Int? {
        guard let entry = requests[r.id] else { return 0 }
        var req = entry.request
        var flag: Int32 = 0
        var status = MPI_Status()
        try check(MPI_Test(&req, &flag, &status), "MPI_Test")
        guard flag != 0 else {
            requests[r.id] = (req, entry.frame)
            return nil
        }
        requests[r.id] = nil
        guard r.isReceive else { return 0 }
        if status.MPI_ERROR != MPI_SUCCESS && status.MPI_ERROR != 0 {
            throw MPIError(function: "MPI_Irecv from rank \(r.peer)", code: status.MPI_ERROR)
        }
        var n: Int32 = 0
        try check(MPI_Get_count(&status, pst_mpi_byte(), &n), "MPI_Get_count")
        return Int(n)
    }

    /// Between polls, as `poll` says, `waited` seconds into a wait. A
    /// `.sleep` nap is `napNanoseconds` for the first millisecond, then a
    /// tenth of the wait so far, at most 250 us: every wake-up takes a few
    /// microseconds of the core from whoever computes there, and a rank
    /// that waits for most of a step (a server waiting for the next
    /// gradients) would otherwise wake 50,000 times a second. The message
    /// is seen at most a tenth of the wait (or 250 us) late.
    func pause(waited: Double = 0) {
        switch poll {
        case .yield: sched_yield()
        case .spin: break
        case .sleep:
            let nap = waited < 0.001 ? napNanoseconds : max(napNanoseconds, min(250_000, Int(waited * 1e8)))
            var ts = timespec(tv_sec: 0, tv_nsec: nap)
            nanosleep(&ts, nil)
        }
    }

    static func clock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
