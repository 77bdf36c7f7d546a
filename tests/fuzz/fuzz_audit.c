/*
 * fuzz_audit: the audit log readers under `audit` / `audit verify`
 * (rp_audit_log_check, rp_audit_head_decode) and under every append
 * (rp_audit_adopt_tail), with a fixed audit key.
 *   - the input as an audit.head file: only a head whose MAC verifies
 *     decodes; the harness also builds one around the input's first 44
 *     bytes with a valid MAC, which must decode to exactly those bytes;
 *   - the input as an audit.log as it is (the MAC chain, which nothing
 *     but the empty log passes) and as its tail;
 *   - the input's lines as record texts: the harness appends to each a
 *     tab and a MAC that chains, so the record parser sees every input.
 *     The log of n lines then verifies exactly when every line has 7
 *     fields, numbered 1..n and under RP_AUDIT_LINE_MAX; if it does, each
 *     record reached the callback in order with NUL-terminated fields, it
 *     verifies against a head of n or n - 1 records (the crash window)
 *     and fails against n + 1 or, with the wrong MAC, n; and its tail
 *     is adopted from record n - 1 (and not from n).
 * Failures are RP_ERR_AUTH with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "audit.h"
#include "rp_b64.h"
#include "rp_buf.h"


#define HEAD_LEN  (4 + 8 + 32 + 32)
#define HEAD_LEN_2 (4 + 8 + 32 + 8 + 32)
#define MAX_LINES 256

static const uint8_t audit_key[32] = "audit log fuzz key 0123456789ab";

/* the chained MAC: HMAC-SHA-256(key, prev || text) */
static void chain_mac(uint8_t out[32], const uint8_t prev[32],
		      const uint8_t *text, size_t len)
{
	struct rp_buf b = { 0 };
	unsigned int n = 0;

	CHECK(rp_buf_add(&b, prev, 32) == RP_OK &&
	      rp_buf_add(&b, text, len) == RP_OK);
	CHECK(HMAC(EVP_sha256(), audit_key, 32, b.p, b.len, out, &n) &&
	      n == 32);
	rp_buf_fini(&b);
}

struct seen {
	uint64_t num;
};

