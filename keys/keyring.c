#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "rp_b64.h"
#include "rp_span.h"

#define KEYRING_MAGIC	"RPKR"
/*
 * Version 1: header, keys, templates. Version 2 adds, after the templates,
 * the policy section: the minimum waiting period (u32 days), the store's
 * id (16 bytes, zero: none), the generation pin file's path (u16 length,
 * 0: none; bytes) and one entry
 * per retiring key (u32 count; key id, retired_at u64, purge_at u64,
 * census digest 32 bytes). A keyring is written as version 2 only when
 * that section says something (a retiring key, a minimum other than the
 * default, a store id, a pin file), so each keyring has one encoding.
 * Version 3 is version 2 followed by the store's keystore quota (u32
 * private-key operations a second, 0: none, at most RP_KEY_OPS_MAX) and
 * the replica list: u32 count; per replica the key id (32 bytes) and the
 * token's label (u16
 * length, 1..RP_CONF_STR_MAX printable ASCII bytes, not ending in a
 * space), sorted by key id then label (bytewise), no pair twice, at most
 * RP_REPLICAS_MAX per key, each for a key of the keyring on the PKCS#11
 * backend and never on the store's own token. A keyring is written as
 * version 3 only when it has a quota or a replica (its version 2 section
 * may then say nothing).
 */
#define KEYRING_VERSION	   1
#define KEYRING_VERSION_V2 2
#define KEYRING_VERSION_V3 3

static const char *const alg_names[] = {
	[RP_ALG_RSA2048] = "rsa2048",
	[RP_ALG_RSA3072] = "rsa3072",
	[RP_ALG_RSA4096] = "rsa4096",
	[RP_ALG_X25519] = "x25519",
};

static const char *const state_names[] = {
	[RP_KEY_PENDING] = "pending",	  [RP_KEY_ACTIVE] = "active",
	[RP_KEY_ARCHIVED] = "archived",	  [RP_KEY_REVOKED] = "revoked",
	[RP_KEY_DESTROYED] = "destroyed", [RP_KEY_RETIRING] = "retiring",
};

const char *rp_key_alg_name(uint8_t alg)
{
	if (alg >= RP_ARRAY_LEN(alg_names) || !alg_names[alg]) {
		return "unknown";
	}
	return alg_names[alg];
}

int rp_key_alg_rsa_bits(uint8_t alg)
{
	switch (alg) {
	case RP_ALG_RSA2048:
		return 2048;
	case RP_ALG_RSA3072:
		return 3072;
	case RP_ALG_RSA4096:
		return 4096;
	default:
		return 0;
	}
}

enum rp_err rp_key_alg_parse(uint8_t *out, const char *name)
{
	for (size_t i = 0; i < RP_ARRAY_LEN(alg_names); i++) {
		if (alg_names[i] && !strcmp(alg_names[i], name)) {
			*out = (uint8_t)i;
			return RP_OK;
		}
	}
	return RP_ERR_USAGE;
}

const char *rp_key_state_name(uint8_t state)
{
	if (state >= RP_ARRAY_LEN(state_names) || !state_names[state]) {
		return "unknown";
	}
	return state_names[state];
}

void rp_key_id_hex(char out[RP_ATLEAST(2 * RP_KEY_ID_LEN + 1)],
		   const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)])
{
	rp_hex_encode(out, id, RP_KEY_ID_LEN);
}

long rp_keyring_find_hex(const struct rp_keyring *kr, struct rp_status *st,
			 const char *hex)
{
	const size_t n = strlen(hex);
	long found = -1;

	if (n < 4 || n > 2 * RP_KEY_ID_LEN) {
		rp_status_fail(st, RP_ERR_USAGE,
			       "key id '%s': give 4 to 64 hex digits", hex);
		return -1;
	}
	for (size_t i = 0; i < kr->num_keys; i++) {
		char h[2 * RP_KEY_ID_LEN + 1];

		rp_key_id_hex(h, kr->keys[i].id);
		if (strncasecmp(h, hex, n)) {
			continue;
		}
		if (found >= 0) {
			rp_status_fail(st, RP_ERR_USAGE,
				       "key id '%s' is ambiguous: give more "
				       "digits",
				       hex);
			return -1;
		}
		found = (long)i;
	}
	if (found < 0) {
		rp_status_fail(st, RP_ERR_NOTFOUND, "no key '%s' in the store",
			       hex);
	}
	return found;
}

