#include "lifecycle.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "keystore.h"
#include "ks_soft.h"
#include "rp_b64.h"
#include "rp_ossl.h"
#include "rp_span.h"
#include "rp_testhook.h"
#include "shamir.h"
#include "store_internal.h"

#define BACKUP_MAGIC   "RPKB"
#define BACKUP_VERSION 1
#define BACKUP_MAX     (64 * 1024)
#define SHARE_MAGIC    "RPWS"
#define SHARE_PREFIX   "reprotect-world-share-v1 "
#define SHARE_LEN      (4 + 1 + 16 + 1 + 1 + 1 + 32 + 32)

static void key_hex16(char out[17], const uint8_t *id)
{
	char hex[2 * RP_KEY_ID_LEN + 1];

	rp_key_id_hex(hex, id);
	memcpy(out, hex, 16);
	out[16] = '\0';
}

/* discard reloads the keyring from disk, dropping in-memory changes */
static void discard(struct rp_store *s)
{
	struct rp_status ignore = { 0 };

	(void)!rp_store_lock(s, &ignore, 0);
}

static enum rp_err sign_template(struct rp_store *s, struct rp_status *st,
				 struct rp_template *t, size_t signer_idx)
{
	const struct rp_key_info *k = &s->keyring.keys[signer_idx];
	struct rp_keystore *ks = NULL;
	struct rp_buf msg = { 0 };
	enum rp_err err;

	t->signed_at = rp_store_now();
	memcpy(t->signer, k->id, RP_KEY_ID_LEN);
	if (rp_template_message(&msg, t)) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = rp_store_ks(s, st, k, &ks);
	if (!err) {
		err = ks->ops->sign(ks, st, 0, k, msg.p, msg.len, t->sig,
				    sizeof(t->sig), &t->sig_len);
	}
	rp_buf_fini(&msg);
	return err;
}

enum rp_err rp_store_rekey(struct rp_store *s, struct rp_status *st,
			   long to_idx, uint8_t alg, size_t *out_idx)
{
	struct rp_keyring *kr = &s->keyring;
	const long cur = rp_keyring_active(kr);
	const uint64_t t = rp_store_now();
	struct rp_key_info ki;
	size_t idx;
	enum rp_err err;

	if (to_idx >= 0) {
		if (kr->keys[to_idx].state != RP_KEY_PENDING) {
			return rp_status_fail(
				st, RP_ERR_STATE,
				"rekey --to needs a pending key; this key is "
				"%s (create one with 'reprotect key create')",
				rp_key_state_name(kr->keys[to_idx].state));
		}
		idx = (size_t)to_idx;
	} else {
		if (!alg) {
			alg = cur >= 0 ? kr->keys[cur].alg : RP_ALG_RSA2048;
		}
		err = rp_store_key_generate(s, st, alg, 0, &ki);
		if (err) {
			return err;
		}
		rp_test_crash_point("rekey:after-keygen");
		ki.state = RP_KEY_PENDING;
		ki.created_at = t;
		err = rp_keyring_add(kr, st, &ki);
		if (err) {
			return err;
		}
		idx = kr->num_keys - 1;
	}
	if (cur >= 0) {
		kr->keys[cur].state = RP_KEY_ARCHIVED;
		kr->keys[cur].archived_at = t;
	}
	kr->keys[idx].state = RP_KEY_ACTIVE;
	kr->keys[idx].activated_at = t;
	for (size_t i = 0; i < kr->num_templates; i++) {
		err = sign_template(s, st, &kr->templates[i], idx);
		if (err) {
			rp_status_prefix(st, "cannot re-sign template '%s'",
					 kr->templates[i].name);
			discard(s);
			return err;
		}
	}
	rp_test_crash_point("rekey:before-keyring");
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
		return err;
	}
	rp_test_crash_point("rekey:after-keyring");
	*out_idx = idx;
	return RP_OK;
}

/*
 * erase_replicas erases key `idx`'s material from each of its replica
 * tokens and drops those replicas from the keyring (one write). A token
 * it cannot reach, or that fails, stays listed: the material left there is
 * erased by `again` (a command, for the message), and the first failure is
 * returned, naming the tokens.
 */
