/*
 * Unit tests of the SPSC ring (engine/ring.h), single-threaded: argument checks, FIFO order
 * across many wraps, full and empty edges, bursts split at the wrap, slot sizes, the
 * variable-size reserve/commit/peek/release path with its padding, and the wait helpers.
 * The two-thread test is test_ring_stress.c.
 */
#include "tests/common/test_util.h"

#include <string.h>

#include "engine/ring.h"

static void test_create_rejects_bad_sizes(void **state)
{
	(void)state;
	struct rill_ring *ring = (struct rill_ring *)1;
	assert_int_equal(rill_ring_create(&ring, 0, 8, 0), -EINVAL);
	assert_null(ring);
	assert_int_equal(rill_ring_create(&ring, 1, 8, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 3, 8, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 100, 8, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, (uint64_t)RILL_RING_SLOTS_MAX * 2, 8, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 16, 0, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 16, 4, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 16, 12, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 16, RILL_RING_SLOT_BYTES_MAX + 8, 0), -EINVAL);
	assert_int_equal(rill_ring_create(&ring, 16, 8, 4), -EINVAL); /* unknown flag */
	assert_int_equal(rill_ring_create(&ring, 2, 8, 0), 0);
	rill_ring_destroy(ring);
	rill_ring_destroy(NULL);
}

static void test_layout_separates_sides(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 64, 8, 0), 0);
	uintptr_t head = (uintptr_t)&ring->head, tail = (uintptr_t)&ring->tail;
	assert_true(head % RILL_CACHE_GUARD_BYTES == 0);
	assert_true(tail % RILL_CACHE_GUARD_BYTES == 0);
	assert_true(tail - head >= RILL_CACHE_GUARD_BYTES);
	assert_true((uintptr_t)ring->slots - tail >= RILL_CACHE_GUARD_BYTES);
	rill_ring_destroy(ring);
}

static void test_single_fill_drain_and_wrap(void **state)
{
	(void)state;
	struct rill_ring *ring;
	const uint64_t slots = 8;
	assert_int_equal(rill_ring_create(&ring, slots, 8, 0), 0);
	uint64_t v = 0, out = 0, next_in = 0, next_out = 0;
	assert_int_equal(rill_ring_dequeue(ring, &out), -EAGAIN);
	/* Fill and drain in uneven steps so head and tail wrap at every position. */
	for (int round = 0; round < 1000; round++) {
		uint64_t put = (uint64_t)round % (slots + 1);
		for (uint64_t i = 0; i < put; i++) {
			v = next_in++;
			assert_int_equal(rill_ring_enqueue(ring, &v), 0);
		}
		assert_int_equal(rill_ring_count(ring), put);
		if (put == slots)
			assert_int_equal(rill_ring_enqueue(ring, &v), -ENOBUFS);
		for (uint64_t i = 0; i < put; i++) {
			assert_int_equal(rill_ring_dequeue(ring, &out), 0);
			assert_int_equal(out, next_out++);
		}
		assert_int_equal(rill_ring_dequeue(ring, &out), -EAGAIN);
		rill_ring_check(ring);
	}
	rill_ring_destroy(ring);
}

/* The consumer may release tail past a head the producer has not stored yet: the count
 * then reads 0, not a wrapped difference capped to "full". */
static void test_count_clamps_tail_past_head(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 8, 8, 0), 0);
	uint64_t v = 1;
	assert_int_equal(rill_ring_enqueue(ring, &v), 0);
	assert_int_equal(rill_ring_count(ring), 1);
	uint64_t head = ring->head;
	ring->tail = head + 1; /* the moment between a release and the producer's store */
	assert_int_equal(rill_ring_count(ring), 0);
	ring->tail = head - 1; /* put back: one slot in use */
	assert_int_equal(rill_ring_count(ring), 1);
	assert_int_equal(rill_ring_dequeue(ring, &v), 0);
	rill_ring_destroy(ring);
}

static void test_full_ring_holds_exactly_capacity(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 1024, 16, 0), 0);
	uint64_t obj[2] = {0, 0};
	for (uint64_t i = 0; i < 1024; i++) {
		obj[0] = i;
		obj[1] = ~i;
		assert_int_equal(rill_ring_enqueue(ring, obj), 0);
	}
	assert_int_equal(rill_ring_enqueue(ring, obj), -ENOBUFS);
	assert_int_equal(rill_ring_count(ring), 1024);
	for (uint64_t i = 0; i < 1024; i++) {
		assert_int_equal(rill_ring_dequeue(ring, obj), 0);
		assert_int_equal(obj[0], i);
		assert_int_equal(obj[1], ~i);
	}
	rill_ring_destroy(ring);
}

