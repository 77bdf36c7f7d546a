#include "bench_fns.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "age_header.h"
#include "age_recip.h"
#include "age_stream.h"
#include "license.h"
#include "merkle.h"
#include "rp_buf.h"
#include "rp_err.h"
#include "rp_span.h"

/*
 * A fixed RSA-2048 test key, used only by the benchmarks: loading it takes
 * a millisecond where generating one takes a tenth of a second, and the
 * harness builds its fixtures many times over.
 */
static const char bench_rsa_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCu840iDfVCWHgU\n"
	"X1A+jCPWDEcpNFBLg1vd/6GxG8kGb8nY8/r+fXbvzb7jvub0eZIoIyY2zyudH+xM\n"
	"sGe2e6nXq8TpzGbRCH4bGn+HOoD0OVpQLXTOdI1VWwLwoI3oCpzKs8mmantnuzHR\n"
	"ZOPa42IyDXEcVEkZQ30Ch3lVPDJP9kjvONhWgppga1lDByQspMp4tZ7ra/+fMiAg\n"
	"3rcRftbohnhZfMYl64TZ4rnlwVm5QKvU4eZDkdtFi+Td8DfukgYQMKRv3mBw6VUK\n"
	"81zphP3pB8v5hpV74iPD+iGc7JSQwlRdOVwNB9DVWtSQQo3aHIG6DmDD5niuTjw4\n"
	"hKW0HMiPAgMBAAECggEAB9ncIoQX1oNb2CYy1qu5S/i/FMVJOSpK7Bp1qhoCGmzX\n"
	"1QmV4OfGd5p3D4dYm+38thpls532ahWtp/9emBzSkWAe9RL8JjNIXXUB9hKVCOCu\n"
	"Ad0YWc93LDZqWlwKIjifsqUAzpwGr7AB21C4vPDpTi+2PLw3j4+sw3lK451Q8K+c\n"
	"oExqPy5srmfSrqhxFLFOc/V/GTOwOnpU+vtUlt1Vi6GSsuTYZ+1DDUapBhwyb9BR\n"
	"p4uiYWJBl/rTSFVwuY2lreHhoqUJ8nhvoSWk18s/BMo3U0WhFMzw6IM2KEfidVfx\n"
	"rxa6FX2KyJDc/0/lNDOqxeaHQL5kPRFnYx4n3HxggQKBgQDodPSwQTAfBuvmBJOk\n"
	"OsJqhwEEVNWw5/W3AeQTLELCNzpr6z1Kmn/yBzX93EixlIobS/ww1Tsw9GFDjU9f\n"
	"V4nfP4aFdNZdBFP9H2+i64erYLg/Zgnsz5EtxNxJbvRf3t3mQxSlVPkyJ0PdIG3r\n"
	"RkhHl4xwERqFtMhJHiYHr7nYwQKBgQDAq54G3f1zWzHinrZfjWZ/K5hPJXJoSucn\n"
	"SZqqqwISsYxCW6j0jqt3caT2HbvO4KpAHeTB9sUgrZJzxsXVzhldyBXWg19a8oM6\n"
	"tYXRBWFw0jESweLRuJZyx6iJRhPSZqZzlUbSCEIgdH8cVCjZlOKBM4rONHAeMjiG\n"
	"3EJUUi8lTwKBgFvdvMXbPVVFuvyQWnjQ7/yBlhlMHZdoVGcazDP3jfqLMP9tXC+b\n"
	"l2zjBKdq4x+rAFmBUg1Kd7YFHltAAVpAkjA0PsmHPyBLkZW7UrckNd24v5fuj4WT\n"
	"EmDwJ86tls48mZ1ibUpZppH3io5dPpN4lyAT+GBhogWtSGn9DDKFdAEBAoGAXO9r\n"
	"Hmzd4FLQ0Ts1RQnzssvYf/TUJrJapXy/eitaqKGzwh5sdOqMkuTiaUUWXkfIV30T\n"
	"5uudUpHm3qm2q9bqLW5h+kMML9ZirmL41UX/Jmh8+0tCmV6sU1kzVmPTE94n1ADh\n"
	"VFZfb0BCP+voeGt0hlXSUnzAyA/5bDO6Wun5i8kCgYEA0S6h2COhJAOF8DW4NK6D\n"
	"mC+suXLHgGuhhIECvkQ3xWGDnev6Naob6ZK7uSDT0l2KLw8hyfNFjUUkI6aqIkdg\n"
	"g+duGC2xQGa3kxNS/w1ZqnzP7ZksU8JNwgUcPanQkw4ZOTt3UsJ15vg/TFbUE37+\n"
	"cjfXIcVLxBXccxFcMsUNUVE=\n"
	"-----END PRIVATE KEY-----\n";

