#ifndef RP_TESTS_RP_TEST_H
#define RP_TESTS_RP_TEST_H

/* cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#endif
