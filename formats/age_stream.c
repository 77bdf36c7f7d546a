#include "age_stream.h"

#include <assert.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "rp_ossl.h"
#include "rp_span.h"

#define STREAM_IV_LEN 12

/*
 * The 11-byte counter cannot overflow in practice; we stop at 2^64 - 1
 * chunks (far beyond any real payload) so the uint64_t never wraps.
 */
#define STREAM_MAX_COUNTER UINT64_MAX

enum rp_err
rp_stream_init(struct rp_stream *s, struct rp_status *st,
	       enum rp_stream_dir dir,
	       const uint8_t file_key[RP_ATLEAST(RP_AGE_FILE_KEY_LEN)],
	       const uint8_t nonce[RP_ATLEAST(RP_AGE_NONCE_LEN)])
{
	enum rp_err err;

	s->ctx = NULL;
	s->counter = 0;
	s->dir = dir;
	s->is_done = false;
	s->is_failed = false;
	s->is_clean = false;
	s->in_len = 0;
	s->total_in = 0;
	s->total_out = 0;
	OPENSSL_cleanse(s->key, sizeof(s->key));

	if (dir != RP_STREAM_SEAL && dir != RP_STREAM_OPEN) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "invalid payload stream direction %d",
				     (int)dir);
		goto out;
	}
	err = rp_hkdf_sha256(s->key, sizeof(s->key), st, file_key,
			     RP_AGE_FILE_KEY_LEN, nonce, RP_AGE_NONCE_LEN,
			     "payload");
	if (err) {
		goto out;
	}
	s->ctx = EVP_CIPHER_CTX_new();
	if (!s->ctx) {
		err = rp_status_ossl(st, RP_ERR_NOMEM,
				     "cannot create a cipher context");
		goto out;
	}
	/* fix the cipher once; each chunk then sets only the key and IV */
	if (EVP_CipherInit_ex(s->ctx, rp_chacha20_poly1305(), NULL, NULL, NULL,
			      dir == RP_STREAM_SEAL) != 1) {
		err = rp_status_ossl(st, RP_ERR_CRYPTO,
				     "cannot set up chacha20-poly1305");
		goto out;
	}
out:
	if (err) {
		rp_stream_fini(s);
		s->is_failed = true;
	}
	return err;
}

/* chunk_iv writes the 11-byte big-endian counter and the final flag. */
static void chunk_iv(uint8_t iv[RP_ATLEAST(STREAM_IV_LEN)], uint64_t counter,
		     bool is_final)
{
	memset(iv, 0, 3);
	rp_put_u64be(iv + 3, counter);
	iv[11] = is_final ? 0x01 : 0x00;
}

static enum rp_err next_counter(struct rp_stream *s, struct rp_status *st)
{
	if (s->counter == STREAM_MAX_COUNTER) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "payload too long: chunk counter "
				      "overflow");
	}
	s->counter++;
	return RP_OK;
}

/* seal_chunk seals s->in[0..in_len) as one chunk and passes it on. */
static enum rp_err seal_chunk(struct rp_stream *s, struct rp_status *st,
			      bool is_final, rp_stream_out_fn *out_fn,
			      void *arg)
{
	uint8_t iv[STREAM_IV_LEN];
	const size_t len = s->in_len;
	int n = 0;
	int fin = 0;
	enum rp_err err;

	assert(len <= RP_STREAM_CHUNK);
	chunk_iv(iv, s->counter, is_final);
	if (EVP_EncryptInit_ex(s->ctx, NULL, NULL, s->key, iv) != 1 ||
	    (len &&
	     EVP_EncryptUpdate(s->ctx, s->out, &n, s->in, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(s->ctx, s->out + n, &fin) != 1 ||
	    (size_t)n + (size_t)fin != len ||
	    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, RP_STREAM_TAG,
				s->out + len) != 1) {
		return rp_status_ossl(st, RP_ERR_CRYPTO,
				      "cannot seal a payload chunk");
	}
	s->in_len = 0;
	if (is_final) {
		s->is_done = true;
	} else {
		err = next_counter(s, st);
		if (err) {
			return err;
		}
	}
	s->total_out += len + RP_STREAM_TAG;
	err = out_fn(arg, s->out, len + RP_STREAM_TAG);
	if (err) {
		return rp_status_fail(st, err,
				      "cannot pass on a sealed payload chunk: "
				      "%s",
				      rp_err_str(err));
	}
	return RP_OK;
}

/*
 * open_at decrypts the sealed chunk in[0..in_len) into s->out as chunk
 * s->counter. Returns RP_OK with *out_len set, RP_ERR_AUTH (no message
 * recorded, s->out cleansed) if the tag does not verify, or RP_ERR_CRYPTO.
 */
static enum rp_err open_at(struct rp_stream *s, struct rp_status *st,
			   const uint8_t *in, size_t in_len, bool is_final,
			   size_t *out_len)
{
	uint8_t iv[STREAM_IV_LEN];
	const size_t len = in_len - RP_STREAM_TAG;
	int n = 0;
	int fin = 0;

	assert(in_len >= RP_STREAM_TAG && len <= RP_STREAM_CHUNK);
	chunk_iv(iv, s->counter, is_final);
	if (EVP_DecryptInit_ex(s->ctx, NULL, NULL, s->key, iv) != 1 ||
	    (len && EVP_DecryptUpdate(s->ctx, s->out, &n, in, (int)len) != 1) ||
	    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, RP_STREAM_TAG,
				(void *)(in + len)) != 1) {
		OPENSSL_cleanse(s->out, len);
		return rp_status_ossl(st, RP_ERR_CRYPTO,
				      "cannot open a payload chunk");
	}
	if (EVP_DecryptFinal_ex(s->ctx, s->out + n, &fin) != 1 ||
	    (size_t)n + (size_t)fin != len) {
		OPENSSL_cleanse(s->out, len);
		ERR_clear_error();
		return RP_ERR_AUTH;
	}
	*out_len = len;
	return RP_OK;
}

