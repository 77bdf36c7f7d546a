#include "rp_test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "license.h"
#include "merkle.h"
#include "rp_buf.h"

#ifndef RP_TEST_DIR
#define RP_TEST_DIR "tests"
#endif

#define HASH_LEN	RP_MERKLE_HASH_LEN
#define CONST_HASHES(p) ((const uint8_t(*)[HASH_LEN])(p))

/* ------------------------------------------------------------------ */
/* An independent model of the TLV, written from docs/FORMAT.md.       */
/* ------------------------------------------------------------------ */

struct tfield {
	uint8_t tag;
	size_t len;	  /* value bytes written */
	long decl_len;	  /* length written in the header; -1: len */
	bool is_sigblock; /* the value is the serialised nested list */
	uint8_t val[1100];
};

#define MAX_FIELDS 16

struct tlic {
	size_t num_top;
	struct tfield top[MAX_FIELDS];
	size_t num_sig;
	struct tfield sig[MAX_FIELDS];
};

static void be_put(uint8_t *p, uint64_t v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	}
}

static struct tfield *tf_add(struct tfield *f, size_t *num, uint8_t tag,
			     const void *val, size_t len)
{
	struct tfield *x;

	assert_true(*num < MAX_FIELDS);
	assert_true(len <= sizeof(x->val));
	x = &f[(*num)++];
	memset(x, 0, sizeof(*x));
	x->tag = tag;
	x->len = len;
	x->decl_len = -1;
	if (len) {
		memcpy(x->val, val, len);
	}
	return x;
}

static void tf_add_uint(struct tfield *f, size_t *num, uint8_t tag, uint64_t v,
			size_t n)
{
	uint8_t b[8];

	be_put(b, v, n);
	tf_add(f, num, tag, b, n);
}

static void model_from(struct tlic *m, const struct rp_license *lic)
{
	const struct rp_sigblock *sb = &lic->sig;

	memset(m, 0, sizeof(*m));
	tf_add_uint(m->top, &m->num_top, 0x01, lic->version, 1);
	tf_add(m->top, &m->num_top, 0x02, lic->doc_id, 16);
	tf_add(m->top, &m->num_top, 0x03, lic->key_id, 32);
	tf_add(m->top, &m->num_top, 0x04, lic->template_id,
	       strlen(lic->template_id));
	tf_add(m->top, &m->num_top, 0x05, lic->owner, strlen(lic->owner));
	tf_add_uint(m->top, &m->num_top, 0x06, lic->issued_at, 8);
	tf_add_uint(m->top, &m->num_top, 0x07, lic->encoding, 1);
	tf_add_uint(m->top, &m->num_top, 0x08, lic->plaintext_size, 8);
	tf_add(m->top, &m->num_top, 0x09, lic->stanza_digest, 32);
	tf_add(m->top, &m->num_top, 0x0a, lic->payload_nonce, 16);
	tf_add(m->top, &m->num_top, 0x20, NULL, 0)->is_sigblock = true;
	tf_add_uint(m->sig, &m->num_sig, 0x21, sb->alg, 1);
	tf_add(m->sig, &m->num_sig, 0x22, sb->key_id, 32);
	tf_add_uint(m->sig, &m->num_sig, 0x23, sb->batch_size, 4);
	tf_add_uint(m->sig, &m->num_sig, 0x24, sb->leaf_index, 4);
	tf_add(m->sig, &m->num_sig, 0x25, sb->path, 32 * sb->num_path);
	tf_add(m->sig, &m->num_sig, 0x26, sb->sig, sb->sig_len);
}

static size_t ser_list(uint8_t *out, size_t cap, const struct tfield *f,
		       size_t num, const struct tlic *m)
{
	size_t len = 0, i;

	for (i = 0; i < num; i++) {
		uint8_t nested[8192];
		const uint8_t *val = f[i].val;
		size_t val_len = f[i].len;
		size_t decl;

		if (f[i].is_sigblock) {
			val_len = ser_list(nested, sizeof(nested), m->sig,
					   m->num_sig, m);
			val = nested;
		}
		decl = f[i].decl_len >= 0 ? (size_t)f[i].decl_len : val_len;
		assert_true(len + 3 + val_len <= cap);
		out[len] = f[i].tag;
		be_put(out + len + 1, decl, 2);
		memcpy(out + len + 3, val, val_len);
		len += 3 + val_len;
	}
	return len;
}

static size_t ser(uint8_t *out, size_t cap, const struct tlic *m)
{
	return ser_list(out, cap, m->top, m->num_top, m);
}

static void fl_remove(struct tfield *f, size_t *num, size_t i)
{
	memmove(&f[i], &f[i + 1], (*num - i - 1) * sizeof(*f));
	(*num)--;
}

static void fl_insert(struct tfield *f, size_t *num, size_t i,
		      const struct tfield *x)
{
	assert_true(*num < MAX_FIELDS);
	memmove(&f[i + 1], &f[i], (*num - i) * sizeof(*f));
	f[i] = *x;
	(*num)++;
}

static void fl_swap(struct tfield *f, size_t i, size_t j)
{
	struct tfield t = f[i];

	f[i] = f[j];
	f[j] = t;
}

/* ------------------------------------------------------------------ */
/* Licenses to test with                                              */
/* ------------------------------------------------------------------ */

static void set_str(char *dst, size_t cap, const char *s)
{
	const size_t len = strlen(s);

	assert_true(len < cap);
	memcpy(dst, s, len + 1);
}

static void lic_fill(struct rp_license *lic, unsigned int seed,
		     const char *template_id, const char *owner)
{
	size_t i;

	memset(lic, 0, sizeof(*lic));
	lic->version = RP_LICENSE_VERSION;
	for (i = 0; i < RP_DOC_ID_LEN; i++) {
		lic->doc_id[i] = (uint8_t)(seed * 31 + i);
		lic->payload_nonce[i] = (uint8_t)(0xc0 + i + seed);
	}
	for (i = 0; i < RP_KEY_ID_LEN; i++) {
		lic->key_id[i] = (uint8_t)(0xa0 + i);
		lic->stanza_digest[i] = (uint8_t)(0x50 ^ i ^ seed);
	}
	set_str(lic->template_id, sizeof(lic->template_id), template_id);
	set_str(lic->owner, sizeof(lic->owner), owner);
	lic->issued_at = 1767225600u + seed;
	lic->encoding = (uint8_t)(seed % 2);
	lic->plaintext_size = 123456789012ull + seed;
}

static void sig_fill(struct rp_sigblock *sb, uint8_t alg, uint32_t size,
		     uint32_t index, size_t sig_len)
{
	size_t i;

	memset(sb, 0, sizeof(*sb));
	sb->alg = alg;
	for (i = 0; i < RP_KEY_ID_LEN; i++) {
		sb->key_id[i] = (uint8_t)(0x70 + i);
	}
	sb->batch_size = size;
	sb->leaf_index = index;
	sb->num_path = rp_merkle_path_len(index, size);
	for (i = 0; i < sb->num_path * HASH_LEN; i++) {
		sb->path[i / HASH_LEN][i % HASH_LEN] = (uint8_t)(i * 13 + 1);
	}
	sb->sig_len = sig_len;
	for (i = 0; i < sig_len; i++) {
		sb->sig[i] = (uint8_t)(i * 7 + 3);
	}
}

static void base_license(struct rp_license *lic)
{
	lic_fill(lic, 1, "tpl-1", "owner-1");
	sig_fill(&lic->sig, RP_SIG_ED25519, 64, 37, 64);
}

