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

/// Whole worlds over the adversarial in-process transport: sends are read
/// only when the matching receive completes, requests complete late and in
/// shuffled order, and any buffer written or released before its request
/// completed is reported (InProcessMode.adversarial). The runs must also
/// reach the same bits as the eager transport.
final class AdversarialTransportReleaseTests: XCTestCase {
    func config(epochs: Int = 2, extra: [String] = []) throws -> Config {
        var c = Config()
        for o in ["data.kind=synthetic", "data.synthetic_train=384", "data.synthetic_test=96", "model.input=48",
                  "model.layers=[{type=\"dense\",units=40},{type=\"relu\"},{type=\"dense\",units=10}]",
                  "train.batch_size=48", "train.epochs=\(epochs)", "train.lr=0.05", "run.chunk_elements=300",
                  "run.timeout_seconds=60", "checkpoint.every_steps=5"] + extra {
            try c.apply(override: o)
        }
        return c
    }

    func digests(_ logs: [LogFile], ranks: Int) -> [String] {
        (0..<ranks).map { records(logs, rank: $0, (any DoneRecord).self).first?.paramsDigest ?? "missing" }
    }

    /// Many (W, S) shapes up to W=16 S=8, with checkpoints, evaluation and
    /// shutdown, against the eager transport's bits.
    func testWorldShapesUnderTheAdversary() throws {
        let shapes = [(1, 1), (2, 1), (3, 2), (4, 4), (8, 2), (8, 4), (12, 4), (5, 8), (16, 8)]
        for (i, (w, s)) in shapes.enumerated() {
            let c = try config(epochs: 1)
            let d = syntheticData(c, seed: 3)
            let eager = try runInProcess(config: c, servers: s, workers: w, data: d, checkpoints: true)
            let adv = try runInProcess(config: c, servers: s, workers: w, data: d, mode: .adversarial(seed: UInt64(100 + i)), checkpoints: true)
            XCTAssertEqual(digests(adv, ranks: s + w), digests(eager, ranks: s + w), "W=\(w) S=\(s): final parameters")
            XCTAssertFalse(digests(adv, ranks: s + w).contains("missing"), "W=\(w) S=\(s)")
            XCTAssertEqual(records(adv, rank: 0, EvalRecord.self).count, 1, "W=\(w) S=\(s): one evaluation")
            XCTAssertEqual(records(adv, rank: 0, ServerCheckpointRecord.self).count, 2, "W=\(w) S=\(s): checkpoints at 5 and the end")
        }
    }

    /// Mixed precision with top-k and zstd (compressed frames, the residual)
    /// under several seeds.
    func testCompressedHalfPrecisionUnderTheAdversary() throws {
        let c = try config(extra: ["train.precision=fp16", "compression.topk=0.1", "compression.adaptive=false"])
        let d = syntheticData(c, seed: 5)
        let eager = try runInProcess(config: c, servers: 3, workers: 6, data: d, checkpoints: true)
        for seed in 1...3 as ClosedRange<UInt64> {
            let adv = try runInProcess(config: c, servers: 3, workers: 6, data: d, mode: .adversarial(seed: seed), checkpoints: true)
            XCTAssertEqual(digests(adv, ranks: 9), digests(eager, ranks: 9), "seed \(seed)")
        }
    }

