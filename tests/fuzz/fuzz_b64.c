/*
 * fuzz_b64: rp_b64_decode and rp_hex_decode over arbitrary text, and the
 * encoders over arbitrary bytes.
 *   - a successful base64 decode gives exactly (len / 4) * 3 + (len % 4 ?
 *     len % 4 - 1 : 0) bytes, into an exact-size buffer, and encodes back
 *     to exactly the input (the decoder takes only canonical base64);
 *     with one byte less of room it fails with RP_ERR_USAGE and writes
 *     nothing out of bounds;
 *   - any bytes encode to rp_b64_enc_len chars that decode back to them;
 *   - a successful hex decode encodes back to the input in lower case.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "rp_b64.h"


static size_t decoded_len(size_t n)
{
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

static void check_decode(const char *in, size_t len)
{
	const size_t want = decoded_len(len);
	uint8_t *out = malloc(want ? want : 1);
	char *back = malloc(len + 1);
	size_t n = 0, m = 0;
	enum rp_err err;

	CHECK(out && back);
	err = rp_b64_decode(out, want, &n, in, len);
	CHECK(err == RP_OK || err == RP_ERR_FORMAT);
	if (!err) {
		CHECK(len % 4 != 1 && n == want);
		CHECK(rp_b64_encode(back, len + 1, &m, out, n) == RP_OK);
		CHECK(m == len && !memcmp(back, in, len) && back[len] == '\0');
		if (want) {
			uint8_t *small = malloc(want - 1 ? want - 1 : 1);

			CHECK(small != NULL);
			CHECK(rp_b64_decode(small, want - 1, &n, in, len) ==
			      RP_ERR_USAGE);
			free(small);
		}
	}
	free(out);
	free(back);
}

static void check_encode(const uint8_t *in, size_t len)
{
	const size_t want = rp_b64_enc_len(len);
	char *text = malloc(want + 1);
	uint8_t *back = malloc(len ? len : 1);
	size_t n = 0, m = 0;

	CHECK(text && back);
	CHECK(want == (len + 2) / 3 * 4 - (len % 3 ? 3 - len % 3 : 0));
	if (want) {
		CHECK(rp_b64_encode(text, want, &n, in, len) == RP_ERR_USAGE);
	}
	CHECK(rp_b64_encode(text, want + 1, &n, in, len) == RP_OK);
	CHECK(n == want && text[want] == '\0');
	CHECK(rp_b64_decode(back, len, &m, text, n) == RP_OK);
	CHECK(m == len && (!len || !memcmp(back, in, len)));
	free(text);
	free(back);
}

static void check_hex(const char *in, size_t len)
{
	const size_t n = len / 2;
	uint8_t *out = malloc(n ? n : 1);
	char *back = malloc(2 * n + 1);

	CHECK(out && back);
	if (rp_hex_decode(out, n, in, len) == RP_OK) {
		CHECK(len % 2 == 0);
		rp_hex_encode(back, out, n);
		for (size_t i = 0; i < len; i++) {
			char c = in[i];

			c = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
			CHECK(back[i] == c);
		}
		CHECK(back[len] == '\0');
	}
	free(out);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode((const char *)data, size);
	check_encode(data, size);
	check_hex((const char *)data, size);
	return 0;
}
