/*
 * fuzz_journal: rp_journal_parse_line (the run journal read back for the
 * JSON report) over the input as one line, and over each of its lines as
 * cmd_run.c's report_docs feeds them. When a parse succeeds:
 *   - the outcome is a known one and its name, the key "-" or 16
 *     lower-case hex digits, and path and reason lie inside the line;
 *   - writing the fields back as engine/run.c's record() does (the
 *     escaping of common/rp_text.c) gives exactly the
 *     line: the parser accepts only what the writer makes;
 *   - the line is at most RP_JOURNAL_LINE_MAX bytes and has no NUL.
 * Failures are RP_ERR_FORMAT.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "journal.h"
#include "rp_buf.h"
#include "rp_text.h"

/* add_escaped: the writer's escaping (common/rp_text.c), into a buffer */
static void add_escaped(struct rp_buf *b, const char *p)
{
	CHECK(rp_text_add_escaped(b, p) == RP_OK);
}

static int inside(const char *p, const char *line, size_t len)
{
	return p >= line && p + strlen(p) <= line + len;
}

static void parse(const uint8_t *in, size_t len)
{
	struct rp_journal_line jl;
	struct rp_buf b = { 0 };
	char *line = malloc(len + 1);
	char num[24];
	int n;

	CHECK(line != NULL);
	if (len) {
		memcpy(line, in, len);
	}
	if (rp_journal_parse_line(&jl, line, len)) {
		free(line);
		return;
	}
	CHECK(len <= RP_JOURNAL_LINE_MAX && !memchr(in, '\0', len));
	CHECK((unsigned)jl.out < RP_OUT_NUM);
	CHECK(!strcmp(jl.outcome, rp_outcome_name(jl.out)));
	CHECK(!strcmp(jl.key, "-") ||
	      (strlen(jl.key) == RP_JOURNAL_KEY_LEN &&
	       strspn(jl.key, "0123456789abcdef") == RP_JOURNAL_KEY_LEN));
	CHECK(inside(jl.key, line, len) && inside(jl.path, line, len) &&
	      inside(jl.reason, line, len));
	CHECK(jl.reason[0] != '\0');
	/* record(): "%s\t%.16s\t%llu\t" path "\t" reason */
	n = snprintf(num, sizeof(num), "%llu", (unsigned long long)jl.size);
	CHECK(n > 0 && (size_t)n < sizeof(num));
	CHECK(rp_buf_add_str(&b, jl.outcome) == RP_OK &&
	      rp_buf_add_u8(&b, '\t') == RP_OK &&
	      rp_buf_add_str(&b, jl.key) == RP_OK &&
	      rp_buf_add_u8(&b, '\t') == RP_OK &&
	      rp_buf_add_str(&b, num) == RP_OK &&
	      rp_buf_add_u8(&b, '\t') == RP_OK);
	add_escaped(&b, jl.path);
	CHECK(rp_buf_add_u8(&b, '\t') == RP_OK);
	add_escaped(&b, jl.reason);
	CHECK(b.len == len && !memcmp(b.p, in, len));
	rp_buf_fini(&b);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;

	parse(data, size);
	/* line by line, as report_docs reads the journal */
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n') {
			parse(data + start, i - start);
			start = i + 1;
		}
	}
	if (start && start < size) {
		parse(data + start, size - start);
	}
	return 0;
}
