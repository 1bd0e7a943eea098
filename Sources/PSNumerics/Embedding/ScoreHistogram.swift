/// Predicted click probabilities of a test set, counted per label in
/// `bins` equal bins of [0, 1]: workers count their slices, server 0 adds
/// them and computes the AUC. Pairs whose scores share a bin count one half
/// (as ties do), so the AUC differs from the exact one by at most half the
/// fraction of positive-negative pairs inside one bin (2^16 bins: widths of
/// 1.5e-5).
public struct ScoreHistogram: Equatable, Sendable {
    public static let bins = 1 << 16
    public var positives: [UInt32]
    public var negatives: [UInt32]

    public init() {
        positives = Array(repeating: 0, count: Self.bins)
        negatives = Array(repeating: 0, count: Self.bins)
    }

    /// Counts one row with predicted probability p and label `clicked`.
    public mutating func add(probability p: Float, clicked: Bool) {
        let b = p.isNaN ? 0 : min(Self.bins - 1, max(0, Int(p * Float(Self.bins))))
        if clicked { positives[b] &+= 1 } else { negatives[b] &+= 1 }
    }

    public mutating func add(_ o: ScoreHistogram) {
        for i in 0..<Self.bins { positives[i] &+= o.positives[i]; negatives[i] &+= o.negatives[i] }
    }

    public var count: Int { positives.reduce(0) { $0 + Int($1) } + negatives.reduce(0) { $0 + Int($1) } }

    /// The probability that a random clicked row scores above a random
    /// unclicked one (ties one half); nil without both kinds.
    public var auc: Double? {
        var below = 0.0, area = 0.0, pos = 0.0
        for b in 0..<Self.bins {
            let p = Double(positives[b]), n = Double(negatives[b])
            area += p * (below + 0.5 * n)
            below += n
            pos += p
        }
        guard pos > 0 && below > 0 else { return nil }
        return area / (pos * below)
    }
}
