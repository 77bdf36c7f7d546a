#include "rp_testhook.h"

#ifdef RP_TEST_HOOKS
#include <signal.h>
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
#endif

#ifdef RP_TEST_HOOKS
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
#endif
