#ifndef RP_COMMON_RP_JSON_H
#define RP_COMMON_RP_JSON_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * rp_json_str writes `s` (`len` bytes) to `f` as a quoted JSON string:
 * control characters escaped, invalid UTF-8 bytes replaced by U+FFFD.
 * A write error is left in ferror(f): the caller checks it once, after
 * the whole document is written (cli/main.c does so for stdout).
 */
void rp_json_str(FILE *f, const char *s, size_t len);

/* rp_json_cstr is rp_json_str for a NUL-terminated string. */
void rp_json_cstr(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif
#endif
