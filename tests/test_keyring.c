#include "rp_test.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

/* a keyring on token "tok-a": three PKCS#11 keys and one soft key */
static void make_p11(struct rp_keyring *kr)
{
	struct rp_key_info k;
	struct rp_status st = { 0 };

	memset(kr, 0, sizeof(*kr));
	kr->conf.backend = RP_BACKEND_PKCS11;
	snprintf(kr->conf.pkcs11_module, sizeof(kr->conf.pkcs11_module),
		 "/usr/lib/softhsm/libsofthsm2.so");
	snprintf(kr->conf.pkcs11_token, sizeof(kr->conf.pkcs11_token), "tok-a");
	for (uint8_t tag = 0x10; tag <= 0x30; tag += 0x10) {
		make_key(&k, tag,
			 tag == 0x30 ? RP_KEY_ACTIVE : RP_KEY_ARCHIVED);
		k.backend = RP_BACKEND_PKCS11;
		assert_int_equal(rp_keyring_add(kr, &st, &k), RP_OK);
	}
	make_key(&k, 0x40, RP_KEY_REVOKED);
	assert_int_equal(rp_keyring_add(kr, &st, &k), RP_OK);
}

/* remac replaces the MAC at the end of `b` by one over what precedes it */
static void remac(struct rp_buf *b)
{
	unsigned int n = 0;

	assert_non_null(HMAC(EVP_sha256(), mac_key, sizeof(mac_key), b->p,
			     b->len - 32, b->p + b->len - 32, &n));
	assert_int_equal(n, 32);
}

/*
 * replicas: kept in order whatever the order they come in, written as
 * version 3 only when there is one, read back the same, and each
 * keyring still has one encoding
 */
static void test_keyring_replicas_round_trip(void **state)
{
	struct rp_buf b = { 0 }, b2 = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };
	size_t first;

	(void)state;
	make_p11(&kr);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 1);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[1].id, "tok-c"),
		RP_OK);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[0].id, "tok b"),
		RP_OK);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[1].id, "tok-b"),
		RP_OK);
	assert_int_equal(kr.num_replicas, 3);
	assert_memory_equal(kr.replicas[0].key_id, kr.keys[0].id, 32);
	assert_string_equal(kr.replicas[1].token, "tok-b");
	assert_string_equal(kr.replicas[2].token, "tok-c");
	assert_int_equal(rp_keyring_replicas(&kr, kr.keys[1].id, &first), 2);
	assert_int_equal(first, 1);
	assert_int_equal(rp_keyring_replicas(&kr, kr.keys[2].id, &first), 0);
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 3);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_int_equal(back.num_replicas, 3);
	assert_memory_equal(back.replicas, kr.replicas,
			    3 * sizeof(*kr.replicas));
	assert_int_equal(rp_keyring_min_retire_days(&back),
			 RP_RETIRE_DEFAULT_DAYS);
	assert_int_equal(rp_keyring_encode(&b2, &st, &back, mac_key), RP_OK);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.p, b.p, b.len);
	rp_keyring_fini(&back);
	/* with the version 2 section saying something too */
	memset(kr.store_id, 0x22, sizeof(kr.store_id));
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 3);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_memory_equal(back.store_id, kr.store_id, sizeof(kr.store_id));
	assert_int_equal(back.num_replicas, 3);
	rp_keyring_fini(&back);
	/* the last replica gone: version 2 again */
	while (kr.num_replicas) {
		rp_keyring_remove_replica(&kr, 0);
	}
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 2);
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
	rp_buf_fini(&b2);
}

/*
 * the store's quota: written as version 3 (alone, or with replicas), read
 * back the same, one encoding; a quota above RP_KEY_OPS_MAX, and a
 * version 3 section saying nothing, do not decode
 */
static void test_keyring_quota_round_trip(void **state)
{
	struct rp_buf b = { 0 }, b2 = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };

	(void)state;
	make_p11(&kr);
	kr.key_ops = 1100;
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 3);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_int_equal(back.key_ops, 1100);
	assert_int_equal(back.num_replicas, 0);
	assert_int_equal(rp_keyring_encode(&b2, &st, &back, mac_key), RP_OK);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.p, b.p, b.len);
	rp_keyring_fini(&back);
	/* the quota's bytes: the u32 before the replica count (0) */
	assert_int_equal(b.p[b.len - 32 - 8 + 2], 0x04);
	assert_int_equal(b.p[b.len - 32 - 8 + 3], 0x4c);
	/* above the highest quota */
	b.p[b.len - 32 - 8] = 0x7f;
	remac(&b);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_ERR_FORMAT);
	rp_status_clear(&st);
	/* a version 3 section that says nothing: no quota, no replica */
	memset(b.p + b.len - 32 - 8, 0, 4);
	remac(&b);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_ERR_FORMAT);
	rp_status_clear(&st);
	/* with a replica too */
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[1].id, "tok-b"),
		RP_OK);
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	assert_int_equal(back.key_ops, 1100);
	assert_int_equal(back.num_replicas, 1);
	rp_keyring_fini(&back);
	/* no quota, no replica, nothing for version 2: version 1 */
	kr.key_ops = 0;
	rp_keyring_remove_replica(&kr, 0);
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 1);
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
	rp_buf_fini(&b2);
}

