/*
 * RSA_padding_check_PKCS1_OAEP_mgf1 is deprecated in OpenSSL 3.0 but is
 * the only constant-time OAEP decoder it offers for a raw RSA result.
 */
#define OPENSSL_API_COMPAT 0x10101000L
#include "age_recip.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_ossl.h"

#define X25519_INFO	"age-encryption.org/v1/X25519"
#define SSHRSA_LABEL	"age-encryption.org/v1/ssh-rsa"
#define SHARE_B64_LEN	43
#define AEAD_TAG_LEN	16
#define X25519_BODY_LEN (RP_AGE_FILE_KEY_LEN + AEAD_TAG_LEN)
#define SSHRSA_MIN_BITS 2048
#define SSHRSA_MAX_MOD	1024 /* bytes of modulus we encode: 8192 bits */

static const uint8_t zero_nonce[12];

/* set_str copies a NUL-terminated literal into a fixed field */
static void set_str(char *out, size_t out_cap, const char *s)
{
	const size_t n = strlen(s);

	if (n >= out_cap) {
		RP_BUG("string does not fit its field");
	}
	memcpy(out, s, n + 1);
}

enum rp_err rp_recip_stanza_add(struct rp_buf *out,
				const struct rp_recip_stanza *rs,
				size_t *out_off, size_t *out_len)
{
	const char *args[2] = { rs->type, rs->arg };

	if (!memchr(rs->type, '\0', sizeof(rs->type)) ||
	    !memchr(rs->arg, '\0', sizeof(rs->arg)) ||
	    rs->body_len > sizeof(rs->body)) {
		return RP_ERR_USAGE;
	}
	return rp_age_header_add_stanza(out, args, 2, rs->body, rs->body_len,
					out_off, out_len);
}

/* x25519_wrap_key derives the stanza key: HKDF(ss, share || recipient) */
static enum rp_err
x25519_wrap_key(uint8_t out[RP_ATLEAST(32)], struct rp_status *st,
		const uint8_t ss[RP_ATLEAST(RP_X25519_LEN)],
		const uint8_t share[RP_ATLEAST(RP_X25519_LEN)],
		const uint8_t recip[RP_ATLEAST(RP_X25519_LEN)])
{
	uint8_t salt[2 * RP_X25519_LEN];

	memcpy(salt, share, RP_X25519_LEN);
	memcpy(salt + RP_X25519_LEN, recip, RP_X25519_LEN);
	return rp_hkdf_sha256(out, 32, st, ss, RP_X25519_LEN, salt,
			      sizeof(salt), X25519_INFO);
}

static bool is_all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++) {
		/* the callers pass filled buffers */
		acc |= p[i]; /* NOLINT(clang-analyzer-core.uninitialized.Assign) */
	}
	return !acc;
}

/*
 * x25519_derive_pkey computes X25519(priv, peer): one scalar
 * multiplication. An all-zero result (a low-order peer) is RP_ERR_FORMAT,
 * as age makes it a header failure.
 */
static enum rp_err
x25519_derive_pkey(uint8_t out[RP_ATLEAST(RP_X25519_LEN)], struct rp_status *st,
		   EVP_PKEY *priv, const uint8_t peer[RP_ATLEAST(RP_X25519_LEN)])
{
	EVP_PKEY *pub = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	size_t out_len = RP_X25519_LEN;
	enum rp_err err = RP_OK;

	rp_ossl_nomem_clear();
	pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer,
					  RP_X25519_LEN);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	if (!pub || !ctx || EVP_PKEY_derive_init(ctx) <= 0) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "cannot set up x25519");
		goto out;
	}
	/* OpenSSL refuses a low-order peer here or in derive */
	if (EVP_PKEY_derive_set_peer(ctx, pub) <= 0 ||
	    EVP_PKEY_derive(ctx, out, &out_len) <= 0 ||
	    out_len != RP_X25519_LEN || is_all_zero(out, RP_X25519_LEN)) {
		if (rp_ossl_is_nomem()) {
			/* set_peer allocates: not the point's fault */
			err = rp_status_ossl(st, RP_ERR_NOMEM, "x25519");
		} else {
			ERR_clear_error();
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "x25519 shared secret is all zero "
					     "(low-order point)");
		}
	}
out:
	if (err) {
		OPENSSL_cleanse(out, RP_X25519_LEN);
	}
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pub);
	return err;
}

