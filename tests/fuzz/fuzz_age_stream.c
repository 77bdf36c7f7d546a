/*
 * fuzz_age_stream: the age STREAM payload reader (rp_stream_* in the open
 * direction) under a fixed file key. Input: a control byte, the 16-byte
 * payload nonce, then the rest.
 *
 * Control bit 0x80 clear: the rest is a payload to open. It is opened fed
 * whole and fed in pieces (sizes picked by the control byte), and:
 *   - both give the same result and the same released bytes;
 *   - at every release, released + 16 * chunks released <= bytes fed, and
 *     no release is over 64 KiB: never more plaintext than ciphertext
 *     minus tags;
 *   - a success has exactly rp_stream_sealed_size(released) bytes fed,
 *     sealing the plaintext again gives the payload byte for byte, and
 *     rp_stream_check_final accepts its final chunk.
 * Control bit 0x80 set: the rest is a 2-byte parameter and a plaintext
 * seed, repeated to (control & 7) * 32 KiB more bytes. It is sealed in
 * pieces (to exactly rp_stream_sealed_size bytes), then damaged as control
 * bits 0x30 say (not at all, truncated, one bit flipped, bytes appended)
 * and opened in pieces: only the undamaged payload opens, to exactly the
 * plaintext; whatever a damaged one released is a prefix of the plaintext;
 * rp_stream_check_final accepts exactly the payloads whose final chunk is
 * intact.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "age_stream.h"


static const uint8_t fixed_file_key[RP_AGE_FILE_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

enum damage { DMG_NONE = 0, DMG_TRUNCATE, DMG_FLIP, DMG_APPEND };

/* what a stream passed on, and what it had been fed when it did */
struct sink {
	uint8_t *p;
	size_t len, cap;
	uint64_t fed;	 /* bytes given to rp_stream_feed so far */
	size_t releases; /* calls of the output function */
	bool is_opening;
};

static struct rp_stream *stream;

static void sink_add(struct sink *k, const uint8_t *p, size_t len)
{
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
}

static enum rp_err sink_out(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	CHECK(len > 0);
	if (k->is_opening) {
		CHECK(len <= RP_STREAM_CHUNK);
		CHECK(k->len + len + RP_STREAM_TAG * (k->releases + 1) <=
		      k->fed);
	} else {
		CHECK(len >= RP_STREAM_TAG && len <= RP_STREAM_SEALED);
	}
	k->releases++;
	sink_add(k, p, len);
	return RP_OK;
}

static void sink_reset(struct sink *k, bool is_opening)
{
	k->len = 0;
	k->fed = 0;
	k->releases = 0;
	k->is_opening = is_opening;
}

/* next_piece picks the next feed size: a small LCG over edge sizes */
static size_t next_piece(uint32_t *state)
{
	/* around a tag, a chunk and a sealed chunk */
	static const size_t sizes[] = {
		1, 15, 16, 17, 4096, 65535, 65536, 65552, 65553, 131104,
	};

	*state = *state * 1103515245u + 12345u;
	return sizes[(*state >> 16) % RP_ARRAY_LEN(sizes)];
}

/*
 * run feeds `in` to a fresh stream (whole if seed is 0, else in pieces)
 * and finishes it; returns the first error.
 */
static enum rp_err run(enum rp_stream_dir dir, const uint8_t *nonce,
		       const uint8_t *in, size_t in_len, uint32_t seed,
		       struct sink *k)
{
	struct rp_status st = { 0 };
	size_t off = 0;
	enum rp_err err;

	sink_reset(k, dir == RP_STREAM_OPEN);
	CHECK(rp_stream_init(stream, &st, dir, fixed_file_key, nonce) == RP_OK);
	err = RP_OK;
	while (!err && off < in_len) {
		size_t n = seed ? next_piece(&seed) : in_len;

		if (n > in_len - off) {
			n = in_len - off;
		}
		k->fed += n;
		err = rp_stream_feed(stream, &st, in + off, n, sink_out, k);
		off += n;
	}
	if (!err) {
		err = rp_stream_finish(stream, &st, sink_out, k);
	}
	if (err) {
		CHECK(st.err == err && st.msg[0] != '\0');
	}
	rp_stream_fini(stream);
	return err;
}

/* check_final runs rp_stream_check_final on a payload's last chunk */
static enum rp_err check_final(const uint8_t *nonce, const uint8_t *in,
			       size_t in_len)
{
	struct rp_status st = { 0 };
	size_t n, start;
	enum rp_err err;

	if (!in_len) {
		return RP_ERR_FORMAT;
	}
	n = (in_len + RP_STREAM_SEALED - 1) / RP_STREAM_SEALED;
	start = (n - 1) * RP_STREAM_SEALED;
	CHECK(rp_stream_init(stream, &st, RP_STREAM_OPEN, fixed_file_key,
			     nonce) == RP_OK);
	err = rp_stream_check_final(stream, &st, in_len, in + start,
				    in_len - start);
	CHECK(err == RP_OK || err == RP_ERR_FORMAT || err == RP_ERR_AUTH);
	rp_stream_fini(stream);
	return err;
}

