/*
 * inplace_ref: the reference program for the engine's in-place path: the
 * bare I/O sequence of a rewrap in place, no cryptography, over the files
 * below DIR, a batch at a time:
 *
 *   read:   open each file, stat it, read its first block
 *   commit: append the batch's journal records (old and new header) and
 *           fdatasync the journal; write each "new" header (the same bytes:
 *           the corpus stays valid) at offset 0, put the file's times back,
 *           fdatasync each file, close it; truncate the journal and
 *           fdatasync it (the commit)
 *
 * with --io uring the opens, stats, reads, writes, syncs and closes of a
 * batch go through one ring in rounds, as the engine's writers do; with
 * --io sync one call after another. It prints the CPU time per file (user
 * and system, getrusage over all its threads, io_uring's workers included):
 * the floor the engine's in-place path is measured against
 * (scripts/bench_e2e.sh, docs/BENCHMARKS.md).
 *
 * --durability none leaves the fdatasyncs out. Files are opened O_NOATIME
 * (as the engine's read-ahead does; the process must own them or be root),
 * so the stat and the read go in one round unordered.
 *
 *   inplace_ref [--io sync|uring] [--batch N] [--durability batch|none]
 *               [--header BYTES] DIR
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#define MAX_BATCH 1024
#define PREFIX	  4096

struct file {
	int dir_fd;
	char *name;
};

struct doc {
	int fd;
	struct statx stx;
	size_t len;
	unsigned char *buf;
};

static struct file *files;
static int g_sync = 1;
static size_t num_files, cap_files;

static void die(const char *what, int e)
{
	fprintf(stderr, "inplace_ref: %s: %s\n", what, strerror(e));
	exit(1);
}

static void add_file(int dir_fd, const char *name)
{
	if (num_files == cap_files) {
		cap_files = cap_files ? 2 * cap_files : 1024;
		files = realloc(files, cap_files * sizeof(*files));
		if (!files) {
			die("realloc", ENOMEM);
		}
	}
	files[num_files].dir_fd = dir_fd;
	files[num_files].name = strdup(name);
	if (!files[num_files].name) {
		die("strdup", ENOMEM);
	}
	num_files++;
}

/* collect: every regular file below the open folder `root` (folders kept
 * open: the files are named through them) */
static void collect(int root)
{
	int *todo = malloc(sizeof(int));
	size_t n = 1, cap = 1;

	if (!todo) {
		die("malloc", ENOMEM);
	}
	todo[0] = root;
	while (n) {
		const int fd = todo[--n];
		DIR *d = fdopendir(dup(fd));
		struct dirent *e;

		if (!d) {
			die("fdopendir", errno);
		}
		while ((e = readdir(d))) {
			if (e->d_type == DT_REG) {
				add_file(fd, e->d_name);
				continue;
			}
			if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") ||
			    !strcmp(e->d_name, "..")) {
				continue;
			}
			if (n == cap) {
				int *t = realloc(todo, 2 * cap * sizeof(int));

				if (!t) {
					die("realloc", ENOMEM);
				}
				todo = t;
				cap *= 2;
			}
			todo[n] = openat(fd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			if (todo[n] < 0) {
				die(e->d_name, errno);
			}
			n++;
		}
		closedir(d);
	}
	free(todo);
}