long rp_keyring_find_id(const struct rp_keyring *kr,
			const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)])
{
	for (size_t i = 0; i < kr->num_keys; i++) {
		if (!memcmp(kr->keys[i].id, id, RP_KEY_ID_LEN)) {
			return (long)i;
		}
	}
	return -1;
}

long rp_keyring_active(const struct rp_keyring *kr)
{
	for (size_t i = 0; i < kr->num_keys; i++) {
		if (kr->keys[i].state == RP_KEY_ACTIVE) {
			return (long)i;
		}
	}
	return -1;
}

enum rp_err rp_keyring_add(struct rp_keyring *kr, struct rp_status *st,
			   const struct rp_key_info *ki)
{
	if (rp_keyring_find_id(kr, ki->id) >= 0) {
		return rp_status_fail(st, RP_ERR_EXISTS,
				      "the key is already in the store");
	}
	if (kr->num_keys >= RP_KEYRING_MAX_KEYS) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the store holds the maximum of %d keys",
				      RP_KEYRING_MAX_KEYS);
	}
	if (kr->num_keys == kr->cap) {
		const size_t cap = kr->cap ? kr->cap * 2 : 8;
		struct rp_key_info *k = realloc(kr->keys, cap * sizeof(*k));

		if (!k) {
			return rp_status_fail(st, RP_ERR_NOMEM,
					      "out of memory");
		}
		kr->keys = k;
		kr->cap = cap;
	}
	kr->keys[kr->num_keys++] = *ki;
	return RP_OK;
}

static int replica_cmp(const uint8_t *id_a, const char *token_a,
		       const uint8_t *id_b, const char *token_b)
{
	const int c = memcmp(id_a, id_b, RP_KEY_ID_LEN);

	return c ? c : strcmp(token_a, token_b);
}

size_t rp_keyring_replicas(const struct rp_keyring *kr,
			   const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)],
			   size_t *out_first)
{
	size_t i = 0, n = 0;

	while (i < kr->num_replicas &&
	       memcmp(kr->replicas[i].key_id, id, RP_KEY_ID_LEN) < 0) {
		i++;
	}
	while (i + n < kr->num_replicas &&
	       !memcmp(kr->replicas[i + n].key_id, id, RP_KEY_ID_LEN)) {
		n++;
	}
	*out_first = i;
	return n;
}

/*
 * valid_label: 1..RP_CONF_STR_MAX printable ASCII characters, not ending
 * in a space (a token's label is padded with spaces: one at the end could
 * not be told from the padding)
 */
static int valid_label(const char *p, size_t n)
{
	if (!n || n > RP_CONF_STR_MAX || p[n - 1] == ' ') {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e) {
			return 0;
		}
	}
	return 1;
}

enum rp_err
rp_keyring_replica_check(const struct rp_keyring *kr, struct rp_status *st,
			 const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)],
			 const char *token)
{
	const long k = rp_keyring_find_id(kr, id);
	char hex[2 * RP_KEY_ID_LEN + 1];
	size_t first, n;

	rp_key_id_hex(hex, id);
	if (k < 0) {
		return rp_status_fail(st, RP_ERR_NOKEY,
				      "key %.16s is not in the store", hex);
	}
	if (kr->keys[k].backend != RP_BACKEND_PKCS11) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "key %.16s is on the soft keystore: only "
				      "a key on a PKCS#11 token has replicas",
				      hex);
	}
	if (!valid_label(token, strnlen(token, RP_CONF_STR_MAX + 1))) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "a token label: 1 to %d printable ASCII "
				      "characters, not ending in a space",
				      RP_CONF_STR_MAX);
	}
	if (!strcmp(token, kr->conf.pkcs11_token)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "token '%s' is the store's own token: "
				      "key %.16s is there already",
				      token, hex);
	}
	n = rp_keyring_replicas(kr, id, &first);
	for (size_t i = first; i < first + n; i++) {
		if (!strcmp(kr->replicas[i].token, token)) {
			return rp_status_fail(st, RP_ERR_EXISTS,
					      "key %.16s has a replica on "
					      "token '%s' already",
					      hex, token);
		}
	}
	if (n >= RP_REPLICAS_MAX) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "key %.16s has %d replicas, the most a "
				      "key has",
				      hex, RP_REPLICAS_MAX);
	}
	return RP_OK;
}