static void open_raw(uint8_t ctl, const uint8_t *nonce, const uint8_t *in,
		     size_t in_len)
{
	struct sink a = { 0 }, b = { 0 }, c = { 0 };
	enum rp_err ea, eb;

	ea = run(RP_STREAM_OPEN, nonce, in, in_len, 0, &a);
	eb = run(RP_STREAM_OPEN, nonce, in, in_len, ctl | 0x100u, &b);
	CHECK(ea == RP_OK || ea == RP_ERR_FORMAT || ea == RP_ERR_AUTH);
	CHECK(ea == eb);
	CHECK(a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len)));
	if (!ea) {
		CHECK(rp_stream_sealed_size(a.len) == in_len);
		CHECK(run(RP_STREAM_SEAL, nonce, a.p, a.len, 0, &c) == RP_OK);
		CHECK(c.len == in_len && !memcmp(c.p, in, in_len));
		CHECK(check_final(nonce, in, in_len) == RP_OK);
	}
	free(a.p);
	free(b.p);
	free(c.p);
}

static void seal_damage_open(uint8_t ctl, const uint8_t *nonce,
			     const uint8_t *rest, size_t rest_len)
{
	const enum damage dmg = (enum damage)((ctl >> 4) & 3);
	const uint32_t param =
		rest_len >= 2 ? (uint32_t)rest[0] << 8 | rest[1] : 0;
	const uint8_t *src = rest_len >= 2 ? rest + 2 : rest;
	const size_t src_len = rest_len >= 2 ? rest_len - 2 : 0;
	const size_t plain_len = src_len + (size_t)(ctl & 7) * 32768;
	struct sink sealed = { 0 }, opened = { 0 };
	uint8_t *plain = malloc(plain_len ? plain_len : 1);
	size_t flip_at = 0, final_start;
	enum rp_err err, fin;

	CHECK(plain != NULL);
	for (size_t i = 0; i < plain_len; i++) {
		plain[i] = src_len ? src[i % src_len] : (uint8_t)(i * 31 + 7);
	}
	CHECK(run(RP_STREAM_SEAL, nonce, plain, plain_len, ctl | 0x200u,
		  &sealed) == RP_OK);
	CHECK(sealed.len == rp_stream_sealed_size(plain_len));
	final_start = (sealed.len - 1) / RP_STREAM_SEALED * RP_STREAM_SEALED;

	switch (dmg) {
	case DMG_NONE:
		break;
	case DMG_TRUNCATE:
		sealed.len -= 1 + param % sealed.len;
		break;
	case DMG_FLIP:
		flip_at = param * 7u % sealed.len;
		sealed.p[flip_at] ^= (uint8_t)(1u << (param >> 13));
		break;
	case DMG_APPEND:
		for (uint32_t i = 0; i <= param % 64; i++) {
			const uint8_t x = (uint8_t)param;

			sink_add(&sealed, &x, 1);
		}
		break;
	}

	err = run(RP_STREAM_OPEN, nonce, sealed.p, sealed.len, ctl | 0x300u,
		  &opened);
	CHECK(opened.len <= plain_len &&
	      (!opened.len || !memcmp(opened.p, plain, opened.len)));
	fin = check_final(nonce, sealed.p, sealed.len);
	if (dmg == DMG_NONE) {
		CHECK(err == RP_OK && opened.len == plain_len);
		CHECK(fin == RP_OK);
	} else {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_AUTH);
		CHECK((fin == RP_OK) ==
		      (dmg == DMG_FLIP && flip_at < final_start));
	}
	free(plain);
	free(sealed.p);
	free(opened.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t nonce[RP_AGE_NONCE_LEN] = { 0 };
	const uint8_t *rest;
	size_t rest_len;
	uint8_t ctl;

	if (!size) {
		return 0;
	}
	if (!stream) {
		stream = calloc(1, sizeof(*stream));
		CHECK(stream != NULL);
	}
	ctl = data[0];
	memcpy(nonce, data + 1,
	       size - 1 < sizeof(nonce) ? size - 1 : sizeof(nonce));
	rest = size > 1 + sizeof(nonce) ? data + 1 + sizeof(nonce)
					: data + size;
	rest_len = (size_t)(data + size - rest);
	if (ctl & 0x80) {
		seal_damage_open(ctl, nonce, rest, rest_len);
	} else {
		open_raw(ctl, nonce, rest, rest_len);
	}
	return 0;
}
