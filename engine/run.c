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
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
#include "doc_header.h"
#include "doc_internal.h"
#include "merkle.h"
#include "ring.h"
#include "rp_buf.h"
#include "rp_ossl.h"
#include "rp_testhook.h"
#include "wal.h"
#include "walk.h"
#include "zcodec.h"

#define COPY_BUF	       (256 * 1024)
#define XATTR_LIST     (64 * 1024) /* of COPY_BUF: the names; the rest: a value */
#define RP_RUN_WRITERS 2 /* file creation and renames wait on the disk */
#define RP_READ_AHEAD  32 /* documents the walker opens and reads at once */
#define RP_FD_RESERVE  32 /* descriptors kept for the store, rings, walk */
#define RP_FD_PER_JOB  4  /* a job's most: document, new file, its lock, folder */

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
	[RP_OUT_SKIP_BUSY] = "skipped-busy",
	[RP_OUT_SKIP_CANNOT_KEEP] = "skipped-cannot-keep",
};

const char *rp_outcome_name(enum rp_outcome o)
{
	return (unsigned)o < RP_OUT_NUM ? outcome_names[o] : "unknown";
}

/*
 * A folder the run works in, open: the walker's (a document's folder, for
 * its open, temporary file, rename and fsync) or the mirror's. Shared by
 * the jobs in it, closed when the last one lets go.
 */
struct folder {
	int fd;
	unsigned refs;
};

struct job {
	struct job *next_free;
	char path[PATH_MAX];	 /* for people: the journal, messages */
	struct folder *dir;	 /* the folder it is in */
	const char *name;	 /* its name there (in path) */
	char out_path[PATH_MAX]; /* --out: where it goes; "" in place */
	struct folder *odir;	 /* --out: the mirror folder it goes to */
	const char *oname;	 /* --out: its name there (in out_path) */
	size_t out_rel;		 /* --out: out_path + out_rel is below DIR */
	int is_copy;		 /* --out: copied as it is (already current) */
	int is_locked;		 /* d.fd holds the document's lock */
	int tmp_lock;		 /* holds the new file's lock until renamed */
	/*
	 * in place: the new header overwrites the old one through wfd (the
	 * document opened for writing); new_hdr is exactly as long. ip_can:
	 * classify expects it (a rewrap to a key of the same kind of a
	 * document with slack); ip_done: its header was written
	 */
	int ip_can, ip_done;
	int wfd;
	struct rp_buf new_hdr;
	enum rp_outcome out;
	char reason[320];
	long key_idx; /* the document's key, -1: unknown */
	uint64_t size;
	struct job *batch_next; /* the next job of its signed batch */
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
	/*
	 * the key states as last read from disk (a life-cycle command in
	 * another process may change them during the run); byte k for key
	 * k, read and written atomically
	 */
	uint8_t *state_now;
	int out_fd;	  /* --out: the mirror's root folder, else -1 */
	size_t ra_n;	  /* documents read ahead at once (<= RP_READ_AHEAD) */
	/* the walker's ring: opens, stats and first reads, a batch at once */
	struct rp_ring rd_ring;
	int has_rd_ring, has_rd_fixed;
	uint8_t *rd_pool; /* RP_DOC_HDR_PREFIX per job, registered */
	/*
	 * in place: the (device, inode) of each document with several names
	 * the run has taken (open addressing, under mu): its other names
	 * see the new header once it is written
	 */
	struct inode_key *linked;
	size_t linked_cap, linked_len;
	/* per worker: the last batch signature that verified */
	struct rp_sig_cache *sigs;
};

struct inode_key {
	dev_t dev;
	ino_t ino;
	int is_used;
};

/*
 * claim_inode: 1 if this run took the inode already (under another name),
 * else records it and returns 0; -1 without memory
 */
static int claim_inode(struct run *r, dev_t dev, ino_t ino)
{
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&r->mu);
	if (2 * (r->linked_len + 1) > r->linked_cap) {
		const size_t cap = r->linked_cap ? 2 * r->linked_cap : 64;
		struct inode_key *t = calloc(cap, sizeof(*t));

		if (!t) {
			ret = -1;
			goto out;
		}
		for (size_t k = 0; k < r->linked_cap; k++) {
			const struct inode_key *e = &r->linked[k];

			if (!e->is_used) {
				continue;
			}
			i = (size_t)(e->ino ^ e->dev * 0x9e3779b97f4a7c15ULL) &
			    (cap - 1);
			while (t[i].is_used) {
				i = (i + 1) & (cap - 1);
			}
			t[i] = *e;
		}
		free(r->linked);
		r->linked = t;
		r->linked_cap = cap;
	}
	i = (size_t)(ino ^ dev * 0x9e3779b97f4a7c15ULL) & (r->linked_cap - 1);
	while (r->linked[i].is_used) {
		if (r->linked[i].dev == dev && r->linked[i].ino == ino) {
			ret = 1;
			goto out;
		}
		i = (i + 1) & (r->linked_cap - 1);
	}
	r->linked[i].dev = dev;
	r->linked[i].ino = ino;
	r->linked[i].is_used = 1;
	r->linked_len++;
out:
	pthread_mutex_unlock(&r->mu);
	return ret;
}

/* folders */

/* folder_new takes `fd` (an open folder); NULL (fd closed) without memory */
static struct folder *folder_new(int fd)
{
	struct folder *f = malloc(sizeof(*f));

	if (!f) {
		close(fd);
		return NULL;
	}
	f->fd = fd;
	f->refs = 1;
	return f;
}

static struct folder *folder_ref(struct folder *f)
{
	if (f) {
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	}
	return f;
}

static void folder_put(struct folder *f)
{
	if (f && !__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL)) {
		close(f->fd);
		free(f);
	}
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
	j->dir = NULL;
	j->name = j->path;
	j->out_path[0] = '\0';
	j->odir = NULL;
	j->oname = NULL;
	j->is_copy = 0;
	j->is_locked = 0;
	j->tmp_lock = -1;
	j->ip_can = j->ip_done = 0;
	j->wfd = -1;
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
	if (j->tmp_lock >= 0) {
		close(j->tmp_lock);
		j->tmp_lock = -1;
	}
	if (j->wfd >= 0) {
		close(j->wfd);
		j->wfd = -1;
	}
	rp_buf_reset(&j->new_hdr);
	rp_afile_fini(&j->af); /* before its folder may close */
	folder_put(j->dir);
	folder_put(j->odir);
	j->dir = j->odir = NULL;
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
	return e == ENOSPC || e == EDQUOT || e == EROFS || e == EMFILE ||
	       e == ENFILE || e == ENOMEM;
}

