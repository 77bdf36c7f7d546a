/*
 * census.c: the census statement's text (census.h): encode and a strict
 * decoder over bytes. No I/O, no keys: the CLI signs and verifies.
 */
#include "census.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_b64.h"
#include "rp_text.h"

/* a doc line: its fields and a PATH_MAX path with every byte escaped */
#define LINE_MAX_LEN (4 * 4096 + 256)

static int hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

/* unescape: `in` (len bytes, not empty) into out (cap bytes), unescaped */
static int unescape(char *out, size_t cap, const char *in, size_t len)
{
	if (!len || len >= cap || memchr(in, '\0', len)) {
		return 0;
	}
	memcpy(out, in, len);
	out[len] = '\0';
	return rp_text_unescape(out);
}

static enum rp_err add_hex(struct rp_buf *b, const uint8_t *p, size_t n)
{
	char h[2 * 64 + 1];

	if (n > 64) {
		return RP_ERR_USAGE;
	}
	rp_hex_encode(h, p, n);
	return rp_buf_add(b, h, 2 * n) ? RP_ERR_NOMEM : RP_OK;
}

static int is_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		if (!((s[n] >= 'a' && s[n] <= 'z') || s[n] == '-')) {
			return 0;
		}
	}
	return n >= 1 && n <= RP_CENSUS_NAME_MAX;
}

static enum rp_err addf(struct rp_buf *b, const char *fmt, ...) RP_PRINTF(2, 3);

static enum rp_err addf(struct rp_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		return RP_ERR_USAGE;
	}
	return rp_buf_add(b, tmp, (size_t)n) ? RP_ERR_NOMEM : RP_OK;
}

/* encoding */

enum rp_err rp_census_leaf(uint8_t out[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
			   struct rp_status *st, const uint8_t *key_id,
			   const uint8_t *doc_id, const char *path)
{
	struct rp_buf b = { 0 };
	static const uint8_t zero[RP_KEY_ID_LEN];
	enum rp_err err;

	if (rp_buf_add(&b, key_id ? key_id : zero, RP_KEY_ID_LEN) ||
	    rp_buf_add(&b, doc_id ? doc_id : zero, RP_DOC_ID_LEN) ||
	    rp_buf_add_str(&b, path)) {
		rp_buf_fini(&b);
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = rp_merkle_leaf_hash(out, st, b.p, b.len);
	rp_buf_fini(&b);
	return err;
}

enum rp_err rp_census_doc_line(struct rp_buf *out, struct rp_status *st,
			       const uint8_t *key_id, const uint8_t *doc_id,
			       const char *outcome, const char *path)
{
	enum rp_err err;

	if (!is_name(outcome) || !path[0]) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "census: bad outcome or empty path");
	}
	err = rp_buf_add_str(out, "doc ") ? RP_ERR_NOMEM : RP_OK;
	if (!err) {
		err = key_id ? add_hex(out, key_id, RP_KEY_ID_LEN)
			     : (rp_buf_add_u8(out, '-') ? RP_ERR_NOMEM : 0);
	}
	if (!err) {
		err = rp_buf_add_u8(out, ' ') ? RP_ERR_NOMEM : RP_OK;
	}
	if (!err) {
		err = doc_id ? add_hex(out, doc_id, RP_DOC_ID_LEN)
			     : (rp_buf_add_u8(out, '-') ? RP_ERR_NOMEM : 0);
	}
	if (!err) {
		err = addf(out, " %s ", outcome);
	}
	if (!err) {
		err = rp_text_add_escaped(out, path);
	}
	if (!err) {
		err = rp_buf_add_u8(out, '\n') ? RP_ERR_NOMEM : RP_OK;
	}
	return err ? rp_status_fail(st, err, "census: out of memory") : RP_OK;
}

