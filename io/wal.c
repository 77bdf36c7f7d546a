/*
 * wal.c: the write-ahead journal of the in-place rewrite, and recovery
 * from it (wal.h). One journal file per writer thread of a run.
 *
 * A record, integers big-endian:
 *
 *     "RPW1" | u32 record length (all of it, checksum included)
 *     | u64 device | u64 inode | u64 size | u16 path length | path
 *     | u32 header length | old header | new header | 16 nonce bytes
 *     | u64 XXH64 (seed 0) of every byte before it
 *
 * A record that is cut short or whose checksum fails ends the journal:
 * the run appends a batch's records in one write before it touches any
 * document, so a record it was writing when killed belongs to a batch
 * none of whose headers was written.
 */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <xxhash.h>

#include "afile.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "rp_testhook.h"

#define WAL_MAGIC      "RPW1"
#define WAL_DIR	       "wal"
#define WAL_MAX_HDR    (256 * 1024)
#define WAL_MAX_FILE   (256u * 1024 * 1024)
#define WAL_NONCE_LEN  16
#define WAL_FIXED      (4 + 4 + 8 + 8 + 8 + 2 + 4 + WAL_NONCE_LEN + 8)

struct rp_wal {
	int fd;
	int dir_fd;
	int sync;
	char name[64];
	char cwd[PATH_MAX];
	struct rp_buf buf;
};

static enum rp_err open_dir(int *out, struct rp_status *st,
			    const char *store_dir, int create)
{
	char path[PATH_MAX];

	if (rp_path_join(path, sizeof(path), store_dir, WAL_DIR)) {
		return rp_status_fail(st, RP_ERR_USAGE, "store path too long");
	}
	if (create && mkdir(path, 0700) == 0) {
		/* a new folder's name reaches the disk before any journal */
		const int sfd = open(store_dir,
				     O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (sfd < 0 || fsync(sfd) < 0) {
			const int e = errno;

			if (sfd >= 0) {
				close(sfd);
			}
			return rp_status_errno(st, e, "cannot fsync", store_dir);
		}
		close(sfd);
	} else if (create && errno != EEXIST) {
		return rp_status_errno(st, errno, "cannot create", path);
	}
	*out = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*out < 0) {
		return rp_status_errno(st, errno, "cannot open", path);
	}
	return RP_OK;
}

/* a journal being made: NAME.wal.new until it is locked (rp_wal_open) */
#define WAL_NEW ".new"

/*
 * drop_unborn removes a NAME.wal.new that no live run holds and that is
 * a minute old: a run killed between making its journal and naming it,
 * before it wrote anything (a live run names it within microseconds)
 */
