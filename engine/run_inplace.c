/*
 * run_inplace.c: the in-place writer: the batch's journal records, then each
 * new header over the old one, the fsyncs and the journal's commit.
 */
#include "run_internal.h"

/*
 * open_in_place opens the document for writing through its folder and
 * makes sure it is the very file the run read; 0 if it cannot be (not
 * writable, busy as a program, replaced): the copying path takes it, and
 * meets a replaced file as changed. With `can_dio` (the writer has a
 * block for it), a document whose first block the run read whole is
 * opened O_DIRECT; a file system that refuses it gets a plain descriptor.
 */
int run_open_in_place(struct job *j, int can_dio)
{
	const int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	struct stat sb;

	j->is_dio = can_dio && j->d.buf_len >= RP_DIO_BLOCK &&
		    j->new_hdr.len < RP_DIO_BLOCK;
	j->wfd = -1;
	if (j->is_dio) {
		j->wfd = openat(j->dir->fd, j->name, flags | O_DIRECT);
		j->is_dio = j->wfd >= 0;
	}
	if (j->wfd < 0) {
		j->wfd = openat(j->dir->fd, j->name, flags);
	}
	if (j->wfd < 0) {
		return 0;
	}
	if (fstat(j->wfd, &sb) < 0 || sb.st_dev != j->d.sb.st_dev ||
	    sb.st_ino != j->d.sb.st_ino || !S_ISREG(sb.st_mode)) {
		close(j->wfd);
		j->wfd = -1;
		return 0;
	}
	return 1;
}

/*
 * dio_off: the document's descriptor writes through the page cache from
 * now on (a write that is not a whole aligned block: completing a short
 * write, the old header back, the test hooks; or a direct write refused)
 */
static void dio_off(struct job *j)
{
	const int fl = j->is_dio ? fcntl(j->wfd, F_GETFL) : -1;

	if (fl >= 0) {
		(void)fcntl(j->wfd, F_SETFL, fl & ~O_DIRECT);
	}
	j->is_dio = 0;
}

/* ip_fail: an in-place document not written; a disk fault stops the run */
static void ip_fail(struct run *r, struct job *j, const char *what, int e)
{
	run_job_fail(j, RP_OUT_FAIL_IO, "%s: %s", what, strerror(e));
	if (run_is_fatal_errno(e)) {
		run_halt(r, j->reason);
	}
}

/* pwrite_all: all of `len` bytes at `off`, or -errno */
static int pwrite_all(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len) {
		const ssize_t k = pwrite(fd, p, len, off);

		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return k < 0 ? -errno : -EIO;
		}
		p += k;
		len -= (size_t)k;
		off += k;
	}
	return 0;
}

/*
 * header_write: the new header over the old one, and the document's times
 * as they were. A write that fails may have written part: the old header
 * goes back at once, and if even that fails the journal keeps the record
 * for recovery (returns 0: the batch must not commit).
 */

/* fault_torn: a test build's half-written header, then the process dies */
static void fault_torn(struct job *j)
{
	if (rp_test_fault("io:torn-header") > 0) {
		dio_off(j);
		(void)pwrite_all(j->wfd, j->new_hdr.p, j->new_hdr.len / 2, 0);
		rp_test_crash_point("run:torn");
	}
}

/*
 * header_written takes the result of a document's header write (`got`
 * bytes of `len` at `p` written from the start, or -errno) and finishes
 * it: a direct write the file system refuses is done plainly; a short
 * write is completed; a failed one writes the old header back at once,
 * and if even that fails the journal keeps the record for recovery
 * (returns 0: the batch must not commit). Then the document's times as
 * they were.
 */
