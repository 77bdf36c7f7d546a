#ifndef RP_ENGINE_RUN_INTERNAL_H
#define RP_ENGINE_RUN_INTERNAL_H

/*
 * The bulk engine's parts, shared by engine/run*.c only (docs/ARCHITECTURE.md,
 * "A run's threads"): the job, the queues, the run, the writer, and the
 * functions one stage calls in another.
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

#define COPY_BUF       (256 * 1024)
#define XATTR_LIST     (64 * 1024) /* of COPY_BUF: the names; the rest: a value */
#define RP_RUN_WRITERS 2  /* file creation and renames wait on the disk */
#define RP_READ_AHEAD  32 /* documents the walker opens and reads at once */
#define RP_FD_RESERVE  32 /* descriptors kept for the store, rings, walk */
#define RP_FD_PER_JOB  4 /* a job's most: document, new file, its lock, folder \
			  */

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
	int is_sample; /* dry run: prepared, to measure its cost */
	int wfd;
	/*
	 * wfd is O_DIRECT: the header goes down as the document's whole
	 * first block (the new header, then the block's other bytes as read),
	 * so it dirties no page-cache folio (ENGINE.md, "Direct writes");
	 * set by run_open_in_place, meaningful while wfd is open
	 */
	int is_dio;
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
	uint8_t hdr_key[RP_AGE_HEADER_KEY_LEN]; /* file_key's header key */
	uint8_t nonce[RP_AGE_NONCE_LEN];
	struct rp_recip_stanza rs;
	struct rp_license lic;
	int has_lic; /* lic decoded (a census reports its key and id) */
	int is_unseen; /* not looked into: a folder the walk could not read */
	struct rp_buf tbs;
	struct rp_afile af;
};
struct queue {
	pthread_mutex_t mu;
	pthread_cond_t can_pop, can_push;
	struct job **items;
	size_t cap, head, len;
	size_t pop_want; /* what a waiting consumer waits for (1 if none) */
	unsigned pop_waiters, push_waiters;
	int is_closed;
};
/* what tells which resource binds: seconds (or counts) at a moment */
struct run_bind {
	double wall, cpu, idle, waited;
	uint64_t busy;
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
	struct timespec start;	       /* CLOCK_MONOTONIC, for rates */
	struct timespec started;       /* CLOCK_REALTIME, against file times */
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
	/* a dry run's estimate (under mu): see rp_run_estimate */
	struct rp_run_estimate est;
	int samples_left; /* would-move documents still to sample */
	/* which resource binds, over the last window (run_snapshot) */
	struct run_bind bind;
	const char *binding;
	/*
	 * the key states as last read from disk (a life-cycle command in
	 * another process may change them during the run); byte k for key
	 * k, read and written atomically
	 */
	uint8_t *state_now;
	int out_fd;  /* --out: the mirror's root folder, else -1 */
	size_t ra_n; /* documents read ahead at once (<= RP_READ_AHEAD) */
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
 * The mirror (--out): each thread keeps the folder it used last, since
 * documents come folder by folder.
 */
struct out_cache {
	char dir[PATH_MAX]; /* below the mirror's root; "" for the root */
	struct folder *f;
};
struct worker_arg {
	struct run *r;
	size_t index;
};
struct writer {
	struct run *r;
	struct rp_stream *open_s, *seal_s;
	uint8_t *buf;
	struct job **batch;
	size_t n;
	struct rp_ring ring;
	int has_ring;
	struct folder **dirs;	/* the batch's folders, each fsynced once */
	const char **dir_names; /* a document of each, for messages */
	uint8_t *states;	/* the key states read before a commit */
	int lock_fd;		/* this writer's descriptor of the store lock */
	struct out_cache oc;
	struct rp_wal *wal; /* in place: this writer's journal, once used */
	struct rp_wal_doc *wdocs; /* in place: the batch's journal records */
	uint8_t *blk; /* in place: RP_DIO_BLOCK per batch slot, or NULL */
};

/* RP_DIO_BLOCK: a direct header write's size, alignment and offset 0 */
#define RP_DIO_BLOCK 4096

int run_claim_inode(struct run *r, dev_t dev, ino_t ino);
struct folder *run_folder_new(int fd);
struct folder *run_folder_ref(struct folder *f);
void run_folder_put(struct folder *f);
int run_queue_init(struct queue *q, size_t cap);
void run_queue_fini(struct queue *q);
void run_queue_push(struct queue *q, struct job *j);
void run_queue_push_n(struct queue *q, struct job *const *js, size_t n);
struct job *run_queue_pop(struct queue *q);
size_t run_queue_pop_n(struct queue *q, struct job **out, size_t max,
		       size_t want, const struct timespec *deadline);
void run_queue_close(struct queue *q);
struct job *run_job_get(struct run *r);
void run_finish(struct run *r, struct job *j, enum rp_outcome out,
		const char *fmt, ...) RP_PRINTF(4, 5);
int run_is_halted(struct run *r);
int run_is_fatal_errno(int e);
int run_is_fatal(const struct rp_status *st);
void run_halt(struct run *r, const char *why);
void run_not_started(struct run *r, struct job *j);
void run_out_cache_fini(struct out_cache *oc);
enum rp_err run_out_folder(struct run *r, struct out_cache *oc, struct job *j,
			   struct rp_status *st);
uint8_t run_key_state(const struct run *r, size_t k);
int run_is_gone(uint8_t state);
/* run_gone_outcome: skipped-retiring-key or skipped-revoked-key */
enum rp_outcome run_gone_outcome(uint8_t state);
/* run_outcome_of: how a failed check (a key state, the system, the
 * document) ends the document */
enum rp_outcome run_outcome_of(const struct rp_status *bad);
int run_is_selected(const struct run *r, size_t k);
int run_keep_problem(const struct job *j, char *why, size_t why_len);
void *run_worker_main(void *p);
void *run_signer_main(void *p);
void run_ring_failed(struct run *r, const struct rp_status *st);
struct io_uring_sqe *run_ring_sqe(struct rp_ring *rg, size_t index);
enum rp_err run_copy_payload(struct writer *w, struct job *j,
			     struct rp_status *st);
enum rp_err run_cannot_keep(struct job *j, struct rp_status *st,
			    const char *fmt, ...) RP_PRINTF(3, 4);
enum rp_err run_keep_meta(struct writer *w, struct job *j,
			  struct rp_status *st);
enum rp_err run_copy_whole(struct writer *w, struct job *j,
			   struct rp_status *st);
enum rp_err run_new_file(struct writer *w, struct job *j, struct rp_status *st);
int run_open_in_place(struct job *j, int can_dio);
void run_job_fail(struct job *j, enum rp_outcome out, const char *fmt, ...)
	RP_PRINTF(3, 4);
void run_sync_files(struct writer *w, int use_ring, int *res);
void run_close_files(struct writer *w, int use_ring, int *res);
void run_may_commit(struct run *r, struct job *j, int is_keys_ok);
void run_rename_all(struct writer *w, int use_ring, int *res);
void run_sync_dirs(struct writer *w, int use_ring, int *res);
void run_write_in_place(struct writer *w, int use_ring, int *res);
void *run_writer_main(void *p);
void run_snapshot(struct run *r, struct rp_run_stats_view *v);
/* the process's CPU seconds (user and system) */
double run_cpu_seconds(void);
/* the machine's idle seconds, all cores (/proc/stat); -1: unknown */
double run_idle_seconds(void);
/* run_bind_delta: d = to - from (idle -1 when either is unknown) */
void run_bind_delta(struct run_bind *d, const struct run_bind *from,
		    const struct run_bind *to);
/* the resource that bound over d (rp_run_stats_view.binding) */
const char *run_binding_of(const struct run *r, const struct run_bind *d);
void *run_progress_main(void *p);
void *run_count_main(void *p);
int run_out_path(const struct run *r, struct job *j,
		 const struct rp_walk_entry *e);
void run_rd_init(struct run *r);
void run_rd_fini(struct run *r);
enum rp_err run_walk(struct run *r, struct rp_status *st);
void run_fini(struct run *r);
enum rp_err run_writer_init(struct writer *w, struct run *r,
			    struct rp_status *st);
void run_writer_fini(struct writer *w);

#endif
