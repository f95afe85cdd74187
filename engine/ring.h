/*
 * The single-producer single-consumer ring that connects shards: bounded, lock-free,
 * wait-free on both sides. One thread enqueues, one other thread dequeues; nothing else may
 * touch a ring. Hot path: every call below except create/destroy is inline.
 *
 * Index arithmetic. `head` (next slot the producer writes) and `tail` (next slot the
 * consumer reads) are free-running 64-bit counts of slots, never wrapped: at 10^10 slots
 * per second they last 58 years. The slot of index i is i & mask; the ring holds
 * head - tail items (0 .. slot_count); it is empty when head == tail and full when
 * head - tail == slot_count. No slot is wasted and no ABA is possible.
 *
 * Layout (each block on its own RILL_CACHE_GUARD_BYTES-aligned pair of cache lines):
 *
 *   +---------------------+ read-only after create: slots, mask, slot_count, stride, ...
 *   | constants           |
 *   +---------------------+ written by the producer only
 *   | head  tail_cache    |   tail_cache: the producer's last view of tail
 *   | reserve_*           |
 *   +---------------------+ written by the consumer only
 *   | tail                |
 *   | peek_slots          |
 *   +---------------------+
 *   | slots[slot_count]   | slot_count * stride bytes
 *   +---------------------+
 *
 * Two modes, chosen at creation:
 *
 *   fixed slots (default)  rill_ring_enqueue / _burst and rill_ring_dequeue / _burst copy
 *                          whole slots of slot_bytes bytes. Each slot carries a stamp:
 *
 *                            slot i: | stamp (8 bytes) | payload (slot_bytes) |
 *
 *                          the producer writes the payload, then stamps the slot with
 *                          index + 1; the consumer owns index t once slot t & mask shows
 *                          stamp t + 1. The consumer therefore never reads `head`: it reads
 *                          only the slot lines it must read anyway, so a waiting consumer
 *                          pulls one cache line per item from the producer instead of two
 *                          (head's line and the slot's). Measured on the 2-core CI machine,
 *                          a consumer that polled `head` ran at a tenth of the speed in the
 *                          cross-core single-item case (docs/ARCHITECTURE.md, "Rings").
 *                          Stamps from an earlier lap differ by a multiple of slot_count, so
 *                          a stale slot can never look ready.
 *
 *   variable size          (RILL_RING_F_VARIABLE) rill_ring_reserve / rill_ring_commit on
 *                          the producer and rill_ring_peek / rill_ring_release on the
 *                          consumer pass records of any size up to half the ring without
 *                          copying: a record takes whole slots (no stamps: the payload must
 *                          be contiguous), an 8-byte header then the payload; a record that
 *                          would straddle the end of the slot array is preceded by a padding
 *                          record filling the end. The header is the record's stamp: the
 *                          producer stores it last (R3), and the consumer, polling the
 *                          first word of slot tail, owns a record once that word is not 0
 *                          (A3). So that payload bytes left from an earlier lap cannot pass
 *                          for a header, the consumer zeroes the first word of every slot it
 *                          releases, before releasing them (V1). Like fixed mode, the
 *                          consumer thus never reads `head`: a waiting consumer pulls the
 *                          record's lines only, not head's line first.
 *
 * The producer caches tail and reads the consumer's line only when its cached view says
 * the ring is full.
 *
 * Memory order (label: pair):
 *   R0 producer store-release of a slot's stamp, after its payload.   pairs with A0.
 *   A0 consumer load-acquire of a slot's stamp (dequeue, burst).      pairs with R0.
 *   R1 consumer store-release of tail, after reading the slots.       pairs with A1.
 *   A1 producer load-acquire of tail, before overwriting slots.       pairs with R1.
 *   R2 producer store-release of head, after all slots of the call.   pairs with A2.
 *   A2 load-acquire of head (rill_ring_count, rill_ring_check).      pairs with R2.
 *   R3 producer store-release of a record's header, after its payload, and of a
 *      padding header after the record's header (variable mode).     pairs with A3.
 *   A3 consumer load-acquire of the header at tail (variable mode).   pairs with R3.
 * The consumer goes by stamps or headers only; head is published for rill_ring_count.
 *
 * Invariants (rill_ring_check asserts I1 and I3; call it only while both sides are idle):
 *   I1. tail <= head and head - tail <= slot_count.
 *   I2. each side's cached view of the other index only lags, so the free and ready
 *       counts it derives never exceed slot_count (DASSERTs in the count helpers).
 *   I3. slot_count is a power of two, mask == slot_count - 1, slot_bytes % 8 == 0,
 *       stride == slot_bytes (+ 8 in fixed mode).
 *   V1. variable mode: the first word of the slot at tail is 0 until the producer stores
 *       the header of the record there. The consumer zeroes every slot it releases; the
 *       producer, at commit, zeroes the slots it reserved past the record (payload
 *       written past what is committed).
 */
