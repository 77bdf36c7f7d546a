#include "rp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "age_header.h"
#include "age_recip.h"
#include "rp_b64.h"
#include "rp_buf.h"

/* the stock-age vectors live with the header module's */
#define VEC_DIR RP_TEST_DIR "/vectors/age_header/"

#define SSHRSA_LABEL "age-encryption.org/v1/ssh-rsa"
#define UNWRAP_MSG   "cannot unwrap ssh-rsa stanza"

static const int rsa_bits[] = { 2048, 3072, 4096 };

/* read_file loads a vector, NUL-terminated; the caller frees */
static uint8_t *read_file(const char *name, size_t *out_len)
{
	char path[512];
	FILE *f;
	uint8_t *p;
	long n;

	assert_true(snprintf(path, sizeof(path), "%s%s", VEC_DIR, name) <
		    (int)sizeof(path));
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	*out_len = (size_t)n;
	return p;
}

static EVP_PKEY *load_rsa(int bits)
{
	char name[32];
	size_t len;
	uint8_t *pem;
	BIO *bio;
	EVP_PKEY *pkey;

	assert_true(snprintf(name, sizeof(name), "rsa%d.pem", bits) > 0);
	pem = read_file(name, &len);
	bio = BIO_new_mem_buf(pem, (int)len);
	assert_non_null(bio);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(pkey);
	assert_int_equal(EVP_PKEY_get_bits(pkey), bits);
	BIO_free(bio);
	free(pem);
	return pkey;
}

/* line_after copies the rest of the line that follows `prefix` in `text` */
static void line_after(char *out, size_t out_cap, const char *text,
		       const char *prefix)
{
	const char *p = strstr(text, prefix);
	size_t n;

	assert_non_null(p);
	p += strlen(prefix);
	n = strcspn(p, "\n");
	assert_true(n < out_cap);
	memcpy(out, p, n);
	out[n] = '\0';
}

struct age_file {
	uint8_t *in;
	size_t len;
	struct rp_age_header hdr;
};

static void age_file_load(struct age_file *af, const char *name)
{
	struct rp_status st = { 0 };

	af->in = read_file(name, &af->len);
	assert_int_equal(rp_age_header_parse(&af->hdr, &st, af->in, af->len),
			 RP_OK);
}

static void age_file_fini(struct age_file *af)
{
	rp_age_header_fini(&af->hdr);
	free(af->in);
}

static const struct rp_age_stanza *find_stanza(const struct rp_age_header *h,
					       const char *type)
{
	for (size_t i = 0; i < h->num_stanzas; i++) {
		if (rp_age_stanza_is(&h->stanzas[i], type)) {
			return &h->stanzas[i];
		}
	}
	fail_msg("no %s stanza", type);
	return NULL;
}

/*
 * assert_rewrite_identical writes the parsed header again, MAC included,
 * and expects the very bytes that were parsed.
 */
static void assert_rewrite_identical(const struct age_file *af,
				     const uint8_t *fk)
{
	struct rp_buf b = { 0 };
	struct rp_status st = { 0 };

	assert_int_equal(rp_age_header_begin(&b), RP_OK);
	for (size_t i = 0; i < af->hdr.num_stanzas; i++) {
		const struct rp_age_stanza *s = &af->hdr.stanzas[i];
		char argv[RP_AGE_MAX_ARGS][RP_AGE_MAX_ARG_LEN + 1];
		const char *args[RP_AGE_MAX_ARGS];

		for (size_t a = 0; a < s->num_args; a++) {
			memcpy(argv[a], s->args[a].p, s->args[a].len);
			argv[a][s->args[a].len] = '\0';
			args[a] = argv[a];
		}
		assert_int_equal(rp_age_header_add_stanza(
					 &b, args, s->num_args, s->body.p,
					 s->body.len, NULL, NULL),
				 RP_OK);
	}
	assert_int_equal(rp_age_header_finish(&b, &st, fk), RP_OK);
	assert_int_equal(b.len, af->hdr.header_len);
	assert_memory_equal(b.p, af->in, b.len);
	rp_buf_fini(&b);
}

