/*
 * The soft keystore: each private key in <dir>/<key id hex>.key, sealed
 * with AES-256-GCM under a key derived from the store's world key. The
 * X25519 key type derives its Ed25519 signing key from the X25519 secret
 * (HKDF), so the same age identity imported into two stores signs alike.
 */
#include "keystore.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "age_recip.h"
#include "ks_soft.h"

#include "rp_ossl.h"
#include "rp_buf.h"
#include "rp_file.h"

#define SK_MAGIC     "RPSK"
#define SK_VERSION   1
#define SK_NONCE_LEN 12
#define SK_TAG_LEN   16
#define SK_FILE_MAX  16384
#define NUM_CACHE    8

struct cached_key {
	uint8_t id[RP_KEY_ID_LEN];
	int is_used;
	EVP_PKEY *rsa;	   /* owned */
	EVP_PKEY_CTX *oaep; /* owned: rsa's decrypt context, made once */
	EVP_PKEY *ed25519; /* owned */
	EVP_PKEY *x25519_key; /* owned: the secret below, made once */
	uint8_t x25519[RP_X25519_LEN];
};

struct worker_cache {
	struct cached_key cache[NUM_CACHE];
	size_t next_evict;
};

struct soft_ks {
	struct rp_keystore base;
	char dir[PATH_MAX];
	uint8_t enc_key[32];
	struct worker_cache *workers; /* owned: base.num_workers of them */
};

enum rp_err rp_soft_derive(uint8_t out[RP_ATLEAST(32)], struct rp_status *st,
			   const uint8_t world_key[RP_ATLEAST(32)],
			   const char *info)
{
	return rp_hkdf_sha256(out, 32, st, world_key, 32, NULL, 0, info);
}

enum rp_err rp_x25519_signing_seed(uint8_t seed[RP_ATLEAST(32)],
				   struct rp_status *st,
				   const uint8_t secret[RP_ATLEAST(32)])
{
	return rp_soft_derive(seed, st, secret,
			      "reprotect/v1 x25519 key: ed25519 signing seed");
}

static enum rp_err ed25519_from_x25519(EVP_PKEY **out, struct rp_status *st,
				       const uint8_t secret[RP_X25519_LEN])
{
	uint8_t seed[32];
	enum rp_err err;

	err = rp_x25519_signing_seed(seed, st, secret);
	if (!err) {
		*out = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
						    seed, sizeof(seed));
		if (!*out) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "ed25519 key");
		}
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	return err;
}

static void cache_clear(struct cached_key *c)
{
	EVP_PKEY_CTX_free(c->oaep);
	EVP_PKEY_free(c->rsa);
	EVP_PKEY_free(c->ed25519);
	EVP_PKEY_free(c->x25519_key);
	OPENSSL_cleanse(c, sizeof(*c));
}

static enum rp_err key_path(char out[PATH_MAX], struct rp_status *st,
			    const struct soft_ks *ks,
			    const uint8_t id[RP_KEY_ID_LEN])
{
	char hex[2 * RP_KEY_ID_LEN + 1];
	char name[2 * RP_KEY_ID_LEN + 8];

	rp_key_id_hex(hex, id);
	snprintf(name, sizeof(name), "%s.key", hex);
	if (rp_path_join(out, PATH_MAX, ks->dir, name)) {
		return rp_status_fail(st, RP_ERR_USAGE, "store path too long");
	}
	return RP_OK;
}

/* seal/open: AES-256-GCM, AAD = magic || version || key id */
static enum rp_err seal_secret(struct rp_buf *out, struct rp_status *st,
			       const struct soft_ks *ks,
			       const uint8_t id[RP_KEY_ID_LEN],
			       const uint8_t *secret, size_t len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t nonce[SK_NONCE_LEN];
	int n = 0;
	enum rp_err err = RP_OK;
	size_t ct_off;

	if (!ctx || RAND_bytes(nonce, sizeof(nonce)) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "seal key");
		goto out;
	}
	if (rp_buf_add(out, SK_MAGIC, 4) || rp_buf_add_u8(out, SK_VERSION) ||
	    rp_buf_add(out, nonce, sizeof(nonce)) ||
	    rp_buf_reserve(out, len + SK_TAG_LEN)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	ct_off = out->len;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, ks->enc_key,
			       nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)SK_MAGIC, 4) !=
		    1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t[]){ SK_VERSION },
			      1) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, id, RP_KEY_ID_LEN) != 1 ||
	    EVP_EncryptUpdate(ctx, out->p + ct_off, &n, secret, (int)len) !=
		    1 ||
	    EVP_EncryptFinal_ex(ctx, out->p + ct_off + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SK_TAG_LEN,
				out->p + ct_off + len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "seal key");
		goto out;
	}
	out->len += len + SK_TAG_LEN;
