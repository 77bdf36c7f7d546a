#include "audit.h"

#include "rp_ossl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "store_internal.h"

#define HEAD_MAGIC "RPAH"
#define LOG_MAX	   (256u * 1024 * 1024)
#define LINE_MAX_  RP_AUDIT_LINE_MAX

static void escape(char *out, size_t cap, const char *in)
{
	size_t o = 0;

	for (; *in && o + 3 < cap; in++) {
		const unsigned char c = (unsigned char)*in;

		if (c == '\t' || c == '\n' || c == '\r' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)(c == '\t'   ? 't'
					  : c == '\n' ? 'n'
					  : c == '\r' ? 'r'
						      : '\\');
		} else if (c < 0x20 || c == 0x7f) {
			out[o++] = '?';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static enum rp_err mac(uint8_t out[32], struct rp_status *st,
		       const uint8_t key[32], const uint8_t prev[32],
		       const char *text, size_t len)
{
	const uint8_t *data[] = { prev, (const uint8_t *)text };
	const size_t lens[] = { 32, len };

	return rp_hmac_sha256(out, st, key, 32, data, lens, 2);
}

static enum rp_err log_path(const struct rp_store *s, struct rp_status *st,
			    char *out, const char *name)
{
	if (rp_path_join(out, PATH_MAX, s->dir, name)) {
		return rp_status_fail(st, RP_ERR_USAGE, "store path too long");
	}
	return RP_OK;
}

/*
 * head: magic || seq (u64) || last mac || HMAC(zero-prev, those 44), or
 * (since 2026-12-06) "RPH2" || seq || last mac || keyring generation (u64)
 * || HMAC(zero-prev, those 52): the highest keyring generation the store
 * has written, so that a keyring copied back from an older copy is seen
 */
#define HEAD_MAGIC_2 "RPH2"
#define HEAD_LEN_1   (4 + 8 + 32 + 32)
#define HEAD_LEN_2   (4 + 8 + 32 + 8 + 32)

enum rp_err rp_audit_head_decode(struct rp_status *st, uint64_t *out_seq,
				 uint8_t out_last[RP_ATLEAST(32)],
				 uint64_t *out_gen,
				 const uint8_t audit_key[RP_ATLEAST(32)],
				 const uint8_t *in, size_t in_len)
{
	uint8_t want[32];
	static const uint8_t zero[32];
	const int is_v2 = in_len == HEAD_LEN_2 && !memcmp(in, HEAD_MAGIC_2, 4);
	const size_t body = is_v2 ? HEAD_LEN_2 - 32 : HEAD_LEN_1 - 32;
	enum rp_err err;

	*out_seq = 0;
	memset(out_last, 0, 32);
	if (out_gen) {
		*out_gen = 0;
	}
	if (!is_v2 && (in_len != HEAD_LEN_1 || memcmp(in, HEAD_MAGIC, 4))) {
		return rp_status_fail(st, RP_ERR_AUTH, "audit.head is damaged");
	}
	err = mac(want, st, audit_key, zero, (const char *)in, body);
	if (!err && CRYPTO_memcmp(want, in + body, 32)) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "audit.head was modified");
	}
	if (!err) {
		struct rp_span sp = rp_span_of(in + 4, 8);

		(void)rp_span_get_u64be(&sp, out_seq);
		memcpy(out_last, in + 12, 32);
		if (is_v2 && out_gen) {
			sp = rp_span_of(in + 44, 8);
			(void)rp_span_get_u64be(&sp, out_gen);
		}
	}
	return err;
}