static int header_written(struct run *r, struct job *j, int got,
			  const uint8_t *p, size_t len)
{
	const struct timespec times[2] = { j->d.sb.st_atim, j->d.sb.st_mtim };
	int e = got < 0 ? got : 0;

	if (j->is_dio && rp_test_fault("io:dio") > 0) {
		e = -EINVAL; /* a test build: as if the device refused it */
	}
	if (e == -EINVAL && j->is_dio) {
		dio_off(j);
		p = j->new_hdr.p;
		len = j->new_hdr.len;
		got = 0;
		e = 0;
	}
	if (rp_test_fault("io:pwrite") > 0) {
		e = -EIO;
	} else if (!e && (size_t)got < len) {
		dio_off(j);
		e = pwrite_all(j->wfd, p + got, len - (size_t)got, got);
	}
	if (e) {
		ip_fail(r, j, "cannot write the header", -e);
		dio_off(j);
		if (pwrite_all(j->wfd, j->d.buf, j->new_hdr.len, 0)) {
			run_halt(r, "cannot write a document's old header back "
				    "after a failed write: 'reprotect recover' "
				    "restores it");
			return 0;
		}
		return 1;
	}
	j->ip_done = 1;
	(void)futimens(j->wfd, times);
	return 1;
}

/*
 * header_bytes: what goes down for slot `i`'s document: its new header,
 * or for a direct write its whole first block in the writer's slot `i`
 * (filled by fill_block)
 */
static const uint8_t *header_bytes(const struct writer *w, size_t i,
				   const struct job *j, size_t *len)
{
	*len = j->is_dio ? RP_DIO_BLOCK : j->new_hdr.len;
	return j->is_dio ? w->blk + i * RP_DIO_BLOCK : j->new_hdr.p;
}

/*
 * fill_block: a direct write's block: the new header, then the rest of
 * the block as the run read it (the nonce and the payload's start)
 */
static void fill_block(struct writer *w, size_t i, const struct job *j)
{
	uint8_t *b = w->blk + i * RP_DIO_BLOCK;

	memcpy(b, j->new_hdr.p, j->new_hdr.len);
	memcpy(b + j->new_hdr.len, j->d.buf + j->new_hdr.len,
	       RP_DIO_BLOCK - j->new_hdr.len);
}

/*
 * write_headers: each in-place document's new header over its old one,
 * through the ring in one submission, or one pwrite after another
 */
static int write_headers(struct writer *w, int use_ring, int *res)
{
	struct rp_status rst = { 0 };
	struct run *r = w->r;
	size_t k = 0;
	int is_ok = 1;

	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];
		const uint8_t *p;
		size_t len;

		res[i] = 0;
		if (j->out != RP_OUT_MOVED || j->wfd < 0) {
			continue;
		}
		fault_torn(j);
		rp_test_trace("header", j->path);
		if (j->is_dio) {
			fill_block(w, i, j);
		}
		p = header_bytes(w, i, j, &len);
		if (use_ring) {
			io_uring_prep_write(run_ring_sqe(&w->ring, i), j->wfd,
					    p, (unsigned)len, 0);
			k++;
		} else {
			const int e = pwrite_all(j->wfd, p, len, 0);

			is_ok &= header_written(r, j, e ? e : (int)len, p, len);
			rp_test_crash_point("run:ip-wrote-one");
		}
	}
	if (!k) {
		return is_ok;
	}
	if (rp_ring_wait(&w->ring, &rst, k, res)) {
		/* what the writes did is unknown: recovery settles it */
		run_ring_failed(r, &rst);
		for (size_t i = 0; i < w->n; i++) {
			if (w->batch[i]->out == RP_OUT_MOVED &&
			    w->batch[i]->wfd >= 0) {
				run_job_fail(w->batch[i], RP_OUT_FAIL_IO,
					     "not known if written: io_uring "
					     "failed");
			}
		}
		return 0;
	}
	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];
		const uint8_t *p;
		size_t len;

		if (j->out != RP_OUT_MOVED || j->wfd < 0) {
			continue;
		}
		p = header_bytes(w, i, j, &len);
		is_ok &= header_written(r, j, res[i], p, len);
		rp_test_crash_point("run:ip-wrote-one");
	}
	return is_ok;
}

/*
 * write_in_place: the batch's in-place documents (their checks passed,
 * under the store's lock): their records journaled and made durable, then
 * each new header written over the old one, synced (--durability batch,
 * each), and the journal committed. Killed at any point, the journal
 * gives recovery what it needs to make every header whole.
 */
