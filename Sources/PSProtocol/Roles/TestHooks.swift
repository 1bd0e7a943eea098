import Foundation
import PSConfig
import PSRunLog

/// The test hooks of the `[debug]` configuration section in one place: each
/// does nothing unless a test sets its key (docs/config.md). Kills happen
/// once per run directory, so a restarted job runs through.
struct TestHooks {
    let debug: DebugSection
    let runDir: String
    let log: RunLog?

    init(_ debug: DebugSection, runDir: String, log: RunLog?) { self.debug = debug; self.runDir = runDir; self.log = log }

    /// Dies with SIGKILL (the hardest way there is) unless `marker` exists
    /// in the run directory; creates it first, so only once.
    func dieOnce(marker: String) {
        guard !runDir.isEmpty else { return }
        let path = runDir + "/" + marker
        if FileManager.default.fileExists(atPath: path) { return }
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        log?.flush()
        kill(getpid(), SIGKILL)
    }

    /// `debug.die_at_steps` / `debug.die_worker`: worker `worker` dies at the start of `step`.
    func workerStep(_ step: Int, worker: Int) {
        if debug.dieServer < 0 && worker == debug.dieWorker && debug.dieAtSteps.contains(step) { dieOnce(marker: ".died-at-\(step)") }
    }

    /// `debug.die_at_steps` / `debug.die_server`: server `server` dies at the start of `step`.
    func serverStep(_ step: Int, server: Int) {
        if server == debug.dieServer && debug.dieAtSteps.contains(step) { dieOnce(marker: ".died-at-\(step)") }
    }

    /// `debug.die_in_checkpoint`: server 0 dies at `point` of completing checkpoint `step`.
    func crashInCheckpoint(step: Int, at point: String) {
        guard let d = debug.dieInCheckpoint, d.step == step, d.point == point else { return }
        dieOnce(marker: ".died-in-checkpoint-\(step)-\(point)")
    }

    /// `debug.slow_worker` / `debug.slow_ms`: a straggler sleeps in every step's compute.
    func straggle(worker: Int) {
        if worker == debug.slowWorker && debug.slowMilliseconds > 0 { usleep(UInt32(debug.slowMilliseconds * 1000)) }
    }

    /// `debug.overflow_*`: whether worker `worker` puts +inf into its gradient at `step`.
    func spoilsGradient(step: Int, worker: Int) -> Bool { debug.spoilsGradient(step: step, worker: worker) }

    /// `debug.corrupt_step`: worker 0 flips a byte of its first gradient
    /// piece at that step, after the frame's checksum was taken.
    func corrupt(_ frame: FrameBuffer, step: Int, worker: Int, piece: Int) {
        guard step == debug.corruptStep && worker == 0 && piece == 0 else { return }
        frame.payload.storeBytes(of: frame.payload.load(as: UInt8.self) ^ 0x01, as: UInt8.self)
    }
}
