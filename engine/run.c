/*
 * The bulk re-protection engine. Threads and queues:
 *
 *   caller (walker) --q_work--> workers (jobs) --q_sign--> signer
 *        --q_write--> writer --> journal / stats
 *
 * Every queue is bounded and every job comes from a fixed pool, so memory
 * stays flat whatever the number of documents; a document's bytes stream
 * through fixed buffers, so it stays flat whatever their size too.
 */
#include "run_internal.h"

/* pool_size: the jobs the stages can hold at most with these sizes */
static size_t pool_size(size_t batch, size_t workers, size_t ra)
{
	return (3 + 2 * RP_RUN_WRITERS) * batch + 4 * workers + 8 + 3 * ra;
}

/*
 * fit_fd_limit sizes the job pool to the limit of open files: a job in
 * flight holds up to RP_FD_PER_JOB descriptors (the document, its new
 * file and a second one holding its lock, a share of its folder) besides the
 * run's own (RP_FD_RESERVE: the store, the rings, the walk, the journal). The
 * soft limit is raised to the hard one first; then the batch and the read-ahead
 * shrink until the pool fits. A pool of fewer jobs than the stages could hold
 * only makes the walker wait for one. A limit too low for a few jobs is
 * refused.
 */
static enum rp_err fit_fd_limit(struct run *r, struct rp_status *st)
{
	struct rlimit rl;
	size_t fit;

	r->ra_n = RP_READ_AHEAD;
	r->num_jobs = pool_size(r->batch, r->num_workers, r->ra_n);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		return RP_OK;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= RP_FD_RESERVE + RP_FD_PER_JOB * r->num_jobs) {
		return RP_OK;
	}
	fit = rl.rlim_cur > RP_FD_RESERVE
		      ? (size_t)(rl.rlim_cur - RP_FD_RESERVE) / RP_FD_PER_JOB
		      : 0;
	if (fit < 4) {
		st->sys_errno = EMFILE;
		return rp_status_fail(st, RP_ERR_IO,
				      "the limit of open files (ulimit -n) "
				      "is %llu: a run needs at least %d; "
				      "raise it",
				      (unsigned long long)rl.rlim_cur,
				      RP_FD_RESERVE + RP_FD_PER_JOB * 4);
	}
	r->num_jobs = fit;
	if (r->batch > fit / 2) {
		r->batch = fit / 2;
	}
	if (r->ra_n > fit / 4) {
		r->ra_n = fit / 4;
	}
	return RP_OK;
}

/* dir_chain: (dev, ino) of the folder `fd` and of every folder above it */
static size_t dir_chain(int fd, dev_t *dev, ino_t *ino, size_t cap)
{
	size_t n = 0;
	int cur = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	while (cur >= 0 && n < cap) {
		struct stat sb;
		int up;

		if (fstat(cur, &sb) < 0 ||
		    (n && dev[n - 1] == sb.st_dev && ino[n - 1] == sb.st_ino)) {
			break; /* "/" is its own parent */
		}
		dev[n] = sb.st_dev;
		ino[n++] = sb.st_ino;
		up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(cur);
		cur = up;
	}
	if (cur >= 0) {
		close(cur);
	}
	return n;
}

static int in_chain(const dev_t *dev, const ino_t *ino, size_t n,
		    const struct stat *sb)
{
	for (size_t i = 0; i < n; i++) {
		if (dev[i] == sb->st_dev && ino[i] == sb->st_ino) {
			return 1;
		}
	}
	return 0;
}

/*
 * open_out opens (makes) the mirror's root and refuses one that overlaps
 * a tree: the same folder, one inside the other, or one reached through
 * a bind mount. Folders are compared by device and inode, never by name:
 * the mirror's folder and every folder above it against every folder of
 * the trees (a walk of the trees' folders before the run), and each root
 * and the folders above it against the mirror.
 */
static enum rp_err check_out(const struct rp_run_opts *o, struct rp_status *st,
			     struct stat *out_sb)
{
	dev_t odev[256] = { 0 }, rdev[256] = { 0 };
	ino_t oino[256] = { 0 }, rino[256] = { 0 };
	char buf[PATH_MAX];
	struct rp_walk *wk = NULL;
	struct rp_walk_entry e;
	struct stat osb;
	size_t on;
	enum rp_err err;
	int fd, is_there;

