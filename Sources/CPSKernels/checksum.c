// The frame checksum: 8 independent 64-bit lanes over 64-byte stripes, each
// stripe word mixed with a 32x32->64 multiply (the accumulate step of XXH3),
// the lanes scrambled every 1 KiB, merged with XXH64's merge and finished
// with XXH64's avalanche; the tail (< 64 bytes) goes through XXH64 seeded
// with the lanes. Every step is a lane-wise integer operation that AVX2 and
// AVX-512 run 4 or 8 lanes at a time, so it runs near memory speed. Its job
// is to catch damaged messages, not to resist an adversary.
#include "CPSKernels.h"
#include <string.h>

static const uint64_t KEY[8] = {
    0xbe4ba423396cfeb8ULL, 0x1cad21f72c81017cULL, 0xdb979083e96dd4deULL, 0x1f67b3b7a4a44072ULL,
    0x78e5c0cc4ee679cbULL, 0x2172ffcc7dd05a82ULL, 0x8e2443f7744608b8ULL, 0x4c263a81e69035e0ULL,
};
static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint32_t PRIME32_1 = 0x9E3779B1U;

static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

#define STRIPES_PER_BLOCK 16

__attribute__((always_inline)) static inline void accumulate(uint64_t *restrict acc, const uint8_t *restrict p, size_t stripes) {
    for (size_t s = 0; s < stripes; s++) {
        const uint8_t *q = p + s * 64;
        for (int i = 0; i < 8; i++) {
            uint64_t d = rd64(q + 8 * i);
            uint64_t k = d ^ KEY[i];
            acc[i ^ 1] += d;
            acc[i] += (k & 0xffffffffULL) * (k >> 32);
        }
    }
}

__attribute__((always_inline)) static inline void scramble(uint64_t *acc) {
    for (int i = 0; i < 8; i++) {
        uint64_t a = acc[i];
        a ^= a >> 47;
        a ^= KEY[7 - i];
        acc[i] = a * PRIME32_1;
    }
}

__attribute__((always_inline)) static inline uint64_t checksum_body(const void *data, size_t len, uint64_t seed) {
    static const uint8_t empty[1] = {0};   // an empty input may come as a null pointer (see xxh64.c)
    const uint8_t *p = len == 0 || !data ? empty : (const uint8_t *)data;
    uint64_t acc[8];
    for (int i = 0; i < 8; i++) acc[i] = KEY[i] ^ (seed + (uint64_t)i * P1);
    size_t stripes = len / 64;
    size_t blocks = stripes / STRIPES_PER_BLOCK;
    for (size_t b = 0; b < blocks; b++) {
        accumulate(acc, p + b * STRIPES_PER_BLOCK * 64, STRIPES_PER_BLOCK);
        scramble(acc);
    }
    accumulate(acc, p + blocks * STRIPES_PER_BLOCK * 64, stripes - blocks * STRIPES_PER_BLOCK);
    uint64_t h = seed ^ (uint64_t)len * P1;
    for (int i = 0; i < 8; i++) {
        h ^= rotl64(acc[i] * P2, 31) * P1;
        h = h * P1 + P4;
    }
    size_t done = stripes * 64;
    return pst_xxh64(p + done, len - done, h);
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static uint64_t checksum_avx512(const void *data, size_t len, uint64_t seed) { return checksum_body(data, len, seed); }

__attribute__((target("avx2")))
static uint64_t checksum_avx2(const void *data, size_t len, uint64_t seed) { return checksum_body(data, len, seed); }

static uint64_t checksum_generic(const void *data, size_t len, uint64_t seed) { return checksum_body(data, len, seed); }

typedef uint64_t (*checksum_fn)(const void *, size_t, uint64_t);
static checksum_fn chosen = 0;

static checksum_fn choose(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")) return checksum_avx512;
    if (__builtin_cpu_supports("avx2")) return checksum_avx2;
#endif
    return checksum_generic;
}

uint64_t pst_checksum64(const void *data, size_t len, uint64_t seed) {
    checksum_fn f = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (!f) { f = choose(); __atomic_store_n(&chosen, f, __ATOMIC_RELAXED); }
    return f(data, len, seed);
}

uint64_t pst_checksum64_generic(const void *data, size_t len, uint64_t seed) { return checksum_generic(data, len, seed); }

const char *pst_checksum64_variant(void) {
    checksum_fn f = choose();
    return f == checksum_avx512 ? "avx512" : f == checksum_avx2 ? "avx2" : "generic";
}

int pst_checksum64_variant_runs(int variant) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (variant == 2) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    if (variant == 1) return __builtin_cpu_supports("avx2");
#endif
    return variant == 0;
}

uint64_t pst_checksum64_with(int variant, const void *data, size_t len, uint64_t seed) {
    if (!pst_checksum64_variant_runs(variant)) return 0;
#if defined(__x86_64__)
    if (variant == 2) return checksum_avx512(data, len, seed);
    if (variant == 1) return checksum_avx2(data, len, seed);
#endif
    return checksum_generic(data, len, seed);
}