#ifndef RILL_ENGINE_RING_H
#define RILL_ENGINE_RING_H

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc/hugebuf.h"
#include "base/assert.h"
#include "base/atomic.h"
#include "base/compiler.h"
#include "rill/limits.h"

/* The header in front of every variable-size record, at the start of its first slot: one
 * 8-byte word, never 0 (kind is not). */
struct rill_ring_record {
	uint32_t bytes; /* payload bytes; for padding, 0 */
	uint32_t kind;  /* RILL_RING_RECORD_* */
};
_Static_assert(sizeof(struct rill_ring_record) == 8, "a header is one word");
#define RILL_RING_RECORD_DATA    1u
#define RILL_RING_RECORD_PADDING 2u

/* rill_ring_create flags. */
#define RILL_RING_F_VARIABLE 1u /* variable-size records (reserve/commit), no stamps */

#define RILL_RING_STAMP_BYTES 8u

/* rill_ring_enqueue: how many cache lines ahead the producer asks for ownership. */
#define RILL_RING_PREFETCH_LINES 2u

struct rill_ring {
	/* Constants: written at create, read by both sides. */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint8_t *slots;
	uint64_t mask;          /* slot_count - 1 */
	uint64_t slot_count;    /* power of two */
	uint32_t slot_bytes;    /* payload bytes per slot, a multiple of 8 */
	uint32_t stride;        /* bytes from slot to slot: slot_bytes, + the stamp in fixed mode */
	uint32_t stride_shift;  /* log2(stride) when a power of two, else 0 */
	uint32_t flags;         /* RILL_RING_F_* */
	uint32_t prefetch_step; /* slots per cache line, a power of two (64 / stride, at least
				 * 1); 0: no write prefetch (a CPU without it) */
	struct rill_hugebuf mem;

	/* Producer side. */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint64_t head; /* next index to write */
	uint64_t tail_cache;                            /* producer's view of tail */
	uint64_t reserve_head;  /* reserve: index of the record's header slot */
	uint64_t reserve_slots; /* reserve: slots held, padding included; 0 if none */
	uint32_t reserve_bytes; /* reserve: payload bytes asked for */

	/* Consumer side. */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint64_t tail; /* next index to read; R1 */
	uint64_t peek_slots; /* peek: slots to release, padding included; 0 if none */

	_Alignas(RILL_CACHE_GUARD_BYTES) uint8_t end[];
};

_Static_assert(offsetof(struct rill_ring, head) % RILL_CACHE_GUARD_BYTES == 0,
	       "producer fields start on their own cache-line pair");
_Static_assert(offsetof(struct rill_ring, tail) - offsetof(struct rill_ring, head) >=
		       RILL_CACHE_GUARD_BYTES,
	       "producer and consumer fields share no cache-line pair");
_Static_assert(offsetof(struct rill_ring, head) >= RILL_CACHE_GUARD_BYTES,
	       "constants do not share the producer's cache lines");
_Static_assert(offsetof(struct rill_ring, end) - offsetof(struct rill_ring, tail) >=
		       RILL_CACHE_GUARD_BYTES,
	       "the slots do not share the consumer's cache lines");

