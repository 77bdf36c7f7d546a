#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afile.h"

/* afile.c names temporaries with 6 random bytes in lower-case hex */
#define WALK_TMP_HEX_LEN 12

struct walk_root {
	char *path;	/* owned, without trailing slashes */
	size_t len;	/* strlen(path) */
	size_t rel_off; /* where rel starts in an entry's path */
	dev_t dev;
	ino_t ino;
	int is_dir;
	int is_link; /* a symlink to a directory, followed once */
	int is_dup;  /* the same object as an earlier root */
};

struct walk_id {
	dev_t dev;
	ino_t ino;
	size_t root; /* index in roots */
};

struct walk_frame {
	unsigned long serial; /* see rp_walk_entry.dir_serial */
	DIR *dir; /* owned */
	dev_t dev;
	ino_t ino;
	size_t path_len; /* this directory's path is w->path[0, path_len) */
};

struct rp_walk {
	unsigned flags;
	struct walk_root *roots; /* owned */
	size_t num_roots;
	size_t next_root;
	size_t cur_root;
	struct walk_id *ids; /* owned, every root's object, sorted */
	size_t num_ids;
	struct walk_frame *stack; /* owned, RP_WALK_MAX_DEPTH frames */
	size_t depth;
	unsigned long next_serial;
	int file_root_dir; /* owned: the folder of a root that is a file */
	unsigned long file_root_serial;
	enum rp_err err; /* a failure that ended the walk */
	/*
	 * Room for a usable path (shorter than PATH_MAX) plus one more
	 * name, so that a path too long can still be reported in full.
	 */
	char path[PATH_MAX + NAME_MAX + 2];
	char reason[128];
};

/* what to do with one directory entry */
enum walk_step {
	WALK_STEP_NEXT, /* nothing to report: read on */
	WALK_STEP_EMIT, /* `out` is filled */
	WALK_STEP_FAIL, /* w->err is set */
};

/* walk_id_cmp orders by object only: what bsearch needs */
static int walk_id_cmp(const void *a, const void *b)
{
	const struct walk_id *x = a;
	const struct walk_id *y = b;

	if (x->dev != y->dev) {
		return x->dev < y->dev ? -1 : 1;
	}
	if (x->ino != y->ino) {
		return x->ino < y->ino ? -1 : 1;
	}
	return 0;
}

/* walk_id_sort_cmp orders by object, then by root index */
static int walk_id_sort_cmp(const void *a, const void *b)
{
	const struct walk_id *x = a;
	const struct walk_id *y = b;
	const int c = walk_id_cmp(a, b);

	if (c || x->root == y->root) {
		return c;
	}
	return x->root < y->root ? -1 : 1;
}

static int walk_is_root(const struct rp_walk *w, const struct stat *sb)
{
	const struct walk_id key = { sb->st_dev, sb->st_ino, 0 };

	return bsearch(&key, w->ids, w->num_ids, sizeof(key), walk_id_cmp) !=
	       NULL;
}

static int walk_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* walk_is_tmp_name tells whether `name` is ".<name>.rp-tmp-<12 hex>" */
static int walk_is_tmp_name(const char *name)
{
	const size_t tag_len = sizeof(RP_AFILE_TMP_TAG) - 1;
	const size_t len = strlen(name);

	if (name[0] != '.' || len < 2 + tag_len + WALK_TMP_HEX_LEN) {
		return 0;
	}
	const char *tag = name + len - WALK_TMP_HEX_LEN - tag_len;
	if (memcmp(tag, RP_AFILE_TMP_TAG, tag_len)) {
		return 0;
	}
	for (size_t i = tag_len; i < tag_len + WALK_TMP_HEX_LEN; i++) {
		if (!walk_is_hex(tag[i])) {
			return 0;
		}
	}
	return 1;
}

static void walk_emit(struct rp_walk *w, struct rp_walk_entry *out,
		      enum rp_walk_kind kind, const struct stat *sb)
{
	const struct walk_root *r = &w->roots[w->cur_root];

