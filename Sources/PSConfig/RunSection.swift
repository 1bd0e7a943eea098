
/// [run]: how the ranks run: deadlines, threads, message size, polling and
/// the world the configuration expects.
public struct RunSection: ConfigSection {
    /// How a waiting rank polls MPI (run.poll).
    public enum Poll: String, ConfigChoice {
        /// sched_yield between polls.
        case yield
        case spin
        /// 20 us naps, growing to a tenth of the wait so far (at most 250 us)
        /// after the first millisecond of a wait.
        case sleep
        static let choices: [Poll] = [.yield, .spin, .sleep]
    }

    /// run.timeout_seconds
    public internal(set) var timeoutSeconds = 120.0
    /// run.blas_threads
    public internal(set) var blasThreads = 1
    /// run.chunk_elements
    public internal(set) var chunkElements = 65536
    /// run.poll
    public internal(set) var poll = Poll.yield
    /// run.pin_workers
    public internal(set) var pinWorkers = true
    /// run.progress_seconds
    public internal(set) var progressSeconds = 10.0
    /// run.workers (0: whatever MPI starts)
    public internal(set) var workers = 0
    /// run.servers (0: whatever MPI starts)
    public internal(set) var servers = 0

    public init() {}

    static let name = "run"
    static let keys: [ConfigKey<RunSection>] = [
        .number("timeout_seconds", \.timeoutSeconds, .openClosed(0, 86_400), "longest wait for any message before a rank gives up"),
        .integer("blas_threads", \.blasThreads, .closed(1, 1024), "OpenBLAS threads per worker"),
        .integer("chunk_elements", \.chunkElements, .closed(256, Double(Config.maxChunkElements)),
                 "largest message, in elements: tensors are cut into pieces so that servers and transfers overlap"),
        .choice("poll", \.poll, "how a waiting rank polls MPI: \"yield\" (sched_yield between polls), \"spin\", or \"sleep\" (20 us naps, growing to a tenth of the wait, at most 250 us, after the first millisecond)"),
        .flag("pin_workers", \.pinWorkers, "pin each worker to a core when mpirun did not bind it (oversubscribed)"),
        .number("progress_seconds", \.progressSeconds, .closed(0, 86_400), "seconds between progress lines within an epoch"),
        .integer("workers", \.workers, .closed(0, Double(Config.maxRanks)), "expected workers (0: whatever MPI starts); the launcher sets it"),
        .integer("servers", \.servers, .closed(0, Double(Config.maxRanks)), "expected servers (0: whatever MPI starts); the launcher sets it"),
    ]
}