static void test_age_recip_identity_decode_matches_keygen(void **state)
{
	char id_line[RP_AGE_KEY_STR_MAX], pub_line[RP_AGE_KEY_STR_MAX];
	char enc[RP_AGE_KEY_STR_MAX];
	uint8_t secret[RP_X25519_LEN], secret2[RP_X25519_LEN];
	uint8_t pub[RP_X25519_LEN], pub2[RP_X25519_LEN];
	struct rp_status st = { 0 };
	size_t len;
	char *text = (char *)read_file("x25519.key", &len);

	(void)state;
	line_after(pub_line, sizeof(pub_line), text, "# public key: ");
	line_after(id_line, sizeof(id_line), text, "\nAGE-SECRET-KEY-1");
	/* line_after dropped the prefix; put it back */
	memmove(id_line + 16, id_line, strlen(id_line) + 1);
	memcpy(id_line, "AGE-SECRET-KEY-1", 16);

	assert_int_equal(
		rp_age_identity_decode(secret, &st, id_line, strlen(id_line)),
		RP_OK);
	assert_int_equal(rp_x25519_public(pub, &st, secret), RP_OK);
	assert_int_equal(rp_age_recipient_encode(enc, pub), RP_OK);
	assert_string_equal(enc, pub_line);
	assert_int_equal(rp_age_identity_encode(enc, secret), RP_OK);
	assert_string_equal(enc, id_line);
	assert_int_equal(
		rp_age_recipient_decode(pub2, &st, pub_line, strlen(pub_line)),
		RP_OK);
	assert_memory_equal(pub2, pub, sizeof(pub));

	/* an all lower case identity is the same key */
	for (size_t i = 0; id_line[i]; i++) {
		if (id_line[i] >= 'A' && id_line[i] <= 'Z') {
			id_line[i] = (char)(id_line[i] - 'A' + 'a');
		}
	}
	assert_int_equal(
		rp_age_identity_decode(secret2, &st, id_line, strlen(id_line)),
		RP_OK);
	assert_memory_equal(secret2, secret, sizeof(secret));
	assert_int_equal(st.err, RP_OK);

	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(secret2, sizeof(secret2));
	OPENSSL_cleanse(text, len);
	free(text);
}

/* decode_fails expects RP_ERR_FORMAT naming `what`, never quoting `in` */
static void decode_fails(const char *in, int is_identity, const char *what)
{
	uint8_t out[RP_X25519_LEN];
	struct rp_status st = { 0 };
	enum rp_err err;

	if (is_identity) {
		err = rp_age_identity_decode(out, &st, in, strlen(in));
	} else {
		err = rp_age_recipient_decode(out, &st, in, strlen(in));
	}
	assert_int_equal(err, RP_ERR_FORMAT);
	assert_true(st.msg[0] != '\0');
	if (!strstr(st.msg, what)) {
		fail_msg("message '%s' does not name '%s'", st.msg, what);
	}
	if (strlen(in) >= 20) {
		assert_null(strstr(st.msg, in + strlen(in) - 20));
	}
}

static void test_age_recip_bech32_bad_input_format(void **state)
{
	char id[RP_AGE_KEY_STR_MAX], rc[RP_AGE_KEY_STR_MAX];
	char bad[RP_AGE_KEY_STR_MAX];
	uint8_t secret[RP_X25519_LEN], pub[RP_X25519_LEN];
	struct rp_status st = { 0 };
	const size_t id_len = 74, rc_len = 62;

	(void)state;
	assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);
	assert_int_equal(rp_x25519_public(pub, &st, secret), RP_OK);
	assert_int_equal(rp_age_identity_encode(id, secret), RP_OK);
	assert_int_equal(rp_age_recipient_encode(rc, pub), RP_OK);
	assert_int_equal(strlen(id), id_len);
	assert_int_equal(strlen(rc), rc_len);
	assert_memory_equal(rc, "age1", 4);

	/* a changed data character breaks the checksum */
	memcpy(bad, id, sizeof(id));
	bad[30] = bad[30] == 'Q' ? 'P' : 'Q';
	decode_fails(bad, 1, "bad bech32 checksum");
	memcpy(bad, rc, sizeof(rc));
	bad[rc_len - 1] = bad[rc_len - 1] == 'q' ? 'p' : 'q';
	decode_fails(bad, 0, "bad bech32 checksum");
	/* mixed case */
	memcpy(bad, id, sizeof(id));
	bad[0] = 'a';
	decode_fails(bad, 1, "mixes upper and lower case");
	memcpy(bad, rc, sizeof(rc));
	bad[0] = 'A';
	decode_fails(bad, 0, "mixes upper and lower case");
	/* a recipient is not an identity, nor the other way round */
	decode_fails(rc, 1, "is 62 characters, not 74");
	decode_fails(id, 0, "is 74 characters, not 62");
	memcpy(bad, rc, sizeof(rc));
	bad[0] = 'b';
	decode_fails(bad, 0, "does not start with 'age1'");
	memcpy(bad, rc, sizeof(rc));
	bad[3] = 'x';
	decode_fails(bad, 0, "no bech32 separator");
	/* 'b' is not in the Bech32 alphabet */
	memcpy(bad, rc, sizeof(rc));
	bad[20] = 'b';
	decode_fails(bad, 0, "outside the bech32 alphabet");
	decode_fails("", 0, "is 0 characters");
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(id, sizeof(id));
}

