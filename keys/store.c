#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "age_recip.h"
#include "audit.h"
#include "ks_soft.h"
#include "rp_clock.h"
#include "rp_ossl.h"
#include "rp_testhook.h"
#include "store_internal.h"
#include "rp_buf.h"
#include "rp_file.h"

#define WK_MAGIC    "RPWK"
#define WK_VERSION  1
#define WK_LOG_N    15 /* scrypt N = 2^15, r = 8, p = 1: 32 MiB, ~0.1 s */
#define WK_R	    8
#define WK_P	    1
#define WK_AAD_LEN  (4 + 1 + 1 + 4 + 4 + 16 + 16)
#define WK_FILE_LEN (WK_AAD_LEN + 12 + 32 + 16)

enum rp_err rp_store_default_dir(char *out, size_t out_cap,
				 struct rp_status *st)
{
	const char *env = getenv("REPROTECT_STORE");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	int n;

	if (env && *env) {
		n = snprintf(out, out_cap, "%s", env);
	} else if (xdg && *xdg) {
		n = snprintf(out, out_cap, "%s/reprotect", xdg);
	} else if (home && *home) {
		n = snprintf(out, out_cap, "%s/.local/share/reprotect", home);
	} else {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "no store folder: give --store DIR or "
				      "set REPROTECT_STORE");
	}
	if (n < 0 || (size_t)n >= out_cap) {
		return rp_status_fail(st, RP_ERR_USAGE, "store path too long");
	}
	return RP_OK;
}

static enum rp_err store_path(const struct rp_store *s, struct rp_status *st,
			      char out[PATH_MAX], const char *name)
{
	if (rp_path_join(out, PATH_MAX, s->dir, name)) {
		return rp_status_fail(st, RP_ERR_USAGE, "store path too long");
	}
	return RP_OK;
}

static enum rp_err scrypt_kek(uint8_t out[32], struct rp_status *st,
			      const uint8_t *pass, size_t pass_len,
			      const uint8_t salt[16], uint8_t log_n, uint32_t r,
			      uint32_t p)
{
	if (log_n < 10 || log_n > 22 || r < 1 || r > 32 || p < 1 || p > 16) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "world.key: scrypt parameters out of "
				      "range");
	}
	if (EVP_PBE_scrypt((const char *)pass, pass_len, salt, 16,
			   (uint64_t)1 << log_n, r, p, (uint64_t)1 << 31, out,
			   32) != 1) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "scrypt");
	}
	return RP_OK;
}

static enum rp_err derive_subkeys(struct rp_store *s, struct rp_status *st)
{
	enum rp_err err = rp_soft_derive(s->mac_key, st, s->world_key,
					 "reprotect/v1 keyring mac");
	char kdir[PATH_MAX];

	if (!err) {
		err = rp_soft_derive(s->audit_key, st, s->world_key,
				     "reprotect/v1 audit log mac");
	}
	if (!err) {
		err = store_path(s, st, kdir, "keys");
	}
	if (!err) {
		err = rp_keystore_soft_new(&s->ks_soft, st, kdir, s->world_key,
					   s->num_workers);
	}
	return err;
}

static enum rp_err gcm(int is_seal, struct rp_status *st, uint8_t *out,
		       const uint8_t *in, size_t len, const uint8_t key[32],
		       const uint8_t nonce[12], const uint8_t *aad,
		       size_t aad_len, uint8_t tag[16])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0;
	enum rp_err err = RP_OK;

	if (!ctx ||
	    EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce,
			      is_seal) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1 ||
	    (!is_seal &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "aes-gcm");
		goto out;
	}
	if (EVP_CipherFinal_ex(ctx, out + n, &n) != 1) {
		OPENSSL_cleanse(out, len);
		err = is_seal ? rp_status_ossl(st, RP_ERR_CRYPTO, "aes-gcm")
			      : RP_ERR_AUTH;
		goto out;
	}
	if (is_seal &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "aes-gcm");
	}
out:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

/*
 * store_watermark_id: whose watermark the token keeps: the store's own id
 * (made at init), so that a store rebuilt from the world's shares, or
 * another store of the world, keeps its own; a keyring of before
 * 2026-12-06 has none, and uses the world's id
 */
static const uint8_t *store_watermark_id(const struct rp_store *s)
{
	static const uint8_t zero[16];

	return memcmp(s->keyring.store_id, zero, 16) ? s->keyring.store_id
						     : s->world_id;
}

/*
 * The generation pin file (init --pin-generation): "RPPG" || store id ||
 * generation (u64) || HMAC-SHA-256 under the audit key of
 * "reprotect/v1 generation pin" and those 28 bytes.
 */
#define PIN_MAGIC "RPPG"
#define PIN_LEN	  (4 + 16 + 8 + 32)

static enum rp_err pin_mac(const struct rp_store *s, struct rp_status *st,
			   uint8_t out[32], const uint8_t *body)
{
	static const char label[] = "reprotect/v1 generation pin";
	const uint8_t *data[] = { (const uint8_t *)label, body };
	const size_t lens[] = { sizeof(label) - 1, PIN_LEN - 32 };

	return rp_hmac_sha256(out, st, s->audit_key, 32, data, lens, 2);
}

static enum rp_err write_pin(const struct rp_store *s, struct rp_status *st)
{
	uint8_t b[PIN_LEN];
	enum rp_err err;

	memcpy(b, PIN_MAGIC, 4);
	memcpy(b + 4, store_watermark_id(s), 16);
	rp_put_u64be(b + 20, s->keyring.generation);
	err = pin_mac(s, st, b + 28, b);
	if (!err) {
		err = rp_file_write_atomic(st, s->keyring.pin_path, b,
					   sizeof(b), 0);
	}
	if (err) {
		rp_status_prefix(st, "the generation pin file '%s'",
				 s->keyring.pin_path);
	}
	return err;
}

static enum rp_err read_pin(const struct rp_store *s, struct rp_status *st,
			    uint64_t *out_gen)
{
	struct rp_buf b = { 0 };
	uint8_t want[32];
	enum rp_err err = rp_file_read(&b, st, s->keyring.pin_path, 1024);

	*out_gen = 0;
	if (!err && (b.len != PIN_LEN || memcmp(b.p, PIN_MAGIC, 4) ||
		     memcmp(b.p + 4, store_watermark_id(s), 16))) {
		err = rp_status_fail(st, RP_ERR_AUTH, "it is not this store's");
	}
	if (!err) {
		err = pin_mac(s, st, want, b.p);
	}
	if (!err && CRYPTO_memcmp(want, b.p + 28, 32)) {
		err = rp_status_fail(st, RP_ERR_AUTH, "it was modified");
	}
	if (!err) {
		struct rp_span sp = rp_span_of(b.p + 20, 8);

		(void)rp_span_get_u64be(&sp, out_gen);
	}
	if (err) {
		rp_status_prefix(st,
				 "the generation pin file '%s' cannot be "
				 "checked, so the store does not open",
				 s->keyring.pin_path);
	}
	rp_buf_fini(&b);
	return err;
}

