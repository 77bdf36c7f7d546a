#ifndef RP_COMMON_RP_FILE_H
#define RP_COMMON_RP_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Small whole-file helpers for the store's own files (keyring, key files,
 * world key). Documents go through io/ instead.
 */

/*
 * rp_file_read reads all of `path` into `out` (appending), refusing files
 * larger than `max` bytes with RP_ERR_FORMAT, and anything but a regular
 * file (a FIFO does not block it). RP_ERR_NOTFOUND if it does not exist.
 */
RP_MUST_CHECK enum rp_err rp_file_read(struct rp_buf *out, struct rp_status *st,
				       const char *path, size_t max);

/*
 * rp_file_write_atomic replaces `path` with `data`: a temporary file in
 * the same directory, created 0600, written, fsynced, renamed over `path`,
 * then the directory fsynced. With `is_exclusive`, fails with
 * RP_ERR_EXISTS if `path` already exists (link instead of rename).
 */
RP_MUST_CHECK enum rp_err rp_file_write_atomic(struct rp_status *st,
					       const char *path,
					       const uint8_t *data, size_t len,
					       int is_exclusive);

/*
 * rp_fd_write_all writes all of `data` to `fd`, retrying short writes and
 * EINTR; `path` names the file in the error message (may be NULL).
 */
RP_MUST_CHECK enum rp_err rp_fd_write_all(int fd, struct rp_status *st,
					  const char *path, const uint8_t *data,
					  size_t len);

/* rp_fsync_dir fsyncs the directory that holds `path`. */
RP_MUST_CHECK enum rp_err rp_fsync_dir(struct rp_status *st, const char *path);

/*
 * rp_path_join writes "<a>/<b>" to `out`. RP_ERR_USAGE if it does not fit.
 */
RP_MUST_CHECK enum rp_err rp_path_join(char *out, size_t out_cap, const char *a,
				       const char *b);

#ifdef __cplusplus
}
#endif
#endif
