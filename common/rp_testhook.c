#include "rp_testhook.h"

#ifdef RP_TEST_HOOKS
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void rp_test_crash_point(const char *point)
{
	const char *want = getenv("REPROTECT_TEST_CRASH");

	if (want && !strcmp(want, point)) {
		raise(SIGKILL);
	}
}
#endif
