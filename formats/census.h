#ifndef RP_FORMATS_CENSUS_H
#define RP_FORMATS_CENSUS_H

#include <stddef.h>
#include <stdint.h>

#include "license.h"
#include "merkle.h"
#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A census statement (docs/FORMAT.md, "Census statement"): what a census
 * found under which key, signed by the store's active key. Text, one
 * field per line, in this order:
 *
 *   reprotect-census/v1
 *   store WORLD-ID                      32 hex digits
 *   taken UNIX-SECONDS
 *   audit SEQ                           the audit log's last record then
 *   root PATH                           1 .. RP_CENSUS_MAX_ROOTS lines
 *   selection all | shard I N | merged N
 *   part I TAKEN DOCUMENTS MERKLE       merged only: N lines, I = 0 .. N-1
 *   active KEY-ID | -                   64 hex digits
 *   key KEY-ID STATE DOCUMENTS BYTES    0 .. RP_CENSUS_MAX_KEYS lines
 *   outcome NAME DOCUMENTS BYTES        0 .. RP_CENSUS_MAX_OUTCOMES lines
 *   doc KEY-ID|- DOC-ID|- OUTCOME PATH  any number
 *   documents N                         every document the census saw
 *   listed N                            the number of doc lines
 *   merkle ROOT                         64 hex digits
 *   sig SIGNER-KEY-ID BASE64
 *
 * The signature covers every byte before the "sig" line. Numbers are
 * canonical decimal; PATH is the rest of its line, with backslash and the
 * control bytes (0x00..0x1f, 0x7f) written as \xHH; STATE, NAME and
 * OUTCOME are 1..31 of [a-z-]. Every line ends in one '\n'. Anything else
 * does not decode.
 */
#define RP_CENSUS_MAGIC	       "reprotect-census/v1"
#define RP_CENSUS_MAX_ROOTS    64
#define RP_CENSUS_MAX_KEYS     8192
#define RP_CENSUS_MAX_OUTCOMES 32
#define RP_CENSUS_MAX_PARTS    4096
#define RP_CENSUS_NAME_MAX     31
#define RP_CENSUS_WORLD_LEN    16
#define RP_CENSUS_MAX	       ((size_t)1 << 34) /* 16 GiB of text */

enum rp_census_sel {
	RP_CENSUS_ALL = 1,
	RP_CENSUS_SHARD = 2,
	RP_CENSUS_MERGED = 3,
};

struct rp_census_key {
	uint8_t id[RP_KEY_ID_LEN];
	char state[RP_CENSUS_NAME_MAX + 1];
	uint64_t docs, bytes;
};

struct rp_census_outcome {
	char name[RP_CENSUS_NAME_MAX + 1];
	uint64_t docs, bytes;
};

struct rp_census_part {
	uint64_t taken;
	uint64_t docs;
	uint8_t merkle[RP_MERKLE_HASH_LEN];
};

struct rp_census {
	uint8_t world[RP_CENSUS_WORLD_LEN];
	uint64_t taken;
	uint64_t audit_seq;
	size_t num_roots;
	char *roots[RP_CENSUS_MAX_ROOTS]; /* owned, unescaped */
	enum rp_census_sel sel;
	uint64_t shard_i, shard_n;    /* shard: I of N; merged: N */
	struct rp_census_part *parts; /* owned; merged: shard_n of them */
	int has_active;
	uint8_t active[RP_KEY_ID_LEN];
	size_t num_keys;
	struct rp_census_key *keys; /* owned */
	size_t num_outcomes;
	struct rp_census_outcome outcomes[RP_CENSUS_MAX_OUTCOMES];
	uint64_t documents;
	uint64_t listed;
	uint8_t merkle[RP_MERKLE_HASH_LEN];
	/* decoded only: */
	uint8_t signer[RP_KEY_ID_LEN];
	size_t sig_len;
	uint8_t sig[RP_SIG_MAX];
	size_t signed_len;	   /* the bytes the signature covers */
	size_t docs_off, docs_len; /* the doc lines, in the decoded text */
};

/* One listed document (rp_census_doc_line, rp_census_next_doc). */
struct rp_census_doc {
	int has_key, has_doc_id;
	uint8_t key[RP_KEY_ID_LEN];
	uint8_t doc_id[RP_DOC_ID_LEN];
	char outcome[RP_CENSUS_NAME_MAX + 1];
	char *path; /* rp_census_next_doc: owned by the caller's buffer */
};

/*
 * rp_census_leaf computes a document's Merkle leaf hash: the leaf of
 * key id (32 zero bytes: none) || document id (16 zero bytes: none) ||
 * path bytes. The census's root is rp_merkle_root_of over the leaves
 * sorted as byte strings; a merged census's root is over the leaves of
 * its parts' roots (rp_merkle_leaf_hash of each), in shard order.
 */
RP_MUST_CHECK enum rp_err
rp_census_leaf(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
	       struct rp_status *st, const uint8_t *key_id,
	       const uint8_t *doc_id, const char *path);

/*
 * rp_census_doc_line appends one "doc" line. RP_ERR_USAGE for an
 * outcome name that is not 1..31 of [a-z-].
 */
RP_MUST_CHECK enum rp_err
rp_census_doc_line(struct rp_buf *out, struct rp_status *st,
		   const uint8_t *key_id, const uint8_t *doc_id,
		   const char *outcome, const char *path);

/*
 * rp_census_encode appends the statement up to (and without) its "sig"
 * line; `docs` holds its doc lines (rp_census_doc_line), c->listed of
 * them. RP_ERR_USAGE for a field that would not decode.
 */
RP_MUST_CHECK enum rp_err rp_census_encode(struct rp_buf *out,
					   struct rp_status *st,
					   const struct rp_census *c,
					   const uint8_t *docs,
					   size_t docs_len);

/* rp_census_encode_sig appends the "sig" line. */
RP_MUST_CHECK enum rp_err
rp_census_encode_sig(struct rp_buf *out, struct rp_status *st,
		     const uint8_t signer[RP_ATLEAST(RP_KEY_ID_LEN)],
		     const uint8_t *sig, size_t sig_len);

/*
 * rp_census_decode parses a whole statement strictly (the signature is
 * not checked here: the caller verifies sig over in[0..signed_len) with
 * the signer's key). RP_ERR_FORMAT naming the line for anything else.
 * Call rp_census_fini after, also on failure.
 */
RP_MUST_CHECK enum rp_err rp_census_decode(struct rp_census *out,
					   struct rp_status *st,
					   const uint8_t *in, size_t in_len);

/*
 * rp_census_next_doc reads the next doc line of a decoded statement's
 * text `in` (from *off, starting at c->docs_off), unescaping its path
 * into `path` (`path_cap` bytes). Returns 1 with *off moved on, 0 at the
 * end of the doc lines.
 */
int rp_census_next_doc(const struct rp_census *c, const uint8_t *in,
		       size_t *off, struct rp_census_doc *d, char *path,
		       size_t path_cap);

void rp_census_fini(struct rp_census *c);

#ifdef __cplusplus
}
#endif
#endif
