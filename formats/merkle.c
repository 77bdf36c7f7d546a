#include "merkle.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "rp_ossl.h"

/* RFC 6962 section 2.1 domain separation prefixes */
#define LEAF_PREFIX 0x00
#define NODE_PREFIX 0x01

static bool sha256_parts(EVP_MD_CTX *ctx, uint8_t out[RP_MERKLE_HASH_LEN],
			 uint8_t prefix, const uint8_t *a, size_t a_len,
			 const uint8_t *b, size_t b_len)
{
	unsigned int out_len = 0;

	if (!EVP_DigestInit_ex(ctx, rp_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, &prefix, 1) ||
	    (a_len && !EVP_DigestUpdate(ctx, a, a_len)) ||
	    (b_len && !EVP_DigestUpdate(ctx, b, b_len)) ||
	    !EVP_DigestFinal_ex(ctx, out, &out_len)) {
		return false;
	}
	return out_len == RP_MERKLE_HASH_LEN;
}

static bool hash_node(EVP_MD_CTX *ctx, uint8_t out[RP_MERKLE_HASH_LEN],
		      const uint8_t left[RP_MERKLE_HASH_LEN],
		      const uint8_t right[RP_MERKLE_HASH_LEN])
{
	return sha256_parts(ctx, out, NODE_PREFIX, left, RP_MERKLE_HASH_LEN,
			    right, RP_MERKLE_HASH_LEN);
}

enum rp_err rp_merkle_leaf_hash(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
				struct rp_status *st, const uint8_t *data,
				size_t data_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	enum rp_err err = RP_OK;

	if (!ctx) {
		err = rp_status_fail(st, RP_ERR_NOMEM,
				     "merkle leaf: out of memory");
	} else if (!sha256_parts(ctx, out, LEAF_PREFIX, data, data_len, NULL,
				 0)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "merkle leaf: sha-256");
	}
	if (err) {
		memset(out, 0, RP_MERKLE_HASH_LEN);
	}
	EVP_MD_CTX_free(ctx);
	return err;
}

void rp_merkle_leaf(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
		    const uint8_t *data, size_t data_len)
{
	/*
	 * The signature has no way to report failure, and a silently wrong
	 * leaf would make a license that never verifies: stop instead.
	 */
	if (rp_merkle_leaf_hash(out, NULL, data, data_len)) {
		RP_BUG("cannot compute a sha-256 merkle leaf");
	}
}

size_t rp_merkle_path_len(size_t index, size_t num_leaves)
{
	size_t n = num_leaves;
	size_t num = 0;

	if (index >= num_leaves) {
		return (size_t)-1;
	}
	/*
	 * Level by level: a node has a sibling unless it is the odd last one,
	 * which moves up unchanged. This is the RFC 6962 tree shape.
	 */
	while (n > 1) {
		if ((index ^ 1) < n) {
			num++;
		}
		index >>= 1;
		n = n / 2 + n % 2;
	}
	return num;
}

void rp_merkle_tree_fini(struct rp_merkle_tree *t)
{
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

enum rp_err rp_merkle_tree_build(struct rp_merkle_tree *t, struct rp_status *st,
				 const uint8_t (*leaves)[RP_MERKLE_HASH_LEN],
				 size_t num_leaves)
{
	EVP_MD_CTX *ctx = NULL;
	size_t total = 0;
	size_t n = num_leaves;
	size_t lvl = 0;
	enum rp_err err = RP_OK;

	memset(t, 0, sizeof(*t));
	if (num_leaves == 0 || num_leaves > RP_MERKLE_MAX_LEAVES) {
		err = rp_status_fail(
			st, RP_ERR_USAGE,
			"merkle tree: %zu leaves, expected 1 to %u", num_leaves,
			RP_MERKLE_MAX_LEAVES);
		goto out;
	}
	for (;;) {
		assert(lvl <= RP_MERKLE_MAX_DEPTH);
		t->level_off[lvl] = total;
		t->level_len[lvl] = n;
		total += n;
		lvl++;
		if (n == 1) {
			break;
		}
		n = n / 2 + n % 2;
	}
	t->num_leaves = num_leaves;
	t->num_levels = lvl;
	t->nodes = calloc(total, RP_MERKLE_HASH_LEN);
	ctx = EVP_MD_CTX_new();
	if (!t->nodes || !ctx) {
		err = rp_status_fail(st, RP_ERR_NOMEM,
				     "merkle tree: out of memory for %zu nodes",
				     total);
		goto out;
	}
	memcpy(t->nodes, leaves, num_leaves * RP_MERKLE_HASH_LEN);
	for (lvl = 0; lvl + 1 < t->num_levels; lvl++) {
		const uint8_t(*below)[RP_MERKLE_HASH_LEN] =
			t->nodes + t->level_off[lvl];
		uint8_t(*above)[RP_MERKLE_HASH_LEN] =
			t->nodes + t->level_off[lvl + 1];
		const size_t num_below = t->level_len[lvl];
		size_t i;

		for (i = 0; i + 1 < num_below; i += 2) {
			if (!hash_node(ctx, above[i / 2], below[i],
				       below[i + 1])) {
				err = rp_status_ossl(st, RP_ERR_CRYPTO,
						     "merkle tree: sha-256");
				goto out;
			}
		}
		if (i < num_below) {
			/* the odd last node moves up unchanged */
			memcpy(above[i / 2], below[i], RP_MERKLE_HASH_LEN);
		}
	}
out:
	EVP_MD_CTX_free(ctx);
	if (err) {
		rp_merkle_tree_fini(t);
	}
	return err;
}

void rp_merkle_tree_root(const struct rp_merkle_tree *t,
			 uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)])
{
	assert(t->nodes && t->num_levels);
	memcpy(out, t->nodes[t->level_off[t->num_levels - 1]],
	       RP_MERKLE_HASH_LEN);
}

