#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "afile.h"
#include "cli.h"
#include "journal.h"
#include "rp_file.h"
#include "rp_b64.h"
#include "rp_clock.h"
#include "rp_json.h"
#include "run.h"

static const char help[] =
	"usage: reprotect run PATH... (--in-place | --out DIR)\n"
	"                     [--mode rewrap|reencrypt]\n"
	"                     [--from KEY]... [--jobs N] [--batch N]\n"
	"                     [--batch-ms T] [--io uring|sync]\n"
	"                     [--durability batch|each|none] [--shard I/N]\n"
	"                     [--dry-run] [--report FILE] [--json]\n"
	"                     [--journal FILE] [--quiet] [--copy]\n"
	"                     [--key-ops RATE]\n"
	"\n"
	"Moves every document under an archived key (or under the keys --from\n"
	"names) to the active key, each written atomically. Run it\n"
	"again to resume: documents already under the active key are skipped\n"
	"after a header read, and leftovers of a killed run are removed.\n"
	"Documents under revoked or unknown keys, unlicensed, malformed or\n"
	"tampered ones, and files that change during the run are reported\n"
	"and left byte for byte as they were. Symbolic links are never\n"
	"followed; special files are ignored. Owner, mode (set-id bits too),\n"
	"times, extended attributes and ACLs are kept; a document that a\n"
	"rewrite cannot keep whole (hard links; another owner or an\n"
	"attribute it may not set, when not root) is skipped-cannot-keep.\n"
	"A document another run is rewriting is skipped-busy (it holds the\n"
	"document's lock): run again to take it. A key revoked, destroyed\n"
	"or replaced by another process during the run is seen before the\n"
	"next batch commits: no document is committed under a key that is\n"
	"not active then.\n"
	"\n"
	"  --in-place         write each document back where it is: a\n"
	"                     rewrap overwrites the header alone when the new\n"
	"                     one fits in the old one's place (documents\n"
	"                     protected with slack, to a key of the same\n"
	"                     type and size), under a write-ahead journal in\n"
	"                     the store; any other document is written anew\n"
	"                     (a new file renamed over it)\n"
	"  --copy             write every moved document anew, even where\n"
	"                     its header could be rewritten in place\n"
	"  --out DIR          leave the trees as they are and write a mirror:\n"
	"                     DIR/REL (DIR/ROOTNAME/REL with several PATHs)\n"
	"                     gets each moved document, and each document\n"
	"                     already under the active key as it is; files\n"
	"                     already in DIR are kept (a rerun resumes); DIR\n"
	"                     may not overlap a PATH (compared by device and\n"
	"                     inode, bind mounts too); links in DIR are\n"
	"                     never followed\n"
	"  --mode M           rewrap (default): new recipient stanza and\n"
	"                     license, payload unchanged; reencrypt: also a "
	"new\n"
	"                     file key and payload (after a key leak)\n"
	"  --from KEY         only documents under KEY (repeatable; default:\n"
	"                     every archived key)\n"
	"  --jobs N           crypto workers (default: one per core)\n"
	"  --batch N          licenses per signature (default 64, max 1024;\n"
	"                     1 signs each document)\n"
	"  --batch-ms T       wait at most T ms to fill a batch (default 50)\n"
	"  --io uring|sync    commit batches through io_uring (default) or\n"
	"                     plain calls; see docs/ENGINE.md for what the\n"
	"                     ring does today\n"
	"  --durability D     batch (default): a batch of new files is "
	"fsynced\n"
	"                     together before any is renamed, then each "
	"folder\n"
	"                     once; each: per document; none: no fsync\n"
	"                     (crash-safe, not power-cut-safe)\n"
	"  --shard I/N        only the documents whose path (relative to its\n"
	"                     root) hashes to shard I of N; with --shard N\n"
	"                     alone, I comes from JOB_COMPLETION_INDEX or\n"
	"                     SLURM_ARRAY_TASK_ID\n"
	"  --key-ops RATE     ask the keystore for at most RATE private-key\n"
	"                     operations a second (unwraps and signatures),\n"
	"                     spread evenly; with --shard I/N this shard\n"
	"                     takes RATE/N. The store's own quota\n"
	"                     ('reprotect quota') binds too: RATE may\n"
	"                     only lower it. The report shows the rate\n"
	"                     reached against the rate allowed\n"
	"  --dry-run          read headers only (and check 16 documents\n"
	"                     to measure them); print the plan and an\n"
	"                     estimate: key operations, their time at the\n"
	"                     quota, the workers' time, what binds\n"
	"  --report FILE      write the JSON report to FILE\n"
	"  --json             print the JSON report on standard output\n"
	"  --journal FILE     one line per document (default: in the store's\n"
	"                     runs/ folder)\n"
	"  --quiet            no progress display\n"
	"\n"
	"'reprotect verify PATH... [--jobs N] [--json] [--report FILE]'\n"
	"changes nothing: it checks that every document opens (license,\n"
	"signature, bindings, key state, header MAC, every payload chunk)\n"
	"and reports per key; exit 0 only if all of them do.\n"
	"\n"
	"Each run (and verify) first recovers what a killed run left: a\n"
	"header torn by a crash or a power cut gets its old header back from\n"
	"the journal ('reprotect recover' does only that).\n"
	"\n"
	"SIGINT or SIGTERM: no new document starts, those in flight finish,\n"
	"the journal and report are written (exit code 8). A second signal\n"
	"stops at once; no document is ever left torn.\n"
	"\n"
	"A fault that every later document would meet too stops the run the\n"
	"same way (exit code 8, the reason on stderr and in the report):\n"
	"the keystore still unavailable after its retries, the disk full\n"
	"(ENOSPC, EDQUOT) or read-only (EROFS), no descriptors or memory\n"
	"left, or the run's target key no longer active (revoked,\n"
	"destroyed or replaced by another process). Any other fault fails "
	"only\n"
	"the document it hit (failed-io, with the reason), and the run goes\n"
	"on. Either way the document stays as it was.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum {
	OPT_IN_PLACE = RP_OPT_FIRST_CMD,
	OPT_OUT,
	OPT_MODE,
	OPT_FROM,
	OPT_JOBS,
	OPT_BATCH,
	OPT_BATCH_MS,
	OPT_IO,
	OPT_DURABILITY,
	OPT_SHARD,
	OPT_DRY_RUN,
	OPT_REPORT,
	OPT_JSON,
	OPT_JOURNAL,
	OPT_QUIET,
	OPT_COPY,
	OPT_KEY_OPS,
};