static void test_age_recip_x25519_real_unwrap_verifies_mac(void **state)
{
	static const char *const files[] = { "x25519.age", "multi.age" };
	char id_line[RP_AGE_KEY_STR_MAX];
	uint8_t secret[RP_X25519_LEN];
	uint8_t fk[RP_AGE_FILE_KEY_LEN];
	struct rp_status st = { 0 };
	size_t len;
	char *text = (char *)read_file("x25519.key", &len);

	(void)state;
	line_after(id_line, sizeof(id_line), text, "\nAGE-SECRET-KEY-1");
	memmove(id_line + 16, id_line, strlen(id_line) + 1);
	memcpy(id_line, "AGE-SECRET-KEY-1", 16);
	assert_int_equal(
		rp_age_identity_decode(secret, &st, id_line, strlen(id_line)),
		RP_OK);
	for (size_t i = 0; i < RP_ARRAY_LEN(files); i++) {
		struct age_file af;
		const struct rp_age_stanza *s;

		age_file_load(&af, files[i]);
		s = find_stanza(&af.hdr, "X25519");
		assert_int_equal(rp_x25519_unwrap(fk, &st, s, secret), RP_OK);
		assert_int_equal(
			rp_age_header_verify_mac(&af.hdr, &st, fk, af.in),
			RP_OK);
		assert_rewrite_identical(&af, fk);
		age_file_fini(&af);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(fk, sizeof(fk));
	OPENSSL_cleanse(text, len);
	free(text);
}

/* tag_of_pub computes the tag from the blob of an "ssh-rsa AAAA..." line */
static void tag_of_pub(char out[8], int bits)
{
	char name[32], line[1024];
	uint8_t blob[1024], md[32];
	size_t len, n, blob_len;
	char *text;

	assert_true(snprintf(name, sizeof(name), "rsa%d.pub", bits) > 0);
	text = (char *)read_file(name, &len);
	line_after(line, sizeof(line), text, "ssh-rsa ");
	n = strcspn(line, " =");
	assert_int_equal(rp_b64_decode(blob, sizeof(blob), &blob_len, line, n),
			 RP_OK);
	assert_memory_equal(blob, "\0\0\0\7ssh-rsa", 11);
	assert_int_equal(
		EVP_Digest(blob, blob_len, md, NULL, EVP_sha256(), NULL), 1);
	assert_int_equal(rp_b64_encode(out, 8, &n, md, 4), RP_OK);
	assert_int_equal(n, 6);
	free(text);
}

static void test_age_recip_sshrsa_real_tag_and_unwrap(void **state)
{
	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(rsa_bits) + 1; i++) {
		const int bits = rsa_bits[i % RP_ARRAY_LEN(rsa_bits)];
		char name[32], tag[8], pub_tag[8];
		uint8_t fk[RP_AGE_FILE_KEY_LEN];
		struct rp_status st = { 0 };
		struct age_file af;
		const struct rp_age_stanza *s;
		EVP_PKEY *pkey = load_rsa(bits);

		/* the last round reads the two-stanza file */
		if (i == RP_ARRAY_LEN(rsa_bits)) {
			assert_true(snprintf(name, sizeof(name), "multi.age") >
				    0);
		} else {
			assert_true(snprintf(name, sizeof(name), "rsa%d.age",
					     bits) > 0);
		}
		age_file_load(&af, name);
		s = find_stanza(&af.hdr, "ssh-rsa");
		assert_int_equal(rp_sshrsa_check_stanza(&st, s), RP_OK);
		assert_int_equal(s->body.len, (size_t)bits / 8);
		assert_int_equal(rp_sshrsa_tag(tag, &st, pkey), RP_OK);
		assert_int_equal(strlen(tag), RP_SSHRSA_TAG_LEN);
		assert_int_equal(s->args[1].len, RP_SSHRSA_TAG_LEN);
		assert_memory_equal(s->args[1].p, tag, RP_SSHRSA_TAG_LEN);
		tag_of_pub(pub_tag, bits);
		assert_string_equal(pub_tag, tag);

		assert_int_equal(rp_sshrsa_unwrap(fk, &st, s, pkey), RP_OK);
		assert_int_equal(
			rp_age_header_verify_mac(&af.hdr, &st, fk, af.in),
			RP_OK);
		assert_rewrite_identical(&af, fk);
		age_file_fini(&af);
		EVP_PKEY_free(pkey);
		OPENSSL_cleanse(fk, sizeof(fk));
	}
}

