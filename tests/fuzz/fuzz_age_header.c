/*
 * fuzz_age_header: rp_age_header_parse over arbitrary bytes (a whole age
 * file: header, nonce, payload). When the parse succeeds:
 *   - header_len <= size and <= RP_AGE_MAX_HEADER_LEN, the header ends in
 *     LF, "---" ends the MAC input, the MAC line is exactly 47 chars + LF;
 *   - 1..16 stanzas whose raw spans tile the input from the end of the
 *     version line to "---", each starting "-> " and ending in LF;
 *   - every arg lies inside its stanza's raw span, is 1..255 bytes of
 *     0x21..0x7e; 1..8 args; an scrypt stanza is alone;
 *   - every body is <= 64 KiB and lies inside hdr.bodies, back to back;
 *   - writing the parsed stanzas back with the writer gives the input's
 *     bytes up to "---" exactly (the grammar is canonical);
 *   - parsing just the first header_len bytes gives the same header;
 *   - rp_age_header_verify_mac under a fixed key agrees with
 *     rp_age_header_mac.
 * When it fails: RP_ERR_FORMAT (or NOMEM) with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "age_header.h"
#include "rp_buf.h"


#define VERSION_LEN  (sizeof(RP_AGE_VERSION_LINE) - 1)
#define MAC_LINE_LEN 48 /* "--- ", 43 base64 chars, LF */

