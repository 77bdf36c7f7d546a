#include "doc.h"

#include "doc_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "afile.h"
#include "lifecycle.h"
#include "age_header.h"
#include "doc_header.h"
#include "age_recip.h"
#include "age_stream.h"
#include "merkle.h"
#include "rp_buf.h"
#include "rp_ossl.h"
#include "rp_testhook.h"
#include "zcodec.h"

#define IO_CHUNK (256 * 1024)

void rp_doc_hdr_fini(struct rp_doc_hdr *d)
{
	rp_age_header_fini(&d->hdr);
	if (!d->is_buf_borrowed) {
		free(d->buf);
	}
	d->is_buf_borrowed = 0;
	if (d->fd >= 0) {
		close(d->fd);
	}
	d->fd = -1;
	d->buf = NULL;
}

/*
 * hdr_load: d->fd open, d->sb its stat. Reads a small prefix first
 * (headers are a few KiB; `prefix` may hold it already) and grows it
 * only while the header does not fit, up to the bound. Only a header that
 * does not parse (RP_ERR_FORMAT) or lacks its nonce is read further: any
 * other failure (out of memory above all) is the answer, not a sign that
 * more bytes are needed. d->buf and d->buf_len always agree: on failure
 * they hold what was read (the caller's prefix, still borrowed, if the
 * larger buffer could not be had), or NULL and 0.
 */
static enum rp_err hdr_load(struct rp_doc_hdr *d, struct rp_status *st,
			    uint8_t *prefix, size_t len)
{
	size_t want, limit;
	enum rp_err err;

	if (!S_ISREG(d->sb.st_mode)) {
		return rp_status_fail(st, RP_ERR_USAGE, "not a regular file");
	}
	limit = RP_AGE_MAX_HEADER_LEN + RP_AGE_NONCE_LEN;
	if ((uint64_t)d->sb.st_size < limit) {
		limit = (size_t)d->sb.st_size;
	}
	want = limit < RP_DOC_HDR_PREFIX ? limit : RP_DOC_HDR_PREFIX;
	for (;; want *= 8) {
		if (want > limit) {
			want = limit;
		}
		if (prefix && len == want) {
			/* the caller read this much already */
			d->buf = prefix;
			d->buf_len = len;
			d->is_buf_borrowed = 1;
			prefix = NULL;
		} else {
			/* a borrowed buffer is never realloc'ed: a new one */
			uint8_t *p = realloc(d->is_buf_borrowed ? NULL : d->buf,
					     want ? want : 1);

			if (!p) {
				rp_status_clear(st);
				return rp_status_fail(st, RP_ERR_NOMEM,
						      "out of memory for a "
						      "%zu-byte header",
						      want);
			}
			d->buf = p;
			d->buf_len = 0;
			d->is_buf_borrowed = 0;
			err = rp_read_full(d->fd, st, NULL, d->buf, want, 0,
					   &d->buf_len);
			if (err) {
				d->buf_len = 0;
				return err;
			}
		}
		rp_age_header_fini(&d->hdr);
		rp_status_clear(st);
		err = rp_age_header_parse(&d->hdr, st, d->buf, d->buf_len);
		if (!err && d->buf_len - d->hdr.header_len >= RP_AGE_NONCE_LEN) {
			break;
		}
		if (err && err != RP_ERR_FORMAT) {
			return err; /* not for want of bytes */
		}
		if (want >= limit || d->buf_len < want) {
			if (err) {
				return err;
			}
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "no payload nonce after the "
					      "header");
		}
	}
	memcpy(d->nonce, d->buf + d->hdr.header_len, RP_AGE_NONCE_LEN);
	for (size_t i = 0; i < d->hdr.num_stanzas; i++) {
		const struct rp_age_stanza *s = &d->hdr.stanzas[i];

		if (rp_age_stanza_is(s, RP_LICENSE_STANZA_TYPE)) {
			if (d->license_i >= 0) {
				return rp_status_fail(st, RP_ERR_FORMAT,
						      "more than one "
						      "rp-license stanza");
			}
			d->license_i = (long)i;
		}
	}
	return RP_OK;
}

enum rp_err rp_doc_hdr_read(struct rp_doc_hdr *d, struct rp_status *st,
			    const char *path, int extra_flags)
{
	long fault;

	memset(d, 0, sizeof(*d));
	d->license_i = -1;
	d->recip_i = -1;
	d->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | extra_flags);
	fault = rp_test_fault("io:open");
	if (d->fd >= 0 && fault > 0) {
		close(d->fd);
		d->fd = -1;
		errno = (int)fault;
	}
	if (d->fd < 0) {
		return rp_status_errno(st, errno, "cannot open", NULL);
	}
	if (fstat(d->fd, &d->sb) < 0) {
		return rp_status_errno(st, errno, "cannot stat", NULL);
	}
	return hdr_load(d, st, NULL, 0);
}

