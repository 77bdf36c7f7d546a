#include "rp_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "age_header.h"
#include "age_recip.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "store.h"

#define PASS	 "correct horse"
#define PASS_LEN (sizeof(PASS) - 1)

static char *make_tmp(void)
{
	char tmpl[] = "/tmp/rp-test-store-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *path)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static struct rp_store *new_store(char **dir)
{
	struct rp_store *s = NULL;
	struct rp_status st = { 0 };
	char path[4200];

	*dir = make_tmp();
	snprintf(path, sizeof(path), "%s/store", *dir);
	assert_int_equal(rp_store_create(&s, &st, path, (const uint8_t *)PASS,
					 PASS_LEN),
			 RP_OK);
	return s;
}

static void test_store_create_open_wrong_passphrase_refused(void **state)
{
	char *dir;
	struct rp_store *s = new_store(&dir);
	struct rp_store *s2 = NULL;
	struct rp_status st = { 0 };
	char path[4200];
	struct stat sb;

	(void)state;
	snprintf(path, sizeof(path), "%s", rp_store_dir(s));
	rp_store_free(s);
	assert_int_equal(rp_store_open(&s2, &st, path, (const uint8_t *)"nope",
				       4),
			 RP_ERR_PASSPHRASE);
	assert_null(s2);
	rp_status_clear(&st);
	assert_int_equal(rp_store_open(&s2, &st, path, (const uint8_t *)PASS,
				       PASS_LEN),
			 RP_OK);
	assert_int_equal(rp_store_keyring(s2)->num_keys, 0);
	rp_store_free(s2);
	/* a second create in the same folder is refused */
	assert_int_equal(rp_store_create(&s2, &st, path, (const uint8_t *)PASS,
					 PASS_LEN),
			 RP_ERR_EXISTS);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path + strlen(path), sizeof(path) - strlen(path),
		 "/world.key");
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	rm_rf(dir);
	free(dir);
}

static void test_store_open_missing_notfound(void **state)
{
	struct rp_store *s = NULL;
	struct rp_status st = { 0 };

	(void)state;
	assert_int_equal(rp_store_open(&s, &st, "/nonexistent/rp-store",
				       (const uint8_t *)PASS, PASS_LEN),
			 RP_ERR_NOTFOUND);
	assert_non_null(strstr(st.msg, "reprotect init"));
}

static void test_store_activate_archives_previous(void **state)
{
	char *dir;
	struct rp_store *s = new_store(&dir);
	struct rp_status st = { 0 };
	size_t a, b, c;
	const struct rp_keyring *kr;

	(void)state;
	assert_int_equal(rp_store_key_create(s, &st, RP_ALG_X25519, 0, 1, &a),
			 RP_OK);
	assert_int_equal(rp_store_key_create(s, &st, RP_ALG_X25519, 0, 0, &b),
			 RP_OK);
	kr = rp_store_keyring(s);
	assert_int_equal(kr->keys[a].state, RP_KEY_ACTIVE);
	assert_int_equal(kr->keys[b].state, RP_KEY_PENDING);
	assert_int_equal(rp_store_key_activate(s, &st, b), RP_OK);
	kr = rp_store_keyring(s);
	assert_int_equal(kr->keys[a].state, RP_KEY_ARCHIVED);
	assert_int_equal(kr->keys[b].state, RP_KEY_ACTIVE);
	assert_true(kr->keys[a].archived_at > 0);
	/* an archived key cannot be activated again */
	assert_int_equal(rp_store_key_activate(s, &st, a), RP_ERR_STATE);
	rp_status_clear(&st);
	assert_int_equal(rp_store_key_create(s, &st, RP_ALG_X25519,
					     RP_KEY_EXPORTABLE, 0, &c),
			 RP_OK);
	assert_true(rp_store_keyring(s)->keys[c].flags & RP_KEY_EXPORTABLE);
	rp_store_free(s);
	rm_rf(dir);
	free(dir);
}

