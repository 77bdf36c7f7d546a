#include "shamir.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/*
 * gf_mul multiplies in GF(2^8) mod x^8 + x^4 + x^3 + x + 1 without
 * table lookups or branches on the data (constant time).
 */
static uint8_t gf_mul(uint8_t a, uint8_t b)
{
	uint8_t r = 0;

	for (int i = 0; i < 8; i++) {
		r ^= (uint8_t)(-(b & 1) & a);
		a = (uint8_t)((a << 1) ^ (-(a >> 7) & 0x1b));
		b >>= 1;
	}
	return r;
}

/* gf_inv returns a^254 = a^-1 (0 for 0) */
static uint8_t gf_inv(uint8_t a)
{
	uint8_t r = 1;

	for (int i = 0; i < 254; i++) {
		r = gf_mul(r, a);
	}
	return r;
}

enum rp_err rp_shamir_split(uint8_t *out, struct rp_status *st,
			    const uint8_t *secret, size_t len, unsigned n,
			    unsigned k)
{
	uint8_t coef[255];
	enum rp_err err = RP_OK;

	if (k < 2 || k > n || n > 255 || len > RP_SHAMIR_MAX_SECRET) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "shares: need 2 <= threshold <= shares "
				      "<= 255");
	}
	for (size_t b = 0; b < len; b++) {
		coef[0] = secret[b];
		if (RAND_priv_bytes(coef + 1, (int)(k - 1)) != 1) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "random");
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			const uint8_t x = (uint8_t)(i + 1);
			uint8_t y = 0;

			/* Horner: y = (...(c[k-1] x + c[k-2]) x + ...) */
			for (unsigned j = k; j-- > 0;) {
				y = (uint8_t)(gf_mul(y, x) ^ coef[j]);
			}
			out[i * len + b] = y;
		}
	}
	OPENSSL_cleanse(coef, sizeof(coef));
	return err;
}

enum rp_err rp_shamir_combine(uint8_t *out, struct rp_status *st,
			      const uint8_t *xs, const uint8_t *ys, size_t len,
			      unsigned k)
{
	uint8_t basis[255];

	if (k < 1 || k > 255) {
		return rp_status_fail(st, RP_ERR_USAGE, "shares: bad count");
	}
	for (unsigned i = 0; i < k; i++) {
		uint8_t num = 1, den = 1;

		if (!xs[i]) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "shares: share index 0");
		}
		for (unsigned j = 0; j < k; j++) {
			if (j == i) {
				continue;
			}
			if (xs[j] == xs[i]) {
				return rp_status_fail(st, RP_ERR_FORMAT,
						      "shares: the same share "
						      "was given twice");
			}
			/* l_i(0) = prod x_j / (x_j - x_i); minus is xor */
			num = gf_mul(num, xs[j]);
			den = gf_mul(den, (uint8_t)(xs[j] ^ xs[i]));
		}
		basis[i] = gf_mul(num, gf_inv(den));
	}
	for (size_t b = 0; b < len; b++) {
		uint8_t y = 0;

		for (unsigned i = 0; i < k; i++) {
			y ^= gf_mul(basis[i], ys[i * len + b]);
		}
		out[b] = y;
	}
	OPENSSL_cleanse(basis, sizeof(basis));
	return RP_OK;
}
