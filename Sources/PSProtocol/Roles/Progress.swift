import Foundation
import PSSupport

/// Server 0's human progress lines: one per epoch, one every few seconds,
/// and one line per burst of skipped steps (never one per skipped step).
struct Progress {
    let lead: Bool
    let say: (String) -> Void
    let every: Double
    let total: Int, perEpoch: Int, epochs: Int, batch: Int
    private(set) var start: Double
    var lastLine: Double
    var lossAcc = 0.0, lossN = 0
    var lastLoss = Double.nan
    /// The burst of skipped steps being collected: first, last, scale before.
    var burst: (first: Int, last: Int, scale: Double, newScale: Double)?

    let firstStep: Int

    init(lead: Bool, say: @escaping (String) -> Void, every: Double, total: Int, perEpoch: Int, epochs: Int, batch: Int, start: Double,
         firstStep: Int = 0) {
        self.lead = lead; self.say = say; self.every = every; self.total = total; self.perEpoch = perEpoch
        self.epochs = epochs; self.batch = batch; self.start = start; lastLine = start; self.firstStep = firstStep
    }

    func head(_ step: Int) -> String {
        let e = step / perEpoch + 1
        return "epoch \(min(e, epochs))/\(epochs)  step \(step + 1)/\(total)"
    }

    func rate(_ step: Int, _ t: Double) -> String {
        let sps = Double((step + 1 - firstStep) * batch) / max(t - start, 1e-9)
        return "\(Int(sps.rounded())) samples/s"
    }

    static func scaleText(_ s: Double) -> String {
        s == s.rounded() && abs(s) < 1e15 ? String(Int(s)) : String(s)
    }

    mutating func flushBurst() {
        guard let b = burst else { return }
        burst = nil
        let which = b.first == b.last ? "step \(b.first) skipped" : "steps \(b.first)-\(b.last) skipped"
        let scale = b.scale == b.newScale ? "scale \(Self.scaleText(b.scale))" : "scale \(Self.scaleText(b.scale)) -> \(Self.scaleText(b.newScale))"
        say("\(which) for overflow, \(scale)")
    }

    /// "ETA 1m05s" from the pace so far.
    func eta(_ step: Int, _ t: Double) -> String {
        let done = step + 1 - firstStep
        guard done > 0, step + 1 < total else { return "" }
        let left = (t - start) / Double(done) * Double(total - step - 1)
        return left >= 60 ? "  ETA \(Int(left) / 60)m\(String(format: "%02d", Int(left) % 60))s" : "  ETA \(Int(left.rounded()))s"
    }

    mutating func step(_ step: Int, loss: Double, skipped: Bool, scale: (old: Double, new: Double), at t: Double) {
        guard lead else { return }
        if skipped {
            if let b = burst, b.last == step - 1 {
                burst = (b.first, step, b.scale, scale.new)
            } else {
                flushBurst()
                burst = (step, step, scale.old, scale.new)
            }
            return
        }
        flushBurst()
        lossAcc += loss; lossN += 1
        if t - lastLine >= every && (step + 1) % perEpoch != 0 {
            lastLoss = lossAcc / Double(lossN)
            say("\(head(step))  loss \(String(format: "%.4f", lastLoss))  \(rate(step, t))\(eta(step, t))")
            lastLine = t; lossAcc = 0; lossN = 0
        }
    }

    mutating func epochEnd(_ step: Int, accuracy: Double, validation: Double? = nil, auc: Double? = nil, at t: Double) {
        guard lead else { return }
        flushBurst()
        if lossN > 0 { lastLoss = lossAcc / Double(lossN) }
        let v = validation.map { "  validation accuracy \(String(format: "%.2f", $0 * 100))%" } ?? ""
        let a = auc.map { "  test AUC \(String(format: "%.4f", $0))" } ?? ""
        say("\(head(step))  loss \(String(format: "%.4f", lastLoss))  test accuracy \(String(format: "%.2f", accuracy * 100))%\(a)\(v)  \(rate(step, t))  \(String(format: "%.1f", t - start)) s\(eta(step, t))")
        lastLine = t; lossAcc = 0; lossN = 0
    }

    mutating func finish() { if lead { flushBurst() } }

    /// Training starts now (after the set-up the rate should not count).
    mutating func restart(at t: Double) { start = t; lastLine = t }
}
