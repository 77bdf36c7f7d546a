/*
 * run_work.c: the crypto workers: classify a document, lock it, check it,
 * unwrap and wrap (or verify it).
 */
#include "run_internal.h"

#include "rp_clock.h"
#include "rp_ossl.h"

/*
 * can_keep: a document replaced by rename loses what is not in its bytes
 * unless the run can give it to the new file; refuse what it cannot (the
 * writer refuses the rest: a group, a mode or an attribute it may not set)
 */
int run_keep_problem(const struct job *j, char *why, size_t why_len)
{
	const struct stat *sb = &j->d.sb;

	if (sb->st_nlink > 1) {
		snprintf(why, why_len,
			 "it has %lu hard links: a rewrite would split them",
			 (unsigned long)sb->st_nlink);
		return 1;
	}
	if (geteuid() != 0 && sb->st_uid != geteuid()) {
		snprintf(why, why_len,
			 "cannot keep its owner (uid %u): only root may give "
			 "a file to another user",
			 (unsigned)sb->st_uid);
		return 1;
	}
	return 0;
}

static int can_keep(struct run *r, struct job *j)
{
	char why[sizeof(j->reason)];

	if (run_keep_problem(j, why, sizeof(why))) {
		run_finish(r, j, RP_OUT_SKIP_CANNOT_KEEP, "%s", why);
		return 0;
	}
	return 1;
}

/*
 * can_in_place: the new header will fit where the old one is: a rewrap in
 * place (no --out), a document with slack (a pad stanza), to a key of the
 * same kind as its own (the same stanza and signature sizes). The writer
 * still checks (rp_doc_header_fits) and copies what does not fit.
 */
static int can_in_place(const struct run *r, const struct job *j, size_t k)
{
	const struct rp_age_header *h = &j->d.hdr;

	return r->o->mode == RP_RUN_REWRAP && !j->out_path[0] &&
	       !r->o->is_verify && !r->o->no_in_place && h->num_stanzas == 3 &&
	       rp_doc_hdr_has_pad(h) &&
	       r->kr->keys[k].alg == r->kr->keys[r->active].alg;
}

/*
 * lock_doc takes the document's lock for its rewrite (advisory, held on
 * the descriptor the run read it through until the job ends): another run
 * rewriting it holds it, and then this one leaves it (skipped-busy); a
 * document replaced since the run opened it is left the same way.
 */
static int lock_doc(struct run *r, struct job *j)
{
	struct stat now;

	if (j->ip_can && j->d.sb.st_nlink > 1) {
		const int c =
			run_claim_inode(r, j->d.sb.st_dev, j->d.sb.st_ino);

		if (c < 0) {
			run_finish(r, j, RP_OUT_FAIL_IO, "out of memory");
			return 0;
		}
		if (c > 0) {
			run_finish(
				r, j, RP_OUT_CURRENT,
				"another name of a document this run moves in "
				"place (a hard link)");
			return 0;
		}
	}
	if (flock(j->d.fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK || errno == EINTR) {
			run_finish(r, j, RP_OUT_SKIP_BUSY,
				   "another process is rewriting it (it holds "
				   "its lock): run again to move it");
		} else {
			run_finish(r, j, RP_OUT_FAIL_IO, "cannot lock: %s",
				   strerror(errno));
		}
		return 0;
	}
	j->is_locked = 1;
	if (fstatat(j->dir->fd, j->name, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
	    now.st_dev != j->d.sb.st_dev || now.st_ino != j->d.sb.st_ino) {
		run_finish(r, j, RP_OUT_SKIP_BUSY,
			   "it was replaced while the run opened it: run again "
			   "to move it");
		return 0;
	}
	/*
	 * the same inode, but written since the run read it: another run
	 * that rewrote it in place and let go of its lock in between (or any
	 * writer); what the run read is stale
	 */
	if (now.st_size != j->d.sb.st_size ||
	    now.st_ctim.tv_sec != j->d.sb.st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != j->d.sb.st_ctim.tv_nsec) {
		run_finish(
			r, j, RP_OUT_SKIP_BUSY,
			"it was rewritten while the run opened it (another run "
			"or process): run again to move it");
		return 0;
	}
	return 1;
}

static const struct rp_status *first_bad(const struct rp_doc_info *i)
{
	const struct rp_status *order[] = { &i->license_st, &i->key_st,
					    &i->stanza_st,  &i->nonce_st,
					    &i->sig_st,	    &i->mac_st };

	for (size_t k = 0; k < RP_ARRAY_LEN(order); k++) {
		if (order[k]->err) {
			return order[k];
		}
	}
	return NULL;
}

/*
 * is_bound_to_active: a document whose license names the active key is
 * left as current only if its header says so in a way no one but this
 * store could have written: the recipient stanza is the active key's (its
 * type, and for RSA its tag), the license is bound to that stanza and to
 * the payload's nonce, and its signature verifies (once per batch
 * signature). Otherwise an edit of the license's key id would hide a
 * document under an old key from the run, and from a census that lets
 * the old key go. No unwrap: the header only, as for any current one.
 */
static int is_bound_to_active(struct run *r, size_t worker, struct job *j,
			      struct rp_doc_info *info)
{
	const struct rp_status *bad;
	int has_fk = 0;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, NULL, &has_fk,
		     &r->sigs[worker], NULL);
	bad = first_bad(info);
	if (!bad && info->key_idx == (long)r->active) {
		return 1;
	}
	if (bad && run_is_fatal(bad)) {
		run_halt(r, rp_status_msg(bad));
	}
	if (!bad) {
		run_finish(r, j, RP_OUT_FAIL_BAD,
			   "its license names the active key, but its header "
			   "is another key's");
		return 0;
	}
	/* as prepare judges the same checks of a document it would move */
	run_finish(r, j, run_outcome_of(bad),
		   "its license names the active key, but %s",
		   rp_status_msg(bad));
	return 0;
}