EVP_PKEY *rp_x25519_pkey(struct rp_status *st,
			 const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL,
						   secret, RP_X25519_LEN);

	if (!k) {
		rp_status_ossl(st, RP_ERR_CRYPTO, "x25519 key");
	}
	return k;
}

/* x25519_own: the public key `priv` holds (computed when it was made) */
static enum rp_err x25519_own(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
			      struct rp_status *st, EVP_PKEY *priv)
{
	size_t len = RP_X25519_LEN;

	if (!EVP_PKEY_get_raw_public_key(priv, out, &len) ||
	    len != RP_X25519_LEN) {
		return rp_status_ossl(st, RP_ERR_CRYPTO,
				      "cannot read an x25519 public key");
	}
	return RP_OK;
}

enum rp_err rp_x25519_public(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
			     struct rp_status *st,
			     const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)])
{
	EVP_PKEY *priv = rp_x25519_pkey(st, secret);
	enum rp_err err = priv ? x25519_own(out, st, priv) : st->err;

	EVP_PKEY_free(priv);
	return err;
}

/* aead_seal encrypts the file key under `key` with the zero nonce */
static enum rp_err aead_seal(uint8_t out[RP_ATLEAST(X25519_BODY_LEN)],
			     struct rp_status *st,
			     const uint8_t key[RP_ATLEAST(32)],
			     const uint8_t fk[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, fin = 0;
	enum rp_err err = RP_OK;

	ctx = EVP_CIPHER_CTX_new();
	if (!ctx ||
	    !EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key,
				zero_nonce) ||
	    !EVP_EncryptUpdate(ctx, out, &n, fk, RP_AGE_FILE_KEY_LEN) ||
	    n != RP_AGE_FILE_KEY_LEN ||
	    !EVP_EncryptFinal_ex(ctx, out + n, &fin) || fin != 0 ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_LEN,
				 out + RP_AGE_FILE_KEY_LEN)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "chacha20-poly1305 seal failed");
	}
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

/*
 * aead_open decrypts an X25519 body; a tag that does not verify means the
 * stanza is not for this identity (RP_ERR_NOKEY).
 */
static enum rp_err aead_open(uint8_t out[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
			     struct rp_status *st,
			     const uint8_t key[RP_ATLEAST(32)],
			     const uint8_t body[RP_ATLEAST(X25519_BODY_LEN)])
{
	uint8_t tag[AEAD_TAG_LEN];
	uint8_t fk[RP_AGE_FILE_KEY_LEN];
	EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, fin = 0;
	enum rp_err err = RP_OK;

	memcpy(tag, body + RP_AGE_FILE_KEY_LEN, sizeof(tag));
	rp_ossl_nomem_clear();
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx ||
	    !EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key,
				zero_nonce) ||
	    !EVP_DecryptUpdate(ctx, fk, &n, body, RP_AGE_FILE_KEY_LEN) ||
	    n != RP_AGE_FILE_KEY_LEN ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_LEN,
				 tag)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "chacha20-poly1305 open failed");
		goto out;
	}
	if (EVP_DecryptFinal_ex(ctx, fk + n, &fin) <= 0) {
		if (rp_ossl_is_nomem()) {
			err = rp_status_ossl(st, RP_ERR_NOMEM,
					     "chacha20-poly1305 open");
			goto out;
		}
		ERR_clear_error();
		err = rp_status_fail(st, RP_ERR_NOKEY,
				     "x25519 stanza is not for this identity");
		goto out;
	}
	memcpy(out, fk, sizeof(fk));
out:
	OPENSSL_cleanse(fk, sizeof(fk));
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

enum rp_err
rp_x25519_wrap(struct rp_recip_stanza *out, struct rp_status *st,
	       const uint8_t recipient[RP_ATLEAST(RP_X25519_LEN)],
	       const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	uint8_t share[RP_X25519_LEN];
	uint8_t ss[RP_X25519_LEN];
	uint8_t key[32];
	EVP_PKEY *pkey = NULL;
	size_t n;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	/* two scalar multiplications: the ephemeral share, the secret */
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	if (!pkey) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "cannot make x25519 ephemeral key");
		goto out;
	}
	err = x25519_own(share, st, pkey);
	if (err) {
		goto out;
	}
	err = x25519_derive_pkey(ss, st, pkey, recipient);
	if (err) {
		rp_status_prefix(st, "x25519 recipient");
		goto out;
	}
	err = x25519_wrap_key(key, st, ss, share, recipient);
	if (err) {
		goto out;
	}
	err = aead_seal(out->body, st, key, file_key);
	if (err) {
		goto out;
	}
	out->body_len = X25519_BODY_LEN;
	set_str(out->type, sizeof(out->type), "X25519");
	err = rp_b64_encode(out->arg, sizeof(out->arg), &n, share,
			    sizeof(share));
