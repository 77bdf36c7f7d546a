/*
 * cmd_census.c: 'reprotect census': which documents are under which key,
 * as a statement signed by the store's active key; its verify and merge.
 * The engine reads the headers (a census is a dry run of its own, header
 * only); the statement's text is formats/census.c's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "afile.h"
#include "audit.h"
#include "census.h"
#include "cli.h"
#include "lifecycle.h"
#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_json.h"
#include "run.h"

static const char help[] =
	"usage: reprotect census PATH... [--shard I/N] [--report FILE]\n"
	"                        [--json] [--jobs N] [--io uring|sync]\n"
	"                        [--quiet]\n"
	"       reprotect census verify FILE [--json]\n"
	"       reprotect census merge FILE... --report FILE [--json]\n"
	"\n"
	"Reads every document's header under the PATHs (no document is\n"
	"changed or opened further) and counts documents and bytes per key,\n"
	"and lists every document under a key that is not active: under an\n"
	"archived, revoked or destroyed key, under a key of another store,\n"
	"or one whose header is not as this store wrote it (failed). A\n"
	"document is counted under the key its license names only if the\n"
	"license is bound to its recipient stanza and payload and its\n"
	"signature verifies.\n"
	"\n"
	"The census is a statement signed by the active key: the store, the\n"
	"roots, the selection, the time, the counts per key and per outcome,\n"
	"the listed documents (key, document id, path) and a Merkle root\n"
	"over every document's (key id, document id, path). It is what\n"
	"'reprotect key retire' asks for before a key may go.\n"
	"\n"
	"  --shard I/N   only the documents of shard I of N (as run --shard);\n"
	"                'census merge' puts the N statements together\n"
	"  --report FILE write the statement to FILE (default: the store's\n"
	"                runs/ folder)\n"
	"  --json        print the summary as JSON\n"
	"  --jobs N, --io uring|sync, --quiet: as for run\n"
	"\n"
	"verify  checks a statement: whole, of this store, signed by one of\n"
	"        its keys that is not revoked; prints its summary\n"
	"merge   checks the statements of shards 0 .. N-1 of one census\n"
	"        (same roots, same N, same active key, each shard once) and\n"
	"        writes one statement for the whole, signed by the active "
	"key;\n"
	"        says which shards are missing or given twice\n"
	"\n"
	"Exit code 0: every document is under the active key (census) or the\n"
	"statement is good (verify, merge); 1: the census listed documents\n"
	"(under other keys, or failed); 8: stopped by a signal, no statement\n"
	"written.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum {
	OPT_SHARD = RP_OPT_FIRST_CMD,
	OPT_REPORT,
	OPT_JSON,
	OPT_JOBS,
	OPT_IO,
	OPT_QUIET,
};

/* statements are read whole; a census of 10 million listed documents
 * is about 1.5 GB */
#define CENSUS_FILE_MAX ((size_t)4 << 30)

/* the collector: called by the engine once per document, in turn */
struct coll {
	const struct rp_keyring *kr;
	int has_active;
	uint8_t active[RP_KEY_ID_LEN];
	uint8_t (*leaves)[RP_MERKLE_HASH_LEN];
	size_t num_leaves, cap_leaves;
	struct rp_census_key *keys; /* RP_CENSUS_MAX_KEYS */
	size_t num_keys;
	uint64_t docs[RP_OUT_NUM], bytes[RP_OUT_NUM];
	struct rp_buf lines;
	uint64_t listed;
	struct rp_status st; /* the first failure */
};

/* is_unattributed: the census could not tell which key the document is
 * under (its header was not read, or is not what the store wrote) */
static int is_unattributed(enum rp_outcome o)
{
	return o == RP_OUT_FAIL_BAD || o == RP_OUT_FAIL_CHANGED ||
	       o == RP_OUT_FAIL_IO || o == RP_OUT_SKIP_BUSY;
}

static struct rp_census_key *coll_key(struct coll *c, const uint8_t *id)
{
	for (size_t i = 0; i < c->num_keys; i++) {
		if (!memcmp(c->keys[i].id, id, RP_KEY_ID_LEN)) {
			return &c->keys[i];
		}
	}
	if (c->num_keys == RP_CENSUS_MAX_KEYS) {
		return NULL;
	}
	memcpy(c->keys[c->num_keys].id, id, RP_KEY_ID_LEN);
	snprintf(c->keys[c->num_keys].state, sizeof(c->keys[0].state),
		 "foreign");
	return &c->keys[c->num_keys++];
}