enum rp_err rp_keyring_add_replica(struct rp_keyring *kr, struct rp_status *st,
				   const uint8_t id[RP_ATLEAST(RP_KEY_ID_LEN)],
				   const char *token)
{
	struct rp_replica *p;
	size_t i = 0;
	enum rp_err err = rp_keyring_replica_check(kr, st, id, token);

	if (err) {
		return err;
	}
	p = realloc(kr->replicas, (kr->num_replicas + 1) * sizeof(*p));
	if (!p) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	kr->replicas = p;
	while (i < kr->num_replicas &&
	       replica_cmp(p[i].key_id, p[i].token, id, token) < 0) {
		i++;
	}
	memmove(p + i + 1, p + i, (kr->num_replicas - i) * sizeof(*p));
	memset(&p[i], 0, sizeof(p[i]));
	memcpy(p[i].key_id, id, RP_KEY_ID_LEN);
	snprintf(p[i].token, sizeof(p[i].token), "%s", token);
	kr->num_replicas++;
	return RP_OK;
}

void rp_keyring_remove_replica(struct rp_keyring *kr, size_t i)
{
	if (i >= kr->num_replicas) {
		RP_BUG("replica index out of range");
	}
	memmove(kr->replicas + i, kr->replicas + i + 1,
		(kr->num_replicas - i - 1) * sizeof(*kr->replicas));
	kr->num_replicas--;
}

enum rp_err rp_keyring_encode_key(struct rp_buf *b, const struct rp_key_info *k)
{
	enum rp_err err = rp_buf_add(b, k->id, RP_KEY_ID_LEN);

	if (!err) {
		err = rp_buf_add_u8(b, k->alg);
	}
	if (!err) {
		err = rp_buf_add_u8(b, k->state);
	}
	if (!err) {
		err = rp_buf_add_u8(b, k->backend);
	}
	if (!err) {
		err = rp_buf_add_u8(b, k->flags);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, k->created_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, k->activated_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, k->archived_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, k->revoked_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, k->destroyed_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, k->backed_up_at);
	}
	if (!err) {
		err = rp_buf_add_u16be(b, (uint16_t)k->pub_len);
	}
	if (!err) {
		err = rp_buf_add(b, k->pub, k->pub_len);
	}
	if (!err) {
		err = rp_buf_add(b, k->sign_pub, sizeof(k->sign_pub));
	}
	return err;
}

static enum rp_err add_str(struct rp_buf *b, const char *str)
{
	const size_t n = strlen(str);
	enum rp_err err = rp_buf_add_u16be(b, (uint16_t)n);

	return err ? err : rp_buf_add(b, str, n);
}

static int get_str(struct rp_span *s, char *out, size_t max)
{
	uint16_t n;

	if (!rp_span_get_u16be(s, &n) || n > max || !rp_span_copy(s, out, n) ||
	    memchr(out, '\0', n)) {
		return 0;
	}
	out[n] = '\0';
	return 1;
}

static enum rp_err add_conf(struct rp_buf *b, const struct rp_store_conf *c)
{
	enum rp_err err = rp_buf_add_u8(b, c->backend);

	if (!err) {
		err = add_str(b, c->pkcs11_module);
	}
	if (!err) {
		err = add_str(b, c->pkcs11_token);
	}
	return err;
}

static int get_conf(struct rp_span *s, struct rp_store_conf *c)
{
	return rp_span_get_u8(s, &c->backend) &&
	       (c->backend == RP_BACKEND_SOFT ||
		c->backend == RP_BACKEND_PKCS11) &&
	       get_str(s, c->pkcs11_module, RP_CONF_STR_MAX) &&
	       get_str(s, c->pkcs11_token, RP_CONF_STR_MAX);
}

static enum rp_err add_template(struct rp_buf *b, const struct rp_template *t)
{
	enum rp_err err = add_str(b, t->name);

