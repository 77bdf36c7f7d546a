/*
 * fuzz_license: rp_license_decode over arbitrary bytes (an rp-license
 * stanza body). When the decode succeeds:
 *   - the license re-encodes to exactly the input bytes, and its TBS to
 *     exactly the first tbs_len of them (the TLV form is canonical);
 *   - the field values are in range: version 1, a known encoding and
 *     algorithm, 1 <= batch size <= 2^20, leaf index below it, an audit
 *     path of exactly rp_merkle_path_len hashes, a 1..512-byte signature,
 *     template and owner within their bounds;
 *   - the signature does not verify under a key that signed nothing (an
 *     Ed25519 key from a fixed seed, or an RSA key made at start-up, as
 *     the algorithm asks), so the path walk runs and nothing forges.
 * When it fails: RP_ERR_FORMAT with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "fuzz.h"
#include "license.h"
#include "merkle.h"
#include "rp_buf.h"


/* the Ed25519 public key of the all-0x42 seed; it never signed a license */
static EVP_PKEY *ed25519_pub(void)
{
	static EVP_PKEY *pub;
	static const uint8_t seed[32] = {
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	};

	if (!pub) {
		EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(
			EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
		uint8_t raw[32];
		size_t n = sizeof(raw);

		CHECK(priv != NULL);
		CHECK(EVP_PKEY_get_raw_public_key(priv, raw, &n) == 1);
		pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
						  n);
		CHECK(pub != NULL);
		EVP_PKEY_free(priv);
	}
	return pub;
}

/* an RSA key of this process; it never signed a license either */
static EVP_PKEY *rsa_pub(void)
{
	static EVP_PKEY *pub;

	if (!pub) {
		pub = EVP_RSA_gen(2048);
		CHECK(pub != NULL);
	}
	return pub;
}

static void check_values(const struct rp_license *lic)
{
	const struct rp_sigblock *sb = &lic->sig;

	CHECK(lic->version == RP_LICENSE_VERSION);
	CHECK(lic->encoding == RP_ENC_NONE || lic->encoding == RP_ENC_ZSTD);
	CHECK(memchr(lic->template_id, '\0', sizeof(lic->template_id)));
	CHECK(memchr(lic->owner, '\0', sizeof(lic->owner)));
	CHECK(sb->alg == RP_SIG_RSA_PSS_SHA256 || sb->alg == RP_SIG_ED25519);
	CHECK(sb->batch_size >= 1 && sb->batch_size <= RP_MERKLE_MAX_LEAVES);
	CHECK(sb->leaf_index < sb->batch_size);
	CHECK(sb->num_path <= RP_MERKLE_MAX_DEPTH);
	CHECK(sb->num_path ==
	      rp_merkle_path_len(sb->leaf_index, sb->batch_size));
	CHECK(sb->sig_len >= 1 && sb->sig_len <= RP_SIG_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_license lic;
	struct rp_status st = { 0 };
	struct rp_buf b = { 0 };
	size_t tbs_len = 0;
	enum rp_err err;

	err = rp_license_decode(&lic, &st, data, size, &tbs_len);
	if (err) {
		CHECK(err == RP_ERR_FORMAT);
		CHECK(st.err == err && st.msg[0] != '\0');
		return 0;
	}
	CHECK(size <= RP_LICENSE_MAX);
	CHECK(tbs_len > 0 && tbs_len < size);
	check_values(&lic);

	/* canonical: decode then encode is the identity */
	CHECK(rp_license_encode(&b, &st, &lic) == RP_OK);
	CHECK(b.len == size && !memcmp(b.p, data, size));
	rp_buf_reset(&b);
	CHECK(rp_license_encode_tbs(&b, &st, &lic) == RP_OK);
	CHECK(b.len == tbs_len && !memcmp(b.p, data, tbs_len));
	rp_buf_fini(&b);

	/* the leaf, the path walk and the check all run; nothing forges */
	rp_status_clear(&st);
	err = rp_license_sig_verify(
		&lic, &st, data, tbs_len,
		lic.sig.alg == RP_SIG_ED25519 ? ed25519_pub() : rsa_pub());
	CHECK(err == RP_ERR_AUTH);
	return 0;
}