static void collect(void *arg, const struct rp_run_doc *d)
{
	struct coll *c = arg;
	const int is_unattr = is_unattributed(d->out) || d->is_unseen;

	if (c->st.err) {
		return;
	}
	if (c->num_leaves == c->cap_leaves) {
		const size_t cap = c->cap_leaves ? 2 * c->cap_leaves : 4096;
		void *p = realloc(c->leaves, cap * sizeof(*c->leaves));

		if (!p) {
			rp_status_fail(&c->st, RP_ERR_NOMEM, "out of memory");
			return;
		}
		c->leaves = p;
		c->cap_leaves = cap;
	}
	if (rp_census_leaf(c->leaves[c->num_leaves], &c->st, d->key_id,
			   d->doc_id, d->path)) {
		return;
	}
	c->num_leaves++;
	c->docs[d->out]++;
	c->bytes[d->out] += d->size;
	if (d->key_id && !is_unattr) {
		struct rp_census_key *k = coll_key(c, d->key_id);

		if (!k) {
			rp_status_fail(&c->st, RP_ERR_USAGE,
				       "more than %d keys in the trees",
				       RP_CENSUS_MAX_KEYS);
			return;
		}
		k->docs++;
		k->bytes += d->size;
	}
	if (is_unattr ||
	    (d->key_id &&
	     (!c->has_active || memcmp(d->key_id, c->active, RP_KEY_ID_LEN)))) {
		/* a folder not read, a stanza not told: its own word, so
		 * that retire sees it whatever the engine's outcome */
		if (rp_census_doc_line(&c->lines, &c->st, d->key_id, d->doc_id,
				       d->is_unseen ? "not-attributed"
						    : rp_outcome_name(d->out),
				       d->path)) {
			return;
		}
		c->listed++;
	}
}

static int cmp_leaf(const void *a, const void *b)
{
	return memcmp(a, b, RP_MERKLE_HASH_LEN);
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(((const struct rp_census_key *)a)->id,
		      ((const struct rp_census_key *)b)->id, RP_KEY_ID_LEN);
}

/* printing a statement: text or JSON, from the decoded census */

static void print_census(const struct rp_census *c, const char *path,
			 int is_json, const char *verdict)
{
	char t[32], hex[2 * RP_KEY_ID_LEN + 1];
	uint64_t bytes = 0;

	for (size_t i = 0; i < c->num_outcomes; i++) {
		bytes += c->outcomes[i].bytes;
	}
	rp_cli_fmt_time(t, c->taken);
	if (is_json) {
		printf("{\n  \"statement\": ");
		rp_json_cstr(stdout, path);
		rp_hex_encode(hex, c->world, RP_CENSUS_WORLD_LEN);
		printf(",\n  \"verdict\": \"%s\",\n  \"store\": \"%s\",\n"
		       "  \"taken\": \"%s\",\n  \"audit_record\": %llu,\n"
		       "  \"roots\": [",
		       verdict, hex, t, (unsigned long long)c->audit_seq);
		for (size_t i = 0; i < c->num_roots; i++) {
			printf("%s", i ? ", " : "");
			rp_json_cstr(stdout, c->roots[i]);
		}
		printf("],\n  \"selection\": ");
		if (c->sel == RP_CENSUS_SHARD) {
			printf("{\"shard\": %llu, \"of\": %llu}",
			       (unsigned long long)c->shard_i,
			       (unsigned long long)c->shard_n);
		} else if (c->sel == RP_CENSUS_MERGED) {
			printf("{\"merged\": %llu}",
			       (unsigned long long)c->shard_n);
		} else {
			printf("\"all\"");
		}
		rp_hex_encode(hex, c->active, RP_KEY_ID_LEN);
		printf(",\n  \"active_key\": \"%s\",\n  \"documents\": %llu,\n"
		       "  \"bytes\": %llu,\n  \"listed\": %llu,\n",
		       c->has_active ? hex : "-",
		       (unsigned long long)c->documents,
		       (unsigned long long)bytes,
		       (unsigned long long)c->listed);
		rp_hex_encode(hex, c->merkle, RP_MERKLE_HASH_LEN);
		printf("  \"merkle_root\": \"%s\",\n", hex);
		rp_hex_encode(hex, c->signer, RP_KEY_ID_LEN);
		printf("  \"signer\": \"%s\",\n  \"keys\": [", hex);
		for (size_t i = 0; i < c->num_keys; i++) {
			rp_hex_encode(hex, c->keys[i].id, RP_KEY_ID_LEN);
			printf("%s\n    {\"key\": \"%s\", \"state\": \"%s\", "
			       "\"documents\": %llu, \"bytes\": %llu}",
			       i ? "," : "", hex, c->keys[i].state,
			       (unsigned long long)c->keys[i].docs,
			       (unsigned long long)c->keys[i].bytes);
		}
		printf("\n  ],\n  \"outcomes\": {");
		for (size_t i = 0; i < c->num_outcomes; i++) {
			printf("%s\n    \"%s\": {\"documents\": %llu, "
			       "\"bytes\": %llu}",
			       i ? "," : "", c->outcomes[i].name,
			       (unsigned long long)c->outcomes[i].docs,
			       (unsigned long long)c->outcomes[i].bytes);
		}
		printf("\n  }\n}\n");
		return;
	}
	printf("census of %zu root%s, taken %s: %llu documents (%.1f MB)",
	       c->num_roots, c->num_roots == 1 ? "" : "s", t,
	       (unsigned long long)c->documents, (double)bytes / 1e6);
	if (c->sel == RP_CENSUS_SHARD) {
		printf(", shard %llu of %llu", (unsigned long long)c->shard_i,
		       (unsigned long long)c->shard_n);
	} else if (c->sel == RP_CENSUS_MERGED) {
		printf(", %llu shards merged", (unsigned long long)c->shard_n);
	}
	printf("\nper key:\n");
	for (size_t i = 0; i < c->num_keys; i++) {
		rp_hex_encode(hex, c->keys[i].id, RP_KEY_ID_LEN);
		printf("  %.16s  %-9s  %llu documents, %.1f MB\n", hex,
		       c->keys[i].state, (unsigned long long)c->keys[i].docs,
		       (double)c->keys[i].bytes / 1e6);
	}
	for (size_t i = 0; i < c->num_outcomes; i++) {
		printf("  %-22s %llu\n", c->outcomes[i].name,
		       (unsigned long long)c->outcomes[i].docs);
	}
	printf("listed (not under the active key, or failed): %llu\n",
	       (unsigned long long)c->listed);
	rp_hex_encode(hex, c->signer, RP_KEY_ID_LEN);
	printf("statement: %s (%s by key %.16s)\n", path, verdict, hex);
}

