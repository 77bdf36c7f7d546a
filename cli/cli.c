#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "lifecycle.h"
#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_file.h"

int rp_cli_common_opt(struct rp_cli *cli, int c, const char *arg)
{
	switch (c) {
	case RP_OPT_STORE:
		cli->store_dir = arg;
		return 1;
	case RP_OPT_PASSFILE:
		cli->pass_file = arg;
		return 1;
	case RP_OPT_PINFILE:
		cli->pin_file = arg;
		return 1;
	default:
		return 0;
	}
}

enum rp_err rp_cli_read_file(struct rp_buf *out, struct rp_status *st,
			     const char *path, size_t max)
{
	enum rp_err err = rp_file_read(out, st, path, max);

	if (err == RP_ERR_NOTFOUND) {
		/* a user's own file missing is an I/O error, not the store's */
		rp_status_clear(st);
		err = rp_status_errno(st, ENOENT, "cannot open", path);
	}
	return err;
}

int rp_cli_exit(enum rp_err err)
{
	switch (err) {
	case RP_OK:
		return RP_EXIT_OK;
	case RP_ERR_USAGE:
		return RP_EXIT_USAGE;
	case RP_ERR_FORMAT:
	case RP_ERR_AUTH:
	case RP_ERR_UNLICENSED:
		return RP_EXIT_BADDOC;
	case RP_ERR_NOKEY:
		return RP_EXIT_NOKEY;
	case RP_ERR_REVOKED:
		return RP_EXIT_REVOKED;
	case RP_ERR_RETIRING:
		return RP_EXIT_RETIRING;
	case RP_ERR_STATE:
	case RP_ERR_EXISTS:
	case RP_ERR_NOTFOUND:
	case RP_ERR_PASSPHRASE:
	case RP_ERR_LOCKED:
		return RP_EXIT_STORE;
	default:
		return RP_EXIT_SYSTEM;
	}
}

int rp_cli_error(const struct rp_status *st)
{
	fprintf(stderr, "reprotect: %s\n", rp_status_msg(st));
	return rp_cli_exit(st->err);
}

int rp_cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "reprotect %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'reprotect %s --help'.\n", cmd);
	return RP_EXIT_USAGE;
}

static enum rp_err prompt(struct rp_status *st, const char *msg, char *out,
			  size_t cap, size_t *out_len)
{
	struct termios old, quiet;
	FILE *tty = fopen("/dev/tty", "r+");
	enum rp_err err = RP_OK;
	int is_quiet = 0;
	size_t n;

	if (!tty) {
		return rp_status_fail(st, RP_ERR_PASSPHRASE,
				      "no passphrase: set REPROTECT_PASSPHRASE "
				      "or give --passphrase-file");
	}
	fputs(msg, tty);
	(void)fflush(tty); /* a prompt: nothing to do on failure */
	if (tcgetattr(fileno(tty), &old) == 0) {
		quiet = old;
		quiet.c_lflag &= (tcflag_t)~ECHO;
		is_quiet = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
	}
	if (!fgets(out, (int)cap, tty)) {
		err = rp_status_fail(st, RP_ERR_PASSPHRASE,
				     "no passphrase was entered");
	}
	if (is_quiet) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	}
	fputc('\n', tty);
	(void)fclose(tty); /* only a prompt was written */
	if (err) {
		return err;
	}
	n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) {
		out[--n] = '\0';
	}
	*out_len = n;
	return RP_OK;
}

enum rp_err rp_cli_passphrase(const struct rp_cli *cli, struct rp_status *st,
			      int is_new, char **out, size_t *out_len)
{
	const char *env = getenv("REPROTECT_PASSPHRASE");
	char *p = OPENSSL_zalloc(1024);
	char *again = NULL;
	size_t n = 0, n2 = 0;
	enum rp_err err = RP_OK;

	if (!p) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (cli->pass_file) {
		struct rp_buf b = { 0 };

		err = rp_cli_read_file(&b, st, cli->pass_file, 1023);
		if (!err) {
			n = b.len;
			while (n &&
			       (b.p[n - 1] == '\n' || b.p[n - 1] == '\r')) {
				n--;
			}
			memcpy(p, b.p, n);
		}
		rp_buf_fini(&b);
	} else if (env) {
		n = strlen(env);
		if (n > 1023) {
			err = rp_status_fail(
				st, RP_ERR_USAGE,
				"REPROTECT_PASSPHRASE is too long");
		} else {
			memcpy(p, env, n);
		}
	} else {
		err = prompt(st, "store passphrase: ", p, 1024, &n);
		if (!err && is_new) {
			again = OPENSSL_zalloc(1024);
			err = again ? prompt(st, "again: ", again, 1024, &n2)
				    : RP_ERR_NOMEM;
			if (!err && (n != n2 || memcmp(p, again, n))) {
				err = rp_status_fail(st, RP_ERR_PASSPHRASE,
						     "the passphrases differ");
			}
		}
	}
	if (!err && n == 0) {
		err = rp_status_fail(st, RP_ERR_PASSPHRASE,
				     "the passphrase is empty");
	}
	OPENSSL_clear_free(again, 1024);
	if (err) {
		OPENSSL_clear_free(p, 1024);
		return err;
	}
	*out = p;
	*out_len = n;
	return RP_OK;
}

