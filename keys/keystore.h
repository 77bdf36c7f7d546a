#ifndef RP_KEYS_KEYSTORE_H
#define RP_KEYS_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "age_header.h"
#include "keyring.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The keystore interface: one vtable per backend (soft: ks_soft.c; PKCS#11:
 * ks_pkcs11.c). Private key material never leaves a backend.
 * Backends receive the key's keyring entry and find their material by id.
 */
struct rp_keystore;
struct rp_buf;

/*
 * Every operation that uses a key takes a `worker` index (0 ..
 * num_workers - 1, fixed when the backend is created): a backend keeps
 * per-worker state (a PKCS#11 session, a soft key cache), so workers never
 * share one. One thread per worker index at a time.
 */
struct rp_keystore_ops {
	const char *name;
	/*
	 * generate makes a new key of ki->alg; fills ki->id, ki->pub,
	 * ki->pub_len and ki->sign_pub and stores the private part. The
	 * RP_KEY_EXPORTABLE flag in ki->flags says whether export is allowed.
	 */
	enum rp_err (*generate)(struct rp_keystore *ks, struct rp_status *st,
				struct rp_key_info *ki);
	/*
	 * import takes a PEM RSA private key (PKCS#1 or PKCS#8) or an age
	 * X25519 identity; fills ki like generate.
	 */
	enum rp_err (*import)(struct rp_keystore *ks, struct rp_status *st,
			      struct rp_key_info *ki, const uint8_t *data,
			      size_t len);
	/* unwrap opens a recipient stanza made for this key. */
	enum rp_err (*unwrap)(struct rp_keystore *ks, struct rp_status *st,
			      size_t worker, const struct rp_key_info *ki,
			      const struct rp_age_stanza *s,
			      uint8_t file_key[RP_AGE_FILE_KEY_LEN]);
	/*
	 * sign signs `msg` (RSA-PSS-SHA-256, MGF1-SHA-256, salt 32, for RSA
	 * keys; Ed25519 with the signing key for the X25519 type).
	 */
	enum rp_err (*sign)(struct rp_keystore *ks, struct rp_status *st,
			    size_t worker, const struct rp_key_info *ki,
			    const uint8_t *msg, size_t msg_len, uint8_t *out,
			    size_t out_cap, size_t *out_len);
	/*
	 * backup appends the key's material, wrapped so that only this
	 * backend's security world can unwrap it, to `out` (opaque bytes;
	 * the store puts them in the backup blob with the key's metadata).
	 */
	enum rp_err (*backup)(struct rp_keystore *ks, struct rp_status *st,
			      const struct rp_key_info *ki, struct rp_buf *out);
	/*
	 * restore installs material made by backup for key `ki` (its id and
	 * public key are already checked by the store). RP_ERR_AUTH if the
	 * material does not unwrap in this world.
	 */
	enum rp_err (*restore)(struct rp_keystore *ks, struct rp_status *st,
			       const struct rp_key_info *ki,
			       const uint8_t *wrapped, size_t wrapped_len);
	/*
	 * export appends the private key in the clear to `out`: PEM PKCS#8
	 * for RSA, the age identity line for X25519. The store refuses keys
	 * without RP_KEY_EXPORTABLE before calling it.
	 */
	enum rp_err (*export_key)(struct rp_keystore *ks, struct rp_status *st,
				  const struct rp_key_info *ki,
				  struct rp_buf *out);
	/*
	 * erase removes the key material (revoke and destroy call it). Not
	 * an error if it is already gone.
	 */
	enum rp_err (*erase)(struct rp_keystore *ks, struct rp_status *st,
			     const struct rp_key_info *ki);
	/*
	 * generation reads into *gen (0: none yet) the highest keyring
	 * generation this backend keeps for the store `store_id`, or,
	 * with `is_set`, raises it to *gen (never lowers it): a place of its
	 * own that a copy of the store's folder cannot take back (a data
	 * object on a PKCS#11 token). NULL for a backend without one (soft).
	 */
	enum rp_err (*generation)(struct rp_keystore *ks, struct rp_status *st,
				  const uint8_t store_id[RP_ATLEAST(16)],
				  uint64_t *gen, int is_set);
	void (*free)(struct rp_keystore *ks);
};

struct rp_keystore {
	const struct rp_keystore_ops *ops; /* borrowed, static */
	size_t num_workers;
};

/*
 * rp_keystore_soft_new opens the soft keystore whose key files live in
 * `dir`, encrypted under `world_key`, for `num_workers` workers. The
 * caller owns the result.
 */
RP_MUST_CHECK enum rp_err
rp_keystore_soft_new(struct rp_keystore **out, struct rp_status *st,
		     const char *dir, const uint8_t world_key[RP_ATLEAST(32)],
		     size_t num_workers);

/* Where a PKCS#11 keystore lives. */
struct rp_pkcs11_config {
	const char *module;	 /* path of the PKCS#11 module (.so) */
	const char *token_label; /* the token, by label */
	const char *pin;	 /* user PIN */
	size_t pin_len;
};

/*
 * rp_keystore_pkcs11_new loads the module (once per process), finds the
 * token by label, logs in, and opens one session per worker. RP_ERR_HSM
 * with the CK_RV in st->ck_rv on failure. See keys/ks_pkcs11.c.
 */
RP_MUST_CHECK enum rp_err
rp_keystore_pkcs11_new(struct rp_keystore **out, struct rp_status *st,
		       const struct rp_pkcs11_config *cfg, size_t num_workers);

/* rp_keystore_free frees any backend; accepts NULL. */
void rp_keystore_free(struct rp_keystore *ks);

/*
 * rp_key_pubkey decodes a key's public key: the RSA key, or the X25519
 * key. For the X25519 type, rp_key_sign_pubkey gives the Ed25519 key.
 * The caller frees the result with EVP_PKEY_free.
 */
RP_MUST_CHECK enum rp_err rp_key_pubkey(EVP_PKEY **out, struct rp_status *st,
					const struct rp_key_info *ki);
RP_MUST_CHECK enum rp_err rp_key_sign_pubkey(EVP_PKEY **out,
					     struct rp_status *st,
					     const struct rp_key_info *ki);

/*
 * rp_key_parse_rsa_pem reads a PEM RSA private key (PKCS#1 or PKCS#8,
 * unencrypted) brought in by `key import`, and its algorithm (2048, 3072
 * or 4096 bits; other sizes are refused). The caller frees *out.
 */
RP_MUST_CHECK enum rp_err rp_key_parse_rsa_pem(EVP_PKEY **out,
					       uint8_t *out_alg,
					       struct rp_status *st,
					       const uint8_t *data, size_t len);

/*
 * rp_key_find_identity finds the first "AGE-SECRET-KEY-..." line of an
 * age identity file; returns 1 with its offset and length (without a
 * line end), 0 if there is none.
 */
int rp_key_find_identity(const uint8_t *data, size_t len, size_t *off,
			 size_t *n);

/*
 * rp_key_fill_public fills ki->id, pub and pub_len from `pub` (the RSA or
 * X25519 public key). The id is SHA-256 of the SubjectPublicKeyInfo DER.
 */
RP_MUST_CHECK enum rp_err
rp_key_fill_public(struct rp_key_info *ki, struct rp_status *st, EVP_PKEY *pub);

#ifdef __cplusplus
}
#endif
#endif
