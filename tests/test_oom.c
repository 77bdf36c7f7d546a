/*
 * Out of memory is an error like any other: every allocation a document
 * operation makes is failed in turn, one at a time (the Nth fails) and for
 * good (every one from the Nth on fails), and the operation must then
 * return RP_ERR_NOMEM (or RP_ERR_CRYPTO, for a library that does not say
 * why) with a status: never abort, never read a NULL buffer, never call a
 * document malformed, tampered or not for our key because an allocation
 * failed, and leave nothing behind.
 *
 * The allocations: this program is linked with --wrap=malloc,calloc,
 * realloc (tests/CMakeLists.txt), so every call from our own code, the
 * static libraries' included, comes here; libcrypto's come through
 * CRYPTO_set_mem_functions. Calls from inside libc and libzstd's own
 * (outside the wipe allocator) are not counted.
 */
#include "rp_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "afile.h"
#include "age_header.h"
#include "age_recip.h"
#include "age_stream.h"
#include "doc.h"
#include "doc_internal.h"
#include "keystore.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "rp_ossl.h"
#include "store.h"

#define PASS	  "oom test"
#define MAX_TRIES 200000 /* no operation allocates that often */

/*
 * every allocation fails in turn; under valgrind (50 times slower) the
 * first 64, then one in `stride`
 */
static long stride = 1;

/* the failing allocator */

enum fail_mode { FAIL_NTH, FAIL_FROM };

static long fail_at;	     /* 0: off; else the call that fails */
static enum fail_mode fail_mode;
static long fail_calls;	     /* calls since arm() */
static long fail_count;	     /* calls made to fail since arm() */

/* NOLINTBEGIN(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
/* NOLINTEND(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */

static int should_fail(void)
{
	if (!fail_at) {
		return 0;
	}
	fail_calls++;
	if (fail_calls == fail_at ||
	    (fail_mode == FAIL_FROM && fail_calls > fail_at)) {
		fail_count++;
		return 1;
	}
	return 0;
}

/* NOLINTBEGIN(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return should_fail() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (p && !n) {
		return __real_realloc(p, n); /* a free */
	}
	return should_fail() ? NULL : __real_realloc(p, n);
}
/* NOLINTEND(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (!n) {
		return NULL;
	}
	if (should_fail()) {
		rp_ossl_note_nomem();
		return NULL;
	}
	return __real_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	if (!p) {
		return ossl_malloc(n, file, line);
	}
	if (!n) {
		free(p);
		return NULL;
	}
	if (should_fail()) {
		rp_ossl_note_nomem();
		return NULL;
	}
	return __real_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

/* arm makes call `n` from now fail (FAIL_NTH), or it and every later one */
static void arm(long n, enum fail_mode mode)
{
	ERR_clear_error();
	rp_ossl_nomem_clear();
	fail_calls = 0;
	fail_count = 0;
	fail_mode = mode;
	fail_at = n;
}

/* disarm stops failing; returns how many calls were made to fail */
static long disarm(void)
{
	fail_at = 0;
	ERR_clear_error();
	rp_ossl_nomem_clear();
	return fail_count;
}

/* is_oom_err: what a failed allocation may surface as */
static int is_oom_err(enum rp_err err)
{
	return err == RP_ERR_NOMEM || err == RP_ERR_CRYPTO;
}

static void check_oom_status(const char *what, long n, enum rp_err err,
			     const struct rp_status *st)
{
	if (!is_oom_err(err) || err != st->err) {
		fail_msg("%s, allocation %ld failed: returned %s, status %s: "
			 "%s",
			 what, n, rp_err_name(err), rp_err_name(st->err),
			 rp_status_msg(st));
	}
}

/* documents */

/*
 * write_doc writes an age file whose header holds an X25519-shaped stanza
 * and a second one with a body of `body_len` bytes (past 4 KiB: the header
 * does not fit the first read), a MAC, a nonce and `payload_len` bytes
 */
static void write_doc(const char *path, size_t body_len, size_t payload_len)
{
	static const uint8_t file_key[RP_AGE_FILE_KEY_LEN] = { 1, 2, 3 };
	const char *a1[] = { "X25519", "AAAA" };
	const char *a2[] = { "big", "1" };
	uint8_t *body = calloc(1, body_len + 1);
	uint8_t *tail = calloc(1, RP_AGE_NONCE_LEN + payload_len);
	uint8_t x[32] = { 7 };
	struct rp_buf b = { 0 };
	struct rp_status st = { 0 };

	assert_non_null(body);
	assert_non_null(tail);
	assert_int_equal(rp_age_header_begin(&b), RP_OK);
	assert_int_equal(rp_age_header_add_stanza(&b, a1, 2, x, sizeof(x),
						  NULL, NULL),
			 RP_OK);
	assert_int_equal(rp_age_header_add_stanza(&b, a2, 2, body, body_len,
						  NULL, NULL),
			 RP_OK);
	assert_int_equal(rp_age_header_finish(&b, &st, file_key), RP_OK);
	assert_int_equal(rp_buf_add(&b, tail, RP_AGE_NONCE_LEN + payload_len),
			 RP_OK);
	unlink(path);
	assert_int_equal(rp_file_write_atomic(&st, path, b.p, b.len, 0), RP_OK);
	rp_buf_fini(&b);
	free(body);
	free(tail);
}

