#include "rp_testhook.h"

#ifdef RP_TEST_HOOKS
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rp_clock.h"
#include "rp_compiler.h"

void rp_test_crash_point(const char *point)
{
	const char *want = getenv("REPROTECT_TEST_CRASH");

	if (want && !strcmp(want, point)) {
		(void)raise(SIGKILL);
	}
}

void rp_test_pause_point(const char *point)
{
	static unsigned long hits[8];
	static const char *points[8];
	const char *want = getenv("REPROTECT_TEST_PAUSE");
	const size_t n = strlen(point);
	char *end = NULL;
	long ms;

	if (!want || strncmp(want, point, n) || want[n] != ':') {
		return;
	}
	ms = strtol(want + n + 1, &end, 10);
	if (end && *end == ':') {
		/* "<point>:<ms>:<nth>": only the nth hit, across threads */
		const unsigned long nth = strtoul(end + 1, NULL, 10);
		size_t i = 0;
		unsigned long k;

		for (; i < 8; i++) {
			const char *p = __atomic_load_n(&points[i],
							__ATOMIC_ACQUIRE);

			if (!p && __atomic_compare_exchange_n(
					  &points[i], &p, point, 0,
					  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				break; /* this point's counter now */
			}
			if (p && !strcmp(p, point)) {
				break;
			}
		}
		if (i == 8) {
			return;
		}
		k = __atomic_add_fetch(&hits[i], 1, __ATOMIC_RELAXED);
		if (k != nth) {
			return;
		}
	}
	{
		const struct timespec ts = { ms / 1000,
					     (ms % 1000) * 1000000L };

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

/* fault_code: CODE's value, or 0 if `s` is not a code */
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
	return *s && !*end && v > 0 ? v : 0;
}

static int fault_is_count(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

__attribute__((noreturn)) static void fault_bad(const char *why,
						const char *rule)
{
	fprintf(stderr, "REPROTECT_TEST_FAULT: %s: '%s'\n", why, rule);
	abort();
}

/*
 * fault_add parses one rule. Point names hold ':' too ("io:write"), so
 * the point is the shortest run of fields followed by a code and at most
 * two counts.
 */
static void fault_add(char *rule)
{
	struct fault_rule *f = &fault_rules[fault_num_rules];
	char copy[256], *field[16], *save = NULL;
	size_t n = 0, k;

	if (fault_num_rules == FAULT_MAX_RULES) {
		fault_bad("too many rules", rule);
	}
	if (snprintf(copy, sizeof(copy), "%s", rule) >= (int)sizeof(copy)) {
		fault_bad("rule too long", rule);
	}
	for (char *x = strtok_r(copy, ":", &save); x;
	     x = strtok_r(NULL, ":", &save)) {
		if (n == RP_ARRAY_LEN(field)) {
			fault_bad("too many fields", rule);
		}
		field[n++] = x;
	}
	for (k = 1; k < n; k++) {
		if (n - k <= 3 && fault_code(field[k]) &&
		    (n - k < 2 || fault_is_count(field[k + 1])) &&
		    (n - k < 3 || fault_is_count(field[k + 2]))) {
			break;
		}
	}
	if (k >= n) {
		fault_bad("want POINT:CODE[:NTH[:COUNT]]", rule);
	}
	f->point[0] = '\0';
	for (size_t i = 0, len = 0; i < k; i++) {
		const int m = snprintf(f->point + len, sizeof(f->point) - len,
				       "%s%s", i ? ":" : "", field[i]);

		if (m < 0 || (size_t)m >= sizeof(f->point) - len) {
			fault_bad("point too long", rule);
		}
		len += (size_t)m;
	}
	f->code = fault_code(field[k]);
	f->nth = n - k >= 2 ? strtoul(field[k + 1], NULL, 10) : 1;
	f->count = n - k >= 3 ? strtoul(field[k + 2], NULL, 10) : 1;
	if (!f->nth) {
		f->nth = 1;
	}
	fault_num_rules++;
}

static void fault_parse(void)
{
	const char *env = getenv("REPROTECT_TEST_FAULT");
	char buf[1024], *save = NULL;

	if (!env || !*env) {
		return;
	}
	if (snprintf(buf, sizeof(buf), "%s", env) >= (int)sizeof(buf)) {
		fault_bad("too long", env);
	}
	for (char *r = strtok_r(buf, ",", &save); r;
	     r = strtok_r(NULL, ",", &save)) {
		fault_add(r);
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
void rp_test_trace(const char *what, const char *name)
{
	const char *path = getenv("REPROTECT_TEST_TRACE");
	char line[PATH_MAX + 64];
	int fd, n;

	if (!path) {
		return;
	}
	n = snprintf(line, sizeof(line), "%s %s\n", what, name ? name : "-");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || n <= 0) {
		if (fd >= 0) {
			close(fd);
		}
		return;
	}
	/* one write: lines of several threads never mix */
	(void)!write(fd, line, (size_t)n < sizeof(line) ? (size_t)n
							: sizeof(line) - 1);
	close(fd);
}

long long rp_test_clock_skew(void)
{
	const char *v = getenv("REPROTECT_TEST_CLOCK_SKEW");
	char *end = NULL;
	long long n;

	if (!v || !*v) {
		return 0;
	}
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno || !end || *end ? 0 : n;
}

/*
 * the busy keystore: per token, the times of the calls let through, a
 * ring of `rate`
 */
#define BUSY_RATE_MAX 100000
#define BUSY_TOKENS   16
struct busy_window {
	char token[64];
	double *times;
	size_t pos;
};
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static struct busy_window busy_windows[BUSY_TOKENS];
static size_t busy_num_windows;
static long busy_rate = -1; /* -1: not read yet; 0: off */
static long busy_code;

static void busy_parse(void)
{
	const char *v = getenv("REPROTECT_TEST_BUSY");
	const char *colon = v ? strchr(v, ':') : NULL;
	char *end = NULL;

	busy_rate = 0;
	if (!colon) {
		return;
	}
	errno = 0;
	busy_rate = strtol(v, &end, 10);
	if (errno || end != colon || busy_rate < 1 ||
	    busy_rate > BUSY_RATE_MAX) {
		busy_rate = 0;
		return;
	}
	busy_code = fault_code(colon + 1);
	if (busy_code <= 0) {
		busy_rate = 0;
	}
}

/* busy_window_of finds or makes `token`'s window; NULL when out of room */
static struct busy_window *busy_window_of(const char *token)
{
	struct busy_window *w;

	for (size_t i = 0; i < busy_num_windows; i++) {
		if (!strcmp(busy_windows[i].token, token)) {
			return &busy_windows[i];
		}
	}
	if (busy_num_windows == BUSY_TOKENS) {
		return NULL;
	}
	w = &busy_windows[busy_num_windows];
	w->times = calloc((size_t)busy_rate, sizeof(*w->times));
	if (!w->times) {
		return NULL;
	}
	snprintf(w->token, sizeof(w->token), "%s", token);
	busy_num_windows++;
	return w;
}

long rp_test_busy(const char *token)
{
	struct busy_window *w;
	const double now = rp_clock_s(CLOCK_MONOTONIC);
	long code = 0;

	pthread_mutex_lock(&busy_lock);
	if (busy_rate < 0) {
		busy_parse();
	}
	w = busy_rate > 0 ? busy_window_of(token ? token : "") : NULL;
	if (w) {
		/* the oldest of the last `rate` calls let through */
		if (w->times[w->pos] && now - w->times[w->pos] < 1.0) {
			code = busy_code;
		} else {
			w->times[w->pos] = now;
			w->pos = (w->pos + 1) % (size_t)busy_rate;
		}
	}
	pthread_mutex_unlock(&busy_lock);
	return code;
}

#endif
