import CZstd

/// zstd at the configured level, with its content checksum on; kept for a
/// payload only when it makes it smaller.
public final class Zstd: CodecStage {
    public let flag = CodecStages.zstd
    public let enabled: Bool
    let cctx: OpaquePointer
    let dctx: OpaquePointer

    public init(level: Int) {
        enabled = level > 0
        cctx = ZSTD_createCCtx()!
        dctx = ZSTD_createDCtx()!
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(level))
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
    }

    deinit { ZSTD_freeCCtx(cctx); ZSTD_freeDCtx(dctx) }

    public func encode(_ src: UnsafeRawPointer, length: Int, fields: PayloadFields, into dst: UnsafeMutableRawPointer, capacity: Int) -> Int? {
        let c = ZSTD_compress2(cctx, dst, capacity, src, length)
        return ZSTD_isError(c) == 0 && c < length ? c : nil
    }

    public func decode(_ src: UnsafeRawPointer, length: Int, limit: Int, fields: () throws -> PayloadFields,
                       into dst: UnsafeMutableRawPointer) throws -> Int {
        let size = ZSTD_getFrameContentSize(src, length)
        guard size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN else {
            throw CodecError.zstdWithoutSize
        }
        guard size <= UInt64(limit) else { throw CodecError.zstdTooLarge(claimed: size, limit: limit) }
        let d = ZSTD_decompressDCtx(dctx, dst, Int(size), src, length)
        if ZSTD_isError(d) != 0 { throw CodecError.zstdFailed(String(cString: ZSTD_getErrorName(d))) }
        guard d == Int(size) else { throw CodecError.zstdSize(got: d, header: size) }
        return d
    }
}