/* Burst calls with random sizes and odd slot sizes; the data checks the wrap split. */
static void check_bursts(uint64_t slot_count, uint32_t slot_bytes)
{
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, slot_count, slot_bytes, 0), 0);
	struct test_rng rng;
	test_rng_init(&rng, slot_count * 1000 + slot_bytes);
	const uint32_t words = slot_bytes / 8;
	uint64_t *in = calloc(RILL_RING_BURST_MAX * words, 8);
	uint64_t *out = calloc(RILL_RING_BURST_MAX * words, 8);
	assert_non_null(in);
	assert_non_null(out);
	uint64_t next_in = 0, next_out = 0;
	for (int round = 0; round < 20000; round++) {
		unsigned want = 1 + (unsigned)test_rng_below(&rng, RILL_RING_BURST_MAX);
		for (unsigned i = 0; i < want; i++)
			for (uint32_t w = 0; w < words; w++)
				in[i * words + w] = (next_in + i) * 131 + w;
		unsigned n = rill_ring_enqueue_burst(ring, in, want);
		uint64_t room = slot_count - (next_in - next_out);
		assert_int_equal(n, want < room ? want : room);
		next_in += n;
		want = 1 + (unsigned)test_rng_below(&rng, RILL_RING_BURST_MAX);
		n = rill_ring_dequeue_burst(ring, out, want);
		uint64_t ready = next_in - next_out;
		assert_int_equal(n, want < ready ? want : ready);
		for (unsigned i = 0; i < n; i++)
			for (uint32_t w = 0; w < words; w++)
				assert_int_equal(out[i * words + w], (next_out + i) * 131 + w);
		next_out += n;
	}
	rill_ring_check(ring);
	free(in);
	free(out);
	rill_ring_destroy(ring);
}

static void test_burst_sizes_and_wrap(void **state)
{
	(void)state;
	check_bursts(256, 8);
	check_bursts(512, 24); /* slot not a power of two, stride (32 with the stamp) is */
	check_bursts(256, 16); /* stride 24: the multiply path */
	check_bursts(128, 64);
	check_bursts(1024, 8);
}

static void test_large_slots(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 4, RILL_RING_SLOT_BYTES_MAX, 0), 0);
	static uint8_t in[RILL_RING_SLOT_BYTES_MAX], out[RILL_RING_SLOT_BYTES_MAX];
	for (int round = 0; round < 10; round++) {
		memset(in, round, sizeof(in));
		assert_int_equal(rill_ring_enqueue(ring, in), 0);
		assert_int_equal(rill_ring_dequeue(ring, out), 0);
		assert_memory_equal(in, out, sizeof(in));
	}
	rill_ring_destroy(ring);
}

static void fill_pattern(uint8_t *p, uint32_t bytes, uint64_t seq)
{
	for (uint32_t i = 0; i < bytes; i++)
		p[i] = (uint8_t)(seq * 7 + i);
}

static void check_pattern(const uint8_t *p, uint32_t bytes, uint64_t seq)
{
	for (uint32_t i = 0; i < bytes; i++)
		assert_int_equal(p[i], (uint8_t)(seq * 7 + i));
}

static void test_reserve_commit_peek_release(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 64, 16, RILL_RING_F_VARIABLE), 0);
	struct test_rng rng;
	test_rng_init(&rng, 77);
	uint32_t max = rill_ring_reserve_bytes_max(ring);
	assert_int_equal(max, 32 * 16 - 8);
	uint64_t seq_in = 0, seq_out = 0;
	uint32_t sizes[64];
	for (int round = 0; round < 50000; round++) {
		/* Produce until the ring refuses, with random sizes (0 and max included). */
		for (;;) {
			uint32_t bytes = (uint32_t)test_rng_below(&rng, max + 1);
			if (test_rng_below(&rng, 10) == 0)
				bytes = test_rng_below(&rng, 2) ? max : 0;
			uint8_t *p = rill_ring_reserve(ring, bytes);
			if (p == NULL)
				break;
			assert_true(((uintptr_t)p & 7) == 0);
			/* Sometimes commit less than was reserved. */
			uint32_t used = test_rng_below(&rng, 4) == 0
						? (uint32_t)test_rng_below(&rng, bytes + 1)
						: bytes;
			fill_pattern(p, used, seq_in);
			rill_ring_commit(ring, used);
			sizes[seq_in % 64] = used;
			seq_in++;
			assert_true(seq_in - seq_out <= 64);
			if (test_rng_below(&rng, 3) == 0)
				break;
		}
		uint64_t take = test_rng_below(&rng, seq_in - seq_out + 1);
		for (uint64_t i = 0; i < take; i++) {
			uint32_t bytes = 0;
			const uint8_t *p = rill_ring_peek(ring, &bytes);
			assert_non_null(p);
			assert_int_equal(bytes, sizes[seq_out % 64]);
			check_pattern(p, bytes, seq_out);
			rill_ring_release(ring);
			seq_out++;
		}
		rill_ring_check(ring);
	}
	while (seq_out < seq_in) {
		uint32_t bytes = 0;
		const uint8_t *p = rill_ring_peek(ring, &bytes);
		assert_non_null(p);
		check_pattern(p, bytes, seq_out++);
		rill_ring_release(ring);
	}
	uint32_t bytes = 0;
	assert_null(rill_ring_peek(ring, &bytes));
	rill_ring_destroy(ring);
}

