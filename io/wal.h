#ifndef RP_IO_WAL_H
#define RP_IO_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The write-ahead journal of the in-place rewrite (docs/ENGINE.md, "In
 * place"). Before a batch's headers are overwritten, a record per
 * document is appended to the writer's journal file in the store
 * (STORE/wal/NAME.wal, 0600, locked while its run lives), made durable:
 * the document's path as the run reached it, its device, inode and size,
 * the 16 nonce bytes after its header, and its old and new header, all
 * under a checksum. Once the batch's headers are written (and synced),
 * the journal is truncated: what is in a journal is not yet committed.
 *
 * rp_wal_recover reads the journals a killed run left and gives every
 * document whose header is torn (neither the old nor the new one) its old
 * header back. The journal never holds plaintext or a file key: a header
 * holds the file key only wrapped.
 */

struct rp_wal;

/* one document of a batch */
struct rp_wal_doc {
	const char *path; /* as the run reached it; made absolute here */
	const struct stat *sb;
	const uint8_t *old_hdr, *new_hdr; /* hdr_len bytes each */
	size_t hdr_len;
	const uint8_t *nonce; /* the 16 bytes after the header */
};

/*
 * rp_wal_open creates a new journal file in STORE/wal (made 0700) and
 * holds its lock. `sync`: fdatasync each batch's records before
 * rp_wal_append returns (--durability batch and each).
 */
RP_MUST_CHECK enum rp_err rp_wal_open(struct rp_wal **out,
				      struct rp_status *st,
				      const char *store_dir, int sync);

/* rp_wal_append writes one batch's records (and syncs them) */
RP_MUST_CHECK enum rp_err rp_wal_append(struct rp_wal *w, struct rp_status *st,
					const struct rp_wal_doc *docs,
					size_t n);

/* rp_wal_commit: the batch's headers are written; its records go */
RP_MUST_CHECK enum rp_err rp_wal_commit(struct rp_wal *w, struct rp_status *st);

/* rp_wal_close removes the journal (empty after the last commit) */
void rp_wal_close(struct rp_wal *w);

struct rp_wal_recovery {
	uint64_t journals;   /* journal files read */
	uint64_t records;    /* documents in them */
	uint64_t as_old;     /* found with their old header */
	uint64_t as_new;     /* found with their new header */
	uint64_t restored;   /* torn: the old header written back */
	uint64_t left;	     /* gone or changed since: not ours to touch */
	uint64_t busy;	     /* locked by a run: its journal is kept */
	uint64_t failed;     /* could not be read or restored: kept */
};

/*
 * rp_wal_recover goes through every journal in STORE/wal that no live
 * run holds. A document is found by its path and proved to be the one
 * the record is about (device, inode, size, nonce, and each header byte
 * either the old or the new one's) before anything is written to it; a
 * torn header gets the old one back, synced. A journal all of whose
 * documents are settled is removed. `log` (may be NULL) gets a line per
 * document restored or left. RP_ERR_IO when a journal or a document
 * could not be dealt with (the journal is kept for another try).
 */
RP_MUST_CHECK enum rp_err rp_wal_recover(const char *store_dir,
					 struct rp_status *st,
					 struct rp_wal_recovery *out,
					 void (*log)(void *arg,
						     const char *line),
					 void *log_arg);

#ifdef __cplusplus
}
#endif
#endif