static void assert_license_equal(const struct rp_license *a,
				 const struct rp_license *b)
{
	assert_int_equal(a->version, b->version);
	assert_memory_equal(a->doc_id, b->doc_id, RP_DOC_ID_LEN);
	assert_memory_equal(a->key_id, b->key_id, RP_KEY_ID_LEN);
	assert_string_equal(a->template_id, b->template_id);
	assert_string_equal(a->owner, b->owner);
	assert_int_equal(a->issued_at, b->issued_at);
	assert_int_equal(a->encoding, b->encoding);
	assert_int_equal(a->plaintext_size, b->plaintext_size);
	assert_memory_equal(a->stanza_digest, b->stanza_digest, 32);
	assert_memory_equal(a->payload_nonce, b->payload_nonce,
			    RP_AGE_NONCE_LEN);
	assert_int_equal(a->sig.alg, b->sig.alg);
	assert_memory_equal(a->sig.key_id, b->sig.key_id, RP_KEY_ID_LEN);
	assert_int_equal(a->sig.batch_size, b->sig.batch_size);
	assert_int_equal(a->sig.leaf_index, b->sig.leaf_index);
	assert_int_equal(a->sig.num_path, b->sig.num_path);
	if (a->sig.num_path) {
		assert_memory_equal(a->sig.path, b->sig.path,
				    a->sig.num_path * HASH_LEN);
	}
	assert_int_equal(a->sig.sig_len, b->sig.sig_len);
	assert_memory_equal(a->sig.sig, b->sig.sig, a->sig.sig_len);
}

/* decode, and check the status contract on failure */
static enum rp_err decode(struct rp_license *out, struct rp_status *st,
			  const uint8_t *p, size_t len, size_t *tbs_len)
{
	enum rp_err err;

	rp_status_clear(st);
	*tbs_len = 12345;
	err = rp_license_decode(out, st, p, len, tbs_len);
	if (err) {
		assert_int_equal(st->err, err);
		assert_int_equal(strncmp(st->msg, "license", 7), 0);
		assert_int_equal(*tbs_len, 0);
	}
	return err;
}

static enum rp_err decode_model(const struct tlic *m, struct rp_status *st)
{
	uint8_t buf[8192];
	const size_t len = ser(buf, sizeof(buf), m);
	struct rp_license out;
	size_t tbs_len;

	return decode(&out, st, buf, len, &tbs_len);
}

static void encode_ok(struct rp_buf *out, const struct rp_license *lic)
{
	struct rp_status st = { 0 };

	assert_int_equal(rp_license_encode(out, &st, lic), RP_OK);
}

/* ------------------------------------------------------------------ */
/* Encoding and strict decoding                                       */
/* ------------------------------------------------------------------ */

static void round_trip(const struct rp_license *lic)
{
	struct rp_buf enc = { 0 }, tbs = { 0 }, again = { 0 };
	struct rp_status st = { 0 };
	struct rp_license dec;
	struct tlic m;
	uint8_t want[8192];
	size_t want_len, tbs_len = 0;

	encode_ok(&enc, lic);
	assert_int_equal(rp_license_encode_tbs(&tbs, &st, lic), RP_OK);
	model_from(&m, lic);
	want_len = ser(want, sizeof(want), &m);
	assert_int_equal(enc.len, want_len);
	assert_memory_equal(enc.p, want, want_len);
	assert_true(enc.len <= RP_LICENSE_MAX);
	assert_memory_equal(enc.p, tbs.p, tbs.len);
	/* the TBS ends where the signature block starts */
	assert_int_equal(enc.p[tbs.len], 0x20);

	assert_int_equal(decode(&dec, &st, enc.p, enc.len, &tbs_len), RP_OK);
	assert_int_equal(tbs_len, tbs.len);
	assert_license_equal(&dec, lic);
	encode_ok(&again, &dec);
	assert_int_equal(again.len, enc.len);
	assert_memory_equal(again.p, enc.p, enc.len);
	rp_buf_fini(&enc);
	rp_buf_fini(&tbs);
	rp_buf_fini(&again);
}

static void test_license_round_trip_all_fields_ok(void **state)
{
	char tpl_max[RP_TEMPLATE_MAX + 1], owner_max[RP_OWNER_MAX + 1];
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct rp_buf enc = { 0 };
	size_t i;

	(void)state;
	memset(tpl_max, 'T', RP_TEMPLATE_MAX);
	tpl_max[RP_TEMPLATE_MAX] = '\0';
	/* 255 bytes: 84 three-byte characters and 3 ASCII */
	for (i = 0; i < 84; i++) {
		memcpy(owner_max + 3 * i, "\xe6\x97\xa5", 3);
	}
	memcpy(owner_max + 252, "abc", 4);
	assert_int_equal(strlen(owner_max), RP_OWNER_MAX);

	lic_fill(&lic, 0, "", "");
	sig_fill(&lic.sig, RP_SIG_RSA_PSS_SHA256, 1, 0, 256);
	round_trip(&lic);

	lic_fill(&lic, 1, tpl_max, owner_max);
	sig_fill(&lic.sig, RP_SIG_ED25519, 64, 37, 64);
	round_trip(&lic);

	lic_fill(&lic, 2, "hr-confidential", "Zo\xc3\xab \xf0\x9f\x98\x80");
	sig_fill(&lic.sig, RP_SIG_RSA_PSS_SHA256, RP_MERKLE_MAX_LEAVES,
		 RP_MERKLE_MAX_LEAVES - 1, RP_SIG_MAX);
	round_trip(&lic);

	/* every field at its maximum: the largest valid license */
	lic_fill(&lic, 4, tpl_max, owner_max);
	sig_fill(&lic.sig, RP_SIG_RSA_PSS_SHA256, RP_MERKLE_MAX_LEAVES, 12345,
		 RP_SIG_MAX);
	assert_int_equal(lic.sig.num_path, 20);
	round_trip(&lic);
	assert_int_equal(rp_license_encode(&enc, &st, &lic), RP_OK);
	assert_int_equal(enc.len, 1677);
	rp_buf_fini(&enc);

	lic_fill(&lic, 3, "x", "y");
	lic.issued_at = UINT64_MAX;
	lic.plaintext_size = 0;
	sig_fill(&lic.sig, RP_SIG_ED25519, 1000, 999, 1);
	round_trip(&lic);
}

static void test_license_decode_rejects_unknown_tag(void **state)
{
	static const uint8_t unknown[] = { 0x00, 0x0b, 0x11, 0x1f,
					   0x27, 0x30, 0x80, 0xff };
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct tlic base, m;
	struct tfield x;
	size_t i, u;

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	assert_int_equal(decode_model(&base, &st), RP_OK);
	memset(&x, 0, sizeof(x));
	x.decl_len = -1;
	x.len = 1;
	for (u = 0; u < sizeof(unknown); u++) {
		x.tag = unknown[u];
		for (i = 0; i <= base.num_top; i++) {
			m = base;
			fl_insert(m.top, &m.num_top, i, &x);
			assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
		}
		for (i = 0; i <= base.num_sig; i++) {
			m = base;
			fl_insert(m.sig, &m.num_sig, i, &x);
			assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
		}
	}
	/* a known tag at the wrong level is refused as well */
	m = base;
	x.tag = 0x21;
	fl_insert(m.top, &m.num_top, 3, &x);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m = base;
	x.tag = 0x03;
	fl_insert(m.sig, &m.num_sig, 0, &x);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);

	m = base;
	x.tag = 0x0b;
	fl_insert(m.top, &m.num_top, 10, &x);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	assert_string_equal(st.msg, "license: unknown field 0x0b where field "
				    "0x20 (signature block) is expected");
}

