#include "rp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "lifecycle.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "store.h"

#define PASS "lifecycle"

struct fixture {
	char dir[64];
	char store[128];
	struct rp_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rp_status st = { 0 };

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-test-lc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	assert_int_equal(rp_store_create(&f->s, &st, f->store,
					 (const uint8_t *)PASS, strlen(PASS)),
			 RP_OK);
	assert_int_equal(rp_store_lock(f->s, &st, 0), RP_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	rp_store_free(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static const struct rp_key_info *key(struct fixture *f, size_t i)
{
	return &rp_store_keyring(f->s)->keys[i];
}

static void test_lifecycle_rekey_moves_states_and_resigns(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	size_t a, b, c;

	assert_int_equal(
		rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1, &a), RP_OK);
	assert_int_equal(
		rp_store_template_create(f->s, &st, "conf", "view,print"),
		RP_OK);
	assert_int_equal(rp_store_template_create(f->s, &st, "conf", "view"),
			 RP_ERR_EXISTS);
	rp_status_clear(&st);
	assert_memory_equal(rp_store_keyring(f->s)->templates[0].signer,
			    key(f, a)->id, 32);
	assert_int_equal(rp_store_rekey(f->s, &st, -1, 0, &b), RP_OK);
	assert_int_equal(key(f, a)->state, RP_KEY_ARCHIVED);
	assert_int_equal(key(f, b)->state, RP_KEY_ACTIVE);
	assert_int_equal(key(f, b)->alg, RP_ALG_X25519); /* same as before */
	assert_memory_equal(rp_store_keyring(f->s)->templates[0].signer,
			    key(f, b)->id, 32);
	assert_int_equal(rp_store_template_verify(f->s, &st, 0), RP_OK);
	/* rekey --to a pending key; an archived one is refused */
	assert_int_equal(
		rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 0, &c), RP_OK);
	assert_int_equal(rp_store_rekey(f->s, &st, (long)a, 0, &c),
			 RP_ERR_STATE);
	rp_status_clear(&st);
	assert_int_equal(rp_store_rekey(f->s, &st, (long)c, 0, &c), RP_OK);
	assert_int_equal(key(f, c)->state, RP_KEY_ACTIVE);
	assert_int_equal(key(f, b)->state, RP_KEY_ARCHIVED);
}

static void test_lifecycle_template_tamper_detected(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	struct rp_keyring *kr;
	size_t a;

	assert_int_equal(
		rp_store_key_create(f->s, &st, RP_ALG_RSA2048, 0, 1, &a),
		RP_OK);
	assert_int_equal(rp_store_template_create(f->s, &st, "t", "view"),
			 RP_OK);
	assert_int_equal(rp_store_template_verify(f->s, &st, 0), RP_OK);
	/* change the rights in memory: the signature no longer covers them */
	kr = (struct rp_keyring *)rp_store_keyring(f->s);
	kr->templates[0].rights[0] = 'V';
	assert_int_equal(rp_store_template_verify(f->s, &st, 0), RP_ERR_AUTH);
	rp_status_clear(&st);
	assert_int_equal(
		rp_store_template_create(f->s, &st, "bad name", "view"),
		RP_ERR_USAGE);
}

static void test_lifecycle_revoke_backup_restore_destroy(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	struct rp_buf bak = { 0 }, bak2 = { 0 }, out = { 0 };
	size_t a, b, r;

	assert_int_equal(
		rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1, &a), RP_OK);
	/* never backed up: revoke refused unless forced */
	assert_int_equal(rp_store_key_revoke(f->s, &st, a, 0), RP_ERR_STATE);
	rp_status_clear(&st);
	assert_int_equal(rp_store_key_backup(f->s, &st, a, &bak), RP_OK);
	assert_true(key(f, a)->backed_up_at > 0);
	/* a usable key is not restored over itself */
	assert_int_equal(rp_store_key_restore(f->s, &st, bak.p, bak.len, &r),
			 RP_ERR_EXISTS);
	rp_status_clear(&st);
	assert_int_equal(rp_store_key_revoke(f->s, &st, a, 0), RP_OK);
	assert_int_equal(key(f, a)->state, RP_KEY_REVOKED);
	assert_int_equal(rp_keyring_active(rp_store_keyring(f->s)), -1);
	assert_int_equal(rp_store_check_usable(f->s, &st, a), RP_ERR_REVOKED);
	assert_non_null(strstr(st.msg, "restore"));
	rp_status_clear(&st);
	/* revoked keys have no material: no backup, no export */
	assert_int_equal(rp_store_key_backup(f->s, &st, a, &bak2),
			 RP_ERR_STATE);
	rp_status_clear(&st);
	/* a changed backup is refused */
	bak.p[bak.len / 2] ^= 1;
	assert_int_equal(rp_store_key_restore(f->s, &st, bak.p, bak.len, &r),
			 RP_ERR_AUTH);
	bak.p[bak.len / 2] ^= 1;
	rp_status_clear(&st);
	assert_int_equal(rp_store_key_restore(f->s, &st, bak.p, bak.len, &r),
			 RP_OK);
	assert_int_equal(r, a);
	assert_int_equal(key(f, a)->state, RP_KEY_ARCHIVED);
	assert_int_equal(rp_store_check_usable(f->s, &st, a), RP_OK);