enum rp_err rp_doc_hdr_load(struct rp_doc_hdr *d, struct rp_status *st,
			    uint8_t *prefix, size_t len)
{
	const long fault = rp_test_fault("io:open");

	d->license_i = -1;
	d->recip_i = -1;
	if (fault > 0) {
		return rp_status_errno(st, (int)fault, "cannot open", NULL);
	}
	return hdr_load(d, st, prefix, len);
}

static int stanza_is_recipient(const struct rp_age_stanza *s)
{
	return rp_age_stanza_is(s, "X25519") || rp_age_stanza_is(s, "ssh-rsa");
}

/* the key's recipient stanza type, and for RSA the tag it must carry */
static enum rp_err key_stanza_match(struct rp_store *store,
				    struct rp_status *st, size_t idx,
				    const struct rp_age_stanza *s, int *out)
{
	const struct rp_key_info *k = &rp_store_keyring(store)->keys[idx];
	const char *tag = NULL;
	enum rp_err err;

	*out = 0;
	if (k->alg == RP_ALG_X25519) {
		*out = rp_age_stanza_is(s, "X25519");
		return RP_OK;
	}
	if (!rp_age_stanza_is(s, "ssh-rsa") || s->num_args != 2) {
		return RP_OK;
	}
	err = rp_store_pubkeys(store, st, idx, NULL, NULL, &tag);
	if (!err) {
		*out = s->args[1].len == RP_SSHRSA_TAG_LEN &&
		       !memcmp(s->args[1].p, tag, RP_SSHRSA_TAG_LEN);
	}
	return err;
}

/* digest: SHA-256, which fails only when OpenSSL runs out of memory */
static enum rp_err digest(uint8_t out[32], struct rp_status *st,
			  const uint8_t *p, size_t len)
{
	unsigned int n = 0;

	if (!EVP_Digest(p, len, out, &n, rp_sha256(), NULL) || n != 32) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "sha-256");
	}
	return RP_OK;
}

/*
 * is_system_err: a failure of the machine (memory, I/O, the library, the
 * token), which says nothing about the document or the key
 */
size_t rp_doc_hdr_has_pad(const struct rp_age_header *h)
{
	const struct rp_age_stanza *p;

	if (!h->num_stanzas) {
		return 0;
	}
	p = &h->stanzas[h->num_stanzas - 1];
	return rp_age_stanza_is(p, RP_DOC_PAD_TYPE) && p->num_args >= 2 &&
	       !p->body.len;
}

static int is_system_err(enum rp_err err)
{
	return err == RP_ERR_NOMEM || err == RP_ERR_IO ||
	       err == RP_ERR_CRYPTO || err == RP_ERR_HSM ||
	       err == RP_ERR_INTERNAL;
}

static int is_usable(const struct rp_key_info *k)
{
	return k->state != RP_KEY_REVOKED && k->state != RP_KEY_DESTROYED &&
	       k->state != RP_KEY_RETIRING;
}

void rp_doc_stanza_key(struct rp_store *s, size_t worker,
		       const struct rp_doc_hdr *d, long *out_idx,
		       int *is_unsure)
{
	const struct rp_keyring *kr = rp_store_keyring(s);
	uint8_t fk[RP_AGE_FILE_KEY_LEN];

	*out_idx = -1;
	*is_unsure = 0;
	for (size_t i = 0; i < d->hdr.num_stanzas; i++) {
		const struct rp_age_stanza *as = &d->hdr.stanzas[i];

		if (!stanza_is_recipient(as)) {
			continue;
		}
		for (size_t k = 0; k < kr->num_keys; k++) {
			struct rp_status tmp = { 0 };
			int is_match = 0;

			if (kr->keys[k].state == RP_KEY_DESTROYED ||
			    key_stanza_match(s, &tmp, k, as, &is_match)) {
				*is_unsure |= tmp.err != RP_OK;
				continue;
			}
			if (!is_match) {
				continue;
			}
			if (kr->keys[k].alg != RP_ALG_X25519) {
				*out_idx = (long)k; /* the tag says so */
				return;
			}
			/* X25519 stanzas name no key: try to open it */
			if (!is_usable(&kr->keys[k])) {
				*is_unsure = 1;
				continue;
			}
			if (!rp_store_unwrap_w(s, &tmp, worker, k, as, fk)) {
				OPENSSL_cleanse(fk, sizeof(fk));
				*out_idx = (long)k;
				return;
			}
			*is_unsure |= is_system_err(tmp.err);
		}
	}
}

