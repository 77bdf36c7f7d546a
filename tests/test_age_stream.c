#include "rp_test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "age_stream.h"

#define MiB (1024 * 1024)

static const uint8_t test_key[RP_AGE_FILE_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};
static const uint8_t test_nonce[RP_AGE_NONCE_LEN] = {
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

/* piece sizes to feed with; PIECE_RANDOM draws each one, 0 included */
#define PIECE_RANDOM 0
static const size_t piece_modes[] = { 1, 7, RP_STREAM_SEALED, PIECE_RANDOM,
				      SIZE_MAX };

/*
 * struct sink records what a stream passes to its out_fn: every byte (or
 * only a SHA-256 of them), the number of calls and the largest call.
 */
struct sink {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t num_calls;
	size_t max_call;
	size_t fail_at_call; /* 1-based; 0: never fail */
	EVP_MD_CTX *md;	     /* hash instead of storing, if set */
};

static enum rp_err sink_out(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	k->num_calls++;
	if (k->fail_at_call && k->num_calls == k->fail_at_call) {
		return RP_ERR_IO;
	}
	assert_true(len > 0);
	if (len > k->max_call) {
		k->max_call = len;
	}
	if (k->md) {
		assert_int_equal(EVP_DigestUpdate(k->md, p, len), 1);
		k->len += len;
		return RP_OK;
	}
	if (k->len + len > k->cap) {
		size_t cap = k->cap ? k->cap : 4096;
		while (cap < k->len + len) {
			cap *= 2;
		}
		k->p = realloc(k->p, cap);
		assert_non_null(k->p);
		k->cap = cap;
	}
	memcpy(k->p + k->len, p, len);
	k->len += len;
	return RP_OK;
}

static void sink_fini(struct sink *k)
{
	free(k->p);
	EVP_MD_CTX_free(k->md);
	memset(k, 0, sizeof(*k));
}

/* pattern writes byte i = (i * 31 + 7) % 251, as gen_vectors.py does */
static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)((i * 31 + 7) % 251);
	}
	return p;
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static size_t next_piece(size_t mode, uint64_t *rng, size_t left)
{
	size_t n = mode;

	if (mode == PIECE_RANDOM) {
		n = (size_t)(xorshift(rng) % (2 * RP_STREAM_SEALED + 1));
	}
	return n < left ? n : left;
}

static struct rp_stream *stream_new(enum rp_stream_dir dir, const uint8_t *key,
				    const uint8_t *nonce)
{
	struct rp_stream *s = calloc(1, sizeof(*s));
	struct rp_status st = { 0 };

	assert_non_null(s);
	assert_int_equal(rp_stream_init(s, &st, dir, key, nonce), RP_OK);
	return s;
}

static void stream_free(struct rp_stream *s)
{
	rp_stream_fini(s);
	free(s);
}

/* run feeds `in` in pieces of `mode` and finishes; returns the error */
static enum rp_err run(enum rp_stream_dir dir, struct rp_status *st,
		       const uint8_t *key, const uint8_t *nonce,
		       const uint8_t *in, size_t len, size_t mode,
		       struct sink *k)
{
	struct rp_stream *s = stream_new(dir, key, nonce);
	uint64_t rng = 0x9e3779b97f4a7c15u ^ len;
	size_t pos = 0;
	enum rp_err err = RP_OK;

	/* an empty feed is harmless anywhere */
	err = rp_stream_feed(s, st, NULL, 0, sink_out, k);
	while (!err && pos < len) {
		size_t n = next_piece(mode, &rng, len - pos);
		err = rp_stream_feed(s, st, in + pos, n, sink_out, k);
		pos += n;
	}
	if (!err) {
		err = rp_stream_finish(s, st, sink_out, k);
	}
	if (!err) {
		assert_int_equal(s->total_in, len);
		assert_int_equal(s->total_out, k->len);
	}
	stream_free(s);
	return err;
}

static void seal(const uint8_t *in, size_t len, size_t mode, struct sink *k)
{
	struct rp_status st = { 0 };

	assert_int_equal(run(RP_STREAM_SEAL, &st, test_key, test_nonce, in, len,
			     mode, k),
			 RP_OK);
	assert_int_equal(st.err, RP_OK);
}

