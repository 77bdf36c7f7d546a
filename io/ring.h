#ifndef RP_IO_RING_H
#define RP_IO_RING_H

#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct rp_ring is an io_uring used in rounds: the caller takes a slot
 * for each request of a round (rp_ring_sqe, with the request's index),
 * prepares it with liburing's io_uring_prep_*, then rp_ring_wait submits
 * the round and collects one result per request into res[index].
 *
 * - Every request carries (round << 32 | index): a completion is always
 *   matched to the request it answers; one left over from a round whose
 *   wait failed is dropped, never taken for a request of a later round.
 * - A wait or a submission cut short by a signal (EINTR: SIGINT with a
 *   handler, SIGSTOP then SIGCONT) is resumed; so is EAGAIN.
 * - A round larger than the submission queue is submitted in parts.
 * One thread at a time per ring.
 */
struct rp_ring {
	struct io_uring u;
	uint32_t round;
	size_t pending; /* slots taken in this round */
};

/* rp_ring_init sets up a ring of `entries` slots (a power of two). */
RP_MUST_CHECK enum rp_err rp_ring_init(struct rp_ring *rg,
				       struct rp_status *st,
				       unsigned entries);

/* rp_ring_fini tears the ring down. */
void rp_ring_fini(struct rp_ring *rg);

/*
 * rp_ring_sqe takes a slot for this round's request `index` (below
 * 2^32), submitting what is queued when the queue is full. NULL only if
 * that submission fails (st says why).
 */
struct io_uring_sqe *rp_ring_sqe(struct rp_ring *rg, struct rp_status *st,
				 size_t index);

/*
 * rp_ring_wait submits the round and waits for the results of its `n`
 * requests (res[index] = the completion's res: a count, or -errno), then
 * starts the next round. RP_ERR_IO when the ring itself fails: the round's
 * requests may still complete then, so the caller must not redo them.
 */
RP_MUST_CHECK enum rp_err rp_ring_wait(struct rp_ring *rg,
				       struct rp_status *st, size_t n,
				       int *res);

#ifdef __cplusplus
}
#endif
#endif