/* write_one writes a header with one recipient stanza, then parses it */
static void write_one(struct rp_buf *b, struct rp_age_header *hdr,
		      const struct rp_recip_stanza *rs, const uint8_t *fk)
{
	struct rp_status st = { 0 };
	size_t off = 0, raw_len = 0;

	assert_int_equal(rp_age_header_begin(b), RP_OK);
	assert_int_equal(rp_recip_stanza_add(b, rs, &off, &raw_len), RP_OK);
	assert_int_equal(rp_age_header_finish(b, &st, fk), RP_OK);
	assert_int_equal(rp_age_header_parse(hdr, &st, b->p, b->len), RP_OK);
	assert_int_equal(hdr->num_stanzas, 1);
	assert_ptr_equal(hdr->stanzas[0].raw.p, b->p + off);
	assert_int_equal(hdr->stanzas[0].raw.len, raw_len);
}

static void test_age_recip_x25519_round_trip(void **state)
{
	uint8_t secret[RP_X25519_LEN], pub[RP_X25519_LEN];
	uint8_t other[RP_X25519_LEN];
	uint8_t fk[RP_AGE_FILE_KEY_LEN], got[RP_AGE_FILE_KEY_LEN];
	uint8_t share[RP_X25519_LEN], ss[RP_X25519_LEN];
	struct rp_recip_stanza rs, rs2;
	struct rp_buf b = { 0 };
	struct rp_age_header hdr;
	struct rp_status st = { 0 };
	EVP_PKEY *priv, *peer;
	EVP_PKEY_CTX *ctx;
	size_t ss_len = sizeof(ss);

	(void)state;
	assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);
	assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
	assert_int_equal(RAND_bytes(fk, sizeof(fk)), 1);
	assert_int_equal(rp_x25519_public(pub, &st, secret), RP_OK);
	assert_int_equal(rp_x25519_wrap(&rs, &st, pub, fk), RP_OK);
	assert_string_equal(rs.type, "X25519");
	assert_int_equal(strlen(rs.arg), 43);
	assert_int_equal(rs.body_len, 32);
	/* a fresh ephemeral key every time */
	assert_int_equal(rp_x25519_wrap(&rs2, &st, pub, fk), RP_OK);
	assert_string_not_equal(rs.arg, rs2.arg);

	write_one(&b, &hdr, &rs, fk);
	assert_int_equal(rp_x25519_check_stanza(share, &st, &hdr.stanzas[0]),
			 RP_OK);
	assert_int_equal(rp_x25519_unwrap(got, &st, &hdr.stanzas[0], secret),
			 RP_OK);
	assert_memory_equal(got, fk, sizeof(fk));
	assert_int_equal(rp_age_header_verify_mac(&hdr, &st, got, b.p), RP_OK);

	/* the HSM path: the shared secret computed outside */
	priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret,
					    sizeof(secret));
	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, share,
					   sizeof(share));
	assert_non_null(priv);
	assert_non_null(peer);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(ctx, peer), 1);
	assert_int_equal(EVP_PKEY_derive(ctx, ss, &ss_len), 1);
	memset(got, 0, sizeof(got));
	assert_int_equal(
		rp_x25519_unwrap_ss(got, &st, &hdr.stanzas[0], ss, pub), RP_OK);
	assert_memory_equal(got, fk, sizeof(fk));
	assert_int_equal(st.err, RP_OK);

	/* another identity: not for us */
	assert_int_equal(rp_x25519_unwrap(got, &st, &hdr.stanzas[0], other),
			 RP_ERR_NOKEY);
	assert_string_equal(st.msg, "x25519 stanza is not for this identity");

	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(priv);
	rp_age_header_fini(&hdr);
	rp_buf_fini(&b);
	OPENSSL_cleanse(secret, sizeof(secret));
}