static void test_license_decode_rejects_missing_field(void **state)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct tlic base, m;
	size_t i;

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	for (i = 0; i < base.num_top; i++) {
		m = base;
		fl_remove(m.top, &m.num_top, i);
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}
	for (i = 0; i < base.num_sig; i++) {
		m = base;
		fl_remove(m.sig, &m.num_sig, i);
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}
	m = base;
	fl_remove(m.top, &m.num_top, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	assert_string_equal(st.msg, "license: field 0x05 (owner): missing, "
				    "found field 0x06 (issued-at)");
	m = base;
	m.num_sig = 0;
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
}

static void test_license_decode_rejects_duplicate_field(void **state)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct tlic base, m;
	size_t i;

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	for (i = 0; i < base.num_top; i++) {
		m = base;
		fl_insert(m.top, &m.num_top, i + 1, &base.top[i]);
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}
	for (i = 0; i < base.num_sig; i++) {
		m = base;
		fl_insert(m.sig, &m.num_sig, i + 1, &base.sig[i]);
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}
	m = base;
	fl_insert(m.top, &m.num_top, 3, &base.top[2]);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	assert_string_equal(st.msg,
			    "license: field 0x03 (tenant key id): duplicate or "
			    "out of order where field 0x04 (template id) is "
			    "expected");
}

static void test_license_decode_rejects_reordered_fields(void **state)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct tlic base, m;
	size_t i, j;

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	for (i = 0; i < base.num_top; i++) {
		for (j = i + 1; j < base.num_top; j++) {
			m = base;
			fl_swap(m.top, i, j);
			assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
		}
	}
	for (i = 0; i < base.num_sig; i++) {
		for (j = i + 1; j < base.num_sig; j++) {
			m = base;
			fl_swap(m.sig, i, j);
			assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
		}
	}
}

/* every field with a wrong length, framed consistently or not */
static void wrong_lengths(struct tfield *f, size_t num, const struct tlic *base,
			  bool is_top)
{
	struct rp_status st = { 0 };
	size_t i;

	for (i = 0; i < num; i++) {
		static const long deltas[] = { -33, -32, -1, 1, 31, 32, 600 };
		size_t d;

		for (d = 0; d < RP_ARRAY_LEN(deltas); d++) {
			struct tlic m = *base;
			struct tfield *x = is_top ? &m.top[i] : &m.sig[i];
			const long want = (long)f[i].len + deltas[d];
			const uint8_t tag = f[i].tag;
			bool may_pass = false;

			if (f[i].is_sigblock || want < 0 ||
			    want > (long)sizeof(x->val)) {
				continue;
			}
			/* lengths that stay valid for the variable fields */
			if (tag == 0x04) {
				may_pass = want <= RP_TEMPLATE_MAX;
			} else if (tag == 0x05) {
				may_pass = want <= RP_OWNER_MAX;
			} else if (tag == 0x26) {
				may_pass = want >= 1 && want <= RP_SIG_MAX;
			}
			/* consistent framing, wrong value length */
			if (want > (long)x->len) {
				memset(x->val + x->len, 'a',
				       (size_t)want - x->len);
			}
			x->len = (size_t)want;
			if (may_pass) {
				assert_int_equal(decode_model(&m, &st), RP_OK);
			} else {
				assert_int_equal(decode_model(&m, &st),
						 RP_ERR_FORMAT);
			}
		}
		for (d = 0; d < RP_ARRAY_LEN(deltas); d++) {
			struct tlic m = *base;
			struct tfield *x = is_top ? &m.top[i] : &m.sig[i];
			long decl;

			/* the header lies about the value's length */
			if (x->is_sigblock) {
				uint8_t nested[8192];

				decl = (long)ser_list(nested, sizeof(nested),
						      m.sig, m.num_sig, &m) +
				       deltas[d];
			} else {
				decl = (long)x->len + deltas[d];
			}
			if (decl < 0 || decl > 0xffff) {
				continue;
			}
			x->decl_len = decl;
			assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
		}
	}
}

static void test_license_decode_rejects_length_mismatch(void **state)
{
	struct rp_license lic;
	struct tlic base;

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	wrong_lengths(base.top, base.num_top, &base, true);
	wrong_lengths(base.sig, base.num_sig, &base, false);
	/* the same with a batch of one, whose audit path is empty */
	sig_fill(&lic.sig, RP_SIG_ED25519, 1, 0, 64);
	model_from(&base, &lic);
	wrong_lengths(base.sig, base.num_sig, &base, false);
}

static void test_license_decode_rejects_truncated_and_trailing(void **state)
{
	struct rp_license lic, out;
	struct rp_status st = { 0 };
	struct rp_buf enc = { 0 };
	uint8_t buf[8192];
	size_t len, tbs_len = 0, sig_len, decl, dummy;

	(void)state;
	base_license(&lic);
	encode_ok(&enc, &lic);
	for (len = 0; len < enc.len; len++) {
		assert_int_equal(decode(&out, &st, enc.p, len, &tbs_len),
				 RP_ERR_FORMAT);
	}
	assert_int_equal(decode(&out, &st, enc.p, enc.len, &tbs_len), RP_OK);
	memcpy(buf, enc.p, enc.len);
	for (len = 0; len < 256; len++) {
		buf[enc.len] = (uint8_t)len;
		assert_int_equal(decode(&out, &st, buf, enc.len + 1, &dummy),
				 RP_ERR_FORMAT);
	}
	assert_string_equal(st.msg, "license: 1 trailing bytes after field "
				    "0x20 (signature block)");
	/* a second signature block */
	sig_len = enc.len - tbs_len;
	memcpy(buf + enc.len, enc.p + tbs_len, sig_len);
	assert_int_equal(decode(&out, &st, buf, enc.len + sig_len, &len),
			 RP_ERR_FORMAT);

	/* a byte after the last nested field, inside the signature block */
	memcpy(buf, enc.p, enc.len);
	buf[enc.len] = 0x00;
	decl = (size_t)buf[tbs_len + 1] << 8 | buf[tbs_len + 2];
	decl++;
	buf[tbs_len + 1] = (uint8_t)(decl >> 8);
	buf[tbs_len + 2] = (uint8_t)decl;
	assert_int_equal(decode(&out, &st, buf, enc.len + 1, &len),
			 RP_ERR_FORMAT);
	assert_string_equal(st.msg, "license: field 0x20 (signature block): 1 "
				    "trailing bytes after field 0x26 (root "
				    "signature)");
	rp_buf_fini(&enc);
}

