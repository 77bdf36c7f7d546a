/*
 * run_sign.c: the batch signer: one keystore signature per batch of licenses.
 */
#include "run_internal.h"

struct signer_state {
	struct job **batch;
	uint8_t (*leaves)[RP_MERKLE_HASH_LEN];
};

static void sign_batch(struct run *r, struct signer_state *ss, size_t n)
{
	const struct rp_key_info *nk = &r->kr->keys[r->active];
	struct rp_merkle_tree t = { 0 };
	struct rp_status st = { 0 };
	uint8_t root[RP_MERKLE_HASH_LEN], msg[64];
	uint8_t sig[RP_SIG_MAX];
	size_t sig_len = 0, msg_len;
	struct job *head = NULL, *tail = NULL;
	enum rp_err err = RP_OK;

	if (run_is_halted(r)) {
		for (size_t i = 0; i < n; i++) {
			run_not_started(r, ss->batch[i]);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		rp_merkle_leaf(ss->leaves[i], ss->batch[i]->tbs.p,
			       ss->batch[i]->tbs.len);
	}
	err = rp_merkle_tree_build(&t, &st, (const uint8_t(*)[32])ss->leaves,
				   n);
	if (!err) {
		rp_merkle_tree_root(&t, root);
		msg_len = rp_license_root_message(msg, root, (uint32_t)n);
		err = rp_store_sign_w(r->s, &st, r->num_workers, r->active, msg,
				      msg_len, sig, sizeof(sig), &sig_len);
	}
	if (err && run_is_fatal(&st)) {
		run_halt(r, rp_status_msg(&st));
	}
	if (!err) {
		rp_test_crash_point("run:signed");
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = ss->batch[i];
		struct rp_sigblock *sb = &j->lic.sig;

		if (err ||
		    rp_merkle_tree_path(&t, &st, sb->path, &sb->num_path, i)) {
			run_finish(r, j, RP_OUT_FAIL_IO, "batch signature: %s",
				   rp_status_msg(&st));
			continue;
		}
		sb->alg = nk->alg == RP_ALG_X25519 ? RP_SIG_ED25519
						   : RP_SIG_RSA_PSS_SHA256;
		memcpy(sb->key_id, nk->id, RP_KEY_ID_LEN);
		sb->batch_size = (uint32_t)n;
		sb->leaf_index = (uint32_t)i;
		memcpy(sb->sig, sig, sig_len);
		sb->sig_len = sig_len;
		/* the writers take a signed batch as one chain */
		j->batch_next = NULL;
		if (tail) {
			tail->batch_next = j;
		} else {
			head = j;
		}
		tail = j;
	}
	if (head) {
		run_queue_push(&r->q_write, head);
	}
	pthread_mutex_lock(&r->mu);
	r->stats.num_batches++;
	if (!r->stats.batch_min || n < r->stats.batch_min) {
		r->stats.batch_min = n;
	}
	if (n > r->stats.batch_max) {
		r->stats.batch_max = n;
	}
	pthread_mutex_unlock(&r->mu);
	rp_merkle_tree_fini(&t);
}

void *run_signer_main(void *p)
{
	struct run *r = p;
	struct signer_state ss;
	struct job *j;

	ss.batch = calloc(r->batch, sizeof(struct job *));
	ss.leaves = calloc(r->batch, sizeof(*ss.leaves));
	while ((j = run_queue_pop(&r->q_sign))) {
		struct timespec deadline;
		size_t n = 0, got;
		const unsigned ms = r->o->batch_ms ? r->o->batch_ms : 50;

		if (!ss.batch || !ss.leaves) {
			run_finish(r, j, RP_OUT_FAIL_IO, "out of memory");
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
		deadline.tv_sec += ms / 1000 + deadline.tv_nsec / 1000000000L;
		deadline.tv_nsec %= 1000000000L;
		ss.batch[n++] = j;
		/* the rest of the batch at once, or what came by the deadline */
		while (n < r->batch &&
		       (got = run_queue_pop_n(&r->q_sign, ss.batch + n,
					      r->batch - n, r->batch - n,
					      &deadline))) {
			n += got;
		}
		sign_batch(r, &ss, n);
	}
	free(ss.batch);
	free(ss.leaves);
	return NULL;
}

/* the writer */
