#include "rp_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "walk.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
/* from <sanitizer/allocator_interface.h>, which gcc does not install */
size_t __sanitizer_get_current_allocated_bytes(void);

static size_t heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void)
{
	const struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}
#endif

/* ---- building and removing trees ---- */

static void mk_file(int dfd, const char *name)
{
	const int fd = openat(dfd, name,
			      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
}

/* mk_dir makes `name` in `dfd` and returns it opened */
static int mk_dir(int dfd, const char *name)
{
	int fd;

	assert_int_equal(mkdirat(dfd, name, 0755), 0);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* rm_tree_at removes `name` under `dfd`, whatever its depth or mode */
static void rm_tree_at(int dfd, const char *name)
{
	struct stat sb;
	struct dirent *de;
	DIR *d;
	int fd;

	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW)) {
		return;
	}
	if (!S_ISDIR(sb.st_mode)) {
		unlinkat(dfd, name, 0);
		return;
	}
	if ((sb.st_mode & 0700) != 0700 && fchmodat(dfd, name, 0700, 0)) {
		return;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		return;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			rm_tree_at(dirfd(d), de->d_name);
		}
	}
	closedir(d);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

static void mk_temp_dir(char *out, size_t out_cap)
{
	assert_true(snprintf(out, out_cap, "/tmp/rp-test-walk-XXXXXX") <
		    (int)out_cap);
	assert_non_null(mkdtemp(out));
}

/* esc shows a name with odd bytes escaped, for failure messages */
static const char *esc(const char *s)
{
	static char buf[8192];
	size_t n = 0;

	for (; *s && n + 5 < sizeof(buf); s++) {
		const unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f) {
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,
					      "\\x%02x", c);
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n] = '\0';
	return buf;
}

/* ---- the expected entries ---- */

struct want {
	size_t root;
	char *rel; /* owned */
	enum rp_walk_kind kind;
	enum rp_walk_skip why;
	int seen;
};

struct want_set {
	struct want *v; /* owned */
	size_t num;
	size_t cap;
};

static void want_add(struct want_set *ws, size_t root, const char *rel,
		     enum rp_walk_kind kind, enum rp_walk_skip why)
{
	if (ws->num == ws->cap) {
		ws->cap = ws->cap ? ws->cap * 2 : 64;
		ws->v = realloc(ws->v, ws->cap * sizeof(*ws->v));
		assert_non_null(ws->v);
	}
	ws->v[ws->num].root = root;
	ws->v[ws->num].rel = strdup(rel);
	assert_non_null(ws->v[ws->num].rel);
	ws->v[ws->num].kind = kind;
	ws->v[ws->num].why = why;
	ws->v[ws->num].seen = 0;
	ws->num++;
}

static void want_file(struct want_set *ws, size_t root, const char *rel)
{
	want_add(ws, root, rel, RP_WALK_FILE, RP_WALK_SKIP_NONE);
}

static int want_cmp(const void *a, const void *b)
{
	const struct want *x = a;
	const struct want *y = b;

	if (x->root != y->root) {
		return x->root < y->root ? -1 : 1;
	}
	return strcmp(x->rel, y->rel);
}

static void want_fini(struct want_set *ws)
{
	for (size_t i = 0; i < ws->num; i++) {
		free(ws->v[i].rel);
	}
	free(ws->v);
	memset(ws, 0, sizeof(*ws));
}

static const char *why_reason(enum rp_walk_skip why)
{
	switch (why) {
	case RP_WALK_SKIP_SYMLINK:
		return "symlink";
	case RP_WALK_SKIP_SPECIAL:
		return "special file";
	case RP_WALK_SKIP_LOOP:
		return "directory loop";
	case RP_WALK_SKIP_TOO_LONG:
		return "path too long";
	case RP_WALK_SKIP_TOO_DEEP:
		return "too deep";
	case RP_WALK_SKIP_UNREADABLE:
		return "unreadable directory: ";
	case RP_WALK_SKIP_TMP:
		return "temporary file";
	case RP_WALK_SKIP_NOSTAT:
		return "cannot stat: ";
	case RP_WALK_SKIP_CHANGED:
		return "changed during the walk";
	case RP_WALK_SKIP_NONE:
		break;
	}
	return "";
}

/*
 * open_beneath opens `rel` under `root_fd` refusing any symlink and any
 * step out of the root (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
 */
static int open_beneath(int root_fd, const char *rel)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
	return (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
}

/*
 * check_entry asserts what holds for every entry: path is the root joined
 * with rel, a FILE is a regular file reachable from its root without a
 * symlink or "..", and the entry is expected and new.
 */
