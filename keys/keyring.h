#ifndef RP_KEYS_KEYRING_H
#define RP_KEYS_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "license.h"
#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"
#include "rp_span.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The keyring: every tenant key's metadata and public key, with its state.
 * Its file is MACed (HMAC-SHA-256 under a key derived from the world key),
 * so an edit by hand is detected. Key material is not in it.
 */
#define RP_KEYRING_MAX_KEYS 4096
#define RP_PUB_DER_MAX	    600 /* SubjectPublicKeyInfo DER, RSA-4096 fits */
#define RP_KEYRING_FILE_MAX (RP_KEYRING_MAX_KEYS * 800 + 64)

enum rp_key_alg {
	RP_ALG_RSA2048 = 1,
	RP_ALG_RSA3072 = 2,
	RP_ALG_RSA4096 = 3,
	RP_ALG_X25519 = 4, /* X25519 wrapping + an Ed25519 signing key */
};

enum rp_key_state {
	RP_KEY_PENDING = 1,
	RP_KEY_ACTIVE = 2,
	RP_KEY_ARCHIVED = 3,
	RP_KEY_REVOKED = 4,
	RP_KEY_DESTROYED = 5,
	RP_KEY_RETIRING = 6, /* opens nothing; destroyed at purge_at */
};

/* retirement: the default and the longest waiting period, in days */
#define RP_RETIRE_DEFAULT_DAYS 7
#define RP_RETIRE_MAX_DAYS     3650
#define RP_PIN_PATH_MAX	       1024

enum rp_backend {
	RP_BACKEND_SOFT = 1,
	RP_BACKEND_PKCS11 = 2,
};

enum rp_key_flags {
	RP_KEY_EXPORTABLE = 1 << 0,
	RP_KEY_IMPORTED = 1 << 1,
};

struct rp_key_info {
	uint8_t id[RP_KEY_ID_LEN];
	uint8_t alg;	 /* enum rp_key_alg */
	uint8_t state;	 /* enum rp_key_state */
	uint8_t backend; /* enum rp_backend */
	uint8_t flags;	 /* enum rp_key_flags */
	uint64_t created_at;
	uint64_t activated_at; /* 0: never */
	uint64_t archived_at;
	uint64_t revoked_at;
	uint64_t destroyed_at;
	uint64_t backed_up_at; /* last `key backup`; 0: never */
	size_t pub_len;
	uint8_t pub[RP_PUB_DER_MAX]; /* SubjectPublicKeyInfo DER */
	uint8_t sign_pub[32];	     /* Ed25519 public key (X25519 type) */
	/* retiring only (kept in the keyring, not in a key record): */
	uint64_t retired_at;
	uint64_t purge_at; /* destroyed by the first purge from then on */
	uint8_t retire_census[32]; /* SHA-256 of the census that allowed it */
};

#define RP_TEMPLATE_NAME_MAX   64
#define RP_TEMPLATE_RIGHTS_MAX 255
#define RP_MAX_TEMPLATES       256
#define RP_CONF_STR_MAX	       255

/* A rights template, signed by the active key (re-signed on rekey). */
struct rp_template {
	char name[RP_TEMPLATE_NAME_MAX + 1];
	char rights[RP_TEMPLATE_RIGHTS_MAX + 1]; /* comma-separated */
	uint64_t created_at;
	uint64_t signed_at;
	uint8_t signer[RP_KEY_ID_LEN];
	size_t sig_len;
	uint8_t sig[RP_SIG_MAX];
};

/* Which backend new keys go to, and where the PKCS#11 token is. */
struct rp_store_conf {
	uint8_t backend; /* enum rp_backend */
	char pkcs11_module[RP_CONF_STR_MAX + 1];
	char pkcs11_token[RP_CONF_STR_MAX + 1];
};

/*
 * A replica: another token of the store's PKCS#11 module (same PIN) that
 * holds a key's material too, restored there from the key's backup; the
 * store spreads the key's unwraps over its token and its replicas. For a
 * revoked or destroyed key, a replica is material left to erase.
 */
#define RP_REPLICAS_MAX 8	/* replicas of one key */
#define RP_KEY_OPS_MAX	1000000 /* the highest quota, operations a second */

struct rp_replica {
	uint8_t key_id[RP_KEY_ID_LEN];
	char token[RP_CONF_STR_MAX + 1]; /* the token's label */
};

struct rp_keyring {
	uint64_t generation; /* bumped on every write */
	struct rp_store_conf conf;
	/* the shortest waiting period a retirement may have (set at init) */
	uint32_t min_retire_days;
	/*
	 * the keystore's quota: the most private-key operations a second a
	 * run of this store asks (0: none; `reprotect quota`); a run's
	 * --key-ops may only lower it
	 */
	uint32_t key_ops;
	/* the store's own id, random, made at init (zero: a keyring of
	 * before 2026-12-06); a PKCS#11 token keeps its generation by it */
	uint8_t store_id[16];
	/* a file outside the store that pins the generation ("": none) */
	char pin_path[RP_PIN_PATH_MAX + 1];
	size_t num_keys;
	struct rp_key_info *keys; /* owned */
	size_t cap;
	size_t num_templates;
	struct rp_template *templates; /* owned */
	/* sorted by key id, then token label; no pair twice */
	size_t num_replicas;
	struct rp_replica *replicas; /* owned */
};

/* rp_key_alg_name returns "rsa2048", ..., "x25519", or "unknown". */
const char *rp_key_alg_name(uint8_t alg);

