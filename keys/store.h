#ifndef RP_KEYS_STORE_H
#define RP_KEYS_STORE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "keystore.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A tenant store: a folder holding world.key (the random world key, sealed
 * under the passphrase with scrypt), keyring (key states, MACed under the
 * world key), keys/ (the soft keystore's sealed private keys) and lock.
 * Every file is 0600 and the folder 0700.
 */
struct rp_store;

/*
 * rp_store_default_dir writes the default store folder:
 * $REPROTECT_STORE, else $XDG_DATA_HOME/reprotect, else
 * $HOME/.local/share/reprotect.
 */
RP_MUST_CHECK enum rp_err rp_store_default_dir(char *out, size_t out_cap,
					       struct rp_status *st);

/*
 * rp_store_create makes a new store in `dir` (created if missing; it must
 * not already hold a store) with a fresh world key sealed under
 * `pass`. The caller owns the result.
 */
RP_MUST_CHECK enum rp_err rp_store_create(struct rp_store **out,
					  struct rp_status *st, const char *dir,
					  const uint8_t *pass, size_t pass_len);

/*
 * rp_store_open opens an existing store. RP_ERR_PASSPHRASE if `pass` does
 * not open the world key, RP_ERR_AUTH if the keyring's MAC is wrong,
 * RP_ERR_NOTFOUND if there is no store in `dir`.
 */
RP_MUST_CHECK enum rp_err rp_store_open(struct rp_store **out,
					struct rp_status *st, const char *dir,
					const uint8_t *pass, size_t pass_len);

/* rp_store_free closes the store, cleansing its keys; accepts NULL. */
void rp_store_free(struct rp_store *s);

/*
 * rp_store_lock takes the store's exclusive lock (waiting up to
 * `timeout_ms`) and re-reads the keyring under it. Life-cycle commands
 * call it before they change anything. RP_ERR_LOCKED on timeout. The
 * lock is released by rp_store_free.
 */
RP_MUST_CHECK enum rp_err rp_store_lock(struct rp_store *s,
					struct rp_status *st, int timeout_ms);

/*
 * rp_store_lock_shared takes the store's lock shared, waiting as long as
 * a life-cycle command holds it: a run holds it while it commits a batch,
 * so that a key cannot change state between the run's check and its
 * renames. *fd is the caller's own descriptor of the lock file (-1 the
 * first time: opened here; close it when done). rp_store_unlock_shared
 * releases it.
 */
RP_MUST_CHECK enum rp_err rp_store_lock_shared(struct rp_store *s,
					       struct rp_status *st, int *fd);
void rp_store_unlock_shared(int fd);

/*
 * rp_store_key_states_now reads the keyring as it is on disk now (another
 * process may have changed it since this one read it) without changing the
 * one in memory, which other threads may be using. states[k] gets the
 * state on disk of in-memory key k (RP_KEY_DESTROYED for a key no longer
 * there). *out_active gets the index of the key active on disk, -1 if no
 * key is, or -2 if it is a key this process has not read (a rekey since),
 * whose id goes to active_id. Safe from several threads.
 */
RP_MUST_CHECK enum rp_err
rp_store_key_states_now(struct rp_store *s, struct rp_status *st,
			uint8_t *states, long *out_active,
			uint8_t active_id[RP_ATLEAST(RP_KEY_ID_LEN)]);

/* rp_store_dir returns the store's folder; borrowed. */
const char *rp_store_dir(const struct rp_store *s);

/* rp_store_keyring returns the keyring; borrowed, valid until changed. */
const struct rp_keyring *rp_store_keyring(const struct rp_store *s);

/*
 * rp_store_now returns the store's clock: the current Unix time. In
 * builds with test hooks, REPROTECT_TEST_CLOCK_SKEW (seconds, may be
 * negative) is added, so a test can let a waiting period pass.
 */
uint64_t rp_store_now(void);

/*
 * rp_store_set_pin_path names a file outside the store (absolute path)
 * that keeps a copy of the keyring's generation, MACed: written at each
 * keyring write, checked at each open, so that the whole store folder
 * copied back from an older copy does not open either. Once, at init
 * (RP_ERR_STATE after). docs/OPERATIONS.md, "Rollback".
 */
RP_MUST_CHECK enum rp_err rp_store_set_pin_path(struct rp_store *s,
						struct rp_status *st,
						const char *path);

#define RP_STORE_WORLD_ID_LEN 16

/* rp_store_world_id returns the 16-byte security world id; borrowed. */
const uint8_t *rp_store_world_id(const struct rp_store *s);

/*
 * rp_store_create_ex is rp_store_create with a backend configuration
 * (NULL: soft) and, to rebuild a store from world shares, a given world
 * key and id (both NULL: fresh ones).
 */
RP_MUST_CHECK enum rp_err
rp_store_create_ex(struct rp_store **out, struct rp_status *st, const char *dir,
		   const uint8_t *pass, size_t pass_len,
		   const struct rp_store_conf *conf, const uint8_t *world_key,
		   const uint8_t *world_id);

/*
 * rp_store_set_pkcs11_pin gives the PIN for the store's PKCS#11 token
 * (copied, cleansed on free); the token is opened when a key on it is
 * first used.
 */
RP_MUST_CHECK enum rp_err rp_store_set_pkcs11_pin(struct rp_store *s,
						  struct rp_status *st,
						  const char *pin,
						  size_t pin_len);

/*
 * rp_store_open_backend opens the backend new keys go to (for a PKCS#11
 * store: loads the module, finds the token, logs in), to check it works.
 */
RP_MUST_CHECK enum rp_err rp_store_open_backend(struct rp_store *s,
						struct rp_status *st);

/*
 * rp_store_key_generate makes a key on the store's default backend
 * without adding it to the keyring (rekey adds it in its own write).
 */
RP_MUST_CHECK enum rp_err rp_store_key_generate(struct rp_store *s,
						struct rp_status *st,
						uint8_t alg, uint8_t flags,
						struct rp_key_info *out);

/*
 * rp_store_key_create generates a key of `alg` with `flags` (enum
 * rp_key_flags) in state pending; stores the keyring. With `is_activate`,
 * activates it (see rp_store_key_activate). Stores its index in out_idx.
 */
RP_MUST_CHECK enum rp_err rp_store_key_create(struct rp_store *s,
					      struct rp_status *st, uint8_t alg,
					      uint8_t flags, int is_activate,
					      size_t *out_idx);

/* rp_store_key_import is key_create for key material brought in (BYOK). */
RP_MUST_CHECK enum rp_err rp_store_key_import(struct rp_store *s,
					      struct rp_status *st,
					      const uint8_t *data, size_t len,
					      uint8_t flags, int is_activate,
					      size_t *out_idx);

/*
 * rp_store_key_activate makes pending key `idx` active and the previously
 * active key archived, in one keyring write. RP_ERR_STATE if `idx` is not
 * pending.
 */
RP_MUST_CHECK enum rp_err
rp_store_key_activate(struct rp_store *s, struct rp_status *st, size_t idx);

/*
 * rp_store_unwrap opens stanza `stanza` with key `idx`; refuses revoked
 * and destroyed keys (RP_ERR_REVOKED with when and how to restore).
 */
RP_MUST_CHECK enum rp_err
rp_store_unwrap(struct rp_store *s, struct rp_status *st, size_t idx,
		const struct rp_age_stanza *stanza,
		uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);

/*
 * rp_store_sign signs `msg` with key `idx`, which must be active (only the
 * active key protects and signs).
 */
RP_MUST_CHECK enum rp_err rp_store_sign(struct rp_store *s,
					struct rp_status *st, size_t idx,
					const uint8_t *msg, size_t msg_len,
					uint8_t *out, size_t out_cap,
					size_t *out_len);

/*
 * The keystore quota: rp_store_set_key_ops caps the private-key
 * operations (unwrap, sign) this store handle asks of its keystores at
 * `per_second` (0: no cap), spread evenly over every thread: each waits
 * for its own slot (docs/ENGINE.md, "The keystore quota").
 * A keystore that answers busy (RP_ERR_BUSY from a backend) is asked
 * again, never failing the operation for it, at a pace cut on each busy
 * answer and grown again as operations succeed (docs/ENGINE.md, "A busy
 * keystore"); an operation busy for 60 s, or asked again after `*stop`
 * was set, fails with RP_ERR_HSM. rp_store_key_ops reports the
 * operations asked so far, busy answers, the seconds spent waiting and
 * the pace now.
 */
struct rp_key_ops_stats {
	uint64_t count; /* operations asked (a busy answer asked again: 2) */
	uint64_t busy;	/* busy answers */
	double waited;	/* seconds the threads waited for their slot */
	double pace;	/* operations a second now; 0: not paced */
};
void rp_store_set_key_ops(struct rp_store *s, double per_second,
			  volatile sig_atomic_t *stop);
void rp_store_key_ops(struct rp_store *s, struct rp_key_ops_stats *out);

/*
 * rp_store_set_workers sizes the backends for `num_workers` concurrent
 * workers (worker indices 0 .. num_workers - 1), each with its own
 * backend state (PKCS#11 session, key cache). Call it before the workers
 * start; the default is 1. On failure (out of memory) the store keeps its
 * previous backends and worker count.
 */
RP_MUST_CHECK enum rp_err rp_store_set_workers(struct rp_store *s,
					       struct rp_status *st,
					       size_t num_workers);

/*
 * rp_store_unwrap_w and rp_store_sign_w are unwrap and sign for worker
 * `worker`: any number of threads may call them at once, each with its own
 * worker index. (rp_store_unwrap and rp_store_sign use worker 0.) An
 * unwrap with a key that has replicas (keyring.h) goes, at each try, to
 * whichever of its token and its replica tokens was asked the fewest
 * operations in this process, each opened the first time it is needed
 * with a session per worker; a replica token that cannot be opened fails
 * it with RP_ERR_HSM. Signing is always on the store's token.
 */
RP_MUST_CHECK enum rp_err
rp_store_unwrap_w(struct rp_store *s, struct rp_status *st, size_t worker,
		  size_t idx, const struct rp_age_stanza *stanza,
		  uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)]);
