import Foundation
import XCTest

/// Waits that used to have no deadline, and output that used to trap.
final class RobustnessTests: XCTestCase {
    let small = ["--workers", "2", "--servers", "1", "--set", "data.kind=synthetic", "--set", "data.synthetic_train=1024",
                 "--epochs", "1", "--set", "run.timeout_seconds=3"]

    /// `pstrain launch` with the environment variable `hang` set (the ranks inherit it).
    func launch(hang: String, _ args: [String], cwd: String) throws -> ProcessResult {
        Harness.run("/usr/bin/env", ["PSTRAIN_TEST_HANG=\(hang)", try Harness.executable("pstrain"), "launch"] + args, cwd: cwd, timeout: 90)
    }

    /// A worker that hangs while loading its data: the others give up at
    /// their start-up deadline and name it (before: the start-up allgather
    /// had no deadline and the job hung for good).
    func testARankHungBeforeTheStartUpExchangeIsNamed() throws {
        let dir = Harness.tempDir("hang-data")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try launch(hang: "data:2", small + ["--run-dir", "r"], cwd: dir)
        assertEnded(r, status: nil, "a rank hung in start-up")
        XCTAssertTrue(r.stderr.contains("rank 2 sent nothing for 3 s during the start-up exchange"), r.stderr)
        XCTAssertLessThan(r.seconds, 40, "ended within the deadline")
    }

    /// A server that hangs before MPI_Finalize: the job still ends, with a
    /// clear message, within the deadlines (the ranks' own, or the launcher's watchdog).
    func testARankHungAtShutdownDoesNotHangTheJob() throws {
        let dir = Harness.tempDir("hang-fin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try launch(hang: "finalize:0", small + ["--run-dir", "r"], cwd: dir)
        XCTAssertFalse(r.timedOut, "the job hung: \(r.output)")
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("MPI_Finalize did not return within 3 s") || r.stderr.contains("the job made no progress for"), r.stderr)
        XCTAssertLessThan(r.seconds, 60)
    }

    /// The launcher's standard output is a pipe nobody reads: no trap, the
    /// job runs to the end and the launcher exits with the job's status.
    func testAClosedOutputPipeDoesNotStopTheLauncher() throws {
        let dir = Harness.tempDir("pipe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try Harness.executable("pstrain")
        let args = (["launch"] + small + ["--run-dir", "r"]).joined(separator: " ")
        // `exec 1>&-` would close stdout (writes fail with EBADF); a pipe whose reader is gone gives EPIPE.
        let r = Harness.run("/bin/bash", ["-c", "(\(exe) \(args); echo \"status=$?\" > status.txt) | true"], cwd: dir, timeout: 90)
        XCTAssertEqual(r.status, 0, r.output)
        let status = try String(contentsOfFile: dir + "/status.txt", encoding: .utf8)
        XCTAssertEqual(status, "status=0\n", r.output)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        Harness.assertComplete(Harness.finalState(dir + "/r", servers: 1, workers: 2))
    }
}
