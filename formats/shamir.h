#ifndef RP_FORMATS_SHAMIR_H
#define RP_FORMATS_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Shamir's secret sharing over GF(2^8) (the AES field, polynomial 0x11b),
 * byte by byte: share x (1..255) of a secret is f(x) for a random
 * polynomial f of degree k - 1 with f(0) = the secret. Any k shares give
 * the secret back; k - 1 shares give no information about it.
 */
#define RP_SHAMIR_MAX_SECRET 64

/*
 * rp_shamir_split writes n shares of `secret` (len bytes): share i has
 * x = i + 1 and its len bytes at out + i * len. 2 <= k <= n <= 255.
 */
RP_MUST_CHECK enum rp_err rp_shamir_split(uint8_t *out, struct rp_status *st,
					  const uint8_t *secret, size_t len,
					  unsigned n, unsigned k);

/*
 * rp_shamir_combine rebuilds the secret from k shares (xs[i], the len
 * bytes at ys + i * len) by Lagrange interpolation at 0. The xs must be
 * distinct and non-zero (RP_ERR_FORMAT otherwise). With fewer shares than
 * the threshold the result is unrelated to the secret: callers check it.
 */
RP_MUST_CHECK enum rp_err rp_shamir_combine(uint8_t *out, struct rp_status *st,
					    const uint8_t *xs,
					    const uint8_t *ys, size_t len,
					    unsigned k);

#ifdef __cplusplus
}
#endif
#endif
