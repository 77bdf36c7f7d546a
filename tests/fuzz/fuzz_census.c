/*
 * fuzz_census: rp_census_decode (a census statement that a user hands to
 * 'census verify', 'census merge' or 'key retire'). When it decodes:
 *   - every count and offset lies inside the input, the doc lines read
 *     back one by one (rp_census_next_doc) and there are `listed` of them;
 *   - encoding the decoded fields again (rp_census_encode with the doc
 *     lines as they are, then rp_census_encode_sig) gives exactly the
 *     input: the decoder accepts only what the encoder writes, so the
 *     bytes a signature covers have one reading.
 * Failures are RP_ERR_FORMAT (or RP_ERR_NOMEM).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "census.h"
#include "fuzz.h"
#include "rp_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_census c;
	struct rp_status st = { 0 };
	struct rp_buf b = { 0 };
	enum rp_err err = rp_census_decode(&c, &st, data, size);

	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_NOMEM);
		rp_census_fini(&c);
		return 0;
	}
	CHECK(c.signed_len < size);
	CHECK(c.docs_off + c.docs_len <= c.signed_len);
	CHECK(c.num_roots >= 1 && c.num_roots <= RP_CENSUS_MAX_ROOTS);
	{
		char *path = malloc(1 << 16);
		size_t off = c.docs_off;
		uint64_t n = 0;
		struct rp_census_doc d;

		CHECK(path != NULL);
		while (rp_census_next_doc(&c, data, &off, &d, path, 1 << 16)) {
			CHECK(d.path[0] != '\0');
			n++;
		}
		CHECK(off == c.docs_off + c.docs_len);
		CHECK(n == c.listed);
		free(path);
	}
	CHECK(rp_census_encode(&b, &st, &c, data + c.docs_off, c.docs_len) ==
	      RP_OK);
	CHECK(b.len == c.signed_len && !memcmp(b.p, data, b.len));
	CHECK(rp_census_encode_sig(&b, &st, c.signer, c.sig, c.sig_len) ==
	      RP_OK);
	CHECK(b.len == size && !memcmp(b.p, data, size));
	rp_buf_fini(&b);
	rp_census_fini(&c);
	return 0;
}