/*
 * rp_doc_check runs every check of a document it can, each into its own
 * status in `info`. With `out_file_key`, unwraps and checks the MAC.
 */
void rp_doc_check(struct rp_store *s, size_t worker, struct rp_doc_hdr *d,
		  struct rp_doc_info *info, uint8_t *out_file_key,
		  int *has_file_key, struct rp_sig_cache *sigs,
		  uint8_t *out_hdr_key)
{
	uint8_t hk[RP_AGE_HEADER_KEY_LEN];

	const struct rp_keyring *kr = s ? rp_store_keyring(s) : NULL;
	const struct rp_age_stanza *ls = NULL;
	const struct rp_age_stanza *rs = NULL;
	size_t tbs_len = 0;
	size_t num_recip = 0;
	EVP_PKEY *spub = NULL;
	uint8_t dg[32];

	*has_file_key = 0;
	info->key_idx = -1;
	info->signer_idx = -1;
	info->num_stanzas = d->hdr.num_stanzas;
	info->header_len = d->hdr.header_len;
	info->file_size = (uint64_t)d->sb.st_size;
	for (size_t i = 0; i < d->hdr.num_stanzas; i++) {
		if (stanza_is_recipient(&d->hdr.stanzas[i])) {
			num_recip++;
			if (d->recip_i < 0) {
				d->recip_i = (long)i;
			}
		}
	}
	if (d->recip_i >= 0) {
		rs = &d->hdr.stanzas[d->recip_i];
		snprintf(info->recip_type, sizeof(info->recip_type), "%.*s",
			 (int)rs->args[0].len, (const char *)rs->args[0].p);
		if (rs->num_args > 1) {
			snprintf(info->recip_arg, sizeof(info->recip_arg),
				 "%.*s", (int)rs->args[1].len,
				 (const char *)rs->args[1].p);
		}
	}

	/* the license */
	if (d->license_i < 0) {
		rp_status_fail(&info->license_st, RP_ERR_UNLICENSED,
			       "no rp-license stanza (a plain age file?)");
	} else {
		ls = &d->hdr.stanzas[d->license_i];
		info->has_license = 1;
		if (ls->num_args != 2 || ls->args[1].len != 1 ||
		    ls->args[1].p[0] != '1') {
			rp_status_fail(&info->license_st, RP_ERR_FORMAT,
				       "rp-license stanza: unknown version");
		} else if (!rp_license_decode(&info->lic, &info->license_st,
					      ls->body.p, ls->body.len,
					      &tbs_len)) {
			if (num_recip != 1 ||
			    d->hdr.num_stanzas !=
				    2 + rp_doc_hdr_has_pad(&d->hdr)) {
				rp_status_fail(&info->license_st, RP_ERR_FORMAT,
					       "a licensed document has "
					       "exactly one recipient stanza, "
					       "one rp-license stanza and at "
					       "most one rp-pad stanza, last");
			}
		}
	}
	if (info->license_st.err == RP_ERR_FORMAT) {
		info->has_license = 1;
		goto out; /* nothing else can be trusted */
	}

	/* the key */
	if (!kr) {
		rp_status_fail(&info->key_st, RP_ERR_NOKEY, "no store");
	} else if (!info->license_st.err) {
		char hex[2 * RP_KEY_ID_LEN + 1];

		info->key_idx = rp_keyring_find_id(kr, info->lic.key_id);
		rp_key_id_hex(hex, info->lic.key_id);
		if (info->key_idx < 0) {
			rp_status_fail(&info->key_st, RP_ERR_NOKEY,
				       "protected under key %.16s, which is "
				       "not in this store",
				       hex);
		} else {
			int is_match = 0;

			if (!rp_store_check_usable(s, &info->key_st,
						   (size_t)info->key_idx) &&
			    !key_stanza_match(
				    s, &info->key_st, (size_t)info->key_idx,
				    rs ? rs : &d->hdr.stanzas[0], &is_match) &&
			    (!rs || !is_match)) {
				rp_status_fail(&info->key_st, RP_ERR_FORMAT,
					       "the recipient stanza is not "
					       "for the license's key %.16s",
					       hex);
			}
		}
	} else {
		/* unlicensed: find a store key whose stanza is present */
		for (size_t i = 0; i < d->hdr.num_stanzas && info->key_idx < 0;
		     i++) {
			for (size_t k = 0; k < kr->num_keys; k++) {
				int is_match = 0;
				struct rp_status tmp = { 0 };

				if (key_stanza_match(s, &tmp, k,
						     &d->hdr.stanzas[i],
						     &is_match) &&
				    is_system_err(tmp.err)) {
					/* not "no match": we could not tell */
					info->key_st = tmp;
					goto out;
				}
				if (tmp.err || !is_match) {
					continue;
				}
				if (kr->keys[k].alg == RP_ALG_X25519 &&
				    out_file_key && is_usable(&kr->keys[k])) {
					/* X25519 has no tag: try to open */
					if (rp_store_unwrap_w(s, &tmp, worker, k,
							    &d->hdr.stanzas[i],
							    out_file_key)) {
						if (is_system_err(tmp.err)) {
							info->key_st = tmp;
							goto out;
						}
						continue;
					}
					*has_file_key = 1;
				}
				info->key_idx = (long)k;
				rs = &d->hdr.stanzas[i];
				d->recip_i = (long)i;
				break;
			}
		}
		if (info->key_idx < 0) {
			rp_status_fail(&info->key_st, RP_ERR_NOKEY,
				       "no key in the store matches any of "
				       "the document's recipient stanzas");
		} else {
			(void)!rp_store_check_usable(s, &info->key_st,
						     (size_t)info->key_idx);
		}
	}

	/* bindings and signature (licensed only) */
	if (!info->license_st.err) {
		/* a license decoded: one license and one recipient stanza */
		assert(rs && ls);
		if (digest(dg, &info->stanza_st, rs->raw.p, rs->raw.len)) {
			/* stanza_st says why: memory, not the document */
		} else if (CRYPTO_memcmp(dg, info->lic.stanza_digest, 32)) {
			rp_status_fail(&info->stanza_st, RP_ERR_AUTH,
				       "the license is not bound to this "
				       "recipient stanza");
		}
		if (CRYPTO_memcmp(d->nonce, info->lic.payload_nonce,
				  RP_AGE_NONCE_LEN)) {
			rp_status_fail(&info->nonce_st, RP_ERR_AUTH,
				       "the license is not bound to this "
				       "payload (nonce differs)");
		}
		info->signer_idx =
			kr ? rp_keyring_find_id(kr, info->lic.sig.key_id) : -1;
		if (info->signer_idx < 0) {
			rp_status_fail(&info->sig_st, RP_ERR_NOKEY,
				       "the license's signing key is not in "
				       "this store");
		} else if (rp_store_check_usable(s, &info->sig_st,
						 (size_t)info->signer_idx)) {
			/* a revoked key's signature vouches for nothing */
			rp_status_prefix(&info->sig_st,
					 "the license's signing key");
		} else if (!rp_store_pubkeys(s, &info->sig_st,
					     (size_t)info->signer_idx, NULL,
					     &spub, NULL)) {
			(void)!rp_license_sig_verify_cached(
				&info->lic, &info->sig_st, ls->body.p, tbs_len,
				spub, sigs);
		}
	}

	/* unwrap and header MAC */
	if (!out_file_key) {
		goto out;
	}
	if (info->key_st.err) {
		rp_status_fail(&info->mac_st, info->key_st.err, "%s",
			       rp_status_msg(&info->key_st));
		goto out;
	}
	if (!*has_file_key) {
		if (rp_store_unwrap_w(s, &info->mac_st, worker,
				      (size_t)info->key_idx, rs,
				    out_file_key)) {
			goto out;
		}
		*has_file_key = 1;
	}
	if (!rp_age_header_key(hk, &info->mac_st, out_file_key) &&
	    !rp_age_header_verify_mac_k(&d->hdr, &info->mac_st, hk, d->buf) &&
	    out_hdr_key) {
		memcpy(out_hdr_key, hk, sizeof(hk));
	}
	OPENSSL_cleanse(hk, sizeof(hk));
out:
	return; /* spub is borrowed from the store's cache */
}

