// Debian's libxxhash (package libxxhash-dev): XXH64 and XXH3.
#include <xxhash.h>
#if defined(__x86_64__)
// The XXH3 entry points that pick the AVX-512, AVX2 or SSE2 build at run
// time (libxxhash's own xxh_x86dispatch); plain XXH3_64bits is the SSE2 build.
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#endif
