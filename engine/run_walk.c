/*
 * run_walk.c: the walker (the main thread): the walk, the read-ahead ring, the
 * mirror folders of --out, a killed run's leftovers, the counting walk.
 */
#include "run_internal.h"

void run_out_cache_fini(struct out_cache *oc)
{
	run_folder_put(oc->f);
	oc->f = NULL;
}

/*
 * open_beneath opens folder `rel` below the open folder `root`, one
 * component at a time, never following a link; with `is_create`, missing
 * folders are made (0700). Returns the descriptor, or -1 with st set.
 */
static int open_beneath(struct rp_status *st, int root, const char *rel,
			int is_create, const char *display)
{
	char buf[PATH_MAX];
	char *save = NULL;
	int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	snprintf(buf, sizeof(buf), "%s", rel);
	for (char *c = strtok_r(buf, "/", &save); fd >= 0 && c;
	     c = strtok_r(NULL, "/", &save)) {
		int next;

		if (is_create && mkdirat(fd, c, 0700) < 0 && errno != EEXIST) {
			rp_status_errno(st, errno, "cannot create a folder in",
					display);
			close(fd);
			return -1;
		}
		next = openat(fd, c,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			struct stat sb;
			const int e = errno;

			if ((e == ELOOP || e == ENOTDIR) &&
			    fstatat(fd, c, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode)) {
				rp_status_fail(
					st, RP_ERR_IO,
					"'%s' crosses a symbolic link at "
					"'%s': not followed",
					display, c);
				st->sys_errno = ELOOP;
			} else {
				rp_status_errno(st, e,
						"cannot open the folder of",
						display);
			}
			close(fd);
			return -1;
		}
		close(fd);
		fd = next;
	}
	if (fd < 0) {
		rp_status_errno(st, errno, "cannot open the folder of",
				display);
	}
	return fd;
}

/* out_folder gives the job its mirror folder, made if missing */
enum rp_err run_out_folder(struct run *r, struct out_cache *oc, struct job *j,
			   struct rp_status *st)
{
	const char *rel = j->out_path + j->out_rel;
	const char *slash = strrchr(rel, '/');
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - rel) : 0, rel);
	j->oname = slash ? slash + 1 : rel;
	if (!oc->f || strcmp(oc->dir, dir)) {
		run_out_cache_fini(oc);
		fd = open_beneath(st, r->out_fd, dir, 1, j->out_path);
		if (fd < 0) {
			return st->err;
		}
		oc->f = run_folder_new(fd);
		if (!oc->f) {
			return rp_status_fail(st, RP_ERR_NOMEM,
					      "out of memory");
		}
		memcpy(oc->dir, dir, sizeof(dir));
	}
	j->odir = run_folder_ref(oc->f);
	return RP_OK;
}

/*
 * in_shard: the one shard function, for the run and for its counting walk
 * (the progress total): the XXH64 (seed 0) of the path relative to its
 * root, modulo N, is I
 */
static int in_shard(const struct rp_run_opts *o, const char *rel)
{
	return !o->shard_n ||
	       XXH64(rel, strlen(rel), 0) % o->shard_n == o->shard_i;
}

void *run_count_main(void *p)
{
	struct run *r = p;
	struct rp_status st = { 0 };
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	uint64_t n = 0;
	int is_done = 0;

	if (rp_walk_new(&wk, &st, r->o->roots, r->o->num_roots, 0)) {
		return NULL;
	}
	while (!is_done && !rp_walk_next(wk, &st, &e) &&
	       e.kind != RP_WALK_END) {
		if (!in_shard(r->o, e.rel)) {
			continue;
		}
		if (++n % 4096 == 0) {
			pthread_mutex_lock(&r->mu);
			r->stats.num_total = n;
			is_done = r->is_done;
			pthread_mutex_unlock(&r->mu);
		}
	}
	pthread_mutex_lock(&r->mu);
	if (!r->is_done) {
		r->stats.num_total = n;
		r->stats.is_total_known = 1;
	}
	pthread_mutex_unlock(&r->mu);
	rp_walk_free(wk);
	return NULL;
}

static int is_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/*
 * out_path: DIR/REL, or DIR/ROOTNAME/REL when there are several roots;
 * out_rel is where the part below DIR starts
 */