out:
	if (err) {
		OPENSSL_cleanse(out, sizeof(*out));
	}
	OPENSSL_cleanse(ss, sizeof(ss));
	OPENSSL_cleanse(key, sizeof(key));
	EVP_PKEY_free(pkey);
	return err;
}

enum rp_err rp_x25519_check_stanza(uint8_t out_share[RP_ATLEAST(RP_X25519_LEN)],
				   struct rp_status *st,
				   const struct rp_age_stanza *s)
{
	size_t n;

	if (!rp_age_stanza_is(s, "X25519")) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "stanza is not an X25519 stanza");
	}
	if (s->num_args != 2) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "X25519 stanza has %zu arguments after "
				      "the type, not 1",
				      s->num_args - 1);
	}
	if (s->args[1].len != SHARE_B64_LEN ||
	    rp_b64_decode(out_share, RP_X25519_LEN, &n,
			  (const char *)s->args[1].p, s->args[1].len) ||
	    n != RP_X25519_LEN) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "X25519 share is not 32 bytes of "
				      "canonical base64");
	}
	if (s->body.len != X25519_BODY_LEN) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "X25519 body is %zu bytes, not %d",
				      s->body.len, X25519_BODY_LEN);
	}
	return RP_OK;
}

enum rp_err
rp_x25519_unwrap_ss(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		    struct rp_status *st, const struct rp_age_stanza *s,
		    const uint8_t ss[RP_ATLEAST(RP_X25519_LEN)],
		    const uint8_t own[RP_ATLEAST(RP_X25519_LEN)])
{
	uint8_t share[RP_X25519_LEN];
	uint8_t key[32];
	enum rp_err err;

	err = rp_x25519_check_stanza(share, st, s);
	if (err) {
		goto out;
	}
	if (is_all_zero(ss, RP_X25519_LEN)) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "x25519 shared secret is all zero "
				     "(low-order point)");
		goto out;
	}
	err = x25519_wrap_key(key, st, ss, share, own);
	if (err) {
		goto out;
	}
	err = aead_open(out_file_key, st, key, s->body.p);
out:
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

enum rp_err
rp_x25519_unwrap_pkey(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		      struct rp_status *st, const struct rp_age_stanza *s,
		      EVP_PKEY *priv)
{
	uint8_t share[RP_X25519_LEN];
	uint8_t own[RP_X25519_LEN];
	uint8_t ss[RP_X25519_LEN];
	enum rp_err err;

	err = rp_x25519_check_stanza(share, st, s);
	if (!err) {
		err = x25519_own(own, st, priv);
	}
	if (!err) {
		err = x25519_derive_pkey(ss, st, priv, share);
	}
	if (!err) {
		err = rp_x25519_unwrap_ss(out_file_key, st, s, ss, own);
	}
	OPENSSL_cleanse(ss, sizeof(ss));
	return err;
}

enum rp_err
rp_x25519_unwrap(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		 struct rp_status *st, const struct rp_age_stanza *s,
		 const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)])
{
	EVP_PKEY *priv = rp_x25519_pkey(st, secret);
	enum rp_err err = priv ? rp_x25519_unwrap_pkey(out_file_key, st, s,
						       priv)
			       : st->err;

	EVP_PKEY_free(priv);
	return err;
}

/* Bech32 (BIP-173), for the age key strings */

static const char bech32_charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

#define BECH32_CHECKSUM_LEN 6
#define KEY_DATA5_LEN	    52 /* 32 bytes in 5-bit groups */

static uint32_t bech32_step(uint32_t chk)
{
	static const uint32_t gen[5] = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa,
					 0x3d4233dd, 0x2a1462b3 };
	const uint32_t top = chk >> 25;

	chk = (chk & 0x1ffffff) << 5;
	for (int i = 0; i < 5; i++) {
		if ((top >> i) & 1) {
			chk ^= gen[i];
		}
	}
	return chk;
}