out:
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

static enum rp_err open_secret(struct rp_buf *out, struct rp_status *st,
			       const struct soft_ks *ks,
			       const uint8_t id[RP_KEY_ID_LEN],
			       const uint8_t *in, size_t in_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	const size_t hdr = 4 + 1 + SK_NONCE_LEN;
	size_t ct_len;
	int n = 0;
	enum rp_err err = RP_OK;

	if (in_len < hdr + SK_TAG_LEN || memcmp(in, SK_MAGIC, 4) ||
	    in[4] != SK_VERSION) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "key file: not a soft key file");
	}
	ct_len = in_len - hdr - SK_TAG_LEN;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || rp_buf_reserve(out, ct_len + 16)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, ks->enc_key,
			       in + 5) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, in, 5) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, id, RP_KEY_ID_LEN) != 1 ||
	    EVP_DecryptUpdate(ctx, out->p, &n, in + hdr, (int)ct_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SK_TAG_LEN,
				(void *)(in + hdr + ct_len)) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "open key");
		goto out;
	}
	if (EVP_DecryptFinal_ex(ctx, out->p + n, &n) != 1) {
		OPENSSL_cleanse(out->p, ct_len);
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "key file does not authenticate under "
				     "this store's world key");
		goto out;
	}
	out->len = ct_len;
out:
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

/* The sealed plaintext: alg (1 byte) || PKCS#8 DER (RSA) or secret (X25519) */
static enum rp_err store_secret(struct soft_ks *ks, struct rp_status *st,
				const struct rp_key_info *ki,
				const uint8_t *secret, size_t len)
{
	struct rp_buf plain = { 0 };
	struct rp_buf sealed = { 0 };
	char path[PATH_MAX];
	enum rp_err err;

	err = key_path(path, st, ks, ki->id);
	if (err) {
		goto out;
	}
	if (rp_buf_add_u8(&plain, ki->alg) || rp_buf_add(&plain, secret, len)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	err = seal_secret(&sealed, st, ks, ki->id, plain.p, plain.len);
	if (!err) {
		err = rp_file_write_atomic(st, path, sealed.p, sealed.len, 1);
	}
	if (err == RP_ERR_EXISTS) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_EXISTS,
				     "the key is already in the store");
	}
out:
	rp_buf_fini(&plain);
	rp_buf_fini(&sealed);
	return err;
}

static enum rp_err fill_x25519(struct rp_key_info *ki, struct rp_status *st,
			       const uint8_t secret[RP_X25519_LEN])
{
	uint8_t pub[RP_X25519_LEN];
	EVP_PKEY *xp = NULL;
	EVP_PKEY *ed = NULL;
	size_t ed_len = sizeof(ki->sign_pub);
	enum rp_err err;

	err = rp_x25519_public(pub, st, secret);
	if (err) {
		goto out;
	}
	xp = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub,
					 sizeof(pub));
	if (!xp) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "x25519 key");
		goto out;
	}
	err = rp_key_fill_public(ki, st, xp);
	if (!err) {
		err = ed25519_from_x25519(&ed, st, secret);
	}
	if (!err &&
	    EVP_PKEY_get_raw_public_key(ed, ki->sign_pub, &ed_len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "ed25519 key");
	}
out:
	EVP_PKEY_free(xp);
	EVP_PKEY_free(ed);
	return err;
}

static enum rp_err store_rsa(struct soft_ks *ks, struct rp_status *st,
			     struct rp_key_info *ki, EVP_PKEY *pk)
{
	unsigned char *der = NULL;
	int n;
	enum rp_err err;

	err = rp_key_fill_public(ki, st, pk);
	if (err) {
		return err;
	}
	n = i2d_PrivateKey(pk, &der);
	if (n <= 0) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "encode private key");
	}
	err = store_secret(ks, st, ki, der, (size_t)n);
	OPENSSL_clear_free(der, (size_t)n);
	return err;
}