volatile sig_atomic_t rp_cli_stop_flag;

void rp_cli_print_line(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "reprotect: %s\n", line);
}

static void on_signal(int sig)
{
	volatile sig_atomic_t *const stop_flag = &rp_cli_stop_flag;

	static const char msg[] =
		"\nreprotect: stopping: documents in flight finish; signal "
		"again to stop at once\n";

	(void)sig;
	if (*stop_flag) {
		_exit(130); /* temporaries only: no document is torn */
	}
	*stop_flag = 1;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
}

void rp_cli_on_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void rp_cli_show_progress(void *arg, const struct rp_run_stats_view *v)
{
	struct rp_cli_progress *p = arg;
	const uint64_t done = v->num[RP_OUT_MOVED] + v->num[RP_OUT_WOULD_MOVE];
	uint64_t skipped = 0, failed = 0;
	const double rate = v->seconds > 0 ? (double)done / v->seconds : 0;
	char eta[32];

	for (int o = RP_OUT_CURRENT; o <= RP_OUT_SKIP_NOT_FILE; o++) {
		skipped += v->num[o];
	}
	skipped += v->num[RP_OUT_SKIP_BUSY] + v->num[RP_OUT_SKIP_CANNOT_KEEP] +
		   v->num[RP_OUT_SKIP_RETIRING];
	failed = v->num[RP_OUT_FAIL_BAD] + v->num[RP_OUT_FAIL_CHANGED] +
		 v->num[RP_OUT_FAIL_IO];
	if (v->is_total_known && v->num_seen && v->seconds > 1 &&
	    v->num_total >= v->num_seen) {
		const double per = v->seconds / (double)v->num_seen;
		const double left = per * (double)(v->num_total - v->num_seen);

		snprintf(eta, sizeof(eta), "ETA %d:%02d", (int)(left / 60),
			 (int)left % 60);
	} else {
		snprintf(eta, sizeof(eta), "ETA -");
	}
	if (p->is_tty) {
		fprintf(stderr,
			"\r%8llu moved  %9.1f MB  %7.0f docs/s  %7llu/%llu%s "
			"seen  %6llu skipped  %5llu failed  %s  binds: %-9s ",
			(unsigned long long)done,
			(double)(v->bytes[RP_OUT_MOVED] +
				 v->bytes[RP_OUT_WOULD_MOVE]) /
				1e6,
			rate, (unsigned long long)v->num_seen,
			(unsigned long long)v->num_total,
			v->is_total_known ? "" : "+",
			(unsigned long long)skipped, (unsigned long long)failed,
			eta, v->binding);
		(void)fflush(stderr);
	} else if (v->seconds - p->last_line >= 10) {
		p->last_line = v->seconds;
		fprintf(stderr,
			"reprotect: %.0f s: %llu moved, %.0f docs/s, %llu "
			"seen, %llu skipped, %llu failed, %s, binds: %s\n",
			v->seconds, (unsigned long long)done, rate,
			(unsigned long long)v->num_seen,
			(unsigned long long)skipped, (unsigned long long)failed,
			eta, v->binding);
	}
}

int rp_cli_parse_u64(const char *s, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !end || *end || end == s || s[0] == '-') {
		return 0;
	}
	*out = v;
	return 1;
}

int rp_cli_parse_io(const char *arg, enum rp_run_io *out)
{
	if (!strcmp(arg, "uring")) {
		*out = RP_IO_URING;
	} else if (!strcmp(arg, "sync")) {
		*out = RP_IO_SYNC;
	} else {
		return 0;
	}
	return 1;
}

int rp_cli_parse_shard(const char *arg, uint64_t *i, uint64_t *n)
{
	const char *slash = strchr(arg, '/');
	char head[32];

	if (!slash) {
		const char *env = getenv("JOB_COMPLETION_INDEX");

		if (!env || !*env) {
			env = getenv("SLURM_ARRAY_TASK_ID");
		}
		if (!env || !rp_cli_parse_u64(arg, n) ||
		    !rp_cli_parse_u64(env, i)) {
			return 0;
		}
	} else {
		if ((size_t)(slash - arg) >= sizeof(head)) {
			return 0;
		}
		snprintf(head, sizeof(head), "%.*s", (int)(slash - arg), arg);
		if (!rp_cli_parse_u64(head, i) ||
		    !rp_cli_parse_u64(slash + 1, n)) {
			return 0;
		}
	}
	return *n >= 1 && *i < *n;
}