int run_out_path(const struct run *r, struct job *j,
		 const struct rp_walk_entry *e)
{
	const char *root = r->o->roots[e->root];
	const char *base = strrchr(root, '/');
	char name[PATH_MAX];
	int n;

	snprintf(name, sizeof(name), "%s", base && base[1] ? base + 1 : root);
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		snprintf(name, sizeof(name), "root%zu", e->root + 1);
	}
	j->out_rel = strlen(r->o->out_dir) + 1;
	if (r->o->num_roots > 1) {
		n = snprintf(j->out_path, sizeof(j->out_path), "%s/%s/%s",
			     r->o->out_dir, name, e->rel);
	} else {
		n = snprintf(j->out_path, sizeof(j->out_path), "%s/%s",
			     r->o->out_dir, e->rel);
	}
	return n < 0 || (size_t)n >= sizeof(j->out_path);
}

/* read ahead: the walker opens, stats and reads a batch through the ring */

static void stat_from_statx(struct stat *sb, const struct statx *x)
{
	memset(sb, 0, sizeof(*sb));
	sb->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
	sb->st_ino = x->stx_ino;
	sb->st_mode = x->stx_mode;
	sb->st_nlink = x->stx_nlink;
	sb->st_uid = x->stx_uid;
	sb->st_gid = x->stx_gid;
	sb->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
	sb->st_size = (off_t)x->stx_size;
	sb->st_blksize = (blksize_t)x->stx_blksize;
	sb->st_blocks = (blkcnt_t)x->stx_blocks;
	sb->st_atim.tv_sec = x->stx_atime.tv_sec;
	sb->st_atim.tv_nsec = x->stx_atime.tv_nsec;
	sb->st_mtim.tv_sec = x->stx_mtime.tv_sec;
	sb->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
	sb->st_ctim.tv_sec = x->stx_ctime.tv_sec;
	sb->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

/*
 * ra_open opens the batch's files in one submission: O_NOATIME first (so
 * reading them moves no access time, and the stat needs no order against
 * the read), again without it for a file the run may not open so (EPERM:
 * not its owner, no CAP_FOWNER). noatime[i]: how file i was opened.
 * Returns 0 if the ring failed.
 */
static int ra_open(struct run *r, struct job **js, size_t n, int *res,
		   int *noatime)
{
	struct rp_status rst = { 0 };
	const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		/* each job holds a reference to its folder (folder_ref): the
		 * analyzer cannot follow the count */
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		io_uring_prep_openat(run_ring_sqe(&r->rd_ring, i),
				     js[i]->dir->fd, js[i]->name,
				     flags | O_NOATIME, 0);
		noatime[i] = 1;
	}
	if (rp_ring_wait(&r->rd_ring, &rst, n, res)) {
		/* what it opened is unknown: the run stops */
		run_ring_failed(r, &rst);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (res[i] == -EPERM) {
			io_uring_prep_openat(run_ring_sqe(&r->rd_ring, i),
					     js[i]->dir->fd, js[i]->name, flags,
					     0);
			noatime[i] = 0;
			k++;
		}
	}
	if (k) {
		int again[RP_READ_AHEAD];

		if (rp_ring_wait(&r->rd_ring, &rst, k, again)) {
			run_ring_failed(r, &rst);
			for (size_t i = 0; i < n; i++) {
				if (res[i] >= 0) {
					close(res[i]);
				}
			}
			return 0;
		}
		for (size_t i = 0; i < n; i++) {
			if (!noatime[i]) {
				res[i] = again[i];
			}
		}
	}
	return 1;
}

/*
 * read_ahead opens the batch's files (one submission), then stats each
 * and reads its first RP_DOC_HDR_PREFIX bytes (a second one), so a batch
 * costs two system calls instead of three per file. A file any step
 * failed for is left to the worker's plain path, which meets the same
 * error and reports it the one way.
 */
