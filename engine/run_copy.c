/*
 * run_copy.c: the copying writer: a new file beside the document (header,
 * payload, metadata), then the batch's fsyncs, renames and folder fsyncs.
 */
#include "run_internal.h"

struct reenc_sink {
	struct writer *w;
	struct job *j;
	struct rp_status *st;
	struct rp_zcodec *z; /* a zstd document: its content, decompressed */
	uint64_t plain;	     /* the plaintext bytes it holds */
};

static enum rp_err reenc_write(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;

	return rp_afile_write(&k->j->af, k->st, p, len);
}

static enum rp_err count_plain(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;

	(void)p;
	k->plain += len;
	return RP_OK;
}

/*
 * reenc_seal seals the content under the new key, and counts what it
 * holds: the plaintext its license signs the size of (for a compressed
 * document, what it decompresses to, bounded by that size)
 */
static enum rp_err reenc_seal(void *arg, const uint8_t *p, size_t len)
{
	struct reenc_sink *k = arg;
	enum rp_err err =
		k->z ? rp_zcodec_feed(k->z, k->st, p, len, count_plain, k)
		     : count_plain(k, p, len);

	return err ? err
		   : rp_stream_feed(k->w->seal_s, k->st, p, len, reenc_write,
				    k);
}

enum rp_err run_copy_payload(struct writer *w, struct job *j,
			     struct rp_status *st)
{
	off_t in_off = (off_t)(j->d.hdr.header_len + RP_AGE_NONCE_LEN);
	const off_t end = j->d.sb.st_size;
	struct reenc_sink k = { w, j, st, NULL, 0 };
	struct rp_zcodec z = { 0 };
	enum rp_err err = RP_OK;

	if (w->r->o->mode == RP_RUN_REENCRYPT) {
		if (j->lic.encoding == RP_ENC_ZSTD) {
			err = rp_zcodec_init_decompress(&z, st,
							j->lic.plaintext_size);
			k.z = &z;
		}
		if (!err) {
			err = rp_stream_init(w->open_s, st, RP_STREAM_OPEN,
					     j->old_file_key, j->d.nonce);
		}
		if (!err) {
			err = rp_stream_init(w->seal_s, st, RP_STREAM_SEAL,
					     j->file_key, j->nonce);
		}
		while (!err && in_off < end) {
			size_t n = 0;

			err = rp_read_full(j->d.fd, st, NULL, w->buf, COPY_BUF,
					   in_off, &n);
			if (!err && n == 0) {
				break;
			}
			in_off += (off_t)n;
			if (!err) {
				err = rp_stream_feed(w->open_s, st, w->buf, n,
						     reenc_seal, &k);
			}
		}
		if (!err) {
			err = rp_stream_finish(w->open_s, st, reenc_seal, &k);
		}
		if (!err && k.z) {
			err = rp_zcodec_finish(k.z, st, count_plain, &k);
		}
		/* the license signs the plaintext's size: it must hold */
		if (!err && k.plain != j->lic.plaintext_size) {
			err = rp_status_fail(
				st, RP_ERR_FORMAT,
				"the content is %llu bytes but "
				"its license gives %llu",
				(unsigned long long)k.plain,
				(unsigned long long)j->lic.plaintext_size);
		}
		if (!err) {
			err = rp_stream_finish(w->seal_s, st, reenc_write, &k);
		}
		rp_stream_fini(w->open_s);
		rp_stream_fini(w->seal_s);
		rp_zcodec_fini(&z);
		OPENSSL_cleanse(w->buf, COPY_BUF);
		return err;
	}
	/* rewrap: the payload bytes move unchanged, in the kernel if it can */
	while (in_off < end) {
		const long fault = rp_test_fault("io:copy");
		ssize_t n;

		if (fault > 0) {
			errno = (int)fault;
			n = -1;
		} else {
			n = copy_file_range(
				j->d.fd, &in_off, j->af.fd, NULL,
				fault == RP_TEST_FAULT_SHORT
					? (size_t)(end - in_off + 1) / 2
					: (size_t)(end - in_off),
				0);
		}

		if (n > 0) {
			j->af.written += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			break;
		}
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP) {
			return rp_status_errno(st, errno, "cannot copy", NULL);
		}
		while (!err && in_off < end) {
			size_t got = 0;

			err = rp_read_full(j->d.fd, st, NULL, w->buf, COPY_BUF,
					   in_off, &got);
			if (!err && got == 0) {
				break;
			}
			in_off += (off_t)got;
			if (!err) {
				err = rp_afile_write(&j->af, st, w->buf, got);
			}
		}
		break;
	}
	if (!err && in_off != end) {
		err = rp_status_fail(st, RP_ERR_IO, "short copy");
	}
	return err;
}