/* a hand-made X25519 stanza over the given share and body */
static struct rp_age_stanza x_stanza(const char *type, const char *share,
				     const uint8_t *body, size_t body_len)
{
	struct rp_age_stanza s;

	memset(&s, 0, sizeof(s));
	s.args[0] = rp_span_of(type, strlen(type));
	s.args[1] = rp_span_of(share, strlen(share));
	s.num_args = 2;
	s.body = rp_span_of(body, body_len);
	return s;
}

static void x_unwrap_fails(const struct rp_age_stanza *s, const uint8_t *secret,
			   enum rp_err want, const char *what)
{
	uint8_t fk[RP_AGE_FILE_KEY_LEN] = { 0 };
	static const uint8_t zero[RP_AGE_FILE_KEY_LEN];
	struct rp_status st = { 0 };

	assert_int_equal(rp_x25519_unwrap(fk, &st, s, secret), want);
	if (!strstr(st.msg, what)) {
		fail_msg("message '%s' does not name '%s'", st.msg, what);
	}
	assert_memory_equal(fk, zero, sizeof(fk));
}

static void test_age_recip_x25519_malformed_format(void **state)
{
	/* u = 0 and u = 1 are low-order points */
	static const char share0[] =
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	static const char share1[] =
		"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	uint8_t body[33];
	uint8_t secret[RP_X25519_LEN], pub[RP_X25519_LEN];
	uint8_t fk[RP_AGE_FILE_KEY_LEN] = { 7 };
	uint8_t got[RP_AGE_FILE_KEY_LEN];
	uint8_t zero_ss[RP_X25519_LEN] = { 0 };
	struct rp_recip_stanza rs, rs2;
	struct rp_age_stanza s;
	struct rp_status st = { 0 };
	char share[64];

	(void)state;
	assert_int_equal(RAND_bytes(body, sizeof(body)), 1);
	assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);
	s = x_stanza("X25519", share0, body, 32);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "all zero");
	s = x_stanza("X25519", share1, body, 32);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "all zero");

	/* a good share for the rest */
	assert_int_equal(rp_x25519_public(pub, &st, secret), RP_OK);
	assert_int_equal(rp_x25519_wrap(&rs, &st, pub, fk), RP_OK);
	memcpy(share, rs.arg, sizeof(rs.arg));
	s = x_stanza("X25519", share, body, 31);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "body is 31 bytes");
	s = x_stanza("X25519", share, body, 33);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "body is 33 bytes");
	s = x_stanza("x25519", share, rs.body, 32);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "not an X25519 stanza");
	s = x_stanza("X25519", share, rs.body, 32);
	s.num_args = 3;
	s.args[2] = rp_span_of("x", 1);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "2 arguments after the type");
	s.num_args = 1;
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "0 arguments after the type");
	share[42] = '\0';
	s = x_stanza("X25519", share, rs.body, 32);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "share is not 32 bytes");
	/* non-canonical: the last char's 2 low bits set */
	share[42] = 'D';
	s = x_stanza("X25519", share, rs.body, 32);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "share is not 32 bytes");
	memcpy(share, rs.arg, sizeof(rs.arg));
	/* padded share is 44 chars */
	memcpy(share + 43, "=", 2);
	s = x_stanza("X25519", share, rs.body, 32);
	x_unwrap_fails(&s, secret, RP_ERR_FORMAT, "share is not 32 bytes");

	/* wrapping to a low-order recipient is refused */
	assert_int_equal(rp_x25519_wrap(&rs2, &st, zero_ss, fk), RP_ERR_FORMAT);
	assert_string_equal(st.msg, "x25519 recipient: x25519 shared secret "
				    "is all zero (low-order point)");
	rp_status_clear(&st);

	/* the keystore path refuses an all-zero shared secret */
	memcpy(share, rs.arg, sizeof(rs.arg));
	s = x_stanza("X25519", share, rs.body, 32);
	assert_int_equal(rp_x25519_unwrap_ss(got, &st, &s, zero_ss, pub),
			 RP_ERR_FORMAT);
	assert_non_null(strstr(st.msg, "all zero"));
	rp_status_clear(&st);

	/* the right identity opens it, until a body byte changes */
	assert_int_equal(rp_x25519_unwrap(got, &st, &s, secret), RP_OK);
	assert_memory_equal(got, fk, sizeof(fk));
	rs.body[5] ^= 1;
	x_unwrap_fails(&s, secret, RP_ERR_NOKEY, "not for this identity");
	OPENSSL_cleanse(secret, sizeof(secret));
}

