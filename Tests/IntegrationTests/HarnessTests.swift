import Foundation
import XCTest

/// The harness itself: a test that times out takes everything it started
/// with it, also processes that moved to a process group of their own (as
/// mpirun does under the launcher).
final class HarnessTests: XCTestCase {
    func testATimedOutChildTakesItsWholeSessionWithIt() throws {
        let dir = Harness.tempDir("harness")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = "python3 -c 'import os, time; os.setpgid(0, 0); open(\"escaped.pid\", \"w\").write(str(os.getpid())); time.sleep(600)' & sleep 600"
        let r = Harness.run("/bin/sh", ["-c", script], cwd: dir, timeout: 2)
        XCTAssertTrue(r.timedOut, "the child should have hit its deadline")
        let text = try String(contentsOfFile: dir + "/escaped.pid", encoding: .utf8)
        let pid = try XCTUnwrap(pid_t(text), "the grandchild wrote its pid")
        var alive = true
        for _ in 0..<100 {   // killed processes linger as zombies until init reaps them
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?
                .split(separator: ")").last?.split(separator: " ").first
            if state == nil || state == "Z" { alive = false; break }
            usleep(20_000)
        }
        XCTAssertFalse(alive, "the process that left the group (pid \(pid)) was killed too")
    }
}
