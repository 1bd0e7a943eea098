import ArgumentParser
import CBLAS
import CPSKernels
import Foundation
import PSMPI
import PSSupport
import PSNumerics
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol

/// What `pstrain-server` and `pstrain-worker` do: read the arguments, start
/// MPI, announce this rank, check the world, run the role, report.
///
///     pstrain-server|pstrain-worker --config FILE [--run-dir DIR] [--resume CHECKPOINT_DIR] [--set key=value]...
public enum RankMain {
    /// The rank executables' arguments (swift-argument-parser). Every option
    /// takes the next argument as its value whatever it looks like, as the
    /// launcher's command line expects. Parse errors are not reported here:
    /// main() carries them into the start-up exchange, so that all ranks
    /// stop together with one message instead of leaving the others waiting
    /// in MPI.
    struct Arguments: ParsableCommand {
        /// "pstrain-server" or "pstrain-worker", for the usage and help text.
        nonisolated(unsafe) static var commandName = "pstrain-server|pstrain-worker"
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: commandName,
                                 abstract: "A rank of a pstrain job. Run under mpirun, servers first; see `pstrain launch --help`.")
        }

        @Option(name: .customLong("config"), parsing: .unconditional, help: ArgumentHelp("The run's configuration (TOML).", valueName: "file"))
        var config: String

        @Option(name: .customLong("run-dir"), parsing: .unconditional,
                help: ArgumentHelp("The run directory (default runs/mpirun-<time>); server 0's choice holds for every rank.", valueName: "dir"))
        var runDir: String?

        @Option(name: .customLong("resume"), parsing: .unconditional,
                help: ArgumentHelp("Start from this checkpoint folder.", valueName: "checkpoint-dir"))
        var resume: String?

        @Option(name: .customLong("set"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Override one configuration value (repeatable).", valueName: "key=value"))
        var overrides: [String] = []
    }

    static var usage: String { "usage: " + Arguments.usageString() }

    /// The arguments, or a one-line error that names what is wrong and shows the usage.
    static func parse(_ args: [String]) throws -> Arguments {
        do { return try Arguments.parse(args) } catch {
            throw PSError("\(Arguments.message(for: error)); \(usage)")
        }
    }

    /// XXH64 over the two rank executables next to this one: ranks started
    /// from different builds disagree on it.
    static func buildHash() -> UInt64 {
        let dir = executableDirectory()
        var h: UInt64 = 0x5053_5452_4149_4E00
        for name in ["pstrain-server", "pstrain-worker"] {
            let bytes = FileManager.default.contents(atPath: dir + "/" + name) ?? Data(name.utf8)
            h = bytes.withUnsafeBytes { xxh64($0, seed: h) }
        }
        return h
    }

    /// One message to standard error; continuation lines are indented so
    /// that the launcher keeps them with the first.
    static func stderrLine(_ s: String) {
        let text = s.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .map { $0.offset == 0 ? String($0.element) : "  " + $0.element }.joined(separator: "\n")
        Console.err(text + "\n")
    }

    /// The core to pin this worker to: its node-local rank modulo the cores,
    /// but only when mpirun left it free to run anywhere (oversubscribed).
    static func pinnableCore() -> Int? {
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard cores > 1, pst_allowed_cores() >= cores,
              let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap(Int.init) else { return nil }
        return local % cores
    }

    /// This host's first non-loopback IPv4 address ("" if none): which host of a cluster a rank ran on.
    static func localAddress() -> String {
        var ifap: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&ifap) == 0, let first = ifap else { return "" }
        defer { freeifaddrs(ifap) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let a = p {
            if let sa = a.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) {
                var host = [CChar](repeating: 0, count: 64)
                getnameinfo(sa, socklen_t(MemoryLayout<sockaddr_in>.size), &host, 64, nil, 0, NI_NUMERICHOST)
                let s = String(cString: host)
                if !s.hasPrefix("127.") { return s }
            }
            p = a.pointee.ifa_next
        }
        return ""
    }

    /// A rank's life, in phases: MPI starts (under a deadline); everything
    /// that can fail locally is tried; the ranks exchange hellos, so all learn
    /// of any problem together and stop with one message; the log opens;
    /// the role runs; MPI finishes (under a deadline).
    public static func main(role: Role) -> Never {
        setvbuf(stdout, nil, _IOLBF, 0)
        signal(SIGPIPE, SIG_IGN)   // a closed pipe is an error to report, not a reason to die
        let exeName = "pstrain-\(role.name)"
        Arguments.commandName = exeName
        if CommandLine.arguments.contains("--help") || CommandLine.arguments.contains("-h") {
            print(Arguments.helpMessage(columns: 100))
            exit(0)
        }
        let seconds = startupSeconds()
        let transport = startMPI(exeName, seconds: seconds)
        let local = LocalStart(role: role, rank: transport.rank)
        let (world, hello) = exchangeHellos(transport, local, role: role, exeName: exeName, seconds: seconds)
        if transport.rank == 0 {
            let hosts = Set(world.hellos.map { $0.host }).sorted()
            print("pstrain: world of \(world.hellos.count) ranks: \(world.servers) server(s), \(world.workers) worker(s) on \(hosts.joined(separator: ", ")); "
                + "config \(String(hello.configHash, radix: 16)), build \(String(hello.buildHash, radix: 16))")
        }
        let me = "\(exeName)[\(world.describe(transport.rank))]"
        let runDir = world.hellos[0].runDir
        let log = openLog(runDir: runDir, role: role, world: world, rank: transport.rank, hello: hello, config: local.config, who: me)
        transport.poll = MPITransport.Poll(rawValue: local.config.run.poll.rawValue) ?? .yield
        if role == .worker && local.config.run.pinWorkers, let core = pinnableCore() {
            _ = pst_pin_to_core(Int32(core))
            log.write(PinnedRecord(core: core))
        }
        let ctx = RankContext(config: local.config, world: world, transport: transport, log: log, say: { print($0) },
                              runDir: runDir, resume: local.resume)
        do {
            switch role {
            case .server:
                let layout = try Model(local.config.model, capacity: 1).layout
                try ServerRole(context: ctx, layout: layout, trainCount: world.hellos[world.workerRanks[0]].trainCount).run()
            case .worker:
                // (A worker whose data failed to load announced it in its hello, and every rank stopped there.)
                guard let data = local.data else { throw PSError("\(me) has no data set loaded (a pstrain bug)") }
                try WorkerRole(context: ctx, data: data).run()
            }
        } catch {
            log.write(ErrorRecord(message: "\(error)"))
            log.flush()
            stderrLine("\(me): error: \(error)")
            exit(1)
        }
        log.flush()
        if transport.outstanding > 0 {
            // A bug, never a user error: MPI would still read or write memory this rank is about to free.
            stderrLine("\(me): internal error: \(transport.outstanding) message(s) still in flight at shutdown (\(transport.outstandingKinds))")
            exit(1)
        }
        testHang("finalize", rank: transport.rank)
        finalize(transport, seconds: seconds, who: me)
        exit(0)
    }

    /// MPI_Init under a deadline: a rank that another rank leaves hanging
    /// there gives up.
    static func startMPI(_ exeName: String, seconds: Double) -> MPITransport {
        let initDeadline = Deadline(seconds: seconds, exeName + ": error: MPI_Init did not return within \(Int(seconds)) s: another rank of the job "
                                    + "is hung or dead, or mpirun could not start them all (run.timeout_seconds sets this deadline)")
        defer { initDeadline.cancel() }
        do { return try MPITransport.initialize() } catch {
            stderrLine("\(exeName): error: cannot start MPI: \(error). Start the ranks with mpirun or `pstrain launch`.")
            exit(1)
        }
    }

    /// What a rank prepares on its own before the hello exchange: its
    /// arguments, configuration, run directory, checkpoint and (workers) data.
    /// A failure is kept as `error`, to be announced in the hello.
    struct LocalStart {
        var config = Config()
        var data: WorkerData?
        var runDir = ""
        var resume: (path: String, manifest: Manifest)?
        var error = ""

        init(role: Role, rank: Int) {
            do {
                let args = try parse(Array(CommandLine.arguments.dropFirst()))
                config = try Config.load(path: args.config)
                try config.apply(overrides: args.overrides)
                runDir = args.runDir ?? "runs/mpirun-\(Int(Date().timeIntervalSince1970))"
                try RankHello.checkRunDir(runDir)
                if let r = args.resume { resume = (r, try CheckpointStore.verify(r)) }
                if role == .worker {
                    openblas_set_num_threads(Int32(config.run.blasThreads))
                    try BLASInfo.selfCheck()
                    // A resumed run standardises with the numbers its checkpoint holds.
                    let saved = config.data.normalizeInEffect == .standardize ? try resume.flatMap { try NormalizationFile.statistics($0.path, $0.manifest) } : nil
                    data = config.model.tables.isEmpty
                        ? .dense(try DataSplit.load(config.data, features: config.model.inputSize, runDir: runDir, statistics: saved))
                        : .ctr(try CTRSets.load(config.data, model: config.model, runDir: runDir))
                }
                testHang("data", rank: rank)
            } catch {
                self.error = "\(error)"
            }
        }
    }

    /// The start-up exchange: every rank's hello (and, when configurations
    /// differ, every configuration, to name the keys). Any problem stops
    /// every rank with one message from rank 0.
    static func exchangeHellos(_ transport: MPITransport, _ local: LocalStart, role: Role, exeName: String,
                               seconds: Double) -> (World, RankHello) {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let config = local.config, rank = transport.rank
        let hello = RankHello(role: role, configHash: config.hash, buildHash: buildHash(), pid: getpid(),
                              configLength: config.canonicalTOML.utf8.count, host: String(cString: host),
                              runDir: local.runDir, error: local.error, trainCount: local.data?.trainCount ?? 0)
        do {
            let all = try transport.allgather(hello.encode(), timeout: seconds)
            let world = World(hellos: all.map { RankHello.decode($0)! })
            var configs: [Config]?
            if Set(world.hellos.map { $0.configHash }).count > 1 && world.hellos.allSatisfy({ $0.error.isEmpty }) {
                let len = world.hellos.map { $0.configLength }.max()!
                var mine = Array(config.canonicalTOML.utf8)
                mine += [UInt8](repeating: 0, count: len - mine.count)
                let texts = try transport.allgather(mine, timeout: seconds)
                configs = try texts.enumerated().map { (r, t) in
                    try Config.parse(String(decoding: t.prefix { $0 != 0 }, as: UTF8.self), source: "rank \(r)")
                }
            }
            var problem = world.problem(configs: configs, expectWorkers: config.run.workers, expectServers: config.run.servers)
            if problem == nil {
                let counts = Set(world.workerRanks.map { world.hellos[$0].trainCount })
                if counts.count > 1 { problem = "workers loaded training sets of different sizes: \(counts.sorted())" }
            }
            if let problem {
                if rank == 0 { stderrLine("pstrain: error: the job cannot start:\n" + problem) }
                finalize(transport, seconds: seconds, who: exeName)
                exit(2)
            }
            return (world, hello)
        } catch let t as TransportTimeout {
            stderrLine("\(exeName) (rank \(rank)): error: rank \(t.peer) sent nothing for \(Int(t.seconds)) s during the start-up exchange "
                + "(its hello, or its configuration when the ranks' configurations differ): it is hung or dead "
                + "(stopped while loading its data?); run.timeout_seconds sets this deadline")
            exit(1)
        } catch {
            stderrLine("\(exeName) (rank \(rank)): error: start-up exchange failed: \(error)")
            exit(1)
        }
    }

    /// This rank's log in the run directory, opened with its hello record.
    static func openLog(runDir: String, role: Role, world: World, rank: Int, hello: RankHello, config: Config, who: String) -> RunLog {
        let index = world.index(ofRank: rank)
        let log: RunLog
        do {
            log = try RunLog(path: "\(runDir)/logs/\(role.name)-\(index).jsonl",
                             fixed: RankStamp(run: (runDir as NSString).lastPathComponent, rank: rank, role: role.name, index: index))
        } catch {
            stderrLine("\(who): error: \(error)")
            exit(1)
        }
        log.onFailure = { stderrLine("\(who): warning: \($0)") }
        if role == .worker, let core = BLASInfo.recommendedCoreType(), index == 0 {
            stderrLine("\(who): warning: OpenBLAS runs its generic '\(BLASInfo.coreName)' kernels on this CPU; "
                + "export OPENBLAS_CORETYPE=\(core) to every rank (mpirun -x) for a 3-4x faster sgemm (pstrain launch does this)")
        }
        let env = ProcessInfo.processInfo.environment
        log.write(HelloRecord(blasCore: BLASInfo.coreName,
                              ranksOnNode: env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 0,
                              address: localAddress(), configHash: String(config.hash, radix: 16),
                              build: String(hello.buildHash, radix: 16),
                              host: hello.host, pid: Int(hello.pid),
                              servers: world.servers, workers: world.workers))
        return log
    }

    /// MPI_Finalize under a deadline: it waits for every other rank.
    static func finalize(_ transport: MPITransport, seconds: Double, who: String) {
        let deadline = Deadline(seconds: seconds, "\(who): error: MPI_Finalize did not return within \(Int(seconds)) s: "
                                + "another rank is hung or dead at shutdown (run.timeout_seconds sets this deadline)")
        transport.finalize()
        deadline.cancel()
    }

    /// run.timeout_seconds from the arguments, before MPI starts (the
    /// default when they cannot be read: that error is reported later).
    static func startupSeconds() -> Double {
        guard let args = try? parse(Array(CommandLine.arguments.dropFirst())),
              var config = try? Config.load(path: args.config) else { return Config().run.timeoutSeconds }
        for o in args.overrides { try? config.apply(override: o) }
        return config.run.timeoutSeconds
    }

    /// Test hook: PSTRAIN_TEST_HANG=POINT:RANK makes that rank hang for good at
    /// POINT ("data": after loading its data, before the start-up exchange;
    /// "finalize": before MPI_Finalize), as a rank stopped there would.
    static func testHang(_ point: String, rank: Int) {
        guard ProcessInfo.processInfo.environment["PSTRAIN_TEST_HANG"] == "\(point):\(rank)" else { return }
        while true { pause() }
    }
}

/// Ends the process with `message` unless cancelled within `seconds`: the
/// deadline of a call that has none of its own (MPI_Init, MPI_Finalize).
final class Deadline: @unchecked Sendable {
    let lock = NSLock()
    var cancelled = false

    init(seconds: Double, _ message: String) {
        let t = Thread { [self] in
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                usleep(50_000)
                lock.lock(); let c = cancelled; lock.unlock()
                if c { return }
            }
            Console.err(message + "\n")
            _exit(1)
        }
        t.start()
    }

    func cancel() { lock.lock(); cancelled = true; lock.unlock() }
}
