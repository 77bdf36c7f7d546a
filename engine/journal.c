/*
 * journal.c: reading back the run journal that engine/run.c writes (its
 * record() and journal_path()). The reader accepts exactly what the
 * writer makes, so a damaged or foreign line is dropped, never half read.
 */
#include "journal.h"

#include <string.h>

#include "rp_text.h"

#define NUM_FIELDS 5

static int is_hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int parse_outcome(const char *s, enum rp_outcome *out)
{
	for (int o = 0; o < RP_OUT_NUM; o++) {
		if (!strcmp(s, rp_outcome_name((enum rp_outcome)o))) {
			*out = (enum rp_outcome)o;
			return 1;
		}
	}
	return 0;
}

static int parse_key(const char *s)
{
	if (!strcmp(s, "-")) {
		return 1;
	}
	for (size_t i = 0; i < RP_JOURNAL_KEY_LEN; i++) {
		if (!is_hex_digit(s[i])) {
			return 0;
		}
	}
	return s[RP_JOURNAL_KEY_LEN] == '\0';
}

enum rp_err rp_journal_parse_line(struct rp_journal_line *out, char *line,
				  size_t len)
{
	char *f[NUM_FIELDS];
	size_t n = 0;

	if (len > RP_JOURNAL_LINE_MAX || memchr(line, '\0', len)) {
		return RP_ERR_FORMAT;
	}
	line[len] = '\0';
	f[n++] = line;
	for (char *p = line; *p; p++) {
		if (*p == '\t') {
			if (n == NUM_FIELDS) {
				return RP_ERR_FORMAT;
			}
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	if (n != NUM_FIELDS || !parse_outcome(f[0], &out->out) ||
	    !parse_key(f[1]) || !rp_text_parse_u64(f[2], &out->size) ||
	    !rp_text_unescape(f[3]) || !rp_text_unescape(f[4]) || !*f[4]) {
		return RP_ERR_FORMAT;
	}
	out->outcome = rp_outcome_name(out->out);
	out->key = f[1];
	out->path = f[3];
	out->reason = f[4];
	return RP_OK;
}
