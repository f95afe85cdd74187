/*
 * Fixed-size object pools: after start-up the engine allocates from these, never from
 * malloc (STYLE rule 13). A pool takes one block from its shard's arena at creation and
 * hands out equal-sized objects from a LIFO free list threaded through the free objects
 * themselves (the most recently freed object is the warmest in cache). An empty pool
 * returns NULL, which callers turn into backpressure (-ENOBUFS), never into a malloc.
 *
 *   block:  [obj 0][obj 1][obj 2] ... [obj count-1]     each `stride` bytes
 *   free:   head -> obj 2 -> obj 0 -> NULL               (next pointer in the first 8 bytes)
 *
 * Invariants (checked by rill_pool_check in debug builds):
 *   P1. free_count + in_use count == object_count.
 *   P2. every free-list entry lies in the block on a stride boundary.
 *
 * Threading: owner thread only, like its arena; objects are returned to the owner to be
 * freed. Hot path: get and put are a few instructions, inline.
 */
#ifndef RILL_ALLOC_POOL_H
#define RILL_ALLOC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct rill_pool_free {
	struct rill_pool_free *next;
};

struct rill_pool {
	struct rill_pool_free *free_head; /* LIFO of free objects */
	uint8_t *block;                   /* object_count * stride bytes */
	uint32_t stride;                  /* bytes between objects, >= object_bytes */
	uint32_t object_bytes;            /* bytes asked for per object */
	uint32_t object_count;
	uint32_t free_count;
	uint64_t get_failures; /* gets on an empty pool; owner writes, anyone reads (relaxed) */
	struct rill_arena *arena;
};

/*
 * rill_pool_init - carve @object_count objects of @object_bytes from @arena.
 * Objects are 16-byte aligned, 64-byte aligned when @object_bytes >= 64.
 * Returns 0, -EINVAL (zero or above RILL_POOL_OBJECTS_MAX / RILL_POOL_OBJECT_BYTES_MAX)
 * or -ENOMEM. Owner thread; start-up only.
 */
int rill_pool_init(struct rill_pool *pool, struct rill_arena *arena, uint32_t object_bytes,
		   uint32_t object_count);

/* rill_pool_destroy - give the block back to the arena. Owner thread. */
void rill_pool_destroy(struct rill_pool *pool);

/* rill_pool_check - assert invariants P1 and P2 (walks the free list: debug and tests). */
void rill_pool_check(const struct rill_pool *pool);

/* rill_pool_owns - whether @p is an object of @pool (its start, not just inside it). */
static inline bool rill_pool_owns(const struct rill_pool *pool, const void *p)
{
	uintptr_t offset = (uintptr_t)p - (uintptr_t)pool->block;
	return (uintptr_t)p >= (uintptr_t)pool->block &&
	       offset < (uintptr_t)pool->stride * pool->object_count && offset % pool->stride == 0;
}

/* rill_pool_get - a free object (contents undefined) or NULL when the pool is empty. */
static inline void *rill_pool_get(struct rill_pool *pool)
{
	struct rill_pool_free *obj = pool->free_head;
	if (rill_unlikely(obj == NULL)) {
		rill_atomic_store_relaxed_u64(&pool->get_failures, pool->get_failures + 1);
		return NULL;
	}
	RILL_DASSERT(rill_pool_owns(pool, obj));
	pool->free_head = obj->next;
	pool->free_count--;
	return obj;
}

/* rill_pool_put - return @p, which must have come from rill_pool_get on this pool. */
static inline void rill_pool_put(struct rill_pool *pool, void *p)
{
	RILL_DASSERT(rill_pool_owns(pool, p));
	RILL_DASSERT(pool->free_count < pool->object_count);
	struct rill_pool_free *obj = p;
	obj->next = pool->free_head;
	pool->free_head = obj;
	pool->free_count++;
}

/* rill_pool_in_use - objects handed out and not yet returned. */
static inline uint32_t rill_pool_in_use(const struct rill_pool *pool)
{
	return pool->object_count - pool->free_count;
}

#endif /* RILL_ALLOC_POOL_H */
