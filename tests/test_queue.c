/*
 * test_queue.c: the queues the run's stages hand jobs on with
 * (engine/run_core.c): order, groups, a consumer that waits for `want`
 * jobs (the signer's rest of a batch) or its deadline, a producer on a full
 * queue woken only once half of it is free, and close.
 */
#include "rp_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run_internal.h"

static struct job jobs[16];

static void sleep_ms(long ms)
{
	const struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct timespec in_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += (ms % 1000) * 1000000L;
	t.tv_sec += ms / 1000 + t.tv_nsec / 1000000000L;
	t.tv_nsec %= 1000000000L;
	return t;
}

static void test_queue_order_and_groups(void **state)
{
	struct queue q;
	struct job *in[5], *out[8];

	(void)state;
	assert_true(run_queue_init(&q, 8));
	for (size_t i = 0; i < 5; i++) {
		in[i] = &jobs[i];
	}
	run_queue_push_n(&q, in, 3);
	run_queue_push(&q, in[3]);
	run_queue_push_n(&q, in + 4, 1);
	assert_int_equal(run_queue_pop_n(&q, out, 2, 1, NULL), 2);
	assert_ptr_equal(out[0], &jobs[0]);
	assert_ptr_equal(out[1], &jobs[1]);
	assert_ptr_equal(run_queue_pop(&q), &jobs[2]);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 1, NULL), 2);
	assert_ptr_equal(out[0], &jobs[3]);
	assert_ptr_equal(out[1], &jobs[4]);
	run_queue_close(&q);
	assert_null(run_queue_pop(&q));
	run_queue_fini(&q);
}

struct feeder {
	struct queue *q;
	size_t n;
	long gap_ms;
};

static void *feed_main(void *p)
{
	struct feeder *f = p;

	for (size_t i = 0; i < f->n; i++) {
		sleep_ms(f->gap_ms);
		run_queue_push(f->q, &jobs[i]);
	}
	return NULL;
}

/* a consumer waiting for 4 is not handed the first one alone */
static void test_queue_consumer_waits_for_want(void **state)
{
	struct queue q;
	struct job *out[8];
	struct feeder f = { &q, 4, 20 };
	const struct timespec dl = in_ms(10000);
	pthread_t t;

	(void)state;
	assert_true(run_queue_init(&q, 8));
	assert_int_equal(pthread_create(&t, NULL, feed_main, &f), 0);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 4, &dl), 4);
	pthread_join(t, NULL);
	for (size_t i = 0; i < 4; i++) {
		assert_ptr_equal(out[i], &jobs[i]);
	}
	run_queue_close(&q);
	run_queue_fini(&q);
}

/* the deadline hands over what came, and none is none */
static void test_queue_deadline(void **state)
{
	struct queue q;
	struct job *out[8];
	struct timespec dl;

	(void)state;
	assert_true(run_queue_init(&q, 8));
	run_queue_push(&q, &jobs[0]);
	run_queue_push(&q, &jobs[1]);
	dl = in_ms(50);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 6, &dl), 2);
	dl = in_ms(20);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 1, &dl), 0);
	run_queue_close(&q);
	run_queue_fini(&q);
}

struct pusher {
	struct queue *q;
	int done;
};

static void *push_main(void *p)
{
	struct pusher *ps = p;

	run_queue_push(ps->q, &jobs[8]);
	__atomic_store_n(&ps->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * a producer blocked on a full queue stays asleep while more than half is
 * taken, and goes on once half is free
 */
static void test_queue_producer_woken_at_half(void **state)
{
	struct queue q;
	struct job *in[8], *out[8];
	struct pusher ps = { &q, 0 };
	pthread_t t;
	int waited = 0;

	(void)state;
	assert_true(run_queue_init(&q, 8));
	for (size_t i = 0; i < 8; i++) {
		in[i] = &jobs[i];
	}
	run_queue_push_n(&q, in, 8);
	assert_int_equal(pthread_create(&t, NULL, push_main, &ps), 0);
	sleep_ms(50);
	assert_int_equal(__atomic_load_n(&ps.done, __ATOMIC_ACQUIRE), 0);
	assert_int_equal(run_queue_pop_n(&q, out, 1, 1, NULL), 1);
	sleep_ms(100);
	/* 7 of 8 still there: not woken */
	assert_int_equal(__atomic_load_n(&ps.done, __ATOMIC_ACQUIRE), 0);
	assert_int_equal(run_queue_pop_n(&q, out, 3, 1, NULL), 3);
	while (!__atomic_load_n(&ps.done, __ATOMIC_ACQUIRE) && waited < 5000) {
		sleep_ms(10);
		waited += 10;
	}
	assert_int_equal(__atomic_load_n(&ps.done, __ATOMIC_ACQUIRE), 1);
	pthread_join(t, NULL);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 1, NULL), 5);
	assert_ptr_equal(out[4], &jobs[8]);
	run_queue_close(&q);
	run_queue_fini(&q);
}

struct closer {
	struct queue *q;
};

static void *close_main(void *p)
{
	struct closer *c = p;

	sleep_ms(30);
	run_queue_close(c->q);
	return NULL;
}

/* close wakes a consumer waiting for more than is there */
static void test_queue_close_wakes(void **state)
{
	struct queue q;
	struct job *out[8];
	struct closer c = { &q };
	pthread_t t;

	(void)state;
	assert_true(run_queue_init(&q, 8));
	run_queue_push(&q, &jobs[0]);
	assert_int_equal(pthread_create(&t, NULL, close_main, &c), 0);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 8, NULL), 1);
	assert_int_equal(run_queue_pop_n(&q, out, 8, 1, NULL), 0);
	pthread_join(t, NULL);
	run_queue_fini(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_order_and_groups),
		cmocka_unit_test(test_queue_consumer_waits_for_want),
		cmocka_unit_test(test_queue_deadline),
		cmocka_unit_test(test_queue_producer_woken_at_half),
		cmocka_unit_test(test_queue_close_wakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