/*
 * check_generation refuses a keyring older than the store has written:
 * the watermark in audit.head, and the pin file if there is one. A
 * revoke or a retirement must never be undone by copying files back.
 */
static enum rp_err check_generation(const struct rp_store *s,
				    struct rp_status *st)
{
	uint64_t head = 0, pin = 0;
	enum rp_err err = rp_audit_generation(s, st, &head);

	if (!err && s->keyring.pin_path[0]) {
		err = read_pin(s, st, &pin);
	}
	if (err) {
		return err;
	}
	if (s->keyring.generation < head || s->keyring.generation < pin) {
		return rp_status_fail(
			st, RP_ERR_AUTH,
			"the keyring (generation %llu) is older than this "
			"store has written (generation %llu, in %s): it was "
			"copied back from an older copy, which could undo a "
			"revoke; put the newest keyring back (docs/"
			"OPERATIONS.md, \"Rollback\")",
			(unsigned long long)s->keyring.generation,
			(unsigned long long)(head > pin ? head : pin),
			head >= pin ? "audit.head" : s->keyring.pin_path);
	}
	return RP_OK;
}

enum rp_err rp_store_save_keyring(struct rp_store *s, struct rp_status *st)
{
	struct rp_buf b = { 0 };
	char path[PATH_MAX];
	enum rp_err err = store_path(s, st, path, "keyring");

	/*
	 * a token store's keys live on the token, and so does its watermark:
	 * the token is opened (and the keyring checked against it) before
	 * anything is written
	 */
	if (!err && s->keyring.conf.backend == RP_BACKEND_PKCS11 &&
	    s->keyring.num_keys) {
		err = rp_store_open_backend(s, st);
	}
	if (err) {
		return err;
	}
	s->keyring.generation++;
	if (!err) {
		err = rp_keyring_encode(&b, st, &s->keyring, s->mac_key);
	}
	if (!err) {
		err = rp_file_write_atomic(st, path, b.p, b.len, 0);
	}
	rp_buf_fini(&b);
	/*
	 * the watermark after the keyring: a crash in between leaves the
	 * keyring newer than its watermark, which opens; the reverse would
	 * lock the store out
	 */
	if (!err) {
		err = rp_audit_note_generation(s, st, s->keyring.generation);
		if (err) {
			rp_status_prefix(st, "the keyring was written, but its "
					     "generation was not noted");
		}
	}
	if (!err && s->keyring.pin_path[0]) {
		err = write_pin(s, st);
	}
	if (!err && s->ks_p11 && s->ks_p11->ops->generation) {
		uint64_t gen = s->keyring.generation;

		err = s->ks_p11->ops->generation(
			s->ks_p11, st, store_watermark_id(s), &gen, 1);
	}
	return err;
}

enum rp_err rp_store_set_pin_path(struct rp_store *s, struct rp_status *st,
				  const char *path)
{
	enum rp_err err;

	if (s->keyring.num_keys || s->keyring.pin_path[0]) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "the generation pin file is set once, at "
				      "init");
	}
	if (path[0] != '/' || strlen(path) > RP_PIN_PATH_MAX) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the generation pin file: an absolute "
				      "path of at most %d bytes",
				      RP_PIN_PATH_MAX);
	}
	snprintf(s->keyring.pin_path, sizeof(s->keyring.pin_path), "%s", path);
	/* the file first: a pin that cannot be written is not set */
	s->keyring.generation++;
	err = write_pin(s, st);
	s->keyring.generation--;
	if (!err) {
		err = rp_store_save_keyring(s, st);
	}
	if (err) {
		s->keyring.pin_path[0] = '\0';
	}
	return err;
}

static void flush_pubs(struct rp_store *s)
{
	pthread_mutex_lock(&s->pub_lock);
	for (size_t i = 0; i < s->num_pubs; i++) {
		EVP_PKEY_free(s->pubs[i].pub);
		EVP_PKEY_free(s->pubs[i].sign_pub);
	}
	free(s->pubs);
	s->pubs = NULL;
	s->num_pubs = 0;
	pthread_mutex_unlock(&s->pub_lock);
}

enum rp_err rp_store_pubkeys(struct rp_store *s, struct rp_status *st,
			     size_t idx, EVP_PKEY **out_pub,
			     EVP_PKEY **out_sign_pub, const char **out_tag)
{
	const struct rp_key_info *k = &s->keyring.keys[idx];
	struct rp_pub_cache *c;
	enum rp_err err = RP_OK;

	pthread_mutex_lock(&s->pub_lock);
	if (idx >= s->num_pubs) {
		const size_t n = s->keyring.num_keys;
		struct rp_pub_cache *p = realloc(s->pubs, n * sizeof(*p));

		if (!p) {
			pthread_mutex_unlock(&s->pub_lock);
			return rp_status_fail(st, RP_ERR_NOMEM,
					      "out of memory");
		}
		memset(p + s->num_pubs, 0, (n - s->num_pubs) * sizeof(*p));
		s->pubs = p;
		s->num_pubs = n;
	}
	c = &s->pubs[idx];
	if (!c->pub) {
		err = rp_key_pubkey(&c->pub, st, k);
		if (!err) {
			err = rp_key_sign_pubkey(&c->sign_pub, st, k);
		}
		if (!err && k->alg != RP_ALG_X25519) {
			err = rp_sshrsa_tag(c->tag, st, c->pub);
		}
		if (err) {
			EVP_PKEY_free(c->pub);
			EVP_PKEY_free(c->sign_pub);
			memset(c, 0, sizeof(*c));
		}
	}
	if (!err) {
		if (out_pub) {
			*out_pub = c->pub;
		}
		if (out_sign_pub) {
			*out_sign_pub = c->sign_pub;
		}
		if (out_tag) {
			*out_tag = c->tag;
		}
	}
	pthread_mutex_unlock(&s->pub_lock);
	return err;
}

static enum rp_err load_keyring_once(struct rp_store *s, struct rp_status *st)
{
	struct rp_buf b = { 0 };
	char path[PATH_MAX];
	enum rp_err err = store_path(s, st, path, "keyring");