enum rp_err rp_cli_store_dir(const struct rp_cli *cli, struct rp_status *st,
			     char *out, size_t out_cap)
{
	if (cli->store_dir) {
		if (snprintf(out, out_cap, "%s", cli->store_dir) >=
		    (int)out_cap) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "store path too long");
		}
		return RP_OK;
	}
	return rp_store_default_dir(out, out_cap, st);
}

int rp_cli_purge_due(struct rp_store *s, struct rp_status *st, FILE *out,
		     const char *prefix)
{
	int num = 0;

	for (size_t i = 0; i < rp_store_keyring(s)->num_keys; i++) {
		const struct rp_key_info *k = &rp_store_keyring(s)->keys[i];
		uint8_t id[RP_KEY_ID_LEN], census[32];
		char hex[2 * RP_KEY_ID_LEN + 1], c_hex[65], when[32];

		if (!rp_store_key_is_due(s, i)) {
			continue;
		}
		memcpy(id, k->id, sizeof(id));
		memcpy(census, k->retire_census, sizeof(census));
		rp_key_id_hex(hex, id);
		rp_hex_encode(c_hex, census, sizeof(census));
		rp_cli_fmt_time(when, k->purge_at);
		if (rp_cli_audit_gate(s, st, "key.purge", id, "census=%s",
				      c_hex) ||
		    rp_store_key_purge(s, st, i)) {
			return -1;
		}
		fprintf(out,
			"%sdestroyed %s: retired with census %.16s, its "
			"waiting period ended %s\n",
			prefix, hex, c_hex, when);
		rp_cli_audit(s, "key.purge", id, "census=%s", c_hex);
		num++;
	}
	return num;
}

/*
 * auto_purge: a store whose retiring keys' waiting periods are over has
 * them destroyed by the first command that opens it, which says so
 * (stderr). Returns 1 if it purged (the caller reopens the store: its
 * lock is held until rp_store_free), 0 if nothing was due or it could not
 * (then the command goes on, after a warning).
 */
static int auto_purge(struct rp_store *s)
{
	struct rp_status st = { 0 };
	int is_due = 0, n;

	for (size_t i = 0; i < rp_store_keyring(s)->num_keys; i++) {
		is_due |= rp_store_key_is_due(s, i);
	}
	if (!is_due) {
		return 0;
	}
	if (rp_store_lock(s, &st, 10000)) {
		fprintf(stderr,
			"reprotect: warning: a retiring key is due for "
			"destruction, but %s\n",
			rp_status_msg(&st));
		return 0;
	}
	/* on stderr: stdout is the command's */
	n = rp_cli_purge_due(s, &st, stderr, "reprotect: ");
	if (n < 0) {
		fprintf(stderr,
			"reprotect: warning: a retiring key is due for "
			"destruction, but %s\n",
			rp_status_msg(&st));
	}
	return 1;
}

enum rp_err rp_cli_open_store(const struct rp_cli *cli, struct rp_status *st,
			      struct rp_store **out)
{
	char dir[4096];
	char *pass = NULL;
	size_t pass_len = 0;
	enum rp_err err = rp_cli_store_dir(cli, st, dir, sizeof(dir));

