#include "rp_test.h"

#include <string.h>

#include "keyring.h"

static const uint8_t mac_key[32] = { 1, 2, 3 };

static void make_key(struct rp_key_info *k, uint8_t tag, uint8_t state)
{
	memset(k, 0, sizeof(*k));
	memset(k->id, tag, sizeof(k->id));
	k->alg = RP_ALG_RSA2048;
	k->state = state;
	k->backend = RP_BACKEND_SOFT;
	k->created_at = 1700000000 + tag;
	k->pub_len = 10;
	memset(k->pub, tag, k->pub_len);
}

static void encode3(struct rp_buf *b, struct rp_keyring *kr)
{
	struct rp_key_info k;
	struct rp_status st = { 0 };

	memset(kr, 0, sizeof(*kr));
	kr->conf.backend = RP_BACKEND_SOFT;
	make_key(&k, 0xa1, RP_KEY_ARCHIVED);
	assert_int_equal(rp_keyring_add(kr, &st, &k), RP_OK);
	make_key(&k, 0xb2, RP_KEY_ACTIVE);
	assert_int_equal(rp_keyring_add(kr, &st, &k), RP_OK);
	make_key(&k, 0xc3, RP_KEY_REVOKED);
	k.revoked_at = 1800000000;
	assert_int_equal(rp_keyring_add(kr, &st, &k), RP_OK);
	assert_int_equal(rp_keyring_encode(b, &st, kr, mac_key), RP_OK);
}

static void test_keyring_round_trip_same(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };

	(void)state;
	encode3(&b, &kr);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_int_equal(back.num_keys, 3);
	assert_int_equal(back.conf.backend, RP_BACKEND_SOFT);
	assert_memory_equal(back.keys, kr.keys, 3 * sizeof(*kr.keys));
	assert_int_equal(rp_keyring_active(&back), 1);
	assert_int_equal(rp_keyring_find_id(&back, kr.keys[2].id), 2);
	rp_keyring_fini(&back);
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
}

static void test_keyring_any_flip_detected(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_keyring kr, back;

	(void)state;
	encode3(&b, &kr);
	for (size_t i = 0; i < b.len; i++) {
		struct rp_status st = { 0 };
		enum rp_err err;

		b.p[i] ^= 0x01;
		err = rp_keyring_decode(&back, &st, b.p, b.len, mac_key);
		assert_true(err == RP_ERR_AUTH || err == RP_ERR_FORMAT);
		assert_true(st.msg[0] != '\0');
		b.p[i] ^= 0x01;
	}
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
}

static void test_keyring_revoked_flipped_to_archived_refused(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };
	/*
	 * magic 4, version 1, generation 8, conf 5 (empty strings), count 4;
	 * a record: id 32, alg/state/backend/flags 4, six times 8, pub
	 * length 2 + 10, sign_pub 32
	 */
	const size_t rec = 32 + 4 + 48 + 2 + 10 + 32;
	const size_t state_off = 22 + 2 * rec + 32 + 1;

	(void)state;
	encode3(&b, &kr);
	assert_int_equal(b.p[state_off], RP_KEY_REVOKED);
	b.p[state_off] = RP_KEY_ARCHIVED;
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_ERR_AUTH);
	assert_non_null(strstr(st.msg, "integrity"));
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
}

static void test_keyring_wrong_mac_key_refused(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };
	uint8_t other[32] = { 9 };

	(void)state;
	encode3(&b, &kr);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, other),
			 RP_ERR_AUTH);
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
}

static void test_keyring_duplicate_id_refused(void **state)
{
	struct rp_keyring kr = { 0 };
	struct rp_key_info k;
	struct rp_status st = { 0 };

	(void)state;
	make_key(&k, 7, RP_KEY_PENDING);
	assert_int_equal(rp_keyring_add(&kr, &st, &k), RP_OK);
	assert_int_equal(rp_keyring_add(&kr, &st, &k), RP_ERR_EXISTS);
	rp_keyring_fini(&kr);
}

