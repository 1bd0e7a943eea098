// Winograd convolution F(2x2, kxk) for stride-1 3x3 and 5x5 kernels
// (Sources/PSNumerics/Layers/Conv2d.swift calls it; Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016). A tile of
// alpha x alpha inputs (alpha = k + 1) gives 2 x 2 outputs:
//   y = A^T [ (G w G^T) . (B^T d B) ] A
// so the multiplications of a layer become alpha^2 independent sgemms over
// (out x in) x (in x tiles), 36/(4 x 25) of im2col's for 5x5 and 16/(4 x 9)
// for 3x3. Backward is the same algorithm's exact gradient:
//   M' = A dy A^T,  dV = U^T M' (sgemm),  dx += B dV B^T,
//   dU = sum over tiles of M' V^T (sgemm),  dw = G^T dU G.
// The matrices come from the interpolation points 0, 1, -1 (3x3) and
// 0, 1, -1, 2, -2 (5x5) and infinity; B^T is integer, G carries the
// fractions (/scripts/lib has no generator: the formulas below are checked
// against im2col in LayerTests).
//
// Layouts. Samples are processed in chunks of g (a multiple of 8): tile t of
// a chunk is (tile index) x g + (sample in the chunk), so the 8 lanes of a
// vector are 8 samples at the same place and every transform is plain
// vector arithmetic. V and M are [alpha^2][channels][T], T = tiles x g.
// Every FP32 operation is written out and the compiler may not contract
// them (FP_CONTRACT OFF), so the AVX-512, AVX2 and plain builds (chosen at
// run time) give the same bits.
#include "CPSKernels.h"
#include <string.h>
#pragma STDC FP_CONTRACT OFF

#define L 8

// ---- 1-D transforms on vectors of L lanes; `s` is the distance between the operands ----
// Each loads all its operands before it stores (the vectors keep the
// compiler from interleaving them), so `in` and `out` may be anywhere.

typedef float vec __attribute__((vector_size(4 * L)));
static inline vec ld(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, vec v) { memcpy(p, &v, sizeof v); }

// out[i] = (B^T in)[i]
static inline void bt4(const float *in, size_t s, float *out, size_t os) {
    vec d0 = ld(in), d1 = ld(in + s), d2 = ld(in + 2 * s), d3 = ld(in + 3 * s);
    st(out, d0 - d2); st(out + os, d1 + d2); st(out + 2 * os, d2 - d1); st(out + 3 * os, d3 - d1);
}
static inline void bt6(const float *in, size_t s, float *out, size_t os) {
    vec d0 = ld(in), d1 = ld(in + s), d2 = ld(in + 2 * s), d3 = ld(in + 3 * s), d4 = ld(in + 4 * s), d5 = ld(in + 5 * s);
    st(out, 4.0f * d0 - 5.0f * d2 + d4);
    st(out + os, 4.0f * d1 + 4.0f * d2 - d3 - d4);
    st(out + 2 * os, 4.0f * d2 - 4.0f * d1 + d3 - d4);
    st(out + 3 * os, 2.0f * d3 - 2.0f * d1 - d2 + d4);
    st(out + 4 * os, 2.0f * d1 - 2.0f * d3 - d2 + d4);
    st(out + 5 * os, 4.0f * d1 - 5.0f * d3 + d5);
}
// out[i] = (B in)[i]: the transpose, for the input gradient
static inline void b4(const float *in, size_t s, float *out, size_t os) {
    vec v0 = ld(in), v1 = ld(in + s), v2 = ld(in + 2 * s), v3 = ld(in + 3 * s);
    st(out, v0); st(out + os, v1 - v2 - v3); st(out + 2 * os, v1 + v2 - v0); st(out + 3 * os, v3);
}
static inline void b6(const float *in, size_t s, float *out, size_t os) {
    vec v0 = ld(in), v1 = ld(in + s), v2 = ld(in + 2 * s), v3 = ld(in + 3 * s), v4 = ld(in + 4 * s), v5 = ld(in + 5 * s);
    st(out, 4.0f * v0);
    st(out + os, 4.0f * v1 - 4.0f * v2 - 2.0f * v3 + 2.0f * v4 + 4.0f * v5);
    st(out + 2 * os, 4.0f * v1 + 4.0f * v2 - 5.0f * v0 - v3 - v4);
    st(out + 3 * os, v2 - v1 + 2.0f * v3 - 2.0f * v4 - 5.0f * v5);
    st(out + 4 * os, v0 - v1 - v2 + v3 + v4);
    st(out + 5 * os, v5);
}
// out[0..1] = (A^T in)
static inline void at4(const float *in, size_t s, float *out, size_t os) {
    vec m0 = ld(in), m1 = ld(in + s), m2 = ld(in + 2 * s), m3 = ld(in + 3 * s);
    st(out, m0 + m1 + m2); st(out + os, m1 - m2 + m3);
}
static inline void at6(const float *in, size_t s, float *out, size_t os) {
    vec m0 = ld(in), m1 = ld(in + s), m2 = ld(in + 2 * s), m3 = ld(in + 3 * s), m4 = ld(in + 4 * s), m5 = ld(in + 5 * s);
    st(out, m0 + m1 + m2 + m3 + m4);
    st(out + os, m1 - m2 + 2.0f * m3 - 2.0f * m4 + m5);
}
// out[0..alpha) = (A in), in has 2 entries: the output gradient's transform
static inline void a4(const float *in, size_t s, float *out, size_t os) {
    vec y0 = ld(in), y1 = ld(in + s);
    st(out, y0); st(out + os, y0 + y1); st(out + 2 * os, y0 - y1); st(out + 3 * os, y1);
}
static inline void a6(const float *in, size_t s, float *out, size_t os) {
    vec y0 = ld(in), y1 = ld(in + s);
    st(out, y0); st(out + os, y0 + y1); st(out + 2 * os, y0 - y1);
    st(out + 3 * os, y0 + 2.0f * y1); st(out + 4 * os, y0 - 2.0f * y1); st(out + 5 * os, y1);
}