	out->kind = kind;
	out->path = w->path;
	if (r->is_dir && !w->path[r->len]) {
		out->rel = w->path + r->len; /* the root itself: "" */
	} else {
		out->rel = w->path + r->rel_off;
	}
	out->root = w->cur_root;
	if (sb) {
		out->sb = *sb;
	}
	out->dir_fd = -1;
	if (w->depth) {
		const struct walk_frame *top = &w->stack[w->depth - 1];

		out->dir_fd = dirfd(top->dir);
		out->dir_serial = top->serial;
	} else if (w->file_root_dir >= 0) {
		out->dir_fd = w->file_root_dir;
		out->dir_serial = w->file_root_serial;
	}
	out->name = strrchr(w->path, '/');
	out->name = out->name ? out->name + 1 : w->path;
}

static void walk_skip(struct rp_walk *w, struct rp_walk_entry *out,
		      const struct stat *sb, enum rp_walk_skip why,
		      const char *reason)
{
	walk_emit(w, out, RP_WALK_SKIP, sb);
	out->why = why;
	out->reason = reason;
}

/* walk_skip_errno reports a SKIP whose reason ends with strerror(errnum) */
static void walk_skip_errno(struct rp_walk *w, struct rp_walk_entry *out,
			    const struct stat *sb, enum rp_walk_skip why,
			    const char *what, int errnum)
{
	if (snprintf(w->reason, sizeof(w->reason), "%s: %s", what,
		     strerror(errnum)) < 0) {
		w->reason[0] = '\0';
	}
	walk_skip(w, out, sb, why, w->reason);
}

static enum walk_step walk_fail(struct rp_walk *w, struct rp_status *st,
				int errnum, const char *what)
{
	if (errnum == ENOMEM) {
		w->err = rp_status_fail(st, RP_ERR_NOMEM, "%s '%s': %s", what,
					w->path, strerror(errnum));
	} else {
		w->err = rp_status_errno(st, errnum, what, w->path);
	}
	return WALK_STEP_FAIL;
}

/* walk_is_fatal tells whether an open failure should end the whole walk */
static int walk_is_fatal(int errnum)
{
	return errnum == EMFILE || errnum == ENFILE || errnum == ENOMEM;
}

static int walk_on_stack(const struct rp_walk *w, const struct stat *sb)
{
	for (size_t i = 0; i < w->depth; i++) {
		if (w->stack[i].dev == sb->st_dev &&
		    w->stack[i].ino == sb->st_ino) {
			return 1;
		}
	}
	return 0;
}

/*
 * walk_push makes the open directory `fd` (whose path is w->path) the top
 * of the stack, after checking that it is still the object `sb` named.
 * Takes `fd` in every case.
 */
static enum walk_step walk_push(struct rp_walk *w, struct rp_status *st,
				struct rp_walk_entry *out, int fd,
				const struct stat *sb, size_t path_len)
{
	struct stat now;
	DIR *d;

	if (fstat(fd, &now)) {
		const int e = errno;

		close(fd);
		walk_skip_errno(w, out, sb, RP_WALK_SKIP_NOSTAT, "cannot stat",
				e);
		return WALK_STEP_EMIT;
	}
	if (now.st_dev != sb->st_dev || now.st_ino != sb->st_ino) {
		close(fd);
		walk_skip(w, out, sb, RP_WALK_SKIP_CHANGED,
			  "changed during the walk");
		return WALK_STEP_EMIT;
	}
	d = fdopendir(fd);
	if (!d) {
		const int e = errno;

		close(fd);
		return walk_fail(w, st, e, "cannot read directory");
	}
	w->stack[w->depth].dir = d;
	w->stack[w->depth].serial = ++w->next_serial;
	w->stack[w->depth].dev = now.st_dev;
	w->stack[w->depth].ino = now.st_ino;
	w->stack[w->depth].path_len = path_len;
	w->depth++;
	if (w->flags & RP_WALK_REPORT_DIRS) {
		walk_emit(w, out, RP_WALK_DIR, &now);
		return WALK_STEP_EMIT;
	}
	return WALK_STEP_NEXT;
}