static void check_entry(struct want_set *ws, const char *const *roots,
			const int *root_fds, const struct rp_walk_entry *e)
{
	const char *root = roots[e->root];
	const size_t root_len = strlen(root);
	struct want key = { e->root, (char *)(uintptr_t)e->rel, 0, 0, 0 };
	struct want *w;

	assert_non_null(e->path);
	assert_non_null(e->rel);
	if (root_fds[e->root] >= 0) {
		assert_memory_equal(e->path, root, root_len);
		assert_int_equal(e->path[root_len], '/');
		assert_string_equal(e->path + root_len + 1, e->rel);
		assert_ptr_equal(e->rel, e->path + root_len + 1);
	} else {
		assert_string_equal(e->path, root);
		assert_string_equal(e->rel, strrchr(root, '/') + 1);
	}
	w = bsearch(&key, ws->v, ws->num, sizeof(*ws->v), want_cmp);
	if (!w) {
		fail_msg("unexpected %s '%s' in root %zu (%s)",
			 e->kind == RP_WALK_FILE ? "file" : "skip", esc(e->rel),
			 e->root, e->reason ? e->reason : "");
	}
	if (w->seen) {
		fail_msg("'%s' reported twice", esc(e->rel));
	}
	w->seen = 1;
	if (e->kind != w->kind || e->why != w->why) {
		fail_msg("'%s': kind %d why %d (%s), want kind %d why %d",
			 esc(e->rel), e->kind, e->why,
			 e->reason ? e->reason : "", w->kind, w->why);
	}
	if (e->kind == RP_WALK_SKIP) {
		const char *want_reason = why_reason(e->why);

		assert_non_null(e->reason);
		assert_memory_equal(e->reason, want_reason,
				    strlen(want_reason));
		return;
	}
	assert_true(S_ISREG(e->sb.st_mode));
	if (root_fds[e->root] >= 0) {
		struct stat sb;
		const int fd = open_beneath(root_fds[e->root], e->rel);

		if (fd < 0 && errno == ENOSYS) {
			return; /* no openat2 here (valgrind 3.19 lacks it) */
		}
		if (fd < 0) {
			fail_msg("'%s' is not beneath its root without "
				 "symlinks: %s",
				 esc(e->rel), strerror(errno));
		}
		assert_int_equal(fstat(fd, &sb), 0);
		close(fd);
		assert_true(sb.st_dev == e->sb.st_dev);
		assert_true(sb.st_ino == e->sb.st_ino);
	}
}

/*
 * walk_expect walks `roots` and asserts that the entries are exactly those
 * of `ws`, each once. Returns the number of entries.
 */
static size_t walk_expect(struct want_set *ws, const char *const *roots,
			  size_t num_roots, unsigned flags)
{
	struct rp_status st = { 0 };
	struct rp_walk *w = NULL;
	struct rp_walk_entry e;
	int root_fds[8];
	size_t n = 0;

	assert_true(num_roots <= RP_ARRAY_LEN(root_fds));
	qsort(ws->v, ws->num, sizeof(*ws->v), want_cmp);
	for (size_t i = 0; i < ws->num; i++) {
		ws->v[i].seen = 0;
	}
	for (size_t i = 0; i < num_roots; i++) {
		struct stat sb;

		assert_int_equal(stat(roots[i], &sb), 0);
		root_fds[i] = S_ISDIR(sb.st_mode)
				      ? open(roots[i], O_PATH | O_DIRECTORY)
				      : -1;
	}
	assert_int_equal(rp_walk_new(&w, &st, roots, num_roots, flags), RP_OK);
	for (;;) {
		assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
		if (e.kind == RP_WALK_END) {
			break;
		}
		check_entry(ws, roots, root_fds, &e);
		n++;
	}
	/* the end stays the end */
	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_END);
	rp_walk_free(w);
	for (size_t i = 0; i < num_roots; i++) {
		if (root_fds[i] >= 0) {
			close(root_fds[i]);
		}
	}
	for (size_t i = 0; i < ws->num; i++) {
		if (!ws->v[i].seen) {
			fail_msg("'%s' in root %zu was not reported",
				 esc(ws->v[i].rel), ws->v[i].root);
		}
	}
	return n;
}

/* ---- the big tree ---- */

struct tree {
	char top[64];	    /* the temporary directory */
	char outside[96];   /* a directory outside every root */
	char a[96];	    /* root 0 */
	char b[96];	    /* root 1 */
	char c[96];	    /* root 2, a file */
	struct want_set ws; /* for roots a, b, c; default flags */
};

static const char tmp_name[] = ".x.rp-tmp-0123456789ab";

/*
 * build_long makes, under `dfd` (whose path is `base_len` bytes), nested
 * directories of long names down to a path of about 4000 bytes. There it
 * puts a file whose path is PATH_MAX - 1 bytes (a FILE), a file one byte
 * longer and a directory with a file in it (both "path too long").
 */
