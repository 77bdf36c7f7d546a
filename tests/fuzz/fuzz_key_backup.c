/*
 * fuzz_key_backup: rp_key_backup_decode (the parser under `key restore`)
 * for a fixed test security world, twice: over the input as a whole blob
 * (magic, version and world checks, then the MAC, which almost nothing
 * passes), and over a blob the harness frames around the input: magic,
 * version 1, the world's id, the input, and a valid MAC under the world's
 * backup MAC key, so that the record parser sees every input. When a
 * decode succeeds:
 *   - the record encodes back to exactly the bytes it was read from, and
 *     the wrapped material follows it with its u32 length and ends where
 *     the MAC starts (the format is canonical);
 *   - the record has a known algorithm, state and backend, known flags,
 *     a 1..RP_PUB_DER_MAX-byte public key, and its id is SHA-256 of it.
 * Failures are RP_ERR_FORMAT or RP_ERR_AUTH (never AUTH when the harness
 * made the MAC and the world id), always with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "keyring.h"
#include "ks_soft.h"
#include "lifecycle.h"
#include "rp_buf.h"
#include "rp_span.h"


#define MAC_LEN	 32
#define HDR_LEN	 (4 + 1 + 16)
#define BLOB_MAX (64 * 1024)

/* the test world; make_corpus.sh's key backup seeds use the same */
static const uint8_t world_key[32] = "key backup fuzz world key 01234";
static const uint8_t world_id[16] = "fuzz world id 01";

static void check_record(const struct rp_key_info *k)
{
	uint8_t id[RP_KEY_ID_LEN];
	unsigned int n = 0;

	CHECK(k->alg >= RP_ALG_RSA2048 && k->alg <= RP_ALG_X25519);
	CHECK(k->state >= RP_KEY_PENDING && k->state <= RP_KEY_RETIRING);
	CHECK(k->backend == RP_BACKEND_SOFT || k->backend == RP_BACKEND_PKCS11);
	CHECK(!(k->flags & ~(RP_KEY_EXPORTABLE | RP_KEY_IMPORTED)));
	CHECK(k->pub_len >= 1 && k->pub_len <= RP_PUB_DER_MAX);
	CHECK(EVP_Digest(k->pub, k->pub_len, id, &n, EVP_sha256(), NULL) &&
	      n == RP_KEY_ID_LEN && !memcmp(id, k->id, RP_KEY_ID_LEN));
}

static void decode(const uint8_t *in, size_t in_len, int is_framed)
{
	struct rp_status st = { 0 };
	struct rp_key_info rec;
	struct rp_span wrapped = { NULL, 0 };
	struct rp_buf b = { 0 };
	enum rp_err err;

	err = rp_key_backup_decode(&st, &rec, &wrapped, world_key, world_id, in,
				   in_len);
	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_AUTH);
		CHECK(!is_framed || err == RP_ERR_FORMAT || in_len > BLOB_MAX);
		CHECK(st.err == err && st.msg[0] != '\0');
		return;
	}
	CHECK(in_len <= BLOB_MAX && in_len >= HDR_LEN + MAC_LEN);
	check_record(&rec);
	/* record || u32 length || wrapped, between the header and the MAC */
	CHECK(rp_keyring_encode_key(&b, &rec) == RP_OK);
	CHECK(rp_buf_add_u32be(&b, (uint32_t)wrapped.len) == RP_OK);
	CHECK(HDR_LEN + b.len + wrapped.len + MAC_LEN == in_len);
	CHECK(!memcmp(in + HDR_LEN, b.p, b.len));
	CHECK(wrapped.p == in + HDR_LEN + b.len);
	rp_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mac_key[32];
	static int has_mac_key;
	struct rp_status st = { 0 };
	uint8_t *framed;
	unsigned int n = 0;

	if (!has_mac_key) {
		CHECK(rp_soft_derive(mac_key, &st, world_key,
				     "reprotect/v1 key backup mac") == RP_OK);
		has_mac_key = 1;
	}
	decode(data, size, 0);

	/* the input framed for the test world, with a MAC that verifies */
	framed = malloc(HDR_LEN + size + MAC_LEN);
	CHECK(framed != NULL);
	memcpy(framed, "RPKB\x01", 5);
	memcpy(framed + 5, world_id, 16);
	if (size) {
		memcpy(framed + HDR_LEN, data, size);
	}
	CHECK(HMAC(EVP_sha256(), mac_key, sizeof(mac_key), framed,
		   HDR_LEN + size, framed + HDR_LEN + size, &n) &&
	      n == MAC_LEN);
	decode(framed, HDR_LEN + size + MAC_LEN, 1);
	free(framed);
	return 0;
}