/*
 * rill_ring_create - a ring of @slot_count slots of @slot_bytes bytes each.
 * @slot_count: a power of two, 2 .. RILL_RING_SLOTS_MAX.
 * @slot_bytes: a multiple of 8, 8 .. RILL_RING_SLOT_BYTES_MAX.
 * @flags: 0 for fixed slots, RILL_RING_F_VARIABLE for variable-size records.
 * The ring and its slots live in one buffer from rill_hugebuf_alloc (huge pages when the
 * ring is 2 MiB or more). Returns 0, -EINVAL or -ENOMEM. Start-up only; any thread.
 */
int rill_ring_create(struct rill_ring **out, uint64_t slot_count, uint32_t slot_bytes,
		     unsigned flags);

/* rill_ring_destroy - free @ring (NULL is fine). No thread may be using it. */
void rill_ring_destroy(struct rill_ring *ring);

/* rill_ring_check - assert invariants I1 and I3. Only while neither side is in a call. */
void rill_ring_check(const struct rill_ring *ring);

static inline void rill_ring_slot_copy(void *dst, const void *src, uint32_t bytes)
{
	/*
	 * Pointer-sized slots are the common case: a constant size becomes one move instead of
	 * a call to memcpy. (More constant cases make GCC 12 warn falsely about array bounds
	 * at call sites whose objects are 8 bytes.)
	 */
	if (rill_likely(bytes == 8)) {
		memcpy(dst, src, 8);
		return;
	}
	memcpy(dst, src, bytes);
}

/* The first byte of the slot of @index: its stamp in fixed mode, its payload otherwise. */
static inline uint8_t *rill_ring_slot(const struct rill_ring *ring, uint64_t index)
{
	uint64_t slot = index & ring->mask;
	if (rill_likely(ring->stride_shift != 0))
		return ring->slots + (slot << ring->stride_shift);
	return ring->slots + slot * ring->stride;
}

static inline uint64_t *rill_ring_stamp(uint8_t *slot)
{
	return (uint64_t *)(void *)slot; /* slots are 8-byte aligned: stride % 8 == 0 */
}

/*
 * rill_ring_free_count_producer - free slots as the producer sees them, refreshing its view
 * of tail only when the cached one shows fewer than @want free. Producer thread only.
 */
static inline uint64_t rill_ring_free_count_producer(struct rill_ring *ring, uint64_t head,
						     uint64_t want)
{
	uint64_t free_count = ring->slot_count - (head - ring->tail_cache);
	if (free_count < want) {
		/* A1: pairs with R1; the consumer is done reading the slots it released. */
		ring->tail_cache = rill_atomic_load_acquire_u64(&ring->tail);
		free_count = ring->slot_count - (head - ring->tail_cache);
	}
	RILL_DASSERT(free_count <= ring->slot_count);
	return free_count;
}

/*
 * Ask for the cache lines of slots @index .. @index + @count - 1 in a writable state before
 * writing them. The consumer read those lines on its last lap (or is reading the line
 * before), so each first store to one would otherwise wait for its ownership in turn; the
 * prefetches overlap those waits. Measured on the 2-vCPU development VM: bursts of 32
 * 8-byte items went from 235-240 M to 310-350 M items/s cross-core. Producer only.
 */
static inline void rill_ring_prefetch_slots(const struct rill_ring *ring, uint64_t index,
					    uint64_t count)
{
	const uint32_t step = ring->prefetch_step;
	if (step == 0)
		return;
	for (uint64_t i = 0; i < count; i += step)
		rill_cpu_prefetch_write(rill_ring_slot(ring, index + i));
	rill_cpu_prefetch_write(rill_ring_slot(ring, index + count - 1)); /* the last line */
}

/* Fill the fixed slot of @index with @obj and stamp it ready (R0: pairs with A0). */
static inline void rill_ring_slot_put(struct rill_ring *ring, uint64_t index, const void *obj)
{
	uint8_t *slot = rill_ring_slot(ring, index);
	rill_ring_slot_copy(slot + RILL_RING_STAMP_BYTES, obj, ring->slot_bytes);
	rill_atomic_store_release_u64(rill_ring_stamp(slot), index + 1);
}

