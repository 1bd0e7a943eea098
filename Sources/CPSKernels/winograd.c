// Winograd convolution for stride-1 3x3 and 5x5 kernels
// (Sources/PSNumerics/Layers/Conv2d.swift calls it; Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016). F(m x m, k x k):
// a tile of alpha x alpha inputs (alpha = m + k - 1) gives m x m outputs,
//   y = A^T [ (G w G^T) . (B^T d B) ] A,
// so the multiplications of a layer become alpha^2 independent sgemms over
// (out x in) x (in x tiles). Three variants: F(2x2, 3x3) (16 products per
// 4 outputs against 36 for im2col), F(2x2, 5x5) (36 per 4 against 100) and
// F(4x4, 5x5) (64 per 16 against 400). Backward is the same algorithm's
// exact gradient:
//   M' = A dy A^T,  dV = U^T M' (sgemm),  dx += B dV B^T,
//   dU = sum over tiles of M' V^T (sgemm),  dw = G^T dU G.
// The matrices come from the interpolation points 0, 1, -1 (F(2,3)),
// 0, 1, -1, 2, -2 (F(2,5)) and 0, 1, -1, 2, -2, 1/2, -1/2 (F(4,5)), and
// infinity; B^T is integer (each row divided by its entries' common
// factor), A^T has powers of two, G carries the other fractions. LayerReleaseTests
// checks every variant against im2col.
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

// F(4x4, 5x5), alpha = 8
static inline void bt8(const float *in, size_t s, float *out, size_t os) {
    vec d0 = ld(in), d1 = ld(in + s), d2 = ld(in + 2 * s), d3 = ld(in + 3 * s);
    vec d4 = ld(in + 4 * s), d5 = ld(in + 5 * s), d6 = ld(in + 6 * s), d7 = ld(in + 7 * s);
    st(out, 4.0f * d0 - 21.0f * d2 + 21.0f * d4 - 4.0f * d6);
    st(out + os, 17.0f * d3 + 17.0f * d4 - 4.0f * d1 - 4.0f * d2 - 4.0f * d5 - 4.0f * d6);
    st(out + 2 * os, 4.0f * d1 - 4.0f * d2 - 17.0f * d3 + 17.0f * d4 + 4.0f * d5 - 4.0f * d6);
    st(out + 3 * os, 2.0f * d1 + d2 - 10.0f * d3 - 5.0f * d4 + 8.0f * d5 + 4.0f * d6);
    st(out + 4 * os, d2 - 2.0f * d1 + 10.0f * d3 - 5.0f * d4 - 8.0f * d5 + 4.0f * d6);
    st(out + 5 * os, 4.0f * d1 + 8.0f * d2 - 5.0f * d3 - 10.0f * d4 + d5 + 2.0f * d6);
    st(out + 6 * os, 8.0f * d2 - 4.0f * d1 + 5.0f * d3 - 10.0f * d4 - d5 + 2.0f * d6);
    st(out + 7 * os, 21.0f * d3 - 4.0f * d1 - 21.0f * d5 + 4.0f * d7);
}
static inline void b8(const float *in, size_t s, float *out, size_t os) {
    vec v0 = ld(in), v1 = ld(in + s), v2 = ld(in + 2 * s), v3 = ld(in + 3 * s);
    vec v4 = ld(in + 4 * s), v5 = ld(in + 5 * s), v6 = ld(in + 6 * s), v7 = ld(in + 7 * s);
    st(out, 4.0f * v0);
    st(out + os, 4.0f * v2 - 4.0f * v1 + 2.0f * v3 - 2.0f * v4 + 4.0f * v5 - 4.0f * v6 - 4.0f * v7);
    st(out + 2 * os, v3 + v4 - 21.0f * v0 - 4.0f * v1 - 4.0f * v2 + 8.0f * v5 + 8.0f * v6);
    st(out + 3 * os, 17.0f * v1 - 17.0f * v2 - 10.0f * v3 + 10.0f * v4 - 5.0f * v5 + 5.0f * v6 + 21.0f * v7);
    st(out + 4 * os, 21.0f * v0 + 17.0f * v1 + 17.0f * v2 - 5.0f * v3 - 5.0f * v4 - 10.0f * v5 - 10.0f * v6);
    st(out + 5 * os, 4.0f * v2 - 4.0f * v1 + 8.0f * v3 - 8.0f * v4 + v5 - v6 - 21.0f * v7);
    st(out + 6 * os, 4.0f * v3 + 4.0f * v4 - 4.0f * v0 - 4.0f * v1 - 4.0f * v2 + 2.0f * v5 + 2.0f * v6);
    st(out + 7 * os, 4.0f * v7);
}
// out[0..3] = (A^T in)
static inline void at8(const float *in, size_t s, float *out, size_t os) {
    vec m0 = ld(in), m1 = ld(in + s), m2 = ld(in + 2 * s), m3 = ld(in + 3 * s);
    vec m4 = ld(in + 4 * s), m5 = ld(in + 5 * s), m6 = ld(in + 6 * s), m7 = ld(in + 7 * s);
    vec p1 = m1 + m2, q1 = m1 - m2, p2 = m3 + m4, q2 = m3 - m4, p3 = m5 + m6, q3 = m5 - m6;
    st(out, m0 + p1 + p2 + p3);
    st(out + os, q1 + 2.0f * q2 + 0.5f * q3);
    st(out + 2 * os, p1 + 4.0f * p2 + 0.25f * p3);
    st(out + 3 * os, q1 + 8.0f * q2 + 0.125f * q3 + m7);
}
// out[0..7] = (A in), in has 4 entries
static inline void a8(const float *in, size_t s, float *out, size_t os) {
    vec y0 = ld(in), y1 = ld(in + s), y2 = ld(in + 2 * s), y3 = ld(in + 3 * s);
    vec e1 = y0 + y2, o1 = y1 + y3, e2 = y0 + 4.0f * y2, o2 = 2.0f * y1 + 8.0f * y3, e3 = y0 + 0.25f * y2, o3 = 0.5f * y1 + 0.125f * y3;
    st(out, y0); st(out + os, e1 + o1); st(out + 2 * os, e1 - o1); st(out + 3 * os, e2 + o2);
    st(out + 4 * os, e2 - o2); st(out + 5 * os, e3 + o3); st(out + 6 * os, e3 - o3); st(out + 7 * os, y3);
}

