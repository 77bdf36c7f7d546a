/*
 * fuzz_zcodec: zstd decompression of the (decrypted, so attacker-chosen
 * when the key is the attacker's) payload, rp_zcodec_* with a max_out.
 * Input: a control byte, max_out (3 bytes big-endian, of which the low 18
 * bits count: at most 256 KiB, to keep zstd bombs quick), then the rest.
 *
 * Control bit 0x80 clear: the rest is a zstd frame. It is decompressed fed
 * whole and fed in pieces (sizes picked by the control byte), and:
 *   - never more than max_out bytes come out, at any point;
 *   - both give the same result, the same output on success, and on a
 *     failure outputs of which one is a prefix of the other (zstd holds
 *     back output, so how much came out before the fault can differ);
 *   - a success means the rest is exactly one whole frame, and zstd's own
 *     one-shot decoder gives the same bytes.
 * Control bit 0x80 set: the rest is compressed at level (control & 3) - 1
 * (-1, the default 3, 1 or 2) in pieces, then decompressed with max_out = its
 * exact size (must give it back) and with one byte less (must fail with
 * RP_ERR_FORMAT).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "fuzz.h"
#include "zcodec.h"


#define HDR_LEN 4

struct sink {
	uint8_t *p;
	size_t len, cap;
	uint64_t max_out; /* UINT64_MAX when compressing */
};

static enum rp_err sink_out(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	CHECK(len > 0);
	CHECK(len <= k->max_out && k->len <= k->max_out - len);
	if (k->len + len > k->cap) {
		size_t cap = k->cap ? k->cap : 4096;

		while (cap < k->len + len) {
			cap *= 2;
		}
		k->p = realloc(k->p, cap);
		CHECK(k->p != NULL);
		k->cap = cap;
	}
	memcpy(k->p + k->len, p, len);
	k->len += len;
	return RP_OK;
}

static size_t next_piece(uint32_t *state)
{
	static const size_t sizes[] = { 1, 2, 3, 7, 64, 1000, 4096, 131072 };

	*state = *state * 1103515245u + 12345u;
	return sizes[(*state >> 16) % RP_ARRAY_LEN(sizes)];
}

/*
 * run decompresses (max_out given) or compresses (level given, max_out
 * UINT64_MAX) `in`, fed whole (seed 0) or in pieces, and finishes.
 */
static enum rp_err run(bool is_compress, int level, uint64_t max_out,
		       const uint8_t *in, size_t in_len, uint32_t seed,
		       struct sink *k)
{
	struct rp_zcodec z;
	struct rp_status st = { 0 };
	size_t off = 0;
	enum rp_err err;

	k->len = 0;
	k->max_out = is_compress ? UINT64_MAX : max_out;
	err = is_compress ? rp_zcodec_init_compress(&z, &st, level)
			  : rp_zcodec_init_decompress(&z, &st, max_out);
	CHECK(err == RP_OK);
	do {
		size_t n = seed ? next_piece(&seed) : in_len;

		if (n > in_len - off) {
			n = in_len - off;
		}
		err = rp_zcodec_feed(&z, &st, in + off, n, sink_out, k);
		off += n;
	} while (!err && off < in_len);
	if (!err) {
		err = rp_zcodec_finish(&z, &st, sink_out, k);
	}
	if (err) {
		CHECK(st.err == err && st.msg[0] != '\0');
	}
	CHECK(z.total_out == k->len);
	rp_zcodec_fini(&z);
	return err;
}

static void decompress_raw(uint8_t ctl, uint64_t max_out, const uint8_t *in,
			   size_t in_len)
{
	struct sink a = { 0 }, b = { 0 };
	enum rp_err ea, eb;
	size_t n;

	ea = run(false, 0, max_out, in, in_len, 0, &a);
	eb = run(false, 0, max_out, in, in_len, ctl | 0x100u, &b);
	CHECK(ea == RP_OK || ea == RP_ERR_FORMAT);
	CHECK(ea == eb);
	/* zstd buffers: how much comes out before a fault depends on pieces */
	CHECK(ea || a.len == b.len);
	n = a.len < b.len ? a.len : b.len;
	CHECK(!n || !memcmp(a.p, b.p, n));
	if (!ea) {
		uint8_t *one = malloc(a.len + 1);
		size_t r;

		CHECK(one != NULL);
		CHECK(ZSTD_findFrameCompressedSize(in, in_len) == in_len);
		r = ZSTD_decompress(one, a.len + 1, in, in_len);
		CHECK(!ZSTD_isError(r) && r == a.len);
		CHECK(!a.len || !memcmp(one, a.p, a.len));
		free(one);
	}
	free(a.p);
	free(b.p);
}

static void round_trip(uint8_t ctl, const uint8_t *in, size_t in_len)
{
	struct sink c = { 0 }, d = { 0 };

	CHECK(run(true, (ctl & 3) - 1, 0, in, in_len, ctl | 0x200u, &c) ==
	      RP_OK);
	CHECK(run(false, 0, in_len, c.p, c.len, ctl | 0x300u, &d) == RP_OK);
	CHECK(d.len == in_len && (!in_len || !memcmp(d.p, in, in_len)));
	if (in_len) {
		CHECK(run(false, 0, in_len - 1, c.p, c.len, 0, &d) ==
		      RP_ERR_FORMAT);
		CHECK(d.len <= in_len - 1);
	}
	free(c.p);
	free(d.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t max_out;

	if (size < HDR_LEN) {
		return 0;
	}
	max_out = ((uint64_t)data[1] << 16 | (uint64_t)data[2] << 8 | data[3]) &
		  0x3ffff;
	if (data[0] & 0x80) {
		round_trip(data[0], data + HDR_LEN, size - HDR_LEN);
	} else {
		decompress_raw(data[0], max_out, data + HDR_LEN,
			       size - HDR_LEN);
	}
	return 0;
}