static enum rp_err read_head(const struct rp_store *s, struct rp_status *st,
			     uint64_t *seq, uint8_t last[32], uint64_t *gen)
{
	struct rp_buf b = { 0 };
	char path[PATH_MAX];
	enum rp_err err = log_path(s, st, path, "audit.head");

	*seq = 0;
	*gen = 0;
	memset(last, 0, 32);
	if (!err) {
		err = rp_file_read(&b, st, path, 1024);
	}
	if (err == RP_ERR_NOTFOUND) {
		rp_status_clear(st);
		err = RP_OK; /* an empty log */
		goto out;
	}
	if (!err) {
		err = rp_audit_head_decode(st, seq, last, gen, s->audit_key,
					   b.p, b.len);
	}
out:
	rp_buf_fini(&b);
	return err;
}

static enum rp_err write_head(const struct rp_store *s, struct rp_status *st,
			      uint64_t seq, const uint8_t last[32],
			      uint64_t gen)
{
	uint8_t b[HEAD_LEN_2];
	static const uint8_t zero[32];
	char path[PATH_MAX];
	enum rp_err err = log_path(s, st, path, "audit.head");

	memcpy(b, HEAD_MAGIC_2, 4);
	rp_put_u64be(b + 4, seq);
	memcpy(b + 12, last, 32);
	rp_put_u64be(b + 44, gen);
	if (!err) {
		err = mac(b + 52, st, s->audit_key, zero, (const char *)b, 52);
	}
	if (!err) {
		err = rp_file_write_atomic(st, path, b, sizeof(b), 0);
	}
	return err;
}

static void who(char user[64], char host[128])
{
	const struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");
	char h[128] = "-";

	if (sudo && *sudo) {
		snprintf(user, 64, "%s (sudo from %s)", pw ? pw->pw_name : "?",
			 sudo);
	} else {
		snprintf(user, 64, "%s", pw ? pw->pw_name : "?");
	}
	if (gethostname(h, sizeof(h) - 1) < 0) {
		snprintf(h, sizeof(h), "-");
	}
	h[sizeof(h) - 1] = '\0';
	snprintf(host, 128, "%s", h);
}

/* under the log's lock, a leftover head temporary is from a crash */
static void remove_stale_head_tmp(const struct rp_store *s)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;

	if (!d) {
		return;
	}
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, ".audit.head.rp-tmp-", 19)) {
			unlinkat(dirfd(d), e->d_name, 0);
		}
	}
	closedir(d);
}

/*
 * rp_audit_adopt_tail: a crash between appending a record and writing the
 * head leaves the log one record ahead. If the last line is record
 * seq + 1 and chains from the head, it is genuine: continue after it.
 */
enum rp_err rp_audit_adopt_tail(struct rp_status *st, uint64_t *seq,
				uint8_t last[RP_ATLEAST(32)],
				const uint8_t audit_key[RP_ATLEAST(32)],
				const uint8_t *in, size_t in_len)
{
	char tail[RP_AUDIT_LINE_MAX + 1];
	const size_t n = in_len;
	char *line, *tab;
	uint8_t want[32], got[32];
	char *end = NULL;
	unsigned long long rec;
	enum rp_err err;

	if (n == 0 || n > RP_AUDIT_LINE_MAX || in[n - 1] != '\n') {
		return RP_OK; /* verify reports a torn last line */
	}
	memcpy(tail, in, n);
	tail[n - 1] = '\0';
	line = strrchr(tail, '\n');
	line = line ? line + 1 : tail;
	tab = strrchr(line, '\t');
	if (!tab || strlen(tab + 1) != 64 || rp_hex_decode(got, 32, tab + 1, 64)) {
		return RP_OK;
	}
	rec = strtoull(line, &end, 10);
	if (!end || *end != '\t' || rec != *seq + 1) {
		return RP_OK;
	}
	err = mac(want, st, audit_key, last, line, (size_t)(tab - line));
	if (!err && !CRYPTO_memcmp(want, got, 32)) {
		*seq = rec;
		memcpy(last, got, 32);
	}
	return err;
}

/*
 * ends_at: the last complete line of the log's tail (`in`, n bytes) is
 * record `seq` with MAC `last` (a torn line after it is left to verify,
 * as before); an empty tail ends at record 0
 */