static int is_fatal(const struct rp_status *st)
{
	return st->err == RP_ERR_HSM || st->err == RP_ERR_NOMEM ||
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

/*
 * The mirror (--out): each thread keeps the folder it used last, since
 * documents come folder by folder.
 */
struct out_cache {
	char dir[PATH_MAX]; /* below the mirror's root; "" for the root */
	struct folder *f;
};

static void out_cache_fini(struct out_cache *oc)
{
	folder_put(oc->f);
	oc->f = NULL;
}

/*
 * open_beneath opens folder `rel` below the open folder `root`, one
 * component at a time, never following a link; with `is_create`, missing
 * folders are made (0700). Returns the descriptor, or -1 with st set.
 */
static int open_beneath(struct rp_status *st, int root, const char *rel,
			int is_create, const char *display)
{
	char buf[PATH_MAX];
	char *save = NULL;
	int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	snprintf(buf, sizeof(buf), "%s", rel);
	for (char *c = strtok_r(buf, "/", &save); fd >= 0 && c;
	     c = strtok_r(NULL, "/", &save)) {
		int next;

		if (is_create && mkdirat(fd, c, 0700) < 0 && errno != EEXIST) {
			rp_status_errno(st, errno, "cannot create a folder in",
					display);
			close(fd);
			return -1;
		}
		next = openat(fd, c,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			struct stat sb;
			const int e = errno;

			if ((e == ELOOP || e == ENOTDIR) &&
			    fstatat(fd, c, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode)) {
				rp_status_fail(st, RP_ERR_IO,
					       "'%s' crosses a symbolic link at "
					       "'%s': not followed",
					       display, c);
				st->sys_errno = ELOOP;
			} else {
				rp_status_errno(st, e, "cannot open the folder of",
						display);
			}
			close(fd);
			return -1;
		}
		close(fd);
		fd = next;
	}
	if (fd < 0) {
		rp_status_errno(st, errno, "cannot open the folder of", display);
	}
	return fd;
}

/* out_folder gives the job its mirror folder, made if missing */
static enum rp_err out_folder(struct run *r, struct out_cache *oc,
			      struct job *j, struct rp_status *st)
{
	const char *rel = j->out_path + j->out_rel;
	const char *slash = strrchr(rel, '/');
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - rel) : 0,
		 rel);
	j->oname = slash ? slash + 1 : rel;
	if (!oc->f || strcmp(oc->dir, dir)) {
		out_cache_fini(oc);
		fd = open_beneath(st, r->out_fd, dir, 1, j->out_path);
		if (fd < 0) {
			return st->err;
		}
		oc->f = folder_new(fd);
		if (!oc->f) {
			return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		}
		memcpy(oc->dir, dir, sizeof(dir));
	}
	j->odir = folder_ref(oc->f);
	return RP_OK;
}

/* key_state: key k's state as last read from disk */
static uint8_t key_state(const struct run *r, size_t k)
{
	return __atomic_load_n(&r->state_now[k], __ATOMIC_RELAXED);
}

static int is_gone(uint8_t state)
{
	return state == RP_KEY_REVOKED || state == RP_KEY_DESTROYED;
}

static int is_selected(const struct run *r, size_t k)
{
	if (!r->o->from) {
		return key_state(r, k) == RP_KEY_ARCHIVED;
	}
	for (size_t i = 0; i < r->o->num_from; i++) {
		if (!memcmp(r->o->from[i], r->kr->keys[k].id, RP_KEY_ID_LEN)) {
			return 1;
		}
	}
	return 0;
}

/*
 * can_keep: a document replaced by rename loses what is not in its bytes
 * unless the run can give it to the new file; refuse what it cannot (the
 * writer refuses the rest: a group, a mode or an attribute it may not set)
 */