    /// The adversary itself: a send buffer changed before the send completed,
    /// and a request left open, are both reported, whichever side moves the bytes.
    func testTheAdversaryCatchesMisuse() throws {
        for seed in 1...8 as ClosedRange<UInt64> {
            let hub = InProcessHub(size: 2, mode: .adversarial(seed: seed))
            let a = hub.transport(rank: 0), b = hub.transport(rank: 1)
            let out = FrameBuffer(payloadCapacity: 64), into = FrameBuffer(payloadCapacity: 64)
            out.raw.initializeMemory(as: UInt8.self, repeating: 1, count: out.capacity)
            out.length = 100
            let s = try a.isend(out, to: 1, tag: 5)
            out.raw.storeBytes(of: 9, toByteOffset: 3, as: UInt8.self)   // written while the send is open
            let r = try b.irecv(into, from: 0, tag: 5)
            XCTAssertEqual(into.raw.load(as: UInt8.self), InProcessTransport.poison, "an open receive holds poison")
            let sender = Thread { _ = try? a.waitAll([s], timeout: 5) }
            sender.start()
            XCTAssertEqual(try b.waitAll([r], timeout: 5), [100])
            while !sender.isFinished { usleep(1000) }
            XCTAssertEqual(a.outstanding, 0, "seed \(seed)")
            XCTAssertEqual(hub.violations.count, 1, "seed \(seed)")
            XCTAssertTrue(hub.violations.first?.contains("rank 0 changed or released its send buffer") ?? false, "\(hub.violations)")
            _ = try a.isend(out, to: 1, tag: 5)
            a.finish("server 0")
            XCTAssertEqual(hub.violations.count, 2)
            XCTAssertTrue(hub.violations.last?.contains("server 0 finished with 1 request(s) still open") ?? false, "\(hub.violations)")
        }
    }

    /// The defect behind the damaged last parameters: a frame whose owner let
    /// go of it right after `isend`. The transport holds it until the send
    /// completes, so the peer gets the bytes as they were sealed (before,
    /// the frame was freed and scribbled over while the message was in flight).
    func testAFrameDroppedAfterIsendStillArrivesIntact() throws {
        for seed in 1...8 as ClosedRange<UInt64> {
            let hub = InProcessHub(size: 2, mode: .adversarial(seed: seed))
            let a = hub.transport(rank: 0), b = hub.transport(rank: 1)
            var s: TransportRequest!
            do {
                let out = FrameBuffer(payloadCapacity: 4096)
                out.payload.initializeMemory(as: UInt8.self, repeating: 7, count: 4096)
                out.length = Frame.seal(FrameHeader(kind: .parameterPiece, step: 3, index: 0, elementType: .f32, rawLength: 4096, encodedLength: 4096),
                                        buffer: out.raw)
                s = try a.isend(out, to: 1, tag: 1)
            }   // the only reference the sender's code had is gone
            let into = FrameBuffer(payloadCapacity: 4096)
            let r = try b.irecv(into, from: 0, tag: 1)
            let sent = s!
            let sender = Thread { _ = try? a.waitAll([sent], timeout: 5) }
            sender.start()
            let n = try b.waitAll([r], timeout: 5)[0]
            while !sender.isFinished { usleep(1000) }
            XCTAssertNoThrow(try Frame.open(buffer: into.raw, length: n,
                                            expect: FrameExpectation(kind: .parameterPiece, step: 3, index: 0, elementType: .f32, rawLength: 4096),
                                            sender: "rank 0"), "seed \(seed)")
            XCTAssertEqual(hub.violations, [], "seed \(seed)")
        }
    }
}

final class AdversarialDefaultShapeReleaseTests: XCTestCase {
    /// The default model's shape (784-256-128-10, chunk 65536), where S=4
    /// makes each of servers 0-2 send one 235 KB piece.
    func testDefaultModelW8S4() throws {
        var c = Config()
        for o in ["data.kind=synthetic", "data.synthetic_train=384", "data.synthetic_test=64", "train.epochs=1",
                  "run.timeout_seconds=60", "train.batch_size=128", "checkpoint.every_steps=2"] { try c.apply(override: o) }
        let d = syntheticData(c, seed: 3)
        for seed in 1...2 as ClosedRange<UInt64> {
            let adv = try runInProcess(config: c, servers: 4, workers: 8, data: d, mode: .adversarial(seed: seed), checkpoints: true)
            XCTAssertEqual(records(adv, rank: 0, ServerDoneRecord.self).count, 1)
        }
    }
}
