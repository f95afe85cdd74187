/*
 * Shard arenas over jemalloc (see arena.h): creation and teardown through mallctl. Cold
 * path, start-up and shutdown only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"

static int arena_ctl_unsigned(const char *name, unsigned *out)
{
	size_t size = sizeof(*out);
	int rc = mallctl(name, out, &size, NULL, 0);
	if (rc != 0) {
		fprintf(stderr, "rill: jemalloc mallctl(\"%s\") failed: %s\n", name, strerror(rc));
		return rc == ENOMEM || rc == EAGAIN ? -ENOMEM : -EIO;
	}
	return 0;
}

__thread struct rill_arena *rill_arena_bound;

static uint64_t arena_thread_allocated(void)
{
	uint64_t bytes = 0;
	size_t size = sizeof(bytes);
	if (mallctl("thread.allocated", &bytes, &size, NULL, 0) != 0)
		return 0;
	return bytes;
}

/*
 * Whether malloc() in this process is jemalloc's: under a sanitizer, or with another
 * allocator preloaded, it is not, and memory from it must not reach sdallocx. jemalloc's
 * per-thread byte counter moves only for its own allocations.
 */
static bool arena_malloc_is_jemalloc(void)
{
	uint64_t before = arena_thread_allocated();
	void *volatile p = malloc(256);
	bool ours = p != NULL && arena_thread_allocated() >= before + 256;
	free(p);
	return ours;
}

/*
 * Arenas retired at destroy, kept for the next rill_arena_init: a process that opens and
 * closes engines repeatedly reuses them instead of piling them up. Each remembers whether
 * a thread was ever bound to it. Start-up and shutdown only, so a mutex is fine here.
 */
#define ARENAS_RETIRED_MAX 1024u
static pthread_mutex_t arenas_retired_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned arenas_retired[ARENAS_RETIRED_MAX];
static bool arenas_retired_bound[ARENAS_RETIRED_MAX];
static unsigned arenas_retired_count;

static bool arena_take_retired(unsigned *index, bool *was_bound)
{
	pthread_mutex_lock(&arenas_retired_lock);
	bool found = arenas_retired_count > 0;
	if (found) {
		arenas_retired_count--;
		*index = arenas_retired[arenas_retired_count];
		*was_bound = arenas_retired_bound[arenas_retired_count];
	}
	pthread_mutex_unlock(&arenas_retired_lock);
	return found;
}

/* False if the list is full (the arena is then left to the process, or destroyed). */
static bool arena_retire(unsigned index, bool was_bound)
{
	pthread_mutex_lock(&arenas_retired_lock);
	bool kept = arenas_retired_count < ARENAS_RETIRED_MAX;
	if (kept) {
		arenas_retired[arenas_retired_count] = index;
		arenas_retired_bound[arenas_retired_count++] = was_bound;
	}
	pthread_mutex_unlock(&arenas_retired_lock);
	return kept;
}

int rill_arena_init(struct rill_arena *arena)
{
	RILL_ASSERT(arena != NULL);
	memset(arena, 0, sizeof(*arena));
	/* One a thread was bound to once keeps was_bound: what libc allocated then may still
	 * be in use, so it is retired again at destroy, bound this time or not, untouched. */
	if (!arena_take_retired(&arena->arena_index, &arena->was_bound)) {
		int rc = arena_ctl_unsigned("arenas.create", &arena->arena_index);
		if (rc != 0)
			return rc;
	}
	arena->flags_alloc = (int)(MALLOCX_ARENA(arena->arena_index) | MALLOCX_TCACHE_NONE);
	arena->malloc_is_jemalloc = arena_malloc_is_jemalloc();
	return 0;
}

int rill_arena_bind(struct rill_arena *arena)
{
	RILL_ASSERT(arena != NULL);
	if (!arena->malloc_is_jemalloc)
		return 0; /* stay on mallocx with MALLOCX_ARENA: correct, just slower */
	/* The thread's cache holds objects of the arena it used so far: hand them back first. */
	int rc = mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	RILL_ASSERT(rc == 0 || rc == EFAULT); /* EFAULT: the thread has no cache */
	unsigned before = 0;
	size_t size = sizeof(before);
	rc = mallctl("thread.arena", &before, &size, &arena->arena_index,
		     sizeof(arena->arena_index));
	if (rc != 0) {
		fprintf(stderr, "rill: jemalloc mallctl(\"thread.arena\") failed: %s\n",
			strerror(rc));
		return -EIO;
	}
	arena->thread_arena_before = before;
	arena->was_bound = true;
	rill_arena_bound = arena;
	return 0;
}

/* Allocate @bytes from jemalloc itself: the bound thread's fast path, or the arena's flags. */
static void *arena_jemalloc_alloc(struct rill_arena *arena, size_t bytes)
{
	if (rill_arena_bound == arena)
		return malloc(bytes); /* jemalloc's fast path, into this arena (rill_arena_bind) */
	return mallocx(bytes, arena->flags_alloc);
}

/* Give @p (allocated with @bytes, not aligned) back to jemalloc. */
static void arena_jemalloc_free(struct rill_arena *arena, void *p, size_t bytes)
{
	if (rill_arena_bound == arena)
		free(p); /* malloc is jemalloc's here (rill_arena_bind) */
	else
		sdallocx(p, bytes, MALLOCX_TCACHE_NONE);
}

