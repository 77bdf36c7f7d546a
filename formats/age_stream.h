#ifndef RP_FORMATS_AGE_STREAM_H
#define RP_FORMATS_AGE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "age_header.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * age STREAM payload (docs/FORMAT.md section 5): ChaCha20-Poly1305 over
 * 64 KiB chunks, nonce = 11-byte big-endian counter || final flag, key =
 * HKDF-SHA-256(file key, salt = 16-byte payload nonce, info "payload").
 * Streaming with bounded memory: feed any number of bytes in any pieces.
 */
#define RP_STREAM_CHUNK	 65536
#define RP_STREAM_TAG	 16
#define RP_STREAM_SEALED (RP_STREAM_CHUNK + RP_STREAM_TAG)

/*
 * rp_stream_out_fn receives output bytes, in order. When opening, bytes are
 * released only after their chunk's tag has verified. A non-OK return
 * stops the stream and is passed back to the caller.
 */
typedef enum rp_err rp_stream_out_fn(void *arg, const uint8_t *p, size_t len);

enum rp_stream_dir {
	RP_STREAM_SEAL = 1, /* plaintext in, sealed chunks out */
	RP_STREAM_OPEN = 2, /* sealed chunks in, plaintext out */
};

struct rp_stream {
	EVP_CIPHER_CTX *ctx; /* owned */
	uint8_t key[32];
	uint64_t counter;
	enum rp_stream_dir dir;
	bool is_done;	/* the final chunk was sealed or opened */
	bool is_failed; /* a call failed: only rp_stream_fini is left */
	bool is_clean;	/* in and out hold nothing (check_final wiped its part) */
	size_t in_len;
	uint8_t in[RP_STREAM_SEALED];
	uint8_t out[RP_STREAM_SEALED];
	uint64_t total_in;
	uint64_t total_out;
};

/*
 * rp_stream_init sets up `s` (caller's storage, may be on the heap: it is
 * about 128 KiB) to seal or open a payload with `file_key` and the
 * 16-byte payload `nonce`.
 */
RP_MUST_CHECK enum rp_err
rp_stream_init(struct rp_stream *s, struct rp_status *st,
	       enum rp_stream_dir dir,
	       const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
	       const uint8_t nonce[RP_ATLEAST(RP_AGE_NONCE_LEN)]);

/*
 * rp_stream_feed consumes `in` and passes whatever output it can to
 * `out_fn`. When opening: RP_ERR_AUTH for a chunk that does not verify,
 * RP_ERR_FORMAT ("data after the final chunk") for bytes after it.
 */
RP_MUST_CHECK enum rp_err rp_stream_feed(struct rp_stream *s,
					 struct rp_status *st,
					 const uint8_t *in, size_t in_len,
					 rp_stream_out_fn *out_fn, void *arg);

/*
 * rp_stream_finish ends the stream: seals the final chunk, or opens it.
 * When opening: RP_ERR_FORMAT for a payload that ends early (no final
 * chunk, a chunk shorter than 16 bytes, an empty final chunk that is not
 * the first), RP_ERR_AUTH for a tag failure.
 */
RP_MUST_CHECK enum rp_err rp_stream_finish(struct rp_stream *s,
					   struct rp_status *st,
					   rp_stream_out_fn *out_fn, void *arg);

/*
 * rp_stream_check_final checks, without reading the whole payload, that a
 * payload of payload_len bytes (after the nonce) ends in a whole final
 * chunk that authenticates: `last` is its final last_len bytes (the
 * caller computes where they start: payload_len minus (chunks - 1) *
 * RP_STREAM_SEALED). Catches truncation and extension; not damage in the
 * middle chunks. Use on a freshly initialised opening stream, once.
 * RP_ERR_FORMAT or RP_ERR_AUTH otherwise.
 */
RP_MUST_CHECK enum rp_err rp_stream_check_final(struct rp_stream *s,
						struct rp_status *st,
						uint64_t payload_len,
						const uint8_t *last,
						size_t last_len);

/* rp_stream_fini cleanses the keys and frees the context. */
void rp_stream_fini(struct rp_stream *s);

/*
 * rp_stream_sealed_size returns the payload size after the nonce for
 * `plain_len` bytes of plaintext: plain + 16 * max(1, ceil(plain / 64K)).
 */
uint64_t rp_stream_sealed_size(uint64_t plain_len);

#ifdef __cplusplus
}
#endif
#endif