/*
 * cannot_keep leaves the document as it is: its rewrite would lose what
 * the reason names (skipped-cannot-keep)
 */
enum rp_err run_cannot_keep(struct job *j, struct rp_status *st,
			    const char *fmt, ...) RP_PRINTF(3, 4);

enum rp_err run_cannot_keep(struct job *j, struct rp_status *st,
			    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(j->reason, sizeof(j->reason), fmt, ap) < 0) {
		j->reason[0] = '\0';
	}
	va_end(ap);
	j->out = RP_OUT_SKIP_CANNOT_KEEP;
	return rp_status_fail(st, RP_ERR_STATE, "%s", j->reason);
}

/*
 * keep_xattrs gives the new file the document's extended attributes (POSIX
 * ACLs among them) and nothing else (not what a folder's default ACL
 * gave it)
 */
static enum rp_err keep_xattrs(struct writer *w, struct job *j,
			       struct rp_status *st)
{
	char *names = (char *)w->buf;
	uint8_t *val = w->buf + XATTR_LIST;
	ssize_t n;

	n = flistxattr(j->af.fd, names, XATTR_LIST);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		if (fgetxattr(j->d.fd, names + i, NULL, 0) >= 0 ||
		    errno != ENODATA) {
			continue;
		}
		if (fremovexattr(j->af.fd, names + i) < 0) {
			return run_cannot_keep(
				j, st,
				"cannot drop the extended attribute "
				"'%s' the new file was given: %s",
				names + i, strerror(errno));
		}
	}
	n = flistxattr(j->d.fd, names, XATTR_LIST);
	if (n < 0) {
		if (errno == ENOTSUP) {
			return RP_OK;
		}
		return errno == ERANGE
			       ? run_cannot_keep(
					 j, st,
					 "cannot keep its extended "
					 "attributes: more than %d bytes "
					 "of names",
					 XATTR_LIST)
			       : rp_status_errno(st, errno,
						 "cannot list the extended "
						 "attributes of",
						 j->path);
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		const ssize_t m = fgetxattr(j->d.fd, names + i, val,
					    COPY_BUF - XATTR_LIST);

		if (m < 0 && errno == ENODATA) {
			continue; /* removed since it was listed */
		}
		if (m < 0) {
			return run_cannot_keep(
				j, st,
				"cannot keep the extended attribute "
				"'%s': cannot read it: %s",
				names + i, strerror(errno));
		}
		if (fsetxattr(j->af.fd, names + i, val, (size_t)m, 0) < 0) {
			return run_cannot_keep(
				j, st,
				"cannot keep the extended attribute "
				"'%s': %s",
				names + i, strerror(errno));
		}
	}
	return RP_OK;
}

/*
 * keep_meta gives the new file the document's owner, group, mode (set-id
 * bits included), extended attributes and times, in the order that keeps
 * each (chown clears the set-id bits, so chmod comes after it; an ACL sets
 * the group bits, so it comes after chmod), then checks it got them.
 */
enum rp_err run_keep_meta(struct writer *w, struct job *j, struct rp_status *st)
{
	const struct stat *sb = &j->d.sb;
	const struct timespec times[2] = { sb->st_atim, sb->st_mtim };
	struct stat now;
	enum rp_err err;

	if (fchown(j->af.fd, sb->st_uid, sb->st_gid) < 0) {
		return errno == EPERM
			       ? run_cannot_keep(
					 j, st,
					 "cannot keep its owner (uid %u, "
					 "gid %u): %s",
					 (unsigned)sb->st_uid,
					 (unsigned)sb->st_gid, strerror(errno))
			       : rp_status_errno(st, errno,
						 "cannot keep the owner of",
						 j->path);
	}
	if (fchmod(j->af.fd, sb->st_mode & 07777) < 0) {
		return rp_status_errno(st, errno, "cannot keep the mode of",
				       j->path);
	}
	err = keep_xattrs(w, j, st);
	if (err) {
		return err;
	}
	if (futimens(j->af.fd, times) < 0) {
		return rp_status_errno(st, errno, "cannot keep the times of",
				       j->path);
	}
	if (fstat(j->af.fd, &now) < 0) {
		return rp_status_errno(st, errno, "cannot stat the new file of",
				       j->path);
	}
	if ((now.st_mode & 07777) != (sb->st_mode & 07777)) {
		return run_cannot_keep(
			j, st,
			"cannot keep its mode %04o (the new file "
			"got %04o)",
			(unsigned)(sb->st_mode & 07777),
			(unsigned)(now.st_mode & 07777));
	}
	if (now.st_uid != sb->st_uid || now.st_gid != sb->st_gid) {
		return run_cannot_keep(
			j, st, "cannot keep its owner (uid %u, gid %u)",
			(unsigned)sb->st_uid, (unsigned)sb->st_gid);
	}
	return RP_OK;
}