static enum rp_err erase_replicas(struct rp_store *s, struct rp_status *st,
				  size_t idx, const char *again)
{
	struct rp_key_info k = s->keyring.keys[idx];
	struct rp_status first_st = { 0 };
	char left[160] = "", hex[17];
	size_t first, n = rp_keyring_replicas(&s->keyring, k.id, &first);
	size_t num_erased = 0;
	enum rp_err err = RP_OK;

	key_hex16(hex, k.id);
	for (size_t i = first; i < first + n - num_erased;) {
		const char *label = s->keyring.replicas[i].token;
		struct rp_status tmp = { 0 };
		struct rp_keystore *ks = NULL;
		enum rp_err e = rp_store_replica_ks(s, &tmp, label, &ks);

		if (!e) {
			e = ks->ops->erase(ks, &tmp, &k);
		}
		if (!e) {
			rp_keyring_remove_replica(&s->keyring, i);
			num_erased++;
			continue;
		}
		if (!err) {
			err = e;
			first_st = tmp;
		}
		if (strlen(left) + strlen(label) + 4 < sizeof(left)) {
			snprintf(left + strlen(left),
				 sizeof(left) - strlen(left), "%s'%s'",
				 left[0] ? ", " : "", label);
		}
		i++;
	}
	if (num_erased) {
		const enum rp_err e = rp_store_save_keyring(s, &first_st);

		if (e) {
			discard(s);
			err = err ? err : e;
		}
	}
	if (err && st && !st->err) {
		*st = first_st;
	}
	if (err && left[0]) {
		rp_status_prefix(st,
				 "key %s's material is left on token %s until "
				 "'%s' erases it",
				 hex, left, again);
	} else if (err) {
		rp_status_prefix(st,
				 "key %s's replicas are erased, but the "
				 "keyring still lists them until '%s'",
				 hex, again);
	}
	return err;
}

enum rp_err rp_store_key_revoke(struct rp_store *s, struct rp_status *st,
				size_t idx, int is_force)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	struct rp_keystore *ks = NULL;
	char hex[17], again[64];
	enum rp_err err;

	key_hex16(hex, k->id);
	snprintf(again, sizeof(again), "reprotect key revoke %s", hex);
	if (k->state == RP_KEY_REVOKED) {
		/*
		 * revoking again finishes an earlier revoke that was cut
		 * short between the keyring write and the erase, or that
		 * could not reach a replica token
		 */
		err = rp_store_ks(s, st, k, &ks);
		if (!err) {
			err = ks->ops->erase(ks, st, k);
		}
		return err ? err : erase_replicas(s, st, idx, again);
	}
	if (k->state != RP_KEY_ACTIVE && k->state != RP_KEY_ARCHIVED) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is %s: only an active or "
				      "archived key can be revoked",
				      hex, rp_key_state_name(k->state));
	}
	if (!k->backed_up_at && !is_force) {
		return rp_status_fail(
			st, RP_ERR_STATE,
			"key %s was never backed up: revoking erases it, so "
			"its documents could never be opened again; run "
			"'reprotect key backup %s -o FILE' first, or give "
			"--force",
			hex, hex);
	}
	err = rp_store_ks(s, st, k, &ks);
	if (err) {
		return err;
	}
	k->state = RP_KEY_REVOKED;
	k->revoked_at = rp_store_now();
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
		return err;
	}
	/* the keyring already refuses the key: erasing is the second step */
	rp_test_crash_point("revoke:after-keyring");
	err = ks->ops->erase(ks, st, k);
	/* its replicas too: revoked, the material is nowhere */
	return err ? err : erase_replicas(s, st, idx, again);
}

static enum rp_err backup_mac(uint8_t out[32], struct rp_status *st,
			      const uint8_t world_key[32], const uint8_t *p,
			      size_t len)
{
	uint8_t key[32];
	unsigned int n = 0;
	enum rp_err err = rp_soft_derive(key, st, world_key,
					 "reprotect/v1 key backup mac");

	if (!err && !HMAC(EVP_sha256(), key, 32, p, len, out, &n)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "hmac");
	}
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

