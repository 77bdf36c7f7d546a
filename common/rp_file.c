#include "rp_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "rp_b64.h"
#include "rp_testhook.h"

enum rp_err rp_path_join(char *out, size_t out_cap, const char *a,
			 const char *b)
{
	const int n = snprintf(out, out_cap, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= out_cap) {
		return RP_ERR_USAGE;
	}
	return RP_OK;
}

enum rp_err rp_file_read(struct rp_buf *out, struct rp_status *st,
			 const char *path, size_t max)
{
	struct stat sb;
	enum rp_err err = RP_OK;
	const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		if (errno == ENOENT) {
			return rp_status_fail(st, RP_ERR_NOTFOUND,
					      "'%s' does not exist", path);
		}
		return rp_status_errno(st, errno, "cannot open", path);
	}
	if (fstat(fd, &sb) < 0) {
		err = rp_status_errno(st, errno, "cannot stat", path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "'%s' is not a regular file", path);
		goto out;
	}
	if ((uint64_t)sb.st_size > max) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "'%s' is larger than %zu bytes", path,
				     max);
		goto out;
	}
	for (;;) {
		ssize_t n;

		err = rp_buf_reserve(out, 4096);
		if (err) {
			rp_status_fail(st, err, "cannot read '%s': %s", path,
				       err == RP_ERR_NOMEM ? "out of memory"
							   : "too large");
			goto out;
		}
		n = read(fd, out->p + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			err = rp_status_errno(st, errno, "cannot read", path);
			goto out;
		}
		if (n == 0) {
			break;
		}
		out->len += (size_t)n;
		if (out->len > max) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "'%s' is larger than %zu bytes",
					     path, max);
			goto out;
		}
	}
out:
	close(fd);
	return err;
}

enum rp_err rp_fsync_dir(struct rp_status *st, const char *path)
{
	char dir[PATH_MAX];
	int fd;
	enum rp_err err = RP_OK;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		return rp_status_fail(st, RP_ERR_USAGE, "path too long");
	}
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return rp_status_errno(st, errno, "cannot open directory of",
				       path);
	}
	if (fsync(fd) < 0) {
		err = rp_status_errno(st, errno, "cannot fsync directory of",
				      path);
	}
	close(fd);
	return err;
}

enum rp_err rp_fd_write_all(int fd, struct rp_status *st, const char *path,
			    const uint8_t *data, size_t len)
{
	while (len) {
		const long fault = rp_test_fault("io:write");
		ssize_t n;

		if (fault == RP_TEST_FAULT_SHORT && len > 1) {
			n = write(fd, data, len / 2);
		} else if (fault > 0) {
			errno = (int)fault;
			n = -1;
		} else {
			n = write(fd, data, len);
		}

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return rp_status_errno(st, errno, "cannot write", path);
		}
		data += n;
		len -= (size_t)n;
	}
	return RP_OK;
}

enum rp_err rp_file_write_atomic(struct rp_status *st, const char *path,
				 const uint8_t *data, size_t len,
				 int is_exclusive)
{
	char tmp[PATH_MAX];
	uint8_t rnd[6];
	char rnd_hex[sizeof(rnd) * 2 + 1];
	int fd = -1;
	int n;
	enum rp_err err;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "random bytes");
	}
	rp_hex_encode(rnd_hex, rnd, sizeof(rnd));
	/* ".<name>.rp-tmp-<hex>" beside the target, as io/afile names them */
	{
		const char *slash = strrchr(path, '/');
		const int dir_len = slash ? (int)(slash - path + 1) : 0;

		n = snprintf(tmp, sizeof(tmp), "%.*s.%s.rp-tmp-%s", dir_len,
			     path, path + dir_len, rnd_hex);
	}
	if (n < 0 || n >= (int)sizeof(tmp)) {
		return rp_status_fail(st, RP_ERR_USAGE, "path too long: '%s'",
				      path);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		return rp_status_errno(st, errno, "cannot create", tmp);
	}
	err = rp_fd_write_all(fd, st, tmp, data, len);
	if (!err && fsync(fd) < 0) {
		err = rp_status_errno(st, errno, "cannot fsync", tmp);
	}
	if (close(fd) < 0 && !err) {
		err = rp_status_errno(st, errno, "cannot close", tmp);
	}
	if (err) {
		goto out;
	}
#ifdef RP_TEST_HOOKS
	{
		char point[300];
		const char *base = strrchr(path, '/');
		const int m = snprintf(point, sizeof(point),
				       "atomic-write:before-rename:%s",
				       base ? base + 1 : path);

		/* a truncated name must not match another file's point */
		if (m >= 0 && (size_t)m < sizeof(point)) {
			rp_test_crash_point(point);
		}
	}
#endif
	if (is_exclusive) {
		if (link(tmp, path) < 0) {
			err = errno == EEXIST
				      ? rp_status_fail(st, RP_ERR_EXISTS,
						       "'%s' already exists",
						       path)
				      : rp_status_errno(st, errno,
							"cannot create", path);
			goto out;
		}
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		err = rp_status_errno(st, errno, "cannot replace", path);
		goto out;
	}
	err = rp_fsync_dir(st, path);
out:
	if (err) {
		unlink(tmp);
	}
	return err;
}
