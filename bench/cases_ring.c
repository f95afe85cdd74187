/*
 * Ring benchmarks: rill's SPSC ring against DPDK's rte_ring in SP/SC mode, in the same
 * harness and the same binary, so the ratio between them is what to read (absolute
 * figures drift from run to run on shared machines).
 *
 *   ring/<impl>/cross_core/single    producer (the benchmark thread, CPU 0) enqueues one
 *                                    8-byte item per call; a consumer thread on CPU 1
 *                                    dequeues one per call.
 *   ring/<impl>/cross_core/burst:32  the same with bursts of 32 on both sides.
 *   ring/<impl>/same_core/...        one thread enqueues then dequeues: the cost of the
 *                                    calls with no cache-line transfer.
 *
 * Both rings have 1024 slots of 8 bytes (rte_ring stores void *, and in its usual mode,
 * without RING_F_EXACT_SZ, holds one item less); RILL_BENCH_RING_SLOTS
 * sets another power of two for both. A full ring makes the
 * producer spin with a pause hint, an empty one the consumer. Items counted are items
 * enqueued; the consumer lags by at most the ring's size, which teardown drains untimed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/atomic.h"
#include "base/compiler.h"
#include "base/thread.h"
#include "bench/cases.h"
#include "engine/ring.h"
#include "rill_config.h"

#if RILL_HAVE_DPDK
#include <rte_ring.h>
#endif

#define BENCH_RING_SLOTS 1024u
#define BENCH_BURST      32u

enum ring_kind { KIND_RILL, KIND_RTE };

struct ring_ctx {
	enum ring_kind kind;
	unsigned burst;
	void *ring;
	void *rte_mem;
	bool cross_core;
	pthread_t consumer;
	cpu_set_t saved_affinity;
	/* Producer's and consumer's fields apart, so the harness adds no false sharing. */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint64_t next; /* next value the producer sends */
	uint64_t produced; /* total sent: written before stop, read by the consumer after */
	uint64_t stop;     /* 0 then 1: R2 by teardown, A2 by the consumer */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint64_t consumed; /* consumer's count, read after join */
	uint64_t pinned; /* 0 until the consumer tried to pin itself, then 1 (done) or 2 (failed) */
};

const char *rill_bench_skip_reason;
int rill_bench_cross_core_ok;

/* One call of the ring's enqueue (burst 1: the single-item call). Returns items taken. */
static inline __attribute__((always_inline)) unsigned ring_put(enum ring_kind kind, void *r,
							       uint64_t *objs, unsigned n)
{
#if RILL_HAVE_DPDK
	if (kind == KIND_RTE) {
		if (n == 1)
			return rte_ring_sp_enqueue(r, (void *)(uintptr_t)objs[0]) == 0;
		return rte_ring_sp_enqueue_burst(r, (void *const *)objs, n, NULL);
	}
#endif
	if (n == 1)
		return rill_ring_enqueue(r, objs) == 0;
	return rill_ring_enqueue_burst(r, objs, n);
}

static inline __attribute__((always_inline)) unsigned ring_get(enum ring_kind kind, void *r,
							       uint64_t *objs, unsigned n)
{
#if RILL_HAVE_DPDK
	if (kind == KIND_RTE) {
		if (n == 1)
			return rte_ring_sc_dequeue(r, (void **)objs) == 0;
		return rte_ring_sc_dequeue_burst(r, (void **)objs, n, NULL);
	}
#endif
	if (n == 1)
		return rill_ring_dequeue(r, objs) == 0;
	return rill_ring_dequeue_burst(r, objs, n);
}

static void *consumer_main(void *arg)
{
	struct ring_ctx *c = arg;
	uint64_t objs[BENCH_BURST];
	uint64_t consumed = 0;
	/* R3: pairs with A3 in setup, which waits to know the case really is cross-core. */
	rill_atomic_store_release_u64(&c->pinned, rill_thread_pin(1) == 0 ? 1 : 2);
	for (;;) {
		unsigned n =
			c->kind == KIND_RILL
				? (c->burst == 1 ? ring_get(KIND_RILL, c->ring, objs, 1)
						 : ring_get(KIND_RILL, c->ring, objs, BENCH_BURST))
				: (c->burst == 1 ? ring_get(KIND_RTE, c->ring, objs, 1)
						 : ring_get(KIND_RTE, c->ring, objs, BENCH_BURST));
		if (n > 0) {
			consumed += n;
			continue;
		}
		/* A2: pairs with R2; `produced` is final once stop reads 1. */
		if (rill_atomic_load_acquire_u64(&c->stop) &&
		    consumed == rill_atomic_load_relaxed_u64(&c->produced))
			break;
		rill_cpu_pause();
	}
	c->consumed = consumed;
	return NULL;
}