static void test_license_decode_rejects_bad_values(void **state)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct tlic base, m;
	size_t i;
	static const uint8_t bad_enc[] = { 2, 9, 0x80, 0xff };
	static const uint8_t bad_alg[] = { 0, 3, 0xff };
	static const uint8_t bad_version[] = { 0, 2, 0xff };

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	for (i = 0; i < sizeof(bad_version); i++) {
		m = base;
		m.top[0].val[0] = bad_version[i];
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}
	for (i = 0; i < sizeof(bad_enc); i++) {
		m = base;
		m.top[6].val[0] = bad_enc[i];
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}
	m = base;
	m.top[6].val[0] = 9;
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	assert_string_equal(st.msg, "license: field 0x07 (content encoding): "
				    "unknown value 9");
	m.top[6].val[0] = 1;
	assert_int_equal(decode_model(&m, &st), RP_OK);
	for (i = 0; i < sizeof(bad_alg); i++) {
		m = base;
		m.sig[0].val[0] = bad_alg[i];
		assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	}

	/* batch size 0 and over the maximum */
	m = base;
	be_put(m.sig[2].val, 0, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	be_put(m.sig[2].val, RP_MERKLE_MAX_LEAVES + 1, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	be_put(m.sig[2].val, UINT32_MAX, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);

	/* index not below the size: 64 of 64, and 37 of 37 */
	m = base;
	be_put(m.sig[3].val, 64, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m = base;
	be_put(m.sig[2].val, 37, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);

	/* a path of the wrong length for (37, 64), which needs 6 hashes */
	for (i = 0; i <= RP_MERKLE_MAX_DEPTH; i++) {
		m = base;
		m.sig[4].len = 32 * i;
		memset(m.sig[4].val, 0x5a, m.sig[4].len);
		assert_int_equal(decode_model(&m, &st),
				 i == 6 ? RP_OK : RP_ERR_FORMAT);
	}
	/* the same path length is right for another (index, size) */
	m = base;
	be_put(m.sig[2].val, 3, 4);
	be_put(m.sig[3].val, 2, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m.sig[4].len = 32;
	assert_int_equal(decode_model(&m, &st), RP_OK);
	/* batch of one: an empty path only */
	m = base;
	be_put(m.sig[2].val, 1, 4);
	be_put(m.sig[3].val, 0, 4);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m.sig[4].len = 0;
	assert_int_equal(decode_model(&m, &st), RP_OK);

	/* root signature: empty and oversize */
	m = base;
	m.sig[5].len = 0;
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m.sig[5].len = RP_SIG_MAX + 1;
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m.sig[5].len = RP_SIG_MAX;
	assert_int_equal(decode_model(&m, &st), RP_OK);
}

static void test_license_decode_rejects_oversize_input(void **state)
{
	struct rp_license out;
	struct rp_status st = { 0 };
	uint8_t *big = calloc(RP_LICENSE_MAX + 1, 1);
	size_t tbs_len;

	(void)state;
	assert_non_null(big);
	assert_int_equal(decode(&out, &st, big, RP_LICENSE_MAX + 1, &tbs_len),
			 RP_ERR_FORMAT);
	assert_int_equal(decode(&out, &st, big, 0, &tbs_len), RP_ERR_FORMAT);
	free(big);
}

static const char *const bad_texts[] = {
	"\xff",		    /* never in UTF-8 */
	"\x80",		    /* lone continuation */
	"\xc0\xaf",	    /* overlong '/' */
	"\xc1\xbf",	    /* overlong */
	"\xe0\x80\xaf",	    /* overlong */
	"\xf0\x80\x80\xaf", /* overlong */
	"\xed\xa0\x80",	    /* surrogate U+D800 */
	"\xed\xbf\xbf",	    /* surrogate U+DFFF */
	"\xf4\x90\x80\x80", /* U+110000 */
	"\xf8\x88\x80\x80\x80",
	"ab\xe2\x82",	/* truncated */
	"\xe2\x28\xa1", /* bad continuation */
	"a\nb",		/* C0 */
	"\t",		/* C0 */
	"\x1b[31m",	/* ESC */
	"del\x7f",	/* DEL */
	"\xc2\x85",	/* C1: NEL */
	"\xc2\x9f",	/* C1 */
};

/* the last, U+202E (right-to-left override), is a format char: allowed */
static const char *const good_texts[] = {
	"",
	"plain ascii ~!",
	"\xc2\xa0", /* U+00A0, the first after C1 */
	"Zo\xc3\xab",
	"\xe6\x97\xa5\xe6\x9c\xac",
	"\xf0\x9f\x98\x80",
	"\xef\xbf\xbd",
	"\xf4\x8f\xbf\xbf", /* U+10FFFF */
	"\xe2\x80\xae",	    /* NOLINT(misc-misleading-bidirectional): U+202E */
};

static void test_license_text_fields_bad_utf8_rejected(void **state)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct rp_buf out = { 0 };
	struct tlic base, m;
	size_t i, f;

	(void)state;
	base_license(&lic);
	model_from(&base, &lic);
	for (i = 0; i < RP_ARRAY_LEN(bad_texts); i++) {
		for (f = 3; f <= 4; f++) {
			m = base;
			m.top[f].len = strlen(bad_texts[i]);
			memcpy(m.top[f].val, bad_texts[i], m.top[f].len);
			assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
		}
		base_license(&lic);
		set_str(lic.owner, sizeof(lic.owner), bad_texts[i]);
		rp_status_clear(&st);
		assert_int_equal(rp_license_encode(&out, &st, &lic),
				 RP_ERR_USAGE);
		assert_int_equal(out.len, 0);
		base_license(&lic);
		set_str(lic.template_id, sizeof(lic.template_id), bad_texts[i]);
		rp_status_clear(&st);
		assert_int_equal(rp_license_encode_tbs(&out, &st, &lic),
				 RP_ERR_USAGE);
		assert_int_equal(out.len, 0);
	}
	/* a NUL inside the value */
	m = base;
	m.top[4].len = 3;
	memcpy(m.top[4].val, "a\0b", 3);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	m = base;
	m.top[4].len = 3;
	memcpy(m.top[4].val, "a\nb", 3);
	assert_int_equal(decode_model(&m, &st), RP_ERR_FORMAT);
	assert_string_equal(st.msg, "license: field 0x05 (owner): control "
				    "character at byte 1");
	for (i = 0; i < RP_ARRAY_LEN(good_texts); i++) {
		for (f = 3; f <= 4; f++) {
			m = base;
			m.top[f].len = strlen(good_texts[i]);
			memcpy(m.top[f].val, good_texts[i], m.top[f].len);
			assert_int_equal(decode_model(&m, &st), RP_OK);
		}
	}
	rp_buf_fini(&out);
}

static void test_license_encode_rejects_invalid(void **state)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct rp_buf out = { 0 };
	struct rp_buf small = { 0 };

	(void)state;
	assert_int_equal(rp_buf_add(&out, "keep", 4), RP_OK);
#define EXPECT_USAGE()                                                         \
	do {                                                                   \
		rp_status_clear(&st);                                          \
		assert_int_equal(rp_license_encode(&out, &st, &lic),           \
				 RP_ERR_USAGE);                                \
		assert_int_equal(out.len, 4);                                  \
		assert_true(st.msg[0] != '\0');                                \
	} while (0)
	base_license(&lic);
	memset(lic.template_id, 'x', sizeof(lic.template_id));
	EXPECT_USAGE();
	base_license(&lic);
	memset(lic.owner, 'x', sizeof(lic.owner));
	EXPECT_USAGE();
	base_license(&lic);
	lic.version = 2;
	EXPECT_USAGE();
	base_license(&lic);
	lic.encoding = 2;
	EXPECT_USAGE();
	assert_string_equal(st.msg, "license: field 0x07 (content encoding): "
				    "unknown value 2");
	base_license(&lic);
	lic.sig.alg = 3;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.batch_size = 0;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.batch_size = RP_MERKLE_MAX_LEAVES + 1;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.leaf_index = 64;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.num_path = 5;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.num_path = RP_MERKLE_MAX_DEPTH;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.sig_len = 0;
	EXPECT_USAGE();
	base_license(&lic);
	lic.sig.sig_len = RP_SIG_MAX + 1;
	EXPECT_USAGE();
#undef EXPECT_USAGE
	assert_memory_equal(out.p, "keep", 4);

	/* a bounded output buffer that is too small: nothing is left in it */
	base_license(&lic);
	small.max = 100;
	rp_status_clear(&st);
	assert_int_not_equal(rp_license_encode(&small, &st, &lic), RP_OK);
	assert_int_equal(small.len, 0);
	rp_buf_fini(&small);
	rp_buf_fini(&out);
}

/* ------------------------------------------------------------------ */
/* Batch signing and verification with real keys                      */
/* ------------------------------------------------------------------ */

struct keys {
	EVP_PKEY *rsa;
	EVP_PKEY *rsa2;
	EVP_PKEY *ed;
	EVP_PKEY *ed2;
	EVP_PKEY *x25519;
};

static int keys_setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	if (!k) {
		return -1;
	}
	k->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k->rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	k->ed2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	k->x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	*state = k;
	return k->rsa && k->rsa2 && k->ed && k->ed2 && k->x25519 ? 0 : -1;
}

