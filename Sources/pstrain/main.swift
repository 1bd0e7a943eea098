import ArgumentParser

/// pstrain: launch distributed training, resume it, inspect it.
struct PSTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pstrain",
        abstract: "Parameter-server training over MPI: launch a run and read its results.",
        discussion: """
        A run is one directory (runs/<name>/) with its configuration (run.toml), \
        the launcher's events (events.jsonl) and one JSON-lines log per rank (logs/).
        """,
        subcommands: [Launch.self, Resume.self, Inspect.self, Ckpt.self, DataCommand.self])
}

import Foundation
import PSSupport

import Foundation
import PSSupport
import PSLaunch

// A closed pipe (`pstrain launch | head`) is an error each write reports, not a reason to die.
signal(SIGPIPE, SIG_IGN)
do {
    var command = try PSTrain.parseAsRoot()
    try command.run()
} catch let failed as JobFailed {
    exit(failed.status)   // the launcher printed why
} catch let refusal as Refusal {
    // ArgumentParser would add the usage of `pstrain`, which the arguments did not earn.
    Console.err("Error: \(refusal.message)\n")
    exit(64)
} catch {
    PSTrain.exit(withError: error)
}