static void build_long(struct want_set *ws, int dfd, size_t base_len)
{
	char rel[PATH_MAX + NAME_MAX + 2] = "long";
	size_t rel_len = 4;
	size_t len = base_len + 1 + rel_len;
	char name[NAME_MAX + 1];
	int fd = mk_dir(dfd, "long");

	while (PATH_MAX - 2 - len > 200) {
		size_t k = PATH_MAX - 2 - len - 101;
		int next;

		if (k > 250) {
			k = 250;
		}
		memset(name, 'L', k);
		name[k] = '\0';
		next = mk_dir(fd, name);
		close(fd);
		fd = next;
		rel[rel_len++] = '/';
		memcpy(rel + rel_len, name, k + 1);
		rel_len += k;
		len += 1 + k;
	}
	/* a name of n1 bytes brings the path to PATH_MAX - 1 bytes */
	const size_t n1 = PATH_MAX - 2 - len;
	assert_true(n1 >= 100 && n1 < NAME_MAX);
	rel[rel_len++] = '/';

	memset(name, 'F', n1);
	name[n1] = '\0';
	mk_file(fd, name);
	memcpy(rel + rel_len, name, n1 + 1);
	assert_int_equal(base_len + 1 + strlen(rel), PATH_MAX - 1);
	want_file(ws, 0, rel);

	memset(name, 'G', n1 + 1);
	name[n1 + 1] = '\0';
	mk_file(fd, name);
	memcpy(rel + rel_len, name, n1 + 2);
	assert_int_equal(base_len + 1 + strlen(rel), PATH_MAX);
	want_add(ws, 0, rel, RP_WALK_SKIP, RP_WALK_SKIP_TOO_LONG);

	memset(name, 'D', n1 + 1);
	const int sub = mk_dir(fd, name);
	mk_file(sub, "never");
	close(sub);
	memcpy(rel + rel_len, name, n1 + 2);
	want_add(ws, 0, rel, RP_WALK_SKIP, RP_WALK_SKIP_TOO_LONG);
	close(fd);
}

static void build_nested(struct want_set *ws, int afd)
{
	/* six levels: the root and d0 .. d0/d1/d2/d3/d4, plus two siblings */
	static const char *const dirs[] = {
		"",	    "d0",	   "d0/d1",
		"d0/d1/d2", "d0/d1/d2/d3", "d0/d1/d2/d3/d4",
		"s1",	    "s1/s2",
	};
	int fds[RP_ARRAY_LEN(dirs)];
	char rel[256];

	fds[0] = afd;
	for (size_t i = 1; i < RP_ARRAY_LEN(dirs); i++) {
		const char *slash = strrchr(dirs[i], '/');
		size_t parent = 0;

		if (slash) {
			for (size_t j = 0; j < i; j++) {
				if (!strncmp(dirs[j], dirs[i],
					     (size_t)(slash - dirs[i])) &&
				    strlen(dirs[j]) ==
					    (size_t)(slash - dirs[i])) {
					parent = j;
				}
			}
		}
		fds[i] = mk_dir(fds[parent], slash ? slash + 1 : dirs[i]);
	}
	for (int i = 0; i < 1000; i++) {
		const size_t d = (size_t)i % RP_ARRAY_LEN(dirs);
		char name[16];

		snprintf(name, sizeof(name), "f%04d", i);
		mk_file(fds[d], name);
		snprintf(rel, sizeof(rel), "%s%s%s", dirs[d],
			 *dirs[d] ? "/" : "", name);
		want_file(ws, 0, rel);
	}
	/* a loop through a symlink: a symlink, never followed */
	assert_int_equal(symlinkat("../../../../..", fds[5], "loop"), 0);
	want_add(ws, 0, "d0/d1/d2/d3/d4/loop", RP_WALK_SKIP,
		 RP_WALK_SKIP_SYMLINK);
	for (size_t i = 1; i < RP_ARRAY_LEN(dirs); i++) {
		close(fds[i]);
	}
}

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	struct want_set *ws = &t->ws;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[256];
	int afd, bfd, fd;

	assert_non_null(t);
	mk_temp_dir(t->top, sizeof(t->top));
	snprintf(t->outside, sizeof(t->outside), "%s/outside", t->top);
	snprintf(t->a, sizeof(t->a), "%s/a", t->top);
	snprintf(t->b, sizeof(t->b), "%s/b", t->top);
	snprintf(t->c, sizeof(t->c), "%s/c_file", t->top);

	/* files outside the roots, behind a symlink: never reported */
	fd = open(t->top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	afd = mk_dir(fd, "outside");
	for (int i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "outside_%d", i);
		mk_file(afd, path);
	}
	close(afd);
	mk_file(fd, "c_file");
	want_file(ws, 2, "c_file");
	bfd = mk_dir(fd, "b");
	afd = mk_dir(fd, "a");
	close(fd);

	build_nested(ws, afd);
	close(mk_dir(afd, "empty"));

	assert_int_equal(symlinkat("f0000", afd, "link_file"), 0);
	want_add(ws, 0, "link_file", RP_WALK_SKIP, RP_WALK_SKIP_SYMLINK);
	assert_int_equal(symlinkat(t->outside, afd, "link_out"), 0);
	want_add(ws, 0, "link_out", RP_WALK_SKIP, RP_WALK_SKIP_SYMLINK);

	assert_int_equal(mkfifoat(afd, "fifo", 0600), 0);
	want_add(ws, 0, "fifo", RP_WALK_SKIP, RP_WALK_SKIP_SPECIAL);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", t->a);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	want_add(ws, 0, "sock", RP_WALK_SKIP, RP_WALK_SKIP_SPECIAL);

	/* our temporary file is absent by default; near misses are files */
	mk_file(afd, tmp_name);
	static const char *const near[] = {
		".x.rp-tmp-0123456789a",   ".x.rp-tmp-0123456789AB",
		"x.rp-tmp-0123456789ab",   "..rp-tmp-0123456789ab",
		".x.rp-tmp-0123456789abc", ".x.rp-tmp-0123456789ag",
	};
	for (size_t i = 0; i < RP_ARRAY_LEN(near); i++) {
		mk_file(afd, near[i]);
		want_file(ws, 0, near[i]);
	}
	/* a directory with such a name is walked like any other */
	fd = mk_dir(afd, ".d.rp-tmp-0123456789ab");
	mk_file(fd, "inner");
	close(fd);
	want_file(ws, 0, ".d.rp-tmp-0123456789ab/inner");

	/* names are bytes */
	mk_file(afd, "new\nline");
	want_file(ws, 0, "new\nline");
	mk_file(afd, "\xff\xfe");
	want_file(ws, 0, "\xff\xfe");
	fd = mk_dir(afd, "dir\n\xff");
	mk_file(fd, "x\ny");
	close(fd);
	want_file(ws, 0, "dir\n\xff/x\ny");

	/* mode 000: root reads it anyway, others get a SKIP */
	fd = mk_dir(afd, "locked");
	mk_file(fd, "inside");
	close(fd);
	assert_int_equal(fchmodat(afd, "locked", 0, 0), 0);
	if (geteuid() == 0) {
		want_file(ws, 0, "locked/inside");
	} else {
		want_add(ws, 0, "locked", RP_WALK_SKIP,
			 RP_WALK_SKIP_UNREADABLE);
	}

	build_long(ws, afd, strlen(t->a));
	close(afd);

	mk_file(bfd, "one");
	want_file(ws, 1, "one");
	fd = mk_dir(bfd, "sub");
	mk_file(fd, "two");
	close(fd);
	want_file(ws, 1, "sub/two");
	close(bfd);

	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;

	rm_tree_at(AT_FDCWD, t->top);
	want_fini(&t->ws);
	free(t);
	return 0;
}