/* copy_whole: --out for a document already current, byte for byte */
enum rp_err run_copy_whole(struct writer *w, struct job *j,
			   struct rp_status *st)
{
	off_t in_off = 0;
	enum rp_err err = RP_OK;

	while (!err && in_off < j->d.sb.st_size) {
		size_t got = 0;

		err = rp_read_full(j->d.fd, st, NULL, w->buf, COPY_BUF, in_off,
				   &got);
		if (!err && !got) {
			break;
		}
		in_off += (off_t)got;
		if (!err) {
			err = rp_afile_write(&j->af, st, w->buf, got);
		}
	}
	if (!err && in_off != j->d.sb.st_size) {
		err = rp_status_fail(st, RP_ERR_IO, "short copy");
	}
	return err;
}

/* new_file: the temporary file beside the target, through its folder */
enum rp_err run_new_file(struct writer *w, struct job *j, struct rp_status *st)
{
	enum rp_err err;

	if (j->out_path[0]) {
		err = j->odir ? RP_OK : run_out_folder(w->r, &w->oc, j, st);
		if (!err) {
			err = rp_afile_openat(&j->af, st, j->odir->fd, j->oname,
					      j->out_path, 1);
		}
	} else {
		err = rp_afile_openat(&j->af, st, j->dir->fd, j->name, j->path,
				      0);
	}
	/*
	 * locked until it is renamed in, so that another run never takes it
	 * for a leftover of a killed one: the lock lives on a second
	 * descriptor, as the first is closed (its errors checked) before the
	 * rename
	 */
	if (!err && flock(j->af.fd, LOCK_EX | LOCK_NB) == 0) {
		j->tmp_lock = fcntl(j->af.fd, F_DUPFD_CLOEXEC, 0);
	}
	return err;
}

/* rename_failed fails the job; a read-only or full disk stops the run */
static void rename_failed(struct run *r, struct job *j, int e)
{
	run_job_fail(j, RP_OUT_FAIL_IO, "cannot rename: %s", strerror(e));
	if (run_is_fatal_errno(e)) {
		run_halt(r, j->reason);
	}
}

/* fault_rename: a test build's injected rename failure fails the job */
static int fault_rename(struct run *r, struct job *j)
{
	const long fault = rp_test_fault("io:rename");

	if (fault <= 0) {
		return 0;
	}
	rename_failed(r, j, (int)fault);
	return 1;
}

/*
 * dir_synced takes the result of a folder's fsync: a folder that did not
 * reach the disk holds renames a power cut may undo, and a disk that
 * fails there will fail the next batch too, so the run stops
 */
static void dir_synced(struct writer *w, const char *doc, int e)
{
	char why[320];
	const long fault = rp_test_fault("io:dirsync");

	if (fault > 0) {
		e = (int)fault;
	}
	if (!e) {
		return;
	}
	snprintf(why, sizeof(why),
		 "cannot fsync the folder of '%s': %s (its documents are "
		 "replaced, but a power cut may undo it)",
		 doc, strerror(e));
	run_halt(w->r, why);
}

/* sync_files: 1. every temporary file of the batch reaches the disk */
void run_sync_files(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	const size_t n = w->n;

	if (use_ring) {
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			res[i] = 0;
			if (w->batch[i]->af.fd >= 0) {
				io_uring_prep_fsync(run_ring_sqe(&w->ring, i),
						    w->batch[i]->af.fd, 0);
				rp_test_trace("fsync", w->batch[i]->af.tmp);
				k++;
			}
		}
		if (rp_ring_wait(&w->ring, &rst, k, res)) {
			run_ring_failed(w->r, &rst);
			for (size_t i = 0; i < n; i++) {
				res[i] = -EIO;
			}
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			res[i] = w->batch[i]->af.fd < 0 ||
						 fsync(w->batch[i]->af.fd) == 0
					 ? 0
					 : -errno;
			if (w->batch[i]->af.fd >= 0) {
				rp_test_trace("fsync", w->batch[i]->af.tmp);
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];
		const long fault =
			j->af.fd >= 0 ? rp_test_fault("io:fsync") : 0;

		if (fault > 0) {
			res[i] = -(int)fault;
		}
		if (res[i] < 0 && j->out == RP_OUT_MOVED) {
			run_job_fail(j, RP_OUT_FAIL_IO, "cannot fsync: %s",
				     strerror(-res[i]));
			if (run_is_fatal_errno(-res[i])) {
				run_halt(w->r, j->reason);
			}
		}
	}
}

