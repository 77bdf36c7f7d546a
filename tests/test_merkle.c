#include "rp_test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "merkle.h"
#include "rp_span.h"

#define HASH_LEN RP_MERKLE_HASH_LEN

/* the const view that the merkle API takes */
#define CONST_HASHES(p) ((const uint8_t(*)[HASH_LEN])(p))

static void hex_decode(uint8_t *out, size_t out_len, const char *hex)
{
	size_t i;

	assert_int_equal(strlen(hex), 2 * out_len);
	for (i = 0; i < out_len; i++) {
		unsigned int b;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
}

/*
 * A straightforward RFC 6962 section 2.1 reference, written from the RFC
 * text and independent of merkle.c: one EVP_Digest per hash over the
 * concatenated input, recursive MTH and PATH.
 */
static void ref_sha256(uint8_t out[HASH_LEN], const uint8_t *in, size_t in_len)
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(in, in_len, out, &len, EVP_sha256(), NULL),
			 1);
	assert_int_equal(len, HASH_LEN);
}

static void ref_leaf(uint8_t out[HASH_LEN], const uint8_t *data,
		     size_t data_len)
{
	uint8_t *buf = malloc(data_len + 1);

	assert_non_null(buf);
	buf[0] = 0x00;
	if (data_len) {
		memcpy(buf + 1, data, data_len);
	}
	ref_sha256(out, buf, data_len + 1);
	free(buf);
}

static void ref_node(uint8_t out[HASH_LEN], const uint8_t l[HASH_LEN],
		     const uint8_t r[HASH_LEN])
{
	uint8_t buf[1 + 2 * HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, l, HASH_LEN);
	memcpy(buf + 1 + HASH_LEN, r, HASH_LEN);
	ref_sha256(out, buf, sizeof(buf));
}

/* the largest power of two smaller than n (n >= 2) */
static size_t ref_split(size_t n)
{
	size_t k = 1;

	while (k * 2 < n) {
		k *= 2;
	}
	return k;
}

/* MTH(D[n]) over leaf hashes already computed with ref_leaf */
static void ref_mth(uint8_t out[HASH_LEN], const uint8_t (*leaves)[HASH_LEN],
		    size_t n)
{
	uint8_t l[HASH_LEN], r[HASH_LEN];
	size_t k;

	assert_true(n >= 1);
	if (n == 1) {
		memcpy(out, leaves[0], HASH_LEN);
		return;
	}
	k = ref_split(n);
	ref_mth(l, leaves, k);
	ref_mth(r, leaves + k, n - k);
	ref_node(out, l, r);
}

/* PATH(m, D[n]), leaf to root order */
static void ref_path(uint8_t (*out)[HASH_LEN], size_t *num,
		     const uint8_t (*leaves)[HASH_LEN], size_t n, size_t m)
{
	size_t k;

	if (n == 1) {
		*num = 0;
		return;
	}
	k = ref_split(n);
	if (m < k) {
		ref_path(out, num, leaves, k, m);
		ref_mth(out[*num], leaves + k, n - k);
	} else {
		ref_path(out, num, leaves + k, n - k, m - k);
		ref_mth(out[*num], leaves, k);
	}
	(*num)++;
}

/*
 * ref_dirs writes, leaf to root, on which side each path element sits
 * (1: the sibling is on the left). Two (index, size) pairs with the same
 * sequence hash a given leaf and path to the same root.
 */
static void ref_dirs(uint8_t *out, size_t *num, size_t n, size_t m)
{
	size_t k;

	if (n == 1) {
		*num = 0;
		return;
	}
	k = ref_split(n);
	if (m < k) {
		ref_dirs(out, num, k, m);
		out[*num] = 0;
	} else {
		ref_dirs(out, num, n - k, m - k);
		out[*num] = 1;
	}
	(*num)++;
}

static bool same_dirs(size_t n1, size_t m1, size_t n2, size_t m2)
{
	uint8_t d1[64], d2[64];
	size_t num1 = 0, num2 = 0;

	ref_dirs(d1, &num1, n1, m1);
	ref_dirs(d2, &num2, n2, m2);
	return num1 == num2 && memcmp(d1, d2, num1) == 0;
}

