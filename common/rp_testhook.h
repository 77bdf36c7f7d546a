#ifndef RP_COMMON_RP_TESTHOOK_H
#define RP_COMMON_RP_TESTHOOK_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * rp_test_crash_point kills the process with SIGKILL when the environment
 * variable REPROTECT_TEST_CRASH names `point`. It exists only in builds
 * configured with RP_TEST_HOOKS (the sanitizer build the tests use); in
 * other builds it does nothing and reads no environment.
 */
#ifdef RP_TEST_HOOKS
void rp_test_crash_point(const char *point);
void rp_test_pause_point(const char *point);
#else
static inline void rp_test_crash_point(const char *point)
{
	(void)point;
}
static inline void rp_test_pause_point(const char *point)
{
	(void)point;
}
#endif

/*
 * rp_test_pause_point sleeps when REPROTECT_TEST_PAUSE is "<point>:<ms>",
 * so a test can act at that moment (change a file the run has read).
 * Like the crash points, only in RP_TEST_HOOKS builds.
 */

#ifdef __cplusplus
}
#endif
#endif
