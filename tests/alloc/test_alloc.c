/*
 * Unit tests of alloc/: shard arenas (counters, alignment, separate jemalloc arenas,
 * teardown), fixed-size pools (exhaustion, LIFO reuse, invariants, alignment) and huge-page
 * buffers (alignment, zero fill, fallback, bad sizes).
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc/arena.h"
#include "alloc/hugebuf.h"
#include "alloc/pool.h"
#include "base/compiler.h"
#include "rill/limits.h"

/* The jemalloc arena that holds @p (arenas.lookup). */
static unsigned arena_of(void *p)
{
	unsigned index = ~0u;
	size_t size = sizeof(index);
	assert_int_equal(mallctl("arenas.lookup", &index, &size, &p, sizeof(p)), 0);
	return index;
}

/* Memory comes from the shard's own arena, bound to the thread or not, small or large. */
static void test_arena_memory_lands_in_its_arena(void **state)
{
	(void)state;
	struct rill_arena a, b;
	assert_int_equal(rill_arena_init(&a), 0);
	assert_int_equal(rill_arena_init(&b), 0);
	static const size_t sizes[] = {8, 64, 1024, 100000, 4 << 20};
	for (int bound = 0; bound < 2; bound++) {
		if (bound)
			assert_int_equal(rill_arena_bind(&a), 0);
		for (size_t i = 0; i < RILL_ARRAY_COUNT(sizes); i++) {
			void *pa = rill_arena_alloc(&a, sizes[i]);
			void *pb = rill_arena_alloc(&b, sizes[i]); /* b is never bound */
			void *qa = rill_arena_alloc_aligned(&a, sizes[i], 256);
			assert_int_equal(arena_of(pa), a.arena_index);
			assert_int_equal(arena_of(pb), b.arena_index);
			assert_int_equal(arena_of(qa), a.arena_index);
			rill_arena_free(&a, pa, sizes[i], 0);
			rill_arena_free(&b, pb, sizes[i], 0);
			rill_arena_free(&a, qa, sizes[i], 256);
		}
	}
	fprintf(stderr, "arena: malloc is jemalloc's: %s, bound fast path: %s\n",
		a.malloc_is_jemalloc ? "yes" : "no", rill_arena_bound == &a ? "yes" : "no");
	rill_arena_destroy(&b);
	rill_arena_destroy(&a); /* flushes this thread's cache and unbinds it */
	assert_null(rill_arena_bound);
}

/*
 * Once bound, everything the thread mallocs (the C library's own allocations included)
 * lives in the arena: destroying it must not take that memory along. It is retired, and
 * the next arena created reuses it; destroyed in turn, bound or not, it is retired again.
 */
static void test_arena_bound_is_retired_not_destroyed(void **state)
{
	(void)state;
	struct rill_arena arena;
	assert_int_equal(rill_arena_init(&arena), 0);
	assert_int_equal(rill_arena_bind(&arena), 0);
	char *text = strdup("allocated by libc while bound");
	char *kept = strdup("still in use after the arena is reused");
	assert_non_null(text);
	assert_non_null(kept);
	unsigned index = arena.arena_index;
	bool bound = arena.was_bound;
	rill_arena_destroy(&arena);
	assert_string_equal(text, "allocated by libc while bound"); /* still valid */
	free(text);
	assert_int_equal(rill_arena_init(&arena), 0);
	if (bound) /* under a sanitizer malloc is not jemalloc's and binding is skipped */
		assert_int_equal(arena.arena_index, index);
	void *p = rill_arena_alloc(&arena, 100);
	assert_non_null(p);
	rill_arena_free(&arena, p, 100, 0);
	/* Reused and never bound this time: retired again all the same, not destroyed with
	 * what the first binding left in it. */
	rill_arena_destroy(&arena);
	if (bound)
		assert_int_equal(arena_of(kept), index);
	assert_string_equal(kept, "still in use after the arena is reused");
	free(kept);
}