/* walk_open_failed sorts out why a directory w->path did not open */
static enum walk_step walk_open_failed(struct rp_walk *w, struct rp_status *st,
				       struct rp_walk_entry *out,
				       const struct stat *sb, int errnum,
				       int is_root)
{
	if (walk_is_fatal(errnum)) {
		return walk_fail(w, st, errnum, "cannot open directory");
	}
	if (errnum == ENOENT && !is_root) {
		return WALK_STEP_NEXT; /* removed since readdir */
	}
	if (errnum == ELOOP || errnum == ENOTDIR) {
		walk_skip(w, out, sb, RP_WALK_SKIP_CHANGED,
			  "changed during the walk");
		return WALK_STEP_EMIT;
	}
	walk_skip_errno(w, out, sb, RP_WALK_SKIP_UNREADABLE,
			"unreadable directory", errnum);
	return WALK_STEP_EMIT;
}

static enum walk_step walk_enter(struct rp_walk *w, struct rp_status *st,
				 struct rp_walk_entry *out, int dfd,
				 const char *name, const struct stat *sb,
				 size_t path_len)
{
	int fd;

	if (walk_on_stack(w, sb)) {
		walk_skip(w, out, sb, RP_WALK_SKIP_LOOP, "directory loop");
		return WALK_STEP_EMIT;
	}
	if (walk_is_root(w, sb)) {
		return WALK_STEP_NEXT; /* walked from its own root */
	}
	if (w->depth == RP_WALK_MAX_DEPTH) {
		walk_skip(w, out, sb, RP_WALK_SKIP_TOO_DEEP, "too deep");
		return WALK_STEP_EMIT;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		return walk_open_failed(w, st, out, sb, errno, 0);
	}
	return walk_push(w, st, out, fd, sb, path_len);
}

/*
 * walk_visit handles the entry `name` of the directory on top of the
 * stack.
 */
static enum walk_step walk_visit(struct rp_walk *w, struct rp_status *st,
				 struct rp_walk_entry *out, const char *name)
{
	const struct walk_frame *top = &w->stack[w->depth - 1];
	const int dfd = dirfd(top->dir);
	const size_t name_len = strlen(name);
	size_t len = top->path_len;
	int stat_err = 0;
	struct stat sb;

	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW)) {
		stat_err = errno;
		if (stat_err == ENOENT) {
			return WALK_STEP_NEXT; /* removed since readdir */
		}
		memset(&sb, 0, sizeof(sb));
	}
	const int is_tmp = S_ISREG(sb.st_mode) && walk_is_tmp_name(name);
	if (is_tmp && !(w->flags & RP_WALK_REPORT_TMP)) {
		return WALK_STEP_NEXT;
	}
	/* the parent is shorter than PATH_MAX, and the buffer holds a name */
	if (name_len > NAME_MAX) {
		RP_BUG("readdir returned a name longer than NAME_MAX");
	}
	if (len && w->path[len - 1] != '/') {
		w->path[len++] = '/';
	}
	memcpy(w->path + len, name, name_len + 1);
	len += name_len;

	if (stat_err) {
		walk_skip_errno(w, out, &sb, RP_WALK_SKIP_NOSTAT, "cannot stat",
				stat_err);
		return WALK_STEP_EMIT;
	}
	if (len >= PATH_MAX) {
		walk_skip(w, out, &sb, RP_WALK_SKIP_TOO_LONG, "path too long");
		return WALK_STEP_EMIT;
	}
	if (is_tmp) {
		walk_skip(w, out, &sb, RP_WALK_SKIP_TMP, "temporary file");
		return WALK_STEP_EMIT;
	}
	if (S_ISDIR(sb.st_mode)) {
		return walk_enter(w, st, out, dfd, name, &sb, len);
	}
	if (S_ISREG(sb.st_mode)) {
		if (walk_is_root(w, &sb)) {
			return WALK_STEP_NEXT; /* walked as its own root */
		}
		walk_emit(w, out, RP_WALK_FILE, &sb);
		return WALK_STEP_EMIT;
	}
	if (S_ISLNK(sb.st_mode)) {
		walk_skip(w, out, &sb, RP_WALK_SKIP_SYMLINK, "symlink");
		return WALK_STEP_EMIT;
	}
	walk_skip(w, out, &sb, RP_WALK_SKIP_SPECIAL, "special file");
	return WALK_STEP_EMIT;
}

