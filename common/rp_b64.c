#include "rp_b64.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

size_t rp_b64_enc_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

enum rp_err rp_b64_encode(char *out, size_t out_cap, size_t *out_len,
			  const uint8_t *in, size_t in_len)
{
	const size_t want = rp_b64_enc_len(in_len);
	size_t done = 0;
	uint8_t tmp[4 + 1];

	if (out_cap < want + 1) {
		return RP_ERR_USAGE;
	}
	/* whole groups straight into out, the tail through tmp */
	if (in_len / 3) {
		EVP_EncodeBlock((unsigned char *)out, in,
				(int)(in_len / 3 * 3));
		done = in_len / 3 * 4;
	}
	if (in_len % 3) {
		EVP_EncodeBlock(tmp, in + in_len / 3 * 3, (int)(in_len % 3));
		memcpy(out + done, tmp, in_len % 3 + 1);
	}
	out[want] = '\0';
	*out_len = want;
	return RP_OK;
}

/* B64_CHAR[c]: 1 for the 64 characters of the standard alphabet */
static const uint8_t B64_CHAR[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/*
 * all_b64: every character is of the alphabet; a table and no early exit,
 * since a branch per character mispredicts on random text (a header has
 * some 1,500 of them)
 */
static int all_b64(const char *in, size_t len)
{
	unsigned ok = 1;

	for (size_t i = 0; i < len; i++) {
		ok &= B64_CHAR[(unsigned char)in[i]];
	}
	return (int)ok;
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	return c == '+' ? 62 : 63;
}

enum rp_err rp_b64_decode(uint8_t *out, size_t out_cap, size_t *out_len,
			  const char *in, size_t in_len)
{
	const size_t rem = in_len % 4;
	const size_t whole = in_len - rem;
	size_t n = whole / 4 * 3;
	char tail[4];
	uint8_t tbytes[3];
	int r;

	if (rem == 1) {
		return RP_ERR_FORMAT;
	}
	if (!all_b64(in, in_len)) {
		return RP_ERR_FORMAT;
	}
	/* canonical: the bits below the last full byte must be zero */
	if (rem == 2 && (b64_val(in[in_len - 1]) & 0x0f)) {
		return RP_ERR_FORMAT;
	}
	if (rem == 3 && (b64_val(in[in_len - 1]) & 0x03)) {
		return RP_ERR_FORMAT;
	}
	if (rem) {
		n += rem - 1;
	}
	if (out_cap < n) {
		return RP_ERR_USAGE;
	}
	if (whole) {
		r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)whole);
		if (r != (int)(whole / 4 * 3)) {
			return RP_ERR_FORMAT;
		}
	}
	if (rem) {
		memcpy(tail, in + whole, rem);
		memset(tail + rem, '=', 4 - rem);
		r = EVP_DecodeBlock(tbytes, (const unsigned char *)tail, 4);
		if (r != 3) {
			return RP_ERR_FORMAT;
		}
		memcpy(out + whole / 4 * 3, tbytes, rem - 1);
		OPENSSL_cleanse(tbytes, sizeof(tbytes));
	}
	*out_len = n;
	return RP_OK;
}

void rp_hex_encode(char *out, const uint8_t *in, size_t in_len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < in_len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * in_len] = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

enum rp_err rp_hex_decode(uint8_t *out, size_t out_len, const char *in,
			  size_t in_len)
{
	if (in_len != 2 * out_len) {
		return RP_ERR_FORMAT;
	}
	for (size_t i = 0; i < out_len; i++) {
		const int hi = hex_val(in[2 * i]);
		const int lo = hex_val(in[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return RP_ERR_FORMAT;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return RP_OK;
}