/* close_files: 2. every temporary file closed (a close may report EIO) */
void run_close_files(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	const size_t n = w->n;
	size_t k = 0;
	int is_ring_ok = 1;

	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		res[i] = 0;
		if (j->af.fd < 0) {
			continue;
		}
		if (use_ring) {
			io_uring_prep_close(run_ring_sqe(&w->ring, i),
					    j->af.fd);
			k++;
		} else {
			res[i] = close(j->af.fd) < 0 ? -errno : 0;
		}
	}
	if (k && rp_ring_wait(&w->ring, &rst, k, res)) {
		run_ring_failed(w->r, &rst);
		is_ring_ok = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->af.fd < 0) {
			continue;
		}
		j->af.fd = -1; /* closed, or unknown: never closed twice */
		if (!is_ring_ok) {
			res[i] = -EIO;
		}
		if (rp_test_fault("io:close") > 0) {
			res[i] = -EIO;
		}
		if (res[i] < 0 && j->out == RP_OUT_MOVED) {
			run_job_fail(j, RP_OUT_FAIL_IO, "cannot close: %s",
				     strerror(-res[i]));
		}
	}
}

/* link_out: --out never replaces a file that is there */
static void link_out(struct job *j)
{
	if (linkat(j->odir->fd, j->af.tmp, j->odir->fd, j->oname, 0) < 0) {
		run_job_fail(j, RP_OUT_FAIL_IO, "cannot create the output: %s",
			     strerror(errno));
		return;
	}
	(void)unlinkat(j->odir->fd, j->af.tmp, 0);
	j->af.is_committed = 1;
	if (j->is_copy) {
		j->out = RP_OUT_CURRENT;
	}
}

/* rename_all: 3. each new document renamed over its source */
void run_rename_all(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	struct run *r = w->r;
	const size_t n = w->n;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		res[i] = 1; /* not submitted */
		if (j->out != RP_OUT_MOVED) {
			continue;
		}
		if (j->out_path[0]) {
			link_out(j);
			continue;
		}
		if (j->wfd >= 0) {
			continue; /* in place: written already */
		}
		if (fault_rename(r, j)) {
			continue;
		}
		rp_test_trace("rename", j->af.tmp);
		if (use_ring) {
			io_uring_prep_renameat(run_ring_sqe(&w->ring, i),
					       j->dir->fd, j->af.tmp,
					       j->dir->fd, j->name, 0);
			k++;
			continue;
		}
		/* atomic: the name now holds the new document */
		if (renameat(j->dir->fd, j->af.tmp, j->dir->fd, j->name) < 0) {
			rename_failed(r, j, errno);
		} else {
			j->af.is_committed = 1;
		}
		rp_test_crash_point("run:renamed-one");
	}
	if (!k) {
		return;
	}
	if (rp_ring_wait(&w->ring, &rst, k, res)) {
		/* they may have been done: the files say; the next run sees */
		run_ring_failed(r, &rst);
		for (size_t i = 0; i < n; i++) {
			if (res[i] != 1) {
				run_job_fail(w->batch[i], RP_OUT_FAIL_IO,
					     "not known if renamed: io_uring "
					     "failed");
			}
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = w->batch[i];

		if (j->out != RP_OUT_MOVED || j->out_path[0] || res[i] == 1) {
			continue;
		}
		if (res[i] < 0) {
			rename_failed(r, j, -res[i]);
		} else {
			j->af.is_committed = 1;
		}
	}
}

/* sync_dirs: 4. the renames reach the disk: each folder once */
void run_sync_dirs(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	size_t num_dirs = 0, k = 0;

	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];
		struct folder *f = j->out_path[0] ? j->odir : j->dir;
		size_t d = 0;

		if (!j->af.is_committed) {
			continue;
		}
		while (d < num_dirs && w->dirs[d] != f) {
			d++;
		}
		if (d == num_dirs) {
			w->dirs[num_dirs] = f;
			w->dir_names[num_dirs++] =
				j->out_path[0] ? j->out_path : j->path;
		}
	}
	for (size_t d = 0; d < num_dirs; d++) {
		rp_test_trace("fsync-dir", w->dir_names[d]);
		if (use_ring) {
			io_uring_prep_fsync(run_ring_sqe(&w->ring, d),
					    w->dirs[d]->fd, 0);
			k++;
		} else {
			res[d] = fsync(w->dirs[d]->fd) < 0 ? -errno : 0;
		}
	}
	if (k && rp_ring_wait(&w->ring, &rst, k, res)) {
		run_ring_failed(w->r, &rst);
		for (size_t d = 0; d < num_dirs; d++) {
			res[d] = -EIO;
		}
	}
	for (size_t d = 0; d < num_dirs; d++) {
		dir_synced(w, w->dir_names[d], res[d] < 0 ? -res[d] : 0);
	}
}
