#include "license.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "rp_ossl.h"
#include "rp_span.h"

/* Tags of the license TLV (docs/FORMAT.md sections 6 and 7) */
enum lic_tag {
	TAG_VERSION = 0x01,
	TAG_DOC_ID = 0x02,
	TAG_KEY_ID = 0x03,
	TAG_TEMPLATE = 0x04,
	TAG_OWNER = 0x05,
	TAG_ISSUED_AT = 0x06,
	TAG_ENCODING = 0x07,
	TAG_PLAIN_SIZE = 0x08,
	TAG_STANZA_DIGEST = 0x09,
	TAG_NONCE = 0x0a,
	TAG_SIGBLOCK = 0x20,
	TAG_ALG = 0x21,
	TAG_SIGN_KEY_ID = 0x22,
	TAG_BATCH_SIZE = 0x23,
	TAG_LEAF_INDEX = 0x24,
	TAG_PATH = 0x25,
	TAG_ROOT_SIG = 0x26,
};

#define TLV_HDR_LEN	  3
#define STANZA_DIGEST_LEN 32
#define PATH_MAX_LEN	  (RP_MERKLE_MAX_DEPTH * RP_MERKLE_HASH_LEN)
#define ROOT_LABEL	  "reprotect/v1 license batch"
#define ROOT_LABEL_LEN	  (sizeof(ROOT_LABEL) - 1)
#define ROOT_MSG_LEN	  (ROOT_LABEL_LEN + 1 + 4 + RP_MERKLE_HASH_LEN)

struct field_spec {
	uint8_t tag;
	const char *name;
	uint16_t min_len;
	uint16_t max_len;
};

/* In wire order: the TBS, the signature block, then its nested fields. */
static const struct field_spec tbs_fields[] = {
	{ TAG_VERSION, "version", 1, 1 },
	{ TAG_DOC_ID, "document id", RP_DOC_ID_LEN, RP_DOC_ID_LEN },
	{ TAG_KEY_ID, "tenant key id", RP_KEY_ID_LEN, RP_KEY_ID_LEN },
	{ TAG_TEMPLATE, "template id", 0, RP_TEMPLATE_MAX },
	{ TAG_OWNER, "owner", 0, RP_OWNER_MAX },
	{ TAG_ISSUED_AT, "issued-at", 8, 8 },
	{ TAG_ENCODING, "content encoding", 1, 1 },
	{ TAG_PLAIN_SIZE, "plaintext size", 8, 8 },
	{ TAG_STANZA_DIGEST, "recipient stanza digest", STANZA_DIGEST_LEN,
	  STANZA_DIGEST_LEN },
	{ TAG_NONCE, "payload nonce", RP_AGE_NONCE_LEN, RP_AGE_NONCE_LEN },
};

static const struct field_spec sigblock_field = { TAG_SIGBLOCK,
						  "signature block", 1,
						  UINT16_MAX };

static const struct field_spec sig_fields[] = {
	{ TAG_ALG, "algorithm", 1, 1 },
	{ TAG_SIGN_KEY_ID, "signing key id", RP_KEY_ID_LEN, RP_KEY_ID_LEN },
	{ TAG_BATCH_SIZE, "batch size", 4, 4 },
	{ TAG_LEAF_INDEX, "leaf index", 4, 4 },
	{ TAG_PATH, "audit path", 0, PATH_MAX_LEN },
	{ TAG_ROOT_SIG, "root signature", 1, RP_SIG_MAX },
};

static const char *tag_name(uint8_t tag)
{
	size_t i;

	for (i = 0; i < RP_ARRAY_LEN(tbs_fields); i++) {
		if (tbs_fields[i].tag == tag) {
			return tbs_fields[i].name;
		}
	}
	for (i = 0; i < RP_ARRAY_LEN(sig_fields); i++) {
		if (sig_fields[i].tag == tag) {
			return sig_fields[i].name;
		}
	}
	if (tag == sigblock_field.tag) {
		return sigblock_field.name;
	}
	return NULL;
}

enum text_fault {
	TEXT_OK = 0,
	TEXT_BAD_UTF8,
	TEXT_CONTROL,
};