/* The process's address space in KiB (VmSize in /proc/self/status), or 0 unread. */
static uint64_t vm_size_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return 0;
	char line[256];
	unsigned long long kib = 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * Arenas never bound (every arena in a host whose malloc is glibc's) are reset and reused
 * too: destroyed, each left jemalloc's 2 MiB metadata block mapped for good (opt.retain),
 * so a host opening and closing engines grew by that much per shard each time. 64 cycles
 * of arenas that held 1 MiB and small objects must not grow the address space by more
 * than 16 MiB (they grew it by some 128 MiB).
 */
static void test_arena_unbound_is_reused(void **state)
{
	(void)state;
	/* Three at once each cycle: arenas earlier tests retired are taken first, and at
	 * least one of the three is made afresh (before the fix, destroyed at the end). */
	enum { CYCLES = 64, AT_ONCE = 3 };
	uint64_t before = 0;
	for (int i = 0; i < CYCLES; i++) {
		struct rill_arena arenas[AT_ONCE];
		for (int a = 0; a < AT_ONCE; a++) {
			struct rill_arena *arena = &arenas[a];
			assert_int_equal(rill_arena_init(arena), 0);
			void *big = rill_arena_alloc(arena, 1u << 20);
			void *small = rill_arena_alloc(arena, 100);
			assert_non_null(big);
			assert_non_null(small);
			memset(big, 0x5a, 1u << 20);
			rill_arena_free(arena, small, 100, 0);
			rill_arena_free(arena, big, 1u << 20, 0);
		}
		for (int a = AT_ONCE - 1; a >= 0; a--)
			rill_arena_destroy(&arenas[a]);
		if (i == 1)
			before = vm_size_kib(); /* after the first reuse settled */
	}
	uint64_t after = vm_size_kib();
	fprintf(stderr, "arena: VmSize %llu KiB -> %llu KiB over %d cycles\n",
		(unsigned long long)before, (unsigned long long)after, CYCLES - 2);
	if (before == 0 || after == 0)
		skip(); /* no /proc: nothing to measure with */
	assert_true(after < before + (16u << 10));
}

static void test_arena_counts_bytes_and_objects(void **state)
{
	(void)state;
	struct rill_arena arena;
	assert_int_equal(rill_arena_init(&arena), 0);
	struct rill_arena_stats stats;
	void *p[100];
	for (int i = 0; i < 100; i++) {
		p[i] = rill_arena_alloc(&arena, (size_t)i + 1);
		assert_non_null(p[i]);
		memset(p[i], 0xab, (size_t)i + 1);
	}
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_in_use, 100);
	assert_int_equal(stats.bytes_in_use, 100 * 101 / 2);
	assert_int_equal(stats.alloc_failures, 0);
	assert_true(stats.bytes_mapped > 0);
	for (int i = 0; i < 100; i++)
		rill_arena_free(&arena, p[i], (size_t)i + 1, 0);
	rill_arena_free(&arena, NULL, 0, 0);
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_in_use, 0);
	assert_int_equal(stats.bytes_in_use, 0);
	rill_arena_destroy(&arena);
}

/*
 * The arena's bins: a freed small object serves the next request of its 16-byte class,
 * with room for the whole class; bins stay bounded (a full one hands half back); large and
 * aligned objects bypass them; the in-use counters stay exact throughout; trim empties them.
 */
static void arena_bins_check(bool bind)
{
	struct rill_arena arena;
	assert_int_equal(rill_arena_init(&arena), 0);
	if (bind) /* the fast path: malloc and free, into the arena */
		assert_int_equal(rill_arena_bind(&arena), 0);
	struct rill_arena_stats stats;

	void *p = rill_arena_alloc(&arena, 17); /* the class of 17 to 32 bytes */
	assert_non_null(p);
	rill_arena_free(&arena, p, 17, 0);
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_cached, 1);
	assert_int_equal(stats.bytes_cached, 32);
	assert_int_equal(stats.objects_in_use, 0);
	void *q = rill_arena_alloc(&arena, 32);
	assert_ptr_equal(q, p);
	assert_true(sallocx(q, 0) >= 32);
	memset(q, 0xcd, 32);
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_cached, 0);
	assert_int_equal(stats.bytes_in_use, 32);
	void *r = rill_arena_alloc(&arena, 33); /* the next class: not q's bin */
	assert_non_null(r);
	assert_ptr_not_equal(r, q);
	rill_arena_free(&arena, r, 33, 0);
	rill_arena_free(&arena, q, 32, 0);

	/* Three bins' worth of one class: the bin never holds more than its depth. */
	enum { N = 3 * RILL_ARENA_CACHE_DEPTH };
	void *objs[N];
	for (int i = 0; i < N; i++) {
		objs[i] = rill_arena_alloc(&arena, 64);
		assert_non_null(objs[i]);
		memset(objs[i], i, 64);
	}
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_in_use, N);
	assert_int_equal(stats.bytes_in_use, N * 64);
	for (int i = 0; i < N; i++) {
		rill_arena_free(&arena, objs[i], 64, 0);
		rill_arena_stats(&arena, &stats);
		assert_true(arena.bins[(64 - 1) / RILL_ARENA_CACHE_CLASS_BYTES].count <=
			    RILL_ARENA_CACHE_DEPTH);
		assert_int_equal(stats.objects_in_use, N - 1 - i);
		assert_int_equal(stats.bytes_in_use, (N - 1 - i) * 64);
	}
	rill_arena_stats(&arena, &stats);
	assert_true(stats.objects_cached > RILL_ARENA_CACHE_DEPTH / 2);
	assert_true(stats.objects_cached <= RILL_ARENA_CACHE_DEPTH + 2); /* + the 32 and 48 */

	/* Larger than a class, or aligned: straight back to jemalloc. */
	uint64_t cached = stats.objects_cached;
	void *big = rill_arena_alloc(&arena, RILL_ARENA_CACHE_MAX_BYTES + 1);
	void *aligned = rill_arena_alloc_aligned(&arena, 64, 64);
	assert_non_null(big);
	assert_non_null(aligned);
	rill_arena_free(&arena, big, RILL_ARENA_CACHE_MAX_BYTES + 1, 0);
	rill_arena_free(&arena, aligned, 64, 64);
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_cached, cached);
	assert_int_equal(stats.objects_in_use, 0);

	rill_arena_trim(&arena);
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_cached, 0);
	assert_int_equal(stats.bytes_cached, 0);
	/* Destroy hands back what the bins hold (then the thread's cache, then unbinds). */
	void *kept = rill_arena_alloc(&arena, 200);
	assert_non_null(kept);
	rill_arena_free(&arena, kept, 200, 0);
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_cached, 1);
	rill_arena_destroy(&arena);
	assert_null(rill_arena_bound);
}