RP_MUST_CHECK enum rp_err rp_store_sign_w(struct rp_store *s,
					  struct rp_status *st, size_t worker,
					  size_t idx, const uint8_t *msg,
					  size_t msg_len, uint8_t *out,
					  size_t out_cap, size_t *out_len);

/*
 * rp_store_pubkeys gives key `idx`'s decoded public key, signing public
 * key (the Ed25519 key for the X25519 type, else the same as pub) and
 * ssh-rsa tag ("" for X25519), decoded once and cached: borrowed, valid
 * until the keyring is re-read (rp_store_lock) or the store is freed.
 * Any argument may be NULL. Safe from several threads.
 */
RP_MUST_CHECK enum rp_err rp_store_pubkeys(struct rp_store *s,
					   struct rp_status *st, size_t idx,
					   EVP_PKEY **out_pub,
					   EVP_PKEY **out_sign_pub,
					   const char **out_tag);

/*
 * rp_store_check_usable returns RP_OK if key `idx` may open documents,
 * or RP_ERR_REVOKED with a message naming the key, when it was revoked and
 * how to restore it.
 */
RP_MUST_CHECK enum rp_err rp_store_check_usable(const struct rp_store *s,
						struct rp_status *st,
						size_t idx);

#ifdef __cplusplus
}
#endif
#endif
