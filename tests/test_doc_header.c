/*
 * test_doc_header.c: a protected document's header made to an exact
 * length with the rp-pad stanza (formats/doc_header.c), for every length
 * the pad can take, and the slack that lets a rewrap fit in place.
 */
#include "rp_test.h"

#include <stdlib.h>
#include <string.h>

#include "age_header.h"
#include "doc_header.h"
#include "license.h"
#include "rp_buf.h"

static const uint8_t fk[RP_AGE_FILE_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8,
						 9, 10, 11, 12, 13, 14, 15, 16 };

/* start: the version line and a stand-in recipient stanza (256 bytes) */
/*
 * hk: fk's header key; the documents are finished by header key and
 * checked by file key (rp_age_header_verify_mac derives it again)
 */
static uint8_t hk[RP_AGE_HEADER_KEY_LEN];

static void start(struct rp_buf *b)
{
	struct rp_status st = { 0 };

	static uint8_t body[256];
	const char *args[] = { "ssh-rsa", "AAAAAA" };

	assert_int_equal(rp_age_header_key(hk, &st, fk), RP_OK);
	memset(body, 0x5a, sizeof(body));
	rp_buf_reset(b);
	assert_int_equal(rp_age_header_begin(b), RP_OK);
	assert_int_equal(rp_age_header_add_stanza(b, args, 2, body,
						  sizeof(body), NULL, NULL),
			 RP_OK);
}

/* check: `h` parses, is `len` bytes, ends in a pad, and its MAC holds */
static void check(const struct rp_buf *h, size_t len)
{
	struct rp_age_header hdr = { 0 };
	struct rp_status st = { 0 };
	const struct rp_age_stanza *pad;

	assert_int_equal(h->len, len);
	assert_int_equal(rp_age_header_parse(&hdr, &st, h->p, h->len), RP_OK);
	assert_int_equal(hdr.header_len, len);
	assert_int_equal(hdr.num_stanzas, 3);
	assert_true(rp_age_stanza_is(&hdr.stanzas[1], RP_LICENSE_STANZA_TYPE));
	pad = &hdr.stanzas[2];
	assert_true(rp_age_stanza_is(pad, RP_DOC_PAD_TYPE));
	assert_true(pad->num_args >= 2);
	assert_int_equal(pad->body.len, 0);
	assert_int_equal(rp_age_header_verify_mac(&hdr, &st, fk, h->p), RP_OK);
	rp_age_header_fini(&hdr);
}

/* every pad length from the least to the most, one byte at a time */
static void test_doc_header_every_length(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_status st = { 0 };
	uint8_t lic[400];
	size_t base, lo, hi;

	(void)state;
	memset(lic, 0xa5, sizeof(lic));
	start(&b);
	base = b.len;
	lo = hi = 0;
	for (size_t t = base; t < base + 4000; t++) {
		if (rp_doc_header_fits(base, sizeof(lic), t)) {
			lo = lo ? lo : t;
			hi = t;
		}
	}
	assert_true(lo && hi - lo + 1 == RP_DOC_PAD_MAX - RP_DOC_PAD_MIN + 1);
	for (size_t t = lo; t <= hi; t++) {
		start(&b);
		assert_int_equal(rp_doc_header_finish(&b, &st, lic, sizeof(lic),
						      0, hk, t),
				 RP_OK);
		check(&b, t);
	}
	/* one byte short or long: refused, nothing appended */
	for (size_t t = lo - 1; t <= hi + 1; t += hi - lo + 2) {
		start(&b);
		assert_int_equal(rp_doc_header_finish(&b, &st, lic, sizeof(lic),
						      0, hk, t),
				 RP_ERR_USAGE);
		assert_int_equal(b.len, base);
		rp_status_clear(&st);
	}
	rp_buf_fini(&b);
}

/*
 * the default length leaves room for a license whose audit path is up to
 * RP_DOC_SLACK_PATH hashes, whatever the path it was made with: the
 * rewrap of any batch of the engine fits in place
 */
static void test_doc_header_slack_fits_rewrap(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_status st = { 0 };
	static uint8_t lic[1200];

	(void)state;
	memset(lic, 0x3c, sizeof(lic));
	for (size_t len = 300; len < 700; len += 7) {
		for (size_t p0 = 0; p0 <= RP_DOC_SLACK_PATH; p0++) {
			const size_t l0 = len + 32 * p0;
			size_t target;

			start(&b);
			target = rp_doc_header_target(b.len, l0, p0);
			assert_int_equal(rp_doc_header_finish(&b, &st, lic, l0,
							      p0, hk, 0),
					 RP_OK);
			check(&b, target);
			start(&b);
			for (size_t p1 = 0; p1 <= RP_DOC_SLACK_PATH; p1++) {
				assert_true(rp_doc_header_fits(
					b.len, len + 32 * p1, target));
			}
			/* a bigger key's stanza (or license) does not */
			assert_false(rp_doc_header_fits(
				b.len + 128, len + 32 * RP_DOC_SLACK_PATH,
				target));
		}
	}
	rp_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_header_every_length),
		cmocka_unit_test(test_doc_header_slack_fits_rewrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