// G (alpha x k), in double: the weight transforms run once per step.
static const double G4[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G6[6][5] = {
    {1.0 / 4, 0, 0, 0, 0},
    {1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6},
    {1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
    {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
    {0, 0, 0, 0, 1},
};

// The weight transforms, once per step for every (out, in) pair: written
// for a constant k (inlined into a copy per kernel size) so the compiler
// unrolls them.
static inline __attribute__((always_inline)) void weights_k(const pst_wino *s, const float *w, float *u, const int k,
                                                            const double (*G)[k]) {
    const int a = k + 1;
    const size_t plane = (size_t)s->out * s->c, pairs = plane;
    for (size_t p = 0; p < pairs; p++) {
        const float *g = w + p * k * k;
        double t[6][5];  // G g
        for (int i = 0; i < a; i++)
            for (int j = 0; j < k; j++) {
                double acc = 0;
                for (int r = 0; r < k; r++) acc += G[i][r] * g[r * k + j];
                t[i][j] = acc;
            }
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++) {
                double acc = 0;
                for (int r = 0; r < k; r++) acc += t[i][r] * G[j][r];
                u[(size_t)(i * a + j) * plane + p] = (float)acc;
            }
    }
}

static inline __attribute__((always_inline)) void weight_grad_k(const pst_wino *s, const float *du, float *dw, const int k,
                                                                const double (*G)[k]) {
    const int a = k + 1;
    const size_t plane = (size_t)s->out * s->c, pairs = plane;
    for (size_t p = 0; p < pairs; p++) {
        double d[36];
        for (int e = 0; e < a * a; e++) d[e] = du[(size_t)e * plane + p];
        double t[5][6];  // G^T dU
        for (int i = 0; i < k; i++)
            for (int j = 0; j < a; j++) {
                double acc = 0;
                for (int r = 0; r < a; r++) acc += G[r][i] * d[r * a + j];
                t[i][j] = acc;
            }
        float *g = dw + p * k * k;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                double acc = 0;
                for (int r = 0; r < a; r++) acc += t[i][r] * G[r][j];
                g[i * k + j] = (float)acc;
            }
    }
}

int pst_wino_supported(int k, int stride) { return stride == 1 && (k == 3 || k == 5); }

// The (k+1)^2 planes of V and M are read or written together, one vector
// from each. Planes a multiple of 4 KiB apart would all fall into the same
// few L1 sets (3.5 ms against 1.2 ms for the 5x5 output transform of 32
// samples here), so each plane starts one cache line later than the last
// 4 KiB boundary would put it.
size_t pst_wino_plane(size_t floats) { return (floats + 1023) / 1024 * 1024 + 16; }

void pst_wino_weights(const pst_wino *s, const float *w, float *u) {
    if (s->k == 3) weights_k(s, w, u, 3, G4); else weights_k(s, w, u, 5, G6);
}

void pst_wino_weight_grad(const pst_wino *s, const float *du, float *dw) {
    if (s->k == 3) weight_grad_k(s, du, dw, 3, G4); else weight_grad_k(s, du, dw, 5, G6);
}

// ---- the per-chunk transforms, in three builds ----

// Padded, transposed input of a chunk: [c][ph][pw][g], ph = 2 th + k - 1.
#define WINO_LOOPS(suffix, attr)                                                                               \
    attr static void input_##suffix(const pst_wino *s, const float *x, int n, int g, float *xt, float *v) {     \
        const int a = s->k + 1, c = s->c, h = s->h, w = s->w, th = s->th, tw = s->tw;                          \
        const int ph = 2 * th + a - 2, pw = 2 * tw + a - 2;                                                    \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)c * T);                                           \
        memset(xt, 0, sizeof(float) * (size_t)c * ph * pw * g);                                                \
        for (int j = 0; j < n; j++)                                                                            \
            for (int ch = 0; ch < c; ch++)                                                                     \
                for (int y = 0; y < h; y++) {                                                                  \
                    const float *src = x + (((size_t)j * c + ch) * h + y) * w;                                 \
                    float *dst = xt + (((size_t)ch * ph + y + s->pad) * pw + s->pad) * g + j;                  \
                    for (int xx = 0; xx < w; xx++) dst[(size_t)xx * g] = src[xx];                              \
                }                                                                                              \
        float tmp[36 * L];                                                                                     \
        for (int ch = 0; ch < c; ch++)                                                                         \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                       \
                        const float *d = xt + (((size_t)ch * ph + 2 * ty) * pw + 2 * tx) * g + l0;             \
                        /* rows: tmp[i][j] = sum_r BT[i][r] d[r][j] */                                        \
                        for (int j = 0; j < a; j++) {                                                          \
                            if (a == 6) bt6(d + (size_t)j * g, (size_t)pw * g, tmp + j * L, 6 * L);            \
                            else bt4(d + (size_t)j * g, (size_t)pw * g, tmp + j * L, 4 * L);                   \
                        }                                                                                      \
                        /* columns: V[i][j] = sum_r tmp[i][r] BT[j][r], straight into the planes */           \
                        float *dst = v + (size_t)ch * T + (size_t)(ty * tw + tx) * g + l0;                     \
                        for (int i = 0; i < a; i++) {                                                          \
                            if (a == 6) bt6(tmp + i * 6 * L, L, dst + (size_t)i * 6 * plane, plane);           \
                            else bt4(tmp + i * 4 * L, L, dst + (size_t)i * 4 * plane, plane);                  \
                        }                                                                                      \
                    }                                                                                          \
    }                                                                                                          \
    attr static void output_##suffix(const pst_wino *s, const float *m, const float *bias, int n, int g,       \
                                     float *yt, float *y) {                                                    \
        const int a = s->k + 1, out = s->out, oh = s->oh, ow = s->ow, th = s->th, tw = s->tw;                  \
        const int eh = 2 * th, ew = 2 * tw;                                                                    \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)out * T);                                         \
        float tmp[12 * L], res[4 * L];                                                                        \
        for (int o = 0; o < out; o++)                                                                          \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                       \
                        /* tmp[r][j] = sum_i AT[r][i] M[i][j] (2 x a), straight from the planes */           \
                        const float *src = m + (size_t)o * T + (size_t)(ty * tw + tx) * g + l0;                \
                        for (int j = 0; j < a; j++) {                                                          \
                            if (a == 6) at6(src + (size_t)j * plane, 6 * plane, tmp + j * L, 6 * L);           \
                            else at4(src + (size_t)j * plane, 4 * plane, tmp + j * L, 4 * L);                  \
                        }                                                                                      \
                        for (int r = 0; r < 2; r++) {                                                          \
                            if (a == 6) at6(tmp + r * 6 * L, L, res + r * 2 * L, L);                           \
                            else at4(tmp + r * 4 * L, L, res + r * 2 * L, L);                                  \
                        }                                                                                      \
                        float *d = yt + (((size_t)o * eh + 2 * ty) * ew + 2 * tx) * g + l0;                    \
                        for (int r = 0; r < 2; r++)                                                            \
                            for (int cc = 0; cc < 2; cc++) {                                                   \
                                float *dst = d + ((size_t)r * ew + cc) * g;                                    \
                                for (int q = 0; q < L; q++) dst[q] = res[(r * 2 + cc) * L + q];                \
                            }                                                                                  \
                    }                                                                                          \
        for (int j = 0; j < n; j++)                                                                            \
            for (int o = 0; o < out; o++) {                                                                    \
                const float b = bias[o];                                                                       \
                for (int yy = 0; yy < oh; yy++) {                                                              \
                    float *dst = y + (((size_t)j * out + o) * oh + yy) * ow;                                   \
                    const float *src = yt + (((size_t)o * eh + yy) * ew) * g + j;                              \
                    for (int xx = 0; xx < ow; xx++) dst[xx] = src[(size_t)xx * g] + b;                         \
                }                                                                                              \
            }                                                                                                  \
    }                                                                                                          \
    attr static void output_grad_##suffix(const pst_wino *s, const float *dy, int n, int g, float *dyt,        \
                                          float *mg) {                                                         \
        const int a = s->k + 1, out = s->out, oh = s->oh, ow = s->ow, th = s->th, tw = s->tw;                  \
        const int eh = 2 * th, ew = 2 * tw;                                                                    \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)out * T);                                         \
        memset(dyt, 0, sizeof(float) * (size_t)out * eh * ew * g);                                             \
        for (int j = 0; j < n; j++)                                                                            \
            for (int o = 0; o < out; o++)                                                                      \
                for (int y = 0; y < oh; y++) {                                                                 \
                    const float *src = dy + (((size_t)j * out + o) * oh + y) * ow;                             \
                    float *dst = dyt + (((size_t)o * eh + y) * ew) * g + j;                                    \
                    for (int xx = 0; xx < ow; xx++) dst[(size_t)xx * g] = src[xx];                             \
                }                                                                                              \
        float tmp[12 * L];                                                                                     \
        for (int o = 0; o < out; o++)                                                                          \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                       \
                        const float *d = dyt + (((size_t)o * eh + 2 * ty) * ew + 2 * tx) * g + l0;             \
                        /* tmp[i][c] = sum_r A[i][r] d[r][c] (a x 2) */                                       \
                        for (int cc = 0; cc < 2; cc++) {                                                       \
                            if (a == 6) a6(d + (size_t)cc * g, (size_t)ew * g, tmp + cc * L, 2 * L);           \
                            else a4(d + (size_t)cc * g, (size_t)ew * g, tmp + cc * L, 2 * L);                  \
                        }                                                                                      \
                        float *dst = mg + (size_t)o * T + (size_t)(ty * tw + tx) * g + l0;                     \
                        for (int i = 0; i < a; i++) {                                                          \
                            if (a == 6) a6(tmp + i * 2 * L, L, dst + (size_t)i * 6 * plane, plane);            \
                            else a4(tmp + i * 2 * L, L, dst + (size_t)i * 4 * plane, plane);                   \
                        }                                                                                      \
                    }                                                                                          \
    }                                                                                                          \
    attr static void input_grad_##suffix(const pst_wino *s, const float *dv, int n, int g, float *xt,         \
                                         float *dx) {                                                          \
        const int a = s->k + 1, c = s->c, h = s->h, w = s->w, th = s->th, tw = s->tw;                          \
        const int ph = 2 * th + a - 2, pw = 2 * tw + a - 2;                                                    \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)c * T);                                           \
        memset(xt, 0, sizeof(float) * (size_t)c * ph * pw * g);                                                \
        float tmp[36 * L], res[36 * L];                                                                      \
        for (int ch = 0; ch < c; ch++)                                                                         \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                       \
                        const float *src = dv + (size_t)ch * T + (size_t)(ty * tw + tx) * g + l0;              \
                        for (int j = 0; j < a; j++) {                                                          \
                            if (a == 6) b6(src + (size_t)j * plane, 6 * plane, tmp + j * L, 6 * L);            \
                            else b4(src + (size_t)j * plane, 4 * plane, tmp + j * L, 4 * L);                   \
                        }                                                                                      \
                        for (int i = 0; i < a; i++) {                                                          \
                            if (a == 6) b6(tmp + i * 6 * L, L, res + i * 6 * L, L);                            \
                            else b4(tmp + i * 4 * L, L, res + i * 4 * L, L);                                   \
                        }                                                                                      \
                        float *d = xt + (((size_t)ch * ph + 2 * ty) * pw + 2 * tx) * g + l0;                   \
                        for (int i = 0; i < a; i++)                                                            \
                            for (int j = 0; j < a; j++) {                                                      \
                                float *dst = d + ((size_t)i * pw + j) * g;                                     \
                                for (int q = 0; q < L; q++) dst[q] += res[(i * a + j) * L + q];                \
                            }                                                                                  \
                    }                                                                                          \
        for (int j = 0; j < n; j++)                                                                            \
            for (int ch = 0; ch < c; ch++)                                                                     \
                for (int y = 0; y < h; y++) {                                                                  \
                    float *dst = dx + (((size_t)j * c + ch) * h + y) * w;                                      \
                    const float *src = xt + (((size_t)ch * ph + y + s->pad) * pw + s->pad) * g + j;            \
                    for (int xx = 0; xx < w; xx++) dst[xx] = src[(size_t)xx * g];                              \
                }                                                                                              \
    }