static int keep_problem(const struct job *j, char *why, size_t why_len)
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

	if (keep_problem(j, why, sizeof(why))) {
		finish(r, j, RP_OUT_SKIP_CANNOT_KEEP, "%s", why);
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
	       rp_age_stanza_is(&h->stanzas[2], RP_DOC_PAD_TYPE) &&
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
		const int c = claim_inode(r, j->d.sb.st_dev, j->d.sb.st_ino);

		if (c < 0) {
			finish(r, j, RP_OUT_FAIL_IO, "out of memory");
			return 0;
		}
		if (c > 0) {
			finish(r, j, RP_OUT_CURRENT,
			       "another name of a document this run moves in "
			       "place (a hard link)");
			return 0;
		}
	}
	if (flock(j->d.fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK || errno == EINTR) {
			finish(r, j, RP_OUT_SKIP_BUSY,
			       "another process is rewriting it (it holds "
			       "its lock): run again to move it");
		} else {
			finish(r, j, RP_OUT_FAIL_IO, "cannot lock: %s",
			       strerror(errno));
		}
		return 0;
	}
	j->is_locked = 1;
	if (fstatat(j->dir->fd, j->name, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
	    now.st_dev != j->d.sb.st_dev || now.st_ino != j->d.sb.st_ino) {
		finish(r, j, RP_OUT_SKIP_BUSY,
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
		finish(r, j, RP_OUT_SKIP_BUSY,
		       "it was rewritten while the run opened it (another run "
		       "or process): run again to move it");
		return 0;
	}
	return 1;
}

/*
 * classify reads the header and decides; returns 1 if the job goes on to
 * be moved (its header kept open), 0 if it was finished here.
 */
static int classify(struct run *r, struct out_cache *oc, struct job *j)
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
		j->d.fd = openat(j->dir->fd, j->name,
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
			finish(r, j, RP_OUT_SKIP_NOT_FILE,
			       "became a symbolic link during the run");
		} else if (st.err == RP_ERR_IO || st.err == RP_ERR_NOMEM) {
			if (is_fatal(&st)) {
				halt(r, rp_status_msg(&st));
			}
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

		if (!j->odir && out_folder(r, oc, j, &st)) {
			if (is_fatal(&st)) {
				halt(r, rp_status_msg(&st));
			}
			finish(r, j, RP_OUT_FAIL_IO, "%s", rp_status_msg(&st));
			return 0;
		}
		if (fstatat(j->odir->fd, j->oname, &sb, AT_SYMLINK_NOFOLLOW) ==
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
	if (is_gone(key_state(r, (size_t)k))) {
		finish(r, j, RP_OUT_SKIP_REVOKED, "its key is %s",
		       rp_key_state_name(key_state(r, (size_t)k)));
		return 0;
	}
	if (r->o->is_verify) {
		return 1;
	}
	if (!is_selected(r, (size_t)k)) {
		finish(r, j, RP_OUT_SKIP_NOT_SELECTED, "its key is %s",
		       rp_key_state_name(key_state(r, (size_t)k)));
		return 0;
	}
	j->ip_can = can_in_place(r, j, (size_t)k);
	if (!j->out_path[0] && !j->ip_can && !can_keep(r, j)) {
		return 0;
	}
	if (r->o->is_dry_run) {
		finish(r, j, RP_OUT_WOULD_MOVE, NULL);
		return 0;
	}
	return j->out_path[0] || lock_doc(r, j);
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
	const char *tag = NULL;
	struct rp_buf raw = { 0 };
	size_t off = 0, len = 0;
	unsigned int dl = 0;
	enum rp_err err;

	memset(info, 0, sizeof(*info));
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk,
		     &r->sigs[worker]);
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
	err = rp_store_pubkeys(r->s, &st, r->active, &pub, NULL, &tag);
	if (!err && nk->alg == RP_ALG_X25519) {
		uint8_t rcp[RP_X25519_LEN];
		size_t rl = sizeof(rcp);

		err = EVP_PKEY_get_raw_public_key(pub, rcp, &rl) == 1
			      ? rp_x25519_wrap(&j->rs, &st, rcp, j->file_key)
			      : rp_status_ossl(&st, RP_ERR_CRYPTO, "x25519");
	} else if (!err) {
		err = rp_sshrsa_wrap(&j->rs, &st, pub, tag, j->file_key);
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
	rp_doc_check(r->s, worker, &j->d, info, j->old_file_key, &has_fk,
		     &r->sigs[worker]);
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
	struct out_cache oc = { .f = NULL };
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
		if (!classify(r, &oc, j)) {
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
	out_cache_fini(&oc);
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

struct writer {
	struct run *r;
	struct rp_stream *open_s, *seal_s;
	uint8_t *buf;
	struct job **batch;
	size_t n;
	struct rp_ring ring;
	int has_ring;
	struct folder **dirs; /* the batch's folders, each fsynced once */
	const char **dir_names; /* a document of each, for messages */
	uint8_t *states;      /* the key states read before a commit */
	int lock_fd;	      /* this writer's descriptor of the store lock */
	struct out_cache oc;
	struct rp_wal *wal;	  /* in place: this writer's journal, once used */
	struct rp_wal_doc *wdocs; /* in place: the batch's journal records */
};

/* ring_failed: the ring broke; what it held is unknown, the run stops */
static void ring_failed(struct run *r, const struct rp_status *st)
{
	halt(r, rp_status_msg(st));
}

/*
 * ring_sqe: a slot of this round for request `index`; the rings are sized
 * so that a round fits, and rp_ring_sqe submits in parts if not, so NULL
 * means the ring itself failed
 */
static struct io_uring_sqe *ring_sqe(struct rp_ring *rg, size_t index)
{
	struct rp_status st = { 0 };
	struct io_uring_sqe *sqe = rp_ring_sqe(rg, &st, index);

	if (!sqe) {
		RP_BUG("io_uring submission failed with a round in hand");
	}
	return sqe;
}

struct reenc_sink {
	struct writer *w;
	struct job *j;
	struct rp_status *st;
	struct rp_zcodec *z; /* a zstd document: its content, decompressed */
	uint64_t plain;	     /* the plaintext bytes it holds */
};

static enum rp_err reenc_write(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;

	return rp_afile_write(&k->j->af, k->st, p, len);
}

static enum rp_err count_plain(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;

	(void)p;
	k->plain += len;
	return RP_OK;
}

/*
 * reenc_seal seals the content under the new key, and counts what it
 * holds: the plaintext its license signs the size of (for a compressed
 * document, what it decompresses to, bounded by that size)
 */
static enum rp_err reenc_seal(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;
	enum rp_err err = k->z ? rp_zcodec_feed(k->z, k->st, p, len,
						count_plain, k)
			       : count_plain(k, p, len);

	return err ? err
		   : rp_stream_feed(k->w->seal_s, k->st, p, len, reenc_write,
				    k);
}

static enum rp_err copy_payload(struct writer *w, struct job *j,
				struct rp_status *st)
{
	off_t in_off = (off_t)(j->d.hdr.header_len + RP_AGE_NONCE_LEN);
	const off_t end = j->d.sb.st_size;
	struct reenc_sink k = { w, j, st, NULL, 0 };
	struct rp_zcodec z = { 0 };
	enum rp_err err = RP_OK;

	if (w->r->o->mode == RP_RUN_REENCRYPT) {
		if (j->lic.encoding == RP_ENC_ZSTD) {
			err = rp_zcodec_init_decompress(&z, st,
							j->lic.plaintext_size);
			k.z = &z;
		}
		if (!err) {
			err = rp_stream_init(w->open_s, st, RP_STREAM_OPEN,
					     j->old_file_key, j->d.nonce);
		}
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
		if (!err && k.z) {
			err = rp_zcodec_finish(k.z, st, count_plain, &k);
		}
		/* the license signs the plaintext's size: it must hold */
		if (!err && k.plain != j->lic.plaintext_size) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "the content is %llu bytes but "
					     "its license gives %llu",
					     (unsigned long long)k.plain,
					     (unsigned long long)
						     j->lic.plaintext_size);
		}
		if (!err) {
			err = rp_stream_finish(w->seal_s, st, reenc_write, &k);
		}
		rp_stream_fini(w->open_s);
		rp_stream_fini(w->seal_s);
		rp_zcodec_fini(&z);
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

/*
 * cannot_keep leaves the document as it is: its rewrite would lose what
 * the reason names (skipped-cannot-keep)
 */
static enum rp_err cannot_keep(struct job *j, struct rp_status *st,
			       const char *fmt, ...) RP_PRINTF(3, 4);

static enum rp_err cannot_keep(struct job *j, struct rp_status *st,
			       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(j->reason, sizeof(j->reason), fmt, ap) < 0) {
		j->reason[0] = '\0';
	}
	va_end(ap);
	j->out = RP_OUT_SKIP_CANNOT_KEEP;
	return rp_status_fail(st, RP_ERR_STATE, "%s", j->reason);
}

/*
 * keep_xattrs gives the new file the document's extended attributes (POSIX
 * ACLs among them) and nothing else (not what a folder's default ACL
 * gave it)
 */
static enum rp_err keep_xattrs(struct writer *w, struct job *j,
			       struct rp_status *st)
{
	char *names = (char *)w->buf;
	uint8_t *val = w->buf + XATTR_LIST;
	ssize_t n;

	n = flistxattr(j->af.fd, names, XATTR_LIST);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		if (fgetxattr(j->d.fd, names + i, NULL, 0) >= 0 ||
		    errno != ENODATA) {
			continue;
		}
		if (fremovexattr(j->af.fd, names + i) < 0) {
			return cannot_keep(j, st,
					   "cannot drop the extended attribute "
					   "'%s' the new file was given: %s",
					   names + i, strerror(errno));
		}
	}
	n = flistxattr(j->d.fd, names, XATTR_LIST);
	if (n < 0) {
		if (errno == ENOTSUP) {
			return RP_OK;
		}
		return errno == ERANGE
			       ? cannot_keep(j, st,
					     "cannot keep its extended "
					     "attributes: more than %d bytes "
					     "of names",
					     XATTR_LIST)
			       : rp_status_errno(st, errno,
						 "cannot list the extended "
						 "attributes of",
						 j->path);
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		const ssize_t m = fgetxattr(j->d.fd, names + i, val,
					    COPY_BUF - XATTR_LIST);

		if (m < 0 && errno == ENODATA) {
			continue; /* removed since it was listed */
		}
		if (m < 0) {
			return cannot_keep(j, st,
					   "cannot keep the extended attribute "
					   "'%s': cannot read it: %s",
					   names + i, strerror(errno));
		}
		if (fsetxattr(j->af.fd, names + i, val, (size_t)m, 0) < 0) {
			return cannot_keep(j, st,
					   "cannot keep the extended attribute "
					   "'%s': %s",
					   names + i, strerror(errno));
		}
	}
	return RP_OK;
}

/*
 * keep_meta gives the new file the document's owner, group, mode (set-id
 * bits included), extended attributes and times, in the order that keeps
 * each (chown clears the set-id bits, so chmod comes after it; an ACL sets
 * the group bits, so it comes after chmod), then checks it got them.
 */
static enum rp_err keep_meta(struct writer *w, struct job *j,
			     struct rp_status *st)
{
	const struct stat *sb = &j->d.sb;
	const struct timespec times[2] = { sb->st_atim, sb->st_mtim };
	struct stat now;
	enum rp_err err;

	if (fchown(j->af.fd, sb->st_uid, sb->st_gid) < 0) {
		return errno == EPERM
			       ? cannot_keep(j, st,
					     "cannot keep its owner (uid %u, "
					     "gid %u): %s",
					     (unsigned)sb->st_uid,
					     (unsigned)sb->st_gid,
					     strerror(errno))
			       : rp_status_errno(st, errno,
						 "cannot keep the owner of",
						 j->path);
	}
	if (fchmod(j->af.fd, sb->st_mode & 07777) < 0) {
		return rp_status_errno(st, errno, "cannot keep the mode of",
				       j->path);
	}
	err = keep_xattrs(w, j, st);
	if (err) {
		return err;
	}
	if (futimens(j->af.fd, times) < 0) {
		return rp_status_errno(st, errno, "cannot keep the times of",
				       j->path);
	}
	if (fstat(j->af.fd, &now) < 0) {
		return rp_status_errno(st, errno, "cannot stat the new file of",
				       j->path);
	}
	if ((now.st_mode & 07777) != (sb->st_mode & 07777)) {
		return cannot_keep(j, st,
				   "cannot keep its mode %04o (the new file "
				   "got %04o)",
				   (unsigned)(sb->st_mode & 07777),
				   (unsigned)(now.st_mode & 07777));
	}
	if (now.st_uid != sb->st_uid || now.st_gid != sb->st_gid) {
		return cannot_keep(j, st, "cannot keep its owner (uid %u, gid %u)",
				   (unsigned)sb->st_uid, (unsigned)sb->st_gid);
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

/* new_file: the temporary file beside the target, through its folder */
static enum rp_err new_file(struct writer *w, struct job *j,
			    struct rp_status *st)
{
	enum rp_err err;

	if (j->out_path[0]) {
		err = j->odir ? RP_OK : out_folder(w->r, &w->oc, j, st);
		if (!err) {
			err = rp_afile_openat(&j->af, st, j->odir->fd, j->oname,
					      j->out_path, 1);
		}
	} else {
		err = rp_afile_openat(&j->af, st, j->dir->fd, j->name, j->path,
				      0);
	}
	/*
	 * locked until it is renamed in, so that another run never takes it
	 * for a leftover of a killed one: the lock lives on a second
	 * descriptor, as the first is closed (its errors checked) before the
	 * rename
	 */
	if (!err && flock(j->af.fd, LOCK_EX | LOCK_NB) == 0) {
		j->tmp_lock = fcntl(j->af.fd, F_DUPFD_CLOEXEC, 0);
	}
	return err;
}

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
					   j->lic.sig.num_path, j->file_key,
					   target);
	}
	if (err) {
		rp_status_fail(st, err, "cannot build the new header");
	}
	return err;
}

/*
 * open_in_place opens the document for writing through its folder and
 * makes sure it is the very file the run read; 0 if it cannot be (not
 * writable, busy as a program, replaced): the copying path takes it, and
 * meets a replaced file as changed
 */
static int open_in_place(struct job *j)
{
	struct stat sb;

	j->wfd = openat(j->dir->fd, j->name,
			O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (j->wfd < 0) {
		return 0;
	}
	if (fstat(j->wfd, &sb) < 0 || sb.st_dev != j->d.sb.st_dev ||
	    sb.st_ino != j->d.sb.st_ino || !S_ISREG(sb.st_mode)) {
		close(j->wfd);
		j->wfd = -1;
		return 0;
	}
	return 1;
}

static enum rp_err write_one(struct writer *w, struct job *j,
			     struct rp_status *st)
{
	struct rp_buf lic = { 0 };
	char why[sizeof(j->reason)];
	enum rp_err err = RP_OK;

	if (j->is_copy) {
		err = new_file(w, j, st);
		if (!err) {
			err = copy_whole(w, j, st);
		}
		goto meta;
	}
	err = rp_license_encode(&lic, st, &j->lic);
	if (!err && j->ip_can) {
		/* in place: as long as the old header; the commit writes it */
		err = build_hdr(j, st, &lic, j->d.hdr.header_len);
		if (!err && open_in_place(j)) {
			goto out;
		}
		if (err && err != RP_ERR_STATE) {
			goto out;
		}
		err = RP_OK;
		j->ip_can = 0;
		/* copied instead: what a copy would lose is refused */
		if (keep_problem(j, why, sizeof(why))) {
			err = cannot_keep(j, st,
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
	err = new_file(w, j, st);
	if (!err) {
		err = rp_afile_write(&j->af, st, j->new_hdr.p, j->new_hdr.len);
	}
	if (!err) {
		err = rp_afile_write(&j->af, st, j->nonce, sizeof(j->nonce));
	}
	if (!err) {
		err = copy_payload(w, j, st);
	}
meta:
	if (!err) {
		err = keep_meta(w, j, st);
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

/* job_fail marks a job of the batch failed with a reason */
static void job_fail(struct job *j, enum rp_outcome out, const char *fmt,
		     ...) RP_PRINTF(3, 4);

static void job_fail(struct job *j, enum rp_outcome out, const char *fmt, ...)
{
	va_list ap;

	j->out = out;
	va_start(ap, fmt);
	if (vsnprintf(j->reason, sizeof(j->reason), fmt, ap) < 0) {
		j->reason[0] = '\0';
	}
	va_end(ap);
}

/* rename_failed fails the job; a read-only or full disk stops the run */
static void rename_failed(struct run *r, struct job *j, int e)
{
	job_fail(j, RP_OUT_FAIL_IO, "cannot rename: %s", strerror(e));
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
 * dir_synced takes the result of a folder's fsync: a folder that did not
 * reach the disk holds renames a power cut may undo, and a disk that
 * fails there will fail the next batch too, so the run stops
 */
static void dir_synced(struct writer *w, const char *doc, int e)
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
		 "cannot fsync the folder of '%s': %s (its documents are "
		 "replaced, but a power cut may undo it)",
		 doc, strerror(e));
	halt(w->r, why);
}

/* sync_files: 1. every temporary file of the batch reaches the disk */
static void sync_files(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	const size_t n = w->n;

	if (use_ring) {
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			res[i] = 0;
			if (w->batch[i]->af.fd >= 0) {
				io_uring_prep_fsync(ring_sqe(&w->ring, i),
						    w->batch[i]->af.fd, 0);
				rp_test_trace("fsync", w->batch[i]->af.tmp);
				k++;
			}
		}
		if (rp_ring_wait(&w->ring, &rst, k, res)) {
			ring_failed(w->r, &rst);
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
			if (w->batch[i]->af.fd >= 0) {
				rp_test_trace("fsync", w->batch[i]->af.tmp);
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];
		const long fault = j->af.fd >= 0 ? rp_test_fault("io:fsync")
						 : 0;

		if (fault > 0) {
			res[i] = -(int)fault;
		}
		if (res[i] < 0 && j->out == RP_OUT_MOVED) {
			job_fail(j, RP_OUT_FAIL_IO, "cannot fsync: %s",
				 strerror(-res[i]));
			if (is_fatal_errno(-res[i])) {
				halt(w->r, j->reason);
			}
		}
	}
}

/* close_files: 2. every temporary file closed (a close may report EIO) */
static void close_files(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	const size_t n = w->n;
	size_t k = 0;
	int is_ring_ok = 1;

	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		res[i] = 0;
		if (j->af.fd < 0) {
			continue;
		}
		if (use_ring) {
			io_uring_prep_close(ring_sqe(&w->ring, i), j->af.fd);
			k++;
		} else {
			res[i] = close(j->af.fd) < 0 ? -errno : 0;
		}
	}
	if (k && rp_ring_wait(&w->ring, &rst, k, res)) {
		ring_failed(w->r, &rst);
		is_ring_ok = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->af.fd < 0) {
			continue;
		}
		j->af.fd = -1; /* closed, or unknown: never closed twice */
		if (!is_ring_ok) {
			res[i] = -EIO;
		}
		if (rp_test_fault("io:close") > 0) {
			res[i] = -EIO;
		}
		if (res[i] < 0 && j->out == RP_OUT_MOVED) {
			job_fail(j, RP_OUT_FAIL_IO, "cannot close: %s",
				 strerror(-res[i]));
		}
	}
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
	    rp_store_key_states_now(r->s, &st, w->states, &active,
				    active_id)) {
		snprintf(why, sizeof(why),
			 "cannot read the key states before a commit: %s",
			 rp_status_msg(&st));
		halt(r, why);
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
	halt(r, why);
	return 0;
}

/* may_commit: what must still hold for the job to be committed */
static void may_commit(struct run *r, struct job *j, int is_keys_ok)
{
	if (j->out != RP_OUT_MOVED) {
		return;
	}
	if (!is_keys_ok) {
		job_fail(j, RP_OUT_FAIL_IO, "not moved: the run stopped (%s)",
			 r->halt_reason);
	} else if (!j->is_copy && j->key_idx >= 0 &&
		   is_gone(key_state(r, (size_t)j->key_idx))) {
		job_fail(j, RP_OUT_SKIP_REVOKED,
			 "its key was %s during the run: left under it",
			 rp_key_state_name(key_state(r, (size_t)j->key_idx)));
	} else if (!is_unchanged(j)) {
		job_fail(j, RP_OUT_FAIL_CHANGED,
			 "the file changed while the run read it");
	}
}

/* link_out: --out never replaces a file that is there */
static void link_out(struct job *j)
{
	if (linkat(j->odir->fd, j->af.tmp, j->odir->fd, j->oname, 0) < 0) {
		job_fail(j, RP_OUT_FAIL_IO, "cannot create the output: %s",
			 strerror(errno));
		return;
	}
	(void)unlinkat(j->odir->fd, j->af.tmp, 0);
	j->af.is_committed = 1;
	if (j->is_copy) {
		j->out = RP_OUT_CURRENT;
	}
}

/* rename_all: 3. each new document renamed over its source */
static void rename_all(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	struct run *r = w->r;
	const size_t n = w->n;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		res[i] = 1; /* not submitted */
		if (j->out != RP_OUT_MOVED) {
			continue;
		}
		if (j->out_path[0]) {
			link_out(j);
			continue;
		}
		if (j->wfd >= 0) {
			continue; /* in place: written already */
		}
		if (fault_rename(r, j)) {
			continue;
		}
		rp_test_trace("rename", j->af.tmp);
		if (use_ring) {
			io_uring_prep_renameat(ring_sqe(&w->ring, i),
					       j->dir->fd, j->af.tmp,
					       j->dir->fd, j->name, 0);
			k++;
			continue;
		}
		/* atomic: the name now holds the new document */
		if (renameat(j->dir->fd, j->af.tmp, j->dir->fd, j->name) < 0) {
			rename_failed(r, j, errno);
		} else {
			j->af.is_committed = 1;
		}
		rp_test_crash_point("run:renamed-one");
	}
	if (!k) {
		return;
	}
	if (rp_ring_wait(&w->ring, &rst, k, res)) {
		/* they may have been done: the files say; the next run sees */
		ring_failed(r, &rst);
		for (size_t i = 0; i < n; i++) {
			if (res[i] != 1) {
				job_fail(w->batch[i], RP_OUT_FAIL_IO,
					 "not known if renamed: io_uring "
					 "failed");
			}
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->out != RP_OUT_MOVED || j->out_path[0] || res[i] == 1) {
			continue;
		}
		if (res[i] < 0) {
			rename_failed(r, j, -res[i]);
		} else {
			j->af.is_committed = 1;
		}
	}
}

/* sync_dirs: 4. the renames reach the disk: each folder once */
static void sync_dirs(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	size_t num_dirs = 0, k = 0;

	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];
		struct folder *f = j->out_path[0] ? j->odir : j->dir;
		size_t d = 0;

		if (!j->af.is_committed) {
			continue;
		}
		while (d < num_dirs && w->dirs[d] != f) {
			d++;
		}
		if (d == num_dirs) {
			w->dirs[num_dirs] = f;
			w->dir_names[num_dirs++] =
				j->out_path[0] ? j->out_path : j->path;
		}
	}
	for (size_t d = 0; d < num_dirs; d++) {
		rp_test_trace("fsync-dir", w->dir_names[d]);
		if (use_ring) {
			io_uring_prep_fsync(ring_sqe(&w->ring, d), w->dirs[d]->fd,
					    0);
			k++;
		} else {
			res[d] = fsync(w->dirs[d]->fd) < 0 ? -errno : 0;
		}
	}
	if (k && rp_ring_wait(&w->ring, &rst, k, res)) {
		ring_failed(w->r, &rst);
		for (size_t d = 0; d < num_dirs; d++) {
			res[d] = -EIO;
		}
	}
	for (size_t d = 0; d < num_dirs; d++) {
		dir_synced(w, w->dir_names[d], res[d] < 0 ? -res[d] : 0);
	}
}

/* ip_fail: an in-place document not written; a disk fault stops the run */
static void ip_fail(struct run *r, struct job *j, const char *what, int e)
{
	job_fail(j, RP_OUT_FAIL_IO, "%s: %s", what, strerror(e));
	if (is_fatal_errno(e)) {
		halt(r, j->reason);
	}
}

/* pwrite_all: all of `len` bytes at `off`, or -errno */
static int pwrite_all(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len) {
		const ssize_t k = pwrite(fd, p, len, off);

		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return k < 0 ? -errno : -EIO;
		}
		p += k;
		len -= (size_t)k;
		off += k;
	}
	return 0;
}