static void read_ahead(struct run *r, struct job **js, size_t n)
{
	struct rp_status rst = { 0 };
	struct statx stx[RP_READ_AHEAD];
	int res[2 * RP_READ_AHEAD], noatime[RP_READ_AHEAD];
	size_t k = 0;

	if (!ra_open(r, js, n, res, noatime)) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = js[i];
		struct io_uring_sqe *sqe;

		if (res[i] < 0) {
			continue;
		}
		j->pre_fd = res[i];
		memset(&stx[i], 0, sizeof(stx[i]));
		sqe = run_ring_sqe(&r->rd_ring, i);
		io_uring_prep_statx(sqe, j->pre_fd, "",
				    AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
				    STATX_BASIC_STATS, &stx[i]);
		/*
		 * a file read without O_NOATIME: the stat before the read,
		 * to see the access time the document had, which the run
		 * gives back. Linked, the read waits for the stat, which
		 * io_uring always hands to a worker thread; unlinked, the
		 * read of a cached block completes inline.
		 */
		if (!noatime[i]) {
			io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
		}
		sqe = run_ring_sqe(&r->rd_ring, RP_READ_AHEAD + i);
		if (r->has_rd_fixed) {
			io_uring_prep_read_fixed(sqe, j->pre_fd, j->pre,
						 RP_DOC_HDR_PREFIX, 0, 0);
		} else {
			io_uring_prep_read(sqe, j->pre_fd, j->pre,
					   RP_DOC_HDR_PREFIX, 0);
		}
		k += 2;
	}
	if (!k) {
		return;
	}
	if (rp_ring_wait(&r->rd_ring, &rst, k, res)) {
		/* the reads may still land: no job may use its slot */
		run_ring_failed(r, &rst);
		for (size_t i = 0; i < n; i++) {
			res[i] = -EIO;
		}
	}
	k = 0; /* now: the documents read ahead */
	for (size_t i = 0; i < n; i++) {
		struct job *j = js[i];

		if (j->pre_fd < 0) {
			continue;
		}
		if (res[i] < 0 || res[RP_READ_AHEAD + i] < 0) {
			close(j->pre_fd);
			j->pre_fd = -1;
			continue;
		}
		stat_from_statx(&j->pre_sb, &stx[i]);
		j->pre_len = (size_t)res[RP_READ_AHEAD + i];
		k++;
	}
	pthread_mutex_lock(&r->mu);
	r->stats.read_ahead += k;
	pthread_mutex_unlock(&r->mu);
}

/* rd_flush reads the pending batch ahead and hands it to the workers */
static void rd_flush(struct run *r, struct job **pending, size_t *n)
{
	if (!*n) {
		return;
	}
	read_ahead(r, pending, *n);
	run_queue_push_n(&r->q_work, pending, *n);
	*n = 0;
}

/* rd_init sets up the walker's ring and its registered buffer pool */
void run_rd_init(struct run *r)
{
	struct rp_status st = { 0 };
	const size_t len = r->num_jobs * RP_DOC_HDR_PREFIX;
	struct iovec iov;

	if (r->o->io != RP_IO_URING ||
	    rp_ring_init(&r->rd_ring, &st, 2 * RP_READ_AHEAD)) {
		return;
	}
	r->rd_pool = aligned_alloc(4096, len);
	if (!r->rd_pool) {
		rp_ring_fini(&r->rd_ring);
		return;
	}
	r->has_rd_ring = 1;
	for (size_t i = 0; i < r->num_jobs; i++) {
		r->jobs[i].pre = r->rd_pool + i * RP_DOC_HDR_PREFIX;
	}
	/* one fixed buffer for the pool; plain reads if it may not pin */
	iov.iov_base = r->rd_pool;
	iov.iov_len = len;
	r->has_rd_fixed =
		io_uring_register_buffers(&r->rd_ring.u, &iov, 1) == 0;
}

void run_rd_fini(struct run *r)
{
	if (r->has_rd_ring) {
		rp_ring_fini(&r->rd_ring);
		r->has_rd_ring = 0;
	}
	if (r->rd_pool) {
		OPENSSL_cleanse(r->rd_pool, r->num_jobs * RP_DOC_HDR_PREFIX);
	}
	free(r->rd_pool);
	r->rd_pool = NULL;
}

/* the walk, in the caller's thread */

/*
 * remove_leftover removes a temporary file of a killed run; one that a
 * live run (another process) holds locked is its own, and stays
 */