/* walk_start begins the next root */
static enum walk_step walk_start(struct rp_walk *w, struct rp_status *st,
				 struct rp_walk_entry *out)
{
	const struct walk_root *r = &w->roots[w->next_root];
	struct stat sb;
	int fd;

	w->cur_root = w->next_root++;
	if (w->file_root_dir >= 0) {
		close(w->file_root_dir);
		w->file_root_dir = -1;
	}
	if (r->is_dup) {
		return WALK_STEP_NEXT;
	}
	memcpy(w->path, r->path, r->len + 1);
	if (r->is_link ? stat(w->path, &sb) : lstat(w->path, &sb)) {
		const int e = errno;

		memset(&sb, 0, sizeof(sb));
		walk_skip_errno(w, out, &sb, RP_WALK_SKIP_NOSTAT, "cannot stat",
				e);
		return WALK_STEP_EMIT;
	}
	if ((r->is_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) ||
	    sb.st_dev != r->dev || sb.st_ino != r->ino) {
		walk_skip(w, out, &sb, RP_WALK_SKIP_CHANGED,
			  "changed during the walk");
		return WALK_STEP_EMIT;
	}
	if (!r->is_dir) {
		char dir[PATH_MAX];
		const char *slash = strrchr(w->path, '/');

		if (!slash) {
			snprintf(dir, sizeof(dir), ".");
		} else if (slash == w->path) {
			snprintf(dir, sizeof(dir), "/");
		} else {
			snprintf(dir, sizeof(dir), "%.*s",
				 (int)(slash - w->path), w->path);
		}
		w->file_root_dir = open(dir, O_RDONLY | O_DIRECTORY |
						     O_CLOEXEC);
		if (w->file_root_dir < 0) {
			if (walk_is_fatal(errno)) {
				return walk_fail(w, st, errno,
						 "cannot open the folder of");
			}
			walk_skip_errno(w, out, &sb, RP_WALK_SKIP_UNREADABLE,
					"unreadable directory", errno);
			return WALK_STEP_EMIT;
		}
		w->file_root_serial = ++w->next_serial;
		walk_emit(w, out, RP_WALK_FILE, &sb);
		return WALK_STEP_EMIT;
	}
	fd = openat(AT_FDCWD, w->path,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC |
			    (r->is_link ? 0 : O_NOFOLLOW));
	if (fd < 0) {
		return walk_open_failed(w, st, out, &sb, errno, 1);
	}
	return walk_push(w, st, out, fd, &sb, r->len);
}

/* walk_pop closes the directory on top; w->path still names it */
static void walk_pop(struct rp_walk *w)
{
	struct walk_frame *top = &w->stack[--w->depth];

	w->path[top->path_len] = '\0';
	closedir(top->dir);
	top->dir = NULL;
}

enum rp_err rp_walk_next(struct rp_walk *w, struct rp_status *st,
			 struct rp_walk_entry *out)
{
	enum walk_step step = WALK_STEP_NEXT;

	memset(out, 0, sizeof(*out));
	if (w->err) {
		return rp_status_fail(st, w->err, "directory walk had failed");
	}
	while (step == WALK_STEP_NEXT) {
		if (!w->depth) {
			if (w->next_root == w->num_roots) {
				out->kind = RP_WALK_END;
				return RP_OK;
			}
			step = walk_start(w, st, out);
			continue;
		}
		DIR *d = w->stack[w->depth - 1].dir;
		errno = 0;
		const struct dirent *de = readdir(d);
		if (!de) {
			const int e = errno;
			struct stat sb;

			if (!e) {
				walk_pop(w);
				continue;
			}
			if (fstat(dirfd(d), &sb)) {
				memset(&sb, 0, sizeof(sb));
			}
			walk_pop(w);
			walk_skip_errno(w, out, &sb, RP_WALK_SKIP_UNREADABLE,
					"unreadable directory", e);
			step = WALK_STEP_EMIT;
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
			continue;
		}
		step = walk_visit(w, st, out, de->d_name);
	}
	if (step == WALK_STEP_FAIL) {
		memset(out, 0, sizeof(*out));
		return w->err;
	}
	return RP_OK;
}