/*
 * text_check accepts strict UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF) without C0 controls, DEL or C1 controls; on a fault it stores
 * the offset of the offending sequence in `at`.
 */
static enum text_fault text_check(const uint8_t *p, size_t len, size_t *at)
{
	size_t i = 0;

	while (i < len) {
		const uint8_t b = p[i];
		uint32_t c;
		size_t n, k;

		*at = i;
		if (b < 0x80) {
			c = b;
			n = 1;
		} else if (b >= 0xc2 && b <= 0xdf) {
			c = b & 0x1f;
			n = 2;
		} else if (b >= 0xe0 && b <= 0xef) {
			c = b & 0x0f;
			n = 3;
		} else if (b >= 0xf0 && b <= 0xf4) {
			c = b & 0x07;
			n = 4;
		} else {
			return TEXT_BAD_UTF8;
		}
		if (len - i < n) {
			return TEXT_BAD_UTF8;
		}
		for (k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return TEXT_BAD_UTF8;
			}
			c = c << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
		    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
			return TEXT_BAD_UTF8;
		}
		if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
			return TEXT_CONTROL;
		}
		i += n;
	}
	return TEXT_OK;
}

static enum rp_err check_text(struct rp_status *st, enum rp_err err,
			      uint8_t tag, const uint8_t *p, size_t len)
{
	size_t at = 0;

	switch (text_check(p, len, &at)) {
	case TEXT_OK:
		return RP_OK;
	case TEXT_BAD_UTF8:
		return rp_status_fail(st, err,
				      "license: field 0x%02x (%s): invalid "
				      "UTF-8 at byte %zu",
				      tag, tag_name(tag), at);
	case TEXT_CONTROL:
		break;
	}
	return rp_status_fail(st, err,
			      "license: field 0x%02x (%s): control character "
			      "at byte %zu",
			      tag, tag_name(tag), at);
}

/* check_str checks a NUL-terminated struct field before encoding it. */
static enum rp_err check_str(struct rp_status *st, uint8_t tag, const char *s,
			     size_t max, size_t *out_len)
{
	const size_t len = strnlen(s, max + 1);

	*out_len = len;
	if (len > max) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "license: field 0x%02x (%s): longer "
				      "than %zu bytes",
				      tag, tag_name(tag), max);
	}
	return check_text(st, RP_ERR_USAGE, tag, (const uint8_t *)s, len);
}

/*
 * check_tbs_values checks what the TLV framing cannot: the value ranges of
 * the TBS fields. Template and owner are checked where their bytes are.
 */
static enum rp_err check_tbs_values(struct rp_status *st, enum rp_err err,
				    const struct rp_license *lic)
{
	if (lic->version != RP_LICENSE_VERSION) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (version): "
				      "unsupported value %u",
				      TAG_VERSION, lic->version);
	}
	if (lic->encoding != RP_ENC_NONE && lic->encoding != RP_ENC_ZSTD) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (content "
				      "encoding): unknown value %u",
				      TAG_ENCODING, lic->encoding);
	}
	return RP_OK;
}

/* check_sig_values checks the value ranges of the signature block. */
static enum rp_err check_sig_values(struct rp_status *st, enum rp_err err,
				    const struct rp_sigblock *sb)
{
	size_t want;

	if (sb->alg != RP_SIG_RSA_PSS_SHA256 && sb->alg != RP_SIG_ED25519) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (algorithm): "
				      "unknown value %u",
				      TAG_ALG, sb->alg);
	}
	if (sb->batch_size == 0 || sb->batch_size > RP_MERKLE_MAX_LEAVES) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (batch size): "
				      "value %u out of range 1 to %u",
				      TAG_BATCH_SIZE, sb->batch_size,
				      RP_MERKLE_MAX_LEAVES);
	}
	if (sb->leaf_index >= sb->batch_size) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (leaf index): "
				      "value %u not below the batch size %u",
				      TAG_LEAF_INDEX, sb->leaf_index,
				      sb->batch_size);
	}
	want = rp_merkle_path_len(sb->leaf_index, sb->batch_size);
	if (sb->num_path != want) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (audit path): "
				      "%zu hashes, leaf %u of %u needs %zu",
				      TAG_PATH, sb->num_path, sb->leaf_index,
				      sb->batch_size, want);
	}
	if (sb->sig_len == 0 || sb->sig_len > RP_SIG_MAX) {
		return rp_status_fail(st, err,
				      "license: field 0x%02x (root signature): "
				      "length %zu, expected 1 to %u",
				      TAG_ROOT_SIG, sb->sig_len, RP_SIG_MAX);
	}
	return RP_OK;
}

