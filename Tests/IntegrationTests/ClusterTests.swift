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

/// A cluster of three hosts on this machine (network namespaces, a bridge,
/// 1 Gbit/s links): the server on one host, a worker on each of the others,
/// over real TCP. The parameters end bit-identical to the same run on one host.
final class ClusterTests: XCTestCase {
    func testThreeHostClusterMatchesOneHost() throws {
        let root = Harness.root
        let dir = Harness.tempDir("cluster")
        let args = ["--workers", "2", "--servers", "1", "--set", "data.kind=synthetic", "--set", "data.synthetic_train=2048", "--epochs", "1"]
        let local = try Harness.launch(args + ["--run-dir", "local"], cwd: dir)
        assertEnded(local, status: 0, "one host")

        let up = Harness.run("/bin/bash", [root + "/cluster/up", "3", "--rate", "1gbit"], cwd: dir, timeout: 60)
        defer {
            let down = Harness.run("/bin/bash", [root + "/cluster/down"], cwd: dir, timeout: 60)
            XCTAssertEqual(down.status, 0, "teardown: \(down.output)")
            let left = Harness.run("/bin/sh", ["-c", "ip netns list | grep '^pst-'; ip -o link show | grep -o 'pst-[a-z0-9]*'"], cwd: dir, timeout: 20)
            XCTAssertEqual(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "", "nothing of the cluster is left")
        }
        XCTAssertEqual(up.status, 0, "cluster/up: \(up.output)")
        guard up.status == 0 else { return }
        let env = try String(contentsOfFile: root + "/cluster/state/env", encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("export ") }.map { String($0.dropFirst(7)) }
        let r = Harness.run("/usr/bin/env", env + [try Harness.executable("pstrain"), "launch", "--hostfile", root + "/cluster/state/hostfile"]
                            + args + ["--run-dir", "cluster"], cwd: dir, timeout: 180)
        assertEnded(r, status: 0, "three hosts over TCP")
        XCTAssertTrue(r.stdout.contains("--hostfile") && r.stdout.contains("self,vader,tcp"), r.stdout)
        // Each rank alone on its host, at the host's address.
        var addresses: [String] = []
        for name in ["server-0", "worker-0", "worker-1"] {
            let hello = Harness.records("\(dir)/cluster/logs/\(name).jsonl", HelloRecord.self).first
            XCTAssertEqual(hello?.ranksOnNode, 1, "\(name) shares its host with no other rank")
            addresses.append(hello?.address ?? "")
        }
        XCTAssertEqual(addresses, ["10.77.0.1", "10.77.0.2", "10.77.0.3"])
        for name in ["server-0", "worker-0", "worker-1"] {
            let a = Harness.records("\(dir)/local/logs/\(name).jsonl", (any DoneRecord).self).last?.paramsDigest
            XCTAssertNotNil(a)
            XCTAssertEqual(Harness.records("\(dir)/cluster/logs/\(name).jsonl", (any DoneRecord).self).last?.paramsDigest, a, name)
        }
    }
}
