/*
 * The PKCS#11 keystore (docs/OPERATIONS.md; how the test token, SoftHSM2
 * 2.6.1, behaves, as measured, is said where it matters below).
 *
 * Objects on the token, all with CKA_ID = the 32-byte key id and CKA_LABEL
 * "rp-<first 16 hex digits of the id>-<kind>":
 *   -rsa      RSA private key: DECRYPT {OAEP, X_509} and SIGN {PSS}
 *   -x25519   X25519 private key (CKK_EC_MONTGOMERY, or SoftHSM's
 *             CKK_EC_EDWARDS with curve25519 params): DERIVE {ECDH1}
 *   -ed25519  Ed25519 private key: SIGN {EDDSA}
 *   -seed     imported age identities only: the X25519 secret as a generic
 *             secret with no usage, kept so the key can be backed up (the
 *             test token cannot wrap EC_EDWARDS/MONTGOMERY keys)
 * Public keys live in the keyring, not on the token. Every private object
 * is SENSITIVE and EXTRACTABLE, so it leaves the token only wrapped; the
 * store refuses plaintext export unless the key is RP_KEY_EXPORTABLE.
 *
 * NEEDSWORK: EXTRACTABLE=true means anyone holding the user PIN can wrap a
 * key under an AES key of their own and unwrap it in software (export does
 * exactly that), and can C_UnwrapKey a backup into a non-sensitive secret.
 * Tested on SoftHSM 2.6.1: CKA_WRAP_WITH_TRUSTED=true on the keys, with a
 * KEK the SO marked CKA_TRUSTED, stops the first (CKR_KEY_NOT_WRAPPABLE);
 * a CKA_UNWRAP_TEMPLATE of {SENSITIVE=true} on the KEK stops the second.
 * Both need the SO PIN once, and cost plaintext export and the -seed
 * restore below.
 *
 * Backups are wrapped (CKM_AES_KEY_WRAP_PAD) under the token's AES-256
 * "reprotect-backup-kek", which is created on first need and never leaves
 * the token: that key is this backend's security world.
 *
 * Sessions: one anchor session per store holds the login and serves the
 * key life-cycle calls (under anchor_lock); each worker has its own
 * session, used by one thread at a time, for unwrap and sign.
 */
#include "ks_pkcs11.h"
#include "rp_b64.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "age_recip.h"
#include "keystore.h"
#include "ks_soft.h"
#include "rp_buf.h"
#include "rp_span.h"
#include "rp_testhook.h"

/* last: in its default compat mode it #defines common lower-case words */
#if __has_include(<p11-kit/pkcs11.h>)
#include <p11-kit/pkcs11.h>
#else
/* Debian's libp11-kit-dev, when -I/usr/include/p11-kit-1 is not given */
#include <p11-kit-1/p11-kit/pkcs11.h>
#endif

/* PKCS#11 3.0 names the 2.40 header lacks */
#ifndef CKK_EC_MONTGOMERY
#define CKK_EC_MONTGOMERY 0x41UL
#endif
#ifndef CKM_EC_MONTGOMERY_KEY_PAIR_GEN
#define CKM_EC_MONTGOMERY_KEY_PAIR_GEN 0x1056UL
#endif

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define NUM_CACHE      32
#define NUM_PUBS       16 /* public keys decoded once per keystore */
#define NUM_ATTRS      24
#define LABEL_MAX      48
#define FIND_MAX       16
#define PIN_MAX	       255
#define RSA_MAX_BYTES  512 /* RSA-4096 */
#define WRAPPED_MAX    8192
#define SSHRSA_LABEL   "age-encryption.org/v1/ssh-rsa"
#define PROBE_LABEL    "reprotect/v1 pkcs11 probe: another label"
#define BLOB_MAGIC     "RP11"
#define BLOB_VERSION   1
#define KCV_MAX	       16

/*
 * Retries of a worker's token operation that failed for the token's sake
 * (a lost session, a device error, a stale handle): up to RETRY_MAX more
 * attempts, the first RETRY_FIRST_MS after the failure and each pause
 * RETRY_FACTOR times the last (10, 40, 160, 640 ms). A token that is gone
 * so costs an operation under a second before it fails with RP_ERR_HSM,
 * and a token that blips (a network HSM failing over) is ridden out. The
 * document's own failures (a stanza that does not open) are never retried.
 */
#define RETRY_MAX      4
#define RETRY_FIRST_MS 10
#define RETRY_FACTOR   4

/* DER of the curve OIDs, for CKA_EC_PARAMS */
static const uint8_t oid_x25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x6e };
static const uint8_t oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const CK_BBOOL ck_true = CK_TRUE;
static const CK_BBOOL ck_false = CK_FALSE;

/* The kinds of object a key has; also the object types of a backup blob. */
enum obj_kind {
	KIND_RSA = 1,
	KIND_X25519 = 2,
	KIND_ED25519 = 3,
	KIND_SEED = 4,
};

static const char *const kind_name[] = {
	[KIND_RSA] = "rsa",
	[KIND_X25519] = "x25519",
	[KIND_ED25519] = "ed25519",
	[KIND_SEED] = "seed",
};

/* How a key opens ssh-rsa stanzas, found by a known-answer probe. */
enum rsa_mode {
	RSA_MODE_UNKNOWN = 0,
	RSA_MODE_OAEP = 1, /* CKM_RSA_PKCS_OAEP, SHA-256, age's label */
	RSA_MODE_RAW = 2,  /* CKM_RSA_X_509, OAEP decoding in software */
};

/*
 * The module: the one piece of process-wide state (the one exception to
 * "no globals"). C_Initialize and C_Finalize act on the whole
 * process, so exactly one owner calls them. The library is never
 * dlclose'd.
 */
struct p11_module {
	pthread_mutex_t lock;
	void *dl; /* owned, never closed */
	char path[PATH_MAX];
	CK_FUNCTION_LIST_PTR f; /* borrowed from the library */
	int is_init;
	size_t num_stores;
};

static struct p11_module g_mod = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A key's handles, cached by id; copied out under cache_lock. */
struct key_entry {
	uint8_t id[RP_KEY_ID_LEN];
	int is_used;
	CK_OBJECT_HANDLE main; /* the RSA or X25519 private key */
	CK_OBJECT_HANDLE sign; /* the Ed25519 private key (X25519 type) */
	int rsa_mode;	       /* enum rsa_mode */
};

/* a key's decoded public key (the id is its hash: it never changes) */
struct pub_entry {
	uint8_t id[RP_KEY_ID_LEN];
	EVP_PKEY *pub;
};

struct p11_ks {
	struct rp_keystore base;
	CK_FUNCTION_LIST_PTR f; /* borrowed from the module */
	int has_module;
	CK_SLOT_ID slot;
	char token[33];
	uint8_t pin[PIN_MAX];
	size_t pin_len;
	/* guards anchor and every life-cycle operation */
	pthread_mutex_t anchor_lock;
	CK_SESSION_HANDLE anchor;
	pthread_mutex_t cache_lock;
	struct key_entry cache[NUM_CACHE];
	size_t next_evict;
	struct pub_entry pubs[NUM_PUBS]; /* under cache_lock */
	size_t next_pub;
	CK_SESSION_HANDLE *workers; /* owned: base.num_workers of them */
	int has_locks;
};

/* An attribute template and the storage its attributes point at. */
struct tpl {
	CK_ATTRIBUTE a[NUM_ATTRS];
	CK_ULONG n;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE type;
	CK_ULONG ulong;
	CK_MECHANISM_TYPE mechs[4];
	char label[LABEL_MAX];
	uint8_t id[RP_KEY_ID_LEN];
};

/* errors */

