#ifndef RP_ENGINE_DOC_INTERNAL_H
#define RP_ENGINE_DOC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "age_header.h"
#include "doc.h"

/* Shared by doc.c and the bulk engine only. */

/* A document's header, read and parsed. */
struct rp_doc_hdr {
	int fd;
	struct stat sb;
	uint8_t *buf; /* owned: the first bytes of the file */
	size_t buf_len;
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

void rp_doc_hdr_fini(struct rp_doc_hdr *d);

/*
 * rp_doc_check runs every check of a document into `info` (see
 * struct rp_doc_info), unwrapping with worker `worker` when
 * out_file_key is not NULL.
 */
void rp_doc_check(struct rp_store *s, size_t worker, struct rp_doc_hdr *d,
		  struct rp_doc_info *info, uint8_t *out_file_key,
		  int *has_file_key);

#endif