	if (!err) {
		err = rp_file_read(&b, st, path, RP_KEYRING_FILE_MAX);
	}
	if (!err) {
		flush_pubs(s);
		rp_keyring_fini(&s->keyring);
		err = rp_keyring_decode(&s->keyring, st, b.p, b.len,
					s->mac_key);
	}
	if (!err) {
		err = check_generation(s, st);
	}
	rp_buf_fini(&b);
	return err;
}

/*
 * load_keyring reads the keyring and checks it against its watermarks.
 * A key change in another process between the two reads (a new keyring,
 * then its watermark) looks like an old keyring: read both again, a few
 * times; a keyring copied back stays older every time.
 */
static enum rp_err load_keyring(struct rp_store *s, struct rp_status *st)
{
	enum rp_err err = RP_OK;

	for (int attempt = 0; attempt < 5; attempt++) {
		struct rp_status tmp = { 0 };
		const struct timespec ts = { 0, 20 * 1000 * 1000 };

		err = load_keyring_once(s, &tmp);
		if (err != RP_ERR_AUTH || attempt == 4) {
			if (err && st && !st->err) {
				*st = tmp;
			}
			break;
		}
		nanosleep(&ts, NULL);
	}
	return err;
}

static struct rp_store *store_new(struct rp_status *st, const char *dir)
{
	struct rp_store *s = OPENSSL_zalloc(sizeof(*s));

	if (!s) {
		rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		return NULL;
	}
	s->lock_fd = -1;
	s->num_workers = 1;
	pthread_mutex_init(&s->usage_lock, NULL);
	pthread_mutex_init(&s->pub_lock, NULL);
	pthread_mutex_init(&s->backend_lock, NULL);
	if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >=
	    (int)sizeof(s->dir)) {
		rp_status_fail(st, RP_ERR_USAGE, "store path too long");
		OPENSSL_free(s);
		return NULL;
	}
	return s;
}

static enum rp_err make_dir(struct rp_status *st, const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		return rp_status_errno(st, errno, "cannot create folder", path);
	}
	return RP_OK;
}

static enum rp_err create(struct rp_store **out, struct rp_status *st,
			  const char *dir, const uint8_t *pass, size_t pass_len,
			  const uint8_t *world_key, const uint8_t *world_id,
			  const struct rp_store_conf *conf)
{
	struct rp_store *s = store_new(st, dir);
	uint8_t file[WK_FILE_LEN];
	uint8_t kek[32];
	uint8_t *p = file;
	char path[PATH_MAX];
	enum rp_err err;

	*out = NULL;
	if (!s) {
		return st->err;
	}
	if (pass_len == 0) {
		err = rp_status_fail(st, RP_ERR_PASSPHRASE,
				     "the passphrase must not be empty");
		goto out;
	}
	err = make_dir(st, dir);
	if (!err) {
		err = store_path(s, st, path, "keys");
	}
	if (!err) {
		err = make_dir(st, path);
	}
	if (err) {
		goto out;
	}
	/* the store's own id: its token watermark, apart from any other
	 * store of the world (one rebuilt from its shares) */
	if (RAND_bytes(s->keyring.store_id, sizeof(s->keyring.store_id)) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "random bytes");
		goto out;
	}
	if (world_key) {
		memcpy(s->world_key, world_key, 32);
		memcpy(s->world_id, world_id, 16);
	} else if (RAND_priv_bytes(s->world_key, 32) != 1 ||
		   RAND_bytes(s->world_id, 16) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "random");
		goto out;
	}
	memcpy(p, WK_MAGIC, 4);
	p[4] = WK_VERSION;
	p[5] = WK_LOG_N;
	rp_put_u32be(p + 6, WK_R);
	rp_put_u32be(p + 10, WK_P);
	memcpy(p + 14, s->world_id, 16);
	if (RAND_bytes(p + 30, 16) != 1 ||
	    RAND_bytes(p + WK_AAD_LEN, 12) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "random");
		goto out;
	}
	err = scrypt_kek(kek, st, pass, pass_len, p + 30, WK_LOG_N, WK_R, WK_P);
	if (!err) {
		err = gcm(1, st, p + WK_AAD_LEN + 12, s->world_key, 32, kek,
			  p + WK_AAD_LEN, p, WK_AAD_LEN,
			  p + WK_AAD_LEN + 12 + 32);
	}
	if (!err) {
		err = store_path(s, st, path, "world.key");
	}
	if (!err) {
		err = rp_file_write_atomic(st, path, file, sizeof(file), 1);
	}
	if (err == RP_ERR_EXISTS) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_EXISTS,
				     "'%s' already holds a store", dir);
	}
	if (!err) {
		err = derive_subkeys(s, st);
	}
	if (!err) {
		if (conf) {
			s->keyring.conf = *conf;
		} else {
			s->keyring.conf.backend = RP_BACKEND_SOFT;
		}
		err = rp_store_save_keyring(s, st);
	}
out:
	OPENSSL_cleanse(kek, sizeof(kek));
	if (err) {
		rp_store_free(s);
		return err;
	}
	*out = s;
	return RP_OK;
}

enum rp_err rp_store_create(struct rp_store **out, struct rp_status *st,
			    const char *dir, const uint8_t *pass,
			    size_t pass_len)
{
	return create(out, st, dir, pass, pass_len, NULL, NULL, NULL);
}

enum rp_err rp_store_create_ex(struct rp_store **out, struct rp_status *st,
			       const char *dir, const uint8_t *pass,
			       size_t pass_len,
			       const struct rp_store_conf *conf,
			       const uint8_t *world_key,
			       const uint8_t *world_id)
{
	if (!world_key != !world_id) {
		RP_BUG("world key and id go together");
	}
	return create(out, st, dir, pass, pass_len, world_key, world_id, conf);
}

enum rp_err rp_store_open(struct rp_store **out, struct rp_status *st,
			  const char *dir, const uint8_t *pass, size_t pass_len)
{
	struct rp_store *s = store_new(st, dir);
	struct rp_buf file = { 0 };
	uint8_t kek[32];
	char path[PATH_MAX];
	enum rp_err err;
	const uint8_t *p;

	*out = NULL;
	if (!s) {
		return st->err;
	}
	err = store_path(s, st, path, "world.key");
	if (!err) {
		err = rp_file_read(&file, st, path, 4096);
	}
	if (err == RP_ERR_NOTFOUND) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_NOTFOUND,
				     "no store in '%s': run 'reprotect init' "
				     "first",
				     dir);
	}
	if (err) {
		goto out;
	}
	p = file.p;
	if (file.len != WK_FILE_LEN || memcmp(p, WK_MAGIC, 4) ||
	    p[4] != WK_VERSION) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "'%s' is not a reprotect world key file",
				     path);
		goto out;
	}
	memcpy(s->world_id, p + 14, 16);
	err = scrypt_kek(kek, st, pass, pass_len, p + 30, p[5],
			 (p[6] << 24 | p[7] << 16 | p[8] << 8 | p[9]),
			 (p[10] << 24 | p[11] << 16 | p[12] << 8 | p[13]));
	if (err) {
		goto out;
	}
	err = gcm(0, st, s->world_key, p + WK_AAD_LEN + 12, 32, kek,
		  p + WK_AAD_LEN, p, WK_AAD_LEN,
		  (uint8_t *)p + WK_AAD_LEN + 12 + 32);
	if (err == RP_ERR_AUTH) {
		err = rp_status_fail(st, RP_ERR_PASSPHRASE,
				     "wrong passphrase for the store in '%s'",
				     dir);
	}
	if (!err) {
		err = derive_subkeys(s, st);
	}
	if (!err) {
		err = load_keyring(s, st);
	}
