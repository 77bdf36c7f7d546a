/*
 * The bulk re-protection engine. Threads and queues:
 *
 *   caller (walker) --q_work--> workers (jobs) --q_sign--> signer
 *        --q_write--> writer --> journal / stats
 *
 * Every queue is bounded and every job comes from a fixed pool, so memory
 * stays flat whatever the number of documents; a document's bytes stream
 * through fixed buffers, so it stays flat whatever their size too.
 */
#include "run.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <xxhash.h>

#include "afile.h"
#include "age_recip.h"
#include "age_stream.h"
#include "doc_internal.h"
#include "merkle.h"
#include "rp_buf.h"
#include "rp_testhook.h"
#include "walk.h"

#define COPY_BUF	       (256 * 1024)
#define RP_RENAME_EXCHANGE (1 << 1) /* renameat2's, from linux/fs.h */
#define RP_RUN_WRITERS 2 /* file creation and renames wait on the disk */
#define RP_READ_AHEAD  32 /* documents the walker opens and reads at once */

static const char *const outcome_names[RP_OUT_NUM] = {
	[RP_OUT_MOVED] = "moved",
	[RP_OUT_WOULD_MOVE] = "would-move",
	[RP_OUT_CURRENT] = "current",
	[RP_OUT_SKIP_NOT_SELECTED] = "skipped-not-selected",
	[RP_OUT_SKIP_REVOKED] = "skipped-revoked-key",
	[RP_OUT_SKIP_UNKNOWN_KEY] = "skipped-unknown-key",
	[RP_OUT_SKIP_UNLICENSED] = "skipped-unlicensed",
	[RP_OUT_SKIP_NOT_AGE] = "skipped-not-age",
	[RP_OUT_SKIP_NOT_FILE] = "skipped-not-file",
	[RP_OUT_FAIL_BAD] = "failed-bad-document",
	[RP_OUT_FAIL_CHANGED] = "failed-changed",
	[RP_OUT_FAIL_IO] = "failed-io",
	[RP_OUT_VERIFIED] = "verified",
};

const char *rp_outcome_name(enum rp_outcome o)
{
	return (unsigned)o < RP_OUT_NUM ? outcome_names[o] : "unknown";
}

struct job {
	struct job *next_free;
	char path[PATH_MAX];
	char out_path[PATH_MAX]; /* --out: where it goes; "" in place */
	int is_copy;		 /* --out: copied as it is (already current) */
	size_t rel_off;
	enum rp_outcome out;
	char reason[320];
	long key_idx; /* the document's key, -1: unknown */
	uint64_t size;
	struct job *batch_next; /* the next job of its signed batch */
	int is_exchanged;	/* swapped in: the old inode is at af.tmp */
	struct rp_doc_hdr d;
	int has_hdr;
	/*
	 * read ahead through the ring: the open file, its stat and its first
	 * bytes (pre: this job's slot of the registered pool), or pre_fd -1
	 */
	int pre_fd;
	struct stat pre_sb;
	uint8_t *pre;
	size_t pre_len;
	uint8_t old_file_key[RP_AGE_FILE_KEY_LEN];
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	uint8_t nonce[RP_AGE_NONCE_LEN];
	struct rp_recip_stanza rs;
	struct rp_license lic;
	struct rp_buf tbs;
	struct rp_afile af;
};

struct queue {
	pthread_mutex_t mu;
	pthread_cond_t can_pop, can_push;
	struct job **items;
	size_t cap, head, len;
	int is_closed;
};

struct run {
	struct rp_store *s;
	const struct rp_run_opts *o;
	const struct rp_keyring *kr;
	size_t active;
	size_t num_workers;
	size_t batch;
	struct job *jobs; /* owned: the pool */
	size_t num_jobs;
	struct job *free_list;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct queue q_work, q_sign, q_write;
	pthread_mutex_t mu; /* stats, per-key stats, journal */
	struct rp_run_stats_view stats;
	struct rp_run_key_stats *keys; /* one per keyring key, then unknown */
	struct timespec start;	 /* CLOCK_MONOTONIC, for rates */
	struct timespec started; /* CLOCK_REALTIME, against file times */
	int is_done;
	int use_uring;
	size_t next_worker;
	/*
	 * halted: a fault that every later document would meet too (the
	 * keystore down after its retries, the disk full or read-only)
	 * stops the run as a signal does; under mu, read with is_halted
	 */
	int halted;
	char halt_reason[320];
	/* the walker's ring: opens, stats and first reads, a batch at once */
	struct io_uring rd_ring;
	int has_rd_ring, has_rd_fixed;
	uint8_t *rd_pool; /* RP_DOC_HDR_PREFIX per job, registered */
};

/* target is where the job's new document goes */
static const char *target(const struct job *j)
{
	return j->out_path[0] ? j->out_path : j->path;
}

/* queues */

static int queue_init(struct queue *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->items = calloc(cap, sizeof(struct job *));
	q->cap = cap;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->can_pop, NULL);
	pthread_cond_init(&q->can_push, NULL);
	return q->items != NULL;
}

static void queue_fini(struct queue *q)
{
	free(q->items);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->can_pop);
	pthread_cond_destroy(&q->can_push);
}

static void queue_push(struct queue *q, struct job *j)
{
	pthread_mutex_lock(&q->mu);
	while (q->len == q->cap) {
		pthread_cond_wait(&q->can_push, &q->mu);
	}
	q->items[(q->head + q->len) % q->cap] = j;
	q->len++;
	pthread_cond_signal(&q->can_pop);
	pthread_mutex_unlock(&q->mu);
}

/* queue_pop waits until `deadline` (NULL: forever); NULL when closed+empty
 * or timed out */
static struct job *queue_pop(struct queue *q, const struct timespec *deadline)
{
	struct job *j = NULL;

	pthread_mutex_lock(&q->mu);
	while (!q->len && !q->is_closed) {
		if (!deadline) {
			pthread_cond_wait(&q->can_pop, &q->mu);
		} else if (pthread_cond_timedwait(&q->can_pop, &q->mu,
						  deadline) == ETIMEDOUT) {
			break;
		}
	}
	if (q->len) {
		j = q->items[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		pthread_cond_signal(&q->can_push);
	}
	pthread_mutex_unlock(&q->mu);
	return j;
}

static void queue_close(struct queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->is_closed = 1;
	pthread_cond_broadcast(&q->can_pop);
	pthread_mutex_unlock(&q->mu);
}

/* the job pool: acquiring blocks while every job is in flight */

static struct job *job_get(struct run *r)
{
	struct job *j;

