#include "rp_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "rp_ossl.h"

static const char *const err_msgs[] = {
	[RP_OK] = "success",
	[RP_ERR_NOMEM] = "out of memory",
	[RP_ERR_IO] = "input/output error",
	[RP_ERR_FORMAT] = "malformed input",
	[RP_ERR_AUTH] = "authentication failed",
	[RP_ERR_CRYPTO] = "cryptographic library error",
	[RP_ERR_HSM] = "hardware security module error",
	[RP_ERR_USAGE] = "invalid usage",
	[RP_ERR_NOKEY] = "no key in the store matches",
	[RP_ERR_REVOKED] = "the key is revoked",
	[RP_ERR_UNLICENSED] = "document has no license",
	[RP_ERR_STATE] = "key state does not allow this",
	[RP_ERR_EXISTS] = "already exists",
	[RP_ERR_NOTFOUND] = "not found",
	[RP_ERR_PASSPHRASE] = "wrong or missing passphrase",
	[RP_ERR_LOCKED] = "store is locked by another process",
	[RP_ERR_INTERNAL] = "internal error",
	[RP_ERR_RETIRING] = "the key is retiring",
	[RP_ERR_BUSY] = "the keystore is busy",
};

static const char *const err_names[] = {
	[RP_OK] = "ok",
	[RP_ERR_NOMEM] = "nomem",
	[RP_ERR_IO] = "io",
	[RP_ERR_FORMAT] = "format",
	[RP_ERR_AUTH] = "auth",
	[RP_ERR_CRYPTO] = "crypto",
	[RP_ERR_HSM] = "hsm",
	[RP_ERR_USAGE] = "usage",
	[RP_ERR_NOKEY] = "nokey",
	[RP_ERR_REVOKED] = "revoked",
	[RP_ERR_UNLICENSED] = "unlicensed",
	[RP_ERR_STATE] = "state",
	[RP_ERR_EXISTS] = "exists",
	[RP_ERR_NOTFOUND] = "notfound",
	[RP_ERR_PASSPHRASE] = "passphrase",
	[RP_ERR_LOCKED] = "locked",
	[RP_ERR_INTERNAL] = "internal",
	[RP_ERR_RETIRING] = "retiring",
	[RP_ERR_BUSY] = "busy",
};

const char *rp_err_str(enum rp_err err)
{
	if ((size_t)err >= RP_ARRAY_LEN(err_msgs) || !err_msgs[err]) {
		return "unknown error";
	}
	return err_msgs[err];
}

const char *rp_err_name(enum rp_err err)
{
	if ((size_t)err >= RP_ARRAY_LEN(err_names) || !err_names[err]) {
		return "unknown";
	}
	return err_names[err];
}

void rp_bug(const char *file, int line, const char *msg)
{
	fprintf(stderr, "BUG: %s:%d: %s\n", file, line, msg);
	abort();
}

/* parenthesised: the analyzer's macro in rp_err.h must not expand here */
enum rp_err(rp_status_fail)(struct rp_status *st, enum rp_err err,
			    const char *fmt, ...)
{
	va_list ap;

	if (!st) {
		return err;
	}
	if (st->err) {
		return err; /* the first, innermost cause wins */
	}
	st->err = err;
	va_start(ap, fmt);
	if (vsnprintf(st->msg, sizeof(st->msg), fmt, ap) < 0) {
		st->msg[0] = '\0';
	}
	va_end(ap);
	return err;
}

enum rp_err rp_status_ossl(struct rp_status *st, enum rp_err err,
			   const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *detail = "no detail";
	char buf[160];
	const int is_nomem = rp_ossl_is_nomem();

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		detail = buf;
	}
	ERR_clear_error();
	rp_ossl_nomem_clear();
	if (st) {
		st->ossl_err = e;
	}
	if (is_nomem) {
		/* whatever the call would have meant, memory ran out */
		return rp_status_fail(st, RP_ERR_NOMEM, "%s: out of memory%s%s%s",
				      what, e ? " (" : "", e ? detail : "",
				      e ? ")" : "");
	}
	return rp_status_fail(st, err, "%s: %s", what, detail);
}

enum rp_err rp_status_errno(struct rp_status *st, int errnum, const char *what,
			    const char *path)
{
	if (st) {
		st->sys_errno = errnum;
	}
	if (path) {
		return rp_status_fail(st, RP_ERR_IO, "%s '%s': %s", what, path,
				      strerror(errnum));
	}
	return rp_status_fail(st, RP_ERR_IO, "%s: %s", what, strerror(errnum));
}

void rp_status_clear(struct rp_status *st)
{
	if (st) {
		memset(st, 0, sizeof(*st));
	}
}

const char *rp_status_msg(const struct rp_status *st)
{
	if (st->msg[0]) {
		return st->msg;
	}
	return rp_err_str(st->err);
}

void rp_status_prefix(struct rp_status *st, const char *fmt, ...)
{
	char pre[160];
	char old[sizeof(st->msg)];
	va_list ap;

	if (!st || !st->err) {
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(pre, sizeof(pre), fmt, ap) < 0) {
		pre[0] = '\0';
	}
	va_end(ap);
	if (snprintf(old, sizeof(old), "%s", rp_status_msg(st)) < 0) {
		old[0] = '\0';
	}
	if (snprintf(st->msg, sizeof(st->msg), "%s: %s", pre, old) < 0) {
		st->msg[0] = '\0';
	}
}