/*
 * load_verified reads a statement and checks it: it decodes whole, it is
 * this store's, its signer is a key of the store that is not revoked or
 * destroyed, and the signature verifies. `buf` keeps its text.
 */
static enum rp_err load_verified(struct rp_store *s, struct rp_status *st,
				 const char *path, struct rp_buf *buf,
				 struct rp_census *c)
{
	const struct rp_keyring *kr = rp_store_keyring(s);
	enum rp_err err;
	long k;

	err = rp_cli_read_file(buf, st, path, CENSUS_FILE_MAX);
	if (!err) {
		err = rp_census_decode(c, st, buf->p, buf->len);
	}
	if (err) {
		rp_status_prefix(st, "%s", path);
		return err;
	}
	if (memcmp(c->world, rp_store_world_id(s), RP_CENSUS_WORLD_LEN)) {
		return rp_status_fail(st, RP_ERR_AUTH,
				      "%s: a census of another store", path);
	}
	k = rp_keyring_find_id(kr, c->signer);
	if (k < 0) {
		return rp_status_fail(st, RP_ERR_NOKEY,
				      "%s: signed by a key that is not in this "
				      "store",
				      path);
	}
	if (kr->keys[k].state == RP_KEY_REVOKED ||
	    kr->keys[k].state == RP_KEY_DESTROYED) {
		char hex[2 * RP_KEY_ID_LEN + 1];

		rp_hex_encode(hex, c->signer, RP_KEY_ID_LEN);
		return rp_status_fail(st, RP_ERR_REVOKED,
				      "%s: signed by key %.16s, which is %s: "
				      "its signature vouches for nothing",
				      path, hex,
				      rp_key_state_name(kr->keys[k].state));
	}
	err = rp_store_verify_msg(s, st, (size_t)k, buf->p, c->signed_len,
				  c->sig, c->sig_len);
	if (err) {
		rp_status_prefix(st, "%s: the census statement", path);
	}
	return err;
}

/* the audit log's runs and rekeys after a census */
struct since {
	uint64_t after;	    /* the census's audit position */
	uint64_t moved_seq; /* a run that moved documents after it: its seq */
	uint64_t rekey_seq; /* a rekey after it */
	uint64_t keep_seq;  /* a 'key keep' of the key after it */
	char key_hex[2 * RP_KEY_ID_LEN + 1];
};

static void scan_since(void *arg, const struct rp_audit_record *rec)
{
	struct since *sn = arg;
	const char *m;

	if (rec->seq <= sn->after) {
		return;
	}
	if (!strcmp(rec->op, "run") && (m = strstr(rec->detail, "moved=")) &&
	    strtoull(m + 6, NULL, 10) > 0 && !sn->moved_seq) {
		sn->moved_seq = rec->seq;
	}
	if (!strcmp(rec->op, "rekey") && !sn->rekey_seq) {
		sn->rekey_seq = rec->seq;
	}
	/* a keep undid a retirement that this census allowed: take another */
	if (!strcmp(rec->op, "key.keep") && !strcmp(rec->key, sn->key_hex) &&
	    !sn->keep_seq) {
		sn->keep_seq = rec->seq;
	}
}

/* is_under: `path` is `root` or inside it (both resolved) */
static int is_under(const char *path, const char *root)
{
	const size_t n = strlen(root);

	if (!strcmp(root, "/")) {
		return 1;
	}
	return !strncmp(path, root, n) && (path[n] == '\0' || path[n] == '/');
}

