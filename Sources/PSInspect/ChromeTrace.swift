import Foundation
import PSNumerics
import PSRunLog

extension RunReport {
    public func chromeTrace() -> ChromeTrace {
        var events: [ChromeTrace.Event] = []
        let ordered = logs.sorted(by: { ($0.role == "server" ? 0 : 1, $0.index) < ($1.role == "server" ? 0 : 1, $1.index) })
        for (pid, l) in ordered.enumerated() {
            let rank = l.log.entries.first?.envelope.rank ?? pid
            events.append(.init(name: "process_name", ph: "M", pid: rank, ts: 0, args: .init(name: "\(l.role) \(l.index) (rank \(rank))")))
            events.append(.init(name: "thread_name", ph: "M", pid: rank, ts: 0, args: .init(name: l.role)))
            for r in l.logged((any StepRecord).self) {
                guard let t = r.t else { continue }
                let stepS = r.stepS, step = r.step
                let end = t * 1e6, start = end - stepS * 1e6
                let wait = r.waitS * 1e6
                if l.role == "worker" {
                    let compute = ((r.record as? WorkerStepRecord)?.computeS ?? 0) * 1e6
                    events.append(.init(name: "compute", cat: "step", ph: "X", pid: rank, ts: start, dur: compute, args: .init(step: step)))
                    events.append(.init(name: "wait for parameters", cat: "step", ph: "X", pid: rank,
                                        ts: start + compute, dur: max(0, min(wait, stepS * 1e6 - compute)), args: .init(step: step)))
                } else {
                    let apply = ((r.record as? ServerStepRecord)?.applyS ?? 0) * 1e6
                    events.append(.init(name: "wait for gradients", cat: "step", ph: "X", pid: rank, ts: start, dur: max(0, stepS * 1e6 - apply), args: .init(step: step)))
                    events.append(.init(name: "sum + SGD + send", cat: "step", ph: "X", pid: rank, ts: end - apply, dur: apply, args: .init(step: step)))
                }
            }
            let marks = l.log.entries.filter { $0.event == "checkpoint" } + l.log.entries.filter { $0.event == "eval" }
            for e in marks {
                guard let t = e.envelope.t else { continue }
                events.append(.init(name: e.event ?? "", ph: "i", s: "p", pid: rank, ts: t * 1e6))
            }
        }
        return ChromeTrace(traceEvents: events, displayTimeUnit: "ms")
    }
}

/// A trace in the Chrome trace event format, for JSONEncoder.
public struct ChromeTrace: Codable, Equatable {
    public struct Event: Codable, Equatable {
        public struct Args: Codable, Equatable {
            public var name: String?
            public var step: Int?
            public init(name: String? = nil, step: Int? = nil) { self.name = name; self.step = step }
        }
        public var name: String
        public var cat: String?
        /// "M" metadata, "X" complete, "i" instant.
        public var ph: String
        /// Scope of an instant event ("p": process).
        public var s: String?
        public var pid: Int
        public var tid: Int
        /// Microseconds.
        public var ts: Double
        public var dur: Double?
        public var args: Args?

        public init(name: String, cat: String? = nil, ph: String, s: String? = nil, pid: Int, tid: Int = 0, ts: Double,
                    dur: Double? = nil, args: Args? = nil) {
            self.name = name; self.cat = cat; self.ph = ph; self.s = s; self.pid = pid; self.tid = tid; self.ts = ts
            self.dur = dur; self.args = args
        }
    }
    public var traceEvents: [Event]
    public var displayTimeUnit: String
}

/// a + b, held at Int's limits instead of trapping: log records are input
/// too, and a crafted one may hold any integer JSON can (issue 20).
func clampedSum(_ a: Int, _ b: Int) -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? (b > 0 ? Int.max : Int.min) : r
}