static void test_arena_bins(void **state)
{
	(void)state;
	arena_bins_check(false);
}

static void test_arena_bins_bound(void **state)
{
	(void)state;
	arena_bins_check(true);
}

static void test_arena_aligned_and_separate(void **state)
{
	(void)state;
	struct rill_arena a, b;
	assert_int_equal(rill_arena_init(&a), 0);
	assert_int_equal(rill_arena_init(&b), 0);
	assert_int_not_equal(a.arena_index, b.arena_index);
	for (size_t align = 16; align <= 4096; align *= 2) {
		void *p = rill_arena_alloc_aligned(&a, 100, align);
		assert_non_null(p);
		assert_true(((uintptr_t)p & (align - 1)) == 0);
		rill_arena_free(&a, p, 100, align);
	}
	/* A 1 MiB block from b is counted in b only. */
	void *big = rill_arena_alloc(&b, 1 << 20);
	assert_non_null(big);
	struct rill_arena_stats sa, sb;
	rill_arena_stats(&a, &sa);
	rill_arena_stats(&b, &sb);
	assert_int_equal(sa.bytes_in_use, 0);
	assert_int_equal(sb.bytes_in_use, 1 << 20);
	/* Destroying an arena releases what is still in it. */
	rill_arena_destroy(&b);
	rill_arena_destroy(&a);
}

static void test_arena_reports_failure(void **state)
{
	(void)state;
	struct rill_arena arena;
	assert_int_equal(rill_arena_init(&arena), 0);
	/* More than the address space: jemalloc must refuse, and the refusal is counted. */
	assert_null(rill_arena_alloc(&arena, (size_t)1 << 62));
	struct rill_arena_stats stats;
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.alloc_failures, 1);
	assert_int_equal(stats.objects_in_use, 0);
	rill_arena_destroy(&arena);
}

static void test_pool_rejects_bad_sizes(void **state)
{
	(void)state;
	struct rill_arena arena;
	struct rill_pool pool;
	assert_int_equal(rill_arena_init(&arena), 0);
	assert_int_equal(rill_pool_init(&pool, &arena, 0, 10), -EINVAL);
	assert_int_equal(rill_pool_init(&pool, &arena, 64, 0), -EINVAL);
	assert_int_equal(rill_pool_init(&pool, &arena, RILL_POOL_OBJECT_BYTES_MAX + 1, 1), -EINVAL);
	assert_int_equal(rill_pool_init(&pool, &arena, 8, RILL_POOL_OBJECTS_MAX + 1), -EINVAL);
	rill_arena_destroy(&arena);
}