static int keys_teardown(void **state)
{
	struct keys *k = *state;

	if (k) {
		EVP_PKEY_free(k->rsa);
		EVP_PKEY_free(k->rsa2);
		EVP_PKEY_free(k->ed);
		EVP_PKEY_free(k->ed2);
		EVP_PKEY_free(k->x25519);
		free(k);
	}
	return 0;
}

static void key_id_of(uint8_t out[RP_KEY_ID_LEN], EVP_PKEY *key)
{
	unsigned char *der = NULL;
	const int len = i2d_PUBKEY(key, &der);
	unsigned int out_len = 0;

	assert_true(len > 0);
	assert_int_equal(
		EVP_Digest(der, (size_t)len, out, &out_len, EVP_sha256(), NULL),
		1);
	OPENSSL_free(der);
}

/*
 * sign_message signs the root message as a keystore would: RSA-PSS with
 * SHA-256, MGF1-SHA-256 and the given salt length, or pure Ed25519.
 * pad == RSA_PKCS1_PADDING makes a PKCS#1 v1.5 signature instead.
 */
static void sign_message(uint8_t *sig, size_t *sig_len, EVP_PKEY *key,
			 const uint8_t *msg, size_t msg_len, int pad,
			 int saltlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const bool is_rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, &pctx,
					    is_rsa ? EVP_sha256() : NULL, NULL,
					    key),
			 1);
	if (is_rsa) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, pad), 1);
		if (pad == RSA_PKCS1_PSS_PADDING) {
			assert_int_equal(
				EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen),
				1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(
						 pctx, EVP_sha256()),
					 1);
		}
	}
	*sig_len = RP_SIG_MAX;
	assert_int_equal(EVP_DigestSign(ctx, sig, sig_len, msg, msg_len), 1);
	EVP_MD_CTX_free(ctx);
}

struct signed_lic {
	struct rp_license lic;
	uint8_t buf[RP_LICENSE_MAX];
	size_t len;
	size_t tbs_len;
};

/*
 * sign_batch does what the batch signer does: a leaf per TBS, one tree,
 * one signature over the root message, a path per license. The signing
 * key id is `sign_kid`, or when NULL the id of `key` itself.
 */
static void sign_batch(struct signed_lic *out, size_t n, EVP_PKEY *key,
		       uint8_t alg, int saltlen, const uint8_t *sign_kid,
		       uint8_t root[HASH_LEN])
{
	uint8_t(*leaves)[HASH_LEN] = calloc(n, HASH_LEN);
	struct rp_merkle_tree tree;
	struct rp_status st = { 0 };
	uint8_t msg[64], sig[RP_SIG_MAX], kid[RP_KEY_ID_LEN];
	size_t msg_len, sig_len = 0, i;

	assert_non_null(leaves);
	if (sign_kid) {
		memcpy(kid, sign_kid, RP_KEY_ID_LEN);
	} else {
		key_id_of(kid, key);
	}
	for (i = 0; i < n; i++) {
		struct rp_buf tbs = { 0 };

		assert_int_equal(rp_license_encode_tbs(&tbs, &st, &out[i].lic),
				 RP_OK);
		rp_merkle_leaf(leaves[i], tbs.p, tbs.len);
		rp_buf_fini(&tbs);
	}
	assert_int_equal(
		rp_merkle_tree_build(&tree, &st, CONST_HASHES(leaves), n),
		RP_OK);
	rp_merkle_tree_root(&tree, root);
	msg_len = rp_license_root_message(msg, root, (uint32_t)n);
	sign_message(sig, &sig_len, key, msg, msg_len, RSA_PKCS1_PSS_PADDING,
		     saltlen);
	for (i = 0; i < n; i++) {
		struct rp_sigblock *sb = &out[i].lic.sig;
		struct rp_buf enc = { 0 };
		struct rp_license dec;

		sb->alg = alg;
		memcpy(sb->key_id, kid, RP_KEY_ID_LEN);
		sb->batch_size = (uint32_t)n;
		sb->leaf_index = (uint32_t)i;
		assert_int_equal(rp_merkle_tree_path(&tree, &st, sb->path,
						     &sb->num_path, i),
				 RP_OK);
		memcpy(sb->sig, sig, sig_len);
		sb->sig_len = sig_len;
		encode_ok(&enc, &out[i].lic);
		memcpy(out[i].buf, enc.p, enc.len);
		out[i].len = enc.len;
		assert_int_equal(decode(&dec, &st, out[i].buf, out[i].len,
					&out[i].tbs_len),
				 RP_OK);
		rp_buf_fini(&enc);
	}
	rp_merkle_tree_fini(&tree);
	free(leaves);
}

static enum rp_err verify_lic(const struct rp_license *lic,
			      const struct signed_lic *s, EVP_PKEY *key)
{
	struct rp_status st = { 0 };
	const enum rp_err err =
		rp_license_sig_verify(lic, &st, s->buf, s->tbs_len, key);

	if (err == RP_ERR_AUTH) {
		assert_string_equal(st.msg,
				    "license signature does not verify");
	} else if (err) {
		assert_int_equal(st.err, err);
		assert_true(st.msg[0] != '\0');
	}
	return err;
}

static enum rp_err verify_bytes(const uint8_t *p, size_t len, EVP_PKEY *key)
{
	struct rp_status st = { 0 };
	struct rp_license dec;
	size_t tbs_len = 0;
	enum rp_err err = decode(&dec, &st, p, len, &tbs_len);

	if (err) {
		return err;
	}
	return rp_license_sig_verify(&dec, &st, p, tbs_len, key);
}

static struct signed_lic *make_batch(size_t n)
{
	struct signed_lic *b = calloc(n, sizeof(*b));
	size_t i;
	char owner[32];

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		assert_true(snprintf(owner, sizeof(owner),
				     "user%zu@example.org", i) > 0);
		lic_fill(&b[i].lic, (unsigned int)i, i % 3 ? "tpl" : "", owner);
	}
	return b;
}

