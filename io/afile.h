#ifndef RP_IO_AFILE_H
#define RP_IO_AFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct rp_afile writes a file atomically: a temporary file created 0600
 * beside the target (".<name>.rp-tmp-<random>"), written, fsynced, then
 * renamed over the target and the directory fsynced. Until commit the
 * target is untouched; abort (or fini without commit) removes the
 * temporary file.
 */
struct rp_afile {
	int fd;
	int is_committed;
	int is_exclusive; /* commit fails if the target exists */
	int dir_fd;	  /* borrowed: tmp and target are in it; or AT_FDCWD */
	char path[4096];  /* the target, for messages */
	char target[4096]; /* the target, relative to dir_fd */
	char tmp[4096];	   /* the temporary file, relative to dir_fd */
	uint64_t written;
};

#define RP_AFILE_TMP_TAG ".rp-tmp-"

/*
 * rp_afile_open starts writing `path`. With `is_exclusive`, commit refuses
 * to replace an existing file (RP_ERR_EXISTS).
 */
RP_MUST_CHECK enum rp_err rp_afile_open(struct rp_afile *af,
					struct rp_status *st, const char *path,
					int is_exclusive);

/*
 * rp_afile_openat starts writing `name` in the open folder `dir_fd` (which
 * must stay open until fini): the temporary file is created there, the
 * commit renames (or links) it there and fsyncs that folder, and no path
 * string is resolved again. `display` names the target in messages.
 */
RP_MUST_CHECK enum rp_err rp_afile_openat(struct rp_afile *af,
					  struct rp_status *st, int dir_fd,
					  const char *name, const char *display,
					  int is_exclusive);

/* rp_afile_write appends `len` bytes. */
RP_MUST_CHECK enum rp_err rp_afile_write(struct rp_afile *af,
					 struct rp_status *st,
					 const uint8_t *p, size_t len);

/* rp_afile_commit fsyncs, renames over the target and fsyncs the folder. */
RP_MUST_CHECK enum rp_err rp_afile_commit(struct rp_afile *af,
					  struct rp_status *st);

/* rp_afile_fini removes the temporary file unless committed. */
void rp_afile_fini(struct rp_afile *af);

/*
 * rp_read_full reads up to `len` bytes at `off`, retrying short reads;
 * stores the count in out_n (less than len only at end of file).
 */
RP_MUST_CHECK enum rp_err rp_read_full(int fd, struct rp_status *st,
				       const char *path, uint8_t *p,
				       size_t len, off_t off, size_t *out_n);

/* rp_write_full writes all of `p` to `fd`, retrying short writes. */
RP_MUST_CHECK enum rp_err rp_write_full(int fd, struct rp_status *st,
					const char *what, const uint8_t *p,
					size_t len);

#ifdef __cplusplus
}
#endif
#endif