#define BENCH_LIC_BATCH	 1024 /* the batch the header's license comes from */
#define BENCH_LIC_LEAF	 777
#define BENCH_ISSUED_AT	 1767225600u /* 2026-01-01 */
#define BENCH_TEMPLATE	 "confidential-internal"
#define BENCH_OWNER_BASE "finance-emea-shared-services@corp.example.com"

/* struct keys: the tenant keys every fixture uses. */
struct keys {
	EVP_PKEY *rsa;	   /* owned: the RSA-2048 key pair */
	EVP_PKEY *rsa_pub; /* owned: its public half only */
	uint8_t rsa_id[RP_KEY_ID_LEN];
	uint8_t x_secret[RP_X25519_LEN];
	uint8_t x_pub[RP_X25519_LEN];
};

static enum rp_err keys_init(struct keys *k, struct rp_status *st)
{
	BIO *bio = NULL;
	uint8_t *der = NULL;
	enum rp_err err = RP_OK;
	int der_len;

	memset(k, 0, sizeof(*k));
	bio = BIO_new_mem_buf(bench_rsa_pem, (int)sizeof(bench_rsa_pem) - 1);
	if (!bio) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
		goto out;
	}
	k->rsa = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!k->rsa) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "bench: RSA test key");
		goto out;
	}
	der_len = i2d_PUBKEY(k->rsa, &der);
	if (der_len <= 0) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "bench: RSA SPKI");
		goto out;
	}
	SHA256(der, (size_t)der_len, k->rsa_id);
	const uint8_t *p = der;
	k->rsa_pub = d2i_PUBKEY(NULL, &p, der_len);
	if (!k->rsa_pub) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "bench: RSA public key");
		goto out;
	}
	if (RAND_bytes(k->x_secret, sizeof(k->x_secret)) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "bench: RAND_bytes");
		goto out;
	}
	err = rp_x25519_public(k->x_pub, st, k->x_secret);
out:
	OPENSSL_free(der);
	BIO_free(bio);
	return err;
}

static void keys_fini(struct keys *k)
{
	EVP_PKEY_free(k->rsa);
	EVP_PKEY_free(k->rsa_pub);
	OPENSSL_cleanse(k, sizeof(*k));
}

static enum rp_err random_bytes(struct rp_status *st, void *out, size_t len)
{
	if (RAND_bytes(out, (int)len) != 1) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "bench: RAND_bytes");
	}
	return RP_OK;
}

/*
 * rsa_pss_sign signs `msg` as the keystore does: RSA-PSS, SHA-256,
 * MGF1-SHA-256, salt 32, with a fresh context per signature.
 */
static enum rp_err rsa_pss_sign(EVP_PKEY *key, struct rp_status *st,
				uint8_t *out, size_t out_cap, size_t *out_len,
				const uint8_t *msg, size_t msg_len)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY_CTX *pctx = NULL; /* borrowed from ctx */
	enum rp_err err = RP_OK;
	size_t len = out_cap;

	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
		goto out;
	}
	if (EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
	    EVP_DigestSign(ctx, out, &len, msg, msg_len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "bench: RSA-PSS sign");
		goto out;
	}
	*out_len = len;
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

/* Output sinks for rp_stream_feed and rp_stream_finish. */
struct copy_sink {
	uint8_t *p; /* borrowed */
	size_t cap;
	size_t len;
};

static enum rp_err count_out(void *arg, const uint8_t *p, size_t len)
{
	uint64_t *n = arg;

	(void)p;
	*n += len;
	return RP_OK;
}

static enum rp_err copy_out(void *arg, const uint8_t *p, size_t len)
{
	struct copy_sink *c = arg;