static void test_keyring_find_hex_prefix_and_ambiguity(void **state)
{
	struct rp_keyring kr = { 0 };
	struct rp_key_info k;
	struct rp_status st = { 0 };

	(void)state;
	make_key(&k, 0xab, RP_KEY_PENDING);
	assert_int_equal(rp_keyring_add(&kr, &st, &k), RP_OK);
	make_key(&k, 0xac, RP_KEY_PENDING);
	assert_int_equal(rp_keyring_add(&kr, &st, &k), RP_OK);
	assert_int_equal(rp_keyring_find_hex(&kr, &st, "abab"), 0);
	assert_int_equal(rp_keyring_find_hex(&kr, &st, "ACAC"), 1);
	assert_int_equal(rp_keyring_find_hex(&kr, &st, "adad"), -1);
	assert_int_equal(st.err, RP_ERR_NOTFOUND);
	rp_status_clear(&st);
	k.id[0] = 0xab;
	k.id[1] = 0xab;
	assert_int_equal(rp_keyring_add(&kr, &st, &k), RP_OK); /* abab ac.. */
	assert_int_equal(rp_keyring_find_hex(&kr, &st, "abab"), -1);
	assert_int_equal(st.err, RP_ERR_USAGE); /* ambiguous */
	assert_non_null(strstr(st.msg, "ambiguous"));
	rp_status_clear(&st);
	assert_int_equal(rp_keyring_find_hex(&kr, &st, "ababab"), 0);
	assert_int_equal(rp_keyring_find_hex(&kr, &st, "ab"), -1);
	assert_int_equal(st.err, RP_ERR_USAGE); /* too short */
	rp_keyring_fini(&kr);
}

static void test_keyring_alg_names_round_trip(void **state)
{
	static const char *const names[] = { "rsa2048", "rsa3072", "rsa4096",
					     "x25519" };
	uint8_t alg;

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(rp_key_alg_parse(&alg, names[i]), RP_OK);
		assert_string_equal(rp_key_alg_name(alg), names[i]);
	}
	assert_int_equal(rp_key_alg_parse(&alg, "rsa1024"), RP_ERR_USAGE);
}

/*
 * retirement: a keyring with nothing to say about it stays version 1;
 * a retiring key or another minimum makes version 2, and both round-trip
 */
static void test_keyring_retirement_section(void **state)
{
	struct rp_buf b = { 0 }, b2 = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };

	(void)state;
	encode3(&b, &kr);
	assert_int_equal(b.p[4], 1);
	rp_buf_reset(&b);
	kr.min_retire_days = 30;
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 2);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_int_equal(rp_keyring_min_retire_days(&back), 30);
	rp_keyring_fini(&back);
	kr.min_retire_days = 0;
	kr.keys[0].state = RP_KEY_RETIRING;
	kr.keys[0].retired_at = 1800000000;
	kr.keys[0].purge_at = 1800000000 + 7 * 86400;
	memset(kr.keys[0].retire_census, 0x5a, 32);
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 2);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_memory_equal(back.keys, kr.keys, 3 * sizeof(*kr.keys));
	assert_int_equal(rp_keyring_min_retire_days(&back),
			 RP_RETIRE_DEFAULT_DAYS);
	assert_int_equal(rp_keyring_encode(&b2, &st, &back, mac_key), RP_OK);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.p, b.p, b.len);
	rp_keyring_fini(&back);
	/* a store id and a pin file make version 2 too, and come back */
	kr.keys[0].state = RP_KEY_ARCHIVED;
	kr.keys[0].retired_at = kr.keys[0].purge_at = 0;
	memset(kr.keys[0].retire_census, 0, 32);
	memset(kr.store_id, 0x11, sizeof(kr.store_id));
	snprintf(kr.pin_path, sizeof(kr.pin_path), "/mnt/pin");
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 2);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_memory_equal(back.store_id, kr.store_id, sizeof(kr.store_id));
	assert_string_equal(back.pin_path, "/mnt/pin");
	rp_keyring_fini(&back);
	memset(kr.store_id, 0, sizeof(kr.store_id));
	kr.pin_path[0] = '\0';
	kr.keys[0].state = RP_KEY_RETIRING;
	kr.keys[0].retired_at = 1800000000;
	/* a retiring key without a waiting period: refused */
	rp_buf_reset(&b);
	kr.keys[0].purge_at = kr.keys[0].retired_at; /* no period */
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_ERR_FORMAT);
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
	rp_buf_fini(&b2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyring_round_trip_same),
		cmocka_unit_test(test_keyring_retirement_section),
		cmocka_unit_test(test_keyring_any_flip_detected),
		cmocka_unit_test(
			test_keyring_revoked_flipped_to_archived_refused),
		cmocka_unit_test(test_keyring_wrong_mac_key_refused),
		cmocka_unit_test(test_keyring_duplicate_id_refused),
		cmocka_unit_test(test_keyring_find_hex_prefix_and_ambiguity),
		cmocka_unit_test(test_keyring_alg_names_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
