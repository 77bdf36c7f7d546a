#include "rp_test.h"

#include <string.h>

#include <openssl/rand.h>

#include "shamir.h"

static void test_shamir_any_k_of_n_rebuild(void **state)
{
	uint8_t secret[32], ys[5 * 32], out[32];
	struct rp_status st = { 0 };

	(void)state;
	assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);
	assert_int_equal(rp_shamir_split(ys, &st, secret, 32, 5, 3), RP_OK);
	/* every 3-subset of the 5 shares */
	for (unsigned a = 0; a < 5; a++) {
		for (unsigned b = a + 1; b < 5; b++) {
			for (unsigned c = b + 1; c < 5; c++) {
				const uint8_t xs[3] = { (uint8_t)(a + 1),
							(uint8_t)(b + 1),
							(uint8_t)(c + 1) };
				uint8_t sub[3 * 32];

				memcpy(sub, ys + a * 32, 32);
				memcpy(sub + 32, ys + b * 32, 32);
				memcpy(sub + 64, ys + c * 32, 32);
				assert_int_equal(rp_shamir_combine(out, &st, xs,
								   sub, 32, 3),
						 RP_OK);
				assert_memory_equal(out, secret, 32);
			}
		}
	}
	/* all 5 also work (a higher-degree fit of the same polynomial) */
	{
		const uint8_t xs[5] = { 1, 2, 3, 4, 5 };

		assert_int_equal(rp_shamir_combine(out, &st, xs, ys, 32, 5),
				 RP_OK);
		assert_memory_equal(out, secret, 32);
	}
}

static void test_shamir_k_minus_1_gives_nothing(void **state)
{
	uint8_t secret[32], ys[3 * 32], out[32];
	const uint8_t xs[2] = { 1, 2 };
	struct rp_status st = { 0 };
	unsigned same = 0;

	(void)state;
	assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);
	assert_int_equal(rp_shamir_split(ys, &st, secret, 32, 3, 3), RP_OK);
	assert_int_equal(rp_shamir_combine(out, &st, xs, ys, 32, 2), RP_OK);
	for (size_t i = 0; i < 32; i++) {
		same += out[i] == secret[i];
	}
	/* a random match per byte is 1/256: 32 bytes almost never agree */
	assert_true(same < 8);
	/* a single share is uniformly random: it is not the secret */
	assert_memory_not_equal(ys, secret, 32);
}

static void test_shamir_bad_arguments_refused(void **state)
{
	uint8_t secret[4] = { 1, 2, 3, 4 }, ys[4 * 4], out[4];
	const uint8_t dup[2] = { 1, 1 }, zero[2] = { 0, 1 };
	struct rp_status st = { 0 };

	(void)state;
	assert_int_equal(rp_shamir_split(ys, &st, secret, 4, 3, 1),
			 RP_ERR_USAGE);
	assert_int_equal(rp_shamir_split(ys, &st, secret, 4, 2, 3),
			 RP_ERR_USAGE);
	assert_int_equal(rp_shamir_split(ys, &st, secret, 4, 4, 2), RP_OK);
	assert_int_equal(rp_shamir_combine(out, &st, dup, ys, 4, 2),
			 RP_ERR_FORMAT);
	assert_int_equal(rp_shamir_combine(out, &st, zero, ys, 4, 2),
			 RP_ERR_FORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shamir_any_k_of_n_rebuild),
		cmocka_unit_test(test_shamir_k_minus_1_gives_nothing),
		cmocka_unit_test(test_shamir_bad_arguments_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