static void test_age_stream_sealed_size_matches_format(void **state)
{
	(void)state;
	assert_int_equal(rp_stream_sealed_size(0), 16);
	assert_int_equal(rp_stream_sealed_size(1), 17);
	assert_int_equal(rp_stream_sealed_size(65535), 65551);
	assert_int_equal(rp_stream_sealed_size(65536), 65552);
	assert_int_equal(rp_stream_sealed_size(65537), 65537 + 32);
	assert_int_equal(rp_stream_sealed_size(131072), 131072 + 32);
	assert_int_equal(rp_stream_sealed_size(5 * MiB), 5 * MiB + 80 * 16);
	assert_int_equal(rp_stream_sealed_size(UINT64_MAX), UINT64_MAX);
}

static void test_age_stream_round_trip_in_pieces_identical(void **state)
{
	static const size_t sizes[] = { 0,     1,      65535,	       65536,
					65537, 131072, 5 * MiB + 12345 };

	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(sizes); i++) {
		uint8_t *plain = pattern(sizes[i]);
		for (size_t m = 0; m < RP_ARRAY_LEN(piece_modes); m++) {
			struct sink sealed = { 0 };
			struct sink opened = { 0 };
			struct rp_status st = { 0 };
			/* open with a different piece size than sealed */
			size_t open_mode =
				piece_modes[(m + 1) %
					    RP_ARRAY_LEN(piece_modes)];

			seal(plain, sizes[i], piece_modes[m], &sealed);
			assert_int_equal(sealed.len,
					 rp_stream_sealed_size(sizes[i]));
			assert_int_equal(run(RP_STREAM_OPEN, &st, test_key,
					     test_nonce, sealed.p, sealed.len,
					     open_mode, &opened),
					 RP_OK);
			assert_int_equal(opened.len, sizes[i]);
			assert_true(opened.max_call <= RP_STREAM_CHUNK);
			if (sizes[i]) {
				assert_memory_equal(opened.p, plain, sizes[i]);
			}
			sink_fini(&sealed);
			sink_fini(&opened);
		}
		free(plain);
	}
}

static void test_age_stream_chunk_shapes_match_age(void **state)
{
	static const struct {
		size_t len;
		size_t num_calls;
		size_t max_call;
	} cases[] = {
		{ 0, 1, 16 },			/* nonce + 16 = 32 bytes */
		{ 65536, 1, RP_STREAM_SEALED }, /* one full final chunk */
		{ 65537, 2, RP_STREAM_SEALED },
		{ 131072, 2, RP_STREAM_SEALED }, /* no empty third chunk */
	};

	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(cases); i++) {
		uint8_t *plain = pattern(cases[i].len);
		for (size_t m = 0; m < RP_ARRAY_LEN(piece_modes); m++) {
			struct sink k = { 0 };

			seal(plain, cases[i].len, piece_modes[m], &k);
			assert_int_equal(k.num_calls, cases[i].num_calls);
			assert_int_equal(k.max_call, cases[i].max_call);
			sink_fini(&k);
		}
		free(plain);
	}
}