static enum rp_err add_hdr(struct rp_buf *out, uint8_t tag, size_t len)
{
	enum rp_err err;

	assert(len <= UINT16_MAX);
	err = rp_buf_add_u8(out, tag);
	if (!err) {
		err = rp_buf_add_u16be(out, (uint16_t)len);
	}
	return err;
}

static enum rp_err add_field(struct rp_buf *out, uint8_t tag, const void *val,
			     size_t len)
{
	enum rp_err err = add_hdr(out, tag, len);

	if (!err) {
		err = rp_buf_add(out, val, len);
	}
	return err;
}

static enum rp_err add_u8(struct rp_buf *out, uint8_t tag, uint8_t v)
{
	return add_field(out, tag, &v, 1);
}

static enum rp_err add_u32(struct rp_buf *out, uint8_t tag, uint32_t v)
{
	uint8_t b[4];

	rp_put_u32be(b, v);
	return add_field(out, tag, b, sizeof(b));
}

static enum rp_err add_u64(struct rp_buf *out, uint8_t tag, uint64_t v)
{
	uint8_t b[8];

	rp_put_u64be(b, v);
	return add_field(out, tag, b, sizeof(b));
}

static enum rp_err add_tbs_fields(struct rp_buf *out,
				  const struct rp_license *lic,
				  size_t template_len, size_t owner_len)
{
	enum rp_err err;

	err = add_u8(out, TAG_VERSION, lic->version);
	if (!err) {
		err = add_field(out, TAG_DOC_ID, lic->doc_id, RP_DOC_ID_LEN);
	}
	if (!err) {
		err = add_field(out, TAG_KEY_ID, lic->key_id, RP_KEY_ID_LEN);
	}
	if (!err) {
		err = add_field(out, TAG_TEMPLATE, lic->template_id,
				template_len);
	}
	if (!err) {
		err = add_field(out, TAG_OWNER, lic->owner, owner_len);
	}
	if (!err) {
		err = add_u64(out, TAG_ISSUED_AT, lic->issued_at);
	}
	if (!err) {
		err = add_u8(out, TAG_ENCODING, lic->encoding);
	}
	if (!err) {
		err = add_u64(out, TAG_PLAIN_SIZE, lic->plaintext_size);
	}
	if (!err) {
		err = add_field(out, TAG_STANZA_DIGEST, lic->stanza_digest,
				STANZA_DIGEST_LEN);
	}
	if (!err) {
		err = add_field(out, TAG_NONCE, lic->payload_nonce,
				RP_AGE_NONCE_LEN);
	}
	return err;
}

enum rp_err rp_license_encode_tbs(struct rp_buf *out, struct rp_status *st,
				  const struct rp_license *lic)
{
	const size_t start = out->len;
	size_t template_len = 0, owner_len = 0;
	enum rp_err err;

	err = check_tbs_values(st, RP_ERR_USAGE, lic);
	if (err) {
		goto out;
	}
	err = check_str(st, TAG_TEMPLATE, lic->template_id, RP_TEMPLATE_MAX,
			&template_len);
	if (err) {
		goto out;
	}
	err = check_str(st, TAG_OWNER, lic->owner, RP_OWNER_MAX, &owner_len);
	if (err) {
		goto out;
	}
	err = add_tbs_fields(out, lic, template_len, owner_len);
	if (err) {
		rp_status_fail(st, err,
			       "license: cannot grow the output buffer");
	}
out:
	if (err) {
		out->len = start;
	}
	return err;
}