struct fixture {
	char dir[256];
	char small[300]; /* header fits the first 4 KiB, file longer */
	char big[300];	 /* header of some 8 KiB */
	char store[300];
	char doc_rsa[300], doc_x[300], doc_age[300], plain[300], out[300];
	struct rp_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	/* thousands of runs commit files: where fsync costs nothing if can */
	snprintf(f->dir, sizeof(f->dir), "%s/rp-test-oom-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->small, sizeof(f->small), "%s/small.age", f->dir);
	snprintf(f->big, sizeof(f->big), "%s/big.age", f->dir);
	write_doc(f->small, 100, 8000);
	write_doc(f->big, 6000, 100);
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

/*
 * for_each_failure runs `op` with allocation 1, 2, ... failing (`mode`)
 * until it runs with no allocation failing, which must succeed. `check`
 * looks at each run that met a failure.
 */
typedef enum rp_err op_fn(struct fixture *f, struct rp_status *st);
typedef void check_fn(struct fixture *f, const char *what, long n,
		      enum rp_err err, const struct rp_status *st);

static long for_each_failure(struct fixture *f, const char *what, op_fn *op,
			     check_fn *check, enum fail_mode mode)
{
	long n, num_failed = 0;

	for (n = 1; n < MAX_TRIES; n += n < 64 ? 1 : stride) {
		struct rp_status st = { 0 };
		enum rp_err err;
		long failed;

		arm(n, mode);
		err = op(f, &st);
		failed = disarm();
		if (!failed) {
			if (err) {
				fail_msg("%s: failed with no allocation "
					 "failing: %s",
					 what, rp_status_msg(&st));
			}
			break;
		}
		num_failed += err != RP_OK;
		check(f, what, n, err, &st);
	}
	assert_true(n < MAX_TRIES);
	return num_failed;
}

/* the header parse */

static struct rp_buf hdr_bytes;

static enum rp_err op_parse(struct fixture *f, struct rp_status *st)
{
	struct rp_age_header h;
	enum rp_err err;

	(void)f;
	err = rp_age_header_parse(&h, st, hdr_bytes.p, hdr_bytes.len);
	rp_age_header_fini(&h);
	return err;
}

static void check_plain(struct fixture *f, const char *what, long n,
			enum rp_err err, const struct rp_status *st)
{
	(void)f;
	if (err) {
		check_oom_status(what, n, err, st);
	}
}

static void test_oom_header_parse(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };

	rp_buf_fini(&hdr_bytes);
	assert_int_equal(rp_file_read(&hdr_bytes, &st, f->big, 1 << 20),
			 RP_OK);
	/* its one allocation, the bodies, fails: out of memory, not format */
	assert_true(for_each_failure(f, "parse", op_parse, check_plain,
				     FAIL_NTH) > 0);
	assert_true(for_each_failure(f, "parse", op_parse, check_plain,
				     FAIL_FROM) > 0);
	rp_buf_fini(&hdr_bytes);
}

/*
 * the engine's path: the walker read the first 4 KiB ahead and lends them
 * (rp_doc_hdr_load); a header parse that fails for memory is not "read
 * more", and a failure never leaves a NULL buffer with a length (the
 * engine then looks at the first bytes to tell an age file)
 */
static const char *load_path;
static uint8_t prefix[RP_DOC_HDR_PREFIX];

static void check_hdr(const struct rp_doc_hdr *d, const char *what, long n)
{
	if (d->buf_len && !d->buf) {
		fail_msg("%s, allocation %ld failed: a NULL buffer of %zu "
			 "bytes",
			 what, n, d->buf_len);
	}
	if (d->buf_len >= sizeof(RP_AGE_VERSION_LINE) - 1 &&
	    memcmp(d->buf, RP_AGE_VERSION_LINE,
		   sizeof(RP_AGE_VERSION_LINE) - 1)) {
		fail_msg("%s, allocation %ld failed: the buffer lost the "
			 "document's first bytes",
			 what, n);
	}
}

static enum rp_err op_load(struct fixture *f, struct rp_status *st)
{
	struct rp_doc_hdr d;
	size_t got = 0;
	enum rp_err err;

