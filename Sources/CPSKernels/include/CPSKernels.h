// Small C kernels for pstrain's hot paths. No stable API: PSCore wraps them.
// (Hashes come from libraries: XXH64/XXH3 from libxxhash, SHA-256 from swift-crypto.)
#ifndef PSTRAIN_KERNELS_H
#define PSTRAIN_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Array conversions between FP32 and the half formats, round to nearest
/// even, vectorised (AVX-512, AVX2+F16C) with a plain C build chosen at run
/// time; every build gives the same bits (convert.c says how NaNs go).
void pst_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void pst_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void pst_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void pst_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/// "avx512", "avx2+f16c" or "generic".
const char *pst_convert_variant(void);
/// The plain C builds, for tests that compare builds.
void pst_f32_to_f16_generic(const float *src, uint16_t *dst, size_t n);
void pst_f16_to_f32_generic(const uint16_t *src, float *dst, size_t n);
void pst_f32_to_bf16_generic(const float *src, uint16_t *dst, size_t n);

/// Rounds each value in place to the nearest FP16 / BF16 value (RNE).
void pst_round_to_f16(float *x, size_t n);
void pst_round_to_bf16(float *x, size_t n);
/// 1 if any |x| >= limit or any x is NaN.
int pst_any_not_below(const float *x, size_t n, float limit);

/// One step of Adam (decoupled 0) or AdamW (decoupled 1) over n elements,
/// with the scalars PSNumerics computes (Optimizers/Adam.swift); optim.c.
typedef struct {
    float grad_scale;       // g = grad x grad_scale
    float l2;               // Adam: g += l2 w (fused) when l2 != 0
    int decoupled;          // AdamW: w x= shrink first, no l2
    float shrink;
    float b1, one_minus_b1, b2, one_minus_b2;
    float correction2;      // sqrt(1 - b2^t)
    float eps;
    float neg_step_size;    // -lr / (1 - b1^t)
} pst_adam_step;
void pst_adam(float *w, float *m, float *v, const float *g, size_t n, const pst_adam_step *k);
/// One step of Adagrad over n elements (Optimizers/Adagrad.swift).
void pst_adagrad(float *w, float *sum, const float *g, size_t n, float grad_scale, float l2, float eps, float neg_lr);
/// "avx512", "avx2+fma" or "generic"; and the plain C builds, for tests that compare builds.
const char *pst_optim_variant(void);
void pst_adam_generic(float *w, float *m, float *v, const float *g, size_t n, const pst_adam_step *k);
void pst_adagrad_generic(float *w, float *sum, const float *g, size_t n, float grad_scale, float l2, float eps, float neg_lr);

/// Byte shuffle: n elements of `size` bytes become `size` planes of n bytes.
void pst_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t size);
void pst_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t size);
/// Indices (ascending) of the k entries of largest magnitude, exact, O(n);
/// ties go to lower indices; `hist` is scratch of 65536 entries.
size_t pst_topk_indices(const float *x, size_t n, size_t k, uint32_t *idx, uint32_t *hist);

/// Convolution lowering for one sample (channels first): im2col writes the
/// (c*k*k, oh*ow) matrix of input windows (zeros where the window covers
/// padding) with rows `ld` floats apart (ld >= oh*ow: several samples side
/// by side); col2im adds such a matrix back into the (c, h, w) image.
void pst_im2col(const float *x, int c, int h, int w, int k, int stride, int pad, int oh, int ow, size_t ld, float *col);
void pst_col2im_add(const float *col, int c, int h, int w, int k, int stride, int pad, int oh, int ow, size_t ld, float *x);

/// Winograd convolution F(m x m, k x k), stride 1: F(2,3), F(2,5), F(4,5)
/// (winograd.c has the algorithm and layouts); alpha = m + k - 1, th x tw
/// tiles of m x m outputs. Samples go in chunks of g (a multiple of 8, n <=
/// g of them real); V, M are [alpha^2][channels][th * tw * g] (planes
/// pst_wino_plane(channels * th * tw * g) apart); U, dU are
/// [alpha^2][out][c]. The scratch holds max(c * ph * pw, out * m th * m tw)
/// * g floats, ph = m th + k - 1, pw = m tw + k - 1.
typedef struct { int c, h, w, out, k, pad, oh, ow, m, th, tw; } pst_wino;
int pst_wino_supported(int k, int stride);
/// Whether F(m x m, k x k) is one of the variants: F(2,3), F(2,5), F(4,5).
int pst_wino_tile(int k, int m);
/// Floats from one plane of V or M to the next, for planes of `floats`.
size_t pst_wino_plane(size_t floats);
/// U = G w G^T (w: out, c, k, k).
void pst_wino_weights(const pst_wino *s, const float *w, float *u);
/// dw = G^T dU G (overwrites dw).
void pst_wino_weight_grad(const pst_wino *s, const float *du, float *dw);
/// V = B^T d B over every tile of n samples of x (n, c, h, w).
void pst_wino_input(const pst_wino *s, const float *x, int n, int g, float *scratch, float *v);
/// y (n, out, oh, ow) = A^T M A + bias.
void pst_wino_output(const pst_wino *s, const float *m, const float *bias, int n, int g, float *scratch, float *y);
/// M' = A dy A^T from dy (n, out, oh, ow); adds each sample's sum of dy
/// over each channel to db (the bias gradient: sample by sample, each sum
/// in pixel order).
void pst_wino_output_grad(const pst_wino *s, const float *dy, int n, int g, float *scratch, float *mg, float *db);
/// dx (n, c, h, w) = the sum of B dV B^T over the tiles (overwrites dx).
void pst_wino_input_grad(const pst_wino *s, const float *dv, int n, int g, float *scratch, float *dx);
/// Which build of the transforms runs here: "avx512", "avx2" or "generic".
const char *pst_wino_variant(void);

/// MaxPool2d's forward (no padding): the maximum of each window and its
/// index in x (the first maximum, row-major), for `planes` (c, h, w) planes.
void pst_maxpool_forward(const float *x, int planes, int h, int w, int k, int stride, int oh, int ow, float *y, int32_t *argmax);

/// ReLU's backward: dx = y > 0 ? dy : 0 (branch-free, vectorised).
void pst_relu_backward(const float *y, const float *dy, float *dx, size_t n);

/// Sets this thread's timer slack (Linux prctl PR_SET_TIMERSLACK) so short
/// sleeps in polling loops are not rounded up to 50 us. Returns 0 on success.
int pst_set_timer_slack_ns(unsigned long ns);

/// Pins the calling process to one core. Returns 0 on success.
int pst_pin_to_core(int core);
/// How many cores this process may run on (its affinity mask), or -1.
int pst_allowed_cores(void);
#endif