/* leaf data of varying length, so leaf hashing sees more than one size */
static size_t leaf_data(uint8_t *out, size_t cap, size_t i)
{
	const int n = snprintf((char *)out, cap, "document %zu %.*s", i,
			       (int)(i % 23), "abcdefghijklmnopqrstuvw");

	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

struct fixture {
	size_t n;
	uint8_t (*leaves)[HASH_LEN]; /* from ref_leaf */
	uint8_t root[HASH_LEN];	     /* from ref_mth */
	struct rp_merkle_tree tree;
};

static void fixture_make(struct fixture *f, size_t n)
{
	struct rp_status st = { 0 };
	uint8_t data[64];
	size_t i;

	memset(f, 0, sizeof(*f));
	f->n = n;
	f->leaves = calloc(n, HASH_LEN);
	assert_non_null(f->leaves);
	for (i = 0; i < n; i++) {
		const size_t len = leaf_data(data, sizeof(data), i);
		uint8_t h[HASH_LEN];

		ref_leaf(f->leaves[i], data, len);
		rp_merkle_leaf(h, data, len);
		assert_memory_equal(h, f->leaves[i], HASH_LEN);
	}
	ref_mth(f->root, f->leaves, n);
	assert_int_equal(
		rp_merkle_tree_build(&f->tree, &st, CONST_HASHES(f->leaves), n),
		RP_OK);
}

static void fixture_free(struct fixture *f)
{
	rp_merkle_tree_fini(&f->tree);
	free(f->leaves);
}

static enum rp_err root_of(uint8_t out[HASH_LEN], const uint8_t leaf[HASH_LEN],
			   size_t index, size_t n,
			   const uint8_t (*path)[HASH_LEN], size_t num_path)
{
	struct rp_status st = { 0 };
	const enum rp_err err = rp_merkle_root_from_path(out, &st, leaf, index,
							 n, path, num_path);

	if (err) {
		assert_int_equal(st.err, err);
		assert_true(st.msg[0] != '\0');
	}
	return err;
}

/* every path that must verify: shape, reference equality, recomputed root */
static void check_paths(size_t n)
{
	struct fixture f;
	uint8_t root[HASH_LEN], got[HASH_LEN];
	uint8_t path[RP_MERKLE_MAX_DEPTH][HASH_LEN],
		want[RP_MERKLE_MAX_DEPTH][HASH_LEN];
	size_t i;

	fixture_make(&f, n);
	rp_merkle_tree_root(&f.tree, root);
	assert_memory_equal(root, f.root, HASH_LEN);
	for (i = 0; i < n; i++) {
		struct rp_status st = { 0 };
		size_t num = 99, num_want = 0;

		assert_int_equal(
			rp_merkle_tree_path(&f.tree, &st, path, &num, i),
			RP_OK);
		assert_int_equal(num, rp_merkle_path_len(i, n));
		/* the O(n) reference path: all leaves when small, else some */
		if (n <= 64 || i % 61 == 0 || i == n - 1) {
			ref_path(want, &num_want, CONST_HASHES(f.leaves), n, i);
			assert_int_equal(num, num_want);
			if (num) {
				assert_memory_equal(path, want, num * HASH_LEN);
			}
		}
		assert_int_equal(root_of(got, f.leaves[i], i, n, path, num),
				 RP_OK);
		assert_memory_equal(got, root, HASH_LEN);
	}
	fixture_free(&f);
}

static void test_merkle_tree_small_sizes_match_reference(void **state)
{
	static const size_t sizes[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 31 };
	size_t i;

	(void)state;
	for (i = 0; i < RP_ARRAY_LEN(sizes); i++) {
		check_paths(sizes[i]);
	}
}

static void test_merkle_tree_64_matches_reference(void **state)
{
	(void)state;
	check_paths(64);
}

static void test_merkle_tree_1000_matches_reference(void **state)
{
	(void)state;
	check_paths(1000);
}

static void test_merkle_tree_1024_matches_reference(void **state)
{
	(void)state;
	check_paths(1024);
}

/*
 * Tamper with one input at a time and recompute: each change must give
 * RP_ERR_FORMAT or a root other than the tree's.
 */
static void tamper_leaf(const struct fixture *f, size_t i)
{
	uint8_t path[RP_MERKLE_MAX_DEPTH][HASH_LEN],
		bad[RP_MERKLE_MAX_DEPTH + 1][HASH_LEN];
	uint8_t leaf[HASH_LEN], got[HASH_LEN], root[HASH_LEN];
	struct rp_status st = { 0 };
	size_t num = 0, b, j, n2;
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	size_t m;

	rp_merkle_tree_root(&f->tree, root);
	assert_int_equal(rp_merkle_tree_path(&f->tree, &st, path, &num, i),
			 RP_OK);

	/* each byte of the leaf */
	for (b = 0; b < HASH_LEN; b++) {
		for (m = 0; m < RP_ARRAY_LEN(masks); m++) {
			memcpy(leaf, f->leaves[i], HASH_LEN);
			leaf[b] ^= masks[m];
			assert_int_equal(root_of(got, leaf, i, f->n, path, num),
					 RP_OK);
			assert_memory_not_equal(got, root, HASH_LEN);
		}
	}
	/* each byte of each path element */
	for (b = 0; b < num * HASH_LEN; b++) {
		for (m = 0; m < RP_ARRAY_LEN(masks); m++) {
			memcpy(bad, path, num * HASH_LEN);
			bad[b / HASH_LEN][b % HASH_LEN] ^= masks[m];
			assert_int_equal(
				root_of(got, f->leaves[i], i, f->n, bad, num),
				RP_OK);
			assert_memory_not_equal(got, root, HASH_LEN);
		}
	}
	/* truncated and extended paths */
	if (num) {
		assert_int_equal(
			root_of(got, f->leaves[i], i, f->n, path, num - 1),
			RP_ERR_FORMAT);
		assert_int_equal(
			root_of(got, f->leaves[i], i, f->n, path + 1, num - 1),
			RP_ERR_FORMAT);
	}
	memcpy(bad, path, num * HASH_LEN);
	memcpy(bad[num], root, HASH_LEN);
	assert_int_equal(root_of(got, f->leaves[i], i, f->n, bad, num + 1),
			 RP_ERR_FORMAT);
	/* every other index: in a tree of n, each leaf has its own route */
	for (j = 0; j < f->n + 2; j++) {
		enum rp_err err;

		if (j == i) {
			continue;
		}
		err = root_of(got, f->leaves[i], j, f->n, path, num);
		if (j >= f->n || rp_merkle_path_len(j, f->n) != num) {
			assert_int_equal(err, RP_ERR_FORMAT);
		} else {
			assert_int_equal(err, RP_OK);
			assert_memory_not_equal(got, root, HASH_LEN);
		}
	}
	/*
	 * Other sizes. An RFC 9162 path does not commit to the tree size: a
	 * leaf on the same route through a tree of another size (index 0 of
	 * 3 and of 4) gives the same root. The license signs the size next
	 * to the root for this reason. Assert exactly that: FORMAT when the
	 * length differs, the same root iff the route is the same.
	 */
	for (n2 = 0; n2 <= 2 * f->n + 1; n2++) {
		enum rp_err err;

		if (n2 == f->n) {
			continue;
		}
		err = root_of(got, f->leaves[i], i, n2, path, num);
		if (i >= n2 || rp_merkle_path_len(i, n2) != num) {
			assert_int_equal(err, RP_ERR_FORMAT);
		} else if (same_dirs(f->n, i, n2, i)) {
			assert_int_equal(err, RP_OK);
			assert_memory_equal(got, root, HASH_LEN);
		} else {
			assert_int_equal(err, RP_OK);
			assert_memory_not_equal(got, root, HASH_LEN);
		}
	}
}

static void tamper_size(size_t n, size_t step)
{
	struct fixture f;
	size_t i;

	fixture_make(&f, n);
	for (i = 0; i < n; i += step) {
		tamper_leaf(&f, i);
	}
	tamper_leaf(&f, n - 1);
	fixture_free(&f);
}

static void test_merkle_tamper_small_sizes_fail(void **state)
{
	static const size_t sizes[] = { 1, 2, 3, 5, 7, 8, 9 };
	size_t i;

	(void)state;
	for (i = 0; i < RP_ARRAY_LEN(sizes); i++) {
		tamper_size(sizes[i], 1);
	}
}

static void test_merkle_tamper_64_fail(void **state)
{
	(void)state;
	tamper_size(64, 1);
}

static void test_merkle_tamper_1000_sample_fail(void **state)
{
	(void)state;
	tamper_size(1000, 97);
}

static void test_merkle_tamper_1024_sample_fail(void **state)
{
	(void)state;
	tamper_size(1024, 131);
}

/* RFC 9162 paths leave the size to the signed root: show it plainly */
static void test_merkle_path_other_size_same_root(void **state)
{
	struct fixture f3, f4;
	uint8_t p3[RP_MERKLE_MAX_DEPTH][HASH_LEN], r3[HASH_LEN], got[HASH_LEN];
	struct rp_status st = { 0 };
	size_t num = 0;

	(void)state;
	fixture_make(&f3, 3);
	fixture_make(&f4, 4);
	rp_merkle_tree_root(&f3.tree, r3);
	assert_int_equal(rp_merkle_tree_path(&f3.tree, &st, p3, &num, 0),
			 RP_OK);
	assert_int_equal(num, 2);
	assert_int_equal(root_of(got, f3.leaves[0], 0, 4, p3, num), RP_OK);
	assert_memory_equal(got, r3, HASH_LEN);
	fixture_free(&f3);
	fixture_free(&f4);
}

static void test_merkle_bad_shape_rejected(void **state)
{
	struct rp_merkle_tree t = { 0 };
	struct rp_status st = { 0 };
	uint8_t leaf[HASH_LEN] = { 1 };
	uint8_t path[RP_MERKLE_MAX_DEPTH][HASH_LEN] = { { 0 } };
	uint8_t got[HASH_LEN];
	size_t num = 7;

	(void)state;
	assert_int_equal(root_of(got, leaf, 0, 0, path, 0), RP_ERR_FORMAT);
	assert_int_equal(root_of(got, leaf, 1, 1, path, 0), RP_ERR_FORMAT);
	assert_int_equal(root_of(got, leaf, 5, 5, path, 3), RP_ERR_FORMAT);
	assert_int_equal(root_of(got, leaf, SIZE_MAX, 5, path, 3),
			 RP_ERR_FORMAT);
	assert_int_equal(
		root_of(got, leaf, 0, RP_MERKLE_MAX_LEAVES + 1, path, 21),
		RP_ERR_FORMAT);
	assert_int_equal(root_of(got, leaf, 0, 1, path, 1), RP_ERR_FORMAT);
	assert_int_equal(root_of(got, leaf, 0, 1, path, 0), RP_OK);
	assert_memory_equal(got, leaf, HASH_LEN);

	assert_int_equal(rp_merkle_path_len(0, 0), (size_t)-1);
	assert_int_equal(rp_merkle_path_len(3, 3), (size_t)-1);
	assert_int_equal(rp_merkle_path_len(0, 1), 0);
	assert_int_equal(rp_merkle_path_len(2, 3), 1);
	assert_int_equal(rp_merkle_path_len(0, 3), 2);
	assert_int_equal(rp_merkle_path_len(4, 5), 1);
	assert_int_equal(rp_merkle_path_len(0, 1024), 10);
	assert_int_equal(rp_merkle_path_len(999, 1000), 8);

	assert_int_equal(rp_merkle_tree_build(&t, &st, CONST_HASHES(path), 0),
			 RP_ERR_USAGE);
	rp_merkle_tree_fini(&t);
	rp_status_clear(&st);
	assert_int_equal(rp_merkle_tree_build(&t, &st, CONST_HASHES(path),
					      RP_MERKLE_MAX_LEAVES + 1),
			 RP_ERR_USAGE);
	rp_merkle_tree_fini(&t);
	rp_status_clear(&st);
	assert_int_equal(rp_merkle_tree_build(&t, &st, CONST_HASHES(path), 3),
			 RP_OK);
	assert_int_equal(rp_merkle_tree_path(&t, &st, path, &num, 3),
			 RP_ERR_USAGE);
	assert_int_equal(num, 0);
	rp_merkle_tree_fini(&t);
	rp_merkle_tree_fini(&t); /* safe twice: fini leaves it zeroed */
}

/*
 * Known answers from the certificate-transparency project,
 * google/certificate-transparency cpp/merkletree/merkle_tree_test.cc
 * (kInputs, kSHA256Roots, kSHA256Paths; its leaf numbers are 1-based),
 * and transparency-dev/merkle rfc6962/rfc6962_test.go (leaf hashes).
 */
static const struct {
	const char *hex;
	size_t len;
} ct_inputs[8] = {
	{ "", 0 },
	{ "00", 1 },
	{ "10", 1 },
	{ "2021", 2 },
	{ "3031", 2 },
	{ "40414243", 4 },
	{ "5051525354555657", 8 },
	{ "606162636465666768696a6b6c6d6e6f", 16 },
};

static const char *const ct_roots[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static const struct {
	size_t index; /* 0-based */
	size_t size;
	size_t num;
	const char *path[3];
} ct_paths[] = {
	{ 0, 1, 0, { NULL } },
	{ 0,
	  8,
	  3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e"
	    "4" } },
	{ 5,
	  8,
	  3,
	  { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b"
	    "7" } },
	{ 2,
	  3,
	  1,
	  { "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c12"
	    "5" } },
	{ 1,
	  5,
	  3,
	  { "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6"
	    "b" } },
};

static void ct_leaves(uint8_t out[8][HASH_LEN])
{
	uint8_t data[16];
	size_t i;

	for (i = 0; i < 8; i++) {
		hex_decode(data, ct_inputs[i].len, ct_inputs[i].hex);
		rp_merkle_leaf(out[i], data, ct_inputs[i].len);
	}
}

static void test_merkle_leaf_matches_rfc6962_kat(void **state)
{
	uint8_t got[HASH_LEN], want[HASH_LEN];

	(void)state;
	rp_merkle_leaf(got, NULL, 0);
	hex_decode(want, HASH_LEN,
		   "6e340b9cffb37a989ca544e6bb780a2c78901d3f"
		   "b33738768511a30617afa01d");
	assert_memory_equal(got, want, HASH_LEN);
	rp_merkle_leaf(got, (const uint8_t *)"L123456", 7);
	hex_decode(want, HASH_LEN,
		   "395aa064aa4c29f7010acfe3f25db9485bbd4b91"
		   "897b6ad7ad547639252b4d56");
	assert_memory_equal(got, want, HASH_LEN);
}

static void test_merkle_root_matches_ct_kat(void **state)
{
	uint8_t leaves[8][HASH_LEN], got[HASH_LEN], want[HASH_LEN];
	size_t n;

	(void)state;
	ct_leaves(leaves);
	for (n = 1; n <= 8; n++) {
		struct rp_merkle_tree t;
		struct rp_status st = { 0 };

		assert_int_equal(
			rp_merkle_tree_build(&t, &st, CONST_HASHES(leaves), n),
			RP_OK);
		rp_merkle_tree_root(&t, got);
		hex_decode(want, HASH_LEN, ct_roots[n - 1]);
		assert_memory_equal(got, want, HASH_LEN);
		rp_merkle_tree_fini(&t);
	}
}

static void test_merkle_path_matches_ct_kat(void **state)
{
	uint8_t leaves[8][HASH_LEN], got[HASH_LEN], want[HASH_LEN],
		path[RP_MERKLE_MAX_DEPTH][HASH_LEN];
	size_t i, j;

	(void)state;
	ct_leaves(leaves);
	for (i = 0; i < RP_ARRAY_LEN(ct_paths); i++) {
		struct rp_merkle_tree t;
		struct rp_status st = { 0 };
		size_t num = 0;

		assert_int_equal(rp_merkle_tree_build(&t, &st,
						      CONST_HASHES(leaves),
						      ct_paths[i].size),
				 RP_OK);
		assert_int_equal(rp_merkle_tree_path(&t, &st, path, &num,
						     ct_paths[i].index),
				 RP_OK);
		assert_int_equal(num, ct_paths[i].num);
		for (j = 0; j < num; j++) {
			hex_decode(want, HASH_LEN, ct_paths[i].path[j]);
			assert_memory_equal(path[j], want, HASH_LEN);
		}
		assert_int_equal(root_of(got, leaves[ct_paths[i].index],
					 ct_paths[i].index, ct_paths[i].size,
					 path, num),
				 RP_OK);
		hex_decode(want, HASH_LEN, ct_roots[ct_paths[i].size - 1]);
		assert_memory_equal(got, want, HASH_LEN);
		rp_merkle_tree_fini(&t);
	}
}

/* the largest batch: 2^20 leaves, paths of 20 hashes */
static void test_merkle_max_batch_verifies(void **state)
{
	const size_t n = RP_MERKLE_MAX_LEAVES;
	static const size_t idx[] = { 0, 1, 524287, 524288,
				      RP_MERKLE_MAX_LEAVES - 1 };
	struct rp_merkle_tree t;
	struct rp_status st = { 0 };
	uint8_t(*leaves)[HASH_LEN] = calloc(n, HASH_LEN);
	uint8_t root[HASH_LEN], got[HASH_LEN],
		path[RP_MERKLE_MAX_DEPTH][HASH_LEN];
	size_t i;

	(void)state;
	assert_non_null(leaves);
	for (i = 0; i < n; i++) {
		rp_put_u32be(leaves[i], (uint32_t)i);
		leaves[i][31] = (uint8_t)(i * 7);
	}
	assert_int_equal(rp_merkle_tree_build(&t, &st, CONST_HASHES(leaves), n),
			 RP_OK);
	assert_int_equal(t.num_levels, 21);
	rp_merkle_tree_root(&t, root);
	for (i = 0; i < RP_ARRAY_LEN(idx); i++) {
		size_t num = 0;

		assert_int_equal(
			rp_merkle_tree_path(&t, &st, path, &num, idx[i]),
			RP_OK);
		assert_int_equal(num, 20);
		assert_int_equal(
			root_of(got, leaves[idx[i]], idx[i], n, path, num),
			RP_OK);
		assert_memory_equal(got, root, HASH_LEN);
	}
	rp_merkle_tree_fini(&t);
	free(leaves);
}

/* the streaming root: the CT known answers, then every size to 1100 and
 * a larger odd one against the reference */
static void test_merkle_root_of_matches(void **state)
{
	uint8_t kat[8][HASH_LEN], got[HASH_LEN], want[HASH_LEN];
	uint8_t(*leaves)[HASH_LEN] = NULL;
	struct rp_status st = { 0 };
	const size_t big = 70001;

	(void)state;
	ct_leaves(kat);
	for (size_t n = 1; n <= 8; n++) {
		assert_int_equal(
			rp_merkle_root_of(got, &st, CONST_HASHES(kat), n),
			RP_OK);
		hex_decode(want, HASH_LEN, ct_roots[n - 1]);
		assert_memory_equal(got, want, HASH_LEN);
	}
	/* no leaves: SHA-256 of the empty string */
	assert_int_equal(rp_merkle_root_of(got, &st, NULL, 0), RP_OK);
	hex_decode(want, HASH_LEN,
		   "e3b0c44298fc1c149afbf4c8996fb924"
		   "27ae41e4649b934ca495991b7852b855");
	assert_memory_equal(got, want, HASH_LEN);
	leaves = calloc(big, HASH_LEN);
	assert_non_null(leaves);
	for (size_t i = 0; i < big; i++) {
		memcpy(leaves[i], &i, sizeof(i));
		leaves[i][31] = (uint8_t)(i * 7);
	}
	for (size_t n = 1; n <= 1100; n++) {
		ref_mth(want, CONST_HASHES(leaves), n);
		assert_int_equal(
			rp_merkle_root_of(got, &st, CONST_HASHES(leaves), n),
			RP_OK);
		assert_memory_equal(got, want, HASH_LEN);
	}
	ref_mth(want, CONST_HASHES(leaves), big);
	assert_int_equal(rp_merkle_root_of(got, &st, CONST_HASHES(leaves), big),
			 RP_OK);
	assert_memory_equal(got, want, HASH_LEN);
	free(leaves);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merkle_leaf_matches_rfc6962_kat),
		cmocka_unit_test(test_merkle_root_matches_ct_kat),
		cmocka_unit_test(test_merkle_root_of_matches),
		cmocka_unit_test(test_merkle_path_matches_ct_kat),
		cmocka_unit_test(test_merkle_tree_small_sizes_match_reference),
		cmocka_unit_test(test_merkle_tree_64_matches_reference),
		cmocka_unit_test(test_merkle_tree_1000_matches_reference),
		cmocka_unit_test(test_merkle_tree_1024_matches_reference),
		cmocka_unit_test(test_merkle_tamper_small_sizes_fail),
		cmocka_unit_test(test_merkle_tamper_64_fail),
		cmocka_unit_test(test_merkle_tamper_1000_sample_fail),
		cmocka_unit_test(test_merkle_tamper_1024_sample_fail),
		cmocka_unit_test(test_merkle_path_other_size_same_root),
		cmocka_unit_test(test_merkle_bad_shape_rejected),
		cmocka_unit_test(test_merkle_max_batch_verifies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