static enum rp_err add_sig_fields(struct rp_buf *out,
				  const struct rp_sigblock *sb)
{
	const size_t path_len = sb->num_path * RP_MERKLE_HASH_LEN;
	const size_t nested_len = TLV_HDR_LEN + 1 + TLV_HDR_LEN +
				  RP_KEY_ID_LEN + TLV_HDR_LEN + 4 +
				  TLV_HDR_LEN + 4 + TLV_HDR_LEN + path_len +
				  TLV_HDR_LEN + sb->sig_len;
	enum rp_err err;

	err = add_hdr(out, TAG_SIGBLOCK, nested_len);
	if (!err) {
		err = add_u8(out, TAG_ALG, sb->alg);
	}
	if (!err) {
		err = add_field(out, TAG_SIGN_KEY_ID, sb->key_id,
				RP_KEY_ID_LEN);
	}
	if (!err) {
		err = add_u32(out, TAG_BATCH_SIZE, sb->batch_size);
	}
	if (!err) {
		err = add_u32(out, TAG_LEAF_INDEX, sb->leaf_index);
	}
	if (!err) {
		err = add_field(out, TAG_PATH, sb->path, path_len);
	}
	if (!err) {
		err = add_field(out, TAG_ROOT_SIG, sb->sig, sb->sig_len);
	}
	return err;
}

enum rp_err rp_license_encode(struct rp_buf *out, struct rp_status *st,
			      const struct rp_license *lic)
{
	const size_t start = out->len;
	enum rp_err err;

	err = rp_license_encode_tbs(out, st, lic);
	if (err) {
		goto out;
	}
	err = check_sig_values(st, RP_ERR_USAGE, &lic->sig);
	if (err) {
		goto out;
	}
	err = add_sig_fields(out, &lic->sig);
	if (err) {
		rp_status_fail(st, err,
			       "license: cannot grow the output buffer");
		goto out;
	}
	/* the field bounds keep every valid license well below the maximum */
	assert(out->len - start <= RP_LICENSE_MAX);
out:
	if (err) {
		out->len = start;
	}
	return err;
}

static enum rp_err wrong_tag(struct rp_status *st, const struct field_spec *f,
			     uint8_t tag)
{
	const char *name = tag_name(tag);

	if (!name) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: unknown field 0x%02x where "
				      "field 0x%02x (%s) is expected",
				      tag, f->tag, f->name);
	}
	if (tag < f->tag) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (%s): duplicate "
				      "or out of order where field 0x%02x "
				      "(%s) is expected",
				      tag, name, f->tag, f->name);
	}
	return rp_status_fail(st, RP_ERR_FORMAT,
			      "license: field 0x%02x (%s): missing, found "
			      "field 0x%02x (%s)",
			      f->tag, f->name, tag, name);
}

/*
 * take_field reads the field `f` from `s` and checks its length bounds;
 * on success `out` points at the value.
 */
static enum rp_err take_field(struct rp_span *s, struct rp_status *st,
			      const struct field_spec *f, struct rp_span *out)
{
	uint8_t tag;
	uint16_t len;

	if (!rp_span_get_u8(s, &tag)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (%s): missing, "
				      "the input ends",
				      f->tag, f->name);
	}
	if (tag != f->tag) {
		return wrong_tag(st, f, tag);
	}
	if (!rp_span_get_u16be(s, &len)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (%s): truncated "
				      "length",
				      f->tag, f->name);
	}
	if (len < f->min_len || len > f->max_len) {
		if (f->min_len == f->max_len) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "license: field 0x%02x (%s): "
					      "length %u, expected %u",
					      f->tag, f->name, len, f->min_len);
		}
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (%s): length %u, "
				      "expected %u to %u",
				      f->tag, f->name, len, f->min_len,
				      f->max_len);
	}
	if (!rp_span_get_bytes(s, len, out)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (%s): truncated, "
				      "length %u but %zu bytes left",
				      f->tag, f->name, len, s->len);
	}
	return RP_OK;
}

static uint32_t get_u32(struct rp_span v)
{
	uint32_t x = 0;

	assert(v.len == 4);
	rp_span_get_u32be(&v, &x);
	return x;
}

