#ifndef RP_FORMATS_AGE_RECIP_H
#define RP_FORMATS_AGE_RECIP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "age_header.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * age recipient stanzas: X25519 (docs/FORMAT.md section 3) and ssh-rsa
 * (section 7), and the Bech32 text forms of age X25519 keys.
 */
#define RP_X25519_LEN	     32
#define RP_SSHRSA_TAG_LEN    6 /* base64 chars */
#define RP_SSHRSA_MAX_BODY   512
#define RP_AGE_SECRET_KEY_HRP "AGE-SECRET-KEY-"
#define RP_AGE_PUBLIC_KEY_HRP "age"
#define RP_AGE_KEY_STR_MAX   128

/* A recipient stanza to write: give args and body to add_stanza. */
struct rp_recip_stanza {
	char type[16];	/* "X25519" or "ssh-rsa" */
	char arg[64];	/* the share (43 chars) or the tag (6 chars) */
	uint8_t body[RP_SSHRSA_MAX_BODY];
	size_t body_len;
};

/*
 * rp_recip_stanza_add appends `rs` to a header being written (see
 * rp_age_header_add_stanza for out_off and out_len).
 */
RP_MUST_CHECK enum rp_err rp_recip_stanza_add(struct rp_buf *out,
					      const struct rp_recip_stanza *rs,
					      size_t *out_off, size_t *out_len);

/* rp_x25519_public derives the public key of a 32-byte X25519 secret. */
RP_MUST_CHECK enum rp_err
rp_x25519_public(uint8_t out[RP_ATLEAST(RP_X25519_LEN)], struct rp_status *st,
		 const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)]);

/*
 * rp_x25519_wrap makes an X25519 stanza for `recipient` holding `file_key`,
 * with a fresh ephemeral key.
 */
RP_MUST_CHECK enum rp_err
rp_x25519_wrap(struct rp_recip_stanza *out, struct rp_status *st,
	       const uint8_t recipient[RP_ATLEAST(RP_X25519_LEN)],
	       const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);

/*
 * rp_x25519_check_stanza returns RP_ERR_FORMAT unless `s` is a well-formed
 * X25519 stanza: exactly one arg after the type, a canonical 32-byte share
 * and a 32-byte body. On success copies the share to out_share.
 */
RP_MUST_CHECK enum rp_err
rp_x25519_check_stanza(uint8_t out_share[RP_ATLEAST(RP_X25519_LEN)],
		       struct rp_status *st, const struct rp_age_stanza *s);

/*
 * rp_x25519_unwrap opens an X25519 stanza with the identity `secret`.
 * Returns RP_ERR_FORMAT for a malformed stanza or an all-zero shared
 * secret, RP_ERR_NOKEY if the stanza is not for this identity (the AEAD
 * does not open), RP_OK with the file key otherwise.
 */
RP_MUST_CHECK enum rp_err
rp_x25519_unwrap(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		 struct rp_status *st, const struct rp_age_stanza *s,
		 const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)]);

/*
 * rp_x25519_pkey makes the OpenSSL key of a 32-byte X25519 secret (one
 * scalar multiplication: its public key), for rp_x25519_unwrap_pkey; NULL
 * (st says why) if it cannot. The caller frees it.
 */
EVP_PKEY *rp_x25519_pkey(struct rp_status *st,
			 const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)]);

/*
 * rp_x25519_unwrap_pkey is rp_x25519_unwrap with the identity made once
 * (rp_x25519_pkey): one scalar multiplication per stanza, where the secret
 * form makes the key (and its public key) each time.
 */
RP_MUST_CHECK enum rp_err
rp_x25519_unwrap_pkey(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		      struct rp_status *st, const struct rp_age_stanza *s,
		      EVP_PKEY *priv);

/*
 * rp_x25519_unwrap_ss is rp_x25519_unwrap for a keystore that computes the
 * shared secret itself (an HSM): `ss` = X25519(identity, share) and `own`
 * is the identity's public key. Rejects an all-zero `ss`.
 */
RP_MUST_CHECK enum rp_err
rp_x25519_unwrap_ss(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		    struct rp_status *st, const struct rp_age_stanza *s,
		    const uint8_t ss[RP_ATLEAST(RP_X25519_LEN)],
		    const uint8_t own[RP_ATLEAST(RP_X25519_LEN)]);

/*
 * rp_age_identity_encode writes "AGE-SECRET-KEY-1..." (upper case Bech32)
 * for `secret`; rp_age_recipient_encode writes "age1..." for `pub`. `out`
 * holds RP_AGE_KEY_STR_MAX bytes.
 */