/* bech32_polymod runs the checksum over a lower-case hrp and 5-bit data */
static uint32_t bech32_polymod(const char *hrp, size_t hrp_len,
			       const uint8_t *data, size_t data_len)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < hrp_len; i++) {
		chk = bech32_step(chk) ^ ((uint8_t)hrp[i] >> 5);
	}
	chk = bech32_step(chk);
	for (size_t i = 0; i < hrp_len; i++) {
		chk = bech32_step(chk) ^ ((uint8_t)hrp[i] & 0x1f);
	}
	for (size_t i = 0; i < data_len; i++) {
		chk = bech32_step(chk) ^ data[i];
	}
	return chk;
}

static char to_lower(char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

static char to_upper(char c)
{
	return (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
}

static enum rp_err bech32_encode(char out[RP_ATLEAST(RP_AGE_KEY_STR_MAX)],
				 const char *hrp,
				 const uint8_t key[RP_ATLEAST(RP_X25519_LEN)],
				 bool is_upper)
{
	uint8_t data[KEY_DATA5_LEN + BECH32_CHECKSUM_LEN];
	char lhrp[32];
	const size_t hrp_len = strlen(hrp);
	size_t n = 0, pos = 0;
	uint32_t acc = 0, chk;
	int bits = 0;

	if (hrp_len >= sizeof(lhrp) ||
	    hrp_len + 1 + sizeof(data) + 1 > RP_AGE_KEY_STR_MAX) {
		return RP_ERR_USAGE;
	}
	for (size_t i = 0; i < hrp_len; i++) {
		lhrp[i] = to_lower(hrp[i]);
	}
	for (size_t i = 0; i < RP_X25519_LEN; i++) {
		acc = acc << 8 | key[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			data[n++] = (uint8_t)((acc >> bits) & 0x1f);
		}
	}
	if (bits) {
		data[n++] = (uint8_t)((acc << (5 - bits)) & 0x1f);
	}
	memset(data + n, 0, BECH32_CHECKSUM_LEN);
	chk = bech32_polymod(lhrp, hrp_len, data, n + BECH32_CHECKSUM_LEN) ^ 1;
	for (size_t i = 0; i < BECH32_CHECKSUM_LEN; i++) {
		data[n + i] = (uint8_t)((chk >> (5 * (5 - i))) & 0x1f);
	}
	for (size_t i = 0; i < hrp_len; i++) {
		out[pos++] = lhrp[i];
	}
	out[pos++] = '1';
	for (size_t i = 0; i < sizeof(data); i++) {
		out[pos++] = bech32_charset[data[i]];
	}
	out[pos] = '\0';
	if (is_upper) {
		for (size_t i = 0; i < pos; i++) {
			out[i] = to_upper(out[i]);
		}
	}
	OPENSSL_cleanse(data, sizeof(data));
	return RP_OK;
}

static int bech32_value(char c)
{
	const char *p = memchr(bech32_charset, c, sizeof(bech32_charset) - 1);

	return p ? (int)(p - bech32_charset) : -1;
}

/*
 * bech32_decode parses `in` as Bech32 with the given hrp (compared without
 * case) carrying exactly 32 bytes. `what` names the key kind in messages,
 * which never quote the input: it may be a secret key.
 */
static enum rp_err bech32_decode(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
				 struct rp_status *st, const char *in,
				 size_t in_len, const char *hrp,
				 const char *what)
{
	uint8_t data[KEY_DATA5_LEN + BECH32_CHECKSUM_LEN];
	char lhrp[32];
	const size_t hrp_len = strlen(hrp);
	bool has_lower = false, has_upper = false;
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;
	enum rp_err err = RP_OK;

	if (in_len != hrp_len + 1 + sizeof(data) || hrp_len >= sizeof(lhrp)) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "%s is %zu characters, not %zu", what,
				     in_len, hrp_len + 1 + sizeof(data));
		goto out;
	}
	for (size_t i = 0; i < in_len; i++) {
		has_lower |= in[i] >= 'a' && in[i] <= 'z';
		has_upper |= in[i] >= 'A' && in[i] <= 'Z';
	}
	if (has_lower && has_upper) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "%s mixes upper and lower case", what);
		goto out;
	}
	for (size_t i = 0; i < hrp_len; i++) {
		lhrp[i] = to_lower(in[i]);
	}
	if (in[hrp_len] != '1') {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "%s has no bech32 separator", what);
		goto out;
	}
	for (size_t i = 0; i < hrp_len; i++) {
		if (lhrp[i] != to_lower(hrp[i])) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "%s does not start with '%s1'",
					     what, hrp);
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof(data); i++) {
		const int v = bech32_value(to_lower(in[hrp_len + 1 + i]));

		if (v < 0) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "%s has a character outside the "
					     "bech32 alphabet",
					     what);
			goto out;
		}
		data[i] = (uint8_t)v;
	}
	if (bech32_polymod(lhrp, hrp_len, data, sizeof(data)) != 1) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "%s has a bad bech32 checksum", what);
		goto out;
	}
	for (size_t i = 0; i < KEY_DATA5_LEN; i++) {
		acc = acc << 5 | data[i];
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* 52 groups carry 260 bits: the 4 left over must be zero padding */
	if (n != RP_X25519_LEN || (acc & ((1u << bits) - 1))) {
		OPENSSL_cleanse(out, RP_X25519_LEN);
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "%s has nonzero bech32 padding", what);
	}