enum rp_err rp_store_key_backup(struct rp_store *s, struct rp_status *st,
				size_t idx, struct rp_buf *out)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	struct rp_keystore *ks = NULL;
	struct rp_buf wrapped = { 0 };
	struct rp_key_info rec;
	const size_t start = out->len;
	uint8_t mac[32];
	enum rp_err err;

	if (k->state == RP_KEY_REVOKED || k->state == RP_KEY_DESTROYED) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "a %s key has no material to back up",
				      rp_key_state_name(k->state));
	}
	if (k->state == RP_KEY_RETIRING) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "a retiring key is not backed up (a copy "
				      "would outlive its destruction): 'key "
				      "keep' it first");
	}
	err = rp_store_ks(s, st, k, &ks);
	if (!err) {
		err = ks->ops->backup(ks, st, k, &wrapped);
	}
	if (err) {
		goto out;
	}
	/* the record as it will be restored: state and dates are the store's */
	rec = *k;
	if (rp_buf_add(out, BACKUP_MAGIC, 4) ||
	    rp_buf_add_u8(out, BACKUP_VERSION) ||
	    rp_buf_add(out, s->world_id, 16) ||
	    rp_keyring_encode_key(out, &rec) ||
	    rp_buf_add_u32be(out, (uint32_t)wrapped.len) ||
	    rp_buf_add(out, wrapped.p, wrapped.len)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	err = backup_mac(mac, st, s->world_key, out->p + start,
			 out->len - start);
	if (!err && rp_buf_add(out, mac, sizeof(mac))) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (!err) {
		k->backed_up_at = rp_store_now();
		err = rp_store_save_keyring(s, st);
	}
out:
	if (err) {
		out->len = start;
	}
	rp_buf_fini(&wrapped);
	return err;
}

enum rp_err rp_key_backup_decode(struct rp_status *st, struct rp_key_info *rec,
				 struct rp_span *wrapped,
				 const uint8_t world_key[RP_ATLEAST(32)],
				 const uint8_t world_id[RP_ATLEAST(16)],
				 const uint8_t *blob, size_t len)
{
	struct rp_span sp = rp_span_of(blob, len);
	struct rp_span magic, world;
	uint8_t version;
	uint32_t wlen;
	uint8_t mac[32];
	unsigned int n = 0;
	uint8_t id[RP_KEY_ID_LEN];
	char mine[33], theirs[33];
	enum rp_err err;

	if (len > BACKUP_MAX || len < 4 + 1 + 16 + 32 ||
	    !rp_span_get_bytes(&sp, 4, &magic) ||
	    memcmp(magic.p, BACKUP_MAGIC, 4) ||
	    !rp_span_get_u8(&sp, &version)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "not a reprotect key backup");
	}
	if (version != BACKUP_VERSION) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "key backup version %u is not supported",
				      version);
	}
	(void)rp_span_get_bytes(&sp, 16, &world);
	if (CRYPTO_memcmp(world.p, world_id, 16)) {
		rp_hex_encode(mine, world_id, 16);
		rp_hex_encode(theirs, world.p, 16);
		return rp_status_fail(st, RP_ERR_AUTH,
				      "this backup belongs to security world "
				      "%s, but this store is world %s: restore "
				      "it into a store of its own world (see "
				      "'reprotect init --from-shares')",
				      theirs, mine);
	}
	err = backup_mac(mac, st, world_key, blob, len - 32);
	if (err) {
		return err;
	}
	if (CRYPTO_memcmp(mac, blob + len - 32, 32)) {
		return rp_status_fail(st, RP_ERR_AUTH,
				      "the key backup was modified or is not "
				      "of this store's world");
	}
	sp.len -= 32;
	if (!rp_keyring_decode_key(&sp, rec) ||
	    !rp_span_get_u32be(&sp, &wlen) ||
	    !rp_span_get_bytes(&sp, wlen, wrapped) || sp.len) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "key backup: malformed record");
	}
	if (!EVP_Digest(rec->pub, rec->pub_len, id, &n, EVP_sha256(), NULL)) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "key backup: key id");
	}
	if (CRYPTO_memcmp(id, rec->id, RP_KEY_ID_LEN)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "key backup: key id does not match its "
				      "public key");
	}
	return RP_OK;
}

