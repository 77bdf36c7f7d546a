#include "rp_json.h"

#include <stdint.h>
#include <string.h>

/* utf8_len returns the length of a valid UTF-8 sequence at p, or 0 */
static size_t utf8_len(const uint8_t *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80) {
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len) {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	return len;
}

void rp_json_str(FILE *f, const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		const size_t n = utf8_len(p + i, len - i);

		if (!n) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
			fprintf(f, "\\u%04x", p[i]);
		} else if (n == 1 && (p[i] == '"' || p[i] == '\\')) {
			fputc('\\', f);
			fputc(p[i], f);
		} else {
			/* a short write sets ferror(f): the caller checks */
			(void)fwrite(p + i, 1, n, f);
		}
		i += n;
	}
	fputc('"', f);
}

void rp_json_cstr(FILE *f, const char *s)
{
	rp_json_str(f, s, strlen(s));
}