	if (!err) {
		err = add_str(b, t->rights);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, t->created_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(b, t->signed_at);
	}
	if (!err) {
		err = rp_buf_add(b, t->signer, RP_KEY_ID_LEN);
	}
	if (!err) {
		err = rp_buf_add_u16be(b, (uint16_t)t->sig_len);
	}
	if (!err) {
		err = rp_buf_add(b, t->sig, t->sig_len);
	}
	return err;
}

static int get_template(struct rp_span *s, struct rp_template *t)
{
	uint16_t n;

	memset(t, 0, sizeof(*t));
	if (!get_str(s, t->name, RP_TEMPLATE_NAME_MAX) || !t->name[0] ||
	    !get_str(s, t->rights, RP_TEMPLATE_RIGHTS_MAX) ||
	    !rp_span_get_u64be(s, &t->created_at) ||
	    !rp_span_get_u64be(s, &t->signed_at) ||
	    !rp_span_copy(s, t->signer, RP_KEY_ID_LEN) ||
	    !rp_span_get_u16be(s, &n) || n > RP_SIG_MAX ||
	    !rp_span_copy(s, t->sig, n)) {
		return 0;
	}
	t->sig_len = n;
	return 1;
}

long rp_keyring_find_template(const struct rp_keyring *kr, const char *name)
{
	for (size_t i = 0; i < kr->num_templates; i++) {
		if (!strcmp(kr->templates[i].name, name)) {
			return (long)i;
		}
	}
	return -1;
}

enum rp_err rp_keyring_add_template(struct rp_keyring *kr, struct rp_status *st,
				    const struct rp_template *t)
{
	struct rp_template *p;

	if (rp_keyring_find_template(kr, t->name) >= 0) {
		return rp_status_fail(st, RP_ERR_EXISTS,
				      "template '%s' already exists", t->name);
	}
	if (kr->num_templates >= RP_MAX_TEMPLATES) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the store holds the maximum of %d "
				      "templates",
				      RP_MAX_TEMPLATES);
	}
	p = realloc(kr->templates, (kr->num_templates + 1) * sizeof(*p));
	if (!p) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	kr->templates = p;
	kr->templates[kr->num_templates++] = *t;
	return RP_OK;
}

enum rp_err rp_template_message(struct rp_buf *out, const struct rp_template *t)
{
	static const char domain[] = "reprotect/v1 rights template";
	enum rp_err err = rp_buf_add(out, domain, sizeof(domain));

	if (!err) {
		err = rp_buf_add(out, t->name, strlen(t->name) + 1);
	}
	if (!err) {
		err = rp_buf_add(out, t->rights, strlen(t->rights) + 1);
	}
	if (!err) {
		err = rp_buf_add_u64be(out, t->signed_at);
	}
	if (!err) {
		err = rp_buf_add_u64be(out, t->created_at);
	}
	return err;
}

static int keyring_mac(uint8_t out[32], const uint8_t key[32], const uint8_t *p,
		       size_t len)
{
	unsigned int n = 0;

	return HMAC(EVP_sha256(), key, 32, p, len, out, &n) && n == 32;
}

static int has_store_id(const struct rp_keyring *kr)
{
	static const uint8_t zero[sizeof(kr->store_id)];

	return memcmp(kr->store_id, zero, sizeof(zero)) != 0;
}