static double tv_us(struct timeval tv)
{
	return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

/* ring_round: submit what is queued and wait for `n` completions */
static void ring_round(struct io_uring *u, unsigned n, int *res)
{
	unsigned got = 0;
	int rc = io_uring_submit_and_wait(u, n);

	if (rc < 0 && rc != -EINTR) {
		die("io_uring_submit_and_wait", -rc);
	}
	while (got < n) {
		struct io_uring_cqe *cqe;

		rc = io_uring_wait_cqe(u, &cqe);
		if (rc == -EINTR) {
			continue;
		}
		if (rc < 0) {
			die("io_uring_wait_cqe", -rc);
		}
		res[io_uring_cqe_get_data64(cqe)] = cqe->res;
		io_uring_cqe_seen(u, cqe);
		got++;
	}
}

static struct io_uring_sqe *sqe_for(struct io_uring *u, size_t i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(u);

	if (!sqe) {
		io_uring_submit(u);
		sqe = io_uring_get_sqe(u);
		if (!sqe) {
			die("io_uring_get_sqe", EBUSY);
		}
	}
	io_uring_sqe_set_data64(sqe, i);
	return sqe;
}

static void journal_append(int jfd, struct doc *docs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* the record's old and new header */
		const struct iovec iov[2] = { { docs[i].buf, docs[i].len },
					      { docs[i].buf, docs[i].len } };

		if (writev(jfd, iov, 2) < 0) {
			die("journal write", errno);
		}
	}
	if (fdatasync(jfd) < 0) {
		die("journal fdatasync", errno);
	}
}

static void journal_commit(int jfd)
{
	if (ftruncate(jfd, 0) < 0 || fdatasync(jfd) < 0) {
		die("journal commit", errno);
	}
}

static void put_times(struct doc *d)
{
	const struct timespec t[2] = {
		{ d->stx.stx_atime.tv_sec, d->stx.stx_atime.tv_nsec },
		{ d->stx.stx_mtime.tv_sec, d->stx.stx_mtime.tv_nsec },
	};

	(void)futimens(d->fd, t);
}

