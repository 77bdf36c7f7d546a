/*
 * run_report.c: the merge of a run's shard reports (run_report.h).
 * Every field the merge reads is checked for its type and range before
 * use; sums are checked for overflow. jansson parses (duplicate keys
 * refused); nothing here reads a file.
 */
#include "run_report.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUTCOMES 64
#define MAX_KEYS     8192

struct shard {
	json_t *root;
	json_t *run;
	const char *name;
	const char *host;
	json_int_t index, of, exit_code;
	double started, ended, seconds;
	int is_stopped;
};

static enum rp_err bad(struct rp_status *st, const struct shard *s,
		       const char *what)
{
	return rp_status_fail(st, RP_ERR_FORMAT, "%s: not a run report: %s",
			      s->name, what);
}

/* a non-negative integer field */
static int get_count(const json_t *o, const char *key, json_int_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		return 0;
	}
	*out = json_integer_value(v);
	return 1;
}

static int get_number(const json_t *o, const char *key, double *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v)) {
		return 0;
	}
	*out = json_number_value(v);
	return *out >= 0;
}

static int is_str_array(const json_t *a, size_t max)
{
	size_t i;
	const json_t *v;

	if (!json_is_array(a) || json_array_size(a) > max) {
		return 0;
	}
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v)) {
			return 0;
		}
	}
	return 1;
}

/* check_run: the identity's fields, each of its type */
static enum rp_err check_run(struct shard *s, struct rp_status *st)
{
	const json_t *r = s->run, *sh = json_object_get(r, "shard");
	const json_t *from = json_object_get(r, "from");

	if (!json_is_object(r)) {
		return bad(st, s,
			   "no \"run\" (a report of reprotect 0.x "
			   "before shard reports named their run?)");
	}
	if (!json_is_string(json_object_get(r, "store")) ||
	    !json_is_string(json_object_get(r, "mode")) ||
	    !json_is_boolean(json_object_get(r, "dry_run")) ||
	    !json_is_string(json_object_get(r, "target_key"))) {
		return bad(st, s, "run: store, mode, dry_run or target_key");
	}
	if (!is_str_array(json_object_get(r, "roots"), RP_REPORT_MAX_ROOTS) ||
	    !json_array_size(json_object_get(r, "roots")) ||
	    !is_str_array(json_object_get(r, "source_keys"), MAX_KEYS) ||
	    !(json_is_null(from) || is_str_array(from, MAX_KEYS))) {
		return bad(st, s, "run: roots, from or source_keys");
	}
	if (!json_is_object(sh) || !get_count(sh, "index", &s->index) ||
	    !get_count(sh, "of", &s->of) || s->of < 1 ||
	    s->of > RP_REPORT_MAX_SHARDS || s->index >= s->of) {
		return bad(st, s, "run: shard {index, of}");
	}
	return RP_OK;
}

static enum rp_err parse(struct shard *s, struct rp_status *st,
			 const struct rp_report_in *in)
{
	json_error_t jerr;
	const json_t *stopped, *host, *ops;
	json_int_t n;
	double x;

	s->name = in->name;
	if (in->len > RP_REPORT_MAX) {
		return bad(st, s, "larger than 1 GiB");
	}
	s->root = json_loadb(in->buf, in->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!s->root) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "%s: not JSON: line %d: %s", in->name,
				      jerr.line, jerr.text);
	}
	if (!json_is_object(s->root)) {
		return bad(st, s, "not an object");
	}
	s->run = json_object_get(s->root, "run");
	if (check_run(s, st)) {
		return st->err;
	}
	stopped = json_object_get(s->root, "stopped");
	host = json_object_get(s->root, "host");
	ops = json_object_get(s->root, "key_ops");
	if (!json_is_boolean(stopped) || !json_is_string(host) ||
	    !get_number(s->root, "started_unix", &s->started) ||
	    !get_number(s->root, "ended_unix", &s->ended) ||
	    !get_number(s->root, "seconds", &s->seconds) ||
	    !get_count(s->root, "exit_code", &s->exit_code) ||
	    s->ended < s->started) {
		return bad(st, s,
			   "stopped, host, started_unix, ended_unix, "
			   "seconds or exit_code");
	}
	s->is_stopped = json_is_true(stopped);
	s->host = json_string_value(host);
	if (!get_count(s->root, "documents_seen", &n) ||
	    !get_count(s->root, "bytes_written", &n) ||
	    !get_count(s->root, "in_place", &n) ||
	    !get_count(s->root, "copied", &n) || !json_is_object(ops) ||
	    !get_count(ops, "count", &n) ||
	    !get_number(ops, "waited_seconds", &x) ||
	    !(json_is_null(json_object_get(ops, "allowed_per_second")) ||
	      get_number(ops, "allowed_per_second", &x))) {
		return bad(st, s,
			   "documents_seen, bytes_written, in_place, "
			   "copied or key_ops");
	}
	if (!json_is_object(json_object_get(s->root, "outcomes")) ||
	    json_object_size(json_object_get(s->root, "outcomes")) >
		    MAX_OUTCOMES ||
	    !json_is_array(json_object_get(s->root, "keys")) ||
	    json_array_size(json_object_get(s->root, "keys")) > MAX_KEYS ||
	    !json_is_array(json_object_get(s->root, "documents"))) {
		return bad(st, s, "outcomes, keys or documents");
	}
	return RP_OK;
}