	if (len > c->cap - c->len) {
		return RP_ERR_INTERNAL;
	}
	memcpy(c->p + c->len, p, len);
	c->len += len;
	return RP_OK;
}

/* License batches. */
struct rp_bench_lic {
	struct keys keys;
	size_t num_docs;
	struct rp_license *lics; /* owned: num_docs */
	struct rp_buf *tbs;	 /* owned: num_docs TBS encodings */
	struct rp_buf *enc;	 /* owned: num_docs whole licenses */
	uint8_t (*leaves)[RP_MERKLE_HASH_LEN]; /* owned: num_docs */
	struct rp_license dec;		       /* rp_bench_lic_verify's */
};

static enum rp_err lic_fill(struct rp_license *lic, struct rp_status *st,
			    const struct keys *k, size_t i)
{
	enum rp_err err;
	int n;

	memset(lic, 0, sizeof(*lic));
	lic->version = RP_LICENSE_VERSION;
	err = random_bytes(st, lic->doc_id, sizeof(lic->doc_id));
	if (!err) {
		err = random_bytes(st, lic->stanza_digest,
				   sizeof(lic->stanza_digest));
	}
	if (!err) {
		err = random_bytes(st, lic->payload_nonce,
				   sizeof(lic->payload_nonce));
	}
	if (err) {
		return err;
	}
	memcpy(lic->key_id, k->rsa_id, sizeof(lic->key_id));
	memcpy(lic->template_id, BENCH_TEMPLATE, sizeof(BENCH_TEMPLATE));
	n = snprintf(lic->owner, sizeof(lic->owner),
		     "CN=Document Owner %zu,OU=" BENCH_OWNER_BASE
		     ",O=Example Corporation,L=Frankfurt am Main,C=DE",
		     i);
	if (n < 0 || (size_t)n >= sizeof(lic->owner)) {
		return rp_status_fail(st, RP_ERR_INTERNAL, "bench: owner");
	}
	lic->issued_at = BENCH_ISSUED_AT + i;
	lic->encoding = RP_ENC_ZSTD;
	lic->plaintext_size = 200000 + 1000 * (uint64_t)i;
	lic->sig.alg = RP_SIG_RSA_PSS_SHA256;
	memcpy(lic->sig.key_id, k->rsa_id, sizeof(lic->sig.key_id));
	return RP_OK;
}

enum rp_err rp_bench_lic_new(struct rp_bench_lic **out, struct rp_status *st,
			     size_t num_docs)
{
	struct rp_bench_lic *l = NULL;
	enum rp_err err;

	*out = NULL;
	if (num_docs == 0 || num_docs > RP_MERKLE_MAX_LEAVES) {
		return rp_status_fail(st, RP_ERR_USAGE, "bench: batch size");
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		return rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
	}
	l->num_docs = num_docs;
	l->lics = calloc(num_docs, sizeof(*l->lics));
	l->tbs = calloc(num_docs, sizeof(*l->tbs));
	l->enc = calloc(num_docs, sizeof(*l->enc));
	l->leaves = calloc(num_docs, sizeof(*l->leaves));
	if (!l->lics || !l->tbs || !l->enc || !l->leaves) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
		goto out;
	}
	err = keys_init(&l->keys, st);
	for (size_t i = 0; !err && i < num_docs; i++) {
		err = lic_fill(&l->lics[i], st, &l->keys, i);
		/* reserve once, so the timed loop reuses the storage */
		if (!err) {
			err = rp_buf_reserve(&l->tbs[i], 1024);
		}
		if (!err) {
			err = rp_buf_reserve(&l->enc[i], RP_LICENSE_MAX);
		}
	}
out:
	if (err) {
		rp_bench_lic_free(l);
		l = NULL;
	}
	*out = l;
	return err;
}

void rp_bench_lic_free(struct rp_bench_lic *l)
{
	if (!l) {
		return;
	}
	for (size_t i = 0; l->tbs && i < l->num_docs; i++) {
		rp_buf_fini(&l->tbs[i]);
	}
	for (size_t i = 0; l->enc && i < l->num_docs; i++) {
		rp_buf_fini(&l->enc[i]);
	}
	free(l->tbs);
	free(l->enc);
	free(l->lics);
	free(l->leaves);
	keys_fini(&l->keys);
	free(l);
}