enum rp_err rp_cli_census_for_retire(struct rp_store *s, struct rp_status *st,
				     const char *path, size_t idx,
				     const char *const *roots, size_t num_roots,
				     uint8_t digest[RP_ATLEAST(32)])
{
	const struct rp_key_info *k = &rp_store_keyring(s)->keys[idx];
	struct rp_buf buf = { 0 };
	struct rp_census c;
	const struct rp_census_key *line = NULL;
	struct since sn = { 0 };
	uint64_t unattributed = 0, under_k = 0;
	char *doc_path = NULL;
	char hex[2 * RP_KEY_ID_LEN + 1];
	enum rp_err err;

	memset(&c, 0, sizeof(c));
	rp_hex_encode(hex, k->id, RP_KEY_ID_LEN);
	err = load_verified(s, st, path, &buf, &c);
	if (err) {
		goto out;
	}
	if (c.sel == RP_CENSUS_SHARD) {
		err = rp_status_fail(st, RP_ERR_STATE,
				     "%s is the census of shard %llu of %llu: "
				     "merge every shard first ('reprotect "
				     "census merge')",
				     path, (unsigned long long)c.shard_i,
				     (unsigned long long)c.shard_n);
		goto out;
	}
	for (size_t i = 0; i < c.num_keys; i++) {
		if (!memcmp(c.keys[i].id, k->id, RP_KEY_ID_LEN)) {
			line = &c.keys[i];
		}
	}
	if (!line || !strcmp(line->state, "active") ||
	    !strcmp(line->state, "pending")) {
		err = rp_status_fail(
			st, RP_ERR_STATE,
			"%s was taken while key %.16s was %s: take "
			"a census after it was archived",
			path, hex, line ? line->state : "not yet in the store");
		goto out;
	}
	doc_path = malloc(1 << 16);
	if (!doc_path) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	{
		size_t off = c.docs_off;
		struct rp_census_doc d;

		while (rp_census_next_doc(&c, buf.p, &off, &d, doc_path,
					  1 << 16)) {
			if (d.has_key && !memcmp(d.key, k->id, RP_KEY_ID_LEN)) {
				under_k++;
			} else if (!strncmp(d.outcome, "failed-", 7) ||
				   !strcmp(d.outcome, "skipped-busy") ||
				   !strcmp(d.outcome, "not-attributed")) {
				unattributed++;
			}
		}
	}
	if (line->docs || under_k) {
		err = rp_status_fail(st, RP_ERR_STATE,
				     "%s shows %llu documents still under key "
				     "%.16s: move them ('reprotect run ... "
				     "--in-place'), then take a census again",
				     path,
				     (unsigned long long)(line->docs > under_k
								  ? line->docs
								  : under_k),
				     hex);
		goto out;
	}
	if (unattributed) {
		err = rp_status_fail(
			st, RP_ERR_STATE,
			"%s lists %llu documents whose key it "
			"could not tell (failed or busy): they may "
			"be under key %.16s; settle them, then take "
			"a census again",
			path, (unsigned long long)unattributed, hex);
		goto out;
	}
	for (size_t i = 0; i < num_roots; i++) {
		char *real = realpath(roots[i], NULL);
		int is_covered = 0;

		for (size_t r = 0; real && r < c.num_roots; r++) {
			is_covered |= is_under(real, c.roots[r]);
		}
		if (!real || !is_covered) {
			err = rp_status_fail(
				st, RP_ERR_STATE, "%s does not cover '%s'%s",
				path, roots[i],
				real ? "" : " (it cannot be resolved)");
			free(real);
			goto out;
		}
		free(real);
	}
	sn.after = c.audit_seq;
	rp_key_id_hex(sn.key_hex, k->id);
	err = rp_audit_verify(s, st, scan_since, &sn, NULL);
	if (err) {
		goto out;
	}
	if (sn.keep_seq) {
		err = rp_status_fail(st, RP_ERR_STATE,
				     "%s is older than the 'key keep' of key "
				     "%.16s in audit record %llu (the census "
				     "missed documents then): take a census "
				     "again",
				     path, hex,
				     (unsigned long long)sn.keep_seq);
		goto out;
	}
	if (sn.moved_seq || sn.rekey_seq) {
		err = rp_status_fail(
			st, RP_ERR_STATE,
			"%s is older than the %s recorded in audit "
			"record %llu: take a census again",
			path,
			sn.moved_seq ? "run that moved documents" : "rekey",
			(unsigned long long)(sn.moved_seq ? sn.moved_seq
							  : sn.rekey_seq));
		goto out;
	}
	if (c.taken > rp_store_now()) {
		err = rp_status_fail(st, RP_ERR_STATE,
				     "%s was taken in the future", path);
		goto out;
	}
	if (!EVP_Digest(buf.p, buf.len, digest, NULL, EVP_sha256(), NULL)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "sha-256");
	}
out:
	free(doc_path);
	rp_census_fini(&c);
	rp_buf_fini(&buf);
	return err;
}

/*
 * sign_and_save signs the statement in `out` (everything but its sig
 * line) with the active key, appends the sig line and writes it to
 * `path` (0600, durable, replacing any file there); decodes it back into
 * `c` for printing.
 */
static enum rp_err sign_and_save(struct rp_store *s, struct rp_status *st,
				 struct rp_buf *out, const char *path,
				 struct rp_census *c)
{
	const long active = rp_keyring_active(rp_store_keyring(s));
	uint8_t sig[RP_SIG_MAX];
	size_t sig_len = 0;
	struct rp_afile af;
	enum rp_err err;

