#ifndef RP_FORMATS_LICENSE_H
#define RP_FORMATS_LICENSE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "age_header.h"
#include "merkle.h"
#include "rp_buf.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The rp-license stanza body: a canonical TLV license (docs/FORMAT.md sections 6-9;
 * byte layout in docs/FORMAT.md). Each field is tag (1 byte), length
 * (2 bytes, big-endian), value; fields in fixed order, each exactly once;
 * unknown tags, wrong lengths and trailing bytes are rejected.
 */
#define RP_LICENSE_STANZA_TYPE "rp-license"
#define RP_LICENSE_STANZA_ARG  "1"
#define RP_LICENSE_VERSION     1
#define RP_DOC_ID_LEN	       16
#define RP_KEY_ID_LEN	       32 /* SHA-256 of the SubjectPublicKeyInfo DER */
#define RP_TEMPLATE_MAX	       64
#define RP_OWNER_MAX	       255
#define RP_SIG_MAX	       512
#define RP_LICENSE_MAX	       4096

enum rp_encoding {
	RP_ENC_NONE = 0,
	RP_ENC_ZSTD = 1,
};

enum rp_sig_alg {
	RP_SIG_RSA_PSS_SHA256 = 1, /* RSA-PSS, SHA-256, MGF1-SHA-256, salt 32 */
	RP_SIG_ED25519 = 2,
};

struct rp_sigblock {
	uint8_t alg; /* enum rp_sig_alg */
	uint8_t key_id[RP_KEY_ID_LEN];
	uint32_t batch_size; /* >= 1 */
	uint32_t leaf_index; /* < batch_size */
	size_t num_path;
	uint8_t path[RP_MERKLE_MAX_DEPTH][RP_MERKLE_HASH_LEN];
	size_t sig_len;
	uint8_t sig[RP_SIG_MAX];
};

struct rp_license {
	uint8_t version;
	uint8_t doc_id[RP_DOC_ID_LEN];
	uint8_t key_id[RP_KEY_ID_LEN]; /* the tenant key that wraps the doc */
	char template_id[RP_TEMPLATE_MAX + 1]; /* "" when none */
	char owner[RP_OWNER_MAX + 1];	       /* "" when none */
	uint64_t issued_at;		       /* Unix seconds */
	uint8_t encoding;		       /* enum rp_encoding */
	uint64_t plaintext_size;	       /* before compression */
	uint8_t stanza_digest[32]; /* SHA-256 of the recipient stanza raw */
	uint8_t payload_nonce[RP_AGE_NONCE_LEN];
	struct rp_sigblock sig;
};

/*
 * rp_license_encode_tbs appends the to-be-signed part (every field before
 * the signature block) to `out`. Returns RP_ERR_USAGE for a field that
 * would not decode (an over-long or non-printable template or owner).
 */
RP_MUST_CHECK enum rp_err rp_license_encode_tbs(struct rp_buf *out,
						struct rp_status *st,
						const struct rp_license *lic);

/* rp_license_encode appends the whole license: the TBS, then the sig block. */
RP_MUST_CHECK enum rp_err rp_license_encode(struct rp_buf *out,
					    struct rp_status *st,
					    const struct rp_license *lic);

/*
 * rp_license_decode parses a license strictly. Template and owner must be
 * valid UTF-8 without control characters. The audit path must have exactly
 * the length that (leaf index, batch size) gives. On success stores in
 * out_tbs_len how many leading bytes of `in` are the TBS. RP_ERR_FORMAT
 * with a message naming the field otherwise.
 */
RP_MUST_CHECK enum rp_err rp_license_decode(struct rp_license *out,
					    struct rp_status *st,
					    const uint8_t *in, size_t in_len,
					    size_t *out_tbs_len);

/*
 * rp_license_root_message writes the domain-separated message that the
 * batch root signature covers: "reprotect/v1 license batch" || 0x00 ||
 * batch size (u32 big-endian) || root. Returns its length (at most 64).
 */
size_t rp_license_root_message(uint8_t out[RP_ATLEAST(64)],
			       const uint8_t root[RP_ATLEAST(RP_MERKLE_HASH_LEN)],
			       uint32_t batch_size);

/*
 * rp_license_sig_verify checks a decoded license's signature block: the
 * leaf over the TBS bytes, the audit path up to the root, and the root
 * signature under `pub` (an RSA key for RP_SIG_RSA_PSS_SHA256, an Ed25519
 * key for RP_SIG_ED25519). The caller checks that sig.key_id names `pub`.
 * RP_ERR_AUTH if anything fails to verify, RP_ERR_FORMAT for an algorithm
 * that does not match the key.
 */
RP_MUST_CHECK enum rp_err rp_license_sig_verify(const struct rp_license *lic,
						struct rp_status *st,
						const uint8_t *tbs,
						size_t tbs_len, EVP_PKEY *pub);

/*
 * The last root signature a caller (one thread) saw verify: the documents
 * of a signed batch share it, so the engine checks it once per batch, not
 * once per document. Keyed by the signing key's id (which fixes the key),
 * the algorithm, the root message and the signature bytes; it also keeps
 * the RSA-PSS verify context of the last RSA signer, made once. Zeroed:
 * empty; rp_sig_cache_fini frees it.
 */
struct rp_sig_cache {
	int is_set;
	uint8_t key_id[RP_KEY_ID_LEN];
	uint8_t alg;
	uint8_t msg[64];
	size_t msg_len;
	size_t sig_len;
	uint8_t sig[RP_SIG_MAX];
	EVP_PKEY_CTX *pss; /* owned: RSA-PSS verify context of pss_id's key */
	uint8_t pss_id[RP_KEY_ID_LEN];
};

/* rp_sig_cache_fini frees the cache's context and empties it */
void rp_sig_cache_fini(struct rp_sig_cache *c);

/*
 * rp_license_sig_verify_cached is rp_license_sig_verify that skips the
 * signature operation when `cache` (may be NULL) holds this very root
 * message and signature from this signer, and remembers one that
 * verifies. The leaf and the path up to the root are always recomputed.
 */
RP_MUST_CHECK enum rp_err
rp_license_sig_verify_cached(const struct rp_license *lic,
			     struct rp_status *st, const uint8_t *tbs,
			     size_t tbs_len, EVP_PKEY *pub,
			     struct rp_sig_cache *cache);

#ifdef __cplusplus
}
#endif
#endif