	if (!err) {
		err = rp_cli_passphrase(cli, st, 0, &pass, &pass_len);
	}
	if (!err) {
		err = rp_store_open(out, st, dir, (const uint8_t *)pass,
				    pass_len);
	}
	if (!err && !cli->no_auto_purge && auto_purge(*out)) {
		/* the purge held the store's lock: open it afresh */
		rp_store_free(*out);
		*out = NULL;
		err = rp_store_open(out, st, dir, (const uint8_t *)pass,
				    pass_len);
	}
	OPENSSL_clear_free(pass, 1024);
	pass = NULL;
	if (!err) {
		err = rp_cli_pin(cli, st, &pass, &pass_len);
		if (!err && pass) {
			err = rp_store_set_pkcs11_pin(*out, st, pass, pass_len);
		}
		OPENSSL_clear_free(pass, 1024);
		if (err) {
			rp_store_free(*out);
			*out = NULL;
		}
	}
	return err;
}

enum rp_err rp_cli_pin(const struct rp_cli *cli, struct rp_status *st,
		       char **out, size_t *out_len)
{
	const char *env = getenv("REPROTECT_PKCS11_PIN");
	char *p = NULL;
	size_t n = 0;
	enum rp_err err = RP_OK;

	*out = NULL;
	if (!cli->pin_file && !env) {
		return RP_OK;
	}
	p = OPENSSL_zalloc(1024);
	if (!p) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (cli->pin_file) {
		struct rp_buf b = { 0 };

		err = rp_cli_read_file(&b, st, cli->pin_file, 1023);
		if (!err) {
			n = b.len;
			while (n &&
			       (b.p[n - 1] == '\n' || b.p[n - 1] == '\r')) {
				n--;
			}
			memcpy(p, b.p, n);
		}
		rp_buf_fini(&b);
	} else if ((n = strlen(env)) > 1023) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "REPROTECT_PKCS11_PIN is too long");
	} else {
		memcpy(p, env, n);
	}
	if (err) {
		OPENSSL_clear_free(p, 1024);
		return err;
	}
	*out = p;
	*out_len = n;
	return RP_OK;
}

int rp_cli_confirm(const char *what, const char *word, int is_yes)
{
	FILE *tty;
	char line[128];
	int ok = 0;

	if (is_yes) {
		return 1;
	}
	tty = isatty(STDIN_FILENO) ? fopen("/dev/tty", "r+") : NULL;
	if (!tty) {
		fprintf(stderr,
			"reprotect: %s needs confirmation: give --yes when not "
			"on a terminal\n",
			what);
		return 0;
	}
	fprintf(tty, "%s\nType '%s' to go on: ", what, word);
	(void)fflush(tty);
	if (fgets(line, sizeof(line), tty)) {
		line[strcspn(line, "\r\n")] = '\0';
		ok = !strcmp(line, word);
	}
	(void)fclose(tty);
	if (!ok) {
		fprintf(stderr, "reprotect: not confirmed; nothing changed\n");
	}
	return ok;
}

void rp_cli_audit(struct rp_store *s, const char *op, const uint8_t *key_id,
		  const char *fmt, ...)
{
	struct rp_status st = { 0 };
	char detail[RP_AUDIT_FIELD_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(detail, sizeof(detail), fmt, ap) < 0) {
		detail[0] = '\0';
	}
	va_end(ap);
	if (rp_audit_append(s, &st, op, key_id, "%s", detail)) {
		fprintf(stderr, "reprotect: warning: audit log: %s\n",
			rp_status_msg(&st));
	}
}

enum rp_err rp_cli_audit_gate(struct rp_store *s, struct rp_status *st,
			      const char *op, const uint8_t *key_id,
			      const char *fmt, ...)
{
	char detail[RP_AUDIT_FIELD_MAX], name[64];
	va_list ap;
	enum rp_err err;

	va_start(ap, fmt);
	if (vsnprintf(detail, sizeof(detail), fmt, ap) < 0) {
		detail[0] = '\0';
	}
	va_end(ap);
	snprintf(name, sizeof(name), "%s.begin", op);
	err = rp_audit_append(s, st, name, key_id, "%s", detail);
	if (err) {
		rp_status_prefix(st,
				 "the audit log cannot record '%s', so it is "
				 "not done",
				 op);
	}
	return err;
}

void rp_cli_flush_usage(struct rp_store *s, const char *command)
{
	struct rp_status st = { 0 };

	if (rp_audit_flush_usage(s, &st, command)) {
		fprintf(stderr, "reprotect: warning: audit log: %s\n",
			rp_status_msg(&st));
	}
}

void rp_cli_fmt_time(char out[32], uint64_t t)
{
	const time_t tt = (time_t)t;
	struct tm tm;

	/* strftime returns 0, leaving `out` indeterminate, if it fails */
	if (!t || !gmtime_r(&tt, &tm) ||
	    !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(out, 32, "-");
	}
}
