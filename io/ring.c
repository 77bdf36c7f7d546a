#include "ring.h"

#include <errno.h>
#include <string.h>

enum rp_err rp_ring_init(struct rp_ring *rg, struct rp_status *st,
			 unsigned entries)
{
	int rc;

	memset(rg, 0, sizeof(*rg));
	rc = io_uring_queue_init(entries, &rg->u, 0);
	if (rc < 0) {
		return rp_status_errno(st, -rc, "io_uring", NULL);
	}
	rg->round = 1;
	return RP_OK;
}

void rp_ring_fini(struct rp_ring *rg)
{
	io_uring_queue_exit(&rg->u);
}

/* submit_all submits what is queued, resuming after EINTR and EAGAIN */
static int submit_all(struct rp_ring *rg)
{
	while (io_uring_sq_ready(&rg->u)) {
		const int rc = io_uring_submit(&rg->u);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
			return rc;
		}
	}
	return 0;
}

struct io_uring_sqe *rp_ring_sqe(struct rp_ring *rg, struct rp_status *st,
				 size_t index)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&rg->u);

	if (!sqe) {
		const int rc = submit_all(rg);

		if (rc < 0) {
			rp_status_errno(st, -rc, "io_uring submit", NULL);
			return NULL;
		}
		sqe = io_uring_get_sqe(&rg->u);
		if (!sqe) {
			rp_status_fail(st, RP_ERR_IO, "io_uring: no free slot");
			return NULL;
		}
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)rg->round << 32 |
					     (uint32_t)index);
	rg->pending++;
	return sqe;
}

enum rp_err rp_ring_wait(struct rp_ring *rg, struct rp_status *st, size_t n,
			 int *res)
{
	const unsigned cq = *rg->u.cq.kring_entries;
	const unsigned want = n < cq ? (unsigned)n : cq;
	size_t got = 0;
	int rc = 0;

	/* one system call submits the round and waits for all of it */
	while (io_uring_sq_ready(&rg->u)) {
		const int k = io_uring_submit_and_wait(&rg->u, want);

		if (k == -EINTR || k == -EAGAIN) {
			continue; /* what went in stays in; the rest again */
		}
		if (k <= 0) {
			rc = k ? k : -EIO; /* nothing taken: the ring is stuck */
			break;
		}
	}
	while (!rc && got < n) {
		struct io_uring_cqe *cqes[64];
		unsigned k = io_uring_peek_batch_cqe(&rg->u, cqes, 64);

		if (!k) {
			rc = io_uring_wait_cqe_nr(
				&rg->u, cqes,
				n - got < cq ? (unsigned)(n - got) : cq);
			if (rc == -EINTR || rc == -EAGAIN) {
				rc = 0;
			}
			continue;
		}
		for (unsigned i = 0; i < k; i++) {
			const uint64_t data = io_uring_cqe_get_data64(cqes[i]);

			if ((uint32_t)(data >> 32) == rg->round) {
				res[(uint32_t)data] = cqes[i]->res;
				got++;
			}
		}
		io_uring_cq_advance(&rg->u, k);
	}
	rg->round++;
	rg->pending = 0;
	if (rc < 0) {
		return rp_status_errno(st, -rc, "io_uring wait", NULL);
	}
	return RP_OK;
}