	(void)f;
	memset(&d, 0, sizeof(d));
	d.fd = open(load_path, O_RDONLY | O_CLOEXEC);
	assert_true(d.fd >= 0);
	assert_int_equal(fstat(d.fd, &d.sb), 0);
	assert_int_equal(rp_read_full(d.fd, st, NULL, prefix, sizeof(prefix),
				      0, &got),
			 RP_OK);
	assert_int_equal(got, sizeof(prefix));
	err = rp_doc_hdr_load(&d, st, prefix, got);
	check_hdr(&d, "rp_doc_hdr_load", fail_at);
	if (!err) {
		assert_int_equal(d.hdr.num_stanzas, 2);
	}
	rp_doc_hdr_fini(&d);
	return err;
}

static enum rp_err op_read(struct fixture *f, struct rp_status *st)
{
	struct rp_doc_hdr d;
	enum rp_err err;

	(void)f;
	err = rp_doc_hdr_read(&d, st, load_path, O_NOFOLLOW);
	check_hdr(&d, "rp_doc_hdr_read", fail_at);
	if (!err) {
		assert_int_equal(d.hdr.num_stanzas, 2);
	}
	rp_doc_hdr_fini(&d);
	return err;
}

static void test_oom_header_load_and_read(void **state)
{
	struct fixture *f = *state;
	const char *paths[] = { f->small, f->big };

	for (size_t i = 0; i < RP_ARRAY_LEN(paths); i++) {
		load_path = paths[i];
		assert_true(for_each_failure(f, paths[i], op_load, check_plain,
					     FAIL_FROM) > 0);
		/* one failure, and the header parse does not try again */
		assert_true(for_each_failure(f, paths[i], op_load, check_plain,
					     FAIL_NTH) > 0);
		assert_true(for_each_failure(f, paths[i], op_read, check_plain,
					     FAIL_NTH) > 0);
		assert_true(for_each_failure(f, paths[i], op_read, check_plain,
					     FAIL_FROM) > 0);
	}
}

/* whole documents, with a store: RSA and X25519 */

static int is_clean(const struct fixture *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int ok = 1;

	assert_non_null(d);
	while ((e = readdir(d))) {
		ok &= !strstr(e->d_name, ".rp-tmp-");
	}
	closedir(d);
	return ok && access(f->out, F_OK) != 0;
}

/* cold: the store's caches (public keys, soft keys) start empty each run */
static void cold(struct fixture *f)
{
	struct rp_status st = { 0 };

	assert_int_equal(rp_store_lock(f->s, &st, 0), RP_OK);
	assert_int_equal(rp_store_set_workers(f->s, &st, 1), RP_OK);
	unlink(f->out);
}

static const char *doc_path;
static int is_unlicensed; /* doc_path was made by plain age */

static enum rp_err op_inspect(struct fixture *f, struct rp_status *st)
{
	struct rp_doc_info *info = calloc(1, sizeof(*info));
	const struct rp_status *checks[7];
	enum rp_err err;

	if (!info) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = rp_doc_inspect(f->s, st, doc_path, info);
	checks[0] = &info->license_st;
	checks[1] = &info->key_st;
	checks[2] = &info->stanza_st;
	checks[3] = &info->nonce_st;
	checks[4] = &info->sig_st;
	checks[5] = &info->mac_st;
	checks[6] = &info->tail_st; /* the payload's end: reads, decrypts */
	for (size_t k = 0; !err && k < RP_ARRAY_LEN(checks); k++) {
		if (checks[k]->err &&
		    !(is_unlicensed && checks[k]->err == RP_ERR_UNLICENSED)) {
			/* what inspect would show: the first failed check */
			*st = *checks[k];
			err = st->err;
		}
	}
	free(info);
	return err;
}

static enum rp_err op_unprotect(struct fixture *f, struct rp_status *st)
{
	const struct rp_unprotect_opts uo = { .allow_unlicensed =
						      is_unlicensed };

	return rp_doc_unprotect(f->s, st, &uo, doc_path, f->out);
}

static enum rp_err op_protect(struct fixture *f, struct rp_status *st)
{
	const struct rp_protect_opts po = { .owner = "o", .is_compress = 1 };

