#ifndef RP_COMMON_RP_COMPILER_H
#define RP_COMMON_RP_COMPILER_H

#ifdef __cplusplus
extern "C" {
#endif

#define RP_MUST_CHECK	__attribute__((warn_unused_result))
#define RP_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* RP_ATLEAST(N) declares an array parameter of at least N elements. */
#ifdef __cplusplus
#define RP_ATLEAST(n) n
#else
#define RP_ATLEAST(n) static n
#endif

#define RP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * rp_bug aborts with a message: for states that must stop even a release
 * build. Use RP_BUG("...").
 */
__attribute__((noreturn)) void rp_bug(const char *file, int line,
				      const char *msg);
#define RP_BUG(msg) rp_bug(__FILE__, __LINE__, (msg))

#ifdef __cplusplus
}
#endif
#endif