static void drop_unborn(int dir_fd, const char *name)
{
	const int fd = openat(dir_fd, name,
			      O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat sb;

	if (fd < 0) {
		return;
	}
	if (!fstat(fd, &sb) && sb.st_mtime + 60 < time(NULL) &&
	    !flock(fd, LOCK_EX | LOCK_NB)) {
		(void)unlinkat(dir_fd, name, 0);
	}
	close(fd);
}

enum rp_err rp_wal_open(struct rp_wal **out, struct rp_status *st,
			const char *store_dir, int sync)
{
	struct rp_wal *w = calloc(1, sizeof(*w));
	char tmp[sizeof(w->name) + sizeof(WAL_NEW)];
	uint8_t rnd[8];
	enum rp_err err;

	*out = NULL;
	if (!w) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	w->fd = -1;
	w->sync = sync;
	if (!getcwd(w->cwd, sizeof(w->cwd))) {
		w->cwd[0] = '\0'; /* relative paths cannot be recorded */
	}
	err = open_dir(&w->dir_fd, st, store_dir, 1);
	if (err) {
		free(w);
		return err;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		close(w->dir_fd);
		free(w);
		return rp_status_fail(st, RP_ERR_CRYPTO, "random");
	}
	snprintf(w->name, sizeof(w->name),
		 "run-%ld-%02x%02x%02x%02x%02x%02x%02x%02x.wal",
		 (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
		 rnd[6], rnd[7]);
	/*
	 * made as NAME.new, which recovery does not take, locked, then
	 * renamed: a recovery starting beside this run never sees the
	 * journal unlocked (it would take a live run's journal for a killed
	 * one's and delete it)
	 */
	snprintf(tmp, sizeof(tmp), "%s%s", w->name, WAL_NEW);
	w->fd = openat(w->dir_fd, tmp,
		       O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW |
			       O_CLOEXEC,
		       0600);
	if (w->fd < 0 || flock(w->fd, LOCK_EX | LOCK_NB) < 0 ||
	    renameat(w->dir_fd, tmp, w->dir_fd, w->name) < 0 ||
	    (sync && fsync(w->dir_fd) < 0)) {
		err = rp_status_errno(st, errno, "cannot create the journal",
				      w->name);
		if (w->fd >= 0) {
			(void)unlinkat(w->dir_fd, tmp, 0);
		}
		rp_wal_close(w);
		return err;
	}
	*out = w;
	return RP_OK;
}

static enum rp_err add_record(struct rp_wal *w, const struct rp_wal_doc *d)
{
	char abs[PATH_MAX];
	const char *path = d->path;
	const size_t start = w->buf.len;
	size_t plen, len;
	enum rp_err err;

	if (path[0] != '/') {
		if (!w->cwd[0] ||
		    rp_path_join(abs, sizeof(abs), w->cwd, path)) {
			return RP_ERR_USAGE;
		}
		path = abs;
	}
	plen = strlen(path);
	if (plen > UINT16_MAX || d->hdr_len > WAL_MAX_HDR) {
		return RP_ERR_USAGE;
	}
	len = WAL_FIXED + plen + 2 * d->hdr_len;
	err = rp_buf_add(&w->buf, WAL_MAGIC, 4);
	if (!err) {
		err = rp_buf_add_u32be(&w->buf, (uint32_t)len);
	}
	if (!err) {
		err = rp_buf_add_u64be(&w->buf, (uint64_t)d->sb->st_dev);
	}
	if (!err) {
		err = rp_buf_add_u64be(&w->buf, (uint64_t)d->sb->st_ino);
	}
	if (!err) {
		err = rp_buf_add_u64be(&w->buf, (uint64_t)d->sb->st_size);
	}
	if (!err) {
		err = rp_buf_add_u16be(&w->buf, (uint16_t)plen);
	}
	if (!err) {
		err = rp_buf_add(&w->buf, path, plen);
	}
	if (!err) {
		err = rp_buf_add_u32be(&w->buf, (uint32_t)d->hdr_len);
	}
	if (!err) {
		err = rp_buf_add(&w->buf, d->old_hdr, d->hdr_len);
	}
	if (!err) {
		err = rp_buf_add(&w->buf, d->new_hdr, d->hdr_len);
	}
	if (!err) {
		err = rp_buf_add(&w->buf, d->nonce, WAL_NONCE_LEN);
	}
	if (!err) {
		err = rp_buf_add_u64be(&w->buf,
				       XXH64(w->buf.p + start,
					     w->buf.len - start, 0));
	}
	if (!err && w->buf.len - start != len) {
		RP_BUG("a journal record is not its length");
	}
	return err;
}

enum rp_err rp_wal_append(struct rp_wal *w, struct rp_status *st,
			  const struct rp_wal_doc *docs, size_t n)
{
	enum rp_err err = RP_OK;

	rp_buf_reset(&w->buf);
	for (size_t i = 0; !err && i < n; i++) {
		err = add_record(w, &docs[i]);
		if (err == RP_ERR_USAGE) {
			return rp_status_fail(st, err,
					      "'%s': cannot be journaled (path "
					      "or header too long)",
					      docs[i].path);
		}
	}
	if (!err) {
		err = rp_fd_write_all(w->fd, st, w->name, w->buf.p, w->buf.len);
		rp_test_trace("wal-append", w->name);
	} else {
		return rp_status_fail(st, err, "out of memory");
	}
	if (!err && w->sync) {
		if (fdatasync(w->fd) < 0) {
			err = rp_status_errno(st, errno,
					      "cannot fsync the journal",
					      w->name);
		} else {
			rp_test_trace("wal-sync", w->name);
		}
	}
	return err;
}

enum rp_err rp_wal_commit(struct rp_wal *w, struct rp_status *st)
{
	/*
	 * synced: a later batch's records must never follow a truncation
	 * that a power cut undid, behind records that no longer parse
	 */
	if (ftruncate(w->fd, 0) < 0 || (w->sync && fdatasync(w->fd) < 0)) {
		return rp_status_errno(st, errno, "cannot truncate the journal",
				       w->name);
	}
	rp_test_trace("wal-commit", w->name);
	return RP_OK;
}

void rp_wal_close(struct rp_wal *w)
{
	struct stat sb;

	if (!w) {
		return;
	}
	if (w->fd >= 0) {
		/* only an empty journal goes: the rest is for recovery */
		if (fstat(w->fd, &sb) == 0 && sb.st_size == 0 &&
		    unlinkat(w->dir_fd, w->name, 0) == 0 && w->sync) {
			(void)fsync(w->dir_fd);
		}
		close(w->fd);
	}
	if (w->dir_fd >= 0) {
		close(w->dir_fd);
	}
	rp_buf_fini(&w->buf);
	free(w);
}

/* recovery */

struct rec {
	uint64_t dev, ino, size;
	char path[PATH_MAX];
	size_t hdr_len;
	const uint8_t *old_hdr, *new_hdr, *nonce;
};

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

/* parse_rec: the record at p (left bytes), or 0 at the journal's end */
static size_t parse_rec(const uint8_t *p, size_t left, struct rec *r)
{
	size_t len, plen, off;

	if (left < WAL_FIXED || memcmp(p, WAL_MAGIC, 4)) {
		return 0;
	}
	len = (size_t)be(p + 4, 4);
	if (len < WAL_FIXED || len > left ||
	    XXH64(p, len - 8, 0) != be(p + len - 8, 8)) {
		return 0;
	}
	r->dev = be(p + 8, 8);
	r->ino = be(p + 16, 8);
	r->size = be(p + 24, 8);
	plen = (size_t)be(p + 32, 2);
	off = 34;
	if (plen >= sizeof(r->path) || off + plen + 4 > len) {
		return 0;
	}
	memcpy(r->path, p + off, plen);
	r->path[plen] = '\0';
	off += plen;
	r->hdr_len = (size_t)be(p + off, 4);
	off += 4;
	if (r->hdr_len > WAL_MAX_HDR ||
	    len != WAL_FIXED + plen + 2 * r->hdr_len || !plen ||
	    memchr(r->path, '\0', plen)) {
		return 0;
	}
	r->old_hdr = p + off;
	r->new_hdr = p + off + r->hdr_len;
	r->nonce = p + off + 2 * r->hdr_len;
	return len;
}

enum outcome { AS_OLD, AS_NEW, RESTORED, LEFT, BUSY, FAILED };

/* is_mix: every byte is the old header's or the new one's (a torn write) */
static int is_mix(const uint8_t *cur, const struct rec *r)
{
	for (size_t i = 0; i < r->hdr_len; i++) {
		if (cur[i] != r->old_hdr[i] && cur[i] != r->new_hdr[i]) {
			return 0;
		}
	}
	return 1;
}

static enum outcome settle(const struct rec *r, uint8_t *cur, char *why,
			   size_t why_len)
{
	struct stat sb;
	size_t got = 0;
	struct rp_status st = { 0 };
	enum outcome o;
	const int fd = open(r->path, O_RDWR | O_NOFOLLOW | O_NONBLOCK |
					     O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, why_len, "cannot open: %s", strerror(errno));
		return errno == ENOENT || errno == ELOOP || errno == ENOTDIR
			       ? LEFT
			       : FAILED;
	}
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_dev != r->dev ||
	    (uint64_t)sb.st_ino != r->ino || (uint64_t)sb.st_size != r->size) {
		snprintf(why, why_len, "another file now (device, inode or "
				       "size differ)");
		close(fd);
		return LEFT;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(why, why_len, "another process holds its lock");
		close(fd);
		return BUSY;
	}
	if (rp_read_full(fd, &st, NULL, cur, r->hdr_len + WAL_NONCE_LEN, 0,
			 &got) ||
	    got != r->hdr_len + WAL_NONCE_LEN) {
		snprintf(why, why_len, "cannot read its header");
		close(fd);
		return FAILED;
	}
	if (memcmp(cur + r->hdr_len, r->nonce, WAL_NONCE_LEN) ||
	    !is_mix(cur, r)) {
		snprintf(why, why_len, "changed since (its header is neither "
				       "the old nor the new one)");
		close(fd);
		return LEFT;
	}
	if (!memcmp(cur, r->old_hdr, r->hdr_len)) {
		o = AS_OLD;
	} else if (!memcmp(cur, r->new_hdr, r->hdr_len)) {
		o = AS_NEW;
	} else {
		/* torn: the old header back, in place */
		o = RESTORED;
		for (size_t done = 0; o == RESTORED && done < r->hdr_len;) {
			const ssize_t k = pwrite(fd, r->old_hdr + done,
						 r->hdr_len - done,
						 (off_t)done);

			if (k > 0) {
				done += (size_t)k;
			} else if (k == 0 || errno != EINTR) {
				o = FAILED;
			}
		}
	}
	/* what it holds now reaches the disk before the journal goes */
	if (o != FAILED && fsync(fd) < 0) {
		o = FAILED;
	}
	if (o == FAILED) {
		snprintf(why, why_len, "cannot restore its header: %s",
			 st.err ? rp_status_msg(&st) : strerror(errno));
	}
	close(fd);
	return o;
}

