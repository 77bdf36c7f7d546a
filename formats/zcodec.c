#include "zcodec.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem: exported by libzstd */
#include <zstd.h>
#include <zstd_errors.h>

/*
 * zstd's workspaces hold plaintext (its window and literal buffers): they
 * are wiped before they are freed. Each block keeps its size in front.
 */
struct wipe_hdr {
	size_t size;
	max_align_t align;
};

static void *wipe_alloc(void *opaque, size_t size)
{
	struct wipe_hdr *h;

	(void)opaque;
	if (size > SIZE_MAX - sizeof(*h)) {
		return NULL;
	}
	h = malloc(sizeof(*h) + size);
	if (!h) {
		return NULL;
	}
	h->size = size;
	return h + 1;
}

static void wipe_free(void *opaque, void *p)
{
	struct wipe_hdr *h;

	(void)opaque;
	if (!p) {
		return;
	}
	h = (struct wipe_hdr *)p - 1;
	OPENSSL_cleanse(p, h->size);
	free(h);
}

static const ZSTD_customMem wipe_mem = { wipe_alloc, wipe_free, NULL };

static void zcodec_zero(struct rp_zcodec *z)
{
	z->cstream = NULL;
	z->dstream = NULL;
	z->out = NULL;
	z->out_cap = 0;
	z->total_out = 0;
	z->max_out = 0;
	z->is_frame_done = false;
}

/*
 * zstd_fail records zstd's error `r` as `err`, or as RP_ERR_NOMEM when zstd
 * could not allocate (its workspaces grow on first use): that is neither a
 * corrupt payload nor a bug
 */
static enum rp_err zstd_fail(struct rp_status *st, enum rp_err err, size_t r,
			     const char *what)
{
	if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation) {
		err = RP_ERR_NOMEM;
	}
	return rp_status_fail(st, err, "%s: %s", what, ZSTD_getErrorName(r));
}

static enum rp_err alloc_out(struct rp_zcodec *z, struct rp_status *st,
			     size_t cap)
{
	z->out = malloc(cap);
	if (!z->out) {
		return rp_status_fail(st, RP_ERR_NOMEM,
				      "cannot allocate %zu bytes for zstd",
				      cap);
	}
	z->out_cap = cap;
	return RP_OK;
}

enum rp_err rp_zcodec_init_compress(struct rp_zcodec *z, struct rp_status *st,
				    int level)
{
	ZSTD_CStream *cs;
	size_t r;
	enum rp_err err;

	zcodec_zero(z);
	cs = ZSTD_createCStream_advanced(wipe_mem);
	if (!cs) {
		err = rp_status_fail(st, RP_ERR_NOMEM,
				     "cannot create a zstd compression stream");
		goto out;
	}
	z->cstream = cs;
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "zstd level %d is out of range %d..%d",
				     level, ZSTD_minCLevel(), ZSTD_maxCLevel());
		goto out;
	}
	r = ZSTD_CCtx_setParameter(cs, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r)) {
		/* as the zstd CLI does; cheap next to the cipher */
		r = ZSTD_CCtx_setParameter(cs, ZSTD_c_checksumFlag, 1);
	}
	if (ZSTD_isError(r)) {
		err = zstd_fail(st, RP_ERR_INTERNAL, r,
				"cannot set up zstd compression");
		goto out;
	}
	err = alloc_out(z, st, ZSTD_CStreamOutSize());
out:
	if (err) {
		rp_zcodec_fini(z);
	}
	return err;
}

enum rp_err rp_zcodec_init_decompress(struct rp_zcodec *z, struct rp_status *st,
				      uint64_t max_out)
{
	enum rp_err err;

	zcodec_zero(z);
	z->dstream = ZSTD_createDStream_advanced(wipe_mem);
	if (!z->dstream) {
		err = rp_status_fail(st, RP_ERR_NOMEM,
				     "cannot create a zstd decompression "
				     "stream");
		goto out;
	}
	z->max_out = max_out;
	/*
	 * a frame's window is reserved before any output: bound it by what
	 * the license allows, but never below 8 MiB: the window zstd picks
	 * for levels up to 19 when the size is not pledged, so documents
	 * compressed at any ordinary level still open. NEEDSWORK: pledge
	 * the size when compressing, then bound the window by max_out alone.
	 */
	{
		int wlog = 23;
		size_t r;

		while (wlog < 27 && ((uint64_t)1 << wlog) < max_out) {
			wlog++;
		}
		r = ZSTD_DCtx_setParameter(z->dstream, ZSTD_d_windowLogMax,
					   wlog);
		if (ZSTD_isError(r)) {
			err = zstd_fail(st, RP_ERR_CRYPTO, r,
					"cannot bound the zstd window");
			goto out;
		}
	}
	err = alloc_out(z, st, ZSTD_DStreamOutSize());
out:
	if (err) {
		rp_zcodec_fini(z);
	}
	return err;
}

