#include "rp_ossl.h"

#include <stdint.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

static _Thread_local int is_nomem;
/*
 * has_failed: some allocation of libcrypto's failed in this process, ever.
 * OpenSSL 3.0 does not recover from one in its lazy set-up: a name that
 * failed to register in its name map stays missing, and a later fetch
 * fails with no allocation failing (seen: a failed strndup in the
 * EVP_CIPHER_fetch of the store's open, then every ssh-rsa unwrap
 * "cannot unwrap"). After that, no failure of OpenSSL's proves bad input.
 */
static int has_failed;

void rp_ossl_note_nomem(void)
{
	is_nomem = 1;
	__atomic_store_n(&has_failed, 1, __ATOMIC_RELAXED);
}

void rp_ossl_nomem_clear(void)
{
	is_nomem = 0;
}

static int is_nomem_code(unsigned long e)
{
	if (!e) {
		return 0;
	}
	if (ERR_SYSTEM_ERROR(e)) {
		return ERR_GET_REASON(e) == ENOMEM;
	}
	return ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE;
}

int rp_ossl_is_nomem(void)
{
	return is_nomem || __atomic_load_n(&has_failed, __ATOMIC_RELAXED) ||
	       is_nomem_code(ERR_peek_error()) ||
	       is_nomem_code(ERR_peek_last_error());
}

/*
 * libcrypto's allocator, as OpenSSL's own (a size of 0 gives NULL, not a
 * failure; realloc to 0 frees), except that every block is wiped before
 * it goes back to the heap: OpenSSL frees key material it decoded or
 * computed (a private key's DER, the CRT parts, a key being generated)
 * without clearing it, and it stayed in freed heap memory (it_secrets
 * found it). malloc_usable_size gives what the block can hold, all of
 * which OpenSSL may have written.
 */
static void wipe_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	void *p;

	(void)file;
	(void)line;
	if (!n) {
		return NULL;
	}
	p = malloc(n);
	if (!p) {
		rp_ossl_note_nomem();
	}
	return p;
}

/* realloc moves the data itself, so that the old block is wiped too */
static void *ossl_realloc(void *old, size_t n, const char *file, int line)
{
	size_t have;
	void *p;

	if (!old) {
		return ossl_malloc(n, file, line);
	}
	if (!n) {
		wipe_free(old);
		return NULL;
	}
	have = malloc_usable_size(old);
	if (have >= n) {
		return old; /* it fits: nothing moves, nothing is left behind */
	}
	p = ossl_malloc(n, file, line);
	if (p) {
		memcpy(p, old, have);
		wipe_free(old);
	}
	return p;
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	wipe_free(p);
}

