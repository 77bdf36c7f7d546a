#ifndef RP_KEYS_KS_SOFT_H
#define RP_KEYS_KS_SOFT_H

#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * rp_soft_derive derives a 32-byte sub-key of the world key with
 * HKDF-SHA-256 (no salt, `info` as given). Each use has its own info.
 */
RP_MUST_CHECK enum rp_err
rp_soft_derive(uint8_t out[RP_ATLEAST(32)], struct rp_status *st,
	       const uint8_t world_key[RP_ATLEAST(32)], const char *info);

/*
 * rp_x25519_signing_seed derives the Ed25519 seed that signs for an
 * X25519 tenant key (its signing half) from the X25519 secret. The one
 * derivation of it: both backends use it, so one identity signs alike on
 * both (test_ks_pkcs11_import_identity_signs_like_soft).
 */
RP_MUST_CHECK enum rp_err
rp_x25519_signing_seed(uint8_t seed[RP_ATLEAST(32)], struct rp_status *st,
		       const uint8_t secret[RP_ATLEAST(32)]);

#ifdef __cplusplus
}
#endif
#endif