enum rp_err rp_census_encode(struct rp_buf *out, struct rp_status *st,
			     const struct rp_census *c, const uint8_t *docs,
			     size_t docs_len)
{
	enum rp_err err = RP_OK;

	if (!c->num_roots || c->num_roots > RP_CENSUS_MAX_ROOTS ||
	    c->num_keys > RP_CENSUS_MAX_KEYS ||
	    c->num_outcomes > RP_CENSUS_MAX_OUTCOMES ||
	    (c->sel == RP_CENSUS_SHARD &&
	     (c->shard_n < 2 || c->shard_n > RP_CENSUS_MAX_PARTS ||
	      c->shard_i >= c->shard_n)) ||
	    (c->sel == RP_CENSUS_MERGED &&
	     (!c->shard_n || c->shard_n > RP_CENSUS_MAX_PARTS || !c->parts))) {
		return rp_status_fail(st, RP_ERR_USAGE, "census: bad fields");
	}
	for (size_t i = 0; i < c->num_roots; i++) {
		if (!c->roots[i][0]) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "census: empty root");
		}
	}
	for (size_t i = 0; i < c->num_keys; i++) {
		if (!is_name(c->keys[i].state) ||
		    (i && memcmp(c->keys[i - 1].id, c->keys[i].id,
				 RP_KEY_ID_LEN) >= 0)) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "census: keys not in order");
		}
	}
	for (size_t i = 0; i < c->num_outcomes; i++) {
		if (!is_name(c->outcomes[i].name)) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "census: bad outcome name");
		}
	}
	err = addf(out, "%s\nstore ", RP_CENSUS_MAGIC);
	if (!err) {
		err = add_hex(out, c->world, RP_CENSUS_WORLD_LEN);
	}
	if (!err) {
		err = addf(out, "\ntaken %llu\naudit %llu\n",
			   (unsigned long long)c->taken,
			   (unsigned long long)c->audit_seq);
	}
	for (size_t i = 0; !err && i < c->num_roots; i++) {
		err = addf(out, "root ");
		if (!err) {
			err = rp_text_add_escaped(out, c->roots[i]);
		}
		if (!err) {
			err = addf(out, "\n");
		}
	}
	if (err) {
		goto out;
	}
	if (c->sel == RP_CENSUS_SHARD) {
		err = addf(out, "selection shard %llu %llu\n",
			   (unsigned long long)c->shard_i,
			   (unsigned long long)c->shard_n);
	} else if (c->sel == RP_CENSUS_MERGED) {
		err = addf(out, "selection merged %llu\n",
			   (unsigned long long)c->shard_n);
		for (uint64_t i = 0; !err && i < c->shard_n; i++) {
			err = addf(out, "part %llu %llu %llu ",
				   (unsigned long long)i,
				   (unsigned long long)c->parts[i].taken,
				   (unsigned long long)c->parts[i].docs);
			if (!err) {
				err = add_hex(out, c->parts[i].merkle,
					      RP_MERKLE_HASH_LEN);
			}
			if (!err) {
				err = addf(out, "\n");
			}
		}
	} else {
		err = addf(out, "selection all\n");
	}
	if (!err) {
		err = addf(out, "active ");
	}
	if (!err) {
		err = c->has_active ? add_hex(out, c->active, RP_KEY_ID_LEN)
				    : addf(out, "-");
	}
	if (!err) {
		err = addf(out, "\n");
	}
	for (size_t i = 0; !err && i < c->num_keys; i++) {
		err = addf(out, "key ");
		if (!err) {
			err = add_hex(out, c->keys[i].id, RP_KEY_ID_LEN);
		}
		if (!err) {
			err = addf(out, " %s %llu %llu\n", c->keys[i].state,
				   (unsigned long long)c->keys[i].docs,
				   (unsigned long long)c->keys[i].bytes);
		}
	}
	for (size_t i = 0; !err && i < c->num_outcomes; i++) {
		err = addf(out, "outcome %s %llu %llu\n", c->outcomes[i].name,
			   (unsigned long long)c->outcomes[i].docs,
			   (unsigned long long)c->outcomes[i].bytes);
	}
	if (!err && docs_len) {
		err = rp_buf_add(out, docs, docs_len) ? RP_ERR_NOMEM : RP_OK;
	}
	if (!err) {
		err = addf(out, "documents %llu\nlisted %llu\nmerkle ",
			   (unsigned long long)c->documents,
			   (unsigned long long)c->listed);
	}
	if (!err) {
		err = add_hex(out, c->merkle, RP_MERKLE_HASH_LEN);
	}
	if (!err) {
		err = addf(out, "\n");
	}
