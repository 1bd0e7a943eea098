import PSNumerics

/// Worker -> server 0 after each epoch of a model with a binary loss: its
/// test rows' predicted probabilities as a ScoreHistogram (clicked and
/// not clicked), from which server 0 computes the test AUC. Payload: the
/// two histograms, each 2^16 little-endian u32 counts.
public struct EvalScores: ControlMessage, Equatable {
    public static let kind = FrameKind.evalScores
    public static let payloadBytes = 2 * ScoreHistogram.bins * 4
    public var histogram: ScoreHistogram

    public init(_ h: ScoreHistogram) { histogram = h }

    public func encode(into p: UnsafeMutableRawPointer) {
        let n = ScoreHistogram.bins
        for i in 0..<n {
            p.storeBytes(of: histogram.positives[i].littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            p.storeBytes(of: histogram.negatives[i].littleEndian, toByteOffset: 4 * (n + i), as: UInt32.self)
        }
    }

    public static func decode(from p: UnsafeRawPointer) throws -> EvalScores {
        var h = ScoreHistogram()
        let n = ScoreHistogram.bins
        for i in 0..<n {
            h.positives[i] = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            h.negatives[i] = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * (n + i), as: UInt32.self))
        }
        return EvalScores(h)
    }
}
