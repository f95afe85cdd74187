/*
 * Huge-page buffers (see hugebuf.h). Cold path: called at start-up by whichever thread
 * builds a shard's rings and log buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "rill/limits.h"
#include "hugebuf.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26) /* log2(2 MiB) << MAP_HUGE_SHIFT */
#endif

#define HUGEBUF_BYTES_MAX (1ull << 40)

static void *hugebuf_map(size_t bytes, int extra_flags)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int rill_hugebuf_alloc(struct rill_hugebuf *buf, size_t bytes, unsigned flags)
{
	RILL_ASSERT(buf != NULL);
	buf->base = NULL;
	buf->bytes = 0;
	buf->kind = RILL_HUGEBUF_PAGES;
	if (bytes == 0 || bytes > HUGEBUF_BYTES_MAX)
		return -EINVAL;

	if (bytes < RILL_HUGE_PAGE_BYTES) {
		size_t mapped = rill_align_up(bytes, 4096);
		buf->base = hugebuf_map(mapped, 0);
		if (buf->base == NULL)
			return -ENOMEM;
		buf->bytes = mapped;
		return 0;
	}

	size_t huge = rill_align_up(bytes, RILL_HUGE_PAGE_BYTES);
	if (!(flags & RILL_HUGEBUF_F_NO_HUGETLB)) {
		buf->base = hugebuf_map(huge, MAP_HUGETLB | MAP_HUGE_2MB);
		if (buf->base != NULL) {
			buf->bytes = huge;
			buf->kind = RILL_HUGEBUF_HUGETLB;
			return 0;
		}
	}

	/*
	 * No reserved huge pages: map one huge page more than needed so the buffer can start
	 * on a 2 MiB boundary (THP can only back aligned 2 MiB ranges), then trim both ends.
	 */
	size_t over = huge + RILL_HUGE_PAGE_BYTES;
	uint8_t *raw = hugebuf_map(over, 0);
	if (raw == NULL)
		return -ENOMEM;
	uint8_t *aligned = (uint8_t *)rill_align_up((uintptr_t)raw, RILL_HUGE_PAGE_BYTES);
	size_t head = (size_t)(aligned - raw);
	size_t tail = over - head - huge;
	if (head > 0)
		munmap(raw, head);
	if (tail > 0)
		munmap(aligned + huge, tail);
	buf->base = aligned;
	buf->bytes = huge;
	/* madvise failing (THP disabled) leaves ordinary pages: the silent fallback. */
	buf->kind =
		madvise(aligned, huge, MADV_HUGEPAGE) == 0 ? RILL_HUGEBUF_THP : RILL_HUGEBUF_PAGES;
	return 0;
}

void rill_hugebuf_free(struct rill_hugebuf *buf)
{
	RILL_ASSERT(buf != NULL);
	if (buf->base != NULL) {
		int rc = munmap(buf->base, buf->bytes);
		RILL_ASSERT(rc == 0); /* only fails on a range we never mapped: a bug */
	}
	buf->base = NULL;
	buf->bytes = 0;
	buf->kind = RILL_HUGEBUF_PAGES;
}
