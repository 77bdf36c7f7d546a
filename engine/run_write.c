/*
 * run_write.c: the writers: each document built (in place or copied), and the
 * batch commit under the store's lock.
 */
#include "run_internal.h"

/*
 * build_hdr: the new header in j->new_hdr, `target` bytes long (0: with
 * the default slack). RP_ERR_STATE, with no message, when it cannot be
 * made that long.
 */
static enum rp_err build_hdr(struct job *j, struct rp_status *st,
			     const struct rp_buf *lic, size_t target)
{
	enum rp_err err;

	rp_buf_reset(&j->new_hdr);
	err = rp_age_header_begin(&j->new_hdr);
	if (!err) {
		err = rp_recip_stanza_add(&j->new_hdr, &j->rs, NULL, NULL);
	}
	if (!err && target &&
	    !rp_doc_header_fits(j->new_hdr.len, lic->len, target)) {
		return RP_ERR_STATE;
	}
	if (!err) {
		err = rp_doc_header_finish(&j->new_hdr, st, lic->p, lic->len,
					   j->lic.sig.num_path, j->hdr_key,
					   target);
	}
	if (err) {
		rp_status_fail(st, err, "cannot build the new header");
	}
	return err;
}

static enum rp_err write_one(struct writer *w, struct job *j,
			     struct rp_status *st)
{
	struct rp_buf lic = { 0 };
	char why[sizeof(j->reason)];
	enum rp_err err = RP_OK;

	if (j->is_copy) {
		err = run_new_file(w, j, st);
		if (!err) {
			err = run_copy_whole(w, j, st);
		}
		goto meta;
	}
	err = rp_license_encode(&lic, st, &j->lic);
	if (!err && j->ip_can) {
		/* in place: as long as the old header; the commit writes it */
		err = build_hdr(j, st, &lic, j->d.hdr.header_len);
		if (!err && run_open_in_place(j, w->blk != NULL)) {
			goto out;
		}
		if (err && err != RP_ERR_STATE) {
			goto out;
		}
		err = RP_OK;
		j->ip_can = 0;
		/* copied instead: what a copy would lose is refused */
		if (run_keep_problem(j, why, sizeof(why))) {
			err = run_cannot_keep(
				j, st,
				"%s (and it cannot be rewritten in "
				"place)",
				why);
			goto out;
		}
	}
	if (!err) {
		err = build_hdr(j, st, &lic, 0);
	}
	if (err) {
		goto out;
	}
	err = run_new_file(w, j, st);
	/* the header and the payload's nonce after it, in one write */
	if (!err && rp_buf_add(&j->new_hdr, j->nonce, sizeof(j->nonce))) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (!err) {
		err = rp_afile_write(&j->af, st, j->new_hdr.p, j->new_hdr.len);
		j->new_hdr.len -= sizeof(j->nonce);
	}
	if (!err) {
		err = run_copy_payload(w, j, st);
	}
meta:
	if (!err) {
		err = run_keep_meta(w, j, st);
	}
	if (!err && w->r->o->durability == RP_DURABLE_EACH &&
	    fsync(j->af.fd) < 0) {
		err = rp_status_errno(st, errno, "cannot fsync", NULL);
	}
out:
	rp_buf_fini(&lic);
	return err;
}

