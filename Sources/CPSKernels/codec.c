// Codec kernels: byte shuffle (byte planes, as blosc's shuffle filter) and
// exact top-k selection by magnitude in O(n) (radix select on the bits of
// |x|, which order like the values).
#include "CPSKernels.h"
#include <string.h>

// dst holds `size` planes of n bytes: plane b is byte b of every element.
void pst_shuffle(const uint8_t *restrict src, uint8_t *restrict dst, size_t n, size_t size) {
    if (size == 2) {
        for (size_t i = 0; i < n; i++) { dst[i] = src[2 * i]; dst[n + i] = src[2 * i + 1]; }
    } else if (size == 4) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[4 * i]; dst[n + i] = src[4 * i + 1];
            dst[2 * n + i] = src[4 * i + 2]; dst[3 * n + i] = src[4 * i + 3];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t b = 0; b < size; b++) dst[b * n + i] = src[i * size + b];
    }
}

void pst_unshuffle(const uint8_t *restrict src, uint8_t *restrict dst, size_t n, size_t size) {
    if (size == 2) {
        for (size_t i = 0; i < n; i++) { dst[2 * i] = src[i]; dst[2 * i + 1] = src[n + i]; }
    } else if (size == 4) {
        for (size_t i = 0; i < n; i++) {
            dst[4 * i] = src[i]; dst[4 * i + 1] = src[n + i];
            dst[4 * i + 2] = src[2 * n + i]; dst[4 * i + 3] = src[3 * n + i];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t b = 0; b < size; b++) dst[i * size + b] = src[b * n + i];
    }
}

// Writes to idx (ascending) the indices of the k entries of largest |x|;
// among equal magnitudes the lower indices win. NaN counts as largest.
// Returns the number written (min(k, n)). Two histogram passes over 16-bit
// digits of the magnitude bits find the k-th largest key exactly.
size_t pst_topk_indices(const float *x, size_t n, size_t k, uint32_t *idx, uint32_t *hist /* 65536 */) {
    if (k >= n) { for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i; return n; }
    if (k == 0) return 0;
    const uint32_t *u = (const uint32_t *)x;
    // pass 1: high 16 bits of |x|
    memset(hist, 0, 65536 * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) hist[(u[i] & 0x7fffffffu) >> 16]++;
    size_t above = 0;   // entries with a larger key than the bucket being examined
    uint32_t hi = 65535;
    for (;; hi--) {
        if (above + hist[hi] >= k) break;
        above += hist[hi];
    }
    // pass 2: low 16 bits, among keys whose high part is `hi`
    memset(hist, 0, 65536 * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        uint32_t key = u[i] & 0x7fffffffu;
        if ((key >> 16) == hi) hist[key & 0xffff]++;
    }
    uint32_t lo = 65535;
    for (;; lo--) {
        if (above + hist[lo] >= k) break;
        above += hist[lo];
    }
    uint32_t threshold = (hi << 16) | lo;
    size_t ties = k - above;   // how many entries equal to the threshold to take
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t key = u[i] & 0x7fffffffu;
        if (key > threshold) idx[m++] = (uint32_t)i;
        else if (key == threshold && ties > 0) { idx[m++] = (uint32_t)i; ties--; }
    }
    return m;
}
