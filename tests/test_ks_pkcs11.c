#include "rp_test.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "age_header.h"
#include "age_recip.h"
#include "keystore.h"
#include "ks_pkcs11.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "rp_testhook.h"

/* last: its compatibility macros redefine common lower-case words */
#if __has_include(<p11-kit/pkcs11.h>)
#include <p11-kit/pkcs11.h>
#else
/* Debian's libp11-kit-dev, when -I/usr/include/p11-kit-1 is not given */
#include <p11-kit-1/p11-kit/pkcs11.h>
#endif

/*
 * The PKCS#11 keystore against a real SoftHSM2 token made in a private
 * folder for this run. Keys are made once (RSA keygen is slow on SoftHSM)
 * and shared by the cases, which run in order.
 */
#define MODULE	    "/usr/lib/softhsm/libsofthsm2.so"
#define UTIL	    "softhsm2-util"
#define TOKEN	    "rp-test"
#define TOKEN2	    "rp-test2"
#define TOKEN3	    "rp-test3"
#define PIN	    "1234"
#define VEC	    RP_TEST_DIR "/vectors/ks_pkcs11/"
#define NUM_UNWRAPS 200

#if defined(__SANITIZE_ADDRESS__)
/*
 * SoftHSM 2.6.1 leaks 37 bytes per X25519/Ed25519 operation inside
 * libsofthsm2.so (measured). Suppress exactly those, so that
 * LeakSanitizer still checks our own code; the suppression needs the full
 * stack, through libcrypto, to see libsofthsm2.so.
 */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0:malloc_context_size=12";
}

const char *__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}
#endif

struct fixture {
	char dir[256];
	struct rp_keystore *ks;	 /* TOKEN, 2 workers */
	struct rp_keystore *ks2; /* TOKEN2: another security world */
	struct rp_key_info rsa;	 /* generated RSA-2048, exportable */
	struct rp_key_info x;	 /* generated x25519 */
	struct rp_key_info rsa_imp;
	struct rp_key_info x_imp; /* imported age identity, exportable */
	struct rp_buf ident;	  /* the identity file imported */
	CK_FUNCTION_LIST_PTR f;
};

static struct fixture fx;

static int run(const char *cmd)
{
	const int rc = system(cmd);

	return rc == 0 ? 0 : -1;
}

static int init_token(const char *label)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 UTIL " --init-token --free --label %s --pin " PIN
		      " --so-pin 5678 </dev/null >/dev/null",
		 label);
	return run(cmd);
}

static struct rp_keystore *open_store(const char *label, size_t num_workers,
				      const char *pin, struct rp_status *st)
{
	const struct rp_pkcs11_config cfg = { MODULE, label, pin, strlen(pin) };
	struct rp_keystore *ks = NULL;

	if (rp_keystore_pkcs11_new(&ks, st, &cfg, num_workers)) {
		return NULL;
	}
	return ks;
}

static void read_vec(struct rp_buf *out, const char *name)
{
	struct rp_status st = { 0 };
	char path[1024];

	snprintf(path, sizeof(path), VEC "%s", name);
	assert_int_equal(rp_file_read(out, &st, path, 65536), RP_OK);
}

static void import_vec(struct rp_keystore *ks, struct rp_key_info *ki,
		       const char *name, uint8_t flags)
{
	struct rp_buf pem = { 0 };
	struct rp_status st = { 0 };

	read_vec(&pem, name);
	memset(ki, 0, sizeof(*ki));
	ki->flags = flags;
	if (ks->ops->import(ks, &st, ki, pem.p, pem.len)) {
		fail_msg("import %s: %s", name, rp_status_msg(&st));
	}
	rp_buf_fini(&pem);
}

static void generate(struct rp_keystore *ks, struct rp_key_info *ki,
		     uint8_t alg, uint8_t flags)
{
	struct rp_status st = { 0 };

	memset(ki, 0, sizeof(*ki));
	ki->alg = alg;
	ki->flags = flags;
	if (ks->ops->generate(ks, &st, ki)) {
		fail_msg("generate: %s", rp_status_msg(&st));
	}
}

static int group_setup(void **state)
{
	struct rp_status st = { 0 };
	char path[512];
	FILE *conf;
	void *dl;
	CK_C_GetFunctionList get_list;

	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/rp-test-p11-XXXXXX");
	if (!mkdtemp(fx.dir)) {
		return -1;
	}
	snprintf(path, sizeof(path), "%s/tokens", fx.dir);
	if (mkdir(path, 0700)) {
		return -1;
	}
	snprintf(path, sizeof(path), "%s/softhsm2.conf", fx.dir);
	conf = fopen(path, "w");
	if (!conf) {
		return -1;
	}
	fprintf(conf,
		"directories.tokendir = %s/tokens\n"
		"objectstore.backend = file\n"
		"log.level = ERROR\n"
		"slots.removable = false\n"
		"slots.mechanisms = ALL\n"
		"library.reset_on_fork = false\n",
		fx.dir);
	fclose(conf);
	setenv("SOFTHSM2_CONF", path, 1);
	if (init_token(TOKEN) || init_token(TOKEN2) || init_token(TOKEN3)) {
		return -1;
	}
	fx.ks = open_store(TOKEN, 2, PIN, &st);
	if (!fx.ks) {
		fprintf(stderr, "open %s: %s\n", TOKEN, rp_status_msg(&st));
		return -1;
	}
	fx.ks2 = open_store(TOKEN2, 1, PIN, &st);
	if (!fx.ks2) {
		fprintf(stderr, "open %s: %s\n", TOKEN2, rp_status_msg(&st));
		return -1;
	}
	/* the same library the store loaded: C_Initialize was done there */
	dl = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL);
	get_list = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList")
		      : NULL;
	if (!get_list || get_list(&fx.f)) {
		return -1;
	}
	generate(fx.ks, &fx.rsa, RP_ALG_RSA2048, RP_KEY_EXPORTABLE);
	generate(fx.ks, &fx.x, RP_ALG_X25519, 0);
	import_vec(fx.ks, &fx.rsa_imp, "rsa2048-pkcs1.pem", 0);
	import_vec(fx.ks, &fx.x_imp, "x25519.key", RP_KEY_EXPORTABLE);
	read_vec(&fx.ident, "x25519.key");
	return 0;
}