static enum rp_err soft_generate(struct rp_keystore *base, struct rp_status *st,
				 struct rp_key_info *ki)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	uint8_t secret[RP_X25519_LEN];
	EVP_PKEY *pk = NULL;
	enum rp_err err;

	if (ki->alg == RP_ALG_X25519) {
		if (RAND_priv_bytes(secret, sizeof(secret)) != 1) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "random");
			goto out;
		}
		err = fill_x25519(ki, st, secret);
		if (!err) {
			err = store_secret(ks, st, ki, secret, sizeof(secret));
		}
		goto out;
	}
	if (!rp_key_alg_rsa_bits(ki->alg)) {
		err = rp_status_fail(st, RP_ERR_USAGE, "unknown algorithm");
		goto out;
	}
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rp_key_alg_rsa_bits(ki->alg));
	if (!pk) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "rsa key generation");
		goto out;
	}
	err = store_rsa(ks, st, ki, pk);
out:
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(secret, sizeof(secret));
	return err;
}

static enum rp_err import_rsa(struct soft_ks *ks, struct rp_status *st,
			      struct rp_key_info *ki, const uint8_t *data,
			      size_t len)
{
	EVP_PKEY *pk = NULL;
	enum rp_err err = rp_key_parse_rsa_pem(&pk, &ki->alg, st, data, len);

	if (!err) {
		err = store_rsa(ks, st, ki, pk);
	}
	EVP_PKEY_free(pk);
	return err;
}

static enum rp_err soft_import(struct rp_keystore *base, struct rp_status *st,
			       struct rp_key_info *ki, const uint8_t *data,
			       size_t len)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	uint8_t secret[RP_X25519_LEN];
	size_t off, n;
	enum rp_err err;

	if (!rp_key_find_identity(data, len, &off, &n)) {
		return import_rsa(ks, st, ki, data, len);
	}
	err = rp_age_identity_decode(secret, st, (const char *)data + off, n);
	if (!err) {
		ki->alg = RP_ALG_X25519;
		err = fill_x25519(ki, st, secret);
	}
	if (!err) {
		err = store_secret(ks, st, ki, secret, sizeof(secret));
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return err;
}

static enum rp_err load_key(struct soft_ks *ks, struct rp_status *st,
			    size_t worker, const struct rp_key_info *ki,
			    struct cached_key **out)
{
	struct worker_cache *w;
	struct rp_buf file = { 0 };
	struct rp_buf plain = { 0 };
	char path[PATH_MAX];
	struct cached_key *c;
	enum rp_err err;

	if (worker >= ks->base.num_workers) {
		RP_BUG("worker index out of range");
	}
	w = &ks->workers[worker];
	for (size_t i = 0; i < NUM_CACHE; i++) {
		if (w->cache[i].is_used &&
		    !memcmp(w->cache[i].id, ki->id, RP_KEY_ID_LEN)) {
			*out = &w->cache[i];
			return RP_OK;
		}
	}
	c = &w->cache[w->next_evict];
	w->next_evict = (w->next_evict + 1) % NUM_CACHE;
	cache_clear(c);
	err = key_path(path, st, ks, ki->id);
	if (!err) {
		err = rp_file_read(&file, st, path, SK_FILE_MAX);
	}
	if (err == RP_ERR_NOTFOUND) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_NOKEY,
				     "the key material is missing from the "
				     "store");
	}
	if (!err) {
		err = open_secret(&plain, st, ks, ki->id, file.p, file.len);
	}
	if (err) {
		goto out;
	}
	if (plain.len < 1 || plain.p[0] != ki->alg) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "key file does not match the keyring");
		goto out;
	}
	if (ki->alg == RP_ALG_X25519) {
		if (plain.len != 1 + RP_X25519_LEN) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "key file: bad x25519 secret");
			goto out;
		}
		memcpy(c->x25519, plain.p + 1, RP_X25519_LEN);
		err = ed25519_from_x25519(&c->ed25519, st, c->x25519);
		if (!err) {
			c->x25519_key = rp_x25519_pkey(st, c->x25519);
			err = c->x25519_key ? RP_OK : st->err;
		}
	} else {
		const unsigned char *p = plain.p + 1;

		c->rsa = d2i_AutoPrivateKey(NULL, &p, (long)plain.len - 1);
		if (!c->rsa) {
			err = rp_status_ossl(st, RP_ERR_FORMAT,
					     "key file: bad RSA key");
		}
	}
	if (!err) {
		memcpy(c->id, ki->id, RP_KEY_ID_LEN);
		c->is_used = 1;
		*out = c;
	}