static uint64_t key_bytes(const struct rp_run_key_stats *ks)
{
	uint64_t b = 0;

	for (int k = 0; k < RP_OUT_NUM; k++) {
		b += ks->bytes[k];
	}
	return b;
}

/*
 * report_docs lists the journal's skipped and failed documents as JSON;
 * rp_journal_parse_line drops any line the engine did not write.
 */
static void report_docs(FILE *f, FILE *journal)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int first = 1;

	rewind(journal);
	fprintf(f, "  \"documents\": [");
	while ((n = getline(&line, &cap, journal)) > 0) {
		struct rp_journal_line jl;
		size_t len = (size_t)n;

		if (line[len - 1] == '\n') {
			len--;
		}
		if (rp_journal_parse_line(&jl, line, len) ||
		    jl.out == RP_OUT_MOVED || jl.out == RP_OUT_VERIFIED ||
		    jl.out == RP_OUT_CURRENT || jl.out == RP_OUT_WOULD_MOVE) {
			continue;
		}
		fprintf(f, "%s\n    {\"outcome\": \"%s\", \"key\": \"%s\", "
			   "\"path\": ",
			first ? "" : ",", jl.outcome, jl.key);
		rp_json_cstr(f, jl.path);
		fprintf(f, ", \"reason\": ");
		rp_json_cstr(f, jl.reason);
		fprintf(f, "}");
		first = 0;
	}
	free(line);
	fprintf(f, "%s]\n", first ? "" : "\n  ");
}

/*
 * The dry run's estimate, in seconds per resource: the key operations
 * (an unwrap per document, a signature per batch) at the quota; the
 * workers' time per document as the samples measured it, all workers
 * at once (CPU, and a keystore's latency where it is more than the CPU);
 * what would be written (not timed: the disk's rate is not measured).
 */
