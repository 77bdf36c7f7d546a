#include "age_header.h"

#include "rp_ossl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "rp_b64.h"

#define VERSION_LEN  (sizeof(RP_AGE_VERSION_LINE) - 1)
#define LINE_CHARS   64 /* a full body line */
#define LINE_BYTES   48 /* what a full body line decodes to */
#define MAC_B64_LEN  43
#define MAC_LINE_LEN (4 + MAC_B64_LEN) /* "--- " and the MAC, no LF */

/* a cursor over the header lines, with what an error message needs */
struct parser {
	const uint8_t *in; /* borrowed */
	size_t in_len;
	size_t pos;	/* start of the next line */
	size_t line_no; /* 1-based number of the last line read */
	struct rp_status *st;
};

/* where a stanza's body text sits in the input, between the two passes */
struct body_text {
	size_t off;
	size_t num_lines;
	size_t len; /* decoded */
};

static bool span_starts_with(struct rp_span s, const char *prefix)
{
	const size_t n = strlen(prefix);

	return s.len >= n && !memcmp(s.p, prefix, n);
}

static bool is_b64_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static bool is_vchar(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e;
}

/*
 * next_line reads the line at p->pos, without its LF. Lines are only
 * looked for within the first RP_AGE_MAX_HEADER_LEN bytes.
 */
static enum rp_err next_line(struct parser *p, struct rp_span *line)
{
	const size_t limit = p->in_len < RP_AGE_MAX_HEADER_LEN
				     ? p->in_len
				     : RP_AGE_MAX_HEADER_LEN;
	const uint8_t *lf = NULL;

	if (p->pos < limit) {
		lf = memchr(p->in + p->pos, '\n', limit - p->pos);
	}
	if (!lf) {
		if (p->in_len >= RP_AGE_MAX_HEADER_LEN) {
			return rp_status_fail(p->st, RP_ERR_FORMAT,
					      "header longer than %d bytes",
					      RP_AGE_MAX_HEADER_LEN);
		}
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: truncated before the "
				      "MAC line",
				      p->line_no + 1);
	}
	line->p = p->in + p->pos;
	line->len = (size_t)(lf - line->p);
	p->pos += line->len + 1;
	p->line_no++;
	return RP_OK;
}

static enum rp_err check_arg(struct parser *p, struct rp_span arg, size_t i)
{
	if (!arg.len) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: stanza argument %zu is "
				      "empty",
				      p->line_no, i + 1);
	}
	if (arg.len > RP_AGE_MAX_ARG_LEN) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: stanza argument %zu "
				      "longer than %d bytes",
				      p->line_no, i + 1, RP_AGE_MAX_ARG_LEN);
	}
	for (size_t j = 0; j < arg.len; j++) {
		if (!is_vchar(arg.p[j])) {
			return rp_status_fail(
				p->st, RP_ERR_FORMAT,
				"header line %zu: stanza argument "
				"%zu has byte 0x%02x outside "
				"0x21..0x7e",
				p->line_no, i + 1, arg.p[j]);
		}
	}
	return RP_OK;
}

/* parse_stanza_line splits a line that starts with "->" into args. */
static enum rp_err parse_stanza_line(struct parser *p, struct rp_age_stanza *s,
				     struct rp_span line)
{
	struct rp_span rest;
	enum rp_err err;

	if (line.len == 2 || (line.len == 3 && line.p[2] == ' ')) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: stanza line has no "
				      "arguments",
				      p->line_no);
	}
	if (line.p[2] != ' ') {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: stanza line does not "
				      "start with '-> '",
				      p->line_no);
	}
	rest = rp_span_of(line.p + 3, line.len - 3);
	for (;;) {
		const uint8_t *sp = memchr(rest.p, ' ', rest.len);
		const size_t n = sp ? (size_t)(sp - rest.p) : rest.len;
		struct rp_span arg = rp_span_of(rest.p, n);

		if (s->num_args == RP_AGE_MAX_ARGS) {
			return rp_status_fail(
				p->st, RP_ERR_FORMAT,
				"header line %zu: stanza line has "
				"more than %d arguments",
				p->line_no, RP_AGE_MAX_ARGS);
		}
		err = check_arg(p, arg, s->num_args);
		if (err) {
			return err;
		}
		s->args[s->num_args++] = arg;
		if (!sp) {
			return RP_OK;
		}
		rest = rp_span_of(sp + 1, rest.len - n - 1);
	}
}