/* The largest reservation fits an empty ring wherever head stands. */
static void test_reserve_max_fits_empty_ring_anywhere(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 32, 8, RILL_RING_F_VARIABLE), 0);
	uint32_t max = rill_ring_reserve_bytes_max(ring);
	for (uint32_t shift = 0; shift < 64; shift++) {
		/* Move head by `shift % 32` slots with small records, then empty the ring. */
		for (uint32_t i = 0; i < shift % 32; i++) {
			assert_non_null(rill_ring_reserve(ring, 0));
			rill_ring_commit(ring, 0);
			uint32_t b = 0;
			assert_non_null(rill_ring_peek(ring, &b));
			rill_ring_release(ring);
		}
		uint8_t *p = rill_ring_reserve(ring, max);
		assert_non_null(p);
		fill_pattern(p, max, shift);
		rill_ring_commit(ring, max);
		uint32_t bytes = 0;
		const uint8_t *q = rill_ring_peek(ring, &bytes);
		assert_non_null(q);
		assert_int_equal(bytes, max);
		check_pattern(q, bytes, shift);
		rill_ring_release(ring);
		assert_int_equal(rill_ring_count(ring), 0);
	}
	rill_ring_destroy(ring);
}

/*
 * Variable mode goes by headers, not head (ring.h, V1): payload words must never pass for
 * a header, whether left from an earlier lap or written past what a commit publishes.
 * Every payload word here is a valid-looking header, and records of every size move head
 * through every slot: an empty ring must peek NULL, and records come out exactly as they
 * went in.
 */
static void test_stale_payload_is_no_header(void **state)
{
	(void)state;
	struct rill_ring *ring;
	assert_int_equal(rill_ring_create(&ring, 32, 8, RILL_RING_F_VARIABLE), 0);
	const struct rill_ring_record fake = {.bytes = 8, .kind = RILL_RING_RECORD_DATA};
	uint32_t max = rill_ring_reserve_bytes_max(ring);
	struct test_rng rng;
	test_rng_init(&rng, 78);
	for (int round = 0; round < 20000; round++) {
		uint32_t count = 1 + (uint32_t)test_rng_below(&rng, 3), sizes[3];
		for (uint32_t i = 0; i < count; i++) {
			uint32_t bytes = (uint32_t)test_rng_below(&rng, max / 3 / 8 + 1) * 8;
			uint8_t *p = rill_ring_reserve(ring, bytes);
			assert_non_null(p); /* three thirds of the ring fit an empty one */
			for (uint32_t b = 0; b < bytes; b += 8)
				memcpy(p + b, &fake, sizeof(fake));
			/* Sometimes less is committed than was reserved and written. */
			uint32_t used = test_rng_below(&rng, 4) == 0
						? (uint32_t)test_rng_below(&rng, bytes / 8 + 1) * 8
						: bytes;
			rill_ring_commit(ring, used);
			sizes[i] = used;
		}
		for (uint32_t i = 0; i < count; i++) {
			uint32_t bytes = UINT32_MAX;
			assert_non_null(rill_ring_peek(ring, &bytes));
			assert_int_equal(bytes, sizes[i]);
			rill_ring_release(ring);
		}
		uint32_t bytes;
		assert_null(rill_ring_peek(ring, &bytes));
		assert_int_equal(rill_ring_count(ring), 0);
	}
	rill_ring_destroy(ring);
}

static void test_wait_helpers(void **state)
{
	(void)state;
	struct rill_wait wait;
	rill_wait_reset(&wait);
	for (unsigned i = 0; i < RILL_WAIT_PAUSE_ROUNDS + 10; i++)
		rill_wait_backoff(&wait);
	assert_int_equal(wait.rounds, RILL_WAIT_PAUSE_ROUNDS); /* then it yields, not counts */
	rill_wait_reset(&wait);
	assert_int_equal(wait.rounds, 0);
	rill_wait_spin(&wait);
	assert_int_equal(wait.rounds, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_sizes),
		cmocka_unit_test(test_layout_separates_sides),
		cmocka_unit_test(test_single_fill_drain_and_wrap),
		cmocka_unit_test(test_count_clamps_tail_past_head),
		cmocka_unit_test(test_full_ring_holds_exactly_capacity),
		cmocka_unit_test(test_burst_sizes_and_wrap),
		cmocka_unit_test(test_large_slots),
		cmocka_unit_test(test_reserve_commit_peek_release),
		cmocka_unit_test(test_reserve_max_fits_empty_ring_anywhere),
		cmocka_unit_test(test_stale_payload_is_no_header),
		cmocka_unit_test(test_wait_helpers),
	};
	test_seed();
	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
