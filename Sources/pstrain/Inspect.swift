import ArgumentParser
import Foundation
import PSInspect
import PSLaunch

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a run's logs: a summary, or JSON, or a Chrome trace.",
        discussion: """
        Examples:
          pstrain inspect runs/demo
          pstrain inspect runs/demo --json > summary.json
          pstrain inspect runs/demo --trace trace.json      (open in Perfetto or chrome://tracing)
          pstrain inspect runs/demo --html report.html
          pstrain inspect runs/demo --follow                (watch a running job)
          pstrain inspect runs/a runs/b                     (side by side)
        """)

    @Argument(help: "The run directory (two to compare them).")
    var runDirs: [String]

    @Flag(name: .long, help: "Print the summary as one JSON document.")
    var json = false

    @Option(name: .long, help: "Write the Chrome trace event format (one track per rank) to this file.")
    var trace: String?

    @Option(name: .long, help: "Write a self-contained HTML report with SVG charts to this file.")
    var html: String?

    @Flag(name: .long, help: "Watch a running job: redraw the summary every few seconds until it ends.")
    var follow = false

    @Option(name: .long, help: "Seconds between redraws with --follow.")
    var interval: Double = 2

    func validate() throws {
        if runDirs.isEmpty || runDirs.count > 2 { throw ValidationError("give one run directory, or two to compare") }
    }

    func run() throws {
        if follow {
            setvbuf(stdout, nil, _IOLBF, 0)
            while true {
                let report: RunReport
                report = try userFacing { try RunReport(dir: runDirs[0]) }
                let s = report.summary()
                if isatty(1) != 0 { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(SummaryText.text(s))
                guard s.status.hasPrefix("running") else { return }
                print("(following; Ctrl-C to stop)")
                usleep(UInt32(max(0.2, interval) * 1e6))
            }
        }
        let reports: [RunReport]
        reports = try userFacing { try runDirs.map { try RunReport(dir: $0) } }
        let summaries = reports.map { $0.summary() }
        if let trace {
            let data = try JSONEncoder().encode(reports[0].chromeTrace())
            do { try data.write(to: URL(fileURLWithPath: trace)) } catch {
                throw Refusal("cannot write \(trace): \(error.localizedDescription)")
            }
            if !json { print("pstrain: wrote \(trace) (Chrome trace event format; open it in Perfetto or chrome://tracing)") }
        }
        if let html {
            do { try HTMLReport.render(reports[0]).write(toFile: html, atomically: true, encoding: .utf8) } catch {
                throw Refusal("cannot write \(html): \(error.localizedDescription)")
            }
            if !json { print("pstrain: wrote \(html) (self-contained; open it in a browser)") }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = summaries.count == 1 ? try enc.encode(summaries[0]) : try enc.encode(summaries)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        if summaries.count == 2 { print(SummaryText.compare(summaries[0], summaries[1])); return }
        print(SummaryText.text(summaries[0]))
    }
}
