#ifndef RP_COMMON_RP_SPAN_H
#define RP_COMMON_RP_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct rp_span is a borrowed view of bytes, and a cursor for reading
 * untrusted input: every getter checks the remaining length first and
 * advances only on success (the shape of BoringSSL's CBS).
 */
struct rp_span {
	const uint8_t *p; /* borrowed */
	size_t len;
};

static inline struct rp_span rp_span_of(const void *p, size_t len)
{
	struct rp_span s = { (const uint8_t *)p, len };
	return s;
}

static inline bool rp_span_get_bytes(struct rp_span *s, size_t n,
				     struct rp_span *out)
{
	if (s->len < n) {
		return false;
	}
	out->p = s->p;
	out->len = n;
	s->p += n;
	s->len -= n;
	return true;
}

static inline bool rp_span_copy(struct rp_span *s, void *out, size_t n)
{
	if (s->len < n) {
		return false;
	}
	memcpy(out, s->p, n);
	s->p += n;
	s->len -= n;
	return true;
}

static inline bool rp_span_get_u8(struct rp_span *s, uint8_t *out)
{
	if (s->len < 1) {
		return false;
	}
	*out = s->p[0];
	s->p++;
	s->len--;
	return true;
}

static inline bool rp_span_get_u16be(struct rp_span *s, uint16_t *out)
{
	if (s->len < 2) {
		return false;
	}
	*out = (uint16_t)((uint16_t)s->p[0] << 8 | s->p[1]);
	s->p += 2;
	s->len -= 2;
	return true;
}

static inline bool rp_span_get_u32be(struct rp_span *s, uint32_t *out)
{
	if (s->len < 4) {
		return false;
	}
	*out = (uint32_t)s->p[0] << 24 | (uint32_t)s->p[1] << 16 |
	       (uint32_t)s->p[2] << 8 | (uint32_t)s->p[3];
	s->p += 4;
	s->len -= 4;
	return true;
}

static inline bool rp_span_get_u64be(struct rp_span *s, uint64_t *out)
{
	uint32_t hi, lo;

	if (s->len < 8) {
		return false;
	}
	rp_span_get_u32be(s, &hi);
	rp_span_get_u32be(s, &lo);
	*out = (uint64_t)hi << 32 | lo;
	return true;
}

static inline void rp_put_u32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void rp_put_u64be(uint8_t *p, uint64_t v)
{
	rp_put_u32be(p, (uint32_t)(v >> 32));
	rp_put_u32be(p + 4, (uint32_t)v);
}

#ifdef __cplusplus
}
#endif
#endif
