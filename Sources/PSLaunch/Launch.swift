import Foundation

/// The mpirun command line for a job (MPMD: servers first, then workers).
/// Pure, so tests can check every flag.
public struct MpirunPlan {
    public var mpirun = "mpirun"
    public var workers: Int
    public var servers: Int
    public var binDir: String
    public var configPath: String
    public var runDir: String
    public var hostfile: String?
    public var isRoot: Bool
    public var cores: Int
    public var blasThreads: Int
    /// Extra environment for the ranks (name, value), passed with -x.
    public var environment: [(String, String)] = []
    /// The checkpoint folder the ranks continue from.
    public var resume: String?
    /// Open MPI's placement policy (--map-by), e.g. "node" to spread ranks over hosts.
    public var mapBy: String?

    public init(workers: Int, servers: Int, binDir: String, configPath: String, runDir: String,
                hostfile: String? = nil, isRoot: Bool, cores: Int, blasThreads: Int) {
        self.workers = workers; self.servers = servers; self.binDir = binDir; self.configPath = configPath
        self.runDir = runDir; self.hostfile = hostfile; self.isRoot = isRoot; self.cores = cores; self.blasThreads = blasThreads
    }

    /// More ranks than cores on this machine (no hostfile): Open MPI refuses
    /// unless told to oversubscribe.
    public var oversubscribed: Bool { hostfile == nil && workers + servers > cores }

    public var arguments: [String] {
        var a = [mpirun]
        if isRoot { a.append("--allow-run-as-root") }
        if oversubscribed { a += ["--oversubscribe", "--bind-to", "none"] }
        if let hostfile { a += ["--hostfile", hostfile] }
        if let mapBy { a += ["--map-by", mapBy] }
        // Explicit transports: do not depend on the system's MCA defaults.
        a += ["--mca", "pml", "ob1", "--mca", "btl", hostfile == nil ? "self,vader" : "self,vader,tcp"]
        // -x belongs to one app context in MPMD mode: give it to both.
        var env = ["-x", "OPENBLAS_NUM_THREADS=\(blasThreads)"]
        for (k, v) in environment { env += ["-x", "\(k)=\(v)"] }
        let rankArgs = ["--config", configPath, "--run-dir", runDir] + (resume.map { ["--resume", $0] } ?? [])
        a += env + ["-np", String(servers), binDir + "/pstrain-server"] + rankArgs
        a += [":"] + env + ["-np", String(workers), binDir + "/pstrain-worker"] + rankArgs
        return a
    }

    public var commandLine: String { arguments.map(shellQuote).joined(separator: " ") }
}

public func shellQuote(_ s: String) -> String {
    let safe = s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_./=:,+@%".unicodeScalars.contains($0) }
    return safe && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// mpirun's line for a rank a signal ended ("rank 1 with PID 4242 on node vm exited on signal 9 (Killed)").
let rankDeathPattern = #"rank (\d+) with PID \d+ on node \S+ exited on signal (\d+) \(([^)]+)\)"#

/// The first rank mpirun says a signal ended, with the signal's number and name.
public func mpirunRankDeath(_ output: String) -> (rank: Int, signal: Int, name: String)? {
    guard let r = output.range(of: rankDeathPattern, options: .regularExpression) else { return nil }
    let line = String(output[r])
    let words = line.split(separator: " ")
    guard words.count > 1, let rank = Int(words[1]), let sig = line.range(of: #"signal \d+"#, options: .regularExpression),
          let number = Int(line[sig].dropFirst(7)), let open = line.lastIndex(of: "(") else { return nil }
    return (rank, number, String(line[line.index(after: open)...].dropLast()))
}

/// Turns what mpirun printed into plain words, when it is one of the
/// failures people meet most often. nil when nothing is recognised.
public func explainMpirunFailure(_ output: String, plan: MpirunPlan) -> String? {
    let o = output
    if o.contains("There are not enough slots available") || o.contains("already filled") {
        return "mpirun refused to start \(plan.workers + plan.servers) ranks: not enough slots. "
            + (plan.hostfile == nil ? "This machine has \(plan.cores) cores; pass fewer --workers/--servers."
                                    : "Give the hosts in \(plan.hostfile!) more slots (a line 'HOST slots=N').")
    }
    if o.contains("attempt to run as root") {
        return "mpirun refuses to run as root without --allow-run-as-root (pstrain adds it when it runs as root; are you running mpirun through sudo?)"
    }
    if o.contains("could not access or execute an executable") || o.contains("was unable to find the specified executable") {
        return "mpirun could not execute the rank programs in \(plan.binDir); build them with `swift build -c release`"
    }
    if o.contains("unable to open the hostfile") || (o.contains("hostfile") && o.contains("could not be found")) {
        return "mpirun cannot read the hostfile \(plan.hostfile ?? "")"
    }
    // "orted" as a word: mpirun's "aborted" holds it, and a rank that stops
    // on a missing file prints "not found" (issue 21). Daemons start on
    // other hosts only with a hostfile.
    let daemon = o.contains("ORTE was unable to reliably start one or more daemons")
        || (o.range(of: #"\borted\b"#, options: .regularExpression) != nil && o.contains("not found"))
    if daemon, let hostfile = plan.hostfile {
        return "mpirun could not start its daemons on the remote hosts: check that every host in \(hostfile) is reachable and has Open MPI and pstrain installed at the same paths"
    }
    if let r = o.range(of: rankDeathPattern, options: .regularExpression) {
        return "a rank died: " + String(o[r]).replacingOccurrences(of: "exited on signal", with: "was killed by signal")
    }
    if o.contains("exited on signal") {
        return "a rank was killed by a signal; see logs/mpirun.log"
    }
    return nil
}
