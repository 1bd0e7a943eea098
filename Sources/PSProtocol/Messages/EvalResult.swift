import PSNumerics

/// Worker -> server 0 after each epoch: its slice of the test set (and of
/// the validation set, zeros when there is none) scored with the parameters
/// of the step it names. Payload: six f64.
public struct EvalResult: ControlMessage, Equatable {
    public static let kind = FrameKind.evalResult
    public static let payloadBytes = 48
    public var lossSum: Double
    public var correct: Int
    public var count: Int
    public var validationLossSum: Double
    public var validationCorrect: Int
    public var validationCount: Int

    public init(lossSum: Double, correct: Int, count: Int, validationLossSum: Double = 0, validationCorrect: Int = 0, validationCount: Int = 0) {
        self.lossSum = lossSum; self.correct = correct; self.count = count
        self.validationLossSum = validationLossSum; self.validationCorrect = validationCorrect; self.validationCount = validationCount
    }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(lossSum, at: 0); p.storeF64(Double(correct), at: 1); p.storeF64(Double(count), at: 2)
        p.storeF64(validationLossSum, at: 3); p.storeF64(Double(validationCorrect), at: 4); p.storeF64(Double(validationCount), at: 5)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> EvalResult {
        let test = try counts(p, 1, "test result"), validation = try counts(p, 4, "validation result")
        return EvalResult(lossSum: p.loadF64(at: 0), correct: test.correct, count: test.count,
                          validationLossSum: p.loadF64(at: 3), validationCorrect: validation.correct, validationCount: validation.count)
    }

    /// The (correct, count) pair at `field`: whole, non-negative, correct <= count.
    static func counts(_ p: UnsafeRawPointer, _ field: Int, _ what: String) throws -> (correct: Int, count: Int) {
        let correct = p.loadF64(at: field), count = p.loadF64(at: field + 1)
        guard count >= 0 && count <= Double(Int32.max) && count == count.rounded(),
              correct >= 0 && correct <= count && correct == correct.rounded() else {
            throw FrameError.impossible(message: what, problem: "claims \(correct) correct of \(count)")
        }
        return (Int(correct), Int(count))
    }
}