/* is_unchanged: the name still holds the very file the run read */
static int is_unchanged(const struct job *j)
{
	struct stat now;

	return fstatat(j->dir->fd, j->name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	       now.st_dev == j->d.sb.st_dev && now.st_ino == j->d.sb.st_ino &&
	       now.st_size == j->d.sb.st_size &&
	       now.st_nlink == j->d.sb.st_nlink &&
	       now.st_mtim.tv_sec == j->d.sb.st_mtim.tv_sec &&
	       now.st_mtim.tv_nsec == j->d.sb.st_mtim.tv_nsec &&
	       now.st_ctim.tv_sec == j->d.sb.st_ctim.tv_sec &&
	       now.st_ctim.tv_nsec == j->d.sb.st_ctim.tv_nsec;
}

/*
 * keys_still_hold: under the store's lock (held until the renames are
 * done), the key states as they are on disk now. The run's target key no
 * longer active (revoked, destroyed, or a rekey made another key active)
 * stops the run before this batch commits; a document whose key was
 * revoked since it was read stays under it. Returns 1 if the batch may
 * commit.
 */
static int keys_still_hold(struct writer *w)
{
	struct run *r = w->r;
	struct rp_status st = { 0 };
	uint8_t active_id[RP_KEY_ID_LEN];
	char hex[2 * RP_KEY_ID_LEN + 1], now_hex[2 * RP_KEY_ID_LEN + 1];
	char why[320];
	long active = -1;

	if (rp_store_lock_shared(r->s, &st, &w->lock_fd) ||
	    rp_store_key_states_now(r->s, &st, w->states, &active, active_id)) {
		snprintf(why, sizeof(why),
			 "cannot read the key states before a commit: %s",
			 rp_status_msg(&st));
		run_halt(r, why);
		return 0;
	}
	for (size_t k = 0; k < r->kr->num_keys; k++) {
		__atomic_store_n(&r->state_now[k], w->states[k],
				 __ATOMIC_RELAXED);
	}
	if (active == (long)r->active) {
		return 1;
	}
	rp_key_id_hex(hex, r->kr->keys[r->active].id);
	if (active == -1) {
		snprintf(why, sizeof(why),
			 "the active key %.16s was %s during the run (by "
			 "another process): nothing more is moved to it",
			 hex, rp_key_state_name(w->states[r->active]));
	} else {
		rp_key_id_hex(now_hex, active_id);
		snprintf(why, sizeof(why),
			 "the active key %.16s is %s now: another process "
			 "made key %.16s active during the run; run again "
			 "to move the rest to it",
			 hex, rp_key_state_name(w->states[r->active]), now_hex);
	}
	run_halt(r, why);
	return 0;
}

/* may_commit: what must still hold for the job to be committed */
void run_may_commit(struct run *r, struct job *j, int is_keys_ok)
{
	if (j->out != RP_OUT_MOVED) {
		return;
	}
	if (!is_keys_ok) {
		run_job_fail(j, RP_OUT_FAIL_IO,
			     "not moved: the run stopped (%s)", r->halt_reason);
	} else if (!j->is_copy && j->key_idx >= 0 &&
		   run_is_gone(run_key_state(r, (size_t)j->key_idx))) {
		run_job_fail(
			j,
			run_gone_outcome(run_key_state(r, (size_t)j->key_idx)),
			"its key was %s during the run: left under it",
			rp_key_state_name(
				run_key_state(r, (size_t)j->key_idx)));
	} else if (!is_unchanged(j)) {
		run_job_fail(j, RP_OUT_FAIL_CHANGED,
			     "the file changed while the run read it");
	}
}

static void commit_batch(struct writer *w)
{
	const size_t n = w->n;
	struct run *r = w->r;
	int res[1024];
	const int use_ring = w->has_ring && n <= RP_ARRAY_LEN(res);
	int is_keys_ok;

	if (r->o->durability == RP_DURABLE_BATCH) {
		run_sync_files(w, use_ring, res);
		rp_test_crash_point("run:synced");
	}
	run_close_files(w, use_ring, res);
	rp_test_pause_point("run:before-commit");
	/* under the store's lock: the keys hold, the sources are unchanged */
	is_keys_ok = keys_still_hold(w);
	for (size_t i = 0; i < n; i++) {
		run_may_commit(r, w->batch[i], is_keys_ok);
	}
	run_write_in_place(w, use_ring, res);
	run_rename_all(w, use_ring, res);
	rp_store_unlock_shared(w->lock_fd);
	for (size_t i = 0; i < n; i++) {
		if (w->batch[i]->tmp_lock >= 0) {
			close(w->batch[i]->tmp_lock);
			w->batch[i]->tmp_lock = -1;
		}
	}
	rp_test_crash_point("run:renamed");
	if (r->o->durability != RP_DURABLE_NONE) {
		run_sync_dirs(w, use_ring, res);
	}
	rp_test_crash_point("run:dirs-synced");
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->out == RP_OUT_MOVED && !j->is_copy) {
			const uint64_t put =
				j->ip_done ? (j->is_dio ? RP_DIO_BLOCK
							: j->new_hdr.len)
					   : (uint64_t)j->d.sb.st_size -
						     j->d.hdr.header_len +
						     j->new_hdr.len;

			pthread_mutex_lock(&r->mu);
			r->stats.in_place += j->ip_done;
			r->stats.copied += !j->ip_done;
			r->stats.bytes_written += put;
			pthread_mutex_unlock(&r->mu);
			snprintf(j->reason, sizeof(j->reason), "%s",
				 j->ip_done ? "in place" : "copied");
		}
		/* the reason is already in j->reason */
		run_finish(r, j, j->out, NULL);
	}
	w->n = 0;
	/* tests look at the process's memory here (it_secrets) */
	rp_test_pause_point("run:committed");
}

