#ifndef RP_ENGINE_DOC_H
#define RP_ENGINE_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "license.h"
#include "rp_compiler.h"
#include "rp_err.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One protected document at a time: protect, unprotect, inspect. These
 * are the single-file operations of the CLI; the bulk engine reuses the
 * same checks.
 */

struct rp_protect_opts {
	const char *owner;	 /* NULL: none */
	const char *template_id; /* NULL: none */
	int is_compress;	 /* zstd the plaintext first */
	int compress_level;	 /* 0: zstd's default */
	int is_force;		 /* replace an existing output file */
};

/*
 * rp_doc_protect protects `in_path` under the store's active key and
 * writes the document to `out_path` atomically (0600). Refuses an existing
 * output unless is_force. RP_ERR_STATE if there is no active key.
 */
RP_MUST_CHECK enum rp_err rp_doc_protect(struct rp_store *s,
					 struct rp_status *st,
					 const struct rp_protect_opts *o,
					 const char *in_path,
					 const char *out_path);

struct rp_unprotect_opts {
	int allow_unlicensed; /* open plain age files made to a store key */
	int is_force;	      /* replace an existing output file */
};

/*
 * rp_doc_unprotect checks the document (license, signature, bindings,
 * key state, header MAC) before it writes any plaintext, then decrypts to
 * `out_path` atomically (0600), or to standard output for "-" (releasing
 * only authenticated chunks). Nothing is left behind on failure.
 */
RP_MUST_CHECK enum rp_err rp_doc_unprotect(struct rp_store *s,
					   struct rp_status *st,
					   const struct rp_unprotect_opts *o,
					   const char *in_path,
					   const char *out_path);

/* What inspect found. Each check has its own status: RP_OK or why not. */
struct rp_doc_info {
	uint64_t file_size;
	uint64_t header_len;
	size_t num_stanzas;
	char recip_type[16]; /* "" if none */
	char recip_arg[64];
	int has_license;
	struct rp_license lic;
	long key_idx;	     /* index in the keyring, -1: not in the store */
	long signer_idx;     /* index of the signing key, -1: not found */
	struct rp_status license_st; /* license decodes */
	struct rp_status key_st;     /* key in the store and usable */
	struct rp_status stanza_st;  /* recipient stanza digest matches */
	struct rp_status nonce_st;   /* payload nonce matches */
	struct rp_status sig_st;     /* signature verifies */
	struct rp_status mac_st;     /* key unwraps and header MAC verifies */
	int is_tail_checked;	     /* the payload's end was looked at: */
	struct rp_status tail_st;    /* it ends in its authentic final chunk */
};

/*
 * rp_doc_inspect reads `path`'s header and fills `out`; where the key
 * unwraps and the header verifies, it also checks the payload's end
 * (is_tail_checked, tail_st), reading its last chunk. Returns
 * RP_ERR_FORMAT if the header does not parse; otherwise RP_OK with each
 * check's result in `out`. `s` may be NULL (no store: key checks fail).
 */
RP_MUST_CHECK enum rp_err rp_doc_inspect(struct rp_store *s,
					 struct rp_status *st,
					 const char *path,
					 struct rp_doc_info *out);

#ifdef __cplusplus
}
#endif
#endif