/* restore_check: `rec` (from a backup) may be restored over key `idx` */
static enum rp_err restore_check(const struct rp_store *s, struct rp_status *st,
				 const struct rp_key_info *rec, long idx)
{
	const struct rp_key_info *k;
	size_t first;
	char hex[17];

	key_hex16(hex, rec->id);
	if (idx < 0) {
		return RP_OK; /* a store rebuilt from world shares */
	}
	k = &s->keyring.keys[idx];
	if (k->state == RP_KEY_DESTROYED) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s was destroyed: it cannot be "
				      "restored",
				      hex);
	}
	if (k->state != RP_KEY_REVOKED) {
		return rp_status_fail(st, RP_ERR_EXISTS,
				      "key %s is in the store and %s: nothing "
				      "to restore",
				      hex, rp_key_state_name(k->state));
	}
	if (rp_keyring_replicas(&s->keyring, k->id, &first)) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s: its revoke could not erase it "
				      "from token '%s' yet; 'reprotect key "
				      "revoke %s' again does, then restore it",
				      hex, s->keyring.replicas[first].token,
				      hex);
	}
	return RP_OK;
}

/*
 * replicate_check: key `idx` (whose backup `rec` is) may get a replica on
 * token `token`
 */
static enum rp_err replicate_check(const struct rp_store *s,
				   struct rp_status *st,
				   const struct rp_key_info *rec, long idx,
				   const char *token)
{
	char hex[17];
	uint8_t state;

	key_hex16(hex, rec->id);
	if (idx < 0) {
		return rp_status_fail(st, RP_ERR_NOKEY,
				      "key %s is not in the store: 'reprotect "
				      "key restore FILE' adds it first",
				      hex);
	}
	state = s->keyring.keys[idx].state;
	if (state == RP_KEY_REVOKED || state == RP_KEY_DESTROYED) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is %s: only a key that opens "
				      "documents gets replicas",
				      hex, rp_key_state_name(state));
	}
	if (state == RP_KEY_RETIRING) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is retiring: a replica would "
				      "outlive its destruction; 'key keep' it "
				      "first",
				      hex);
	}
	return rp_keyring_replica_check(&s->keyring, st, rec->id, token);
}

/*
 * install_backup decodes `blob`, a key backup of this store's world, into
 * `rec` and puts its material on replica token `token` (replicate_check),
 * or, for NULL, on the backend its record names (restore_check). The
 * keystore checks the material is the key's: its public key is the one
 * whose hash is the key id. *out_idx gets the key's index in the keyring,
 * -1 if it has none.
 */
static enum rp_err install_backup(struct rp_store *s, struct rp_status *st,
				  const uint8_t *blob, size_t blob_len,
				  const char *token, struct rp_key_info *rec,
				  long *out_idx)
{
	struct rp_span wrapped = { NULL, 0 };
	struct rp_keystore *ks = NULL;
	enum rp_err err;

	*out_idx = -1;
	err = rp_key_backup_decode(st, rec, &wrapped, s->world_key, s->world_id,
				   blob, blob_len);
	if (err) {
		return err;
	}
	*out_idx = rp_keyring_find_id(&s->keyring, rec->id);
	if (token) {
		err = replicate_check(s, st, rec, *out_idx, token);
		if (!err) {
			err = rp_store_replica_ks(s, st, token, &ks);
		}
	} else {
		err = restore_check(s, st, rec, *out_idx);
		if (!err) {
			err = rp_store_ks(s, st, rec, &ks);
		}
	}
	if (!err) {
		err = ks->ops->restore(ks, st, rec, wrapped.p, wrapped.len);
	}
	return err;
}

enum rp_err rp_store_key_restore(struct rp_store *s, struct rp_status *st,
				 const uint8_t *blob, size_t blob_len,
				 size_t *out_idx)
{
	struct rp_key_info rec;
	struct rp_key_info *k;
	long idx;
	enum rp_err err;

	err = install_backup(s, st, blob, blob_len, NULL, &rec, &idx);
	if (err) {
		return err;
	}
	rp_test_crash_point("restore:after-material");
	if (idx < 0) {
		rec.state = RP_KEY_ARCHIVED;
		rec.archived_at = rp_store_now();
		rec.activated_at = 0;
		err = rp_keyring_add(&s->keyring, st, &rec);
		if (err) {
			return err;
		}
		idx = (long)s->keyring.num_keys - 1;
	} else {
		k = &s->keyring.keys[idx];
		k->state = RP_KEY_ARCHIVED;
		k->archived_at = rp_store_now();
	}
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
		return err;
	}
	*out_idx = (size_t)idx;
	return RP_OK;
}