/* lic_finish_one fills license i's signature block and encodes it. */
static enum rp_err lic_finish_one(struct rp_bench_lic *l, struct rp_status *st,
				  const struct rp_merkle_tree *tree, size_t i,
				  const uint8_t *sig, size_t sig_len)
{
	struct rp_sigblock *sb = &l->lics[i].sig;
	enum rp_err err;

	sb->batch_size = (uint32_t)l->num_docs;
	sb->leaf_index = (uint32_t)i;
	err = rp_merkle_tree_path(tree, st, sb->path, &sb->num_path, i);
	if (err) {
		return err;
	}
	memcpy(sb->sig, sig, sig_len);
	sb->sig_len = sig_len;
	rp_buf_reset(&l->enc[i]);
	return rp_license_encode(&l->enc[i], st, &l->lics[i]);
}

enum rp_err rp_bench_lic_sign_batch(struct rp_bench_lic *l,
				    struct rp_status *st)
{
	struct rp_merkle_tree tree = { 0 };
	uint8_t root[RP_MERKLE_HASH_LEN];
	uint8_t msg[64];
	uint8_t sig[RP_SIG_MAX];
	size_t sig_len = 0;
	size_t msg_len;
	enum rp_err err = RP_OK;

	for (size_t i = 0; !err && i < l->num_docs; i++) {
		rp_buf_reset(&l->tbs[i]);
		err = rp_license_encode_tbs(&l->tbs[i], st, &l->lics[i]);
		if (!err) {
			rp_merkle_leaf(l->leaves[i], l->tbs[i].p,
				       l->tbs[i].len);
		}
	}
	if (err) {
		goto out;
	}
	err = rp_merkle_tree_build(
		&tree, st, (const uint8_t(*)[RP_MERKLE_HASH_LEN])l->leaves,
		l->num_docs);
	if (err) {
		goto out;
	}
	rp_merkle_tree_root(&tree, root);
	msg_len = rp_license_root_message(msg, root, (uint32_t)l->num_docs);
	err = rsa_pss_sign(l->keys.rsa, st, sig, sizeof(sig), &sig_len, msg,
			   msg_len);
	for (size_t i = 0; !err && i < l->num_docs; i++) {
		err = lic_finish_one(l, st, &tree, i, sig, sig_len);
	}
out:
	rp_merkle_tree_fini(&tree);
	return err;
}

enum rp_err rp_bench_lic_verify(struct rp_bench_lic *l, struct rp_status *st,
				size_t idx)
{
	const struct rp_buf *enc = &l->enc[idx % l->num_docs];
	size_t tbs_len = 0;
	enum rp_err err;

	err = rp_license_decode(&l->dec, st, enc->p, enc->len, &tbs_len);
	if (err) {
		return err;
	}
	return rp_license_sig_verify(&l->dec, st, enc->p, tbs_len,
				     l->keys.rsa_pub);
}

enum rp_err rp_bench_lic_check(struct rp_bench_lic *l, struct rp_status *st)
{
	enum rp_err err;

	err = rp_bench_lic_sign_batch(l, st);
	for (size_t i = 0; !err && i < l->num_docs; i++) {
		const struct rp_buf *enc = &l->enc[i];
		const struct rp_buf *tbs = &l->tbs[i];
		size_t tbs_len = 0;

		err = rp_bench_lic_verify(l, st, i);
		if (!err) {
			err = rp_license_decode(&l->dec, st, enc->p, enc->len,
						&tbs_len);
		}
		if (!err && (tbs_len != tbs->len ||
			     memcmp(enc->p, tbs->p, tbs_len) != 0 ||
			     l->dec.sig.leaf_index != i ||
			     l->dec.sig.batch_size != l->num_docs)) {
			err = rp_status_fail(st, RP_ERR_INTERNAL,
					     "bench: license %zu of %zu does "
					     "not round-trip",
					     i, l->num_docs);
		}
	}
	if (!err && l->num_docs > 1) {
		/* a license must not verify once its TBS changes */
		struct rp_buf *enc = &l->enc[0];

		enc->p[enc->len / 8] ^= 1;
		if (rp_bench_lic_verify(l, NULL, 0) == RP_OK) {
			err = rp_status_fail(st, RP_ERR_INTERNAL,
					     "bench: a changed license "
					     "verifies");
		}
		enc->p[enc->len / 8] ^= 1;
	}
	return err;
}