/*
 * header_write: the new header over the old one, and the document's times
 * as they were. A write that fails may have written part: the old header
 * goes back at once, and if even that fails the journal keeps the record
 * for recovery (returns 0: the batch must not commit).
 */
/* fault_torn: a test build's half-written header, then the process dies */
static void fault_torn(struct job *j)
{
	if (rp_test_fault("io:torn-header") > 0) {
		(void)pwrite_all(j->wfd, j->new_hdr.p, j->new_hdr.len / 2, 0);
		rp_test_crash_point("run:torn");
	}
}

/*
 * header_written takes the result of a document's header write (`got`
 * bytes written from the start, or -errno) and finishes it: a short write
 * is completed; a failed one writes the old header back at once, and if
 * even that fails the journal keeps the record for recovery (returns 0:
 * the batch must not commit). Then the document's times as they were.
 */
static int header_written(struct run *r, struct job *j, int got)
{
	const struct timespec times[2] = { j->d.sb.st_atim, j->d.sb.st_mtim };
	int e = got < 0 ? got : 0;

	if (rp_test_fault("io:pwrite") > 0) {
		e = -EIO;
	} else if (!e && (size_t)got < j->new_hdr.len) {
		e = pwrite_all(j->wfd, j->new_hdr.p + got,
			       j->new_hdr.len - (size_t)got, got);
	}
	if (e) {
		ip_fail(r, j, "cannot write the header", -e);
		if (pwrite_all(j->wfd, j->d.buf, j->new_hdr.len, 0)) {
			halt(r, "cannot write a document's old header back "
				"after a failed write: 'reprotect recover' "
				"restores it");
			return 0;
		}
		return 1;
	}
	j->ip_done = 1;
	(void)futimens(j->wfd, times);
	return 1;
}

