import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch
import PSTestSupport

final class InProcessTrainingReleaseTests: XCTestCase {
    /// Synchronous data parallelism is the computation of one process on the
    /// global batch: W=2 S=2 and W=1 S=1 give the same losses.
    /// Tolerance: 1e-4 relative (only the order of float sums differs).
    func testDataParallelEqualsSingleProcess() throws {
        let c = try mlpConfig()
        let d = syntheticData(c)
        let one = try runInProcess(config: c, servers: 1, workers: 1, data: d)
        let two = try runInProcess(config: c, servers: 2, workers: 2, data: d)
        let l1 = records(one, rank: 0, ServerStepRecord.self).map { $0.loss! }
        let l2 = records(two, rank: 0, ServerStepRecord.self).map { $0.loss! }
        XCTAssertEqual(l1.count, 32)
        XCTAssertEqual(l1.count, l2.count)
        for (i, (a, b)) in zip(l1, l2).enumerated() {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-4 * abs(a), "step \(i): \(a) vs \(b)")
        }
        XCTAssertLessThan(l1.last!, l1.first! * 0.5, "the loss should fall on the synthetic set")
        let acc = records(one, rank: 0, EvalRecord.self).last!.testAccuracy
        XCTAssertGreaterThan(acc, 0.9)
    }

    func testIdenticalRunsGiveIdenticalBits() throws {
        let c = try mlpConfig()
        let d = syntheticData(c)
        let a = try runInProcess(config: c, servers: 2, workers: 3, data: d)
        let b = try runInProcess(config: c, servers: 2, workers: 3, data: d)
        for r in 0..<5 {
            let da = records(a, rank: r, (any DoneRecord).self).first?.paramsDigest
            XCTAssertNotNil(da)
            XCTAssertEqual(da, records(b, rank: r, (any DoneRecord).self).first?.paramsDigest, "rank \(r)")
        }
        // Every worker ends with the same full parameters.
        let w = (2..<5).map { records(a, rank: $0, WorkerDoneRecord.self).first!.paramsDigest }
        XCTAssertEqual(Set(w).count, 1)
        // A different seed changes them.
        var c2 = c
        try c2.apply(override: "train.seed=2")
        let e = try runInProcess(config: c2, servers: 2, workers: 3, data: d)
        XCTAssertNotEqual(records(e, rank: 2, WorkerDoneRecord.self).first!.paramsDigest, w[0])
    }

    func testASilentRankIsNamedAtTheDeadline() throws {
        var c = try mlpConfig()
        try c.apply(override: "run.timeout_seconds=0.5")
        let hub = InProcessHub(size: 2)
        let hellos = [RankHello(role: .server, configHash: 0, buildHash: 0, pid: 0, configLength: 0, host: "", runDir: "", error: "", trainCount: 512),
                      RankHello(role: .worker, configHash: 0, buildHash: 0, pid: 0, configLength: 0, host: "", runDir: "", error: "", trainCount: 512)]
        let ctx = RankContext(config: c, world: World(hellos: hellos), transport: hub.transport(rank: 0), log: nil, say: { _ in })
        let layout = try Model(c.model, capacity: 1).layout
        // Nobody runs rank 1: the server must give up and say who was silent.
        XCTAssertThrowsError(try ServerRole(context: ctx, layout: layout, trainCount: 512).run()) { e in
            XCTAssertTrue("\(e)".contains("worker 0 (rank 1) sent nothing"), "\(e)")
            XCTAssertTrue("\(e)".contains("gradients of step 0"), "\(e)")
        }
    }
}

extension InProcessTrainingReleaseTests {
    /// A cascade: worker 1 never runs, server 0 waits for its gradients and
    /// worker 0 waits for server 0's parameters. Both deadlines fire; both
    /// ranks must name worker 1, the rank that is really silent, never server 0.
    func testACascadeOfTimeoutsNamesTheSilentRank() throws {
        var config = try mlpConfig()
        try config.apply(override: "run.timeout_seconds=1")
        let c = config
        let d = syntheticData(c)
        let dir = NSTemporaryDirectory() + "pstrain-blame-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hub = InProcessHub(size: 3)
        let hellos = (0..<3).map {
            RankHello(role: $0 == 0 ? .server : .worker, configHash: 0, buildHash: 0, pid: 42, configLength: 0, host: "",
                      runDir: dir, error: "", trainCount: d.train.count)
        }
        let world = World(hellos: hellos)
        let layout = try Model(c.model, capacity: 1).layout
        final class Box: @unchecked Sendable { var errors = [String](repeating: "", count: 2); let lock = NSLock() }
        let box = Box()
        let threads = (0..<2).map { r in
            Thread {
                let ctx = RankContext(config: c, world: world, transport: hub.transport(rank: r), log: nil, say: { _ in }, runDir: dir)
                do {
                    if r == 0 { try ServerRole(context: ctx, layout: layout, trainCount: d.train.count).run() }
                    else { try WorkerRole(context: ctx, data: d).run() }
                } catch { box.lock.lock(); box.errors[r] = "\(error)"; box.lock.unlock() }
            }
        }
        for t in threads { t.start() }
        while threads.contains(where: { !$0.isFinished }) { usleep(5000) }
        for (r, e) in box.errors.enumerated() {
            XCTAssertTrue(e.hasPrefix("worker 1 (rank 2) sent nothing for 1 s while server 0 (rank 0) waited for gradients of step 0"), "rank \(r): \(e)")
        }
        XCTAssertTrue(box.errors[1].contains("worker 0 (rank 1) timed out as well, waiting for server 0 (rank 0)"), box.errors[1])
    }
}

