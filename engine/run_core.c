/*
 * run_core.c: the run's shared machinery: outcomes and the run journal, the job
 * pool, the queues, folders, halting, the key states as last read, progress.
 */
#include "run_internal.h"
#include "rp_text.h"

static const char *const outcome_names[RP_OUT_NUM] = {
	[RP_OUT_MOVED] = "moved",
	[RP_OUT_SKIP_RETIRING] = "skipped-retiring-key",
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
 * claim_inode: 1 if this run took the inode already (under another name),
 * else records it and returns 0; -1 without memory
 */
int run_claim_inode(struct run *r, dev_t dev, ino_t ino)
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
struct folder *run_folder_new(int fd)
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

struct folder *run_folder_ref(struct folder *f)
{
	if (f) {
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	}
	return f;
}

void run_folder_put(struct folder *f)
{
	if (f && !__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL)) {
		close(f->fd);
		free(f);
	}
}

/* queues */

int run_queue_init(struct queue *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->items = calloc(cap, sizeof(struct job *));
	q->cap = cap;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->can_pop, NULL);
	pthread_cond_init(&q->can_push, NULL);
	q->pop_want = 1;
	return q->items != NULL;
}

void run_queue_fini(struct queue *q)
{
	free(q->items);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->can_pop);
	pthread_cond_destroy(&q->can_push);
}

/*
 * The queues hand jobs on in groups, and wake the other side only when it
 * has something worth waking for: a consumer waits until `want` jobs are
 * there (the signer: the rest of its batch), a producer blocked on a full
 * queue until half of it is free. One wakeup per document, as a plain
 * queue does, costs two context switches each (measured: 10 per document
 * with the walker and the signer woken for every job; docs/BENCHMARKS.md).
 */
void run_queue_push_n(struct queue *q, struct job *const *js, size_t n)
{
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < n; i++) {
		while (q->len == q->cap) {
			/* full: a consumer waiting for more takes what is here */
			pthread_cond_broadcast(&q->can_pop);
			q->push_waiters++;
			pthread_cond_wait(&q->can_push, &q->mu);
			q->push_waiters--;
		}
		q->items[(q->head + q->len) % q->cap] = js[i];
		q->len++;
	}
	if (q->pop_waiters && q->len >= q->pop_want) {
		if (n > 1) {
			pthread_cond_broadcast(&q->can_pop);
		} else {
			pthread_cond_signal(&q->can_pop);
		}
	}
	pthread_mutex_unlock(&q->mu);
}

void run_queue_push(struct queue *q, struct job *j)
{
	run_queue_push_n(q, &j, 1);
}

/*
 * queue_pop_n takes up to `max` jobs into `out` once at least `want` (1 to
 * the queue's size) are there, the queue is closed, or `deadline` (NULL:
 * none) passes; returns how many it took (0: closed and empty, or timed
 * out with none)
 */
