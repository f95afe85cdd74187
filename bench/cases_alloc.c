/*
 * Allocator benchmarks: a shard arena (its own jemalloc arena, the thread bound to it, sized
 * frees) against plain jemalloc (malloc/free, which jemalloc provides once linked) and
 * glibc's malloc (__libc_malloc/__libc_free, which stay reachable beside jemalloc), plus
 * rill's fixed pool. Each batch allocates 64 objects, touches each, then frees all 64:
 * items are allocations, each paired with its free.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc/arena.h"
#include "alloc/pool.h"
#include "bench/cases.h"

#define ALLOC_BATCH 64u

/* glibc's own allocator, still exported when jemalloc has replaced malloc. */
extern void *__libc_malloc(size_t bytes);
extern void __libc_free(void *p);

enum alloc_kind { ALLOC_ARENA, ALLOC_JEMALLOC, ALLOC_GLIBC, ALLOC_POOL };

struct alloc_ctx {
	enum alloc_kind kind;
	size_t bytes;
	struct rill_arena arena;
	struct rill_pool pool;
	void *objs[ALLOC_BATCH];
};

static void *alloc_setup(const struct rill_bench_case *bc)
{
	struct alloc_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->kind = (enum alloc_kind)(bc->arg & 0xff);
	c->bytes = bc->arg >> 8;
	if (rill_arena_init(&c->arena) != 0)
		goto out_free;
	if (c->kind == ALLOC_ARENA &&
	    rill_arena_bind(&c->arena) != 0) /* as a shard does at start */
		goto out_arena;
	if (c->kind == ALLOC_POOL &&
	    rill_pool_init(&c->pool, &c->arena, (uint32_t)c->bytes, ALLOC_BATCH) != 0)
		goto out_arena;
	return c;
out_arena:
	rill_arena_destroy(&c->arena);
out_free:
	free(c);
	return NULL;
}

static void alloc_teardown(void *ctx)
{
	struct alloc_ctx *c = ctx;
	if (c->kind == ALLOC_POOL)
		rill_pool_destroy(&c->pool);
	rill_arena_destroy(&c->arena);
	free(c);
}

static inline __attribute__((always_inline)) void alloc_loop(struct alloc_ctx *c,
							     enum alloc_kind kind, uint64_t items)
{
	for (uint64_t done = 0; done < items; done += ALLOC_BATCH) {
		for (unsigned i = 0; i < ALLOC_BATCH; i++) {
			void *p;
			switch (kind) {
			case ALLOC_ARENA:
				p = rill_arena_alloc(&c->arena, c->bytes);
				break;
			case ALLOC_JEMALLOC:
				p = malloc(c->bytes);
				break;
			case ALLOC_GLIBC:
				p = __libc_malloc(c->bytes);
				break;
			default:
				p = rill_pool_get(&c->pool);
				break;
			}
			if (p == NULL)
				abort();
			*(volatile uint8_t *)p = (uint8_t)i; /* touch it, as a user would */
			c->objs[i] = p;
		}
		rill_bench_escape(c->objs);
		for (unsigned i = 0; i < ALLOC_BATCH; i++) {
			switch (kind) {
			case ALLOC_ARENA:
				rill_arena_free(&c->arena, c->objs[i], c->bytes, 0);
				break;
			case ALLOC_JEMALLOC:
				free(c->objs[i]);
				break;
			case ALLOC_GLIBC:
				__libc_free(c->objs[i]);
				break;
			default:
				rill_pool_put(&c->pool, c->objs[i]);
				break;
			}
		}
	}
}

static void run_arena(void *ctx, uint64_t items)
{
	alloc_loop(ctx, ALLOC_ARENA, items);
}
static void run_jemalloc(void *ctx, uint64_t items)
{
	alloc_loop(ctx, ALLOC_JEMALLOC, items);
}
static void run_glibc(void *ctx, uint64_t items)
{
	alloc_loop(ctx, ALLOC_GLIBC, items);
}
static void run_pool(void *ctx, uint64_t items)
{
	alloc_loop(ctx, ALLOC_POOL, items);
}

#define ALLOC_CASE(name, fn, kind, bytes)                                                          \
	{                                                                                          \
		name, ALLOC_BATCH * 16, 0, alloc_setup, fn, alloc_teardown,                        \
			(uintptr_t)(kind) | ((uintptr_t)(bytes) << 8)                              \
	}

const struct rill_bench_case rill_bench_alloc_cases[] = {
	ALLOC_CASE("alloc/arena/64", run_arena, ALLOC_ARENA, 64),
	ALLOC_CASE("alloc/jemalloc/64", run_jemalloc, ALLOC_JEMALLOC, 64),
	ALLOC_CASE("alloc/glibc/64", run_glibc, ALLOC_GLIBC, 64),
	ALLOC_CASE("alloc/pool/64", run_pool, ALLOC_POOL, 64),
	ALLOC_CASE("alloc/arena/1024", run_arena, ALLOC_ARENA, 1024),
	ALLOC_CASE("alloc/jemalloc/1024", run_jemalloc, ALLOC_JEMALLOC, 1024),
	ALLOC_CASE("alloc/glibc/1024", run_glibc, ALLOC_GLIBC, 1024),
	ALLOC_CASE("alloc/pool/1024", run_pool, ALLOC_POOL, 1024),
};
const size_t rill_bench_alloc_case_count = RILL_ARRAY_COUNT(rill_bench_alloc_cases);