enum rp_err rp_doc_check_tail(struct rp_doc_hdr *d, struct rp_status *st,
			      const struct rp_license *lic,
			      const uint8_t file_key[RP_AGE_FILE_KEY_LEN],
			      struct rp_stream *s, uint8_t *buf)
{
	const uint64_t start = d->hdr.header_len + RP_AGE_NONCE_LEN;
	const uint64_t size = (uint64_t)d->sb.st_size;
	const uint64_t payload = size > start ? size - start : 0;
	const uint64_t n = (payload + RP_STREAM_SEALED - 1) / RP_STREAM_SEALED;
	const uint64_t last_off = n ? (n - 1) * RP_STREAM_SEALED : 0;
	const size_t last_len = (size_t)(payload - last_off);
	size_t got = 0;
	enum rp_err err;

	if (lic->encoding == RP_ENC_NONE &&
	    payload != rp_stream_sealed_size(lic->plaintext_size)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "the payload is %llu bytes but its "
				      "license gives %llu: truncated or "
				      "extended",
				      (unsigned long long)payload,
				      (unsigned long long)rp_stream_sealed_size(
					      lic->plaintext_size));
	}
	if (last_len > RP_STREAM_SEALED) {
		return rp_status_fail(st, RP_ERR_FORMAT, "payload truncated");
	}
	err = rp_read_full(d->fd, st, NULL, buf, last_len,
			   (off_t)(start + last_off), &got);
	if (!err && got != last_len) {
		err = rp_status_fail(st, RP_ERR_IO, "short read");
	}
	if (!err) {
		err = rp_stream_init(s, st, RP_STREAM_OPEN, file_key, d->nonce);
	}
	if (!err) {
		err = rp_stream_check_final(s, st, payload, buf, last_len);
	}
	rp_stream_fini(s);
	return err;
}