/* Copy out the fixed slot of @index if it is stamped ready (A0: pairs with R0). */
static inline bool rill_ring_slot_take(const struct rill_ring *ring, uint64_t index, void *obj)
{
	uint8_t *slot = rill_ring_slot(ring, index);
	if (rill_atomic_load_acquire_u64(rill_ring_stamp(slot)) != index + 1)
		return false;
	rill_ring_slot_copy(obj, slot + RILL_RING_STAMP_BYTES, ring->slot_bytes);
	return true;
}

/*
 * rill_ring_enqueue - copy one slot from @obj into a fixed-slot ring.
 * Returns 0, or -ENOBUFS when the ring is full (nothing written). Producer thread only.
 */
static inline int rill_ring_enqueue(struct rill_ring *ring, const void *obj)
{
	RILL_DASSERT(!(ring->flags & RILL_RING_F_VARIABLE));
	uint64_t head = ring->head; /* only this thread writes head */
	if (rill_unlikely(rill_ring_free_count_producer(ring, head, 1) == 0))
		return -ENOBUFS;
	/* At a line's first slot, the line RILL_RING_PREFETCH_LINES ahead, if it is free: its
	 * ownership comes while this line fills (single items cross-core: 114-121 M/s without,
	 * 133-151 M/s with, on the development VM; one line ahead was no better). */
	const uint64_t ahead = RILL_RING_PREFETCH_LINES * ring->prefetch_step;
	if (ring->prefetch_step != 0 && (head & (ring->prefetch_step - 1)) == 0 &&
	    head + ahead - ring->tail_cache < ring->slot_count)
		rill_cpu_prefetch_write(rill_ring_slot(ring, head + ahead));
	rill_ring_slot_put(ring, head, obj);
	/* R2: pairs with A2 (rill_ring_count). */
	rill_atomic_store_release_u64(&ring->head, head + 1);
	return 0;
}

/*
 * rill_ring_dequeue - copy the oldest slot of a fixed-slot ring into @obj.
 * Returns 0, or -EAGAIN when the ring is empty. Consumer thread only.
 */
static inline int rill_ring_dequeue(struct rill_ring *ring, void *obj)
{
	RILL_DASSERT(!(ring->flags & RILL_RING_F_VARIABLE));
	uint64_t tail = ring->tail; /* only this thread writes tail */
	if (!rill_ring_slot_take(ring, tail, obj))
		return -EAGAIN;
	/* R1: pairs with A1; the slot is read and may be overwritten. */
	rill_atomic_store_release_u64(&ring->tail, tail + 1);
	return 0;
}

/*
 * rill_ring_enqueue_burst - copy up to @count slots (1 .. RILL_RING_BURST_MAX) from the
 * array @objs into a fixed-slot ring, as many as fit. Returns the number enqueued, 0 when
 * full. Producer thread only.
 */
static inline unsigned rill_ring_enqueue_burst(struct rill_ring *ring, const void *objs,
					       unsigned count)
{
	RILL_DASSERT(count > 0 && count <= RILL_RING_BURST_MAX);
	RILL_DASSERT(!(ring->flags & RILL_RING_F_VARIABLE));
	uint64_t head = ring->head; /* only this thread writes head */
	uint64_t free_count = rill_ring_free_count_producer(ring, head, count);
	unsigned n = free_count < count ? (unsigned)free_count : count;
	if (rill_unlikely(n == 0))
		return 0;
	const uint32_t slot_bytes = ring->slot_bytes, stride = ring->stride;
	const uint8_t *src = objs;
	rill_ring_prefetch_slots(ring, head, n);
	uint8_t *slot = rill_ring_slot(ring, head);
	uint64_t to_end = ring->slot_count - (head & ring->mask);
	for (unsigned i = 0; i < n; i++, slot += stride, src += slot_bytes) {
		if (rill_unlikely(i == to_end))
			slot = ring->slots;
		if (slot_bytes == 8)
			memcpy(slot + RILL_RING_STAMP_BYTES, src, 8);
		else
			memcpy(slot + RILL_RING_STAMP_BYTES, src, slot_bytes);
		/* R0: pairs with A0; this slot's payload is written. */
		rill_atomic_store_release_u64(rill_ring_stamp(slot), head + i + 1);
	}
	/* R2: pairs with A2; every slot of the burst is written. */
	rill_atomic_store_release_u64(&ring->head, head + n);
	return n;
}