// The variant's 1-D transforms: v = k * 10 + m (32: F(2,3), 52: F(2,5), 54: F(4,5)).
static inline void tb_t(int v, const float *in, size_t s, float *out, size_t os) {
    if (v == 54) bt8(in, s, out, os); else if (v == 52) bt6(in, s, out, os); else bt4(in, s, out, os);
}
static inline void tb(int v, const float *in, size_t s, float *out, size_t os) {
    if (v == 54) b8(in, s, out, os); else if (v == 52) b6(in, s, out, os); else b4(in, s, out, os);
}
static inline void ta_t(int v, const float *in, size_t s, float *out, size_t os) {
    if (v == 54) at8(in, s, out, os); else if (v == 52) at6(in, s, out, os); else at4(in, s, out, os);
}
static inline void ta(int v, const float *in, size_t s, float *out, size_t os) {
    if (v == 54) a8(in, s, out, os); else if (v == 52) a6(in, s, out, os); else a4(in, s, out, os);
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
static const double G8[8][5] = {
    {1.0 / 4, 0, 0, 0, 0},
    {1.0 / 18, 1.0 / 18, 1.0 / 18, 1.0 / 18, 1.0 / 18},
    {1.0 / 18, -1.0 / 18, 1.0 / 18, -1.0 / 18, 1.0 / 18},
    {1.0 / 360, 1.0 / 180, 1.0 / 90, 1.0 / 45, 2.0 / 45},
    {1.0 / 360, -1.0 / 180, 1.0 / 90, -1.0 / 45, 2.0 / 45},
    {16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45, 1.0 / 45},
    {16.0 / 45, -8.0 / 45, 4.0 / 45, -2.0 / 45, 1.0 / 45},
    {0, 0, 0, 0, 1.0 / 4},
};

// The weight transforms, once per step for every (out, in) pair: written
// for a constant k and alpha (inlined into a copy per variant) so the
// compiler unrolls them.
static inline __attribute__((always_inline)) void weights_k(const pst_wino *s, const float *w, float *u, const int k, const int a,
                                                            const double (*G)[k]) {
    const size_t plane = (size_t)s->out * s->c, pairs = plane;
    for (size_t p = 0; p < pairs; p++) {
        const float *g = w + p * k * k;
        double t[8][5];  // G g
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

static inline __attribute__((always_inline)) void weight_grad_k(const pst_wino *s, const float *du, float *dw, const int k, const int a,
                                                                const double (*G)[k]) {
    const size_t plane = (size_t)s->out * s->c, pairs = plane;
    for (size_t p = 0; p < pairs; p++) {
        double d[64];
        for (int e = 0; e < a * a; e++) d[e] = du[(size_t)e * plane + p];
        double t[5][8];  // G^T dU
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
int pst_wino_tile(int k, int m) { return (k == 3 && m == 2) || (k == 5 && (m == 2 || m == 4)); }

// The (k+1)^2 planes of V and M are read or written together, one vector
// from each. Planes a multiple of 4 KiB apart would all fall into the same
// few L1 sets (3.5 ms against 1.2 ms for the 5x5 output transform of 32
// samples here), so each plane starts one cache line later than the last
// 4 KiB boundary would put it.
size_t pst_wino_plane(size_t floats) { return (floats + 1023) / 1024 * 1024 + 16; }

void pst_wino_weights(const pst_wino *s, const float *w, float *u) {
    if (s->k == 3) weights_k(s, w, u, 3, 4, G4);
    else if (s->m == 2) weights_k(s, w, u, 5, 6, G6);
    else weights_k(s, w, u, 5, 8, G8);
}

void pst_wino_weight_grad(const pst_wino *s, const float *du, float *dw) {
    if (s->k == 3) weight_grad_k(s, du, dw, 3, 4, G4);
    else if (s->m == 2) weight_grad_k(s, du, dw, 5, 6, G6);
    else weight_grad_k(s, du, dw, 5, 8, G8);
}

// ---- the per-chunk transforms, in three builds ----

// A chunk's samples, sample-major (n, planes, h, w), to and from the lane
// layout the transforms read: [planes][rows][cols][g], zero around and in
// the lanes past n, the image at (top, top). to_lanes adds each sample's sum
// over each plane to `sums` when given (in pixel order); from_lanes adds
// `bias[plane]` when given.
static void to_lanes(const float *src, int n, int planes, int h, int w, int rows, int cols, int top, int g, float *lanes,
                     float *sums) {
    memset(lanes, 0, sizeof(float) * (size_t)planes * rows * cols * g);
    for (int j = 0; j < n; j++)
        for (int p = 0; p < planes; p++) {
            float sum = 0;
            for (int y = 0; y < h; y++) {
                const float *in = src + (((size_t)j * planes + p) * h + y) * w;
                float *out = lanes + (((size_t)p * rows + y + top) * cols + top) * g + j;
                if (sums) {
                    for (int x = 0; x < w; x++) { out[(size_t)x * g] = in[x]; sum += in[x]; }
                } else {
                    for (int x = 0; x < w; x++) out[(size_t)x * g] = in[x];
                }
            }
            if (sums) sums[p] += sum;
        }
}

static void from_lanes(const float *lanes, int n, int planes, int h, int w, int rows, int cols, int top, int g, const float *bias,
                       float *dst) {
    for (int j = 0; j < n; j++)
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < h; y++) {
                float *out = dst + (((size_t)j * planes + p) * h + y) * w;
                const float *in = lanes + (((size_t)p * rows + y + top) * cols + top) * g + j;
                if (bias) {
                    const float b = bias[p];
                    for (int x = 0; x < w; x++) out[x] = in[(size_t)x * g] + b;
                } else {
                    for (int x = 0; x < w; x++) out[x] = in[(size_t)x * g];
                }
            }
}

// Padded, transposed input of a chunk: [c][ph][pw][g], ph = m th + k - 1.
#define WINO_LOOPS(suffix, attr)                                                                               \
    /* Every tile of a chunk in the lane layout [planes][rows][cols][g] (tiles m apart, side x side) into the  \
       alpha^2 planes of `out`, rows then columns: B^T d B for the input (grad 0), A d A^T for the output's    \
       gradient (grad 1, side m). */                                                                           \
    attr static inline void to_planes_##suffix(const pst_wino *s, int grad, const float *lanes, int planes, int rows, \
                                               int cols, int side, int g, float *out) {                        \
        const int m = s->m, a = s->k + m - 1, var = s->k * 10 + m, th = s->th, tw = s->tw;                     \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)planes * T);                      \
        float tmp[64 * L];                                                                                     \
        for (int p = 0; p < planes; p++)                                                                       \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                        \
                        const float *d = lanes + (((size_t)p * rows + m * ty) * cols + m * tx) * g + l0;       \
                        /* tmp[i][j] = sum_r X[i][r] d[r][j] (a x side) */                                     \
                        for (int j = 0; j < side; j++) {                                                       \
                            if (grad) ta(var, d + (size_t)j * g, (size_t)cols * g, tmp + j * L, side * L);     \
                            else tb_t(var, d + (size_t)j * g, (size_t)cols * g, tmp + j * L, side * L);        \
                        }                                                                                      \
                        /* then each row of tmp, straight into the planes */                                   \
                        float *dst = out + (size_t)p * T + (size_t)(ty * tw + tx) * g + l0;                    \
                        for (int i = 0; i < a; i++) {                                                          \
                            if (grad) ta(var, tmp + i * side * L, L, dst + (size_t)i * a * plane, plane);      \
                            else tb_t(var, tmp + i * side * L, L, dst + (size_t)i * a * plane, plane);         \
                        }                                                                                      \
                    }                                                                                          \
    }                                                                                                          \
    attr static void input_##suffix(const pst_wino *s, const float *x, int n, int g, float *xt, float *v) {     \
        const int ph = s->m * s->th + s->k - 1, pw = s->m * s->tw + s->k - 1;                                  \
        to_lanes(x, n, s->c, s->h, s->w, ph, pw, s->pad, g, xt, NULL);                                         \
        to_planes_##suffix(s, 0, xt, s->c, ph, pw, s->k + s->m - 1, g, v);                                     \
    }                                                                                                          \
    attr static void output_##suffix(const pst_wino *s, const float *mm, const float *bias, int n, int g,      \
                                     float *yt, float *y) {                                                    \
        const int m = s->m, a = s->k + m - 1, var = s->k * 10 + m, out = s->out, oh = s->oh, ow = s->ow;      \
        const int th = s->th, tw = s->tw, eh = m * th, ew = m * tw;                                            \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)out * T);                         \
        float tmp[32 * L], res[16 * L];                                                                        \
        for (int o = 0; o < out; o++)                                                                          \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                        \
                        /* tmp[r][j] = sum_i AT[r][i] M[i][j] (m x a), straight from the planes */             \
                        const float *src = mm + (size_t)o * T + (size_t)(ty * tw + tx) * g + l0;               \
                        for (int j = 0; j < a; j++) ta_t(var, src + (size_t)j * plane, (size_t)a * plane, tmp + j * L, a * L); \
                        for (int r = 0; r < m; r++) ta_t(var, tmp + r * a * L, L, res + r * m * L, L);         \
                        float *d = yt + (((size_t)o * eh + m * ty) * ew + m * tx) * g + l0;                    \
                        for (int r = 0; r < m; r++)                                                            \
                            for (int cc = 0; cc < m; cc++) {                                                   \
                                float *dst = d + ((size_t)r * ew + cc) * g;                                    \
                                for (int q = 0; q < L; q++) dst[q] = res[(r * m + cc) * L + q];                \
                            }                                                                                  \
                    }                                                                                          \
        from_lanes(yt, n, out, oh, ow, eh, ew, 0, g, bias, y);                                                  \
    }                                                                                                          \
    attr static void output_grad_##suffix(const pst_wino *s, const float *dy, int n, int g, float *dyt,        \
                                          float *mg, float *db) {                                              \
        const int eh = s->m * s->th, ew = s->m * s->tw;                                                        \
        to_lanes(dy, n, s->out, s->oh, s->ow, eh, ew, 0, g, dyt, db); /* db: the bias gradient, in im2col's order */ \
        to_planes_##suffix(s, 1, dyt, s->out, eh, ew, s->m, g, mg);                                            \
    }                                                                                                          \
    attr static void input_grad_##suffix(const pst_wino *s, const float *dv, int n, int g, float *xt,         \
                                         float *dx) {                                                          \
        const int m = s->m, a = s->k + m - 1, var = s->k * 10 + m, c = s->c, h = s->h, w = s->w;              \
        const int th = s->th, tw = s->tw, ph = m * th + s->k - 1, pw = m * tw + s->k - 1;                      \
        const size_t T = (size_t)th * tw * g, plane = pst_wino_plane((size_t)c * T);                           \
        memset(xt, 0, sizeof(float) * (size_t)c * ph * pw * g);                                                \
        float tmp[64 * L], res[64 * L];                                                                        \
        for (int ch = 0; ch < c; ch++)                                                                         \
            for (int ty = 0; ty < th; ty++)                                                                    \
                for (int tx = 0; tx < tw; tx++)                                                                \
                    for (int l0 = 0; l0 < g; l0 += L) {                                                        \
                        const float *src = dv + (size_t)ch * T + (size_t)(ty * tw + tx) * g + l0;              \
                        for (int j = 0; j < a; j++) tb(var, src + (size_t)j * plane, (size_t)a * plane, tmp + j * L, a * L); \
                        for (int i = 0; i < a; i++) tb(var, tmp + i * a * L, L, res + i * a * L, L);           \
                        float *d = xt + (((size_t)ch * ph + m * ty) * pw + m * tx) * g + l0;                   \
                        for (int i = 0; i < a; i++)                                                            \
                            for (int j = 0; j < a; j++) {                                                      \
                                float *dst = d + ((size_t)i * pw + j) * g;                                     \
                                for (int q = 0; q < L; q++) dst[q] += res[(i * a + j) * L + q];                \
                            }                                                                                  \
                    }                                                                                          \
        from_lanes(xt, n, c, h, w, ph, pw, s->pad, g, NULL, dx);                                               \
    }

WINO_LOOPS(generic, )
#if defined(__x86_64__)
WINO_LOOPS(avx2, __attribute__((target("avx2"))))
WINO_LOOPS(avx512, __attribute__((target("avx512f"))))
#endif

typedef void (*chunk_fn)(const pst_wino *, const float *, int, int, float *, float *);
typedef void (*grad_fn)(const pst_wino *, const float *, int, int, float *, float *, float *);
typedef void (*output_fn)(const pst_wino *, const float *, const float *, int, int, float *, float *);
static struct { chunk_fn input, input_grad; grad_fn output_grad; output_fn output; const char *name; } impl;
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
void pst_wino_output_grad(const pst_wino *s, const float *dy, int n, int g, float *scratch, float *mg, float *db) {
    ready(); impl.output_grad(s, dy, n, g, scratch, mg, db);
}
void pst_wino_input_grad(const pst_wino *s, const float *dv, int n, int g, float *scratch, float *dx) {
    ready(); impl.input_grad(s, dv, n, g, scratch, dx);
}
const char *pst_wino_variant(void) { ready(); return impl.name; }
