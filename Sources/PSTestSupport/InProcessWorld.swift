import Foundation
import PSSupport
import PSNumerics
import PSConfig
import PSRunLog
import PSProtocol

// ---------------------------------------------------------------------------
// Whole worlds in one process: S servers and W workers on threads over the
// in-process transport, each writing its run log, read back when all are
// done. The training tests of PSCoreTests run their worlds through these.
// ---------------------------------------------------------------------------

/// Runs a whole world (S servers, W workers) on threads over the in-process
/// transport and returns each rank's log, read back (index: rank).
/// `finished` sees each server (index, role) after its run, on its thread.
public func runInProcess(config: Config, servers: Int, workers: Int, data: DataSplit, mode: InProcessMode = .eager,
                         checkpoints: Bool = false, finished: (@Sendable (Int, ServerRole) -> Void)? = nil) throws -> [LogFile] {
    try runInProcess(config: config, servers: servers, workers: workers, workerData: .dense(data), mode: mode, checkpoints: checkpoints,
                     finished: finished)
}

/// The same, for any kind of worker data (a click log for a model with
/// tables); `worker` runs a worker in place of the native one.
public func runInProcess(config: Config, servers: Int, workers: Int, workerData data: WorkerData, mode: InProcessMode = .eager,
                         checkpoints: Bool = false, finished: (@Sendable (Int, ServerRole) -> Void)? = nil,
                         worker: (@Sendable (RankContext, WorkerData) throws -> Void)? = nil) throws -> [LogFile] {
    let size = servers + workers
    let hub = InProcessHub(size: size, mode: mode)
    let dir = NSTemporaryDirectory() + "pstrain-inproc-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let hellos = (0..<size).map {
        RankHello(role: $0 < servers ? .server : .worker, configHash: config.hash, buildHash: 0, pid: 0, configLength: 0,
                  host: "test", runDir: dir, error: "", trainCount: data.trainCount)
    }
    let world = World(hellos: hellos)
    let layout = try Model(config.model, capacity: 1).layout
    final class Errors: @unchecked Sendable { var list = [String?](); let lock = NSLock() }
    let errors = Errors()
    errors.list = Array(repeating: nil, count: size)
    let threads = (0..<size).map { r in
        Thread {
            do {
                let log = try RunLog(path: "\(dir)/logs/rank-\(r).jsonl",
                                     fixed: RankStamp(run: "inproc", rank: r, role: r < servers ? "server" : "worker", index: r < servers ? r : r - servers))
                let t = hub.transport(rank: r)
                let ctx = RankContext(config: config, world: world, transport: t, log: log, say: { _ in }, runDir: checkpoints ? dir : "")
                if r < servers {
                    let server = try ServerRole(context: ctx, layout: layout, trainCount: data.trainCount)
                    try server.run()
                    finished?(r, server)
                } else if let worker {
                    try worker(ctx, data)
                } else {
                    try WorkerRole(context: ctx, data: data).run()
                }
                t.finish(world.describe(r))
                log.flush()
            } catch {
                errors.lock.lock(); errors.list[r] = "\(error)"; errors.lock.unlock()
            }
        }
    }
    for t in threads { t.stackSize = 8 << 20; t.start() }
    while threads.contains(where: { !$0.isFinished }) { usleep(2000) }
    if !hub.violations.isEmpty { throw PSError("the adversarial transport caught \(hub.violations.count) misuse(s):\n" + hub.violations.prefix(8).joined(separator: "\n")) }
    let failed = errors.list.compactMap { $0 }
    if !failed.isEmpty { throw PSError("in-process run failed: " + failed.joined(separator: "; ")) }
    return try (0..<size).map { r in
        guard let log = LogFile(path: "\(dir)/logs/rank-\(r).jsonl") else { throw PSError("rank \(r)'s log cannot be read") }
        return log
    }
}

/// Rank `rank`'s records of a type (or of a protocol: `(any DoneRecord).self`).
public func records<R>(_ logs: [LogFile], rank: Int, _ type: R.Type) -> [R] { logs[rank].records(type) }