enum rp_err rp_store_key_replicate(struct rp_store *s, struct rp_status *st,
				   const uint8_t *blob, size_t blob_len,
				   const char *token, size_t *out_idx)
{
	struct rp_key_info rec;
	struct rp_keystore *ks = NULL;
	long idx;
	enum rp_err err;

	err = install_backup(s, st, blob, blob_len, token, &rec, &idx);
	if (err) {
		return err;
	}
	/*
	 * killed here, the material is on the token but not listed: a
	 * destroy would not erase it (replicate again to list it)
	 */
	rp_test_crash_point("replicate:after-material");
	err = rp_keyring_add_replica(&s->keyring, st, rec.id, token);
	if (!err) {
		err = rp_store_save_keyring(s, st);
	}
	if (err) {
		/* not listed, so not left there either */
		struct rp_status ignore = { 0 };

		discard(s);
		if (!rp_store_replica_ks(s, &ignore, token, &ks)) {
			(void)!ks->ops->erase(ks, &ignore, &rec);
		}
		return err;
	}
	*out_idx = (size_t)idx;
	return RP_OK;
}

enum rp_err rp_store_key_export(struct rp_store *s, struct rp_status *st,
				size_t idx, struct rp_buf *out)
{
	const struct rp_key_info *k = &s->keyring.keys[idx];
	struct rp_keystore *ks = NULL;
	char hex[17];
	enum rp_err err;

	key_hex16(hex, k->id);
	if (!(k->flags & RP_KEY_EXPORTABLE)) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is not exportable: keys are "
				      "created non-exportable unless "
				      "--exportable is given; use 'key "
				      "backup' for a copy bound to this "
				      "store's world",
				      hex);
	}
	err = rp_store_check_usable(s, st, idx);
	if (!err) {
		err = rp_store_ks(s, st, k, &ks);
	}
	if (!err) {
		err = ks->ops->export_key(ks, st, k, out);
	}
	return err;
}

/*
 * erase_material erases destroyed key `idx`'s material from `ks` (its
 * backend) and from every replica token, as much as it can; what it could
 * not erase stays listed for 'key purge'
 */
static enum rp_err erase_material(struct rp_store *s, struct rp_status *st,
				  size_t idx, struct rp_keystore *ks)
{
	struct rp_status tmp = { 0 };
	enum rp_err err = ks->ops->erase(ks, st, &s->keyring.keys[idx]);
	const enum rp_err e =
		erase_replicas(s, err ? &tmp : st, idx, "reprotect key purge");

	return err ? err : e;
}

/*
 * destroy_now destroys key `idx` (destroy, purge): the keyring first, so
 * that it refuses the key at once, then the material; `crash_point` (a
 * literal) is the test hook between the two
 */
static enum rp_err destroy_now(struct rp_store *s, struct rp_status *st,
			       size_t idx, const char *crash_point)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	struct rp_keystore *ks = NULL;
	enum rp_err err = rp_store_ks(s, st, k, &ks);

	if (err) {
		return err;
	}
	k->state = RP_KEY_DESTROYED;
	k->destroyed_at = rp_store_now();
	k->retired_at = k->purge_at = 0;
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
		return err;
	}
	rp_test_crash_point(crash_point);
	return erase_material(s, st, idx, ks);
}

enum rp_err rp_store_key_destroy(struct rp_store *s, struct rp_status *st,
				 size_t idx)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	char hex[17];

	key_hex16(hex, k->id);
	if (k->state != RP_KEY_REVOKED) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is %s: only a revoked key can be "
				      "destroyed (revoke it first)",
				      hex, rp_key_state_name(k->state));
	}
	return destroy_now(s, st, idx, "destroy:after-keyring");
}