enum rp_err rp_keyring_encode(struct rp_buf *out, struct rp_status *st,
			      const struct rp_keyring *kr,
			      const uint8_t mac_key[RP_ATLEAST(32)])
{
	const size_t start = out->len;
	uint8_t mac[32];
	enum rp_err err;

	const uint32_t min_days = rp_keyring_min_retire_days(kr);
	uint32_t num_retiring = 0;
	uint8_t version;
	int is_v2;

	for (size_t i = 0; i < kr->num_keys; i++) {
		num_retiring += kr->keys[i].state == RP_KEY_RETIRING;
	}
	is_v2 = num_retiring || min_days != RP_RETIRE_DEFAULT_DAYS ||
		kr->pin_path[0] || has_store_id(kr) || kr->num_replicas ||
		kr->key_ops;
	version = is_v2 ? KEYRING_VERSION_V2 : KEYRING_VERSION;
	if (kr->num_replicas || kr->key_ops) {
		version = KEYRING_VERSION_V3;
	}
	err = rp_buf_add(out, KEYRING_MAGIC, 4);
	if (!err) {
		err = rp_buf_add_u8(out, version);
	}
	if (!err) {
		err = rp_buf_add_u64be(out, kr->generation);
	}
	if (!err) {
		err = add_conf(out, &kr->conf);
	}
	if (!err) {
		err = rp_buf_add_u32be(out, (uint32_t)kr->num_keys);
	}
	for (size_t i = 0; !err && i < kr->num_keys; i++) {
		err = rp_keyring_encode_key(out, &kr->keys[i]);
	}
	if (!err) {
		err = rp_buf_add_u32be(out, (uint32_t)kr->num_templates);
	}
	for (size_t i = 0; !err && i < kr->num_templates; i++) {
		err = add_template(out, &kr->templates[i]);
	}
	if (!err && is_v2) {
		const size_t pin_len = strnlen(kr->pin_path, RP_PIN_PATH_MAX);

		err = rp_buf_add_u32be(out, min_days);
		if (!err) {
			err = rp_buf_add(out, kr->store_id,
					 sizeof(kr->store_id));
		}
		if (!err) {
			err = rp_buf_add_u16be(out, (uint16_t)pin_len);
		}
		if (!err) {
			err = rp_buf_add(out, kr->pin_path, pin_len);
		}
		if (!err) {
			err = rp_buf_add_u32be(out, num_retiring);
		}
		for (size_t i = 0; !err && i < kr->num_keys; i++) {
			const struct rp_key_info *k = &kr->keys[i];

			if (k->state != RP_KEY_RETIRING) {
				continue;
			}
			err = rp_buf_add(out, k->id, RP_KEY_ID_LEN);
			if (!err) {
				err = rp_buf_add_u64be(out, k->retired_at);
			}
			if (!err) {
				err = rp_buf_add_u64be(out, k->purge_at);
			}
			if (!err) {
				err = rp_buf_add(out, k->retire_census,
						 sizeof(k->retire_census));
			}
		}
	}
	if (!err && version == KEYRING_VERSION_V3) {
		err = rp_buf_add_u32be(out, kr->key_ops);
		if (!err) {
			err = rp_buf_add_u32be(out, (uint32_t)kr->num_replicas);
		}
	}
	for (size_t i = 0; !err && i < kr->num_replicas; i++) {
		err = rp_buf_add(out, kr->replicas[i].key_id, RP_KEY_ID_LEN);
		if (!err) {
			err = add_str(out, kr->replicas[i].token);
		}
	}
	if (err) {
		return rp_status_fail(st, err, "cannot encode the keyring");
	}
	if (!keyring_mac(mac, mac_key, out->p + start, out->len - start)) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "keyring mac");
	}
	err = rp_buf_add(out, mac, sizeof(mac));
	if (err) {
		return rp_status_fail(st, err, "cannot encode the keyring");
	}
	return RP_OK;
}

static int valid_key(const struct rp_key_info *k)
{
	return k->alg >= RP_ALG_RSA2048 && k->alg <= RP_ALG_X25519 &&
	       k->state >= RP_KEY_PENDING && k->state <= RP_KEY_RETIRING &&
	       (k->backend == RP_BACKEND_SOFT ||
		k->backend == RP_BACKEND_PKCS11) &&
	       !(k->flags & ~(RP_KEY_EXPORTABLE | RP_KEY_IMPORTED)) &&
	       k->pub_len > 0;
}

int rp_keyring_decode_key(struct rp_span *s, struct rp_key_info *k)
{
	uint16_t pub_len;

	memset(k, 0, sizeof(*k));
	if (!rp_span_copy(s, k->id, RP_KEY_ID_LEN) ||
	    !rp_span_get_u8(s, &k->alg) || !rp_span_get_u8(s, &k->state) ||
	    !rp_span_get_u8(s, &k->backend) || !rp_span_get_u8(s, &k->flags) ||
	    !rp_span_get_u64be(s, &k->created_at) ||
	    !rp_span_get_u64be(s, &k->activated_at) ||
	    !rp_span_get_u64be(s, &k->archived_at) ||
	    !rp_span_get_u64be(s, &k->revoked_at) ||
	    !rp_span_get_u64be(s, &k->destroyed_at) ||
	    !rp_span_get_u64be(s, &k->backed_up_at) ||
	    !rp_span_get_u16be(s, &pub_len) || pub_len > RP_PUB_DER_MAX ||
	    !rp_span_copy(s, k->pub, pub_len) ||
	    !rp_span_copy(s, k->sign_pub, sizeof(k->sign_pub))) {
		return 0;
	}
	k->pub_len = pub_len;
	return valid_key(k);
}