static void test_walk_tree_reports_each_file_once(void **state)
{
	struct tree *t = *state;
	const char *const roots[] = { t->a, t->b, t->c };
	size_t num_files = 0;

	/* if a FIFO were opened, the walk would block: fail instead */
	alarm(60);
	const size_t n = walk_expect(&t->ws, roots, RP_ARRAY_LEN(roots), 0);
	alarm(0);
	for (size_t i = 0; i < t->ws.num; i++) {
		num_files += t->ws.v[i].kind == RP_WALK_FILE;
	}
	assert_int_equal(n, t->ws.num);
	assert_true(num_files > 1000);
}

static void test_walk_tmp_flag_reports_leftovers(void **state)
{
	struct tree *t = *state;
	const char *const roots[] = { t->a, t->b, t->c };
	char path[128];

	want_add(&t->ws, 0, tmp_name, RP_WALK_SKIP, RP_WALK_SKIP_TMP);
	alarm(60);
	(void)walk_expect(&t->ws, roots, RP_ARRAY_LEN(roots),
			  RP_WALK_REPORT_TMP);
	alarm(0);

	/* a symlink with a temporary file's name stays a symlink */
	snprintf(path, sizeof(path), "%s/b/.l.rp-tmp-0123456789ab", t->top);
	assert_int_equal(symlink("one", path), 0);
	want_add(&t->ws, 1, ".l.rp-tmp-0123456789ab", RP_WALK_SKIP,
		 RP_WALK_SKIP_SYMLINK);
	(void)walk_expect(&t->ws, roots, RP_ARRAY_LEN(roots),
			  RP_WALK_REPORT_TMP);
}

/* ---- roots ---- */

static void expect_new_fails(const char *const *roots, size_t num_roots,
			     unsigned flags, enum rp_err want,
			     const char *want_msg)
{
	struct rp_status st = { 0 };
	struct rp_walk *w = (struct rp_walk *)(uintptr_t)1;

	assert_int_equal(rp_walk_new(&w, &st, roots, num_roots, flags), want);
	assert_null(w);
	assert_int_equal(st.err, want);
	if (!strstr(st.msg, want_msg)) {
		fail_msg("message '%s' lacks '%s'", st.msg, want_msg);
	}
}