out:
	OPENSSL_cleanse(kek, sizeof(kek));
	rp_buf_fini(&file);
	if (err) {
		rp_store_free(s);
		return err;
	}
	*out = s;
	return RP_OK;
}

/* free_tokens closes the replica tokens' keystores */
static void free_tokens(struct rp_store *s)
{
	for (size_t i = 0; i < s->num_tokens; i++) {
		rp_keystore_free(s->tokens[i].ks);
	}
	free(s->tokens);
	s->tokens = NULL;
	s->num_tokens = 0;
}

void rp_store_free(struct rp_store *s)
{
	if (!s) {
		return;
	}
	if (s->lock_fd >= 0) {
		close(s->lock_fd);
	}
	rp_keystore_free(s->ks_soft);
	free_tokens(s);
	rp_keystore_free(s->ks_p11);
	if (s->p11_pin) {
		OPENSSL_clear_free(s->p11_pin, s->p11_pin_len + 1);
	}
	free(s->usage);
	flush_pubs(s);
	pthread_mutex_destroy(&s->usage_lock);
	pthread_mutex_destroy(&s->pub_lock);
	pthread_mutex_destroy(&s->backend_lock);
	rp_keyring_fini(&s->keyring);
	OPENSSL_clear_free(s, sizeof(*s));
}

/* remove_stale_tmp drops temporary files a killed writer left behind */
static void remove_stale_tmp(const struct rp_store *s, const char *sub)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;

	if (rp_path_join(path, sizeof(path), s->dir, sub)) {
		return;
	}
	d = opendir(path);
	if (!d) {
		return;
	}
	while ((e = readdir(d))) {
		/*
		 * audit.* is written under the audit log's own lock, by
		 * commands that do not take this one: not ours to clean
		 */
		if (strstr(e->d_name, ".rp-tmp-") &&
		    strncmp(e->d_name, ".audit.", 7)) {
			unlinkat(dirfd(d), e->d_name, 0);
		}
	}
	closedir(d);
}

enum rp_err rp_store_lock(struct rp_store *s, struct rp_status *st,
			  int timeout_ms)
{
	char path[PATH_MAX];
	enum rp_err err = store_path(s, st, path, "lock");
	int waited = 0;

	if (err) {
		return err;
	}
	if (s->lock_fd < 0) {
		s->lock_fd = open(
			path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (s->lock_fd < 0) {
			return rp_status_errno(st, errno, "cannot open", path);
		}
	}
	while (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		const struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (errno != EWOULDBLOCK && errno != EINTR) {
			return rp_status_errno(st, errno, "cannot lock", path);
		}
		if (waited >= timeout_ms) {
			return rp_status_fail(st, RP_ERR_LOCKED,
					      "the store '%s' is locked by "
					      "another reprotect process",
					      s->dir);
		}
		nanosleep(&ts, NULL);
		waited += 50;
	}
	/* under the lock no one else writes: leftovers are from a crash */
	remove_stale_tmp(s, ".");
	remove_stale_tmp(s, "keys");
	return load_keyring(s, st);
}

enum rp_err rp_store_lock_shared(struct rp_store *s, struct rp_status *st,
				 int *fd)
{
	char path[PATH_MAX];
	enum rp_err err = store_path(s, st, path, "lock");

	if (err) {
		return err;
	}
	if (*fd < 0) {
		*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			   0600);
		if (*fd < 0) {
			return rp_status_errno(st, errno, "cannot open", path);
		}
	}
	while (flock(*fd, LOCK_SH) < 0) {
		if (errno != EINTR) {
			return rp_status_errno(st, errno, "cannot lock", path);
		}
	}
	return RP_OK;
}

void rp_store_unlock_shared(int fd)
{
	if (fd >= 0) {
		(void)flock(fd, LOCK_UN);
	}
}

enum rp_err rp_store_key_states_now(struct rp_store *s, struct rp_status *st,
				    uint8_t *states, long *out_active,
				    uint8_t active_id[RP_KEY_ID_LEN])
{
	struct rp_keyring now = { 0 };
	struct rp_buf b = { 0 };
	char path[PATH_MAX];
	enum rp_err err = store_path(s, st, path, "keyring");
	long a;

	if (!err) {
		err = rp_file_read(&b, st, path, RP_KEYRING_FILE_MAX);
	}
	if (!err) {
		err = rp_keyring_decode(&now, st, b.p, b.len, s->mac_key);
	}
	rp_buf_fini(&b);
	if (!err && now.generation < s->keyring.generation) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the keyring went back to an older "
				     "generation (%llu, from %llu) while this "
				     "command ran: copied back from an older "
				     "copy",
				     (unsigned long long)now.generation,
				     (unsigned long long)s->keyring.generation);
	}
	if (err) {
		rp_keyring_fini(&now);
		return err;
	}
	for (size_t k = 0; k < s->keyring.num_keys; k++) {
		const long i = rp_keyring_find_id(&now, s->keyring.keys[k].id);

		states[k] = i < 0 ? RP_KEY_DESTROYED : now.keys[i].state;
	}
	a = rp_keyring_active(&now);
	*out_active = -1;
	if (a >= 0) {
		memcpy(active_id, now.keys[a].id, RP_KEY_ID_LEN);
		*out_active = rp_keyring_find_id(&s->keyring, now.keys[a].id);
		if (*out_active < 0) {
			*out_active = -2;
		}
	}
	rp_keyring_fini(&now);
	return RP_OK;
}

const char *rp_store_dir(const struct rp_store *s)
{
	return s->dir;
}

const uint8_t *rp_store_world_id(const struct rp_store *s)
{
	return s->world_id;
}

const struct rp_keyring *rp_store_keyring(const struct rp_store *s)
{
	return &s->keyring;
}