out:
	if (err) {
		cache_clear(c);
	}
	rp_buf_fini(&file);
	rp_buf_fini(&plain);
	return err;
}

static enum rp_err soft_unwrap(struct rp_keystore *base, struct rp_status *st,
			       size_t worker, const struct rp_key_info *ki,
			       const struct rp_age_stanza *s,
			       uint8_t file_key[RP_AGE_FILE_KEY_LEN])
{
	struct soft_ks *ks = (struct soft_ks *)base;
	struct cached_key *c = NULL;
	enum rp_err err = load_key(ks, st, worker, ki, &c);

	if (err) {
		return err;
	}
	if (ki->alg == RP_ALG_X25519) {
		return rp_x25519_unwrap_pkey(file_key, st, s, c->x25519_key);
	}
	if (!c->oaep) {
		c->oaep = rp_sshrsa_ctx_new(st, c->rsa, 1);
		if (!c->oaep) {
			return st->err;
		}
	}
	return rp_sshrsa_unwrap_ctx(file_key, st, s, c->oaep);
}

static enum rp_err soft_sign(struct rp_keystore *base, struct rp_status *st,
			     size_t worker, const struct rp_key_info *ki,
			     const uint8_t *msg, size_t msg_len, uint8_t *out,
			     size_t out_cap, size_t *out_len)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	struct cached_key *c = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	size_t n = out_cap;
	enum rp_err err = load_key(ks, st, worker, ki, &c);

	if (err) {
		return err;
	}
	md = EVP_MD_CTX_new();
	if (!md) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (ki->alg == RP_ALG_X25519) {
		if (EVP_DigestSignInit(md, NULL, NULL, NULL, c->ed25519) != 1 ||
		    EVP_DigestSign(md, out, &n, msg, msg_len) != 1) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "ed25519 sign");
		}
		goto out;
	}
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, c->rsa) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
	    EVP_DigestSign(md, out, &n, msg, msg_len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "rsa-pss sign");
	}
out:
	if (!err) {
		*out_len = n;
	}
	EVP_MD_CTX_free(md);
	return err;
}

/* forget drops every worker's cached copy of key `id` */
static void forget(struct soft_ks *ks, const uint8_t id[RP_KEY_ID_LEN])
{
	for (size_t w = 0; ks->workers && w < ks->base.num_workers; w++) {
		for (size_t i = 0; i < NUM_CACHE; i++) {
			struct cached_key *c = &ks->workers[w].cache[i];

			if (!id ||
			    (c->is_used && !memcmp(c->id, id, RP_KEY_ID_LEN))) {
				cache_clear(c);
			}
		}
	}
}

static enum rp_err soft_backup(struct rp_keystore *base, struct rp_status *st,
			       const struct rp_key_info *ki, struct rp_buf *out)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	char path[PATH_MAX];
	enum rp_err err = key_path(path, st, ks, ki->id);

	/* the key file is already sealed under this world, bound to the id */
	if (!err) {
		err = rp_file_read(out, st, path, SK_FILE_MAX);
	}
	if (err == RP_ERR_NOTFOUND) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_NOKEY,
				     "the key material is not in the store "
				     "(revoked keys have none)");
	}
	return err;
}

/* same_public checks that the material in `plain` belongs to `ki` */
static enum rp_err same_public(struct rp_status *st,
			       const struct rp_key_info *ki,
			       const uint8_t *plain, size_t len)
{
	struct rp_key_info tmp;
	EVP_PKEY *pk = NULL;
	enum rp_err err;

	memset(&tmp, 0, sizeof(tmp));
	if (ki->alg == RP_ALG_X25519) {
		if (len != RP_X25519_LEN) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "backup: bad x25519 secret");
		}
		err = fill_x25519(&tmp, st, plain);
	} else {
		const unsigned char *p = plain;

		pk = d2i_AutoPrivateKey(NULL, &p, (long)len);
		err = pk ? rp_key_fill_public(&tmp, st, pk)
			 : rp_status_ossl(st, RP_ERR_FORMAT,
					  "backup: bad RSA key");
	}
	EVP_PKEY_free(pk);
	if (!err && (tmp.pub_len != ki->pub_len ||
		     memcmp(tmp.pub, ki->pub, ki->pub_len))) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "backup: the key material does not match "
				     "the key's public key");
	}
	return err;
}

