#include "rp_testhook.h"

#ifdef RP_TEST_HOOKS
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rp_test_crash_point(const char *point)
{
	const char *want = getenv("REPROTECT_TEST_CRASH");

	if (want && !strcmp(want, point)) {
		raise(SIGKILL);
	}
}

void rp_test_pause_point(const char *point)
{
	const char *want = getenv("REPROTECT_TEST_PAUSE");
	const size_t n = strlen(point);

	if (want && !strncmp(want, point, n) && want[n] == ':') {
		const long ms = strtol(want + n + 1, NULL, 10);
		const struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
}

enum { FAULT_MAX_RULES = 8 };

struct fault_rule {
	char point[96];
	long code;
	unsigned long nth, count;
	unsigned long calls; /* atomic */
};

static struct fault_rule fault_rules[FAULT_MAX_RULES];
static size_t fault_num_rules;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static long fault_code(const char *s)
{
	static const struct {
		const char *name;
		long code;
	} names[] = {
		{ "ENOSPC", ENOSPC }, { "EIO", EIO },	  { "EACCES", EACCES },
		{ "EROFS", EROFS },   { "EPERM", EPERM }, { "ENOENT", ENOENT },
		{ "EXDEV", EXDEV },   { "EBUSY", EBUSY }, { "EINTR", EINTR },
		{ "EAGAIN", EAGAIN },
	};
	char *end;
	long v;

	if (!strcmp(s, "short")) {
		return RP_TEST_FAULT_SHORT;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i].name)) {
			return names[i].code;
		}
	}
	v = strtol(s, &end, 0);
	if (*end || v <= 0) {
		fprintf(stderr, "REPROTECT_TEST_FAULT: bad code '%s'\n", s);
		abort();
	}
	return v;
}

static void fault_parse(void)
{
	const char *env = getenv("REPROTECT_TEST_FAULT");
	char buf[1024], *save = NULL;

	if (!env || !*env) {
		return;
	}
	if (snprintf(buf, sizeof(buf), "%s", env) >= (int)sizeof(buf)) {
		fprintf(stderr, "REPROTECT_TEST_FAULT: too long\n");
		abort();
	}
	for (char *r = strtok_r(buf, ",", &save); r;
	     r = strtok_r(NULL, ",", &save)) {
		struct fault_rule *f = &fault_rules[fault_num_rules];
		char *field[4] = { 0 }, *fs = NULL;
		size_t n = 0;

		if (fault_num_rules == FAULT_MAX_RULES) {
			fprintf(stderr, "REPROTECT_TEST_FAULT: too many rules\n");
			abort();
		}
		for (char *x = strtok_r(r, ":", &fs); x && n < 4;
		     x = strtok_r(NULL, ":", &fs)) {
			field[n++] = x;
		}
		if (n < 2 || strlen(field[0]) >= sizeof(f->point)) {
			fprintf(stderr, "REPROTECT_TEST_FAULT: bad rule\n");
			abort();
		}
		memcpy(f->point, field[0], strlen(field[0]) + 1);
		f->code = fault_code(field[1]);
		f->nth = field[2] ? strtoul(field[2], NULL, 10) : 1;
		f->count = field[3] ? strtoul(field[3], NULL, 10) : 1;
		if (!f->nth) {
			f->nth = 1;
		}
		fault_num_rules++;
	}
}

void rp_test_fault_reset(void)
{
	pthread_once(&fault_once, fault_parse); /* never parse twice later */
	memset(fault_rules, 0, sizeof(fault_rules));
	fault_num_rules = 0;
	fault_parse();
}

long rp_test_fault(const char *point)
{
	pthread_once(&fault_once, fault_parse);
	for (size_t i = 0; i < fault_num_rules; i++) {
		struct fault_rule *f = &fault_rules[i];
		unsigned long k;

		if (strcmp(f->point, point)) {
			continue;
		}
		k = __atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);
		if (k >= f->nth && (!f->count || k < f->nth + f->count)) {
			return f->code;
		}
	}
	return 0;
}
#endif
