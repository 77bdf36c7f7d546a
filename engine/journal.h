#ifndef RP_ENGINE_JOURNAL_H
#define RP_ENGINE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"
#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The run journal (rp_run_opts.journal): one line per document, five
 * tab-separated fields:
 *
 *   outcome  key  size  path  reason
 *
 * outcome is an rp_outcome_name(); key the first 16 hex digits (lower
 * case) of the document's key id, or "-"; size the document's size in
 * decimal; path and reason as bytes, with backslash, tab, line breaks and
 * the other control bytes (0x01..0x1f, 0x7f) written as \xHH (two lower-case
 * hex digits); reason "-" when there is none. Bytes 0x80..0xff are written
 * as they are.
 */

/*
 * The longest line (newline excluded) a run writes: a PATH_MAX path and a
 * reason with every byte escaped, and the short fields. Longer lines are
 * not the engine's.
 */
#define RP_JOURNAL_LINE_MAX 32768
#define RP_JOURNAL_KEY_LEN  16

/* A parsed journal line; every pointer points into the parsed line. */
struct rp_journal_line {
	enum rp_outcome out;
	const char *outcome; /* borrowed: rp_outcome_name(out) */
	const char *key;     /* borrowed: 16 lower-case hex digits, or "-" */
	uint64_t size;
	const char *path;   /* borrowed: unescaped, NUL-terminated */
	const char *reason; /* borrowed: unescaped, NUL-terminated */
};

/*
 * rp_journal_parse_line parses one journal line of `len` bytes (its
 * newline removed; line[len] must be writable). Strict: exactly five
 * fields, a known outcome, a key of 16 lower-case hex digits or "-", a
 * canonical decimal size, and path and reason in the escaping above
 * (only \xHH of the bytes the writer escapes, no raw tab or control
 * byte). Returns RP_OK, or RP_ERR_FORMAT for anything else, including a
 * line over RP_JOURNAL_LINE_MAX bytes. Cuts and unescapes `line` in place
 * (also on failure): `out`'s strings point into it.
 */
RP_MUST_CHECK enum rp_err rp_journal_parse_line(struct rp_journal_line *out,
						char *line, size_t len);

#ifdef __cplusplus
}
#endif
#endif