static int remove_leftover(const struct rp_walk_entry *e)
{
	struct stat sb;
	int is_removed = 0;
	const int fd = openat(e->dir_fd, e->name,
			      O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0) {
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &sb) == 0 &&
	    sb.st_dev == e->sb.st_dev && sb.st_ino == e->sb.st_ino) {
		is_removed = unlinkat(e->dir_fd, e->name, 0) == 0;
	}
	close(fd);
	return is_removed;
}

enum rp_err run_walk(struct run *r, struct rp_status *st)
{
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	struct job *pending[RP_READ_AHEAD];
	size_t num_pending = 0;
	struct folder *dir = NULL; /* the folder of the last entry */
	unsigned long dir_serial = 0;
	enum rp_err err;

	err = rp_walk_new(&wk, st, r->o->roots, r->o->num_roots,
			  RP_WALK_REPORT_TMP);
	while (!err) {
		struct job *j;

		if ((r->o->stop && *r->o->stop) || run_is_halted(r)) {
			break;
		}
		err = rp_walk_next(wk, st, &e);
		if (err || e.kind == RP_WALK_END) {
			break;
		}
		if (!in_shard(r->o, e.rel)) {
			continue;
		}
		if (e.kind == RP_WALK_SKIP && e.why == RP_WALK_SKIP_TMP) {
			/*
			 * a killed run's leftover: never a document. One made
			 * since this run started is this run's own (a writer's
			 * temporary file or spare inode): never touch it.
			 */
			if (!r->o->is_dry_run && !r->o->is_verify &&
			    is_before(&e.sb.st_ctim, &r->started) &&
			    remove_leftover(&e)) {
				pthread_mutex_lock(&r->mu);
				r->stats.tmp_removed++;
				pthread_mutex_unlock(&r->mu);
			}
			continue;
		}
		pthread_mutex_lock(&r->mu);
		r->stats.num_seen++;
		pthread_mutex_unlock(&r->mu);
		j = run_job_get(r);
		if (snprintf(j->path, sizeof(j->path), "%s", e.path) >=
		    (int)sizeof(j->path)) {
			j->is_unseen = 1;
			run_finish(r, j, RP_OUT_SKIP_NOT_FILE, "path too long");
			continue;
		}
		if (e.kind == RP_WALK_SKIP) {
			/* a folder (or file) not looked into may hold
			 * documents; a link or a special file holds none */
			j->is_unseen = e.why != RP_WALK_SKIP_SYMLINK &&
				       e.why != RP_WALK_SKIP_SPECIAL &&
				       e.why != RP_WALK_SKIP_LOOP;
			run_finish(r, j, RP_OUT_SKIP_NOT_FILE, "%s", e.reason);
			continue;
		}
		if (!dir || e.dir_serial != dir_serial) {
			/* a folder's own descriptor, shared by its jobs */
			const int fd = fcntl(e.dir_fd, F_DUPFD_CLOEXEC, 0);

			run_folder_put(dir);
			dir = fd < 0 ? NULL : run_folder_new(fd);
			if (!dir) {
				if (fd < 0) {
					(void)rp_status_errno(st, errno,
							      "cannot keep the "
							      "folder of",
							      e.path);
				} else {
					(void)rp_status_fail(st, RP_ERR_NOMEM,
							     "out of memory");
				}
				run_finish(r, j, RP_OUT_FAIL_IO, "%s",
					   rp_status_msg(st));
				run_halt(r, rp_status_msg(st)); /* reports it */
				break;
			}
			dir_serial = e.dir_serial;
		}
		j->dir = run_folder_ref(dir);
		j->name = j->path + (e.name - e.path);
		rp_test_pause_point("run:walk");
		j->size = (uint64_t)e.sb.st_size;
		if (r->o->out_dir && run_out_path(r, j, &e)) {
			run_finish(r, j, RP_OUT_SKIP_NOT_FILE,
				   "output path too long");
			continue;
		}
		if (!r->has_rd_ring) {
			run_queue_push(&r->q_work, j);
			continue;
		}
		pending[num_pending++] = j;
		if (num_pending == r->ra_n) {
			rd_flush(r, pending, &num_pending);
		}
	}
	rd_flush(r, pending, &num_pending);
	run_folder_put(dir);
	rp_walk_free(wk);
	return err;
}
