#ifndef RP_COMMON_RP_ERR_H
#define RP_COMMON_RP_ERR_H

#include <stddef.h>

#include "rp_compiler.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Error codes. The values are stable: they land in reports and scripts.
 * Never renumber; only append.
 */
enum rp_err {
	RP_OK = 0,
	RP_ERR_NOMEM = 1,
	RP_ERR_IO = 2,		/* see rp_status.sys_errno */
	RP_ERR_FORMAT = 3,	/* malformed or truncated input */
	RP_ERR_AUTH = 4,	/* tag, MAC or signature did not verify */
	RP_ERR_CRYPTO = 5,	/* see rp_status.ossl_err */
	RP_ERR_HSM = 6,		/* see rp_status.ck_rv */
	RP_ERR_USAGE = 7,	/* bad arguments from the caller */
	RP_ERR_NOKEY = 8,	/* no key in the store matches */
	RP_ERR_REVOKED = 9,	/* the key is revoked */
	RP_ERR_UNLICENSED = 10, /* no rp-license stanza */
	RP_ERR_STATE = 11,	/* key state does not allow it */
	RP_ERR_EXISTS = 12,	/* already exists */
	RP_ERR_NOTFOUND = 13,	/* no such object */
	RP_ERR_PASSPHRASE = 14, /* wrong or missing passphrase */
	RP_ERR_LOCKED = 15,	/* the store is locked by another process */
	RP_ERR_INTERNAL = 16,	/* a bug */
	RP_ERR_RETIRING = 17,	/* the key is retiring: it opens nothing */
	RP_ERR_BUSY = 18,	/* the keystore is busy: ask again later */
};

/* rp_err_str returns the fixed message for `err`; never NULL. */
const char *rp_err_str(enum rp_err err);

/* rp_err_name returns a stable identifier such as "format"; never NULL. */
const char *rp_err_name(enum rp_err err);

/*
 * struct rp_status records why an operation failed, where it failed.
 * Zero-initialise it; rp_status_fail fills it.
 */
struct rp_status {
	enum rp_err err;
	int sys_errno;		/* errno, or a CQE's -res */
	unsigned long ossl_err; /* ERR_peek_last_error() */
	unsigned long ck_rv;	/* PKCS#11 CK_RV */
	char msg[320];		/* for people: lower case, no final period */
};

/*
 * rp_status_fail records `err` and a formatted message in `st` (which may
 * be NULL) and returns `err`, so a caller can write
 * `return rp_status_fail(st, RP_ERR_FORMAT, "...")`. If `st` already holds
 * a failure, it is kept: the first, innermost cause wins. Callers add
 * context with rp_status_prefix.
 */
enum rp_err rp_status_fail(struct rp_status *st, enum rp_err err,
			   const char *fmt, ...) RP_PRINTF(3, 4);
#ifdef __clang_analyzer__
/*
 * rp_status_fail always returns `err`; the analyzer cannot see into
 * rp_err.c, so spell it out, or it follows paths where a failure returns 0.
 */
#define rp_status_fail(st, err, ...)                                           \
	((rp_status_fail)((st), (err), __VA_ARGS__), (err))
#endif

/*
 * rp_status_ossl records `err` with the last OpenSSL error appended to the
 * message, and clears OpenSSL's error queue. If the failure was for lack of
 * memory (rp_ossl_is_nomem), it records RP_ERR_NOMEM instead, whatever
 * `err` says: a key that did not decode because an allocation failed is
 * not a malformed key.
 */
enum rp_err rp_status_ossl(struct rp_status *st, enum rp_err err,
			   const char *what);

/*
 * rp_status_errno records RP_ERR_IO with `errnum` and "<what>: strerror".
 */
enum rp_err rp_status_errno(struct rp_status *st, int errnum, const char *what,
			    const char *path);

/*
 * rp_status_prefix puts "<prefix>: " before the recorded message, if `st`
 * holds a failure.
 */
void rp_status_prefix(struct rp_status *st, const char *fmt, ...)
	RP_PRINTF(2, 3);

/* rp_status_clear resets `st` to the zero state. */
void rp_status_clear(struct rp_status *st);

/* rp_status_msg returns the recorded message, or rp_err_str(st->err). */
const char *rp_status_msg(const struct rp_status *st);

#ifdef __cplusplus
}
#endif
#endif
