/*
 * Per-shard memory over jemalloc. Each shard creates one arena at start: a jemalloc arena
 * of its own (arenas.create), to which the shard's thread is bound (thread.arena), so the
 * shard's allocations never contend with another thread's and never go through the C
 * library's malloc. The arena keeps counters of the bytes and objects in use, which any
 * thread may read.
 *
 * Why the thread is bound instead of passing MALLOCX_ARENA and an explicit tcache with
 * every call: jemalloc 5.3 takes its fast path only for calls without flags. Measured on
 * the CI machine (64-byte objects, batches of 64), explicit arena + explicit tcache ran at
 * 27 M ops/s against 69 M for plain malloc/free; a bound thread with the automatic tcache
 * (which is per thread, so per shard) ran at 88 M. Frees on the bound thread are plain
 * free(): Debian's jemalloc 5.3 ran sized frees (sdallocx) slower, 0.76-0.91 times plain
 * malloc/free with 1 KiB objects against 0.94-0.99 with free(). Calls from a thread not
 * bound to the arena still land in it, through MALLOCX_ARENA without a thread cache (the
 * slow path).
 *
 * Binding has a consequence: everything the thread mallocs afterwards, the C library's own
 * allocations included, lives in the arena too. Such an arena can never be reset or
 * destroyed safely, so rill_arena_destroy retires it untouched for rill_arena_init to reuse.
 *
 * Threading: an arena belongs to one thread (its shard). rill_arena_alloc and
 * rill_arena_free are for that thread only, which is why they need no locks; memory
 * allocated by a shard is handed back to it over a ring to be freed (STYLE rule 15).
 * rill_arena_stats may be called from any thread.
 *
 * Hot path: alloc and free are inline. Objects of up to RILL_ARENA_CACHE_MAX_BYTES go
 * through a small cache of the arena's own in front of jemalloc: one LIFO bin per 16-byte
 * size class, RILL_ARENA_CACHE_DEPTH deep (a shard's burst). A hit costs a pop or a push
 * and two counter updates, with no call; a miss allocates the class's size from jemalloc,
 * and a free into a full bin hands half of it back. jemalloc's own thread cache is shallower
 * for larger classes (a burst of 64 objects of 1 KiB overflows it into the arena's locked
 * bins) and sits behind a call. Freed memory in the bins stays allocated in jemalloc's eyes:
 * at most RILL_ARENA_CACHE_DEPTH objects per class (about 2 MiB if every class were full),
 * returned by rill_arena_trim and rill_arena_destroy. After start-up the engine uses fixed
 * pools (pool.h) instead.
 */
#ifndef RILL_ALLOC_ARENA_H
#define RILL_ALLOC_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jemalloc/jemalloc.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/compiler.h"

#define RILL_ARENA_CACHE_CLASS_BYTES 16u /* bins hold sizes in steps of this */
#define RILL_ARENA_CACHE_CLASSES     64u /* so objects up to 1 KiB are cached */
#define RILL_ARENA_CACHE_MAX_BYTES   (RILL_ARENA_CACHE_CLASSES * RILL_ARENA_CACHE_CLASS_BYTES)
#define RILL_ARENA_CACHE_DEPTH       64u /* objects per bin: a shard's burst from one ring */

_Static_assert((RILL_ARENA_CACHE_CLASS_BYTES & (RILL_ARENA_CACHE_CLASS_BYTES - 1)) == 0 &&
		       RILL_ARENA_CACHE_CLASS_BYTES >= 16,
	       "a class's size keeps the 16-byte alignment rill_arena_alloc promises");

/* One size class's freed objects, last in first out. */
struct rill_arena_bin {
	uint64_t count; /* written by the owner (relaxed store), read by rill_arena_stats */
	void *slots[RILL_ARENA_CACHE_DEPTH];
};

struct rill_arena {
	int flags_alloc;         /* MALLOCX_ARENA | MALLOCX_TCACHE_NONE: calls off the fast path */
	unsigned arena_index;    /* jemalloc arena */
	bool malloc_is_jemalloc; /* malloc() here is jemalloc's (not a sanitizer's or a preload's) */
	bool was_bound;          /* a thread was bound to it once: retire, never reset */
	unsigned thread_arena_before; /* the bound thread's arena before rill_arena_bind */
	/* Counters: written by the owner only (plain load + relaxed store), read by anyone. */
	uint64_t bytes_in_use;   /* bytes asked for and not yet freed */
	uint64_t objects_in_use; /* live allocations */
	uint64_t alloc_failures; /* mallocx returned NULL */
	struct rill_arena_bin bins[RILL_ARENA_CACHE_CLASSES]; /* bin c: sizes up to (c+1)*16 */
};

struct rill_arena_stats {
	uint64_t bytes_in_use;
	uint64_t objects_in_use;
	uint64_t alloc_failures;
	uint64_t bytes_mapped;   /* jemalloc's own figure for the arena's mapped pages */
	uint64_t bytes_cached;   /* freed objects kept in the arena's bins, at their class size */
	uint64_t objects_cached; /* how many */
};

/* The arena the calling thread is bound to (rill_arena_bind), or NULL. */
extern __thread struct rill_arena *rill_arena_bound;

/*
 * rill_arena_init - create a jemalloc arena for one shard.
 * Returns 0, -ENOMEM, or -EIO when jemalloc refuses the control calls (reported with
 * jemalloc's error number on stderr). Start-up only; any thread.
 */
int rill_arena_init(struct rill_arena *arena);

/*
 * rill_arena_bind - bind the calling thread to @arena: its allocations then take
 * jemalloc's fast path, and so does whatever else the thread allocates with malloc.
 * A shard's thread calls it once at start. Returns 0 or -EIO. Does not block.
 */