enum rp_err rp_store_key_retire_check(const struct rp_store *s,
				      struct rp_status *st, size_t idx,
				      uint32_t wait_days)
{
	const struct rp_key_info *k = &s->keyring.keys[idx];
	const uint32_t min_days = rp_keyring_min_retire_days(&s->keyring);
	char hex[17];

	key_hex16(hex, k->id);
	if (k->state != RP_KEY_ARCHIVED) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is %s: only an archived key can "
				      "retire",
				      hex, rp_key_state_name(k->state));
	}
	if (wait_days < min_days || wait_days > RP_RETIRE_MAX_DAYS) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the waiting period must be %u to %d "
				      "days (the store's minimum is %u, set at "
				      "init)",
				      min_days, RP_RETIRE_MAX_DAYS, min_days);
	}
	return RP_OK;
}

enum rp_err rp_store_key_retire(struct rp_store *s, struct rp_status *st,
				size_t idx, uint32_t wait_days,
				const uint8_t census_digest[RP_ATLEAST(32)])
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	enum rp_err err;

	err = rp_store_key_retire_check(s, st, idx, wait_days);
	if (err) {
		return err;
	}
	k->state = RP_KEY_RETIRING;
	k->retired_at = rp_store_now();
	k->purge_at = k->retired_at + (uint64_t)wait_days * 86400;
	memcpy(k->retire_census, census_digest, sizeof(k->retire_census));
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
	}
	return err;
}

enum rp_err rp_store_key_keep(struct rp_store *s, struct rp_status *st,
			      size_t idx)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	char hex[17];
	enum rp_err err;

	key_hex16(hex, k->id);
	if (k->state != RP_KEY_RETIRING) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is %s: only a retiring key can "
				      "be kept",
				      hex, rp_key_state_name(k->state));
	}
	if (rp_store_now() >= k->purge_at) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s: its waiting period is over; it "
				      "is destroyed at the next purge",
				      hex);
	}
	k->state = RP_KEY_ARCHIVED;
	k->retired_at = k->purge_at = 0;
	memset(k->retire_census, 0, sizeof(k->retire_census));
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
	}
	return err;
}

enum rp_err rp_store_set_min_retire_days(struct rp_store *s,
					 struct rp_status *st, uint32_t days)
{
	enum rp_err err;

	if (s->keyring.num_keys || s->keyring.min_retire_days) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "the minimum waiting period is set once, "
				      "at init");
	}
	if (!days || days > RP_RETIRE_MAX_DAYS) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the minimum waiting period: 1 to %d "
				      "days",
				      RP_RETIRE_MAX_DAYS);
	}
	s->keyring.min_retire_days = days;
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
	}
	return err;
}

enum rp_err rp_store_set_quota(struct rp_store *s, struct rp_status *st,
			       uint32_t per_second)
{
	enum rp_err err;

	if (per_second > RP_KEY_OPS_MAX) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the quota: 1 to %d operations a second",
				      RP_KEY_OPS_MAX);
	}
	s->keyring.key_ops = per_second;
	err = rp_store_save_keyring(s, st);
	if (err) {
		discard(s);
	}
	return err;
}

enum rp_err rp_store_key_erase_destroyed(struct rp_store *s,
					 struct rp_status *st)
{
	enum rp_err err = RP_OK;

	/* every key it can: a token that is away fails only its keys */
	for (size_t i = 0; i < s->keyring.num_keys; i++) {
		struct rp_status tmp = { 0 };
		struct rp_keystore *ks = NULL;
		enum rp_err e;

		if (s->keyring.keys[i].state != RP_KEY_DESTROYED) {
			continue;
		}
		e = rp_store_ks(s, &tmp, &s->keyring.keys[i], &ks);
		if (!e) {
			e = erase_material(s, &tmp, i, ks);
		}
		if (e && !err) {
			err = e;
			if (st && !st->err) {
				*st = tmp;
			}
		}
	}
	return err;
}

int rp_store_key_is_due(const struct rp_store *s, size_t idx)
{
	const struct rp_key_info *k = &s->keyring.keys[idx];

	return k->state == RP_KEY_RETIRING && rp_store_now() >= k->purge_at;
}

enum rp_err rp_store_key_purge(struct rp_store *s, struct rp_status *st,
			       size_t idx)
{
	struct rp_key_info *k = &s->keyring.keys[idx];
	char hex[17];

	key_hex16(hex, k->id);
	if (!rp_store_key_is_due(s, idx)) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "key %s is %s%s: only a retiring key "
				      "whose waiting period is over is purged",
				      hex, rp_key_state_name(k->state),
				      k->state == RP_KEY_RETIRING
					      ? " and its waiting period is "
						"not over"
					      : "");
	}
	return destroy_now(s, st, idx, "purge:after-keyring");
}

