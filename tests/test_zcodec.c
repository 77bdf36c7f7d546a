#include "rp_test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zcodec.h"

#define MiB	 (1024 * 1024)
#define ZSTD_CLI "/usr/bin/zstd"

/* piece sizes to feed with; PIECE_RANDOM draws each one, 0 included */
#define PIECE_RANDOM 0
static const size_t piece_modes[] = { 1, 7, 4096, PIECE_RANDOM, SIZE_MAX };

/* struct sink records what a codec passes to its out_fn */
struct sink {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t num_calls;
	size_t fail_at_call; /* 1-based; 0: never fail */
	bool is_discard;     /* count the bytes only */
};

static enum rp_err sink_out(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	k->num_calls++;
	if (k->fail_at_call && k->num_calls == k->fail_at_call) {
		return RP_ERR_IO;
	}
	assert_true(len > 0);
	if (k->is_discard) {
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
	memset(k, 0, sizeof(*k));
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* text-like bytes: words drawn from a small list */
static uint8_t *compressible(size_t len)
{
	static const char *const words[] = { "license ", "payload ", "chunk ",
					     "tenant ",	 "rewrap\n", "age " };
	uint8_t *p = malloc(len ? len : 1);
	uint64_t rng = 42;
	size_t pos = 0;

	assert_non_null(p);
	while (pos < len) {
		const char *w = words[xorshift(&rng) % RP_ARRAY_LEN(words)];
		for (size_t i = 0; w[i] && pos < len; i++) {
			p[pos++] = (uint8_t)w[i];
		}
	}
	return p;
}

static uint8_t *random_bytes(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint64_t rng = 0x243f6a8885a308d3u;

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(xorshift(&rng) >> 24);
	}
	return p;
}

static size_t next_piece(size_t mode, uint64_t *rng, size_t left)
{
	size_t n = mode;

	if (mode == PIECE_RANDOM) {
		n = (size_t)(xorshift(rng) % 70001);
	}
	return n < left ? n : left;
}

/* feed_all feeds `in` in pieces of `mode`, then finishes */
static enum rp_err feed_all(struct rp_zcodec *z, struct rp_status *st,
			    const uint8_t *in, size_t len, size_t mode,
			    struct sink *k)
{
	uint64_t rng = 0x9e3779b97f4a7c15u ^ len;
	size_t pos = 0;
	enum rp_err err;

	err = rp_zcodec_feed(z, st, NULL, 0, sink_out, k);
	while (!err && pos < len) {
		size_t n = next_piece(mode, &rng, len - pos);
		err = rp_zcodec_feed(z, st, in + pos, n, sink_out, k);
		pos += n;
	}
	if (!err) {
		err = rp_zcodec_finish(z, st, sink_out, k);
	}
	return err;
}

static void compress(int level, const uint8_t *in, size_t len, size_t mode,
		     struct sink *k)
{
	struct rp_zcodec z = { 0 };
	struct rp_status st = { 0 };

	assert_int_equal(rp_zcodec_init_compress(&z, &st, level), RP_OK);
	assert_int_equal(feed_all(&z, &st, in, len, mode, k), RP_OK);
	assert_int_equal(z.total_out, k->len);
	rp_zcodec_fini(&z);
}

static enum rp_err decompress(struct rp_status *st, uint64_t max_out,
			      const uint8_t *in, size_t len, size_t mode,
			      struct sink *k)
{
	struct rp_zcodec z = { 0 };
	enum rp_err err;

	assert_int_equal(rp_zcodec_init_decompress(&z, st, max_out), RP_OK);
	err = feed_all(&z, st, in, len, mode, k);
	assert_true(z.total_out <= max_out);
	rp_zcodec_fini(&z);
	return err;
}

static void expect_format(const uint8_t *in, size_t len, uint64_t max_out,
			  const char *msg)
{
	for (size_t m = 0; m < RP_ARRAY_LEN(piece_modes); m++) {
		struct rp_status st = { 0 };
		struct sink k = { 0 };

		assert_int_equal(
			decompress(&st, max_out, in, len, piece_modes[m], &k),
			RP_ERR_FORMAT);
		assert_int_equal(st.err, RP_ERR_FORMAT);
		if (msg && !strstr(st.msg, msg)) {
			fail_msg("message '%s' lacks '%s'", st.msg, msg);
		}
		assert_true(k.len <= max_out);
		sink_fini(&k);
	}
}

static void test_zcodec_round_trip_in_pieces_identical(void **state)
{
	static const size_t sizes[] = { 0, 1, MiB };

	(void)state;
	for (int kind = 0; kind < 2; kind++) {
		for (size_t i = 0; i < RP_ARRAY_LEN(sizes); i++) {
			const size_t len = sizes[i];
			uint8_t *plain =
				kind ? random_bytes(len) : compressible(len);
			for (size_t m = 0; m < RP_ARRAY_LEN(piece_modes); m++) {
				struct sink c = { 0 };
				struct sink d = { 0 };
				struct rp_status st = { 0 };
				size_t open_mode =
					piece_modes[(m + 1) %
						    RP_ARRAY_LEN(piece_modes)];

				compress(3, plain, len, piece_modes[m], &c);
				if (kind == 0 && len == MiB) {
					assert_true(c.len < len / 4);
				}
				assert_int_equal(decompress(&st, len, c.p,
							    c.len, open_mode,
							    &d),
						 RP_OK);
				assert_int_equal(d.len, len);
				if (len) {
					assert_memory_equal(d.p, plain, len);
				}
				sink_fini(&c);
				sink_fini(&d);
			}
			free(plain);
		}
	}
}

static void test_zcodec_levels_round_trip(void **state)
{
	static const int levels[] = { -5, 0, 1, 9, 19 };
	const size_t len = 256 * 1024;
	uint8_t *plain = compressible(len);
	struct rp_zcodec z = { 0 };
	struct rp_status st = { 0 };

	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(levels); i++) {
		struct sink c = { 0 };
		struct sink d = { 0 };

		compress(levels[i], plain, len, PIECE_RANDOM, &c);
		assert_int_equal(
			decompress(&st, len, c.p, c.len, PIECE_RANDOM, &d),
			RP_OK);
		assert_int_equal(d.len, len);
		assert_memory_equal(d.p, plain, len);
		sink_fini(&c);
		sink_fini(&d);
	}
	assert_int_equal(rp_zcodec_init_compress(&z, &st, 1000), RP_ERR_USAGE);
	assert_null(z.cstream);
	assert_null(z.out);
	rp_zcodec_fini(&z);
	free(plain);
}

