#define _GNU_SOURCE
#include "CPSKernels.h"
#ifdef __linux__
#include <sys/prctl.h>
#include <sched.h>
#endif

int pst_set_timer_slack_ns(unsigned long ns) {
#ifdef __linux__
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0);
#else
    (void)ns;
    return -1;
#endif
}

int pst_pin_to_core(int core) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    return sched_setaffinity(0, sizeof(set), &set);
#else
    (void)core;
    return -1;
#endif
}

int pst_allowed_cores(void) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
#else
    return -1;
#endif
}
