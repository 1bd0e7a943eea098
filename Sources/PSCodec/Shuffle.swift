import CPSKernels

/// Byte shuffle: within each field plane, byte j of every element is
/// grouped together (byte planes), which makes floats compress far better.
/// Same length out as in; the leading bytes are copied as they are.
public final class Shuffle: CodecStage {
    public let flag = CodecStages.shuffle
    public let enabled: Bool
    public init(enabled: Bool) { self.enabled = enabled }

    public func encode(_ src: UnsafeRawPointer, length: Int, fields: PayloadFields, into dst: UnsafeMutableRawPointer, capacity: Int) -> Int? {
        Self.apply(pst_shuffle, src, fields, dst)
        return length
    }

    public func decode(_ src: UnsafeRawPointer, length: Int, limit: Int, fields: () throws -> PayloadFields,
                       into dst: UnsafeMutableRawPointer) throws -> Int {
        Self.apply(pst_unshuffle, src, try fields(), dst)
        return length
    }

    static func apply(_ f: (UnsafePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, Int, Int) -> Void,
                      _ src: UnsafeRawPointer, _ fields: PayloadFields, _ dst: UnsafeMutableRawPointer) {
        if fields.leading > 0 { dst.copyMemory(from: src, byteCount: fields.leading) }
        let s = src.assumingMemoryBound(to: UInt8.self), d = dst.assumingMemoryBound(to: UInt8.self)
        let a = fields.first, b = fields.second, second = fields.leading + a.count * a.size
        f(s + fields.leading, d + fields.leading, a.count, a.size)
        if b.count > 0 { f(s + second, d + second, b.count, b.size) }
    }
}
