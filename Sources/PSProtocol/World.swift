import Foundation
import PSConfig


/// The layout of a started world: which ranks serve and which work. Servers
/// and workers are numbered in rank order within their role.
public struct World {
    public let hellos: [RankHello]
    public let serverRanks: [Int]
    public let workerRanks: [Int]

    public init(hellos: [RankHello]) {
        self.hellos = hellos
        serverRanks = hellos.indices.filter { hellos[$0].role == .server }
        workerRanks = hellos.indices.filter { hellos[$0].role == .worker }
    }

    public var servers: Int { serverRanks.count }
    public var workers: Int { workerRanks.count }

    public func index(ofRank r: Int) -> Int {
        (hellos[r].role == .server ? serverRanks : workerRanks).firstIndex(of: r)!
    }

    /// "worker 1 (rank 3)".
    public func describe(_ r: Int) -> String {
        guard r >= 0 && r < hellos.count else { return "rank \(r)" }
        return "\(hellos[r].role.name) \(index(ofRank: r)) (rank \(r))"
    }

    func describeGroup(_ ranks: [Int]) -> String {
        if ranks.count == 1 { return describe(ranks[0]) }
        return ranks.map { describe($0) }.joined(separator: ", ")
    }

    /// Start-up problems that are visible from the hellos alone, in one
    /// message; nil when the world may train. `configs` holds each rank's
    /// canonical configuration when hashes differ (to name the keys).
    public func problem(configs: [Config]?, expectWorkers: Int, expectServers: Int) -> String? {
        // 1. ranks that failed on their own
        var byError: [String: [Int]] = [:]
        var order: [String] = []
        for (r, h) in hellos.enumerated() where !h.error.isEmpty {
            if byError[h.error] == nil { order.append(h.error) }
            byError[h.error, default: []].append(r)
        }
        if !order.isEmpty {
            return order.map { "\(describeGroup(byError[$0]!)): \($0)" }.joined(separator: "\n")
        }
        // 2. a world with a role missing
        if servers == 0 || workers == 0 {
            let missing = servers == 0 ? "no server" : "no worker"
            return "the world has \(missing): MPI started \(servers) server(s) and \(workers) worker(s). "
                + "Start at least one of each, servers first: "
                + "mpirun -np 1 pstrain-server --config FILE : -np 2 pstrain-worker --config FILE (or pstrain launch --servers S --workers W)"
        }
        // 3. different builds
        let builds = Set(hellos.map { $0.buildHash })
        if builds.count > 1 {
            let groups = Dictionary(grouping: hellos.indices, by: { hellos[$0].buildHash })
            let lines = groups.keys.sorted().map { "build \(String($0, radix: 16)): \(describeGroup(groups[$0]!.sorted()))" }
            return "ranks run different pstrain builds; start every rank from the same build:\n" + lines.joined(separator: "\n")
        }
        // 4. different configurations
        let hashes = Set(hellos.map { $0.configHash })
        if hashes.count > 1 {
            var lines = ["ranks were started with different configurations:"]
            let ref = 0
            for r in hellos.indices where hellos[r].configHash != hellos[ref].configHash {
                if let configs {
                    let diffs = configs[r].differences(from: configs[ref])
                    let what = diffs.prefix(4).map { "\($0.key) = \($0.mine) (\(describe(ref)) has \($0.theirs))" }
                    lines.append("\(describe(r)): " + (what.isEmpty ? "config hash differs" : what.joined(separator: "; ")))
                } else {
                    lines.append("\(describe(r)) has config hash \(String(hellos[r].configHash, radix: 16)), \(describe(ref)) has \(String(hellos[ref].configHash, radix: 16))")
                }
            }
            lines.append("give every rank the same --config file and --set overrides")
            return lines.joined(separator: "\n")
        }
        // 5. the world the configuration asks for
        if (expectWorkers > 0 && expectWorkers != workers) || (expectServers > 0 && expectServers != servers) {
            return "the configuration expects \(expectServers) server(s) and \(expectWorkers) worker(s) "
                + "(run.servers, run.workers) but MPI started \(servers) and \(workers); "
                + "start the matching numbers or set run.servers = 0 and run.workers = 0 to accept any"
        }
        return nil
    }
}
