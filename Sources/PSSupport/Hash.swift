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
/// On x86_64 through libxxhash's run-time dispatch (AVX-512, AVX2 or SSE2,
/// all giving the same value): Debian builds the plain XXH3_64bits_withSeed
/// entry point for baseline x86-64 (SSE2), which on this project's machine
/// runs at a third of the dispatched speed (docs/benchmarks.md).
@inline(__always)
public func xxh3(_ data: UnsafeRawPointer?, count: Int, seed: UInt64) -> UInt64 {
    #if arch(x86_64)
    return XXH3_64bits_withSeed_dispatch(data, count, seed)
    #else
    return XXH3_64bits_withSeed(data, count, seed)
    #endif
}