/*
 * write_headers: each in-place document's new header over its old one,
 * through the ring in one submission, or one pwrite after another
 */
static int write_headers(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	struct run *r = w->r;
	size_t k = 0;
	int is_ok = 1;

	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];

		res[i] = 0;
		if (j->out != RP_OUT_MOVED || j->wfd < 0) {
			continue;
		}
		fault_torn(j);
		rp_test_trace("header", j->path);
		if (use_ring) {
			io_uring_prep_write(ring_sqe(&w->ring, i), j->wfd,
					    j->new_hdr.p,
					    (unsigned)j->new_hdr.len, 0);
			k++;
		} else {
			const int e = pwrite_all(j->wfd, j->new_hdr.p,
						 j->new_hdr.len, 0);

			is_ok &= header_written(r, j,
						e ? e : (int)j->new_hdr.len);
			rp_test_crash_point("run:ip-wrote-one");
		}
	}
	if (!k) {
		return is_ok;
	}
	if (rp_ring_wait(&w->ring, &rst, k, res)) {
		/* what the writes did is unknown: recovery settles it */
		ring_failed(r, &rst);
		for (size_t i = 0; i < w->n; i++) {
			if (w->batch[i]->out == RP_OUT_MOVED &&
			    w->batch[i]->wfd >= 0) {
				job_fail(w->batch[i], RP_OUT_FAIL_IO,
					 "not known if written: io_uring "
					 "failed");
			}
		}
		return 0;
	}
	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];

		if (j->out != RP_OUT_MOVED || j->wfd < 0) {
			continue;
		}
		is_ok &= header_written(r, j, res[i]);
		rp_test_crash_point("run:ip-wrote-one");
	}
	return is_ok;
}