static void check_batch(EVP_PKEY *key, EVP_PKEY *other, uint8_t alg, size_t n)
{
	struct signed_lic *b = make_batch(n);
	uint8_t root[HASH_LEN];
	size_t i, j;

	sign_batch(b, n, key, alg, 32, NULL, root);
	for (i = 0; i < n; i++) {
		assert_int_equal(verify_bytes(b[i].buf, b[i].len, key), RP_OK);
		assert_int_equal(verify_lic(&b[i].lic, &b[i], key), RP_OK);
		assert_int_equal(verify_lic(&b[i].lic, &b[i], other),
				 RP_ERR_AUTH);
	}
	/* a license with another's path, with and without its index */
	for (i = 0; i < n; i++) {
		for (j = 0; j < n; j++) {
			struct rp_license l = b[i].lic;

			if (i == j || (n > 8 && (i + j) % 7)) {
				continue;
			}
			memcpy(l.sig.path, b[j].lic.sig.path,
			       sizeof(l.sig.path));
			l.sig.num_path = b[j].lic.sig.num_path;
			assert_int_equal(verify_lic(&l, &b[i], key),
					 l.sig.num_path == b[i].lic.sig.num_path
						 ? RP_ERR_AUTH
						 : RP_ERR_FORMAT);
			l.sig.leaf_index = (uint32_t)j;
			assert_int_equal(verify_lic(&l, &b[i], key),
					 RP_ERR_AUTH);
			/* the signature over the same root is no help */
			l = b[i].lic;
			l.sig.leaf_index = (uint32_t)j;
			if (rp_merkle_path_len(j, n) == l.sig.num_path) {
				assert_int_equal(verify_lic(&l, &b[i], key),
						 RP_ERR_AUTH);
			}
		}
	}
	free(b);
}

static void test_license_sign_rsa_batch1_verifies(void **state)
{
	struct keys *k = *state;

	check_batch(k->rsa, k->rsa2, RP_SIG_RSA_PSS_SHA256, 1);
}

static void test_license_sign_rsa_batch64_verifies(void **state)
{
	struct keys *k = *state;

	check_batch(k->rsa, k->rsa2, RP_SIG_RSA_PSS_SHA256, 64);
}

static void test_license_sign_ed25519_batch1_verifies(void **state)
{
	struct keys *k = *state;

	check_batch(k->ed, k->ed2, RP_SIG_ED25519, 1);
}

static void test_license_sign_ed25519_batch64_verifies(void **state)
{
	struct keys *k = *state;

	check_batch(k->ed, k->ed2, RP_SIG_ED25519, 64);
}

static void test_license_sign_batch7_verifies(void **state)
{
	struct keys *k = *state;

	check_batch(k->rsa, k->rsa2, RP_SIG_RSA_PSS_SHA256, 7);
	check_batch(k->ed, k->ed2, RP_SIG_ED25519, 7);
}

/*
 * a warm cache (the batch's root signature verified once) never lets a
 * changed license, path or signature through, nor another batch's
 */
static void test_license_sig_cache(void **state)
{
	struct keys *k = *state;
	struct signed_lic *b = make_batch(8), *c = make_batch(8);
	struct rp_sig_cache cache = { 0 };
	struct rp_status st = { 0 };
	uint8_t root[HASH_LEN];
	struct rp_license l;

	for (size_t i = 0; i < 8; i++) {
		c[i].lic.issued_at++; /* another batch: other leaves */
	}
	sign_batch(b, 8, k->rsa, RP_SIG_RSA_PSS_SHA256, 32, NULL, root);
	sign_batch(c, 8, k->rsa, RP_SIG_RSA_PSS_SHA256, 32, NULL, root);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(rp_license_sig_verify_cached(
					 &b[i].lic, &st, b[i].buf, b[i].tbs_len,
					 k->rsa, &cache),
				 RP_OK);
		assert_true(cache.is_set);
	}
	/* a signature byte flipped */
	l = b[3].lic;
	l.sig.sig[10] ^= 1;
	assert_int_equal(rp_license_sig_verify_cached(&l, &st, b[3].buf,
						      b[3].tbs_len, k->rsa,
						      &cache),
			 RP_ERR_AUTH);
	rp_status_clear(&st);
	/* a TBS byte changed: another leaf, another root */
	b[4].buf[30] ^= 1;
	assert_int_equal(rp_license_sig_verify_cached(&b[4].lic, &st,
						      b[4].buf, b[4].tbs_len,
						      k->rsa, &cache),
			 RP_ERR_AUTH);
	rp_status_clear(&st);
	/* another batch's path */
	l = b[5].lic;
	memcpy(l.sig.path, c[5].lic.sig.path, sizeof(l.sig.path));
	assert_int_equal(rp_license_sig_verify_cached(&l, &st, b[5].buf,
						      b[5].tbs_len, k->rsa,
						      &cache),
			 RP_ERR_AUTH);
	rp_status_clear(&st);
	/* under another key, the same bytes do not verify */
	assert_int_equal(rp_license_sig_verify_cached(&b[6].lic, &st,
						      b[6].buf, b[6].tbs_len,
						      k->rsa2, NULL),
			 RP_ERR_AUTH);
	rp_status_clear(&st);
	/*
	 * the cache keeps its signer's verify context: a batch of another
	 * signer gets a context of its own (the first signer's would fail
	 * it), and the first signer's batch still verifies after it
	 */
	sign_batch(c, 8, k->rsa2, RP_SIG_RSA_PSS_SHA256, 32, NULL, root);
	assert_non_null(cache.pss);
	for (size_t i = 0; i < 8; i += 7) {
		assert_int_equal(rp_license_sig_verify_cached(
					 &c[i].lic, &st, c[i].buf, c[i].tbs_len,
					 k->rsa2, &cache),
				 RP_OK);
		assert_memory_equal(cache.pss_id, c[i].lic.sig.key_id,
				    RP_KEY_ID_LEN);
	}
	b[4].buf[30] ^= 1; /* back as it was signed */
	cache.is_set = 0;  /* so that the signature is checked again */
	assert_int_equal(rp_license_sig_verify_cached(&b[4].lic, &st,
						      b[4].buf, b[4].tbs_len,
						      k->rsa, &cache),
			 RP_OK);
	assert_memory_equal(cache.pss_id, b[4].lic.sig.key_id, RP_KEY_ID_LEN);
	rp_sig_cache_fini(&cache);
	assert_null(cache.pss);
	assert_false(cache.is_set);
	free(b);
	free(c);
}

static void test_license_verify_key_type_mismatch_format(void **state)
{
	struct keys *k = *state;
	struct signed_lic *b = make_batch(1);
	uint8_t root[HASH_LEN];
	struct rp_license l;

	sign_batch(b, 1, k->rsa, RP_SIG_RSA_PSS_SHA256, 32, NULL, root);
	assert_int_equal(verify_lic(&b[0].lic, &b[0], k->ed), RP_ERR_FORMAT);
	assert_int_equal(verify_lic(&b[0].lic, &b[0], k->x25519),
			 RP_ERR_FORMAT);
	l = b[0].lic;
	l.sig.alg = RP_SIG_ED25519;
	assert_int_equal(verify_lic(&l, &b[0], k->rsa), RP_ERR_FORMAT);
	l.sig.alg = 7;
	assert_int_equal(verify_lic(&l, &b[0], k->rsa), RP_ERR_FORMAT);

	lic_fill(&b[0].lic, 0, "", "");
	sign_batch(b, 1, k->ed, RP_SIG_ED25519, 32, NULL, root);
	assert_int_equal(verify_lic(&b[0].lic, &b[0], k->rsa), RP_ERR_FORMAT);
	l = b[0].lic;
	l.sig.alg = RP_SIG_RSA_PSS_SHA256;
	assert_int_equal(verify_lic(&l, &b[0], k->ed), RP_ERR_FORMAT);
	assert_int_equal(verify_lic(&l, &b[0], NULL), RP_ERR_USAGE);
	free(b);
}