static enum rp_err recover_one(int dir_fd, const char *name,
			       struct rp_wal_recovery *out,
			       void (*log)(void *, const char *), void *arg)
{
	struct rp_status st = { 0 };
	struct rp_buf b = { 0 };
	struct stat sb;
	uint8_t *cur = NULL;
	size_t off = 0, len;
	int keep = 0;
	struct rec *r = malloc(sizeof(*r));
	const int fd = openat(dir_fd, name,
			      O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 || !r) {
		if (fd >= 0) {
			close(fd);
		}
		free(r);
		out->failed++;
		return RP_ERR_IO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd); /* a live run's */
		free(r);
		return RP_OK;
	}
	out->journals++;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size > WAL_MAX_FILE ||
	    rp_buf_reserve(&b, (size_t)sb.st_size + 1) ||
	    rp_read_full(fd, &st, name, b.p, (size_t)sb.st_size, 0, &len) ||
	    !(cur = malloc(WAL_MAX_HDR + WAL_NONCE_LEN))) {
		close(fd);
		rp_buf_fini(&b);
		free(r);
		out->failed++;
		return RP_ERR_IO;
	}
	for (size_t n; (n = parse_rec(b.p + off, len - off, r)); off += n) {
		char why[256] = "", line[PATH_MAX + 320];
		const enum outcome o = settle(r, cur, why, sizeof(why));

		out->records++;
		switch (o) {
		case AS_OLD:
			out->as_old++;
			break;
		case AS_NEW:
			out->as_new++;
			break;
		case RESTORED:
			out->restored++;
			snprintf(line, sizeof(line),
				 "recover: '%s': a torn header; its old "
				 "header is back",
				 r->path);
			break;
		case LEFT:
			out->left++;
			snprintf(line, sizeof(line), "recover: '%s': left: %s",
				 r->path, why);
			break;
		case BUSY:
			out->busy++;
			keep = 1;
			snprintf(line, sizeof(line), "recover: '%s': %s",
				 r->path, why);
			break;
		case FAILED:
			out->failed++;
			keep = 1;
			snprintf(line, sizeof(line), "recover: '%s': %s",
				 r->path, why);
			break;
		}
		if (log && o >= RESTORED) {
			log(arg, line);
		}
	}
	if (!keep && unlinkat(dir_fd, name, 0) == 0) {
		(void)fsync(dir_fd);
	}
	close(fd);
	free(cur);
	free(r);
	rp_buf_fini(&b);
	return keep ? RP_ERR_IO : RP_OK;
}