out:
	if (err) {
		return rp_status_fail(st, err,
				      err == RP_ERR_NOMEM
					      ? "out of memory"
					      : "census: bad field");
	}
	return RP_OK;
}

enum rp_err
rp_census_encode_sig(struct rp_buf *out, struct rp_status *st,
		     const uint8_t signer[RP_ATLEAST(RP_KEY_ID_LEN)],
		     const uint8_t *sig, size_t sig_len)
{
	char b64[RP_SIG_MAX * 4 / 3 + 8];
	size_t b64_len = 0;
	enum rp_err err;

	if (!sig_len || sig_len > RP_SIG_MAX ||
	    rp_b64_encode(b64, sizeof(b64), &b64_len, sig, sig_len)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "census: bad signature");
	}
	err = addf(out, "sig ");
	if (!err) {
		err = add_hex(out, signer, RP_KEY_ID_LEN);
	}
	if (!err) {
		err = rp_buf_add_u8(out, ' ') || rp_buf_add_str(out, b64) ||
				      rp_buf_add_u8(out, '\n')
			      ? RP_ERR_NOMEM
			      : RP_OK;
	}
	return err ? rp_status_fail(st, err, "out of memory") : RP_OK;
}

/* decoding */

struct rd {
	const uint8_t *in;
	size_t len, off;
	size_t line_no;
	char line[LINE_MAX_LEN + 1]; /* the current line, NUL-terminated */
	size_t line_len;
	size_t line_off; /* where the current line starts */
};

/* next_line: the next line into r->line; 0 at the end or a bad line */
static int next_line(struct rd *r)
{
	const uint8_t *nl;
	size_t n;

	if (r->off >= r->len) {
		return 0;
	}
	nl = memchr(r->in + r->off, '\n', r->len - r->off);
	if (!nl) {
		return 0;
	}
	n = (size_t)(nl - (r->in + r->off));
	if (n > LINE_MAX_LEN || memchr(r->in + r->off, '\0', n)) {
		return 0;
	}
	memcpy(r->line, r->in + r->off, n);
	r->line[n] = '\0';
	r->line_len = n;
	r->line_off = r->off;
	r->off += n + 1;
	r->line_no++;
	return 1;
}

/* peek: does the next line start with `word` and a space? */
static int peek(const struct rd *r, const char *word)
{
	const size_t n = strlen(word);

	return r->len - r->off > n && !memcmp(r->in + r->off, word, n) &&
	       r->in[r->off + n] == ' ';
}

/*
 * field: cuts the next space-separated field off *p (NULL-terminating
 * it); 0 if there is none or it is empty
 */
static int field(char **p, char **out)
{
	char *sp;

	if (!*p || !**p) {
		return 0;
	}
	*out = *p;
	sp = strchr(*p, ' ');
	if (sp) {
		*sp = '\0';
		*p = sp + 1;
	} else {
		*p = NULL;
	}
	return **out != '\0';
}

/* get_hex: exactly n bytes of lower-case hex (the canonical form) */
static int get_hex(const char *s, uint8_t *out, size_t n)
{
	const size_t len = strlen(s);

	for (size_t i = 0; i < len; i++) {
		if (hexval(s[i]) < 0) {
			return 0;
		}
	}
	return !rp_hex_decode(out, n, s, len);
}