int rill_arena_bind(struct rill_arena *arena);

/*
 * rill_arena_destroy - release the arena. Owner thread only, after it stopped using the
 * arena's memory. A thread bound to it gets its cache flushed and its former arena back.
 * Either way it is retired for the next rill_arena_init to reuse (a process that opens and
 * closes engines does not pile arenas up). An arena never bound is reset first, with every
 * allocation still in it; one that was bound is kept as it is (its memory may hold the
 * thread's other allocations), and memory still allocated from it stays valid.
 */
void rill_arena_destroy(struct rill_arena *arena);

/*
 * rill_arena_trim - hand every object in the arena's bins back to jemalloc. Owner thread
 * only; for a shard going idle or a test. Does not block.
 */
void rill_arena_trim(struct rill_arena *arena);

/*
 * rill_arena_stats - a snapshot of @arena's counters. Any thread; takes jemalloc's
 * statistics lock briefly to refresh bytes_mapped.
 */
void rill_arena_stats(const struct rill_arena *arena, struct rill_arena_stats *stats);

static inline void rill_arena_count(uint64_t *counter, int64_t delta)
{
	/* Relaxed is enough: the owner is the only writer; readers want a recent value only. */
	rill_atomic_store_relaxed_u64(counter, *counter + (uint64_t)delta);
}

/* Count @p, just allocated for @bytes, or the failure when it is NULL. Returns @p. */
static inline void *rill_arena_took(struct rill_arena *arena, void *p, size_t bytes)
{
	if (rill_unlikely(p == NULL)) {
		rill_arena_count(&arena->alloc_failures, 1);
		return NULL;
	}
	rill_arena_count(&arena->bytes_in_use, (int64_t)bytes);
	rill_arena_count(&arena->objects_in_use, 1);
	return p;
}

/* The bin for @bytes (1 to RILL_ARENA_CACHE_MAX_BYTES). */
static inline struct rill_arena_bin *rill_arena_bin_of(struct rill_arena *arena, size_t bytes)
{
	return &arena->bins[(bytes - 1) / RILL_ARENA_CACHE_CLASS_BYTES];
}

/* Out of line: the bin was empty (allocate from jemalloc), or the object is too large. */
void *rill_arena_alloc_miss(struct rill_arena *arena, size_t bytes);
/* Out of line: the bin is full (hand half back) or the object is too large. */
void rill_arena_free_miss(struct rill_arena *arena, void *p, size_t bytes);

/*
 * rill_arena_alloc - @bytes (1 or more) from the shard's arena, aligned to at least 16.
 * Returns the memory or NULL when out of memory (counted). Owner thread only.
 */
static inline void *rill_arena_alloc(struct rill_arena *arena, size_t bytes)
{
	RILL_ASSERT(bytes > 0); /* jemalloc leaves size 0 undefined (mallocx, sdallocx) */
	/* bytes - 1: 0, which wraps, goes to the miss path (jemalloc), never to a bin. */
	if (rill_likely(bytes - 1 < RILL_ARENA_CACHE_MAX_BYTES)) {
		struct rill_arena_bin *bin = rill_arena_bin_of(arena, bytes);
		uint64_t n = bin->count;
		if (rill_likely(n > 0)) {
			/* Relaxed: the owner is the only writer; stats wants a recent value. */
			rill_atomic_store_relaxed_u64(&bin->count, n - 1);
			return rill_arena_took(arena, bin->slots[n - 1], bytes);
		}
	}
	return rill_arena_alloc_miss(arena, bytes);
}

/*
 * rill_arena_alloc_aligned - like rill_arena_alloc, aligned to @align (a power of two).
 */
static inline void *rill_arena_alloc_aligned(struct rill_arena *arena, size_t bytes, size_t align)
{
	RILL_ASSERT(bytes > 0 && rill_is_power_of_two(align)); /* size 0: as in alloc */
	int flags = rill_arena_bound == arena ? (int)MALLOCX_ALIGN(align)
					      : arena->flags_alloc | (int)MALLOCX_ALIGN(align);
	/* bound: the thread's arena and cache */
	return rill_arena_took(arena, mallocx(bytes, flags), bytes);
}

/*
 * rill_arena_free - give back @p, allocated from @arena with exactly @bytes (and @align if
 * it was aligned: pass 0 otherwise). NULL is ignored. Owner thread only.
 */
static inline void rill_arena_free(struct rill_arena *arena, void *p, size_t bytes, size_t align)
{
	if (p == NULL)
		return;
	RILL_DASSERT(arena->objects_in_use > 0 && arena->bytes_in_use >= bytes);
	rill_arena_count(&arena->bytes_in_use, -(int64_t)bytes);
	rill_arena_count(&arena->objects_in_use, -1);
	if (rill_unlikely(align > 0)) { /* aligned objects bypass the bins */
		if (rill_likely(rill_arena_bound == arena))
			free(p); /* jemalloc's fast path (rill_arena_bind: malloc is jemalloc's) */
		else
			sdallocx(p, bytes, MALLOCX_ALIGN(align) | MALLOCX_TCACHE_NONE);
		return;
	}
	if (rill_likely(bytes - 1 < RILL_ARENA_CACHE_MAX_BYTES)) { /* as in alloc */
		struct rill_arena_bin *bin = rill_arena_bin_of(arena, bytes);
		uint64_t n = bin->count;
		if (rill_likely(n < RILL_ARENA_CACHE_DEPTH)) {
			bin->slots[n] = p;
			rill_atomic_store_relaxed_u64(&bin->count, n + 1); /* as in alloc */
			return;
		}
	}
	rill_arena_free_miss(arena, p, bytes);
}

#endif /* RILL_ALLOC_ARENA_H */