static void test_walk_roots_checked_and_overlaps_once(void **state)
{
	struct want_set ws = { 0 };
	char top[64], dir[96], sub[128], file[128], link_dir[96];
	char link_file[96], fifo[96], missing[96], dir_slash[128];
	int fd, sfd;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	snprintf(dir, sizeof(dir), "%s/dir", top);
	snprintf(sub, sizeof(sub), "%s/dir/sub", top);
	snprintf(file, sizeof(file), "%s/dir/sub/g", top);
	snprintf(link_dir, sizeof(link_dir), "%s/link_dir", top);
	snprintf(link_file, sizeof(link_file), "%s/link_file", top);
	snprintf(fifo, sizeof(fifo), "%s/fifo", top);
	snprintf(missing, sizeof(missing), "%s/missing", top);
	snprintf(dir_slash, sizeof(dir_slash), "%s/dir//", top);
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	const int dfd = mk_dir(fd, "dir");
	mk_file(dfd, "f");
	sfd = mk_dir(dfd, "sub");
	mk_file(sfd, "g");
	mk_file(sfd, "h");
	close(sfd);
	close(dfd);
	assert_int_equal(symlinkat("dir", fd, "link_dir"), 0);
	assert_int_equal(symlinkat("dir/f", fd, "link_file"), 0);
	assert_int_equal(mkfifoat(fd, "fifo", 0600), 0);
	close(fd);

	/* refusals */
	const char *const r_link_file[] = { link_file };
	expect_new_fails(r_link_file, 1, 0, RP_ERR_USAGE,
			 "is a symlink to a non-directory");
	const char *const r_fifo[] = { dir, fifo };
	expect_new_fails(r_fifo, 2, 0, RP_ERR_USAGE,
			 "is not a regular file or directory");
	const char *const r_missing[] = { missing };
	expect_new_fails(r_missing, 1, 0, RP_ERR_IO, "missing");
	const char *const r_empty[] = { "" };
	expect_new_fails(r_empty, 1, 0, RP_ERR_USAGE, "empty path");
	expect_new_fails(r_missing, 0, 0, RP_ERR_USAGE, "no path");
	const char *const r_dir[] = { dir };
	expect_new_fails(r_dir, 1, 1u << 5, RP_ERR_USAGE, "unknown walk flags");

	/* a symlink to a directory, named as a root, is followed once */
	const char *const r_link_dir[] = { link_dir };
	want_file(&ws, 0, "f");
	want_file(&ws, 0, "sub/g");
	want_file(&ws, 0, "sub/h");
	(void)walk_expect(&ws, r_link_dir, 1, 0);
	want_fini(&ws);

	/*
	 * Overlaps: a sub-root given first and last, the same root twice
	 * (once with trailing slashes), a file root inside: each file once.
	 */
	const char *const r_overlap[] = { sub, dir, file, dir_slash };
	want_file(&ws, 0, "h");
	want_file(&ws, 1, "f");
	want_file(&ws, 2, "g");
	(void)walk_expect(&ws, r_overlap, RP_ARRAY_LEN(r_overlap), 0);
	want_fini(&ws);
	const char *const r_overlap2[] = { dir, sub };
	want_file(&ws, 0, "f");
	want_file(&ws, 1, "g");
	want_file(&ws, 1, "h");
	(void)walk_expect(&ws, r_overlap2, RP_ARRAY_LEN(r_overlap2), 0);
	want_fini(&ws);

	rm_tree_at(AT_FDCWD, top);
}

/* a relative root gives relative paths; "/" is not doubled */
static void test_walk_relative_root_paths(void **state)
{
	struct rp_status st = { 0 };
	struct rp_walk *w = NULL;
	struct rp_walk_entry e;
	char top[64], cwd[PATH_MAX];
	const char *const roots[] = { "." };
	int fd;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	mk_file(fd, "only");
	close(fd);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(top), 0);
	assert_int_equal(rp_walk_new(&w, &st, roots, 1, 0), RP_OK);
	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_FILE);
	assert_string_equal(e.path, "./only");
	assert_string_equal(e.rel, "only");
	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_END);
	rp_walk_free(w);
	assert_int_equal(chdir(cwd), 0);
	rm_tree_at(AT_FDCWD, top);
}