/*
 * check_body_line validates one body line and returns the number of bytes
 * it decodes to in out_n.
 */
static enum rp_err check_body_line(struct parser *p, size_t *out_n,
				   struct rp_span line)
{
	uint8_t tmp[LINE_BYTES];
	enum rp_err err;

	if (line.len > LINE_CHARS) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: body line longer than "
				      "%d characters",
				      p->line_no, LINE_CHARS);
	}
	for (size_t i = 0; i < line.len; i++) {
		if (!is_b64_char(line.p[i])) {
			return rp_status_fail(p->st, RP_ERR_FORMAT,
					      "header line %zu: body line has "
					      "byte 0x%02x outside the base64 "
					      "alphabet",
					      p->line_no, line.p[i]);
		}
	}
	if (line.len % 4 == 1) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: body line length %zu "
				      "is not a base64 length",
				      p->line_no, line.len);
	}
	err = rp_b64_decode(tmp, sizeof(tmp), out_n, (const char *)line.p,
			    line.len);
	if (err) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: body line is not "
				      "canonical base64",
				      p->line_no);
	}
	return RP_OK;
}

/* parse_body reads body lines through the short one that ends a stanza. */
static enum rp_err parse_body(struct parser *p, struct body_text *bt)
{
	struct rp_span line;
	enum rp_err err;

	bt->off = p->pos;
	bt->num_lines = 0;
	bt->len = 0;
	for (;;) {
		size_t n;

		err = next_line(p, &line);
		if (err) {
			return err;
		}
		if (span_starts_with(line, "->") ||
		    span_starts_with(line, "---")) {
			return rp_status_fail(p->st, RP_ERR_FORMAT,
					      "header line %zu: stanza ended "
					      "without its short final body "
					      "line",
					      p->line_no);
		}
		err = check_body_line(p, &n, line);
		if (err) {
			return err;
		}
		bt->len += n;
		bt->num_lines++;
		if (bt->len > RP_AGE_MAX_BODY_LEN) {
			return rp_status_fail(p->st, RP_ERR_FORMAT,
					      "header line %zu: stanza body "
					      "longer than %d bytes",
					      p->line_no, RP_AGE_MAX_BODY_LEN);
		}
		if (line.len < LINE_CHARS) {
			return RP_OK;
		}
	}
}

static enum rp_err parse_mac_line(struct parser *p, struct rp_age_header *out,
				  struct rp_span line)
{
	size_t n;

	if (line.len < 4 || line.p[3] != ' ') {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: MAC line does not "
				      "start with '--- '",
				      p->line_no);
	}
	if (memchr(line.p + 4, ' ', line.len - 4)) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: MAC line has more "
				      "than one argument",
				      p->line_no);
	}
	if (line.len != MAC_LINE_LEN) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: MAC is %zu characters, "
				      "not %d",
				      p->line_no, line.len - 4, MAC_B64_LEN);
	}
	if (rp_b64_decode(out->mac, sizeof(out->mac), &n,
			  (const char *)line.p + 4, MAC_B64_LEN) ||
	    n != RP_AGE_MAC_LEN) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line %zu: MAC is not canonical "
				      "base64",
				      p->line_no);
	}
	out->mac_input_len = (size_t)(line.p - p->in) + 3;
	out->header_len = p->pos;
	return RP_OK;
}

