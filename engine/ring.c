/*
 * SPSC ring creation, teardown and the invariant check (see ring.h for the design).
 * Cold path: start-up, shutdown and tests.
 */
#include "ring.h"

int rill_ring_create(struct rill_ring **out, uint64_t slot_count, uint32_t slot_bytes,
		     unsigned flags)
{
	RILL_ASSERT(out != NULL);
	*out = NULL;
	if (slot_count < 2 || slot_count > RILL_RING_SLOTS_MAX || !rill_is_power_of_two(slot_count))
		return -EINVAL;
	if (slot_bytes < 8 || slot_bytes > RILL_RING_SLOT_BYTES_MAX || slot_bytes % 8 != 0)
		return -EINVAL;
	if (flags & ~RILL_RING_F_VARIABLE)
		return -EINVAL;

	uint32_t stride = slot_bytes + (flags & RILL_RING_F_VARIABLE ? 0 : RILL_RING_STAMP_BYTES);
	struct rill_hugebuf mem;
	size_t bytes = sizeof(struct rill_ring) + slot_count * stride;
	int rc = rill_hugebuf_alloc(&mem, bytes, 0);
	if (rc != 0)
		return rc;

	/*
	 * The buffer is zero-filled: every index and cache starts at 0, and every stamp at 0,
	 * which no index ever expects (the slot of index i is ready at stamp i + 1).
	 */
	struct rill_ring *ring = mem.base;
	ring->slots = ring->end;
	ring->mask = slot_count - 1;
	ring->slot_count = slot_count;
	ring->slot_bytes = slot_bytes;
	ring->stride = stride;
	ring->stride_shift = rill_is_power_of_two(stride) ? (uint32_t)__builtin_ctz(stride) : 0;
	ring->flags = flags;
	/* 64 / stride for stride = 8, 16, .. 64 is 8, 4, 2, 2, 1, ..: always a power of two. */
	bool prefetch = rill_cpu_has_prefetch_write();
	ring->prefetch_step = !prefetch                         ? 0
			      : stride >= RILL_CACHE_LINE_BYTES ? 1
								: RILL_CACHE_LINE_BYTES / stride;
	ring->mem = mem;
	rill_ring_check(ring);
	*out = ring;
	return 0;
}

void rill_ring_destroy(struct rill_ring *ring)
{
	if (ring == NULL)
		return;
	struct rill_hugebuf mem = ring->mem; /* the ring lives inside its own buffer */
	rill_hugebuf_free(&mem);
}

void rill_ring_check(const struct rill_ring *ring)
{
	RILL_ASSERT(rill_is_power_of_two(ring->slot_count)); /* I3 */
	RILL_ASSERT(ring->mask == ring->slot_count - 1);
	RILL_ASSERT(ring->slot_bytes % 8 == 0);
	RILL_ASSERT(ring->prefetch_step == 0 || rill_is_power_of_two(ring->prefetch_step));
	RILL_ASSERT(ring->stride ==
		    ring->slot_bytes +
			    (ring->flags & RILL_RING_F_VARIABLE ? 0 : RILL_RING_STAMP_BYTES));
	uint64_t tail = rill_atomic_load_acquire_u64(&ring->tail); /* pairs with R1 */
	uint64_t head = rill_atomic_load_acquire_u64(&ring->head); /* A2: pairs with R2 */
	RILL_ASSERT(tail <= head);                                 /* I1 */
	RILL_ASSERT(head - tail <= ring->slot_count);
}