	return rp_doc_protect(f->s, st, &po, f->plain, f->out);
}

static void check_doc(struct fixture *f, const char *what, long n,
		      enum rp_err err, const struct rp_status *st)
{
	if (err) {
		check_oom_status(what, n, err, st);
		assert_true(is_clean(f));
	}
	cold(f);
}

static void doc_ops(struct fixture *f, const char *doc, int is_plain_age)
{
	static const enum fail_mode modes[] = { FAIL_NTH, FAIL_FROM };

	doc_path = doc;
	is_unlicensed = is_plain_age;
	for (size_t m = 0; m < RP_ARRAY_LEN(modes); m++) {
		cold(f);
		assert_true(for_each_failure(f, "inspect", op_inspect,
					     check_doc, modes[m]) > 0);
		cold(f);
		assert_true(for_each_failure(f, "unprotect", op_unprotect,
					     check_doc, modes[m]) > 0);
		unlink(f->out);
	}
}

static enum rp_err add_to_buf(void *arg, const uint8_t *p, size_t len)
{
	return rp_buf_add(arg, p, len);
}

/* write_plain_age writes what plain age makes for X25519 key `idx` */
static void write_plain_age(struct fixture *f, size_t idx)
{
	const struct rp_key_info *k = &rp_store_keyring(f->s)->keys[idx];
	static const uint8_t text[] = "made by age, no license";
	struct rp_stream *str = calloc(1, sizeof(*str));
	struct rp_recip_stanza rs;
	struct rp_status st = { 0 };
	struct rp_buf b = { 0 };
	uint8_t fk[RP_AGE_FILE_KEY_LEN], nonce[RP_AGE_NONCE_LEN];
	uint8_t recip[RP_X25519_LEN];
	size_t len = sizeof(recip);
	EVP_PKEY *pub = NULL;

	assert_non_null(str);
	assert_int_equal(RAND_bytes(fk, sizeof(fk)), 1);
	assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
	assert_int_equal(rp_key_pubkey(&pub, &st, k), RP_OK);
	assert_int_equal(EVP_PKEY_get_raw_public_key(pub, recip, &len), 1);
	assert_int_equal(rp_x25519_wrap(&rs, &st, recip, fk), RP_OK);
	assert_int_equal(rp_age_header_begin(&b), RP_OK);
	assert_int_equal(rp_recip_stanza_add(&b, &rs, NULL, NULL), RP_OK);
	assert_int_equal(rp_age_header_finish(&b, &st, fk), RP_OK);
	assert_int_equal(rp_buf_add(&b, nonce, sizeof(nonce)), RP_OK);
	assert_int_equal(rp_stream_init(str, &st, RP_STREAM_SEAL, fk, nonce),
			 RP_OK);
	assert_int_equal(rp_stream_feed(str, &st, text, sizeof(text),
					add_to_buf, &b),
			 RP_OK);
	assert_int_equal(rp_stream_finish(str, &st, add_to_buf, &b), RP_OK);
	assert_int_equal(rp_file_write_atomic(&st, f->doc_age, b.p, b.len, 0),
			 RP_OK);
	rp_stream_fini(str);
	free(str);
	rp_buf_fini(&b);
	EVP_PKEY_free(pub);
}

static void test_oom_documents(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	const struct rp_protect_opts po = { .owner = "o" };
	static const enum fail_mode modes[] = { FAIL_NTH, FAIL_FROM };
	size_t idx;

	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	snprintf(f->plain, sizeof(f->plain), "%s/plain", f->dir);
	snprintf(f->doc_rsa, sizeof(f->doc_rsa), "%s/rsa.age", f->dir);
	snprintf(f->doc_x, sizeof(f->doc_x), "%s/x.age", f->dir);
	snprintf(f->doc_age, sizeof(f->doc_age), "%s/plain.age", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
	assert_int_equal(rp_store_create(&f->s, &st, f->store,
					 (const uint8_t *)PASS, strlen(PASS)),
			 RP_OK);
	write_doc(f->plain, 10, 70000); /* any bytes will do as plaintext */
	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_RSA2048, 0, 1,
					     &idx),
			 RP_OK);
	assert_int_equal(rp_doc_protect(f->s, &st, &po, f->plain, f->doc_rsa),
			 RP_OK);
	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1,
					     &idx),
			 RP_OK);
	assert_int_equal(rp_doc_protect(f->s, &st, &po, f->plain, f->doc_x),
			 RP_OK);
	write_plain_age(f, idx);
	doc_ops(f, f->doc_rsa, 0);
	doc_ops(f, f->doc_x, 0);
	/* no license: the store's keys are searched for its stanza */
	doc_ops(f, f->doc_age, 1);
	for (size_t m = 0; m < RP_ARRAY_LEN(modes); m++) {
		cold(f);
		assert_true(for_each_failure(f, "protect", op_protect,
					     check_doc, modes[m]) > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_header_parse),
		cmocka_unit_test(test_oom_header_load_and_read),
		cmocka_unit_test(test_oom_documents),
	};

	/* before libcrypto's first allocation */
	if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) {
		fprintf(stderr, "test_oom: cannot hook libcrypto's allocator\n");
		return 1;
	}
	if (RUNNING_ON_VALGRIND) {
		stride = 61;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
