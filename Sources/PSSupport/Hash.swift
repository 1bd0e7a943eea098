import CXXHash

// Hashes from libxxhash (Debian's libxxhash-dev; Sources/CXXHash).

/// XXH64 of `bytes`: the parameter digests of the run logs, the
/// configuration hash and the build hash the ranks compare at start-up.
/// Logs and scripts/digest-matrix compare these values across builds, so
/// this stays XXH64 (the algorithm of xxHash's specification; seed 0 unless given).
public func xxh64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
    XXH64(bytes.baseAddress, bytes.count, seed)
}

/// XXH3 (64-bit, seeded) of `count` bytes: the frame checksum's payload hash.
/// The plain entry point, which Debian builds for baseline x86-64 (SSE2),
/// not libxxhash's run-time dispatch: the dispatched AVX-512 variant hashes
/// 2.5 times faster alone, but on this project's machine (Cooper Lake) its
/// 512-bit multiplies lower the core's clock for what follows, and W=2 S=1
/// trained 7% slower with it (docs/benchmarks.md). Both give the same value.
@inline(__always)
public func xxh3(_ data: UnsafeRawPointer?, count: Int, seed: UInt64) -> UInt64 {
    XXH3_64bits_withSeed(data, count, seed)
}

/// XXH3 through libxxhash's run-time dispatch (AVX-512 here): for the
/// benchmark that shows why the frame checksum does not use it.
public func xxh3Dispatched(_ data: UnsafeRawPointer?, count: Int, seed: UInt64) -> UInt64 {
    #if arch(x86_64)
    return XXH3_64bits_withSeed_dispatch(data, count, seed)
    #else
    return XXH3_64bits_withSeed(data, count, seed)
    #endif
}