out:
	OPENSSL_cleanse(data, sizeof(data));
	return err;
}

enum rp_err
rp_age_identity_encode(char out[RP_ATLEAST(RP_AGE_KEY_STR_MAX)],
		       const uint8_t secret[RP_ATLEAST(RP_X25519_LEN)])
{
	return bech32_encode(out, RP_AGE_SECRET_KEY_HRP, secret, true);
}

enum rp_err
rp_age_recipient_encode(char out[RP_ATLEAST(RP_AGE_KEY_STR_MAX)],
			const uint8_t pub[RP_ATLEAST(RP_X25519_LEN)])
{
	return bech32_encode(out, RP_AGE_PUBLIC_KEY_HRP, pub, false);
}

enum rp_err rp_age_identity_decode(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
				   struct rp_status *st, const char *in,
				   size_t in_len)
{
	return bech32_decode(out, st, in, in_len, RP_AGE_SECRET_KEY_HRP,
			     "age identity");
}

enum rp_err rp_age_recipient_decode(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
				    struct rp_status *st, const char *in,
				    size_t in_len)
{
	return bech32_decode(out, st, in, in_len, RP_AGE_PUBLIC_KEY_HRP,
			     "age recipient");
}

/* ssh-rsa */

/*
 * is_rsa: EVP_PKEY_is_a(k, "RSA") allocates in OpenSSL 3.0 (a name
 * lookup) and then says "not RSA" when memory runs out; the key's base id
 * says the same without allocating
 */
static bool is_rsa(const EVP_PKEY *k)
{
	return EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;
}

static enum rp_err add_ssh_string(struct rp_buf *b, const uint8_t *p,
				  size_t len)
{
	enum rp_err err;

	if (len > UINT32_MAX) {
		return RP_ERR_USAGE;
	}
	err = rp_buf_add_u32be(b, (uint32_t)len);
	if (err) {
		return err;
	}
	return rp_buf_add(b, p, len);
}

/* add_ssh_mpint appends an RFC 4251 mpint: minimal, 0x00 if top bit set */
static enum rp_err add_ssh_mpint(struct rp_buf *b, const BIGNUM *bn)
{
	uint8_t tmp[1 + SSHRSA_MAX_MOD];
	const int n = BN_num_bytes(bn);

	if (BN_is_negative(bn) || n < 0 || (size_t)n > SSHRSA_MAX_MOD) {
		return RP_ERR_USAGE;
	}
	tmp[0] = 0;
	if (BN_bn2bin(bn, tmp + 1) != n) {
		return RP_ERR_CRYPTO;
	}
	if (n && (tmp[1] & 0x80)) {
		return add_ssh_string(b, tmp, (size_t)n + 1);
	}
	return add_ssh_string(b, tmp + 1, (size_t)n);
}

