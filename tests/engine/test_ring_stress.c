/*
 * Two-thread stress test of the SPSC ring: a producer and a consumer on different CPUs
 * pass RILL_STRESS_ITEMS items (50 M by default) with a random mix of single and burst
 * calls on both sides, and the consumer checks that every item arrives exactly once, in
 * order. A second case passes variable-size records through reserve/commit and
 * peek/release and checks their bytes. Built and run under ThreadSanitizer too, where the
 * race detector checks the release/acquire pairs of ring.h.
 */
#include "tests/common/test_util.h"

#include <pthread.h>
#include <string.h>

#include "base/clock.h"
#include "base/thread.h"
#include "engine/ring.h"

#ifndef RILL_STRESS_ITEMS_DEFAULT
#define RILL_STRESS_ITEMS_DEFAULT 50000000ull
#endif

struct stress {
	struct rill_ring *ring;
	uint64_t items;
	uint64_t seed;
	uint64_t received; /* written by the consumer, read after join */
	uint64_t errors;
};

static void stress_pin(int which)
{
	/* Two CPUs when the machine has them; on one CPU the test still runs, just slower. */
	if (rill_cpu_count() >= 2)
		(void)rill_thread_pin(which);
}

static void *fixed_producer(void *arg)
{
	struct stress *s = arg;
	struct test_rng rng = {.state = s->seed * 3 + 1};
	uint64_t batch[RILL_RING_BURST_MAX];
	struct rill_wait wait = {0};
	stress_pin(0);
	for (uint64_t next = 0; next < s->items;) {
		if (test_rng_below(&rng, 4) == 0) {
			if (rill_ring_enqueue(s->ring, &next) == 0) {
				next++;
				rill_wait_reset(&wait);
			} else {
				rill_wait_backoff(&wait);
			}
			continue;
		}
		unsigned want = 1 + (unsigned)test_rng_below(&rng, 64);
		if (want > s->items - next)
			want = (unsigned)(s->items - next);
		for (unsigned i = 0; i < want; i++)
			batch[i] = next + i;
		unsigned n = rill_ring_enqueue_burst(s->ring, batch, want);
		next += n;
		if (n == 0)
			rill_wait_backoff(&wait);
		else
			rill_wait_reset(&wait);
	}
	return NULL;
}

static void *fixed_consumer(void *arg)
{
	struct stress *s = arg;
	struct test_rng rng = {.state = s->seed * 5 + 2};
	uint64_t batch[RILL_RING_BURST_MAX];
	struct rill_wait wait = {0};
	uint64_t expect = 0;
	stress_pin(1);
	while (expect < s->items) {
		unsigned n;
		if (test_rng_below(&rng, 4) == 0) {
			n = rill_ring_dequeue(s->ring, batch) == 0 ? 1 : 0;
		} else {
			n = rill_ring_dequeue_burst(s->ring, batch,
						    1 + (unsigned)test_rng_below(&rng, 64));
		}
		if (n == 0) {
			rill_wait_backoff(&wait);
			continue;
		}
		rill_wait_reset(&wait);
		for (unsigned i = 0; i < n; i++) {
			if (batch[i] != expect + i && s->errors++ < 5)
				fprintf(stderr, "out of order: got %llu, expected %llu\n",
					(unsigned long long)batch[i],
					(unsigned long long)(expect + i));
		}
		expect += n;
	}
	s->received = expect;
	return NULL;
}

static void run_pair(struct stress *s, void *(*producer)(void *), void *(*consumer)(void *))
{
	pthread_t p, c;
	assert_int_equal(pthread_create(&c, NULL, consumer, s), 0);
	assert_int_equal(pthread_create(&p, NULL, producer, s), 0);
	assert_int_equal(pthread_join(p, NULL), 0);
	assert_int_equal(pthread_join(c, NULL), 0);
}