/*
 * write_in_place: the batch's in-place documents (their checks passed,
 * under the store's lock): their records journaled and made durable, then
 * each new header written over the old one, synced (--durability batch,
 * each), and the journal committed. Killed at any point, the journal
 * gives recovery what it needs to make every header whole.
 */
static void write_in_place(struct writer *w, int use_ring, int *res)
{
	struct rp_status st = { 0 };
	struct run *r = w->r;
	const int is_sync = r->o->durability != RP_DURABLE_NONE;
	size_t n = 0, k = 0;
	int is_ok = 1;

	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];

		if (j->out != RP_OUT_MOVED || j->wfd < 0) {
			continue;
		}
		w->wdocs[n].path = j->path;
		w->wdocs[n].sb = &j->d.sb;
		w->wdocs[n].old_hdr = j->d.buf;
		w->wdocs[n].new_hdr = j->new_hdr.p;
		w->wdocs[n].hdr_len = j->new_hdr.len;
		w->wdocs[n].nonce = j->d.nonce;
		n++;
	}
	if (!n) {
		return;
	}
	if (!w->wal && rp_wal_open(&w->wal, &st, rp_store_dir(r->s), is_sync)) {
		halt(r, rp_status_msg(&st));
	}
	if (w->wal && rp_wal_append(w->wal, &st, w->wdocs, n)) {
		halt(r, rp_status_msg(&st));
	}
	if (is_halted(r)) {
		for (size_t i = 0; i < w->n; i++) {
			if (w->batch[i]->wfd >= 0) {
				may_commit(r, w->batch[i], 0);
			}
		}
		if (w->wal && rp_wal_commit(w->wal, &st)) {
			/* nothing was written: recovery finds them as they
			 * were */
		}
		return;
	}
	rp_test_crash_point("run:ip-journaled");
	is_ok &= write_headers(w, use_ring, res);
	rp_test_crash_point("run:ip-written");
	if (rp_test_fault("io:powercut") > 0) {
		/* a test build: a power cut kept only part of a header */
		for (size_t i = 0; i < w->n; i++) {
			struct job *j = w->batch[i];

			if (j->ip_done) {
				(void)pwrite_all(j->wfd, j->d.buf, 512, 0);
				break;
			}
		}
		rp_test_crash_point("run:powercut");
	}
	if (is_sync) {
		struct rp_status rst = { 0 };

		for (size_t i = 0; i < w->n; i++) {
			struct job *j = w->batch[i];

			res[i] = 0;
			if (!j->ip_done) {
				continue;
			}
			rp_test_trace("fsync-doc", j->path);
			if (use_ring) {
				io_uring_prep_fsync(ring_sqe(&w->ring, i),
						    j->wfd, 0);
				k++;
			} else {
				res[i] = fsync(j->wfd) < 0 ? -errno : 0;
			}
		}
		if (k && rp_ring_wait(&w->ring, &rst, k, res)) {
			ring_failed(r, &rst);
			is_ok = 0;
		}
		for (size_t i = 0; i < w->n; i++) {
			struct job *j = w->batch[i];

			if (!j->ip_done) {
				continue;
			}
			if (rp_test_fault("io:fsync") > 0) {
				res[i] = -EIO;
			}
			if (res[i] < 0) {
				/* written, not known to be on the disk: the
				 * journal stays for recovery */
				ip_fail(r, j, "cannot fsync", -res[i]);
				j->ip_done = 0;
				is_ok = 0;
			}
		}
	}
	rp_test_crash_point("run:ip-synced");
	if (!is_ok) {
		/* its records stay for recovery (a later commit would drop
		 * them): the next batch gets a new journal */
		rp_wal_close(w->wal);
		w->wal = NULL;
	} else if (rp_wal_commit(w->wal, &st)) {
		halt(r, rp_status_msg(&st));
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
		sync_files(w, use_ring, res);
		rp_test_crash_point("run:synced");
	}
	close_files(w, use_ring, res);
	rp_test_pause_point("run:before-commit");
	/* under the store's lock: the keys hold, the sources are unchanged */
	is_keys_ok = keys_still_hold(w);
	for (size_t i = 0; i < n; i++) {
		may_commit(r, w->batch[i], is_keys_ok);
	}
	write_in_place(w, use_ring, res);
	rename_all(w, use_ring, res);
	rp_store_unlock_shared(w->lock_fd);
	for (size_t i = 0; i < n; i++) {
		if (w->batch[i]->tmp_lock >= 0) {
			close(w->batch[i]->tmp_lock);
			w->batch[i]->tmp_lock = -1;
		}
	}
	rp_test_crash_point("run:renamed");
	if (r->o->durability != RP_DURABLE_NONE) {
		sync_dirs(w, use_ring, res);
	}
	rp_test_crash_point("run:dirs-synced");
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->out == RP_OUT_MOVED && !j->is_copy) {
			const uint64_t put = j->ip_done
						     ? j->new_hdr.len
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
		finish(r, j, j->out, NULL);
	}
	w->n = 0;
	/* tests look at the process's memory here (it_secrets) */
	rp_test_pause_point("run:committed");
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
				if (j->out != RP_OUT_SKIP_CANNOT_KEEP) {
					job_fail(j,
						 st.err == RP_ERR_IO ||
								 st.err == RP_ERR_NOMEM
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
/*
 * in_shard: the one shard function, for the run and for its counting walk
 * (the progress total): the XXH64 (seed 0) of the path relative to its
 * root, modulo N, is I
 */
static int in_shard(const struct rp_run_opts *o, const char *rel)
{
	return !o->shard_n ||
	       XXH64(rel, strlen(rel), 0) % o->shard_n == o->shard_i;
}

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
		if (!in_shard(r->o, e.rel)) {
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

/*
 * out_path: DIR/REL, or DIR/ROOTNAME/REL when there are several roots;
 * out_rel is where the part below DIR starts
 */
static int out_path(const struct run *r, struct job *j,
		    const struct rp_walk_entry *e)
{
	const char *root = r->o->roots[e->root];
	const char *base = strrchr(root, '/');
	char name[PATH_MAX];
	int n;

	snprintf(name, sizeof(name), "%s", base && base[1] ? base + 1 : root);
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		snprintf(name, sizeof(name), "root%zu", e->root + 1);
	}
	j->out_rel = strlen(r->o->out_dir) + 1;
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

/*
 * read_ahead opens the batch's files (one submission), then stats each
 * and reads its first RP_DOC_HDR_PREFIX bytes (a second one), so a batch
 * costs two system calls instead of three per file. A file any step
 * failed for is left to the worker's plain path, which meets the same
 * error and reports it the one way.
 */
static void read_ahead(struct run *r, struct job **js, size_t n)
{
	struct rp_status rst = { 0 };
	struct statx stx[RP_READ_AHEAD];
	int res[2 * RP_READ_AHEAD];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		/* each job holds a reference to its folder (folder_ref): the
		 * analyzer cannot follow the count */
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		io_uring_prep_openat(ring_sqe(&r->rd_ring, i), js[i]->dir->fd,
				     js[i]->name,
				     O_RDONLY | O_CLOEXEC | O_NONBLOCK |
					     O_NOFOLLOW,
				     0);
	}
	if (rp_ring_wait(&r->rd_ring, &rst, n, res)) {
		/* what it opened is unknown: the run stops */
		ring_failed(r, &rst);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = js[i];
		struct io_uring_sqe *sqe;

		if (res[i] < 0) {
			continue;
		}
		j->pre_fd = res[i];
		memset(&stx[i], 0, sizeof(stx[i]));
		sqe = ring_sqe(&r->rd_ring, i);
		io_uring_prep_statx(sqe, j->pre_fd, "",
				    AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
				    STATX_BASIC_STATS, &stx[i]);
		/* the stat before the read: it must see the access time the
		 * document had, which the run gives back to the new file */
		io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
		sqe = ring_sqe(&r->rd_ring, RP_READ_AHEAD + i);
		if (r->has_rd_fixed) {
			io_uring_prep_read_fixed(sqe, j->pre_fd, j->pre,
						 RP_DOC_HDR_PREFIX, 0, 0);
		} else {
			io_uring_prep_read(sqe, j->pre_fd, j->pre,
					   RP_DOC_HDR_PREFIX, 0);
		}
		k += 2;
	}
	if (!k) {
		return;
	}
	if (rp_ring_wait(&r->rd_ring, &rst, k, res)) {
		/* the reads may still land: no job may use its slot */
		ring_failed(r, &rst);
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
	struct rp_status st = { 0 };
	const size_t len = r->num_jobs * RP_DOC_HDR_PREFIX;
	struct iovec iov;

	if (r->o->io != RP_IO_URING ||
	    rp_ring_init(&r->rd_ring, &st, 2 * RP_READ_AHEAD)) {
		return;
	}
	r->rd_pool = aligned_alloc(4096, len);
	if (!r->rd_pool) {
		rp_ring_fini(&r->rd_ring);
		return;
	}
	r->has_rd_ring = 1;
	for (size_t i = 0; i < r->num_jobs; i++) {
		r->jobs[i].pre = r->rd_pool + i * RP_DOC_HDR_PREFIX;
	}
	/* one fixed buffer for the pool; plain reads if it may not pin */
	iov.iov_base = r->rd_pool;
	iov.iov_len = len;
	r->has_rd_fixed = io_uring_register_buffers(&r->rd_ring.u, &iov, 1) ==
			  0;
}

static void rd_fini(struct run *r)
{
	if (r->has_rd_ring) {
		rp_ring_fini(&r->rd_ring);
		r->has_rd_ring = 0;
	}
	if (r->rd_pool) {
		OPENSSL_cleanse(r->rd_pool, r->num_jobs * RP_DOC_HDR_PREFIX);
	}
	free(r->rd_pool);
	r->rd_pool = NULL;
}

/* the walk, in the caller's thread */

/*
 * remove_leftover removes a temporary file of a killed run; one that a
 * live run (another process) holds locked is its own, and stays
 */
static int remove_leftover(const struct rp_walk_entry *e)
{
	struct stat sb;
	int is_removed = 0;
	const int fd = openat(e->dir_fd, e->name,
			      O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0) {
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &sb) == 0 &&
	    sb.st_dev == e->sb.st_dev && sb.st_ino == e->sb.st_ino) {
		is_removed = unlinkat(e->dir_fd, e->name, 0) == 0;
	}
	close(fd);
	return is_removed;
}

static enum rp_err walk(struct run *r, struct rp_status *st)
{
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	struct job *pending[RP_READ_AHEAD];
	size_t num_pending = 0;
	struct folder *dir = NULL; /* the folder of the last entry */
	unsigned long dir_serial = 0;
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
		if (!in_shard(r->o, e.rel)) {
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
			    remove_leftover(&e)) {
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
		if (!dir || e.dir_serial != dir_serial) {
			/* a folder's own descriptor, shared by its jobs */
			const int fd = fcntl(e.dir_fd, F_DUPFD_CLOEXEC, 0);

			folder_put(dir);
			dir = fd < 0 ? NULL : folder_new(fd);
			if (!dir) {
				if (fd < 0) {
					(void)rp_status_errno(st, errno,
							      "cannot keep the "
							      "folder of",
							      e.path);
				} else {
					(void)rp_status_fail(st, RP_ERR_NOMEM,
							     "out of memory");
				}
				finish(r, j, RP_OUT_FAIL_IO, "%s",
				       rp_status_msg(st));
				halt(r, rp_status_msg(st)); /* reports it */
				break;
			}
			dir_serial = e.dir_serial;
		}
		j->dir = folder_ref(dir);
		j->name = j->path + (e.name - e.path);
		rp_test_pause_point("run:walk");
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
		if (num_pending == r->ra_n) {
			rd_flush(r, pending, &num_pending);
		}
	}
	rd_flush(r, pending, &num_pending);
	folder_put(dir);
	rp_walk_free(wk);
	return err;
}

static void run_fini(struct run *r)
{
	for (size_t i = 0; r->jobs && i < r->num_jobs; i++) {
		rp_buf_fini(&r->jobs[i].tbs);
		rp_buf_fini(&r->jobs[i].new_hdr);
	}
	if (r->jobs) {
		OPENSSL_cleanse(r->jobs, r->num_jobs * sizeof(*r->jobs));
	}
	free(r->jobs);
	free(r->linked);
	free(r->sigs);
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
	w->lock_fd = -1;
	w->open_s = malloc(sizeof(*w->open_s));
	w->seal_s = malloc(sizeof(*w->seal_s));
	w->buf = malloc(COPY_BUF);
	w->batch = calloc(r->batch, sizeof(struct job *));
	w->dirs = calloc(r->batch, sizeof(struct folder *));
	w->dir_names = calloc(r->batch, sizeof(*w->dir_names));
	w->states = calloc(r->kr->num_keys + 1, 1);
	w->wdocs = calloc(r->batch, sizeof(struct rp_wal_doc));
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

static void writer_fini(struct writer *w)
{
	out_cache_fini(&w->oc);
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
	rp_wal_close(w->wal); /* gone when empty; else left for recovery */
}

/* pool_size: the jobs the stages can hold at most with these sizes */
static size_t pool_size(size_t batch, size_t workers, size_t ra)
{
	return (3 + 2 * RP_RUN_WRITERS) * batch + 4 * workers + 8 + ra;
}

/*
 * fit_fd_limit sizes the job pool to the limit of open files: a job in
 * flight holds up to RP_FD_PER_JOB descriptors (the document, its new
 * file and a second one holding its lock, a share of its folder) besides the run's own (RP_FD_RESERVE: the store,
 * the rings, the walk, the journal). The soft limit is raised to the hard
 * one first; then the batch and the read-ahead shrink until the pool fits.
 * A pool of fewer jobs than the stages could hold only makes the walker
 * wait for one. A limit too low for a few jobs is refused.
 */
static enum rp_err fit_fd_limit(struct run *r, struct rp_status *st)
{
	struct rlimit rl;
	size_t fit;

	r->ra_n = RP_READ_AHEAD;
	r->num_jobs = pool_size(r->batch, r->num_workers, r->ra_n);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		return RP_OK;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= RP_FD_RESERVE + RP_FD_PER_JOB * r->num_jobs) {
		return RP_OK;
	}
	fit = rl.rlim_cur > RP_FD_RESERVE
		      ? (size_t)(rl.rlim_cur - RP_FD_RESERVE) / RP_FD_PER_JOB
		      : 0;
	if (fit < 4) {
		st->sys_errno = EMFILE;
		return rp_status_fail(st, RP_ERR_IO,
				      "the limit of open files (ulimit -n) "
				      "is %llu: a run needs at least %d; "
				      "raise it",
				      (unsigned long long)rl.rlim_cur,
				      RP_FD_RESERVE + RP_FD_PER_JOB * 4);
	}
	r->num_jobs = fit;
	if (r->batch > fit / 2) {
		r->batch = fit / 2;
	}
	if (r->ra_n > fit / 4) {
		r->ra_n = fit / 4;
	}
	return RP_OK;
}

/* dir_chain: (dev, ino) of the folder `fd` and of every folder above it */
static size_t dir_chain(int fd, dev_t *dev, ino_t *ino, size_t cap)
{
	size_t n = 0;
	int cur = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	while (cur >= 0 && n < cap) {
		struct stat sb;
		int up;

		if (fstat(cur, &sb) < 0 ||
		    (n && dev[n - 1] == sb.st_dev && ino[n - 1] == sb.st_ino)) {
			break; /* "/" is its own parent */
		}
		dev[n] = sb.st_dev;
		ino[n++] = sb.st_ino;
		up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(cur);
		cur = up;
	}
	if (cur >= 0) {
		close(cur);
	}
	return n;
}

static int in_chain(const dev_t *dev, const ino_t *ino, size_t n,
		    const struct stat *sb)
{
	for (size_t i = 0; i < n; i++) {
		if (dev[i] == sb->st_dev && ino[i] == sb->st_ino) {
			return 1;
		}
	}
	return 0;
}

/*
 * open_out opens (makes) the mirror's root and refuses one that overlaps
 * a tree: the same folder, one inside the other, or one reached through
 * a bind mount. Folders are compared by device and inode, never by name:
 * the mirror's folder and every folder above it against every folder of
 * the trees (a walk of the trees' folders before the run), and each root
 * and the folders above it against the mirror.
 */
static enum rp_err check_out(const struct rp_run_opts *o,
			     struct rp_status *st, struct stat *out_sb)
{
	dev_t odev[256] = { 0 }, rdev[256] = { 0 };
	ino_t oino[256] = { 0 }, rino[256] = { 0 };
	char buf[PATH_MAX];
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	struct stat osb;
	size_t on;
	enum rp_err err;
	int fd, is_there;

	/* the mirror's folder, or the nearest one above it that exists */
	snprintf(buf, sizeof(buf), "%s", o->out_dir);
	while ((fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 &&
	       errno == ENOENT) {
		char *slash = strrchr(buf, '/');

		if (!slash) {
			snprintf(buf, sizeof(buf), ".");
		} else if (slash == buf) {
			buf[1] = '\0';
		} else {
			*slash = '\0';
		}
	}
	if (fd < 0 || fstat(fd, &osb) < 0) {
		err = rp_status_errno(st, errno, "cannot open", buf);
		if (fd >= 0) {
			close(fd);
		}
		return err;
	}
	on = dir_chain(fd, odev, oino, RP_ARRAY_LEN(odev));
	close(fd);
	is_there = !strcmp(buf, o->out_dir);
	err = rp_walk_new(&wk, st, o->roots, o->num_roots,
			  RP_WALK_REPORT_DIRS);
	while (!err && !(err = rp_walk_next(wk, st, &e)) &&
	       e.kind != RP_WALK_END) {
		size_t rn;

		if (e.kind != RP_WALK_DIR && e.dir_fd < 0) {
			continue;
		}
		if (e.kind == RP_WALK_DIR &&
		    in_chain(odev, oino, on, &e.sb)) {
			err = rp_status_fail(st, RP_ERR_USAGE,
					     "--out '%s' and '%s' overlap (the "
					     "same folder, or one inside the "
					     "other, perhaps through a bind "
					     "mount): the mirror must be "
					     "outside the trees",
					     o->out_dir, e.path);
			break;
		}
		if (!is_there || (e.kind == RP_WALK_DIR && e.rel[0])) {
			continue; /* no tree is inside a mirror not made yet */
		}
		/* a root (or a file root's folder): what is above it */
		rn = dir_chain(e.dir_fd, rdev, rino, RP_ARRAY_LEN(rdev));
		if (in_chain(rdev, rino, rn, &osb)) {
			err = rp_status_fail(st, RP_ERR_USAGE,
					     "--out '%s' and '%s' overlap: the "
					     "tree is inside the mirror",
					     o->out_dir, e.path);
		}
	}
	rp_walk_free(wk);
	*out_sb = osb;
	return err;
}

enum rp_err rp_run_check_out(const struct rp_run_opts *o, struct rp_status *st)
{
	struct stat sb;

	return check_out(o, st, &sb);
}

/* open_out checks the mirror (check_out), then makes and opens it */
static enum rp_err open_out(struct run *r, struct rp_status *st)
{
	dev_t odev[256] = { 0 };
	ino_t oino[256] = { 0 };
	char buf[PATH_MAX];
	struct stat osb = { 0 };
	size_t on;
	enum rp_err err = check_out(r->o, st, &osb);

	if (err) {
		return err;
	}
	/* then made, as the user named it (0700) */
	snprintf(buf, sizeof(buf), "%s", r->o->out_dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(buf, 0700);
			*p = '/';
		}
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
		return rp_status_errno(st, errno, "cannot create", buf);
	}
	r->out_fd = open(r->o->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->out_fd < 0) {
		return rp_status_errno(st, errno, "cannot open", r->o->out_dir);
	}
	on = dir_chain(r->out_fd, odev, oino, RP_ARRAY_LEN(odev));
	if (!in_chain(odev, oino, on, &osb)) {
		/* what was checked is no longer above it: swapped meanwhile */
		return rp_status_fail(st, RP_ERR_IO,
				      "'%s' changed while the run checked it",
				      r->o->out_dir);
	}
	return RP_OK;
}

enum rp_err rp_run_recover(const char *store_dir, struct rp_status *st,
			   struct rp_wal_recovery *out,
			   void (*log)(void *arg, const char *line),
			   void *log_arg)
{
	return rp_wal_recover(store_dir, st, out, log, log_arg);
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
	if (!o->is_dry_run) {
		/* a killed run's torn headers are made whole before anything */
		err = rp_run_recover(rp_store_dir(s), st, &res->recovery,
				     o->log, o->log_arg);
		if (err) {
			return err;
		}
	}
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
	/* what the stages hold at most, within the limit of open files */
	err = fit_fd_limit(&r, st);
	if (err) {
		return err;
	}
	r.out_fd = -1;
	pthread_mutex_init(&r.mu, NULL);
	pthread_mutex_init(&r.pool_mu, NULL);
	pthread_cond_init(&r.pool_cv, NULL);
	r.jobs = calloc(r.num_jobs, sizeof(*r.jobs));
	r.keys = calloc(r.kr->num_keys + 1, sizeof(*r.keys));
	r.state_now = calloc(r.kr->num_keys + 1, 1);
	r.sigs = calloc(r.num_workers, sizeof(*r.sigs));
	if (!r.jobs || !r.keys || !r.state_now || !r.sigs || !queue_init(&r.q_work, r.num_workers * 2) ||
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
		r.state_now[k] = r.kr->keys[k].state;
	}
	if (o->out_dir && !o->is_dry_run && !o->is_verify) {
		err = open_out(&r, st);
		if (err) {
			goto out;
		}
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
		/* the store's setup left key material deep on this stack */
		rp_stack_wipe();
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
	/*
	 * a run that went through lets its counting walk finish (it walks
	 * what the run walked, without the work: it is done or nearly), so
	 * the report has the total; a stopped one cuts it short
	 */
	if (has_counter && !(o->stop && *o->stop) && !is_halted(&r)) {
		pthread_join(counter, NULL);
		has_counter = 0;
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
	free(r.state_now);
	if (r.out_fd >= 0) {
		close(r.out_fd);
	}
	rd_fini(&r);
	run_fini(&r);
	return err;
}

void rp_run_result_fini(struct rp_run_result *r)
{
	free(r->keys);
	memset(r, 0, sizeof(*r));
}