static const struct {
	CK_RV rv;
	const char *name;
} ck_names[] = {
	{ CKR_OK, "CKR_OK" },
	{ CKR_CANCEL, "CKR_CANCEL" },
	{ CKR_HOST_MEMORY, "CKR_HOST_MEMORY" },
	{ CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID" },
	{ CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR" },
	{ CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED" },
	{ CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD" },
	{ CKR_CANT_LOCK, "CKR_CANT_LOCK" },
	{ CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY" },
	{ CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE" },
	{ CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID" },
	{ CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID" },
	{ CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED" },
	{ CKR_DATA_INVALID, "CKR_DATA_INVALID" },
	{ CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE" },
	{ CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR" },
	{ CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY" },
	{ CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED" },
	{ CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID" },
	{ CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE" },
	{ CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED" },
	{ CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED" },
	{ CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID" },
	{ CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE" },
	{ CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT" },
	{ CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED" },
	{ CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE" },
	{ CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE" },
	{ CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID" },
	{ CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID" },
	{ CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID" },
	{ CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE" },
	{ CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED" },
	{ CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT" },
	{ CKR_PIN_INVALID, "CKR_PIN_INVALID" },
	{ CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE" },
	{ CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED" },
	{ CKR_PIN_LOCKED, "CKR_PIN_LOCKED" },
	{ CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED" },
	{ CKR_SESSION_COUNT, "CKR_SESSION_COUNT" },
	{ CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID" },
	{ CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY" },
	{ CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID" },
	{ CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE" },
	{ CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE" },
	{ CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT" },
	{ CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT" },
	{ CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED" },
	{ CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED" },
	{ CKR_UNWRAPPING_KEY_SIZE_RANGE, "CKR_UNWRAPPING_KEY_SIZE_RANGE" },
	{ CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
	  "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT" },
	{ CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN" },
	{ CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN" },
	{ CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED" },
	{ CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID" },
	{ CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID" },
	{ CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE" },
	{ CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID" },
	{ CKR_WRAPPING_KEY_SIZE_RANGE, "CKR_WRAPPING_KEY_SIZE_RANGE" },
	{ CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
	  "CKR_WRAPPING_KEY_TYPE_INCONSISTENT" },
	{ CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID" },
	{ CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED" },
	{ CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL" },
	{ CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED" },
	{ CKR_CRYPTOKI_ALREADY_INITIALIZED,
	  "CKR_CRYPTOKI_ALREADY_INITIALIZED" },
	{ CKR_PUBLIC_KEY_INVALID, "CKR_PUBLIC_KEY_INVALID" },
	{ CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED" },
};

static const char *ck_name(CK_RV rv)
{
	for (size_t i = 0; i < RP_ARRAY_LEN(ck_names); i++) {
		if (ck_names[i].rv == rv) {
			return ck_names[i].name;
		}
	}
	return rv & CKR_VENDOR_DEFINED ? "CKR_VENDOR_DEFINED" : "CKR_unknown";
}

/*
 * is_busy_error: the token will not take the request now (throttled): the
 * store asks again at a slower pace (rp_store_unwrap_w). AWS CloudHSM
 * answers CKR_OPERATION_ACTIVE when busy; CKR_FUNCTION_REJECTED is the
 * standard's "rejected by the token". (CloudHSM may also answer
 * CKR_FUNCTION_FAILED, which a decryption that fails gives too: that one
 * cannot be told apart and stays a failure.)
 */
static int is_busy_error(CK_RV rv)
{
	return rv == CKR_OPERATION_ACTIVE || rv == CKR_FUNCTION_REJECTED;
}

/*
 * ck_fail records RP_ERR_HSM for `fn` returning `rv`; RP_ERR_NOMEM for
 * CKR_HOST_MEMORY (the module, in this process, ran out of memory: not the
 * token failing)
 */
static enum rp_err ck_fail(struct rp_status *st, CK_RV rv, const char *fn)
{
	if (st && !st->err) {
		st->ck_rv = rv;
	}
	return rp_status_fail(st,
			      rv == CKR_HOST_MEMORY ? RP_ERR_NOMEM
			      : is_busy_error(rv)   ? RP_ERR_BUSY
						    : RP_ERR_HSM,
			      "%s failed: %s (0x%lx)", fn, ck_name(rv),
			      (unsigned long)rv);
}

/* the session is gone or broken: reopen it (and log in again) and retry */
static int is_session_error(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_MEMORY ||
	       rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_USER_NOT_LOGGED_IN;
}

/* a cached object handle went stale: find the object again and retry */
static int is_handle_error(CK_RV rv)
{
	return rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID;
}

/*
 * is_unwrap_error: what tokens return for a wrapped blob that does not
 * open under the key (SoftHSM says CKR_GENERAL_ERROR)
 */
static int is_unwrap_error(CK_RV rv)
{
	return rv == CKR_WRAPPED_KEY_INVALID ||
	       rv == CKR_WRAPPED_KEY_LEN_RANGE || rv == CKR_GENERAL_ERROR ||
	       rv == CKR_FUNCTION_FAILED || rv == CKR_ENCRYPTED_DATA_INVALID ||
	       rv == CKR_ENCRYPTED_DATA_LEN_RANGE || rv == CKR_DATA_INVALID ||
	       rv == CKR_DATA_LEN_RANGE;
}

/*
 * CK_CALL calls the module's function `fn` and sets `rv` to its result.
 * Test builds can make the token slow there (REPROTECT_TEST_PAUSE) or make
 * it fail (REPROTECT_TEST_FAULT) at the point "p11.<fn>": the module is
 * then not called, and the fault's code is the CK_RV, exactly as if the
 * token had returned it. Other builds call the module and nothing else.
 * (The point names use '.', not ':', which the fault rules split on.)
 */
#define CK_CALL(rv, ks, fn, ...)                                               \
	do {                                                                   \
		(rv) = ck_test_hook("p11." #fn, (ks)->token);                  \
		if (!(rv)) {                                                   \
			(rv) = (ks)->f->fn(__VA_ARGS__);                       \
		}                                                              \
	} while (0)

/*
 * CK_CALL_END is CK_CALL for the calls that end an operation (C_Sign,
 * C_Decrypt). Failing, those end it too, so under a fault the module is
 * still called, to end it, and only its result is replaced.
 */
#define CK_CALL_END(rv, ks, fn, ...)                                           \
	do {                                                                   \
		const CK_RV fault_ = ck_test_hook("p11." #fn, (ks)->token);    \
		(rv) = (ks)->f->fn(__VA_ARGS__);                               \
		if (fault_) {                                                  \
			(rv) = fault_;                                         \
		}                                                              \
	} while (0)

static CK_RV ck_test_hook(const char *point, const char *token)
{
	CK_RV rv;

	rp_test_pause_point(point);
	rv = (CK_RV)rp_test_fault(point);
	/* a token busy above a rate (rp_test_busy): its private-key calls */
	if (!rv &&
	    (!strcmp(point, "p11.C_Decrypt") || !strcmp(point, "p11.C_Sign") ||
	     !strcmp(point, "p11.C_DeriveKey"))) {
		rv = (CK_RV)rp_test_busy(token);
	}
	return rv;
}

/* status_move hands a failure recorded in `tmp` to `st` */
static void status_move(struct rp_status *st, const struct rp_status *tmp)
{
	if (st && !st->err && tmp->err) {
		*st = *tmp;
	}
}

/* the module */

static enum rp_err module_load(struct rp_status *st, const char *path)
{
	CK_C_GetFunctionList get_list;
	CK_RV rv;

	if (snprintf(g_mod.path, sizeof(g_mod.path), "%s", path) >=
	    (int)sizeof(g_mod.path)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "pkcs11 module path too long");
	}
	g_mod.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!g_mod.dl) {
		const char *why = dlerror();

		return rp_status_fail(st, RP_ERR_HSM,
				      "cannot load pkcs11 module '%s': %s",
				      path, why ? why : "unknown error");
	}
	get_list = (CK_C_GetFunctionList)dlsym(g_mod.dl, "C_GetFunctionList");
	rv = get_list ? get_list(&g_mod.f) : CKR_FUNCTION_NOT_SUPPORTED;
	if (rv || !g_mod.f) {
		/* nothing was initialised yet, so unloading is safe */
		dlclose(g_mod.dl);
		g_mod.dl = NULL;
		g_mod.f = NULL;
		return rp_status_fail(st, RP_ERR_HSM,
				      "'%s' is not a pkcs11 module "
				      "(C_GetFunctionList: %s)",
				      path, ck_name(rv));
	}
	return RP_OK;
}

static enum rp_err module_acquire(CK_FUNCTION_LIST_PTR *out,
				  struct rp_status *st, const char *path)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;
	enum rp_err err = RP_OK;

	pthread_mutex_lock(&g_mod.lock);
	if (g_mod.dl && strcmp(g_mod.path, path)) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "cannot use pkcs11 module '%s': this "
				     "process already uses '%s'",
				     path, g_mod.path);
		goto out;
	}
	if (!g_mod.dl) {
		err = module_load(st, path);
		if (err) {
			goto out;
		}
	}
	if (!g_mod.is_init) {
		/* without OS locking SoftHSM turns its own mutexes off */
		memset(&args, 0, sizeof(args));
		args.flags = CKF_OS_LOCKING_OK;
		rv = g_mod.f->C_Initialize(&args);
		if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			err = ck_fail(st, rv, "C_Initialize");
			rp_status_prefix(st, "another component of this "
					     "process owns the pkcs11 module");
			goto out;
		}
		if (rv) {
			err = ck_fail(st, rv, "C_Initialize");
			goto out;
		}
		g_mod.is_init = 1;
	}
	g_mod.num_stores++;
	*out = g_mod.f;
out:
	pthread_mutex_unlock(&g_mod.lock);
	return err;
}

static void module_release(void)
{
	pthread_mutex_lock(&g_mod.lock);
	if (!g_mod.num_stores) {
		RP_BUG("pkcs11 module released more often than acquired");
	}
	g_mod.num_stores--;
	pthread_mutex_unlock(&g_mod.lock);
}

enum rp_err rp_pkcs11_finalize(struct rp_status *st)
{
	enum rp_err err = RP_OK;
	CK_RV rv;

	pthread_mutex_lock(&g_mod.lock);
	if (g_mod.num_stores) {
		err = rp_status_fail(st, RP_ERR_STATE,
				     "cannot finalise the pkcs11 module: %zu "
				     "keystores still use it",
				     g_mod.num_stores);
		goto out;
	}
	if (g_mod.is_init) {
		rv = g_mod.f->C_Finalize(NULL);
		g_mod.is_init = 0;
		if (rv) {
			err = ck_fail(st, rv, "C_Finalize");
		}
	}
out:
	pthread_mutex_unlock(&g_mod.lock);
	return err;
}

/* templates */

static void tpl_add(struct tpl *t, CK_ATTRIBUTE_TYPE type, const void *p,
		    size_t len)
{
	if (t->n >= NUM_ATTRS) {
		RP_BUG("pkcs11 template overflow");
	}
	t->a[t->n].type = type;
	t->a[t->n].pValue = (void *)p;
	t->a[t->n].ulValueLen = (CK_ULONG)len;
	t->n++;
}

static void tpl_bool(struct tpl *t, CK_ATTRIBUTE_TYPE type, int is_set)
{
	tpl_add(t, type, is_set ? &ck_true : &ck_false, sizeof(CK_BBOOL));
}

static void make_label(char out[RP_ATLEAST(LABEL_MAX)],
		       const uint8_t id[RP_KEY_ID_LEN], enum obj_kind kind)
{
	char hex[2 * RP_KEY_ID_LEN + 1];
	int n;

	rp_key_id_hex(hex, id);
	n = snprintf(out, LABEL_MAX, "rp-%.16s-%s", hex, kind_name[kind]);
	if (n < 0 || n >= LABEL_MAX) {
		RP_BUG("pkcs11 label too long"); /* objects are found by it */
	}
}

/* tpl_id adds CKA_ID and the kind's CKA_LABEL */
static void tpl_id(struct tpl *t, const uint8_t id[RP_KEY_ID_LEN],
		   enum obj_kind kind)
{
	memcpy(t->id, id, RP_KEY_ID_LEN);
	make_label(t->label, id, kind);
	tpl_add(t, CKA_ID, t->id, RP_KEY_ID_LEN);
	tpl_add(t, CKA_LABEL, t->label, strlen(t->label));
}

/*
 * tpl_private builds the template of a private object of `kind`, every
 * attribute explicit (SoftHSM's defaults are unsafe: SENSITIVE=false).
 * The caller adds CKA_ID/CKA_LABEL (or a pending id) and, for
 * C_CreateObject, the key values.
 */
static void tpl_private(struct tpl *t, CK_KEY_TYPE x25519_type,
			enum obj_kind kind)
{
	memset(t, 0, sizeof(*t));
	t->cls = kind == KIND_SEED ? CKO_SECRET_KEY : CKO_PRIVATE_KEY;
	tpl_add(t, CKA_CLASS, &t->cls, sizeof(t->cls));
	switch (kind) {
	case KIND_RSA:
		t->type = CKK_RSA;
		break;
	case KIND_X25519:
		t->type = x25519_type;
		break;
	case KIND_ED25519:
		t->type = CKK_EC_EDWARDS;
		break;
	case KIND_SEED:
		t->type = CKK_GENERIC_SECRET;
		break;
	}
	tpl_add(t, CKA_KEY_TYPE, &t->type, sizeof(t->type));
	tpl_bool(t, CKA_TOKEN, 1);
	tpl_bool(t, CKA_PRIVATE, 1);
	tpl_bool(t, CKA_SENSITIVE, 1);
	/* extractable only so that backup can wrap it; see the top comment */
	tpl_bool(t, CKA_EXTRACTABLE, 1);
	tpl_bool(t, CKA_DECRYPT, kind == KIND_RSA);
	tpl_bool(t, CKA_SIGN, kind == KIND_RSA || kind == KIND_ED25519);
	tpl_bool(t, CKA_DERIVE, kind == KIND_X25519);
	tpl_bool(t, CKA_UNWRAP, 0);
	if (kind == KIND_SEED) {
		tpl_bool(t, CKA_ENCRYPT, 0);
		tpl_bool(t, CKA_VERIFY, 0);
		tpl_bool(t, CKA_WRAP, 0);
		return;
	}
	tpl_bool(t, CKA_SIGN_RECOVER, 0);
	switch (kind) {
	case KIND_RSA:
		t->mechs[0] = CKM_RSA_PKCS_OAEP;
		t->mechs[1] = CKM_RSA_X_509;
		t->mechs[2] = CKM_RSA_PKCS_PSS;
		tpl_add(t, CKA_ALLOWED_MECHANISMS, t->mechs,
			3 * sizeof(t->mechs[0]));
		break;
	case KIND_X25519:
		t->mechs[0] = CKM_ECDH1_DERIVE;
		tpl_add(t, CKA_ALLOWED_MECHANISMS, t->mechs,
			sizeof(t->mechs[0]));
		break;
	default:
		t->mechs[0] = CKM_EDDSA;
		tpl_add(t, CKA_ALLOWED_MECHANISMS, t->mechs,
			sizeof(t->mechs[0]));
		break;
	}
}

/* tpl_public: the session-only public half of a key pair being generated */
static void tpl_public(struct tpl *t, CK_KEY_TYPE type)
{
	memset(t, 0, sizeof(*t));
	t->cls = CKO_PUBLIC_KEY;
	t->type = type;
	tpl_add(t, CKA_CLASS, &t->cls, sizeof(t->cls));
	tpl_add(t, CKA_KEY_TYPE, &t->type, sizeof(t->type));
	tpl_bool(t, CKA_TOKEN, 0);
	tpl_bool(t, CKA_PRIVATE, 0);
	tpl_bool(t, CKA_ENCRYPT, 0);
	tpl_bool(t, CKA_VERIFY, 0);
	tpl_bool(t, CKA_VERIFY_RECOVER, 0);
	tpl_bool(t, CKA_WRAP, 0);
	tpl_bool(t, CKA_DERIVE, 0);
}

/* sessions and objects */

static CK_RV open_session(const struct p11_ks *ks, CK_SESSION_HANDLE *out)
{
	CK_RV rv;

	CK_CALL(rv, ks, C_OpenSession, ks->slot,
		CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, out);
	if (rv) {
		*out = CK_INVALID_HANDLE;
	}
	return rv;
}

/*
 * drop_session forgets a session after `why`; it closes it only if the
 * handle may still be live, never one the token already invalidated
 */
static void drop_session(const struct p11_ks *ks, CK_SESSION_HANDLE *s,
			 CK_RV why)
{
	if (*s != CK_INVALID_HANDLE && why != CKR_SESSION_HANDLE_INVALID &&
	    why != CKR_SESSION_CLOSED) {
		(void)ks->f->C_CloseSession(*s);
	}
	*s = CK_INVALID_HANDLE;
}

/*
 * anchor_ready makes sure the anchor session is open and the token logged
 * in (closing a token's last session logs it out). Holds anchor_lock.
 */
static enum rp_err anchor_ready(struct p11_ks *ks, struct rp_status *st)
{
	CK_SESSION_INFO si;
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;

	if (ks->anchor != CK_INVALID_HANDLE) {
		rv = ks->f->C_GetSessionInfo(ks->anchor, &si);
	}
	if (rv) {
		drop_session(ks, &ks->anchor, rv);
		rv = open_session(ks, &ks->anchor);
		if (rv) {
			return ck_fail(st, rv, "C_OpenSession");
		}
		rv = ks->f->C_GetSessionInfo(ks->anchor, &si);
		if (rv) {
			return ck_fail(st, rv, "C_GetSessionInfo");
		}
	}
	if (si.state == CKS_RW_USER_FUNCTIONS ||
	    si.state == CKS_RO_USER_FUNCTIONS) {
		return RP_OK;
	}
	CK_CALL(rv, ks, C_Login, ks->anchor, CKU_USER, ks->pin, ks->pin_len);
	if (rv && rv != CKR_USER_ALREADY_LOGGED_IN) {
		const enum rp_err err = ck_fail(st, rv, "C_Login");

		rp_status_prefix(st, "token '%s'", ks->token);
		return err;
	}
	return RP_OK;
}

static enum rp_err anchor_lock(struct p11_ks *ks, struct rp_status *st)
{
	enum rp_err err;

	pthread_mutex_lock(&ks->anchor_lock);
	err = anchor_ready(ks, st);
	if (err) {
		pthread_mutex_unlock(&ks->anchor_lock);
	}
	return err;
}

static void anchor_unlock(struct p11_ks *ks)
{
	pthread_mutex_unlock(&ks->anchor_lock);
}

/* is_logged_in tells an empty search from one made while logged out */
static int is_logged_in(const struct p11_ks *ks, CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;

	return !ks->f->C_GetSessionInfo(s, &si) &&
	       (si.state == CKS_RW_USER_FUNCTIONS ||
		si.state == CKS_RO_USER_FUNCTIONS);
}

/* find_objects lists up to `cap` objects matching `t` */
static enum rp_err find_objects(const struct p11_ks *ks, struct rp_status *st,
				CK_SESSION_HANDLE s, struct tpl *t,
				CK_OBJECT_HANDLE *out, size_t cap,
				size_t *out_n)
{
	CK_ULONG n = 0;
	CK_RV rv, rv_final;

	*out_n = 0;
	CK_CALL(rv, ks, C_FindObjectsInit, s, t->a, t->n);
	if (rv) {
		return ck_fail(st, rv, "C_FindObjectsInit");
	}
	CK_CALL(rv, ks, C_FindObjects, s, out, (CK_ULONG)cap, &n);
	rv_final = ks->f->C_FindObjectsFinal(s);
	if (rv) {
		return ck_fail(st, rv, "C_FindObjects");
	}
	if (rv_final) {
		return ck_fail(st, rv_final, "C_FindObjectsFinal");
	}
	if (!n && !is_logged_in(ks, s)) {
		/* private objects are invisible: make the caller log in */
		return ck_fail(st, CKR_USER_NOT_LOGGED_IN, "C_FindObjects");
	}
	*out_n = n;
	return RP_OK;
}

/* find_kind finds a key's object of `kind`: CK_INVALID_HANDLE if none */
static enum rp_err find_kind(const struct p11_ks *ks, struct rp_status *st,
			     CK_SESSION_HANDLE s,
			     const uint8_t id[RP_KEY_ID_LEN],
			     enum obj_kind kind, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_HANDLE h[2];
	struct tpl t;
	size_t n;
	enum rp_err err;

	memset(&t, 0, sizeof(t));
	t.cls = kind == KIND_SEED ? CKO_SECRET_KEY : CKO_PRIVATE_KEY;
	tpl_add(&t, CKA_CLASS, &t.cls, sizeof(t.cls));
	tpl_id(&t, id, kind);
	*out = CK_INVALID_HANDLE;
	err = find_objects(ks, st, s, &t, h, RP_ARRAY_LEN(h), &n);
	if (!err && n) {
		/* two only while a restore replaces the key: either works */
		*out = h[0];
	}
	return err;
}

/* find_all lists every object of key `id` (all kinds) */
static enum rp_err find_all(const struct p11_ks *ks, struct rp_status *st,
			    CK_SESSION_HANDLE s,
			    const uint8_t id[RP_KEY_ID_LEN],
			    CK_OBJECT_HANDLE out[RP_ATLEAST(FIND_MAX)],
			    size_t *out_n)
{
	struct tpl t;

	memset(&t, 0, sizeof(t));
	memcpy(t.id, id, RP_KEY_ID_LEN);
	tpl_add(&t, CKA_ID, t.id, RP_KEY_ID_LEN);
	return find_objects(ks, st, s, &t, out, FIND_MAX, out_n);
}

static void destroy_all(const struct p11_ks *ks, CK_SESSION_HANDLE s,
			const CK_OBJECT_HANDLE *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (h[i] != CK_INVALID_HANDLE) {
			(void)ks->f->C_DestroyObject(s, h[i]);
		}
	}
}

/* the key handle cache */

static void cache_forget(struct p11_ks *ks, const uint8_t *id)
{
	pthread_mutex_lock(&ks->cache_lock);
	for (size_t i = 0; i < NUM_CACHE; i++) {
		struct key_entry *c = &ks->cache[i];

		if (!id || (c->is_used && !memcmp(c->id, id, RP_KEY_ID_LEN))) {
			memset(c, 0, sizeof(*c));
		}
	}
	pthread_mutex_unlock(&ks->cache_lock);
}

static int cache_find(struct p11_ks *ks, const uint8_t id[RP_KEY_ID_LEN],
		      struct key_entry *out)
{
	int is_found = 0;

	pthread_mutex_lock(&ks->cache_lock);
	for (size_t i = 0; i < NUM_CACHE; i++) {
		if (ks->cache[i].is_used &&
		    !memcmp(ks->cache[i].id, id, RP_KEY_ID_LEN)) {
			*out = ks->cache[i];
			is_found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&ks->cache_lock);
	return is_found;
}

/* cache_put stores `e`, keeping an rsa_mode already learnt for the key */
static void cache_put(struct p11_ks *ks, struct key_entry *e)
{
	struct key_entry *slot = NULL;

	pthread_mutex_lock(&ks->cache_lock);
	for (size_t i = 0; i < NUM_CACHE; i++) {
		if (ks->cache[i].is_used &&
		    !memcmp(ks->cache[i].id, e->id, RP_KEY_ID_LEN)) {
			slot = &ks->cache[i];
			if (!e->rsa_mode) {
				e->rsa_mode = slot->rsa_mode;
			}
			break;
		}
	}
	if (!slot) {
		slot = &ks->cache[ks->next_evict];
		ks->next_evict = (ks->next_evict + 1) % NUM_CACHE;
	}
	*slot = *e;
	pthread_mutex_unlock(&ks->cache_lock);
}

/* key_get returns the key's handles, from the cache or the token */
static enum rp_err key_get(struct p11_ks *ks, struct rp_status *st,
			   CK_SESSION_HANDLE s, const struct rp_key_info *ki,
			   struct key_entry *out)
{
	const int is_x = ki->alg == RP_ALG_X25519;
	enum rp_err err;

	if (cache_find(ks, ki->id, out)) {
		return RP_OK;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out->id, ki->id, RP_KEY_ID_LEN);
	err = find_kind(ks, st, s, ki->id, is_x ? KIND_X25519 : KIND_RSA,
			&out->main);
	if (!err && is_x) {
		err = find_kind(ks, st, s, ki->id, KIND_ED25519, &out->sign);
	}
	if (err) {
		return err;
	}
	if (out->main == CK_INVALID_HANDLE ||
	    (is_x && out->sign == CK_INVALID_HANDLE)) {
		return rp_status_fail(st, RP_ERR_NOKEY,
				      "the key material is not on token '%s'",
				      ks->token);
	}
	out->is_used = 1;
	cache_put(ks, out);
	return RP_OK;
}

/* public keys */

/* x25519_own extracts the raw X25519 public key of an x25519-type key */
static enum rp_err x25519_own(uint8_t out[RP_ATLEAST(RP_X25519_LEN)],
			      struct rp_status *st,
			      const struct rp_key_info *ki)
{
	EVP_PKEY *pk = NULL;
	size_t len = RP_X25519_LEN;
	enum rp_err err = rp_key_pubkey(&pk, st, ki);

	if (!err && (EVP_PKEY_get_base_id(pk) != EVP_PKEY_X25519 ||
		     EVP_PKEY_get_raw_public_key(pk, out, &len) != 1 ||
		     len != RP_X25519_LEN)) {
		err = rp_status_ossl(st, RP_ERR_FORMAT,
				     "keyring: bad x25519 public key");
	}
	EVP_PKEY_free(pk);
	return err;
}

/* same_public: does `pk` have the public key the keyring holds for ki? */
static enum rp_err same_public(struct rp_status *st,
			       const struct rp_key_info *ki, EVP_PKEY *pk)
{
	struct rp_key_info tmp;
	enum rp_err err;

	memset(&tmp, 0, sizeof(tmp));
	err = rp_key_fill_public(&tmp, st, pk);
	if (!err && (tmp.pub_len != ki->pub_len ||
		     CRYPTO_memcmp(tmp.pub, ki->pub, ki->pub_len))) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the key material does not match the "
				     "key's public key");
	}
	return err;
}

static enum rp_err rsa_from_n_e(EVP_PKEY **out, struct rp_status *st,
				const uint8_t *n, size_t n_len,
				const uint8_t *e, size_t e_len)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params_rsa = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
	BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
	enum rp_err err = RP_OK;

	*out = NULL;
	if (!bld || !ctx || !bn_n || !bn_e ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
		err = rp_status_ossl(st, RP_ERR_NOMEM, "rsa public key");
		goto out;
	}
	params_rsa = OSSL_PARAM_BLD_to_param(bld);
	if (!params_rsa || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params_rsa) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "rsa public key from the token");
	}
out:
	OSSL_PARAM_free(params_rsa);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(bn_n);
	BN_free(bn_e);
	return err;
}

/* rsa_public reads the RSA public key of object `h` (public or private) */
static enum rp_err rsa_public(EVP_PKEY **out, struct rp_status *st,
			      const struct p11_ks *ks, CK_SESSION_HANDLE s,
			      CK_OBJECT_HANDLE h)
{
	uint8_t n[RSA_MAX_BYTES];
	uint8_t e[16];
	CK_ATTRIBUTE a[2] = {
		{ CKA_MODULUS, n, sizeof(n) },
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
	};
	CK_RV rv = ks->f->C_GetAttributeValue(s, h, a, 2);

	*out = NULL;
	if (rv) {
		return ck_fail(st, rv, "C_GetAttributeValue");
	}
	return rsa_from_n_e(out, st, n, a[0].ulValueLen, e, a[1].ulValueLen);
}

/* ec_point reads CKA_EC_POINT (DER OCTET STRING 04 20 || key, or raw) */
static enum rp_err ec_point(uint8_t out[RP_ATLEAST(32)], struct rp_status *st,
			    const struct p11_ks *ks, CK_SESSION_HANDLE s,
			    CK_OBJECT_HANDLE h)
{
	uint8_t pt[64];
	CK_ATTRIBUTE a = { CKA_EC_POINT, pt, sizeof(pt) };
	CK_RV rv = ks->f->C_GetAttributeValue(s, h, &a, 1);

	if (rv) {
		return ck_fail(st, rv, "C_GetAttributeValue");
	}
	if (a.ulValueLen == 34 && pt[0] == 0x04 && pt[1] == 0x20) {
		memcpy(out, pt + 2, 32);
	} else if (a.ulValueLen == 32) {
		memcpy(out, pt, 32);
	} else {
		return rp_status_fail(st, RP_ERR_HSM,
				      "token returned a %lu-byte EC point, "
				      "not a 25519 key",
				      (unsigned long)a.ulValueLen);
	}
	return RP_OK;
}

static enum rp_err ed25519_seed_of(uint8_t seed[RP_ATLEAST(32)],
				   uint8_t pub[RP_ATLEAST(32)],
				   struct rp_status *st,
				   const uint8_t secret[RP_ATLEAST(32)])
{
	EVP_PKEY *ed = NULL;
	size_t len = 32;
	enum rp_err err;

	/* as ks_soft.c derives it: one identity signs alike on both */
	err = rp_x25519_signing_seed(seed, st, secret);
	if (err) {
		return err;
	}
	ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	if (!ed || EVP_PKEY_get_raw_public_key(ed, pub, &len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "ed25519 key");
	}
	EVP_PKEY_free(ed);
	return err;
}

/* fill_x25519 fills ki's id and public keys from the raw public keys */
static enum rp_err fill_x25519(struct rp_key_info *ki, struct rp_status *st,
			       const uint8_t xpub[RP_ATLEAST(32)],
			       const uint8_t edpub[RP_ATLEAST(32)])
{
	EVP_PKEY *xp = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, xpub,
						   RP_X25519_LEN);
	enum rp_err err;

	if (!xp) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "x25519 key");
	}
	err = rp_key_fill_public(ki, st, xp);
	memcpy(ki->sign_pub, edpub, sizeof(ki->sign_pub));
	EVP_PKEY_free(xp);
	return err;
}

/* token operations on one session */

/*
 * ecdh derives X25519(key, peer) into a session-only secret, reads it and
 * destroys it at once (there is no HKDF mechanism: age's runs in software).
 * If `is_peer_untrusted` (a document's share), a derive the token refuses
 * with an is_unwrap_error code is RP_ERR_FORMAT, as in software: SoftHSM
 * says CKR_GENERAL_ERROR for a low-order share, whose secret is all zero.
 */
static enum rp_err ecdh(const struct p11_ks *ks, struct rp_status *st,
			CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
			const uint8_t peer[RP_ATLEAST(RP_X25519_LEN)],
			int is_peer_untrusted,
			uint8_t out[RP_ATLEAST(RP_X25519_LEN)])
{
	uint8_t pub[RP_X25519_LEN];
	CK_ECDH1_DERIVE_PARAMS dp;
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &dp, sizeof(dp) };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_GENERIC_SECRET;
	CK_ULONG len = RP_X25519_LEN;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &type, sizeof(type) },
		{ CKA_TOKEN, (void *)&ck_false, sizeof(CK_BBOOL) },
		{ CKA_PRIVATE, (void *)&ck_true, sizeof(CK_BBOOL) },
		{ CKA_SENSITIVE, (void *)&ck_false, sizeof(CK_BBOOL) },
		{ CKA_EXTRACTABLE, (void *)&ck_true, sizeof(CK_BBOOL) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
	};
	CK_ATTRIBUTE v = { CKA_VALUE, out, RP_X25519_LEN };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv;

	memcpy(pub, peer, sizeof(pub));
	memset(&dp, 0, sizeof(dp));
	dp.kdf = CKD_NULL;
	dp.pPublicData = pub;
	dp.ulPublicDataLen = sizeof(pub);
	CK_CALL(rv, ks, C_DeriveKey, s, &m, key, t, RP_ARRAY_LEN(t), &h);
	if (rv && is_peer_untrusted && is_unwrap_error(rv)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "the token derives no x25519 secret "
				      "from the share (low-order point?): "
				      "C_DeriveKey: %s",
				      ck_name(rv));
	}
	if (rv) {
		return ck_fail(st, rv, "C_DeriveKey");
	}
	rv = ks->f->C_GetAttributeValue(s, h, &v, 1);
	(void)ks->f->C_DestroyObject(s, h);
	if (!rv && v.ulValueLen != RP_X25519_LEN) {
		rv = CKR_FUNCTION_FAILED;
	}
	if (rv) {
		OPENSSL_cleanse(out, RP_X25519_LEN);
		return ck_fail(st, rv, "C_GetAttributeValue");
	}
	return RP_OK;
}

/*
 * check_x25519 proves the X25519 object `h` is the key whose public key is
 * `own`: X25519(key, 9) is the public key
 */
static enum rp_err check_x25519(const struct p11_ks *ks, struct rp_status *st,
				CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
				const uint8_t own[RP_ATLEAST(RP_X25519_LEN)])
{
	static const uint8_t base[RP_X25519_LEN] = { 9 };
	uint8_t pub[RP_X25519_LEN];
	enum rp_err err = ecdh(ks, st, s, h, base, 0, pub);

	if (!err && CRYPTO_memcmp(pub, own, RP_X25519_LEN)) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the x25519 key on the token does not "
				     "match the key's public key");
	}
	return err;
}

static enum rp_err verify_ed25519(struct rp_status *st,
				  const uint8_t pub[RP_ATLEAST(32)],
				  const uint8_t *msg, size_t msg_len,
				  const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY *pk =
		EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	enum rp_err err = RP_OK;

	if (!pk || !md || EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) != 1 ||
	    EVP_DigestVerify(md, sig, sig_len, msg, msg_len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "the token's ed25519 signature does not "
				     "verify");
	}
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return err;
}

static enum rp_err sign_ed25519(const struct p11_ks *ks, struct rp_status *st,
				CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
				const uint8_t *msg, size_t msg_len,
				uint8_t *out, size_t out_cap, size_t *out_len)
{
	CK_MECHANISM m = { CKM_EDDSA, NULL, 0 };
	CK_ULONG n = out_cap;
	CK_RV rv;

	CK_CALL(rv, ks, C_SignInit, s, &m, h);
	if (rv) {
		return ck_fail(st, rv, "C_SignInit");
	}
	CK_CALL_END(rv, ks, C_Sign, s, (CK_BYTE_PTR)msg, msg_len, out, &n);
	if (rv) {
		return ck_fail(st, rv, "C_Sign");
	}
	*out_len = n;
	return RP_OK;
}

/* check_ed25519 proves object `h` signs for `pub` */
static enum rp_err check_ed25519(const struct p11_ks *ks, struct rp_status *st,
				 CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
				 const uint8_t pub[RP_ATLEAST(32)])
{
	static const uint8_t msg[] = "reprotect/v1 pkcs11: ed25519 check";
	uint8_t sig[64];
	size_t sig_len = 0;
	enum rp_err err;

	err = sign_ed25519(ks, st, s, h, msg, sizeof(msg), sig, sizeof(sig),
			   &sig_len);
	if (!err) {
		err = verify_ed25519(st, pub, msg, sizeof(msg), sig, sig_len);
	}
	if (err == RP_ERR_CRYPTO) {
		rp_status_clear(st);
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the ed25519 key on the token does not "
				     "match the key's signing key");
	}
	return err;
}

/* unwrap */

struct rsa_unwrap_arg {
	const struct rp_age_stanza *s;
	EVP_PKEY *pub; /* borrowed */
	size_t k;      /* modulus bytes */
	uint8_t *file_key;
};

static enum rp_err oaep_encrypt(struct rp_status *st, EVP_PKEY *pub,
				const char *label, const uint8_t *in,
				size_t in_len, uint8_t *out, size_t *out_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	void *lab = OPENSSL_memdup(label, strlen(label));
	enum rp_err err = RP_OK;

	if (!ctx || !lab || EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, lab, (int)strlen(label)) !=
		    1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "rsa-oaep probe");
		goto out;
	}
	lab = NULL; /* the context owns it now */
	if (EVP_PKEY_encrypt(ctx, out, out_len, in, in_len) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "rsa-oaep probe");
	}
out:
	OPENSSL_free(lab);
	EVP_PKEY_CTX_free(ctx);
	return err;
}

/*
 * token_decrypt runs one C_DecryptInit/C_Decrypt. Returns the CK_RV of the
 * failing call; *out_fn names it.
 */
static CK_RV token_decrypt(const struct p11_ks *ks, CK_SESSION_HANDLE s,
			   CK_OBJECT_HANDLE h, int mode, const uint8_t *in,
			   size_t in_len, uint8_t *out, size_t *out_len,
			   const char **out_fn)
{
	CK_RSA_PKCS_OAEP_PARAMS op;
	CK_MECHANISM m = { CKM_RSA_X_509, NULL, 0 };
	CK_ULONG n = *out_len;
	CK_RV rv;

	if (mode == RSA_MODE_OAEP) {
		memset(&op, 0, sizeof(op));
		op.hashAlg = CKM_SHA256;
		op.mgf = CKG_MGF1_SHA256;
		op.source = CKZ_DATA_SPECIFIED;
		op.pSourceData = (void *)SSHRSA_LABEL;
		op.ulSourceDataLen = sizeof(SSHRSA_LABEL) - 1;
		m.mechanism = CKM_RSA_PKCS_OAEP;
		m.pParameter = &op;
		m.ulParameterLen = sizeof(op);
	}
	*out_fn = "C_DecryptInit";
	CK_CALL(rv, ks, C_DecryptInit, s, &m, h);
	if (rv) {
		return rv;
	}
	*out_fn = "C_Decrypt";
	CK_CALL_END(rv, ks, C_Decrypt, s, (CK_BYTE_PTR)in, in_len, out, &n);
	*out_len = rv ? 0 : n;
	return rv;
}

/* decode_raw finishes an ssh-rsa unwrap made with raw RSA on the token */
static enum rp_err decode_raw(uint8_t *file_key, struct rp_status *st,
			      const uint8_t *em, size_t em_len, size_t k)
{
	if (!em_len || em_len > k) {
		return rp_status_fail(st, RP_ERR_AUTH,
				      "cannot unwrap ssh-rsa stanza");
	}
	return rp_sshrsa_oaep_decode(file_key, st, em, em_len, k);
}

/*
 * probe_rsa finds how key `h` opens ssh-rsa stanzas (SoftHSM2 2.6.1,
 * measured): the token's OAEP-SHA-256 with age's label if it decrypts a known
 * answer AND rejects another label (SoftHSM ignores labels), else raw RSA
 * with OAEP decoding in software. Session and handle errors propagate.
 */
static enum rp_err probe_rsa(const struct p11_ks *ks, struct rp_status *st,
			     CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
			     const struct rsa_unwrap_arg *a, int *out_mode)
{
	uint8_t want[RP_AGE_FILE_KEY_LEN];
	uint8_t dec[RP_AGE_FILE_KEY_LEN];
	uint8_t got[RSA_MAX_BYTES];
	uint8_t ct[RSA_MAX_BYTES];
	uint8_t ct_other[RSA_MAX_BYTES];
	struct rp_recip_stanza rs;
	struct rp_status tmp = { 0 };
	size_t ct_len = sizeof(ct_other), n = sizeof(got);
	const char *fn = NULL;
	CK_RV rv;
	enum rp_err err;

	*out_mode = RSA_MODE_UNKNOWN;
	memset(&rs, 0, sizeof(rs));
	if (RAND_bytes(want, sizeof(want)) != 1) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "random");
	}
	err = rp_sshrsa_wrap(&rs, st, a->pub, NULL, want);
	if (!err) {
		err = oaep_encrypt(st, a->pub, PROBE_LABEL, want, sizeof(want),
				   ct_other, &ct_len);
	}
	if (err) {
		goto out;
	}
	memcpy(ct, rs.body, rs.body_len);
	rv = token_decrypt(ks, s, h, RSA_MODE_OAEP, ct, rs.body_len, got, &n,
			   &fn);
	if (is_session_error(rv) || is_handle_error(rv) || is_busy_error(rv)) {
		err = ck_fail(st, rv, fn);
		goto out;
	}
	if (!rv && n == sizeof(want) && !CRYPTO_memcmp(got, want, n)) {
		n = sizeof(got);
		rv = token_decrypt(ks, s, h, RSA_MODE_OAEP, ct_other, ct_len,
				   got, &n, &fn);
		if (is_session_error(rv) || is_handle_error(rv) ||
		    is_busy_error(rv)) {
			err = ck_fail(st, rv, fn);
			goto out;
		}
		if (rv) {
			*out_mode = RSA_MODE_OAEP;
			goto out;
		}
	}
	n = sizeof(got);
	rv = token_decrypt(ks, s, h, RSA_MODE_RAW, ct, rs.body_len, got, &n,
			   &fn);
	if (rv) {
		err = ck_fail(st, rv, fn);
		if (is_busy_error(rv)) {
			goto out;
		}
		rp_status_prefix(st, "the token offers neither rsa-oaep-sha256 "
				     "with a label nor raw rsa for this key");
		goto out;
	}
	if (decode_raw(dec, &tmp, got, n, a->k) ||
	    CRYPTO_memcmp(dec, want, sizeof(want))) {
		err = rp_status_fail(st, RP_ERR_HSM,
				     "raw rsa on the token gives wrong "
				     "results for this key");
		goto out;
	}
	*out_mode = RSA_MODE_RAW;
out:
	OPENSSL_cleanse(want, sizeof(want));
	OPENSSL_cleanse(dec, sizeof(dec));
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(&rs, sizeof(rs));
	return err;
}

static void cache_set_mode(struct p11_ks *ks, const uint8_t *id, int mode)
{
	pthread_mutex_lock(&ks->cache_lock);
	for (size_t i = 0; i < NUM_CACHE; i++) {
		if (ks->cache[i].is_used &&
		    !memcmp(ks->cache[i].id, id, RP_KEY_ID_LEN)) {
			ks->cache[i].rsa_mode = mode;
		}
	}
	pthread_mutex_unlock(&ks->cache_lock);
}

typedef enum rp_err op_fn(struct p11_ks *ks, struct rp_status *st,
			  CK_SESSION_HANDLE s, const struct key_entry *e,
			  void *arg);

static enum rp_err rsa_unwrap_op(struct p11_ks *ks, struct rp_status *st,
				 CK_SESSION_HANDLE s, const struct key_entry *e,
				 void *arg)
{
	const struct rsa_unwrap_arg *a = arg;
	uint8_t em[RSA_MAX_BYTES];
	size_t n = sizeof(em);
	const char *fn = NULL;
	int mode = e->rsa_mode;
	CK_RV rv;
	enum rp_err err = RP_OK;

	if (mode == RSA_MODE_UNKNOWN) {
		err = probe_rsa(ks, st, s, e->main, a, &mode);
		if (err) {
			return err;
		}
		cache_set_mode(ks, e->id, mode);
	}
	rv = token_decrypt(ks, s, e->main, mode, a->s->body.p, a->s->body.len,
			   em, &n, &fn);
	if (rv == CKR_OK && mode == RSA_MODE_OAEP) {
		if (n != RP_AGE_FILE_KEY_LEN) {
			err = rp_status_fail(st, RP_ERR_AUTH,
					     "cannot unwrap ssh-rsa stanza");
		} else {
			memcpy(a->file_key, em, RP_AGE_FILE_KEY_LEN);
		}
	} else if (rv == CKR_OK) {
		err = decode_raw(a->file_key, st, em, n, a->k);
	} else if (is_session_error(rv) || is_handle_error(rv) ||
		   is_busy_error(rv) || rv == CKR_HOST_MEMORY ||
		   !strcmp(fn, "C_DecryptInit")) {
		err = ck_fail(st, rv, fn);
	} else {
		/* one outcome for every decryption failure: no oracle */
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "cannot unwrap ssh-rsa stanza");
	}
	OPENSSL_cleanse(em, sizeof(em));
	return err;
}

struct x25519_unwrap_arg {
	const struct rp_age_stanza *s;
	uint8_t share[RP_X25519_LEN];
	uint8_t own[RP_X25519_LEN];
	uint8_t *file_key;
};

static enum rp_err x25519_unwrap_op(struct p11_ks *ks, struct rp_status *st,
				    CK_SESSION_HANDLE s,
				    const struct key_entry *e, void *arg)
{
	const struct x25519_unwrap_arg *a = arg;
	uint8_t ss[RP_X25519_LEN];
	enum rp_err err = ecdh(ks, st, s, e->main, a->share, 1, ss);

	if (!err) {
		err = rp_x25519_unwrap_ss(a->file_key, st, a->s, ss, a->own);
	}
	OPENSSL_cleanse(ss, sizeof(ss));
	return err;
}

struct sign_arg {
	const uint8_t *msg; /* the SHA-256 digest for RSA */
	size_t msg_len;
	uint8_t *out;
	size_t out_cap;
	size_t out_len;
};

static enum rp_err sign_op(struct p11_ks *ks, struct rp_status *st,
			   CK_SESSION_HANDLE s, const struct key_entry *e,
			   void *arg)
{
	struct sign_arg *a = arg;
	CK_RSA_PKCS_PSS_PARAMS pp;
	CK_MECHANISM m = { CKM_RSA_PKCS_PSS, &pp, sizeof(pp) };
	CK_ULONG n = a->out_cap;
	CK_RV rv;

	if (e->sign != CK_INVALID_HANDLE) {
		return sign_ed25519(ks, st, s, e->sign, a->msg, a->msg_len,
				    a->out, a->out_cap, &a->out_len);
	}
	memset(&pp, 0, sizeof(pp));
	pp.hashAlg = CKM_SHA256;
	pp.mgf = CKG_MGF1_SHA256;
	pp.sLen = 32;
	CK_CALL(rv, ks, C_SignInit, s, &m, e->main);
	if (rv) {
		return ck_fail(st, rv, "C_SignInit");
	}
	CK_CALL_END(rv, ks, C_Sign, s, (CK_BYTE_PTR)a->msg, a->msg_len, a->out,
		    &n);
	if (rv) {
		return ck_fail(st, rv, "C_Sign");
	}
	a->out_len = n;
	return RP_OK;
}

/*
 * worker_open opens worker `w`'s session, first making sure through the
 * anchor that the token is logged in (closing a token's last session, or
 * losing the device, logs it out)
 */
static enum rp_err worker_open(struct p11_ks *ks, struct rp_status *st,
			       size_t w)
{
	enum rp_err err = anchor_lock(ks, st);
	CK_RV rv;

	if (err) {
		return err;
	}
	anchor_unlock(ks);
	rv = open_session(ks, &ks->workers[w]);
	if (rv) {
		return ck_fail(st, rv, "C_OpenSession");
	}
	return RP_OK;
}

/*
 * is_token_error: the token failed, not the request: worth another try.
 * None of these is an is_unwrap_error.
 */
static int is_token_error(CK_RV rv)
{
	return is_session_error(rv) || is_handle_error(rv);
}

/* retry_pause sleeps before retry `attempt` (0 for the first retry) */
static void retry_pause(int attempt)
{
	long ms = RETRY_FIRST_MS;
	struct timespec ts;

	for (int i = 0; i < attempt; i++) {
		ms *= RETRY_FACTOR;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = ms % 1000 * 1000000L;
	while (nanosleep(&ts, &ts) && errno == EINTR) {
		continue;
	}
}

/*
 * run_op runs `fn` on worker `w`'s session for key `ki`. While the token
 * fails (is_token_error) it tries again, up to RETRY_MAX times with
 * growing pauses and no lock held: a stale object handle is looked up
 * again; a broken session is dropped and reopened, logging the token in
 * again if it was logged out. If the last retry fails too, it returns
 * RP_ERR_HSM, "token '...' is unavailable after N attempts: <call>
 * failed: <CKR name>", and st->ck_rv is the last CK_RV. Every other
 * failure, the document's among them, returns at once.
 */
static enum rp_err run_op(struct p11_ks *ks, struct rp_status *st, size_t w,
			  const struct rp_key_info *ki, op_fn *fn, void *arg)
{
	struct rp_status tmp = { 0 };
	struct key_entry e;
	enum rp_err err = RP_OK;
	int attempt;

	if (w >= ks->base.num_workers) {
		RP_BUG("worker index out of range");
	}
	for (attempt = 0;; attempt++) {
		rp_status_clear(&tmp);
		err = RP_OK;
		if (ks->workers[w] == CK_INVALID_HANDLE) {
			err = worker_open(ks, &tmp, w);
		}
		if (!err) {
			err = key_get(ks, &tmp, ks->workers[w], ki, &e);
		}
		if (!err) {
			err = fn(ks, &tmp, ks->workers[w], &e, arg);
		}
		if (err != RP_ERR_HSM || !is_token_error(tmp.ck_rv)) {
			break;
		}
		/* even after the last try: the next operation starts afresh */
		if (is_handle_error(tmp.ck_rv)) {
			cache_forget(ks, ki->id);
		} else {
			drop_session(ks, &ks->workers[w], tmp.ck_rv);
			/* a new login invalidates private object handles */
			cache_forget(ks, NULL);
		}
		if (attempt == RETRY_MAX) {
			break;
		}
		retry_pause(attempt);
	}
	if (err == RP_ERR_HSM && is_token_error(tmp.ck_rv)) {
		rp_status_prefix(&tmp,
				 "token '%s' is unavailable after %d "
				 "attempts",
				 ks->token, attempt + 1);
	}
	status_move(st, &tmp);
	return err;
}

/*
 * pub_get gives a reference to the key's public key, decoded once per
 * keystore: the engine asks for it for every document it unwraps
 */
static enum rp_err pub_get(struct p11_ks *ks, struct rp_status *st,
			   const struct rp_key_info *ki, EVP_PKEY **out)
{
	EVP_PKEY *pub = NULL;
	enum rp_err err;

	pthread_mutex_lock(&ks->cache_lock);
	for (size_t i = 0; i < NUM_PUBS; i++) {
		const struct pub_entry *e = &ks->pubs[i];

		if (e->pub && !memcmp(e->id, ki->id, RP_KEY_ID_LEN)) {
			if (EVP_PKEY_up_ref(e->pub)) {
				pub = e->pub;
			}
			break;
		}
	}
	pthread_mutex_unlock(&ks->cache_lock);
	if (pub) {
		*out = pub;
		return RP_OK;
	}
	err = rp_key_pubkey(&pub, st, ki);
	if (err) {
		return err;
	}
	pthread_mutex_lock(&ks->cache_lock);
	{
		struct pub_entry *e = &ks->pubs[ks->next_pub++ % NUM_PUBS];

		if (EVP_PKEY_up_ref(pub)) {
			EVP_PKEY_free(e->pub);
			memcpy(e->id, ki->id, RP_KEY_ID_LEN);
			e->pub = pub;
		}
	}
	pthread_mutex_unlock(&ks->cache_lock);
	*out = pub;
	return RP_OK;
}

static enum rp_err pk_unwrap(struct rp_keystore *base, struct rp_status *st,
			     size_t worker, const struct rp_key_info *ki,
			     const struct rp_age_stanza *s,
			     uint8_t file_key[RP_AGE_FILE_KEY_LEN])
{
	struct p11_ks *ks = (struct p11_ks *)base;
	EVP_PKEY *pub = NULL;
	char tag[8];
	enum rp_err err;

	if (ki->alg == RP_ALG_X25519) {
		struct x25519_unwrap_arg xa;

		memset(&xa, 0, sizeof(xa));
		xa.s = s;
		xa.file_key = file_key;
		err = rp_x25519_check_stanza(xa.share, st, s);
		if (!err) {
			err = x25519_own(xa.own, st, ki);
		}
		if (!err) {
			err = run_op(ks, st, worker, ki, x25519_unwrap_op, &xa);
		}
		return err;
	}
	/* the stanza's type, shape and tag first: no token call for others */
	err = rp_sshrsa_check_stanza(st, s);
	if (!err) {
		err = pub_get(ks, st, ki, &pub);
	}
	if (!err) {
		err = rp_sshrsa_tag(tag, st, pub);
	}
	if (err) {
		goto out;
	}
	if (s->args[1].len != RP_SSHRSA_TAG_LEN ||
	    memcmp(s->args[1].p, tag, RP_SSHRSA_TAG_LEN) ||
	    s->body.len != (size_t)EVP_PKEY_get_size(pub)) {
		err = rp_status_fail(st, RP_ERR_NOKEY,
				     "ssh-rsa stanza is not for this key");
		goto out;
	}
	struct rsa_unwrap_arg ra = { s, pub, s->body.len, file_key };

	err = run_op(ks, st, worker, ki, rsa_unwrap_op, &ra);
out:
	EVP_PKEY_free(pub);
	return err;
}

/* sign */

static enum rp_err verify_pss(struct rp_status *st, EVP_PKEY *pub,
			      const uint8_t *sig, size_t sig_len,
			      const uint8_t digest[RP_ATLEAST(32)])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	enum rp_err err = RP_OK;

	if (!ctx || EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) != 1 ||
	    EVP_PKEY_verify(ctx, sig, sig_len, digest, 32) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "the token's rsa-pss signature does not "
				     "verify");
	}
	EVP_PKEY_CTX_free(ctx);
	return err;
}

static enum rp_err pk_sign(struct rp_keystore *base, struct rp_status *st,
			   size_t worker, const struct rp_key_info *ki,
			   const uint8_t *msg, size_t msg_len, uint8_t *out,
			   size_t out_cap, size_t *out_len)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	uint8_t digest[32];
	unsigned int md_len = 0;
	struct sign_arg a = { msg, msg_len, out, out_cap, 0 };
	EVP_PKEY *pub = NULL;
	enum rp_err err;

	if (ki->alg == RP_ALG_X25519) {
		if (out_cap < 64) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "signature buffer too small");
		}
		err = run_op(ks, st, worker, ki, sign_op, &a);
		if (!err) {
			err = verify_ed25519(st, ki->sign_pub, msg, msg_len,
					     out, a.out_len);
		}
		goto out;
	}
	err = pub_get(ks, st, ki, &pub);
	if (err) {
		goto out;
	}
	if (out_cap < (size_t)EVP_PKEY_get_size(pub)) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "signature buffer too small");
		goto out;
	}
	/* hash on the host: only 32 bytes go to the token */
	if (!EVP_Digest(msg, msg_len, digest, &md_len, EVP_sha256(), NULL)) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "sha-256");
		goto out;
	}
	a.msg = digest;
	a.msg_len = sizeof(digest);
	err = run_op(ks, st, worker, ki, sign_op, &a);
	if (!err) {
		err = verify_pss(st, pub, out, a.out_len, digest);
	}
out:
	if (err) {
		OPENSSL_cleanse(out, out_cap);
	} else {
		*out_len = a.out_len;
	}
	EVP_PKEY_free(pub);
	return err;
}

/* generate and import (anchor session, anchor_lock held) */

/* set_id gives a freshly made object its final CKA_ID and CKA_LABEL */
static enum rp_err set_id(const struct p11_ks *ks, struct rp_status *st,
			  CK_OBJECT_HANDLE h, const uint8_t id[RP_KEY_ID_LEN],
			  enum obj_kind kind)
{
	struct tpl t;
	CK_RV rv;

	memset(&t, 0, sizeof(t));
	tpl_id(&t, id, kind);
	rv = ks->f->C_SetAttributeValue(ks->anchor, h, t.a, t.n);
	return rv ? ck_fail(st, rv, "C_SetAttributeValue") : RP_OK;
}

/* tpl_pending: a temporary CKA_ID and label until the key id (from the
 * public key) is known */
static void tpl_pending(struct tpl *t, enum obj_kind kind)
{
	const int n = snprintf(t->label, sizeof(t->label), "rp-pending-%s",
			       kind_name[kind]);

	if (n < 0 || (size_t)n >= sizeof(t->label)) {
		RP_BUG("pkcs11 label too long"); /* objects are found by it */
	}
	if (RAND_bytes(t->id, 16) != 1) {
		memset(t->id, 0xee, 16);
	}
	tpl_add(t, CKA_ID, t->id, 16);
	tpl_add(t, CKA_LABEL, t->label, strlen(t->label));
}

static enum rp_err gen_rsa(struct p11_ks *ks, struct rp_status *st,
			   struct rp_key_info *ki)
{
	static const uint8_t e65537[] = { 1, 0, 1 };
	CK_MECHANISM m = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	struct tpl tp, tk;
	EVP_PKEY *pk = NULL;
	CK_RV rv;
	enum rp_err err;

	tpl_public(&tp, CKK_RSA);
	tp.ulong = (CK_ULONG)rp_key_alg_rsa_bits(ki->alg);
	tpl_add(&tp, CKA_MODULUS_BITS, &tp.ulong, sizeof(tp.ulong));
	tpl_add(&tp, CKA_PUBLIC_EXPONENT, e65537, sizeof(e65537));
	tpl_private(&tk, CKK_EC_MONTGOMERY, KIND_RSA);
	tpl_pending(&tk, KIND_RSA);
	rv = ks->f->C_GenerateKeyPair(ks->anchor, &m, tp.a, tp.n, tk.a, tk.n,
				      &pub, &priv);
	if (rv) {
		err = ck_fail(st, rv, "C_GenerateKeyPair");
		goto out;
	}
	err = rsa_public(&pk, st, ks, ks->anchor, pub);
	if (!err) {
		err = rp_key_fill_public(ki, st, pk);
	}
	if (!err) {
		err = set_id(ks, st, priv, ki->id, KIND_RSA);
	}
out:
	destroy_all(ks, ks->anchor, &pub, 1);
	if (err) {
		destroy_all(ks, ks->anchor, &priv, 1);
	}
	EVP_PKEY_free(pk);
	return err;
}

/* gen_ec makes a 25519 key pair of `kind` and returns its raw public key */
static enum rp_err gen_ec(struct p11_ks *ks, struct rp_status *st,
			  enum obj_kind kind, CK_OBJECT_HANDLE *out,
			  uint8_t pub_raw[RP_ATLEAST(32)])
{
	const int is_x = kind == KIND_X25519;
	CK_MECHANISM m = { CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
	CK_KEY_TYPE type = is_x ? CKK_EC_MONTGOMERY : CKK_EC_EDWARDS;
	struct tpl tp, tk;
	CK_RV rv;
	enum rp_err err;

	*out = CK_INVALID_HANDLE;
	for (int attempt = 0;; attempt++) {
		if (type == CKK_EC_MONTGOMERY) {
			m.mechanism = CKM_EC_MONTGOMERY_KEY_PAIR_GEN;
		} else {
			m.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		}
		tpl_public(&tp, type);
		tpl_add(&tp, CKA_EC_PARAMS, is_x ? oid_x25519 : oid_ed25519,
			sizeof(oid_x25519));
		tpl_private(&tk, type, kind);
		tpl_pending(&tk, kind);
		rv = ks->f->C_GenerateKeyPair(ks->anchor, &m, tp.a, tp.n, tk.a,
					      tk.n, &pub, out);
		if (!rv || attempt || type != CKK_EC_MONTGOMERY ||
		    is_session_error(rv)) {
			break;
		}
		/* SoftHSM's X25519: an EC_EDWARDS key on curve25519 */
		type = CKK_EC_EDWARDS;
	}
	if (rv) {
		*out = CK_INVALID_HANDLE;
		return ck_fail(st, rv, "C_GenerateKeyPair");
	}
	err = ec_point(pub_raw, st, ks, ks->anchor, pub);
	destroy_all(ks, ks->anchor, &pub, 1);
	return err;
}

static enum rp_err gen_x25519(struct p11_ks *ks, struct rp_status *st,
			      struct rp_key_info *ki)
{
	CK_OBJECT_HANDLE h[2] = { CK_INVALID_HANDLE, CK_INVALID_HANDLE };
	uint8_t xpub[32], edpub[32];
	enum rp_err err;

	err = gen_ec(ks, st, KIND_X25519, &h[0], xpub);
	if (!err) {
		err = gen_ec(ks, st, KIND_ED25519, &h[1], edpub);
	}
	if (!err) {
		err = fill_x25519(ki, st, xpub, edpub);
	}
	if (!err) {
		err = set_id(ks, st, h[0], ki->id, KIND_X25519);
	}
	if (!err) {
		err = set_id(ks, st, h[1], ki->id, KIND_ED25519);
	}
	if (err) {
		destroy_all(ks, ks->anchor, h, 2);
	}
	return err;
}

static enum rp_err pk_generate(struct rp_keystore *base, struct rp_status *st,
			       struct rp_key_info *ki)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	enum rp_err err;

	if (ki->alg != RP_ALG_X25519 && !rp_key_alg_rsa_bits(ki->alg)) {
		return rp_status_fail(st, RP_ERR_USAGE, "unknown algorithm");
	}
	err = anchor_lock(ks, st);
	if (err) {
		return err;
	}
	if (ki->alg == RP_ALG_X25519) {
		err = gen_x25519(ks, st, ki);
	} else {
		err = gen_rsa(ks, st, ki);
	}
	anchor_unlock(ks);
	return err;
}

/* check_absent: RP_ERR_EXISTS if the token already has key `id` */
static enum rp_err check_absent(const struct p11_ks *ks, struct rp_status *st,
				const uint8_t id[RP_KEY_ID_LEN])
{
	CK_OBJECT_HANDLE h[FIND_MAX];
	size_t n = 0;
	enum rp_err err = find_all(ks, st, ks->anchor, id, h, &n);

	if (!err && n) {
		err = rp_status_fail(st, RP_ERR_EXISTS,
				     "the key is already on token '%s'",
				     ks->token);
	}
	return err;
}

/* The RSA private key's components, big-endian, for C_CreateObject. */
struct rsa_parts {
	uint8_t b[8][RSA_MAX_BYTES];
	size_t len[8];
};

static enum rp_err rsa_split(struct rsa_parts *out, struct rp_status *st,
			     const EVP_PKEY *pk)
{
	static const char *const names[8] = {
		OSSL_PKEY_PARAM_RSA_N,	       OSSL_PKEY_PARAM_RSA_E,
		OSSL_PKEY_PARAM_RSA_D,	       OSSL_PKEY_PARAM_RSA_FACTOR1,
		OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
		OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	enum rp_err err = RP_OK;

	for (size_t i = 0; i < 8 && !err; i++) {
		BIGNUM *bn = NULL;
		int n;

		if (!EVP_PKEY_get_bn_param(pk, names[i], &bn) ||
		    BN_num_bytes(bn) > RSA_MAX_BYTES) {
			err = rp_status_ossl(
				st, RP_ERR_FORMAT,
				"rsa key lacks its CRT parameters");
		} else {
			n = BN_bn2bin(bn, out->b[i]);
			out->len[i] = n > 0 ? (size_t)n : 0;
		}
		BN_clear_free(bn);
	}
	return err;
}

static enum rp_err create_rsa(struct p11_ks *ks, struct rp_status *st,
			      const struct rp_key_info *ki, const EVP_PKEY *pk)
{
	static const CK_ATTRIBUTE_TYPE types[8] = {
		CKA_MODULUS,	CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
		CKA_PRIME_1,	CKA_PRIME_2,	     CKA_EXPONENT_1,
		CKA_EXPONENT_2, CKA_COEFFICIENT,
	};
	struct rsa_parts *parts = OPENSSL_secure_zalloc(sizeof(*parts));
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	struct tpl t;
	CK_RV rv;
	enum rp_err err;

	if (!parts) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = rsa_split(parts, st, pk);
	if (err) {
		goto out;
	}
	tpl_private(&t, CKK_EC_MONTGOMERY, KIND_RSA);
	tpl_id(&t, ki->id, KIND_RSA);
	for (size_t i = 0; i < 8; i++) {
		tpl_add(&t, types[i], parts->b[i], parts->len[i]);
	}
	rv = ks->f->C_CreateObject(ks->anchor, t.a, t.n, &h);
	if (rv) {
		err = ck_fail(st, rv, "C_CreateObject");
	}
out:
	OPENSSL_secure_clear_free(parts, sizeof(*parts));
	return err;
}

static enum rp_err import_rsa(struct p11_ks *ks, struct rp_status *st,
			      struct rp_key_info *ki, const uint8_t *data,
			      size_t len)
{
	EVP_PKEY *pk = NULL;
	enum rp_err err = rp_key_parse_rsa_pem(&pk, &ki->alg, st, data, len);

	if (err) {
		return err;
	}
	err = rp_key_fill_public(ki, st, pk);
	if (!err) {
		err = check_absent(ks, st, ki->id);
	}
	if (!err) {
		err = create_rsa(ks, st, ki, pk);
	}
	EVP_PKEY_free(pk);
	return err;
}

/* create_ec makes a 25519 private object of `kind` from its raw value */
static enum rp_err create_ec(struct p11_ks *ks, struct rp_status *st,
			     const uint8_t id[RP_KEY_ID_LEN],
			     enum obj_kind kind,
			     const uint8_t val[RP_ATLEAST(32)],
			     CK_OBJECT_HANDLE *out)
{
	CK_KEY_TYPE type =
		kind == KIND_X25519 ? CKK_EC_MONTGOMERY : CKK_EC_EDWARDS;
	struct tpl t;
	CK_RV rv;

	for (int attempt = 0;; attempt++) {
		tpl_private(&t, type, kind);
		tpl_id(&t, id, kind);
		if (kind != KIND_SEED) {
			tpl_add(&t, CKA_EC_PARAMS,
				kind == KIND_X25519 ? oid_x25519 : oid_ed25519,
				sizeof(oid_x25519));
		}
		tpl_add(&t, CKA_VALUE, val, 32);
		rv = ks->f->C_CreateObject(ks->anchor, t.a, t.n, out);
		if (!rv || attempt || type != CKK_EC_MONTGOMERY ||
		    is_session_error(rv)) {
			break;
		}
		type = CKK_EC_EDWARDS;
	}
	if (rv) {
		*out = CK_INVALID_HANDLE;
		return ck_fail(st, rv, "C_CreateObject");
	}
	return RP_OK;
}

/*
 * install_x25519 puts an X25519 identity on the token: the X25519 key, the
 * Ed25519 key derived as ks_soft.c does, and the seed object for backup
 */
static enum rp_err install_x25519(struct p11_ks *ks, struct rp_status *st,
				  const struct rp_key_info *ki,
				  const uint8_t secret[RP_ATLEAST(32)],
				  CK_OBJECT_HANDLE out[RP_ATLEAST(3)])
{
	uint8_t seed[32], edpub[32], own[RP_X25519_LEN];
	enum rp_err err;

	out[0] = out[1] = out[2] = CK_INVALID_HANDLE;
	err = ed25519_seed_of(seed, edpub, st, secret);
	if (!err) {
		err = x25519_own(own, st, ki);
	}
	if (!err) {
		err = create_ec(ks, st, ki->id, KIND_X25519, secret, &out[0]);
	}
	if (!err) {
		err = create_ec(ks, st, ki->id, KIND_ED25519, seed, &out[1]);
	}
	if (!err) {
		err = create_ec(ks, st, ki->id, KIND_SEED, secret, &out[2]);
	}
	/* the token must compute with what we gave it as we expect */
	if (!err) {
		err = check_x25519(ks, st, ks->anchor, out[0], own);
	}
	if (!err) {
		err = check_ed25519(ks, st, ks->anchor, out[1], ki->sign_pub);
	}
	if (err) {
		destroy_all(ks, ks->anchor, out, 3);
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	return err;
}

static enum rp_err import_x25519(struct p11_ks *ks, struct rp_status *st,
				 struct rp_key_info *ki, const char *line,
				 size_t len)
{
	uint8_t secret[RP_X25519_LEN], xpub[RP_X25519_LEN];
	uint8_t seed[32], edpub[32];
	CK_OBJECT_HANDLE h[3];
	enum rp_err err;

	err = rp_age_identity_decode(secret, st, line, len);
	if (!err) {
		err = rp_x25519_public(xpub, st, secret);
	}
	if (!err) {
		err = ed25519_seed_of(seed, edpub, st, secret);
	}
	if (!err) {
		ki->alg = RP_ALG_X25519;
		err = fill_x25519(ki, st, xpub, edpub);
	}
	if (!err) {
		err = check_absent(ks, st, ki->id);
	}
	if (!err) {
		err = install_x25519(ks, st, ki, secret, h);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(seed, sizeof(seed));
	return err;
}

static enum rp_err pk_import(struct rp_keystore *base, struct rp_status *st,
			     struct rp_key_info *ki, const uint8_t *data,
			     size_t len)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	size_t off, n;
	enum rp_err err = anchor_lock(ks, st);

	if (err) {
		return err;
	}
	if (rp_key_find_identity(data, len, &off, &n)) {
		err = import_x25519(ks, st, ki, (const char *)data + off, n);
	} else {
		err = import_rsa(ks, st, ki, data, len);
	}
	anchor_unlock(ks);
	return err;
}

/* backup, restore and export (anchor session, anchor_lock held) */

/* kek_find finds the token's backup KEK; creates it if `is_create` */
static enum rp_err kek_find(struct p11_ks *ks, struct rp_status *st,
			    int is_create, CK_OBJECT_HANDLE *out)
{
	static const char label[] = RP_PKCS11_KEK_LABEL;
	CK_MECHANISM m = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_OBJECT_HANDLE h[2];
	struct tpl t;
	size_t n = 0;
	CK_RV rv;
	enum rp_err err;

	*out = CK_INVALID_HANDLE;
	memset(&t, 0, sizeof(t));
	t.cls = CKO_SECRET_KEY;
	t.type = CKK_AES;
	tpl_add(&t, CKA_CLASS, &t.cls, sizeof(t.cls));
	tpl_add(&t, CKA_KEY_TYPE, &t.type, sizeof(t.type));
	tpl_add(&t, CKA_LABEL, label, sizeof(label) - 1);
	err = find_objects(ks, st, ks->anchor, &t, h, RP_ARRAY_LEN(h), &n);
	if (err) {
		return err;
	}
	if (n > 1) {
		return rp_status_fail(st, RP_ERR_STATE,
				      "token '%s' holds more than one '%s' "
				      "key",
				      ks->token, label);
	}
	if (n == 1) {
		*out = h[0];
		return RP_OK;
	}
	if (!is_create) {
		return rp_status_fail(st, RP_ERR_AUTH,
				      "token '%s' has no backup key, so the "
				      "backup was made on another token",
				      ks->token);
	}
	t.ulong = 32;
	tpl_add(&t, CKA_VALUE_LEN, &t.ulong, sizeof(t.ulong));
	tpl_add(&t, CKA_ID, label, sizeof(label) - 1);
	tpl_bool(&t, CKA_TOKEN, 1);
	tpl_bool(&t, CKA_PRIVATE, 1);
	tpl_bool(&t, CKA_SENSITIVE, 1);
	tpl_bool(&t, CKA_EXTRACTABLE, 0);
	tpl_bool(&t, CKA_WRAP, 1);
	tpl_bool(&t, CKA_UNWRAP, 1);
	tpl_bool(&t, CKA_ENCRYPT, 0);
	tpl_bool(&t, CKA_DECRYPT, 0);
	tpl_bool(&t, CKA_SIGN, 0);
	tpl_bool(&t, CKA_VERIFY, 0);
	tpl_bool(&t, CKA_DERIVE, 0);
	t.mechs[0] = CKM_AES_KEY_WRAP_PAD;
	tpl_add(&t, CKA_ALLOWED_MECHANISMS, t.mechs, sizeof(t.mechs[0]));
	rv = ks->f->C_GenerateKey(ks->anchor, &m, t.a, t.n, out);
	if (rv) {
		*out = CK_INVALID_HANDLE;
		return ck_fail(st, rv, "C_GenerateKey");
	}
	return RP_OK;
}

/* kek_check reads the KEK's check value (empty if the token has none) */
static void kek_check(const struct p11_ks *ks, CK_OBJECT_HANDLE kek,
		      uint8_t out[RP_ATLEAST(KCV_MAX)], size_t *out_len)
{
	CK_ATTRIBUTE a = { CKA_CHECK_VALUE, out, KCV_MAX };

	*out_len = 0;
	if (!ks->f->C_GetAttributeValue(ks->anchor, kek, &a, 1) &&
	    a.ulValueLen <= KCV_MAX) {
		*out_len = a.ulValueLen;
	}
}

/* wrap appends C_WrapKey(CKM_AES_KEY_WRAP_PAD, kek, h) to `out` */
static enum rp_err wrap(const struct p11_ks *ks, struct rp_status *st,
			CK_OBJECT_HANDLE kek, CK_OBJECT_HANDLE h,
			struct rp_buf *out)
{
	CK_MECHANISM m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_ULONG n = 0;
	CK_RV rv = ks->f->C_WrapKey(ks->anchor, &m, kek, h, NULL, &n);

	if (!rv && (n > WRAPPED_MAX || rp_buf_reserve(out, n))) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	if (!rv) {
		rv = ks->f->C_WrapKey(ks->anchor, &m, kek, h, out->p + out->len,
				      &n);
	}
	if (rv) {
		return ck_fail(st, rv, "C_WrapKey");
	}
	out->len += n;
	return RP_OK;
}

/* blob_add_obj appends one object record: kind, length, wrapped bytes */
static enum rp_err blob_add_obj(const struct p11_ks *ks, struct rp_status *st,
				CK_OBJECT_HANDLE kek, CK_OBJECT_HANDLE h,
				enum obj_kind kind, struct rp_buf *blob)
{
	size_t len_off;
	enum rp_err err;

	if (rp_buf_add_u8(blob, (uint8_t)kind) || rp_buf_add_u32be(blob, 0)) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	len_off = blob->len - 4;
	err = wrap(ks, st, kek, h, blob);
	if (!err) {
		rp_put_u32be(blob->p + len_off,
			     (uint32_t)(blob->len - len_off - 4));
	}
	return err;
}

/*
 * The backup blob ("wrapped" bytes of the interface):
 *   "RP11" | u8 version | u8 alg | key id (32) | u8 kcv_len | kcv |
 *   u8 num_objects | per object: u8 kind | u32be len | wrapped bytes
 * Each object is CKM_AES_KEY_WRAP_PAD under the token's backup KEK: a
 * PKCS#8 private key, or for KIND_SEED the raw 32-byte X25519 secret.
 */
static enum rp_err pk_backup(struct rp_keystore *base, struct rp_status *st,
			     const struct rp_key_info *ki, struct rp_buf *out)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	struct rp_buf blob = { 0 };
	uint8_t kcv[KCV_MAX];
	size_t kcv_len = 0, num_off;
	CK_OBJECT_HANDLE kek, h[3];
	enum obj_kind kinds[3];
	size_t num = 0;
	enum rp_err err = anchor_lock(ks, st);

	if (err) {
		return err;
	}
	if (ki->alg == RP_ALG_X25519) {
		err = find_kind(ks, st, ks->anchor, ki->id, KIND_SEED, &h[0]);
		kinds[0] = KIND_SEED;
		num = 1;
		if (!err && h[0] == CK_INVALID_HANDLE) {
			/* generated on the token: wrap the keys themselves */
			kinds[0] = KIND_X25519;
			kinds[1] = KIND_ED25519;
			num = 2;
			err = find_kind(ks, st, ks->anchor, ki->id, KIND_X25519,
					&h[0]);
			if (!err) {
				err = find_kind(ks, st, ks->anchor, ki->id,
						KIND_ED25519, &h[1]);
			}
		}
	} else {
		kinds[0] = KIND_RSA;
		num = 1;
		err = find_kind(ks, st, ks->anchor, ki->id, KIND_RSA, &h[0]);
	}
	for (size_t i = 0; !err && i < num; i++) {
		if (h[i] == CK_INVALID_HANDLE) {
			err = rp_status_fail(st, RP_ERR_NOKEY,
					     "the key material is not on "
					     "token '%s' (revoked keys have "
					     "none)",
					     ks->token);
		}
	}
	if (!err) {
		err = kek_find(ks, st, 1, &kek);
	}
	if (err) {
		goto out;
	}
	kek_check(ks, kek, kcv, &kcv_len);
	if (rp_buf_add(&blob, BLOB_MAGIC, 4) ||
	    rp_buf_add_u8(&blob, BLOB_VERSION) ||
	    rp_buf_add_u8(&blob, ki->alg) ||
	    rp_buf_add(&blob, ki->id, RP_KEY_ID_LEN) ||
	    rp_buf_add_u8(&blob, (uint8_t)kcv_len) ||
	    rp_buf_add(&blob, kcv, kcv_len) || rp_buf_add_u8(&blob, 0)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	num_off = blob.len - 1;
	for (size_t i = 0; !err && i < num; i++) {
		err = blob_add_obj(ks, st, kek, h[i], kinds[i], &blob);
	}
	if (err == RP_ERR_HSM && st->ck_rv == CKR_KEY_NOT_WRAPPABLE &&
	    ki->alg == RP_ALG_X25519) {
		rp_status_prefix(st,
				 "token '%s' cannot wrap x25519/ed25519 "
				 "keys, so a key generated on it has no "
				 "backup (imported age identities do)",
				 ks->token);
	}
	if (err) {
		goto out;
	}
	blob.p[num_off] = (uint8_t)num;
	if (rp_buf_add(out, blob.p, blob.len)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
out:
	anchor_unlock(ks);
	rp_buf_fini(&blob);
	return err;
}

/* unwrap_fail maps a C_UnwrapKey failure: a blob not for this KEK is AUTH */
static enum rp_err unwrap_fail(struct rp_status *st, CK_RV rv)
{
	if (is_unwrap_error(rv)) {
		if (st && !st->err) {
			st->ck_rv = rv;
		}
		return rp_status_fail(st, RP_ERR_AUTH,
				      "the backup does not unwrap under this "
				      "token's backup key (C_UnwrapKey: %s)",
				      ck_name(rv));
	}
	return ck_fail(st, rv, "C_UnwrapKey");
}

/* restore_seed rebuilds an imported identity from its wrapped secret */
static enum rp_err restore_seed(struct p11_ks *ks, struct rp_status *st,
				const struct rp_key_info *ki,
				CK_OBJECT_HANDLE kek, const struct rp_span *w,
				CK_OBJECT_HANDLE out[RP_ATLEAST(3)])
{
	CK_MECHANISM m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	uint8_t secret[RP_X25519_LEN], own[RP_X25519_LEN], pub[32];
	CK_ATTRIBUTE v = { CKA_VALUE, secret, sizeof(secret) };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	struct tpl t;
	CK_RV rv;
	enum rp_err err;

	/*
	 * A session secret the host can read (CKA_VALUE is readable only if
	 * SENSITIVE=false and EXTRACTABLE=true): the identity was plaintext
	 * when it was imported, and is again here for a moment.
	 */
	memset(&t, 0, sizeof(t));
	t.cls = CKO_SECRET_KEY;
	t.type = CKK_GENERIC_SECRET;
	tpl_add(&t, CKA_CLASS, &t.cls, sizeof(t.cls));
	tpl_add(&t, CKA_KEY_TYPE, &t.type, sizeof(t.type));
	tpl_bool(&t, CKA_TOKEN, 0);
	tpl_bool(&t, CKA_PRIVATE, 1);
	tpl_bool(&t, CKA_SENSITIVE, 0);
	tpl_bool(&t, CKA_EXTRACTABLE, 1);
	rv = ks->f->C_UnwrapKey(ks->anchor, &m, kek, (CK_BYTE_PTR)w->p, w->len,
				t.a, t.n, &h);
	if (rv) {
		return unwrap_fail(st, rv);
	}
	rv = ks->f->C_GetAttributeValue(ks->anchor, h, &v, 1);
	(void)ks->f->C_DestroyObject(ks->anchor, h);
	if (rv) {
		err = ck_fail(st, rv, "C_GetAttributeValue");
		goto out;
	}
	if (v.ulValueLen != RP_X25519_LEN) {
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "backup: bad x25519 secret");
		goto out;
	}
	err = x25519_own(own, st, ki);
	if (!err) {
		err = rp_x25519_public(pub, st, secret);
	}
	if (!err && CRYPTO_memcmp(pub, own, sizeof(own))) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "backup: the key material does not match "
				     "the key's public key");
	}
	if (!err) {
		err = install_x25519(ks, st, ki, secret, out);
	}
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	return err;
}

/* restore_obj unwraps one PKCS#8 object and checks it is the key's */
static enum rp_err restore_obj(struct p11_ks *ks, struct rp_status *st,
			       const struct rp_key_info *ki,
			       CK_OBJECT_HANDLE kek, enum obj_kind kind,
			       const struct rp_span *w, CK_OBJECT_HANDLE *out)
{
	CK_MECHANISM m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_KEY_TYPE type =
		kind == KIND_X25519 ? CKK_EC_MONTGOMERY : CKK_EC_EDWARDS;
	uint8_t own[RP_X25519_LEN];
	EVP_PKEY *pk = NULL;
	struct tpl t;
	CK_RV rv;
	enum rp_err err;

	for (int attempt = 0;; attempt++) {
		tpl_private(&t, type, kind);
		tpl_id(&t, ki->id, kind);
		rv = ks->f->C_UnwrapKey(ks->anchor, &m, kek, (CK_BYTE_PTR)w->p,
					w->len, t.a, t.n, out);
		if (!rv || attempt || kind != KIND_X25519 ||
		    type != CKK_EC_MONTGOMERY || is_unwrap_error(rv)) {
			break;
		}
		type = CKK_EC_EDWARDS;
	}
	if (rv) {
		*out = CK_INVALID_HANDLE;
		return unwrap_fail(st, rv);
	}
	switch (kind) {
	case KIND_RSA:
		err = rsa_public(&pk, st, ks, ks->anchor, *out);
		if (!err) {
			err = same_public(st, ki, pk);
		}
		break;
	case KIND_X25519:
		err = x25519_own(own, st, ki);
		if (!err) {
			err = check_x25519(ks, st, ks->anchor, *out, own);
		}
		break;
	default:
		err = check_ed25519(ks, st, ks->anchor, *out, ki->sign_pub);
		break;
	}
	EVP_PKEY_free(pk);
	return err;
}

struct blob_obj {
	uint8_t kind;
	struct rp_span w;
};

/* blob_parse splits a backup blob; RP_ERR_FORMAT unless well formed */
static enum rp_err blob_parse(struct rp_status *st,
			      const struct rp_key_info *ki, const uint8_t *in,
			      size_t in_len, struct rp_span *kcv,
			      struct blob_obj objs[RP_ATLEAST(2)],
			      size_t *out_num)
{
	struct rp_span s = rp_span_of(in, in_len);
	struct rp_span magic, id;
	uint8_t version, alg, kcv_len, num;

	if (!rp_span_get_bytes(&s, 4, &magic) ||
	    memcmp(magic.p, BLOB_MAGIC, 4) || !rp_span_get_u8(&s, &version) ||
	    version != BLOB_VERSION || !rp_span_get_u8(&s, &alg) ||
	    !rp_span_get_bytes(&s, RP_KEY_ID_LEN, &id) ||
	    !rp_span_get_u8(&s, &kcv_len) || kcv_len > KCV_MAX ||
	    !rp_span_get_bytes(&s, kcv_len, kcv) || !rp_span_get_u8(&s, &num) ||
	    num < 1 || num > 2) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "backup: not pkcs11 key material");
	}
	if (alg != ki->alg || memcmp(id.p, ki->id, RP_KEY_ID_LEN)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "backup: the material is for another "
				      "key");
	}
	for (size_t i = 0; i < num; i++) {
		uint32_t len;

		if (!rp_span_get_u8(&s, &objs[i].kind) ||
		    !rp_span_get_u32be(&s, &len) || len > WRAPPED_MAX ||
		    !rp_span_get_bytes(&s, len, &objs[i].w) ||
		    objs[i].kind < KIND_RSA || objs[i].kind > KIND_SEED ||
		    (objs[i].kind == KIND_RSA) != (alg != RP_ALG_X25519)) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "backup: bad object record");
		}
	}
	/* RSA: the key; X25519: the seed, or both keys (a token that wraps) */
	if (s.len ||
	    (alg == RP_ALG_X25519 && !(num == 1 && objs[0].kind == KIND_SEED) &&
	     !(num == 2 && objs[0].kind == KIND_X25519 &&
	       objs[1].kind == KIND_ED25519)) ||
	    (alg != RP_ALG_X25519 && num != 1)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "backup: unexpected objects");
	}
	*out_num = num;
	return RP_OK;
}

static enum rp_err pk_restore(struct rp_keystore *base, struct rp_status *st,
			      const struct rp_key_info *ki,
			      const uint8_t *wrapped, size_t wrapped_len)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	struct blob_obj objs[2];
	struct rp_span kcv_blob = { 0 };
	uint8_t kcv[KCV_MAX];
	size_t kcv_len, num = 0, num_old = 0, num_new = 0;
	CK_OBJECT_HANDLE kek, old[FIND_MAX], made[3];
	enum rp_err err;

	err = blob_parse(st, ki, wrapped, wrapped_len, &kcv_blob, objs, &num);
	if (err) {
		return err;
	}
	err = anchor_lock(ks, st);
	if (err) {
		return err;
	}
	err = kek_find(ks, st, 0, &kek);
	if (err) {
		goto out;
	}
	kek_check(ks, kek, kcv, &kcv_len);
	if (kcv_len && kcv_blob.len &&
	    (kcv_len != kcv_blob.len ||
	     CRYPTO_memcmp(kcv, kcv_blob.p, kcv_len))) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the backup was made under another "
				     "token's backup key");
		goto out;
	}
	/* the objects it replaces go only once the new ones check out */
	err = find_all(ks, st, ks->anchor, ki->id, old, &num_old);
	for (size_t i = 0; !err && i < num; i++) {
		if (objs[i].kind == KIND_SEED) {
			err = restore_seed(ks, st, ki, kek, &objs[i].w,
					   &made[num_new]);
			num_new += err ? 0 : 3;
		} else {
			err = restore_obj(ks, st, ki, kek, objs[i].kind,
					  &objs[i].w, &made[num_new]);
			num_new++;
		}
	}
	if (err) {
		destroy_all(ks, ks->anchor, made, num_new);
	} else {
		destroy_all(ks, ks->anchor, old, num_old);
	}
	cache_forget(ks, ki->id);
out:
	anchor_unlock(ks);
	return err;
}

/* kwp_open undoes CKM_AES_KEY_WRAP_PAD in software */
static enum rp_err kwp_open(struct rp_buf *out, struct rp_status *st,
			    const uint8_t key[RP_ATLEAST(32)],
			    const uint8_t *in, size_t in_len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	enum rp_err err = RP_OK;

	if (!ctx || rp_buf_reserve(out, in_len + 16)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
		goto out;
	}
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, key, NULL) !=
		    1 ||
	    EVP_DecryptUpdate(ctx, out->p, &n, in, (int)in_len) != 1 ||
	    EVP_DecryptFinal_ex(ctx, out->p + n, &fin) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "cannot unwrap the exported key");
		goto out;
	}
	out->len = (size_t)n + (size_t)fin;
out:
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

/*
 * der_len returns the length of the DER SEQUENCE at the start of `p`
 * (SoftHSM pads the PKCS#8 with 0-7 zero bytes before wrapping), or 0
 */
static size_t der_len(const uint8_t *p, size_t n)
{
	size_t len = 0, hdr;

	if (n < 2 || p[0] != 0x30) {
		return 0;
	}
	if (p[1] < 0x80) {
		hdr = 2;
		len = p[1];
	} else {
		const size_t num = p[1] & 0x7f;

		if (num < 1 || num > 3 || n < 2 + num) {
			return 0;
		}
		for (size_t i = 0; i < num; i++) {
			len = len << 8 | p[2 + i];
		}
		hdr = 2 + num;
	}
	if (hdr + len > n || n - (hdr + len) > 7) {
		return 0;
	}
	for (size_t i = hdr + len; i < n; i++) {
		if (p[i]) {
			return 0;
		}
	}
	return hdr + len;
}

/*
 * export_wrapped wraps object `h` under a one-time extractable session AES
 * key and unwraps the result in software: the token's KEK never leaves it
 */
static enum rp_err export_wrapped(struct p11_ks *ks, struct rp_status *st,
				  CK_OBJECT_HANDLE h, struct rp_buf *out)
{
	CK_MECHANISM m = { CKM_AES_KEY_GEN, NULL, 0 };
	uint8_t key[32];
	CK_ATTRIBUTE v = { CKA_VALUE, key, sizeof(key) };
	CK_OBJECT_HANDLE tmp = CK_INVALID_HANDLE;
	struct rp_buf w = { 0 };
	struct tpl t;
	CK_RV rv;
	enum rp_err err;

	memset(&t, 0, sizeof(t));
	t.cls = CKO_SECRET_KEY;
	t.type = CKK_AES;
	t.ulong = 32;
	tpl_add(&t, CKA_CLASS, &t.cls, sizeof(t.cls));
	tpl_add(&t, CKA_KEY_TYPE, &t.type, sizeof(t.type));
	tpl_add(&t, CKA_VALUE_LEN, &t.ulong, sizeof(t.ulong));
	tpl_bool(&t, CKA_TOKEN, 0);
	tpl_bool(&t, CKA_PRIVATE, 1);
	tpl_bool(&t, CKA_SENSITIVE, 0);
	tpl_bool(&t, CKA_EXTRACTABLE, 1);
	tpl_bool(&t, CKA_WRAP, 1);
	tpl_bool(&t, CKA_UNWRAP, 0);
	tpl_bool(&t, CKA_ENCRYPT, 0);
	tpl_bool(&t, CKA_DECRYPT, 0);
	rv = ks->f->C_GenerateKey(ks->anchor, &m, t.a, t.n, &tmp);
	if (rv) {
		err = ck_fail(st, rv, "C_GenerateKey");
		goto out;
	}
	err = wrap(ks, st, tmp, h, &w);
	if (err) {
		rp_status_prefix(st,
				 "token '%s' refuses to wrap the key, so "
				 "it cannot be exported",
				 ks->token);
		goto out;
	}
	rv = ks->f->C_GetAttributeValue(ks->anchor, tmp, &v, 1);
	if (rv || v.ulValueLen != sizeof(key)) {
		err = ck_fail(st, rv ? rv : CKR_FUNCTION_FAILED,
			      "C_GetAttributeValue");
		goto out;
	}
	err = kwp_open(out, st, key, w.p, w.len);
out:
	destroy_all(ks, ks->anchor, &tmp, 1);
	OPENSSL_cleanse(key, sizeof(key));
	rp_buf_fini(&w);
	return err;
}

static enum rp_err append_identity(struct rp_buf *out, struct rp_status *st,
				   const struct rp_key_info *ki,
				   const uint8_t secret[RP_ATLEAST(32)])
{
	char ident[RP_AGE_KEY_STR_MAX];
	uint8_t own[RP_X25519_LEN], pub[RP_X25519_LEN];
	enum rp_err err = x25519_own(own, st, ki);

	if (!err) {
		err = rp_x25519_public(pub, st, secret);
	}
	if (!err && CRYPTO_memcmp(pub, own, sizeof(own))) {
		err = rp_status_fail(st, RP_ERR_AUTH,
				     "the exported key does not match the "
				     "key's public key");
	}
	if (!err) {
		err = rp_age_identity_encode(ident, secret);
		if (err) {
			rp_status_fail(st, err, "cannot encode the identity");
		}
	}
	if (!err && (rp_buf_add_str(out, ident) || rp_buf_add_str(out, "\n"))) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	OPENSSL_cleanse(ident, sizeof(ident));
	return err;
}

static enum rp_err export_x25519(struct p11_ks *ks, struct rp_status *st,
				 const struct rp_key_info *ki,
				 struct rp_buf *out)
{
	struct rp_buf plain = { 0 };
	CK_OBJECT_HANDLE h;
	EVP_PKEY *pk = NULL;
	uint8_t secret[RP_X25519_LEN];
	size_t len = sizeof(secret);
	enum rp_err err;

	err = find_kind(ks, st, ks->anchor, ki->id, KIND_SEED, &h);
	if (!err && h != CK_INVALID_HANDLE) {
		err = export_wrapped(ks, st, h, &plain);
		if (!err && plain.len != RP_X25519_LEN) {
			err = rp_status_fail(st, RP_ERR_FORMAT,
					     "exported x25519 secret has %zu "
					     "bytes",
					     plain.len);
		}
		if (!err) {
			memcpy(secret, plain.p, sizeof(secret));
		}
		goto done;
	}
	/* generated on the token: only if the token wraps X25519 keys */
	if (!err) {
		err = find_kind(ks, st, ks->anchor, ki->id, KIND_X25519, &h);
	}
	if (!err && h == CK_INVALID_HANDLE) {
		err = rp_status_fail(st, RP_ERR_NOKEY,
				     "the key material is not on token '%s'",
				     ks->token);
	}
	if (!err) {
		err = export_wrapped(ks, st, h, &plain);
	}
	if (!err) {
		const unsigned char *p = plain.p;
		const size_t n = der_len(plain.p, plain.len);

		pk = n ? d2i_AutoPrivateKey(NULL, &p, (long)n) : NULL;
		if (!pk ||
		    EVP_PKEY_get_raw_private_key(pk, secret, &len) != 1 ||
		    len != sizeof(secret)) {
			err = rp_status_ossl(st, RP_ERR_FORMAT,
					     "exported x25519 key");
		}
	}
done:
	if (!err) {
		err = append_identity(out, st, ki, secret);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	EVP_PKEY_free(pk);
	rp_buf_fini(&plain);
	return err;
}

static enum rp_err export_rsa(struct p11_ks *ks, struct rp_status *st,
			      const struct rp_key_info *ki, struct rp_buf *out)
{
	struct rp_buf plain = { 0 };
	CK_OBJECT_HANDLE h;
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	long n;
	enum rp_err err;

	err = find_kind(ks, st, ks->anchor, ki->id, KIND_RSA, &h);
	if (!err && h == CK_INVALID_HANDLE) {
		err = rp_status_fail(st, RP_ERR_NOKEY,
				     "the key material is not on token '%s'",
				     ks->token);
	}
	if (!err) {
		err = export_wrapped(ks, st, h, &plain);
	}
	if (err) {
		goto out;
	}
	const unsigned char *p = plain.p;
	const size_t der = der_len(plain.p, plain.len);

	pk = der ? d2i_AutoPrivateKey(NULL, &p, (long)der) : NULL;
	if (!pk) {
		err = rp_status_ossl(st, RP_ERR_FORMAT, "exported rsa key");
		goto out;
	}
	err = same_public(st, ki, pk);
	if (err) {
		goto out;
	}
	bio = BIO_new(BIO_s_secmem());
	if (!bio || PEM_write_bio_PKCS8PrivateKey(bio, pk, NULL, NULL, 0, NULL,
						  NULL) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "encode private key");
		goto out;
	}
	n = BIO_get_mem_data(bio, &pem);
	if (n <= 0 || rp_buf_add(out, pem, (size_t)n)) {
		err = rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
out:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	rp_buf_fini(&plain);
	return err;
}

static enum rp_err pk_export(struct rp_keystore *base, struct rp_status *st,
			     const struct rp_key_info *ki, struct rp_buf *out)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	enum rp_err err = anchor_lock(ks, st);

	if (err) {
		return err;
	}
	if (ki->alg == RP_ALG_X25519) {
		err = export_x25519(ks, st, ki, out);
	} else {
		err = export_rsa(ks, st, ki, out);
	}
	anchor_unlock(ks);
	return err;
}

static enum rp_err pk_erase(struct rp_keystore *base, struct rp_status *st,
			    const struct rp_key_info *ki)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	CK_OBJECT_HANDLE h[FIND_MAX];
	size_t n = 0;
	enum rp_err err = anchor_lock(ks, st);

	if (err) {
		return err;
	}
	/* only objects with the key's 32-byte id: never the KEK */
	do {
		err = find_all(ks, st, ks->anchor, ki->id, h, &n);
		for (size_t i = 0; !err && i < n; i++) {
			const CK_RV rv =
				ks->f->C_DestroyObject(ks->anchor, h[i]);

			if (rv && rv != CKR_OBJECT_HANDLE_INVALID) {
				err = ck_fail(st, rv, "C_DestroyObject");
			}
		}
	} while (!err && n == FIND_MAX);
	cache_forget(ks, ki->id);
	anchor_unlock(ks);
	return err;
}

/*
 * pk_generation: the watermark is a private token data object labelled
 * "reprotect-generation-<store id hex>" whose value is the generation
 * (u64, big-endian). Tokens may refuse to change a data object's value
 * (SoftHSM2 does): raising it makes a new object, then destroys the old
 * ones; a crash in between leaves two, and the highest counts.
 */
#define GEN_OBJS 4

static enum rp_err pk_generation(struct rp_keystore *base, struct rp_status *st,
				 const uint8_t store_id[RP_ATLEAST(16)],
				 uint64_t *gen, int is_set)
{
	struct p11_ks *ks = (struct p11_ks *)base;
	static const char app[] = "reprotect";
	char label[64], hex[33];
	CK_OBJECT_HANDLE h[GEN_OBJS], made;
	uint8_t want[8];
	struct tpl t;
	size_t n = 0;
	uint64_t have = 0;
	CK_RV rv;
	enum rp_err err;

	rp_hex_encode(hex, store_id, 16);
	snprintf(label, sizeof(label), "reprotect-generation-%s", hex);
	memset(&t, 0, sizeof(t));
	t.cls = CKO_DATA;
	tpl_add(&t, CKA_CLASS, &t.cls, sizeof(t.cls));
	tpl_add(&t, CKA_LABEL, label, strlen(label));
	/* only a private object counts: one made without the PIN is none */
	tpl_bool(&t, CKA_PRIVATE, 1);
	err = anchor_lock(ks, st);
	if (err) {
		return err;
	}
	err = find_objects(ks, st, ks->anchor, &t, h, RP_ARRAY_LEN(h), &n);
	for (size_t i = 0; !err && i < n; i++) {
		uint8_t val[8];
		CK_ATTRIBUTE a = { CKA_VALUE, val, sizeof(val) };
		uint64_t v = 0;

		rv = ks->f->C_GetAttributeValue(ks->anchor, h[i], &a, 1);
		if (rv || a.ulValueLen != sizeof(val)) {
			err = rv ? ck_fail(st, rv, "C_GetAttributeValue")
				 : rp_status_fail(st, RP_ERR_FORMAT,
						  "token '%s': '%s' is not a "
						  "generation",
						  ks->token, label);
			break;
		}
		for (size_t k = 0; k < sizeof(val); k++) {
			v = v << 8 | val[k];
		}
		have = v > have ? v : have;
	}
	if (err || !is_set || *gen <= have) {
		if (!is_set) {
			*gen = err ? 0 : have;
		}
		anchor_unlock(ks);
		return err;
	}
	rp_put_u64be(want, *gen);
	tpl_add(&t, CKA_APPLICATION, app, sizeof(app) - 1);
	tpl_add(&t, CKA_VALUE, want, sizeof(want));
	tpl_bool(&t, CKA_TOKEN, 1);
	rv = ks->f->C_CreateObject(ks->anchor, t.a, t.n, &made);
	if (rv) {
		err = ck_fail(st, rv, "C_CreateObject");
	}
	for (size_t i = 0; !err && i < n; i++) {
		rv = ks->f->C_DestroyObject(ks->anchor, h[i]);
		if (rv && rv != CKR_OBJECT_HANDLE_INVALID) {
			err = ck_fail(st, rv, "C_DestroyObject");
		}
	}
	anchor_unlock(ks);
	return err;
}

static void pk_free(struct rp_keystore *base)
{
	struct p11_ks *ks = (struct p11_ks *)base;

	if (!ks) {
		return;
	}
	for (size_t w = 0; ks->workers && w < ks->base.num_workers; w++) {
		drop_session(ks, &ks->workers[w], CKR_OK);
	}
	if (ks->f) {
		drop_session(ks, &ks->anchor, CKR_OK);
	}
	OPENSSL_free(ks->workers);
	for (size_t i = 0; i < NUM_PUBS; i++) {
		EVP_PKEY_free(ks->pubs[i].pub);
	}
	if (ks->has_locks) {
		pthread_mutex_destroy(&ks->anchor_lock);
		pthread_mutex_destroy(&ks->cache_lock);
	}
	if (ks->has_module) {
		module_release();
	}
	OPENSSL_clear_free(ks, sizeof(*ks));
}

static const struct rp_keystore_ops pkcs11_ops = {
	.name = "pkcs11",
	.generate = pk_generate,
	.import = pk_import,
	.unwrap = pk_unwrap,
	.sign = pk_sign,
	.backup = pk_backup,
	.restore = pk_restore,
	.export_key = pk_export,
	.erase = pk_erase,
	.generation = pk_generation,
	.free = pk_free,
};

/* find_slot finds the one initialised token labelled ks->token */
static enum rp_err find_slot(struct p11_ks *ks, struct rp_status *st)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0;
	size_t num_found = 0;
	const size_t label_len = strlen(ks->token);
	CK_RV rv;
	enum rp_err err = RP_OK;

	rv = ks->f->C_GetSlotList(CK_TRUE, NULL, &n);
	if (!rv && n) {
		slots = OPENSSL_zalloc(n * sizeof(*slots));
		if (!slots) {
			return rp_status_fail(st, RP_ERR_NOMEM,
					      "out of memory");
		}
		rv = ks->f->C_GetSlotList(CK_TRUE, slots, &n);
	}
	if (rv) {
		err = ck_fail(st, rv, "C_GetSlotList");
		goto out;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		size_t j;

		if (ks->f->C_GetTokenInfo(slots[i], &ti) ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			continue;
		}
		/* labels are 32 bytes, blank padded */
		for (j = label_len; j < sizeof(ti.label); j++) {
			if (ti.label[j] != ' ') {
				break;
			}
		}
		if (j == sizeof(ti.label) &&
		    !memcmp(ti.label, ks->token, label_len)) {
			ks->slot = slots[i];
			num_found++;
		}
	}
	if (num_found == 0) {
		err = rp_status_fail(st, RP_ERR_NOTFOUND,
				     "no initialised pkcs11 token labelled "
				     "'%s'",
				     ks->token);
	} else if (num_found > 1) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "%zu pkcs11 tokens are labelled '%s'",
				     num_found, ks->token);
	}
out:
	OPENSSL_free(slots);
	return err;
}

static enum rp_err pkcs11_open(struct p11_ks *ks, struct rp_status *st,
			       const struct rp_pkcs11_config *cfg)
{
	/* ks->token holds 32 characters, the most a token label has */
	const int n = cfg->token_label ? snprintf(ks->token, sizeof(ks->token),
						  "%s", cfg->token_label)
				       : -1;
	enum rp_err err;

	if (n <= 0 || (size_t)n >= sizeof(ks->token)) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "a pkcs11 token label has 1 to 32 "
				      "characters");
	}
	if (!cfg->pin || cfg->pin_len > PIN_MAX) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "missing or too long pkcs11 pin");
	}
	memcpy(ks->pin, cfg->pin, cfg->pin_len);
	ks->pin_len = cfg->pin_len;
	ks->workers =
		OPENSSL_zalloc(ks->base.num_workers * sizeof(*ks->workers));
	if (!ks->workers) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	err = module_acquire(&ks->f, st,
			     cfg->module ? cfg->module : DEFAULT_MODULE);
	if (err) {
		return err;
	}
	ks->has_module = 1;
	err = find_slot(ks, st);
	if (err) {
		return err;
	}
	err = anchor_lock(ks, st);
	if (err) {
		return err;
	}
	anchor_unlock(ks);
	for (size_t w = 0; w < ks->base.num_workers; w++) {
		const CK_RV rv = open_session(ks, &ks->workers[w]);

		if (rv) {
			return ck_fail(st, rv, "C_OpenSession");
		}
	}
	return RP_OK;
}