/* rp_key_alg_rsa_bits returns an RSA algorithm's modulus bits, else 0. */
int rp_key_alg_rsa_bits(uint8_t alg);

/* rp_key_alg_parse maps a name to an algorithm; RP_ERR_USAGE if unknown. */
RP_MUST_CHECK enum rp_err rp_key_alg_parse(uint8_t *out, const char *name);

/* rp_key_state_name returns "pending", "active", ..., or "unknown". */
const char *rp_key_state_name(uint8_t state);

/* rp_key_id_hex writes the 64-char hex key id and a NUL. */
void rp_key_id_hex(char out[RP_ATLEAST(2 * RP_KEY_ID_LEN + 1)],
		   const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)]);

/*
 * rp_keyring_find looks up a key by id; with a prefix (`prefix_len` hex
 * digits of `hex`) it must be unambiguous. Returns the index, or -1 with
 * RP_ERR_NOTFOUND / RP_ERR_USAGE (ambiguous) recorded in `st`.
 */
long rp_keyring_find_hex(const struct rp_keyring *kr, struct rp_status *st,
			 const char *hex);

/* rp_keyring_find_id returns the index of the key with `id`, or -1. */
long rp_keyring_find_id(const struct rp_keyring *kr,
			const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)]);

/*
 * rp_keyring_min_retire_days returns the shortest waiting period a
 * retirement may have: the one set at init, else RP_RETIRE_DEFAULT_DAYS.
 */
uint32_t rp_keyring_min_retire_days(const struct rp_keyring *kr);

/* rp_keyring_active returns the index of the active key, or -1. */
long rp_keyring_active(const struct rp_keyring *kr);

/* rp_keyring_find_template returns the index of template `name`, or -1. */
long rp_keyring_find_template(const struct rp_keyring *kr, const char *name);

/* rp_keyring_add_template appends a copy of `t`. RP_ERR_EXISTS if taken. */
RP_MUST_CHECK enum rp_err rp_keyring_add_template(struct rp_keyring *kr,
						  struct rp_status *st,
						  const struct rp_template *t);

/*
 * rp_template_message writes what a template's signature covers:
 * "reprotect/v1 rights template" || 0x00 || name || 0x00 || rights ||
 * 0x00 || signed_at (u64 BE) || created_at (u64 BE).
 */
RP_MUST_CHECK enum rp_err rp_template_message(struct rp_buf *out,
					      const struct rp_template *t);

/* rp_keyring_add appends a copy of `ki`. RP_ERR_EXISTS if the id is there. */
RP_MUST_CHECK enum rp_err rp_keyring_add(struct rp_keyring *kr,
					 struct rp_status *st,
					 const struct rp_key_info *ki);

/*
 * rp_keyring_replicas returns how many replicas key `id` has; they are
 * kr->replicas[*out_first ...], in label order (*out_first is where its
 * first would go when it has none).
 */
size_t rp_keyring_replicas(const struct rp_keyring *kr,
			   const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)],
			   size_t *out_first);

/*
 * rp_keyring_replica_check says whether key `id` may get a replica on
 * token `token`: RP_ERR_NOKEY (no such key), RP_ERR_USAGE (a soft key, a
 * label that is not 1..RP_CONF_STR_MAX printable ASCII characters or ends
 * in a space, the store's own token, or RP_REPLICAS_MAX already),
 * RP_ERR_EXISTS (listed already); RP_OK otherwise.
 */
RP_MUST_CHECK enum rp_err
rp_keyring_replica_check(const struct rp_keyring *kr, struct rp_status *st,
			 const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)],
			 const char *token);

/* rp_keyring_add_replica checks (as above), then inserts in order. */
RP_MUST_CHECK enum rp_err
rp_keyring_add_replica(struct rp_keyring *kr, struct rp_status *st,
		       const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)],
		       const char *token);

/* rp_keyring_remove_replica drops kr->replicas[i]. */
void rp_keyring_remove_replica(struct rp_keyring *kr, size_t i);

/*
 * rp_keyring_encode serialises the keyring and appends its MAC under
 * `mac_key`.
 */
RP_MUST_CHECK enum rp_err
rp_keyring_encode(struct rp_buf *out, struct rp_status *st,
		  const struct rp_keyring *kr,
		  const uint8_t mac_key[RP_ATLEAST(32)]);

/*
 * rp_keyring_decode verifies the MAC first (RP_ERR_AUTH "keyring integrity
 * check failed" if it differs), then parses strictly (RP_ERR_FORMAT).
 */
RP_MUST_CHECK enum rp_err
rp_keyring_decode(struct rp_keyring *out, struct rp_status *st,
		  const uint8_t *in, size_t in_len,
		  const uint8_t mac_key[RP_ATLEAST(32)]);

/* rp_keyring_encode_key appends one key record (as in the keyring file). */
RP_MUST_CHECK enum rp_err rp_keyring_encode_key(struct rp_buf *b,
						const struct rp_key_info *k);

/*
 * rp_keyring_decode_key reads one key record strictly; returns 1 on
 * success, 0 if it is malformed.
 */
int rp_keyring_decode_key(struct rp_span *s, struct rp_key_info *k);

/* rp_keyring_fini frees the keyring; safe on a zeroed struct. */
void rp_keyring_fini(struct rp_keyring *kr);

#ifdef __cplusplus
}
#endif
#endif