enum rp_err rp_store_set_pkcs11_pin(struct rp_store *s, struct rp_status *st,
				    const char *pin, size_t pin_len)
{
	if (s->p11_pin) {
		OPENSSL_clear_free(s->p11_pin, s->p11_pin_len + 1);
	}
	s->p11_pin = OPENSSL_zalloc(pin_len + 1);
	if (!s->p11_pin) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	memcpy(s->p11_pin, pin, pin_len);
	s->p11_pin_len = pin_len;
	return RP_OK;
}

/*
 * token_generation: the token's watermark against the keyring, when the
 * token is opened: a keyring older than the token has seen is a copy
 * put back (the whole folder, audit.head too); a newer one raises it (a
 * store of before 2026-12-06, or a keyring write that did not reach the
 * token)
 */
static enum rp_err token_generation(struct rp_store *s, struct rp_status *st)
{
	struct rp_keystore *ks = s->ks_p11;
	uint64_t gen = 0;
	enum rp_err err;

	if (!ks->ops->generation) {
		return RP_OK;
	}
	err = ks->ops->generation(ks, st, store_watermark_id(s), &gen, 0);
	if (!err && s->keyring.generation < gen) {
		return rp_status_fail(
			st, RP_ERR_AUTH,
			"the keyring (generation %llu) is older than token "
			"'%s' has seen (generation %llu): the store's folder "
			"was copied back from an older copy, which could undo "
			"a revoke; put the newest keyring back (docs/"
			"OPERATIONS.md, \"Rollback\")",
			(unsigned long long)s->keyring.generation,
			s->keyring.conf.pkcs11_token, (unsigned long long)gen);
	}
	if (!err && s->keyring.generation > gen) {
		gen = s->keyring.generation;
		err = ks->ops->generation(ks, st, store_watermark_id(s), &gen,
					  1);
	}
	return err;
}

/*
 * p11_new opens token `label` of the store's PKCS#11 module with the
 * store's PIN, for its workers
 */
static enum rp_err p11_new(const struct rp_store *s, struct rp_status *st,
			   const char *label, struct rp_keystore **out)
{
	struct rp_pkcs11_config cfg = {
		.module = s->keyring.conf.pkcs11_module,
		.token_label = label,
		.pin = s->p11_pin,
		.pin_len = s->p11_pin_len,
	};

	*out = NULL;
	if (!cfg.module[0] || !cfg.token_label[0]) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the store has no PKCS#11 token "
				      "configured");
	}
	if (!s->p11_pin) {
		return rp_status_fail(
			st, RP_ERR_USAGE,
			"no PKCS#11 PIN: set REPROTECT_PKCS11_PIN "
			"or give --pkcs11-pin-file");
	}
#ifdef RP_HAVE_PKCS11
	return rp_keystore_pkcs11_new(out, st, &cfg, s->num_workers);
#else
	return rp_status_fail(st, RP_ERR_HSM,
			      "this build has no PKCS#11 backend");
#endif
}

static enum rp_err open_p11(struct rp_store *s, struct rp_status *st)
{
	enum rp_err err;

	if (s->ks_p11) {
		return RP_OK;
	}
	err = p11_new(s, st, s->keyring.conf.pkcs11_token, &s->ks_p11);
	if (!err) {
		err = token_generation(s, st);
	}
	if (err) {
		rp_keystore_free(s->ks_p11);
		s->ks_p11 = NULL;
	}
	return err;
}

/* replica_ks is rp_store_replica_ks with backend_lock held */
static enum rp_err replica_ks(struct rp_store *s, struct rp_status *st,
			      const char *label, struct rp_keystore **out)
{
	struct rp_store_token *p;
	enum rp_err err;

	*out = NULL;
	for (size_t i = 0; i < s->num_tokens; i++) {
		if (!strcmp(s->tokens[i].label, label)) {
			*out = s->tokens[i].ks;
			return RP_OK;
		}
	}
	/* the store's own token first: its watermark is checked there */
	err = open_p11(s, st);
	if (err) {
		return err;
	}
	if (strlen(label) >= sizeof(p->label)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "a token label: at most %d characters",
				      RP_CONF_STR_MAX);
	}
	p = realloc(s->tokens, (s->num_tokens + 1) * sizeof(*p));
	if (!p) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	s->tokens = p;
	p = &s->tokens[s->num_tokens];
	memset(p, 0, sizeof(*p));
	snprintf(p->label, sizeof(p->label), "%s", label);
	/* level with the store's token, not behind it: no burst to catch up */
	p->num_asked = __atomic_load_n(&s->p11_asked, __ATOMIC_RELAXED);
	err = p11_new(s, st, label, &p->ks);
	if (err) {
		return err;
	}
	s->num_tokens++;
	*out = p->ks;
	return RP_OK;
}

enum rp_err rp_store_replica_ks(struct rp_store *s, struct rp_status *st,
				const char *label, struct rp_keystore **out)
{
	enum rp_err err;

	pthread_mutex_lock(&s->backend_lock);
	err = replica_ks(s, st, label, out);
	pthread_mutex_unlock(&s->backend_lock);
	return err;
}

enum rp_err rp_store_ks(struct rp_store *s, struct rp_status *st,
			const struct rp_key_info *ki, struct rp_keystore **out)
{
	enum rp_err err = RP_OK;

	if (ki->backend == RP_BACKEND_PKCS11) {
		/* workers may be the first to need it, several at once */
		pthread_mutex_lock(&s->backend_lock);
		err = open_p11(s, st);
		pthread_mutex_unlock(&s->backend_lock);
		*out = s->ks_p11;
	} else {
		*out = s->ks_soft;
	}
	return err;
}

enum rp_err rp_store_ks_default(struct rp_store *s, struct rp_status *st,
				struct rp_keystore **out, uint8_t *out_backend)
{
	struct rp_key_info probe;

	memset(&probe, 0, sizeof(probe));
	probe.backend = s->keyring.conf.backend;
	*out_backend = probe.backend;
	return rp_store_ks(s, st, &probe, out);
}

enum rp_err rp_store_open_backend(struct rp_store *s, struct rp_status *st)
{
	struct rp_keystore *ks = NULL;
	uint8_t backend;

	return rp_store_ks_default(s, st, &ks, &backend);
}

uint64_t rp_store_now(void)
{
	return (uint64_t)time(NULL) + (uint64_t)rp_test_clock_skew();
}

static enum rp_err add_new_key(struct rp_store *s, struct rp_status *st,
			       struct rp_key_info *ki, int is_activate,
			       size_t *out_idx)
{
	enum rp_err err;

	ki->state = RP_KEY_PENDING;
	ki->created_at = rp_store_now();
	err = rp_keyring_add(&s->keyring, st, ki);
	if (err) {
		return err;
	}
	*out_idx = s->keyring.num_keys - 1;
	if (is_activate) {
		return rp_store_key_activate(s, st, *out_idx);
	}
	return rp_store_save_keyring(s, st);
}

