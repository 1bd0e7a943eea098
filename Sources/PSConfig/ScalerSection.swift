import PSNumerics

/// [scaler]: dynamic loss scaling (FP16; `maxSkipsAtMin` applies to every
/// precision).
public struct ScalerSection: ConfigSection {
    /// scaler.initial
    public internal(set) var initialScale = 65536.0
    /// scaler.growth_factor
    public internal(set) var growthFactor = 2.0
    /// scaler.backoff_factor
    public internal(set) var backoffFactor = 0.5
    /// scaler.growth_interval
    public internal(set) var growthInterval = 2000
    /// scaler.hysteresis
    public internal(set) var hysteresis = 2
    /// scaler.min
    public internal(set) var minScale = 1.0
    /// scaler.max
    public internal(set) var maxScale = 16_777_216.0
    /// scaler.max_skips_at_min
    public internal(set) var maxSkipsAtMin = 50

    public init() {}

    /// What LossScaler takes.
    public var settings: LossScaler.Settings {
        var s = LossScaler.Settings()
        s.initialScale = initialScale; s.growthFactor = growthFactor
        s.backoffFactor = backoffFactor; s.growthInterval = growthInterval
        s.hysteresis = hysteresis; s.minScale = minScale; s.maxScale = maxScale
        s.maxSkipsAtMin = maxSkipsAtMin
        return s
    }

    static let lossScale = ConfigRange.closed(1e-6, 1e12)

    static let name = "scaler"
    static let keys: [ConfigKey<ScalerSection>] = [
        .number("initial", \.initialScale, lossScale, "initial loss scale (fp16)"),
        .number("growth_factor", \.growthFactor, .closed(1, 1000), "scale multiplier after growth_interval finite steps"),
        .number("backoff_factor", \.backoffFactor, .open(0, 1), "scale multiplier when backing off"),
        .integer("growth_interval", \.growthInterval, .closed(1, 1_000_000_000), "consecutive finite steps before the scale grows"),
        .integer("hysteresis", \.hysteresis, .closed(1, 1_000_000), "consecutive overflows before the scale backs off"),
        .number("min", \.minScale, lossScale, "smallest loss scale"),
        .number("max", \.maxScale, lossScale, "largest loss scale (2^24)"),
        .integer("max_skips_at_min", \.maxSkipsAtMin, .closed(1, 1_000_000), "consecutive overflows at the minimum scale before the run stops as diverged"),
    ]
}
