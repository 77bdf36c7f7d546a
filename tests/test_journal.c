/*
 * test_journal.c: the run journal's reader (engine/journal.c), line by
 * line: what the engine writes parses back exactly, and anything else is
 * refused whole.
 */
#include "rp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"

/* parse: a copy of `s` (the reader cuts it in place) */
static enum rp_err parse(struct rp_journal_line *out, char *buf, size_t cap,
			 const char *s)
{
	const size_t n = strlen(s);

	assert_true(n < cap);
	memcpy(buf, s, n + 1);
	return rp_journal_parse_line(out, buf, n);
}

static void test_journal_parses_what_the_engine_writes(void **state)
{
	struct rp_journal_line l;
	char buf[256];

	(void)state;
	assert_int_equal(parse(&l, buf, sizeof(buf),
			       "moved\t0123456789abcdef\t123\t/d/a\\x09b.age\t"
			       "in place"),
			 RP_OK);
	assert_int_equal(l.out, RP_OUT_MOVED);
	assert_string_equal(l.outcome, "moved");
	assert_string_equal(l.key, "0123456789abcdef");
	assert_int_equal(l.size, 123);
	assert_string_equal(l.path, "/d/a\tb.age");
	assert_string_equal(l.reason, "in place");

	/* no key, no reason; a backslash and a newline in the path */
	assert_int_equal(parse(&l, buf, sizeof(buf),
			       "skipped-not-age\t-\t0\tx\\x5cy\\x0az\t-"),
			 RP_OK);
	assert_int_equal(l.out, RP_OUT_SKIP_NOT_AGE);
	assert_string_equal(l.key, "-");
	assert_string_equal(l.path, "x\\y\nz");
	assert_string_equal(l.reason, "-");

	/* bytes over 0x7f are written as they are */
	assert_int_equal(parse(&l, buf, sizeof(buf),
			       "skipped-busy\tfedcba9876543210\t18446744073709551615"
			       "\t/\xc3\xa9t\xc3\xa9\tanother run holds it"),
			 RP_OK);
	assert_int_equal(l.out, RP_OUT_SKIP_BUSY);
	assert_true(l.size == UINT64_MAX);
	assert_string_equal(l.path, "/\xc3\xa9t\xc3\xa9");
}

static void test_journal_refuses_other_lines(void **state)
{
	static const char *const bad[] = {
		"",
		"moved",
		"moved\t0123456789abcdef\t1\t/p",		   /* 4 fields */
		"moved\t0123456789abcdef\t1\t/p\tr\textra",	   /* 6 fields */
		"removed\t0123456789abcdef\t1\t/p\t-",		   /* outcome */
		"MOVED\t0123456789abcdef\t1\t/p\t-",		   /* case */
		"moved\t0123456789ABCDEF\t1\t/p\t-",		   /* key case */
		"moved\t0123456789abcde\t1\t/p\t-",		   /* key length */
		"moved\t0123456789abcdeg\t1\t/p\t-",		   /* key digit */
		"moved\t0123456789abcdef\t01\t/p\t-",		   /* leading 0 */
		"moved\t0123456789abcdef\t-1\t/p\t-",		   /* sign */
		"moved\t0123456789abcdef\t18446744073709551616\t/p\t-",
		"moved\t0123456789abcdef\t\t/p\t-",		   /* no size */
		"moved\t0123456789abcdef\t1\t/p\\x41\t-",	   /* \x41 */
		"moved\t0123456789abcdef\t1\t/p\\x0\t-",	   /* short */
		"moved\t0123456789abcdef\t1\t/p\\x0A\t-",	   /* upper hex */
		"moved\t0123456789abcdef\t1\t/p\\\t-",		   /* lone \ */
		"moved\t0123456789abcdef\t1\t/p\x01q\t-",	   /* raw ctl */
		"moved\t0123456789abcdef\t1\t/p\tr\x7f",	   /* raw DEL */
	};
	struct rp_journal_line l;
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(&l, buf, sizeof(buf), bad[i]) != RP_ERR_FORMAT) {
			fail_msg("accepted line %zu: '%s'", i, bad[i]);
		}
	}
}

static void test_journal_refuses_a_line_too_long(void **state)
{
	const size_t n = RP_JOURNAL_LINE_MAX + 1;
	char *line = malloc(n + 1);
	struct rp_journal_line l;
	size_t off;

	(void)state;
	assert_non_null(line);
	off = (size_t)snprintf(line, n + 1, "moved\t0123456789abcdef\t1\t/");
	memset(line + off, 'a', n - off - 2);
	memcpy(line + n - 2, "\t-", 2);
	line[n] = '\0';
	assert_int_equal(rp_journal_parse_line(&l, line, n), RP_ERR_FORMAT);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_parses_what_the_engine_writes),
		cmocka_unit_test(test_journal_refuses_other_lines),
		cmocka_unit_test(test_journal_refuses_a_line_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