/* The two-stanza header. */
struct rp_bench_hdr {
	struct keys keys;
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	struct rp_recip_stanza rs;
	struct rp_buf license; /* the rp-license body */
	struct rp_buf in;      /* the header, then the 16-byte nonce */
	size_t hdr_len;	       /* the header's share of `in` */
	struct rp_buf out;     /* rp_bench_hdr_write's, reused */
};

static enum rp_err hdr_write(struct rp_bench_hdr *h, struct rp_status *st,
			     struct rp_buf *out)
{
	static const char *const lic_args[] = { RP_LICENSE_STANZA_TYPE,
						RP_LICENSE_STANZA_ARG };
	enum rp_err err;

	rp_buf_reset(out);
	err = rp_age_header_begin(out);
	if (!err) {
		err = rp_recip_stanza_add(out, &h->rs, NULL, NULL);
	}
	if (!err) {
		err = rp_age_header_add_stanza(
			out, lic_args, RP_ARRAY_LEN(lic_args), h->license.p,
			h->license.len, NULL, NULL);
	}
	if (!err) {
		err = rp_age_header_finish(out, st, h->file_key);
	}
	return err;
}

/*
 * hdr_make_license signs a batch of BENCH_LIC_BATCH licenses and keeps
 * leaf BENCH_LIC_LEAF's, bound to the ssh-rsa stanza in h->rs.
 */
static enum rp_err hdr_make_license(struct rp_bench_hdr *h,
				    struct rp_status *st,
				    const uint8_t nonce[RP_AGE_NONCE_LEN])
{
	struct rp_bench_lic *l = NULL;
	struct rp_buf raw = { 0 };
	size_t off = 0, len = 0;
	enum rp_err err;

	err = rp_bench_lic_new(&l, st, BENCH_LIC_BATCH);
	if (!err) {
		err = rp_recip_stanza_add(&raw, &h->rs, &off, &len);
	}
	if (err) {
		goto out;
	}
	struct rp_license *lic = &l->lics[BENCH_LIC_LEAF];
	SHA256(raw.p + off, len, lic->stanza_digest);
	memcpy(lic->payload_nonce, nonce, RP_AGE_NONCE_LEN);
	err = rp_bench_lic_sign_batch(l, st);
	if (!err) {
		err = rp_buf_add(&h->license, l->enc[BENCH_LIC_LEAF].p,
				 l->enc[BENCH_LIC_LEAF].len);
	}
out:
	rp_buf_fini(&raw);
	rp_bench_lic_free(l);
	return err;
}

enum rp_err rp_bench_hdr_new(struct rp_bench_hdr **out, struct rp_status *st)
{
	struct rp_bench_hdr *h = NULL;
	uint8_t nonce[RP_AGE_NONCE_LEN];
	enum rp_err err;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h) {
		return rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
	}
	err = keys_init(&h->keys, st);
	if (!err) {
		err = random_bytes(st, h->file_key, sizeof(h->file_key));
	}
	if (!err) {
		err = random_bytes(st, nonce, sizeof(nonce));
	}
	if (!err) {
		err = rp_sshrsa_wrap(&h->rs, st, h->keys.rsa_pub, NULL, h->file_key);
	}
	if (!err) {
		err = hdr_make_license(h, st, nonce);
	}
	if (!err) {
		err = hdr_write(h, st, &h->in);
	}
	if (!err) {
		h->hdr_len = h->in.len;
		err = rp_buf_add(&h->in, nonce, sizeof(nonce));
	}
	if (!err) {
		err = rp_buf_reserve(&h->out, h->in.len);
	}
	if (err) {
		rp_bench_hdr_free(h);
		h = NULL;
	}
	*out = h;
	return err;
}