RP_MUST_CHECK enum rp_err
rp_age_identity_encode(char out[RP_ATLEAST(RP_AGE_KEY_STR_MAX)],
		       const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)]);
RP_MUST_CHECK enum rp_err
rp_age_recipient_encode(char out[RP_ATLEAST(RP_AGE_KEY_STR_MAX)],
			const uint8_t pub[RP_ATLEAST(RP_X25519_LEN)]);

/*
 * rp_age_identity_decode parses an "AGE-SECRET-KEY-1..." string (Bech32,
 * checksum verified, all upper or all lower case) into a 32-byte secret;
 * rp_age_recipient_decode parses "age1...". RP_ERR_FORMAT otherwise.
 */
RP_MUST_CHECK enum rp_err
rp_age_identity_decode(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
		       struct rp_status *st, const char *in, size_t in_len);
RP_MUST_CHECK enum rp_err
rp_age_recipient_decode(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
			struct rp_status *st, const char *in, size_t in_len);

/*
 * rp_sshrsa_tag writes the 6-char tag (base64 of the first 4 bytes of
 * SHA-256 of the SSH wire encoding of the public key) and a NUL.
 */
RP_MUST_CHECK enum rp_err rp_sshrsa_tag(char out[RP_ATLEAST(8)],
					struct rp_status *st,
					const EVP_PKEY *pub);

/*
 * rp_sshrsa_wrap makes an ssh-rsa stanza: RSA-OAEP-SHA-256 (MGF1-SHA-256,
 * label "age-encryption.org/v1/ssh-rsa") of `file_key` under `pub`.
 * `tag` is pub's rp_sshrsa_tag when the caller has it (a store caches it),
 * or NULL to compute it.
 */
RP_MUST_CHECK enum rp_err
rp_sshrsa_wrap(struct rp_recip_stanza *out, struct rp_status *st,
	       const EVP_PKEY *pub, const char *tag,
	       const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);

/*
 * rp_sshrsa_ctx_new makes an RSA-OAEP context with age's ssh-rsa
 * parameters for `key` (2048 to 4096 bits), to encrypt or, with
 * is_decrypt, to decrypt; made once and used for many stanzas by one
 * thread (rp_sshrsa_wrap_ctx, rp_sshrsa_unwrap_ctx), it saves setting up
 * the parameters for each. The context holds its own reference to `key`.
 * NULL on failure, with `st` saying why. Free with EVP_PKEY_CTX_free.
 */
EVP_PKEY_CTX *rp_sshrsa_ctx_new(struct rp_status *st, EVP_PKEY *key,
				int is_decrypt);

/* rp_sshrsa_wrap_ctx is rp_sshrsa_wrap through an encrypt context */
RP_MUST_CHECK enum rp_err
rp_sshrsa_wrap_ctx(struct rp_recip_stanza *out, struct rp_status *st,
		   EVP_PKEY_CTX *ctx, const char *tag,
		   const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);

/*
 * rp_sshrsa_check_stanza returns RP_ERR_FORMAT unless `s` has exactly one
 * arg after the type and a body of 256, 384 or 512 bytes.
 */
RP_MUST_CHECK enum rp_err rp_sshrsa_check_stanza(struct rp_status *st,
						 const struct rp_age_stanza *s);

/*
 * rp_sshrsa_unwrap decrypts an ssh-rsa stanza body with `priv`. The tag is
 * the caller's to match. Returns RP_ERR_AUTH for an OAEP failure or a file
 * key that is not 16 bytes (one uniform message), RP_OK otherwise.
 */
RP_MUST_CHECK enum rp_err
rp_sshrsa_unwrap(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		 struct rp_status *st, const struct rp_age_stanza *s,
		 EVP_PKEY *priv);

/* rp_sshrsa_unwrap_ctx is rp_sshrsa_unwrap through a decrypt context */
RP_MUST_CHECK enum rp_err
rp_sshrsa_unwrap_ctx(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		     struct rp_status *st, const struct rp_age_stanza *s,
		     EVP_PKEY_CTX *ctx);

/*
 * rp_sshrsa_oaep_decode does the OAEP decoding of a raw RSA decryption
 * result `em` (k bytes, k = modulus length; left-padded with zeros when
 * shorter), for keystores that only offer raw RSA (SoftHSM2). Same
 * results as rp_sshrsa_unwrap.
 */
RP_MUST_CHECK enum rp_err
rp_sshrsa_oaep_decode(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		      struct rp_status *st, const uint8_t *em, size_t em_len,
		      size_t k);

#ifdef __cplusplus
}
#endif
#endif
