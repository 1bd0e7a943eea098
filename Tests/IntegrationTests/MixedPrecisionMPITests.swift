import Foundation
import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import XCTest

/// Mixed precision over real MPI: an overflow injected into one worker's
/// FP16 gradient, two servers.
final class MixedPrecisionMPITests: XCTestCase {
    func testInjectedOverflowIsSkippedByBothServers() throws {
        let dir = Harness.tempDir("overflow")
        let r = try Harness.launch(["--workers", "2", "--servers", "2", "--precision", "fp16", "--epochs", "1", "--run-dir", "r",
                                    "--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048",
                                    "--set", "debug.overflow_step=7", "--set", "debug.overflow_steps=2", "--set", "debug.overflow_worker=1",
                                    "--set", "debug.digest_every_step=true"], cwd: dir)
        assertEnded(r, status: 0, "fp16 run with an injected overflow")
        XCTAssertTrue(r.stdout.contains("steps 7-8 skipped for overflow, scale 65536 -> 32768"), "one summary line\n\(r.stdout)")
        XCTAssertEqual(r.stdout.components(separatedBy: "skipped for overflow").count, 2, "and only one")
        var newScales: [Double] = []
        for s in 0..<2 {
            let steps = Harness.records("\(dir)/r/logs/server-\(s).jsonl", ServerStepRecord.self)
            XCTAssertEqual(steps.count, 16)
            let d = steps.map { $0.paramsDigest ?? "" }
            XCTAssertEqual(d[6], d[7], "server \(s): step 7 left the parameters bit-identical")
            XCTAssertEqual(d[7], d[8], "server \(s): step 8 left the parameters bit-identical")
            XCTAssertNotEqual(d[8], d[9], "server \(s): step 9 applied")
            XCTAssertEqual(steps.indices.filter { steps[$0].overflow }, [7, 8])
            newScales.append(steps[9].lossScale)
            XCTAssertEqual(steps.last?.skipped, 2)
        }
        XCTAssertEqual(newScales, [32768, 32768], "both servers report the same new scale")
        // The workers were told the new scale with the next parameters.
        let w0 = Harness.records("\(dir)/r/logs/worker-0.jsonl", WorkerStepRecord.self)
        XCTAssertEqual(w0[9].lossScale, 32768)
        XCTAssertEqual(w0[7].lossScale, 65536)
        XCTAssertEqual(w0[9].skipped, 2, "workers log the count of skipped steps before theirs")
        XCTAssertEqual(w0[8].skipped, 1)
        XCTAssertEqual(w0[7].skipped, 0)
    }
}