void run_write_in_place(struct writer *w, int use_ring, int *res)
{
	struct rp_status st = { 0 };
	struct run *r = w->r;
	const int is_sync = r->o->durability != RP_DURABLE_NONE;
	size_t n = 0, k = 0;
	int is_ok = 1;

	for (size_t i = 0; i < w->n; i++) {
		struct job *j = w->batch[i];

		if (j->out != RP_OUT_MOVED || j->wfd < 0) {
			continue;
		}
		w->wdocs[n].path = j->path;
		w->wdocs[n].sb = &j->d.sb;
		w->wdocs[n].old_hdr = j->d.buf;
		w->wdocs[n].new_hdr = j->new_hdr.p;
		w->wdocs[n].hdr_len = j->new_hdr.len;
		w->wdocs[n].nonce = j->d.nonce;
		n++;
	}
	if (!n) {
		return;
	}
	if (!w->wal && rp_wal_open(&w->wal, &st, rp_store_dir(r->s), is_sync)) {
		run_halt(r, rp_status_msg(&st));
	}
	if (w->wal && rp_wal_append(w->wal, &st, w->wdocs, n)) {
		run_halt(r, rp_status_msg(&st));
	}
	if (run_is_halted(r)) {
		for (size_t i = 0; i < w->n; i++) {
			if (w->batch[i]->wfd >= 0) {
				run_may_commit(r, w->batch[i], 0);
			}
		}
		if (w->wal && rp_wal_commit(w->wal, &st)) {
			/* nothing was written: recovery finds them as they
			 * were */
		}
		return;
	}
	rp_test_crash_point("run:ip-journaled");
	is_ok &= write_headers(w, use_ring, res);
	rp_test_crash_point("run:ip-written");
	if (rp_test_fault("io:powercut") > 0) {
		/* a test build: a power cut kept only part of a header */
		for (size_t i = 0; i < w->n; i++) {
			struct job *j = w->batch[i];

			if (j->ip_done) {
				dio_off(j);
				(void)pwrite_all(j->wfd, j->d.buf, 512, 0);
				break;
			}
		}
		rp_test_crash_point("run:powercut");
	}
	if (is_sync) {
		struct rp_status rst = { 0 };

		for (size_t i = 0; i < w->n; i++) {
			struct job *j = w->batch[i];

			res[i] = 0;
			if (!j->ip_done) {
				continue;
			}
			/*
			 * the header's bytes only (fdatasync): the size and
			 * the blocks are unchanged, and the times put back
			 * are the kernel's to write back (ENGINE.md)
			 */
			rp_test_trace("fsync-doc", j->path);
			if (use_ring) {
				io_uring_prep_fsync(run_ring_sqe(&w->ring, i),
						    j->wfd,
						    IORING_FSYNC_DATASYNC);
				k++;
			} else {
				res[i] = fdatasync(j->wfd) < 0 ? -errno : 0;
			}
		}
		if (k && rp_ring_wait(&w->ring, &rst, k, res)) {
			run_ring_failed(r, &rst);
			is_ok = 0;
		}
		for (size_t i = 0; i < w->n; i++) {
			struct job *j = w->batch[i];

			if (!j->ip_done) {
				continue;
			}
			if (rp_test_fault("io:fsync") > 0) {
				res[i] = -EIO;
			}
			if (res[i] < 0) {
				/* written, not known to be on the disk: the
				 * journal stays for recovery */
				ip_fail(r, j, "cannot fsync", -res[i]);
				j->ip_done = 0;
				is_ok = 0;
			}
		}
	}
	rp_test_crash_point("run:ip-synced");
	if (!is_ok) {
		/* its records stay for recovery (a later commit would drop
		 * them): the next batch gets a new journal */
		rp_wal_close(w->wal);
		w->wal = NULL;
	} else if (rp_wal_commit(w->wal, &st)) {
		run_halt(r, rp_status_msg(&st));
	}
}