/* same_run: RP_OK, or which field of b's identity differs from a's */
static enum rp_err same_run(const struct shard *a, const struct shard *b,
			    struct rp_status *st)
{
	static const struct {
		const char *field, *says;
	} id[] = {
		{ "store", "another store" },
		{ "mode", "another mode" },
		{ "dry_run", "a dry run and a real one" },
		{ "roots", "other roots" },
		{ "from", "another --from" },
		{ "target_key", "another target key (a rekey between them)" },
		{ "source_keys", "other source keys (a key archived, revoked "
				 "or restored between them)" },
	};

	for (size_t i = 0; i < sizeof(id) / sizeof(id[0]); i++) {
		if (!json_equal(json_object_get(a->run, id[i].field),
				json_object_get(b->run, id[i].field))) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "%s and %s are not shards of one "
					      "run: %s (run.%s)",
					      a->name, b->name, id[i].says,
					      id[i].field);
		}
	}
	if (a->of != b->of) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "%s and %s are not shards of one run: "
				      "%lld shards against %lld (run.shard.of)",
				      a->name, b->name, (long long)a->of,
				      (long long)b->of);
	}
	return RP_OK;
}

/* add_count: o[key] += v, refusing an overflow */
static int add_count(json_t *o, const char *key, json_int_t v)
{
	const json_t *cur = json_object_get(o, key);
	const json_int_t have = cur ? json_integer_value(cur) : 0;
	json_int_t sum;

	if (__builtin_add_overflow(have, v, &sum)) {
		return 0;
	}
	return !json_object_set_new(o, key, json_integer(sum));
}

/* add_outcomes: every {documents, bytes} of s's outcomes into `tot` */
static enum rp_err add_outcomes(json_t *tot, const struct shard *s,
				struct rp_status *st)
{
	const char *name;
	json_t *v;

	json_object_foreach(json_object_get(s->root, "outcomes"), name, v)
	{
		json_int_t docs, bytes;
		json_t *t = json_object_get(tot, name);

		if (!json_is_object(v) || !get_count(v, "documents", &docs) ||
		    !get_count(v, "bytes", &bytes)) {
			return bad(st, s, "outcomes: {documents, bytes}");
		}
		if (!t) {
			if (json_object_size(tot) >= MAX_OUTCOMES) {
				return bad(st, s, "too many outcomes");
			}
			t = json_object();
			if (!t || json_object_set_new(tot, name, t)) {
				return rp_status_fail(st, RP_ERR_NOMEM,
						      "out of memory");
			}
		}
		if (!add_count(t, "documents", docs) ||
		    !add_count(t, "bytes", bytes)) {
			return bad(st, s, "outcomes: totals overflow");
		}
	}
	return RP_OK;
}

/*
 * add_keys: s's per-key counts into `tot` (key id -> object); a key's
 * state is the one the shard that ended last saw
 */
