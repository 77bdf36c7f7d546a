/*
 * fuzz_keyring: rp_keyring_decode under a fixed MAC key, twice: over the
 * input as it is (the MAC check, which almost nothing passes), and over
 * the input followed by a valid MAC that the harness computes, so that
 * the body parser itself sees every input. Then rp_keyring_decode_key over
 * the input. When a decode succeeds:
 *   - the keyring encodes back to exactly the bytes decoded, MAC included
 *     (the format is canonical);
 *   - at most RP_KEYRING_MAX_KEYS keys with distinct ids, each with a
 *     known algorithm, state and backend, known flags and a public key of
 *     1..RP_PUB_DER_MAX bytes; at most one is active;
 *   - at most RP_MAX_TEMPLATES templates with distinct non-empty names;
 *   - a retiring key has a waiting period (purge_at after retired_at),
 *     no other key has one, and the minimum period is within bounds;
 *   - replicas in strict order (key id, then label), each for a key of
 *     the keyring on the PKCS#11 backend, with a label of 1..
 *     RP_CONF_STR_MAX printable characters that is not the store's own
 *     token, at most RP_REPLICAS_MAX per key;
 *   - a decoded key record encodes back to exactly the bytes it used.
 * When the MAC differs the result is RP_ERR_AUTH; other failures are
 * RP_ERR_FORMAT, always with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "keyring.h"
#include "rp_buf.h"
#include "rp_span.h"


#define MAC_LEN 32

static const uint8_t fixed_mac_key[32] = {
	0x6b, 0x65, 0x79, 0x72, 0x69, 0x6e, 0x67, 0x20, /* "keyring " */
	0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6d, 0x61, 0x63, /* "fuzz mac" */
	0x20, 0x6b, 0x65, 0x79, 0x20, 0x30, 0x31, 0x32, /* " key 012" */
	0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x21, /* "3456789!" */
};

static void check_keyring(const struct rp_keyring *kr, const uint8_t *in,
			  size_t in_len)
{
	struct rp_status st = { 0 };
	struct rp_buf b = { 0 };
	size_t active = 0;

	CHECK(kr->num_keys <= RP_KEYRING_MAX_KEYS);
	CHECK(kr->num_keys <= kr->cap);
	CHECK(kr->conf.backend == RP_BACKEND_SOFT ||
	      kr->conf.backend == RP_BACKEND_PKCS11);
	for (size_t i = 0; i < kr->num_keys; i++) {
		const struct rp_key_info *k = &kr->keys[i];

		CHECK(k->alg >= RP_ALG_RSA2048 && k->alg <= RP_ALG_X25519);
		CHECK(k->state >= RP_KEY_PENDING &&
		      k->state <= RP_KEY_RETIRING);
		/* a retiring key has its waiting period, no other key one */
		CHECK((k->state == RP_KEY_RETIRING) ==
		      (k->purge_at > k->retired_at));
		CHECK(k->backend == RP_BACKEND_SOFT ||
		      k->backend == RP_BACKEND_PKCS11);
		CHECK(!(k->flags & ~(RP_KEY_EXPORTABLE | RP_KEY_IMPORTED)));
		CHECK(k->pub_len >= 1 && k->pub_len <= RP_PUB_DER_MAX);
		CHECK(rp_keyring_find_id(kr, k->id) == (long)i);
		active += k->state == RP_KEY_ACTIVE;
	}
	CHECK(active <= 1);
	CHECK(rp_keyring_min_retire_days(kr) >= 1 &&
	      rp_keyring_min_retire_days(kr) <= RP_RETIRE_MAX_DAYS);
	CHECK(rp_keyring_active(kr) == -1 || active == 1);
	CHECK(kr->num_templates <= RP_MAX_TEMPLATES);
	for (size_t i = 0; i < kr->num_templates; i++) {
		const struct rp_template *t = &kr->templates[i];

		CHECK(t->name[0] != '\0');
		CHECK(strlen(t->name) <= RP_TEMPLATE_NAME_MAX);
		CHECK(strlen(t->rights) <= RP_TEMPLATE_RIGHTS_MAX);
		CHECK(t->sig_len <= RP_SIG_MAX);
		CHECK(rp_keyring_find_template(kr, t->name) == (long)i);
	}
	for (size_t i = 0; i < kr->num_replicas; i++) {
		const struct rp_replica *r = &kr->replicas[i];
		const long k = rp_keyring_find_id(kr, r->key_id);
		const size_t n = strlen(r->token);
		size_t first;

		CHECK(k >= 0 && kr->keys[k].backend == RP_BACKEND_PKCS11);
		CHECK(n >= 1 && n <= RP_CONF_STR_MAX && r->token[n - 1] != ' ');
		for (size_t j = 0; j < n; j++) {
			CHECK(r->token[j] >= 0x20 && r->token[j] <= 0x7e);
		}
		CHECK(strcmp(r->token, kr->conf.pkcs11_token) != 0);
		CHECK(rp_keyring_replicas(kr, r->key_id, &first) <=
		      RP_REPLICAS_MAX);
		CHECK(first <= i);
		if (i) {
			const int c =
				memcmp(r[-1].key_id, r->key_id, RP_KEY_ID_LEN);

			CHECK(c < 0 ||
			      (c == 0 && strcmp(r[-1].token, r->token) < 0));
		}
	}
	CHECK(rp_keyring_encode(&b, &st, kr, fixed_mac_key) == RP_OK);
	CHECK(b.len == in_len && !memcmp(b.p, in, in_len));
	rp_buf_fini(&b);
}

static void decode(const uint8_t *in, size_t in_len, int is_mac_valid)
{
	struct rp_keyring kr;
	struct rp_status st = { 0 };
	enum rp_err err;

	err = rp_keyring_decode(&kr, &st, in, in_len, fixed_mac_key);
	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_AUTH);
		CHECK(!is_mac_valid || err == RP_ERR_FORMAT);
		CHECK(st.err == err && st.msg[0] != '\0');
	} else {
		check_keyring(&kr, in, in_len);
	}
	rp_keyring_fini(&kr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_key_info k;
	struct rp_span s = rp_span_of(data, size);
	uint8_t *framed;
	unsigned int n = 0;

	decode(data, size, 0);

	/* the same bytes with a MAC that verifies: the parser is reached */
	framed = malloc(size + MAC_LEN);
	CHECK(framed != NULL);
	if (size) {
		memcpy(framed, data, size);
	}
	CHECK(HMAC(EVP_sha256(), fixed_mac_key, sizeof(fixed_mac_key), data,
		   size, framed + size, &n) &&
	      n == MAC_LEN);
	decode(framed, size + MAC_LEN, 1);
	free(framed);

	/* one key record on its own */
	if (rp_keyring_decode_key(&s, &k)) {
		struct rp_buf b = { 0 };
		const size_t used = size - s.len;

		CHECK(rp_keyring_encode_key(&b, &k) == RP_OK);
		CHECK(b.len == used && !memcmp(b.p, data, used));
		rp_buf_fini(&b);
	}
	return 0;
}
