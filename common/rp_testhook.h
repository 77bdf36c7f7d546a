#ifndef RP_COMMON_RP_TESTHOOK_H
#define RP_COMMON_RP_TESTHOOK_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Test-only hooks. They exist only in builds configured with RP_TEST_HOOKS
 * (the sanitizer build the tests use); in other builds they compile to
 * nothing and read no environment, so no production flag can reach them.
 *
 * rp_test_crash_point kills the process with SIGKILL when the environment
 * variable REPROTECT_TEST_CRASH names `point`.
 *
 * rp_test_pause_point sleeps when REPROTECT_TEST_PAUSE is "<point>:<ms>",
 * so a test can act at that moment (change a file the run has read), or
 * make a call slow (a slow token). "<point>:<ms>:<nth>" sleeps only at the
 * nth hit of the point (1-based, counted across threads). Callers pass a
 * string literal: a point is known by its address.
 *
 * rp_test_trace appends "<what> <name>" and a newline to the file that
 * REPROTECT_TEST_TRACE names: the engine marks each durability step (an
 * fsync, a rename, a header write, a journal sync or commit) where it
 * makes it, in both --io modes, so a test sees their order even where
 * strace cannot (io_uring's operations).
 *
 * rp_test_clock_skew returns REPROTECT_TEST_CLOCK_SKEW as seconds (a
 * decimal, may be negative; 0 when unset or malformed): the store's
 * clock (rp_store_now) adds it, so a test can let a waiting period pass.
 *
 * rp_test_fault says what fault to inject at `point`: 0 for none, else
 * the code the caller should fail with (an errno value for I/O points, a
 * CK_RV for PKCS#11 points), or RP_TEST_FAULT_SHORT for a short transfer.
 * REPROTECT_TEST_FAULT holds up to 8 rules separated by ',':
 *
 *     POINT:CODE[:NTH[:COUNT]]
 *
 * The NTH call at POINT (1-based, default 1) and the COUNT-1 calls after
 * it (COUNT default 1; 0 means every call from the NTH on) get CODE. CODE
 * is an errno name (ENOSPC, EIO, EACCES, EROFS, EPERM, ENOENT, EXDEV,
 * EBUSY, EINTR, EAGAIN), "short", or a number (decimal or 0x hex). POINT
 * may hold ':' itself ("io:write"): it ends at the first field that is a
 * code. Calls are counted across threads.
 *
 * rp_test_busy makes each token busy above a rate: REPROTECT_TEST_BUSY
 * is "RATE:CODE" (CODE as for faults). A call for `token` (its label;
 * NULL is a token of its own) returns CODE when RATE calls for that token
 * were let through in the second before it (a sliding window per token,
 * all threads together; up to 16 tokens, calls for more are let
 * through), else 0; a call answered CODE does not count. The PKCS#11
 * keystore asks it at each private-key operation's last call (C_Decrypt,
 * C_Sign, C_DeriveKey) with its token's label.
 */
#define RP_TEST_FAULT_SHORT (-1L)

#ifdef RP_TEST_HOOKS
void rp_test_crash_point(const char *point);
void rp_test_pause_point(const char *point);
long rp_test_fault(const char *point);
void rp_test_trace(const char *what, const char *name);
long long rp_test_clock_skew(void);
long rp_test_busy(const char *token);
/* rp_test_fault_reset forgets the rules and counts: the next call reads
 * REPROTECT_TEST_FAULT again (for unit tests that change it) */
void rp_test_fault_reset(void);
#else
static inline void rp_test_crash_point(const char *point)
{
	(void)point;
}
static inline void rp_test_pause_point(const char *point)
{
	(void)point;
}
static inline long rp_test_fault(const char *point)
{
	(void)point;
	return 0;
}
static inline void rp_test_trace(const char *what, const char *name)
{
	(void)what;
	(void)name;
}
static inline long long rp_test_clock_skew(void)
{
	return 0;
}
static inline long rp_test_busy(const char *token)
{
	(void)token;
	return 0;
}
#endif

#ifdef __cplusplus
}
#endif
#endif