/* Whether the fixed slot of @index is stamped ready (A0: pairs with R0). */
static inline bool rill_ring_slot_ready(const struct rill_ring *ring, uint64_t index)
{
	return rill_atomic_load_acquire_u64(rill_ring_stamp(rill_ring_slot(ring, index))) ==
	       index + 1;
}

/*
 * rill_ring_dequeue_burst - copy up to @count slots (1 .. RILL_RING_BURST_MAX) of a
 * fixed-slot ring into the array @objs. Returns the number dequeued, 0 when empty.
 * Consumer thread only.
 *
 * Stamps are written in index order, each with release, so acquiring the stamp of slot
 * tail + k - 1 makes every earlier slot visible too: the burst probes its last slot first
 * and checks slots one by one only when the ring holds fewer than @count.
 */
static inline unsigned rill_ring_dequeue_burst(struct rill_ring *ring, void *objs, unsigned count)
{
	RILL_DASSERT(count > 0 && count <= RILL_RING_BURST_MAX);
	RILL_DASSERT(!(ring->flags & RILL_RING_F_VARIABLE));
	uint64_t tail = ring->tail; /* only this thread writes tail */
	unsigned n = count;
	if (!rill_ring_slot_ready(ring, tail + count - 1)) {
		n = 0;
		while (n < count - 1 && rill_ring_slot_ready(ring, tail + n))
			n++;
		if (n == 0)
			return 0;
	}
	const uint32_t slot_bytes = ring->slot_bytes, stride = ring->stride;
	uint8_t *dst = objs;
	const uint8_t *slot = rill_ring_slot(ring, tail);
	uint64_t to_end = ring->slot_count - (tail & ring->mask);
	for (unsigned i = 0; i < n; i++, slot += stride, dst += slot_bytes) {
		if (rill_unlikely(i == to_end))
			slot = ring->slots;
		if (slot_bytes == 8)
			memcpy(dst, slot + RILL_RING_STAMP_BYTES, 8);
		else
			memcpy(dst, slot + RILL_RING_STAMP_BYTES, slot_bytes);
	}
	/* R1: pairs with A1; the n slots are read and may be overwritten. */
	rill_atomic_store_release_u64(&ring->tail, tail + n);
	return n;
}

/* R3: store the header word of the record at @index (variable mode). */
static inline void rill_ring_header_store(struct rill_ring *ring, uint64_t index, uint32_t bytes,
					  uint32_t kind)
{
	struct rill_ring_record record = {.bytes = bytes, .kind = kind};
	uint64_t word;
	memcpy(&word, &record, sizeof(word));
	rill_atomic_store_release_u64(rill_ring_stamp(rill_ring_slot(ring, index)), word);
}

/* A3: the header word of the record at @index, 0 while none is there (variable mode). */
static inline struct rill_ring_record rill_ring_header_load(const struct rill_ring *ring,
							    uint64_t index)
{
	uint64_t word = rill_atomic_load_acquire_u64(rill_ring_stamp(rill_ring_slot(ring, index)));
	struct rill_ring_record record;
	memcpy(&record, &word, sizeof(record));
	return record;
}

/* Slots a variable-size record of @bytes payload bytes takes, header included. */
static inline uint64_t rill_ring_record_slots(const struct rill_ring *ring, uint64_t bytes)
{
	return (sizeof(struct rill_ring_record) + bytes + ring->slot_bytes - 1) / ring->slot_bytes;
}

/* rill_ring_reserve_bytes_max - the largest payload rill_ring_reserve can ever take. */
static inline uint32_t rill_ring_reserve_bytes_max(const struct rill_ring *ring)
{
	uint64_t bytes =
		(ring->slot_count / 2) * ring->slot_bytes - sizeof(struct rill_ring_record);
	return bytes < RILL_RING_RESERVE_BYTES_MAX ? (uint32_t)bytes : RILL_RING_RESERVE_BYTES_MAX;
}