void rp_bench_hdr_free(struct rp_bench_hdr *h)
{
	if (!h) {
		return;
	}
	rp_buf_fini(&h->license);
	rp_buf_fini(&h->in);
	rp_buf_fini(&h->out);
	keys_fini(&h->keys);
	OPENSSL_cleanse(h->file_key, sizeof(h->file_key));
	free(h);
}

size_t rp_bench_hdr_len(const struct rp_bench_hdr *h)
{
	return h->hdr_len;
}

size_t rp_bench_hdr_license_len(const struct rp_bench_hdr *h)
{
	return h->license.len;
}

static enum rp_err hdr_check_parsed(struct rp_bench_hdr *h,
				    struct rp_status *st,
				    const struct rp_age_header *hdr)
{
	const struct rp_age_stanza *rsa = &hdr->stanzas[0];
	const struct rp_age_stanza *ls = &hdr->stanzas[1];
	struct rp_license lic;
	uint8_t key[RP_AGE_FILE_KEY_LEN];
	uint8_t digest[SHA256_DIGEST_LENGTH];
	size_t tbs_len = 0;
	enum rp_err err;

	if (hdr->num_stanzas != 2 || hdr->header_len != h->hdr_len ||
	    !rp_age_stanza_is(rsa, "ssh-rsa") ||
	    !rp_age_stanza_is(ls, RP_LICENSE_STANZA_TYPE) ||
	    ls->body.len != h->license.len) {
		return rp_status_fail(st, RP_ERR_INTERNAL,
				      "bench: the header parses wrong");
	}
	err = rp_age_header_verify_mac(hdr, st, h->file_key, h->in.p);
	if (!err) {
		err = rp_sshrsa_check_stanza(st, rsa);
	}
	if (!err) {
		err = rp_sshrsa_unwrap(key, st, rsa, h->keys.rsa);
	}
	if (!err && CRYPTO_memcmp(key, h->file_key, sizeof(key)) != 0) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: unwrapped a wrong file key");
	}
	if (!err) {
		err = rp_license_decode(&lic, st, ls->body.p, ls->body.len,
					&tbs_len);
	}
	if (!err) {
		err = rp_license_sig_verify(&lic, st, ls->body.p, tbs_len,
					    h->keys.rsa_pub);
	}
	if (!err) {
		SHA256(rsa->raw.p, rsa->raw.len, digest);
		if (memcmp(digest, lic.stanza_digest, sizeof(digest)) != 0) {
			err = rp_status_fail(st, RP_ERR_INTERNAL,
					     "bench: stanza digest differs");
		}
	}
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

enum rp_err rp_bench_hdr_check(struct rp_bench_hdr *h, struct rp_status *st)
{
	struct rp_age_header hdr = { 0 };
	enum rp_err err;

	err = rp_age_header_parse(&hdr, st, h->in.p, h->in.len);
	if (!err) {
		err = hdr_check_parsed(h, st, &hdr);
	}
	if (!err) {
		err = rp_bench_hdr_write(h, st);
	}
	if (!err && (h->out.len != h->hdr_len ||
		     memcmp(h->out.p, h->in.p, h->hdr_len) != 0)) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: writing the header again gives "
				     "other bytes");
	}
	rp_age_header_fini(&hdr);
	return err;
}

enum rp_err rp_bench_hdr_parse(struct rp_bench_hdr *h, struct rp_status *st)
{
	struct rp_age_header hdr = { 0 };
	enum rp_err err;

	err = rp_age_header_parse(&hdr, st, h->in.p, h->in.len);
	rp_age_header_fini(&hdr);
	return err;
}

enum rp_err rp_bench_hdr_parse_mac(struct rp_bench_hdr *h, struct rp_status *st)
{
	struct rp_age_header hdr = { 0 };
	enum rp_err err;

	err = rp_age_header_parse(&hdr, st, h->in.p, h->in.len);
	if (!err) {
		err = rp_age_header_verify_mac(&hdr, st, h->file_key, h->in.p);
	}
	rp_age_header_fini(&hdr);
	return err;
}

enum rp_err rp_bench_hdr_write(struct rp_bench_hdr *h, struct rp_status *st)
{
	return hdr_write(h, st, &h->out);
}

