#ifndef RP_COMMON_RP_TEXT_H
#define RP_COMMON_RP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The text fields of the line formats (the run journal, the census
 * statement): a path or a reason may hold any byte but NUL; backslash and
 * the control bytes (0x01..0x1f, 0x7f) are written as \xHH (two lower-case
 * hex digits), every other byte as it is. A reader accepts exactly that.
 */

/* rp_text_is_escaped says whether byte `c` is written as \xHH. */
static inline int rp_text_is_escaped(unsigned char c)
{
	return c == '\\' || c < 0x20 || c == 0x7f;
}

/* rp_text_add_escaped appends `s` escaped. RP_ERR_NOMEM on failure. */
RP_MUST_CHECK enum rp_err rp_text_add_escaped(struct rp_buf *b, const char *s);

/*
 * rp_text_unescape undoes the escapes of a NUL-terminated field in place;
 * returns 0 if the field is not one a writer makes (a raw control byte,
 * an escape of a byte that needs none, of NUL, or in upper case).
 */
int rp_text_unescape(char *p);

/*
 * rp_text_parse_u64 reads a canonical decimal (no sign, no leading zero,
 * no overflow) that is all of `s`; returns 1 if it is one.
 */
int rp_text_parse_u64(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