	/* the mirror's folder, or the nearest one above it that exists */
	snprintf(buf, sizeof(buf), "%s", o->out_dir);
	while ((fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 &&
	       errno == ENOENT) {
		char *slash = strrchr(buf, '/');

		if (!slash) {
			snprintf(buf, sizeof(buf), ".");
		} else if (slash == buf) {
			buf[1] = '\0';
		} else {
			*slash = '\0';
		}
	}
	if (fd < 0 || fstat(fd, &osb) < 0) {
		err = rp_status_errno(st, errno, "cannot open", buf);
		if (fd >= 0) {
			close(fd);
		}
		return err;
	}
	on = dir_chain(fd, odev, oino, RP_ARRAY_LEN(odev));
	close(fd);
	is_there = !strcmp(buf, o->out_dir);
	err = rp_walk_new(&wk, st, o->roots, o->num_roots, RP_WALK_REPORT_DIRS);
	while (!err && !(err = rp_walk_next(wk, st, &e)) &&
	       e.kind != RP_WALK_END) {
		size_t rn;

		if (e.kind != RP_WALK_DIR && e.dir_fd < 0) {
			continue;
		}
		if (e.kind == RP_WALK_DIR && in_chain(odev, oino, on, &e.sb)) {
			err = rp_status_fail(st, RP_ERR_USAGE,
					     "--out '%s' and '%s' overlap (the "
					     "same folder, or one inside the "
					     "other, perhaps through a bind "
					     "mount): the mirror must be "
					     "outside the trees",
					     o->out_dir, e.path);
			break;
		}
		if (!is_there || (e.kind == RP_WALK_DIR && e.rel[0])) {
			continue; /* no tree is inside a mirror not made yet */
		}
		/* a root (or a file root's folder): what is above it */
		rn = dir_chain(e.dir_fd, rdev, rino, RP_ARRAY_LEN(rdev));
		if (in_chain(rdev, rino, rn, &osb)) {
			err = rp_status_fail(st, RP_ERR_USAGE,
					     "--out '%s' and '%s' overlap: the "
					     "tree is inside the mirror",
					     o->out_dir, e.path);
		}
	}
	rp_walk_free(wk);
	*out_sb = osb;
	return err;
}

enum rp_err rp_run_check_out(const struct rp_run_opts *o, struct rp_status *st)
{
	struct stat sb;

	return check_out(o, st, &sb);
}

/* open_out checks the mirror (check_out), then makes and opens it */
static enum rp_err open_out(struct run *r, struct rp_status *st)
{
	dev_t odev[256] = { 0 };
	ino_t oino[256] = { 0 };
	char buf[PATH_MAX];
	struct stat osb = { 0 };
	size_t on;
	enum rp_err err = check_out(r->o, st, &osb);

	if (err) {
		return err;
	}
	/* then made, as the user named it (0700) */
	snprintf(buf, sizeof(buf), "%s", r->o->out_dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(buf, 0700);
			*p = '/';
		}
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
		return rp_status_errno(st, errno, "cannot create", buf);
	}
	r->out_fd = open(r->o->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->out_fd < 0) {
		return rp_status_errno(st, errno, "cannot open", r->o->out_dir);
	}
	on = dir_chain(r->out_fd, odev, oino, RP_ARRAY_LEN(odev));
	if (!in_chain(odev, oino, on, &osb)) {
		/* what was checked is no longer above it: swapped meanwhile */
		return rp_status_fail(st, RP_ERR_IO,
				      "'%s' changed while the run checked it",
				      r->o->out_dir);
	}
	return RP_OK;
}

enum rp_err rp_run_recover(const char *store_dir, struct rp_status *st,
			   struct rp_wal_recovery *out,
			   void (*log)(void *arg, const char *line),
			   void *log_arg)
{
	return rp_wal_recover(store_dir, st, out, log, log_arg);
}

