#ifndef RP_COMMON_RP_OSSL_H
#define RP_COMMON_RP_OSSL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * OpenSSL and memory exhaustion. A libcrypto call that fails says why only
 * sometimes: OpenSSL 3.0 often raises no error at all for a failed
 * allocation (EVP_MD_CTX_new, a provider's new context), or a decoder
 * reports "decode error" for a key it could not allocate. So a failure that
 * the caller would take for bad input (a signature that does not verify, a
 * key that does not decode, a stanza that does not unwrap) must first ask
 * rp_ossl_is_nomem whether memory ran out.
 */

/*
 * rp_ossl_init routes libcrypto's allocations through wrappers that note
 * a failed one for the calling thread, then makes OpenSSL's default library
 * context. Call it first thing in main, before anything uses OpenSSL (the
 * wrappers can only be installed before libcrypto's first allocation; if
 * they cannot, failures are still seen through OpenSSL's error queue).
 * RP_ERR_NOMEM if the default context cannot be made: OpenSSL 3.0 does not
 * report that, and its next fetch then dereferences a NULL lock.
 */
RP_MUST_CHECK enum rp_err rp_ossl_init(struct rp_status *st);

/* rp_ossl_nomem_clear forgets this thread's noted allocation failure. */
void rp_ossl_nomem_clear(void);

/*
 * rp_ossl_is_nomem says whether the OpenSSL failure at hand is for lack of
 * memory: an allocation of libcrypto's failed in this thread since the
 * last rp_ossl_nomem_clear, or OpenSSL's error queue holds a malloc
 * failure or ENOMEM (first or last entry). The queue is left as it is.
 * Once any allocation of libcrypto's has failed in the process, it says so
 * for good: OpenSSL 3.0's lazily built tables (its name map) can be left
 * incomplete, and later calls then fail with no allocation failing.
 */
int rp_ossl_is_nomem(void);

/*
 * rp_ossl_note_nomem notes a failed allocation for this thread: the
 * wrappers call it, and so may a test's own allocator.
 */
void rp_ossl_note_nomem(void);

/*
 * rp_hkdf_sha256: HKDF-SHA-256 (RFC 5869) of `ikm` with `salt` (may be
 * empty: HKDF then uses zeros, which is age's empty salt) and `info`,
 * out_len bytes. The one HKDF of the project; the algorithm is fetched
 * once per process, not per call.
 */
RP_MUST_CHECK enum rp_err rp_hkdf_sha256(uint8_t *out, size_t out_len,
					 struct rp_status *st,
					 const uint8_t *ikm, size_t ikm_len,
					 const uint8_t *salt, size_t salt_len,
					 const char *info);

/*
 * rp_hmac_sha256: HMAC-SHA-256 under `key` of the concatenation of
 * `num` parts (data[i], len[i]), 32 bytes; the one HMAC of the project,
 * fetched once per process.
 */
RP_MUST_CHECK enum rp_err rp_hmac_sha256(uint8_t out[32],
					 struct rp_status *st,
					 const uint8_t *key, size_t key_len,
					 const uint8_t *const *data,
					 const size_t *len, size_t num);

/*
 * rp_sha256 and rp_chacha20_poly1305: the algorithms fetched once per
 * process, for the per-document calls (EVP_sha256() is fetched again by
 * every call it is given to, under the library's lock). Where the fetch
 * fails (no memory), the legacy object, whose use then fails the same way.
 */
const EVP_MD *rp_sha256(void);
const EVP_CIPHER *rp_chacha20_poly1305(void);

/*
 * rp_stack_wipe zeroes the 128 KiB of stack below the caller's frame: what
 * library calls made deeper than the caller left there (libcrypto does not
 * always clean its stack of key material: it_secrets found the soft
 * keystore's key on the main thread's stack of a run). Call it from a
 * shallow frame once the deep work is done. It wipes only stack that is
 * mapped already (what deeper calls used is), never growing it: under
 * ulimit -v a growth that fails is a SIGSEGV.
 */
void rp_stack_wipe(void);

#ifdef __cplusplus
}
#endif
#endif