static uint64_t get_u64(struct rp_span v)
{
	uint64_t x = 0;

	assert(v.len == 8);
	rp_span_get_u64be(&v, &x);
	return x;
}

static enum rp_err decode_text(char *out, struct rp_status *st, uint8_t tag,
			       struct rp_span v)
{
	const enum rp_err err = check_text(st, RP_ERR_FORMAT, tag, v.p, v.len);

	if (err) {
		return err;
	}
	if (v.len) {
		memcpy(out, v.p, v.len);
	}
	out[v.len] = '\0';
	return RP_OK;
}

static enum rp_err decode_tbs(struct rp_license *out, struct rp_status *st,
			      struct rp_span *s)
{
	struct rp_span v[RP_ARRAY_LEN(tbs_fields)];
	size_t i;
	enum rp_err err;

	for (i = 0; i < RP_ARRAY_LEN(tbs_fields); i++) {
		err = take_field(s, st, &tbs_fields[i], &v[i]);
		if (err) {
			return err;
		}
	}
	out->version = v[0].p[0];
	memcpy(out->doc_id, v[1].p, RP_DOC_ID_LEN);
	memcpy(out->key_id, v[2].p, RP_KEY_ID_LEN);
	err = decode_text(out->template_id, st, TAG_TEMPLATE, v[3]);
	if (err) {
		return err;
	}
	err = decode_text(out->owner, st, TAG_OWNER, v[4]);
	if (err) {
		return err;
	}
	out->issued_at = get_u64(v[5]);
	out->encoding = v[6].p[0];
	out->plaintext_size = get_u64(v[7]);
	memcpy(out->stanza_digest, v[8].p, STANZA_DIGEST_LEN);
	memcpy(out->payload_nonce, v[9].p, RP_AGE_NONCE_LEN);
	return check_tbs_values(st, RP_ERR_FORMAT, out);
}

static enum rp_err decode_sigblock(struct rp_sigblock *out,
				   struct rp_status *st, struct rp_span s)
{
	struct rp_span v[RP_ARRAY_LEN(sig_fields)];
	size_t i;
	enum rp_err err;

	for (i = 0; i < RP_ARRAY_LEN(sig_fields); i++) {
		err = take_field(&s, st, &sig_fields[i], &v[i]);
		if (err) {
			return err;
		}
	}
	if (s.len) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (signature "
				      "block): %zu trailing bytes after field "
				      "0x%02x (root signature)",
				      TAG_SIGBLOCK, s.len, TAG_ROOT_SIG);
	}
	if (v[4].len % RP_MERKLE_HASH_LEN) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "license: field 0x%02x (audit path): "
				      "length %zu not a multiple of %u",
				      TAG_PATH, v[4].len, RP_MERKLE_HASH_LEN);
	}
	out->alg = v[0].p[0];
	memcpy(out->key_id, v[1].p, RP_KEY_ID_LEN);
	out->batch_size = get_u32(v[2]);
	out->leaf_index = get_u32(v[3]);
	out->num_path = v[4].len / RP_MERKLE_HASH_LEN;
	if (v[4].len) {
		memcpy(out->path, v[4].p, v[4].len);
	}
	out->sig_len = v[5].len;
	memcpy(out->sig, v[5].p, v[5].len);
	return check_sig_values(st, RP_ERR_FORMAT, out);
}

enum rp_err rp_license_decode(struct rp_license *out, struct rp_status *st,
			      const uint8_t *in, size_t in_len,
			      size_t *out_tbs_len)
{
	struct rp_span s = rp_span_of(in, in_len);
	struct rp_span sig;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	*out_tbs_len = 0;
	if (in_len > RP_LICENSE_MAX) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "license: %zu bytes, over the maximum %u",
				     in_len, RP_LICENSE_MAX);
		goto out;
	}
	err = decode_tbs(out, st, &s);
	if (err) {
		goto out;
	}
	*out_tbs_len = in_len - s.len;
	err = take_field(&s, st, &sigblock_field, &sig);
	if (err) {
		goto out;
	}
	if (s.len) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "license: %zu trailing bytes after field "
				     "0x%02x (signature block)",
				     s.len, TAG_SIGBLOCK);
		goto out;
	}
	err = decode_sigblock(&out->sig, st, sig);
