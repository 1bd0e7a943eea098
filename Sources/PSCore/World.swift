import Foundation

public enum Role: UInt8 {
    case server = 1, worker = 2
    public var name: String { self == .server ? "server" : "worker" }
}

/// What each rank announces at start-up (exchanged with one allgather).
public struct RankHello: Equatable {
    public static let size = 1024
    /// Where each text field lies in the encoded hello: a UInt16 length, then
    /// at most `length - 2` bytes of UTF-8.
    static let hostField = (offset: 32, length: 64)
    static let runDirField = (offset: 96, length: 416)
    static let errorField = (offset: 512, length: 480)
    /// The longest run directory (UTF-8 bytes) a hello carries whole. The
    /// ranks write where rank 0's hello says: a longer path would be cut and
    /// the run written elsewhere, so `checkRunDir` refuses it.
    public static let maxRunDirBytes = runDirField.length - 2

    /// Refuses a run directory whose UTF-8 form does not fit in the hello.
    public static func checkRunDir(_ path: String) throws {
        let n = path.utf8.count
        if n > maxRunDirBytes {
            throw PSError("the run directory path is \(n) bytes long (UTF-8), more than the \(maxRunDirBytes) bytes the ranks can "
                + "exchange at start-up; choose a shorter path: \(path)")
        }
    }

    public var role: Role
    public var configHash: UInt64
    public var buildHash: UInt64
    public var pid: Int32
    public var configLength: Int
    public var host: String
    public var runDir: String
    /// Non-empty when the rank failed before training (bad config, missing data).
    public var error: String
    /// Training samples this rank sees (workers; 0 on servers).
    public var trainCount: Int

    public init(role: Role, configHash: UInt64, buildHash: UInt64, pid: Int32, configLength: Int,
                host: String, runDir: String, error: String, trainCount: Int = 0) {
        self.role = role; self.configHash = configHash; self.buildHash = buildHash; self.pid = pid
        self.configLength = configLength; self.host = host; self.runDir = runDir; self.error = error
        self.trainCount = trainCount
    }

    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: RankHello.size)
        b[0] = role.rawValue
        func put<T: FixedWidthInteger>(_ v: T, _ off: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[off + i] = x } }
        }
        // Cuts what does not fit. The host and the error are only shown (the
        // host name is at most 64 bytes on Linux, so at worst its end is
        // lost); the run directory is checked beforehand (`checkRunDir`).
        func putString(_ s: String, _ field: (offset: Int, length: Int)) {
            let u = Array(s.utf8.prefix(field.length - 2))
            put(UInt16(u.count), field.offset)
            for (i, x) in u.enumerated() { b[field.offset + 2 + i] = x }
        }
        put(configHash, 8); put(buildHash, 16); put(pid, 24); put(UInt32(configLength), 28)
        putString(host, Self.hostField)
        putString(runDir, Self.runDirField)
        putString(error, Self.errorField)
        put(UInt64(trainCount), 1000)
        return b
    }

    public static func decode(_ b: [UInt8]) -> RankHello? {
        guard b.count == size, let role = Role(rawValue: b[0]) else { return nil }
        func get<T: FixedWidthInteger>(_ off: Int, _: T.Type) -> T {
            var v: T = 0
            withUnsafeMutableBytes(of: &v) { for i in 0..<MemoryLayout<T>.size { $0[i] = b[off + i] } }
            return T(littleEndian: v)
        }
        func getString(_ field: (offset: Int, length: Int)) -> String {
            let n = min(Int(get(field.offset, UInt16.self)), field.length - 2)
            return String(decoding: b[(field.offset + 2)..<(field.offset + 2 + n)], as: UTF8.self)
        }
        return RankHello(role: role, configHash: get(8, UInt64.self), buildHash: get(16, UInt64.self),
                         pid: get(24, Int32.self), configLength: Int(get(28, UInt32.self)),
                         host: getString(hostField), runDir: getString(runDirField), error: getString(errorField),
                         trainCount: Int(get(1000, UInt64.self)))
    }
}

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