	pthread_mutex_lock(&r->pool_mu);
	while (!r->free_list) {
		pthread_cond_wait(&r->pool_cv, &r->pool_mu);
	}
	j = r->free_list;
	r->free_list = j->next_free;
	pthread_mutex_unlock(&r->pool_mu);
	j->out = RP_OUT_MOVED;
	j->reason[0] = '\0';
	j->key_idx = -1;
	j->size = 0;
	j->batch_next = NULL;
	j->has_hdr = 0;
	j->out_path[0] = '\0';
	j->is_copy = 0;
	j->af.fd = -1;
	j->af.tmp[0] = '\0';
	j->af.is_committed = 0;
	j->pre_fd = -1;
	j->pre_len = 0;
	return j;
}

static void job_put(struct run *r, struct job *j)
{
	if (j->has_hdr) {
		rp_doc_hdr_fini(&j->d);
		j->has_hdr = 0;
	}
	if (j->pre_fd >= 0) {
		close(j->pre_fd);
		j->pre_fd = -1;
	}
	rp_afile_fini(&j->af);
	rp_buf_reset(&j->tbs);
	OPENSSL_cleanse(j->old_file_key, sizeof(j->old_file_key));
	OPENSSL_cleanse(j->file_key, sizeof(j->file_key));
	pthread_mutex_lock(&r->pool_mu);
	j->next_free = r->free_list;
	r->free_list = j;
	pthread_cond_signal(&r->pool_cv);
	pthread_mutex_unlock(&r->pool_mu);
}

/* outcomes */

static void journal_path(FILE *f, const char *p)
{
	for (; *p; p++) {
		const unsigned char c = (unsigned char)*p;

		if (c == '\\' || c == '\t' || c == '\n' || c < 0x20 ||
		    c == 0x7f) {
			fprintf(f, "\\x%02x", c);
		} else {
			fputc(c, f);
		}
	}
}

static void record(struct run *r, struct job *j)
{
	const size_t k = j->key_idx >= 0 ? (size_t)j->key_idx
					  : r->kr->num_keys;
	char hex[2 * RP_KEY_ID_LEN + 1] = "-";

	pthread_mutex_lock(&r->mu);
	r->stats.num[j->out]++;
	r->stats.bytes[j->out] += j->size;
	r->keys[k].num[j->out]++;
	r->keys[k].bytes[j->out] += j->size;
	if (r->o->journal) {
		if (j->key_idx >= 0) {
			rp_key_id_hex(hex, r->kr->keys[j->key_idx].id);
		}
		fprintf(r->o->journal, "%s\t%.16s\t%llu\t", rp_outcome_name(j->out),
			hex, (unsigned long long)j->size);
		journal_path(r->o->journal, j->path);
		fputc('\t', r->o->journal);
		journal_path(r->o->journal, j->reason[0] ? j->reason : "-");
		fputc('\n', r->o->journal);
	}
	pthread_mutex_unlock(&r->mu);
}

static void finish(struct run *r, struct job *j, enum rp_outcome out,
		   const char *fmt, ...) RP_PRINTF(4, 5);

static void finish(struct run *r, struct job *j, enum rp_outcome out,
		   const char *fmt, ...)
{
	va_list ap;

	j->out = out;
	if (fmt) {
		va_start(ap, fmt);
		if (vsnprintf(j->reason, sizeof(j->reason), fmt, ap) < 0) {
			j->reason[0] = '\0';
		}
		va_end(ap);
	}
	record(r, j);
	job_put(r, j);
}

/* halting */

static int is_halted(struct run *r)
{
	return __atomic_load_n(&r->halted, __ATOMIC_ACQUIRE);
}

/* is_fatal_errno: no later document could be written either */
static int is_fatal_errno(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EROFS;
}

static int is_fatal(const struct rp_status *st)
{
	return st->err == RP_ERR_HSM ||
	       (st->err == RP_ERR_IO && is_fatal_errno(st->sys_errno));
}

/* halt stops the run: no new document starts; the first reason stays */
static void halt(struct run *r, const char *why)
{
	pthread_mutex_lock(&r->mu);
	if (!r->halted) {
		snprintf(r->halt_reason, sizeof(r->halt_reason), "%s", why);
		__atomic_store_n(&r->halted, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&r->mu);
}

/* not_started finishes a job the run will not touch after a halt */
static void not_started(struct run *r, struct job *j)
{
	finish(r, j, RP_OUT_FAIL_IO, "not moved: the run stopped (%s)",
	       r->halt_reason);
}

/* workers */

static int is_selected(const struct run *r, const struct rp_key_info *k)
{
	if (!r->o->from) {
		return k->state == RP_KEY_ARCHIVED;
	}
	for (size_t i = 0; i < r->o->num_from; i++) {
		if (!memcmp(r->o->from[i], k->id, RP_KEY_ID_LEN)) {
			return 1;
		}
	}
	return 0;
}

/*
 * classify reads the header and decides; returns 1 if the job goes on to
 * be moved (its header kept open), 0 if it was finished here.
 */
static int classify(struct run *r, struct job *j)
{
	struct rp_status st = { 0 };
	struct rp_license *lic = &j->lic;
	const struct rp_age_stanza *ls;
	size_t tbs_len;
	long k;

	enum rp_err err;

	if (j->pre_fd >= 0) {
		/* the walker opened, stat'ed and read it already */
		memset(&j->d, 0, sizeof(j->d));
		j->d.fd = j->pre_fd;
		j->d.sb = j->pre_sb;
		j->pre_fd = -1;
		err = rp_doc_hdr_load(&j->d, &st, j->pre, j->pre_len);
	} else {
		err = rp_doc_hdr_read(&j->d, &st, j->path, O_NOFOLLOW);
	}
	if (err) {
		j->has_hdr = 1;
		if (st.err == RP_ERR_IO) {
			finish(r, j, RP_OUT_FAIL_IO, "%s", rp_status_msg(&st));
		} else if (st.err == RP_ERR_USAGE) {
			finish(r, j, RP_OUT_SKIP_NOT_FILE, "%s",
			       rp_status_msg(&st));
		} else if (j->d.buf_len < sizeof(RP_AGE_VERSION_LINE) - 1 ||
			   memcmp(j->d.buf, "age-encryption.org/",
				  strlen("age-encryption.org/"))) {
			finish(r, j, RP_OUT_SKIP_NOT_AGE, "not an age file");
		} else {
			finish(r, j, RP_OUT_FAIL_BAD, "%s", rp_status_msg(&st));
		}
		return 0;
	}
	j->has_hdr = 1;
	j->size = (uint64_t)j->d.sb.st_size;
	if (j->d.license_i < 0) {
		finish(r, j, RP_OUT_SKIP_UNLICENSED, "no rp-license stanza");
		return 0;
	}
	ls = &j->d.hdr.stanzas[j->d.license_i];
	if (rp_license_decode(lic, &st, ls->body.p, ls->body.len, &tbs_len)) {
		finish(r, j, RP_OUT_FAIL_BAD, "%s", rp_status_msg(&st));
		return 0;
	}
	k = rp_keyring_find_id(r->kr, lic->key_id);
	j->key_idx = k;
	if (k < 0) {
		finish(r, j, RP_OUT_SKIP_UNKNOWN_KEY,
		       "its key is not in this store");
		return 0;
	}
	if (j->out_path[0] && !r->o->is_dry_run) {
		struct stat sb;

		if (fstatat(AT_FDCWD, j->out_path, &sb, AT_SYMLINK_NOFOLLOW) ==
		    0) {
			finish(r, j, RP_OUT_CURRENT, "already in the output");
			return 0;
		}
	}
	if ((size_t)k == r->active && !r->o->is_verify) {
		if (j->out_path[0] && !r->o->is_dry_run) {
			j->is_copy = 1; /* the mirror gets it as it is */
			return 1;
		}
		finish(r, j, RP_OUT_CURRENT, NULL);
		return 0;
	}
	if (r->kr->keys[k].state == RP_KEY_REVOKED ||
	    r->kr->keys[k].state == RP_KEY_DESTROYED) {
		finish(r, j, RP_OUT_SKIP_REVOKED, "its key is %s",
		       rp_key_state_name(r->kr->keys[k].state));
		return 0;
	}
	if (r->o->is_verify) {
		return 1;
	}
	if (!is_selected(r, &r->kr->keys[k])) {
		finish(r, j, RP_OUT_SKIP_NOT_SELECTED, "its key is %s",
		       rp_key_state_name(r->kr->keys[k].state));
		return 0;
	}
	if (r->o->is_dry_run) {
		finish(r, j, RP_OUT_WOULD_MOVE, NULL);
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

/* prepare checks the document fully and builds its new stanza and TBS */
/* check_tail: the payload ends in a final chunk that authenticates */
static enum rp_err check_tail(struct job *j, struct rp_status *st,
			      struct rp_stream *s, uint8_t *buf)
{
	const uint64_t start = j->d.hdr.header_len + RP_AGE_NONCE_LEN;
	const uint64_t payload = (uint64_t)j->d.sb.st_size - start;
	const uint64_t n = (payload + RP_STREAM_SEALED - 1) / RP_STREAM_SEALED;
	const uint64_t last_off = n ? (n - 1) * RP_STREAM_SEALED : 0;
	const size_t last_len = (size_t)(payload - last_off);
	size_t got = 0;
	enum rp_err err;

	if (j->lic.encoding == RP_ENC_NONE &&
	    payload != rp_stream_sealed_size(j->lic.plaintext_size)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "the payload is %llu bytes but its "
				      "license gives %llu: truncated or "
				      "extended",
				      (unsigned long long)payload,
				      (unsigned long long)rp_stream_sealed_size(
					      j->lic.plaintext_size));
	}
	if (last_len > RP_STREAM_SEALED) {
		return rp_status_fail(st, RP_ERR_FORMAT, "payload truncated");
	}
	err = rp_read_full(j->d.fd, st, NULL, buf, last_len,
			   (off_t)(start + last_off), &got);
	if (!err && got != last_len) {
		err = rp_status_fail(st, RP_ERR_IO, "short read");
	}
	if (!err) {
		err = rp_stream_init(s, st, RP_STREAM_OPEN, j->old_file_key,
				     j->d.nonce);
	}
	if (!err) {
		err = rp_stream_check_final(s, st, payload, buf, last_len);
	}
	rp_stream_fini(s);
	return err;
}

static int prepare(struct run *r, size_t worker, struct job *j,
		   struct rp_doc_info *info, struct rp_stream *vs,
		   uint8_t *vbuf)
{
	const struct rp_key_info *nk = &r->kr->keys[r->active];
	struct rp_status st = { 0 };
	const struct rp_status *bad;
	struct rp_license *lic = &j->lic;
	int has_fk = 0;
	EVP_PKEY *pub = NULL;
	struct rp_buf raw = { 0 };
	size_t off = 0, len = 0;
	unsigned int dl = 0;
	enum rp_err err;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk);
	bad = first_bad(info);
	if (bad && is_fatal(bad)) {
		halt(r, rp_status_msg(bad));
	}
	if (bad) {
		finish(r, j,
		       bad->err == RP_ERR_REVOKED ? RP_OUT_SKIP_REVOKED
		       : bad->err == RP_ERR_IO || bad->err == RP_ERR_HSM ||
				       bad->err == RP_ERR_CRYPTO
			       ? RP_OUT_FAIL_IO
			       : RP_OUT_FAIL_BAD,
		       "%s", rp_status_msg(bad));
		return 0;
	}
	/*
	 * rewrap copies the payload unread: check at least that it ends in
	 * its authentic final chunk (reencrypt checks every chunk)
	 */
	if (r->o->mode == RP_RUN_REWRAP && check_tail(j, &st, vs, vbuf)) {
		finish(r, j,
		       st.err == RP_ERR_IO ? RP_OUT_FAIL_IO : RP_OUT_FAIL_BAD,
		       "%s", rp_status_msg(&st));
		return 0;
	}
	if (r->o->mode == RP_RUN_REENCRYPT) {
		if (RAND_priv_bytes(j->file_key, sizeof(j->file_key)) != 1 ||
		    RAND_bytes(j->nonce, sizeof(j->nonce)) != 1) {
			finish(r, j, RP_OUT_FAIL_IO, "random bytes failed");
			return 0;
		}
	} else {
		memcpy(j->file_key, j->old_file_key, sizeof(j->file_key));
		memcpy(j->nonce, j->d.nonce, sizeof(j->nonce));
	}
	err = rp_store_pubkeys(r->s, &st, r->active, &pub, NULL, NULL);
	if (!err && nk->alg == RP_ALG_X25519) {
		uint8_t rcp[RP_X25519_LEN];
		size_t rl = sizeof(rcp);

		err = EVP_PKEY_get_raw_public_key(pub, rcp, &rl) == 1
			      ? rp_x25519_wrap(&j->rs, &st, rcp, j->file_key)
			      : rp_status_ossl(&st, RP_ERR_CRYPTO, "x25519");
	} else if (!err) {
		err = rp_sshrsa_wrap(&j->rs, &st, pub, j->file_key);
	}
	if (!err) {
		err = rp_recip_stanza_add(&raw, &j->rs, &off, &len);
	}
	if (err) {
		rp_buf_fini(&raw);
		finish(r, j, RP_OUT_FAIL_IO, "wrap: %s", rp_status_msg(&st));
		return 0;
	}
	/* the new license: same document, owner, template, size, encoding */
	memcpy(lic->key_id, nk->id, RP_KEY_ID_LEN);
	lic->issued_at = (uint64_t)time(NULL);
	EVP_Digest(raw.p + off, len, lic->stanza_digest, &dl, EVP_sha256(),
		   NULL);
	memcpy(lic->payload_nonce, j->nonce, RP_AGE_NONCE_LEN);
	rp_buf_fini(&raw);
	rp_buf_reset(&j->tbs);
	if (rp_license_encode_tbs(&j->tbs, &st, lic)) {
		finish(r, j, RP_OUT_FAIL_IO, "license: %s", rp_status_msg(&st));
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
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk);
	bad = first_bad(info);
	if (bad && is_fatal(bad)) {
		halt(r, rp_status_msg(bad));
	}
	if (bad) {
		finish(r, j,
		       bad->err == RP_ERR_REVOKED ? RP_OUT_SKIP_REVOKED
		       : bad->err == RP_ERR_IO || bad->err == RP_ERR_HSM
			       ? RP_OUT_FAIL_IO
			       : RP_OUT_FAIL_BAD,
		       "%s", rp_status_msg(bad));
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
		err = rp_status_fail(&st, RP_ERR_FORMAT,
				     "plaintext is %llu bytes, the license "
				     "says %llu",
				     (unsigned long long)total,
				     (unsigned long long)info->lic.plaintext_size);
	}
	rp_stream_fini(s);
	OPENSSL_cleanse(buf, COPY_BUF);
	if (err) {
		finish(r, j, err == RP_ERR_IO ? RP_OUT_FAIL_IO : RP_OUT_FAIL_BAD,
		       "%s", rp_status_msg(&st));
		return;
	}
	finish(r, j, RP_OUT_VERIFIED, NULL);
}

struct worker_arg {
	struct run *r;
	size_t index;
};

static void *worker_main(void *p)
{
	struct worker_arg *a = p;
	struct run *r = a->r;
	struct rp_doc_info *info = malloc(sizeof(*info));
	struct rp_stream *vs = calloc(1, sizeof(*vs));
	uint8_t *vbuf = malloc(COPY_BUF);
	struct job *j;

	while ((j = queue_pop(&r->q_work, NULL))) {
		if (!info || !vs || !vbuf) {
			finish(r, j, RP_OUT_FAIL_IO, "out of memory");
			continue;
		}
		if (is_halted(r)) {
			not_started(r, j);
			continue;
		}
		if (!classify(r, j)) {
			continue;
		}
		rp_test_crash_point("run:read");
		if (r->o->is_verify) {
			verify_doc(r, a->index, j, info, vs, vbuf);
			continue;
		}
		if (j->is_copy) {
			queue_push(&r->q_write, j); /* a batch of one */
			continue;
		}
		if (!prepare(r, a->index, j, info, vs, vbuf)) {
			continue;
		}
		queue_push(&r->q_sign, j);
	}
	free(info);
	free(vs);
	if (vbuf) {
		OPENSSL_cleanse(vbuf, COPY_BUF);
	}
	free(vbuf);
	return NULL;
}

/* the batch signer */

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

	if (is_halted(r)) {
		for (size_t i = 0; i < n; i++) {
			not_started(r, ss->batch[i]);
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
	if (err && is_fatal(&st)) {
		halt(r, rp_status_msg(&st));
	}
	if (!err) {
		rp_test_crash_point("run:signed");
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = ss->batch[i];
		struct rp_sigblock *sb = &j->lic.sig;

		if (err || rp_merkle_tree_path(&t, &st, sb->path, &sb->num_path,
					       i)) {
			finish(r, j, RP_OUT_FAIL_IO, "batch signature: %s",
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
		queue_push(&r->q_write, head);
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

static void *signer_main(void *p)
{
	struct run *r = p;
	struct signer_state ss;
	struct job *j;

	ss.batch = calloc(r->batch, sizeof(struct job *));
	ss.leaves = calloc(r->batch, sizeof(*ss.leaves));
	while ((j = queue_pop(&r->q_sign, NULL))) {
		struct timespec deadline;
		size_t n = 0;
		const unsigned ms = r->o->batch_ms ? r->o->batch_ms : 50;

		if (!ss.batch || !ss.leaves) {
			finish(r, j, RP_OUT_FAIL_IO, "out of memory");
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
		deadline.tv_sec += ms / 1000 + deadline.tv_nsec / 1000000000L;
		deadline.tv_nsec %= 1000000000L;
		ss.batch[n++] = j;
		while (n < r->batch &&
		       (j = queue_pop(&r->q_sign, &deadline))) {
			ss.batch[n++] = j;
		}
		sign_batch(r, &ss, n);
	}
	free(ss.batch);
	free(ss.leaves);
	return NULL;
}

/* the writer */

/*
 * A spare inode: an earlier document's inode, at a temporary name, to be
 * rewritten with the next document and swapped in with RENAME_EXCHANGE.
 * Replacing a file normally frees one inode and allocates another; on
 * ext4 without a journal the allocator then scans past every recently
 * freed inode, which costs more than the cryptography. Recycling them
 * keeps the number of inodes the run allocates at about one batch.
 */
struct spare {
	int fd;
	dev_t dev;
	char path[PATH_MAX];
};

struct writer {
	struct run *r;
	struct rp_stream *open_s, *seal_s;
	uint8_t *buf;
	struct job **batch;
	size_t n;
	struct io_uring ring;
	int has_ring;
	char (*dirs)[PATH_MAX];
	struct spare *spares; /* owned: up to 2 batches */
	size_t num_spares;
	int can_exchange; /* the file system takes RENAME_EXCHANGE */
};

struct reenc_sink {
	struct writer *w;
	struct job *j;
	struct rp_status *st;
};

static enum rp_err reenc_write(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;

	return rp_afile_write(&k->j->af, k->st, p, len);
}

static enum rp_err reenc_seal(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;

	return rp_stream_feed(k->w->seal_s, k->st, p, len, reenc_write, k);
}

static enum rp_err copy_payload(struct writer *w, struct job *j,
				struct rp_status *st)
{
	off_t in_off = (off_t)(j->d.hdr.header_len + RP_AGE_NONCE_LEN);
	const off_t end = j->d.sb.st_size;
	struct reenc_sink k = { w, j, st };
	enum rp_err err = RP_OK;

	if (w->r->o->mode == RP_RUN_REENCRYPT) {
		err = rp_stream_init(w->open_s, st, RP_STREAM_OPEN,
				     j->old_file_key, j->d.nonce);
		if (!err) {
			err = rp_stream_init(w->seal_s, st, RP_STREAM_SEAL,
					     j->file_key, j->nonce);
		}
		while (!err && in_off < end) {
			size_t n = 0;

			err = rp_read_full(j->d.fd, st, NULL, w->buf, COPY_BUF,
					   in_off, &n);
			if (!err && n == 0) {
				break;
			}
			in_off += (off_t)n;
			if (!err) {
				err = rp_stream_feed(w->open_s, st, w->buf, n,
						     reenc_seal, &k);
			}
		}
		if (!err) {
			err = rp_stream_finish(w->open_s, st, reenc_seal, &k);
		}
		if (!err) {
			err = rp_stream_finish(w->seal_s, st, reenc_write, &k);
		}
		rp_stream_fini(w->open_s);
		rp_stream_fini(w->seal_s);
		OPENSSL_cleanse(w->buf, COPY_BUF);
		return err;
	}
	/* rewrap: the payload bytes move unchanged, in the kernel if it can */
	while (in_off < end) {
		const long fault = rp_test_fault("io:copy");
		ssize_t n;

		if (fault > 0) {
			errno = (int)fault;
			n = -1;
		} else {
			n = copy_file_range(j->d.fd, &in_off, j->af.fd, NULL,
					    fault == RP_TEST_FAULT_SHORT
						    ? (size_t)(end - in_off + 1) / 2
						    : (size_t)(end - in_off),
					    0);
		}

		if (n > 0) {
			j->af.written += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			break;
		}
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP) {
			return rp_status_errno(st, errno, "cannot copy", NULL);
		}
		while (!err && in_off < end) {
			size_t got = 0;

			err = rp_read_full(j->d.fd, st, NULL, w->buf, COPY_BUF,
					   in_off, &got);
			if (!err && got == 0) {
				break;
			}
			in_off += (off_t)got;
			if (!err) {
				err = rp_afile_write(&j->af, st, w->buf, got);
			}
		}
		break;
	}
	if (!err && in_off != end) {
		err = rp_status_fail(st, RP_ERR_IO, "short copy");
	}
	return err;
}

/* take_spare gives the job a temporary file: a spare inode or a new one */
static enum rp_err take_spare(struct writer *w, struct job *j,
			      struct rp_status *st)
{
	for (size_t i = w->num_spares; i-- > 0;) {
		struct spare *sp = &w->spares[i];

		if (sp->dev != j->d.sb.st_dev) {
			continue;
		}
		if (ftruncate(sp->fd, 0) < 0 || lseek(sp->fd, 0, SEEK_SET) < 0) {
			close(sp->fd);
			unlink(sp->path);
		} else {
			memset(&j->af, 0, sizeof(j->af));
			j->af.fd = sp->fd;
			memcpy(j->af.tmp, sp->path, sizeof(j->af.tmp));
			snprintf(j->af.path, sizeof(j->af.path), "%s", j->path);
		}
		w->spares[i] = w->spares[--w->num_spares];
		if (j->af.fd >= 0 && j->af.tmp[0]) {
			return RP_OK;
		}
	}
	return rp_afile_open(&j->af, st, j->path, 0);
}

/*
 * keep_spare: after an exchange the old document's inode sits at the
 * temporary name; keep it for a later document if nothing else links to
 * it, else drop the name.
 */
static void keep_spare(struct writer *w, struct job *j)
{
	struct spare *sp;
	int fd;

	if (j->d.sb.st_nlink != 1 || w->num_spares == 2 * w->r->batch ||
	    (fd = open(j->af.tmp, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		unlink(j->af.tmp);
		return;
	}
	/*
	 * an inode with extended attributes (ACLs, labels) would hand them
	 * to another document: never reuse one
	 */
	if (flistxattr(fd, NULL, 0) != 0) {
		close(fd);
		unlink(j->af.tmp);
		return;
	}
	sp = &w->spares[w->num_spares++];
	sp->fd = fd;
	sp->dev = j->d.sb.st_dev;
	memcpy(sp->path, j->af.tmp, sizeof(sp->path));
}

/* make_parents creates the folders above `path` (0700) as needed */
static enum rp_err make_parents(struct rp_status *st, const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/') {
			continue;
		}
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
			return rp_status_errno(st, errno, "cannot create folder",
					       buf);
		}
		*p = '/';
	}
	return RP_OK;
}

/* copy_whole: --out for a document already current, byte for byte */
static enum rp_err copy_whole(struct writer *w, struct job *j,
			      struct rp_status *st)
{
	off_t in_off = 0;
	enum rp_err err = RP_OK;

	while (!err && in_off < j->d.sb.st_size) {
		size_t got = 0;

		err = rp_read_full(j->d.fd, st, NULL, w->buf, COPY_BUF, in_off,
				   &got);
		if (!err && !got) {
			break;
		}
		in_off += (off_t)got;
		if (!err) {
			err = rp_afile_write(&j->af, st, w->buf, got);
		}
	}
	if (!err && in_off != j->d.sb.st_size) {
		err = rp_status_fail(st, RP_ERR_IO, "short copy");
	}
	return err;
}

static enum rp_err write_one(struct writer *w, struct job *j,
			     struct rp_status *st)
{
	struct rp_buf hdr = { 0 }, lic = { 0 };
	const char *largs[] = { RP_LICENSE_STANZA_TYPE, RP_LICENSE_STANZA_ARG };
	const struct timespec times[2] = { j->d.sb.st_atim, j->d.sb.st_mtim };
	enum rp_err err;

	if (j->out_path[0]) {
		err = make_parents(st, j->out_path);
		if (!err) {
			err = rp_afile_open(&j->af, st, j->out_path, 1);
		}
		if (!err && j->is_copy) {
			err = copy_whole(w, j, st);
			goto meta;
		}
		if (err) {
			goto out;
		}
	}
	err = rp_license_encode(&lic, st, &j->lic);
	if (!err) {
		err = rp_age_header_begin(&hdr);
	}
	if (!err) {
		err = rp_recip_stanza_add(&hdr, &j->rs, NULL, NULL);
	}
	if (!err) {
		err = rp_age_header_add_stanza(&hdr, largs, 2, lic.p, lic.len,
					       NULL, NULL);
	}
	if (!err) {
		err = rp_age_header_finish(&hdr, st, j->file_key);
	}
	if (err) {
		rp_status_fail(st, err, "cannot build the new header");
		goto out;
	}
	if (!j->out_path[0]) {
		err = take_spare(w, j, st);
	}
	if (!err) {
		err = rp_afile_write(&j->af, st, hdr.p, hdr.len);
	}
	if (!err) {
		err = rp_afile_write(&j->af, st, j->nonce, sizeof(j->nonce));
	}
	if (!err) {
		err = copy_payload(w, j, st);
	}
meta:
	/* keep mode, owner and times */
	if (!err && (fchmod(j->af.fd, j->d.sb.st_mode & 07777) < 0 ||
		     (fchown(j->af.fd, j->d.sb.st_uid, j->d.sb.st_gid) < 0 &&
		      errno != EPERM) ||
		     futimens(j->af.fd, times) < 0)) {
		err = rp_status_errno(st, errno, "cannot keep the metadata",
				      NULL);
	}
	if (!err && w->r->o->durability == RP_DURABLE_EACH &&
	    fsync(j->af.fd) < 0) {
		err = rp_status_errno(st, errno, "cannot fsync", NULL);
	}
out:
	rp_buf_fini(&hdr);
	rp_buf_fini(&lic);
	return err;
}

/* is_unchanged: the path still holds the very file the run read */
static int is_unchanged(const struct job *j)
{
	struct stat now;

	return fstatat(AT_FDCWD, j->path, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	       now.st_dev == j->d.sb.st_dev && now.st_ino == j->d.sb.st_ino &&
	       now.st_size == j->d.sb.st_size &&
	       now.st_mtim.tv_sec == j->d.sb.st_mtim.tv_sec &&
	       now.st_mtim.tv_nsec == j->d.sb.st_mtim.tv_nsec &&
	       now.st_ctim.tv_sec == j->d.sb.st_ctim.tv_sec &&
	       now.st_ctim.tv_nsec == j->d.sb.st_ctim.tv_nsec;
}

/* ring_run submits the prepared SQEs and waits for all; res[i] per op */
static int ring_run(struct writer *w, size_t n, int *res)
{
	struct io_uring_cqe *cqe;

	if (io_uring_submit(&w->ring) < 0) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (io_uring_wait_cqe(&w->ring, &cqe) < 0) {
			return -1;
		}
		res[(size_t)io_uring_cqe_get_data64(cqe)] = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
	}
	return 0;
}

static void dir_of(char out[PATH_MAX], const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		snprintf(out, PATH_MAX, ".");
	} else if (slash == path) {
		snprintf(out, PATH_MAX, "/");
	} else {
		snprintf(out, PATH_MAX, "%.*s", (int)(slash - path), path);
	}
}

/* rename_failed fails the job; a read-only or full disk stops the run */
static void rename_failed(struct run *r, struct job *j, int e)
{
	j->out = RP_OUT_FAIL_IO;
	snprintf(j->reason, sizeof(j->reason), "cannot rename: %s",
		 strerror(e));
	if (is_fatal_errno(e)) {
		halt(r, j->reason);
	}
}

/* fault_rename: a test build's injected rename failure fails the job */
static int fault_rename(struct run *r, struct job *j)
{
	const long fault = rp_test_fault("io:rename");

	if (fault <= 0) {
		return 0;
	}
	rename_failed(r, j, (int)fault);
	return 1;
}

/*
 * ring_close_and_swap: through the ring, close every written temporary
 * file, then (after checking each source is unchanged) swap each in with
 * renameat2(RENAME_EXCHANGE), all submitted together. Jobs it could not
 * finish are left for the plain path (is_committed still 0).
 */
static void ring_close_and_swap(struct writer *w, int *res)
{
	const size_t n = w->n; /* the batch; ring_run leaves it */
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];
		struct io_uring_sqe *sqe;

		res[i] = 0;
		if (j->out != RP_OUT_MOVED || j->af.fd < 0) {
			continue;
		}
		sqe = io_uring_get_sqe(&w->ring);
		io_uring_prep_close(sqe, j->af.fd);
		io_uring_sqe_set_data64(sqe, i);
		k++;
	}
	if (ring_run(w, k, res) < 0) {
		return; /* the plain path closes what is still open */
	}
	k = 0;
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];
		struct io_uring_sqe *sqe;

		if (j->out != RP_OUT_MOVED || j->af.fd < 0) {
			continue;
		}
		j->af.fd = -1;
		if (rp_test_fault("io:close") > 0) {
			res[i] = -EIO;
		}
		if (res[i] < 0) {
			j->out = RP_OUT_FAIL_IO;
			snprintf(j->reason, sizeof(j->reason),
				 "cannot close: %s", strerror(-res[i]));
			continue;
		}
		if (!is_unchanged(j)) {
			j->out = RP_OUT_FAIL_CHANGED;
			snprintf(j->reason, sizeof(j->reason),
				 "the file changed while the run read it");
			continue;
		}
		if (!w->can_exchange || j->out_path[0]) {
			continue;
		}
		if (fault_rename(w->r, j)) {
			continue;
		}
		sqe = io_uring_get_sqe(&w->ring);
		io_uring_prep_renameat(sqe, AT_FDCWD, j->af.tmp, AT_FDCWD,
				       j->path, RP_RENAME_EXCHANGE);
		io_uring_sqe_set_data64(sqe, i);
		res[i] = 1; /* submitted */
		k++;
	}
	if (!k) {
		return;
	}
	{
		int got[1024];

		if (ring_run(w, k, got) < 0) {
			return;
		}
		for (size_t i = 0; i < n; i++) {
			struct job *j = w->batch[i];

			if (res[i] != 1) {
				continue;
			}
			if (got[i] == 0) {
				j->is_exchanged = 1;
				j->af.is_committed = 1;
			} else if (got[i] == -EINVAL || got[i] == -ENOSYS) {
				w->can_exchange = 0;
			}
		}
	}
}

/* ring_sync_dirs fsyncs the batch's folders together through the ring */
/*
 * dir_synced takes the result of a folder's fsync: a folder that did not
 * reach the disk holds renames a power cut may undo, and a disk that
 * fails there will fail the next batch too, so the run stops
 */
static void dir_synced(struct writer *w, const char *dir, int e)
{
	char why[320];
	const long fault = rp_test_fault("io:dirsync");

	if (fault > 0) {
		e = (int)fault;
	}
	if (!e) {
		return;
	}
	snprintf(why, sizeof(why),
		 "cannot fsync the folder '%s': %s (its documents are "
		 "replaced, but a power cut may undo it)",
		 dir, strerror(e));
	halt(w->r, why);
}

static void ring_sync_dirs(struct writer *w, size_t num_dirs)
{
	int fds[2048], res[2048];
	size_t k = 0;

	for (size_t d = 0; d < num_dirs && d < RP_ARRAY_LEN(fds); d++) {
		fds[d] = open(w->dirs[d], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fds[d] >= 0) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

			io_uring_prep_fsync(sqe, fds[d], 0);
			io_uring_sqe_set_data64(sqe, d);
			k++;
		}
	}
	if (ring_run(w, k, res) < 0) {
		for (size_t d = 0; d < num_dirs && d < RP_ARRAY_LEN(fds); d++) {
			if (fds[d] >= 0) {
				res[d] = fsync(fds[d]) < 0 ? -errno : 0;
			}
		}
	}
	for (size_t d = 0; d < num_dirs && d < RP_ARRAY_LEN(fds); d++) {
		/* a folder it may not open (no read right) is not synced */
		if (fds[d] >= 0) {
			dir_synced(w, w->dirs[d], res[d] < 0 ? -res[d] : 0);
			close(fds[d]);
		}
	}
}

