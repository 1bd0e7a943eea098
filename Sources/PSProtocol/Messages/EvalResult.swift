import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog

/// Worker -> server 0 after each epoch: its slice of the test set scored
/// with the parameters of the step it names. Payload: three f64.
public struct EvalResult: ControlMessage, Equatable {
    public static let kind = FrameKind.eval
    public static let payloadBytes = 24
    public var lossSum: Double
    public var correct: Int
    public var count: Int

    public init(lossSum: Double, correct: Int, count: Int) { self.lossSum = lossSum; self.correct = correct; self.count = count }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(lossSum, at: 0); p.storeF64(Double(correct), at: 1); p.storeF64(Double(count), at: 2)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> EvalResult {
        let correct = p.loadF64(at: 1), count = p.loadF64(at: 2)
        guard count >= 0 && count <= Double(Int32.max) && count == count.rounded(),
              correct >= 0 && correct <= count && correct == correct.rounded() else {
            throw FrameError.impossible(message: "test result", problem: "claims \(correct) correct of \(count)")
        }
        return EvalResult(lossSum: p.loadF64(at: 0), correct: Int(correct), count: Int(count))
    }
}