static void unwrap_round_trip(struct rp_store *s, size_t idx)
{
	const struct rp_key_info *k = &rp_store_keyring(s)->keys[idx];
	struct rp_status st = { 0 };
	struct rp_recip_stanza rs;
	struct rp_buf hdr = { 0 };
	struct rp_age_header parsed = { 0 };
	uint8_t fk[16] = { 1, 2, 3, 4, 5 }, back[16];
	EVP_PKEY *pub = NULL;

	assert_int_equal(rp_key_pubkey(&pub, &st, k), RP_OK);
	if (k->alg == RP_ALG_X25519) {
		uint8_t r[32];
		size_t rl = sizeof(r);

		assert_int_equal(EVP_PKEY_get_raw_public_key(pub, r, &rl), 1);
		assert_int_equal(rp_x25519_wrap(&rs, &st, r, fk), RP_OK);
	} else {
		assert_int_equal(rp_sshrsa_wrap(&rs, &st, pub, NULL, fk), RP_OK);
	}
	assert_int_equal(rp_age_header_begin(&hdr), RP_OK);
	assert_int_equal(rp_recip_stanza_add(&hdr, &rs, NULL, NULL), RP_OK);
	assert_int_equal(rp_age_header_finish(&hdr, &st, fk), RP_OK);
	assert_int_equal(rp_age_header_parse(&parsed, &st, hdr.p, hdr.len),
			 RP_OK);
	assert_int_equal(rp_store_unwrap(s, &st, idx, &parsed.stanzas[0],
					 back),
			 RP_OK);
	assert_memory_equal(back, fk, 16);
	rp_age_header_fini(&parsed);
	rp_buf_fini(&hdr);
	EVP_PKEY_free(pub);
}

static void sign_verify(struct rp_store *s, size_t idx)
{
	const struct rp_key_info *k = &rp_store_keyring(s)->keys[idx];
	struct rp_status st = { 0 };
	uint8_t sig[512];
	size_t sig_len = 0;
	static const uint8_t msg[] = "root message";
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	assert_int_equal(rp_store_sign(s, &st, idx, msg, sizeof(msg), sig,
				       sizeof(sig), &sig_len),
			 RP_OK);
	assert_int_equal(rp_key_sign_pubkey(&pub, &st, k), RP_OK);
	if (k->alg == RP_ALG_X25519) {
		assert_int_equal(sig_len, 64);
		assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL,
						      pub),
				 1);
	} else {
		assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(),
						      NULL, pub),
				 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(
					 pctx, RSA_PKCS1_PSS_PADDING),
				 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32),
				 1);
	}
	assert_int_equal(EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg)),
			 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
}

static void test_store_rsa_and_x25519_unwrap_and_sign(void **state)
{
	char *dir;
	struct rp_store *s = new_store(&dir);
	struct rp_status st = { 0 };
	size_t r, x;
	uint8_t sig[512];
	size_t sig_len;

	(void)state;
	assert_int_equal(rp_store_key_create(s, &st, RP_ALG_RSA2048, 0, 1, &r),
			 RP_OK);
	sign_verify(s, r);
	unwrap_round_trip(s, r);
	assert_int_equal(rp_store_key_create(s, &st, RP_ALG_X25519, 0, 1, &x),
			 RP_OK);
	sign_verify(s, x);
	unwrap_round_trip(s, x);
	/* the archived RSA key still unwraps but no longer signs */
	unwrap_round_trip(s, r);
	assert_int_equal(rp_store_sign(s, &st, r, sig, 4, sig, sizeof(sig),
				       &sig_len),
			 RP_ERR_STATE);
	rp_store_free(s);
	rm_rf(dir);
	free(dir);
}