static int ends_at(const uint8_t *in, size_t n, uint64_t seq,
		   const uint8_t last[32])
{
	char line[RP_AUDIT_LINE_MAX + 1];
	const char *start, *tab;
	char *end = NULL;
	uint8_t got[32];
	size_t len;

	while (n && in[n - 1] != '\n') {
		n--; /* a torn last line */
	}
	if (!n) {
		return seq == 0;
	}
	memcpy(line, in, n - 1);
	line[n - 1] = '\0';
	start = strrchr(line, '\n');
	start = start ? start + 1 : line;
	len = strlen(start);
	tab = strrchr(start, '\t');
	if (!len || !tab || strlen(tab + 1) != 64 ||
	    rp_hex_decode(got, 32, tab + 1, 64)) {
		return 0;
	}
	return strtoull(start, &end, 10) == seq && end && *end == '\t' &&
	       !CRYPTO_memcmp(got, last, 32);
}

static enum rp_err adopt_unanchored(const struct rp_store *s,
				    struct rp_status *st, int fd, uint64_t *seq,
				    uint8_t last[32])
{
	uint8_t tail[RP_AUDIT_LINE_MAX];
	struct stat sb;
	off_t off;
	ssize_t n;
	enum rp_err err;

	if (fstat(fd, &sb) < 0) {
		return rp_status_errno(st, errno, "cannot stat", "audit.log");
	}
	if (sb.st_size == 0) {
		return *seq ? rp_status_fail(
				      st, RP_ERR_AUTH,
				      "audit.log is empty, but "
				      "audit.head says it holds %llu "
				      "records: nothing more is recorded "
				      "until it is settled",
				      (unsigned long long)*seq)
			    : RP_OK;
	}
	off = sb.st_size > RP_AUDIT_LINE_MAX ? sb.st_size - RP_AUDIT_LINE_MAX
					     : 0;
	n = pread(fd, tail, (size_t)(sb.st_size - off), off);
	if (n <= 0) {
		return RP_OK; /* verify reports a torn last line */
	}
	err = rp_audit_adopt_tail(st, seq, last, s->audit_key, tail, (size_t)n);
	if (!err && !ends_at(tail, (size_t)n, *seq, last)) {
		err = rp_status_fail(
			st, RP_ERR_AUTH,
			"the audit log does not end where audit.head says "
			"(record %llu): records were removed, or the log or "
			"its head was copied back from an older copy; "
			"'reprotect audit verify' says where, and nothing more "
			"is recorded until it is settled",
			(unsigned long long)*seq);
	}
	return err;
}