/* inspect_tail: the final-chunk check for inspect, into info->tail_st */
static void inspect_tail(struct rp_doc_hdr *d, struct rp_doc_info *info,
			 const uint8_t file_key[RP_AGE_FILE_KEY_LEN])
{
	struct rp_stream *s = calloc(1, sizeof(*s));
	uint8_t *buf = malloc(RP_STREAM_SEALED);

	if (!s || !buf) {
		rp_status_fail(&info->tail_st, RP_ERR_NOMEM, "out of memory");
	} else {
		(void)!rp_doc_check_tail(d, &info->tail_st, &info->lic,
					 file_key, s, buf);
	}
	info->is_tail_checked = 1;
	free(s);
	free(buf); /* ciphertext only: check_final wipes its plaintext */
}

enum rp_err rp_doc_inspect(struct rp_store *s, struct rp_status *st,
			   const char *path, struct rp_doc_info *out)
{
	struct rp_doc_hdr d;
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	int has_file_key = 0;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	err = rp_doc_hdr_read(&d, st, path, 0);
	if (!err) {
		rp_doc_check(s, 0, &d, out, s ? file_key : NULL, &has_file_key,
			     NULL, NULL);
		/* the payload's end, where the key and the header are good */
		if (has_file_key && !out->license_st.err && !out->mac_st.err) {
			inspect_tail(&d, out, file_key);
		}
	}
	OPENSSL_cleanse(file_key, sizeof(file_key));
	rp_doc_hdr_fini(&d);
	return err;
}

/* first_failure returns the first failed check, in the order that matters */
static const struct rp_status *first_failure(const struct rp_doc_info *i,
					     int allow_unlicensed)
{
	const struct rp_status *order[] = { &i->license_st, &i->key_st,
					    &i->stanza_st,  &i->nonce_st,
					    &i->sig_st,	    &i->mac_st };

	for (size_t k = 0; k < RP_ARRAY_LEN(order); k++) {
		if (order[k]->err == RP_ERR_UNLICENSED && allow_unlicensed) {
			continue;
		}
		if (order[k]->err) {
			return order[k];
		}
	}
	return NULL;
}

struct sink {
	struct rp_afile *af; /* borrowed; NULL: stdout */
	struct rp_zcodec *z; /* borrowed; NULL: not compressed */
	uint64_t total;
	uint64_t limit; /* UINT64_MAX: none */
	struct rp_status *st;
};

static enum rp_err sink_write(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	if (k->total + len > k->limit) {
		return rp_status_fail(k->st, RP_ERR_FORMAT,
				      "plaintext is longer than the license "
				      "says");
	}
	k->total += len;
	if (k->af) {
		return rp_afile_write(k->af, k->st, p, len);
	}
	return rp_write_full(STDOUT_FILENO, k->st, "standard output", p, len);
}

static enum rp_err sink_decompress(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	return rp_zcodec_feed(k->z, k->st, p, len, sink_write, k);
}

static enum rp_err decrypt_payload(struct rp_doc_hdr *d, struct rp_status *st,
				   const uint8_t file_key[RP_AGE_FILE_KEY_LEN],
				   struct sink *k)
{
	/* zeroed: if buf cannot be had, `out` finalises a stream never set up */
	struct rp_stream *s = calloc(1, sizeof(*s));
	uint8_t *buf = malloc(IO_CHUNK);
	off_t off = (off_t)(d->hdr.header_len + RP_AGE_NONCE_LEN);
	rp_stream_out_fn *fn = k->z ? sink_decompress : sink_write;
	enum rp_err err;

	if (!s || !buf) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	err = rp_stream_init(s, st, RP_STREAM_OPEN, file_key, d->nonce);
	while (!err) {
		size_t n = 0;

		err = rp_read_full(d->fd, st, NULL, buf, IO_CHUNK, off, &n);
		if (err || n == 0) {
			break;
		}
		off += (off_t)n;
		err = rp_stream_feed(s, st, buf, n, fn, k);
	}
	if (!err) {
		err = rp_stream_finish(s, st, fn, k);
	}
	if (!err && k->z) {
		err = rp_zcodec_finish(k->z, st, sink_write, k);
	}
out:
	if (s) {
		rp_stream_fini(s);
		free(s);
	}
	free(buf);
	return err;
}

