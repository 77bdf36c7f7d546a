#include "rp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_err.h"
#include "rp_json.h"

static void test_common_b64_round_trip_all_lengths(void **state)
{
	uint8_t in[200], back[200];
	char enc[300];
	size_t n, m;

	(void)state;
	assert_int_equal(RAND_bytes(in, sizeof(in)), 1);
	for (size_t len = 0; len <= sizeof(in); len++) {
		assert_int_equal(rp_b64_encode(enc, sizeof(enc), &n, in, len),
				 RP_OK);
		assert_int_equal(n, rp_b64_enc_len(len));
		assert_null(strchr(enc, '='));
		assert_int_equal(rp_b64_decode(back, sizeof(back), &m, enc, n),
				 RP_OK);
		assert_int_equal(m, len);
		assert_memory_equal(back, in, len);
	}
}

static void test_common_b64_non_canonical_refused(void **state)
{
	uint8_t out[16];
	size_t n;

	(void)state;
	/* "AA" is canonical for one zero byte, "AB" sets unused bits */
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AA", 2), RP_OK);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AB", 2),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AAB", 3),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AA==", 4),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AAAAA", 5),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AA A", 4),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "AA\n", 3),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_b64_decode(out, sizeof(out), &n, "-_", 2),
			 RP_ERR_FORMAT);
	/* too small an output buffer is the caller's error */
	assert_int_equal(rp_b64_decode(out, 2, &n, "AAAA", 4), RP_ERR_USAGE);
}

static void test_common_hex_round_trip_and_bad(void **state)
{
	static const uint8_t in[4] = { 0x00, 0xab, 0x7f, 0xff };
	uint8_t back[4];
	char hex[9];

	(void)state;
	rp_hex_encode(hex, in, 4);
	assert_string_equal(hex, "00ab7fff");
	assert_int_equal(rp_hex_decode(back, 4, "00AB7FFF", 8), RP_OK);
	assert_memory_equal(back, in, 4);
	assert_int_equal(rp_hex_decode(back, 4, "00ab7ff", 7), RP_ERR_FORMAT);
	assert_int_equal(rp_hex_decode(back, 4, "00ab7fgf", 8),
			 RP_ERR_FORMAT);
}

static void test_common_buf_max_bounds_growth(void **state)
{
	struct rp_buf b = { .max = 10 };

	(void)state;
	assert_int_equal(rp_buf_add(&b, "0123456789", 10), RP_OK);
	assert_int_equal(rp_buf_add(&b, "x", 1), RP_ERR_FORMAT);
	assert_int_equal(b.len, 10);
	assert_int_equal(rp_buf_add_u32be(&b, 1), RP_ERR_FORMAT);
	rp_buf_fini(&b);
	assert_null(b.p);
	assert_int_equal(rp_buf_add_u64be(&b, 0x0102030405060708ull), RP_OK);
	assert_int_equal(b.p[0], 1);
	assert_int_equal(b.p[7], 8);
	rp_buf_fini(&b);
}

static void test_common_status_first_cause_wins_prefix_adds(void **state)
{
	struct rp_status st = { 0 };

	(void)state;
	assert_int_equal(rp_status_fail(&st, RP_ERR_FORMAT, "inner %d", 1),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_status_fail(&st, RP_ERR_IO, "outer"), RP_ERR_IO);
	assert_int_equal(st.err, RP_ERR_FORMAT);
	assert_string_equal(st.msg, "inner 1");
	rp_status_prefix(&st, "file '%s'", "a");
	assert_string_equal(st.msg, "file 'a': inner 1");
	/* a failure without a message gets the fixed one */
	rp_status_clear(&st);
	st.err = RP_ERR_AUTH;
	rp_status_prefix(&st, "x");
	assert_string_equal(st.msg, "x: authentication failed");
	assert_string_equal(rp_err_name(RP_ERR_REVOKED), "revoked");
	assert_string_equal(rp_err_str((enum rp_err)999), "unknown error");
}

static void test_common_json_escapes(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	static const char in[] = "a\"b\\c\n\x01\xff\xc3\xa9";

	(void)state;
	assert_non_null(f);
	rp_json_str(f, in, sizeof(in) - 1);
	fclose(f);
	assert_string_equal(out,
			    "\"a\\\"b\\\\c\\u000a\\u0001\\ufffd\xc3\xa9\"");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_b64_round_trip_all_lengths),
		cmocka_unit_test(test_common_b64_non_canonical_refused),
		cmocka_unit_test(test_common_hex_round_trip_and_bad),
		cmocka_unit_test(test_common_buf_max_bounds_growth),
		cmocka_unit_test(
			test_common_status_first_cause_wins_prefix_adds),
		cmocka_unit_test(test_common_json_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