enum rp_err rp_ossl_init(struct rp_status *st)
{
	/* 0 when libcrypto allocated already: then only the error queue */
	(void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
	if (!OSSL_LIB_CTX_get0_global_default()) {
		return rp_status_fail(st, RP_ERR_NOMEM,
				      "out of memory: cannot set up OpenSSL");
	}
	return RP_OK;
}

/*
 * The wipe takes its buffer as a local (so a signal handler's frame goes
 * below it, never into it) and only where the stack is mapped already:
 * growing it could fail under a limit of address space (ulimit -v), and
 * that is a SIGSEGV, not an error. What deeper calls left is mapped by
 * definition. One wiper per size, the largest that fits.
 */
#define RP_WIPER(kib)                                                  \
	static __attribute__((noinline)) void wipe_##kib(void)         \
	{                                                              \
		volatile uint8_t buf[(kib) * 1024];                    \
									       \
		OPENSSL_cleanse((void *)buf, sizeof(buf));             \
		__asm__ __volatile__("" : : "r"(buf) : "memory");      \
	}
RP_WIPER(128)
RP_WIPER(64)
RP_WIPER(32)
RP_WIPER(16)
RP_WIPER(8)

/* mapped_below: the bytes of stack mapped below `here`, up to `max` */
static size_t mapped_below(const void *here, size_t max)
{
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	const size_t off = (uintptr_t)here & (page - 1);
	/* the page holding `here`, as a pointer (no integer cast back) */
	const char *top = (const char *)here - off;
	size_t n = 0;
	unsigned char vec;

	while (n + page <= max && (uintptr_t)top > n + page &&
	       mincore((void *)(top - n - page), page, &vec) == 0) {
		n += page;
	}
	return n;
}

__attribute__((noinline)) void rp_stack_wipe(void)
{
	/* room for a wiper's frame besides its buffer */
	const char here = 0;
	const size_t have = mapped_below(&here, 132 * 1024);

	if (have >= 132 * 1024) {
		wipe_128();
	} else if (have >= 68 * 1024) {
		wipe_64();
	} else if (have >= 36 * 1024) {
		wipe_32();
	} else if (have >= 20 * 1024) {
		wipe_16();
	} else if (have >= 12 * 1024) {
		wipe_8();
	}
}

/*
 * The fetched algorithms, once per process: a fetch takes the library's
 * name-map lock and allocates, and it was done several times per document
 * (EVP_sha256() and its kind are fetched again by every call they are
 * given to). A fetch that fails (no memory) is tried again by the next
 * call; two threads racing keep one of theirs.
 */
static void *fetch_once(void **slot, void *(*fetch)(void),
			void (*release)(void *))
{
	void *got = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	void *none = NULL;

	if (got) {
		return got;
	}
	got = fetch();
	if (got &&
	    !__atomic_compare_exchange_n(slot, &none, got, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		release(got);
		got = none;
	}
	return got;
}

static void *hkdf_alg, *hmac_alg, *sha256_alg, *chacha_alg;

static void *fetch_hkdf(void)
{
	return EVP_KDF_fetch(NULL, "HKDF", NULL);
}

static void *fetch_hmac(void)
{
	return EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static void *fetch_sha256(void)
{
	return EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void *fetch_chacha(void)
{
	return EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

static void free_kdf(void *p)
{
	EVP_KDF_free(p);
}

static void free_mac(void *p)
{
	EVP_MAC_free(p);
}

static void free_md(void *p)
{
	EVP_MD_free(p);
}

static void free_cipher(void *p)
{
	EVP_CIPHER_free(p);
}

static EVP_KDF *get_hkdf(void)
{
	return fetch_once(&hkdf_alg, fetch_hkdf, free_kdf);
}

static EVP_MAC *get_hmac(void)
{
	return fetch_once(&hmac_alg, fetch_hmac, free_mac);
}

static EVP_MD *get_sha256(void)
{
	return fetch_once(&sha256_alg, fetch_sha256, free_md);
}

static EVP_CIPHER *get_chacha(void)
{
	return fetch_once(&chacha_alg, fetch_chacha, free_cipher);
}

const EVP_MD *rp_sha256(void)
{
	const EVP_MD *md = get_sha256();

	return md ? md : EVP_sha256();
}

const EVP_CIPHER *rp_chacha20_poly1305(void)
{
	const EVP_CIPHER *c = get_chacha();

	return c ? c : EVP_chacha20_poly1305();
}

enum rp_err rp_hkdf_sha256(uint8_t *out, size_t out_len, struct rp_status *st,
			   const uint8_t *ikm, size_t ikm_len,
			   const uint8_t *salt, size_t salt_len,
			   const char *info)
{
	EVP_KDF *kdf = get_hkdf();
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5], *p = params;
	enum rp_err err = RP_OK;

	if (!ctx) {
		return rp_status_ossl(st, RP_ERR_CRYPTO, "cannot set up hkdf");
	}
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						(char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)ikm, ikm_len);
	if (salt_len) {
		*p++ = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	}
	*p++ = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, out_len, params) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "hkdf failed");
	}
	EVP_KDF_CTX_free(ctx);
	return err;
}

enum rp_err rp_hmac_sha256(uint8_t out[32], struct rp_status *st,
			   const uint8_t *key, size_t key_len,
			   const uint8_t *const *data, const size_t *len,
			   size_t num)
{
	EVP_MAC *mac = get_hmac();
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	size_t n = 0;
	enum rp_err err = RP_OK;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!ctx || EVP_MAC_init(ctx, key, key_len, params) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "cannot set up hmac");
		goto out;
	}
	for (size_t i = 0; i < num; i++) {
		if (EVP_MAC_update(ctx, data[i], len[i]) != 1) {
			err = rp_status_ossl(st, RP_ERR_CRYPTO, "hmac failed");
			goto out;
		}
	}
	if (EVP_MAC_final(ctx, out, &n, 32) != 1 || n != 32) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO, "hmac failed");
	}
out:
	EVP_MAC_CTX_free(ctx);
	return err;
}