/*
 * is_authentic (a census): a document is counted under the key its
 * license names only if the header is what this store wrote: the license
 * bound to the recipient stanza (for RSA, the stanza's tag is the key's)
 * and to the payload's nonce, and signed by a key of the store. A revoked
 * or destroyed key vouches for nothing, and is no sign of an edit either.
 * Otherwise an edit of the license's key id would hide a document still
 * under a key from the census that lets the key go: failed-bad.
 */
static int is_authentic(struct run *r, size_t worker, struct job *j,
			struct rp_doc_info *info)
{
	const struct rp_status *order[] = { &info->license_st, &info->key_st,
					    &info->stanza_st, &info->nonce_st,
					    &info->sig_st };
	int has_fk = 0;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, NULL, &has_fk, &r->sigs[worker],
		     NULL);
	for (size_t i = 0; i < RP_ARRAY_LEN(order); i++) {
		const struct rp_status *bad = order[i];

		if (!bad->err || bad->err == RP_ERR_REVOKED ||
		    bad->err == RP_ERR_RETIRING) {
			continue;
		}
		if (run_is_fatal(bad)) {
			run_halt(r, rp_status_msg(bad));
		}
		if (run_outcome_of(bad) == RP_OUT_FAIL_IO) {
			run_finish(r, j, RP_OUT_FAIL_IO, "%s",
				   rp_status_msg(bad));
		} else {
			run_finish(r, j, RP_OUT_FAIL_BAD,
				   "its header is not as this store wrote it: "
				   "%s",
				   rp_status_msg(bad));
		}
		return 0;
	}
	return 1;
}

/*
 * census_owner (a census, a document its license does not attribute):
 * the store key its recipient stanza is really for, if any (plain age
 * files made to a store key open with --allow-unlicensed); a stanza it
 * cannot tell marks the document as not attributed
 */
static void census_owner(struct run *r, size_t worker, struct job *j)
{
	long idx = -1;
	int is_unsure = 0;

	rp_doc_stanza_key(r->s, worker, &j->d, &idx, &is_unsure);
	if (idx >= 0) {
		j->key_idx = idx;
		j->has_lic = 0; /* its key is the stanza's, not a license's */
	} else if (is_unsure) {
		j->is_unseen = 1;
	}
}

/*
 * is_foreign (a census): a license naming a key this store does not have
 * is another store's document only if this store did not sign it and its
 * recipient stanza is not for one of this store's keys; otherwise its key
 * id was edited, which would hide a document still under a store key
 * from the census that lets that key go: failed-bad, with the key the
 * stanza is for.
 */