static enum rp_err soft_restore(struct rp_keystore *base, struct rp_status *st,
				const struct rp_key_info *ki,
				const uint8_t *wrapped, size_t wrapped_len)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	struct rp_buf plain = { 0 };
	char path[PATH_MAX];
	enum rp_err err;

	err = open_secret(&plain, st, ks, ki->id, wrapped, wrapped_len);
	if (err == RP_ERR_AUTH) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the backup does not open in this "
				     "store's security world");
	}
	if (!err && (plain.len < 1 || plain.p[0] != ki->alg)) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "backup: algorithm does not match");
	}
	if (!err) {
		err = same_public(st, ki, plain.p + 1, plain.len - 1);
	}
	if (!err) {
		err = key_path(path, st, ks, ki->id);
	}
	if (!err) {
		err = rp_file_write_atomic(st, path, wrapped, wrapped_len, 0);
	}
	forget(ks, ki->id);
	rp_buf_fini(&plain);
	return err;
}

static enum rp_err soft_export(struct rp_keystore *base, struct rp_status *st,
			       const struct rp_key_info *ki, struct rp_buf *out)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	struct cached_key *c = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	long n;
	char ident[RP_AGE_KEY_STR_MAX];
	enum rp_err err = load_key(ks, st, 0, ki, &c);

	if (err) {
		return err;
	}
	if (ki->alg == RP_ALG_X25519) {
		err = rp_age_identity_encode(ident, c->x25519);
		if (!err &&
		    (rp_buf_add_str(out, ident) || rp_buf_add_str(out, "\n"))) {
			err = RP_ERR_NOMEM;
		}
		OPENSSL_cleanse(ident, sizeof(ident));
		if (err) {
			rp_status_fail(st, err, "cannot encode the identity");
		}
		goto out;
	}
	bio = BIO_new(BIO_s_secmem());
	if (!bio || PEM_write_bio_PrivateKey(bio, c->rsa, NULL, NULL, 0, NULL,
					     NULL) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "encode private key");
		goto out;
	}
	n = BIO_get_mem_data(bio, &pem);
	if (n <= 0 || rp_buf_add(out, pem, (size_t)n)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
out:
	forget(ks, ki->id);
	BIO_free(bio);
	return err;
}

static enum rp_err soft_erase(struct rp_keystore *base, struct rp_status *st,
			      const struct rp_key_info *ki)
{
	struct soft_ks *ks = (struct soft_ks *)base;
	char path[PATH_MAX];
	enum rp_err err = key_path(path, st, ks, ki->id);

	forget(ks, ki->id);
	if (err) {
		return err;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		return rp_status_errno(st, errno, "cannot remove", path);
	}
	return rp_fsync_dir(st, path);
}

static void soft_free(struct rp_keystore *base)
{
	struct soft_ks *ks = (struct soft_ks *)base;

	forget(ks, NULL);
	if (ks->workers) {
		OPENSSL_clear_free(ks->workers,
				   ks->base.num_workers * sizeof(*ks->workers));
	}
	OPENSSL_clear_free(ks, sizeof(*ks));
}

static const struct rp_keystore_ops soft_ops = {
	.name = "soft",
	.generate = soft_generate,
	.import = soft_import,
	.unwrap = soft_unwrap,
	.sign = soft_sign,
	.backup = soft_backup,
	.restore = soft_restore,
	.export_key = soft_export,
	.erase = soft_erase,
	.free = soft_free,
};

enum rp_err rp_keystore_soft_new(struct rp_keystore **out, struct rp_status *st,
				 const char *dir,
				 const uint8_t world_key[RP_ATLEAST(32)],
				 size_t num_workers)
{
	struct soft_ks *ks = OPENSSL_zalloc(sizeof(*ks));
	enum rp_err err;

	*out = NULL;
	if (!ks) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	ks->base.ops = &soft_ops;
	ks->base.num_workers = num_workers ? num_workers : 1;
	ks->workers =
		OPENSSL_zalloc(ks->base.num_workers * sizeof(*ks->workers));
	if (!ks->workers) {
		soft_free(&ks->base);
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (snprintf(ks->dir, sizeof(ks->dir), "%s", dir) >=
	    (int)sizeof(ks->dir)) {
		soft_free(&ks->base);
		return rp_status_fail(st, RP_ERR_USAGE, "store path too long");
	}
	err = rp_soft_derive(ks->enc_key, st, world_key,
			     "reprotect/v1 soft keystore: key encryption");
	if (err) {
		soft_free(&ks->base);
		return err;
	}
	*out = &ks->base;
	return RP_OK;
}
