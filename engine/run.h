#ifndef RP_ENGINE_RUN_H
#define RP_ENGINE_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "license.h"
#include "rp_compiler.h"
#include "rp_err.h"
#include "store.h"
#include "wal.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The bulk re-protection engine (docs/ENGINE.md): walk the trees,
 * move every document under an archived key (or under the --from keys) to
 * the active key, write each back atomically.
 *
 * walk -> workers (read header, check license, unwrap, wrap) -> batch
 * signer (one signature per batch) -> writer (temporary file, payload,
 * group fsync, source unchanged?, rename, directory fsync) -> journal.
 */

enum rp_run_mode {
	RP_RUN_REWRAP = 1,    /* new recipient stanza and license; same payload */
	RP_RUN_REENCRYPT = 2, /* and a new file key, nonce and payload */
};

enum rp_run_io {
	RP_IO_SYNC = 1,
	RP_IO_URING = 2,
};

enum rp_durability {
	RP_DURABLE_BATCH = 1, /* fsync a batch together, then rename */
	RP_DURABLE_EACH = 2,  /* fsync and rename each document in turn */
	RP_DURABLE_NONE = 3,  /* rename without fsync (crash-safe, not power-safe) */
};

/* A document's outcome. The values and names are stable (reports). */
enum rp_outcome {
	RP_OUT_MOVED = 0,	      /* now under the active key */
	RP_OUT_WOULD_MOVE = 1,	      /* dry run: would be moved */
	RP_OUT_CURRENT = 2,	      /* already under the active key */
	RP_OUT_SKIP_NOT_SELECTED = 3, /* under a key --from did not name */
	RP_OUT_SKIP_REVOKED = 4,      /* under a revoked or destroyed key */
	RP_OUT_SKIP_UNKNOWN_KEY = 5,  /* under a key not in the store */
	RP_OUT_SKIP_UNLICENSED = 6,   /* a plain age file */
	RP_OUT_SKIP_NOT_AGE = 7,      /* not an age file at all */
	RP_OUT_SKIP_NOT_FILE = 8,     /* symlink, special file, loop, ... */
	RP_OUT_FAIL_BAD = 9,	  /* malformed or tampered: left as it was */
	RP_OUT_FAIL_CHANGED = 10, /* changed while the run read it */
	RP_OUT_FAIL_IO = 11,	  /* I/O or key store error */
	RP_OUT_VERIFIED = 12,	  /* verify: opens, every check passes */
	RP_OUT_SKIP_BUSY = 13,	  /* another process holds its lock */
	RP_OUT_SKIP_CANNOT_KEEP = 14, /* a rewrite would lose its links,
					owner, mode or an attribute */
	RP_OUT_SKIP_RETIRING = 15, /* under a retiring key: it opens nothing */
	RP_OUT_NUM = 16,
};

/* rp_outcome_name returns "moved", "current", "skipped-revoked", ... */
const char *rp_outcome_name(enum rp_outcome o);

/*
 * A document as the run saw it (rp_run_opts.on_doc): its outcome, its
 * path (as in the journal), size, the key its license names (the
 * store's key where it is one; NULL: no license decoded) and its
 * document id (NULL: no license decoded). Borrowed for the call.
 */
struct rp_run_doc {
	enum rp_outcome out;
	const char *path;
	uint64_t size;
	const uint8_t *key_id; /* RP_KEY_ID_LEN bytes, or NULL */
	const uint8_t *doc_id; /* RP_DOC_ID_LEN bytes, or NULL */
	/*
	 * not looked into (skipped-not-file for a folder the walk could not
	 * read, too deep or too long a path, one that changed, a file that
	 * became a link): documents may be there that nobody saw
	 */
	int is_unseen;
};

/* Counts while running and at the end. */
struct rp_run_stats_view {
	uint64_t num[RP_OUT_NUM];
	uint64_t bytes[RP_OUT_NUM];
	uint64_t num_seen;
	uint64_t num_batches;
	uint64_t batch_min, batch_max;
	uint64_t tmp_removed; /* leftovers of a killed run */
	uint64_t read_ahead;  /* opened, stat'ed and read through the ring */
	uint64_t in_place;    /* moved: the header rewritten in place */
	uint64_t copied;      /* moved: the document written anew */
	uint64_t bytes_written; /* by the moves: headers in place, copies */
	uint64_t num_total;   /* files in the trees, once counted */
	int is_total_known;   /* the counting walk has finished */
	double seconds;
	/*
	 * the resource that binds now (run_snapshot, over the last few
	 * seconds; for the whole run in the result): "key-quota" (threads
	 * wait for --key-ops slots), "keystore" (it answered busy), "cpu"
	 * (the process uses most of the cores), else "io" (the disk, the
	 * file server, or a keystore's latency); "-" before it is known
	 */
	const char *binding;
};

/*
 * A dry run's estimate: what moving the documents it found would take.
 * The first RP_RUN_SAMPLES documents that would move are checked and
 * unwrapped as a run would (nothing is written), to measure their cost.
 */