static int is_foreign(struct run *r, size_t worker, struct job *j)
{
	long idx = -1;
	int is_unsure = 0;

	rp_doc_stanza_key(r->s, worker, &j->d, &idx, &is_unsure);
	if (idx >= 0) {
		j->key_idx = idx; /* listed with the key it depends on */
	}
	if (rp_keyring_find_id(r->kr, j->lic.sig.key_id) >= 0) {
		run_finish(r, j, RP_OUT_FAIL_BAD,
			   "its license names a key this store does not have, "
			   "but this store signed it: edited");
		return 0;
	}
	if (idx >= 0) {
		run_finish(r, j, RP_OUT_FAIL_BAD,
			   "its license names a key this store does not have, "
			   "but its recipient stanza is for this store's key");
		return 0;
	}
	j->is_unseen = is_unsure;
	return 1;
}

/*
 * classify reads the header and decides; returns 1 if the job goes on to
 * be moved (its header kept open), 0 if it was finished here.
 */
static int classify(struct run *r, size_t worker, struct out_cache *oc,
		    struct job *j, struct rp_doc_info *info)
{
	struct rp_status st = { 0 };
	struct rp_license *lic = &j->lic;
	const struct rp_age_stanza *ls;
	size_t tbs_len;
	long k;

	enum rp_err err;

