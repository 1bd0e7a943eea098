
/// A byte stage of the codec pipeline (docs/formats.md): it turns the bytes
/// the stage before it produced into fewer (or reordered) bytes, and back.
/// One file each: Shuffle.swift, Zstd.swift. The value stages before them,
/// the precision cast and TopK.swift, turn FP32 values into bytes.
/// Adding a stage: a file with a class conforming to this protocol, a bit in
/// `CodecStages`, a key in the compression section, and its place in
/// `PieceCodec.stages` (docs/architecture.md, "how to add a codec stage").
public protocol CodecStage: AnyObject {
    /// The stage's bit in a frame's codec byte.
    var flag: CodecStages { get }
    /// Whether the run's settings turn this stage on for encoding.
    var enabled: Bool { get }
    /// Encodes `length` bytes laid out as `fields` into `dst` (room for
    /// `capacity` bytes) and returns the new length, or nil when the stage
    /// does not pay for this payload; the payload then goes on unchanged.
    func encode(_ src: UnsafeRawPointer, length: Int, fields: PayloadFields, into dst: UnsafeMutableRawPointer, capacity: Int) -> Int?
    /// Decodes `length` bytes into `dst` (room for `limit` bytes, the most
    /// the payload can hold) and returns the decoded length. `fields` reads
    /// the layout of the decoded payload, checking it, for stages that need it.
    func decode(_ src: UnsafeRawPointer, length: Int, limit: Int, fields: () throws -> PayloadFields,
                into dst: UnsafeMutableRawPointer) throws -> Int
}

/// How a payload's bytes divide into fields: `leading` bytes kept as they
/// are (top-k's count), then one or two planes of `count` elements of `size`
/// bytes (a dense piece's values; top-k's indices, then its values). Kept
/// inline, without an array: it is made for every piece.
public struct PayloadFields {
    public var leading: Int
    public var first: (count: Int, size: Int)
    public var second: (count: Int, size: Int)
    public init(leading: Int = 0, _ first: (count: Int, size: Int), _ second: (count: Int, size: Int) = (0, 0)) {
        self.leading = leading; self.first = first; self.second = second
    }
}