out:
	if (err) {
		memset(out, 0, sizeof(*out));
		*out_tbs_len = 0;
	}
	return err;
}

size_t
rp_license_root_message(uint8_t out[RP_ATLEAST(64)],
			const uint8_t root[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
			uint32_t batch_size)
{
	uint8_t *p = out;

	memcpy(p, ROOT_LABEL, ROOT_LABEL_LEN);
	p += ROOT_LABEL_LEN;
	*p++ = 0x00;
	rp_put_u32be(p, batch_size);
	p += 4;
	memcpy(p, root, RP_MERKLE_HASH_LEN);
	p += RP_MERKLE_HASH_LEN;
	assert((size_t)(p - out) == ROOT_MSG_LEN);
	return ROOT_MSG_LEN;
}

static enum rp_err check_key_type(struct rp_status *st, uint8_t alg,
				  const EVP_PKEY *pub)
{
	const int id = EVP_PKEY_get_base_id(pub);
	const char *type = EVP_PKEY_get0_type_name(pub);

	if (alg == RP_SIG_RSA_PSS_SHA256 && id == EVP_PKEY_RSA) {
		return RP_OK;
	}
	if (alg == RP_SIG_ED25519 && id == EVP_PKEY_ED25519) {
		return RP_OK;
	}
	return rp_status_fail(
		st, RP_ERR_FORMAT,
		"license: field 0x%02x (algorithm): %s does not "
		"match the key type %s",
		TAG_ALG, alg == RP_SIG_ED25519 ? "Ed25519" : "RSA-PSS-SHA256",
		type ? type : "unknown");
}

/* pss_ctx_new: an RSA-PSS-SHA-256 (salt 32, MGF1-SHA-256) verify context */
static EVP_PKEY_CTX *pss_ctx_new(struct rp_status *st, EVP_PKEY *pub)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);

	if (!ctx || EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, rp_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, rp_sha256()) != 1) {
		rp_status_ossl(st, RP_ERR_CRYPTO,
			       "license: RSA-PSS verify setup");
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * sig_check checks the root signature: Ed25519 over the message, or
 * RSA-PSS over its SHA-256 through `pss` (the signer's verify context).
 * RP_ERR_AUTH when it does not verify; RP_ERR_NOMEM when verifying ran
 * out of memory (no sign of a forgery); RP_ERR_CRYPTO when it could not
 * be set up.
 */
static enum rp_err sig_check(struct rp_status *st, const struct rp_sigblock *sb,
			     EVP_PKEY *pub, EVP_PKEY_CTX *pss,
			     const uint8_t *msg, size_t msg_len)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t dg[32];
	unsigned int dl = 0;
	int r;

	rp_ossl_nomem_clear();
	if (sb->alg == RP_SIG_ED25519) {
		ctx = EVP_MD_CTX_new();
		if (!ctx ||
		    EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) != 1) {
			EVP_MD_CTX_free(ctx);
			return rp_status_ossl(st, RP_ERR_CRYPTO,
					      "license: Ed25519 verify setup");
		}
		r = EVP_DigestVerify(ctx, sb->sig, sb->sig_len, msg, msg_len);
		EVP_MD_CTX_free(ctx);
	} else if (!EVP_Digest(msg, msg_len, dg, &dl, rp_sha256(), NULL)) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "license: sha-256");
	} else {
		r = EVP_PKEY_verify(pss, sb->sig, sb->sig_len, dg, dl);
	}
	if (r == 1) {
		return RP_OK;
	}
	/* verification allocates: failing there is no forgery */
	if (rp_ossl_is_nomem()) {
		return rp_status_ossl(st, RP_ERR_NOMEM,
				      "license signature check");
	}
	ERR_clear_error();
	return rp_status_fail(st, RP_ERR_AUTH,
			      "license signature does not verify");
}

