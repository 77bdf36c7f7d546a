/*
 * fuzz_age_recip: the recipient-stanza checks and the Bech32 key strings.
 * The input is parsed as an age file; when that succeeds, every stanza
 * goes through rp_x25519_check_stanza and rp_sshrsa_check_stanza, and the
 * X25519 ones through rp_x25519_unwrap with a fixed identity. Then every
 * line of the input (and the whole input) goes through
 * rp_age_identity_decode and rp_age_recipient_decode.
 *   - a stanza passes at most one check; a passing X25519 stanza has one
 *     arg of 43 chars that decodes to the share given back and a 32-byte
 *     body; a passing ssh-rsa stanza has one arg and a 256/384/512-byte
 *     body;
 *   - unwrap gives OK, NOKEY or FORMAT, and FORMAT exactly when the check
 *     fails (or the shared secret is all zero); after OK the header MAC
 *     check gives OK or AUTH;
 *   - a decoded key string encodes back to the same string (ignoring
 *     case), and an identity's public key makes a recipient string that
 *     decodes back to it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "age_header.h"
#include "age_recip.h"
#include "rp_b64.h"


/* a test identity; tests/fuzz/make_corpus.sh encrypts seeds to it */
static const char fixed_identity[] =
	"AGE-SECRET-KEY-"
	"14R44QNVX3A066EU0UQV0KEZMUL3WDE93C4JERUEVHHCH9MWK9KAQ435HEG";

static uint8_t secret[RP_X25519_LEN];
static int have_secret;

static int same_ignoring_case(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char x = a[i], y = b[i];

		x = (char)(x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x);
		y = (char)(y >= 'A' && y <= 'Z' ? y - 'A' + 'a' : y);
		if (x != y) {
			return 0;
		}
	}
	return 1;
}

static void check_stanza(const struct rp_age_header *hdr,
			 const struct rp_age_stanza *s, const uint8_t *data)
{
	struct rp_status st = { 0 };
	uint8_t share[RP_X25519_LEN], want[RP_X25519_LEN];
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	enum rp_err ex, er, eu;
	size_t n = 0;

	ex = rp_x25519_check_stanza(share, &st, s);
	CHECK(ex == RP_OK || ex == RP_ERR_FORMAT);
	if (!ex) {
		CHECK(rp_age_stanza_is(s, "X25519") && s->num_args == 2);
		CHECK(s->args[1].len == 43);
		CHECK(rp_b64_decode(want, sizeof(want), &n,
				    (const char *)s->args[1].p,
				    s->args[1].len) == RP_OK &&
		      n == sizeof(want));
		CHECK(!memcmp(share, want, sizeof(want)));
		CHECK(s->body.len == 32);
	}
	rp_status_clear(&st);
	er = rp_sshrsa_check_stanza(&st, s);
	CHECK(er == RP_OK || er == RP_ERR_FORMAT);
	if (!er) {
		CHECK(rp_age_stanza_is(s, "ssh-rsa") && s->num_args == 2);
		CHECK(s->body.len == 256 || s->body.len == 384 ||
		      s->body.len == 512);
	}
	CHECK(ex || er);

	rp_status_clear(&st);
	eu = rp_x25519_unwrap(file_key, &st, s, secret);
	CHECK(eu == RP_OK || eu == RP_ERR_NOKEY || eu == RP_ERR_FORMAT);
	CHECK(!ex || eu == RP_ERR_FORMAT);
	if (!eu) {
		enum rp_err em;

		rp_status_clear(&st);
		em = rp_age_header_verify_mac(hdr, &st, file_key, data);
		CHECK(em == RP_OK || em == RP_ERR_AUTH);
	}
}

static void check_key_string(const char *s, size_t len)
{
	struct rp_status st = { 0 };
	uint8_t key[RP_X25519_LEN], pub[RP_X25519_LEN], again[RP_X25519_LEN];
	char enc[RP_AGE_KEY_STR_MAX];
	enum rp_err ei, er;

	ei = rp_age_identity_decode(key, &st, s, len);
	CHECK(ei == RP_OK || ei == RP_ERR_FORMAT);
	if (!ei) {
		CHECK(rp_age_identity_encode(enc, key) == RP_OK);
		CHECK(strlen(enc) == len && same_ignoring_case(enc, s, len));
		CHECK(rp_x25519_public(pub, &st, key) == RP_OK);
		CHECK(rp_age_recipient_encode(enc, pub) == RP_OK);
		CHECK(rp_age_recipient_decode(again, &st, enc, strlen(enc)) ==
		      RP_OK);
		CHECK(!memcmp(again, pub, sizeof(pub)));
	}
	rp_status_clear(&st);
	er = rp_age_recipient_decode(key, &st, s, len);
	CHECK(er == RP_OK || er == RP_ERR_FORMAT);
	if (!er) {
		CHECK(rp_age_recipient_encode(enc, key) == RP_OK);
		CHECK(strlen(enc) == len && same_ignoring_case(enc, s, len));
	}
	CHECK(ei || er);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_age_header hdr;
	struct rp_status st = { 0 };
	const char *text = (const char *)data;
	size_t start = 0;

	if (!have_secret) {
		CHECK(rp_age_identity_decode(secret, &st, fixed_identity,
					     strlen(fixed_identity)) == RP_OK);
		have_secret = 1;
	}
	if (!rp_age_header_parse(&hdr, &st, data, size)) {
		for (size_t i = 0; i < hdr.num_stanzas; i++) {
			check_stanza(&hdr, &hdr.stanzas[i], data);
		}
	}
	rp_age_header_fini(&hdr);

	check_key_string(text, size);
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			if (start || i < size) {
				check_key_string(text + start, i - start);
			}
			start = i + 1;
		}
	}
	return 0;
}
