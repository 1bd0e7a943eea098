#include "CPSKernels.h"
#ifdef __linux__
#include <sys/prctl.h>
#endif

int pst_set_timer_slack_ns(unsigned long ns) {
#ifdef __linux__
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0);
#else
    (void)ns;
    return -1;
#endif
}
