#ifndef RP_TESTS_FUZZ_FUZZ_H
#define RP_TESTS_FUZZ_FUZZ_H

/*
 * What every harness shares: the libFuzzer entry point (driver.c calls it
 * for the regression replay) and CHECK, which turns a broken invariant of
 * a successful parse into an abort, reported like a memory error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn)) static inline void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
	abort();
}

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fuzz_fail(__FILE__, __LINE__, #c);                     \
		}                                                              \
	} while (0)

#endif