final class WorldTests: XCTestCase {
    func hello(_ role: Role, hash: UInt64 = 1, error: String = "") -> RankHello {
        RankHello(role: role, configHash: hash, buildHash: 9, pid: 1, configLength: 0, host: "h", runDir: "r", error: error)
    }

    func testProblemsAreNamed() throws {
        XCTAssertNil(World(hellos: [hello(.server), hello(.worker)]).problem(configs: nil, expectWorkers: 0, expectServers: 0))
        XCTAssertTrue(World(hellos: [hello(.worker), hello(.worker)]).problem(configs: nil, expectWorkers: 0, expectServers: 0)!.contains("no server"))
        XCTAssertTrue(World(hellos: [hello(.server)]).problem(configs: nil, expectWorkers: 0, expectServers: 0)!.contains("no worker"))
        let failed = World(hellos: [hello(.server), hello(.worker, error: "data set file not found: /x"), hello(.worker, error: "data set file not found: /x")])
        XCTAssertEqual(failed.problem(configs: nil, expectWorkers: 0, expectServers: 0),
                       "worker 0 (rank 1), worker 1 (rank 2): data set file not found: /x")
        var other = Config()
        try other.apply(override: "train.lr=0.5")
        let w = World(hellos: [hello(.server, hash: Config().hash), hello(.worker, hash: other.hash)])
        let m = w.problem(configs: [Config(), other], expectWorkers: 0, expectServers: 0)!
        XCTAssertTrue(m.contains("worker 0 (rank 1): train.lr = 0.5 (server 0 (rank 0) has 0.05)"), m)
        let sizes = World(hellos: [hello(.server), hello(.worker)]).problem(configs: nil, expectWorkers: 2, expectServers: 1)!
        XCTAssertTrue(sizes.contains("expects 1 server(s) and 2 worker(s)"), sizes)
    }

    func testHelloRoundTrip() {
        let h = RankHello(role: .worker, configHash: 0xdead_beef, buildHash: 42, pid: 77, configLength: 900, host: "node-1",
                          runDir: "/runs/a", error: String(repeating: "e", count: 1000), trainCount: 60000)
        let d = RankHello.decode(h.encode())!
        XCTAssertEqual(d.configHash, 0xdead_beef); XCTAssertEqual(d.host, "node-1"); XCTAssertEqual(d.trainCount, 60000)
        XCTAssertEqual(d.error.count, 478, "long errors are cut, not overflowing")
    }

    /// A run directory that would be cut in the hello is refused; one that
    /// fits travels whole. The limit is in UTF-8 bytes, not characters.
    func testRunDirThatDoesNotFitIsRefused() throws {
        XCTAssertEqual(RankHello.maxRunDirBytes, 414)
        let fits = "/" + String(repeating: "d", count: RankHello.maxRunDirBytes - 1)
        XCTAssertNoThrow(try RankHello.checkRunDir(fits))
        let h = RankHello(role: .server, configHash: 1, buildHash: 2, pid: 3, configLength: 4, host: "h", runDir: fits, error: "")
        XCTAssertEqual(RankHello.decode(h.encode())!.runDir, fits)
        for long in [fits + "x", "/" + String(repeating: "é", count: 207)] {   // 415 bytes; 415 bytes in 208 characters
            XCTAssertThrowsError(try RankHello.checkRunDir(long)) { e in
                XCTAssertEqual("\(e)", "the run directory path is 415 bytes long (UTF-8), more than the 414 bytes the ranks can exchange at start-up; "
                               + "choose a shorter path: \(long)")
            }
        }
    }
}