	memset(&j->d, 0, sizeof(j->d));
	if (j->pre_fd >= 0) {
		/* the walker opened, stat'ed and read it already */
		j->d.fd = j->pre_fd;
		j->d.sb = j->pre_sb;
		j->pre_fd = -1;
		err = rp_doc_hdr_load(&j->d, &st, j->pre, j->pre_len);
	} else {
		/* through its folder: never a path a swapped link redirects */
		j->d.fd =
			openat(j->dir->fd, j->name,
			       O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		if (j->d.fd < 0) {
			err = rp_status_errno(&st, errno, "cannot open", NULL);
		} else if (fstat(j->d.fd, &j->d.sb) < 0) {
			err = rp_status_errno(&st, errno, "cannot stat", NULL);
		} else {
			err = rp_doc_hdr_load(&j->d, &st, NULL, 0);
		}
	}
	if (err) {
		j->has_hdr = 1;
		if (st.err == RP_ERR_IO && st.sys_errno == ELOOP) {
			j->is_unseen = 1;
			run_finish(r, j, RP_OUT_SKIP_NOT_FILE,
				   "became a symbolic link during the run");
		} else if (st.err == RP_ERR_IO || st.err == RP_ERR_NOMEM) {
			if (run_is_fatal(&st)) {
				run_halt(r, rp_status_msg(&st));
			}
			run_finish(r, j, RP_OUT_FAIL_IO, "%s",
				   rp_status_msg(&st));
		} else if (st.err == RP_ERR_USAGE) {
			run_finish(r, j, RP_OUT_SKIP_NOT_FILE, "%s",
				   rp_status_msg(&st));
		} else if (j->d.buf_len < sizeof(RP_AGE_VERSION_LINE) - 1 ||
			   memcmp(j->d.buf, "age-encryption.org/",
				  strlen("age-encryption.org/"))) {
			run_finish(r, j, RP_OUT_SKIP_NOT_AGE,
				   "not an age file");
		} else {
			run_finish(r, j, RP_OUT_FAIL_BAD, "%s",
				   rp_status_msg(&st));
		}
		return 0;
	}
	j->has_hdr = 1;
	j->size = (uint64_t)j->d.sb.st_size;
	if (j->d.license_i < 0) {
		if (r->o->is_census) {
			census_owner(r, worker, j);
		}
		run_finish(r, j, RP_OUT_SKIP_UNLICENSED,
			   "no rp-license stanza");
		return 0;
	}
	ls = &j->d.hdr.stanzas[j->d.license_i];
	if (rp_license_decode(lic, &st, ls->body.p, ls->body.len, &tbs_len)) {
		run_finish(r, j, RP_OUT_FAIL_BAD, "%s", rp_status_msg(&st));
		return 0;
	}
	j->has_lic = 1;
	k = rp_keyring_find_id(r->kr, lic->key_id);
	j->key_idx = k;
	if (k < 0) {
		if (r->o->is_census && !is_foreign(r, worker, j)) {
			return 0;
		}
		run_finish(r, j, RP_OUT_SKIP_UNKNOWN_KEY,
			   "its key is not in this store");
		return 0;
	}
	if (j->out_path[0] && !r->o->is_dry_run) {
		struct stat sb;

		if (!j->odir && run_out_folder(r, oc, j, &st)) {
			if (run_is_fatal(&st)) {
				run_halt(r, rp_status_msg(&st));
			}
			run_finish(r, j, RP_OUT_FAIL_IO, "%s",
				   rp_status_msg(&st));
			return 0;
		}
		if (fstatat(j->odir->fd, j->oname, &sb, AT_SYMLINK_NOFOLLOW) ==
		    0) {
			run_finish(r, j, RP_OUT_CURRENT,
				   "already in the output");
			return 0;
		}
	}
	if ((size_t)k == r->active && !r->o->is_verify) {
		if (!is_bound_to_active(r, worker, j, info)) {
			return 0;
		}
		if (j->out_path[0] && !r->o->is_dry_run) {
			j->is_copy = 1; /* the mirror gets it as it is */
			return 1;
		}
		run_finish(r, j, RP_OUT_CURRENT, NULL);
		return 0;
	}
	if (r->o->is_census && !is_authentic(r, worker, j, info)) {
		return 0;
	}
	if (run_is_gone(run_key_state(r, (size_t)k))) {
		struct rp_status why = { 0 };

		/* the store's own words: when, and what to do */
		if (rp_store_check_usable(r->s, &why, (size_t)k)) {
			run_finish(
				r, j,
				run_gone_outcome(run_key_state(r, (size_t)k)),
				"%s", rp_status_msg(&why));
		} else {
			run_finish(
				r, j,
				run_gone_outcome(run_key_state(r, (size_t)k)),
				"its key is %s",
				rp_key_state_name(run_key_state(r, (size_t)k)));
		}
		return 0;
	}
	if (r->o->is_verify) {
		return 1;
	}
	if (!run_is_selected(r, (size_t)k)) {
		run_finish(r, j, RP_OUT_SKIP_NOT_SELECTED, "its key is %s",
			   rp_key_state_name(run_key_state(r, (size_t)k)));
		return 0;
	}
	if (r->o->is_census) {
		run_finish(r, j, RP_OUT_WOULD_MOVE, NULL);
		return 0;
	}
	j->ip_can = can_in_place(r, j, (size_t)k);
	if (!j->out_path[0] && !j->ip_can && !can_keep(r, j)) {
		return 0;
	}
	if (r->o->is_dry_run) {
		pthread_mutex_lock(&r->mu);
		r->est.docs++;
		r->est.bytes += j->size;
		if (j->ip_can && !j->out_path[0]) {
			r->est.in_place++;
			r->est.bytes_to_write += 4096;
		} else {
			r->est.copies++;
			r->est.bytes_to_write += j->size;
		}
		j->is_sample = r->samples_left > 0;
		r->samples_left -= j->is_sample;
		pthread_mutex_unlock(&r->mu);
		if (j->is_sample) {
			return 1; /* prepared (nothing written), to measure */
		}
		run_finish(r, j, RP_OUT_WOULD_MOVE, NULL);
		return 0;
	}
	return j->out_path[0] || lock_doc(r, j);
}


/* prepare checks the document fully and builds its new stanza and TBS */

/*
 * wrap_rsa wraps the job's file key for the active RSA key through the
 * worker's encrypt context, made at its first use (the run's target key
 * does not change during a run)
 */
static enum rp_err wrap_rsa(struct job *j, struct rp_status *st,
			    EVP_PKEY_CTX **ctx, EVP_PKEY *pub, const char *tag)
{
	if (!*ctx) {
		*ctx = rp_sshrsa_ctx_new(st, pub, 0);
		if (!*ctx) {
			return st->err;
		}
	}
	return rp_sshrsa_wrap_ctx(&j->rs, st, *ctx, tag, j->file_key);
}

static int prepare(struct run *r, size_t worker, struct job *j,
		   struct rp_doc_info *info, struct rp_stream *vs,
		   uint8_t *vbuf, EVP_PKEY_CTX **wrap_ctx)
{
	const struct rp_key_info *nk = &r->kr->keys[r->active];
	struct rp_status st = { 0 };
	const struct rp_status *bad;
	struct rp_license *lic = &j->lic;
	int has_fk = 0;
	EVP_PKEY *pub = NULL;
	const char *tag = NULL;
	struct rp_buf raw = { 0 };
	size_t off = 0, len = 0;
	unsigned int dl = 0;
	enum rp_err err;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk,
		     &r->sigs[worker], j->hdr_key);
	bad = first_bad(info);
	if (bad && run_is_fatal(bad)) {
		run_halt(r, rp_status_msg(bad));
	}
	if (bad) {
		run_finish(r, j, run_outcome_of(bad), "%s", rp_status_msg(bad));
		return 0;
	}
	/*
	 * rewrap copies the payload unread: check at least that it ends in
	 * its authentic final chunk (reencrypt checks every chunk)
	 */
	if (r->o->mode == RP_RUN_REWRAP &&
	    rp_doc_check_tail(&j->d, &st, &j->lic, j->old_file_key, vs, vbuf)) {
		run_finish(r, j,
			   st.err == RP_ERR_IO ? RP_OUT_FAIL_IO
					       : RP_OUT_FAIL_BAD,
			   "%s", rp_status_msg(&st));
		return 0;
	}
	if (r->o->mode == RP_RUN_REENCRYPT) {
		if (RAND_priv_bytes(j->file_key, sizeof(j->file_key)) != 1 ||
		    RAND_bytes(j->nonce, sizeof(j->nonce)) != 1) {
			run_finish(r, j, RP_OUT_FAIL_IO, "random bytes failed");
			return 0;
		}
		if (rp_age_header_key(j->hdr_key, &st, j->file_key)) {
			run_finish(r, j, RP_OUT_FAIL_IO, "%s",
				   rp_status_msg(&st));
			return 0;
		}
	} else {
		/* and j->hdr_key, which rp_doc_check left: the same key's */
		memcpy(j->file_key, j->old_file_key, sizeof(j->file_key));
		memcpy(j->nonce, j->d.nonce, sizeof(j->nonce));
	}
	err = rp_store_pubkeys(r->s, &st, r->active, &pub, NULL, &tag);
	if (!err && nk->alg == RP_ALG_X25519) {
		uint8_t rcp[RP_X25519_LEN];
		size_t rl = sizeof(rcp);

		err = EVP_PKEY_get_raw_public_key(pub, rcp, &rl) == 1
			      ? rp_x25519_wrap(&j->rs, &st, rcp, j->file_key)
			      : rp_status_ossl(&st, RP_ERR_CRYPTO, "x25519");
	} else if (!err) {
		err = wrap_rsa(j, &st, wrap_ctx, pub, tag);
	}
	if (!err) {
		err = rp_recip_stanza_add(&raw, &j->rs, &off, &len);
	}
	if (err) {
		rp_buf_fini(&raw);
		run_finish(r, j, RP_OUT_FAIL_IO, "wrap: %s",
			   rp_status_msg(&st));
		return 0;
	}
	/* the new license: same document, owner, template, size, encoding */
	memcpy(lic->key_id, nk->id, RP_KEY_ID_LEN);
	lic->issued_at = (uint64_t)time(NULL);
	EVP_Digest(raw.p + off, len, lic->stanza_digest, &dl, rp_sha256(),
		   NULL);
	memcpy(lic->payload_nonce, j->nonce, RP_AGE_NONCE_LEN);
	rp_buf_fini(&raw);
	rp_buf_reset(&j->tbs);
	if (rp_license_encode_tbs(&j->tbs, &st, lic)) {
		run_finish(r, j, RP_OUT_FAIL_IO, "license: %s",
			   rp_status_msg(&st));
		return 0;
	}
	return 1;
}