size_t run_queue_pop_n(struct queue *q, struct job **out, size_t max,
		       size_t want, const struct timespec *deadline)
{
	size_t n = 0;

	if (want < 1) {
		want = 1;
	}
	if (want > q->cap) {
		want = q->cap;
	}
	pthread_mutex_lock(&q->mu);
	while (q->len < want && !q->is_closed) {
		int rc = 0;

		q->pop_waiters++;
		q->pop_want = want;
		if (!deadline) {
			pthread_cond_wait(&q->can_pop, &q->mu);
		} else {
			rc = pthread_cond_timedwait(&q->can_pop, &q->mu,
						    deadline);
		}
		q->pop_waiters--;
		if (!q->pop_waiters) {
			q->pop_want = 1;
		}
		if (rc == ETIMEDOUT) {
			break;
		}
	}
	while (n < max && q->len) {
		out[n++] = q->items[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	if (n && q->push_waiters && q->len <= q->cap / 2) {
		pthread_cond_broadcast(&q->can_push);
	}
	pthread_mutex_unlock(&q->mu);
	return n;
}

/* queue_pop: one job, waiting for it; NULL when closed and empty */
struct job *run_queue_pop(struct queue *q)
{
	struct job *j = NULL;

	return run_queue_pop_n(q, &j, 1, 1, NULL) ? j : NULL;
}

void run_queue_close(struct queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->is_closed = 1;
	pthread_cond_broadcast(&q->can_pop);
	pthread_mutex_unlock(&q->mu);
}

/* the job pool: acquiring blocks while every job is in flight */

struct job *run_job_get(struct run *r)
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
	j->has_lic = 0;
	j->is_unseen = 0;
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
	j->is_sample = 0;
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
	run_folder_put(j->dir);
	run_folder_put(j->odir);
	j->dir = j->odir = NULL;
	rp_buf_reset(&j->tbs);
	OPENSSL_cleanse(j->old_file_key, sizeof(j->old_file_key));
	OPENSSL_cleanse(j->file_key, sizeof(j->file_key));
	OPENSSL_cleanse(j->hdr_key, sizeof(j->hdr_key));
	pthread_mutex_lock(&r->pool_mu);
	j->next_free = r->free_list;
	r->free_list = j;
	pthread_cond_signal(&r->pool_cv);
	pthread_mutex_unlock(&r->pool_mu);
}

/* outcomes */

/* journal_path writes p escaped; the caller holds f's lock (flockfile) */
static void journal_path(FILE *f, const char *p)
{
	for (; *p; p++) {
		const unsigned char c = (unsigned char)*p;

		if (rp_text_is_escaped(c)) {
			fprintf(f, "\\x%02x", c);
		} else {
			putc_unlocked(c, f);
		}
	}
}

static void record(struct run *r, struct job *j)
{
	const size_t k = j->key_idx >= 0 ? (size_t)j->key_idx : r->kr->num_keys;
	char hex[2 * RP_KEY_ID_LEN + 1] = "-";

	pthread_mutex_lock(&r->mu);
	r->stats.num[j->out]++;
	r->stats.bytes[j->out] += j->size;
	r->keys[k].num[j->out]++;
	r->keys[k].bytes[j->out] += j->size;
	if (r->o->on_doc) {
		struct rp_run_doc d = {
			.out = j->out,
			.path = j->path,
			.size = j->size,
			.key_id = j->key_idx >= 0 ? r->kr->keys[j->key_idx].id
				  : j->has_lic	  ? j->lic.key_id
						  : NULL,
			.doc_id = j->has_lic ? j->lic.doc_id : NULL,
			.is_unseen = j->is_unseen,
		};

		r->o->on_doc(r->o->on_doc_arg, &d);
	}
	if (r->o->journal) {
		if (j->key_idx >= 0) {
			rp_key_id_hex(hex, r->kr->keys[j->key_idx].id);
		}
		flockfile(r->o->journal); /* once, not per character */
		fprintf(r->o->journal, "%s\t%.16s\t%llu\t",
			rp_outcome_name(j->out), hex,
			(unsigned long long)j->size);
		journal_path(r->o->journal, j->path);
		putc_unlocked('\t', r->o->journal);
		journal_path(r->o->journal, j->reason[0] ? j->reason : "-");
		putc_unlocked('\n', r->o->journal);
		funlockfile(r->o->journal);
	}
	pthread_mutex_unlock(&r->mu);
}

void run_finish(struct run *r, struct job *j, enum rp_outcome out,
		const char *fmt, ...) RP_PRINTF(4, 5);

void run_finish(struct run *r, struct job *j, enum rp_outcome out,
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

int run_is_halted(struct run *r)
{
	return __atomic_load_n(&r->halted, __ATOMIC_ACQUIRE);
}

/* is_fatal_errno: no later document could be written either */
int run_is_fatal_errno(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EROFS || e == EMFILE ||
	       e == ENFILE || e == ENOMEM;
}

int run_is_fatal(const struct rp_status *st)
{
	return st->err == RP_ERR_HSM || st->err == RP_ERR_NOMEM ||
	       (st->err == RP_ERR_IO && run_is_fatal_errno(st->sys_errno));
}

/* halt stops the run: no new document starts; the first reason stays */
void run_halt(struct run *r, const char *why)
{
	pthread_mutex_lock(&r->mu);
	if (!r->halted) {
		snprintf(r->halt_reason, sizeof(r->halt_reason), "%s", why);
		__atomic_store_n(&r->halted, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&r->mu);
}

/* not_started finishes a job the run will not touch after a halt */
void run_not_started(struct run *r, struct job *j)
{
	run_finish(r, j, RP_OUT_FAIL_IO, "not moved: the run stopped (%s)",
		   r->halt_reason);
}

/* workers */

/* key_state: key k's state as last read from disk */
uint8_t run_key_state(const struct run *r, size_t k)
{
	return __atomic_load_n(&r->state_now[k], __ATOMIC_RELAXED);
}

int run_is_gone(uint8_t state)
{
	return state == RP_KEY_REVOKED || state == RP_KEY_DESTROYED ||
	       state == RP_KEY_RETIRING;
}

enum rp_outcome run_gone_outcome(uint8_t state)
{
	return state == RP_KEY_RETIRING ? RP_OUT_SKIP_RETIRING
					: RP_OUT_SKIP_REVOKED;
}

enum rp_outcome run_outcome_of(const struct rp_status *bad)
{
	switch (bad->err) {
	case RP_ERR_REVOKED:
		return RP_OUT_SKIP_REVOKED;
	case RP_ERR_RETIRING:
		return RP_OUT_SKIP_RETIRING;
	case RP_ERR_IO:
	case RP_ERR_HSM:
	case RP_ERR_CRYPTO:
	case RP_ERR_NOMEM:
		return RP_OUT_FAIL_IO;
	default:
		return RP_OUT_FAIL_BAD;
	}
}

int run_is_selected(const struct run *r, size_t k)
{
	if (!r->o->from) {
		return run_key_state(r, k) == RP_KEY_ARCHIVED;
	}
	for (size_t i = 0; i < r->o->num_from; i++) {
		if (!memcmp(r->o->from[i], r->kr->keys[k].id, RP_KEY_ID_LEN)) {
			return 1;
		}
	}
	return 0;
}

/* ring_failed: the ring broke; what it held is unknown, the run stops */
void run_ring_failed(struct run *r, const struct rp_status *st)
{
	run_halt(r, rp_status_msg(st));
}

/*
 * ring_sqe: a slot of this round for request `index`; the rings are sized
 * so that a round fits, and rp_ring_sqe submits in parts if not, so NULL
 * means the ring itself failed
 */
struct io_uring_sqe *run_ring_sqe(struct rp_ring *rg, size_t index)
{
	struct rp_status st = { 0 };
	struct io_uring_sqe *sqe = rp_ring_sqe(rg, &st, index);

	if (!sqe) {
		RP_BUG("io_uring submission failed with a round in hand");
	}
	return sqe;
}

/* job_fail marks a job of the batch failed with a reason */
void run_job_fail(struct job *j, enum rp_outcome out, const char *fmt, ...)
	RP_PRINTF(3, 4);

void run_job_fail(struct job *j, enum rp_outcome out, const char *fmt, ...)
{
	va_list ap;

	j->out = out;
	va_start(ap, fmt);
	if (vsnprintf(j->reason, sizeof(j->reason), fmt, ap) < 0) {
		j->reason[0] = '\0';
	}
	va_end(ap);
}

double run_cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru)) {
		return 0;
	}
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double run_idle_seconds(void)
{
	/* "cpu user nice system idle iowait ...", in clock ticks */
	unsigned long long v[5];
	const long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	char *p = line + 4, *end = NULL;
	int is_read = 0;

	if (f) {
		is_read = fgets(line, sizeof(line), f) != NULL;
		(void)fclose(f);
	}
	if (!is_read || hz <= 0 || strncmp(line, "cpu ", 4)) {
		return -1;
	}
	for (int i = 0; i < 5; i++, p = end) {
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno || end == p) {
			return -1;
		}
	}
	return (double)(v[3] + v[4]) / (double)hz;
}