void *run_writer_main(void *p)
{
	struct writer *w = p;
	struct job *head;

	while ((head = run_queue_pop(&w->r->q_write))) {
		for (struct job *j = head, *next; j; j = next) {
			struct rp_status st = { 0 };

			next = j->batch_next;
			if (write_one(w, j, &st)) {
				if (run_is_fatal(&st)) {
					run_halt(w->r, rp_status_msg(&st));
				}
				if (j->out != RP_OUT_SKIP_CANNOT_KEEP) {
					run_job_fail(
						j,
						st.err == RP_ERR_IO ||
								st.err ==
									RP_ERR_NOMEM
							? RP_OUT_FAIL_IO
							: RP_OUT_FAIL_BAD,
						"%s", rp_status_msg(&st));
				}
				rp_afile_fini(&j->af);
			} else {
				rp_test_crash_point("run:written");
			}
			w->batch[w->n++] = j;
			if (w->r->o->durability == RP_DURABLE_EACH ||
			    w->n == w->r->batch) {
				commit_batch(w);
			}
		}
		if (w->n) {
			commit_batch(w);
		}
	}
	return NULL;
}

/* progress */

/* writer_init: `w` is zeroed by the caller; writer_fini frees it after */
enum rp_err run_writer_init(struct writer *w, struct run *r,
			    struct rp_status *st)
{
	w->r = r;
	w->lock_fd = -1;
	w->open_s = malloc(sizeof(*w->open_s));
	w->seal_s = malloc(sizeof(*w->seal_s));
	w->buf = malloc(COPY_BUF);
	w->batch = calloc(r->batch, sizeof(struct job *));
	w->dirs = calloc(r->batch, sizeof(struct folder *));
	w->dir_names = calloc(r->batch, sizeof(*w->dir_names));
	w->states = calloc(r->kr->num_keys + 1, 1);
	w->wdocs = calloc(r->batch, sizeof(struct rp_wal_doc));
	/* without it, headers go through the page cache (not an error) */
	w->blk = aligned_alloc(RP_DIO_BLOCK, r->batch * RP_DIO_BLOCK);
	if (!w->open_s || !w->seal_s || !w->buf || !w->batch || !w->dirs ||
	    !w->dir_names || !w->states || !w->wdocs) {
		/* the caller's writer_fini frees what was allocated */
		rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		return RP_ERR_NOMEM;
	}
	memset(w->open_s, 0, sizeof(*w->open_s));
	memset(w->seal_s, 0, sizeof(*w->seal_s));
	if (r->o->io == RP_IO_URING) {
		struct rp_status rst = { 0 };

		if (rp_ring_init(&w->ring, &rst, 2 * (unsigned)r->batch)) {
			fprintf(stderr,
				"reprotect: io_uring is not available (%s): "
				"using plain blocking I/O\n",
				rp_status_msg(&rst));
		} else {
			w->has_ring = 1;
		}
	}
	r->use_uring = w->has_ring;
	return RP_OK;
}

void run_writer_fini(struct writer *w)
{
	run_out_cache_fini(&w->oc);
	if (w->lock_fd >= 0) {
		close(w->lock_fd);
	}
	if (w->has_ring) {
		rp_ring_fini(&w->ring);
	}
	free(w->open_s);
	free(w->seal_s);
	if (w->buf) {
		OPENSSL_cleanse(w->buf, COPY_BUF);
	}
	free(w->buf);
	free(w->batch);
	free(w->dirs);
	free(w->dir_names);
	free(w->states);
	free(w->wdocs);
	free(w->blk);	      /* headers and ciphertext only: nothing to wipe */
	rp_wal_close(w->wal); /* gone when empty; else left for recovery */
}
