import PSCodec

/// [compression]: how gradients and parameters travel.
public struct CompressionSection: ConfigSection {
    /// compression.topk: fraction of each gradient piece sent (0: dense).
    public internal(set) var topk = 0.0
    /// compression.shuffle
    public internal(set) var shuffle = true
    /// compression.zstd_level (0: no zstd)
    public internal(set) var zstdLevel = 1
    /// compression.adaptive
    public internal(set) var adaptive = true
    /// compression.link_gbps
    public internal(set) var linkGbps = 10.0

    public init() {}

    /// What the codec takes.
    public var settings: CodecSettings {
        var c = CodecSettings()
        c.topk = topk
        c.shuffle = shuffle
        c.zstdLevel = zstdLevel
        c.adaptiveBypass = adaptive
        c.linkBytesPerSecond = linkGbps * 1e9 / 8
        return c
    }

    static let name = "compression"
    static let keys: [ConfigKey<CompressionSection>] = [
        .number("topk", \.topk, .closed(0, 1), "fraction of each gradient piece sent (largest magnitudes, with error feedback); 0: dense"),
        .flag("shuffle", \.shuffle, "byte-shuffle payloads before zstd"),
        .integer("zstd_level", \.zstdLevel, .closed(0, 19), "zstd level (0: no zstd)"),
        .flag("adaptive", \.adaptive, "skip shuffle and zstd for a piece when they cost more time than they save on the link"),
        .number("link_gbps", \.linkGbps, .openClosed(0, 1_000_000), "link speed the adaptive decision assumes, Gbit/s"),
    ]
}