/* contains returns 1 if any file under `dir` holds `needle` */
static int contains(const char *dir, const uint8_t *needle, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	assert_non_null(d);
	while (!found && (e = readdir(d))) {
		char path[4200];
		struct stat sb;

		if (e->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		assert_int_equal(lstat(path, &sb), 0);
		if (S_ISDIR(sb.st_mode)) {
			found = contains(path, needle, n);
			continue;
		}
		{
			struct rp_buf b = { 0 };
			struct rp_status st = { 0 };

			assert_int_equal(rp_file_read(&b, &st, path, 1 << 20),
					 RP_OK);
			assert_int_equal(sb.st_mode & 0777, 0600);
			for (size_t i = 0; i + n <= b.len && !found; i++) {
				found = !memcmp(b.p + i, needle, n);
			}
			rp_buf_fini(&b);
		}
	}
	closedir(d);
	return found;
}

static void test_store_imported_secret_never_plain_on_disk(void **state)
{
	char *dir;
	struct rp_store *s = new_store(&dir);
	struct rp_status st = { 0 };
	static const char ident[] =
		"# created: 2026-01-01T00:00:00Z\n"
		"AGE-SECRET-KEY-1GMXU294QR5S3JXEPGZ3TTGC2U0R3GMME63937K6AH44DFN3"
		"H2GJQ8546DQ\n";
	uint8_t secret[32];
	size_t idx;

	(void)state;
	assert_int_equal(rp_age_identity_decode(secret, &st, ident + 32,
						sizeof(ident) - 1 - 33),
			 RP_OK);
	assert_int_equal(rp_store_key_import(s, &st, (const uint8_t *)ident,
					     sizeof(ident) - 1, 0, 1, &idx),
			 RP_OK);
	assert_int_equal(rp_store_keyring(s)->keys[idx].alg, RP_ALG_X25519);
	assert_true(rp_store_keyring(s)->keys[idx].flags & RP_KEY_IMPORTED);
	assert_false(contains(rp_store_dir(s), secret, sizeof(secret)));
	assert_false(contains(rp_store_dir(s), (const uint8_t *)ident + 32,
			      20));
	unwrap_round_trip(s, idx);
	/* importing the same key again is refused */
	assert_int_equal(rp_store_key_import(s, &st, (const uint8_t *)ident,
					     sizeof(ident) - 1, 0, 0, &idx),
			 RP_ERR_EXISTS);
	rp_store_free(s);
	rm_rf(dir);
	free(dir);
}

static void flip_byte(const char *path, long off)
{
	const int fd = open(path, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	if (off < 0) {
		off += lseek(fd, 0, SEEK_END);
	}
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_store_tampered_files_detected(void **state)
{
	char *dir, *dir2;
	struct rp_store *s = new_store(&dir);
	struct rp_store *other = new_store(&dir2);
	struct rp_store *s2 = NULL;
	struct rp_status st = { 0 };
	char store[4200], path[4300], path2[4300], hex[65];
	size_t idx;
	uint8_t fk[16];
	struct rp_age_stanza none;

	(void)state;
	memset(&none, 0, sizeof(none));
	assert_int_equal(rp_store_key_create(s, &st, RP_ALG_X25519, 0, 1, &idx),
			 RP_OK);
	snprintf(store, sizeof(store), "%s", rp_store_dir(s));
	rp_key_id_hex(hex, rp_store_keyring(s)->keys[idx].id);
	rp_store_free(s);

	/* a keyring edited by hand */
	snprintf(path, sizeof(path), "%s/keyring", store);
	flip_byte(path, 30);
	assert_int_equal(rp_store_open(&s2, &st, store, (const uint8_t *)PASS,
				       PASS_LEN),
			 RP_ERR_AUTH);
	flip_byte(path, 30);
	rp_status_clear(&st);

	/* another store's keyring copied in */
	snprintf(path2, sizeof(path2), "%s/keyring", rp_store_dir(other));
	{
		struct rp_buf b = { 0 };

		assert_int_equal(rp_file_read(&b, &st, path, 1 << 20), RP_OK);
		assert_int_equal(rp_file_write_atomic(&st, path2, b.p, b.len,
						      0),
				 RP_OK);
		rp_buf_fini(&b);
	}
	rp_store_free(other);
	snprintf(path2, sizeof(path2), "%s/store", dir2);
	assert_int_equal(rp_store_open(&s2, &st, path2, (const uint8_t *)PASS,
				       PASS_LEN),
			 RP_ERR_AUTH);
	rp_status_clear(&st);

	/* a key file with one byte changed no longer opens */
	snprintf(path, sizeof(path), "%s/keys/%s.key", store, hex);
	flip_byte(path, -3);
	assert_int_equal(rp_store_open(&s2, &st, store, (const uint8_t *)PASS,
				       PASS_LEN),
			 RP_OK);
	assert_int_equal(rp_store_unwrap(s2, &st, 0, &none, fk), RP_ERR_AUTH);
	rp_store_free(s2);
	rm_rf(dir);
	rm_rf(dir2);
	free(dir);
	free(dir2);
}

static void test_store_lock_excludes_second_locker(void **state)
{
	char *dir;
	struct rp_store *s = new_store(&dir);
	struct rp_store *s2 = NULL;
	struct rp_status st = { 0 };

	(void)state;
	assert_int_equal(rp_store_open(&s2, &st, rp_store_dir(s),
				       (const uint8_t *)PASS, PASS_LEN),
			 RP_OK);
	assert_int_equal(rp_store_lock(s, &st, 0), RP_OK);
	assert_int_equal(rp_store_lock(s2, &st, 100), RP_ERR_LOCKED);
	rp_store_free(s);
	rp_status_clear(&st);
	assert_int_equal(rp_store_lock(s2, &st, 100), RP_OK);
	rp_store_free(s2);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_store_create_open_wrong_passphrase_refused),
		cmocka_unit_test(test_store_open_missing_notfound),
		cmocka_unit_test(test_store_activate_archives_previous),
		cmocka_unit_test(test_store_rsa_and_x25519_unwrap_and_sign),
		cmocka_unit_test(
			test_store_imported_secret_never_plain_on_disk),
		cmocka_unit_test(test_store_tampered_files_detected),
		cmocka_unit_test(test_store_lock_excludes_second_locker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