/* one_field: the line is "WORD VALUE" with exactly one value */
static int one_field(struct rd *r, const char *word, char **value)
{
	char *p = r->line, *w;

	return next_line(r) && field(&p, &w) && !strcmp(w, word) &&
	       field(&p, value) && !p;
}

static int add_u64(uint64_t *acc, uint64_t v)
{
	if (*acc > UINT64_MAX - v) {
		return 0;
	}
	*acc += v;
	return 1;
}

/* parse_doc: the doc line in `line` (cut in place) into d */
static int parse_doc(char *line, struct rp_census_doc *d, char *path,
		     size_t path_cap)
{
	char *p = line, *w, *k, *id, *o;

	if (!field(&p, &w) || strcmp(w, "doc") || !field(&p, &k) ||
	    !field(&p, &id) || !field(&p, &o) || !p) {
		return 0;
	}
	d->has_key = strcmp(k, "-") != 0;
	d->has_doc_id = strcmp(id, "-") != 0;
	if ((d->has_key && !get_hex(k, d->key, RP_KEY_ID_LEN)) ||
	    (d->has_doc_id && !get_hex(id, d->doc_id, RP_DOC_ID_LEN)) ||
	    !is_name(o)) {
		return 0;
	}
	snprintf(d->outcome, sizeof(d->outcome), "%s", o);
	d->path = path;
	return unescape(path, path_cap, p, strlen(p));
}

#define BAD(what)                                                              \
	do {                                                                   \
		err = rp_status_fail(st, RP_ERR_FORMAT,                        \
				     "census: line %zu: %s", r->line_no + 1,   \
				     what);                                    \
		goto out;                                                      \
	} while (0)