enum rp_err rp_doc_unprotect(struct rp_store *s, struct rp_status *st,
			     const struct rp_unprotect_opts *o,
			     const char *in_path, const char *out_path)
{
	struct rp_doc_hdr d;
	struct rp_doc_info *info = calloc(1, sizeof(*info));
	struct rp_afile af = { .fd = -1 };
	struct rp_zcodec z = { 0 };
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	int has_file_key = 0;
	const int is_stdout = !strcmp(out_path, "-");
	struct sink k = { NULL, NULL, 0, UINT64_MAX, st };
	const struct rp_status *bad;
	enum rp_err err;

	if (!info) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = rp_doc_hdr_read(&d, st, in_path, 0);
	if (err) {
		goto out;
	}
	rp_doc_check(s, 0, &d, info, file_key, &has_file_key, NULL, NULL);
	bad = first_failure(info, o->allow_unlicensed);
	if (bad) {
		err = rp_status_fail(st, bad->err, "%s", rp_status_msg(bad));
		if (bad->err == RP_ERR_UNLICENSED) {
			rp_status_clear(st);
			err = rp_status_fail(st, RP_ERR_UNLICENSED,
					     "no rp-license stanza (made by "
					     "plain age?): give "
					     "--allow-unlicensed to open it "
					     "anyway");
		}
		goto out;
	}
	if (info->has_license && info->lic.encoding == RP_ENC_NONE) {
		/*
		 * the license fixes the payload's exact size: say truncated
		 * or extended (compared as payloads: an absurd size
		 * saturates, never wraps)
		 */
		const uint64_t start = d.hdr.header_len + RP_AGE_NONCE_LEN;
		const uint64_t have = (uint64_t)d.sb.st_size - start;
		const uint64_t want =
			rp_stream_sealed_size(info->lic.plaintext_size);

		if (have != want) {
			err = rp_status_fail(
				st, RP_ERR_FORMAT,
				"the payload is %llu bytes but its license "
				"gives %llu: it was %s",
				(unsigned long long)have,
				(unsigned long long)want,
				have < want ? "truncated" : "extended");
			goto out;
		}
	}
	if (info->has_license) {
		k.limit = info->lic.plaintext_size;
		if (info->lic.encoding == RP_ENC_ZSTD) {
			err = rp_zcodec_init_decompress(
				&z, st, info->lic.plaintext_size);
			if (err) {
				goto out;
			}
			k.z = &z;
		}
	}
	if (!is_stdout) {
		err = rp_afile_open(&af, st, out_path, !o->is_force);
		if (err) {
			goto out;
		}
		k.af = &af;
	}
	err = decrypt_payload(&d, st, file_key, &k);
	if (!err && info->has_license && k.total != info->lic.plaintext_size) {
		err = rp_status_fail(
			st, RP_ERR_FORMAT,
			"plaintext is %llu bytes, the license "
			"says %llu",
			(unsigned long long)k.total,
			(unsigned long long)info->lic.plaintext_size);
	}
	if (!err && k.af) {
		err = rp_afile_commit(&af, st);
	}
out:
	rp_afile_fini(&af);
	rp_zcodec_fini(&z);
	OPENSSL_cleanse(file_key, sizeof(file_key));
	rp_doc_hdr_fini(&d);
	free(info);
	return err;
}

/* protect */

struct src {
	int fd;
	uint64_t size;
};