static int group_teardown(void **state)
{
	struct rp_status st = { 0 };
	char cmd[512];
	int rc = 0;

	(void)state;
	/* the module stays initialised while a store uses it */
	if (fx.ks && rp_pkcs11_finalize(&st) != RP_ERR_STATE) {
		rc = -1;
	}
	rp_keystore_free(fx.ks);
	rp_keystore_free(fx.ks2);
	rp_status_clear(&st);
	if (rp_pkcs11_finalize(&st)) {
		fprintf(stderr, "finalize: %s\n", rp_status_msg(&st));
		rc = -1;
	}
	rp_buf_fini(&fx.ident);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	if (run(cmd)) {
		rc = -1;
	}
	return rc;
}

/* A parsed one-stanza age header made in software for `ki`. */
struct hdr {
	struct rp_buf buf;
	struct rp_age_header h;
	uint8_t file_key[RP_AGE_FILE_KEY_LEN];
};

static void x25519_pub(uint8_t out[32], const struct rp_key_info *ki)
{
	struct rp_status st = { 0 };
	EVP_PKEY *pk = NULL;
	size_t len = 32;

	assert_int_equal(rp_key_pubkey(&pk, &st, ki), RP_OK);
	assert_int_equal(EVP_PKEY_get_raw_public_key(pk, out, &len), 1);
	EVP_PKEY_free(pk);
}

static void hdr_make(struct hdr *h, const struct rp_key_info *ki)
{
	struct rp_recip_stanza rs;
	struct rp_status st = { 0 };
	EVP_PKEY *pk = NULL;

	memset(h, 0, sizeof(*h));
	assert_int_equal(RAND_bytes(h->file_key, sizeof(h->file_key)), 1);
	if (ki->alg == RP_ALG_X25519) {
		uint8_t pub[32];

		x25519_pub(pub, ki);
		assert_int_equal(rp_x25519_wrap(&rs, &st, pub, h->file_key),
				 RP_OK);
	} else {
		assert_int_equal(rp_key_pubkey(&pk, &st, ki), RP_OK);
		assert_int_equal(rp_sshrsa_wrap(&rs, &st, pk, NULL, h->file_key),
				 RP_OK);
		EVP_PKEY_free(pk);
	}
	assert_int_equal(rp_age_header_begin(&h->buf), RP_OK);
	assert_int_equal(rp_recip_stanza_add(&h->buf, &rs, NULL, NULL), RP_OK);
	assert_int_equal(rp_age_header_finish(&h->buf, &st, h->file_key),
			 RP_OK);
	assert_int_equal(rp_age_header_parse(&h->h, &st, h->buf.p, h->buf.len),
			 RP_OK);
	assert_int_equal(h->h.num_stanzas, 1);
}

static void hdr_fini(struct hdr *h)
{
	rp_age_header_fini(&h->h);
	rp_buf_fini(&h->buf);
}

static enum rp_err unwrap(struct rp_keystore *ks, size_t worker,
			  const struct rp_key_info *ki, const struct hdr *h,
			  struct rp_status *st)
{
	uint8_t fk[RP_AGE_FILE_KEY_LEN];
	enum rp_err err;

	memset(fk, 0, sizeof(fk));
	err = ks->ops->unwrap(ks, st, worker, ki, &h->h.stanzas[0], fk);
	if (!err && memcmp(fk, h->file_key, sizeof(fk))) {
		err = RP_ERR_INTERNAL;
	}
	return err;
}

/* assert_unwraps: a fresh stanza for `ki` opens on `ks` */
static void assert_unwraps(struct rp_keystore *ks, const struct rp_key_info *ki)
{
	struct rp_status st = { 0 };
	struct hdr h;

	hdr_make(&h, ki);
	if (unwrap(ks, 0, ki, &h, &st)) {
		fail_msg("unwrap: %s", rp_status_msg(&st));
	}
	hdr_fini(&h);
}

static void
test_ks_pkcs11_unwrap_software_stanza_recovers_file_key(void **state)
{
	struct rp_status st = { 0 };
	struct hdr h;

	(void)state;
	assert_unwraps(fx.ks, &fx.rsa);
	assert_unwraps(fx.ks, &fx.x);
	assert_unwraps(fx.ks, &fx.rsa_imp);
	assert_unwraps(fx.ks, &fx.x_imp);
	/* a stanza for another key: refused before any token call */
	hdr_make(&h, &fx.rsa);
	assert_int_equal(unwrap(fx.ks, 1, &fx.rsa_imp, &h, &st), RP_ERR_NOKEY);
	rp_status_clear(&st);
	assert_int_equal(unwrap(fx.ks, 1, &fx.x, &h, &st), RP_ERR_FORMAT);
	hdr_fini(&h);
	hdr_make(&h, &fx.x);
	rp_status_clear(&st);
	assert_int_equal(unwrap(fx.ks, 1, &fx.x_imp, &h, &st), RP_ERR_NOKEY);
	hdr_fini(&h);
}