enum rp_err rp_store_key_generate(struct rp_store *s, struct rp_status *st,
				  uint8_t alg, uint8_t flags,
				  struct rp_key_info *out)
{
	struct rp_keystore *ks = NULL;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	out->alg = alg;
	out->flags = flags & RP_KEY_EXPORTABLE;
	err = rp_store_ks_default(s, st, &ks, &out->backend);
	if (!err) {
		err = ks->ops->generate(ks, st, out);
	}
	return err;
}

enum rp_err rp_store_key_create(struct rp_store *s, struct rp_status *st,
				uint8_t alg, uint8_t flags, int is_activate,
				size_t *out_idx)
{
	struct rp_key_info ki;
	enum rp_err err = rp_store_key_generate(s, st, alg, flags, &ki);

	if (err) {
		return err;
	}
	return add_new_key(s, st, &ki, is_activate, out_idx);
}

enum rp_err rp_store_key_import(struct rp_store *s, struct rp_status *st,
				const uint8_t *data, size_t len, uint8_t flags,
				int is_activate, size_t *out_idx)
{
	struct rp_keystore *ks = NULL;
	struct rp_key_info ki;
	enum rp_err err;

	memset(&ki, 0, sizeof(ki));
	ki.flags = (flags & RP_KEY_EXPORTABLE) | RP_KEY_IMPORTED;
	err = rp_store_ks_default(s, st, &ks, &ki.backend);
	if (!err) {
		err = ks->ops->import(ks, st, &ki, data, len);
	}
	if (err) {
		return err;
	}
	return add_new_key(s, st, &ki, is_activate, out_idx);
}

enum rp_err rp_store_key_activate(struct rp_store *s, struct rp_status *st,
				  size_t idx)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	const long cur = rp_keyring_active(&s->keyring);
	const uint64_t t = rp_store_now();

	if (k->state != RP_KEY_PENDING) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "only a pending key can become active; "
				      "this key is %s",
				      rp_key_state_name(k->state));
	}
	if (cur >= 0) {
		s->keyring.keys[cur].state = RP_KEY_ARCHIVED;
		s->keyring.keys[cur].archived_at = t;
	}
	k->state = RP_KEY_ACTIVE;
	k->activated_at = t;
	return rp_store_save_keyring(s, st);
}

enum rp_err rp_store_check_usable(const struct rp_store *s,
				  struct rp_status *st, size_t idx)
{
	const struct rp_key_info *k = &s->keyring.keys[idx];
	char hex[2 * RP_KEY_ID_LEN + 1];
	char when[64] = "an unknown time";
	const time_t t =
		(time_t)(k->state == RP_KEY_DESTROYED  ? k->destroyed_at
			 : k->state == RP_KEY_RETIRING ? k->purge_at
						       : k->revoked_at);
	struct tm tm;

	rp_key_id_hex(hex, k->id);
	if (t && gmtime_r(&t, &tm) &&
	    !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(when, sizeof(when), "an unknown time");
	}
	if (k->state == RP_KEY_REVOKED) {
		return rp_status_fail(st, RP_ERR_REVOKED,
				      "key %.16s was revoked at %s; restore it "
				      "from its backup with 'reprotect key "
				      "restore FILE' to open its documents",
				      hex, when);
	}
	if (k->state == RP_KEY_DESTROYED) {
		return rp_status_fail(st, RP_ERR_REVOKED,
				      "key %.16s was destroyed at %s: its "
				      "documents can never be opened again",
				      hex, when);
	}
	if (k->state == RP_KEY_RETIRING) {
		return rp_status_fail(st, RP_ERR_RETIRING,
				      "key %.16s is retiring: it opens nothing "
				      "and will be destroyed at %s; 'reprotect "
				      "key keep %.16s' before then opens its "
				      "documents again (a census missed them)",
				      hex, when, hex);
	}
	return RP_OK;
}

/* count_token notes an unwrap on token `label` in `u` */
static void count_token(struct rp_key_usage *u, const char *label)
{
	size_t i = 0;

	while (i < u->num_tokens && strcmp(u->tokens[i].label, label)) {
		i++;
	}
	if (i == u->num_tokens) {
		if (i == RP_ARRAY_LEN(u->tokens)) {
			return; /* replicas replaced mid-command: best effort */
		}
		snprintf(u->tokens[i].label, sizeof(u->tokens[i].label), "%s",
			 label);
		u->tokens[i].num_unwrap = 0;
		u->num_tokens++;
	}
	u->tokens[i].num_unwrap++;
}

/*
 * count_usage notes one use of key `ki` for the audit log; an unwrap of a
 * key with replicas names the token (`label`, else NULL)
 */
static void count_usage(struct rp_store *s, const struct rp_key_info *ki,
			int is_sign, const char *label)
{
	struct rp_key_usage *u = NULL;
	const uint64_t t = rp_store_now();

	pthread_mutex_lock(&s->usage_lock);
	for (size_t i = 0; i < s->num_usage; i++) {
		if (!memcmp(s->usage[i].id, ki->id, RP_KEY_ID_LEN)) {
			u = &s->usage[i];
		}
	}
	if (!u) {
		struct rp_key_usage *p =
			realloc(s->usage, (s->num_usage + 1) * sizeof(*p));

		if (!p) {
			pthread_mutex_unlock(&s->usage_lock);
			return; /* usage counts are best effort */
		}
		s->usage = p;
		u = &s->usage[s->num_usage++];
		memset(u, 0, sizeof(*u));
		memcpy(u->id, ki->id, RP_KEY_ID_LEN);
		u->first_at = t;
	}
	u->last_at = t;
	if (is_sign) {
		u->num_sign++;
	} else {
		u->num_unwrap++;
	}
	if (label) {
		count_token(u, label);
	}
	pthread_mutex_unlock(&s->usage_lock);
}

enum rp_err rp_store_set_workers(struct rp_store *s, struct rp_status *st,
				 size_t num_workers)
{
	char kdir[PATH_MAX];
	struct rp_keystore *ks = NULL;
	enum rp_err err = store_path(s, st, kdir, "keys");

	num_workers = num_workers ? num_workers : 1;
	if (!err) {
		err = rp_keystore_soft_new(&ks, st, kdir, s->world_key,
					   num_workers);
	}
	if (err) {
		/* the store stays as it was: never without a soft keystore */
		return err;
	}
	s->num_workers = num_workers;
	rp_keystore_free(s->ks_soft);
	s->ks_soft = ks;
	/* reopened with as many sessions */
	free_tokens(s);
	rp_keystore_free(s->ks_p11);
	s->ks_p11 = NULL;
	return RP_OK;
}