/* the RSA parameters are fixed: other paddings and salts do not verify */
static void test_license_verify_rsa_params_enforced(void **state)
{
	struct keys *k = *state;
	struct signed_lic *b = make_batch(2);
	uint8_t root[HASH_LEN], msg[64], dgst[HASH_LEN];
	uint8_t sig[RP_SIG_MAX];
	size_t msg_len, sig_len = 0;
	unsigned int dgst_len = 0;
	struct rp_license l;
	EVP_PKEY_CTX *pctx;

	sign_batch(b, 2, k->rsa, RP_SIG_RSA_PSS_SHA256, 32, NULL, root);
	msg_len = rp_license_root_message(msg, root, 2);
	l = b[1].lic;

	sign_message(sig, &sig_len, k->rsa, msg, msg_len, RSA_PKCS1_PSS_PADDING,
		     20);
	memcpy(l.sig.sig, sig, sig_len);
	assert_int_equal(verify_lic(&l, &b[1], k->rsa), RP_ERR_AUTH);
	sign_message(sig, &sig_len, k->rsa, msg, msg_len, RSA_PKCS1_PSS_PADDING,
		     RSA_PSS_SALTLEN_MAX);
	memcpy(l.sig.sig, sig, sig_len);
	assert_int_equal(verify_lic(&l, &b[1], k->rsa), RP_ERR_AUTH);
	sign_message(sig, &sig_len, k->rsa, msg, msg_len, RSA_PKCS1_PADDING, 0);
	memcpy(l.sig.sig, sig, sig_len);
	assert_int_equal(verify_lic(&l, &b[1], k->rsa), RP_ERR_AUTH);
	/* a truncated signature */
	l = b[1].lic;
	l.sig.sig_len--;
	assert_int_equal(verify_lic(&l, &b[1], k->rsa), RP_ERR_AUTH);

	/*
	 * A keystore that signs a digest (PKCS#11 CKM_RSA_PKCS_PSS) gives a
	 * signature that verifies: PSS over SHA-256(root message), salt 32.
	 */
	assert_int_equal(
		EVP_Digest(msg, msg_len, dgst, &dgst_len, EVP_sha256(), NULL),
		1);
	pctx = EVP_PKEY_CTX_new(k->rsa, NULL);
	assert_non_null(pctx);
	assert_int_equal(EVP_PKEY_sign_init(pctx), 1);
	assert_int_equal(
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
	sig_len = sizeof(sig);
	assert_int_equal(EVP_PKEY_sign(pctx, sig, &sig_len, dgst, dgst_len), 1);
	EVP_PKEY_CTX_free(pctx);
	l = b[1].lic;
	memcpy(l.sig.sig, sig, sig_len);
	l.sig.sig_len = sig_len;
	assert_int_equal(verify_lic(&l, &b[1], k->rsa), RP_OK);
	free(b);
}

/*
 * The batch size is signed with the root. Index 0 of 64 and of 63 take
 * the same route, so the Merkle root alone would not tell them apart.
 */
static void test_license_verify_batch_size_bound(void **state)
{
	struct keys *k = *state;
	struct signed_lic *b = make_batch(64);
	struct rp_status st = { 0 };
	uint8_t root[HASH_LEN], leaf[HASH_LEN], r2[HASH_LEN];
	struct rp_license l;
	uint32_t n2;

	sign_batch(b, 64, k->ed, RP_SIG_ED25519, 32, NULL, root);
	rp_merkle_leaf(leaf, b[0].buf, b[0].tbs_len);
	assert_int_equal(
		rp_merkle_root_from_path(r2, &st, leaf, 0, 63,
					 CONST_HASHES(b[0].lic.sig.path),
					 b[0].lic.sig.num_path),
		RP_OK);
	assert_memory_equal(r2, root, HASH_LEN);
	for (n2 = 1; n2 <= 130; n2++) {
		if (n2 == 64) {
			continue;
		}
		l = b[0].lic;
		l.sig.batch_size = n2;
		assert_int_equal(verify_lic(&l, &b[0], k->ed),
				 rp_merkle_path_len(0, n2) == 6
					 ? RP_ERR_AUTH
					 : RP_ERR_FORMAT);
	}
	free(b);
}

static const size_t sig_key_id_off = 3 + 4 + 3; /* after the sig block hdr */

/*
 * flip_sweep changes one byte of an encoded license at a time. The result
 * must not decode, or must fail to verify. The one exception is the
 * signing key id, which is not signed: the caller compares it with the
 * key it verifies with, and the flip shows there as a different id.
 */
static void flip_sweep(const struct signed_lic *s, EVP_PKEY *key,
		       bool all_values_in_tbs)
{
	static const uint8_t masks[] = { 0x01, 0x02, 0x04, 0x08, 0x10,
					 0x20, 0x40, 0x80, 0xff };
	const size_t kid_at = s->tbs_len + sig_key_id_off;
	uint8_t buf[RP_LICENSE_MAX];
	size_t pos;

	for (pos = 0; pos < s->len; pos++) {
		const bool all = all_values_in_tbs && pos < s->tbs_len;
		const size_t num = all ? 255 : RP_ARRAY_LEN(masks);
		size_t m;

		for (m = 0; m < num; m++) {
			struct rp_status st = { 0 };
			struct rp_license dec;
			size_t tbs_len = 0;
			enum rp_err err;

			memcpy(buf, s->buf, s->len);
			buf[pos] ^= all ? (uint8_t)(m + 1) : masks[m];
			err = decode(&dec, &st, buf, s->len, &tbs_len);
			if (err) {
				assert_int_equal(err, RP_ERR_FORMAT);
				continue;
			}
			if (pos >= kid_at && pos < kid_at + RP_KEY_ID_LEN) {
				assert_memory_not_equal(dec.sig.key_id,
							s->lic.sig.key_id,
							RP_KEY_ID_LEN);
				continue;
			}
			err = rp_license_sig_verify(&dec, &st, buf, tbs_len,
						    key);
			if (pos < s->tbs_len) {
				assert_int_equal(tbs_len, s->tbs_len);
				assert_memory_not_equal(buf, s->buf, tbs_len);
				assert_int_equal(err, RP_ERR_AUTH);
			} else {
				assert_true(err == RP_ERR_AUTH ||
					    err == RP_ERR_FORMAT);
			}
		}
	}
}

static void test_license_flip_any_byte_rsa_fails(void **state)
{
	struct keys *k = *state;
	struct signed_lic *b = make_batch(5);
	uint8_t root[HASH_LEN];

	sign_batch(b, 5, k->rsa, RP_SIG_RSA_PSS_SHA256, 32, NULL, root);
	flip_sweep(&b[2], k->rsa, true);
	free(b);
}

static void test_license_flip_any_byte_ed25519_fails(void **state)
{
	struct keys *k = *state;
	struct signed_lic *b = make_batch(3);
	uint8_t root[HASH_LEN];

	sign_batch(b, 3, k->ed, RP_SIG_ED25519, 32, NULL, root);
	flip_sweep(&b[1], k->ed, false);
	free(b);
}

static void test_license_root_message_layout_exact(void **state)
{
	uint8_t root[HASH_LEN], msg[64];
	size_t i, len;
	static const char want[] =
		"reprotect/v1 license batch\0\x01\x02\x03\x04";

	(void)state;
	for (i = 0; i < HASH_LEN; i++) {
		root[i] = (uint8_t)(0xe0 ^ i);
	}
	len = rp_license_root_message(msg, root, 0x01020304);
	assert_int_equal(len, 26 + 1 + 4 + 32);
	assert_memory_equal(msg, want, 31);
	assert_memory_equal(msg + 31, root, HASH_LEN);
}

/* ------------------------------------------------------------------ */
/* The worked example of docs/FORMAT.md                               */
/* ------------------------------------------------------------------ */

/* RFC 8032 section 7.1, TEST 1 */
static const char ex_ed_secret[] =
	"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char ex_ed_public[] =
	"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/* RFC 7748 section 6.1, Alice's private key: the example tenant key */
static const char ex_x_secret[] =
	"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
/* an illustrative recipient stanza (not a real wrap) */
static const char ex_stanza[] =
	"-> X25519 TEi+HgbkXoIRbg2YhUtRX1b5l7xdDGNHCrc9iR+RMxA\n"
	"J7mQXJp/2FVvmuYmfqYBfw7hRRa6z0b1IfpJD1oAPWQ\n";

static void hex_decode(uint8_t *out, size_t out_len, const char *hex)
{
	size_t i;

	assert_int_equal(strlen(hex), 2 * out_len);
	for (i = 0; i < out_len; i++) {
		unsigned int v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void hex_print(const char *label, const uint8_t *p, size_t len)
{
	size_t i;

	printf("%s (%zu bytes):\n", label, len);
	for (i = 0; i < len; i++) {
		printf("%02x%s", p[i],
		       (i + 1) % 32 == 0 || i + 1 == len ? "\n" : "");
	}
}

static EVP_PKEY *raw_key(int type, const char *hex)
{
	uint8_t raw[32];
	EVP_PKEY *key;

	hex_decode(raw, sizeof(raw), hex);
	key = EVP_PKEY_new_raw_private_key(type, NULL, raw, sizeof(raw));
	assert_non_null(key);
	OPENSSL_cleanse(raw, sizeof(raw));
	return key;
}

/* read the hex in a vectors file, skipping '#' comment lines */
static size_t read_hex_file(uint8_t *out, size_t cap, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t len = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		size_t i;

		if (line[0] == '#') {
			continue;
		}
		for (i = 0; line[i] && line[i + 1] && line[i] != '\n' &&
			    line[i] != ' ';
		     i += 2) {
			unsigned int v;

			assert_true(len < cap);
			assert_int_equal(sscanf(line + i, "%2x", &v), 1);
			out[len++] = (uint8_t)v;
		}
	}
	fclose(f);
	return len;
}

static void test_license_example_matches_vector(void **state)
{
	EVP_PKEY *ed = raw_key(EVP_PKEY_ED25519, ex_ed_secret);
	EVP_PKEY *x = raw_key(EVP_PKEY_X25519, ex_x_secret);
	struct signed_lic *b = calloc(3, sizeof(*b));
	uint8_t pub[32], want_pub[32], root[HASH_LEN], leaf[HASH_LEN];
	uint8_t msg[64], tenant_kid[RP_KEY_ID_LEN], digest[32];
	uint8_t want[RP_LICENSE_MAX];
	size_t pub_len = sizeof(pub), want_len, i, j;
	unsigned int dlen = 0;
	static const char *const owners[3] = { "bob@example.com",
					       "alice@example.com",
					       "carol@example.com" };

	(void)state;
	assert_non_null(b);
	assert_int_equal(EVP_PKEY_get_raw_public_key(ed, pub, &pub_len), 1);
	hex_decode(want_pub, sizeof(want_pub), ex_ed_public);
	assert_memory_equal(pub, want_pub, sizeof(pub));
	key_id_of(tenant_kid, x);
	assert_int_equal(EVP_Digest(ex_stanza, strlen(ex_stanza), digest, &dlen,
				    EVP_sha256(), NULL),
			 1);
	for (i = 0; i < 3; i++) {
		struct rp_license *l = &b[i].lic;

		memset(l, 0, sizeof(*l));
		l->version = 1;
		for (j = 0; j < RP_DOC_ID_LEN; j++) {
			l->doc_id[j] = (uint8_t)(i << 4 | j);
			l->payload_nonce[j] = (uint8_t)(0xa0 + 16 * i + j);
		}
		memcpy(l->key_id, tenant_kid, RP_KEY_ID_LEN);
		set_str(l->template_id, sizeof(l->template_id),
			"hr-confidential");
		set_str(l->owner, sizeof(l->owner), owners[i]);
		l->issued_at = 1767225600; /* 2026-01-01T00:00:00Z */
		l->encoding = RP_ENC_ZSTD;
		l->plaintext_size = 1048576;
		memcpy(l->stanza_digest, digest, sizeof(digest));
	}
	sign_batch(b, 3, ed, RP_SIG_ED25519, 0, tenant_kid, root);
	assert_int_equal(verify_bytes(b[1].buf, b[1].len, ed), RP_OK);

	if (getenv("RP_LICENSE_DUMP")) {
		const size_t msg_len = rp_license_root_message(msg, root, 3);

		rp_merkle_leaf(leaf, b[1].buf, b[1].tbs_len);
		hex_print("signing public key (Ed25519 raw)", pub, sizeof(pub));
		hex_print("tenant key id", tenant_kid, sizeof(tenant_kid));
		hex_print("stanza digest", digest, sizeof(digest));
		hex_print("license 1 of 3", b[1].buf, b[1].len);
		printf("tbs_len %zu\n", b[1].tbs_len);
		hex_print("leaf", leaf, sizeof(leaf));
		hex_print("root", root, sizeof(root));
		hex_print("root message", msg, msg_len);
	}
	want_len = read_hex_file(want, sizeof(want),
				 RP_TEST_DIR "/vectors/license/example.hex");
	assert_int_equal(b[1].len, want_len);
	assert_memory_equal(b[1].buf, want, want_len);
	assert_int_equal(verify_bytes(want, want_len, ed), RP_OK);
	free(b);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_license_round_trip_all_fields_ok),
		cmocka_unit_test(test_license_decode_rejects_unknown_tag),
		cmocka_unit_test(test_license_decode_rejects_missing_field),
		cmocka_unit_test(test_license_decode_rejects_duplicate_field),
		cmocka_unit_test(test_license_decode_rejects_reordered_fields),
		cmocka_unit_test(test_license_decode_rejects_length_mismatch),
		cmocka_unit_test(
			test_license_decode_rejects_truncated_and_trailing),
		cmocka_unit_test(test_license_decode_rejects_bad_values),
		cmocka_unit_test(test_license_decode_rejects_oversize_input),
		cmocka_unit_test(test_license_text_fields_bad_utf8_rejected),
		cmocka_unit_test(test_license_encode_rejects_invalid),
		cmocka_unit_test(test_license_root_message_layout_exact),
		cmocka_unit_test(test_license_sign_rsa_batch1_verifies),
		cmocka_unit_test(test_license_sign_rsa_batch64_verifies),
		cmocka_unit_test(test_license_sign_ed25519_batch1_verifies),
		cmocka_unit_test(test_license_sign_ed25519_batch64_verifies),
		cmocka_unit_test(test_license_sign_batch7_verifies),
		cmocka_unit_test(test_license_sig_cache),
		cmocka_unit_test(test_license_verify_key_type_mismatch_format),
		cmocka_unit_test(test_license_verify_rsa_params_enforced),
		cmocka_unit_test(test_license_verify_batch_size_bound),
		cmocka_unit_test(test_license_flip_any_byte_rsa_fails),
		cmocka_unit_test(test_license_flip_any_byte_ed25519_fails),
		cmocka_unit_test(test_license_example_matches_vector),
	};

	return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