/*
 * rill_ring_reserve - room for a record of @bytes payload bytes, contiguous and 8-byte
 * aligned, to be filled in place and published with rill_ring_commit.
 * @bytes: 0 .. rill_ring_reserve_bytes_max(ring). Capping a reservation at half the ring
 *   guarantees that an empty ring can always take it, padding included.
 * Returns the payload pointer, or NULL when the ring has no room now (try again later).
 * At most one reservation is open at a time, and each is committed (there is no way to
 * give one up). Producer thread only.
 */
static inline void *rill_ring_reserve(struct rill_ring *ring, uint32_t bytes)
{
	RILL_ASSERT(bytes <= rill_ring_reserve_bytes_max(ring));
	RILL_DASSERT(ring->flags & RILL_RING_F_VARIABLE);
	RILL_DASSERT(ring->reserve_slots == 0);
	uint64_t head = ring->head; /* only this thread writes head */
	uint64_t need = rill_ring_record_slots(ring, bytes);
	uint64_t to_end = ring->slot_count - (head & ring->mask);
	uint64_t pad = need > to_end ? to_end : 0;
	if (rill_ring_free_count_producer(ring, head, pad + need) < pad + need)
		return NULL;
	ring->reserve_head = head + pad; /* the padding's header goes at commit (R3) */
	ring->reserve_slots = pad + need;
	ring->reserve_bytes = bytes;
	return rill_ring_slot(ring, ring->reserve_head) + sizeof(struct rill_ring_record);
}

/*
 * rill_ring_commit - publish the open reservation with @bytes payload bytes (at most what
 * was reserved: a producer may reserve the maximum and commit what it wrote).
 * Producer thread only.
 */
static inline void rill_ring_commit(struct rill_ring *ring, uint32_t bytes)
{
	RILL_ASSERT(ring->reserve_slots > 0 && bytes <= ring->reserve_bytes);
	uint64_t head = ring->head; /* only this thread writes head */
	uint64_t used = (ring->reserve_head - head) + rill_ring_record_slots(ring, bytes);
	RILL_DASSERT(used <= ring->reserve_slots);
	/* V1: what the caller wrote past the record must not pass for the next record's
	 * header. Rare: callers mostly commit what they reserved. */
	for (uint64_t i = head + used; i < head + ring->reserve_slots; i++)
		rill_atomic_store_relaxed_u64(rill_ring_stamp(rill_ring_slot(ring, i)), 0);
	ring->reserve_slots = 0;
	/* R3: pairs with A3; the header publishes the payload written before it, then the
	 * padding's header publishes the record at slot 0 (the consumer meets it first). */
	rill_ring_header_store(ring, ring->reserve_head, bytes, RILL_RING_RECORD_DATA);
	if (ring->reserve_head != head)
		rill_ring_header_store(ring, head, 0, RILL_RING_RECORD_PADDING);
	/* R2: pairs with A2 (rill_ring_count only). */
	rill_atomic_store_release_u64(&ring->head, head + used);
	/* The next record's first lines, asked for writable now: an open-loop producer then
	 * finds them owned when its next event comes, instead of waiting for each in turn
	 * while the event's latency runs (rill_ring_prefetch_slots). */
	const uint32_t step = ring->prefetch_step;
	const uint64_t next = head + used, span = (uint64_t)RILL_RING_PREFETCH_LINES * step;
	/* Not when those lines may still be the consumer's (a nearly full ring): taking them
	 * would only slow its reads. tail_cache is old, so this errs on the side of not. */
	if (step != 0 && next + span - ring->tail_cache <= ring->slot_count)
		for (uint32_t i = 0; i < RILL_RING_PREFETCH_LINES; i++)
			rill_cpu_prefetch_write(rill_ring_slot(ring, next + i * step));
}

/*
 * rill_ring_peek - the oldest variable-size record, in place.
 * @bytes: set to its payload size.
 * Returns the payload pointer, valid until rill_ring_release, or NULL when the ring is
 * empty. Consumer thread only.
 */