enum rp_err rp_store_unwrap(struct rp_store *s, struct rp_status *st,
			    size_t idx, const struct rp_age_stanza *stanza,
			    uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	return rp_store_unwrap_w(s, st, 0, idx, stanza, file_key);
}

enum rp_err rp_store_sign(struct rp_store *s, struct rp_status *st, size_t idx,
			  const uint8_t *msg, size_t msg_len, uint8_t *out,
			  size_t out_cap, size_t *out_len)
{
	return rp_store_sign_w(s, st, 0, idx, msg, msg_len, out, out_cap,
			       out_len);
}

void rp_store_set_key_ops(struct rp_store *s, double per_second,
			  volatile sig_atomic_t *stop)
{
	pthread_mutex_lock(&s->usage_lock);
	s->key_ops_cap = per_second > 0 ? per_second : 0;
	s->key_ops_rate = s->key_ops_cap;
	s->key_ops_next = s->key_ops_high = s->key_ops_cut_at = 0;
	s->key_ops_grown_at = s->key_ops_win_at = s->key_ops_measured = 0;
	s->key_ops_win_n = 0;
	s->key_ops_stop = stop;
	pthread_mutex_unlock(&s->usage_lock);
}

void rp_store_key_ops(struct rp_store *s, struct rp_key_ops_stats *out)
{
	pthread_mutex_lock(&s->usage_lock);
	out->count = s->key_ops_count;
	out->busy = s->key_ops_busy;
	out->waited = s->key_ops_waited;
	out->pace = s->key_ops_rate;
	pthread_mutex_unlock(&s->usage_lock);
}

/*
 * The pace under busy answers (docs/ENGINE.md, "A busy keystore"): a busy
 * answer cuts the pace to BUSY_CUT of what it was (or of the rate
 * measured, when there was no pace), at most once a BUSY_WINDOW, and
 * remembers the pace that was too much. Each operation done grows it
 * again: quickly (half the gap a second) back to BUSY_NEAR of that pace,
 * then slowly (BUSY_PROBE of it a second) past it, never above the cap.
 */
#define BUSY_CUT     0.7
#define BUSY_WINDOW  1.0
#define BUSY_NEAR    0.95
#define BUSY_PROBE   0.01
#define BUSY_FLOOR   0.5  /* operations a second, the lowest pace */
#define BUSY_GIVE_UP 60.0 /* seconds one operation may stay busy */
#define BUSY_RECENT  30.0 /* seconds a busy answer counts as now */

/*
 * key_op_slot: every private-key operation takes the next slot of the
 * pace, 1/rate seconds after the one before (a token bucket of one,
 * shared by every thread): the operations are spread evenly, never in a
 * burst above the rate, and a thread waits only for its own slot. Returns
 * 0 when the caller's stop came while it waited for its slot, or while
 * the keystore is throttled (a busy answer in the last BUSY_RECENT
 * seconds): the operation is not asked. (Under a slow quota, in-flight
 * documents would otherwise hold a stop for many seconds, past a
 * scheduler's grace period.)
 */
static int key_op_slot(struct rp_store *s)
{
	double now = rp_clock_s(CLOCK_MONOTONIC), at = 0, wait = 0;
	volatile sig_atomic_t *stop;
	int is_throttled;

	pthread_mutex_lock(&s->usage_lock);
	stop = s->key_ops_stop;
	s->key_ops_count++;
	if (s->key_ops_rate > 0) {
		at = s->key_ops_next > now ? s->key_ops_next : now;
		s->key_ops_next = at + 1.0 / s->key_ops_rate;
		wait = at - now;
		s->key_ops_waited += wait;
	}
	is_throttled = s->key_ops_busy && now - s->key_ops_cut_at < BUSY_RECENT;
	pthread_mutex_unlock(&s->usage_lock);
	/* in steps, to see a stop: a slow pace queues long waits */
	while (wait > 0) {
		const double step = wait < 0.1 ? wait : 0.1;
		struct timespec ts;

		if (stop && *stop) {
			return 0; /* a stop does not wait for the pace */
		}
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(step * 1e9);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
		}
		wait -= step;
	}
	return !(is_throttled && stop && *stop);
}

static void key_op_done(struct rp_store *s, int is_busy)
{
	const double now = rp_clock_s(CLOCK_MONOTONIC);

	pthread_mutex_lock(&s->usage_lock);
	if (is_busy) {
		s->key_ops_busy++;
		if (now - s->key_ops_cut_at >= BUSY_WINDOW) {
			double base = s->key_ops_rate > 0 ? s->key_ops_rate
							  : s->key_ops_measured;

			if (base <= 0) { /* not a window measured yet */
				base = (double)s->key_ops_win_n /
				       (now > s->key_ops_win_at + 0.05
						? now - s->key_ops_win_at
						: 1.0);
			}
			s->key_ops_high = base > BUSY_FLOOR ? base : BUSY_FLOOR;
			s->key_ops_rate = s->key_ops_high * BUSY_CUT;
			if (s->key_ops_rate < BUSY_FLOOR) {
				s->key_ops_rate = BUSY_FLOOR;
			}
			s->key_ops_cut_at = s->key_ops_grown_at = now;
			s->key_ops_next = now + 1.0 / s->key_ops_rate;
		}
		pthread_mutex_unlock(&s->usage_lock);
		return;
	}
	if (!s->key_ops_win_at) {
		s->key_ops_win_at = now;
	}
	s->key_ops_win_n++;
	if (now - s->key_ops_win_at >= BUSY_WINDOW) {
		s->key_ops_measured =
			(double)s->key_ops_win_n / (now - s->key_ops_win_at);
		s->key_ops_win_at = now;
		s->key_ops_win_n = 0;
	}
	if (s->key_ops_high > 0 && s->key_ops_rate > 0) {
		double dt = now - s->key_ops_grown_at;
		double *r = &s->key_ops_rate;

		dt = dt > BUSY_WINDOW ? BUSY_WINDOW : dt;
		s->key_ops_grown_at = now;
		if (*r < BUSY_NEAR * s->key_ops_high) {
			*r += (s->key_ops_high - *r) * 0.5 * dt;
		} else {
			*r += BUSY_PROBE * s->key_ops_high * dt;
		}
		if (*r > s->key_ops_high) {
			s->key_ops_high = *r;
		}
		if (s->key_ops_cap > 0 && *r > s->key_ops_cap) {
			*r = s->key_ops_cap;
		}
	}
	pthread_mutex_unlock(&s->usage_lock);
}

