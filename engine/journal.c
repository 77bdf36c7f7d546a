/*
 * journal.c: reading back the run journal that engine/run.c writes (its
 * record() and journal_path()). The reader accepts exactly what the
 * writer makes, so a damaged or foreign line is dropped, never half read.
 */
#include "journal.h"

#include <string.h>

#define NUM_FIELDS 5

/* is_escaped says whether the writer writes byte `c` as \xHH */
static int is_escaped(unsigned char c)
{
	return c == '\\' || c < 0x20 || c == 0x7f;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

/*
 * unescape_field undoes the \xHH escapes of a NUL-terminated field in
 * place; returns 0 if the field is not one the writer makes.
 */
static int unescape_field(char *p)
{
	char *o = p;

	while (*p) {
		const unsigned char c = (unsigned char)*p;

		if (c == '\\') {
			int hi, lo;

			if (p[1] != 'x') {
				return 0;
			}
			hi = hex_digit(p[2]);
			lo = hi < 0 ? -1 : hex_digit(p[3]);
			if (hi < 0 || lo < 0 || !(hi << 4 | lo) ||
			    !is_escaped((unsigned char)(hi << 4 | lo))) {
				return 0;
			}
			*o++ = (char)(hi << 4 | lo);
			p += 4;
		} else if (is_escaped(c)) {
			return 0;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return 1;
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
		if (hex_digit(s[i]) < 0) {
			return 0;
		}
	}
	return s[RP_JOURNAL_KEY_LEN] == '\0';
}

/* parse_size reads a canonical decimal uint64_t (no sign, no 0 prefix) */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1])) {
		return 0;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v)) {
			return 0;
		}
	}
	*out = v;
	return 1;
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
	    !parse_key(f[1]) || !parse_size(f[2], &out->size) ||
	    !unescape_field(f[3]) || !unescape_field(f[4]) || !*f[4]) {
		return RP_ERR_FORMAT;
	}
	out->outcome = rp_outcome_name(out->out);
	out->key = f[1];
	out->path = f[3];
	out->reason = f[4];
	return RP_OK;
}