enum rp_err rp_keystore_pkcs11_new(struct rp_keystore **out,
				   struct rp_status *st,
				   const struct rp_pkcs11_config *cfg,
				   size_t num_workers)
{
	struct p11_ks *ks = OPENSSL_zalloc(sizeof(*ks));
	enum rp_err err;

	*out = NULL;
	if (!ks) {
		return rp_status_fail(st, RP_ERR_NOMEM, "out of memory");
	}
	ks->base.ops = &pkcs11_ops;
	ks->base.num_workers = num_workers ? num_workers : 1;
	ks->anchor = CK_INVALID_HANDLE;
	if (pthread_mutex_init(&ks->anchor_lock, NULL)) {
		OPENSSL_free(ks);
		return rp_status_fail(st, RP_ERR_NOMEM, "cannot make a mutex");
	}
	if (pthread_mutex_init(&ks->cache_lock, NULL)) {
		pthread_mutex_destroy(&ks->anchor_lock);
		OPENSSL_free(ks);
		return rp_status_fail(st, RP_ERR_NOMEM, "cannot make a mutex");
	}
	ks->has_locks = 1;
	err = pkcs11_open(ks, st, cfg);
	if (err) {
		pk_free(&ks->base);
		return err;
	}
	*out = &ks->base;
	return RP_OK;
}
