#include "afile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "rp_b64.h"
#include "rp_file.h"
#include "rp_testhook.h"

/* afile_create makes af->tmp, ".<name>.rp-tmp-<hex>" in af->dir_fd */
static enum rp_err afile_create(struct rp_afile *af, struct rp_status *st,
				const char *dir, const char *name)
{
	uint8_t rnd[6];
	char hex[sizeof(rnd) * 2 + 1];
	long fault;
	int n;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "random");
	}
	rp_hex_encode(hex, rnd, sizeof(rnd));
	n = snprintf(af->tmp, sizeof(af->tmp), "%s%s.%s%s%s", dir,
		     dir[0] ? "/" : "", name, RP_AFILE_TMP_TAG, hex);
	if (n < 0 || (size_t)n >= sizeof(af->tmp)) {
		af->tmp[0] = '\0';
		return rp_status_fail(st, RP_ERR_USAGE, "path too long: '%s'",
				      af->path);
	}
	af->fd = openat(af->dir_fd, af->tmp,
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			0600);
	fault = rp_test_fault("io:create");
	if (fault > 0 && af->fd >= 0) {
		close(af->fd);
		unlinkat(af->dir_fd, af->tmp, 0);
		af->fd = -1;
		errno = (int)fault;
	}
	if (af->fd < 0) {
		af->tmp[0] = '\0';
		return rp_status_errno(st, errno, "cannot create a file beside",
				       af->path);
	}
	return RP_OK;
}

enum rp_err rp_afile_open(struct rp_afile *af, struct rp_status *st,
			  const char *path, int is_exclusive)
{
	char dir[4096], base[4096];

	memset(af, 0, sizeof(*af));
	af->fd = -1;
	af->dir_fd = AT_FDCWD;
	af->is_exclusive = is_exclusive;
	if (snprintf(af->path, sizeof(af->path), "%s", path) >=
		    (int)sizeof(af->path) ||
	    snprintf(af->target, sizeof(af->target), "%s", path) >=
		    (int)sizeof(af->target) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ||
	    snprintf(base, sizeof(base), "%s", path) >= (int)sizeof(base)) {
		return rp_status_fail(st, RP_ERR_USAGE, "path too long: '%s'",
				      path);
	}
	return afile_create(af, st, dirname(dir), basename(base));
}

enum rp_err rp_afile_openat(struct rp_afile *af, struct rp_status *st,
			    int dir_fd, const char *name, const char *display,
			    int is_exclusive)
{
	memset(af, 0, sizeof(*af));
	af->fd = -1;
	af->dir_fd = dir_fd;
	af->is_exclusive = is_exclusive;
	if (snprintf(af->path, sizeof(af->path), "%s", display) >=
		    (int)sizeof(af->path) ||
	    snprintf(af->target, sizeof(af->target), "%s", name) >=
		    (int)sizeof(af->target) ||
	    strchr(name, '/')) {
		return rp_status_fail(st, RP_ERR_USAGE, "bad name: '%s'",
				      display);
	}
	return afile_create(af, st, "", name);
}

enum rp_err rp_write_full(int fd, struct rp_status *st, const char *what,
			  const uint8_t *p, size_t len)
{
	return rp_fd_write_all(fd, st, what, p, len);
}

enum rp_err rp_afile_write(struct rp_afile *af, struct rp_status *st,
			   const uint8_t *p, size_t len)
{
	const enum rp_err err = rp_write_full(af->fd, st, af->path, p, len);

	if (!err) {
		af->written += len;
	}
	return err;
}

enum rp_err rp_afile_commit(struct rp_afile *af, struct rp_status *st)
{
	if (fsync(af->fd) < 0) {
		return rp_status_errno(st, errno, "cannot fsync", af->path);
	}
	if (close(af->fd) < 0) {
		af->fd = -1;
		return rp_status_errno(st, errno, "cannot close", af->path);
	}
	af->fd = -1;
	if (af->is_exclusive) {
		if (linkat(af->dir_fd, af->tmp, af->dir_fd, af->target, 0) <
		    0) {
			if (errno == EEXIST) {
				return rp_status_fail(st, RP_ERR_EXISTS,
						      "'%s' already exists",
						      af->path);
			}
			return rp_status_errno(st, errno, "cannot create",
					       af->path);
		}
		unlinkat(af->dir_fd, af->tmp, 0);
	} else if (renameat(af->dir_fd, af->tmp, af->dir_fd, af->target) < 0) {
		return rp_status_errno(st, errno, "cannot replace", af->path);
	}
	af->is_committed = 1;
	if (af->dir_fd != AT_FDCWD) {
		return fsync(af->dir_fd) < 0 ? rp_status_errno(st, errno,
							       "cannot fsync "
							       "the folder of",
							       af->path)
					     : RP_OK;
	}
	return rp_fsync_dir(st, af->path);
}

void rp_afile_fini(struct rp_afile *af)
{
	if (af->fd >= 0) {
		close(af->fd);
		af->fd = -1;
	}
	if (!af->is_committed && af->tmp[0]) {
		unlinkat(af->dir_fd, af->tmp, 0);
	}
	af->tmp[0] = '\0';
}

enum rp_err rp_read_full(int fd, struct rp_status *st, const char *path,
			 uint8_t *p, size_t len, off_t off, size_t *out_n)
{
	size_t done = 0;

	while (done < len) {
		const long fault = rp_test_fault("io:read");
		ssize_t n;

		if (fault == RP_TEST_FAULT_SHORT && len - done > 1) {
			n = pread(fd, p + done, (len - done) / 2,
				  off + (off_t)done);
		} else if (fault > 0) {
			errno = (int)fault;
			n = -1;
		} else {
			n = pread(fd, p + done, len - done, off + (off_t)done);
		}

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return rp_status_errno(st, errno, "cannot read", path);
		}
		if (n == 0) {
			break;
		}
		done += (size_t)n;
	}
	*out_n = done;
	return RP_OK;
}
