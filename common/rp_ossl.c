#include "rp_ossl.h"

#include <stdint.h>
#include <errno.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

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
 * libcrypto's allocator, as OpenSSL's own: a size of 0 gives NULL (not a
 * failure), realloc to 0 frees
 */
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

static void *ossl_realloc(void *old, size_t n, const char *file, int line)
{
	void *p;

	if (!old) {
		return ossl_malloc(n, file, line);
	}
	if (!n) {
		free(old);
		return NULL;
	}
	p = realloc(old, n);
	if (!p) {
		rp_ossl_note_nomem();
	}
	return p;
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
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

__attribute__((noinline)) void rp_stack_wipe(void)
{
	volatile uint8_t buf[128 * 1024];

	OPENSSL_cleanse((void *)buf, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}