void *rill_arena_alloc_miss(struct rill_arena *arena, size_t bytes)
{
	/* A cached class is allocated at its full class size, so any object of the class can
	 * later be served from its bin. */
	size_t real = bytes;
	if (bytes - 1 < RILL_ARENA_CACHE_MAX_BYTES)
		real = rill_align_up(bytes, RILL_ARENA_CACHE_CLASS_BYTES);
	return rill_arena_took(arena, arena_jemalloc_alloc(arena, real), bytes);
}

/* Hand the older half of @bin (class size @size) back to jemalloc. */
static void arena_bin_flush(struct rill_arena *arena, struct rill_arena_bin *bin, size_t size,
			    uint64_t keep)
{
	uint64_t n = bin->count;
	if (n <= keep)
		return;
	for (uint64_t i = 0; i < n - keep; i++)
		arena_jemalloc_free(arena, bin->slots[i], size);
	memmove(bin->slots, bin->slots + (n - keep), keep * sizeof(bin->slots[0]));
	rill_atomic_store_relaxed_u64(&bin->count, keep); /* relaxed: see rill_arena_alloc */
}

void rill_arena_free_miss(struct rill_arena *arena, void *p, size_t bytes)
{
	if (bytes - 1 >= RILL_ARENA_CACHE_MAX_BYTES) { /* larger, or 0 (never binned) */
		arena_jemalloc_free(arena, p, bytes);
		return;
	}
	size_t size = rill_align_up(bytes, RILL_ARENA_CACHE_CLASS_BYTES);
	struct rill_arena_bin *bin = rill_arena_bin_of(arena, bytes);
	RILL_DASSERT(bin->count == RILL_ARENA_CACHE_DEPTH);
	arena_bin_flush(arena, bin, size, RILL_ARENA_CACHE_DEPTH / 2);
	bin->slots[bin->count] = p;
	rill_atomic_store_relaxed_u64(&bin->count, bin->count + 1);
}

void rill_arena_trim(struct rill_arena *arena)
{
	RILL_ASSERT(arena != NULL);
	for (uint32_t c = 0; c < RILL_ARENA_CACHE_CLASSES; c++)
		if (arena->bins[c].count > 0)
			arena_bin_flush(arena, &arena->bins[c],
					(size_t)(c + 1) * RILL_ARENA_CACHE_CLASS_BYTES, 0);
}

void rill_arena_destroy(struct rill_arena *arena)
{
	RILL_ASSERT(arena != NULL);
	rill_arena_trim(arena); /* before the thread's cache is flushed and unbound */
	/* This thread's cache holds freed objects of the arena: empty it before the arena goes. */
	int rc = mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	RILL_ASSERT(rc == 0 || rc == EFAULT); /* EFAULT: the thread has no cache */
	if (rill_arena_bound == arena) {
		rc = mallctl("thread.arena", NULL, NULL, &arena->thread_arena_before,
			     sizeof(arena->thread_arena_before));
		RILL_ASSERT(rc == 0);
		rill_arena_bound = NULL;
	}
	/*
	 * Never bound, it holds only what rill_arena_alloc gave, all of it freed by now (the
	 * caller's contract): its pages go back at once (reset) and its index is kept for
	 * the next rill_arena_init all the same. Destroying it would not return everything:
	 * with jemalloc's opt.retain (its default) the arena's own metadata block, 2 MiB of
	 * address space, stays mapped for good, so a host whose malloc is glibc's (every
	 * arena unbound) grew by that much per shard at each engine open and close. Bound,
	 * what libc allocated through it may still be in use: retired untouched.
	 */
	char name[64];
	if (!arena->was_bound) {
		snprintf(name, sizeof(name), "arena.%u.reset", arena->arena_index);
		rc = mallctl(name, NULL, NULL, NULL, 0);
		RILL_ASSERT(rc == 0); /* only fails for an arena bound to a thread: a bug */
	}
	if (!arena_retire(arena->arena_index, arena->was_bound) && !arena->was_bound) {
		snprintf(name, sizeof(name), "arena.%u.destroy", arena->arena_index);
		rc = mallctl(name, NULL, NULL, NULL, 0);
		RILL_ASSERT(rc == 0);
	}
	memset(arena, 0, sizeof(*arena));
}

void rill_arena_stats(const struct rill_arena *arena, struct rill_arena_stats *stats)
{
	RILL_ASSERT(arena != NULL && stats != NULL);
	stats->bytes_in_use = rill_atomic_load_relaxed_u64(&arena->bytes_in_use);
	stats->objects_in_use = rill_atomic_load_relaxed_u64(&arena->objects_in_use);
	stats->alloc_failures = rill_atomic_load_relaxed_u64(&arena->alloc_failures);
	stats->bytes_mapped = 0;
	stats->bytes_cached = 0;
	stats->objects_cached = 0;
	for (uint32_t c = 0; c < RILL_ARENA_CACHE_CLASSES; c++) {
		uint64_t n = rill_atomic_load_relaxed_u64(&arena->bins[c].count);
		stats->objects_cached += n;
		stats->bytes_cached += n * (c + 1) * RILL_ARENA_CACHE_CLASS_BYTES;
	}

	/* jemalloc's statistics are refreshed by writing the epoch; then read the arena's. */
	uint64_t epoch = 1;
	size_t size = sizeof(epoch);
	if (mallctl("epoch", &epoch, &size, &epoch, size) != 0)
		return;
	char name[64];
	size_t mapped = 0;
	size = sizeof(mapped);
	snprintf(name, sizeof(name), "stats.arenas.%u.mapped", arena->arena_index);
	if (mallctl(name, &mapped, &size, NULL, 0) == 0)
		stats->bytes_mapped = mapped;
}