uint32_t rp_keyring_min_retire_days(const struct rp_keyring *kr)
{
	return kr->min_retire_days ? kr->min_retire_days
				   : RP_RETIRE_DEFAULT_DAYS;
}

/*
 * get_retirement reads version 2's section into kr (its keys read):
 * exactly one entry per retiring key, and a section that says something
 * unless `may_be_empty` (version 3: the replicas say something)
 */
static int get_retirement(struct rp_span *s, struct rp_keyring *kr,
			  int may_be_empty)
{
	uint32_t min_days, num, num_retiring = 0;
	uint16_t pin_len;

	if (!rp_span_get_u32be(s, &min_days) || !min_days ||
	    min_days > RP_RETIRE_MAX_DAYS ||
	    !rp_span_copy(s, kr->store_id, sizeof(kr->store_id)) ||
	    !rp_span_get_u16be(s, &pin_len) || pin_len > RP_PIN_PATH_MAX ||
	    !rp_span_copy(s, kr->pin_path, pin_len) ||
	    memchr(kr->pin_path, '\0', pin_len) ||
	    (pin_len && kr->pin_path[0] != '/') ||
	    !rp_span_get_u32be(s, &num) || num > kr->num_keys ||
	    (!may_be_empty && !num && !pin_len && !has_store_id(kr) &&
	     min_days == RP_RETIRE_DEFAULT_DAYS)) {
		return 0;
	}
	kr->pin_path[pin_len] = '\0';
	for (size_t i = 0; i < kr->num_keys; i++) {
		num_retiring += kr->keys[i].state == RP_KEY_RETIRING;
	}
	if (num != num_retiring) {
		return 0;
	}
	kr->min_retire_days = min_days;
	for (uint32_t i = 0, last = 0; i < num; i++) {
		uint8_t id[RP_KEY_ID_LEN];
		struct rp_key_info *k;
		long idx;

		if (!rp_span_copy(s, id, sizeof(id))) {
			return 0;
		}
		idx = rp_keyring_find_id(kr, id);
		/* in the keys' order, so each retiring key once */
		if (idx < 0 || (i && (uint32_t)idx <= last)) {
			return 0;
		}
		last = (uint32_t)idx;
		k = &kr->keys[idx];
		if (k->state != RP_KEY_RETIRING ||
		    !rp_span_get_u64be(s, &k->retired_at) ||
		    !rp_span_get_u64be(s, &k->purge_at) ||
		    k->purge_at <= k->retired_at ||
		    !rp_span_copy(s, k->retire_census,
				  sizeof(k->retire_census))) {
			return 0;
		}
	}
	return 1;
}

/*
 * get_replicas reads version 3's quota and replica list into kr (its keys
 * and conf read): a quota in range, the replicas in canonical order, each
 * pair once, only what add_replica allows; a section that says something
 */
static int get_replicas(struct rp_span *s, struct rp_keyring *kr)
{
	uint32_t num;

	/*
	 * an entry has 35 bytes or more: a count the input cannot hold is
	 * refused before anything is allocated for it
	 */
	if (!rp_span_get_u32be(s, &kr->key_ops) ||
	    kr->key_ops > RP_KEY_OPS_MAX || !rp_span_get_u32be(s, &num) ||
	    (!num && !kr->key_ops) || num > kr->num_keys * RP_REPLICAS_MAX ||
	    num > s->len / (RP_KEY_ID_LEN + 2 + 1)) {
		return 0;
	}
	if (!num) {
		return 1;
	}
	kr->replicas = calloc(num, sizeof(*kr->replicas));
	if (!kr->replicas) {
		return 0;
	}
	for (uint32_t i = 0; i < num; i++) {
		struct rp_replica *r = &kr->replicas[i];
		uint16_t n;

		if (!rp_span_copy(s, r->key_id, RP_KEY_ID_LEN) ||
		    !rp_span_get_u16be(s, &n) || n > RP_CONF_STR_MAX ||
		    !rp_span_copy(s, r->token, n) ||
		    !valid_label(r->token, n)) {
			return 0;
		}
		r->token[n] = '\0';
		/* in order, so each pair once */
		if (i && replica_cmp(r[-1].key_id, r[-1].token, r->key_id,
				     r->token) >= 0) {
			return 0;
		}
		if (rp_keyring_replica_check(kr, NULL, r->key_id, r->token)) {
			return 0;
		}
		kr->num_replicas++;
	}
	return 1;
}

