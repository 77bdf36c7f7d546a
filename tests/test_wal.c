/*
 * test_wal.c: the in-place rewrite's write-ahead journal (io/wal.c): what
 * recovery makes of each state a document can be left in, a journal cut
 * short, a journal a live run holds, and one whose documents changed.
 */
#include "rp_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wal.h"

#define HDR 300
#define NDOC 5

struct fx {
	char dir[64];	/* the temporary folder */
	char store[128];
	char doc[NDOC][160];
	uint8_t old_hdr[NDOC][HDR], new_hdr[NDOC][HDR];
	uint8_t nonce[NDOC][16];
	struct stat sb[NDOC];
};

static void put(const char *path, const uint8_t *p, size_t n, off_t off)
{
	const int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
	close(fd);
}

static void get(const char *path, uint8_t *p, size_t n)
{
	const int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, p, n, 0), (ssize_t)n);
	close(fd);
}

/* NDOC documents: an old header, a nonce, a payload; journaled */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-wal.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	assert_int_equal(mkdir(f->store, 0700), 0);
	for (int i = 0; i < NDOC; i++) {
		snprintf(f->doc[i], sizeof(f->doc[i]), "%s/doc%d", f->dir, i);
		for (int k = 0; k < HDR; k++) {
			f->old_hdr[i][k] = (uint8_t)(k * 7 + i);
			f->new_hdr[i][k] = (uint8_t)(k * 7 + i + (k % 3 ? 1 : 0));
		}
		memset(f->nonce[i], 0x40 + i, 16);
		{
			const int d = open(f->doc[i], O_CREAT | O_WRONLY, 0600);
			uint8_t payload[1000];

			assert_true(d >= 0);
			memset(payload, i, sizeof(payload));
			assert_int_equal(write(d, f->old_hdr[i], HDR), HDR);
			assert_int_equal(write(d, f->nonce[i], 16), 16);
			assert_int_equal(write(d, payload, sizeof(payload)),
					 (ssize_t)sizeof(payload));
			close(d);
		}
		assert_int_equal(stat(f->doc[i], &f->sb[i]), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void journal(struct fx *f, struct rp_wal **out)
{
	struct rp_status st = { 0 };
	struct rp_wal_doc d[NDOC];

	for (int i = 0; i < NDOC; i++) {
		d[i].path = f->doc[i];
		d[i].sb = &f->sb[i];
		d[i].old_hdr = f->old_hdr[i];
		d[i].new_hdr = f->new_hdr[i];
		d[i].hdr_len = HDR;
		d[i].nonce = f->nonce[i];
	}
	assert_int_equal(rp_wal_open(out, &st, f->store, 1), RP_OK);
	assert_int_equal(rp_wal_append(*out, &st, d, NDOC), RP_OK);
}

static size_t journals(const struct fx *f)
{
	char path[160];
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/wal", f->store);
	d = opendir(path);
	if (!d) {
		return 0;
	}
	while ((e = readdir(d))) {
		n += strstr(e->d_name, ".wal") != NULL;
	}
	closedir(d);
	return n;
}

/* a run killed mid-batch: old, new, torn, torn the other way, untouched */
static void test_wal_recover_settles_each_state(void **state)
{
	struct fx *f = *state;
	struct rp_status st = { 0 };
	struct rp_wal_recovery rec;
	struct rp_wal *w;
	uint8_t got[HDR];

	journal(f, &w);
	put(f->doc[1], f->new_hdr[1], HDR, 0);		   /* written */
	put(f->doc[2], f->new_hdr[2], HDR / 2, 0);	   /* torn */
	put(f->doc[3], f->new_hdr[3] + 256, HDR - 256, 256); /* sectors */
	/* a live run's journal is not touched */
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, NULL, NULL),
			 RP_OK);
	assert_int_equal(rec.journals, 0);
	get(f->doc[2], got, HDR);
	assert_memory_not_equal(got, f->old_hdr[2], HDR);
	/* killed: its lock goes with it (closed without a commit) */
	rp_wal_close(w);
	assert_int_equal(journals(f), 1);
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, NULL, NULL),
			 RP_OK);
	assert_int_equal(rec.journals, 1);
	assert_int_equal(rec.records, NDOC);
	assert_int_equal(rec.as_new, 1);
	assert_int_equal(rec.restored, 2);
	assert_int_equal(rec.as_old, 2);
	assert_int_equal(rec.left + rec.busy + rec.failed, 0);
	get(f->doc[1], got, HDR);
	assert_memory_equal(got, f->new_hdr[1], HDR);
	for (int i = 2; i < 4; i++) {
		get(f->doc[i], got, HDR);
		assert_memory_equal(got, f->old_hdr[i], HDR);
	}
	assert_int_equal(journals(f), 0);
}