static inline const void *rill_ring_peek(struct rill_ring *ring, uint32_t *bytes)
{
	RILL_DASSERT(ring->flags & RILL_RING_F_VARIABLE);
	RILL_DASSERT(ring->peek_slots == 0);
	uint64_t tail = ring->tail; /* only this thread writes tail */
	/* A3: pairs with R3; 0 (V1) until the producer has published a record here. */
	struct rill_ring_record record = rill_ring_header_load(ring, tail);
	if (record.kind == 0)
		return NULL;
	uint64_t skip = 0;
	if (record.kind == RILL_RING_RECORD_PADDING) {
		/* Its header was stored after the record's (R3): the record is there. */
		skip = ring->slot_count - (tail & ring->mask);
		record = rill_ring_header_load(ring, tail + skip);
	}
	RILL_ASSERT(record.kind == RILL_RING_RECORD_DATA);
	RILL_ASSERT(record.bytes <= rill_ring_reserve_bytes_max(ring));
	uint64_t slots = rill_ring_record_slots(ring, record.bytes);
	ring->peek_slots = skip + slots;
	*bytes = record.bytes;
	return rill_ring_slot(ring, tail + skip) + sizeof(struct rill_ring_record);
}

/* rill_ring_release - free the record returned by the last rill_ring_peek. Consumer only. */
static inline void rill_ring_release(struct rill_ring *ring)
{
	RILL_ASSERT(ring->peek_slots > 0);
	uint64_t tail = ring->tail; /* only this thread writes tail */
	uint64_t slots = ring->peek_slots;
	ring->peek_slots = 0;
	/* V1: no word left here may pass for a header next lap (lines this thread just read). */
	for (uint64_t i = 0; i < slots; i++)
		rill_atomic_store_relaxed_u64(rill_ring_stamp(rill_ring_slot(ring, tail + i)), 0);
	/* R1: pairs with A1; the record is read, its slots cleared, and they may be reused. */
	rill_atomic_store_release_u64(&ring->tail, tail + slots);
}

/*
 * rill_ring_unpeek - leave the record returned by the last rill_ring_peek in the ring, to
 * be peeked again later (a consumer that cannot take it yet). Consumer only.
 */
static inline void rill_ring_unpeek(struct rill_ring *ring)
{
	RILL_ASSERT(ring->peek_slots > 0);
	ring->peek_slots = 0;
}

/*
 * rill_ring_count - slots in use: exact when both sides are idle, a recent estimate in
 * 0 .. slot_count otherwise (for statistics and backpressure decisions). Any thread.
 */
static inline uint64_t rill_ring_count(const struct rill_ring *ring)
{
	uint64_t tail = rill_atomic_load_acquire_u64(&ring->tail); /* pairs with R1 */
	uint64_t head = rill_atomic_load_acquire_u64(&ring->head); /* A2: pairs with R2 */
	/*
	 * The consumer goes by stamps or headers, so it may release tail past a head the
	 * producer has not stored yet: a moment where tail > head. Clamp rather than wrap.
	 */
	if ((int64_t)(head - tail) < 0)
		return 0;
	return head - tail < ring->slot_count ? head - tail : ring->slot_count;
}

/*
 * Waiting on a full or empty ring. A shard in busy-poll mode spins (rill_wait_spin), a
 * shard sharing its core backs off from pause to yield (rill_wait_backoff). The counter
 * lives with the caller so that a success resets it (rill_wait_reset).
 */
struct rill_wait {
	uint32_t rounds;
};

#define RILL_WAIT_PAUSE_ROUNDS 64u /* pause this many times before yielding the CPU */

static inline void rill_wait_reset(struct rill_wait *wait)
{
	wait->rounds = 0;
}

/* rill_wait_spin - one busy-wait round: a pause hint only; for cores of their own. */
static inline void rill_wait_spin(struct rill_wait *wait)
{
	wait->rounds++;
	rill_cpu_pause();
}

/* rill_wait_backoff - pause for the first rounds, then give the CPU away each round. */
static inline void rill_wait_backoff(struct rill_wait *wait)
{
	if (wait->rounds < RILL_WAIT_PAUSE_ROUNDS) {
		wait->rounds++;
		rill_cpu_pause();
		return;
	}
	sched_yield();
}

#endif /* RILL_ENGINE_RING_H */