	if (active < 0) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "no active key to sign the census");
	}
	err = rp_store_sign(s, st, (size_t)active, out->p, out->len, sig,
			    sizeof(sig), &sig_len);
	if (!err) {
		err = rp_census_encode_sig(out, st,
					   rp_store_keyring(s)->keys[active].id,
					   sig, sig_len);
	}
	if (!err) {
		err = rp_census_decode(c, st, out->p, out->len);
	}
	if (err) {
		return err;
	}
	err = rp_afile_open(&af, st, path, 0);
	if (err) {
		return err;
	}
	err = rp_afile_write(&af, st, out->p, out->len);
	if (!err) {
		err = rp_afile_commit(&af, st);
	}
	rp_afile_fini(&af);
	return err;
}

static void default_path(const struct rp_store *s, char *out, size_t cap)
{
	const time_t t = time(NULL);
	struct tm tm;
	char stamp[32];

	snprintf(out, cap, "%s/runs", rp_store_dir(s));
	mkdir(out, 0700);
	gmtime_r(&t, &tm);
	if (!strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm)) {
		snprintf(stamp, sizeof(stamp), "%lld", (long long)t);
	}
	snprintf(out, cap, "%s/runs/census-%s-%ld.txt", rp_store_dir(s), stamp,
		 (long)getpid());
}