static void verify_sig(const struct rp_key_info *ki, const uint8_t *msg,
		       size_t msg_len, const uint8_t *sig, size_t sig_len)
{
	struct rp_status st = { 0 };
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	assert_non_null(md);
	assert_int_equal(rp_key_sign_pubkey(&pk, &st, ki), RP_OK);
	if (ki->alg == RP_ALG_X25519) {
		assert_int_equal(sig_len, 64);
		assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk),
				 1);
	} else {
		assert_int_equal(sig_len, 256);
		assert_int_equal(
			EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pk),
			1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(
					 pctx, RSA_PKCS1_PSS_PADDING),
				 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
		assert_int_equal(
			EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	}
	assert_int_equal(EVP_DigestVerify(md, sig, sig_len, msg, msg_len), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
}

static void test_ks_pkcs11_sign_verifies_with_openssl(void **state)
{
	static const uint8_t msg[] = "a manifest of document hashes";
	const struct rp_key_info *keys[] = { &fx.rsa, &fx.x, &fx.rsa_imp,
					     &fx.x_imp };
	struct rp_status st = { 0 };
	uint8_t sig[512];
	size_t sig_len = 0;

	(void)state;
	for (size_t i = 0; i < RP_ARRAY_LEN(keys); i++) {
		if (fx.ks->ops->sign(fx.ks, &st, i % 2, keys[i], msg,
				     sizeof(msg), sig, sizeof(sig), &sig_len)) {
			fail_msg("sign: %s", rp_status_msg(&st));
		}
		verify_sig(keys[i], msg, sizeof(msg), sig, sig_len);
	}
	/* too small a buffer is the caller's error, not the token's */
	assert_int_equal(fx.ks->ops->sign(fx.ks, &st, 0, &fx.rsa, msg,
					  sizeof(msg), sig, 100, &sig_len),
			 RP_ERR_USAGE);
}

static void test_ks_pkcs11_import_identity_signs_like_soft(void **state)
{
	static const uint8_t world[32] = { 1, 2, 3 };
	static const uint8_t msg[] = "same identity, same signature";
	struct rp_status st = { 0 };
	struct rp_keystore *soft = NULL;
	struct rp_key_info ki, ki8;
	struct rp_buf pem = { 0 };
	uint8_t sig[64], sig_soft[64];
	size_t n = 0, n_soft = 0;
	char dir[512], cmd[600];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/soft", fx.dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(rp_keystore_soft_new(&soft, &st, dir, world, 1),
			 RP_OK);
	memset(&ki, 0, sizeof(ki));
	assert_int_equal(
		soft->ops->import(soft, &st, &ki, fx.ident.p, fx.ident.len),
		RP_OK);
	assert_memory_equal(ki.id, fx.x_imp.id, RP_KEY_ID_LEN);
	assert_memory_equal(ki.sign_pub, fx.x_imp.sign_pub, 32);
	assert_int_equal(ki.pub_len, fx.x_imp.pub_len);
	assert_memory_equal(ki.pub, fx.x_imp.pub, ki.pub_len);
	/* Ed25519 is deterministic: the very same bytes */
	assert_int_equal(fx.ks->ops->sign(fx.ks, &st, 0, &fx.x_imp, msg,
					  sizeof(msg), sig, sizeof(sig), &n),
			 RP_OK);
	assert_int_equal(soft->ops->sign(soft, &st, 0, &ki, msg, sizeof(msg),
					 sig_soft, sizeof(sig_soft), &n_soft),
			 RP_OK);
	assert_int_equal(n, n_soft);
	assert_memory_equal(sig, sig_soft, n);
	rp_keystore_free(soft);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(run(cmd), 0);
	/* a PKCS#8 PEM imports too; a second import of a key is refused */
	import_vec(fx.ks2, &ki8, "rsa2048-pkcs8.pem", 0);
	assert_unwraps(fx.ks2, &ki8);
	read_vec(&pem, "rsa2048-pkcs8.pem");
	assert_int_equal(fx.ks2->ops->import(fx.ks2, &st, &ki8, pem.p, pem.len),
			 RP_ERR_EXISTS);
	rp_buf_fini(&pem);
	rp_status_clear(&st);
	assert_int_equal(fx.ks2->ops->erase(fx.ks2, &st, &ki8), RP_OK);
}

/* token_session opens a session of this process on the token `label` */
static CK_SESSION_HANDLE token_session(const char *label, CK_SLOT_ID *slot)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = RP_ARRAY_LEN(slots);
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

	assert_int_equal(fx.f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		assert_int_equal(fx.f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
		if (!memcmp(ti.label, label, strlen(label)) &&
		    ti.label[strlen(label)] == ' ') {
			*slot = slots[i];
			assert_int_equal(fx.f->C_OpenSession(slots[i],
							     CKF_SERIAL_SESSION,
							     NULL, NULL, &s),
					 CKR_OK);
			return s;
		}
	}
	fail_msg("no token %s", label);
	return s;
}

static CK_RV read_attr(CK_SESSION_HANDLE s, const struct rp_key_info *ki,
		       CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE type,
		       size_t *num_objects)
{
	CK_ATTRIBUTE find[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, (void *)ki->id, RP_KEY_ID_LEN },
	};
	CK_OBJECT_HANDLE h[4];
	CK_ULONG n = 0;
	uint8_t buf[1024];
	CK_ATTRIBUTE a = { type, buf, sizeof(buf) };
	CK_RV rv = CKR_OK;

	assert_int_equal(fx.f->C_FindObjectsInit(s, find, 2), CKR_OK);
	assert_int_equal(fx.f->C_FindObjects(s, h, 4, &n), CKR_OK);
	assert_int_equal(fx.f->C_FindObjectsFinal(s), CKR_OK);
	*num_objects = n;
	for (CK_ULONG i = 0; i < n && !rv; i++) {
		a.ulValueLen = sizeof(buf);
		rv = fx.f->C_GetAttributeValue(s, h[i], &a, 1);
	}
	return rv;
}