#define RP_RUN_SAMPLES 16
struct rp_run_estimate {
	uint64_t docs, bytes;	 /* would move */
	uint64_t in_place;	 /* of them, a header rewrite in place */
	uint64_t copies;	 /* written anew */
	uint64_t bytes_to_write; /* 4096 per header in place, whole copies */
	uint64_t samples;	 /* documents measured */
	/* each one's CPU seconds (checks, unwrap, wrap) and seconds (with a
	 * keystore's latency) */
	double sample_cpu[RP_RUN_SAMPLES];
	double sample_wall[RP_RUN_SAMPLES];
};

struct rp_run_opts {
	const char *const *roots;
	size_t num_roots;
	enum rp_run_mode mode;
	const uint8_t (*from)[RP_KEY_ID_LEN]; /* NULL: every archived key */
	size_t num_from;
	size_t jobs;	     /* crypto workers; 0: one per core */
	size_t batch;	     /* licenses per signature; 0: 64 */
	unsigned batch_ms;   /* wait at most this for a batch; 0: 50 */
	enum rp_run_io io;
	enum rp_durability durability;
	uint64_t shard_i, shard_n; /* shard_n 0: no sharding */
	int is_dry_run;
	/*
	 * NULL: in place. Else a mirror tree: DIR/REL (DIR/ROOTNAME/REL with
	 * several roots) gets each moved document, and each document already
	 * under the active key as it is; existing files there are kept.
	 */
	const char *out_dir;
	int is_verify; /* check that every document opens; change nothing */
	int no_in_place; /* copy every moved document (a new file each) */
	FILE *journal; /* borrowed; NULL: none. One line per document */
	/* progress: called about twice a second from a separate thread */
	void (*progress)(void *arg, const struct rp_run_stats_view *v);
	void *progress_arg;
	/* lines a person should read (recovery of a killed run); may be NULL */
	void (*log)(void *arg, const char *line);
	void *log_arg;
	volatile sig_atomic_t *stop; /* set: no new document starts */
	/*
	 * the keystore quota: at most this many private-key operations a
	 * second (unwraps and batch signatures together), spread evenly;
	 * 0: no cap. A shard gives its share (rate / N).
	 */
	double key_ops;
	/*
	 * A census (with is_dry_run): every document under a key other than
	 * the active one must be authentic as well (license, bindings and
	 * signature, as a current one must be) to be counted under its key;
	 * any other is failed-bad. Nothing is checked for moving (links,
	 * owner, attributes).
	 */
	int is_census;
	/* called once per document, in turn (under the run's lock) */
	void (*on_doc)(void *arg, const struct rp_run_doc *d);
	void *on_doc_arg;
};

/* Per-key counts for the report. */
struct rp_run_key_stats {
	uint8_t id[RP_KEY_ID_LEN];
	uint8_t state;
	uint64_t num[RP_OUT_NUM];
	uint64_t bytes[RP_OUT_NUM];
};

struct rp_run_result {
	struct rp_run_stats_view total;
	size_t num_keys;
	struct rp_run_key_stats *keys; /* owned; free with rp_run_result_fini */
	int was_stopped; /* by a signal, or halted by a fault (stop_reason) */
	char stop_reason[320];
	char active_key[2 * RP_KEY_ID_LEN + 1];
	const char *io_used; /* "uring" or "sync" */
	/* private-key operations the run asked of its keystores, the rate
	 * allowed (0: no cap), the seconds its threads waited for it, the
	 * keystore's busy answers and the pace they left (0: not paced) */
	uint64_t key_ops;
	double key_ops_allowed;
	double key_ops_waited;
	uint64_t key_ops_busy;
	double key_ops_pace;
	/* a dry run's estimate (zero otherwise), and the run's workers */
	struct rp_run_estimate estimate;
	size_t workers;
	/* what the journals of killed runs held (rp_wal_recover) */
	struct rp_wal_recovery recovery;
};

/*
 * rp_run runs the engine over opts->roots with the store's active key.
 * Returns RP_OK when the run went through (documents may still have
 * failed: see result->total.num[RP_OUT_FAIL_*]), or an error that stopped
 * it (no active key, no such root). Call rp_run_result_fini after.
 */
RP_MUST_CHECK enum rp_err rp_run(struct rp_store *s, struct rp_status *st,
				 const struct rp_run_opts *o,
				 struct rp_run_result *result);

void rp_run_result_fini(struct rp_run_result *r);

/*
 * rp_run_recover settles what killed runs left in the store's journals
 * (rp_wal_recover): every torn header gets its old header back. rp_run
 * calls it first (but for a dry run); 'reprotect recover' alone.
 */
RP_MUST_CHECK enum rp_err rp_run_recover(const char *store_dir,
					 struct rp_status *st,
					 struct rp_wal_recovery *out,
					 void (*log)(void *arg,
						     const char *line),
					 void *log_arg);

/*
 * rp_run_check_out refuses (RP_ERR_USAGE) a mirror (opts->out_dir) that
 * overlaps a root: the same folder, one inside the other, or one reached
 * through a bind mount, compared by device and inode (a walk of the
 * roots' folders). rp_run checks it too; a caller checks first to refuse
 * before it writes anything of its own (a journal).
 */
RP_MUST_CHECK enum rp_err rp_run_check_out(const struct rp_run_opts *o,
					   struct rp_status *st);

#ifdef __cplusplus
}
#endif
#endif
