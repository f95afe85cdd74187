/*
 * Fixed-size pools (see pool.h): creation, teardown and the invariant check. Cold path.
 */
#include <errno.h>
#include <string.h>

#include "rill/limits.h"
#include "pool.h"

static uint32_t pool_stride(uint32_t object_bytes)
{
	uint32_t align = object_bytes >= RILL_CACHE_LINE_BYTES ? RILL_CACHE_LINE_BYTES : 16u;
	uint32_t bytes = object_bytes < sizeof(struct rill_pool_free)
				 ? sizeof(struct rill_pool_free)
				 : object_bytes;
	return (uint32_t)rill_align_up(bytes, align);
}

int rill_pool_init(struct rill_pool *pool, struct rill_arena *arena, uint32_t object_bytes,
		   uint32_t object_count)
{
	RILL_ASSERT(pool != NULL && arena != NULL);
	memset(pool, 0, sizeof(*pool));
	if (object_bytes == 0 || object_bytes > RILL_POOL_OBJECT_BYTES_MAX || object_count == 0 ||
	    object_count > RILL_POOL_OBJECTS_MAX)
		return -EINVAL;

	uint32_t stride = pool_stride(object_bytes);
	size_t bytes = (size_t)stride * object_count;
	uint8_t *block = rill_arena_alloc_aligned(arena, bytes, RILL_CACHE_LINE_BYTES);
	if (block == NULL)
		return -ENOMEM;

	pool->block = block;
	pool->stride = stride;
	pool->object_bytes = object_bytes;
	pool->object_count = object_count;
	pool->arena = arena;
	/* Thread the free list front to back so the first gets walk memory in order. */
	for (uint32_t i = object_count; i-- > 0;) {
		struct rill_pool_free *obj = (struct rill_pool_free *)(block + (size_t)i * stride);
		obj->next = pool->free_head;
		pool->free_head = obj;
	}
	pool->free_count = object_count;
	return 0;
}

void rill_pool_destroy(struct rill_pool *pool)
{
	RILL_ASSERT(pool != NULL);
	if (pool->block != NULL)
		rill_arena_free(pool->arena, pool->block, (size_t)pool->stride * pool->object_count,
				RILL_CACHE_LINE_BYTES);
	memset(pool, 0, sizeof(*pool));
}

void rill_pool_check(const struct rill_pool *pool)
{
	uint32_t walked = 0;
	for (const struct rill_pool_free *obj = pool->free_head; obj != NULL; obj = obj->next) {
		RILL_ASSERT(rill_pool_owns(pool, obj)); /* P2 */
		walked++;
		RILL_ASSERT(walked <= pool->object_count); /* a cycle means a double put */
	}
	RILL_ASSERT(walked == pool->free_count); /* P1 */
}