/*
 * raw_rsa_decrypt computes c^d mod n as k bytes. Returns 0 when c >= n,
 * which a ciphertext for another key may be.
 */
static int raw_rsa_decrypt(uint8_t *out, size_t *out_len, EVP_PKEY *pkey,
			   const uint8_t *in, size_t in_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok;

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
	ok = EVP_PKEY_decrypt(ctx, out, out_len, in, in_len) == 1;
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static void test_age_recip_sshrsa_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(rsa_bits); i++) {
		const size_t k = (size_t)rsa_bits[i] / 8;
		uint8_t fk[RP_AGE_FILE_KEY_LEN], got[RP_AGE_FILE_KEY_LEN];
		uint8_t em[RP_SSHRSA_MAX_BODY];
		size_t em_len = sizeof(em), lead = 0;
		char tag[8];
		struct rp_recip_stanza rs;
		struct rp_buf b = { 0 };
		struct rp_age_header hdr;
		struct rp_status st = { 0 };
		EVP_PKEY *pkey = load_rsa(rsa_bits[i]);

		assert_int_equal(RAND_bytes(fk, sizeof(fk)), 1);
		assert_int_equal(rp_sshrsa_wrap(&rs, &st, pkey, NULL, fk), RP_OK);
		assert_string_equal(rs.type, "ssh-rsa");
		assert_int_equal(rp_sshrsa_tag(tag, &st, pkey), RP_OK);
		assert_string_equal(rs.arg, tag);
		assert_int_equal(rs.body_len, k);

		write_one(&b, &hdr, &rs, fk);
		assert_int_equal(rp_sshrsa_check_stanza(&st, &hdr.stanzas[0]),
				 RP_OK);
		assert_int_equal(
			rp_sshrsa_unwrap(got, &st, &hdr.stanzas[0], pkey),
			RP_OK);
		assert_memory_equal(got, fk, sizeof(fk));
		assert_int_equal(rp_age_header_verify_mac(&hdr, &st, got, b.p),
				 RP_OK);

		/* the raw-RSA path gives the same file key */
		assert_true(raw_rsa_decrypt(em, &em_len, pkey,
					    hdr.stanzas[0].body.p,
					    hdr.stanzas[0].body.len));
		assert_int_equal(em_len, k);
		assert_int_equal(em[0], 0);
		memset(got, 0, sizeof(got));
		assert_int_equal(rp_sshrsa_oaep_decode(got, &st, em, em_len, k),
				 RP_OK);
		assert_memory_equal(got, fk, sizeof(fk));
		/* and without the leading zero bytes */
		while (lead < em_len && !em[lead]) {
			lead++;
		}
		memset(got, 0, sizeof(got));
		assert_int_equal(rp_sshrsa_oaep_decode(got, &st, em + lead,
						       em_len - lead, k),
				 RP_OK);
		assert_memory_equal(got, fk, sizeof(fk));
		/* a corrupted encoding fails the way unwrap does */
		em[k / 2] ^= 0x40;
		assert_int_equal(rp_sshrsa_oaep_decode(got, &st, em, em_len, k),
				 RP_ERR_AUTH);
		assert_string_equal(st.msg, UNWRAP_MSG);

		rp_age_header_fini(&hdr);
		rp_buf_fini(&b);
		EVP_PKEY_free(pkey);
	}
}

/*
 * one encrypt and one decrypt context for many stanzas (a worker's): each
 * wrap opens, with the context and without; a failed unwrap leaves the
 * context working; keys ssh-rsa does not take are refused
 */
