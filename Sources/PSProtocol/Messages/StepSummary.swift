import PSNumerics

/// Worker -> every server, after its last gradient piece of a step: the sum
/// of its samples' losses, how many samples, and whether any gradient it
/// sent overflowed, and the loss scale its gradients carry (ssp and async
/// servers unscale each push with it). Payload: four f64.
public struct StepSummary: ControlMessage, Equatable {
    public static let kind = FrameKind.stepSummary
    public static let payloadBytes = 32
    public var lossSum: Double
    public var samples: Int
    public var overflow: Bool
    public var lossScale: Double

    public init(lossSum: Double, samples: Int, overflow: Bool, lossScale: Double = 1) {
        self.lossSum = lossSum; self.samples = samples; self.overflow = overflow; self.lossScale = lossScale
    }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(lossSum, at: 0); p.storeF64(Double(samples), at: 1); p.storeF64(overflow ? 1 : 0, at: 2); p.storeF64(lossScale, at: 3)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> StepSummary {
        let samples = p.loadF64(at: 1)
        guard samples >= 0 && samples <= Double(Int32.max) && samples == samples.rounded() else {
            throw FrameError.impossible(message: "step summary", problem: "claims \(samples) samples")
        }
        let scale = p.loadF64(at: 3)
        guard scale.isFinite && scale > 0 else { throw FrameError.impossible(message: "step summary", problem: "claims loss scale \(scale)") }
        return StepSummary(lossSum: p.loadF64(at: 0), samples: Int(samples), overflow: p.loadF64(at: 2) != 0, lossScale: scale)
    }
}