static enum rp_err check_version(struct parser *p)
{
	if (!p->in_len) {
		return rp_status_fail(p->st, RP_ERR_FORMAT, "header is empty");
	}
	if (p->in_len < VERSION_LEN &&
	    !memcmp(p->in, RP_AGE_VERSION_LINE, p->in_len)) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line 1: truncated version line");
	}
	if (p->in_len < VERSION_LEN ||
	    memcmp(p->in, RP_AGE_VERSION_LINE, VERSION_LEN)) {
		return rp_status_fail(p->st, RP_ERR_FORMAT,
				      "header line 1: version line is not "
				      "'age-encryption.org/v1'");
	}
	p->pos = VERSION_LEN;
	p->line_no = 1;
	return RP_OK;
}

static enum rp_err check_scrypt(struct rp_status *st,
				const struct rp_age_header *hdr)
{
	if (hdr->num_stanzas < 2) {
		return RP_OK;
	}
	for (size_t i = 0; i < hdr->num_stanzas; i++) {
		if (rp_age_stanza_is(&hdr->stanzas[i], "scrypt")) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "header has an scrypt stanza "
					      "beside other stanzas");
		}
	}
	return RP_OK;
}

/*
 * decode_bodies is the second pass: it decodes every body, already
 * checked, into one allocation.
 */
static enum rp_err decode_bodies(struct rp_age_header *hdr,
				 const struct body_text *bt, const uint8_t *in)
{
	const size_t end = hdr->header_len;
	size_t total = 0, off = 0;

	for (size_t i = 0; i < hdr->num_stanzas; i++) {
		/* the caller filled bt[0..num_stanzas) */
		total += bt[i].len; /* NOLINT(clang-analyzer-core.uninitialized.Assign) */
	}
	hdr->bodies = malloc(total ? total : 1);
	if (!hdr->bodies) {
		return RP_ERR_NOMEM;
	}
	for (size_t i = 0; i < hdr->num_stanzas; i++) {
		size_t pos = bt[i].off;

		hdr->stanzas[i].body = rp_span_of(hdr->bodies + off, bt[i].len);
		for (size_t j = 0; j < bt[i].num_lines; j++) {
			const size_t max = end - pos < LINE_CHARS + 1
						   ? end - pos
						   : LINE_CHARS + 1;
			const uint8_t *lf = memchr(in + pos, '\n', max);
			size_t chars, n;

			if (!lf) {
				RP_BUG("age header body changed between "
				       "passes");
			}
			chars = (size_t)(lf - (in + pos));
			if (rp_b64_decode(hdr->bodies + off, total - off, &n,
					  (const char *)in + pos, chars)) {
				RP_BUG("age header body changed between "
				       "passes");
			}
			off += n;
			pos += chars + 1;
		}
	}
	return RP_OK;
}

enum rp_err rp_age_header_parse(struct rp_age_header *out, struct rp_status *st,
				const uint8_t *in, size_t in_len)
{
	struct parser p = { in, in_len, 0, 0, st };
	struct body_text bt[RP_AGE_MAX_STANZAS];
	struct rp_span line;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	err = check_version(&p);
	if (err) {
		goto out;
	}
	for (;;) {
		struct rp_age_stanza *s;
		size_t start;

		err = next_line(&p, &line);
		if (err) {
			goto out;
		}
		if (span_starts_with(line, "---")) {
			err = parse_mac_line(&p, out, line);
			break;
		}
		if (!span_starts_with(line, "->")) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "header line %zu: expected a "
					     "stanza ('->') or the MAC line "
					     "('---')",
					     p.line_no);
			goto out;
		}
		if (out->num_stanzas == RP_AGE_MAX_STANZAS) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "header line %zu: more than %d "
					     "stanzas",
					     p.line_no, RP_AGE_MAX_STANZAS);
			goto out;
		}
		s = &out->stanzas[out->num_stanzas];
		start = (size_t)(line.p - in);
		err = parse_stanza_line(&p, s, line);
		if (err) {
			goto out;
		}
		err = parse_body(&p, &bt[out->num_stanzas]);
		if (err) {
			goto out;
		}
		s->raw = rp_span_of(in + start, p.pos - start);
		out->num_stanzas++;
	}
	if (err) {
		goto out;
	}
	if (!out->num_stanzas) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "header line %zu: header has no stanzas",
				     p.line_no);
		goto out;
	}
	err = check_scrypt(st, out);
	if (err) {
		goto out;
	}
	err = decode_bodies(out, bt, in);
	if (err) {
		err = rp_status_fail(st, err,
				     "cannot allocate age header bodies");
	}