/* Ring size: RILL_BENCH_RING_SLOTS from the environment, else 1024; 0 when invalid. */
static unsigned bench_ring_slots(void)
{
	const char *env = getenv("RILL_BENCH_RING_SLOTS");
	if (env == NULL || *env == '\0')
		return BENCH_RING_SLOTS;
	char *end;
	unsigned long long slots = strtoull(env, &end, 0);
	if (*end != '\0' || slots < 64 || slots > (1u << 20) || !rill_is_power_of_two(slots))
		return 0;
	return (unsigned)slots;
}

static void *ring_setup(const struct rill_bench_case *bc)
{
	struct ring_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->kind = (enum ring_kind)(bc->arg & 0xff);
	c->burst = (unsigned)((bc->arg >> 8) & 0xff);
	c->cross_core = (bc->arg >> 16) & 1;
	unsigned slots = bench_ring_slots();
	if (slots == 0) {
		rill_bench_skip_reason = "RILL_BENCH_RING_SLOTS must be a power of two, 64 .. 2^20";
		goto out_free;
	}
	if (c->kind == KIND_RILL) {
		struct rill_ring *r;
		if (rill_ring_create(&r, slots, 8, 0) != 0)
			goto out_free;
		c->ring = r;
	} else {
#if RILL_HAVE_DPDK
		ssize_t bytes = rte_ring_get_memsize(slots);
		if (bytes < 0 || posix_memalign(&c->rte_mem, 128, (size_t)bytes) != 0)
			goto out_free;
		if (rte_ring_init(c->rte_mem, "bench", slots, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0)
			goto out_free_mem;
		c->ring = c->rte_mem;
#else
		rill_bench_skip_reason = "built without DPDK: no rte_ring baseline";
		goto out_free;
#endif
	}
	if (c->cross_core) {
		/* main() checked the process's own CPUs before it pinned itself to CPU 0. */
		if (!rill_bench_cross_core_ok) {
			rill_bench_skip_reason = "cross-core cases need CPUs 0 and 1";
			goto out_destroy;
		}
		pthread_getaffinity_np(pthread_self(), sizeof(c->saved_affinity),
				       &c->saved_affinity);
		(void)rill_thread_pin(0);
		if (pthread_create(&c->consumer, NULL, consumer_main, c) != 0)
			goto out_destroy;
		/* A3: pairs with R3. */
		uint64_t pinned;
		while ((pinned = rill_atomic_load_acquire_u64(&c->pinned)) == 0)
			rill_cpu_pause();
		if (pinned != 1) {
			rill_atomic_store_release_u64(&c->stop, 1); /* R2: nothing was produced */
			pthread_join(c->consumer, NULL);
			rill_bench_skip_reason = "cannot pin the consumer to CPU 1";
			goto out_destroy;
		}
	}
	return c;

out_destroy:
	if (c->kind == KIND_RILL)
		rill_ring_destroy(c->ring);
#if RILL_HAVE_DPDK
out_free_mem:
#endif
	free(c->rte_mem);
out_free:
	free(c);
	return NULL;
}

static void ring_teardown(void *ctx)
{
	struct ring_ctx *c = ctx;
	if (c->cross_core) {
		rill_atomic_store_relaxed_u64(&c->produced, c->next); /* ordered by R2 */
		rill_atomic_store_release_u64(&c->stop, 1);           /* R2: pairs with A2 */
		pthread_join(c->consumer, NULL);
		if (c->consumed != c->next)
			fprintf(stderr, "bench: consumer got %llu of %llu items\n",
				(unsigned long long)c->consumed, (unsigned long long)c->next);
		pthread_setaffinity_np(pthread_self(), sizeof(c->saved_affinity),
				       &c->saved_affinity);
	}
	if (c->kind == KIND_RILL)
		rill_ring_destroy(c->ring);
	free(c->rte_mem);
	free(c);
}

/* Producer side of a cross-core case: `items` enqueued, `burst` at a time. */
static inline __attribute__((always_inline)) void produce(struct ring_ctx *c, enum ring_kind kind,
							  unsigned burst, uint64_t items)
{
	uint64_t objs[BENCH_BURST];
	uint64_t next = c->next;
	for (uint64_t done = 0; done < items;) {
		for (unsigned i = 0; i < burst; i++)
			objs[i] = next + i;
		unsigned sent = 0;
		while (sent < burst) {
			unsigned n = ring_put(kind, c->ring, objs + sent, burst - sent);
			if (n == 0)
				rill_cpu_pause();
			sent += n;
		}
		next += burst;
		done += burst;
	}
	c->next = next;
}

/* One thread: enqueue a burst, dequeue it back. */
static inline __attribute__((always_inline)) void ping(struct ring_ctx *c, enum ring_kind kind,
						       unsigned burst, uint64_t items)
{
	uint64_t objs[BENCH_BURST];
	for (uint64_t done = 0; done < items; done += burst) {
		for (unsigned i = 0; i < burst; i++)
			objs[i] = done + i;
		unsigned n = ring_put(kind, c->ring, objs, burst);
		n = ring_get(kind, c->ring, objs, n);
		rill_bench_escape(objs);
		if (n != burst)
			abort(); /* an empty ring of 1024 slots always takes a burst */
	}
}

static void run_rill_cross_single(void *ctx, uint64_t items)
{
	produce(ctx, KIND_RILL, 1, items);
}
static void run_rill_cross_burst(void *ctx, uint64_t items)
{
	produce(ctx, KIND_RILL, BENCH_BURST, items);
}
static void run_rill_same_single(void *ctx, uint64_t items)
{
	ping(ctx, KIND_RILL, 1, items);
}
static void run_rill_same_burst(void *ctx, uint64_t items)
{
	ping(ctx, KIND_RILL, BENCH_BURST, items);
}
static void run_rte_cross_single(void *ctx, uint64_t items)
{
	produce(ctx, KIND_RTE, 1, items);
}
static void run_rte_cross_burst(void *ctx, uint64_t items)
{
	produce(ctx, KIND_RTE, BENCH_BURST, items);
}
static void run_rte_same_single(void *ctx, uint64_t items)
{
	ping(ctx, KIND_RTE, 1, items);
}
static void run_rte_same_burst(void *ctx, uint64_t items)
{
	ping(ctx, KIND_RTE, BENCH_BURST, items);
}

#define RING_ARG(kind, burst, cross)                                                               \
	((uintptr_t)(kind) | ((uintptr_t)(burst) << 8) | ((uintptr_t)(cross) << 16))
#define RING_CASE(name, fn, kind, burst, cross)                                                    \
	{                                                                                          \
		name, 1024, 0, ring_setup, fn, ring_teardown, RING_ARG(kind, burst, cross)         \
	}

const struct rill_bench_case rill_bench_ring_cases[] = {
	RING_CASE("ring/rill/cross_core/single", run_rill_cross_single, KIND_RILL, 1, 1),
	RING_CASE("ring/rte_ring/cross_core/single", run_rte_cross_single, KIND_RTE, 1, 1),
	RING_CASE("ring/rill/cross_core/burst:32", run_rill_cross_burst, KIND_RILL, BENCH_BURST, 1),
	RING_CASE("ring/rte_ring/cross_core/burst:32", run_rte_cross_burst, KIND_RTE, BENCH_BURST,
		  1),
	RING_CASE("ring/rill/same_core/single", run_rill_same_single, KIND_RILL, 1, 0),
	RING_CASE("ring/rte_ring/same_core/single", run_rte_same_single, KIND_RTE, 1, 0),
	RING_CASE("ring/rill/same_core/burst:32", run_rill_same_burst, KIND_RILL, BENCH_BURST, 0),
	RING_CASE("ring/rte_ring/same_core/burst:32", run_rte_same_burst, KIND_RTE, BENCH_BURST, 0),
};
const size_t rill_bench_ring_case_count = RILL_ARRAY_COUNT(rill_bench_ring_cases);