static int valid_text(const char *p, int allow_comma)
{
	for (; *p; p++) {
		const unsigned char c = (unsigned char)*p;

		if (c < 0x21 || c > 0x7e || (c == ',' && !allow_comma)) {
			return 0;
		}
	}
	return 1;
}

enum rp_err rp_store_template_create(struct rp_store *s, struct rp_status *st,
				     const char *name, const char *rights)
{
	const long active = rp_keyring_active(&s->keyring);
	struct rp_template t;
	enum rp_err err;

	memset(&t, 0, sizeof(t));
	if (!*name || strlen(name) > RP_TEMPLATE_NAME_MAX ||
	    !valid_text(name, 0)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "template name: 1 to %d printable ASCII "
				      "characters, no spaces or commas",
				      RP_TEMPLATE_NAME_MAX);
	}
	if (!*rights || strlen(rights) > RP_TEMPLATE_RIGHTS_MAX ||
	    !valid_text(rights, 1)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "--rights: a comma-separated list of up "
				      "to %d printable characters, no spaces",
				      RP_TEMPLATE_RIGHTS_MAX);
	}
	if (active < 0) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "no active key to sign the template: "
				      "create one with 'reprotect key create "
				      "--activate'");
	}
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.rights, sizeof(t.rights), "%s", rights);
	t.created_at = rp_store_now();
	err = sign_template(s, st, &t, (size_t)active);
	if (!err) {
		err = rp_keyring_add_template(&s->keyring, st, &t);
	}
	if (!err) {
		err = rp_store_save_keyring(s, st);
	}
	if (err) {
		discard(s);
	}
	return err;
}

enum rp_err rp_store_verify_msg(struct rp_store *s, struct rp_status *st,
				size_t idx, const uint8_t *msg, size_t msg_len,
				const uint8_t *sig, size_t sig_len)
{
	const struct rp_key_info *k = &s->keyring.keys[idx];
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	enum rp_err err;

	err = rp_key_sign_pubkey(&pub, st, k);
	if (err) {
		return err;
	}
	md = EVP_MD_CTX_new();
	if (!md) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	rp_ossl_nomem_clear();
	if (k->alg == RP_ALG_X25519) {
		if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) != 1) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "verify");
			goto out;
		}
	} else if (EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub) !=
			   1 ||
		   EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) !=
			   1 ||
		   EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "verify");
		goto out;
	}
	if (EVP_DigestVerify(md, sig, sig_len, msg, msg_len) != 1) {
		if (rp_ossl_is_nomem()) {
			err = rp_status_ossl(st, RP_ERR_NOMEM,
					     "signature check");
			goto out;
		}
		ERR_clear_error();
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the signature does not verify");
	}
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	return err;
}

enum rp_err rp_store_template_verify(struct rp_store *s, struct rp_status *st,
				     size_t idx)
{
	const struct rp_template *t = &s->keyring.templates[idx];
	const long k = rp_keyring_find_id(&s->keyring, t->signer);
	struct rp_buf msg = { 0 };
	enum rp_err err;

	if (k < 0) {
		return rp_status_fail(st, RP_ERR_NOKEY,
				      "template '%s': its signer is not in the "
				      "store",
				      t->name);
	}
	if (rp_template_message(&msg, t)) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = rp_store_verify_msg(s, st, (size_t)k, msg.p, msg.len, t->sig,
				  t->sig_len);
	if (err == RP_ERR_AUTH) {
		rp_status_prefix(st, "template '%s'", t->name);
	}
	rp_buf_fini(&msg);
	return err;
}

static enum rp_err world_check(uint8_t out[32], struct rp_status *st,
			       const uint8_t world_key[32])
{
	unsigned int n = 0;
	static const char label[] = "reprotect/v1 world share check";

	if (!HMAC(EVP_sha256(), world_key, 32, (const uint8_t *)label,
		  sizeof(label) - 1, out, &n)) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "hmac");
	}
	return RP_OK;
}