enum rp_err rp_license_sig_verify(const struct rp_license *lic,
				  struct rp_status *st, const uint8_t *tbs,
				  size_t tbs_len, EVP_PKEY *pub)
{
	return rp_license_sig_verify_cached(lic, st, tbs, tbs_len, pub, NULL);
}

void rp_sig_cache_fini(struct rp_sig_cache *c)
{
	EVP_PKEY_CTX_free(c->pss);
	memset(c, 0, sizeof(*c));
}

static int is_cached(const struct rp_sig_cache *c, const struct rp_sigblock *sb,
		     const uint8_t *msg, size_t msg_len)
{
	return c && c->is_set && c->alg == sb->alg &&
	       c->msg_len == msg_len && c->sig_len == sb->sig_len &&
	       !memcmp(c->key_id, sb->key_id, RP_KEY_ID_LEN) &&
	       !memcmp(c->msg, msg, msg_len) &&
	       !memcmp(c->sig, sb->sig, sb->sig_len);
}

/*
 * pss_for: the RSA-PSS verify context for the signer of `sb`: the
 * cache's when it was made for that key id, else a new one, kept in the
 * cache when there is one (*owned: the caller frees it)
 */
static EVP_PKEY_CTX *pss_for(struct rp_sig_cache *c, struct rp_status *st,
			     const struct rp_sigblock *sb, EVP_PKEY *pub,
			     int *owned)
{
	EVP_PKEY_CTX *ctx;

	*owned = 0;
	if (c && c->pss && !memcmp(c->pss_id, sb->key_id, RP_KEY_ID_LEN)) {
		return c->pss;
	}
	ctx = pss_ctx_new(st, pub);
	if (ctx && c) {
		EVP_PKEY_CTX_free(c->pss);
		c->pss = ctx;
		memcpy(c->pss_id, sb->key_id, RP_KEY_ID_LEN);
	} else {
		*owned = ctx != NULL;
	}
	return ctx;
}

enum rp_err rp_license_sig_verify_cached(const struct rp_license *lic,
					 struct rp_status *st,
					 const uint8_t *tbs, size_t tbs_len,
					 EVP_PKEY *pub,
					 struct rp_sig_cache *cache)
{
	const struct rp_sigblock *sb = &lic->sig;
	EVP_PKEY_CTX *pss = NULL;
	int owned = 0;
	uint8_t leaf[RP_MERKLE_HASH_LEN];
	uint8_t root[RP_MERKLE_HASH_LEN];
	uint8_t msg[64];
	size_t msg_len;
	enum rp_err err;

	if (!pub) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "license: no key to verify with");
		goto out;
	}
	err = check_sig_values(st, RP_ERR_FORMAT, sb);
	if (err) {
		goto out;
	}
	err = check_key_type(st, sb->alg, pub);
	if (err) {
		goto out;
	}
	err = rp_merkle_leaf_hash(leaf, st, tbs, tbs_len);
	if (err) {
		goto out;
	}
	err = rp_merkle_root_from_path(root, st, leaf, sb->leaf_index,
				       sb->batch_size, sb->path, sb->num_path);
	if (err) {
		goto out;
	}
	msg_len = rp_license_root_message(msg, root, sb->batch_size);
	if (is_cached(cache, sb, msg, msg_len)) {
		goto out; /* this root's signature verified already */
	}
	if (sb->alg == RP_SIG_RSA_PSS_SHA256) {
		pss = pss_for(cache, st, sb, pub, &owned);
		if (!pss) {
			err = st->err;
			goto out;
		}
	}
	err = sig_check(st, sb, pub, pss, msg, msg_len);
	if (!err && cache && msg_len <= sizeof(cache->msg)) {
		cache->is_set = 1;
		memcpy(cache->key_id, sb->key_id, RP_KEY_ID_LEN);
		cache->alg = sb->alg;
		memcpy(cache->msg, msg, msg_len);
		cache->msg_len = msg_len;
		memcpy(cache->sig, sb->sig, sb->sig_len);
		cache->sig_len = sb->sig_len;
	}
out:
	if (owned) {
		EVP_PKEY_CTX_free(pss);
	}
	return err;
}