enum rp_err rp_keyring_decode(struct rp_keyring *out, struct rp_status *st,
			      const uint8_t *in, size_t in_len,
			      const uint8_t mac_key[RP_ATLEAST(32)])
{
	uint8_t mac[32];
	struct rp_span s;
	uint8_t version;
	uint32_t num;
	size_t num_active = 0;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	if (in_len < 4 + 1 + 8 + 4 + 32 || memcmp(in, KEYRING_MAGIC, 4)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "keyring: not a keyring file");
	}
	if (!keyring_mac(mac, mac_key, in, in_len - 32)) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "keyring mac");
	}
	if (CRYPTO_memcmp(mac, in + in_len - 32, 32)) {
		return rp_status_fail(st, RP_ERR_AUTH,
				      "keyring integrity check failed: the "
				      "keyring was modified outside reprotect "
				      "or belongs to another store");
	}
	s = rp_span_of(in + 4, in_len - 4 - 32);
	if (!rp_span_get_u8(&s, &version) || version < KEYRING_VERSION ||
	    version > KEYRING_VERSION_V3 ||
	    !rp_span_get_u64be(&s, &out->generation) ||
	    !get_conf(&s, &out->conf) || !rp_span_get_u32be(&s, &num) ||
	    num > RP_KEYRING_MAX_KEYS) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "keyring: bad header or version");
	}
	for (uint32_t i = 0; i < num; i++) {
		struct rp_key_info k;

		if (!rp_keyring_decode_key(&s, &k)) {
			rp_keyring_fini(out);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "keyring: key record %u is "
					      "malformed",
					      i);
		}
		num_active += k.state == RP_KEY_ACTIVE;
		err = rp_keyring_add(out, st, &k);
		if (err) {
			rp_keyring_fini(out);
			if (err != RP_ERR_EXISTS) {
				return err;
			}
			rp_status_clear(st);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "keyring: key record %u repeats "
					      "an earlier key",
					      i);
		}
	}
	if (!rp_span_get_u32be(&s, &num) || num > RP_MAX_TEMPLATES) {
		rp_keyring_fini(out);
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "keyring: bad template count");
	}
	for (uint32_t i = 0; i < num; i++) {
		struct rp_template t;

		if (!get_template(&s, &t)) {
			rp_keyring_fini(out);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "keyring: template %u is "
					      "malformed",
					      i);
		}
		err = rp_keyring_add_template(out, st, &t);
		if (err) {
			rp_keyring_fini(out);
			if (err != RP_ERR_EXISTS) {
				return err;
			}
			rp_status_clear(st);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "keyring: template %u repeats an "
					      "earlier name",
					      i);
		}
	}
	out->min_retire_days = RP_RETIRE_DEFAULT_DAYS;
	if (version >= KEYRING_VERSION_V2 &&
	    !get_retirement(&s, out, version == KEYRING_VERSION_V3)) {
		rp_keyring_fini(out);
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "keyring: bad retirement section");
	}
	if (version == KEYRING_VERSION_V3 && !get_replicas(&s, out)) {
		rp_keyring_fini(out);
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "keyring: bad replica list");
	}
	for (size_t i = 0; version == KEYRING_VERSION && i < out->num_keys;
	     i++) {
		if (out->keys[i].state == RP_KEY_RETIRING) {
			rp_keyring_fini(out);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "keyring: a retiring key without "
					      "its retirement");
		}
	}
	if (s.len || num_active > 1) {
		rp_keyring_fini(out);
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "keyring: trailing bytes or more than "
				      "one active key");
	}
	return RP_OK;
}

void rp_keyring_fini(struct rp_keyring *kr)
{
	free(kr->keys);
	free(kr->templates);
	free(kr->replicas);
	memset(kr, 0, sizeof(*kr));
}
