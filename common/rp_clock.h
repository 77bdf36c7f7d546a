#ifndef RP_COMMON_RP_CLOCK_H
#define RP_COMMON_RP_CLOCK_H

#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * rp_clock_s reads clock `c` (CLOCK_MONOTONIC for intervals and paces,
 * CLOCK_REALTIME for times a report prints, CLOCK_THREAD_CPUTIME_ID for
 * a thread's CPU) as seconds.
 */
double rp_clock_s(clockid_t c);

#ifdef __cplusplus
}
#endif
#endif