enum rp_err rp_audit_append(struct rp_store *s, struct rp_status *st,
			    const char *op, const uint8_t *key_id,
			    const char *fmt, ...)
{
	char path[PATH_MAX];
	char detail[RP_AUDIT_FIELD_MAX], edetail[RP_AUDIT_FIELD_MAX];
	char user[64], host[128], euser[64], ehost[128], eop[64];
	char key[2 * 32 + 1] = "-";
	char tbuf[32], line[LINE_MAX_], mac_hex[65];
	uint8_t last[32], m[32];
	uint64_t seq = 0, gen = 0;
	const time_t now = time(NULL);
	struct tm tm;
	va_list ap;
	int fd, n;
	enum rp_err err = log_path(s, st, path, "audit.log");

	if (err) {
		return err;
	}
	va_start(ap, fmt);
	if (vsnprintf(detail, sizeof(detail), fmt, ap) < 0) {
		detail[0] = '\0';
	}
	va_end(ap);
	escape(edetail, sizeof(edetail), detail);
	who(user, host);
	escape(euser, sizeof(euser), user);
	escape(ehost, sizeof(ehost), host);
	escape(eop, sizeof(eop), op);
	if (key_id) {
		rp_key_id_hex(key, key_id);
	}
	gmtime_r(&now, &tm);
	if (!strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(tbuf, sizeof(tbuf), "-");
	}

	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		return rp_status_errno(st, errno, "cannot open", path);
	}
	if (flock(fd, LOCK_EX) < 0) {
		err = rp_status_errno(st, errno, "cannot lock", path);
		goto out;
	}
	remove_stale_head_tmp(s);
	err = read_head(s, st, &seq, last, &gen);
	if (!err) {
		err = adopt_unanchored(s, st, fd, &seq, last);
	}
	if (err) {
		goto out;
	}
	n = snprintf(line, sizeof(line), "%llu\t%s\t%s\t%s\t%s\t%s\t%s",
		     (unsigned long long)seq + 1, tbuf, euser, ehost, eop,
		     key, edetail);
	if (n < 0 || (size_t)n >= sizeof(line) - 70) {
		err = rp_status_fail(st, RP_ERR_USAGE, "audit record too long");
		goto out;
	}
	err = mac(m, st, s->audit_key, last, line, (size_t)n);
	if (err) {
		goto out;
	}
	rp_hex_encode(mac_hex, m, 32);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "\t%s\n", mac_hex);
	err = rp_fd_write_all(fd, st, path, (const uint8_t *)line, (size_t)n);
	if (!err && fdatasync(fd) < 0) {
		err = rp_status_errno(st, errno, "cannot sync", path);
	}
	if (!err) {
		err = write_head(s, st, seq + 1, m, gen);
	}
out:
	close(fd); /* drops the lock */
	return err;
}

/*
 * tokens_field writes " unwrap_tokens=LABEL:N,LABEL:N" for a key whose
 * unwraps went to its token and its replicas, else ""; cut short (ending
 * in "...") when the labels are long
 */
static void tokens_field(char *out, size_t out_cap,
			 const struct rp_key_usage *u)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < u->num_tokens; i++) {
		const int n = snprintf(
			out + len, out_cap - len, "%s%s:%llu",
			i ? "," : " unwrap_tokens=", u->tokens[i].label,
			(unsigned long long)u->tokens[i].num_unwrap);

		if (n < 0 || (size_t)n >= out_cap - len) {
			snprintf(out + (out_cap > 4 ? out_cap - 4 : 0),
				 out_cap > 4 ? 4 : out_cap, "...");
			return;
		}
		len += (size_t)n;
	}
}

