#include "rp_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afile.h"
#include "rp_buf.h"
#include "rp_file.h"

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	}
	closedir(d);
	return n;
}

static void test_afile_commit_replaces_abort_leaves_nothing(void **state)
{
	char dir[] = "/tmp/rp-test-afile-XXXXXX";
	char target[128];
	struct rp_afile af;
	struct rp_status st = { 0 };
	struct rp_buf b = { 0 };
	struct stat sb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(target, sizeof(target), "%s/t", dir);
	assert_int_equal(rp_file_write_atomic(&st, target,
					      (const uint8_t *)"old", 3, 0),
			 RP_OK);

	/* abort: the target keeps its old bytes, no temporary is left */
	assert_int_equal(rp_afile_open(&af, &st, target, 0), RP_OK);
	assert_int_equal(count_entries(dir), 2);
	assert_int_equal(rp_afile_write(&af, &st, (const uint8_t *)"new", 3),
			 RP_OK);
	rp_afile_fini(&af);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(rp_file_read(&b, &st, target, 100), RP_OK);
	assert_memory_equal(b.p, "old", 3);
	rp_buf_reset(&b);

	/* exclusive commit refuses an existing target */
	assert_int_equal(rp_afile_open(&af, &st, target, 1), RP_OK);
	assert_int_equal(rp_afile_write(&af, &st, (const uint8_t *)"new", 3),
			 RP_OK);
	assert_int_equal(rp_afile_commit(&af, &st), RP_ERR_EXISTS);
	rp_afile_fini(&af);
	assert_int_equal(count_entries(dir), 1);
	rp_status_clear(&st);

	/* commit replaces, 0600 */
	assert_int_equal(rp_afile_open(&af, &st, target, 0), RP_OK);
	assert_int_equal(rp_afile_write(&af, &st, (const uint8_t *)"new!", 4),
			 RP_OK);
	assert_int_equal(rp_afile_commit(&af, &st), RP_OK);
	rp_afile_fini(&af);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(rp_file_read(&b, &st, target, 100), RP_OK);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.p, "new!", 4);
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	rp_buf_fini(&b);
	unlink(target);
	assert_int_equal(rmdir(dir), 0);
}

static void test_afile_missing_dir_io_error(void **state)
{
	struct rp_afile af;
	struct rp_status st = { 0 };

	(void)state;
	assert_int_equal(rp_afile_open(&af, &st, "/nonexistent-dir/x", 0),
			 RP_ERR_IO);
	assert_non_null(strstr(st.msg, "/nonexistent-dir/x"));
	rp_afile_fini(&af);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_afile_commit_replaces_abort_leaves_nothing),
		cmocka_unit_test(test_afile_missing_dir_io_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
