/*
 * fuzz_shares: rp_world_from_shares (and under it rp_shamir_combine) with
 * the input's lines as the share lines ("reprotect-world-share-v1
 * <base64>", what `reprotect world backup` writes and `init --from-shares`
 * reads). When it succeeds:
 *   - the world id is the one in the first share, and the rebuilt key
 *     passes the check value the shares carry (HMAC-SHA-256 of the fixed
 *     label under the key), recomputed here;
 *   - the same shares in reverse order rebuild the same key and id
 *     (Lagrange interpolation does not depend on the order).
 * Failures are RP_ERR_FORMAT, RP_ERR_AUTH or RP_ERR_USAGE (no line, or
 * over 255), always with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "lifecycle.h"
#include "rp_b64.h"


#define MAX_LINES 300 /* a few over the 255 the function takes */
#define PREFIX	  "reprotect-world-share-v1 "
#define SHARE_LEN 88 /* "RPWS", version, world id, k, n, x, y[32], check */

/* what the first share says: its world id and check value */
static void first_share(const char *line, uint8_t id[16], uint8_t check[32])
{
	uint8_t rec[SHARE_LEN + 4];
	size_t n = strlen(line), got = 0;

	while (n && line[n - 1] == '\r') {
		n--;
	}
	CHECK(n > strlen(PREFIX) && !memcmp(line, PREFIX, strlen(PREFIX)));
	CHECK(rp_b64_decode(rec, sizeof(rec), &got, line + strlen(PREFIX),
			    n - strlen(PREFIX)) == RP_OK &&
	      got == SHARE_LEN);
	memcpy(id, rec + 5, 16);
	memcpy(check, rec + 56, 32);
}

static void check_rebuilt(const char *const *lines, size_t num,
			  const uint8_t key[32], const uint8_t id[16])
{
	static const char label[] = "reprotect/v1 world share check";
	struct rp_status st = { 0 };
	const char **rev = malloc(num * sizeof(*rev));
	uint8_t want_id[16], want_check[32], check[32];
	uint8_t key2[32], id2[16];
	unsigned int n = 0;

	first_share(lines[0], want_id, want_check);
	CHECK(!memcmp(id, want_id, sizeof(want_id)));
	CHECK(HMAC(EVP_sha256(), key, 32, (const uint8_t *)label,
		   sizeof(label) - 1, check, &n) &&
	      n == 32);
	CHECK(!memcmp(check, want_check, sizeof(check)));

	CHECK(rev != NULL);
	for (size_t i = 0; i < num; i++) {
		rev[i] = lines[num - 1 - i];
	}
	CHECK(rp_world_from_shares(&st, rev, num, key2, id2) == RP_OK);
	CHECK(!memcmp(key2, key, 32) && !memcmp(id2, id, 16));
	free(rev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_status st = { 0 };
	char *text = malloc(size + 1);
	const char *lines[MAX_LINES];
	uint8_t key[32], id[16];
	size_t num = 0, start = 0;
	enum rp_err err;

	CHECK(text != NULL);
	if (size) {
		memcpy(text, data, size);
	}
	text[size] = '\0';
	/* one share per line, as the share files hold them */
	for (size_t i = 0; i <= size && num < MAX_LINES; i++) {
		if (i == size || text[i] == '\n') {
			if (i == size && i == start && num) {
				break; /* the LF that ends the last line */
			}
			text[i] = '\0';
			lines[num++] = text + start;
			start = i + 1;
		}
	}
	err = rp_world_from_shares(&st, lines, num, key, id);
	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_AUTH ||
		      err == RP_ERR_USAGE);
		CHECK(st.err == err && st.msg[0] != '\0');
		CHECK(err != RP_ERR_USAGE || num > 255);
	} else {
		CHECK(num >= 1 && num <= 255);
		check_rebuilt(lines, num, key, id);
	}
	free(text);
	return 0;
}
