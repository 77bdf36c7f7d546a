#ifndef RP_COMMON_RP_BUF_H
#define RP_COMMON_RP_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct rp_buf is a growable byte buffer (the shape of git's strbuf).
 * A zeroed struct is an empty buffer. Growth is capped at `max` bytes when
 * max != 0, so a buffer fed from untrusted input stays bounded. The old
 * storage is cleansed when it grows and on rp_buf_fini, so a buffer may
 * hold secrets.
 */
struct rp_buf {
	uint8_t *p; /* owned */
	size_t len;
	size_t cap;
	size_t max; /* 0: no limit */
};

/* rp_buf_reserve makes room for `n` more bytes. */
RP_MUST_CHECK enum rp_err rp_buf_reserve(struct rp_buf *b, size_t n);

/* rp_buf_add appends `len` bytes. */
RP_MUST_CHECK enum rp_err rp_buf_add(struct rp_buf *b, const void *p,
				     size_t len);

/* rp_buf_add_str appends a NUL-terminated string, without the NUL. */
RP_MUST_CHECK enum rp_err rp_buf_add_str(struct rp_buf *b, const char *s);

/* rp_buf_add_u8/u16be/u32be/u64be append an integer in network order. */
RP_MUST_CHECK enum rp_err rp_buf_add_u8(struct rp_buf *b, uint8_t v);
RP_MUST_CHECK enum rp_err rp_buf_add_u16be(struct rp_buf *b, uint16_t v);
RP_MUST_CHECK enum rp_err rp_buf_add_u32be(struct rp_buf *b, uint32_t v);
RP_MUST_CHECK enum rp_err rp_buf_add_u64be(struct rp_buf *b, uint64_t v);

/* rp_buf_reset empties the buffer (cleansing it) but keeps its storage. */
void rp_buf_reset(struct rp_buf *b);

/* rp_buf_fini cleanses and frees the storage; safe on a zeroed struct. */
void rp_buf_fini(struct rp_buf *b);

#ifdef __cplusplus
}
#endif
#endif