enum rp_err rp_audit_flush_usage(struct rp_store *s, struct rp_status *st,
				 const char *command)
{
	enum rp_err err = RP_OK;

	for (size_t i = 0; i < s->num_usage && !err; i++) {
		const struct rp_key_usage *u = &s->usage[i];
		char t0[32], t1[32], tokens[RP_AUDIT_FIELD_MAX / 2];
		const time_t a = (time_t)u->first_at, b = (time_t)u->last_at;
		struct tm tm;

		gmtime_r(&a, &tm);
		if (!strftime(t0, sizeof(t0), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
			snprintf(t0, sizeof(t0), "-");
		}
		gmtime_r(&b, &tm);
		if (!strftime(t1, sizeof(t1), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
			snprintf(t1, sizeof(t1), "-");
		}
		tokens_field(tokens, sizeof(tokens), u);
		err = rp_audit_append(
			s, st, "key.usage", u->id,
			"command=%s unwrap=%llu sign=%llu "
			"from=%s to=%s%s",
			command, (unsigned long long)u->num_unwrap,
			(unsigned long long)u->num_sign, t0, t1, tokens);
	}
	if (!err) {
		s->num_usage = 0;
	}
	return err;
}

/* split_fields cuts a line at tabs; returns the field count */
static size_t split_fields(char *line, char **f, size_t max)
{
	size_t n = 0;

	f[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

static void unescape(char *out, size_t cap, const char *in)
{
	size_t o = 0;

	for (; *in && o + 1 < cap; in++) {
		if (*in == '\\' && in[1]) {
			in++;
			out[o++] = (char)(*in == 't'	 ? '\t'
					  : *in == 'n' ? '\n'
					  : *in == 'r' ? '\r'
						       : *in);
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

enum rp_err rp_audit_log_check(struct rp_status *st, uint64_t *out_num,
			       rp_audit_record_fn *fn, void *arg,
			       const uint8_t audit_key[RP_ATLEAST(32)],
			       uint64_t head_seq,
			       const uint8_t head_mac[RP_ATLEAST(32)],
			       const uint8_t *log, size_t log_len)
{
	uint8_t prev[32] = { 0 }, m[32];
	uint64_t seq = 0;
	size_t off = 0;
	enum rp_err err = RP_OK;

	while (!err && off < log_len) {
		char line[LINE_MAX_];
		char *f[9];
		const uint8_t *nl = memchr(log + off, '\n', log_len - off);
		const size_t len = nl ? (size_t)(nl - (log + off)) : 0;
		struct rp_audit_record r;
		uint8_t got[32];
		char *end = NULL;

		if (!nl || len >= sizeof(line)) {
			err = rp_status_fail(st, RP_ERR_AUTH,
					     "audit record %llu: truncated or "
					     "over-long line",
					     (unsigned long long)seq + 1);
			break;
		}
		memcpy(line, log + off, len);
		line[len] = '\0';
		off += len + 1;
		seq++;
		if (split_fields(line, f, 9) != 8 || strlen(f[7]) != 64 ||
		    rp_hex_decode(got, 32, f[7], 64)) {
			err = rp_status_fail(st, RP_ERR_AUTH,
					     "audit record %llu: malformed",
					     (unsigned long long)seq);
			break;
		}
		/* the MAC covers the line up to the tab before it */
		err = mac(m, st, audit_key, prev,
			  (const char *)log + off - len - 1, len - 65);
		if (err) {
			break;
		}
		memset(&r, 0, sizeof(r));
		r.seq = strtoull(f[0], &end, 10);
		if (CRYPTO_memcmp(m, got, 32) || !end || *end || r.seq != seq) {
			err = rp_status_fail(
				st, RP_ERR_AUTH,
				"audit record %llu (line %llu) fails the "
				"chain: it was changed, inserted, removed or "
				"moved, or an earlier record was",
				(unsigned long long)seq,
				(unsigned long long)seq);
			break;
		}
		memcpy(prev, got, 32);
		snprintf(r.time, sizeof(r.time), "%s", f[1]);
		unescape(r.user, sizeof(r.user), f[2]);
		unescape(r.host, sizeof(r.host), f[3]);
		unescape(r.op, sizeof(r.op), f[4]);
		snprintf(r.key, sizeof(r.key), "%s", f[5]);
		unescape(r.detail, sizeof(r.detail), f[6]);
		if (fn) {
			fn(arg, &r);
		}
	}
	if (!err && seq < head_seq) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the audit log ends at record %llu but "
				     "its head says %llu: records were cut "
				     "off the end",
				     (unsigned long long)seq,
				     (unsigned long long)head_seq);
	}
	/*
	 * One record past the head is a crash between appending and
	 * writing the head: its MAC chain is valid, so it is genuine.
	 */
	if (!err &&
	    (seq > head_seq + 1 ||
	     (seq == head_seq && seq && CRYPTO_memcmp(prev, head_mac, 32)))) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the audit log does not match its head");
	}
	if (out_num) {
		*out_num = seq;
	}
	return err;
}

enum rp_err rp_audit_verify(struct rp_store *s, struct rp_status *st,
			    rp_audit_record_fn *fn, void *arg,
			    uint64_t *out_num)
{
	struct rp_buf b = { 0 };
	char path[PATH_MAX];
	uint8_t head_mac[32];
	uint64_t head_seq = 0, gen = 0;
	enum rp_err err = log_path(s, st, path, "audit.log");

	if (out_num) {
		*out_num = 0;
	}
	if (!err) {
		err = read_head(s, st, &head_seq, head_mac, &gen);
	}
	if (!err) {
		err = rp_file_read(&b, st, path, LOG_MAX);
	}
	if (err == RP_ERR_NOTFOUND) {
		rp_status_clear(st);
		err = head_seq ? rp_status_fail(st, RP_ERR_AUTH,
						"audit.log is missing: %llu "
						"records were removed",
						(unsigned long long)head_seq)
			       : RP_OK;
		goto out;
	}
	if (!err) {
		err = rp_audit_log_check(st, out_num, fn, arg, s->audit_key,
					 head_seq, head_mac, b.p, b.len);
	}
out:
	rp_buf_fini(&b);
	return err;
}

/* last_seq: the number of the log's last complete record, 0 if none */
static uint64_t last_seq(int fd)
{
	char tail[RP_AUDIT_LINE_MAX + 1];
	struct stat sb;
	off_t off;
	ssize_t n;
	char *line, *end = NULL;
	unsigned long long v;

	if (fstat(fd, &sb) < 0 || sb.st_size == 0) {
		return 0;
	}
	off = sb.st_size > RP_AUDIT_LINE_MAX ? sb.st_size - RP_AUDIT_LINE_MAX
					     : 0;
	n = pread(fd, tail, (size_t)(sb.st_size - off), off);
	while (n > 0 && tail[n - 1] != '\n') {
		n--; /* a torn last line */
	}
	if (n <= 0) {
		return 0;
	}
	tail[n - 1] = '\0';
	line = strrchr(tail, '\n');
	line = line ? line + 1 : tail;
	v = strtoull(line, &end, 10);
	return end && *end == '\t' ? v : 0;
}

enum rp_err rp_audit_generation(const struct rp_store *s, struct rp_status *st,
				uint64_t *out_gen)
{
	char path[PATH_MAX];
	uint8_t last[32];
	uint64_t seq = 0, log_seq = 0;
	int fd = -1;
	enum rp_err err = log_path(s, st, path, "audit.log");

	*out_gen = 0;
	if (err) {
		return err;
	}
	/* the log's lock, shared: an append between the two reads would
	 * look like a head left behind */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		(void)flock(fd, LOCK_SH);
	}
	err = read_head(s, st, &seq, last, out_gen);
	if (!err && fd >= 0) {
		log_seq = last_seq(fd);
	}
	if (fd >= 0) {
		close(fd);
	}
	if (err) {
		return err;
	}
	/* one record ahead is a crash between the record and its head */
	if (log_seq > seq + 1) {
		*out_gen = 0;
		return rp_status_fail(
			st, RP_ERR_AUTH,
			"audit.head (record %llu) is older than audit.log "
			"(record %llu): it was copied back from an older copy, "
			"with the keyring perhaps; put the newest back "
			"(docs/OPERATIONS.md, \"Rollback\")",
			(unsigned long long)seq, (unsigned long long)log_seq);
	}
	return RP_OK;
}

enum rp_err rp_audit_note_generation(struct rp_store *s, struct rp_status *st,
				     uint64_t gen)
{
	char path[PATH_MAX];
	uint8_t last[32];
	uint64_t seq = 0, old = 0;
	int fd;
	enum rp_err err = log_path(s, st, path, "audit.log");

	if (err) {
		return err;
	}
	/* the log's lock: an append in between keeps the generation */
	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		return rp_status_errno(st, errno, "cannot open", path);
	}
	if (flock(fd, LOCK_EX) < 0) {
		err = rp_status_errno(st, errno, "cannot lock", path);
	}
	if (!err) {
		err = read_head(s, st, &seq, last, &old);
	}
	if (!err && gen > old) {
		err = write_head(s, st, seq, last, gen);
	}
	close(fd);
	return err;
}
