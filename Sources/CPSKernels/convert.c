// FP32 <-> FP16 and FP32 <-> BF16 conversion of arrays, round to nearest
// even, in three builds chosen once at run time: AVX-512 (F16C/512-bit
// integer ops), AVX2 + F16C, and plain C. All give the same bits: NaNs come
// out quiet with the payload truncated, infinities and signed zeros are kept,
// FP16 subnormals are produced and read exactly, and BF16 keeps FP32
// subnormals (no flush to zero).
#include "CPSKernels.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---- scalar reference (also the plain-C build) ----------------------------

static inline uint16_t f32_to_f16_one(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7fffffff;
    uint16_t o;
    if (x >= 0x47800000u) {                 // |f| >= 65536, inf or NaN
        o = (x > 0x7f800000u) ? (uint16_t)(0x7e00 | ((x >> 13) & 0x3ff)) : 0x7c00;
    } else if (x < 0x38800000u) {           // below the smallest normal half: subnormal or zero
        const uint32_t magic_bits = 126u << 23;   // 0.5f: adding it rounds to the half subnormal grid
        float t, magic;
        memcpy(&t, &x, 4); memcpy(&magic, &magic_bits, 4);
        t += magic;
        uint32_t u; memcpy(&u, &t, 4);
        o = (uint16_t)(u - magic_bits);
    } else {
        uint32_t odd = (x >> 13) & 1;
        x += ((uint32_t)(15 - 127) << 23) + 0xfff;   // rebias, add half an ulp minus one
        x += odd;                                     // ties to even
        o = (uint16_t)(x >> 13);
    }
    return (uint16_t)(o | sign);
}

static inline float f16_to_f32_one(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0);
    } else if (exp == 0) {
        float v = (float)mant * 5.9604644775390625e-8f;   // mant * 2^-24, exact
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f; memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t f32_to_bf16_one(uint32_t x) {
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// The BF16 loops are plain integer code the compiler vectorises for each target.
#define BF16_LOOPS(suffix, attr)                                                              \
    attr static void to_bf16_##suffix(const float *src, uint16_t *dst, size_t n) {           \
        const uint32_t *s = (const uint32_t *)src;                                            \
        for (size_t i = 0; i < n; i++) {                                                      \
            uint32_t x = s[i];                                                                \
            uint32_t r = (x + 0x7fffu + ((x >> 16) & 1)) >> 16;                               \
            uint32_t q = (x >> 16) | 0x40;                                                    \
            dst[i] = (uint16_t)(((x & 0x7fffffffu) > 0x7f800000u) ? q : r);                  \
        }                                                                                     \
    }                                                                                         \
    attr static void from_bf16_##suffix(const uint16_t *src, float *dst, size_t n) {         \
        uint32_t *d = (uint32_t *)dst;                                                        \
        for (size_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;                         \
    }

BF16_LOOPS(generic, )
#if defined(__x86_64__)
BF16_LOOPS(avx2, __attribute__((target("avx2"))))
BF16_LOOPS(avx512, __attribute__((target("avx512f,avx512bw,avx512vl"))))
#endif

static void to_f16_generic(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_f16_one(src[i]);
}
static void from_f16_generic(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32_one(src[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c")))
static void to_f16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++) dst[i] = f32_to_f16_one(src[i]);
}
__attribute__((target("avx2,f16c")))
static void from_f16_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = f16_to_f32_one(src[i]);
}
__attribute__((target("avx512f")))
static void to_f16_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_si256((__m256i *)(dst + i), h);
    }
    for (; i < n; i++) dst[i] = f32_to_f16_one(src[i]);
}
__attribute__((target("avx512f")))
static void from_f16_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = f16_to_f32_one(src[i]);
}
#endif

typedef void (*to_half_fn)(const float *, uint16_t *, size_t);
typedef void (*from_half_fn)(const uint16_t *, float *, size_t);
static struct { to_half_fn to_f16, to_bf16; from_half_fn from_f16, from_bf16; const char *name; } impl;
static int impl_ready = 0;

static void choose_impl(int force_generic) {
    impl.to_f16 = to_f16_generic; impl.from_f16 = from_f16_generic;
    impl.to_bf16 = to_bf16_generic; impl.from_bf16 = from_bf16_generic;
    impl.name = "generic";
#if defined(__x86_64__)
    if (force_generic) return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        impl.to_f16 = to_f16_avx512; impl.from_f16 = from_f16_avx512;
        impl.to_bf16 = to_bf16_avx512; impl.from_bf16 = from_bf16_avx512;
        impl.name = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) {
        impl.to_f16 = to_f16_avx2; impl.from_f16 = from_f16_avx2;
        impl.to_bf16 = to_bf16_avx2; impl.from_bf16 = from_bf16_avx2;
        impl.name = "avx2+f16c";
    }
#else
    (void)force_generic;
#endif
}

static inline void ready(void) {
    if (!__atomic_load_n(&impl_ready, __ATOMIC_ACQUIRE)) { choose_impl(0); __atomic_store_n(&impl_ready, 1, __ATOMIC_RELEASE); }
}

void pst_f32_to_f16(const float *src, uint16_t *dst, size_t n) { ready(); impl.to_f16(src, dst, n); }
void pst_f16_to_f32(const uint16_t *src, float *dst, size_t n) { ready(); impl.from_f16(src, dst, n); }
void pst_f32_to_bf16(const float *src, uint16_t *dst, size_t n) { ready(); impl.to_bf16(src, dst, n); }
void pst_bf16_to_f32(const uint16_t *src, float *dst, size_t n) { ready(); impl.from_bf16(src, dst, n); }
const char *pst_convert_variant(void) { ready(); return impl.name; }

void pst_f32_to_f16_generic(const float *src, uint16_t *dst, size_t n) { to_f16_generic(src, dst, n); }
void pst_f16_to_f32_generic(const uint16_t *src, float *dst, size_t n) { from_f16_generic(src, dst, n); }
void pst_f32_to_bf16_generic(const float *src, uint16_t *dst, size_t n) { to_bf16_generic(src, dst, n); }

// Rounds in place to the nearest value a half format can hold (what storing
// and reloading would give), in blocks through a small stack buffer.
void pst_round_to_f16(float *x, size_t n) {
    uint16_t tmp[2048];
    for (size_t i = 0; i < n; i += 2048) {
        size_t m = n - i < 2048 ? n - i : 2048;
        pst_f32_to_f16(x + i, tmp, m);
        pst_f16_to_f32(tmp, x + i, m);
    }
}
void pst_round_to_bf16(float *x, size_t n) {
    uint16_t tmp[2048];
    for (size_t i = 0; i < n; i += 2048) {
        size_t m = n - i < 2048 ? n - i : 2048;
        pst_f32_to_bf16(x + i, tmp, m);
        pst_bf16_to_f32(tmp, x + i, m);
    }
}


// 1 if any |x| is not below `limit` (NaN included): the values that a cast
// to a format whose overflow threshold is `limit` would turn into inf/NaN.
int pst_any_not_below(const float *x, size_t n, float limit) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= !(__builtin_fabsf(x[i]) < limit);
    return bad;
}