out:
	if (err) {
		rp_age_header_fini(out);
	}
	return err;
}

void rp_age_header_fini(struct rp_age_header *hdr)
{
	free(hdr->bodies);
	memset(hdr, 0, sizeof(*hdr));
}

int rp_age_stanza_is(const struct rp_age_stanza *s, const char *type)
{
	const size_t n = strlen(type);

	return s->num_args && s->args[0].len == n &&
	       !memcmp(s->args[0].p, type, n);
}

enum rp_err
rp_age_header_key(uint8_t out[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)],
		  struct rp_status *st,
		  const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	return rp_hkdf_sha256(out, RP_AGE_HEADER_KEY_LEN, st, file_key,
			      RP_AGE_FILE_KEY_LEN, NULL, 0, "header");
}

/* mac_with: the header MAC under an already derived header key */
static enum rp_err mac_with(uint8_t out[RP_AGE_MAC_LEN], struct rp_status *st,
			    const uint8_t hdr_key[RP_AGE_HEADER_KEY_LEN],
			    const uint8_t *hdr_bytes, size_t mac_input_len)
{
	return rp_hmac_sha256(out, st, hdr_key, RP_AGE_HEADER_KEY_LEN,
			      &hdr_bytes, &mac_input_len, 1);
}

enum rp_err
rp_age_header_mac(uint8_t out[RP_ATLEAST(RP_AGE_MAC_LEN)], struct rp_status *st,
		  const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
		  const uint8_t *hdr_bytes, size_t mac_input_len)
{
	uint8_t hdr_key[RP_AGE_HEADER_KEY_LEN];
	enum rp_err err;

	err = rp_age_header_key(hdr_key, st, file_key);
	if (!err) {
		err = mac_with(out, st, hdr_key, hdr_bytes, mac_input_len);
	}
	OPENSSL_cleanse(hdr_key, sizeof(hdr_key));
	return err;
}

enum rp_err rp_age_header_verify_mac_k(
	const struct rp_age_header *hdr, struct rp_status *st,
	const uint8_t hdr_key[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)],
	const uint8_t *in)
{
	uint8_t mac[RP_AGE_MAC_LEN];
	enum rp_err err;

	if (!hdr->mac_input_len) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "age header was not parsed");
	}
	err = mac_with(mac, st, hdr_key, in, hdr->mac_input_len);
	if (err) {
		goto out;
	}
	if (CRYPTO_memcmp(mac, hdr->mac, sizeof(mac))) {
		err = rp_status_fail(st, RP_ERR_AUTH, "header MAC mismatch");
	}
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	return err;
}

enum rp_err rp_age_header_verify_mac(
	const struct rp_age_header *hdr, struct rp_status *st,
	const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
	const uint8_t *in)
{
	uint8_t hdr_key[RP_AGE_HEADER_KEY_LEN];
	enum rp_err err;

	if (!hdr->mac_input_len) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "age header was not parsed");
	}
	err = rp_age_header_key(hdr_key, st, file_key);
	if (!err) {
		err = rp_age_header_verify_mac_k(hdr, st, hdr_key, in);
	}
	OPENSSL_cleanse(hdr_key, sizeof(hdr_key));
	return err;
}

enum rp_err rp_age_header_begin(struct rp_buf *out)
{
	return rp_buf_add_str(out, RP_AGE_VERSION_LINE);
}