/* walk_add_root checks `path` and records it as root number `i` */
static enum rp_err walk_add_root(struct rp_walk *w, struct rp_status *st,
				 size_t i, const char *path)
{
	struct walk_root *r = &w->roots[i];
	size_t len = strlen(path);
	struct stat sb;

	while (len > 1 && path[len - 1] == '/') {
		len--;
	}
	if (!len) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "empty path given as a root");
	}
	if (len >= PATH_MAX) {
		return rp_status_fail(st, RP_ERR_USAGE, "path too long: '%s'",
				      path);
	}
	r->path = strndup(path, len);
	if (!r->path) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	r->len = len;
	if (lstat(r->path, &sb)) {
		return rp_status_errno(st, errno, "cannot read", r->path);
	}
	if (S_ISLNK(sb.st_mode)) {
		if (stat(r->path, &sb)) {
			return rp_status_errno(st, errno,
					       "cannot follow the symlink",
					       r->path);
		}
		if (!S_ISDIR(sb.st_mode)) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "'%s' is a symlink to a "
					      "non-directory: name its target",
					      r->path);
		}
		r->is_link = 1;
	}
	if (S_ISDIR(sb.st_mode)) {
		r->is_dir = 1;
		r->rel_off = len + (r->path[len - 1] != '/');
	} else if (S_ISREG(sb.st_mode)) {
		const char *slash = strrchr(r->path, '/');

		r->rel_off = slash ? (size_t)(slash - r->path) + 1 : 0;
	} else {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "'%s' is not a regular file or directory",
				      r->path);
	}
	r->dev = sb.st_dev;
	r->ino = sb.st_ino;
	return RP_OK;
}

/*
 * walk_mark_dups sorts w->ids and flags the roots that name the same object
 * as an earlier root.
 */
static void walk_mark_dups(struct rp_walk *w)
{
	qsort(w->ids, w->num_ids, sizeof(*w->ids), walk_id_sort_cmp);
	for (size_t i = 1; i < w->num_ids; i++) {
		if (!walk_id_cmp(&w->ids[i - 1], &w->ids[i])) {
			w->roots[w->ids[i].root].is_dup = 1;
		}
	}
}

enum rp_err rp_walk_new(struct rp_walk **out, struct rp_status *st,
			const char *const *roots, size_t num_roots,
			unsigned flags)
{
	struct rp_walk *w = NULL;
	enum rp_err err;

	*out = NULL;
	if (!roots || !num_roots) {
		return rp_status_fail(st, RP_ERR_USAGE, "no path to walk");
	}
	if (flags & ~(unsigned)(RP_WALK_REPORT_TMP | RP_WALK_REPORT_DIRS)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "unknown walk flags 0x%x", flags);
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->roots = calloc(num_roots, sizeof(*w->roots))) ||
	    !(w->ids = calloc(num_roots, sizeof(*w->ids))) ||
	    !(w->stack = calloc(RP_WALK_MAX_DEPTH, sizeof(*w->stack)))) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	w->flags = flags;
	w->file_root_dir = -1;
	w->num_roots = num_roots;
	for (size_t i = 0; i < num_roots; i++) {
		err = walk_add_root(w, st, i, roots[i]);
		if (err) {
			goto out;
		}
		w->ids[i].dev = w->roots[i].dev;
		w->ids[i].ino = w->roots[i].ino;
		w->ids[i].root = i;
	}
	w->num_ids = num_roots;
	walk_mark_dups(w);
	*out = w;
	w = NULL;
	err = RP_OK;
out:
	rp_walk_free(w);
	return err;
}

void rp_walk_free(struct rp_walk *w)
{
	if (!w) {
		return;
	}
	while (w->depth) {
		walk_pop(w);
	}
	if (w->file_root_dir >= 0) {
		close(w->file_root_dir);
	}
	for (size_t i = 0; w->roots && i < w->num_roots; i++) {
		free(w->roots[i].path);
	}
	free(w->roots);
	free(w->ids);
	free(w->stack);
	free(w);
}