static void write_file(const char *path, const uint8_t *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* run_cli runs `zstd <args> < in` and returns what it printed */
static void run_cli(const char *args, const char *in_path, struct sink *k)
{
	char cmd[512];
	uint8_t buf[65536];
	size_t n;
	FILE *f;

	assert_true(snprintf(cmd, sizeof(cmd), ZSTD_CLI " %s < '%s'", args,
			     in_path) < (int)sizeof(cmd));
	f = popen(cmd, "r");
	assert_non_null(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		assert_int_equal(sink_out(k, buf, n), RP_OK);
	}
	assert_int_equal(pclose(f), 0);
}

static void test_zcodec_interop_with_zstd_cli_identical(void **state)
{
	static const size_t sizes[] = { 0, 1, MiB };
	char path[] = "/tmp/test_zcodec_XXXXXX";
	int fd;

	(void)state;
	if (access(ZSTD_CLI, X_OK)) {
		skip();
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	for (int kind = 0; kind < 2; kind++) {
		for (size_t i = 0; i < RP_ARRAY_LEN(sizes); i++) {
			const size_t len = sizes[i];
			uint8_t *plain =
				kind ? random_bytes(len) : compressible(len);
			struct sink c = { 0 };
			struct sink d = { 0 };
			struct rp_status st = { 0 };

			/* ours compressed, the CLI decompresses */
			compress(3, plain, len, 4096, &c);
			write_file(path, c.p, c.len);
			run_cli("-d -c -q", path, &d);
			assert_int_equal(d.len, len);
			if (len) {
				assert_memory_equal(d.p, plain, len);
			}
			sink_fini(&c);
			sink_fini(&d);

			/* the CLI compressed, ours decompresses */
			write_file(path, plain, len);
			run_cli("-c -q -3", path, &c);
			assert_int_equal(decompress(&st, len, c.p, c.len,
						    PIECE_RANDOM, &d),
					 RP_OK);
			assert_int_equal(d.len, len);
			if (len) {
				assert_memory_equal(d.p, plain, len);
			}
			sink_fini(&c);
			sink_fini(&d);
			free(plain);
		}
	}
	unlink(path);
}

static void test_zcodec_max_out_exceeded_fails_format(void **state)
{
	const size_t len = MiB;
	uint8_t *plain = compressible(len);
	uint8_t *zeros = calloc(1, MiB);
	struct sink c = { 0 };
	struct sink d = { 0 };
	struct sink bomb = { 0 };
	struct rp_zcodec z = { 0 };
	struct rp_status st = { 0 };

	(void)state;
	assert_non_null(zeros);
	compress(3, plain, len, SIZE_MAX, &c);
	assert_int_equal(decompress(&st, len, c.p, c.len, SIZE_MAX, &d), RP_OK);
	sink_fini(&d);
	expect_format(c.p, c.len, len - 1,
		      "decompressed size exceeds the license's plaintext size");
	expect_format(c.p, c.len, 0,
		      "decompressed size exceeds the license's plaintext size");

	/* 256 MiB of zeros in a few KiB, opened with a 1 MiB limit */
	assert_int_equal(rp_zcodec_init_compress(&z, &st, 1), RP_OK);
	for (int i = 0; i < 256; i++) {
		assert_int_equal(
			rp_zcodec_feed(&z, &st, zeros, MiB, sink_out, &bomb),
			RP_OK);
	}
	assert_int_equal(rp_zcodec_finish(&z, &st, sink_out, &bomb), RP_OK);
	rp_zcodec_fini(&z);
	assert_true(bomb.len < 64 * 1024);
	d.is_discard = true;
	assert_int_equal(decompress(&st, MiB, bomb.p, bomb.len, SIZE_MAX, &d),
			 RP_ERR_FORMAT);
	assert_true(d.len <= MiB);

	sink_fini(&bomb);
	sink_fini(&c);
	free(zeros);
	free(plain);
}

static void test_zcodec_truncated_frame_fails_format(void **state)
{
	const size_t len = MiB;
	uint8_t *plain = random_bytes(len);
	struct sink c = { 0 };

	(void)state;
	compress(3, plain, len, SIZE_MAX, &c);
	/* no frame at all, then cuts inside the header, blocks, checksum */
	expect_format(c.p, 0, len, "compressed payload truncated");
	expect_format(c.p, 1, len, "compressed payload truncated");
	expect_format(c.p, 4, len, "compressed payload truncated");
	expect_format(c.p, 9, len, NULL);
	expect_format(c.p, c.len / 2, len, NULL);
	expect_format(c.p, c.len - 4, len, "compressed payload truncated");
	expect_format(c.p, c.len - 1, len, "compressed payload truncated");
	sink_fini(&c);
	free(plain);
}

static void test_zcodec_garbage_fails_format(void **state)
{
	uint8_t *junk = random_bytes(100000);
	uint8_t *plain = compressible(100000);
	struct sink c = { 0 };

	(void)state;
	expect_format(junk, 10000, MiB, "compressed payload is corrupt");
	expect_format(junk, 1, MiB, NULL);

	/* a valid frame header followed by junk */
	compress(3, plain, 100000, SIZE_MAX, &c);
	assert_true(c.len < 100000);
	memcpy(c.p + 6, junk, c.len - 6);
	expect_format(c.p, c.len, MiB, NULL);
	sink_fini(&c);

	/* one flipped bit in the content checksum */
	compress(3, plain, 100000, SIZE_MAX, &c);
	c.p[c.len - 1] ^= 1;
	expect_format(c.p, c.len, MiB, "compressed payload is corrupt");
	sink_fini(&c);
	free(plain);
	free(junk);
}

static void test_zcodec_trailing_bytes_fail_format(void **state)
{
	uint8_t *plain = compressible(100000);
	struct sink c = { 0 };
	struct sink d = { 0 };
	struct rp_zcodec z = { 0 };
	struct rp_status st = { 0 };
	uint8_t *two;

	(void)state;
	compress(3, plain, 100000, SIZE_MAX, &c);
	two = malloc(2 * c.len);
	assert_non_null(two);
	memcpy(two, c.p, c.len);
	memcpy(two + c.len, c.p, c.len);
	/* a second whole frame, or one stray byte */
	expect_format(two, 2 * c.len, MiB, "trailing bytes");
	expect_format(two, c.len + 1, MiB, "trailing bytes");

	/* the stray byte in a feed of its own after the frame */
	assert_int_equal(rp_zcodec_init_decompress(&z, &st, MiB), RP_OK);
	assert_int_equal(rp_zcodec_feed(&z, &st, c.p, c.len, sink_out, &d),
			 RP_OK);
	assert_true(z.is_frame_done);
	assert_int_equal(rp_zcodec_feed(&z, &st, c.p, 1, sink_out, &d),
			 RP_ERR_FORMAT);
	assert_non_null(strstr(st.msg, "trailing bytes"));
	rp_zcodec_fini(&z);

	free(two);
	sink_fini(&c);
	sink_fini(&d);
	free(plain);
}

static void test_zcodec_out_fn_error_propagates(void **state)
{
	const size_t len = MiB;
	uint8_t *plain = random_bytes(len);
	struct sink c = { 0 };
	struct rp_zcodec z = { 0 };

	(void)state;
	compress(3, plain, len, SIZE_MAX, &c);
	for (size_t call = 1; call <= 2; call++) {
		struct sink k = { .fail_at_call = call };
		struct rp_status st = { 0 };

		assert_int_equal(rp_zcodec_init_compress(&z, &st, 3), RP_OK);
		assert_int_equal(feed_all(&z, &st, plain, len, 4096, &k),
				 RP_ERR_IO);
		assert_int_equal(st.err, RP_ERR_IO);
		assert_int_equal(k.num_calls, call);
		rp_zcodec_fini(&z);
		sink_fini(&k);

		k = (struct sink){ .fail_at_call = call };
		rp_status_clear(&st);
		assert_int_equal(decompress(&st, len, c.p, c.len, 4096, &k),
				 RP_ERR_IO);
		assert_int_equal(st.err, RP_ERR_IO);
		assert_int_equal(k.num_calls, call);
		sink_fini(&k);
	}
	sink_fini(&c);
	free(plain);
}

static void test_zcodec_misuse_fails_usage(void **state)
{
	struct rp_zcodec z = { 0 };
	struct rp_status st = { 0 };
	struct sink k = { 0 };
	const uint8_t b = 'x';

	(void)state;
	assert_int_equal(rp_zcodec_feed(&z, &st, &b, 1, sink_out, &k),
			 RP_ERR_USAGE);
	assert_int_equal(rp_zcodec_finish(&z, &st, sink_out, &k), RP_ERR_USAGE);
	rp_zcodec_fini(&z);

	rp_status_clear(&st);
	assert_int_equal(rp_zcodec_init_compress(&z, &st, 3), RP_OK);
	assert_non_null(z.out);
	assert_int_equal(rp_zcodec_finish(&z, &st, sink_out, &k), RP_OK);
	assert_int_equal(rp_zcodec_feed(&z, &st, &b, 1, sink_out, &k),
			 RP_ERR_USAGE);
	assert_int_equal(rp_zcodec_finish(&z, &st, sink_out, &k), RP_ERR_USAGE);
	rp_zcodec_fini(&z);
	rp_zcodec_fini(&z);
	sink_fini(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zcodec_round_trip_in_pieces_identical),
		cmocka_unit_test(test_zcodec_levels_round_trip),
		cmocka_unit_test(test_zcodec_interop_with_zstd_cli_identical),
		cmocka_unit_test(test_zcodec_max_out_exceeded_fails_format),
		cmocka_unit_test(test_zcodec_truncated_frame_fails_format),
		cmocka_unit_test(test_zcodec_garbage_fails_format),
		cmocka_unit_test(test_zcodec_trailing_bytes_fail_format),
		cmocka_unit_test(test_zcodec_out_fn_error_propagates),
		cmocka_unit_test(test_zcodec_misuse_fails_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