/* STREAM payloads. */
struct rp_bench_stream {
	struct rp_stream *s; /* owned */
	size_t plain_len;
	uint8_t *plain;	 /* owned */
	uint8_t *sealed; /* owned */
	size_t sealed_len;
	uint8_t *opened; /* owned: rp_bench_stream_check's */
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	uint8_t nonce[RP_AGE_NONCE_LEN];
};

enum rp_err rp_bench_stream_new(struct rp_bench_stream **out,
				struct rp_status *st, size_t plain_len)
{
	struct rp_bench_stream *b = NULL;
	enum rp_err err;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b) {
		return rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
	}
	b->plain_len = plain_len;
	b->sealed_len = (size_t)rp_stream_sealed_size(plain_len);
	b->s = calloc(1, sizeof(*b->s));
	/* malloc(0) may return NULL: keep one byte at least */
	b->plain = malloc(plain_len + 1);
	b->sealed = malloc(b->sealed_len);
	b->opened = malloc(plain_len + 1);
	if (!b->s || !b->plain || !b->sealed || !b->opened) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
		goto out;
	}
	err = random_bytes(st, b->file_key, sizeof(b->file_key));
	if (!err) {
		err = random_bytes(st, b->nonce, sizeof(b->nonce));
	}
	/* RAND_bytes of 16 MiB is slow and pointless: a pattern will do */
	for (size_t i = 0; i < plain_len; i++) {
		b->plain[i] = (uint8_t)(i * 131u + (i >> 16));
	}
out:
	if (err) {
		rp_bench_stream_free(b);
		b = NULL;
	}
	*out = b;
	return err;
}

void rp_bench_stream_free(struct rp_bench_stream *b)
{
	if (!b) {
		return;
	}
	if (b->s) {
		rp_stream_fini(b->s);
	}
	free(b->s);
	free(b->plain);
	free(b->sealed);
	free(b->opened);
	OPENSSL_cleanse(b->file_key, sizeof(b->file_key));
	free(b);
}

/* stream_run runs one whole stream over `in`, output to `out_fn`. */
static enum rp_err stream_run(struct rp_bench_stream *b, struct rp_status *st,
			      enum rp_stream_dir dir, const uint8_t *in,
			      size_t in_len, rp_stream_out_fn *out_fn,
			      void *arg)
{
	enum rp_err err;

	err = rp_stream_init(b->s, st, dir, b->file_key, b->nonce);
	if (!err) {
		err = rp_stream_feed(b->s, st, in, in_len, out_fn, arg);
	}
	if (!err) {
		err = rp_stream_finish(b->s, st, out_fn, arg);
	}
	rp_stream_fini(b->s);
	return err;
}

enum rp_err rp_bench_stream_check(struct rp_bench_stream *b,
				  struct rp_status *st)
{
	struct copy_sink sealed = { b->sealed, b->sealed_len, 0 };
	struct copy_sink opened = { b->opened, b->plain_len, 0 };
	enum rp_err err;

	err = stream_run(b, st, RP_STREAM_SEAL, b->plain, b->plain_len,
			 copy_out, &sealed);
	if (!err && sealed.len != b->sealed_len) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: sealed %zu bytes, expected %zu",
				     sealed.len, b->sealed_len);
	}
	if (!err) {
		err = stream_run(b, st, RP_STREAM_OPEN, b->sealed,
				 b->sealed_len, copy_out, &opened);
	}
	if (!err && (opened.len != b->plain_len ||
		     memcmp(b->opened, b->plain, b->plain_len) != 0)) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: the payload does not round-trip");
	}
	return err;
}

enum rp_err rp_bench_stream_seal(struct rp_bench_stream *b,
				 struct rp_status *st)
{
	uint64_t n = 0;

	return stream_run(b, st, RP_STREAM_SEAL, b->plain, b->plain_len,
			  count_out, &n);
}

enum rp_err rp_bench_stream_open(struct rp_bench_stream *b,
				 struct rp_status *st)
{
	uint64_t n = 0;

	return stream_run(b, st, RP_STREAM_OPEN, b->sealed, b->sealed_len,
			  count_out, &n);
}

/* Recipient stanzas: one header with an ssh-rsa and an X25519 stanza. */
struct rp_bench_recip {
	struct keys keys;
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	uint8_t out_key[RP_AGE_FILE_KEY_LEN]; /* the unwraps' */
	struct rp_recip_stanza rs;	      /* the wraps' */
	struct rp_buf in;
	struct rp_age_header hdr; /* stanzas[0] ssh-rsa, [1] X25519 */
};