static int census_take(struct rp_cli *cli, const struct rp_run_opts *opts,
		       const char *report, int is_json, int is_quiet)
{
	struct rp_run_opts ro = *opts;
	struct rp_run_opts *const o = &ro;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_run_result res;
	struct rp_cli_progress prog = { 0 };
	struct rp_census c;
	struct coll col;
	struct rp_buf out = { 0 };
	char path[PATH_MAX + 64];
	const struct rp_keyring *kr;
	long active;
	uint64_t audit_seq = 0;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&col, 0, sizeof(col));
	memset(&res, 0, sizeof(res));
	/* the roots as the statement names them: resolved */
	for (size_t i = 0; i < o->num_roots; i++) {
		char *real = realpath(o->roots[i], NULL);

		if (!real) {
			fprintf(stderr, "reprotect: cannot read '%s': %s\n",
				o->roots[i], strerror(errno));
			rc = RP_EXIT_SYSTEM;
			goto out;
		}
		c.roots[c.num_roots++] = real;
	}
	o->roots = (const char *const *)c.roots;
	if (rp_cli_open_store(cli, &st, &s)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	kr = rp_store_keyring(s);
	active = rp_keyring_active(kr);
	if (active < 0) {
		rp_status_fail(
			&st, RP_ERR_STATE,
			"no active key: a census is signed by the active "
			"key");
		rc = rp_cli_error(&st);
		goto out;
	}
	/* where the audit log stood: a run recorded after it is newer */
	if (rp_audit_verify(s, &st, NULL, NULL, &audit_seq)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	col.kr = kr;
	col.has_active = 1;
	memcpy(col.active, kr->keys[active].id, RP_KEY_ID_LEN);
	col.keys = calloc(RP_CENSUS_MAX_KEYS, sizeof(*col.keys));
	if (!col.keys) {
		rp_status_fail(&st, RP_ERR_NOMEM, "out of memory");
		rc = rp_cli_error(&st);
		goto out;
	}
	/* every key of the store has its line, with 0 where none is */
	for (size_t i = 0; i < kr->num_keys; i++) {
		struct rp_census_key *k = coll_key(&col, kr->keys[i].id);

		snprintf(k->state, sizeof(k->state), "%s",
			 rp_key_state_name(kr->keys[i].state));
	}
	c.taken = rp_store_now();
	c.audit_seq = audit_seq;
	o->is_dry_run = 1;
	o->is_census = 1;
	o->on_doc = collect;
	o->on_doc_arg = &col;
	o->log = rp_cli_print_line;
	o->stop = &rp_cli_stop_flag;
	if (!is_quiet) {
		prog.is_tty = isatty(STDERR_FILENO);
		o->progress = rp_cli_show_progress;
		o->progress_arg = &prog;
	}
	rp_cli_on_signals();
	if (rp_run(s, &st, o, &res)) {
		if (prog.is_tty) {
			fputc('\n', stderr);
		}
		rc = rp_cli_error(&st);
		goto out;
	}
	if (prog.is_tty) {
		fputc('\n', stderr);
	}
	if (res.was_stopped) {
		fprintf(stderr,
			"reprotect: census stopped: %s; no statement written: "
			"run it again\n",
			res.stop_reason);
		rc = RP_EXIT_STOPPED;
		goto out;
	}
	if (col.st.err) {
		rc = rp_cli_error(&col.st);
		goto out;
	}
	/* the statement */
	memcpy(c.world, rp_store_world_id(s), RP_CENSUS_WORLD_LEN);
	if (o->shard_n > 1) {
		c.sel = RP_CENSUS_SHARD;
		c.shard_i = o->shard_i;
		c.shard_n = o->shard_n;
	} else {
		c.sel = RP_CENSUS_ALL;
	}
	c.has_active = 1;
	memcpy(c.active, col.active, RP_KEY_ID_LEN);
	qsort(col.keys, col.num_keys, sizeof(*col.keys), cmp_key);
	c.keys = col.keys;
	c.num_keys = col.num_keys;
	col.keys = NULL;
	for (int k = 0; k < RP_OUT_NUM; k++) {
		if (col.docs[k]) {
			struct rp_census_outcome *oc =
				&c.outcomes[c.num_outcomes++];

			snprintf(oc->name, sizeof(oc->name), "%s",
				 rp_outcome_name((enum rp_outcome)k));
			oc->docs = col.docs[k];
			oc->bytes = col.bytes[k];
		}
	}
	c.documents = col.num_leaves;
	c.listed = col.listed;
	if (col.num_leaves) {
		qsort(col.leaves, col.num_leaves, sizeof(*col.leaves),
		      cmp_leaf);
	}
	if (rp_merkle_root_of(c.merkle, &st,
			      (const uint8_t(*)[RP_MERKLE_HASH_LEN])col.leaves,
			      col.num_leaves) ||
	    rp_census_encode(&out, &st, &c, col.lines.p, col.lines.len)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	if (report) {
		snprintf(path, sizeof(path), "%s", report);
	} else {
		default_path(s, path, sizeof(path));
	}
	rp_census_fini(&c);
	if (sign_and_save(s, &st, &out, path, &c)) {
		rp_status_prefix(&st, "the census statement");
		rc = rp_cli_error(&st);
		goto out;
	}
	print_census(&c, path, is_json, "written, signed");
	rp_cli_flush_usage(s, "census");
	{
		char m[2 * RP_MERKLE_HASH_LEN + 1];

		rp_hex_encode(m, c.merkle, RP_MERKLE_HASH_LEN);
		rp_cli_audit(s, "census", NULL,
			     "documents=%llu listed=%llu merkle=%s",
			     (unsigned long long)c.documents,
			     (unsigned long long)c.listed, m);
	}
	rc = c.listed ? RP_EXIT_PARTIAL : RP_EXIT_OK;
out:
	rp_run_result_fini(&res);
	rp_census_fini(&c);
	free(col.leaves);
	free(col.keys);
	rp_buf_fini(&col.lines);
	rp_buf_fini(&out);
	rp_store_free(s);
	return rc;
}

static int census_verify(struct rp_cli *cli, const char *file, int is_json)
{
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_buf buf = { 0 };
	struct rp_census c;
	int rc;

	memset(&c, 0, sizeof(c));
	if (rp_cli_open_store(cli, &st, &s)) {
		return rp_cli_error(&st);
	}
	if (load_verified(s, &st, file, &buf, &c)) {
		rc = rp_cli_error(&st);
	} else {
		print_census(&c, file, is_json, "good, signed");
		rc = RP_EXIT_OK;
	}
	rp_census_fini(&c);
	rp_buf_fini(&buf);
	rp_store_free(s);
	return rc;
}

static int same_roots(const struct rp_census *a, const struct rp_census *b)
{
	if (a->num_roots != b->num_roots) {
		return 0;
	}
	for (size_t i = 0; i < a->num_roots; i++) {
		if (strcmp(a->roots[i], b->roots[i])) {
			return 0;
		}
	}
	return 1;
}

static int census_merge(struct rp_cli *cli, char **files, size_t num,
			const char *report, int is_json)
{
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_buf *bufs = calloc(num, sizeof(*bufs));
	struct rp_census *cs = calloc(num, sizeof(*cs));
	size_t *of = NULL; /* shard i: which file */
	struct rp_census m;
	struct rp_buf lines = { 0 }, out = { 0 };
	uint8_t(*leaves)[RP_MERKLE_HASH_LEN] = NULL;
	uint64_t *state_taken = NULL; /* when each key's state was seen */
	long active;
	uint64_t n = 0;
	int rc = RP_EXIT_SYSTEM;
	int is_bad = 0;

	memset(&m, 0, sizeof(m));
	if (!bufs || !cs) {
		fprintf(stderr, "reprotect: out of memory\n");
		goto out;
	}
	if (rp_cli_open_store(cli, &st, &s)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	for (size_t i = 0; i < num; i++) {
		if (load_verified(s, &st, files[i], &bufs[i], &cs[i])) {
			rc = rp_cli_error(&st);
			goto out;
		}
		if (cs[i].sel != RP_CENSUS_SHARD) {
			fprintf(stderr,
				"reprotect: %s: not the census of a shard\n",
				files[i]);
			rc = RP_EXIT_USAGE;
			goto out;
		}
		if (i && (cs[i].shard_n != cs[0].shard_n ||
			  !same_roots(&cs[i], &cs[0]) ||
			  memcmp(cs[i].active, cs[0].active, RP_KEY_ID_LEN))) {
			fprintf(stderr,
				"reprotect: %s and %s are shards of different "
				"censuses (roots, number of shards or active "
				"key differ)\n",
				files[0], files[i]);
			rc = RP_EXIT_USAGE;
			goto out;
		}
	}
	n = cs[0].shard_n;
	active = rp_keyring_active(rp_store_keyring(s));
	if (active < 0 || memcmp(rp_store_keyring(s)->keys[active].id,
				 cs[0].active, RP_KEY_ID_LEN)) {
		fprintf(stderr, "reprotect: the active key changed since the "
				"censuses were taken: take them again\n");
		rc = RP_EXIT_STORE;
		goto out;
	}
	of = malloc(n * sizeof(*of));
	if (!of) {
		fprintf(stderr, "reprotect: out of memory\n");
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		of[i] = SIZE_MAX;
	}
	for (size_t i = 0; i < num; i++) {
		if (of[cs[i].shard_i] != SIZE_MAX) {
			fprintf(stderr,
				"reprotect: shard %llu of %llu given twice: %s "
				"and %s\n",
				(unsigned long long)cs[i].shard_i,
				(unsigned long long)n, files[of[cs[i].shard_i]],
				files[i]);
			is_bad = 1;
		} else {
			of[cs[i].shard_i] = i;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		if (of[i] == SIZE_MAX) {
			fprintf(stderr,
				"reprotect: shard %llu of %llu is "
				"missing\n",
				(unsigned long long)i, (unsigned long long)n);
			is_bad = 1;
		}
	}
	if (is_bad) {
		rc = RP_EXIT_USAGE;
		goto out;
	}
	/* the whole: sums, the doc lines in shard order, a root of roots */
	m.sel = RP_CENSUS_MERGED;
	m.shard_n = n;
	m.parts = calloc(n, sizeof(*m.parts));
	m.keys = calloc(RP_CENSUS_MAX_KEYS, sizeof(*m.keys));
	leaves = calloc(n, sizeof(*leaves));
	state_taken = calloc(RP_CENSUS_MAX_KEYS, sizeof(*state_taken));
	if (!m.parts || !m.keys || !leaves || !state_taken) {
		fprintf(stderr, "reprotect: out of memory\n");
		goto out;
	}
	memcpy(m.world, cs[0].world, RP_CENSUS_WORLD_LEN);
	m.has_active = 1;
	memcpy(m.active, cs[0].active, RP_KEY_ID_LEN);
	m.taken = UINT64_MAX;
	m.audit_seq = UINT64_MAX;
	for (size_t i = 0; i < cs[0].num_roots; i++) {
		m.roots[i] = strdup(cs[0].roots[i]);
		if (!m.roots[i]) {
			fprintf(stderr, "reprotect: out of memory\n");
			goto out;
		}
		m.num_roots++;
	}
	for (uint64_t i = 0; i < n; i++) {
		const struct rp_census *p = &cs[of[i]];

		m.parts[i].taken = p->taken;
		m.parts[i].docs = p->documents;
		memcpy(m.parts[i].merkle, p->merkle, RP_MERKLE_HASH_LEN);
		if (rp_merkle_leaf_hash(leaves[i], &st, p->merkle,
					RP_MERKLE_HASH_LEN)) {
			rc = rp_cli_error(&st);
			goto out;
		}
		/* the earliest: a run recorded after any part is newer */
		m.taken = p->taken < m.taken ? p->taken : m.taken;
		m.audit_seq =
			p->audit_seq < m.audit_seq ? p->audit_seq : m.audit_seq;
		m.documents += p->documents;
		m.listed += p->listed;
		if (rp_buf_add(&lines, bufs[of[i]].p + p->docs_off,
			       p->docs_len)) {
			fprintf(stderr, "reprotect: out of memory\n");
			goto out;
		}
		for (size_t k = 0; k < p->num_keys; k++) {
			size_t j = 0;

			while (j < m.num_keys &&
			       memcmp(m.keys[j].id, p->keys[k].id,
				      RP_KEY_ID_LEN)) {
				j++;
			}
			if (j == m.num_keys) {
				if (j == RP_CENSUS_MAX_KEYS) {
					fprintf(stderr,
						"reprotect: too many keys\n");
					goto out;
				}
				m.keys[j] = p->keys[k];
				m.keys[j].docs = m.keys[j].bytes = 0;
				m.num_keys++;
			}
			/* the state the latest part saw */
			if (p->taken >= state_taken[j]) {
				state_taken[j] = p->taken;
				memcpy(m.keys[j].state, p->keys[k].state,
				       sizeof(m.keys[j].state));
			}
			m.keys[j].docs += p->keys[k].docs;
			m.keys[j].bytes += p->keys[k].bytes;
		}
		for (size_t k = 0; k < p->num_outcomes; k++) {
			size_t j = 0;

			while (j < m.num_outcomes &&
			       strcmp(m.outcomes[j].name,
				      p->outcomes[k].name)) {
				j++;
			}
			if (j == m.num_outcomes) {
				if (j == RP_CENSUS_MAX_OUTCOMES) {
					fprintf(stderr, "reprotect: too many "
							"outcomes\n");
					goto out;
				}
				m.outcomes[j] = p->outcomes[k];
				m.outcomes[j].docs = m.outcomes[j].bytes = 0;
				m.num_outcomes++;
			}
			m.outcomes[j].docs += p->outcomes[k].docs;
			m.outcomes[j].bytes += p->outcomes[k].bytes;
		}
	}
	qsort(m.keys, m.num_keys, sizeof(*m.keys), cmp_key);
	if (rp_merkle_root_of(m.merkle, &st,
			      (const uint8_t(*)[RP_MERKLE_HASH_LEN])leaves,
			      n) ||
	    rp_census_encode(&out, &st, &m, lines.p, lines.len)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	rp_census_fini(&m);
	if (sign_and_save(s, &st, &out, report, &m)) {
		rp_status_prefix(&st, "the merged census statement");
		rc = rp_cli_error(&st);
		goto out;
	}
	print_census(&m, report, is_json, "written, signed");
	rp_cli_flush_usage(s, "census merge");
	rc = RP_EXIT_OK;
out:
	for (size_t i = 0; cs && i < num; i++) {
		rp_census_fini(&cs[i]);
	}
	for (size_t i = 0; bufs && i < num; i++) {
		rp_buf_fini(&bufs[i]);
	}
	free(cs);
	free(bufs);
	free(of);
	free(leaves);
	free(state_taken);
	rp_census_fini(&m);
	rp_buf_fini(&lines);
	rp_buf_fini(&out);
	rp_store_free(s);
	return rc;
}

int rp_cmd_census(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		RP_COMMON_LONGOPTS,
		{ "shard", required_argument, NULL, OPT_SHARD },
		{ "report", required_argument, NULL, OPT_REPORT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "io", required_argument, NULL, OPT_IO },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_run_opts o;
	const char *report = NULL;
	int is_json = 0, is_quiet = 0, has_shard = 0, has_run_opt = 0;
	const char *sub = NULL;
	uint64_t v;
	int c;

	memset(&o, 0, sizeof(o));
	o.mode = RP_RUN_REWRAP;
	o.io = RP_IO_URING;
	o.durability = RP_DURABLE_BATCH;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return RP_EXIT_OK;
		case OPT_SHARD:
			if (!rp_cli_parse_shard(optarg, &o.shard_i,
						&o.shard_n)) {
				return rp_cli_usage(
					"census",
					"--shard I/N with 0 <= I < N, or N "
					"with JOB_COMPLETION_INDEX or "
					"SLURM_ARRAY_TASK_ID set");
			}
			has_shard = 1;
			break;
		case OPT_REPORT:
			report = optarg;
			break;
		case OPT_JSON:
			is_json = 1;
			break;
		case OPT_JOBS:
			if (!rp_cli_parse_u64(optarg, &v) || !v || v > 100000) {
				return rp_cli_usage("census", "bad number '%s'",
						    optarg);
			}
			o.jobs = v;
			has_run_opt = 1;
			break;
		case OPT_IO:
			if (!rp_cli_parse_io(optarg, &o.io)) {
				return rp_cli_usage("census",
						    "--io: uring or sync");
			}
			has_run_opt = 1;
			break;
		case OPT_QUIET:
			is_quiet = 1;
			break;
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage("census", "bad option");
			}
		}
	}
	if (optind == argc) {
		return rp_cli_usage("census", "give at least one PATH, or "
					      "verify FILE, or merge FILE...");
	}
	/* 'verify' and 'merge' are words unless a folder of that name is
	 * meant: './verify' */
	if (!strcmp(argv[optind], "verify") || !strcmp(argv[optind], "merge")) {
		sub = argv[optind++];
	}
	if (sub && (has_shard || has_run_opt)) {
		return rp_cli_usage("census", "--shard, --jobs and --io go "
					      "with taking a census");
	}
	if (sub && !strcmp(sub, "verify")) {
		if (argc - optind != 1 || report) {
			return rp_cli_usage("census", "census verify FILE");
		}
		return census_verify(cli, argv[optind], is_json);
	}
	if (sub) {
		if (optind == argc || !report) {
			return rp_cli_usage("census", "census merge FILE... "
						      "--report FILE");
		}
		return census_merge(cli, argv + optind, (size_t)(argc - optind),
				    report, is_json);
	}
	if (o.shard_n > RP_CENSUS_MAX_PARTS) {
		return rp_cli_usage("census", "--shard: at most %d shards",
				    RP_CENSUS_MAX_PARTS);
	}
	if ((size_t)(argc - optind) > RP_CENSUS_MAX_ROOTS) {
		return rp_cli_usage("census", "at most %d PATHs",
				    RP_CENSUS_MAX_ROOTS);
	}
	o.roots = (const char *const *)argv + optind;
	o.num_roots = (size_t)(argc - optind);
	return census_take(cli, &o, report, is_json, is_quiet);
}