enum rp_err rp_sshrsa_tag(char out[RP_ATLEAST(8)], struct rp_status *st,
			  const EVP_PKEY *pub)
{
	static const char type[] = "ssh-rsa";
	struct rp_buf blob = { 0 };
	BIGNUM *e = NULL, *n = NULL;
	uint8_t md[32];
	unsigned int md_len = 0;
	size_t len;
	enum rp_err err;

	if (!is_rsa(pub)) {
		err = rp_status_fail(st, RP_ERR_USAGE, "key is not an rsa key");
		goto out;
	}
	if (!EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &e) ||
	    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "cannot read rsa public key");
		goto out;
	}
	err = add_ssh_string(&blob, (const uint8_t *)type, sizeof(type) - 1);
	if (!err) {
		err = add_ssh_mpint(&blob, e);
	}
	if (!err) {
		err = add_ssh_mpint(&blob, n);
	}
	if (err) {
		err = rp_status_fail(st, err,
				     "cannot encode ssh-rsa public key");
		goto out;
	}
	if (!EVP_Digest(blob.p, blob.len, md, &md_len, rp_sha256(), NULL)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "sha-256 failed");
		goto out;
	}
	err = rp_b64_encode(out, 8, &len, md, 4);
out:
	rp_buf_fini(&blob);
	BN_free(e);
	BN_free(n);
	return err;
}

/* set_oaep sets age's OAEP parameters on an encrypt or decrypt context */
static enum rp_err set_oaep(EVP_PKEY_CTX *ctx, struct rp_status *st)
{
	void *label = NULL;

	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, rp_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, rp_sha256()) <= 0) {
		return rp_status_ossl(st, RP_ERR_CRYPTO,
				      "cannot set rsa-oaep parameters");
	}
	label = OPENSSL_memdup(SSHRSA_LABEL, sizeof(SSHRSA_LABEL) - 1);
	if (!label) {
		return rp_status_fail(st, RP_ERR_NOMEM,
				      "cannot set rsa-oaep label");
	}
	/* takes ownership of label only on success */
	if (EVP_PKEY_CTX_set0_rsa_oaep_label(
		    ctx, label, (int)sizeof(SSHRSA_LABEL) - 1) <= 0) {
		OPENSSL_free(label);
		return rp_status_ossl(st, RP_ERR_CRYPTO,
				      "cannot set rsa-oaep label");
	}
	return RP_OK;
}

EVP_PKEY_CTX *rp_sshrsa_ctx_new(struct rp_status *st, EVP_PKEY *key,
				int is_decrypt)
{
	EVP_PKEY_CTX *ctx = NULL;
	int bits;

	if (!is_rsa(key)) {
		rp_status_fail(st, RP_ERR_USAGE, "key is not an rsa key");
		return NULL;
	}
	/* OpenSSL 3.0 may allocate to tell the size: 0 is that failing */
	bits = EVP_PKEY_get_bits(key);
	if (bits <= 0) {
		rp_status_ossl(st, RP_ERR_CRYPTO, "cannot read the rsa key");
		return NULL;
	}
	if (bits < SSHRSA_MIN_BITS ||
	    (size_t)EVP_PKEY_get_size(key) > RP_SSHRSA_MAX_BODY) {
		rp_status_fail(st, RP_ERR_USAGE,
			       "rsa key has %d bits; ssh-rsa needs 2048 to "
			       "4096",
			       bits);
		return NULL;
	}
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	if (!ctx || (is_decrypt ? EVP_PKEY_decrypt_init(ctx)
				: EVP_PKEY_encrypt_init(ctx)) <= 0) {
		rp_status_ossl(st, RP_ERR_CRYPTO, "cannot set up rsa-oaep");
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	if (set_oaep(ctx, st)) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

enum rp_err
rp_sshrsa_wrap_ctx(struct rp_recip_stanza *out, struct rp_status *st,
		   EVP_PKEY_CTX *ctx, const char *tag,
		   const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	size_t out_len = sizeof(out->body);
	enum rp_err err = RP_OK;

	memset(out, 0, sizeof(*out));
	if (tag && strlen(tag) < sizeof(out->arg)) {
		set_str(out->arg, sizeof(out->arg), tag);
	} else {
		err = rp_sshrsa_tag(out->arg, st, EVP_PKEY_CTX_get0_pkey(ctx));
		if (err) {
			goto out;
		}
	}
	if (EVP_PKEY_encrypt(ctx, out->body, &out_len, file_key,
			     RP_AGE_FILE_KEY_LEN) <= 0) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "rsa-oaep failed");
		goto out;
	}
	out->body_len = out_len;
	set_str(out->type, sizeof(out->type), "ssh-rsa");
out:
	if (err) {
		memset(out, 0, sizeof(*out));
	}
	return err;
}

