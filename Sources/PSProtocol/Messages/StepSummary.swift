import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog

/// Worker -> every server, after its last gradient piece of a step: the sum
/// of its samples' losses, how many samples, and whether any gradient it
/// sent overflowed. Payload: three f64.
public struct StepSummary: ControlMessage, Equatable {
    public static let kind = FrameKind.stepInfo
    public static let payloadBytes = 24
    public var lossSum: Double
    public var samples: Int
    public var overflow: Bool

    public init(lossSum: Double, samples: Int, overflow: Bool) {
        self.lossSum = lossSum; self.samples = samples; self.overflow = overflow
    }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(lossSum, at: 0); p.storeF64(Double(samples), at: 1); p.storeF64(overflow ? 1 : 0, at: 2)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> StepSummary {
        let samples = p.loadF64(at: 1)
        guard samples >= 0 && samples <= Double(Int32.max) && samples == samples.rounded() else {
            throw FrameError.impossible(message: "step summary", problem: "claims \(samples) samples")
        }
        return StepSummary(lossSum: p.loadF64(at: 0), samples: Int(samples), overflow: p.loadF64(at: 2) != 0)
    }
}
