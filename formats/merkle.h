#ifndef RP_FORMATS_MERKLE_H
#define RP_FORMATS_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Merkle batch proofs in the RFC 6962 / RFC 9162 shape:
 * leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right),
 * the tree over n leaves splits at the largest power of two below n.
 */
#define RP_MERKLE_HASH_LEN  32
#define RP_MERKLE_MAX_DEPTH 32
#define RP_MERKLE_MAX_LEAVES (1u << 20)

/*
 * rp_merkle_leaf_hash computes the leaf hash of `data`. It fails only when
 * OpenSSL runs out of memory: RP_ERR_NOMEM (or RP_ERR_CRYPTO), and `out`
 * is zeroed.
 */
RP_MUST_CHECK enum rp_err
rp_merkle_leaf_hash(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
		    struct rp_status *st, const uint8_t *data, size_t data_len);

/*
 * rp_merkle_leaf is rp_merkle_leaf_hash for callers that cannot report a
 * failure: it aborts (RP_BUG) when OpenSSL runs out of memory. Kept only
 * for the callers that have not moved to rp_merkle_leaf_hash yet (the
 * bulk engine's batch signer); new code must not use it.
 */
void rp_merkle_leaf(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
		    const uint8_t *data, size_t data_len);

/*
 * struct rp_merkle_tree holds every level of a tree built from n leaf
 * hashes, so the root and each audit path come out in O(n) total.
 */
struct rp_merkle_tree {
	size_t num_leaves;
	size_t num_levels;
	uint8_t (*nodes)[RP_MERKLE_HASH_LEN]; /* owned: all levels */
	size_t level_off[RP_MERKLE_MAX_DEPTH + 1];
	size_t level_len[RP_MERKLE_MAX_DEPTH + 1];
};

/*
 * rp_merkle_tree_build builds the tree over `num_leaves` (1 ..
 * RP_MERKLE_MAX_LEAVES) leaf hashes. Call rp_merkle_tree_fini after.
 */
RP_MUST_CHECK enum rp_err
rp_merkle_tree_build(struct rp_merkle_tree *t, struct rp_status *st,
		     const uint8_t (*leaves)[RP_MERKLE_HASH_LEN],
		     size_t num_leaves);

/* rp_merkle_tree_root copies the root hash. */
void rp_merkle_tree_root(const struct rp_merkle_tree *t,
			 uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)]);

/*
 * rp_merkle_tree_path writes the audit path of leaf `index` (RFC 9162
 * section 2.1.3.1 order: from the leaf's sibling up to the root's child)
 * to `out`, which holds RP_MERKLE_MAX_DEPTH hashes, and its length to
 * out_num.
 */
RP_MUST_CHECK enum rp_err
rp_merkle_tree_path(const struct rp_merkle_tree *t, struct rp_status *st,
		    uint8_t (*out)[RP_MERKLE_HASH_LEN], size_t *out_num,
		    size_t index);

/* rp_merkle_tree_fini frees the tree; safe on a zeroed struct. */
void rp_merkle_tree_fini(struct rp_merkle_tree *t);

/*
 * rp_merkle_path_len returns the exact audit path length of leaf `index`
 * in a tree of `num_leaves`, or (size_t)-1 if index >= num_leaves.
 */
size_t rp_merkle_path_len(size_t index, size_t num_leaves);

/*
 * rp_merkle_root_from_path recomputes the root from a leaf hash and its
 * audit path (RFC 9162 section 2.1.3.2). Returns RP_ERR_FORMAT if index is
 * out of range, num_leaves is 0 or over the maximum, or num_path is not the
 * exact length the tree shape gives.
 */
RP_MUST_CHECK enum rp_err rp_merkle_root_from_path(
	uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)], struct rp_status *st,
	const uint8_t leaf[RP_ATLEAST(RP_MERKLE_HASH_LEN)], size_t index,
	size_t num_leaves, const uint8_t (*path)[RP_MERKLE_HASH_LEN],
	size_t num_path);

/*
 * rp_merkle_root_of computes the root of the tree over `num_leaves` leaf
 * hashes, any number of them (0: SHA-256 of nothing, as RFC 9162 says),
 * with one hash per level of memory: the same root as rp_merkle_tree_build
 * and rp_merkle_tree_root where both apply, without their limit.
 */
RP_MUST_CHECK enum rp_err rp_merkle_root_of(
	uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)], struct rp_status *st,
	const uint8_t (*leaves)[RP_MERKLE_HASH_LEN], size_t num_leaves);

#ifdef __cplusplus
}
#endif
#endif
