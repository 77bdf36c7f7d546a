#ifndef RP_FORMATS_DOC_HEADER_H
#define RP_FORMATS_DOC_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "age_header.h"
#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The end of a protected document's header (docs/FORMAT.md sections 2 and
 * 4a): the rp-license stanza, an rp-pad stanza and the MAC line. The pad
 * makes the header exactly a chosen length, so that a rewrap to a key of
 * the same type and size writes a header of the old one's length and can
 * overwrite it in place.
 *
 * The pad stanza is "-> rp-pad" and 1..7 arguments of 'x' characters (at
 * most 255 each), and an empty body: 13 to RP_DOC_PAD_MAX bytes, every
 * length in between reachable.
 */
#define RP_DOC_PAD_TYPE "rp-pad"
#define RP_DOC_PAD_MIN	13 /* "-> rp-pad x" LF LF */
#define RP_DOC_PAD_MAX	(9 + 7 * 256 + 2)
/*
 * The slack a new header gets: room for an audit path of this many
 * hashes beyond its own, the longest a batch of the engine's largest
 * (1024 documents) gives.
 */
#define RP_DOC_SLACK_PATH 10

/*
 * rp_doc_header_target: the length a header gets by default when `hdr`
 * holds its version line and recipient stanza and the license is
 * `lic_len` bytes with `num_path` audit path hashes: as long as it would
 * be with RP_DOC_SLACK_PATH hashes (or num_path, if more) and the
 * smallest pad.
 */
size_t rp_doc_header_target(size_t hdr_len, size_t lic_len, size_t num_path);

/*
 * rp_doc_header_fits says whether a header whose version line and
 * recipient stanza take `hdr_len` bytes and whose license is `lic_len`
 * bytes can be made exactly `target` bytes long.
 */
bool rp_doc_header_fits(size_t hdr_len, size_t lic_len, size_t target);

/*
 * rp_doc_header_finish appends the rp-license stanza of `lic`, the pad
 * stanza and the MAC line to `hdr` (which holds the version line and the
 * recipient stanza), so that the header is `target` bytes long; target 0
 * takes rp_doc_header_target. `hdr_key` is the file key's header key
 * (rp_age_header_key). RP_ERR_USAGE (nothing appended) when it does not
 * fit (rp_doc_header_fits).
 */
RP_MUST_CHECK enum rp_err
rp_doc_header_finish(struct rp_buf *hdr, struct rp_status *st,
		     const uint8_t *lic, size_t lic_len, size_t num_path,
		     const uint8_t hdr_key[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)],
		     size_t target);

#ifdef __cplusplus
}
#endif
#endif