const char *run_binding_of(const struct run *r, const struct run_bind *d)
{
	const long n = sysconf(_SC_NPROCESSORS_ONLN);
	const double cores = (double)(n > 0 ? n : 1);

	if (d->wall < 0.2) {
		return "-";
	}
	if (d->busy) {
		return "keystore";
	}
	if (r->o->key_ops > 0 &&
	    d->waited > 0.5 * d->wall *
				(double)(r->num_workers ? r->num_workers : 1)) {
		return "key-quota";
	}
	/* this process on most cores, or the machine with no core idle */
	if (d->cpu > 0.75 * d->wall * cores ||
	    (d->idle >= 0 && d->idle < 0.1 * d->wall * cores)) {
		return "cpu";
	}
	return "io";
}

void run_bind_delta(struct run_bind *d, const struct run_bind *from,
		    const struct run_bind *to)
{
	d->wall = to->wall - from->wall;
	d->cpu = to->cpu - from->cpu;
	d->idle = from->idle >= 0 && to->idle >= 0 ? to->idle - from->idle : -1;
	d->waited = to->waited - from->waited;
	d->busy = to->busy - from->busy;
}

/*
 * run_snapshot copies the counts; the binding resource is measured over
 * windows of RUN_BIND_WINDOW seconds (called by one thread at a time:
 * the progress thread, then the caller once it is joined)
 */
#define RUN_BIND_WINDOW 3.0

void run_snapshot(struct run *r, struct rp_run_stats_view *v)
{
	struct timespec now;

	pthread_mutex_lock(&r->mu);
	*v = r->stats;
	pthread_mutex_unlock(&r->mu);
	clock_gettime(CLOCK_MONOTONIC, &now);
	v->seconds = (double)(now.tv_sec - r->start.tv_sec) +
		     (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
	if (v->seconds - r->bind.wall >= RUN_BIND_WINDOW) {
		struct run_bind now_b, d;
		struct rp_key_ops_stats k;

		rp_store_key_ops(r->s, &k);
		now_b = (struct run_bind){ .wall = v->seconds,
					   .cpu = run_cpu_seconds(),
					   .idle = run_idle_seconds(),
					   .waited = k.waited,
					   .busy = k.busy };
		run_bind_delta(&d, &r->bind, &now_b);
		r->binding = run_binding_of(r, &d);
		r->bind = now_b;
	}
	v->binding = r->binding ? r->binding : "-";
}

void *run_progress_main(void *p)
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
		run_snapshot(r, &v);
		r->o->progress(r->o->progress_arg, &v);
	}
	return NULL;
}

/*
 * count_main walks the trees a second time, counting files only, so the
 * progress display can give an ETA; it stops early when the run ends.
 */

void run_fini(struct run *r)
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
	for (size_t i = 0; r->sigs && i < r->num_workers; i++) {
		rp_sig_cache_fini(&r->sigs[i]);
	}
	free(r->sigs);
	run_queue_fini(&r->q_work);
	run_queue_fini(&r->q_sign);
	run_queue_fini(&r->q_write);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->pool_mu);
	pthread_cond_destroy(&r->pool_cv);
}