/* try_open opens the buffered s->in[0..in_len) (open_at) */
static enum rp_err try_open(struct rp_stream *s, struct rp_status *st,
			    bool is_final, size_t *out_len)
{
	return open_at(s, st, s->in, s->in_len, is_final, out_len);
}

static enum rp_err auth_failed(const struct rp_stream *s, struct rp_status *st)
{
	return rp_status_fail(st, RP_ERR_AUTH,
			      "payload chunk %llu failed authentication",
			      (unsigned long long)s->counter);
}

/* release passes on the verified plaintext of the chunk just opened. */
static enum rp_err release(struct rp_stream *s, struct rp_status *st,
			   size_t len, rp_stream_out_fn *out_fn, void *arg)
{
	enum rp_err err;

	s->in_len = 0;
	s->total_out += len;
	if (!len) {
		return RP_OK;
	}
	err = out_fn(arg, s->out, len);
	if (err) {
		return rp_status_fail(
			st, err, "cannot pass on payload chunk %llu: %s",
			(unsigned long long)(s->counter - 1), rp_err_str(err));
	}
	return RP_OK;
}

/*
 * open_full opens a full buffer that more input follows, so it must be a
 * non-final chunk. As Go's age does, we retry it as final, only to tell
 * "data after the final chunk" from a forgery.
 */
static enum rp_err open_full(struct rp_stream *s, struct rp_status *st,
			     rp_stream_out_fn *out_fn, void *arg)
{
	size_t len = 0;
	enum rp_err err;

	err = try_open(s, st, false, &len);
	if (err == RP_ERR_AUTH) {
		err = try_open(s, st, true, &len);
		if (!err) {
			OPENSSL_cleanse(s->out, len);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "data after the final chunk "
					      "(chunk %llu)",
					      (unsigned long long)s->counter);
		}
		if (err == RP_ERR_AUTH) {
			return auth_failed(s, st);
		}
	}
	if (err) {
		return err;
	}
	err = next_counter(s, st);
	if (err) {
		OPENSSL_cleanse(s->out, len);
		return err;
	}
	return release(s, st, len, out_fn, arg);
}

/* open_final opens the remainder at the end of the input as the last. */
static enum rp_err open_final(struct rp_stream *s, struct rp_status *st,
			      rp_stream_out_fn *out_fn, void *arg)
{
	size_t len = 0;
	enum rp_err err;

	if (s->in_len < RP_STREAM_TAG) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "payload truncated: chunk %llu has %zu "
				      "bytes, less than a tag",
				      (unsigned long long)s->counter,
				      s->in_len);
	}
	if (s->in_len == RP_STREAM_TAG && s->counter != 0) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "payload chunk %llu is an empty final "
				      "chunk, which only chunk 0 may be",
				      (unsigned long long)s->counter);
	}
	err = try_open(s, st, true, &len);
	if (err == RP_ERR_AUTH && s->in_len == RP_STREAM_SEALED) {
		/* a valid full non-final chunk last: the final one is gone */
		err = try_open(s, st, false, &len);
		if (!err) {
			OPENSSL_cleanse(s->out, len);
			return rp_status_fail(st, RP_ERR_FORMAT,
					      "payload truncated: chunk %llu "
					      "is not final and nothing "
					      "follows",
					      (unsigned long long)s->counter);
		}
	}
	if (err == RP_ERR_AUTH) {
		return auth_failed(s, st);
	}
	if (err) {
		return err;
	}
	s->is_done = true;
	s->counter++; /* cannot wrap: the final chunk is never reopened */
	return release(s, st, len, out_fn, arg);
}

static enum rp_err check_usable(const struct rp_stream *s, struct rp_status *st)
{
	if (s->is_failed || !s->ctx) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "payload stream already failed");
	}
	return RP_OK;
}

static enum rp_err fed_after_final(const struct rp_stream *s,
				   struct rp_status *st)
{
	if (s->dir == RP_STREAM_SEAL) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "payload stream already finished");
	}
	return rp_status_fail(st, RP_ERR_FORMAT, "data after the final chunk");
}

