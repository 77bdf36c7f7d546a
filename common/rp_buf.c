#include "rp_buf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

enum rp_err rp_buf_reserve(struct rp_buf *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (__builtin_add_overflow(b->len, n, &need)) {
		return RP_ERR_NOMEM;
	}
	if (b->max && need > b->max) {
		return RP_ERR_FORMAT;
	}
	if (need <= b->cap) {
		return RP_OK;
	}
	cap = b->cap ? b->cap : 64;
	while (cap < need) {
		if (__builtin_mul_overflow(cap, 2, &cap)) {
			return RP_ERR_NOMEM;
		}
	}
	if (b->max && cap > b->max) {
		cap = b->max;
	}
	p = malloc(cap);
	if (!p) {
		return RP_ERR_NOMEM;
	}
	if (b->p) {
		memcpy(p, b->p, b->len);
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = p;
	b->cap = cap;
	return RP_OK;
}

enum rp_err rp_buf_add(struct rp_buf *b, const void *p, size_t len)
{
	enum rp_err err = rp_buf_reserve(b, len);

	if (err) {
		return err;
	}
	if (len) {
		memcpy(b->p + b->len, p, len);
	}
	b->len += len;
	return RP_OK;
}

enum rp_err rp_buf_add_str(struct rp_buf *b, const char *s)
{
	return rp_buf_add(b, s, strlen(s));
}

enum rp_err rp_buf_add_u8(struct rp_buf *b, uint8_t v)
{
	return rp_buf_add(b, &v, 1);
}

enum rp_err rp_buf_add_u16be(struct rp_buf *b, uint16_t v)
{
	const uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return rp_buf_add(b, x, sizeof(x));
}

enum rp_err rp_buf_add_u32be(struct rp_buf *b, uint32_t v)
{
	const uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
			       (uint8_t)(v >> 8), (uint8_t)v };

	return rp_buf_add(b, x, sizeof(x));
}

enum rp_err rp_buf_add_u64be(struct rp_buf *b, uint64_t v)
{
	enum rp_err err = rp_buf_add_u32be(b, (uint32_t)(v >> 32));

	if (err) {
		return err;
	}
	return rp_buf_add_u32be(b, (uint32_t)v);
}

void rp_buf_reset(struct rp_buf *b)
{
	if (b->p) {
		OPENSSL_cleanse(b->p, b->len);
	}
	b->len = 0;
}

void rp_buf_fini(struct rp_buf *b)
{
	if (b->p) {
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}