static enum rp_err emit(struct rp_zcodec *z, struct rp_status *st, size_t len,
			rp_stream_out_fn *out_fn, void *arg)
{
	enum rp_err err;

	if (!len) {
		return RP_OK;
	}
	z->total_out += len;
	err = out_fn(arg, z->out, len);
	if (err) {
		return rp_status_fail(st, err, "cannot pass on zstd output: %s",
				      rp_err_str(err));
	}
	return RP_OK;
}

/* compress runs the compressor over `in` with `op` until it is done. */
static enum rp_err compress(struct rp_zcodec *z, struct rp_status *st,
			    const uint8_t *in, size_t in_len,
			    ZSTD_EndDirective op, rp_stream_out_fn *out_fn,
			    void *arg)
{
	ZSTD_inBuffer ib = { in, in_len, 0 };
	size_t left;
	enum rp_err err;

	do {
		ZSTD_outBuffer ob = { z->out, z->out_cap, 0 };

		left = ZSTD_compressStream2(z->cstream, &ob, &ib, op);
		if (ZSTD_isError(left)) {
			return zstd_fail(st, RP_ERR_INTERNAL, left,
					 "zstd compression failed");
		}
		err = emit(z, st, ob.pos, out_fn, arg);
		if (err) {
			return err;
		}
		/* ZSTD_e_end is done when nothing is left to flush */
	} while (ib.pos < ib.size || (op == ZSTD_e_end && left));
	return RP_OK;
}

/*
 * decompress runs the decompressor over `in`, and on past the end of it
 * while a full output buffer says more output may be pending. `is_drain`
 * forces one call even for empty input.
 */
static enum rp_err decompress(struct rp_zcodec *z, struct rp_status *st,
			      const uint8_t *in, size_t in_len, bool is_drain,
			      rp_stream_out_fn *out_fn, void *arg)
{
	ZSTD_inBuffer ib = { in, in_len, 0 };
	ZSTD_outBuffer ob = { z->out, z->out_cap, 0 };
	bool is_pending = is_drain;

	while (!z->is_frame_done && (ib.pos < ib.size || is_pending)) {
		ob.pos = 0;
		const size_t r = ZSTD_decompressStream(z->dstream, &ob, &ib);
		if (ZSTD_isError(r)) {
			return zstd_fail(st, RP_ERR_FORMAT, r,
					 "compressed payload is corrupt");
		}
		if (ob.pos > z->max_out - z->total_out) {
			OPENSSL_cleanse(z->out, ob.pos);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "decompressed size exceeds the "
					      "license's plaintext size (%llu "
					      "bytes)",
					      (unsigned long long)z->max_out);
		}
		const enum rp_err err = emit(z, st, ob.pos, out_fn, arg);
		if (err) {
			return err;
		}
		if (r == 0) {
			z->is_frame_done = true;
		}
		is_pending = ob.pos == ob.size;
	}
	if (ib.pos < ib.size) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "trailing bytes after the compressed "
				      "payload");
	}
	return RP_OK;
}

enum rp_err rp_zcodec_feed(struct rp_zcodec *z, struct rp_status *st,
			   const uint8_t *in, size_t in_len,
			   rp_stream_out_fn *out_fn, void *arg)
{
	if (z->cstream) {
		if (z->is_frame_done) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "zstd compression already "
					      "finished");
		}
		return compress(z, st, in, in_len, ZSTD_e_continue, out_fn,
				arg);
	}
	if (z->dstream) {
		if (z->is_frame_done && in_len) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "trailing bytes after the "
					      "compressed payload");
		}
		return decompress(z, st, in, in_len, false, out_fn, arg);
	}
	return rp_status_fail(st, RP_ERR_USAGE, "zstd codec not set up");
}

enum rp_err rp_zcodec_finish(struct rp_zcodec *z, struct rp_status *st,
			     rp_stream_out_fn *out_fn, void *arg)
{
	enum rp_err err;

	if (z->cstream) {
		if (z->is_frame_done) {
			return rp_status_fail(st, RP_ERR_USAGE,
					      "zstd compression already "
					      "finished");
		}
		err = compress(z, st, NULL, 0, ZSTD_e_end, out_fn, arg);
		if (!err) {
			z->is_frame_done = true;
		}
		return err;
	}
	if (z->dstream) {
		/* drain anything still held, then demand a whole frame */
		err = decompress(z, st, NULL, 0, true, out_fn, arg);
		if (err) {
			return err;
		}
		if (!z->is_frame_done) {
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "compressed payload truncated");
		}
		return RP_OK;
	}
	return rp_status_fail(st, RP_ERR_USAGE, "zstd codec not set up");
}

void rp_zcodec_fini(struct rp_zcodec *z)
{
	ZSTD_freeCStream(z->cstream);
	ZSTD_freeDStream(z->dstream);
	if (z->out) {
		/* it held plaintext */
		OPENSSL_cleanse(z->out, z->out_cap);
	}
	free(z->out);
	zcodec_zero(z);
}