static enum rp_err discard(void *arg, const uint8_t *p, size_t len)
{
	uint64_t *total = arg;

	(void)p;
	*total += len;
	return RP_OK;
}

/* verify_doc: every check, then every payload chunk's tag */
static void verify_doc(struct run *r, size_t worker, struct job *j,
		       struct rp_doc_info *info, struct rp_stream *s,
		       uint8_t *buf)
{
	struct rp_status st = { 0 };
	const struct rp_status *bad;
	off_t off = (off_t)(j->d.hdr.header_len + RP_AGE_NONCE_LEN);
	uint64_t total = 0;
	int has_fk = 0;
	enum rp_err err;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk,
		     &r->sigs[worker], NULL);
	bad = first_bad(info);
	if (bad && run_is_fatal(bad)) {
		run_halt(r, rp_status_msg(bad));
	}
	if (bad) {
		run_finish(r, j, run_outcome_of(bad), "%s", rp_status_msg(bad));
		return;
	}
	err = rp_stream_init(s, &st, RP_STREAM_OPEN, j->old_file_key,
			     j->d.nonce);
	while (!err) {
		size_t n = 0;

		err = rp_read_full(j->d.fd, &st, NULL, buf, COPY_BUF, off, &n);
		if (err || !n) {
			break;
		}
		off += (off_t)n;
		err = rp_stream_feed(s, &st, buf, n, discard, &total);
	}
	if (!err) {
		err = rp_stream_finish(s, &st, discard, &total);
	}
	if (!err && info->lic.encoding == RP_ENC_NONE &&
	    total != info->lic.plaintext_size) {
		err = rp_status_fail(
			&st, RP_ERR_FORMAT,
			"plaintext is %llu bytes, the license "
			"says %llu",
			(unsigned long long)total,
			(unsigned long long)info->lic.plaintext_size);
	}
	rp_stream_fini(s);
	OPENSSL_cleanse(buf, COPY_BUF);
	if (err) {
		run_finish(r, j,
			   err == RP_ERR_IO ? RP_OUT_FAIL_IO : RP_OUT_FAIL_BAD,
			   "%s", rp_status_msg(&st));
		return;
	}
	run_finish(r, j, RP_OUT_VERIFIED, NULL);
}