	/* destroy: only from revoked; then backups are refused for good */
	assert_int_equal(
		rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1, &b), RP_OK);
	assert_int_equal(rp_store_key_destroy(f->s, &st, b), RP_ERR_STATE);
	rp_status_clear(&st);
	assert_int_equal(rp_store_key_backup(f->s, &st, b, &bak2), RP_OK);
	assert_int_equal(rp_store_key_revoke(f->s, &st, b, 0), RP_OK);
	assert_int_equal(rp_store_key_destroy(f->s, &st, b), RP_OK);
	assert_int_equal(key(f, b)->state, RP_KEY_DESTROYED);
	assert_int_equal(rp_store_key_restore(f->s, &st, bak2.p, bak2.len, &r),
			 RP_ERR_STATE);
	assert_non_null(strstr(st.msg, "destroyed"));
	rp_status_clear(&st);
	assert_int_equal(rp_store_check_usable(f->s, &st, b), RP_ERR_REVOKED);
	assert_non_null(strstr(st.msg, "never be opened"));
	/* export refused for non-exportable keys */
	rp_status_clear(&st);
	assert_int_equal(rp_store_key_export(f->s, &st, a, &out), RP_ERR_STATE);
	assert_non_null(strstr(st.msg, "not exportable"));
	assert_int_equal(out.len, 0);
	rp_buf_fini(&bak);
	rp_buf_fini(&bak2);
	rp_buf_fini(&out);
}

static void test_lifecycle_exportable_key_exports(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	struct rp_buf out = { 0 };
	size_t a, b;

	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_X25519,
					     RP_KEY_EXPORTABLE, 1, &a),
			 RP_OK);
	assert_int_equal(rp_store_key_export(f->s, &st, a, &out), RP_OK);
	assert_true(out.len > 60);
	assert_memory_equal(out.p, "AGE-SECRET-KEY-1", 16);
	rp_buf_reset(&out);
	assert_int_equal(rp_store_key_create(f->s, &st, RP_ALG_RSA2048,
					     RP_KEY_EXPORTABLE, 0, &b),
			 RP_OK);
	assert_int_equal(rp_store_key_export(f->s, &st, b, &out), RP_OK);
	assert_memory_equal(out.p, "-----BEGIN PRIVATE KEY-----", 27);
	rp_buf_fini(&out);
}