/* a root replaced or removed between rp_walk_new and its turn is a SKIP */
static void test_walk_root_changed_is_skipped(void **state)
{
	struct rp_status st = { 0 };
	struct rp_walk *w = NULL;
	struct rp_walk_entry e;
	char top[64], dir[96], old[96], file[96], file2[96], gone[96];
	const char *const roots[] = { dir, file, gone };
	int fd;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	snprintf(dir, sizeof(dir), "%s/dir", top);
	snprintf(old, sizeof(old), "%s/old", top);
	snprintf(file, sizeof(file), "%s/file", top);
	snprintf(file2, sizeof(file2), "%s/file2", top);
	snprintf(gone, sizeof(gone), "%s/gone", top);
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	close(mk_dir(fd, "dir"));
	close(mk_dir(fd, "gone"));
	mk_file(fd, "file");
	mk_file(fd, "file2");
	close(fd);
	assert_int_equal(rp_walk_new(&w, &st, roots, 3, 0), RP_OK);

	/* new objects while the old ones still exist: new inode numbers */
	assert_int_equal(rename(dir, old), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(rename(file2, file), 0);
	assert_int_equal(rmdir(gone), 0);

	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_SKIP);
	assert_int_equal(e.why, RP_WALK_SKIP_CHANGED);
	assert_int_equal(e.root, 0);
	assert_string_equal(e.path, dir);
	assert_string_equal(e.rel, "");
	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_SKIP);
	assert_int_equal(e.why, RP_WALK_SKIP_CHANGED);
	assert_int_equal(e.root, 1);
	assert_string_equal(e.path, file);
	assert_string_equal(e.rel, "file");
	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_SKIP);
	assert_int_equal(e.why, RP_WALK_SKIP_NOSTAT);
	assert_int_equal(e.root, 2);
	assert_string_equal(e.path, gone);
	assert_string_equal(e.rel, "");
	assert_string_equal(e.reason, "cannot stat: No such file or directory");
	assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
	assert_int_equal(e.kind, RP_WALK_END);
	assert_int_equal(st.err, RP_OK);
	rp_walk_free(w);
	rm_tree_at(AT_FDCWD, top);
}

/* ---- depth ---- */

static void test_walk_depth_limit_too_deep(void **state)
{
	struct want_set ws = { 0 };
	char top[64], rel[1024] = "";
	size_t rel_len = 0;
	const char *const roots[] = { top };
	int fd;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	mk_file(fd, "f");
	want_file(&ws, 0, "f");
	/* level k is "d/d/.../d" (k times); the root is level 0 */
	for (int k = 1; k <= RP_WALK_MAX_DEPTH + 40; k++) {
		const int next = mk_dir(fd, "d");

		close(fd);
		fd = next;
		mk_file(fd, "f");
		if (k > 1) {
			rel[rel_len++] = '/';
		}
		rel[rel_len++] = 'd';
		rel[rel_len] = '\0';
		if (k < RP_WALK_MAX_DEPTH) {
			char f[sizeof(rel) + 2];

			snprintf(f, sizeof(f), "%s/f", rel);
			want_file(&ws, 0, f);
		} else if (k == RP_WALK_MAX_DEPTH) {
			want_add(&ws, 0, rel, RP_WALK_SKIP,
				 RP_WALK_SKIP_TOO_DEEP);
		}
	}
	close(fd);
	(void)walk_expect(&ws, roots, 1, 0);
	want_fini(&ws);
	rm_tree_at(AT_FDCWD, top);
}

/* ---- checks that run in a child process ---- */

#define CHILD_SKIP 77

/*
 * child_walk walks `root` and compares with `ws` without cmocka (whose
 * failures cannot cross fork): returns 0 if all matched.
 */
static int child_walk(const struct want_set *ws, const char *root)
{
	struct rp_status st = { 0 };
	struct rp_walk *w = NULL;
	struct rp_walk_entry e;
	const char *const roots[] = { root };
	size_t seen = 0;
	int bad = 0;

	if (rp_walk_new(&w, &st, roots, 1, 0)) {
		fprintf(stderr, "rp_walk_new: %s\n", rp_status_msg(&st));
		return 1;
	}
	for (;;) {
		if (rp_walk_next(w, &st, &e)) {
			fprintf(stderr, "rp_walk_next: %s\n",
				rp_status_msg(&st));
			bad = 1;
			break;
		}
		if (e.kind == RP_WALK_END) {
			break;
		}
		const struct want key = { 0, (char *)(uintptr_t)e.rel, 0, 0,
					  0 };
		const struct want *x =
			bsearch(&key, ws->v, ws->num, sizeof(*ws->v), want_cmp);
		const char *want_reason = why_reason(e.why);
		if (!x || x->kind != e.kind || x->why != e.why ||
		    (e.kind == RP_WALK_SKIP &&
		     strncmp(e.reason, want_reason, strlen(want_reason)))) {
			fprintf(stderr, "unexpected '%s': kind %d why %d %s\n",
				esc(e.rel), e.kind, e.why,
				e.reason ? e.reason : "");
			bad = 1;
			continue;
		}
		if (e.kind == RP_WALK_SKIP) {
			fprintf(stderr, "skip '%s': %s\n", esc(e.rel),
				e.reason);
		}
		seen++;
	}
	rp_walk_free(w);
	if (seen != ws->num) {
		fprintf(stderr, "saw %zu of %zu entries\n", seen, ws->num);
		bad = 1;
	}
	return bad;
}