/*
 * sample: a dry run checks a would-move document as a run would (the
 * license, its signature and bindings, the unwrap, the header MAC, the
 * final chunk), writes nothing, and adds the CPU and the time it took
 * to the estimate. What it finds does not change the plan (the document
 * would move, as every other one the dry run only read the header of),
 * and a keystore that fails does not stop the dry run.
 */
static void sample(struct run *r, size_t worker, struct job *j,
		   struct rp_doc_info *info, struct rp_stream *vs,
		   uint8_t *vbuf)
{
	const double cpu0 = rp_clock_s(CLOCK_THREAD_CPUTIME_ID);
	const double wall0 = rp_clock_s(CLOCK_MONOTONIC);
	struct rp_status st = { 0 };
	int has_fk = 0;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk,
		     &r->sigs[worker], j->hdr_key);
	if (!first_bad(info) && r->o->mode == RP_RUN_REWRAP) {
		(void)!rp_doc_check_tail(&j->d, &st, &j->lic, j->old_file_key,
					 vs, vbuf);
	}
	pthread_mutex_lock(&r->mu);
	if (!first_bad(info) && r->est.samples < RP_RUN_SAMPLES) {
		r->est.sample_cpu[r->est.samples] =
			rp_clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
		r->est.sample_wall[r->est.samples] =
			rp_clock_s(CLOCK_MONOTONIC) - wall0;
		r->est.samples++;
	}
	pthread_mutex_unlock(&r->mu);
	OPENSSL_cleanse(j->old_file_key, sizeof(j->old_file_key));
	OPENSSL_cleanse(j->hdr_key, sizeof(j->hdr_key));
	run_finish(r, j, RP_OUT_WOULD_MOVE, NULL);
}

void *run_worker_main(void *p)
{
	struct worker_arg *a = p;
	struct run *r = a->r;
	struct rp_doc_info *info = malloc(sizeof(*info));
	struct rp_stream *vs = calloc(1, sizeof(*vs));
	uint8_t *vbuf = malloc(COPY_BUF);
	struct out_cache oc = { .f = NULL };
	EVP_PKEY_CTX *wrap_ctx = NULL; /* the active key's, at first use */
	struct job *j;

	while ((j = run_queue_pop(&r->q_work))) {
		if (!info || !vs || !vbuf) {
			run_finish(r, j, RP_OUT_FAIL_IO, "out of memory");
			continue;
		}
		if (run_is_halted(r)) {
			run_not_started(r, j);
			continue;
		}
		if (!classify(r, a->index, &oc, j, info)) {
			continue;
		}
		rp_test_crash_point("run:read");
		if (r->o->is_verify) {
			verify_doc(r, a->index, j, info, vs, vbuf);
			continue;
		}
		if (j->is_copy) {
			run_queue_push(&r->q_write, j); /* a batch of one */
			continue;
		}
		if (j->is_sample) {
			sample(r, a->index, j, info, vs, vbuf);
			continue;
		}
		if (!prepare(r, a->index, j, info, vs, vbuf, &wrap_ctx)) {
			continue;
		}
		run_queue_push(&r->q_sign, j);
	}
	run_out_cache_fini(&oc);
	EVP_PKEY_CTX_free(wrap_ctx);
	free(info);
	free(vs);
	if (vbuf) {
		OPENSSL_cleanse(vbuf, COPY_BUF);
	}
	free(vbuf);
	return NULL;
}

/* the batch signer */