enum rp_err rp_wal_recover(const char *store_dir, struct rp_status *st,
			   struct rp_wal_recovery *out,
			   void (*log)(void *arg, const char *line),
			   void *log_arg)
{
	DIR *d;
	struct dirent *e;
	int dir_fd, is_bad = 0;
	enum rp_err err;

	memset(out, 0, sizeof(*out));
	err = open_dir(&dir_fd, st, store_dir, 0);
	if (err) {
		if (st->sys_errno == ENOENT) {
			rp_status_clear(st);
			return RP_OK; /* no journal was ever made */
		}
		return err;
	}
	d = fdopendir(dir_fd);
	if (!d) {
		err = rp_status_errno(st, errno, "cannot read", WAL_DIR);
		close(dir_fd);
		return err;
	}
	while ((e = readdir(d))) {
		const size_t n = strlen(e->d_name);

		if (n > 8 && !strcmp(e->d_name + n - 8, ".wal" WAL_NEW)) {
			drop_unborn(dirfd(d), e->d_name);
			continue;
		}
		if (n < 4 || strcmp(e->d_name + n - 4, ".wal")) {
			continue;
		}
		if (recover_one(dirfd(d), e->d_name, out, log, log_arg)) {
			is_bad = 1;
		}
	}
	closedir(d);
	if (is_bad) {
		return rp_status_fail(st, RP_ERR_IO,
				      "recovery left %llu document(s) "
				      "unsettled (busy or failing): their "
				      "journal is kept; run 'reprotect "
				      "recover' again",
				      (unsigned long long)(out->busy +
							   out->failed));
	}
	return RP_OK;
}