enum rp_err
rp_sshrsa_wrap(struct rp_recip_stanza *out, struct rp_status *st,
	       const EVP_PKEY *pub, const char *tag,
	       const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	/* encryption does not change the key: OpenSSL just wants non-const */
	EVP_PKEY_CTX *ctx = rp_sshrsa_ctx_new(st, (EVP_PKEY *)pub, 0);
	enum rp_err err;

	if (!ctx) {
		memset(out, 0, sizeof(*out));
		return st->err;
	}
	err = rp_sshrsa_wrap_ctx(out, st, ctx, tag, file_key);
	EVP_PKEY_CTX_free(ctx);
	return err;
}

enum rp_err rp_sshrsa_check_stanza(struct rp_status *st,
				   const struct rp_age_stanza *s)
{
	if (!rp_age_stanza_is(s, "ssh-rsa")) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "stanza is not an ssh-rsa stanza");
	}
	if (s->num_args != 2) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "ssh-rsa stanza has %zu arguments after "
				      "the type, not 1",
				      s->num_args - 1);
	}
	if (s->body.len != 256 && s->body.len != 384 && s->body.len != 512) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "ssh-rsa body is %zu bytes, not 256, "
				      "384 or 512",
				      s->body.len);
	}
	return RP_OK;
}

/*
 * sshrsa_fail: one outcome for every decryption failure (no padding
 * oracle), except running out of memory, which OAEP decoding meets before
 * it looks at the padding: that one is no sign of a bad stanza
 */
static enum rp_err sshrsa_fail(struct rp_status *st)
{
	if (rp_ossl_is_nomem()) {
		return rp_status_ossl(st, RP_ERR_NOMEM, "rsa-oaep");
	}
	ERR_clear_error();
	return rp_status_fail(st, RP_ERR_AUTH, "cannot unwrap ssh-rsa stanza");
}

enum rp_err
rp_sshrsa_unwrap_ctx(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		     struct rp_status *st, const struct rp_age_stanza *s,
		     EVP_PKEY_CTX *ctx)
{
	uint8_t buf[RP_SSHRSA_MAX_BODY];
	size_t len = sizeof(buf);
	enum rp_err err;

	err = rp_sshrsa_check_stanza(st, s);
	if (err) {
		goto out;
	}
	rp_ossl_nomem_clear();
	/* one outcome for every failure: no padding oracle */
	if (EVP_PKEY_decrypt(ctx, buf, &len, s->body.p, s->body.len) <= 0 ||
	    len != RP_AGE_FILE_KEY_LEN) {
		err = sshrsa_fail(st);
		goto out;
	}
	memcpy(out_file_key, buf, RP_AGE_FILE_KEY_LEN);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return err;
}

enum rp_err
rp_sshrsa_unwrap(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		 struct rp_status *st, const struct rp_age_stanza *s,
		 EVP_PKEY *priv)
{
	EVP_PKEY_CTX *ctx = NULL;
	enum rp_err err;

	err = rp_sshrsa_check_stanza(st, s);
	if (err) {
		return err;
	}
	rp_ossl_nomem_clear();
	ctx = rp_sshrsa_ctx_new(st, priv, 1);
	if (!ctx) {
		return st->err;
	}
	err = rp_sshrsa_unwrap_ctx(out_file_key, st, s, ctx);
	EVP_PKEY_CTX_free(ctx);
	return err;
}

enum rp_err
rp_sshrsa_oaep_decode(uint8_t out_file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		      struct rp_status *st, const uint8_t *em, size_t em_len,
		      size_t k)
{
	uint8_t buf[RP_SSHRSA_MAX_BODY];
	int r;
	enum rp_err err = RP_OK;

	if (k > sizeof(buf) || k < 2 * 32 + 2 || !em_len || em_len > k) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "bad rsa-oaep decode lengths");
	}
	rp_ossl_nomem_clear();
	r = RSA_padding_check_PKCS1_OAEP_mgf1(
		buf, (int)sizeof(buf), em, (int)em_len, (int)k,
		(const unsigned char *)SSHRSA_LABEL,
		(int)sizeof(SSHRSA_LABEL) - 1, rp_sha256(), rp_sha256());
	if (r != RP_AGE_FILE_KEY_LEN) {
		err = sshrsa_fail(st);
		goto out;
	}
	memcpy(out_file_key, buf, RP_AGE_FILE_KEY_LEN);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return err;
}