/* run_child runs fn(arg) in a child and returns its exit status */
static int run_child(int (*fn)(const void *arg), const void *arg)
{
	int status = 0;
	const pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		_exit(fn(arg));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

struct child_args {
	const struct want_set *ws;
	const char *root;
	const struct want_set *ws2;
	const char *root2;
	const char *bind_src;
	const char *bind_dst;
};

static int unreadable_child(const void *arg)
{
	const struct child_args *a = arg;

	/* root reads mode 000 directories: become nobody if we are root */
	if (geteuid() == 0 && (setgroups(0, NULL) || setgid(65534) ||
			       setuid(65534) || geteuid() == 0)) {
		return CHILD_SKIP;
	}
	/* then a root that is unreadable itself: its rel is "" */
	return child_walk(a->ws, a->root) || child_walk(a->ws2, a->root2);
}

static void test_walk_unreadable_dir_skipped(void **state)
{
	struct want_set ws = { 0 }, ws2 = { 0 };
	char top[64], locked[96];
	struct child_args a = { &ws, top, &ws2, locked, NULL, NULL };
	int fd, sub;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	assert_int_equal(chmod(top, 0755), 0);
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	sub = mk_dir(fd, "ok");
	mk_file(sub, "f");
	close(sub);
	want_file(&ws, 0, "ok/f");
	sub = mk_dir(fd, "locked");
	mk_file(sub, "f");
	close(sub);
	assert_int_equal(fchmodat(fd, "locked", 0, 0), 0);
	want_add(&ws, 0, "locked", RP_WALK_SKIP, RP_WALK_SKIP_UNREADABLE);
	snprintf(locked, sizeof(locked), "%s/locked", top);
	want_add(&ws2, 0, "", RP_WALK_SKIP, RP_WALK_SKIP_UNREADABLE);
	/* readable but not searchable: names but no stat */
	sub = mk_dir(fd, "noexec");
	mk_file(sub, "g");
	close(sub);
	assert_int_equal(fchmodat(fd, "noexec", 0444, 0), 0);
	want_add(&ws, 0, "noexec/g", RP_WALK_SKIP, RP_WALK_SKIP_NOSTAT);
	mk_file(fd, "after");
	want_file(&ws, 0, "after");
	assert_int_equal(fchmodat(fd, "after", 0644, 0), 0);
	close(fd);
	qsort(ws.v, ws.num, sizeof(*ws.v), want_cmp);

	const int rc = run_child(unreadable_child, &a);
	rm_tree_at(AT_FDCWD, top);
	want_fini(&ws);
	want_fini(&ws2);
	if (rc == CHILD_SKIP) {
		skip(); /* root, and cannot become another user */
	}
	assert_int_equal(rc, 0);
}

static int write_file(const char *path, const char *s)
{
	const int fd = open(path, O_WRONLY | O_CLOEXEC);
	int bad;

	if (fd < 0) {
		return -1;
	}
	bad = write(fd, s, strlen(s)) != (ssize_t)strlen(s);
	close(fd);
	return bad ? -1 : 0;
}

/* enter_mount_ns gives this process a private mount namespace */
static int enter_mount_ns(void)
{
	char map[64];
	const uid_t uid = geteuid();
	const gid_t gid = getegid();

	if (unshare(CLONE_NEWNS)) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) {
			return -1;
		}
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if (write_file("/proc/self/setgroups", "deny") ||
		    write_file("/proc/self/uid_map", map)) {
			return -1;
		}
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if (write_file("/proc/self/gid_map", map)) {
			return -1;
		}
	}
	return mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
}

static int bind_child(const void *arg)
{
	const struct child_args *a = arg;

	/* the mount dies with the child's namespace */
	if (enter_mount_ns() ||
	    mount(a->bind_src, a->bind_dst, "none", MS_BIND, NULL)) {
		fprintf(stderr, "no bind mount: %s\n", strerror(errno));
		return CHILD_SKIP;
	}
	return child_walk(a->ws, a->root);
}

static void test_walk_bind_mount_loop_skipped(void **state)
{
	struct want_set ws = { 0 };
	char top[64], dst[96];
	struct child_args a = { &ws, top, NULL, NULL, top, dst };
	int fd, sub;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	snprintf(dst, sizeof(dst), "%s/sub/bind", top);
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	mk_file(fd, "f");
	want_file(&ws, 0, "f");
	sub = mk_dir(fd, "sub");
	mk_file(sub, "g");
	want_file(&ws, 0, "sub/g");
	close(mk_dir(sub, "bind"));
	want_add(&ws, 0, "sub/bind", RP_WALK_SKIP, RP_WALK_SKIP_LOOP);
	close(sub);
	close(fd);
	qsort(ws.v, ws.num, sizeof(*ws.v), want_cmp);

	const int rc = run_child(bind_child, &a);
	rm_tree_at(AT_FDCWD, top);
	want_fini(&ws);
	if (rc == CHILD_SKIP) {
		skip(); /* no mount namespace here */
	}
	assert_int_equal(rc, 0);
}