static void test_keyring_replica_check_refusals(void **state)
{
	struct rp_keyring kr;
	struct rp_status st = { 0 };
	uint8_t nobody[RP_KEY_ID_LEN] = { 0x99 };
	char label[RP_CONF_STR_MAX + 2];
	static const char *const bad[] = { "", "tok ", "to\tk", "t\x7fk" };

	(void)state;
	make_p11(&kr);
	assert_int_equal(rp_keyring_add_replica(&kr, &st, nobody, "tok-b"),
			 RP_ERR_NOKEY);
	rp_status_clear(&st);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[3].id, "tok-b"),
		RP_ERR_USAGE);
	assert_non_null(strstr(st.msg, "soft keystore"));
	rp_status_clear(&st);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[0].id, "tok-a"),
		RP_ERR_USAGE);
	assert_non_null(strstr(st.msg, "own token"));
	rp_status_clear(&st);
	for (size_t i = 0; i < RP_ARRAY_LEN(bad); i++) {
		assert_int_equal(
			rp_keyring_add_replica(&kr, &st, kr.keys[0].id, bad[i]),
			RP_ERR_USAGE);
		rp_status_clear(&st);
	}
	memset(label, 'x', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0'; /* RP_CONF_STR_MAX + 1 */
	assert_int_equal(rp_keyring_add_replica(&kr, &st, kr.keys[0].id, label),
			 RP_ERR_USAGE);
	rp_status_clear(&st);
	label[RP_CONF_STR_MAX] = '\0'; /* the longest */
	assert_int_equal(rp_keyring_add_replica(&kr, &st, kr.keys[0].id, label),
			 RP_OK);
	assert_int_equal(rp_keyring_add_replica(&kr, &st, kr.keys[0].id, label),
			 RP_ERR_EXISTS);
	rp_status_clear(&st);
	for (int i = 1; i < RP_REPLICAS_MAX; i++) {
		char t[16];

		snprintf(t, sizeof(t), "tok-%d", i);
		assert_int_equal(
			rp_keyring_add_replica(&kr, &st, kr.keys[0].id, t),
			RP_OK);
	}
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[0].id, "tok-9"),
		RP_ERR_USAGE);
	assert_non_null(strstr(st.msg, "most"));
	rp_keyring_fini(&kr);
}

/*
 * the decoder takes only what the encoder writes: a replica list out of
 * order, a pair twice, a replica add_replica would refuse, version 3
 * without a replica, a list behind version 2
 */
static void test_keyring_replicas_non_canonical_refused(void **state)
{
	struct rp_buf b = { 0 };
	struct rp_keyring kr, back;
	struct rp_status st = { 0 };
	struct rp_replica saved[2];

	(void)state;
	make_p11(&kr);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[0].id, "tok-b"),
		RP_OK);
	assert_int_equal(
		rp_keyring_add_replica(&kr, &st, kr.keys[0].id, "tok-c"),
		RP_OK);
	memcpy(saved, kr.replicas, sizeof(saved));
	for (int c = 0; c < 7; c++) {
		memcpy(kr.replicas, saved, sizeof(saved));
		switch (c) {
		case 0: /* out of order */
			kr.replicas[0] = saved[1];
			kr.replicas[1] = saved[0];
			break;
		case 1: /* twice */
			kr.replicas[1] = saved[0];
			break;
		case 2: /* a soft key */
			memcpy(kr.replicas[1].key_id, kr.keys[3].id, 32);
			break;
		case 3: /* no such key (0xff.. sorts last) */
			memset(kr.replicas[1].key_id, 0xff, 32);
			break;
		case 4: /* the store's own token */
			snprintf(kr.replicas[1].token,
				 sizeof(kr.replicas[1].token), "tok-a");
			break;
		case 5: /* a label ending in a space */
			snprintf(kr.replicas[1].token,
				 sizeof(kr.replicas[1].token), "tok-c ");
			break;
		default: /* an empty label */
			kr.replicas[0].token[0] = '\0';
			break;
		}
		rp_buf_reset(&b);
		assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key),
				 RP_OK);
		assert_int_equal(
			rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			RP_ERR_FORMAT);
		assert_non_null(strstr(st.msg, "replica"));
		rp_status_clear(&st);
	}
	/* version 3 with an empty list; a list behind version 2 */
	kr.num_replicas = 0;
	memset(kr.store_id, 0x22, sizeof(kr.store_id));
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(b.p[4], 2);
	b.p[4] = 3;
	b.len -= 32;
	assert_int_equal(rp_buf_add_u32be(&b, 0), RP_OK);
	assert_int_equal(rp_buf_add(&b, saved, 32), RP_OK);
	remac(&b);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_ERR_FORMAT);
	rp_status_clear(&st);
	memcpy(kr.replicas, saved, sizeof(saved));
	kr.num_replicas = 2;
	rp_buf_reset(&b);
	assert_int_equal(rp_keyring_encode(&b, &st, &kr, mac_key), RP_OK);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_OK);
	rp_keyring_fini(&back);
	b.p[4] = 2;
	remac(&b);
	assert_int_equal(rp_keyring_decode(&back, &st, b.p, b.len, mac_key),
			 RP_ERR_FORMAT);
	rp_keyring_fini(&kr);
	rp_buf_fini(&b);
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
		cmocka_unit_test(test_keyring_replicas_round_trip),
		cmocka_unit_test(test_keyring_quota_round_trip),
		cmocka_unit_test(test_keyring_replica_check_refusals),
		cmocka_unit_test(test_keyring_replicas_non_canonical_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
