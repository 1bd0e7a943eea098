// The element loops of the servers' Adam, AdamW and Adagrad
// (Sources/PSNumerics/Optimizers/Adam.swift, AdamW.swift, Adagrad.swift give
// the formulas and the PyTorch operations they follow). Every FP32 operation
// is written out, with a fused multiply-add only where one is written
// (__builtin_elementwise_fma) and no contraction by the compiler, so every
// build gives the same bits: AVX-512, AVX2+FMA (chosen at run time), and
// plain C (where fma is libm's correctly rounded fmaf).
#include "CPSKernels.h"
#pragma STDC FP_CONTRACT OFF

#define FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#define SQRT(x) __builtin_elementwise_sqrt(x)

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g; w += -step_size m / (sqrt(v) / correction2 + eps),
// after AdamW's w *= shrink or Adam's g += l2 w.
#define OPTIM_LOOPS(suffix, attr)                                                                          \
    attr static void adam_##suffix(float *restrict w, float *restrict m, float *restrict v,                \
                                   const float *restrict g, size_t n, const pst_adam_step *k) {            \
        const pst_adam_step c = *k;                                                                        \
        if (c.decoupled) {                                                                                 \
            for (size_t i = 0; i < n; i++) {                                                               \
                float wi = w[i] * c.shrink, gi = g[i] * c.grad_scale;                                      \
                float mi = FMA(c.one_minus_b1, gi, m[i] * c.b1);                                           \
                float vi = FMA(c.one_minus_b2 * gi, gi, v[i] * c.b2);                                      \
                m[i] = mi; v[i] = vi;                                                                      \
                w[i] = wi + c.neg_step_size * mi / (SQRT(vi) / c.correction2 + c.eps);                     \
            }                                                                                              \
        } else {                                                                                           \
            for (size_t i = 0; i < n; i++) {                                                               \
                float wi = w[i], gi = g[i] * c.grad_scale;                                                 \
                if (c.l2 != 0) gi = FMA(c.l2, wi, gi);                                                     \
                float mi = FMA(c.one_minus_b1, gi, m[i] * c.b1);                                           \
                float vi = FMA(c.one_minus_b2 * gi, gi, v[i] * c.b2);                                      \
                m[i] = mi; v[i] = vi;                                                                      \
                w[i] = wi + c.neg_step_size * mi / (SQRT(vi) / c.correction2 + c.eps);                     \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    attr static void adagrad_##suffix(float *restrict w, float *restrict sum, const float *restrict g,      \
                                      size_t n, float grad_scale, float l2, float eps, float neg_lr) {     \
        for (size_t i = 0; i < n; i++) {                                                                   \
            float wi = w[i], gi = g[i] * grad_scale;                                                       \
            if (l2 != 0) gi = FMA(l2, wi, gi);                                                             \
            float si = FMA(gi, gi, sum[i]);                                                                \
            sum[i] = si;                                                                                   \
            w[i] = wi + neg_lr * gi / (SQRT(si) + eps);                                                    \
        }                                                                                                  \
    }

OPTIM_LOOPS(generic, )
#if defined(__x86_64__)
OPTIM_LOOPS(avx2, __attribute__((target("avx2,fma"))))
OPTIM_LOOPS(avx512, __attribute__((target("avx512f,fma"))))
#endif

typedef void (*adam_fn)(float *, float *, float *, const float *, size_t, const pst_adam_step *);
typedef void (*adagrad_fn)(float *, float *, const float *, size_t, float, float, float, float);
static struct { adam_fn adam; adagrad_fn adagrad; const char *name; } impl;
static int impl_ready = 0;

static void choose_impl(void) {
    impl.adam = adam_generic; impl.adagrad = adagrad_generic; impl.name = "generic";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
        impl.adam = adam_avx512; impl.adagrad = adagrad_avx512; impl.name = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        impl.adam = adam_avx2; impl.adagrad = adagrad_avx2; impl.name = "avx2+fma";
    }
#endif
}

static inline void ready(void) {
    if (!__atomic_load_n(&impl_ready, __ATOMIC_ACQUIRE)) { choose_impl(); __atomic_store_n(&impl_ready, 1, __ATOMIC_RELEASE); }
}

void pst_adam(float *w, float *m, float *v, const float *g, size_t n, const pst_adam_step *k) { ready(); impl.adam(w, m, v, g, n, k); }
void pst_adagrad(float *w, float *sum, const float *g, size_t n, float grad_scale, float l2, float eps, float neg_lr) {
    ready(); impl.adagrad(w, sum, g, n, grad_scale, l2, eps, neg_lr);
}
const char *pst_optim_variant(void) { ready(); return impl.name; }
void pst_adam_generic(float *w, float *m, float *v, const float *g, size_t n, const pst_adam_step *k) { adam_generic(w, m, v, g, n, k); }
void pst_adagrad_generic(float *w, float *sum, const float *g, size_t n, float grad_scale, float l2, float eps, float neg_lr) {
    adagrad_generic(w, sum, g, n, grad_scale, l2, eps, neg_lr);
}
