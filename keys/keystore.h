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
 * The keystore interface: one vtable per backend (soft now; pkcs11 comes
 * with the life-cycle work). Private key material never leaves a backend.
 * Backends receive the key's keyring entry and find their material by id.
 */
struct rp_keystore;

struct rp_keystore_ops {
	const char *name;
	/*
	 * generate makes a new key of ki->alg; fills ki->id, ki->pub,
	 * ki->pub_len and ki->sign_pub and stores the private part.
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
			      const struct rp_key_info *ki,
			      const struct rp_age_stanza *s,
			      uint8_t file_key[RP_AGE_FILE_KEY_LEN]);
	/*
	 * sign signs `msg` (RSA-PSS-SHA-256, salt 32, for RSA keys; Ed25519
	 * with the signing key for the X25519 type).
	 */
	enum rp_err (*sign)(struct rp_keystore *ks, struct rp_status *st,
			    const struct rp_key_info *ki, const uint8_t *msg,
			    size_t msg_len, uint8_t *out, size_t out_cap,
			    size_t *out_len);
	void (*free)(struct rp_keystore *ks);
};

struct rp_keystore {
	const struct rp_keystore_ops *ops; /* borrowed, static */
};

/*
 * rp_keystore_soft_new opens the soft keystore whose key files live in
 * `dir`, encrypted under `world_key`. The caller owns the result.
 */
RP_MUST_CHECK enum rp_err
rp_keystore_soft_new(struct rp_keystore **out, struct rp_status *st,
		     const char *dir, const uint8_t world_key[RP_ATLEAST(32)]);

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
 * rp_key_fill_public fills ki->id, pub and pub_len from `pub` (the RSA or
 * X25519 public key). The id is SHA-256 of the SubjectPublicKeyInfo DER.
 */
RP_MUST_CHECK enum rp_err
rp_key_fill_public(struct rp_key_info *ki, struct rp_status *st, EVP_PKEY *pub);

#ifdef __cplusplus
}
#endif
#endif