static void on_record(void *arg, const struct rp_audit_record *r)
{
	struct seen *s = arg;

	CHECK(r->seq == ++s->num);
	CHECK(memchr(r->time, '\0', sizeof(r->time)));
	CHECK(memchr(r->user, '\0', sizeof(r->user)));
	CHECK(memchr(r->host, '\0', sizeof(r->host)));
	CHECK(memchr(r->op, '\0', sizeof(r->op)));
	CHECK(memchr(r->key, '\0', sizeof(r->key)));
	CHECK(memchr(r->detail, '\0', sizeof(r->detail)));
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

static void check_head(const uint8_t *data, size_t size)
{
	struct rp_status st = { 0 };
	uint8_t head[HEAD_LEN], head2[HEAD_LEN_2], last[32];
	static const uint8_t zero[32];
	uint64_t seq = 1, gen = 1;
	enum rp_err err;

	err = rp_audit_head_decode(&st, &seq, last, &gen, audit_key, data,
				   size);
	if (err) {
		CHECK(err == RP_ERR_AUTH && st.err == err && st.msg[0]);
		CHECK(seq == 0 && gen == 0 && !memcmp(last, zero, 32));
	}
	/* a head of each format with a valid MAC around the input */
	memset(head, 0, sizeof(head));
	memcpy(head, "RPAH", 4);
	memcpy(head + 4, data, size < 40 ? size : 40);
	chain_mac(head + 44, zero, head, 44);
	CHECK(rp_audit_head_decode(&st, &seq, last, &gen, audit_key, head,
				   sizeof(head)) == RP_OK);
	CHECK(seq == be64(head + 4) && gen == 0);
	CHECK(!memcmp(last, head + 12, 32));
	memset(head2, 0, sizeof(head2));
	memcpy(head2, "RPH2", 4);
	memcpy(head2 + 4, data, size < 48 ? size : 48);
	chain_mac(head2 + 52, zero, head2, 52);
	CHECK(rp_audit_head_decode(&st, &seq, last, &gen, audit_key, head2,
				   sizeof(head2)) == RP_OK);
	CHECK(seq == be64(head2 + 4) && gen == be64(head2 + 44));
	CHECK(!memcmp(last, head2 + 12, 32));
	/* the first format under the second's name, and the reverse */
	memcpy(head, "RPH2", 4);
	CHECK(rp_audit_head_decode(&st, &seq, last, &gen, audit_key, head,
				   sizeof(head)) == RP_ERR_AUTH);
}

/* adopt runs rp_audit_adopt_tail on the last bytes of `log` */
static int adopt(uint64_t *seq, uint8_t last[32], const uint8_t *log,
		 size_t len)
{
	struct rp_status st = { 0 };
	const size_t n = len < RP_AUDIT_LINE_MAX ? len : RP_AUDIT_LINE_MAX;
	const uint64_t seq0 = *seq;
	uint8_t last0[32];

	memcpy(last0, last, 32);
	CHECK(rp_audit_adopt_tail(&st, seq, last, audit_key, log + len - n,
				  n) == RP_OK);
	if (*seq == seq0) {
		CHECK(!memcmp(last, last0, 32));
		return 0;
	}
	CHECK(*seq == seq0 + 1);
	return 1;
}

static void check_chained(const uint8_t *data, size_t size)
{
	struct rp_status st = { 0 };
	struct rp_buf log = { 0 };
	struct seen seen = { 0 };
	uint8_t prev[32] = { 0 }, before_last[32] = { 0 }, wrong[32];
	uint64_t num = 0, lines = 0, seq;
	size_t start = 0, last_start = 0;
	char hex[65];
	enum rp_err err;

	/* each line of the input gets a tab and its chained MAC */
	for (size_t i = 0; i < size && lines < MAX_LINES; i++) {
		if (data[i] != '\n') {
			continue;
		}
		memcpy(before_last, prev, 32);
		chain_mac(prev, prev, data + start, i - start);
		rp_hex_encode(hex, prev, 32);
		last_start = log.len;
		CHECK(rp_buf_add(&log, data + start, i - start) == RP_OK &&
		      rp_buf_add_u8(&log, '\t') == RP_OK &&
		      rp_buf_add(&log, hex, 64) == RP_OK &&
		      rp_buf_add_u8(&log, '\n') == RP_OK);
		lines++;
		start = i + 1;
	}
	err = rp_audit_log_check(&st, &num, on_record, &seen, audit_key, lines,
				 prev, log.p, log.len);
	if (err) {
		CHECK(err == RP_ERR_AUTH && st.err == err && st.msg[0]);
		CHECK(num <= lines && (seen.num == num || seen.num + 1 == num));
		goto out;
	}
	CHECK(num == lines && seen.num == lines);
	/* a head one record behind (the crash window) or ahead, a wrong MAC */
	if (!lines) {
		goto out;
	}
	CHECK(rp_audit_log_check(&st, &num, NULL, NULL, audit_key, lines - 1,
				 before_last, log.p, log.len) == RP_OK);
	CHECK(rp_audit_log_check(&st, &num, NULL, NULL, audit_key, lines + 1,
				 prev, log.p, log.len) == RP_ERR_AUTH);
	memcpy(wrong, prev, 32);
	wrong[0] ^= 1;
	CHECK(rp_audit_log_check(&st, &num, NULL, NULL, audit_key, lines, wrong,
				 log.p, log.len) == RP_ERR_AUTH);
	if (lines >= 2) {
		CHECK(rp_audit_log_check(&st, &num, NULL, NULL, audit_key,
					 lines - 2, before_last, log.p,
					 log.len) == RP_ERR_AUTH);
	}
	/* the last record is adopted after a crash, once */
	seq = lines - 1;
	memcpy(wrong, before_last, 32);
	if (log.len - last_start <= RP_AUDIT_LINE_MAX) {
		CHECK(adopt(&seq, wrong, log.p, log.len) == 1);
		CHECK(seq == lines && !memcmp(wrong, prev, 32));
	}
	CHECK(adopt(&seq, wrong, log.p, log.len) == 0);
out:
	rp_buf_fini(&log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_status st = { 0 };
	uint8_t last[32] = { 0 };
	uint64_t num = 0, seq = 0;
	enum rp_err err;

	check_head(data, size);

	/* the input as a whole log and as its tail, MACs as they are */
	err = rp_audit_log_check(&st, &num, on_record, &(struct seen){ 0 },
				 audit_key, 0, last, data, size);
	CHECK(err == RP_ERR_AUTH || (err == RP_OK && size == 0));
	CHECK(err || num == 0);
	if (size) {
		(void)adopt(&seq, last, data, size);
	}

	check_chained(data, size);
	return 0;
}
