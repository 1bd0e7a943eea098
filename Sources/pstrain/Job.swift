import ArgumentParser
import Foundation
import PSNumerics
import PSConfig
import PSProtocol
import PSLaunch

/// Options every command that starts a job takes.
struct JobOptions: ParsableArguments {
    @Option(name: .long, help: "When the job dies, restart it from the newest valid checkpoint up to N times.")
    var maxRestarts: Int = 0

    @Option(name: .long, help: "The mpirun program to use.")
    var mpirun: String = "mpirun"

    @Option(name: .long, help: "Open MPI hostfile, to place ranks on several machines (adds the TCP transport).")
    var hostfile: String?

    @Option(name: .long, help: "Open MPI placement: slot (fill each host in turn, servers first; the default) or node (one rank per host in turn).")
    var mapBy: String?

    func validate() throws {
        if maxRestarts < 0 { throw ValidationError("--max-restarts must be 0 or more") }
        if let h = hostfile, !FileManager.default.isReadableFile(atPath: h) {
            throw ValidationError("cannot read the hostfile \(h)")
        }
    }

    /// The mpirun command line of a job with these options.
    /// Refuses a run directory the ranks could not carry whole (before mpirun starts).
    func plan(workers: Int, servers: Int, config: Config, configPath: String, runDir: String) throws -> MpirunPlan {
        try userFacing { try RankHello.checkRunDir(runDir) }
        var plan = MpirunPlan(workers: workers, servers: servers, binDir: try Job.rankBinDir(), configPath: configPath,
                              runDir: runDir, hostfile: hostfile, isRoot: geteuid() == 0,
                              cores: ProcessInfo.processInfo.activeProcessorCount, blasThreads: config.run.blasThreads)
        plan.mpirun = mpirun
        plan.mapBy = mapBy
        if let core = BLASInfo.recommendedCoreType() { plan.environment.append(("OPENBLAS_CORETYPE", core)) }
        return plan
    }

    /// Fails with a plain message when mpirun is not there.
    func requireMpirun() throws {
        guard Job.which(mpirun) != nil else {
            throw Refusal("'\(mpirun)' not found on PATH; install Open MPI (scripts/bootstrap installs openmpi-bin)")
        }
    }
}
