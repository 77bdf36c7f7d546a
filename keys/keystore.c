#include "keystore.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rp_ossl.h"

void rp_keystore_free(struct rp_keystore *ks)
{
	if (ks) {
		ks->ops->free(ks);
	}
}

enum rp_err rp_key_pubkey(EVP_PKEY **out, struct rp_status *st,
			  const struct rp_key_info *ki)
{
	const unsigned char *p = ki->pub;

	rp_ossl_nomem_clear(); /* a key that fails to decode for memory */
	*out = d2i_PUBKEY(NULL, &p, (long)ki->pub_len);
	if (!*out || p != ki->pub + ki->pub_len) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return rp_status_ossl(st, RP_ERR_FORMAT,
				      "keyring: bad public key");
	}
	return RP_OK;
}

enum rp_err rp_key_sign_pubkey(EVP_PKEY **out, struct rp_status *st,
			       const struct rp_key_info *ki)
{
	if (ki->alg != RP_ALG_X25519) {
		return rp_key_pubkey(out, st, ki);
	}
	rp_ossl_nomem_clear();
	*out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, ki->sign_pub,
					   sizeof(ki->sign_pub));
	if (!*out) {
		return rp_status_ossl(st, RP_ERR_FORMAT,
				      "keyring: bad signing key");
	}
	return RP_OK;
}

enum rp_err rp_key_fill_public(struct rp_key_info *ki, struct rp_status *st,
			       EVP_PKEY *pub)
{
	unsigned char *der = NULL;
	const int n = i2d_PUBKEY(pub, &der);
	unsigned int md_len = 0;
	enum rp_err err = RP_OK;

	if (n <= 0) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "encode public key");
	}
	if ((size_t)n > sizeof(ki->pub)) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "public key too large (%d bytes)", n);
		goto out;
	}
	memcpy(ki->pub, der, (size_t)n);
	ki->pub_len = (size_t)n;
	if (!EVP_Digest(der, (size_t)n, ki->id, &md_len, EVP_sha256(), NULL)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "key id");
	}
out:
	OPENSSL_free(der);
	return err;
}

enum rp_err rp_key_parse_rsa_pem(EVP_PKEY **out, uint8_t *out_alg,
				 struct rp_status *st, const uint8_t *data,
				 size_t len)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	EVP_PKEY *pk = NULL;
	int bits;

	*out = NULL;
	if (!bio) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	rp_ossl_nomem_clear();
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (!pk && rp_ossl_is_nomem()) {
		return rp_status_ossl(st, RP_ERR_NOMEM, "private key");
	}
	if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		ERR_clear_error();
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "not an unencrypted PEM RSA private key "
				      "nor an age X25519 identity");
	}
	bits = EVP_PKEY_get_bits(pk);
	*out_alg = 0;
	for (int a = RP_ALG_RSA2048; a <= RP_ALG_RSA4096; a++) {
		if (rp_key_alg_rsa_bits((uint8_t)a) == bits) {
			*out_alg = (uint8_t)a;
		}
	}
	if (!*out_alg) {
		EVP_PKEY_free(pk);
		return rp_status_fail(st, RP_ERR_USAGE,
				      "RSA-%d is not supported: use 2048, 3072 "
				      "or 4096 bits",
				      bits);
	}
	*out = pk;
	return RP_OK;
}

int rp_key_find_identity(const uint8_t *data, size_t len, size_t *off,
			 size_t *n)
{
	size_t i = 0;

	while (i < len) {
		size_t e = i;

		while (e < len && data[e] != '\n') {
			e++;
		}
		if (e - i > 15 && !memcmp(data + i, "AGE-SECRET-KEY-", 15)) {
			*off = i;
			*n = e - i;
			if (*n && data[i + *n - 1] == '\r') {
				(*n)--;
			}
			return 1;
		}
		i = e + 1;
	}
	return 0;
}