enum rp_err rp_run(struct rp_store *s, struct rp_status *st,
		   const struct rp_run_opts *o, struct rp_run_result *res)
{
	struct run r;
	struct writer w[RP_RUN_WRITERS];
	pthread_t *workers = NULL, signer, writer[RP_RUN_WRITERS], progress;
	pthread_t counter;
	int has_counter = 0;
	struct worker_arg *args = NULL;
	size_t num_started = 0;
	int has_signer = 0, has_writer[RP_RUN_WRITERS] = { 0 };
	int has_progress = 0, has_writers = 1;
	long active;
	struct rp_key_ops_stats kops0 = { 0 }, kops;
	struct run_bind bind0 = { 0 };
	enum rp_err err;

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	memset(w, 0, sizeof(w));
	if (o->is_census && (!o->is_dry_run || o->out_dir || o->is_verify)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "a census is a dry run of its own");
	}
	if (!o->is_dry_run) {
		/* a killed run's torn headers are made whole before anything */
		err = rp_run_recover(rp_store_dir(s), st, &res->recovery,
				     o->log, o->log_arg);
		if (err) {
			return err;
		}
	}
	r.s = s;
	r.o = o;
	r.kr = rp_store_keyring(s);
	active = rp_keyring_active(r.kr);
	if (active < 0) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "no active key to move documents to: "
				      "run 'reprotect rekey' first");
	}
	r.active = (size_t)active;
	r.num_workers =
		o->jobs ? o->jobs : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
	if (!r.num_workers) {
		r.num_workers = 1;
	}
	r.batch = o->batch ? o->batch : 64;
	if (r.batch > 1024) {
		r.batch = 1024;
	}
	/* what the stages hold at most, within the limit of open files */
	err = fit_fd_limit(&r, st);
	if (err) {
		return err;
	}
	r.out_fd = -1;
	pthread_mutex_init(&r.mu, NULL);
	pthread_mutex_init(&r.pool_mu, NULL);
	pthread_cond_init(&r.pool_cv, NULL);
	r.jobs = calloc(r.num_jobs, sizeof(*r.jobs));
	r.keys = calloc(r.kr->num_keys + 1, sizeof(*r.keys));
	r.state_now = calloc(r.kr->num_keys + 1, 1);
	r.sigs = calloc(r.num_workers, sizeof(*r.sigs));
	if (!r.jobs || !r.keys || !r.state_now || !r.sigs ||
	    !run_queue_init(&r.q_work, 2 * r.ra_n + 2 * r.num_workers) ||
	    !run_queue_init(&r.q_sign, r.batch * 2) ||
	    !run_queue_init(&r.q_write, 2 * RP_RUN_WRITERS)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r.num_jobs; i++) {
		r.jobs[i].next_free = r.free_list;
		r.free_list = &r.jobs[i];
	}
	for (size_t k = 0; k < r.kr->num_keys; k++) {
		memcpy(r.keys[k].id, r.kr->keys[k].id, RP_KEY_ID_LEN);
		r.keys[k].state = r.kr->keys[k].state;
		r.state_now[k] = r.kr->keys[k].state;
	}
	if (o->out_dir && !o->is_dry_run && !o->is_verify) {
		err = open_out(&r, st);
		if (err) {
			goto out;
		}
	}
	/* one backend worker per crypto worker, plus one for the signer */
	err = rp_store_set_workers(s, st, r.num_workers + 1);
	if (err) {
		goto out;
	}
	for (size_t i = 0; !err && i < RP_RUN_WRITERS; i++) {
		err = run_writer_init(&w[i], &r, st);
	}
	if (err) {
		goto out;
	}
	res->io_used = r.use_uring ? "uring" : "sync";
	/* the keystore quota: this run's share, counted from here */
	/* a dry run's samples are measured unpaced: the quota is estimated */
	rp_store_set_key_ops(s, o->is_dry_run ? 0 : o->key_ops, o->stop);
	rp_store_key_ops(s, &kops0);
	r.bind = (struct run_bind){ .cpu = run_cpu_seconds(),
				    .idle = run_idle_seconds(),
				    .waited = kops0.waited,
				    .busy = kops0.busy };
	bind0 = r.bind;
	r.samples_left = o->is_dry_run && !o->is_census && !o->out_dir
				 ? RP_RUN_SAMPLES
				 : 0;
	res->key_ops_allowed = o->key_ops;
	run_rd_init(&r);
	clock_gettime(CLOCK_MONOTONIC, &r.start);
	/* the coarse clock is the one file times come from */
	clock_gettime(CLOCK_REALTIME_COARSE, &r.started);
	workers = calloc(r.num_workers, sizeof(*workers));
	args = calloc(r.num_workers, sizeof(*args));
	if (!workers || !args) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (; num_started < r.num_workers; num_started++) {
		args[num_started].r = &r;
		args[num_started].index = num_started;
		if (pthread_create(&workers[num_started], NULL, run_worker_main,
				   &args[num_started])) {
			break;
		}
	}
	has_signer = !pthread_create(&signer, NULL, run_signer_main, &r);
	for (size_t i = 0; i < RP_RUN_WRITERS; i++) {
		has_writer[i] = !pthread_create(&writer[i], NULL,
						run_writer_main, &w[i]);
		has_writers &= has_writer[i];
	}
	if (o->progress) {
		has_progress =
			!pthread_create(&progress, NULL, run_progress_main, &r);
		has_counter =
			!pthread_create(&counter, NULL, run_count_main, &r);
	}
	if (num_started < r.num_workers || !has_signer || !has_writers) {
		err = rp_status_fail(st, RP_ERR_IO, "cannot start threads");
	} else {
		/* the store's setup left key material deep on this stack */
		rp_stack_wipe();
		err = run_walk(&r, st);
	}
	run_queue_close(&r.q_work);
	for (size_t i = 0; i < num_started; i++) {
		pthread_join(workers[i], NULL);
	}
	run_queue_close(&r.q_sign);
	if (has_signer) {
		pthread_join(signer, NULL);
	}
	run_queue_close(&r.q_write);
	for (size_t i = 0; i < RP_RUN_WRITERS; i++) {
		if (has_writer[i]) {
			pthread_join(writer[i], NULL);
		}
	}
	/*
	 * a run that went through lets its counting walk finish (it walks
	 * what the run walked, without the work: it is done or nearly), so
	 * the report has the total; a stopped one cuts it short
	 */
	if (has_counter && !(o->stop && *o->stop) && !run_is_halted(&r)) {
		pthread_join(counter, NULL);
		has_counter = 0;
	}
	pthread_mutex_lock(&r.mu);
	r.is_done = 1;
	pthread_mutex_unlock(&r.mu);
	if (has_progress) {
		pthread_join(progress, NULL);
	}
	if (has_counter) {
		pthread_join(counter, NULL);
	}
	run_snapshot(&r, &res->total);
	rp_store_key_ops(s, &kops);
	res->key_ops = kops.count - kops0.count;
	res->key_ops_busy = kops.busy - kops0.busy;
	res->key_ops_waited = kops.waited - kops0.waited;
	res->key_ops_pace = kops.pace;
	{
		const struct run_bind end = { .wall = res->total.seconds,
					      .cpu = run_cpu_seconds(),
					      .idle = run_idle_seconds(),
					      .waited = kops.waited,
					      .busy = kops.busy };
		struct run_bind d;

		run_bind_delta(&d, &bind0, &end);
		res->total.binding = run_binding_of(&r, &d);
	}
	res->estimate = r.est;
	res->workers = r.num_workers;
	rp_store_set_key_ops(s, 0, NULL); /* o->stop is the caller's */
	res->was_stopped = (o->stop && *o->stop) || r.halted;
	if (r.halted) {
		snprintf(res->stop_reason, sizeof(res->stop_reason), "%s",
			 r.halt_reason);
	} else if (res->was_stopped) {
		snprintf(res->stop_reason, sizeof(res->stop_reason),
			 "stopped by a signal");
	}
	rp_key_id_hex(res->active_key, r.kr->keys[r.active].id);
	res->num_keys = r.kr->num_keys + 1;
	res->keys = r.keys;
	r.keys = NULL;
out:
	free(workers);
	free(args);
	for (size_t i = 0; i < RP_RUN_WRITERS; i++) {
		run_writer_fini(&w[i]);
	}
	free(r.keys);
	free(r.state_now);
	if (r.out_fd >= 0) {
		close(r.out_fd);
	}
	run_rd_fini(&r);
	run_fini(&r);
	return err;
}

void rp_run_result_fini(struct rp_run_result *r)
{
	free(r->keys);
	memset(r, 0, sizeof(*r));
}
