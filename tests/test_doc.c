#include "rp_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "doc.h"
#include "lifecycle.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "store.h"

#define PASS "doc test"

struct fixture {
	char dir[256];
	char store[300];
	struct rp_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rp_status st = { 0 };

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-test-doc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	assert_int_equal(rp_store_create(&f->s, &st, f->store,
					 (const uint8_t *)PASS, strlen(PASS)),
			 RP_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[300];

	rp_store_free(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void path(char out[512], const struct fixture *f, const char *name)
{
	snprintf(out, 512, "%s/%s", f->dir, name);
}

static void write_random(const char *p, size_t len, int is_compressible)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct rp_status st = { 0 };

	assert_non_null(buf);
	if (is_compressible) {
		for (size_t i = 0; i < len; i++) {
			buf[i] = (uint8_t)("abcabcabd"[i % 9] + (i / 4096) % 3);
		}
	} else {
		assert_int_equal(RAND_bytes(buf, (int)(len ? len : 1)), 1);
	}
	unlink(p);
	assert_int_equal(rp_file_write_atomic(&st, p, buf, len, 0), RP_OK);
	free(buf);
}

static void assert_same_file(const char *a, const char *b)
{
	struct rp_buf x = { 0 }, y = { 0 };
	struct rp_status st = { 0 };

	assert_int_equal(rp_file_read(&x, &st, a, 1 << 26), RP_OK);
	assert_int_equal(rp_file_read(&y, &st, b, 1 << 26), RP_OK);
	assert_int_equal(x.len, y.len);
	if (x.len) {
		assert_memory_equal(x.p, y.p, x.len);
	}
	rp_buf_fini(&x);
	rp_buf_fini(&y);
}

/* no_tmp_left returns 1 if no ".*.rp-tmp-*" file is in f->dir */
static int no_tmp_left(const struct fixture *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int ok = 1;

	assert_non_null(d);
	while ((e = readdir(d))) {
		ok &= !strstr(e->d_name, ".rp-tmp-");
	}
	closedir(d);
	return ok;
}

static void round_trip(struct fixture *f, size_t len, int is_compress)
{
	char in[512], prot[512], out[512];
	struct rp_protect_opts po = { .owner = "alice", .template_id = "conf",
				      .is_compress = is_compress };
	struct rp_unprotect_opts uo = { 0 };
	struct rp_status st = { 0 };
	struct rp_doc_info info;
	struct stat sb;

	path(in, f, "in.bin");
	path(prot, f, "in.bin.age");
	path(out, f, "out.bin");
	unlink(prot);
	unlink(out);
	write_random(in, len, is_compress);
	assert_int_equal(rp_doc_protect(f->s, &st, &po, in, prot), RP_OK);
	assert_int_equal(stat(prot, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(rp_doc_inspect(f->s, &st, prot, &info), RP_OK);
	assert_int_equal(info.license_st.err, RP_OK);
	assert_int_equal(info.key_st.err, RP_OK);
	assert_int_equal(info.stanza_st.err, RP_OK);
	assert_int_equal(info.nonce_st.err, RP_OK);
	assert_int_equal(info.sig_st.err, RP_OK);
	assert_int_equal(info.mac_st.err, RP_OK);
	assert_int_equal(info.lic.plaintext_size, len);
	assert_int_equal(info.lic.encoding, is_compress ? 1 : 0);
	assert_string_equal(info.lic.owner, "alice");
	assert_string_equal(info.lic.template_id, "conf");
	assert_int_equal(rp_doc_unprotect(f->s, &st, &uo, prot, out), RP_OK);
	assert_same_file(in, out);
	assert_int_equal(stat(out, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* an existing output is not replaced without is_force */
	assert_int_equal(rp_doc_unprotect(f->s, &st, &uo, prot, out),
			 RP_ERR_EXISTS);
	assert_true(no_tmp_left(f));
}

static void test_doc_round_trip_sizes_rsa_and_x25519(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	static const size_t sizes[] = { 0,	   1,	   65535,
					65536,	   65537,  3 * 1024 * 1024 + 7 };
	size_t idx;

	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_RSA2048, 0, 1,
					     &idx),
			 RP_OK);
	assert_int_equal(rp_store_template_create(f->s, &st, "conf", "view"),
			 RP_OK);
	for (size_t i = 0; i < RP_ARRAY_LEN(sizes); i++) {
		round_trip(f, sizes[i], 0);
		round_trip(f, sizes[i], 1);
	}
	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1,
					     &idx),
			 RP_OK);
	round_trip(f, 0, 0);
	round_trip(f, 100000, 1);
}

static void test_doc_no_active_key_refused(void **state)
{
	struct fixture *f = *state;
	char in[512], prot[512];
	struct rp_protect_opts po = { 0 };
	struct rp_status st = { 0 };

	path(in, f, "in.bin");
	path(prot, f, "in.bin.age");
	write_random(in, 10, 0);
	assert_int_equal(rp_doc_protect(f->s, &st, &po, in, prot),
			 RP_ERR_STATE);
	assert_non_null(strstr(st.msg, "no active key"));
	assert_int_equal(access(prot, F_OK), -1);
	assert_true(no_tmp_left(f));
}

static void flip(const char *p, off_t off)
{
	const int fd = open(p, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x04;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_doc_any_flipped_byte_refused_nothing_written(void **state)
{
	struct fixture *f = *state;
	char in[512], prot[512], bad[512], out[512];
	struct rp_protect_opts po = { 0 };
	struct rp_unprotect_opts uo = { 0 };
	struct rp_status st = { 0 };
	struct rp_buf orig = { 0 };
	struct stat sb;
	size_t idx;

	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1,
					     &idx),
			 RP_OK);
	path(in, f, "in.bin");
	path(prot, f, "in.bin.age");
	path(bad, f, "bad.age");
	path(out, f, "out.bin");
	write_random(in, 70000, 0);
	assert_int_equal(rp_doc_protect(f->s, &st, &po, in, prot), RP_OK);
	assert_int_equal(rp_file_read(&orig, &st, prot, 1 << 20), RP_OK);
	assert_int_equal(stat(prot, &sb), 0);
	/* every byte of the header and nonce, then a sample of the payload */
	for (off_t off = 0; off < sb.st_size;
	     off += off < 2000 ? 1 : 997) {
		enum rp_err err;

		rp_status_clear(&st);
		unlink(bad);
		assert_int_equal(rp_file_write_atomic(&st, bad, orig.p,
						      orig.len, 0),
				 RP_OK);
		flip(bad, off);
		err = rp_doc_unprotect(f->s, &st, &uo, bad, out);
		if (err == RP_OK) {
			fail_msg("flip at offset %lld was not detected",
				 (long long)off);
		}
		assert_true(err == RP_ERR_FORMAT || err == RP_ERR_AUTH ||
			    err == RP_ERR_NOKEY || err == RP_ERR_UNLICENSED);
		assert_true(st.msg[0] != '\0');
		assert_int_equal(access(out, F_OK), -1);
	}
	assert_true(no_tmp_left(f));
	rp_buf_fini(&orig);
}

static void test_doc_truncated_and_extended_refused(void **state)
{
	struct fixture *f = *state;
	char in[512], prot[512], out[512];
	struct rp_protect_opts po = { 0 };
	struct rp_unprotect_opts uo = { 0 };
	struct rp_status st = { 0 };
	struct stat sb;
	size_t idx;
	int fd;

	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1,
					     &idx),
			 RP_OK);
	path(in, f, "in.bin");
	path(prot, f, "in.bin.age");
	path(out, f, "out.bin");
	write_random(in, 200000, 0);
	assert_int_equal(rp_doc_protect(f->s, &st, &po, in, prot), RP_OK);
	assert_int_equal(stat(prot, &sb), 0);
	/* appended bytes */
	fd = open(prot, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(rp_doc_unprotect(f->s, &st, &uo, prot, out),
			 RP_ERR_FORMAT);
	assert_int_equal(access(out, F_OK), -1);
	/* truncations: last byte, mid payload, inside the header */
	static const off_t cuts[] = { 1, 2, 70000, 150000 };
	for (size_t i = 0; i < RP_ARRAY_LEN(cuts); i++) {
		rp_status_clear(&st);
		assert_int_equal(truncate(prot, sb.st_size - cuts[i]), 0);
		assert_true(rp_doc_unprotect(f->s, &st, &uo, prot, out) !=
			    RP_OK);
		assert_int_equal(access(out, F_OK), -1);
	}
	rp_status_clear(&st);
	assert_int_equal(truncate(prot, 100), 0);
	assert_int_equal(rp_doc_unprotect(f->s, &st, &uo, prot, out),
			 RP_ERR_FORMAT);
	assert_true(no_tmp_left(f));
}

static void test_doc_key_not_in_store_nokey(void **state)
{
	struct fixture *f = *state;
	struct rp_store *other = NULL;
	char in[512], prot[512], out[512], ostore[512];
	struct rp_protect_opts po = { 0 };
	struct rp_unprotect_opts uo = { 0 };
	struct rp_status st = { 0 };
	size_t idx;

	path(ostore, f, "other");
	assert_int_equal(rp_store_create(&other, &st, ostore,
					 (const uint8_t *)"x", 1),
			 RP_OK);
	assert_int_equal(rp_store_key_create(other, &st, RP_ALG_X25519, 0, 1,
					     &idx),
			 RP_OK);
	path(in, f, "in.bin");
	path(prot, f, "in.bin.age");
	path(out, f, "out.bin");
	write_random(in, 1000, 0);
	assert_int_equal(rp_doc_protect(other, &st, &po, in, prot), RP_OK);
	assert_int_equal(rp_doc_unprotect(f->s, &st, &uo, prot, out),
			 RP_ERR_NOKEY);
	assert_non_null(strstr(st.msg, "not in this store"));
	rp_store_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_doc_round_trip_sizes_rsa_and_x25519, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_doc_no_active_key_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_doc_any_flipped_byte_refused_nothing_written,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_doc_truncated_and_extended_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_doc_key_not_in_store_nokey,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
