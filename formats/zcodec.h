#ifndef RP_FORMATS_ZCODEC_H
#define RP_FORMATS_ZCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "age_stream.h"
#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Streaming zstd compression of the plaintext before encryption
 * (--compress). The output is a standard zstd frame, so
 * `age -d | zstd -d` gives the original bytes.
 */
struct rp_zcodec {
	void *cstream; /* owned: ZSTD_CStream */
	void *dstream; /* owned: ZSTD_DStream */
	uint8_t *out;  /* owned */
	size_t out_cap;
	uint64_t total_out;
	uint64_t max_out; /* decompression: refuse more output than this */
	bool is_frame_done;
};

/* rp_zcodec_init_compress sets up compression at zstd `level`. */
RP_MUST_CHECK enum rp_err rp_zcodec_init_compress(struct rp_zcodec *z,
						  struct rp_status *st,
						  int level);

/*
 * rp_zcodec_init_decompress sets up decompression that fails with
 * RP_ERR_FORMAT if the output would exceed `max_out` bytes (the license's
 * plaintext size), so a hostile frame cannot expand without bound.
 */
RP_MUST_CHECK enum rp_err rp_zcodec_init_decompress(struct rp_zcodec *z,
						    struct rp_status *st,
						    uint64_t max_out);

/* rp_zcodec_feed consumes `in` and passes output to `out_fn`. */
RP_MUST_CHECK enum rp_err rp_zcodec_feed(struct rp_zcodec *z,
					 struct rp_status *st,
					 const uint8_t *in, size_t in_len,
					 rp_stream_out_fn *out_fn, void *arg);

/*
 * rp_zcodec_finish flushes compression, or, when decompressing, checks that
 * exactly one complete frame was read (RP_ERR_FORMAT otherwise).
 */
RP_MUST_CHECK enum rp_err rp_zcodec_finish(struct rp_zcodec *z,
					   struct rp_status *st,
					   rp_stream_out_fn *out_fn, void *arg);

/* rp_zcodec_fini frees everything; safe on a zeroed struct. */
void rp_zcodec_fini(struct rp_zcodec *z);

#ifdef __cplusplus
}
#endif
#endif
