/*
 * fuzz_key_import: the parsers of a `key import` file (BYOK), as the
 * keystores' import runs them: rp_key_find_identity for an age identity
 * line, then rp_age_identity_decode on it, or, when there is none,
 * rp_key_parse_rsa_pem (OpenSSL's PEM reader and our size check).
 *   - a found identity line lies inside the input, starts at a line start
 *     with "AGE-SECRET-KEY-" and more, holds no LF, drops only one CR at
 *     its end, and no earlier line qualifies;
 *   - a decoded identity encodes back to the line (ignoring case);
 *   - a parsed RSA key is RSA with 2048, 3072 or 4096 bits, matching the
 *     algorithm returned; failures are FORMAT or USAGE with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "fuzz.h"
#include "age_recip.h"
#include "keyring.h"
#include "keystore.h"


#define PREFIX "AGE-SECRET-KEY-"

/* is_identity_line: does the line at [i, e) qualify */
static int is_identity_line(const uint8_t *data, size_t i, size_t e)
{
	return e - i > 15 && !memcmp(data + i, PREFIX, 15);
}

static void check_identity(const uint8_t *data, size_t size, size_t off,
			   size_t n)
{
	struct rp_status st = { 0 };
	uint8_t secret[RP_X25519_LEN];
	char enc[RP_AGE_KEY_STR_MAX];
	size_t e = off + n;

	CHECK(off <= size && n <= size - off && n >= 15);
	CHECK(!memcmp(data + off, PREFIX, 15));
	CHECK(!memchr(data + off, '\n', n));
	CHECK(off == 0 || data[off - 1] == '\n');
	CHECK(e == size || data[e] == '\n' ||
	      (data[e] == '\r' && (e + 1 == size || data[e + 1] == '\n')));
	for (size_t i = 0; i < off;) {
		size_t j = i;

		while (j < off && data[j] != '\n') {
			j++;
		}
		CHECK(!is_identity_line(data, i, j));
		i = j + 1;
	}
	if (rp_age_identity_decode(secret, &st, (const char *)data + off, n)) {
		CHECK(st.err == RP_ERR_FORMAT && st.msg[0]);
		return;
	}
	CHECK(rp_age_identity_encode(enc, secret) == RP_OK);
	CHECK(strlen(enc) == n &&
	      !strncasecmp(enc, (const char *)data + off, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_status st = { 0 };
	EVP_PKEY *pk = NULL;
	uint8_t alg = 0;
	size_t off = 0, n = 0;
	enum rp_err err;

	if (rp_key_find_identity(data, size, &off, &n)) {
		check_identity(data, size, off, n);
		return 0;
	}
	for (size_t i = 0; i < size;) {
		size_t j = i;

		while (j < size && data[j] != '\n') {
			j++;
		}
		CHECK(!is_identity_line(data, i, j));
		i = j + 1;
	}
	err = rp_key_parse_rsa_pem(&pk, &alg, &st, data, size);
	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_USAGE);
		CHECK(st.err == err && st.msg[0] && !pk);
		return 0;
	}
	CHECK(pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA);
	CHECK(alg >= RP_ALG_RSA2048 && alg <= RP_ALG_RSA4096);
	CHECK(EVP_PKEY_get_bits(pk) == rp_key_alg_rsa_bits(alg));
	EVP_PKEY_free(pk);
	return 0;
}