enum rp_err rp_store_world_split(struct rp_store *s, struct rp_status *st,
				 unsigned n, unsigned k,
				 char (*out)[RP_SHARE_LINE_MAX])
{
	uint8_t ys[255 * 32];
	uint8_t check[32];
	uint8_t rec[SHARE_LEN];
	char b64[RP_SHARE_LINE_MAX - sizeof(SHARE_PREFIX) + 1];
	size_t b64_len;
	enum rp_err err;

	err = rp_shamir_split(ys, st, s->world_key, 32, n, k);
	if (!err) {
		err = world_check(check, st, s->world_key);
	}
	for (unsigned i = 0; !err && i < n; i++) {
		memcpy(rec, SHARE_MAGIC, 4);
		rec[4] = 1;
		memcpy(rec + 5, s->world_id, 16);
		rec[21] = (uint8_t)k;
		rec[22] = (uint8_t)n;
		rec[23] = (uint8_t)(i + 1);
		memcpy(rec + 24, ys + i * 32, 32);
		memcpy(rec + 56, check, 32);
		err = rp_b64_encode(b64, sizeof(b64), &b64_len, rec,
				    sizeof(rec));
		if (!err && snprintf(out[i], RP_SHARE_LINE_MAX, "%s%s",
				     SHARE_PREFIX, b64) >= RP_SHARE_LINE_MAX) {
			RP_BUG("share line too long");
		}
	}
	OPENSSL_cleanse(ys, sizeof(ys));
	OPENSSL_cleanse(rec, sizeof(rec));
	OPENSSL_cleanse(b64, sizeof(b64));
	return err;
}

enum rp_err rp_world_from_shares(struct rp_status *st, const char *const *lines,
				 size_t num_lines,
				 uint8_t world_key[RP_ATLEAST(32)],
				 uint8_t world_id[RP_ATLEAST(16)])
{
	uint8_t xs[255], ys[255 * 32];
	uint8_t rec[SHARE_LEN + 4];
	uint8_t check[32], want[32];
	unsigned k = 0;
	enum rp_err err = RP_OK;

	if (num_lines == 0 || num_lines > 255) {
		return rp_status_fail(st, RP_ERR_USAGE, "give 1 to 255 shares");
	}
	for (size_t i = 0; i < num_lines && !err; i++) {
		const char *l = lines[i];
		size_t n = strlen(l), got = 0;

		while (n && (l[n - 1] == '\n' || l[n - 1] == '\r')) {
			n--;
		}
		if (n <= strlen(SHARE_PREFIX) ||
		    memcmp(l, SHARE_PREFIX, strlen(SHARE_PREFIX)) ||
		    rp_b64_decode(rec, sizeof(rec), &got,
				  l + strlen(SHARE_PREFIX),
				  n - strlen(SHARE_PREFIX)) ||
		    got != SHARE_LEN || memcmp(rec, SHARE_MAGIC, 4) ||
		    rec[4] != 1 || rec[21] < 2 || rec[21] > rec[22] ||
		    !rec[23] || rec[23] > rec[22]) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "share %zu is not a reprotect "
					     "world share",
					     i + 1);
			break;
		}
		if (i == 0) {
			memcpy(world_id, rec + 5, 16);
			memcpy(want, rec + 56, 32);
			k = rec[21];
		} else if (memcmp(world_id, rec + 5, 16) ||
			   memcmp(want, rec + 56, 32) || rec[21] != k) {
			err = rp_status_fail(st, RP_ERR_AUTH,
					     "share %zu belongs to another "
					     "security world or split",
					     i + 1);
			break;
		}
		xs[i] = rec[23];
		memcpy(ys + i * 32, rec + 24, 32);
	}
	if (!err && num_lines < k) {
		err = rp_status_fail(
			st, RP_ERR_AUTH,
			"%zu shares given, but this world needs %u", num_lines,
			k);
	}
	if (!err) {
		err = rp_shamir_combine(world_key, st, xs, ys, 32,
					(unsigned)num_lines);
	}
	if (!err) {
		err = world_check(check, st, world_key);
	}
	if (!err && CRYPTO_memcmp(check, want, 32)) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the shares do not rebuild the world key");
	}
	if (err) {
		OPENSSL_cleanse(world_key, 32);
	}
	OPENSSL_cleanse(ys, sizeof(ys));
	OPENSSL_cleanse(rec, sizeof(rec));
	return err;
}