/* a committed batch leaves nothing; an empty journal goes on close */
static void test_wal_commit_empties(void **state)
{
	struct fx *f = *state;
	struct rp_status st = { 0 };
	struct rp_wal *w;

	journal(f, &w);
	assert_int_equal(rp_wal_commit(w, &st), RP_OK);
	rp_wal_close(w);
	assert_int_equal(journals(f), 0);
}

/* a document changed (or replaced) since is left, and named */
static int logged;

static void count_log(void *arg, const char *line)
{
	(void)arg;
	assert_non_null(strstr(line, "left"));
	logged++;
}

static void test_wal_recover_leaves_changed(void **state)
{
	struct fx *f = *state;
	struct rp_status st = { 0 };
	struct rp_wal_recovery rec;
	struct rp_wal *w;
	uint8_t z = 'Z', got[HDR];
	char moved[200];

	journal(f, &w);
	rp_wal_close(w);
	put(f->doc[0], f->new_hdr[0], HDR / 2, 0);
	put(f->doc[0], &z, 1, 0); /* neither old nor new */
	snprintf(moved, sizeof(moved), "%s.gone", f->doc[1]);
	assert_int_equal(rename(f->doc[1], moved), 0);
	put(f->doc[2], f->nonce[0], 16, HDR); /* another nonce */
	logged = 0;
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, count_log, NULL),
			 RP_OK);
	assert_int_equal(rec.left, 3);
	assert_int_equal(rec.as_old, 2);
	assert_int_equal(logged, 3);
	get(f->doc[0], got, HDR);
	assert_int_equal(got[0], 'Z');
	assert_int_equal(journals(f), 0);
}

/* a document another run holds: busy, the journal stays */
static void test_wal_recover_busy_keeps(void **state)
{
	struct fx *f = *state;
	struct rp_status st = { 0 };
	struct rp_wal_recovery rec;
	struct rp_wal *w;
	const int fd = open(f->doc[4], O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	journal(f, &w);
	rp_wal_close(w);
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, NULL, NULL),
			 RP_ERR_IO);
	assert_int_equal(rec.busy, 1);
	assert_int_equal(journals(f), 1);
	close(fd);
	rp_status_clear(&st);
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, NULL, NULL),
			 RP_OK);
	assert_int_equal(journals(f), 0);
}

/*
 * a journal being born (NAME.wal.new, made, not yet locked and named) is
 * not recovery's: a fresh one is left alone; one a minute old, which no
 * run holds, was a run killed before it wrote anything, and goes. A
 * journal rp_wal_open made is named and locked, with no .new left.
 */
static void test_wal_recover_leaves_unborn(void **state)
{
	struct fx *f = *state;
	struct rp_status st = { 0 };
	struct rp_wal_recovery rec;
	struct rp_wal *w;
	char fresh[200], old[200];
	struct timespec t[2];
	int fd;

	assert_int_equal(rp_wal_open(&w, &st, f->store, 0), RP_OK);
	assert_int_equal(journals(f), 1);
	snprintf(fresh, sizeof(fresh), "%s/wal/run-1-fresh.wal.new", f->store);
	snprintf(old, sizeof(old), "%s/wal/run-2-old.wal.new", f->store);
	fd = open(fresh, O_CREAT | O_EXCL | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	fd = open(old, O_CREAT | O_EXCL | O_WRONLY, 0600);
	assert_true(fd >= 0);
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 120;
	t[1] = t[0];
	assert_int_equal(futimens(fd, t), 0);
	close(fd);
	/* the live run's journal is busy, not taken; only the old one goes */
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, NULL, NULL),
			 RP_OK);
	assert_int_equal(rec.journals, 0);
	assert_int_equal(access(fresh, F_OK), 0);
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(journals(f), 2); /* the run's and the fresh one */
	rp_wal_close(w);
	unlink(fresh);
}

/* a journal cut short in its last record: the records before it count */
static void test_wal_recover_short_journal(void **state)
{
	struct fx *f = *state;
	struct rp_status st = { 0 };
	struct rp_wal_recovery rec;
	struct rp_wal *w;
	char cmd[300];

	journal(f, &w);
	rp_wal_close(w);
	put(f->doc[0], f->new_hdr[0], 10, 0); /* torn */
	snprintf(cmd, sizeof(cmd),
		 "f=$(ls '%s'/wal/*.wal) && truncate -s -7 \"$f\"", f->store);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(rp_wal_recover(f->store, &st, &rec, NULL, NULL),
			 RP_OK);
	assert_int_equal(rec.records, NDOC - 1);
	assert_int_equal(rec.restored, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_wal_recover_settles_each_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_commit_empties, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wal_recover_leaves_changed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_recover_busy_keeps,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_recover_leaves_unborn,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_recover_short_journal,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