static void commit_batch(struct writer *w)
{
	const size_t n = w->n; /* the batch; ring_run leaves it */
	struct run *r = w->r;
	int res[1024];
	size_t num_dirs = 0;
	const int use_ring = w->has_ring && n <= RP_ARRAY_LEN(res);

	/* 1. durable: every temporary file of the batch reaches the disk */
	if (r->o->durability == RP_DURABLE_BATCH) {
		if (use_ring) {
			size_t k = 0;

			for (size_t i = 0; i < n; i++) {
				struct io_uring_sqe *sqe;

				if (w->batch[i]->af.fd < 0) {
					res[i] = 0;
					continue;
				}
				sqe = io_uring_get_sqe(&w->ring);
				io_uring_prep_fsync(sqe, w->batch[i]->af.fd, 0);
				io_uring_sqe_set_data64(sqe, i);
				k++;
			}
			if (ring_run(w, k, res) < 0) {
				for (size_t i = 0; i < n; i++) {
					res[i] = -EIO;
				}
			}
		} else {
			for (size_t i = 0; i < n; i++) {
				res[i] = w->batch[i]->af.fd < 0 ||
						 fsync(w->batch[i]->af.fd) == 0
					 ? 0
					 : -errno;
			}
		}
		for (size_t i = 0; i < n; i++) {
			struct job *j = w->batch[i];
			const long fault = j->af.fd >= 0
						   ? rp_test_fault("io:fsync")
						   : 0;

			if (fault > 0) {
				res[i] = -(int)fault;
			}
			if (res[i] < 0 && j->out == RP_OUT_MOVED) {
				j->out = RP_OUT_FAIL_IO;
				snprintf(j->reason, sizeof(j->reason),
					 "cannot fsync: %s", strerror(-res[i]));
				if (is_fatal_errno(-res[i])) {
					halt(r, j->reason);
				}
			}
		}
		rp_test_crash_point("run:synced");
	}
	rp_test_pause_point("run:before-commit");
	/* 2. the source is what we read, then rename over it */
	if (use_ring) {
		ring_close_and_swap(w, res);
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->out != RP_OUT_MOVED || j->af.is_committed) {
			continue;
		}
		if (j->af.fd >= 0) {
			int cerr = close(j->af.fd) < 0 ? errno : 0;

			if (!cerr && rp_test_fault("io:close") > 0) {
				cerr = EIO;
			}
			if (cerr) {
				j->out = RP_OUT_FAIL_IO;
				snprintf(j->reason, sizeof(j->reason),
					 "cannot close: %s", strerror(cerr));
			}
		}
		j->af.fd = -1;
		if (j->out == RP_OUT_MOVED && !is_unchanged(j)) {
			j->out = RP_OUT_FAIL_CHANGED;
			snprintf(j->reason, sizeof(j->reason),
				 "the file changed while the run read it");
		}
		j->is_exchanged = 0;
		if (j->out == RP_OUT_MOVED && j->out_path[0]) {
			/* the mirror never replaces a file that is there */
			if (link(j->af.tmp, j->out_path) < 0) {
				j->out = RP_OUT_FAIL_IO;
				snprintf(j->reason, sizeof(j->reason),
					 "cannot create the output: %s",
					 strerror(errno));
			} else {
				unlink(j->af.tmp);
				j->af.is_committed = 1;
				if (j->is_copy) {
					j->out = RP_OUT_CURRENT;
				}
			}
			continue;
		}
		if (j->out == RP_OUT_MOVED && fault_rename(r, j)) {
			continue;
		}
		if (j->out == RP_OUT_MOVED && w->can_exchange) {
			/* atomic: the path now holds the new document */
			if (syscall(SYS_renameat2, AT_FDCWD, j->af.tmp,
				    AT_FDCWD, j->path, RP_RENAME_EXCHANGE) ==
			    0) {
				j->is_exchanged = 1;
				j->af.is_committed = 1;
				rp_test_crash_point("run:renamed-one");
				continue;
			}
			if (errno == EINVAL || errno == ENOSYS) {
				w->can_exchange = 0;
			}
		}
		if (j->out == RP_OUT_MOVED &&
		    rename(j->af.tmp, j->path) < 0) {
			rename_failed(r, j, errno);
		}
		if (j->out == RP_OUT_MOVED) {
			j->af.is_committed = 1;
		}
		rp_test_crash_point("run:renamed-one");
	}
	rp_test_crash_point("run:renamed");
	/* 3. the renames reach the disk: each folder once */
	if (r->o->durability != RP_DURABLE_NONE) {
		for (size_t i = 0; i < n; i++) {
			char d[PATH_MAX];
			size_t k;

			if (!w->batch[i]->af.is_committed) {
				continue;
			}
			for (int which = 0; which < 2; which++) {
				if (which && !w->batch[i]->is_exchanged) {
					break;
				}
				dir_of(d, which ? w->batch[i]->af.tmp
						: target(w->batch[i]));
				for (k = 0; k < num_dirs && strcmp(w->dirs[k], d);
				     k++) {
				}
				if (k == num_dirs) {
					memcpy(w->dirs[num_dirs++], d,
					       PATH_MAX);
				}
			}
		}
		if (use_ring) {
			ring_sync_dirs(w, num_dirs);
		} else {
			for (size_t k = 0; k < num_dirs; k++) {
				const int fd = open(w->dirs[k],
						    O_RDONLY | O_DIRECTORY |
							    O_CLOEXEC);

				if (fd >= 0) {
					dir_synced(w, w->dirs[k],
						   fsync(fd) < 0 ? errno : 0);
					close(fd);
				}
			}
		}
	}
	rp_test_crash_point("run:dirs-synced");
	/* the renames are durable: the old inodes may now be rewritten */
	for (size_t i = 0; i < n; i++) {
		if (w->batch[i]->is_exchanged) {
			keep_spare(w, w->batch[i]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		/* the reason is already in j->reason (it must not format itself) */
		finish(r, j, j->out, NULL);
	}
	w->n = 0;
}

static void *writer_main(void *p)
{
	struct writer *w = p;
	struct job *head;

	while ((head = queue_pop(&w->r->q_write, NULL))) {
		for (struct job *j = head, *next; j; j = next) {
			struct rp_status st = { 0 };

			next = j->batch_next;
			if (write_one(w, j, &st)) {
				if (is_fatal(&st)) {
					halt(w->r, rp_status_msg(&st));
				}
				j->out = st.err == RP_ERR_IO ? RP_OUT_FAIL_IO
							     : RP_OUT_FAIL_BAD;
				snprintf(j->reason, sizeof(j->reason), "%s",
					 rp_status_msg(&st));
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

static void snapshot(struct run *r, struct rp_run_stats_view *v)
{
	struct timespec now;

	pthread_mutex_lock(&r->mu);
	*v = r->stats;
	pthread_mutex_unlock(&r->mu);
	clock_gettime(CLOCK_MONOTONIC, &now);
	v->seconds = (double)(now.tv_sec - r->start.tv_sec) +
		     (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
}

static void *progress_main(void *p)
{
	struct run *r = p;

	for (;;) {
		const struct timespec ts = { 0, 500 * 1000 * 1000 };
		struct rp_run_stats_view v;
		int is_done;

		nanosleep(&ts, NULL);
		pthread_mutex_lock(&r->mu);
		is_done = r->is_done;
		pthread_mutex_unlock(&r->mu);
		if (is_done) {
			break;
		}
		snapshot(r, &v);
		r->o->progress(r->o->progress_arg, &v);
	}
	return NULL;
}

/*
 * count_main walks the trees a second time, counting files only, so the
 * progress display can give an ETA; it stops early when the run ends.
 */
static void *count_main(void *p)
{
	struct run *r = p;
	struct rp_status st = { 0 };
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	uint64_t n = 0;
	int is_done = 0;

	if (rp_walk_new(&wk, &st, r->o->roots, r->o->num_roots, 0)) {
		return NULL;
	}
	while (!is_done && !rp_walk_next(wk, &st, &e) &&
	       e.kind != RP_WALK_END) {
		if (r->o->shard_n &&
		    XXH64(e.rel, strlen(e.rel), 0) % r->o->shard_n !=
			    r->o->shard_i) {
			continue;
		}
		if (++n % 4096 == 0) {
			pthread_mutex_lock(&r->mu);
			r->stats.num_total = n;
			is_done = r->is_done;
			pthread_mutex_unlock(&r->mu);
		}
	}
	pthread_mutex_lock(&r->mu);
	if (!r->is_done) {
		r->stats.num_total = n;
		r->stats.is_total_known = 1;
	}
	pthread_mutex_unlock(&r->mu);
	rp_walk_free(wk);
	return NULL;
}

static int is_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* out_path: DIR/REL, or DIR/ROOTNAME/REL when there are several roots */
static int out_path(const struct run *r, struct job *j,
		    const struct rp_walk_entry *e)
{
	const char *root = r->o->roots[e->root];
	const char *base = strrchr(root, '/');
	char name[PATH_MAX];
	int n;

	snprintf(name, sizeof(name), "%s", base && base[1] ? base + 1 : root);
	if (r->o->num_roots > 1) {
		n = snprintf(j->out_path, sizeof(j->out_path), "%s/%s/%s",
			     r->o->out_dir, name, e->rel);
	} else {
		n = snprintf(j->out_path, sizeof(j->out_path), "%s/%s",
			     r->o->out_dir, e->rel);
	}
	return n < 0 || (size_t)n >= sizeof(j->out_path);
}

/* read ahead: the walker opens, stats and reads a batch through the ring */

static void stat_from_statx(struct stat *sb, const struct statx *x)
{
	memset(sb, 0, sizeof(*sb));
	sb->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
	sb->st_ino = x->stx_ino;
	sb->st_mode = x->stx_mode;
	sb->st_nlink = x->stx_nlink;
	sb->st_uid = x->stx_uid;
	sb->st_gid = x->stx_gid;
	sb->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
	sb->st_size = (off_t)x->stx_size;
	sb->st_blksize = (blksize_t)x->stx_blksize;
	sb->st_blocks = (blkcnt_t)x->stx_blocks;
	sb->st_atim.tv_sec = x->stx_atime.tv_sec;
	sb->st_atim.tv_nsec = x->stx_atime.tv_nsec;
	sb->st_mtim.tv_sec = x->stx_mtime.tv_sec;
	sb->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
	sb->st_ctim.tv_sec = x->stx_ctime.tv_sec;
	sb->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

/* rd_wait collects `n` completions: res[user data] */
static int rd_wait(struct run *r, size_t n, int *res)
{
	struct io_uring_cqe *cqe;

	if (io_uring_submit_and_wait(&r->rd_ring, (unsigned)n) < 0) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (io_uring_wait_cqe(&r->rd_ring, &cqe) < 0) {
			return -1;
		}
		res[io_uring_cqe_get_data64(cqe)] = cqe->res;
		io_uring_cqe_seen(&r->rd_ring, cqe);
	}
	return 0;
}

/*
 * read_ahead opens the batch's files (one submission), then stats each
 * and reads its first RP_DOC_HDR_PREFIX bytes (a second one), so a batch
 * costs two system calls instead of three per file. A file any step
 * failed for is left to the worker's plain path, which meets the same
 * error and reports it the one way.
 */
static void read_ahead(struct run *r, struct job **js, size_t n)
{
	struct statx stx[RP_READ_AHEAD];
	int res[2 * RP_READ_AHEAD];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->rd_ring);

		io_uring_prep_openat(sqe, AT_FDCWD, js[i]->path,
				     O_RDONLY | O_CLOEXEC | O_NONBLOCK |
					     O_NOFOLLOW,
				     0);
		io_uring_sqe_set_data64(sqe, i);
	}
	if (rd_wait(r, n, res) < 0) {
		return; /* nothing opened that we know of: the plain path */
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = js[i];
		struct io_uring_sqe *sqe;

		if (res[i] < 0) {
			continue;
		}
		j->pre_fd = res[i];
		sqe = io_uring_get_sqe(&r->rd_ring);
		io_uring_prep_statx(sqe, j->pre_fd, "",
				    AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
				    STATX_BASIC_STATS, &stx[i]);
		io_uring_sqe_set_data64(sqe, i);
		sqe = io_uring_get_sqe(&r->rd_ring);
		if (r->has_rd_fixed) {
			io_uring_prep_read_fixed(sqe, j->pre_fd, j->pre,
						 RP_DOC_HDR_PREFIX, 0, 0);
		} else {
			io_uring_prep_read(sqe, j->pre_fd, j->pre,
					   RP_DOC_HDR_PREFIX, 0);
		}
		io_uring_sqe_set_data64(sqe, RP_READ_AHEAD + i);
		k += 2;
	}
	if (!k) {
		return;
	}
	if (rd_wait(r, k, res) < 0) {
		for (size_t i = 0; i < n; i++) {
			res[i] = -EIO;
		}
	}
	k = 0; /* now: the documents read ahead */
	for (size_t i = 0; i < n; i++) {
		struct job *j = js[i];

		if (j->pre_fd < 0) {
			continue;
		}
		if (res[i] < 0 || res[RP_READ_AHEAD + i] < 0) {
			close(j->pre_fd);
			j->pre_fd = -1;
			continue;
		}
		stat_from_statx(&j->pre_sb, &stx[i]);
		j->pre_len = (size_t)res[RP_READ_AHEAD + i];
		k++;
	}
	pthread_mutex_lock(&r->mu);
	r->stats.read_ahead += k;
	pthread_mutex_unlock(&r->mu);
}

/* rd_flush reads the pending batch ahead and hands it to the workers */
static void rd_flush(struct run *r, struct job **pending, size_t *n)
{
	if (!*n) {
		return;
	}
	read_ahead(r, pending, *n);
	for (size_t i = 0; i < *n; i++) {
		queue_push(&r->q_work, pending[i]);
	}
	*n = 0;
}

/* rd_init sets up the walker's ring and its registered buffer pool */
static void rd_init(struct run *r)
{
	const size_t len = r->num_jobs * RP_DOC_HDR_PREFIX;
	struct iovec iov;

	if (r->o->io != RP_IO_URING ||
	    io_uring_queue_init(2 * RP_READ_AHEAD, &r->rd_ring, 0) < 0) {
		return;
	}
	r->rd_pool = aligned_alloc(4096, len);
	if (!r->rd_pool) {
		io_uring_queue_exit(&r->rd_ring);
		return;
	}
	r->has_rd_ring = 1;
	for (size_t i = 0; i < r->num_jobs; i++) {
		r->jobs[i].pre = r->rd_pool + i * RP_DOC_HDR_PREFIX;
	}
	/* one fixed buffer for the pool; plain reads if it may not pin */
	iov.iov_base = r->rd_pool;
	iov.iov_len = len;
	r->has_rd_fixed = io_uring_register_buffers(&r->rd_ring, &iov, 1) == 0;
}

static void rd_fini(struct run *r)
{
	if (r->has_rd_ring) {
		io_uring_queue_exit(&r->rd_ring);
		r->has_rd_ring = 0;
	}
	if (r->rd_pool) {
		OPENSSL_cleanse(r->rd_pool, r->num_jobs * RP_DOC_HDR_PREFIX);
	}
	free(r->rd_pool);
	r->rd_pool = NULL;
}

/* the walk, in the caller's thread */

static enum rp_err walk(struct run *r, struct rp_status *st)
{
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	struct job *pending[RP_READ_AHEAD];
	size_t num_pending = 0;
	enum rp_err err;

	err = rp_walk_new(&wk, st, r->o->roots, r->o->num_roots,
			  RP_WALK_REPORT_TMP);
	while (!err) {
		struct job *j;

		if ((r->o->stop && *r->o->stop) || is_halted(r)) {
			break;
		}
		err = rp_walk_next(wk, st, &e);
		if (err || e.kind == RP_WALK_END) {
			break;
		}
		if (r->o->shard_n &&
		    XXH64(e.rel, strlen(e.rel), 0) % r->o->shard_n !=
			    r->o->shard_i) {
			continue;
		}
		if (e.kind == RP_WALK_SKIP && e.why == RP_WALK_SKIP_TMP) {
			/*
			 * a killed run's leftover: never a document. One made
			 * since this run started is this run's own (a writer's
			 * temporary file or spare inode): never touch it.
			 */
			if (!r->o->is_dry_run && !r->o->is_verify &&
			    is_before(&e.sb.st_ctim, &r->started) &&
			    unlink(e.path) == 0) {
				pthread_mutex_lock(&r->mu);
				r->stats.tmp_removed++;
				pthread_mutex_unlock(&r->mu);
			}
			continue;
		}
		pthread_mutex_lock(&r->mu);
		r->stats.num_seen++;
		pthread_mutex_unlock(&r->mu);
		j = job_get(r);
		if (snprintf(j->path, sizeof(j->path), "%s", e.path) >=
		    (int)sizeof(j->path)) {
			finish(r, j, RP_OUT_SKIP_NOT_FILE, "path too long");
			continue;
		}
		if (e.kind == RP_WALK_SKIP) {
			finish(r, j, RP_OUT_SKIP_NOT_FILE, "%s", e.reason);
			continue;
		}
		j->size = (uint64_t)e.sb.st_size;
		if (r->o->out_dir && out_path(r, j, &e)) {
			finish(r, j, RP_OUT_SKIP_NOT_FILE,
			       "output path too long");
			continue;
		}
		if (!r->has_rd_ring) {
			queue_push(&r->q_work, j);
			continue;
		}
		pending[num_pending++] = j;
		if (num_pending == RP_ARRAY_LEN(pending)) {
			rd_flush(r, pending, &num_pending);
		}
	}
	rd_flush(r, pending, &num_pending);
	rp_walk_free(wk);
	return err;
}

static void run_fini(struct run *r)
{
	for (size_t i = 0; r->jobs && i < r->num_jobs; i++) {
		rp_buf_fini(&r->jobs[i].tbs);
	}
	if (r->jobs) {
		OPENSSL_cleanse(r->jobs, r->num_jobs * sizeof(*r->jobs));
	}
	free(r->jobs);
	queue_fini(&r->q_work);
	queue_fini(&r->q_sign);
	queue_fini(&r->q_write);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->pool_mu);
	pthread_cond_destroy(&r->pool_cv);
}

/* writer_init: `w` is zeroed by the caller; writer_fini frees it after */
static enum rp_err writer_init(struct writer *w, struct run *r,
			       struct rp_status *st)
{
	w->r = r;
	w->open_s = malloc(sizeof(*w->open_s));
	w->seal_s = malloc(sizeof(*w->seal_s));
	w->buf = malloc(COPY_BUF);
	w->batch = calloc(r->batch, sizeof(struct job *));
	w->dirs = malloc(2 * r->batch * sizeof(*w->dirs));
	w->spares = calloc(2 * r->batch, sizeof(*w->spares));
	w->can_exchange = 1;
	if (!w->open_s || !w->seal_s || !w->buf || !w->batch || !w->dirs ||
	    !w->spares) {
		/* the caller's writer_fini frees what was allocated */
		rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		return RP_ERR_NOMEM;
	}
	memset(w->open_s, 0, sizeof(*w->open_s));
	memset(w->seal_s, 0, sizeof(*w->seal_s));
	if (r->o->io == RP_IO_URING) {
		/* a batch's folders can be twice its documents */
		const int rc = io_uring_queue_init(2 * (unsigned)r->batch,
						   &w->ring,
						   0);

		if (rc < 0) {
			fprintf(stderr,
				"reprotect: io_uring is not available (%s): "
				"using plain blocking I/O\n",
				strerror(-rc));
		} else {
			w->has_ring = 1;
		}
	}
	r->use_uring = w->has_ring;
	return RP_OK;
}

static void writer_fini(struct writer *w)
{
	for (size_t i = 0; i < w->num_spares; i++) {
		close(w->spares[i].fd);
		unlink(w->spares[i].path);
	}
	free(w->spares);
	if (w->has_ring) {
		io_uring_queue_exit(&w->ring);
	}
	free(w->open_s);
	free(w->seal_s);
	if (w->buf) {
		OPENSSL_cleanse(w->buf, COPY_BUF);
	}
	free(w->buf);
	free(w->batch);
	free(w->dirs);
}

enum rp_err rp_run(struct rp_store *s, struct rp_status *st,
		   const struct rp_run_opts *o, struct rp_run_result *res)
{
	struct run r;
	struct writer w[RP_RUN_WRITERS];
	pthread_t *workers = NULL, signer, writer[RP_RUN_WRITERS], progress;
	pthread_t counter;
	int has_counter = 0;
	struct worker_arg *args = NULL;
	size_t num_started = 0;
	int has_signer = 0, has_writer[RP_RUN_WRITERS] = { 0 };
	int has_progress = 0, has_writers = 1;
	long active;
	enum rp_err err;

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	memset(w, 0, sizeof(w));
	r.s = s;
	r.o = o;
	r.kr = rp_store_keyring(s);
	active = rp_keyring_active(r.kr);
	if (active < 0) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "no active key to move documents to: "
				      "run 'reprotect rekey' first");
	}
	r.active = (size_t)active;
	r.num_workers = o->jobs ? o->jobs : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
	if (!r.num_workers) {
		r.num_workers = 1;
	}
	r.batch = o->batch ? o->batch : 64;
	if (r.batch > 1024) {
		r.batch = 1024;
	}
	/* what the stages hold at most, and the walker's read-ahead batch */
	r.num_jobs = (3 + 2 * RP_RUN_WRITERS) * r.batch +
		     4 * r.num_workers + 8 + RP_READ_AHEAD;
	pthread_mutex_init(&r.mu, NULL);
	pthread_mutex_init(&r.pool_mu, NULL);
	pthread_cond_init(&r.pool_cv, NULL);
	r.jobs = calloc(r.num_jobs, sizeof(*r.jobs));
	r.keys = calloc(r.kr->num_keys + 1, sizeof(*r.keys));
	if (!r.jobs || !r.keys || !queue_init(&r.q_work, r.num_workers * 2) ||
	    !queue_init(&r.q_sign, r.batch * 2) ||
	    !queue_init(&r.q_write, 2 * RP_RUN_WRITERS)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r.num_jobs; i++) {
		r.jobs[i].next_free = r.free_list;
		r.free_list = &r.jobs[i];
	}
	for (size_t k = 0; k < r.kr->num_keys; k++) {
		memcpy(r.keys[k].id, r.kr->keys[k].id, RP_KEY_ID_LEN);
		r.keys[k].state = r.kr->keys[k].state;
	}
	/* one backend worker per crypto worker, plus one for the signer */
	err = rp_store_set_workers(s, st, r.num_workers + 1);
	if (err) {
		goto out;
	}
	for (size_t i = 0; !err && i < RP_RUN_WRITERS; i++) {
		err = writer_init(&w[i], &r, st);
	}
	if (err) {
		goto out;
	}
	res->io_used = r.use_uring ? "uring" : "sync";
	rd_init(&r);
	clock_gettime(CLOCK_MONOTONIC, &r.start);
	/* the coarse clock is the one file times come from */
	clock_gettime(CLOCK_REALTIME_COARSE, &r.started);
	workers = calloc(r.num_workers, sizeof(*workers));
	args = calloc(r.num_workers, sizeof(*args));
	if (!workers || !args) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (; num_started < r.num_workers; num_started++) {
		args[num_started].r = &r;
		args[num_started].index = num_started;
		if (pthread_create(&workers[num_started], NULL, worker_main,
				   &args[num_started])) {
			break;
		}
	}
	has_signer = !pthread_create(&signer, NULL, signer_main, &r);
	for (size_t i = 0; i < RP_RUN_WRITERS; i++) {
		has_writer[i] = !pthread_create(&writer[i], NULL, writer_main,
						&w[i]);
		has_writers &= has_writer[i];
	}
	if (o->progress) {
		has_progress = !pthread_create(&progress, NULL, progress_main,
					       &r);
		has_counter = !pthread_create(&counter, NULL, count_main, &r);
	}
	if (num_started < r.num_workers || !has_signer || !has_writers) {
		err = rp_status_fail(st, RP_ERR_IO, "cannot start threads");
	} else {
		err = walk(&r, st);
	}
	queue_close(&r.q_work);
	for (size_t i = 0; i < num_started; i++) {
		pthread_join(workers[i], NULL);
	}
	queue_close(&r.q_sign);
	if (has_signer) {
		pthread_join(signer, NULL);
	}
	queue_close(&r.q_write);
	for (size_t i = 0; i < RP_RUN_WRITERS; i++) {
		if (has_writer[i]) {
			pthread_join(writer[i], NULL);
		}
	}
	pthread_mutex_lock(&r.mu);
	r.is_done = 1;
	pthread_mutex_unlock(&r.mu);
	if (has_progress) {
		pthread_join(progress, NULL);
	}
	if (has_counter) {
		pthread_join(counter, NULL);
	}
	snapshot(&r, &res->total);
	res->was_stopped = (o->stop && *o->stop) || r.halted;
	if (r.halted) {
		snprintf(res->stop_reason, sizeof(res->stop_reason), "%s",
			 r.halt_reason);
	} else if (res->was_stopped) {
		snprintf(res->stop_reason, sizeof(res->stop_reason),
			 "stopped by a signal");
	}
	rp_key_id_hex(res->active_key, r.kr->keys[r.active].id);
	res->num_keys = r.kr->num_keys + 1;
	res->keys = r.keys;
	r.keys = NULL;
out:
	free(workers);
	free(args);
	for (size_t i = 0; i < RP_RUN_WRITERS; i++) {
		writer_fini(&w[i]);
	}
	free(r.keys);
	rd_fini(&r);
	run_fini(&r);
	return err;
}

void rp_run_result_fini(struct rp_run_result *r)
{
	free(r->keys);
	memset(r, 0, sizeof(*r));
}
