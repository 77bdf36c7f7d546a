#include "rp_text.h"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

enum rp_err rp_text_add_escaped(struct rp_buf *b, const char *s)
{
	static const char digits[] = "0123456789abcdef";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (rp_text_is_escaped(*p)) {
			const char e[4] = { '\\', 'x', digits[*p >> 4],
					    digits[*p & 15] };

			if (rp_buf_add(b, e, sizeof(e))) {
				return RP_ERR_NOMEM;
			}
		} else if (rp_buf_add_u8(b, *p)) {
			return RP_ERR_NOMEM;
		}
	}
	return RP_OK;
}

int rp_text_unescape(char *p)
{
	char *o = p;

	while (*p) {
		const unsigned char c = (unsigned char)*p;

		if (c == '\\') {
			int hi, lo;

			if (p[1] != 'x') {
				return 0;
			}
			hi = hex_digit(p[2]);
			lo = hi < 0 ? -1 : hex_digit(p[3]);
			if (hi < 0 || lo < 0 || !(hi << 4 | lo) ||
			    !rp_text_is_escaped(
				    (unsigned char)(hi << 4 | lo))) {
				return 0;
			}
			*o++ = (char)(hi << 4 | lo);
			p += 4;
		} else if (rp_text_is_escaped(c)) {
			return 0;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return 1;
}

int rp_text_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1])) {
		return 0;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v)) {
			return 0;
		}
	}
	*out = v;
	return 1;
}