static int fd_limit_child(const void *arg)
{
	const char *root = arg;
	const char *const roots[] = { root };
	struct rp_status st = { 0 };
	struct rp_walk *w = NULL;
	struct rp_walk_entry e;
	struct rlimit rl;
	enum rp_err err;
	const int lowest = dup(0);

	/* room for about four directories */
	close(lowest);
	if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &rl)) {
		return 1;
	}
	rl.rlim_cur = (rlim_t)lowest + 4;
	if (setrlimit(RLIMIT_NOFILE, &rl) ||
	    rp_walk_new(&w, &st, roots, 1, 0)) {
		return 1;
	}
	do {
		err = rp_walk_next(w, &st, &e);
	} while (!err && e.kind != RP_WALK_END);
	if (err != RP_ERR_IO || st.sys_errno != EMFILE ||
	    !strstr(st.msg, "cannot open directory")) {
		fprintf(stderr, "want EMFILE, got %d: %s\n", err,
			rp_status_msg(&st));
		return 1;
	}
	/* the walk stays failed */
	rp_status_clear(&st);
	err = rp_walk_next(w, &st, &e);
	rp_walk_free(w);
	return err != RP_ERR_IO || e.kind != RP_WALK_END;
}

/* running out of file descriptors ends the walk: no subtree goes missing */
static void test_walk_fd_exhaustion_fails_for_good(void **state)
{
	char top[64];
	int fd;

	(void)state;
	mk_temp_dir(top, sizeof(top));
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (int k = 0; k < 20; k++) {
		const int next = mk_dir(fd, "d");

		close(fd);
		fd = next;
	}
	close(fd);
	const int rc = run_child(fd_limit_child, top);
	rm_tree_at(AT_FDCWD, top);
	assert_int_equal(rc, 0);
}

/* ---- memory ---- */

#define FLAT_FILES 200000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_walk_flat_dir_memory_stays_small(void **state)
{
	struct rp_status st = { 0 };
	struct rp_walk *w = NULL;
	struct rp_walk_entry e;
	char top[64], name[16];
	const char *const roots[] = { top };
	size_t num_files = 0, peak = 0, at_tenth = 0;
	int fd;

	(void)state;
	/* tmpfs when there is one: creating 200,000 files on a disk is slow */
	assert_true(snprintf(top, sizeof(top), "%s/rp-test-walk-XXXXXX",
			     access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm") <
		    (int)sizeof(top));
	assert_non_null(mkdtemp(top));
	fd = open(top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	double t0 = now_s();
	for (int i = 0; i < FLAT_FILES; i++) {
		snprintf(name, sizeof(name), "%06d", i);
		mk_file(fd, name);
	}
	double t1 = now_s();

	const size_t base = heap_in_use();
	assert_int_equal(rp_walk_new(&w, &st, roots, 1, 0), RP_OK);
	for (;;) {
		assert_int_equal(rp_walk_next(w, &st, &e), RP_OK);
		if (e.kind == RP_WALK_END) {
			break;
		}
		assert_int_equal(e.kind, RP_WALK_FILE);
		num_files++;
		if (num_files % 1000 == 1) {
			const size_t used = heap_in_use();
			const size_t grown = used > base ? used - base : 0;

			peak = grown > peak ? grown : peak;
			if (num_files <= FLAT_FILES / 10) {
				at_tenth = peak;
			}
		}
	}
	rp_walk_free(w);
	double t2 = now_s();
	assert_int_equal(num_files, FLAT_FILES);

	for (int i = 0; i < FLAT_FILES; i++) {
		snprintf(name, sizeof(name), "%06d", i);
		assert_int_equal(unlinkat(fd, name, 0), 0);
	}
	close(fd);
	assert_int_equal(rmdir(top), 0);
	print_message(
		"%d files in %s: create %.1f s, walk %.1f s, clean %.1f s; "
		"walker heap peak %zu bytes (%zu in the first tenth)\n",
		FLAT_FILES, top, t1 - t0, t2 - t1, now_s() - t2, peak,
		at_tenth);
	/* O(depth), not O(files): no growth after the first tenth */
	assert_true(peak < 1024 * 1024);
	assert_true(peak - at_tenth < 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_walk_tree_reports_each_file_once, tree_setup,
			tree_teardown),
		cmocka_unit_test_setup_teardown(
			test_walk_tmp_flag_reports_leftovers, tree_setup,
			tree_teardown),
		cmocka_unit_test(test_walk_roots_checked_and_overlaps_once),
		cmocka_unit_test(test_walk_relative_root_paths),
		cmocka_unit_test(test_walk_root_changed_is_skipped),
		cmocka_unit_test(test_walk_depth_limit_too_deep),
		cmocka_unit_test(test_walk_unreadable_dir_skipped),
		cmocka_unit_test(test_walk_bind_mount_loop_skipped),
		cmocka_unit_test(test_walk_fd_exhaustion_fails_for_good),
		cmocka_unit_test(test_walk_flat_dir_memory_stays_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
