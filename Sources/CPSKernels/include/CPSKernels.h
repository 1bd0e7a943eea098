// Small C kernels for pstrain's hot paths. No stable API: PSCore wraps them.
#ifndef PSTRAIN_KERNELS_H
#define PSTRAIN_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// XXH64 of `len` bytes (the public xxHash 64-bit algorithm), used as the
/// wire-frame checksum. Runs at memory speed.
uint64_t pst_xxh64(const void *data, size_t len, uint64_t seed);



/// Sets this thread's timer slack (Linux prctl PR_SET_TIMERSLACK) so short
/// sleeps in polling loops are not rounded up to 50 us. Returns 0 on success.
int pst_set_timer_slack_ns(unsigned long ns);
#endif