static void test_pool_exhausts_and_reuses(void **state)
{
	(void)state;
	struct rill_arena arena;
	struct rill_pool pool;
	assert_int_equal(rill_arena_init(&arena), 0);
	const uint32_t count = 1000;
	assert_int_equal(rill_pool_init(&pool, &arena, 100, count), 0);
	void **got = calloc(count, sizeof(*got));
	for (uint32_t i = 0; i < count; i++) {
		got[i] = rill_pool_get(&pool);
		assert_non_null(got[i]);
		assert_true(((uintptr_t)got[i] & 63) == 0); /* >= 64-byte objects: cache aligned */
		assert_true(rill_pool_owns(&pool, got[i]));
		memset(got[i], (int)i, 100);
		for (uint32_t j = 0; j < i; j += 97)
			assert_ptr_not_equal(got[i], got[j]);
	}
	assert_int_equal(rill_pool_in_use(&pool), count);
	assert_null(rill_pool_get(&pool));
	assert_int_equal(pool.get_failures, 1);
	rill_pool_check(&pool);
	/* LIFO: the last object returned is the next one handed out. */
	rill_pool_put(&pool, got[10]);
	rill_pool_put(&pool, got[20]);
	assert_ptr_equal(rill_pool_get(&pool), got[20]);
	assert_ptr_equal(rill_pool_get(&pool), got[10]);
	for (uint32_t i = 0; i < count; i++)
		rill_pool_put(&pool, got[i]);
	assert_int_equal(rill_pool_in_use(&pool), 0);
	rill_pool_check(&pool);
	assert_false(rill_pool_owns(&pool, (uint8_t *)got[0] + 1));
	assert_false(rill_pool_owns(&pool, &pool));
	rill_pool_destroy(&pool);
	struct rill_arena_stats stats;
	rill_arena_stats(&arena, &stats);
	assert_int_equal(stats.objects_in_use, 0);
	free(got);
	rill_arena_destroy(&arena);
}

static void test_pool_small_objects(void **state)
{
	(void)state;
	struct rill_arena arena;
	struct rill_pool pool;
	assert_int_equal(rill_arena_init(&arena), 0);
	assert_int_equal(rill_pool_init(&pool, &arena, 1, 64), 0);
	assert_true(pool.stride >= sizeof(void *));
	void *a = rill_pool_get(&pool);
	void *b = rill_pool_get(&pool);
	assert_true(((uintptr_t)a & 15) == 0);
	assert_int_equal((uint8_t *)b - (uint8_t *)a, (ptrdiff_t)pool.stride);
	rill_pool_put(&pool, a);
	rill_pool_put(&pool, b);
	rill_pool_check(&pool);
	rill_pool_destroy(&pool);
	rill_arena_destroy(&arena);
}

static void test_hugebuf_small_and_large(void **state)
{
	(void)state;
	struct rill_hugebuf buf;
	assert_int_equal(rill_hugebuf_alloc(&buf, 0, 0), -EINVAL);
	assert_null(buf.base);
	assert_int_equal(rill_hugebuf_alloc(&buf, 100, 0), 0);
	assert_int_equal(buf.bytes, 4096);
	assert_int_equal(buf.kind, RILL_HUGEBUF_PAGES);
	assert_true(((uintptr_t)buf.base & 4095) == 0);
	rill_hugebuf_free(&buf);
	assert_null(buf.base);
	rill_hugebuf_free(&buf); /* an empty buffer is fine */

	for (unsigned flags = 0; flags <= RILL_HUGEBUF_F_NO_HUGETLB; flags++) {
		size_t bytes = 3 * RILL_HUGE_PAGE_BYTES + 5;
		assert_int_equal(rill_hugebuf_alloc(&buf, bytes, flags), 0);
		assert_int_equal(buf.bytes, 4 * (size_t)RILL_HUGE_PAGE_BYTES);
		assert_true(((uintptr_t)buf.base & (RILL_HUGE_PAGE_BYTES - 1)) == 0);
		if (flags & RILL_HUGEBUF_F_NO_HUGETLB)
			assert_int_not_equal(buf.kind, RILL_HUGEBUF_HUGETLB);
		const uint8_t *p = buf.base;
		for (size_t i = 0; i < buf.bytes; i += 4096)
			assert_int_equal(p[i], 0);
		memset(buf.base, 0x5a, buf.bytes);
		fprintf(stderr, "hugebuf: %zu bytes, kind %d\n", buf.bytes, (int)buf.kind);
		rill_hugebuf_free(&buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_memory_lands_in_its_arena),
		cmocka_unit_test(test_arena_bound_is_retired_not_destroyed),
		cmocka_unit_test(test_arena_unbound_is_reused),
		cmocka_unit_test(test_arena_counts_bytes_and_objects),
		cmocka_unit_test(test_arena_bins),
		cmocka_unit_test(test_arena_bins_bound),
		cmocka_unit_test(test_arena_aligned_and_separate),
		cmocka_unit_test(test_arena_reports_failure),
		cmocka_unit_test(test_pool_rejects_bad_sizes),
		cmocka_unit_test(test_pool_exhausts_and_reuses),
		cmocka_unit_test(test_pool_small_objects),
		cmocka_unit_test(test_hugebuf_small_and_large),
	};
	test_seed();
	return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