static uint8_t *read_file(const char *name, size_t *out_len)
{
	char path[512];
	FILE *f;
	long len;
	uint8_t *p;

	assert_true(snprintf(path, sizeof(path), "%s/vectors/age_stream/%s",
			     RP_TEST_DIR, name) < (int)sizeof(path));
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	p = malloc((size_t)len + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*out_len = (size_t)len;
	return p;
}

static void from_hex(uint8_t *out, size_t out_len, const char *hex)
{
	assert_int_equal(strlen(hex), 2 * out_len);
	for (size_t i = 0; i < out_len; i++) {
		unsigned int v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* an `age` line: a payload stock age made; open it, and seal it again */
static void check_age_vector(const char *name, size_t plain_len,
			     const char *key_hex)
{
	uint8_t key[RP_AGE_FILE_KEY_LEN];
	struct rp_status st = { 0 };
	size_t len = 0;
	uint8_t *payload = read_file(name, &len);
	uint8_t *plain = pattern(plain_len);

	from_hex(key, sizeof(key), key_hex);
	assert_int_equal(len, 16 + rp_stream_sealed_size(plain_len));
	for (size_t m = 0; m < RP_ARRAY_LEN(piece_modes); m++) {
		struct sink opened = { 0 };
		struct sink sealed = { 0 };
		struct rp_stream *s = stream_new(RP_STREAM_SEAL, key, payload);

		assert_int_equal(run(RP_STREAM_OPEN, &st, key, payload,
				     payload + 16, len - 16, piece_modes[m],
				     &opened),
				 RP_OK);
		assert_int_equal(opened.len, plain_len);
		assert_int_equal(opened.num_calls, (plain_len + 65535) / 65536);
		if (plain_len) {
			assert_memory_equal(opened.p, plain, plain_len);
		}
		assert_int_equal(rp_stream_feed(s, &st, plain, plain_len,
						sink_out, &sealed),
				 RP_OK);
		assert_int_equal(rp_stream_finish(s, &st, sink_out, &sealed),
				 RP_OK);
		assert_int_equal(sealed.len, len - 16);
		assert_memory_equal(sealed.p, payload + 16, len - 16);
		stream_free(s);
		sink_fini(&opened);
		sink_fini(&sealed);
	}
	free(plain);
	free(payload);
}

/* a `model` line: the SHA-256 of what the Python model sealed */
static void check_model_vector(size_t plain_len, const char *key_hex,
			       const char *nonce_hex, size_t sealed_len,
			       const char *sha_hex)
{
	uint8_t key[RP_AGE_FILE_KEY_LEN];
	uint8_t nonce[RP_AGE_NONCE_LEN];
	uint8_t want[32];
	uint8_t got[32];
	unsigned int got_len = 0;
	struct rp_status st = { 0 };
	struct sink k = { 0 };
	uint8_t *plain = pattern(plain_len);

	from_hex(key, sizeof(key), key_hex);
	from_hex(nonce, sizeof(nonce), nonce_hex);
	from_hex(want, sizeof(want), sha_hex);
	k.md = EVP_MD_CTX_new();
	assert_non_null(k.md);
	assert_int_equal(EVP_DigestInit_ex(k.md, EVP_sha256(), NULL), 1);
	assert_int_equal(run(RP_STREAM_SEAL, &st, key, nonce, plain, plain_len,
			     PIECE_RANDOM, &k),
			 RP_OK);
	assert_int_equal(k.len, sealed_len);
	assert_int_equal(EVP_DigestFinal_ex(k.md, got, &got_len), 1);
	assert_memory_equal(got, want, sizeof(want));
	sink_fini(&k);
	free(plain);
}

static void test_age_stream_known_answers_match(void **state)
{
	char line[512];
	size_t num_age = 0;
	size_t num_model = 0;
	size_t len = 0;
	uint8_t *text = read_file("vectors.txt", &len);
	FILE *f = fmemopen(text, len, "r");

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char name[64], key[64], nonce[64], sha[80];
		size_t plain_len, sealed_len;

		if (sscanf(line, "age %63s %zu %63s", name, &plain_len, key) ==
		    3) {
			check_age_vector(name, plain_len, key);
			num_age++;
		} else if (sscanf(line, "model %zu %63s %63s %zu %79s",
				  &plain_len, key, nonce, &sealed_len,
				  sha) == 5) {
			check_model_vector(plain_len, key, nonce, sealed_len,
					   sha);
			num_model++;
		} else {
			assert_int_equal(line[0], '#');
		}
	}
	fclose(f);
	free(text);
	assert_true(num_age >= 4);
	assert_true(num_model >= 7);
}

/*
 * expect_open_fails opens `in` in every piece mode and checks the error,
 * that `msg` is in the message, and that exactly the first `num_ok`
 * chunks of plain were released: nothing of the failing chunk.
 */
static void expect_open_fails(const uint8_t *key, const uint8_t *nonce,
			      const uint8_t *in, size_t len,
			      const uint8_t *plain, enum rp_err want,
			      const char *msg, size_t num_ok)
{
	for (size_t m = 0; m < RP_ARRAY_LEN(piece_modes); m++) {
		struct rp_status st = { 0 };
		struct sink k = { 0 };

		assert_int_equal(run(RP_STREAM_OPEN, &st, key, nonce, in, len,
				     piece_modes[m], &k),
				 want);
		assert_int_equal(st.err, want);
		if (!strstr(st.msg, msg)) {
			fail_msg("message '%s' lacks '%s'", st.msg, msg);
		}
		assert_int_equal(k.len, num_ok * RP_STREAM_CHUNK);
		if (k.len) {
			assert_memory_equal(k.p, plain, k.len);
		}
		sink_fini(&k);
	}
}

#define PLAIN_3 150000 /* chunks of 65552, 65552 and 18944 bytes */

static void test_age_stream_flipped_byte_fails_auth(void **state)
{
	static const struct {
		size_t pos;
		const char *msg;
		size_t num_ok;
	} cases[] = {
		{ 0, "payload chunk 0 failed authentication", 0 },
		{ 65535, "payload chunk 0 failed authentication", 0 },
		{ 65551, "payload chunk 0 failed authentication", 0 },
		{ 65552, "payload chunk 1 failed authentication", 1 },
		{ 65552 + 30000, "payload chunk 1 failed authentication", 1 },
		{ 2 * 65552, "payload chunk 2 failed authentication", 2 },
		{ 2 * 65552 + 18943, "payload chunk 2 failed authentication",
		  2 },
	};
	uint8_t *plain = pattern(PLAIN_3);
	struct sink sealed = { 0 };

	(void)state;
	seal(plain, PLAIN_3, SIZE_MAX, &sealed);
	assert_int_equal(sealed.len, 2 * 65552 + 18944);
	for (size_t i = 0; i < RP_ARRAY_LEN(cases); i++) {
		sealed.p[cases[i].pos] ^= 0x20;
		expect_open_fails(test_key, test_nonce, sealed.p, sealed.len,
				  plain, RP_ERR_AUTH, cases[i].msg,
				  cases[i].num_ok);
		sealed.p[cases[i].pos] ^= 0x20;
	}
	sink_fini(&sealed);
	free(plain);
}

static void test_age_stream_truncated_fails(void **state)
{
	static const struct {
		size_t len;
		enum rp_err err;
		const char *msg;
		size_t num_ok;
	} cases[] = {
		{ 0, RP_ERR_FORMAT, "payload truncated", 0 },
		{ 1, RP_ERR_FORMAT, "payload truncated", 0 },
		{ 15, RP_ERR_FORMAT, "payload truncated", 0 },
		/* read as an empty final chunk 0 */
		{ 16, RP_ERR_AUTH, "chunk 0 failed authentication", 0 },
		{ 1000, RP_ERR_AUTH, "chunk 0 failed authentication", 0 },
		{ 65551, RP_ERR_AUTH, "chunk 0 failed authentication", 0 },
		/* a whole non-final chunk and nothing after it */
		{ 65552, RP_ERR_FORMAT, "payload truncated", 0 },
		{ 65553, RP_ERR_FORMAT, "payload truncated", 1 },
		{ 65552 + 15, RP_ERR_FORMAT, "payload truncated", 1 },
		{ 65552 + 16, RP_ERR_FORMAT, "empty final chunk", 1 },
		{ 65552 + 17, RP_ERR_AUTH, "chunk 1 failed authentication", 1 },
		/* the final chunk removed */
		{ 2 * 65552, RP_ERR_FORMAT, "payload truncated", 1 },
		{ 2 * 65552 + 18943, RP_ERR_AUTH,
		  "chunk 2 failed authentication", 2 },
	};
	uint8_t *plain = pattern(PLAIN_3);
	struct sink sealed = { 0 };

	(void)state;
	seal(plain, PLAIN_3, SIZE_MAX, &sealed);
	for (size_t i = 0; i < RP_ARRAY_LEN(cases); i++) {
		expect_open_fails(test_key, test_nonce, sealed.p, cases[i].len,
				  plain, cases[i].err, cases[i].msg,
				  cases[i].num_ok);
	}
	sink_fini(&sealed);
	free(plain);
}

static void test_age_stream_appended_bytes_fail_format(void **state)
{
	static const size_t extra[] = { 1, 15, 16, 17, 65552, 65553 };
	/* two full chunks: the last, final one is full too */
	uint8_t *plain = pattern(131072);
	struct sink sealed = { 0 };
	struct sink k = { 0 };
	struct rp_status st = { 0 };
	struct rp_stream *s;

	(void)state;
	seal(plain, 131072, SIZE_MAX, &sealed);
	for (size_t i = 0; i < RP_ARRAY_LEN(extra); i++) {
		uint8_t *p = malloc(sealed.len + extra[i]);

		assert_non_null(p);
		memcpy(p, sealed.p, sealed.len);
		/* append a copy of the start: chunk 0 again, or part of it */
		memcpy(p + sealed.len, sealed.p, extra[i]);
		expect_open_fails(test_key, test_nonce, p,
				  sealed.len + extra[i], plain, RP_ERR_FORMAT,
				  "data after the final chunk", 1);
		free(p);
	}

	/* bytes fed after a successful finish */
	s = stream_new(RP_STREAM_OPEN, test_key, test_nonce);
	assert_int_equal(
		rp_stream_feed(s, &st, sealed.p, sealed.len, sink_out, &k),
		RP_OK);
	assert_int_equal(rp_stream_finish(s, &st, sink_out, &k), RP_OK);
	assert_int_equal(rp_stream_feed(s, &st, sealed.p, 1, sink_out, &k),
			 RP_ERR_FORMAT);
	assert_string_equal(st.msg, "data after the final chunk");
	assert_int_equal(k.len, 131072);
	stream_free(s);
	sink_fini(&k);
	sink_fini(&sealed);
	free(plain);
}

static void test_age_stream_appended_to_short_final_fails_auth(void **state)
{
	/*
	 * A short final chunk cannot be told from a longer one that does
	 * not verify, so bytes appended to it fail its tag (as in age).
	 */
	uint8_t *plain = pattern(PLAIN_3);
	struct sink sealed = { 0 };
	uint8_t *p;

	(void)state;
	seal(plain, PLAIN_3, SIZE_MAX, &sealed);
	p = malloc(sealed.len + 1);
	assert_non_null(p);
	memcpy(p, sealed.p, sealed.len);
	p[sealed.len] = 0;
	expect_open_fails(test_key, test_nonce, p, sealed.len + 1, plain,
			  RP_ERR_AUTH, "chunk 2 failed authentication", 2);
	free(p);
	sink_fini(&sealed);
	free(plain);
}

static void swap_chunks(uint8_t *p, size_t a, size_t b)
{
	uint8_t *tmp = malloc(RP_STREAM_SEALED);

	assert_non_null(tmp);
	memcpy(tmp, p + a * RP_STREAM_SEALED, RP_STREAM_SEALED);
	memcpy(p + a * RP_STREAM_SEALED, p + b * RP_STREAM_SEALED,
	       RP_STREAM_SEALED);
	memcpy(p + b * RP_STREAM_SEALED, tmp, RP_STREAM_SEALED);
	free(tmp);
}

static void test_age_stream_reordered_chunks_fail_auth(void **state)
{
	/* four chunks: three full, then a short final one */
	const size_t len = 3 * RP_STREAM_CHUNK + 100;
	uint8_t *plain = pattern(len);
	struct sink sealed = { 0 };
	uint8_t *p;

	(void)state;
	seal(plain, len, SIZE_MAX, &sealed);
	p = malloc(sealed.len);
	assert_non_null(p);

	memcpy(p, sealed.p, sealed.len);
	swap_chunks(p, 0, 1);
	expect_open_fails(test_key, test_nonce, p, sealed.len, plain,
			  RP_ERR_AUTH, "chunk 0 failed authentication", 0);

	memcpy(p, sealed.p, sealed.len);
	swap_chunks(p, 1, 2);
	expect_open_fails(test_key, test_nonce, p, sealed.len, plain,
			  RP_ERR_AUTH, "chunk 1 failed authentication", 1);

	/* chunk 0 replayed in place of chunk 2 */
	memcpy(p, sealed.p, sealed.len);
	memcpy(p + 2 * RP_STREAM_SEALED, p, RP_STREAM_SEALED);
	expect_open_fails(test_key, test_nonce, p, sealed.len, plain,
			  RP_ERR_AUTH, "chunk 2 failed authentication", 2);

	/* chunk 2 dropped: chunk 3 (final) arrives as chunk 2 */
	memcpy(p, sealed.p, sealed.len);
	memmove(p + 2 * RP_STREAM_SEALED, p + 3 * RP_STREAM_SEALED, 116);
	expect_open_fails(test_key, test_nonce, p, 2 * RP_STREAM_SEALED + 116,
			  plain, RP_ERR_AUTH, "chunk 2 failed authentication",
			  2);

	free(p);
	sink_fini(&sealed);
	free(plain);
}

static void test_age_stream_wrong_key_or_nonce_fails_auth(void **state)
{
	static const size_t sizes[] = { 0, 100, 65536, PLAIN_3 };
	uint8_t key[RP_AGE_FILE_KEY_LEN];
	uint8_t nonce[RP_AGE_NONCE_LEN];

	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(sizes); i++) {
		uint8_t *plain = pattern(sizes[i]);
		struct sink sealed = { 0 };

		seal(plain, sizes[i], SIZE_MAX, &sealed);
		memcpy(key, test_key, sizeof(key));
		key[15] ^= 1;
		expect_open_fails(key, test_nonce, sealed.p, sealed.len, plain,
				  RP_ERR_AUTH, "chunk 0 failed authentication",
				  0);
		memcpy(nonce, test_nonce, sizeof(nonce));
		nonce[0] ^= 0x80;
		expect_open_fails(test_key, nonce, sealed.p, sealed.len, plain,
				  RP_ERR_AUTH, "chunk 0 failed authentication",
				  0);
		sink_fini(&sealed);
		free(plain);
	}
}

static void test_age_stream_out_fn_error_propagates(void **state)
{
	uint8_t *plain = pattern(PLAIN_3);
	struct sink sealed = { 0 };

	(void)state;
	seal(plain, PLAIN_3, SIZE_MAX, &sealed);
	for (size_t call = 1; call <= 3; call++) {
		struct sink k = { .fail_at_call = call };
		struct rp_status st = { 0 };
		struct rp_stream *s;

		assert_int_equal(run(RP_STREAM_SEAL, &st, test_key, test_nonce,
				     plain, PLAIN_3, 7, &k),
				 RP_ERR_IO);
		assert_int_equal(st.err, RP_ERR_IO);
		assert_int_equal(k.num_calls, call);
		sink_fini(&k);

		k = (struct sink){ .fail_at_call = call };
		rp_status_clear(&st);
		assert_int_equal(run(RP_STREAM_OPEN, &st, test_key, test_nonce,
				     sealed.p, sealed.len, 7, &k),
				 RP_ERR_IO);
		assert_int_equal(k.num_calls, call);
		sink_fini(&k);

		/* a failed stream stays failed */
		k = (struct sink){ .fail_at_call = 1 };
		rp_status_clear(&st);
		s = stream_new(RP_STREAM_OPEN, test_key, test_nonce);
		assert_int_equal(rp_stream_feed(s, &st, sealed.p, sealed.len,
						sink_out, &k),
				 RP_ERR_IO);
		rp_status_clear(&st);
		assert_int_equal(rp_stream_finish(s, &st, sink_out, &k),
				 RP_ERR_USAGE);
		assert_int_equal(k.num_calls, 1);
		stream_free(s);
		sink_fini(&k);
	}
	sink_fini(&sealed);
	free(plain);
}

static void test_age_stream_misuse_fails_usage(void **state)
{
	struct rp_stream zero = { 0 };
	struct rp_status st = { 0 };
	struct sink k = { 0 };
	struct rp_stream *s = stream_new(RP_STREAM_SEAL, test_key, test_nonce);
	const uint8_t b = 'x';

	(void)state;
	assert_int_equal(rp_stream_finish(s, &st, sink_out, &k), RP_OK);
	assert_int_equal(k.len, 16);
	assert_int_equal(rp_stream_feed(s, &st, &b, 1, sink_out, &k),
			 RP_ERR_USAGE);
	stream_free(s);

	/* a zeroed or finished stream is safe to fini, twice */
	rp_stream_fini(&zero);
	rp_stream_fini(&zero);
	rp_status_clear(&st);
	assert_int_equal(rp_stream_feed(&zero, &st, &b, 1, sink_out, &k),
			 RP_ERR_USAGE);
	sink_fini(&k);
}

/* check_final runs rp_stream_check_final over a sealed payload */
static enum rp_err check_final(const uint8_t *p, uint64_t len)
{
	struct rp_stream *s = stream_new(RP_STREAM_OPEN, test_key, test_nonce);
	struct rp_status st = { 0 };
	const uint64_t n = len ? (len + RP_STREAM_SEALED - 1) / RP_STREAM_SEALED
			       : 1;
	const uint64_t off = (n - 1) * RP_STREAM_SEALED;
	enum rp_err err;

	err = rp_stream_check_final(s, &st, len, p + off, (size_t)(len - off));
	if (err) {
		assert_true(st.msg[0] != '\0');
	}
	stream_free(s);
	return err;
}

static void test_age_stream_check_final_catches_cut_and_extension(void **state)
{
	static const size_t sizes[] = { 0, 100, 65536, 65537, 200000 };

	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(sizes); i++) {
		uint8_t *plain = calloc(1, sizes[i] + 1);
		struct sink k = { 0 };
		uint8_t *ext;

		assert_non_null(plain);
		seal(plain, sizes[i], 7, &k);
		assert_int_equal(check_final(k.p, k.len), RP_OK);
		/* one byte short, whole final chunk removed */
		assert_int_not_equal(check_final(k.p, k.len - 1), RP_OK);
		if (k.len > RP_STREAM_SEALED + RP_STREAM_TAG) {
			const uint64_t n = (k.len + RP_STREAM_SEALED - 1) /
					   RP_STREAM_SEALED;

			assert_int_not_equal(
				check_final(k.p, (n - 1) * RP_STREAM_SEALED),
				RP_OK);
		}
		/* extended by a byte */
		ext = malloc(k.len + 1);
		assert_non_null(ext);
		memcpy(ext, k.p, k.len);
		ext[k.len] = 0x42;
		assert_int_not_equal(check_final(ext, k.len + 1), RP_OK);
		/* a flipped byte in the final chunk */
		k.p[k.len - 1] ^= 1;
		assert_int_equal(check_final(k.p, k.len), RP_ERR_AUTH);
		free(ext);
		free(plain);
		sink_fini(&k);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_age_stream_sealed_size_matches_format),
		cmocka_unit_test(
			test_age_stream_check_final_catches_cut_and_extension),
		cmocka_unit_test(
			test_age_stream_round_trip_in_pieces_identical),
		cmocka_unit_test(test_age_stream_chunk_shapes_match_age),
		cmocka_unit_test(test_age_stream_known_answers_match),
		cmocka_unit_test(test_age_stream_flipped_byte_fails_auth),
		cmocka_unit_test(test_age_stream_truncated_fails),
		cmocka_unit_test(test_age_stream_appended_bytes_fail_format),
		cmocka_unit_test(
			test_age_stream_appended_to_short_final_fails_auth),
		cmocka_unit_test(test_age_stream_reordered_chunks_fail_auth),
		cmocka_unit_test(test_age_stream_wrong_key_or_nonce_fails_auth),
		cmocka_unit_test(test_age_stream_out_fn_error_propagates),
		cmocka_unit_test(test_age_stream_misuse_fails_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
