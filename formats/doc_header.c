/*
 * doc_header.c: the end of a protected document's header, made to an
 * exact length with a pad stanza (docs/FORMAT.md section 4a).
 */
#include "doc_header.h"

#include <string.h>

#include "license.h"
#include "rp_compiler.h"

#define LIC_LINE_LEN  (sizeof("-> " RP_LICENSE_STANZA_TYPE " " RP_LICENSE_STANZA_ARG "\n") - 1)
#define MAC_LINE_LEN  48 /* "--- ", 43 base64 characters, LF */
#define PAD_BASE      11 /* "-> rp-pad" LF LF: the pad without arguments */
#define PAD_MAX_ARGS  (RP_AGE_MAX_ARGS - 1)

/* body_text_len: the base64 lines of an n-byte body, LFs included */
static size_t body_text_len(size_t n)
{
	return 65 * (n / 48) + (4 * (n % 48) + 2) / 3 + 1;
}

/* the header through the license stanza, without pad and MAC line */
static size_t bare_len(size_t hdr_len, size_t lic_len)
{
	return hdr_len + LIC_LINE_LEN + body_text_len(lic_len);
}

size_t rp_doc_header_target(size_t hdr_len, size_t lic_len, size_t num_path)
{
	const size_t more = num_path < RP_DOC_SLACK_PATH
				    ? (RP_DOC_SLACK_PATH - num_path) *
					      RP_MERKLE_HASH_LEN
				    : 0;

	return bare_len(hdr_len, lic_len + more) + RP_DOC_PAD_MIN +
	       MAC_LINE_LEN;
}

bool rp_doc_header_fits(size_t hdr_len, size_t lic_len, size_t target)
{
	const size_t bare = bare_len(hdr_len, lic_len) + MAC_LINE_LEN;

	return target >= bare + RP_DOC_PAD_MIN &&
	       target - bare <= RP_DOC_PAD_MAX;
}

/*
 * add_pad appends a pad stanza of exactly `len` bytes (RP_DOC_PAD_MIN ..
 * RP_DOC_PAD_MAX): arguments of 'x', each costing its length and a space,
 * never leaving a remainder of 1 (no argument is that short)
 */
static enum rp_err add_pad(struct rp_buf *hdr, size_t len)
{
	char arg[PAD_MAX_ARGS][RP_AGE_MAX_ARG_LEN + 1];
	const char *args[1 + PAD_MAX_ARGS] = { RP_DOC_PAD_TYPE };
	size_t left = len - PAD_BASE, n = 0;

	while (left) {
		size_t a = left - 1 < RP_AGE_MAX_ARG_LEN ? left - 1
							 : RP_AGE_MAX_ARG_LEN;

		if (left - 1 - a == 1) {
			a--; /* leave 2, one more argument of 1 */
		}
		if (n == PAD_MAX_ARGS) {
			return RP_ERR_USAGE;
		}
		memset(arg[n], 'x', a);
		arg[n][a] = '\0';
		args[1 + n] = arg[n];
		n++;
		left -= 1 + a;
	}
	return rp_age_header_add_stanza(hdr, args, 1 + n, NULL, 0, NULL, NULL);
}

enum rp_err
rp_doc_header_finish(struct rp_buf *hdr, struct rp_status *st,
		     const uint8_t *lic, size_t lic_len, size_t num_path,
		     const uint8_t hdr_key[RP_ATLEAST(RP_AGE_HEADER_KEY_LEN)],
		     size_t target)
{
	const char *largs[] = { RP_LICENSE_STANZA_TYPE, RP_LICENSE_STANZA_ARG };
	const size_t start = hdr->len;
	enum rp_err err;

	if (!target) {
		target = rp_doc_header_target(start, lic_len, num_path);
	}
	if (!rp_doc_header_fits(start, lic_len, target)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "the header cannot be made %zu bytes "
				      "long",
				      target);
	}
	err = rp_age_header_add_stanza(hdr, largs, 2, lic, lic_len, NULL,
				       NULL);
	if (!err) {
		err = add_pad(hdr, target - hdr->len - MAC_LINE_LEN);
	}
	if (err) {
		hdr->len = start;
		return rp_status_fail(st, err, "cannot write the license");
	}
	err = rp_age_header_finish_k(hdr, st, hdr_key);
	if (!err && hdr->len != target) {
		RP_BUG("a padded header is not its target length");
	}
	if (err) {
		hdr->len = start;
	}
	return err;
}