static const uint8_t fixed_file_key[RP_AGE_FILE_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

static int inside(struct rp_span inner, const uint8_t *p, size_t len)
{
	return inner.p >= p && inner.len <= len &&
	       (size_t)(inner.p - p) <= len - inner.len;
}

static void check_stanza(const struct rp_age_stanza *s, const uint8_t *data,
			 size_t header_len)
{
	CHECK(inside(s->raw, data, header_len));
	CHECK(s->raw.len >= 5 && !memcmp(s->raw.p, "-> ", 3));
	CHECK(s->raw.p[s->raw.len - 1] == '\n');
	CHECK(s->num_args >= 1 && s->num_args <= RP_AGE_MAX_ARGS);
	for (size_t j = 0; j < s->num_args; j++) {
		const struct rp_span a = s->args[j];

		CHECK(inside(a, s->raw.p, s->raw.len));
		CHECK(a.len >= 1 && a.len <= RP_AGE_MAX_ARG_LEN);
		for (size_t k = 0; k < a.len; k++) {
			CHECK(a.p[k] >= 0x21 && a.p[k] <= 0x7e);
		}
	}
	CHECK(s->body.len <= RP_AGE_MAX_BODY_LEN);
}

/* check_rewrite writes the parsed stanzas back and compares */
static void check_rewrite(const struct rp_age_header *hdr, const uint8_t *data)
{
	struct rp_buf b = { 0 };
	char argv_buf[RP_AGE_MAX_ARGS][RP_AGE_MAX_ARG_LEN + 1];
	const char *argv[RP_AGE_MAX_ARGS];

	CHECK(rp_age_header_begin(&b) == RP_OK);
	for (size_t i = 0; i < hdr->num_stanzas; i++) {
		const struct rp_age_stanza *s = &hdr->stanzas[i];
		size_t off = 0, len = 0;

		for (size_t j = 0; j < s->num_args; j++) {
			memcpy(argv_buf[j], s->args[j].p, s->args[j].len);
			argv_buf[j][s->args[j].len] = '\0';
			argv[j] = argv_buf[j];
		}
		CHECK(rp_age_header_add_stanza(&b, argv, s->num_args, s->body.p,
					       s->body.len, &off,
					       &len) == RP_OK);
		CHECK(len == s->raw.len && !memcmp(b.p + off, s->raw.p, len));
	}
	CHECK(b.len == hdr->mac_input_len - 3);
	CHECK(!memcmp(b.p, data, b.len));
	rp_buf_fini(&b);
}

static void check_header(const struct rp_age_header *hdr, const uint8_t *data,
			 size_t size)
{
	const uint8_t *next = data + VERSION_LEN;
	size_t total = 0, scrypts = 0;

	CHECK(hdr->header_len <= size);
	CHECK(hdr->header_len <= RP_AGE_MAX_HEADER_LEN);
	CHECK(hdr->header_len >= VERSION_LEN + MAC_LINE_LEN);
	CHECK(!memcmp(data, RP_AGE_VERSION_LINE, VERSION_LEN));
	CHECK(hdr->mac_input_len + 1 + 43 + 1 == hdr->header_len);
	CHECK(!memcmp(data + hdr->mac_input_len - 3, "--- ", 4));
	CHECK(data[hdr->header_len - 1] == '\n');
	CHECK(hdr->num_stanzas >= 1 && hdr->num_stanzas <= RP_AGE_MAX_STANZAS);
	CHECK(hdr->bodies != NULL);
	for (size_t i = 0; i < hdr->num_stanzas; i++) {
		const struct rp_age_stanza *s = &hdr->stanzas[i];

		check_stanza(s, data, hdr->header_len);
		CHECK(s->raw.p == next);
		next += s->raw.len;
		CHECK(s->body.p == hdr->bodies + total);
		total += s->body.len;
		scrypts += rp_age_stanza_is(s, "scrypt");
	}
	CHECK(next == data + hdr->mac_input_len - 3);
	CHECK(!scrypts || hdr->num_stanzas == 1);
	check_rewrite(hdr, data);
}

static void check_mac(const struct rp_age_header *hdr, const uint8_t *data)
{
	uint8_t mac[RP_AGE_MAC_LEN];
	struct rp_status st = { 0 };
	enum rp_err err;

	CHECK(rp_age_header_mac(mac, &st, fixed_file_key, data,
				hdr->mac_input_len) == RP_OK);
	err = rp_age_header_verify_mac(hdr, &st, fixed_file_key, data);
	CHECK(err == RP_OK || err == RP_ERR_AUTH);
	CHECK((err == RP_OK) == !memcmp(mac, hdr->mac, sizeof(mac)));
}

/* parsing the header alone must give the same result */
static void check_reparse(const struct rp_age_header *hdr, const uint8_t *data)
{
	struct rp_age_header again;
	struct rp_status st = { 0 };
	uint8_t *copy = malloc(hdr->header_len);

	CHECK(copy != NULL);
	memcpy(copy, data, hdr->header_len);
	CHECK(rp_age_header_parse(&again, &st, copy, hdr->header_len) == RP_OK);
	CHECK(again.header_len == hdr->header_len);
	CHECK(again.mac_input_len == hdr->mac_input_len);
	CHECK(again.num_stanzas == hdr->num_stanzas);
	CHECK(!memcmp(again.mac, hdr->mac, sizeof(hdr->mac)));
	for (size_t i = 0; i < hdr->num_stanzas; i++) {
		const struct rp_age_stanza *a = &again.stanzas[i];
		const struct rp_age_stanza *b = &hdr->stanzas[i];

		CHECK(a->raw.len == b->raw.len && a->num_args == b->num_args);
		CHECK(a->body.len == b->body.len);
		CHECK(!a->body.len ||
		      !memcmp(a->body.p, b->body.p, a->body.len));
	}
	rp_age_header_fini(&again);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_age_header hdr;
	struct rp_status st = { 0 };
	enum rp_err err;

	err = rp_age_header_parse(&hdr, &st, data, size);
	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_NOMEM);
		CHECK(st.err == err && st.msg[0] != '\0');
		CHECK(hdr.bodies == NULL && hdr.num_stanzas == 0);
		rp_age_header_fini(&hdr);
		return 0;
	}
	check_header(&hdr, data, size);
	check_mac(&hdr, data);
	check_reparse(&hdr, data);
	rp_age_header_fini(&hdr);
	return 0;
}
