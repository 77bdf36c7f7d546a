#ifndef RP_KEYS_LIFECYCLE_H
#define RP_KEYS_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"
#include "store.h"

struct rp_span;

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The tenant key life cycle (docs/OPERATIONS.md). Every function here
 * changes the keyring: call rp_store_lock first. Each change is one atomic
 * keyring write, so a crash leaves the keyring before or after it.
 *
 * Moves: pending->active and active->archived (rekey), active/archived->
 * revoked (revoke), revoked->archived (restore), revoked->destroyed.
 */

/*
 * rp_store_rekey makes key `to_idx` (pending; or, if to_idx < 0, a new key
 * of `alg`, 0 meaning the active key's algorithm) active and the active key
 * archived, and re-signs every rights template under the new key, in one
 * keyring write. Stores the new active key's index in out_idx.
 */
RP_MUST_CHECK enum rp_err rp_store_rekey(struct rp_store *s,
					 struct rp_status *st, long to_idx,
					 uint8_t alg, size_t *out_idx);

/*
 * rp_store_key_revoke revokes an active or archived key and erases its
 * material, on its replica tokens too (dropping them from the keyring),
 * so only its backup can bring it back. Refuses a key that was never
 * backed up unless `is_force`. A replica token it cannot reach stays
 * listed and the revoke fails, naming it; revoking again erases it.
 */
RP_MUST_CHECK enum rp_err rp_store_key_revoke(struct rp_store *s,
					      struct rp_status *st, size_t idx,
					      int is_force);

/*
 * rp_store_key_backup appends the key's backup blob to `out`: its keyring
 * record and its material wrapped by its backend, MACed under the world
 * key. Only a store of the same security world restores it. Records the
 * backup time in the keyring.
 */
RP_MUST_CHECK enum rp_err rp_store_key_backup(struct rp_store *s,
					      struct rp_status *st, size_t idx,
					      struct rp_buf *out);

/*
 * rp_store_key_restore installs a key from its backup blob: a revoked key
 * becomes archived again; a key not in the keyring is added archived (a
 * store rebuilt from world shares). Refuses a destroyed key, a key that is
 * already usable, and a blob of another world (RP_ERR_AUTH).
 */
RP_MUST_CHECK enum rp_err
rp_store_key_restore(struct rp_store *s, struct rp_status *st,
		     const uint8_t *blob, size_t blob_len, size_t *out_idx);

/*
 * rp_store_key_replicate puts a key's material on another token of the
 * store's PKCS#11 module (same PIN), `token` by label, from the key's
 * backup blob (decoded and installed as rp_store_key_restore does, under
 * this store's world; the token must hold the world's backup key, as
 * tokens of one HSM security world do), and lists the replica in the
 * keyring: the store then spreads the key's unwraps over its token and
 * its replicas. Refuses a key not in the store (RP_ERR_NOKEY), a soft
 * key, the store's own token or more than RP_REPLICAS_MAX replicas
 * (RP_ERR_USAGE), a replica listed already (RP_ERR_EXISTS), a revoked,
 * destroyed or retiring key (RP_ERR_STATE), a token that is not there
 * (RP_ERR_NOTFOUND). Revoke, destroy and purge erase the key from its
 * replicas too.
 */
RP_MUST_CHECK enum rp_err
rp_store_key_replicate(struct rp_store *s, struct rp_status *st,
		       const uint8_t *blob, size_t blob_len, const char *token,
		       size_t *out_idx);

/*
 * rp_key_backup_decode checks a key backup blob (as rp_store_key_backup
 * writes it) for the security world `world_id` whose key is `world_key`:
 * framing, version and world, then the MAC, then the record, strictly.
 * Returns RP_OK, RP_ERR_FORMAT (malformed, or the key id is not its public
 * key's), RP_ERR_AUTH (another world, or a wrong MAC) or RP_ERR_CRYPTO.
 * On success `rec` is the blob's key record and `wrapped` points into
 * `blob` (the backend's material): keep `blob` alive meanwhile. Pure: no
 * store, no file; rp_store_key_restore calls it first.
 */
RP_MUST_CHECK enum rp_err
rp_key_backup_decode(struct rp_status *st, struct rp_key_info *rec,
		     struct rp_span *wrapped,
		     const uint8_t world_key[RP_ATLEAST(32)],
		     const uint8_t world_id[RP_ATLEAST(16)],
		     const uint8_t *blob, size_t len);

/*
 * rp_store_key_export appends the private key in the clear (PEM PKCS#8 or
 * an age identity) to `out`. RP_ERR_STATE for a key not created or
 * imported as exportable.
 */
RP_MUST_CHECK enum rp_err rp_store_key_export(struct rp_store *s,
					      struct rp_status *st, size_t idx,
					      struct rp_buf *out);

/*
 * rp_store_key_destroy moves a revoked key to destroyed, for good: its
 * documents can never be opened again and its backups are refused. Its
 * material is erased from its token and every replica token; a replica
 * it cannot reach stays listed and the destroy fails, naming it, for
 * rp_store_key_erase_destroyed ('key purge') to finish.
 */