static enum rp_err add_keys(json_t *tot, json_t *state_at,
			    const struct shard *s, struct rp_status *st)
{
	size_t i;
	json_t *k;

	json_array_foreach(json_object_get(s->root, "keys"), i, k)
	{
		const json_t *id = json_object_get(k, "key");
		const json_t *state = json_object_get(k, "state");
		const json_t *seen;
		const char *field;
		json_t *t, *v;

		if (!json_is_object(k) || !json_is_string(id) ||
		    !json_is_string(state)) {
			return bad(st, s, "keys: {key, state, ...}");
		}
		t = json_object_get(tot, json_string_value(id));
		if (!t) {
			if (json_object_size(tot) >= MAX_KEYS) {
				return bad(st, s, "too many keys");
			}
			t = json_pack("{sO}", "key", id);
			if (!t || json_object_set_new(
					  tot, json_string_value(id), t)) {
				return rp_status_fail(st, RP_ERR_NOMEM,
						      "out of memory");
			}
		}
		seen = json_object_get(state_at, json_string_value(id));
		if (!seen || json_real_value(seen) <= s->ended) {
			if (json_object_set(t, "state", (json_t *)state) ||
			    json_object_set_new(state_at, json_string_value(id),
						json_real(s->ended))) {
				return rp_status_fail(st, RP_ERR_NOMEM,
						      "out of memory");
			}
		}
		json_object_foreach(k, field, v)
		{
			json_int_t n;

			if (!strcmp(field, "key") || !strcmp(field, "state")) {
				continue;
			}
			if (!get_count(k, field, &n)) {
				return bad(st, s, "keys: a count");
			}
			if (json_object_size(t) > MAX_OUTCOMES + 3 ||
			    !add_count(t, field, n)) {
				return bad(st, s, "keys: totals overflow");
			}
		}
	}
	return RP_OK;
}

/* add_docs: s's listed documents, each with its shard, onto `docs` */
static enum rp_err add_docs(json_t *docs, const struct shard *s,
			    struct rp_status *st)
{
	size_t i;
	json_t *d;

	json_array_foreach(json_object_get(s->root, "documents"), i, d)
	{
		json_t *c;

		if (!json_is_object(d)) {
			return bad(st, s, "documents: not an object");
		}
		c = json_copy(d);
		if (!c ||
		    json_object_set_new(c, "shard", json_integer(s->index)) ||
		    json_array_append_new(docs, c)) {
			return rp_status_fail(st, RP_ERR_NOMEM,
					      "out of memory");
		}
	}
	return RP_OK;
}

static json_int_t count_of(const struct shard *s, const char *key)
{
	json_int_t n = 0;

	(void)get_count(s->root, key, &n);
	return n;
}

static json_int_t ops_count(const struct shard *s)
{
	json_int_t n = 0;

	(void)get_count(json_object_get(s->root, "key_ops"), "count", &n);
	return n;
}

static double ops_number(const struct shard *s, const char *key)
{
	double x = 0;

	(void)get_number(json_object_get(s->root, "key_ops"), key, &x);
	return x;
}

static json_int_t moved_of(const struct shard *s)
{
	json_int_t n = 0;
	const json_t *m =
		json_object_get(json_object_get(s->root, "outcomes"), "moved");

	(void)get_count(m, "documents", &n);
	return n;
}