static void test_fixed_slots_two_threads(void **state)
{
	(void)state;
	struct stress s = {.items = test_env_u64("RILL_STRESS_ITEMS", RILL_STRESS_ITEMS_DEFAULT),
			   .seed = test_seed()};
	assert_int_equal(rill_ring_create(&s.ring, 1024, 8, 0), 0);
	uint64_t start = rill_clock_now_ns();
	run_pair(&s, fixed_producer, fixed_consumer);
	double seconds = (double)(rill_clock_now_ns() - start) / 1e9;
	fprintf(stderr, "fixed slots: %llu items in %.2f s\n", (unsigned long long)s.items,
		seconds);
	assert_int_equal(s.errors, 0);
	assert_int_equal(s.received, s.items);
	assert_int_equal(rill_ring_count(s.ring), 0);
	rill_ring_check(s.ring);
	rill_ring_destroy(s.ring);
}

/*
 * Variable-size records: payload length and bytes are functions of the sequence number.
 * Lengths stay under 1 KiB, and bytes are written and checked with memset/memcmp, which
 * ThreadSanitizer checks as whole ranges: byte loops made this case 30 times slower there.
 */
#define VAR_RECORD_BYTES_MAX 1000u

static uint32_t record_bytes_for(uint64_t seq)
{
	return (uint32_t)((seq * 2654435761u) % (VAR_RECORD_BYTES_MAX + 1));
}

static void *var_producer(void *arg)
{
	struct stress *s = arg;
	struct rill_wait wait = {0};
	stress_pin(0);
	for (uint64_t seq = 0; seq < s->items;) {
		uint32_t bytes = record_bytes_for(seq);
		uint8_t *p = rill_ring_reserve(s->ring, bytes);
		if (p == NULL) {
			rill_wait_backoff(&wait);
			continue;
		}
		rill_wait_reset(&wait);
		memcpy(p, &seq, bytes < 8 ? bytes : 8);
		if (bytes > 8)
			memset(p + 8, (int)(seq & 0xff), bytes - 8);
		rill_ring_commit(s->ring, bytes);
		seq++;
	}
	return NULL;
}

static void *var_consumer(void *arg)
{
	struct stress *s = arg;
	struct rill_wait wait = {0};
	uint64_t seq = 0;
	uint8_t expect[VAR_RECORD_BYTES_MAX];
	stress_pin(1);
	while (seq < s->items) {
		uint32_t bytes;
		const uint8_t *p = rill_ring_peek(s->ring, &bytes);
		if (p == NULL) {
			rill_wait_backoff(&wait);
			continue;
		}
		rill_wait_reset(&wait);
		bool ok = bytes == record_bytes_for(seq) && bytes <= VAR_RECORD_BYTES_MAX;
		uint64_t got = 0, want = 0;
		if (ok) {
			memcpy(&got, p, bytes < 8 ? bytes : 8);
			memcpy(&want, &seq, bytes < 8 ? bytes : 8);
			ok = got == want;
		}
		if (ok && bytes > 8) {
			memset(expect, (int)(seq & 0xff), bytes - 8);
			ok = memcmp(p + 8, expect, bytes - 8) == 0;
		}
		if (!ok && s->errors++ < 5)
			fprintf(stderr, "record %llu damaged (%u bytes)\n", (unsigned long long)seq,
				bytes);
		rill_ring_release(s->ring);
		seq++;
	}
	s->received = seq;
	return NULL;
}

static void test_variable_records_two_threads(void **state)
{
	(void)state;
	uint64_t items = test_env_u64("RILL_STRESS_ITEMS", RILL_STRESS_ITEMS_DEFAULT) / 10;
	struct stress s = {.items = items, .seed = test_seed()};
	assert_int_equal(rill_ring_create(&s.ring, 4096, 16, RILL_RING_F_VARIABLE), 0);
	run_pair(&s, var_producer, var_consumer);
	assert_int_equal(s.errors, 0);
	assert_int_equal(s.received, s.items);
	assert_int_equal(rill_ring_count(s.ring), 0);
	rill_ring_destroy(s.ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_slots_two_threads),
		cmocka_unit_test(test_variable_records_two_threads),
	};
	test_seed();
	return cmocka_run_group_tests_name("ring_stress", tests, NULL, NULL);
}