enum rp_err rp_bench_recip_new(struct rp_bench_recip **out,
			       struct rp_status *st)
{
	struct rp_bench_recip *r = NULL;
	enum rp_err err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		return rp_status_fail(st, RP_ERR_NOMEM, "bench: out of memory");
	}
	err = keys_init(&r->keys, st);
	if (!err) {
		err = random_bytes(st, r->file_key, sizeof(r->file_key));
	}
	if (!err) {
		err = rp_age_header_begin(&r->in);
	}
	if (!err) {
		err = rp_sshrsa_wrap(&r->rs, st, r->keys.rsa_pub, NULL, r->file_key);
	}
	if (!err) {
		err = rp_recip_stanza_add(&r->in, &r->rs, NULL, NULL);
	}
	if (!err) {
		err = rp_x25519_wrap(&r->rs, st, r->keys.x_pub, r->file_key);
	}
	if (!err) {
		err = rp_recip_stanza_add(&r->in, &r->rs, NULL, NULL);
	}
	if (!err) {
		err = rp_age_header_finish(&r->in, st, r->file_key);
	}
	if (!err) {
		err = rp_age_header_parse(&r->hdr, st, r->in.p, r->in.len);
	}
	if (!err && r->hdr.num_stanzas != 2) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: %zu stanzas, expected 2",
				     r->hdr.num_stanzas);
	}
	if (err) {
		rp_bench_recip_free(r);
		r = NULL;
	}
	*out = r;
	return err;
}

void rp_bench_recip_free(struct rp_bench_recip *r)
{
	if (!r) {
		return;
	}
	rp_age_header_fini(&r->hdr);
	rp_buf_fini(&r->in);
	keys_fini(&r->keys);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

enum rp_err rp_bench_recip_check(struct rp_bench_recip *r, struct rp_status *st)
{
	enum rp_err err;

	err = rp_bench_rsa_unwrap(r, st);
	if (!err &&
	    CRYPTO_memcmp(r->out_key, r->file_key, sizeof(r->file_key)) != 0) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: ssh-rsa unwrap: wrong file key");
	}
	memset(r->out_key, 0, sizeof(r->out_key));
	if (!err) {
		err = rp_bench_x25519_unwrap(r, st);
	}
	if (!err &&
	    CRYPTO_memcmp(r->out_key, r->file_key, sizeof(r->file_key)) != 0) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: X25519 unwrap: wrong file key");
	}
	if (!err) {
		err = rp_bench_rsa_wrap(r, st);
	}
	if (!err &&
	    (strcmp(r->rs.type, "ssh-rsa") != 0 || r->rs.body_len != 256)) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: ssh-rsa wrap: wrong stanza");
	}
	if (!err) {
		err = rp_bench_x25519_wrap(r, st);
	}
	if (!err &&
	    (strcmp(r->rs.type, "X25519") != 0 || r->rs.body_len != 32)) {
		err = rp_status_fail(st, RP_ERR_INTERNAL,
				     "bench: X25519 wrap: wrong stanza");
	}
	return err;
}

enum rp_err rp_bench_rsa_wrap(struct rp_bench_recip *r, struct rp_status *st)
{
	return rp_sshrsa_wrap(&r->rs, st, r->keys.rsa_pub, NULL, r->file_key);
}

enum rp_err rp_bench_rsa_unwrap(struct rp_bench_recip *r, struct rp_status *st)
{
	return rp_sshrsa_unwrap(r->out_key, st, &r->hdr.stanzas[0],
				r->keys.rsa);
}

enum rp_err rp_bench_x25519_wrap(struct rp_bench_recip *r, struct rp_status *st)
{
	return rp_x25519_wrap(&r->rs, st, r->keys.x_pub, r->file_key);
}

enum rp_err rp_bench_x25519_unwrap(struct rp_bench_recip *r,
				   struct rp_status *st)
{
	return rp_x25519_unwrap(r->out_key, st, &r->hdr.stanzas[1],
				r->keys.x_secret);
}