static json_t *int_list(const unsigned char *mark, json_int_t of,
			unsigned char want)
{
	json_t *a = json_array();

	for (json_int_t i = 0; a && i < of; i++) {
		if (mark[i] == want &&
		    json_array_append_new(a, json_integer(i))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

enum { MARK_MISSING = 0, MARK_PRESENT = 1 };

static const char *const verdict_name[] = {
	[RP_REPORT_COMPLETE] = "complete",
	[RP_REPORT_PARTIAL] = "some-documents-failed",
	[RP_REPORT_RETIRING] = "documents-under-a-retiring-key",
	[RP_REPORT_STOPPED] = "a-shard-stopped",
	[RP_REPORT_INCOMPLETE] = "shards-missing-or-given-twice",
};

/* merge: the shards (parsed, of one run) into *out */
static enum rp_err merge(json_t **out, enum rp_report_verdict *verdict,
			 struct rp_status *st, struct shard *s, size_t num)
{
	const json_int_t of = s[0].of;
	unsigned char *mark = calloc((size_t)of, 1);
	json_t *m = json_object(), *outcomes = json_object();
	json_t *keys = json_object(), *state_at = json_object();
	json_t *docs = json_array(), *dups = json_array();
	json_t *stopped = json_array(), *unclean = json_array();
	json_t *reports = json_array(), *run = NULL, *key_list = NULL;
	json_t *ops, *slow, *shards;
	json_int_t seen = 0, written = 0, in_place = 0, copied = 0;
	json_int_t moved = 0, moved_bytes = 0, nops = 0;
	double start = 0, end = 0, waited = 0, allowed = 0;
	int is_allowed = 1, is_ok = 1;
	size_t slowest = 0;
	enum rp_err err = RP_ERR_NOMEM;

	*verdict = RP_REPORT_COMPLETE;
	if (!mark || !m || !outcomes || !keys || !state_at || !docs || !dups ||
	    !stopped || !unclean || !reports) {
		goto fail;
	}
	for (size_t i = 0; i < num; i++) {
		struct shard *p = &s[i];

		if (mark[p->index] == MARK_PRESENT) {
			if (json_array_append_new(dups,
						  json_integer(p->index))) {
				goto fail;
			}
			*verdict = RP_REPORT_INCOMPLETE;
			continue;
		}
		mark[p->index] = MARK_PRESENT;
		err = add_outcomes(outcomes, p, st);
		if (!err) {
			err = add_keys(keys, state_at, p, st);
		}
		if (!err) {
			err = add_docs(docs, p, st);
		}
		if (err) {
			goto fail;
		}
		err = RP_ERR_FORMAT;
		if (__builtin_add_overflow(seen, count_of(p, "documents_seen"),
					   &seen) ||
		    __builtin_add_overflow(
			    written, count_of(p, "bytes_written"), &written) ||
		    __builtin_add_overflow(in_place, count_of(p, "in_place"),
					   &in_place) ||
		    __builtin_add_overflow(copied, count_of(p, "copied"),
					   &copied) ||
		    __builtin_add_overflow(nops, ops_count(p), &nops)) {
			(void)bad(st, p, "totals overflow");
			goto fail;
		}
		err = RP_ERR_NOMEM;
		waited += ops_number(p, "waited_seconds");
		if (json_is_null(
			    json_object_get(json_object_get(p->root, "key_ops"),
					    "allowed_per_second"))) {
			is_allowed = 0;
		}
		allowed += ops_number(p, "allowed_per_second");
		if (!i || p->started < start) {
			start = p->started;
		}
		if (!i || p->ended > end) {
			end = p->ended;
		}
		if (p->seconds > s[slowest].seconds) {
			slowest = i;
		}
		if (p->is_stopped) {
			if (json_array_append_new(stopped,
						  json_integer(p->index))) {
				goto fail;
			}
		} else if (p->exit_code &&
			   json_array_append_new(unclean,
						 json_integer(p->index))) {
			goto fail;
		}
		if (json_array_append_new(
			    reports,
			    json_pack("{sIsssssfsIsbsI}", "index", p->index,
				      "report", p->name, "host", p->host,
				      "seconds", p->seconds, "exit_code",
				      p->exit_code, "stopped", p->is_stopped,
				      "moved", moved_of(p)))) {
			goto fail;
		}
	}
	for (json_int_t i = 0; i < of; i++) {
		if (mark[i] == MARK_MISSING) {
			*verdict = RP_REPORT_INCOMPLETE;
		}
	}
	for (size_t i = 0; i < num && *verdict != RP_REPORT_INCOMPLETE; i++) {
		enum rp_report_verdict v = RP_REPORT_COMPLETE;

		if (s[i].is_stopped || s[i].exit_code == 8) {
			v = RP_REPORT_STOPPED;
		} else if (s[i].exit_code == 9) {
			v = RP_REPORT_RETIRING;
		} else if (s[i].exit_code) {
			v = RP_REPORT_PARTIAL;
		}
		*verdict = v > *verdict ? v : *verdict;
	}
	{
		const json_t *mv = json_object_get(outcomes, "moved");

		(void)get_count(mv, "documents", &moved);
		(void)get_count(mv, "bytes", &moved_bytes);
	}
	run = json_deep_copy(s[0].run);
	key_list = json_array();
	if (!run || !key_list ||
	    json_object_set_new(run, "shard", json_pack("{sI}", "of", of))) {
		goto fail;
	}
	{
		const char *id;
		json_t *k;

		json_object_foreach(keys, id, k)
		{
			if (json_array_append(key_list, k)) {
				goto fail;
			}
		}
	}
	shards = json_pack("{sIsosososososo}", "of", of, "present",
			   int_list(mark, of, MARK_PRESENT), "missing",
			   int_list(mark, of, MARK_MISSING), "duplicated",
			   json_incref(dups), "stopped", json_incref(stopped),
			   "not_clean", json_incref(unclean), "reports",
			   json_incref(reports));
	ops = json_pack("{sIsfsosf}", "count", nops, "per_second",
			end > start ? (double)nops / (end - start) : 0.0,
			"allowed_per_second",
			is_allowed ? json_real(allowed) : json_null(),
			"waited_seconds", waited);
	slow = json_pack("{sIsfssss}", "index", s[slowest].index, "seconds",
			 s[slowest].seconds, "host", s[slowest].host, "report",
			 s[slowest].name);
	/* each set takes its value, even when it fails: m owns them all */
	is_ok &= !json_object_set_new(m, "merged", json_true());
	is_ok &= !json_object_set_new(
		m, "complete", json_boolean(*verdict == RP_REPORT_COMPLETE));
	is_ok &= !json_object_set_new(m, "verdict",
				      json_string(verdict_name[*verdict]));
	is_ok &= !json_object_set_new(m, "run", run);
	is_ok &= !json_object_set_new(m, "shards", shards);
	is_ok &= !json_object_set_new(m, "started_unix", json_real(start));
	is_ok &= !json_object_set_new(m, "ended_unix", json_real(end));
	is_ok &= !json_object_set_new(m, "seconds", json_real(end - start));
	is_ok &= !json_object_set_new(m, "documents_seen", json_integer(seen));
	is_ok &= !json_object_set_new(
		m, "moved_per_second",
		json_real(end > start ? (double)moved / (end - start) : 0));
	is_ok &= !json_object_set_new(
		m, "moved_mb_per_second",
		json_real(end > start
				  ? (double)moved_bytes / 1e6 / (end - start)
				  : 0));
	is_ok &=
		!json_object_set_new(m, "bytes_written", json_integer(written));
	is_ok &= !json_object_set_new(m, "in_place", json_integer(in_place));
	is_ok &= !json_object_set_new(m, "copied", json_integer(copied));
	is_ok &= !json_object_set_new(m, "key_ops", ops);
	is_ok &= !json_object_set_new(m, "slowest_shard", slow);
	is_ok &= !json_object_set_new(m, "outcomes", outcomes);
	is_ok &= !json_object_set_new(m, "keys", key_list);
	is_ok &= !json_object_set_new(m, "documents", docs);
	run = key_list = outcomes = docs = NULL;
	if (!is_ok) {
		goto fail;
	}
	free(mark);
	json_decref(keys);
	json_decref(state_at);
	json_decref(dups);
	json_decref(stopped);
	json_decref(unclean);
	json_decref(reports);
	*out = m;
	return RP_OK;
fail:
	if (err == RP_ERR_NOMEM) {
		(void)rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	free(mark);
	json_decref(m);
	json_decref(outcomes);
	json_decref(keys);
	json_decref(state_at);
	json_decref(docs);
	json_decref(dups);
	json_decref(stopped);
	json_decref(unclean);
	json_decref(reports);
	json_decref(run);
	json_decref(key_list);
	return st->err ? st->err : RP_ERR_NOMEM;
}

enum rp_err rp_report_merge(json_t **out, enum rp_report_verdict *verdict,
			    struct rp_status *st, const struct rp_report_in *in,
			    size_t num)
{
	struct shard *s;
	enum rp_err err = RP_OK;

	*out = NULL;
	*verdict = RP_REPORT_INCOMPLETE;
	if (!num || num > RP_REPORT_MAX_SHARDS) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "give 1 to %d shard reports",
				      RP_REPORT_MAX_SHARDS);
	}
	s = calloc(num, sizeof(*s));
	if (!s) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < num && !err; i++) {
		err = parse(&s[i], st, &in[i]);
		if (!err && i) {
			err = same_run(&s[0], &s[i], st);
		}
	}
	if (!err) {
		err = merge(out, verdict, st, s, num);
	}
	for (size_t i = 0; i < num; i++) {
		json_decref(s[i].root);
	}
	free(s);
	return err;
}