static bool is_valid_arg(const char *arg)
{
	const size_t n = arg ? strlen(arg) : 0;

	if (!n || n > RP_AGE_MAX_ARG_LEN) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_vchar((uint8_t)arg[i])) {
			return false;
		}
	}
	return true;
}

/* add_body wraps like age: full 64-char lines, then a short, maybe empty */
static enum rp_err add_body(struct rp_buf *out, const uint8_t *body,
			    size_t body_len)
{
	char line[LINE_CHARS + 1];
	size_t off = 0;
	enum rp_err err;

	for (;;) {
		const size_t chunk = body_len - off < LINE_BYTES
					     ? body_len - off
					     : LINE_BYTES;
		size_t n = 0;

		if (chunk) {
			err = rp_b64_encode(line, sizeof(line), &n, body + off,
					    chunk);
			if (err) {
				return err;
			}
		}
		line[n++] = '\n';
		err = rp_buf_add(out, line, n);
		if (err) {
			return err;
		}
		off += chunk;
		if (chunk < LINE_BYTES) {
			return RP_OK;
		}
	}
}

enum rp_err rp_age_header_add_stanza(struct rp_buf *out,
				     const char *const *args, size_t num_args,
				     const uint8_t *body, size_t body_len,
				     size_t *out_off, size_t *out_len)
{
	const size_t start = out->len;
	enum rp_err err;

	if (!num_args || num_args > RP_AGE_MAX_ARGS ||
	    body_len > RP_AGE_MAX_BODY_LEN || (body_len && !body)) {
		return RP_ERR_USAGE;
	}
	for (size_t i = 0; i < num_args; i++) {
		if (!is_valid_arg(args[i])) {
			return RP_ERR_USAGE;
		}
	}
	err = rp_buf_add_str(out, "->");
	for (size_t i = 0; !err && i < num_args; i++) {
		err = rp_buf_add_str(out, " ");
		if (!err) {
			err = rp_buf_add_str(out, args[i]);
		}
	}
	if (!err) {
		err = rp_buf_add_str(out, "\n");
	}
	if (!err) {
		err = add_body(out, body, body_len);
	}
	if (err) {
		out->len = start; /* drop the partial stanza */
		return err;
	}
	if (out_off) {
		*out_off = start;
	}
	if (out_len) {
		*out_len = out->len - start;
	}
	return RP_OK;
}

enum rp_err
rp_age_header_finish_k(struct rp_buf *out, struct rp_status *st,
		       const uint8_t hdr_key[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)])
{
	uint8_t mac[RP_AGE_MAC_LEN];
	char line[1 + MAC_B64_LEN + 2];
	const size_t start = out->len;
	size_t n;
	enum rp_err err;

	err = rp_buf_add_str(out, "---");
	if (err) {
		goto out;
	}
	err = mac_with(mac, st, hdr_key, out->p, out->len);
	if (err) {
		goto out;
	}
	line[0] = ' ';
	err = rp_b64_encode(line + 1, sizeof(line) - 1, &n, mac, sizeof(mac));
	if (err) {
		goto out;
	}
	line[1 + n] = '\n';
	err = rp_buf_add(out, line, n + 2);
out:
	if (err) {
		out->len = start;
		/* the MAC's own failure is recorded already: it stays */
		rp_status_fail(st, err, "cannot write the header's MAC line");
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return err;
}

enum rp_err
rp_age_header_finish(struct rp_buf *out, struct rp_status *st,
		     const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)])
{
	uint8_t hdr_key[RP_AGE_HEADER_KEY_LEN];
	enum rp_err err;

	err = rp_age_header_key(hdr_key, st, file_key);
	if (err) {
		rp_status_fail(st, err, "cannot write the header's MAC line");
	} else {
		err = rp_age_header_finish_k(out, st, hdr_key);
	}
	OPENSSL_cleanse(hdr_key, sizeof(hdr_key));
	return err;
}