RP_MUST_CHECK enum rp_err
rp_store_key_destroy(struct rp_store *s, struct rp_status *st, size_t idx);

/*
 * rp_store_verify_msg checks a signature of rp_store_sign (RSA-PSS with
 * SHA-256 and salt 32, or Ed25519 for the X25519 type's signing key) under
 * key
 * `idx`'s public half (any state: a revoked key's old statements still
 * verify; the caller judges the state). RP_ERR_AUTH if it does not.
 */
RP_MUST_CHECK enum rp_err
rp_store_verify_msg(struct rp_store *s, struct rp_status *st, size_t idx,
		    const uint8_t *msg, size_t msg_len, const uint8_t *sig,
		    size_t sig_len);

/*
 * Retirement (docs/OPERATIONS.md, "Retiring a key"). rp_store_key_retire
 * makes archived key `idx` retiring: it opens nothing from now on, and is
 * destroyed by the first purge after `wait_days` (the store's minimum ..
 * RP_RETIRE_MAX_DAYS, else RP_ERR_USAGE); `census_digest` (SHA-256 of the
 * census statement that allowed it, checked by the caller) is kept for
 * the audit; rp_store_key_retire_check is its check of the key's state and
 * the period alone (before a caller reads a census). rp_store_key_keep
 * cancels it within the waiting period.
 * rp_store_key_is_due says whether a retiring key's period is over;
 * rp_store_key_purge destroys such a key (the keyring first, then the
 * material, as key destroy does). Each saves the keyring; the caller
 * holds the store's lock.
 */
RP_MUST_CHECK enum rp_err rp_store_key_retire_check(const struct rp_store *s,
						    struct rp_status *st,
						    size_t idx,
						    uint32_t wait_days);
RP_MUST_CHECK enum rp_err
rp_store_key_retire(struct rp_store *s, struct rp_status *st, size_t idx,
		    uint32_t wait_days,
		    const uint8_t census_digest[RP_ATLEAST(32)]);
RP_MUST_CHECK enum rp_err rp_store_key_keep(struct rp_store *s,
					    struct rp_status *st, size_t idx);
int rp_store_key_is_due(const struct rp_store *s, size_t idx);

/*
 * rp_store_key_erase_destroyed erases whatever material is left of every
 * destroyed key: a destroy or a purge cut short between the keyring
 * write and the erase, or a replica token it could not reach ('key purge'
 * calls it). Every key it can; returns the first failure. Idempotent.
 */
RP_MUST_CHECK enum rp_err rp_store_key_erase_destroyed(struct rp_store *s,
						       struct rp_status *st);

/*
 * rp_store_set_min_retire_days sets the store's shortest waiting period
 * (1 .. RP_RETIRE_MAX_DAYS days): once, on a new store (init), before any
 * key; RP_ERR_STATE after.
 */
RP_MUST_CHECK enum rp_err rp_store_set_min_retire_days(struct rp_store *s,
						       struct rp_status *st,
						       uint32_t days);
/*
 * rp_store_set_quota sets the store's keystore quota (keyring version 3):
 * at most `per_second` private-key operations a second for any run of the
 * store (0: none; at most RP_KEY_OPS_MAX). The caller holds the lock.
 */
RP_MUST_CHECK enum rp_err rp_store_set_quota(struct rp_store *s,
					     struct rp_status *st,
					     uint32_t per_second);
RP_MUST_CHECK enum rp_err rp_store_key_purge(struct rp_store *s,
					     struct rp_status *st, size_t idx);

/* rp_store_template_create adds a rights template signed by the active key. */
RP_MUST_CHECK enum rp_err rp_store_template_create(struct rp_store *s,
						   struct rp_status *st,
						   const char *name,
						   const char *rights);

/*
 * rp_store_template_verify checks template `idx`'s signature under its
 * signer. RP_ERR_AUTH if it does not verify.
 */
RP_MUST_CHECK enum rp_err
rp_store_template_verify(struct rp_store *s, struct rp_status *st, size_t idx);

#define RP_SHARE_LINE_MAX 160

/*
 * rp_store_world_split writes n share lines ("reprotect-world-share-v1
 * <base64>") of the world key, any k of which rebuild it.
 */
RP_MUST_CHECK enum rp_err rp_store_world_split(struct rp_store *s,
					       struct rp_status *st, unsigned n,
					       unsigned k,
					       char (*out)[RP_SHARE_LINE_MAX]);

/*
 * rp_world_from_shares rebuilds a world key and id from share lines.
 * RP_ERR_AUTH if they do not rebuild it (fewer than the threshold, or
 * shares of different worlds).
 */
RP_MUST_CHECK enum rp_err
rp_world_from_shares(struct rp_status *st, const char *const *lines,
		     size_t num_lines, uint8_t world_key[RP_ATLEAST(32)],
		     uint8_t world_id[RP_ATLEAST(16)]);

#ifdef __cplusplus
}
#endif
#endif