static void test_ks_pkcs11_private_value_unreadable(void **state)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s = token_session(TOKEN, &slot);
	size_t n = 0;

	(void)state;
	/* the store's login covers this session: the keys are visible */
	assert_int_equal(read_attr(s, &fx.rsa, CKO_PRIVATE_KEY,
				   CKA_PRIVATE_EXPONENT, &n),
			 CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(n, 1);
	assert_int_equal(read_attr(s, &fx.rsa_imp, CKO_PRIVATE_KEY,
				   CKA_PRIVATE_EXPONENT, &n),
			 CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(n, 1);
	assert_int_equal(
		read_attr(s, &fx.rsa, CKO_PRIVATE_KEY, CKA_PRIME_1, &n),
		CKR_ATTRIBUTE_SENSITIVE);
	/* the x25519 type: the X25519 and the Ed25519 key */
	assert_int_equal(read_attr(s, &fx.x, CKO_PRIVATE_KEY, CKA_VALUE, &n),
			 CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(n, 2);
	assert_int_equal(
		read_attr(s, &fx.x_imp, CKO_PRIVATE_KEY, CKA_VALUE, &n),
		CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(n, 2);
	/* and the imported identity's backup seed */
	assert_int_equal(read_attr(s, &fx.x_imp, CKO_SECRET_KEY, CKA_VALUE, &n),
			 CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(n, 1);
	/* no public key objects: public keys live in the keyring */
	assert_int_equal(read_attr(s, &fx.rsa, CKO_PUBLIC_KEY, CKA_MODULUS, &n),
			 CKR_OK);
	assert_int_equal(n, 0);
	assert_int_equal(fx.f->C_CloseSession(s), CKR_OK);
}

static void backup(struct rp_keystore *ks, const struct rp_key_info *ki,
		   struct rp_buf *out)
{
	struct rp_status st = { 0 };

	if (ks->ops->backup(ks, &st, ki, out)) {
		fail_msg("backup: %s", rp_status_msg(&st));
	}
}

static void backup_erase_restore(const struct rp_key_info *ki)
{
	struct rp_status st = { 0 };
	struct rp_buf blob = { 0 };
	struct hdr h;

	backup(fx.ks, ki, &blob);
	assert_true(blob.len > 32);
	hdr_make(&h, ki);
	assert_int_equal(unwrap(fx.ks, 0, ki, &h, &st), RP_OK);
	assert_int_equal(fx.ks->ops->erase(fx.ks, &st, ki), RP_OK);
	assert_int_equal(unwrap(fx.ks, 0, ki, &h, &st), RP_ERR_NOKEY);
	rp_status_clear(&st);
	assert_int_equal(unwrap(fx.ks, 1, ki, &h, &st), RP_ERR_NOKEY);
	rp_status_clear(&st);
	/* erasing what is gone is not an error */
	assert_int_equal(fx.ks->ops->erase(fx.ks, &st, ki), RP_OK);
	if (fx.ks->ops->restore(fx.ks, &st, ki, blob.p, blob.len)) {
		fail_msg("restore: %s", rp_status_msg(&st));
	}
	assert_int_equal(unwrap(fx.ks, 0, ki, &h, &st), RP_OK);
	assert_int_equal(unwrap(fx.ks, 1, ki, &h, &st), RP_OK);
	/* restoring over the key replaces it */
	assert_int_equal(fx.ks->ops->restore(fx.ks, &st, ki, blob.p, blob.len),
			 RP_OK);
	assert_int_equal(unwrap(fx.ks, 0, ki, &h, &st), RP_OK);
	hdr_fini(&h);
	rp_buf_fini(&blob);
}

static void test_ks_pkcs11_backup_erase_restore_unwraps_again(void **state)
{
	static const uint8_t msg[] = "signed after restore";
	struct rp_status st = { 0 };
	uint8_t sig[512];
	size_t n = 0;

	(void)state;
	backup_erase_restore(&fx.rsa);
	backup_erase_restore(&fx.x_imp);
	/* the restored identity still signs with the same key */
	assert_int_equal(fx.ks->ops->sign(fx.ks, &st, 1, &fx.x_imp, msg,
					  sizeof(msg), sig, sizeof(sig), &n),
			 RP_OK);
	verify_sig(&fx.x_imp, msg, sizeof(msg), sig, n);
	assert_int_equal(fx.ks->ops->sign(fx.ks, &st, 1, &fx.rsa, msg,
					  sizeof(msg), sig, sizeof(sig), &n),
			 RP_OK);
	verify_sig(&fx.rsa, msg, sizeof(msg), sig, n);
}

static void test_ks_pkcs11_generated_x25519_backup_refused(void **state)
{
	struct rp_status st = { 0 };
	struct rp_buf blob = { 0 };

	(void)state;
	/* SoftHSM 2.6.1 cannot wrap EC_EDWARDS keys (measured) */
	assert_int_equal(fx.ks->ops->backup(fx.ks, &st, &fx.x, &blob),
			 RP_ERR_HSM);
	assert_int_equal(st.ck_rv, CKR_KEY_NOT_WRAPPABLE);
	assert_non_null(strstr(st.msg, "C_WrapKey"));
	assert_non_null(strstr(st.msg, "CKR_KEY_NOT_WRAPPABLE"));
	assert_int_equal(blob.len, 0);
	rp_buf_fini(&blob);
}

static void test_ks_pkcs11_restore_on_other_token_auth(void **state)
{
	const struct rp_key_info *keys[] = { &fx.rsa, &fx.x_imp };
	struct rp_status st = { 0 };
	struct rp_buf blob = { 0 };
	struct rp_buf other = { 0 };
	struct rp_key_info ki;

	(void)state;
	/* token 2 has no backup key yet: nothing can be from it */
	backup(fx.ks, &fx.rsa, &blob);
	assert_int_equal(
		fx.ks2->ops->restore(fx.ks2, &st, &fx.rsa, blob.p, blob.len),
		RP_ERR_AUTH);
	rp_buf_fini(&blob);
	/* give token 2 its own backup key */
	import_vec(fx.ks2, &ki, "rsa2048-pkcs8.pem", 0);
	backup(fx.ks2, &ki, &other);
	for (size_t i = 0; i < RP_ARRAY_LEN(keys); i++) {
		struct hdr h;

		backup(fx.ks, keys[i], &blob);
		rp_status_clear(&st);
		assert_int_equal(fx.ks2->ops->restore(fx.ks2, &st, keys[i],
						      blob.p, blob.len),
				 RP_ERR_AUTH);
		/* SoftHSM gives its KEK a check value: refused up front */
		assert_non_null(strstr(st.msg, "another token's backup key"));
		/* without the KEK check value: C_UnwrapKey itself fails */
		assert_true(blob.len > 39 && blob.p[38] > 0 &&
			    blob.p[38] <= 16);
		memmove(blob.p + 39, blob.p + 39 + blob.p[38],
			blob.len - 39 - blob.p[38]);
		blob.len -= blob.p[38];
		blob.p[38] = 0;
		rp_status_clear(&st);
		assert_int_equal(fx.ks2->ops->restore(fx.ks2, &st, keys[i],
						      blob.p, blob.len),
				 RP_ERR_AUTH);
		assert_non_null(strstr(st.msg, "does not unwrap under this "
					       "token's backup key"));
		/* nothing was left behind on token 2 */
		hdr_make(&h, keys[i]);
		rp_status_clear(&st);
		assert_int_equal(unwrap(fx.ks2, 0, keys[i], &h, &st),
				 RP_ERR_NOKEY);
		hdr_fini(&h);
		/* and the stripped blob still restores at home */
		rp_status_clear(&st);
		assert_int_equal(fx.ks->ops->restore(fx.ks, &st, keys[i],
						     blob.p, blob.len),
				 RP_OK);
		assert_unwraps(fx.ks, keys[i]);
		rp_buf_fini(&blob);
	}
	/* a damaged blob does not unwrap, and the key on the token stays */
	backup(fx.ks, &fx.rsa, &blob);
	blob.p[blob.len - 9] ^= 1;
	rp_status_clear(&st);
	assert_int_equal(
		fx.ks->ops->restore(fx.ks, &st, &fx.rsa, blob.p, blob.len),
		RP_ERR_AUTH);
	assert_unwraps(fx.ks, &fx.rsa);
	rp_buf_fini(&blob);
	/* a blob for another key, or a truncated one, is refused */
	rp_status_clear(&st);
	assert_int_equal(
		fx.ks->ops->restore(fx.ks, &st, &fx.rsa, other.p, other.len),
		RP_ERR_FORMAT);
	rp_status_clear(&st);
	assert_int_equal(fx.ks->ops->restore(fx.ks, &st, &fx.rsa, other.p, 10),
			 RP_ERR_FORMAT);
	assert_int_equal(fx.ks2->ops->erase(fx.ks2, &st, &ki), RP_OK);
	rp_buf_fini(&other);
}

static void test_ks_pkcs11_export_exportable_rsa_pem_matches(void **state)
{
	struct rp_status st = { 0 };
	struct rp_buf out = { 0 };
	struct rp_key_info ki;
	EVP_PKEY *pk = NULL;
	BIO *bio;

	(void)state;
	if (fx.ks->ops->export_key(fx.ks, &st, &fx.rsa, &out)) {
		fail_msg("export: %s", rp_status_msg(&st));
	}
	assert_true(out.len > 28);
	assert_memory_equal(out.p, "-----BEGIN PRIVATE KEY-----", 27);
	bio = BIO_new_mem_buf(out.p, (int)out.len);
	assert_non_null(bio);
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(pk);
	memset(&ki, 0, sizeof(ki));
	assert_int_equal(rp_key_fill_public(&ki, &st, pk), RP_OK);
	assert_int_equal(ki.pub_len, fx.rsa.pub_len);
	assert_memory_equal(ki.pub, fx.rsa.pub, ki.pub_len);
	assert_memory_equal(ki.id, fx.rsa.id, RP_KEY_ID_LEN);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	rp_buf_fini(&out);
	/* the imported identity comes back as the line that was imported */
	assert_int_equal(fx.ks->ops->export_key(fx.ks, &st, &fx.x_imp, &out),
			 RP_OK);
	assert_int_equal(out.len, fx.ident.len);
	assert_memory_equal(out.p, fx.ident.p, out.len);
	rp_buf_fini(&out);
	/* a key generated on this token cannot be wrapped, so not exported */
	assert_int_equal(fx.ks->ops->export_key(fx.ks, &st, &fx.x, &out),
			 RP_ERR_HSM);
	assert_int_equal(st.ck_rv, CKR_KEY_NOT_WRAPPABLE);
	rp_buf_fini(&out);
}

struct worker_arg {
	size_t worker;
	size_t num_unwraps;
	const struct hdr *h[2];
	const struct rp_key_info *ki[2];
	size_t num_ok;
	struct rp_status st;
};

static void *worker_main(void *p)
{
	struct worker_arg *a = p;

	for (size_t i = 0; i < a->num_unwraps; i++) {
		const size_t k = i % 2;

		if (!unwrap(fx.ks, a->worker, a->ki[k], a->h[k], &a->st)) {
			a->num_ok++;
		}
	}
	return NULL;
}

static void test_ks_pkcs11_two_workers_concurrent_unwraps(void **state)
{
	struct worker_arg a[2];
	pthread_t t[2];
	struct hdr h[2];

	(void)state;
	hdr_make(&h[0], &fx.rsa);
	hdr_make(&h[1], &fx.x);
	for (size_t i = 0; i < 2; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].worker = i;
		a[i].num_unwraps = NUM_UNWRAPS;
		a[i].h[0] = &h[0];
		a[i].h[1] = &h[1];
		a[i].ki[0] = &fx.rsa;
		a[i].ki[1] = &fx.x;
		assert_int_equal(
			pthread_create(&t[i], NULL, worker_main, &a[i]), 0);
	}
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (a[i].num_ok != NUM_UNWRAPS) {
			fail_msg("worker %zu: %zu of %d: %s", i, a[i].num_ok,
				 NUM_UNWRAPS, rp_status_msg(&a[i].st));
		}
	}
	hdr_fini(&h[0]);
	hdr_fini(&h[1]);
}

static void test_ks_pkcs11_stale_handle_and_lost_session_recover(void **state)
{
	struct rp_status st = { 0 };
	struct rp_keystore *other = open_store(TOKEN, 1, PIN, &st);
	struct rp_buf blob = { 0 };
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;

	(void)state;
	assert_non_null(other);
	/* `other` caches the handle; the key is then replaced under it */
	assert_unwraps(other, &fx.rsa_imp);
	backup(fx.ks, &fx.rsa_imp, &blob);
	assert_int_equal(fx.ks->ops->erase(fx.ks, &st, &fx.rsa_imp), RP_OK);
	assert_int_equal(
		fx.ks->ops->restore(fx.ks, &st, &fx.rsa_imp, blob.p, blob.len),
		RP_OK);
	assert_unwraps(other, &fx.rsa_imp);
	/* every session of this process on the token closes: logged out */
	s = token_session(TOKEN, &slot);
	assert_int_equal(fx.f->C_CloseAllSessions(slot), CKR_OK);
	assert_int_equal(fx.f->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
	assert_unwraps(fx.ks, &fx.rsa_imp);
	assert_unwraps(fx.ks, &fx.x);
	assert_unwraps(other, &fx.rsa_imp);
	rp_keystore_free(other);
	/* life-cycle calls reopen the anchor session too */
	(void)token_session(TOKEN, &slot);
	assert_int_equal(fx.f->C_CloseAllSessions(slot), CKR_OK);
	rp_buf_reset(&blob);
	backup(fx.ks, &fx.rsa_imp, &blob);
	assert_unwraps(fx.ks, &fx.rsa_imp);
	rp_buf_fini(&blob);
}

static void test_ks_pkcs11_open_wrong_token_or_pin_fails(void **state)
{
	struct rp_status st = { 0 };

	(void)state;
	assert_null(open_store("no-such-token", 1, PIN, &st));
	assert_int_equal(st.err, RP_ERR_NOTFOUND);
	rp_status_clear(&st);
	/* TOKEN3 has no session in this process yet, so C_Login runs */
	assert_null(open_store(TOKEN3, 1, "9999", &st));
	assert_int_equal(st.err, RP_ERR_HSM);
	assert_int_equal(st.ck_rv, CKR_PIN_INCORRECT);
	assert_non_null(strstr(st.msg, "C_Login"));
	assert_non_null(strstr(st.msg, "CKR_PIN_INCORRECT"));
}

/*
 * A failing token, made with the test hooks (REPROTECT_TEST_FAULT: the
 * points are "p11.<C function>", the codes CK_RVs). Builds without hooks
 * skip these cases. The store retries a token failure RETRIES times
 * (RETRY_MAX in ks_pkcs11.c), pausing 10 + 40 + 160 + 640 ms in all.
 */
#define RETRIES	    4
#define GIVE_UP_MSG "is unavailable after 5 attempts"

static void need_hooks(void)
{
#ifndef RP_TEST_HOOKS
	skip();
#endif
}

/* faults_set arms the fault rules and the pause of a case (NULL: none) */
static void faults_set(const char *fault, const char *pause)
{
	if (fault) {
		assert_int_equal(setenv("REPROTECT_TEST_FAULT", fault, 1), 0);
	} else {
		assert_int_equal(unsetenv("REPROTECT_TEST_FAULT"), 0);
	}
	if (pause) {
		assert_int_equal(setenv("REPROTECT_TEST_PAUSE", pause, 1), 0);
	} else {
		assert_int_equal(unsetenv("REPROTECT_TEST_PAUSE"), 0);
	}
#ifdef RP_TEST_HOOKS
	rp_test_fault_reset();
#endif
}

/* every fault case ends here, even a failed one: no rule leaks on */
static int faults_teardown(void **state)
{
	(void)state;
	faults_set(NULL, NULL);
	return 0;
}

/* sign_with signs with `ki` on `worker` and checks the signature */
static enum rp_err sign_with(size_t worker, const struct rp_key_info *ki,
			     struct rp_status *st)
{
	static const uint8_t msg[] = "signed by a failing token";
	uint8_t sig[512];
	size_t n = 0;
	enum rp_err err;

	err = fx.ks->ops->sign(fx.ks, st, worker, ki, msg, sizeof(msg), sig,
			       sizeof(sig), &n);
	if (!err) {
		verify_sig(ki, msg, sizeof(msg), sig, n);
	}
	return err;
}

/* unwrap_new unwraps a fresh stanza for `ki` on `worker` */
static enum rp_err unwrap_new(size_t worker, const struct rp_key_info *ki,
			      struct rp_status *st)
{
	struct hdr h;
	enum rp_err err;

	hdr_make(&h, ki);
	err = unwrap(fx.ks, worker, ki, &h, st);
	hdr_fini(&h);
	return err;
}

/* assert_gave_up: the operation failed for the token after every retry */
static void assert_gave_up(enum rp_err err, const struct rp_status *st,
			   CK_RV rv, const char *fn)
{
	assert_int_equal(err, RP_ERR_HSM);
	assert_int_equal(st->err, RP_ERR_HSM);
	assert_int_equal(st->ck_rv, rv);
	if (!strstr(st->msg, GIVE_UP_MSG) || !strstr(st->msg, fn)) {
		fail_msg("unexpected message: %s", st->msg);
	}
}

static void test_ks_pkcs11_fault_device_error_on_sign_retried(void **state)
{
	struct rp_status st = { 0 };

	(void)state;
	need_hooks();
	faults_set("p11.C_Sign:0x30", NULL); /* CKR_DEVICE_ERROR */
	if (sign_with(0, &fx.rsa, &st)) {
		fail_msg("sign: %s", rp_status_msg(&st));
	}
	/* Ed25519 signs through C_Sign too */
	faults_set("p11.C_Sign:0x30", NULL);
	if (sign_with(1, &fx.x_imp, &st)) {
		fail_msg("sign: %s", rp_status_msg(&st));
	}
}

static void test_ks_pkcs11_fault_lost_session_on_unwrap_retried(void **state)
{
	struct rp_status st = { 0 };

	(void)state;
	need_hooks();
	/* CKR_SESSION_HANDLE_INVALID twice; unwrap checks the file key */
	faults_set("p11.C_Decrypt:0xB3:1:2", NULL);
	if (unwrap_new(0, &fx.rsa, &st)) {
		fail_msg("rsa unwrap: %s", rp_status_msg(&st));
	}
	faults_set("p11.C_DeriveKey:0xB3:1:2", NULL);
	if (unwrap_new(1, &fx.x, &st)) {
		fail_msg("x25519 unwrap: %s", rp_status_msg(&st));
	}
}

static void test_ks_pkcs11_fault_token_gone_gives_up_bounded(void **state)
{
	struct rp_status st = { 0 };
	char rule[64];

	(void)state;
	need_hooks();
	/* CKR_TOKEN_NOT_PRESENT on every call */
	faults_set("p11.C_Sign:0xE0:1:0", NULL);
	assert_gave_up(sign_with(0, &fx.rsa, &st), &st, CKR_TOKEN_NOT_PRESENT,
		       "C_Sign failed: CKR_TOKEN_NOT_PRESENT");
	/* exactly RETRIES + 1 calls: RETRIES failures are ridden out... */
	snprintf(rule, sizeof(rule), "p11.C_Sign:0xE0:1:%d", RETRIES);
	faults_set(rule, NULL);
	rp_status_clear(&st);
	if (sign_with(0, &fx.rsa, &st)) {
		fail_msg("sign after %d failures: %s", RETRIES,
			 rp_status_msg(&st));
	}
	/* ...one more is not, and the next call after them works */
	snprintf(rule, sizeof(rule), "p11.C_Sign:0xE0:1:%d", RETRIES + 1);
	faults_set(rule, NULL);
	rp_status_clear(&st);
	assert_gave_up(sign_with(0, &fx.rsa, &st), &st, CKR_TOKEN_NOT_PRESENT,
		       "C_Sign");
	rp_status_clear(&st);
	assert_int_equal(sign_with(0, &fx.rsa, &st), RP_OK);
	/* the same for an unwrap */
	snprintf(rule, sizeof(rule), "p11.C_DeriveKey:0xE0:1:%d", RETRIES);
	faults_set(rule, NULL);
	assert_int_equal(unwrap_new(1, &fx.x, &st), RP_OK);
	snprintf(rule, sizeof(rule), "p11.C_DeriveKey:0xE0:1:%d", RETRIES + 1);
	faults_set(rule, NULL);
	assert_gave_up(unwrap_new(1, &fx.x, &st), &st, CKR_TOKEN_NOT_PRESENT,
		       "C_DeriveKey");
	/* the whole token gone: reopening fails too; then it comes back */
	faults_set("p11.C_Decrypt:0xE0:1:0,p11.C_OpenSession:0xE0:1:0,"
		   "p11.C_FindObjectsInit:0xE0:1:0",
		   NULL);
	rp_status_clear(&st);
	assert_gave_up(unwrap_new(0, &fx.rsa, &st), &st, CKR_TOKEN_NOT_PRESENT,
		       "C_OpenSession");
	faults_set(NULL, NULL);
	assert_unwraps(fx.ks, &fx.rsa);
	assert_int_equal(sign_with(0, &fx.rsa, &st), RP_OK);
}

/* with_session_lost: `rule` after a lost session that empties the cache */
static void with_session_lost(char *out, size_t out_cap, const char *rule)
{
	const int n = snprintf(out, out_cap, "p11.C_Sign:0xB3,%s", rule);

	assert_true(n > 0 && (size_t)n < out_cap);
}

static void test_ks_pkcs11_fault_every_point_retried(void **state)
{
	enum op { SIGN, UNWRAP_RSA, UNWRAP_X };
	enum before { NOTHING, SESSION_LOST, LOGGED_OUT };
	static const struct {
		const char *fn;
		CK_RV rv;
		enum op op;
		enum before before;
	} points[] = {
		{ "C_Sign", CKR_DEVICE_ERROR, SIGN, NOTHING },
		{ "C_SignInit", CKR_KEY_HANDLE_INVALID, SIGN, NOTHING },
		{ "C_Decrypt", CKR_DEVICE_REMOVED, UNWRAP_RSA, NOTHING },
		{ "C_DecryptInit", CKR_OBJECT_HANDLE_INVALID, UNWRAP_RSA,
		  NOTHING },
		{ "C_DeriveKey", CKR_SESSION_CLOSED, UNWRAP_X, NOTHING },
		{ "C_OpenSession", CKR_TOKEN_NOT_PRESENT, SIGN, SESSION_LOST },
		{ "C_FindObjectsInit", CKR_DEVICE_ERROR, SIGN, SESSION_LOST },
		{ "C_FindObjects", CKR_DEVICE_MEMORY, SIGN, SESSION_LOST },
		{ "C_Login", CKR_DEVICE_ERROR, SIGN, LOGGED_OUT },
	};
	struct rp_status st = { 0 };
	char rule[96], rules[160];

	(void)state;
	need_hooks();
	for (size_t i = 0; i < RP_ARRAY_LEN(points); i++) {
		for (int is_always = 0; is_always < 2; is_always++) {
			CK_SLOT_ID slot;
			enum rp_err err;

			snprintf(rule, sizeof(rule), "p11.%s:0x%lx:1:%d",
				 points[i].fn, (unsigned long)points[i].rv,
				 is_always ? 0 : 1);
			if (points[i].before == SESSION_LOST) {
				with_session_lost(rules, sizeof(rules), rule);
			} else {
				snprintf(rules, sizeof(rules), "%s", rule);
			}
			if (points[i].before == LOGGED_OUT) {
				/* closing every session logs the token out */
				token_session(TOKEN, &slot);
				assert_int_equal(fx.f->C_CloseAllSessions(slot),
						 CKR_OK);
			}
			faults_set(rules, NULL);
			rp_status_clear(&st);
			switch (points[i].op) {
			case SIGN:
				err = sign_with(0, &fx.rsa, &st);
				break;
			case UNWRAP_RSA:
				err = unwrap_new(0, &fx.rsa, &st);
				break;
			default:
				err = unwrap_new(0, &fx.x, &st);
				break;
			}
			if (is_always) {
				assert_gave_up(err, &st, points[i].rv,
					       points[i].fn);
			} else if (err) {
				fail_msg("%s: %s", rules, rp_status_msg(&st));
			}
		}
	}
	faults_set(NULL, NULL);
	assert_int_equal(sign_with(0, &fx.rsa, &st), RP_OK);
	assert_unwraps(fx.ks, &fx.x);
}

static void test_ks_pkcs11_fault_bad_stanza_not_retried(void **state)
{
	struct rp_status st = { 0 };
	struct hdr h;

	(void)state;
	need_hooks();
	/* a body that does not open: from the 2nd call on the token is gone */
	hdr_make(&h, &fx.x);
	((uint8_t *)h.h.stanzas[0].body.p)[3] ^= 1;
	faults_set("p11.C_DeriveKey:0xE0:2:0", NULL);
	assert_int_equal(unwrap(fx.ks, 1, &fx.x, &h, &st), RP_ERR_NOKEY);
	assert_int_equal(st.ck_rv, 0);
	hdr_fini(&h);
	/* the same for ssh-rsa, its ciphertext changed */
	faults_set(NULL, NULL);
	assert_unwraps(fx.ks, &fx.rsa); /* learns the key's rsa mode */
	hdr_make(&h, &fx.rsa);
	((uint8_t *)h.h.stanzas[0].body.p)[7] ^= 1;
	faults_set("p11.C_Decrypt:0xE0:2:0", NULL);
	rp_status_clear(&st);
	assert_int_equal(unwrap(fx.ks, 0, &fx.rsa, &h, &st), RP_ERR_AUTH);
	/* a token's own "does not decrypt" codes, then the token gone */
	faults_set("p11.C_Decrypt:0x40,p11.C_Decrypt:0xE0:1:0", NULL);
	rp_status_clear(&st);
	assert_int_equal(unwrap(fx.ks, 0, &fx.rsa, &h, &st), RP_ERR_AUTH);
	faults_set("p11.C_Decrypt:0x20,p11.C_Decrypt:0xE0:1:0", NULL);
	rp_status_clear(&st);
	assert_int_equal(unwrap(fx.ks, 0, &fx.rsa, &h, &st), RP_ERR_AUTH);
	hdr_fini(&h);
}

static void test_ks_pkcs11_unwrap_low_order_share_format_error(void **state)
{
	struct rp_status st = { 0 };
	struct hdr h;

	(void)state;
	/*
	 * A share of 32 zero bytes (a low-order point): no shared secret.
	 * SoftHSM refuses the derive; that is the document's fault, as in
	 * software, not the token's, and (test builds) not retried.
	 */
	hdr_make(&h, &fx.x);
	assert_int_equal(h.h.stanzas[0].args[1].len, 43);
	memset((uint8_t *)h.h.stanzas[0].args[1].p, 'A', 43);
	faults_set("p11.C_DeriveKey:0xE0:2:0", NULL);
	assert_int_equal(unwrap(fx.ks, 1, &fx.x, &h, &st), RP_ERR_FORMAT);
	assert_non_null(strstr(st.msg, "low-order"));
	hdr_fini(&h);
}

static void test_ks_pkcs11_fault_slow_token_still_works(void **state)
{
	struct worker_arg a[2];
	pthread_t t[2];
	struct hdr h[2];
	struct rp_status st = { 0 };

	(void)state;
	need_hooks();
	faults_set(NULL, "p11.C_Sign:50");
	assert_int_equal(sign_with(0, &fx.rsa, &st), RP_OK);
	assert_int_equal(sign_with(1, &fx.x, &st), RP_OK);
	faults_set(NULL, "p11.C_Decrypt:50");
	assert_int_equal(unwrap_new(0, &fx.rsa, &st), RP_OK);
	/* slow and failing, on two workers at once */
	faults_set("p11.C_DeriveKey:0xB3:1:3,p11.C_Decrypt:0x30:1:3",
		   "p11.C_DeriveKey:20");
	hdr_make(&h[0], &fx.rsa);
	hdr_make(&h[1], &fx.x);
	for (size_t i = 0; i < 2; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].worker = i;
		a[i].num_unwraps = 20;
		a[i].h[0] = &h[0];
		a[i].h[1] = &h[1];
		a[i].ki[0] = &fx.rsa;
		a[i].ki[1] = &fx.x;
		assert_int_equal(
			pthread_create(&t[i], NULL, worker_main, &a[i]), 0);
	}
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (a[i].num_ok != a[i].num_unwraps) {
			fail_msg("worker %zu: %zu of %zu: %s", i, a[i].num_ok,
				 a[i].num_unwraps, rp_status_msg(&a[i].st));
		}
	}
	hdr_fini(&h[0]);
	hdr_fini(&h[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_ks_pkcs11_unwrap_software_stanza_recovers_file_key),
		cmocka_unit_test(test_ks_pkcs11_sign_verifies_with_openssl),
		cmocka_unit_test(
			test_ks_pkcs11_import_identity_signs_like_soft),
		cmocka_unit_test(test_ks_pkcs11_private_value_unreadable),
		cmocka_unit_test(
			test_ks_pkcs11_backup_erase_restore_unwraps_again),
		cmocka_unit_test(
			test_ks_pkcs11_generated_x25519_backup_refused),
		cmocka_unit_test(test_ks_pkcs11_restore_on_other_token_auth),
		cmocka_unit_test(
			test_ks_pkcs11_export_exportable_rsa_pem_matches),
		cmocka_unit_test(test_ks_pkcs11_two_workers_concurrent_unwraps),
		cmocka_unit_test(
			test_ks_pkcs11_stale_handle_and_lost_session_recover),
		cmocka_unit_test(test_ks_pkcs11_open_wrong_token_or_pin_fails),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_fault_device_error_on_sign_retried,
			faults_teardown),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_fault_lost_session_on_unwrap_retried,
			faults_teardown),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_fault_token_gone_gives_up_bounded,
			faults_teardown),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_fault_every_point_retried,
			faults_teardown),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_fault_bad_stanza_not_retried,
			faults_teardown),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_unwrap_low_order_share_format_error,
			faults_teardown),
		cmocka_unit_test_teardown(
			test_ks_pkcs11_fault_slow_token_still_works,
			faults_teardown),
	};

	if (access(MODULE, R_OK) || run("command -v " UTIL " >/dev/null")) {
		printf("SKIP: SoftHSM2 (" MODULE ", " UTIL ") not installed\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