struct estimate {
	uint64_t key_ops;
	double quota_s;	 /* 0: no quota */
	double cpu_doc;	 /* CPU seconds per document, measured */
	double wall_doc; /* seconds per document, measured */
	double work_s;	 /* the workers' time for all documents */
	const char *binds;
};

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, uint64_t n)
{
	double t[RP_RUN_SAMPLES];

	n = n < RP_RUN_SAMPLES ? n : RP_RUN_SAMPLES;
	memcpy(t, v, n * sizeof(*t));
	qsort(t, n, sizeof(*t), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void estimate_of(struct estimate *e, const struct rp_run_opts *o,
			const struct rp_run_result *res)
{
	const struct rp_run_estimate *x = &res->estimate;
	const uint64_t batch = o->batch ? o->batch : 64;
	const double workers = (double)(res->workers ? res->workers : 1);

	memset(e, 0, sizeof(*e));
	e->key_ops = x->docs + (x->docs + batch - 1) / batch;
	e->quota_s = o->key_ops > 0 ? (double)e->key_ops / o->key_ops : 0;
	if (x->samples) { /* medians: the first ones pay for warming up */
		e->cpu_doc = median(x->sample_cpu, x->samples);
		e->wall_doc = median(x->sample_wall, x->samples);
	}
	e->work_s = e->wall_doc * (double)x->docs / workers;
	if (!x->docs) {
		e->binds = "-";
	} else if (e->quota_s > e->work_s) {
		e->binds = "key-quota";
	} else if (!x->samples) {
		e->binds = "unknown (no document could be measured)";
	} else {
		e->binds = e->wall_doc > 1.5 * e->cpu_doc ? "keystore" : "cpu";
	}
}

static void estimate_json(FILE *f, const struct rp_run_opts *o,
			  const struct rp_run_result *res)
{
	const struct rp_run_estimate *x = &res->estimate;
	struct estimate e;

	estimate_of(&e, o, res);
	fprintf(f,
		"  \"estimate\": {\"documents\": %llu, \"bytes\": %llu, "
		"\"key_ops\": %llu, \"key_ops_seconds_at_quota\": ",
		(unsigned long long)x->docs, (unsigned long long)x->bytes,
		(unsigned long long)e.key_ops);
	if (e.quota_s > 0) {
		fprintf(f, "%.1f", e.quota_s);
	} else {
		fprintf(f, "null");
	}
	fprintf(f,
		", \"samples\": %llu, \"cpu_us_per_document\": %.0f, "
		"\"us_per_document\": %.0f, \"workers\": %zu, "
		"\"work_seconds\": %.1f, \"in_place\": %llu, \"copies\": "
		"%llu, \"bytes_to_write\": %llu, \"binds\": ",
		(unsigned long long)x->samples, e.cpu_doc * 1e6,
		e.wall_doc * 1e6, res->workers, e.work_s,
		(unsigned long long)x->in_place, (unsigned long long)x->copies,
		(unsigned long long)x->bytes_to_write);
	rp_json_cstr(f, e.binds);
	fprintf(f, "},\n");
}

static void print_estimate(const struct rp_run_opts *o,
			   const struct rp_run_result *res)
{
	const struct rp_run_estimate *x = &res->estimate;
	struct estimate e;

	estimate_of(&e, o, res);
	if (!x->docs) {
		return;
	}
	printf("estimate: %llu key operations (an unwrap a document, a "
	       "signature a batch)\n",
	       (unsigned long long)e.key_ops);
	if (e.quota_s > 0) {
		printf("  at the quota (%.1f/s):%*s%.1f s\n", o->key_ops, 6, "",
		       e.quota_s);
	} else {
		printf("  no quota (--key-ops): the keystore's own rate binds "
		       "it\n");
	}
	if (x->samples) {
		printf("  %zu workers, %.0f us a document (%.0f us of CPU; "
		       "%llu measured): %.1f s\n",
		       res->workers, e.wall_doc * 1e6, e.cpu_doc * 1e6,
		       (unsigned long long)x->samples, e.work_s);
	}
	printf("  written: %llu headers in place, %llu documents anew, "
	       "%.1f MB (the disk's time is not estimated)\n",
	       (unsigned long long)x->in_place, (unsigned long long)x->copies,
	       (double)x->bytes_to_write / 1e6);
	printf("  binds: %s\n", e.binds);
}

/* what a report says beyond the engine's result */
struct report_ctx {
	const struct rp_run_opts *o;
	const struct rp_run_result *res;
	struct rp_store *s;
	FILE *journal;
	double started, ended; /* seconds since the epoch */
	int exit_code;	       /* what the command returns */
};

static const char *mode_name(const struct rp_run_opts *o)
{
	return o->is_verify		     ? "verify"
	       : o->mode == RP_RUN_REENCRYPT ? "reencrypt"
					     : "rewrap";
}

static void json_key_id(FILE *f, const uint8_t *id, int is_first)
{
	char hex[2 * RP_KEY_ID_LEN + 1];

	rp_key_id_hex(hex, id);
	fprintf(f, "%s\"%s\"", is_first ? "" : ", ", hex);
}

/*
 * write_identity writes the run's identity, what every shard of one run
 * shares and 'report merge' compares: the store, what was asked (mode,
 * roots resolved to absolute paths, --from), the keys it moved from (the
 * --from keys, else every key archived at the end of the run) and to,
 * and which shard of how many.
 */
static void write_identity(FILE *f, const struct report_ctx *c)
{
	const struct rp_run_opts *o = c->o;
	const struct rp_keyring *kr = rp_store_keyring(c->s);
	char world[2 * RP_STORE_WORLD_ID_LEN + 1];
	int is_first = 1;

	rp_hex_encode(world, rp_store_world_id(c->s), RP_STORE_WORLD_ID_LEN);
	fprintf(f,
		"  \"run\": {\"store\": \"%s\", \"mode\": \"%s\", "
		"\"dry_run\": %s,\n    \"roots\": [",
		world, mode_name(o), o->is_dry_run ? "true" : "false");
	for (size_t i = 0; i < o->num_roots; i++) {
		char *real = realpath(o->roots[i], NULL);

		fprintf(f, "%s", i ? ", " : "");
		rp_json_cstr(f, real ? real : o->roots[i]);
		free(real);
	}
	fprintf(f, "],\n    \"from\": ");
	if (o->num_from) {
		fprintf(f, "[");
		for (size_t i = 0; i < o->num_from; i++) {
			json_key_id(f, o->from[i], !i);
		}
		fprintf(f, "]");
	} else {
		fprintf(f, "null");
	}
	fprintf(f, ",\n    \"source_keys\": [");
	for (size_t i = 0; i < kr->num_keys; i++) {
		const struct rp_key_info *k = &kr->keys[i];
		int is_source = !o->num_from && k->state == RP_KEY_ARCHIVED;

		for (size_t j = 0; j < o->num_from; j++) {
			is_source |= !memcmp(o->from[j], k->id, RP_KEY_ID_LEN);
		}
		if (is_source) {
			json_key_id(f, k->id, is_first);
			is_first = 0;
		}
	}
	fprintf(f,
		"],\n    \"target_key\": \"%s\",\n"
		"    \"shard\": {\"index\": %llu, \"of\": %llu}},\n",
		c->res->active_key,
		(unsigned long long)(o->shard_n > 1 ? o->shard_i : 0),
		(unsigned long long)(o->shard_n > 1 ? o->shard_n : 1));
}

static void write_report(FILE *f, const struct report_ctx *c)
{
	const struct rp_run_opts *o = c->o;
	const struct rp_run_result *res = c->res;
	const struct rp_keyring *kr = rp_store_keyring(c->s);
	const struct rp_run_stats_view *v = &res->total;
	const uint64_t moved = v->num[RP_OUT_MOVED];
	char host[256] = "";

	(void)gethostname(host, sizeof(host) - 1);
	fprintf(f, "{\n  \"mode\": \"%s\",\n  \"dry_run\": %s,\n", mode_name(o),
		o->is_dry_run ? "true" : "false");
	write_identity(f, c);
	fprintf(f, "  \"host\": ");
	rp_json_cstr(f, host);
	fprintf(f,
		",\n  \"started_unix\": %.3f,\n  \"ended_unix\": %.3f,\n"
		"  \"exit_code\": %d,\n",
		c->started, c->ended, c->exit_code);
	fprintf(f, "  \"io\": \"%s\",\n  \"durability\": \"%s\",\n",
		res->io_used,
		o->durability == RP_DURABLE_EACH   ? "each"
		: o->durability == RP_DURABLE_NONE ? "none"
						   : "batch");
	fprintf(f, "  \"active_key\": \"%s\",\n  \"stopped\": %s,\n",
		res->active_key, res->was_stopped ? "true" : "false");
	fprintf(f, "  \"binding\": \"%s\",\n", v->binding ? v->binding : "-");
	if (o->is_dry_run && !o->is_census) {
		estimate_json(f, o, res);
	}
	if (res->was_stopped) {
		fprintf(f, "  \"stop_reason\": ");
		rp_json_cstr(f, res->stop_reason);
		fprintf(f, ",\n");
	}
	fprintf(f, "  \"seconds\": %.3f,\n  \"documents_seen\": %llu,\n",
		v->seconds, (unsigned long long)v->num_seen);
	/* the progress total (a walk of its own), when it finished first */
	if (v->is_total_known) {
		fprintf(f, "  \"documents_counted\": %llu,\n",
			(unsigned long long)v->num_total);
	} else {
		fprintf(f, "  \"documents_counted\": null,\n");
	}
	fprintf(f, "  \"moved_per_second\": %.1f,\n  \"moved_mb_per_second\": "
		   "%.2f,\n",
		v->seconds > 0 ? (double)moved / v->seconds : 0,
		v->seconds > 0 ? (double)v->bytes[RP_OUT_MOVED] / 1e6 /
					 v->seconds
			       : 0);
	fprintf(f, "  \"batches\": {\"count\": %llu, \"min\": %llu, \"max\": "
		   "%llu, \"mean\": %.1f},\n",
		(unsigned long long)v->num_batches,
		(unsigned long long)v->batch_min,
		(unsigned long long)v->batch_max,
		v->num_batches ? (double)moved / (double)v->num_batches : 0);
	fprintf(f, "  \"temporary_files_removed\": %llu,\n",
		(unsigned long long)v->tmp_removed);
	fprintf(f, "  \"read_ahead\": %llu,\n",
		(unsigned long long)v->read_ahead);
	fprintf(f, "  \"in_place\": %llu,\n  \"copied\": %llu,\n"
		   "  \"bytes_written\": %llu,\n",
		(unsigned long long)v->in_place, (unsigned long long)v->copied,
		(unsigned long long)v->bytes_written);
	rp_cli_recovery_json(f, &res->recovery);
	fprintf(f,
		"  \"key_ops\": {\"count\": %llu, \"per_second\": %.1f, "
		"\"allowed_per_second\": ",
		(unsigned long long)res->key_ops,
		v->seconds > 0 ? (double)res->key_ops / v->seconds : 0);
	if (res->key_ops_allowed > 0) {
		fprintf(f, "%.1f", res->key_ops_allowed);
	} else {
		fprintf(f, "null");
	}
	fprintf(f,
		", \"waited_seconds\": %.3f, \"busy\": %llu, "
		"\"pace_at_end\": ",
		res->key_ops_waited, (unsigned long long)res->key_ops_busy);
	if (res->key_ops_pace > 0) {
		fprintf(f, "%.1f", res->key_ops_pace);
	} else {
		fprintf(f, "null");
	}
	fprintf(f, "},\n");
	fprintf(f, "  \"outcomes\": {");
	for (int k = 0; k < RP_OUT_NUM; k++) {
		fprintf(f, "%s\n    \"%s\": {\"documents\": %llu, \"bytes\": %llu}",
			k ? "," : "", rp_outcome_name((enum rp_outcome)k),
			(unsigned long long)v->num[k],
			(unsigned long long)v->bytes[k]);
	}
	fprintf(f, "\n  },\n  \"keys\": [");
	for (size_t i = 0, first = 1; i < res->num_keys; i++) {
		const struct rp_run_key_stats *ks = &res->keys[i];
		char hex[2 * RP_KEY_ID_LEN + 1] = "unknown";
		uint64_t total = 0;

		for (int k = 0; k < RP_OUT_NUM; k++) {
			total += ks->num[k];
		}
		if (!total) {
			continue;
		}
		if (i < kr->num_keys) {
			rp_key_id_hex(hex, ks->id);
		}
		fprintf(f, "%s\n    {\"key\": \"%s\", \"state\": \"%s\"",
			first ? "" : ",", hex,
			i < kr->num_keys ? rp_key_state_name(ks->state) : "-");
		for (int k = 0; k < RP_OUT_NUM; k++) {
			if (ks->num[k]) {
				fprintf(f, ", \"%s\": %llu",
					rp_outcome_name((enum rp_outcome)k),
					(unsigned long long)ks->num[k]);
			}
		}
		fprintf(f, ", \"bytes\": %llu}",
			(unsigned long long)key_bytes(ks));
		first = 0;
	}
	fprintf(f, "\n  ],\n");
	report_docs(f, c->journal);
	fprintf(f, "}\n");
}

static void print_summary(const struct rp_run_opts *o,
			  const struct rp_run_result *res,
			  const struct rp_keyring *kr)
{
	const struct rp_run_stats_view *v = &res->total;

	if (o->is_verify) {
		printf("verified %llu documents (%.1f MB) in %.1f s\n",
		       (unsigned long long)v->num[RP_OUT_VERIFIED],
		       (double)v->bytes[RP_OUT_VERIFIED] / 1e6, v->seconds);
	} else if (o->is_dry_run) {
		printf("plan (dry run): %llu documents would move to key "
		       "%.16s (%.1f MB)\n",
		       (unsigned long long)v->num[RP_OUT_WOULD_MOVE],
		       res->active_key,
		       (double)v->bytes[RP_OUT_WOULD_MOVE] / 1e6);
		print_estimate(o, res);
	} else {
		printf("moved %llu documents (%.1f MB) to key %.16s in %.1f s: "
		       "%.1f docs/s, %llu batches (%llu..%llu)\n",
		       (unsigned long long)v->num[RP_OUT_MOVED],
		       (double)v->bytes[RP_OUT_MOVED] / 1e6, res->active_key,
		       v->seconds,
		       v->seconds > 0 ? (double)v->num[RP_OUT_MOVED] /
						v->seconds
				      : 0,
		       (unsigned long long)v->num_batches,
		       (unsigned long long)v->batch_min,
		       (unsigned long long)v->batch_max);
	}
	for (int k = RP_OUT_CURRENT; k < RP_OUT_NUM; k++) {
		if (v->num[k]) {
			printf("  %-22s %llu\n",
			       rp_outcome_name((enum rp_outcome)k),
			       (unsigned long long)v->num[k]);
		}
	}
	printf("per key:\n");
	for (size_t i = 0; i < res->num_keys; i++) {
		const struct rp_run_key_stats *ks = &res->keys[i];
		char hex[2 * RP_KEY_ID_LEN + 1] = "unknown";
		uint64_t total = 0;

		for (int k = 0; k < RP_OUT_NUM; k++) {
			total += ks->num[k];
		}
		if (!total) {
			continue;
		}
		if (i < kr->num_keys) {
			rp_key_id_hex(hex, ks->id);
		}
		printf("  %.16s  %-9s  %llu documents, %.1f MB\n", hex,
		       i < kr->num_keys ? rp_key_state_name(ks->state) : "-",
		       (unsigned long long)total, (double)key_bytes(ks) / 1e6);
	}
	if (v->tmp_removed) {
		printf("removed %llu temporary files left by an earlier run\n",
		       (unsigned long long)v->tmp_removed);
	}
	if (v->in_place || v->copied) {
		printf("written: %llu in place, %llu copied, %.1f MB\n",
		       (unsigned long long)v->in_place,
		       (unsigned long long)v->copied,
		       (double)v->bytes_written / 1e6);
	}
	if (res->key_ops_allowed > 0) {
		printf("key operations: %llu, %.1f/s (allowed %.1f/s)\n",
		       (unsigned long long)res->key_ops,
		       v->seconds > 0 ? (double)res->key_ops / v->seconds : 0,
		       res->key_ops_allowed);
	}
	if (res->key_ops_busy) {
		printf("the keystore answered busy %llu times: asked again, "
		       "at %.1f operations/s at the end\n",
		       (unsigned long long)res->key_ops_busy,
		       res->key_ops_pace);
	}
	rp_cli_recovery_print(&res->recovery);
}

/*
 * save_report writes the JSON report to `path` as every file the run
 * makes: 0600, complete and durable before it replaces what was there.
 * Returns 0, or 1 after saying why on stderr.
 */
static int save_report(const char *path, const struct report_ctx *c)
{
	struct rp_status st = { 0 };
	struct rp_afile af;
	FILE *f = NULL;
	int fd;

	if (rp_afile_open(&af, &st, path, 0)) {
		fprintf(stderr, "reprotect: cannot write the report: %s\n",
			rp_status_msg(&st));
		return 1;
	}
	fd = dup(af.fd);
	if (fd >= 0) {
		f = fdopen(fd, "w");
		if (!f) {
			close(fd);
		}
	}
	if (!f) {
		rp_status_errno(&st, errno, "cannot write", path);
	} else {
		write_report(f, c);
		if (ferror(f) | fclose(f)) {
			rp_status_errno(&st, errno ? errno : EIO,
					"cannot write", path);
		}
	}
	if (!st.err) {
		(void)!rp_afile_commit(&af, &st);
	}
	rp_afile_fini(&af);
	if (st.err) {
		fprintf(stderr, "reprotect: the report: %s\n",
			rp_status_msg(&st));
		return 1;
	}
	return 0;
}

/* run_exit_code: what a finished run or verify returns (rp_exit) */
static int run_exit_code(const struct rp_run_opts *o,
			 const struct rp_run_result *res)
{
	const uint64_t *num = res->total.num;

	if (res->was_stopped) {
		return RP_EXIT_STOPPED;
	}
	if (num[RP_OUT_SKIP_RETIRING]) {
		return RP_EXIT_RETIRING;
	}
	if (num[RP_OUT_FAIL_BAD] || num[RP_OUT_FAIL_CHANGED] ||
	    num[RP_OUT_FAIL_IO] || num[RP_OUT_SKIP_BUSY] ||
	    num[RP_OUT_SKIP_CANNOT_KEEP] ||
	    (o->is_verify &&
	     (num[RP_OUT_SKIP_REVOKED] || num[RP_OUT_SKIP_UNKNOWN_KEY] ||
	      num[RP_OUT_SKIP_UNLICENSED]))) {
		return RP_EXIT_PARTIAL;
	}
	return RP_EXIT_OK;
}

static FILE *open_journal(struct rp_status *st, struct rp_store *s,
			  const char *path, char *out_path, size_t cap)
{
	FILE *f;
	int fd;

	if (path) {
		snprintf(out_path, cap, "%s", path);
	} else {
		const time_t t = time(NULL);
		struct tm tm;
		char stamp[32];

		snprintf(out_path, cap, "%s/runs", rp_store_dir(s));
		mkdir(out_path, 0700);
		gmtime_r(&t, &tm);
		if (!strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm)) {
			snprintf(stamp, sizeof(stamp), "%lld", (long long)t);
		}
		snprintf(out_path, cap, "%s/runs/run-%s-%ld.journal",
			 rp_store_dir(s), stamp, (long)getpid());
	}
	fd = open(out_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	f = fd >= 0 ? fdopen(fd, "w+") : NULL;
	if (!f) {
		rp_status_errno(st, errno, "cannot create the journal",
				out_path);
		if (fd >= 0) {
			close(fd);
		}
	}
	return f;
}

int rp_cmd_run(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		RP_COMMON_LONGOPTS,
		{ "in-place", no_argument, NULL, OPT_IN_PLACE },
		{ "out", required_argument, NULL, OPT_OUT },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "batch-ms", required_argument, NULL, OPT_BATCH_MS },
		{ "io", required_argument, NULL, OPT_IO },
		{ "durability", required_argument, NULL, OPT_DURABILITY },
		{ "shard", required_argument, NULL, OPT_SHARD },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "report", required_argument, NULL, OPT_REPORT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "journal", required_argument, NULL, OPT_JOURNAL },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "copy", no_argument, NULL, OPT_COPY },
		{ "key-ops", required_argument, NULL, OPT_KEY_OPS },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_run_opts o;
	struct rp_run_result res;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_cli_progress prog = { 0 };
	const char *from_hex[64];
	size_t num_from = 0;
	uint8_t from_ids[64][RP_KEY_ID_LEN];
	const char *report = NULL, *journal_arg = NULL;
	char journal_path[4096];
	FILE *journal = NULL;
	int is_in_place = 0, is_json = 0, is_quiet = 0;
	uint64_t v;
	enum rp_err err;
	struct report_ctx rctx;
	double started;
	int c, rc, output_failed = 0;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	o.mode = RP_RUN_REWRAP;
	o.io = RP_IO_URING;
	o.durability = RP_DURABLE_BATCH;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return RP_EXIT_OK;
		case OPT_IN_PLACE:
			is_in_place = 1;
			break;
		case OPT_OUT:
			o.out_dir = optarg;
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "rewrap")) {
				o.mode = RP_RUN_REWRAP;
			} else if (!strcmp(optarg, "reencrypt")) {
				o.mode = RP_RUN_REENCRYPT;
			} else {
				return rp_cli_usage("run", "--mode: rewrap or "
							   "reencrypt");
			}
			break;
		case OPT_FROM:
			if (num_from == RP_ARRAY_LEN(from_hex)) {
				return rp_cli_usage("run", "too many --from");
			}
			from_hex[num_from++] = optarg;
			break;
		case OPT_JOBS:
		case OPT_BATCH:
		case OPT_BATCH_MS:
			if (!rp_cli_parse_u64(optarg, &v) ||
			    v < (c != OPT_BATCH_MS) ||
			    v > (c == OPT_BATCH ? 1024 : 100000)) {
				return rp_cli_usage("run", "bad number '%s'",
						    optarg);
			}
			if (c == OPT_JOBS) {
				o.jobs = v;
			} else if (c == OPT_BATCH) {
				o.batch = v;
			} else {
				o.batch_ms = (unsigned)v;
			}
			break;
		case OPT_IO:
			if (!rp_cli_parse_io(optarg, &o.io)) {
				return rp_cli_usage("run", "--io: uring or sync");
			}
			break;
		case OPT_DURABILITY:
			if (!strcmp(optarg, "batch")) {
				o.durability = RP_DURABLE_BATCH;
			} else if (!strcmp(optarg, "each")) {
				o.durability = RP_DURABLE_EACH;
			} else if (!strcmp(optarg, "none")) {
				o.durability = RP_DURABLE_NONE;
			} else {
				return rp_cli_usage("run", "--durability: "
							   "batch, each or "
							   "none");
			}
			break;
		case OPT_SHARD:
			if (!rp_cli_parse_shard(optarg, &o.shard_i,
						&o.shard_n)) {
				return rp_cli_usage(
					"run",
					"--shard I/N with 0 <= I < N, or N "
					"with JOB_COMPLETION_INDEX or "
					"SLURM_ARRAY_TASK_ID set");
			}
			break;
		case OPT_DRY_RUN:
			o.is_dry_run = 1;
			break;
		case OPT_REPORT:
			report = optarg;
			break;
		case OPT_JSON:
			is_json = 1;
			break;
		case OPT_JOURNAL:
			journal_arg = optarg;
			break;
		case OPT_QUIET:
			is_quiet = 1;
			break;
		case OPT_COPY:
			o.no_in_place = 1;
			break;
		case OPT_KEY_OPS: {
			char *end = NULL;

			errno = 0;
			o.key_ops = strtod(optarg, &end);
			if (errno || !end || *end || end == optarg ||
			    !(o.key_ops > 0) || o.key_ops > 1e7) {
				return rp_cli_usage("run",
						    "--key-ops: a rate above 0 "
						    "(operations a second)");
			}
			break;
		}
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage("run", "bad option");
			}
		}
	}
	if (optind == argc) {
		return rp_cli_usage("run", "give at least one PATH");
	}
	o.is_verify = !strcmp(argv[0], "verify");
	if (o.is_verify && is_in_place) {
		return rp_cli_usage("verify", "verify changes nothing: no "
					      "--in-place");
	}
	if (o.out_dir && (is_in_place || o.is_verify)) {
		return rp_cli_usage(argv[0], "give --in-place or --out DIR, "
					     "not both");
	}
	if (!is_in_place && !o.out_dir && !o.is_dry_run && !o.is_verify) {
		return rp_cli_usage("run", "give --in-place (documents are "
					   "rewritten where they are) or --out "
					   "DIR");
	}
	for (int i = optind; i < argc; i++) {
		struct stat sb;

		if (lstat(argv[i], &sb) < 0) {
			fprintf(stderr, "reprotect: cannot read '%s': %s\n",
				argv[i], strerror(errno));
			return RP_EXIT_SYSTEM;
		}
	}
	if (o.no_in_place && (o.out_dir || o.is_verify)) {
		return rp_cli_usage(argv[0], "--copy goes with --in-place");
	}
	if (o.key_ops > 0 && o.shard_n > 1) {
		o.key_ops /= (double)o.shard_n; /* this shard's share */
	}
	o.roots = (const char *const *)argv + optind;
	o.log = rp_cli_print_line;
	o.num_roots = (size_t)(argc - optind);
	o.stop = &rp_cli_stop_flag;
	if (o.out_dir && !o.is_dry_run && rp_run_check_out(&o, &st)) {
		return rp_cli_error(&st); /* before anything is written */
	}
	err = rp_cli_open_store(cli, &st, &s);
	if (err) {
		return rp_cli_error(&st);
	}
	/* the store's quota binds every run; --key-ops may only lower it */
	if (rp_store_keyring(s)->key_ops) {
		const double share = (double)rp_store_keyring(s)->key_ops /
				     (double)(o.shard_n > 1 ? o.shard_n : 1);

		if (o.key_ops <= 0 || o.key_ops > share) {
			o.key_ops = share;
		}
	}
	for (size_t i = 0; i < num_from; i++) {
		const long k = rp_keyring_find_hex(rp_store_keyring(s), &st,
						   from_hex[i]);

		if (k < 0) {
			rc = rp_cli_error(&st);
			goto out;
		}
		memcpy(from_ids[i], rp_store_keyring(s)->keys[k].id,
		       RP_KEY_ID_LEN);
	}
	if (num_from) {
		o.from = (const uint8_t(*)[RP_KEY_ID_LEN])from_ids;
		o.num_from = num_from;
	}
	/* sealed: a run whose record cannot be written moves nothing */
	if (!o.is_verify && !o.is_dry_run &&
	    rp_cli_audit_gate(s, &st, "run", NULL, "mode=%s roots=%zu",
			      o.mode == RP_RUN_REENCRYPT ? "reencrypt"
							 : "rewrap",
			      o.num_roots)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	journal = open_journal(&st, s, journal_arg, journal_path,
			       sizeof(journal_path));
	if (!journal) {
		rc = rp_cli_error(&st);
		goto out;
	}
	o.journal = journal;
	if (!is_quiet) {
		prog.is_tty = isatty(STDERR_FILENO);
		o.progress = rp_cli_show_progress;
		o.progress_arg = &prog;
	}
	rp_cli_on_signals();
	started = rp_clock_s(CLOCK_REALTIME);
	err = rp_run(s, &st, &o, &res);
	if (prog.is_tty) {
		fputc('\n', stderr);
	}
	if (fflush(journal) || ferror(journal)) {
		fprintf(stderr, "reprotect: cannot write the journal '%s': %s\n",
			journal_path, strerror(errno ? errno : EIO));
		output_failed = 1;
	}
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	rc = output_failed ? RP_EXIT_SYSTEM : run_exit_code(&o, &res);
	rctx = (struct report_ctx){ .o = &o,
				    .res = &res,
				    .s = s,
				    .journal = journal,
				    .started = started,
				    .ended = rp_clock_s(CLOCK_REALTIME),
				    .exit_code = rc };
	if (is_json) {
		write_report(stdout, &rctx);
	} else {
		print_summary(&o, &res, rp_store_keyring(s));
		printf("journal: %s\n", journal_path);
	}
	if (report && save_report(report, &rctx)) {
		output_failed = 1;
	}
	if (o.is_verify) {
		rp_cli_flush_usage(s, "verify");
	} else if (!o.is_dry_run) {
		rp_cli_flush_usage(s, "run");
		rp_cli_audit(s, "run", NULL,
			     "mode=%s moved=%llu failed=%llu stopped=%d",
			     o.mode == RP_RUN_REENCRYPT ? "reencrypt"
							: "rewrap",
			     (unsigned long long)res.total.num[RP_OUT_MOVED],
			     (unsigned long long)res.total.num[RP_OUT_FAIL_BAD] +
				     res.total.num[RP_OUT_FAIL_CHANGED] +
				     res.total.num[RP_OUT_FAIL_IO],
			     res.was_stopped);
	}
	if (output_failed) {
		rc = RP_EXIT_SYSTEM;
	} else if (rc == RP_EXIT_STOPPED) {
		fprintf(stderr,
			"reprotect: %s stopped: %s; documents not yet moved are "
			"untouched: run the same command again to resume\n",
			o.is_verify ? "verify" : "run", res.stop_reason);
	} else if (rc == RP_EXIT_RETIRING) {
		/* a census missed them: the key is to be destroyed */
		fprintf(stderr,
			"reprotect: %llu documents are under a retiring key "
			"(the journal names them): they open nothing, and "
			"will never open once the key is destroyed; 'reprotect "
			"key keep' it, then run again\n",
			(unsigned long long)
				res.total.num[RP_OUT_SKIP_RETIRING]);
	}
out:
	if (journal && fclose(journal) && rc == RP_EXIT_OK) {
		fprintf(stderr, "reprotect: cannot write the journal '%s': %s\n",
			journal_path, strerror(errno));
		rc = RP_EXIT_SYSTEM;
	}
	rp_run_result_fini(&res);
	rp_store_free(s);
	return rc;
}
