#ifndef RP_COMMON_RP_B64_H
#define RP_COMMON_RP_B64_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rp_b64_enc_len returns the unpadded base64 length of `n` bytes. */
size_t rp_b64_enc_len(size_t n);

/*
 * rp_b64_encode writes the unpadded, standard-alphabet base64 of `in` to
 * `out` followed by a NUL. Returns RP_ERR_USAGE if out_cap is too small
 * (it needs rp_b64_enc_len(in_len) + 1).
 */
RP_MUST_CHECK enum rp_err rp_b64_encode(char *out, size_t out_cap,
					size_t *out_len, const uint8_t *in,
					size_t in_len);

/*
 * rp_b64_decode decodes unpadded, canonical, standard-alphabet base64 as
 * age uses it: no '=', no whitespace, length mod 4 != 1, and the unused low
 * bits of the last character zero. Returns RP_ERR_FORMAT for anything else,
 * and RP_ERR_USAGE if out_cap is too small.
 */
RP_MUST_CHECK enum rp_err rp_b64_decode(uint8_t *out, size_t out_cap,
					size_t *out_len, const char *in,
					size_t in_len);

/*
 * rp_hex_encode writes lower-case hex of `in` and a NUL to `out`, which
 * must hold 2 * in_len + 1 bytes.
 */
void rp_hex_encode(char *out, const uint8_t *in, size_t in_len);

/*
 * rp_hex_decode decodes exactly out_len bytes of hex (either case) from a
 * string of exactly 2 * out_len characters. Returns RP_ERR_FORMAT otherwise.
 */
RP_MUST_CHECK enum rp_err rp_hex_decode(uint8_t *out, size_t out_len,
					const char *in, size_t in_len);

#ifdef __cplusplus
}
#endif
#endif
