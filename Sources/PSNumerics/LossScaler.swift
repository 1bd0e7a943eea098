import CPSKernels

/// The number format of what workers hold and what travels on the wire.
/// Servers always keep FP32 master weights and FP32 optimizer state.
public enum Precision: String, CaseIterable {
    case fp32, fp16, bf16
    public var elementType: ElementType {
        switch self { case .fp32: return .f32; case .fp16: return .f16; case .bf16: return .bf16 }
    }
    /// Only FP16 needs a dynamic loss scale: BF16 has FP32's exponent range.
    public var usesLossScaling: Bool { self == .fp16 }

    /// Rounds `n` floats in place to this format (nothing for FP32).
    @inline(__always)
    public func round(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .fp32: break
        case .fp16: pst_round_to_f16(p, n)
        case .bf16: pst_round_to_bf16(p, n)
        }
    }
}

/// Dynamic loss scaling for FP16 training, with the knobs of PyTorch's
/// GradScaler and DeepSpeed's fp16 mode. The workers multiply the loss by
/// `scale`; the servers divide the summed gradient by it. Every server runs
/// the same scaler on the same agreed overflow decisions, so all hold the
/// same state; it is part of the training state (checkpoints save it).
///
/// Rules, per step:
/// - finite gradients: `goodSteps += 1`, the hysteresis budget is refilled;
///   after `growthInterval` consecutive finite steps the scale grows by
///   `growthFactor` (capped at `maxScale`) and `goodSteps` restarts at 0.
/// - overflow (a non-finite value in any worker's gradient or in a sum): the
///   step is skipped (`skipped += 1`), `goodSteps` restarts at 0, and the
///   hysteresis budget shrinks by one; when it reaches 0 the scale backs off
///   by `backoffFactor` (floored at `minScale`) and the budget is refilled. So
///   with hysteresis 2 the scale backs off on the 2nd consecutive overflow.
public struct LossScaler: Equatable {
    public struct Settings: Equatable {
        public var initialScale = 65536.0
        public var growthFactor = 2.0
        public var backoffFactor = 0.5
        public var growthInterval = 2000
        public var hysteresis = 2
        public var minScale = 1.0
        public var maxScale = 16_777_216.0
        /// Consecutive overflows at `minScale` after which the run is declared diverged.
        public var maxSkipsAtMin = 50
        public init() {}
    }

    public let settings: Settings
    /// Whether the scale moves at all (FP16); otherwise it stays 1 and an
    /// overflow only skips the step.
    public let dynamic: Bool
    public private(set) var scale: Double
    public private(set) var goodSteps = 0
    public private(set) var hysteresisLeft: Int
    public private(set) var skipped = 0
    /// Consecutive overflows while the scale is at its minimum.
    public private(set) var overflowsAtMin = 0
    /// The last step whose gradients were finite (-1: none yet).
    public private(set) var lastFiniteStep = -1

    public init(settings: Settings, dynamic: Bool) {
        self.settings = settings
        self.dynamic = dynamic
        scale = dynamic ? settings.initialScale : 1
        hysteresisLeft = settings.hysteresis
    }

    /// The state a checkpoint keeps.
    /// What a checkpoint keeps of the scaler (the manifest's `scaler`).
    public struct State: Codable, Equatable {
        public var scale: Double
        public var goodSteps: Int
        public var hysteresisLeft: Int
        public var skipped: Int
        public var overflowsAtMin: Int
        public var lastFiniteStep: Int
        public init(scale: Double, goodSteps: Int, hysteresisLeft: Int, skipped: Int, overflowsAtMin: Int, lastFiniteStep: Int) {
            self.scale = scale; self.goodSteps = goodSteps; self.hysteresisLeft = hysteresisLeft; self.skipped = skipped
            self.overflowsAtMin = overflowsAtMin; self.lastFiniteStep = lastFiniteStep
        }
    }

    public var state: State {
        State(scale: scale, goodSteps: goodSteps, hysteresisLeft: hysteresisLeft, skipped: skipped,
                             overflowsAtMin: overflowsAtMin, lastFiniteStep: lastFiniteStep)
    }

    /// Continues from a checkpoint's state.
    public mutating func restore(_ s: State) {
        scale = s.scale; goodSteps = s.goodSteps; hysteresisLeft = s.hysteresisLeft; skipped = s.skipped
        overflowsAtMin = s.overflowsAtMin; lastFiniteStep = s.lastFiniteStep
    }

    public enum Change: Equatable { case none, grew(from: Double, to: Double), backedOff(from: Double, to: Double) }

    /// Records step `step`'s agreed decision and returns what happened to the scale.
    @discardableResult
    public mutating func update(step: Int, overflow: Bool) -> Change {
        if !overflow {
            lastFiniteStep = step
            overflowsAtMin = 0
            hysteresisLeft = settings.hysteresis
            guard dynamic else { return .none }
            goodSteps += 1
            if goodSteps >= settings.growthInterval {
                goodSteps = 0
                let old = scale
                scale = min(settings.maxScale, scale * settings.growthFactor)
                return scale != old ? .grew(from: old, to: scale) : .none
            }
            return .none
        }
        skipped += 1
        goodSteps = 0
        let atMin = !dynamic || scale <= settings.minScale
        overflowsAtMin = atMin ? overflowsAtMin + 1 : 0
        guard dynamic else { return .none }
        hysteresisLeft -= 1
        if hysteresisLeft <= 0 {
            hysteresisLeft = settings.hysteresis
            let old = scale
            scale = max(settings.minScale, scale * settings.backoffFactor)
            return scale != old ? .backedOff(from: old, to: scale) : .none
        }
        return .none
    }

    /// True once the scale sits at its minimum and steps have kept
    /// overflowing for `maxSkipsAtMin` steps: the divergence is real.
    public var diverged: Bool { overflowsAtMin >= settings.maxSkipsAtMin }
}