static void test_age_recip_sshrsa_ctx_reused(void **state)
{
	EVP_PKEY *pkey = load_rsa(2048);
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	struct rp_status st = { 0 };
	EVP_PKEY_CTX *enc, *dec;
	uint8_t prev[RP_SSHRSA_MAX_BODY] = { 0 };

	(void)state;
	assert_non_null(small);
	assert_non_null(x);
	enc = rp_sshrsa_ctx_new(&st, pkey, 0);
	dec = rp_sshrsa_ctx_new(&st, pkey, 1);
	assert_non_null(enc);
	assert_non_null(dec);
	for (int i = 0; i < 4; i++) {
		uint8_t fk[RP_AGE_FILE_KEY_LEN], got[RP_AGE_FILE_KEY_LEN];
		struct rp_recip_stanza rs;
		struct rp_buf b = { 0 };
		struct rp_age_header hdr;
		struct rp_age_stanza bad;
		uint8_t body[RP_SSHRSA_MAX_BODY];

		assert_int_equal(RAND_bytes(fk, sizeof(fk)), 1);
		assert_int_equal(rp_sshrsa_wrap_ctx(&rs, &st, enc,
						    i % 2 ? NULL : "AAAAAA",
						    fk),
				 RP_OK);
		assert_int_equal(rs.body_len, 256);
		assert_memory_not_equal(rs.body, prev, rs.body_len);
		memcpy(prev, rs.body, rs.body_len);
		if (i % 2) {
			char tag[8];

			assert_int_equal(rp_sshrsa_tag(tag, &st, pkey), RP_OK);
			assert_string_equal(rs.arg, tag);
		}
		write_one(&b, &hdr, &rs, fk);
		/* a changed body first: refused, and the context goes on */
		bad = hdr.stanzas[0];
		memcpy(body, bad.body.p, bad.body.len);
		body[7 + i] ^= 0x10;
		bad.body = rp_span_of(body, bad.body.len);
		assert_int_equal(rp_sshrsa_unwrap_ctx(got, &st, &bad, dec),
				 RP_ERR_AUTH);
		assert_string_equal(st.msg, UNWRAP_MSG);
		rp_status_clear(&st);
		memset(got, 0, sizeof(got));
		assert_int_equal(
			rp_sshrsa_unwrap_ctx(got, &st, &hdr.stanzas[0], dec),
			RP_OK);
		assert_memory_equal(got, fk, sizeof(fk));
		memset(got, 0, sizeof(got));
		assert_int_equal(
			rp_sshrsa_unwrap(got, &st, &hdr.stanzas[0], pkey),
			RP_OK);
		assert_memory_equal(got, fk, sizeof(fk));
		rp_age_header_fini(&hdr);
		rp_buf_fini(&b);
	}
	assert_null(rp_sshrsa_ctx_new(&st, small, 1));
	assert_int_equal(st.err, RP_ERR_USAGE);
	rp_status_clear(&st);
	assert_null(rp_sshrsa_ctx_new(&st, x, 0));
	assert_int_equal(st.err, RP_ERR_USAGE);
	EVP_PKEY_CTX_free(enc);
	EVP_PKEY_CTX_free(dec);
	EVP_PKEY_free(pkey);
	EVP_PKEY_free(small);
	EVP_PKEY_free(x);
}

static void expect_unwrap_auth(const struct rp_age_stanza *s, EVP_PKEY *pkey)
{
	uint8_t got[RP_AGE_FILE_KEY_LEN];
	uint8_t em[RP_SSHRSA_MAX_BODY];
	size_t em_len = sizeof(em);
	struct rp_status st = { 0 };

	assert_int_equal(rp_sshrsa_unwrap(got, &st, s, pkey), RP_ERR_AUTH);
	assert_string_equal(st.msg, UNWRAP_MSG);
	if (!raw_rsa_decrypt(em, &em_len, pkey, s->body.p, s->body.len)) {
		return;
	}
	rp_status_clear(&st);
	assert_int_equal(rp_sshrsa_oaep_decode(got, &st, em, em_len,
					       (size_t)EVP_PKEY_get_size(pkey)),
			 RP_ERR_AUTH);
	assert_string_equal(st.msg, UNWRAP_MSG);
}

static void test_age_recip_sshrsa_wrong_key_auth(void **state)
{
	uint8_t *body;
	struct age_file af;
	struct rp_age_stanza s;
	EVP_PKEY *right = load_rsa(2048);
	EVP_PKEY *wrong = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

	(void)state;
	assert_non_null(wrong);
	age_file_load(&af, "rsa2048.age");
	expect_unwrap_auth(&af.hdr.stanzas[0], wrong);

	/* a changed ciphertext with the right key: the same outcome */
	s = af.hdr.stanzas[0];
	body = malloc(s.body.len);
	assert_non_null(body);
	memcpy(body, s.body.p, s.body.len);
	body[100] ^= 1;
	s.body = rp_span_of(body, s.body.len);
	expect_unwrap_auth(&s, right);

	free(body);
	age_file_fini(&af);
	EVP_PKEY_free(wrong);
	EVP_PKEY_free(right);
}