enum rp_err rp_merkle_tree_path(const struct rp_merkle_tree *t,
				struct rp_status *st,
				uint8_t (*out)[RP_MERKLE_HASH_LEN],
				size_t *out_num, size_t index)
{
	size_t num = 0;
	size_t lvl;

	*out_num = 0;
	if (!t->nodes || index >= t->num_leaves) {
		return rp_status_fail(
			st, RP_ERR_USAGE,
			"merkle tree: leaf index %zu out of range "
			"for %zu leaves",
			index, t->num_leaves);
	}
	for (lvl = 0; lvl + 1 < t->num_levels; lvl++) {
		const size_t sib = index ^ 1;

		if (sib < t->level_len[lvl]) {
			assert(num < RP_MERKLE_MAX_DEPTH);
			memcpy(out[num], t->nodes[t->level_off[lvl] + sib],
			       RP_MERKLE_HASH_LEN);
			num++;
		}
		index >>= 1;
	}
	*out_num = num;
	return RP_OK;
}

enum rp_err rp_merkle_root_from_path(
	uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)], struct rp_status *st,
	const uint8_t leaf[RP_ATLEAST(RP_MERKLE_HASH_LEN)], size_t index,
	size_t num_leaves, const uint8_t (*path)[RP_MERKLE_HASH_LEN],
	size_t num_path)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t r[RP_MERKLE_HASH_LEN];
	size_t fn = index;
	size_t sn;
	size_t i;
	enum rp_err err = RP_OK;

	if (num_leaves == 0 || num_leaves > RP_MERKLE_MAX_LEAVES ||
	    index >= num_leaves) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "merkle path: leaf index %zu out of range "
				     "for %zu leaves",
				     index, num_leaves);
		goto out;
	}
	if (num_path != rp_merkle_path_len(index, num_leaves)) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "merkle path: %zu hashes, leaf %zu of %zu "
				     "needs %zu",
				     num_path, index, num_leaves,
				     rp_merkle_path_len(index, num_leaves));
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		err = rp_status_fail(st, RP_ERR_NOMEM,
				     "merkle path: out of memory");
		goto out;
	}
	/* RFC 9162 section 2.1.3.2 */
	sn = num_leaves - 1;
	memcpy(r, leaf, sizeof(r));
	for (i = 0; i < num_path; i++) {
		bool ok;

		if (sn == 0) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "merkle path: too long");
			goto out;
		}
		if ((fn & 1) || fn == sn) {
			ok = hash_node(ctx, r, path[i], r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ok = hash_node(ctx, r, r, path[i]);
		}
		if (!ok) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO,
					     "merkle path: sha-256");
			goto out;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "merkle path: too short");
		goto out;
	}
	memcpy(out, r, RP_MERKLE_HASH_LEN);
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

/*
 * The tree's shape (split at the largest power of two below n) is that of
 * a binary counter: the leaves pushed so far form perfect subtrees of
 * falling sizes, one per set bit of their number; a new leaf merges with
 * the equal-sized subtrees before it. At the end the subtrees fold from
 * the right.
 */
enum rp_err rp_merkle_root_of(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
			      struct rp_status *st,
			      const uint8_t (*leaves)[RP_MERKLE_HASH_LEN],
			      size_t num_leaves)
{
	uint8_t stack[64][RP_MERKLE_HASH_LEN];
	uint64_t size[64];
	size_t top = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	enum rp_err err = RP_OK;
	bool ok = true;

	if (!ctx) {
		return rp_status_fail(st, RP_ERR_NOMEM,
				      "merkle root: out of memory");
	}
	if (!num_leaves) {
		unsigned int len = 0;

		ok = EVP_DigestInit_ex(ctx, rp_sha256(), NULL) &&
		     EVP_DigestFinal_ex(ctx, out, &len);
	}
	for (size_t i = 0; ok && i < num_leaves; i++) {
		uint8_t h[RP_MERKLE_HASH_LEN];
		uint64_t n = 1;

		memcpy(h, leaves[i], RP_MERKLE_HASH_LEN);
		while (ok && top && size[top - 1] == n) {
			ok = hash_node(ctx, h, stack[top - 1], h);
			n *= 2;
			top--;
		}
		memcpy(stack[top], h, RP_MERKLE_HASH_LEN);
		size[top++] = n;
	}
	if (ok && top) {
		while (ok && top > 1) {
			ok = hash_node(ctx, stack[top - 2], stack[top - 2],
				       stack[top - 1]);
			top--;
		}
		memcpy(out, stack[0], RP_MERKLE_HASH_LEN);
	}
	if (!ok) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "merkle root: sha-256");
		memset(out, 0, RP_MERKLE_HASH_LEN);
	}
	EVP_MD_CTX_free(ctx);
	return err;
}