enum rp_err rp_stream_feed(struct rp_stream *s, struct rp_status *st,
			   const uint8_t *in, size_t in_len,
			   rp_stream_out_fn *out_fn, void *arg)
{
	const size_t cap =
		s->dir == RP_STREAM_SEAL ? RP_STREAM_CHUNK : RP_STREAM_SEALED;
	enum rp_err err;

	err = check_usable(s, st);
	if (err) {
		return err;
	}
	while (in_len > 0) {
		if (s->is_done) {
			err = fed_after_final(s, st);
			goto out;
		}
		/* a full buffer is final unless more input arrives: it has */
		if (s->in_len == cap) {
			err = s->dir == RP_STREAM_SEAL
				      ? seal_chunk(s, st, false, out_fn, arg)
				      : open_full(s, st, out_fn, arg);
			if (err) {
				goto out;
			}
		}
		size_t n = cap - s->in_len;
		if (n > in_len) {
			n = in_len;
		}
		memcpy(s->in + s->in_len, in, n);
		s->in_len += n;
		s->total_in += n;
		in += n;
		in_len -= n;
	}
out:
	if (err) {
		s->is_failed = true;
	}
	return err;
}

enum rp_err rp_stream_finish(struct rp_stream *s, struct rp_status *st,
			     rp_stream_out_fn *out_fn, void *arg)
{
	enum rp_err err;

	err = check_usable(s, st);
	if (err) {
		return err;
	}
	if (s->is_done) {
		err = rp_status_fail(st, RP_ERR_USAGE,
				     "payload stream already finished");
		goto out;
	}
	if (s->dir == RP_STREAM_SEAL) {
		err = seal_chunk(s, st, true, out_fn, arg);
	} else if (s->in_len == 0) {
		/* full buffers wait for more input, so this means no input */
		err = rp_status_fail(st, RP_ERR_FORMAT,
				     "payload truncated: no chunks");
	} else {
		err = open_final(s, st, out_fn, arg);
	}
out:
	if (err) {
		s->is_failed = true;
	}
	return err;
}

enum rp_err rp_stream_check_final(struct rp_stream *s, struct rp_status *st,
				  uint64_t payload_len, const uint8_t *last,
				  size_t last_len)
{
	const uint64_t n = payload_len ? (payload_len + RP_STREAM_SEALED - 1) /
						 RP_STREAM_SEALED
				       : 0;
	size_t out_len = 0;
	enum rp_err err;

	if (s->dir != RP_STREAM_OPEN || s->is_failed || s->counter ||
	    s->in_len) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "check the final chunk of a fresh "
				      "opening stream");
	}
	if (n == 0 || payload_len - (n - 1) * RP_STREAM_SEALED < RP_STREAM_TAG ||
	    (n > 1 &&
	     payload_len - (n - 1) * RP_STREAM_SEALED == RP_STREAM_TAG)) {
		return rp_status_fail(st, RP_ERR_FORMAT,
				      "payload truncated: it does not end in "
				      "a whole final chunk");
	}
	if (last_len != payload_len - (n - 1) * RP_STREAM_SEALED) {
		return rp_status_fail(st, RP_ERR_USAGE,
				      "give the whole final chunk");
	}
	s->counter = n - 1;
	/* straight from the caller's buffer: ciphertext needs no copy */
	err = open_at(s, st, last, last_len, true, &out_len);
	/* only what this call used: the plaintext of the final chunk */
	OPENSSL_cleanse(s->out, last_len);
	s->is_clean = true;
	s->in_len = 0;
	s->is_failed = true; /* this stream has done its one job */
	if (err == RP_ERR_AUTH) {
		return rp_status_fail(st, RP_ERR_AUTH,
				      "the payload's final chunk does not "
				      "authenticate: truncated, extended or "
				      "damaged");
	}
	return err;
}

void rp_stream_fini(struct rp_stream *s)
{
	EVP_CIPHER_CTX_free(s->ctx);
	s->ctx = NULL;
	OPENSSL_cleanse(s->key, sizeof(s->key));
	if (!s->is_clean) {
		OPENSSL_cleanse(s->in, sizeof(s->in));
		OPENSSL_cleanse(s->out, sizeof(s->out));
	}
	s->in_len = 0;
}

uint64_t rp_stream_sealed_size(uint64_t plain_len)
{
	uint64_t chunks = plain_len / RP_STREAM_CHUNK +
			  (plain_len % RP_STREAM_CHUNK != 0);
	uint64_t tags, total;

	if (chunks == 0) {
		chunks = 1;
	}
	/* saturate rather than wrap for absurd sizes */
	if (__builtin_mul_overflow(chunks, (uint64_t)RP_STREAM_TAG, &tags) ||
	    __builtin_add_overflow(plain_len, tags, &total)) {
		return UINT64_MAX;
	}
	return total;
}