enum rp_err rp_census_decode(struct rp_census *c, struct rp_status *st,
			     const uint8_t *in, size_t in_len)
{
	struct rd *r = calloc(1, sizeof(*r));
	char *path = malloc(LINE_MAX_LEN + 1);
	char *p, *w, *v, *v2, *v3, *v4;
	uint64_t sum = 0;
	enum rp_err err = RP_OK;

	memset(c, 0, sizeof(*c));
	if (!r || !path) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	r->in = in;
	r->len = in_len;
	if (in_len > RP_CENSUS_MAX) {
		BAD("too long");
	}
	if (!next_line(r) || strcmp(r->line, RP_CENSUS_MAGIC)) {
		r->line_no = 0;
		BAD("not a census statement (" RP_CENSUS_MAGIC ")");
	}
	if (!one_field(r, "store", &v) ||
	    !get_hex(v, c->world, RP_CENSUS_WORLD_LEN)) {
		BAD("store WORLD-ID expected");
	}
	if (!one_field(r, "taken", &v) || !rp_text_parse_u64(v, &c->taken)) {
		BAD("taken SECONDS expected");
	}
	if (!one_field(r, "audit", &v) ||
	    !rp_text_parse_u64(v, &c->audit_seq)) {
		BAD("audit SEQ expected");
	}
	while (peek(r, "root")) {
		if (c->num_roots == RP_CENSUS_MAX_ROOTS) {
			BAD("too many roots");
		}
		if (!next_line(r) ||
		    !unescape(path, LINE_MAX_LEN + 1, r->line + 5,
			      r->line_len - 5) ||
		    !(c->roots[c->num_roots] = strdup(path))) {
			BAD("root PATH expected");
		}
		for (size_t i = 0; i < c->num_roots; i++) {
			if (!strcmp(c->roots[i], path)) {
				c->num_roots++; /* freed by fini */
				BAD("root repeated");
			}
		}
		c->num_roots++;
	}
	if (!c->num_roots) {
		BAD("root PATH expected");
	}
	p = r->line;
	if (!next_line(r) || !field(&p, &w) || strcmp(w, "selection") ||
	    !field(&p, &v)) {
		BAD("selection expected");
	}
	if (!strcmp(v, "all") && !p) {
		c->sel = RP_CENSUS_ALL;
	} else if (!strcmp(v, "shard") && field(&p, &v2) && field(&p, &v3) &&
		   !p && rp_text_parse_u64(v2, &c->shard_i) &&
		   rp_text_parse_u64(v3, &c->shard_n) && c->shard_n >= 2 &&
		   c->shard_n <= RP_CENSUS_MAX_PARTS &&
		   c->shard_i < c->shard_n) {
		c->sel = RP_CENSUS_SHARD;
	} else if (!strcmp(v, "merged") && field(&p, &v2) && !p &&
		   rp_text_parse_u64(v2, &c->shard_n) && c->shard_n >= 1 &&
		   c->shard_n <= RP_CENSUS_MAX_PARTS) {
		c->sel = RP_CENSUS_MERGED;
	} else {
		BAD("selection all, shard I N or merged N expected");
	}
	if (c->sel == RP_CENSUS_MERGED) {
		c->parts = calloc(c->shard_n, sizeof(*c->parts));
		if (!c->parts) {
			err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
			goto out;
		}
		for (uint64_t i = 0; i < c->shard_n; i++) {
			uint64_t idx;

			p = r->line;
			if (!next_line(r) || !field(&p, &w) ||
			    strcmp(w, "part") || !field(&p, &v) ||
			    !field(&p, &v2) || !field(&p, &v3) ||
			    !field(&p, &v4) || p ||
			    !rp_text_parse_u64(v, &idx) || idx != i ||
			    !rp_text_parse_u64(v2, &c->parts[i].taken) ||
			    !rp_text_parse_u64(v3, &c->parts[i].docs) ||
			    !get_hex(v4, c->parts[i].merkle,
				     RP_MERKLE_HASH_LEN) ||
			    !add_u64(&sum, c->parts[i].docs)) {
				BAD("part I TAKEN DOCUMENTS MERKLE expected, "
				    "one per shard in order");
			}
		}
	}
	if (!one_field(r, "active", &v) ||
	    (strcmp(v, "-") && !get_hex(v, c->active, RP_KEY_ID_LEN))) {
		BAD("active KEY-ID expected");
	}
	c->has_active = strcmp(v, "-") != 0;
	while (peek(r, "key")) {
		struct rp_census_key *k;

		if (c->num_keys == RP_CENSUS_MAX_KEYS) {
			BAD("too many keys");
		}
		if (!c->keys) {
			c->keys = calloc(RP_CENSUS_MAX_KEYS, sizeof(*c->keys));
			if (!c->keys) {
				err = rp_status_fail(st, RP_ERR_NOMEM,
						     "out of memory");
				goto out;
			}
		}
		k = &c->keys[c->num_keys];
		p = r->line;
		if (!next_line(r) || !field(&p, &w) || !field(&p, &v) ||
		    !field(&p, &v2) || !field(&p, &v3) || !field(&p, &v4) ||
		    p || !get_hex(v, k->id, RP_KEY_ID_LEN) || !is_name(v2) ||
		    !rp_text_parse_u64(v3, &k->docs) ||
		    !rp_text_parse_u64(v4, &k->bytes)) {
			BAD("key KEY-ID STATE DOCUMENTS BYTES expected");
		}
		if (c->num_keys && memcmp(c->keys[c->num_keys - 1].id, k->id,
					  RP_KEY_ID_LEN) >= 0) {
			BAD("keys out of order or repeated");
		}
		snprintf(k->state, sizeof(k->state), "%s", v2);
		c->num_keys++;
	}
	while (peek(r, "outcome")) {
		struct rp_census_outcome *o;

		if (c->num_outcomes == RP_CENSUS_MAX_OUTCOMES) {
			BAD("too many outcomes");
		}
		o = &c->outcomes[c->num_outcomes];
		p = r->line;
		if (!next_line(r) || !field(&p, &w) || !field(&p, &v) ||
		    !field(&p, &v2) || !field(&p, &v3) || p || !is_name(v) ||
		    !rp_text_parse_u64(v2, &o->docs) ||
		    !rp_text_parse_u64(v3, &o->bytes) || !o->docs) {
			BAD("outcome NAME DOCUMENTS BYTES expected (DOCUMENTS "
			    "above 0)");
		}
		for (size_t i = 0; i < c->num_outcomes; i++) {
			if (!strcmp(c->outcomes[i].name, v)) {
				BAD("outcome repeated");
			}
		}
		snprintf(o->name, sizeof(o->name), "%s", v);
		c->num_outcomes++;
	}
	c->docs_off = r->off;
	while (peek(r, "doc")) {
		struct rp_census_doc d;

		if (!next_line(r) ||
		    !parse_doc(r->line, &d, path, LINE_MAX_LEN + 1)) {
			BAD("doc KEY-ID DOC-ID OUTCOME PATH expected");
		}
		c->listed++;
	}
	c->docs_len = r->off - c->docs_off;
	if (!one_field(r, "documents", &v) ||
	    !rp_text_parse_u64(v, &c->documents)) {
		BAD("documents N expected");
	}
	if (c->sel == RP_CENSUS_MERGED && sum != c->documents) {
		BAD("the parts' documents do not add up");
	}
	sum = 0;
	for (size_t i = 0; i < c->num_outcomes; i++) {
		if (!add_u64(&sum, c->outcomes[i].docs)) {
			BAD("outcomes overflow");
		}
	}
	if (sum != c->documents) {
		BAD("the outcomes' documents do not add up");
	}
	if (c->listed > c->documents) {
		BAD("more documents listed than seen");
	}
	if (!one_field(r, "listed", &v) || !rp_text_parse_u64(v, &sum) ||
	    sum != c->listed) {
		BAD("listed N expected, N the number of doc lines");
	}
	if (!one_field(r, "merkle", &v) ||
	    !get_hex(v, c->merkle, RP_MERKLE_HASH_LEN)) {
		BAD("merkle ROOT expected");
	}
	c->signed_len = r->off;
	p = r->line;
	if (!next_line(r) || !field(&p, &w) || strcmp(w, "sig") ||
	    !field(&p, &v) || !field(&p, &v2) || p ||
	    !get_hex(v, c->signer, RP_KEY_ID_LEN) ||
	    rp_b64_decode(c->sig, sizeof(c->sig), &c->sig_len, v2,
			  strlen(v2)) ||
	    !c->sig_len) {
		BAD("sig SIGNER BASE64 expected");
	}
	if (r->off != r->len) {
		BAD("bytes after the signature");
	}
out:
	free(path);
	free(r);
	return err;
}

int rp_census_next_doc(const struct rp_census *c, const uint8_t *in,
		       size_t *off, struct rp_census_doc *d, char *path,
		       size_t path_cap)
{
	const size_t end = c->docs_off + c->docs_len;
	const uint8_t *nl;
	char *line;
	size_t n;
	int ok;

	if (*off < c->docs_off || *off >= end) {
		return 0;
	}
	nl = memchr(in + *off, '\n', end - *off);
	if (!nl) {
		return 0;
	}
	n = (size_t)(nl - (in + *off));
	line = malloc(n + 1);
	if (!line) {
		return 0;
	}
	memcpy(line, in + *off, n);
	line[n] = '\0';
	ok = parse_doc(line, d, path, path_cap);
	free(line);
	if (ok) {
		*off += n + 1;
	}
	return ok;
}

void rp_census_fini(struct rp_census *c)
{
	for (size_t i = 0; i < c->num_roots; i++) {
		free(c->roots[i]);
	}
	free(c->parts);
	free(c->keys);
	memset(c, 0, sizeof(*c));
}