/* age accepts a 24-byte file key in ssh-rsa; our API holds 16 bytes */
static void test_age_recip_sshrsa_long_file_key_auth(void **state)
{
	uint8_t key24[24] = { 1, 2, 3 };
	uint8_t body[RP_SSHRSA_MAX_BODY];
	size_t body_len = sizeof(body);
	struct rp_age_stanza s;
	EVP_PKEY *pkey = load_rsa(2048);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	void *label = OPENSSL_memdup(SSHRSA_LABEL, strlen(SSHRSA_LABEL));

	(void)state;
	assert_non_null(ctx);
	assert_non_null(label);
	assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
	assert_int_equal(
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(
				 ctx, label, (int)strlen(SSHRSA_LABEL)),
			 1);
	assert_int_equal(
		EVP_PKEY_encrypt(ctx, body, &body_len, key24, sizeof(key24)),
		1);
	s = x_stanza("ssh-rsa", "abcdef", body, body_len);
	expect_unwrap_auth(&s, pkey);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
}

static void test_age_recip_sshrsa_check_stanza_format(void **state)
{
	uint8_t body[512] = { 0 };
	struct rp_age_stanza s;
	struct rp_status st = { 0 };

	(void)state;
	s = x_stanza("ssh-rsa", "abcdef", body, 255);
	assert_int_equal(rp_sshrsa_check_stanza(&st, &s), RP_ERR_FORMAT);
	assert_non_null(strstr(st.msg, "body is 255 bytes"));
	rp_status_clear(&st);
	s = x_stanza("ssh-rsa", "abcdef", body, 512);
	assert_int_equal(rp_sshrsa_check_stanza(&st, &s), RP_OK);
	s.num_args = 1;
	assert_int_equal(rp_sshrsa_check_stanza(&st, &s), RP_ERR_FORMAT);
	assert_non_null(strstr(st.msg, "0 arguments after the type"));
	rp_status_clear(&st);
	s.num_args = 3;
	s.args[2] = rp_span_of("x", 1);
	assert_int_equal(rp_sshrsa_check_stanza(&st, &s), RP_ERR_FORMAT);
	assert_non_null(strstr(st.msg, "2 arguments after the type"));
	rp_status_clear(&st);
	s = x_stanza("ssh-ed25519", "abcdef", body, 512);
	assert_int_equal(rp_sshrsa_check_stanza(&st, &s), RP_ERR_FORMAT);
	assert_true(st.msg[0] != '\0');
}

static void test_age_recip_sshrsa_wrong_keys_usage(void **state)
{
	uint8_t fk[RP_AGE_FILE_KEY_LEN] = { 0 };
	char tag[8];
	struct rp_recip_stanza rs;
	struct rp_status st = { 0 };
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");

	(void)state;
	assert_non_null(small);
	assert_non_null(x);
	assert_int_equal(rp_sshrsa_wrap(&rs, &st, small, NULL, fk), RP_ERR_USAGE);
	assert_non_null(strstr(st.msg, "1024 bits"));
	rp_status_clear(&st);
	assert_int_equal(rp_sshrsa_wrap(&rs, &st, x, NULL, fk), RP_ERR_USAGE);
	rp_status_clear(&st);
	assert_int_equal(rp_sshrsa_tag(tag, &st, x), RP_ERR_USAGE);
	/* a small key still has a tag: age only refuses to encrypt to it */
	assert_int_equal(rp_sshrsa_tag(tag, NULL, small), RP_OK);
	assert_int_equal(strlen(tag), 6);
	EVP_PKEY_free(x);
	EVP_PKEY_free(small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_age_recip_identity_decode_matches_keygen),
		cmocka_unit_test(test_age_recip_bech32_bad_input_format),
		cmocka_unit_test(
			test_age_recip_x25519_real_unwrap_verifies_mac),
		cmocka_unit_test(test_age_recip_sshrsa_real_tag_and_unwrap),
		cmocka_unit_test(test_age_recip_x25519_round_trip),
		cmocka_unit_test(test_age_recip_x25519_malformed_format),
		cmocka_unit_test(test_age_recip_sshrsa_round_trip),
		cmocka_unit_test(test_age_recip_sshrsa_ctx_reused),
		cmocka_unit_test(test_age_recip_sshrsa_wrong_key_auth),
		cmocka_unit_test(test_age_recip_sshrsa_long_file_key_auth),
		cmocka_unit_test(test_age_recip_sshrsa_check_stanza_format),
		cmocka_unit_test(test_age_recip_sshrsa_wrong_keys_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