static void test_lifecycle_world_shares_rebuild_and_bind(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	char lines[3][RP_SHARE_LINE_MAX];
	const char *two[2] = { lines[0], lines[2] };
	const char *one[1] = { lines[1] };
	uint8_t wk[32], wid[16];
	struct rp_store *s2 = NULL, *s3 = NULL;
	struct rp_buf bak = { 0 };
	char path[160];
	size_t a, r;

	assert_int_equal(
		rp_store_key_create(f->s, &st, RP_ALG_X25519, 0, 1, &a), RP_OK);
	assert_int_equal(rp_store_key_backup(f->s, &st, a, &bak), RP_OK);
	assert_int_equal(rp_store_world_split(f->s, &st, 3, 2, lines), RP_OK);
	assert_int_equal(rp_world_from_shares(&st, one, 1, wk, wid),
			 RP_ERR_AUTH);
	rp_status_clear(&st);
	assert_int_equal(rp_world_from_shares(&st, two, 2, wk, wid), RP_OK);
	assert_memory_equal(wid, rp_store_world_id(f->s), 16);
	/* a share from another split does not mix */
	{
		char other[3][RP_SHARE_LINE_MAX];
		const char *mixed[2] = { lines[0], other[1] };

		assert_int_equal(rp_store_world_split(f->s, &st, 3, 2, other),
				 RP_OK);
		assert_int_equal(rp_world_from_shares(&st, mixed, 2, wk, wid),
				 RP_ERR_AUTH);
		rp_status_clear(&st);
		assert_int_equal(rp_world_from_shares(&st, two, 2, wk, wid),
				 RP_OK);
	}
	/* a store rebuilt from the shares restores the backup */
	snprintf(path, sizeof(path), "%s/rebuilt", f->dir);
	assert_int_equal(rp_store_create_ex(&s2, &st, path,
					    (const uint8_t *)"x", 1, NULL, wk,
					    wid),
			 RP_OK);
	assert_int_equal(rp_store_key_restore(s2, &st, bak.p, bak.len, &r),
			 RP_OK);
	assert_int_equal(rp_store_keyring(s2)->keys[r].state, RP_KEY_ARCHIVED);
	/* an unrelated store refuses it, naming the world */
	snprintf(path, sizeof(path), "%s/other", f->dir);
	assert_int_equal(
		rp_store_create(&s3, &st, path, (const uint8_t *)"y", 1),
		RP_OK);
	assert_int_equal(rp_store_key_restore(s3, &st, bak.p, bak.len, &r),
			 RP_ERR_AUTH);
	assert_non_null(strstr(st.msg, "security world"));
	rp_store_free(s2);
	rp_store_free(s3);
	rp_buf_fini(&bak);
}

/* audit: rewrite the log with one change and expect verify to fail */
static void tamper_log(struct fixture *f, const char *what)
{
	char path[160], cmd[1024];
	struct rp_status st = { 0 };
	uint64_t n = 0;

	snprintf(path, sizeof(path), "%s/audit.log", f->store);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.orig' && %s '%s'", path, path,
		 what, path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(rp_audit_verify(f->s, &st, NULL, NULL, &n),
			 RP_ERR_AUTH);
	assert_true(st.msg[0] != '\0');
	snprintf(cmd, sizeof(cmd), "mv '%s.orig' '%s'", path, path);
	assert_int_equal(system(cmd), 0);
	rp_status_clear(&st);
	assert_int_equal(rp_audit_verify(f->s, &st, NULL, NULL, &n), RP_OK);
	assert_int_equal(n, 5);
}

static void test_lifecycle_audit_chain_detects_every_edit(void **state)
{
	struct fixture *f = *state;
	struct rp_status st = { 0 };
	uint64_t n = 0;

	for (int i = 0; i < 5; i++) {
		assert_int_equal(rp_audit_append(f->s, &st, "test.op", NULL,
						 "record %d\ttab\nnl", i),
				 RP_OK);
	}
	assert_int_equal(rp_audit_verify(f->s, &st, NULL, NULL, &n), RP_OK);
	assert_int_equal(n, 5);
	tamper_log(f, "sed -i '3s/record 2/record 9/'"); /* changed */
	tamper_log(f, "sed -i '3d'");			 /* removed */
	tamper_log(f, "sed -i '2p'");			 /* inserted */
	tamper_log(f, "sed -i '2{h;d};3G'");		 /* reordered */
	tamper_log(f, "sed -i '$d'");			 /* tail cut */
	tamper_log(f, "truncate -s 0");			 /* emptied */
	tamper_log(f, "sed -i '1s/^1\\t/0\\t/'");	 /* renumbered */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_lifecycle_rekey_moves_states_and_resigns, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_lifecycle_template_tamper_detected, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_lifecycle_revoke_backup_restore_destroy, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_lifecycle_exportable_key_exports, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_lifecycle_world_shares_rebuild_and_bind, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_lifecycle_audit_chain_detects_every_edit, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
