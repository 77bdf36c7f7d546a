#ifndef RP_TESTS_RP_TEST_H
#define RP_TESTS_RP_TEST_H

/* cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

/*
 * cmocka 1.1.5 does not declare _fail noreturn, so the analyzers walk on
 * past a failed assertion (a NULL they were just told about). It is: it
 * longjmps out of the test.
 */
void _fail(const char *const file, const int line) __attribute__((noreturn));

#endif