static enum rp_err key_op_stopped(struct rp_status *st)
{
	return rp_status_fail(st, RP_ERR_HSM,
			      "not asked: the run stopped while waiting for "
			      "the keystore's pace");
}

/*
 * key_op_busy: after a busy answer, whether to ask again. Not after the
 * caller's stop, nor once this operation has been busy BUSY_GIVE_UP
 * seconds: then the failure becomes RP_ERR_HSM (the run stops; nothing
 * is failed for it). `*since` is 0 before the first busy answer.
 */
static int key_op_busy(struct rp_store *s, struct rp_status *st, double *since)
{
	const double now = rp_clock_s(CLOCK_MONOTONIC);
	volatile sig_atomic_t *stop;

	key_op_done(s, 1);
	pthread_mutex_lock(&s->usage_lock);
	stop = s->key_ops_stop;
	pthread_mutex_unlock(&s->usage_lock);
	if (!*since) {
		*since = now;
	}
	if ((stop && *stop) || now - *since >= BUSY_GIVE_UP) {
		if (st) {
			st->err = RP_ERR_HSM;
		}
		rp_status_prefix(st, "the keystore stayed busy for %.0f s",
				 now - *since);
		return 0;
	}
	rp_status_clear(st);
	return 1;
}

/*
 * pick_token: of a key's token (the store's) and its `n` replicas from
 * s->keyring.replicas[first], the one asked the fewest operations so far
 * (signatures, unwraps of every key, and busy answers asked again count),
 * so that the tokens share the load evenly and one that answers busy is
 * asked less; with backend_lock held. *out_label names it.
 */
static enum rp_err pick_token(struct rp_store *s, struct rp_status *st,
			      size_t first, size_t n, struct rp_keystore **out,
			      const char **out_label)
{
	enum rp_err err = open_p11(s, st);
	uint64_t *best;
	struct rp_keystore *ks = NULL;

	/* every replica open first: opening one moves s->tokens */
	for (size_t i = first; !err && i < first + n; i++) {
		err = replica_ks(s, st, s->keyring.replicas[i].token, &ks);
		if (err && err != RP_ERR_NOMEM) {
			/* as a token that stopped answering: the run stops */
			err = RP_ERR_HSM;
			if (st) {
				st->err = err;
			}
			rp_status_prefix(st,
					 "replica token '%s' is unavailable",
					 s->keyring.replicas[i].token);
		}
	}
	if (err) {
		return err;
	}
	best = &s->p11_asked;
	*out = s->ks_p11;
	*out_label = s->keyring.conf.pkcs11_token;
	for (size_t t = 0; t < s->num_tokens; t++) {
		struct rp_store_token *tok = &s->tokens[t];
		size_t i = first;

		while (i < first + n &&
		       strcmp(s->keyring.replicas[i].token, tok->label)) {
			i++;
		}
		if (i < first + n &&
		    __atomic_load_n(&tok->num_asked, __ATOMIC_RELAXED) <
			    __atomic_load_n(best, __ATOMIC_RELAXED)) {
			best = &tok->num_asked;
			*out = tok->ks;
			*out_label = s->keyring.replicas[i].token;
		}
	}
	__atomic_add_fetch(best, 1, __ATOMIC_RELAXED);
	return RP_OK;
}

/*
 * unwrap_ks picks the keystore for an unwrap with key `ki`: its backend,
 * or, for a key with replicas, its token or a replica (pick_token), again
 * at each try. *out_label names the token taken for a key with replicas
 * (borrowed from the keyring), else NULL.
 */
static enum rp_err unwrap_ks(struct rp_store *s, struct rp_status *st,
			     const struct rp_key_info *ki,
			     struct rp_keystore **out, const char **out_label)
{
	size_t first = 0, n = 0;
	enum rp_err err;

	*out_label = NULL;
	if (ki->backend == RP_BACKEND_PKCS11) {
		n = rp_keyring_replicas(&s->keyring, ki->id, &first);
	}
	if (!n) {
		err = rp_store_ks(s, st, ki, out);
		if (!err && *out == s->ks_p11) {
			__atomic_add_fetch(&s->p11_asked, 1, __ATOMIC_RELAXED);
		}
		return err;
	}
	pthread_mutex_lock(&s->backend_lock);
	err = pick_token(s, st, first, n, out, out_label);
	pthread_mutex_unlock(&s->backend_lock);
	return err;
}

enum rp_err rp_store_unwrap_w(struct rp_store *s, struct rp_status *st,
			      size_t worker, size_t idx,
			      const struct rp_age_stanza *stanza,
			      uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	const struct rp_key_info *ki = &s->keyring.keys[idx];
	struct rp_keystore *ks = NULL;
	const char *label = NULL;
	enum rp_err err = rp_store_check_usable(s, st, idx);

	/* each try takes the next token: a busy one is asked again later */
	for (double busy_since = 0; !err;) {
		err = unwrap_ks(s, st, ki, &ks, &label);
		if (err) {
			break;
		}
		if (!key_op_slot(s)) {
			err = key_op_stopped(st);
			break;
		}
		err = ks->ops->unwrap(ks, st, worker, ki, stanza, file_key);
		if (err != RP_ERR_BUSY || !key_op_busy(s, st, &busy_since)) {
			break;
		}
		err = RP_OK;
	}
	if (!err) {
		key_op_done(s, 0);
		count_usage(s, ki, 0, label);
	}
	return err;
}

enum rp_err rp_store_sign_w(struct rp_store *s, struct rp_status *st,
			    size_t worker, size_t idx, const uint8_t *msg,
			    size_t msg_len, uint8_t *out, size_t out_cap,
			    size_t *out_len)
{
	const struct rp_key_info *ki = &s->keyring.keys[idx];
	struct rp_keystore *ks = NULL;
	enum rp_err err;

	if (ki->state != RP_KEY_ACTIVE) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "only the active key signs");
	}
	err = rp_store_ks(s, st, ki, &ks);
	for (double busy_since = 0; !err;) {
		if (!key_op_slot(s)) {
			err = key_op_stopped(st);
			break;
		}
		if (ks == s->ks_p11) {
			__atomic_add_fetch(&s->p11_asked, 1, __ATOMIC_RELAXED);
		}
		err = ks->ops->sign(ks, st, worker, ki, msg, msg_len, out,
				    out_cap, out_len);
		if (err != RP_ERR_BUSY || !key_op_busy(s, st, &busy_since)) {
			break;
		}
		err = RP_OK;
	}
	if (!err) {
		key_op_done(s, 0);
		count_usage(s, ki, 1, NULL);
	}
	return err;
}