static enum rp_err build_license(struct rp_store *s, struct rp_status *st,
				 size_t kidx, const struct rp_protect_opts *o,
				 uint64_t size, const uint8_t nonce[16],
				 const struct rp_span *raw, struct rp_buf *out)
{
	const struct rp_key_info *k = &rp_store_keyring(s)->keys[kidx];
	struct rp_license *lic = calloc(1, sizeof(*lic));
	struct rp_buf tbs = { 0 };
	uint8_t leaf[RP_MERKLE_HASH_LEN];
	uint8_t msg[64];
	size_t msg_len;
	EVP_PKEY *spub = NULL;
	enum rp_err err;

	if (!lic) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	lic->version = RP_LICENSE_VERSION;
	if (RAND_bytes(lic->doc_id, sizeof(lic->doc_id)) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "random");
		goto out;
	}
	memcpy(lic->key_id, k->id, RP_KEY_ID_LEN);
	snprintf(lic->template_id, sizeof(lic->template_id), "%s",
		 o->template_id ? o->template_id : "");
	snprintf(lic->owner, sizeof(lic->owner), "%s",
		 o->owner ? o->owner : "");
	lic->issued_at = (uint64_t)time(NULL);
	lic->encoding = o->is_compress ? RP_ENC_ZSTD : RP_ENC_NONE;
	lic->plaintext_size = size;
	switch (rp_test_fault("doc:size-lie")) {
	case 1: /* a test build: the license claims one byte more */
		lic->plaintext_size++;
		break;
	case 2: /* ... or one byte less */
		lic->plaintext_size--;
		break;
	default:
		break;
	}
	err = digest(lic->stanza_digest, st, raw->p, raw->len);
	if (err) {
		goto out;
	}
	memcpy(lic->payload_nonce, nonce, RP_AGE_NONCE_LEN);
	err = rp_license_encode_tbs(&tbs, st, lic);
	if (err) {
		goto out;
	}
	/* a per-document signature is a batch of one: root = leaf */
	err = rp_merkle_leaf_hash(leaf, st, tbs.p, tbs.len);
	if (err) {
		goto out;
	}
	msg_len = rp_license_root_message(msg, leaf, 1);
	lic->sig.alg = k->alg == RP_ALG_X25519 ? RP_SIG_ED25519
					       : RP_SIG_RSA_PSS_SHA256;
	memcpy(lic->sig.key_id, k->id, RP_KEY_ID_LEN);
	lic->sig.batch_size = 1;
	lic->sig.leaf_index = 0;
	lic->sig.num_path = 0;
	err = rp_store_sign(s, st, kidx, msg, msg_len, lic->sig.sig,
			    sizeof(lic->sig.sig), &lic->sig.sig_len);
	if (err) {
		goto out;
	}
	/* check the signature before it leaves: a faulty signer is caught */
	err = rp_key_sign_pubkey(&spub, st, k);
	if (!err) {
		err = rp_license_sig_verify(lic, st, tbs.p, tbs.len, spub);
	}
	if (!err) {
		err = rp_license_encode(out, st, lic);
	}
out:
	EVP_PKEY_free(spub);
	rp_buf_fini(&tbs);
	free(lic);
	return err;
}

static enum rp_err build_header(struct rp_store *s, struct rp_status *st,
				const struct rp_protect_opts *o, uint64_t size,
				const uint8_t file_key[16],
				const uint8_t nonce[16], struct rp_buf *hdr)
{
	const struct rp_keyring *kr = rp_store_keyring(s);
	const long kidx = rp_keyring_active(kr);
	struct rp_recip_stanza *rs = calloc(1, sizeof(*rs));
	struct rp_buf lic = { 0 };
	EVP_PKEY *pub = NULL;
	size_t off = 0, len = 0;
	struct rp_span raw;
	enum rp_err err;

	if (!rs) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (o->template_id) {
		const long t = rp_keyring_find_template(kr, o->template_id);

		if (t < 0) {
			err = rp_status_fail(st, RP_ERR_NOTFOUND,
					     "no rights template '%s' in the "
					     "store: create it with 'reprotect "
					     "template create'",
					     o->template_id);
			goto out;
		}
		/* a template whose signature fails is not applied */
		err = rp_store_template_verify(s, st, (size_t)t);
		if (err) {
			goto out;
		}
	}
	if (kidx < 0) {
		err = rp_status_fail(st, RP_ERR_STATE,
				     "no active key: create one with "
				     "'reprotect key create --activate'");
		goto out;
	}
	err = rp_key_pubkey(&pub, st, &kr->keys[kidx]);
	if (err) {
		goto out;
	}
	if (kr->keys[kidx].alg == RP_ALG_X25519) {
		uint8_t r[RP_X25519_LEN];
		size_t rl = sizeof(r);

		if (EVP_PKEY_get_raw_public_key(pub, r, &rl) != 1) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "x25519 key");
			goto out;
		}
		err = rp_x25519_wrap(rs, st, r, file_key);
	} else {
		err = rp_sshrsa_wrap(rs, st, pub, NULL, file_key);
	}
	if (!err) {
		err = rp_age_header_begin(hdr);
	}
	if (!err) {
		err = rp_recip_stanza_add(hdr, rs, &off, &len);
	}
	if (err) {
		rp_status_fail(st, err, "cannot write the header");
		goto out;
	}
	raw = rp_span_of(hdr->p + off, len);
	err = build_license(s, st, (size_t)kidx, o, size, nonce, &raw, &lic);
	if (!err && rp_test_fault("doc:no-pad") > 0) {
		/* a test build: a header as reprotect wrote them before
		 * slack (no rp-pad stanza), to test what becomes of it */
		const char *largs[] = { RP_LICENSE_STANZA_TYPE,
					RP_LICENSE_STANZA_ARG };

		err = rp_age_header_add_stanza(hdr, largs, 2, lic.p, lic.len,
					       NULL, NULL);
		if (!err) {
			err = rp_age_header_finish(hdr, st, file_key);
		}
	} else if (!err) {
		uint8_t hk[RP_AGE_HEADER_KEY_LEN];

		/* a batch of one: no audit path; slack for the longest */
		err = rp_age_header_key(hk, st, file_key);
		if (!err) {
			err = rp_doc_header_finish(hdr, st, lic.p, lic.len, 0,
						   hk, 0);
		}
		OPENSSL_cleanse(hk, sizeof(hk));
	}
