#ifndef RP_KEYS_STORE_INTERNAL_H
#define RP_KEYS_STORE_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>

#include <openssl/evp.h>
#include <stdint.h>

#include "keyring.h"
#include "keystore.h"
#include "store.h"

/* Shared by store.c, lifecycle.c and audit.c only. */

struct rp_key_usage {
	uint8_t id[RP_KEY_ID_LEN];
	uint64_t num_unwrap;
	uint64_t num_sign;
	uint64_t first_at;
	uint64_t last_at;
	/*
	 * a key with replicas: its unwraps per token (the primary and each
	 * replica that served one), by label
	 */
	size_t num_tokens;
	struct {
		char label[RP_CONF_STR_MAX + 1];
		uint64_t num_unwrap;
	} tokens[1 + RP_REPLICAS_MAX];
};

/* a replica token's keystore (rp_store_replica_ks) */
struct rp_store_token {
	char label[RP_CONF_STR_MAX + 1];
	struct rp_keystore *ks; /* owned */
	uint64_t num_asked;	/* private-key operations asked (atomic) */
};

struct rp_pub_cache {
	EVP_PKEY *pub;	    /* owned */
	EVP_PKEY *sign_pub; /* owned */
	char tag[8];	    /* ssh-rsa tag, "" for X25519 */
};

struct rp_store {
	char dir[PATH_MAX];
	uint8_t world_key[32];
	uint8_t world_id[16];
	uint8_t mac_key[32];
	uint8_t audit_key[32];
	struct rp_keyring keyring;
	struct rp_keystore *ks_soft; /* owned */
	struct rp_keystore *ks_p11;  /* owned; NULL until first needed */
	/* the replica tokens opened so far, under backend_lock */
	size_t num_tokens;
	struct rp_store_token *tokens; /* owned */
	uint64_t p11_asked;	       /* operations asked of ks_p11 (atomic) */
	char *p11_pin;		     /* owned, cleansed */
	size_t p11_pin_len;
	size_t num_workers;
	int lock_fd;
	pthread_mutex_t usage_lock; /* workers count usage concurrently */
	/*
	 * the keystore quota (rp_store_set_key_ops) and the pace that busy
	 * answers set below it (key_op_done), under usage_lock; times are
	 * CLOCK_MONOTONIC seconds
	 */
	double key_ops_cap;	 /* private-key operations a second; 0: any */
	double key_ops_rate;	 /* the pace now (<= cap); 0: any */
	double key_ops_next;	 /* the next slot */
	double key_ops_high;	 /* the pace when the keystore last said busy */
	double key_ops_cut_at;	 /* when the pace was last cut */
	double key_ops_grown_at; /* when it last grew */
	double key_ops_win_at;	 /* the measuring window's start */
	uint64_t key_ops_win_n;	 /* operations done in it */
	double key_ops_measured; /* operations a second, the last window */
	uint64_t key_ops_count; /* private-key operations asked so far */
	uint64_t key_ops_busy;	/* busy answers */
	double key_ops_waited;	/* seconds spent waiting for the quota */
	volatile sig_atomic_t *key_ops_stop; /* the caller's stop flag */
	pthread_mutex_t pub_lock;   /* the decoded public key cache */
	pthread_mutex_t backend_lock; /* opening the PKCS#11 backend */
	size_t num_pubs;
	struct rp_pub_cache *pubs; /* owned: one per keyring index */
	size_t num_usage;
	struct rp_key_usage *usage; /* owned */
};

/* rp_store_save_keyring bumps the generation and writes the keyring. */
RP_MUST_CHECK enum rp_err rp_store_save_keyring(struct rp_store *s,
						struct rp_status *st);

/* rp_store_ks returns the backend that holds key `ki`, opening it. */
RP_MUST_CHECK enum rp_err rp_store_ks(struct rp_store *s, struct rp_status *st,
				      const struct rp_key_info *ki,
				      struct rp_keystore **out);

/*
 * rp_store_replica_ks returns the keystore of replica token `label` (the
 * store's PKCS#11 module and PIN), opening it, and the store's own token
 * before it (whose watermark is checked when it is opened), the first
 * time. Safe from several threads.
 */
RP_MUST_CHECK enum rp_err rp_store_replica_ks(struct rp_store *s,
					      struct rp_status *st,
					      const char *label,
					      struct rp_keystore **out);

/* rp_store_ks_default returns the backend new keys go to. */
RP_MUST_CHECK enum rp_err rp_store_ks_default(struct rp_store *s,
					      struct rp_status *st,
					      struct rp_keystore **out,
					      uint8_t *out_backend);

#endif
