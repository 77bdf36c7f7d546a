#ifndef RP_BENCH_BENCH_FNS_H
#define RP_BENCH_BENCH_FNS_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The measured work of bench/bench_*.cc, as small C functions over the
 * library, so the C++ files only set up, loop and report. Each fixture is
 * made outside the timed loop (_new), checked once there (_check: the full
 * round trip, so no check runs inside the loop), then one call of a timed
 * function is one iteration. Timed functions return the library's result
 * so the caller can feed it to benchmark::DoNotOptimize; `st` may be
 * reused across calls (the first failure is kept).
 */

/*
 * age header: a real two-stanza header, ssh-rsa (RSA-2048) then
 * rp-license (a signed license from a batch of 1024, about 1 KB).
 */
struct rp_bench_hdr;

RP_MUST_CHECK enum rp_err rp_bench_hdr_new(struct rp_bench_hdr **out,
					   struct rp_status *st);
void rp_bench_hdr_free(struct rp_bench_hdr *h);

/* rp_bench_hdr_len returns the header's length in bytes (through the MAC). */
size_t rp_bench_hdr_len(const struct rp_bench_hdr *h);

/* rp_bench_hdr_license_len returns the rp-license body's length. */
size_t rp_bench_hdr_license_len(const struct rp_bench_hdr *h);

/*
 * rp_bench_hdr_check parses the header, checks both stanzas and the MAC,
 * unwraps the file key, decodes and verifies the license, and checks that
 * rp_bench_hdr_write reproduces the same bytes.
 */
RP_MUST_CHECK enum rp_err rp_bench_hdr_check(struct rp_bench_hdr *h,
					     struct rp_status *st);

/* rp_bench_hdr_parse parses the header (no MAC check) and frees the parse. */
RP_MUST_CHECK enum rp_err rp_bench_hdr_parse(struct rp_bench_hdr *h,
					     struct rp_status *st);

/* rp_bench_hdr_parse_mac is rp_bench_hdr_parse plus the MAC check. */
RP_MUST_CHECK enum rp_err rp_bench_hdr_parse_mac(struct rp_bench_hdr *h,
						 struct rp_status *st);

/*
 * rp_bench_hdr_write writes the header again into a reused buffer: version
 * line, both stanzas, and the MAC (HKDF + HMAC-SHA-256).
 */
RP_MUST_CHECK enum rp_err rp_bench_hdr_write(struct rp_bench_hdr *h,
					     struct rp_status *st);

/*
 * License batch signing with an RSA-2048 key, for batches of `num_docs`
 * licenses (1 .. 1024 here; the Merkle tree allows more).
 */
struct rp_bench_lic;

RP_MUST_CHECK enum rp_err rp_bench_lic_new(struct rp_bench_lic **out,
					   struct rp_status *st,
					   size_t num_docs);
void rp_bench_lic_free(struct rp_bench_lic *l);

/*
 * rp_bench_lic_sign_batch signs the whole batch: N TBS encodings, N
 * leaves, the Merkle tree, ONE RSA-PSS-SHA-256 signature (salt 32) over
 * rp_license_root_message, N audit paths and N full license encodings.
 */
RP_MUST_CHECK enum rp_err rp_bench_lic_sign_batch(struct rp_bench_lic *l,
						  struct rp_status *st);

/*
 * rp_bench_lic_check signs a batch, then decodes and verifies every
 * license of it, and checks that each TBS is the one that was signed.
 */
RP_MUST_CHECK enum rp_err rp_bench_lic_check(struct rp_bench_lic *l,
					     struct rp_status *st);

/*
 * rp_bench_lic_verify decodes license `idx` of the last signed batch and
 * verifies it (leaf, audit path, RSA-PSS signature): the per-document cost
 * of a reader. Call rp_bench_lic_sign_batch (or _check) first.
 */
RP_MUST_CHECK enum rp_err rp_bench_lic_verify(struct rp_bench_lic *l,
					      struct rp_status *st, size_t idx);

/* age STREAM seal and open of a `plain_len`-byte payload. */
struct rp_bench_stream;

RP_MUST_CHECK enum rp_err rp_bench_stream_new(struct rp_bench_stream **out,
					      struct rp_status *st,
					      size_t plain_len);
void rp_bench_stream_free(struct rp_bench_stream *b);

/*
 * rp_bench_stream_check seals the plaintext, checks the sealed size, opens
 * it again and compares it with the plaintext.
 */
RP_MUST_CHECK enum rp_err rp_bench_stream_check(struct rp_bench_stream *b,
						struct rp_status *st);

/*
 * rp_bench_stream_seal seals the whole plaintext (init, feed, finish,
 * fini); rp_bench_stream_open opens the sealed payload. The output goes to
 * a sink that only counts it, so the figure is the STREAM layer's own cost.
 */
RP_MUST_CHECK enum rp_err rp_bench_stream_seal(struct rp_bench_stream *b,
					       struct rp_status *st);
RP_MUST_CHECK enum rp_err rp_bench_stream_open(struct rp_bench_stream *b,
					       struct rp_status *st);

/* Recipient stanzas: ssh-rsa (RSA-2048) and X25519 wrap and unwrap. */
struct rp_bench_recip;

RP_MUST_CHECK enum rp_err rp_bench_recip_new(struct rp_bench_recip **out,
					     struct rp_status *st);
void rp_bench_recip_free(struct rp_bench_recip *r);

/* rp_bench_recip_check unwraps both stanzas and compares the file keys. */
RP_MUST_CHECK enum rp_err rp_bench_recip_check(struct rp_bench_recip *r,
					       struct rp_status *st);

/* Each is one stanza: a wrap of the file key, or an unwrap of a stanza. */
RP_MUST_CHECK enum rp_err rp_bench_rsa_wrap(struct rp_bench_recip *r,
					    struct rp_status *st);
RP_MUST_CHECK enum rp_err rp_bench_rsa_unwrap(struct rp_bench_recip *r,
					      struct rp_status *st);
RP_MUST_CHECK enum rp_err rp_bench_x25519_wrap(struct rp_bench_recip *r,
					       struct rp_status *st);
RP_MUST_CHECK enum rp_err rp_bench_x25519_unwrap(struct rp_bench_recip *r,
						 struct rp_status *st);

#ifdef __cplusplus
}
#endif
#endif
