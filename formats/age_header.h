#ifndef RP_FORMATS_AGE_HEADER_H
#define RP_FORMATS_AGE_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"
#include "rp_span.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The age v1 header (docs/FORMAT.md section 2): a strict reader
 * and a writer. age itself sets no bounds; we do, and reject anything over
 * them as a header failure.
 */
#define RP_AGE_VERSION_LINE   "age-encryption.org/v1\n"
#define RP_AGE_FILE_KEY_LEN   16
#define RP_AGE_NONCE_LEN      16
#define RP_AGE_MAC_LEN	      32
#define RP_AGE_MAX_STANZAS    16
#define RP_AGE_MAX_ARGS	      8 /* including the type */
#define RP_AGE_MAX_ARG_LEN    255
#define RP_AGE_MAX_BODY_LEN   65536
#define RP_AGE_MAX_HEADER_LEN (256 * 1024) /* header text, through the MAC LF */

struct rp_age_stanza {
	size_t num_args;
	/* borrowed from the parsed input; args[0] is the type */
	struct rp_span args[RP_AGE_MAX_ARGS];
	/* the decoded body; borrowed from rp_age_header.bodies */
	struct rp_span body;
	/*
	 * the stanza as serialised: from "->" through the LF that ends its
	 * last (short) body line; borrowed from the parsed input
	 */
	struct rp_span raw;
};

struct rp_age_header {
	size_t num_stanzas;
	struct rp_age_stanza stanzas[RP_AGE_MAX_STANZAS];
	uint8_t mac[RP_AGE_MAC_LEN];
	/* bytes the MAC covers: from offset 0 through "---" (no space) */
	size_t mac_input_len;
	/* bytes through the LF after the MAC line: the nonce starts here */
	size_t header_len;
	uint8_t *bodies; /* owned: every decoded body, back to back */
};

/*
 * rp_age_header_parse decodes the age header at the start of `in`. `in`
 * may hold more bytes after the header (the nonce and payload); parsing
 * stops at the LF after the MAC line. Returns RP_OK, or RP_ERR_FORMAT with
 * a message in `st` naming the fault (line number and what was wrong) for
 * every malformation of docs/FORMAT.md section 2 (the header grammar),
 * for an `scrypt` stanza beside another, and for any bound above exceeded.
 * A header not complete within `in` is "truncated". It does not check the
 * MAC nor that 16 nonce bytes follow. On success the args and raw spans
 * point into `in`: keep `in` alive and unchanged while `out` is used.
 * Call rp_age_header_fini on `out` after success or failure.
 */
RP_MUST_CHECK enum rp_err rp_age_header_parse(struct rp_age_header *out,
					      struct rp_status *st,
					      const uint8_t *in, size_t in_len);

/* rp_age_header_fini frees what parse allocated; safe on a zeroed struct. */
void rp_age_header_fini(struct rp_age_header *hdr);

/*
 * rp_age_stanza_is returns 1 if the stanza's type is exactly `type` (age
 * types are case-sensitive), 0 otherwise.
 */
int rp_age_stanza_is(const struct rp_age_stanza *s, const char *type);

/*
 * rp_age_header_key derives the header MAC key from a file key:
 * HKDF-SHA-256(file key, salt empty, info "header"). A caller that checks
 * a header and writes another under the same file key (a rewrap) derives
 * it once and uses the _k functions below.
 */
#define RP_AGE_HEADER_KEY_LEN 32
RP_MUST_CHECK enum rp_err
rp_age_header_key(uint8_t out[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)],
		  struct rp_status *st,
		  const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);

/*
 * rp_age_header_mac computes the header MAC: HMAC-SHA-256 under
 * HKDF-SHA-256(file key, salt empty, info "header") over the first
 * `mac_input_len` bytes of `hdr_bytes`.
 */
RP_MUST_CHECK enum rp_err
rp_age_header_mac(uint8_t out[RP_ATLEAST(RP_AGE_MAC_LEN)], struct rp_status *st,
		  const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		  const uint8_t *hdr_bytes, size_t mac_input_len);

/*
 * rp_age_header_verify_mac recomputes the MAC of a parsed header (whose
 * bytes are `in`, as given to parse) and compares it in constant time.
 * Returns RP_ERR_AUTH ("header MAC mismatch") if it differs.
 */
RP_MUST_CHECK enum rp_err
rp_age_header_verify_mac(const struct rp_age_header *hdr, struct rp_status *st,
			 const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
			 const uint8_t *in);

/* rp_age_header_verify_mac_k is rp_age_header_verify_mac by header key */
RP_MUST_CHECK enum rp_err rp_age_header_verify_mac_k(
	const struct rp_age_header *hdr, struct rp_status *st,
	const uint8_t hdr_key[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)],
	const uint8_t *in);

/* rp_age_header_begin appends the version line to `out`. */
RP_MUST_CHECK enum rp_err rp_age_header_begin(struct rp_buf *out);

/*
 * rp_age_header_add_stanza appends one stanza: "->", the args (args[0] is
 * the type; each 1..255 bytes of 0x21..0x7E), then the body wrapped in
 * 64-char base64 lines with the short final line always present. Stores
 * the offset and length of what it appended (the stanza's raw bytes) in
 * out_off and out_len when they are not NULL. Returns RP_ERR_USAGE for an
 * invalid arg or a body over RP_AGE_MAX_BODY_LEN.
 */
RP_MUST_CHECK enum rp_err
rp_age_header_add_stanza(struct rp_buf *out, const char *const *args,
			 size_t num_args, const uint8_t *body, size_t body_len,
			 size_t *out_off, size_t *out_len);

/*
 * rp_age_header_finish appends "---", a space, the base64 MAC over
 * everything in `out` so far through "---", and LF.
 */
RP_MUST_CHECK enum rp_err
rp_age_header_finish(struct rp_buf *out, struct rp_status *st,
		     const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);

/* rp_age_header_finish_k is rp_age_header_finish by header key */
RP_MUST_CHECK enum rp_err rp_age_header_finish_k(
	struct rp_buf *out, struct rp_status *st,
	const uint8_t hdr_key[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)]);

#ifdef __cplusplus
}
#endif
#endif
