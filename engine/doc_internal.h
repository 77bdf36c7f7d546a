#ifndef RP_ENGINE_DOC_INTERNAL_H
#define RP_ENGINE_DOC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "age_header.h"
#include "age_stream.h"
#include "doc.h"

/* Shared by doc.c and the bulk engine only. */

/* A document's header, read and parsed. */
struct rp_doc_hdr {
	int fd;
	struct stat sb;
	uint8_t *buf; /* the first bytes of the file: owned, or borrowed */
	size_t buf_len;
	int is_buf_borrowed; /* buf is the caller's (rp_doc_hdr_load) */
	struct rp_age_header hdr;
	uint8_t nonce[RP_AGE_NONCE_LEN];
	long license_i; /* stanza index of rp-license, -1 if none */
	long recip_i;	/* stanza index of the recipient, -1 if none */
};

/*
 * rp_doc_hdr_read opens `path` (with `extra_flags` added to O_RDONLY, e.g.
 * O_NOFOLLOW), reads and parses its header and nonce. d->fd stays open.
 * Call rp_doc_hdr_fini after success or failure.
 */
RP_MUST_CHECK enum rp_err rp_doc_hdr_read(struct rp_doc_hdr *d,
					  struct rp_status *st,
					  const char *path, int extra_flags);

/*
 * rp_doc_hdr_load is rp_doc_hdr_read for a file the caller opened and
 * stat'ed already (d->fd and d->sb set, the rest of *d zero) and whose
 * first `len` bytes it may have read into `prefix` (the engine does both
 * through io_uring, for a batch of files at once). `prefix` is borrowed
 * until rp_doc_hdr_fini; the header is read further only if it does not
 * fit. d->fd stays open. Call rp_doc_hdr_fini after success or failure.
 */
RP_MUST_CHECK enum rp_err rp_doc_hdr_load(struct rp_doc_hdr *d,
					  struct rp_status *st,
					  uint8_t *prefix, size_t len);

/* RP_DOC_HDR_PREFIX: what a first read takes; most headers fit */
#define RP_DOC_HDR_PREFIX 4096

void rp_doc_hdr_fini(struct rp_doc_hdr *d);

/*
 * rp_doc_hdr_has_pad: 1 if the header's last stanza is a pad (FORMAT.md
 * 4a), which holds nothing: at least one argument and an empty body; else 0
 */
size_t rp_doc_hdr_has_pad(const struct rp_age_header *h);

/*
 * rp_doc_check runs every check of a document into `info` (see
 * struct rp_doc_info), unwrapping with worker `worker` when
 * out_file_key is not NULL. `sigs` (may be NULL): the worker's cache of
 * the last batch signature that verified. out_hdr_key (may be NULL): the
 * header key the MAC verified with, when it did (rp_age_header_key of the
 * file key: a rewrap that keeps the file key writes its header with it).
 */
void rp_doc_check(struct rp_store *s, size_t worker, struct rp_doc_hdr *d,
		  struct rp_doc_info *info, uint8_t *out_file_key,
		  int *has_file_key, struct rp_sig_cache *sigs,
		  uint8_t *out_hdr_key);

/*
 * rp_doc_stanza_key finds the store key (not destroyed) one of the
 * document's recipient stanzas is for, whatever its license says: an RSA
 * stanza by its tag, an X25519 stanza by opening it with each usable
 * X25519 key (a private-key operation each). *out_idx -1: none. *is_unsure
 * is set when it could not tell: an X25519 stanza and an X25519 key that
 * cannot be tried (revoked, retiring), or a keystore error.
 */
void rp_doc_stanza_key(struct rp_store *s, size_t worker,
		       const struct rp_doc_hdr *d, long *out_idx,
		       int *is_unsure);

/*
 * rp_doc_check_tail checks that the payload ends where its license says
 * (when not compressed) and in a final chunk that authenticates under
 * `file_key`: catches a payload cut or extended (not damage in its
 * middle chunks), reading only the last chunk. `s` is a stream to use
 * (about 128 KiB) and `buf` RP_STREAM_SEALED bytes for the ciphertext.
 */
RP_MUST_CHECK enum rp_err
rp_doc_check_tail(struct rp_doc_hdr *d, struct rp_status *st,
		  const struct rp_license *lic,
		  const uint8_t file_key[RP_AGE_FILE_KEY_LEN],
		  struct rp_stream *s, uint8_t *buf);

#endif