static void batch_sync(struct doc *docs, size_t off, size_t n, int jfd,
		       size_t hdr)
{
	for (size_t i = 0; i < n; i++) {
		struct doc *d = &docs[i];
		const struct file *f = &files[off + i];
		ssize_t k;

		d->fd = openat(f->dir_fd, f->name,
			       O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
		if (d->fd < 0 ||
		    statx(d->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS,
			  &d->stx) < 0) {
			die(f->name, errno);
		}
		k = pread(d->fd, d->buf, PREFIX, 0);
		if (k < 0) {
			die("pread", errno);
		}
		d->len = (size_t)k < hdr ? (size_t)k : hdr;
	}
	journal_append(jfd, docs, n);
	for (size_t i = 0; i < n; i++) {
		if (pwrite(docs[i].fd, docs[i].buf, docs[i].len, 0) < 0) {
			die("pwrite", errno);
		}
		put_times(&docs[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (g_sync && fdatasync(docs[i].fd) < 0) {
			die("fdatasync", errno);
		}
		close(docs[i].fd);
	}
	journal_commit(jfd);
}

static void batch_uring(struct io_uring *u, struct doc *docs, size_t off,
			size_t n, int jfd, size_t hdr)
{
	static int res[2 * MAX_BATCH];

	for (size_t i = 0; i < n; i++) {
		io_uring_prep_openat(sqe_for(u, i), files[off + i].dir_fd,
				     files[off + i].name,
				     O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOATIME,
				     0);
	}
	ring_round(u, (unsigned)n, res);
	for (size_t i = 0; i < n; i++) {
		struct io_uring_sqe *sqe;

		if (res[i] < 0) {
			die(files[off + i].name, -res[i]);
		}
		docs[i].fd = res[i];
		sqe = sqe_for(u, i);
		io_uring_prep_statx(sqe, docs[i].fd, "", AT_EMPTY_PATH,
				    STATX_BASIC_STATS, &docs[i].stx);
		io_uring_prep_read(sqe_for(u, n + i), docs[i].fd, docs[i].buf,
				   PREFIX, 0);
	}
	ring_round(u, (unsigned)(2 * n), res);
	for (size_t i = 0; i < n; i++) {
		if (res[i] < 0 || res[n + i] < 0) {
			die("statx/read", -(res[i] < 0 ? res[i] : res[n + i]));
		}
		docs[i].len = (size_t)res[n + i] < hdr ? (size_t)res[n + i]
						       : hdr;
	}
	journal_append(jfd, docs, n);
	for (size_t i = 0; i < n; i++) {
		io_uring_prep_write(sqe_for(u, i), docs[i].fd, docs[i].buf,
				    (unsigned)docs[i].len, 0);
	}
	ring_round(u, (unsigned)n, res);
	for (size_t i = 0; i < n; i++) {
		struct io_uring_sqe *sqe;

		if (res[i] < 0) {
			die("write", -res[i]);
		}
		put_times(&docs[i]);
		sqe = sqe_for(u, i);
		if (g_sync) {
			io_uring_prep_fsync(sqe, docs[i].fd,
					    IORING_FSYNC_DATASYNC);
		} else {
			io_uring_prep_nop(sqe);
		}
		io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
		io_uring_prep_close(sqe_for(u, n + i), docs[i].fd);
	}
	ring_round(u, (unsigned)(2 * n), res);
	for (size_t i = 0; i < 2 * n; i++) {
		if (res[i] < 0) {
			die("fdatasync/close", -res[i]);
		}
	}
	journal_commit(jfd);
}

int main(int argc, char **argv)
{
	const char *io = "uring", *dir = NULL;
	size_t batch = 64, hdr = 1541;
	int is_sync = 1;
	struct doc *docs;
	struct io_uring u;
	struct rusage ru;
	struct timespec t0, t1;
	char jpath[] = "/tmp/inplace_ref.XXXXXX";
	int root, jfd;
	double secs;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--io") && i + 1 < argc) {
			io = argv[++i];
		} else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
			batch = strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--durability") && i + 1 < argc) {
			is_sync = strcmp(argv[++i], "none") != 0;
		} else if (!strcmp(argv[i], "--header") && i + 1 < argc) {
			hdr = strtoul(argv[++i], NULL, 10);
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			fprintf(stderr,
				"usage: inplace_ref [--io sync|uring] "
				"[--batch N] [--durability batch|none] "
				"[--header BYTES] DIR\n");
			return 2;
		}
	}
	if (!dir || !batch || batch > MAX_BATCH || !hdr || hdr > PREFIX ||
	    (strcmp(io, "sync") && strcmp(io, "uring"))) {
		fprintf(stderr, "inplace_ref: bad arguments\n");
		return 2;
	}
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		die(dir, errno);
	}
	collect(root);
	jfd = mkostemp(jpath, O_CLOEXEC | O_APPEND);
	if (jfd < 0) {
		die("journal", errno);
	}
	(void)unlink(jpath);
	docs = calloc(batch, sizeof(*docs));
	if (!docs) {
		die("calloc", ENOMEM);
	}
	for (size_t i = 0; i < batch; i++) {
		docs[i].buf = aligned_alloc(4096, PREFIX);
		if (!docs[i].buf) {
			die("aligned_alloc", ENOMEM);
		}
	}
	if (!strcmp(io, "uring")) {
		const int rc = io_uring_queue_init(
			(unsigned)(2 * batch < 8 ? 8 : 2 * batch), &u, 0);

		if (rc < 0) {
			die("io_uring_queue_init", -rc);
		}

	}
	g_sync = is_sync;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t off = 0; off < num_files; off += batch) {
		const size_t n =
			num_files - off < batch ? num_files - off : batch;

		if (!strcmp(io, "uring")) {
			batch_uring(&u, docs, off, n, jfd, hdr);
		} else {
			batch_sync(docs, off, n, jfd, hdr);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &ru);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("inplace_ref --io %s --batch %zu: %zu files, %.3f s, "
	       "%.0f files/s, %.1f us user + %.1f us system per file\n",
	       io, batch, num_files, secs, (double)num_files / secs,
	       tv_us(ru.ru_utime) / (double)num_files,
	       tv_us(ru.ru_stime) / (double)num_files);
	for (size_t i = 0; i < batch; i++) {
		free(docs[i].buf);
	}
	free(docs);
	return 0;
}