WINO_LOOPS(generic, )
#if defined(__x86_64__)
WINO_LOOPS(avx2, __attribute__((target("avx2"))))
WINO_LOOPS(avx512, __attribute__((target("avx512f"))))
#endif

typedef void (*chunk_fn)(const pst_wino *, const float *, int, int, float *, float *);
typedef void (*output_fn)(const pst_wino *, const float *, const float *, int, int, float *, float *);
static struct { chunk_fn input, output_grad, input_grad; output_fn output; const char *name; } impl;
static int impl_ready = 0;

static void choose_impl(void) {
    impl.input = input_generic; impl.output = output_generic; impl.output_grad = output_grad_generic;
    impl.input_grad = input_grad_generic; impl.name = "generic";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        impl.input = input_avx512; impl.output = output_avx512; impl.output_grad = output_grad_avx512;
        impl.input_grad = input_grad_avx512; impl.name = "avx512";
    } else if (__builtin_cpu_supports("avx2")) {
        impl.input = input_avx2; impl.output = output_avx2; impl.output_grad = output_grad_avx2;
        impl.input_grad = input_grad_avx2; impl.name = "avx2";
    }
#endif
}

static inline void ready(void) {
    if (!__atomic_load_n(&impl_ready, __ATOMIC_ACQUIRE)) { choose_impl(); __atomic_store_n(&impl_ready, 1, __ATOMIC_RELEASE); }
}

void pst_wino_input(const pst_wino *s, const float *x, int n, int g, float *scratch, float *v) { ready(); impl.input(s, x, n, g, scratch, v); }
void pst_wino_output(const pst_wino *s, const float *m, const float *bias, int n, int g, float *scratch, float *y) {
    ready(); impl.output(s, m, bias, n, g, scratch, y);
}
void pst_wino_output_grad(const pst_wino *s, const float *dy, int n, int g, float *scratch, float *mg) {
    ready(); impl.output_grad(s, dy, n, g, scratch, mg);
}
void pst_wino_input_grad(const pst_wino *s, const float *dv, int n, int g, float *scratch, float *dx) {
    ready(); impl.input_grad(s, dv, n, g, scratch, dx);
}
const char *pst_wino_variant(void) { ready(); return impl.name; }