out:
	EVP_PKEY_free(pub);
	rp_buf_fini(&lic);
	free(rs);
	return err;
}

struct enc_sink {
	struct rp_afile *af;
	struct rp_stream *s;
	struct rp_status *st;
};

static enum rp_err enc_write(void *arg, const uint8_t *p, size_t len)
{
	struct enc_sink *e = arg;

	return rp_afile_write(e->af, e->st, p, len);
}

static enum rp_err enc_seal(void *arg, const uint8_t *p, size_t len)
{
	struct enc_sink *e = arg;

	return rp_stream_feed(e->s, e->st, p, len, enc_write, e);
}

static enum rp_err encrypt_payload(int fd, struct rp_status *st, uint64_t size,
				   const struct rp_protect_opts *o,
				   const uint8_t file_key[16],
				   const uint8_t nonce[16], struct rp_afile *af)
{
	/* zeroed: if buf cannot be had, `out` finalises a stream never set up */
	struct rp_stream *s = calloc(1, sizeof(*s));
	uint8_t *buf = malloc(IO_CHUNK);
	struct rp_zcodec z = { 0 };
	struct enc_sink e = { af, s, st };
	uint64_t total = 0;
	enum rp_err err;

	if (!s || !buf) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	err = rp_stream_init(s, st, RP_STREAM_SEAL, file_key, nonce);
	if (!err && o->is_compress) {
		err = rp_zcodec_init_compress(&z, st, o->compress_level);
	}
	while (!err) {
		size_t n = 0;

		err = rp_read_full(fd, st, NULL, buf, IO_CHUNK, (off_t)total,
				   &n);
		if (err || n == 0) {
			break;
		}
		total += n;
		if (o->is_compress) {
			err = rp_zcodec_feed(&z, st, buf, n, enc_seal, &e);
		} else {
			err = enc_seal(&e, buf, n);
		}
	}
	if (!err && total != size) {
		err = rp_status_fail(st, RP_ERR_IO,
				     "changed size while being read");
	}
	if (!err && o->is_compress) {
		err = rp_zcodec_finish(&z, st, enc_seal, &e);
	}
	if (!err) {
		err = rp_stream_finish(s, st, enc_write, &e);
	}
out:
	rp_zcodec_fini(&z);
	if (s) {
		rp_stream_fini(s);
		free(s);
	}
	if (buf) {
		OPENSSL_cleanse(buf, IO_CHUNK);
		free(buf);
	}
	return err;
}

enum rp_err rp_doc_protect(struct rp_store *s, struct rp_status *st,
			   const struct rp_protect_opts *o, const char *in_path,
			   const char *out_path)
{
	struct rp_afile af = { .fd = -1 };
	struct rp_buf hdr = { 0 };
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
	uint8_t nonce[RP_AGE_NONCE_LEN];
	struct stat sb;
	enum rp_err err;
	/* O_NONBLOCK: a FIFO given as input must not hang the open */
	const int fd = open(in_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		return rp_status_errno(st, errno, "cannot open", NULL);
	}
	if (fstat(fd, &sb) < 0) {
		err = rp_status_errno(st, errno, "cannot stat", NULL);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		err = rp_status_fail(st, RP_ERR_USAGE, "not a regular file");
		goto out;
	}
	if (RAND_priv_bytes(file_key, sizeof(file_key)) != 1 ||
	    RAND_bytes(nonce, sizeof(nonce)) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "random");
		goto out;
	}
	err = build_header(s, st, o, (uint64_t)sb.st_size, file_key, nonce,
			   &hdr);
	if (!err) {
		err = rp_afile_open(&af, st, out_path, !o->is_force);
	}
	if (!err) {
		err = rp_afile_write(&af, st, hdr.p, hdr.len);
	}
	if (!err) {
		err = rp_afile_write(&af, st, nonce, sizeof(nonce));
	}
	if (!err) {
		err = encrypt_payload(fd, st, (uint64_t)sb.st_size, o, file_key,
				      nonce, &af);
	}
	if (!err) {
		err = rp_afile_commit(&af, st);
	}
out:
	rp_afile_fini(&af);
	rp_buf_fini(&hdr);
	OPENSSL_cleanse(file_key, sizeof(file_key));
	close(fd);
	return err;
}
