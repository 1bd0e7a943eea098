// Small C kernels for pstrain's hot paths. No stable API: PSCore wraps them.
#ifndef PSTRAIN_KERNELS_H
#define PSTRAIN_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// XXH64 of `len` bytes (the public xxHash 64-bit algorithm), used as the
/// wire-frame checksum. Runs at memory speed.
uint64_t pst_xxh64(const void *data, size_t len, uint64_t seed);



/// The wire-frame checksum (docs/formats.md): a multi-lane XXH3-style
/// accumulation, several times faster than XXH64, chosen at run time for
/// AVX-512, AVX2 or plain C. All variants give the same value.
uint64_t pst_checksum64(const void *data, size_t len, uint64_t seed);
/// The plain C variant, for tests that compare variants.
uint64_t pst_checksum64_generic(const void *data, size_t len, uint64_t seed);
/// Which variant pst_checksum64 runs: "avx512", "avx2" or "generic".
const char *pst_checksum64_variant(void);

/// Sets this thread's timer slack (Linux prctl PR_SET_TIMERSLACK) so short
/// sleeps in polling loops are not rounded up to 50 us. Returns 0 on success.
int pst_set_timer_slack_ns(unsigned long ns);

/// Pins the calling process to one core. Returns 0 on success.
int pst_pin_to_core(int core);
/// How many cores this process may run on (its affinity mask), or -1.
int pst_allowed_cores(void);
#endif
