import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSConfig
@testable import PSProtocol
@testable import PSRunLog
import PSTestSupport

/// Gradient accumulation: train.accumulate = N sends one push per N
/// microbatches, and the result is bit-identical to a run with an N times
/// larger batch cut into the same microbatches (train.microbatch).
final class AccumulationReleaseTests: XCTestCase {
    func config(_ extra: [String]) throws -> Config {
        var c = Config()
        try c.apply(overrides: ["data.kind=synthetic", "data.synthetic_train=1024", "data.synthetic_test=256", "model.input=[1, 8, 8]",
                                "model.layers=[{type=\"conv2d\",channels=3,kernel=3,padding=1},{type=\"batchnorm\"},{type=\"relu\"},{type=\"flatten\"},"
                                  + "{type=\"dropout\",p=0.2},{type=\"dense\",units=10}]",
                                "train.epochs=2", "train.lr=0.05"] + extra)
        return c
    }

    func run(_ c: Config, workers: Int) throws -> [LogFile] {
        try runInProcess(config: c, servers: 2, workers: workers, data: syntheticData(c))
    }

    func digests(_ logs: [LogFile]) -> [String] {
        logs.indices.compactMap { records(logs, rank: $0, (any DoneRecord).self).first?.paramsDigest }
    }

    func testAccumulationIsALargerBatchBitForBit() throws {
        // W=2: each worker's slice of 4 x 32 = 128 rows is 64 rows, in 4 microbatches of 16.
        let acc = try run(try config(["train.batch_size=32", "train.accumulate=4"]), workers: 2)
        let big = try run(try config(["train.batch_size=128", "train.microbatch=16"]), workers: 2)
        XCTAssertEqual(records(acc, rank: 2, WorkerStartRecord.self).first?.microbatch, 16)
        let steps = records(acc, rank: 0, ServerStepRecord.self)
        XCTAssertEqual(steps.count, 2 * (1024 / 128), "one step (one push) per 4 microbatches")
        XCTAssertEqual(steps.first?.samples, 128)
        XCTAssertEqual(digests(acc).count, 4)
        XCTAssertEqual(digests(acc), digests(big), "final parameters of every rank, bit for bit")
        XCTAssertEqual(records(acc, rank: 0, ServerStepRecord.self).map(\.loss), records(big, rank: 0, ServerStepRecord.self).map(\.loss))
        // And the microbatches are real: one pass over the 64 rows sums in another order.
        let whole = try run(try config(["train.batch_size=128"]), workers: 2)
        XCTAssertEqual(records(whole, rank: 2, WorkerStartRecord.self).first?.microbatch, 64)
        XCTAssertNotEqual(digests(whole), digests(acc))
        // The loss fell: the CNN with batchnorm and dropout trains.
        let l = steps.compactMap(\.loss)
        XCTAssertLessThan(l.last!, l.first! * 0.7, "\(l)")
    }
}
