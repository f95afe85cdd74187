/*
 * Large aligned buffers for rings and log buffers. A buffer of 2 MiB or more is backed by
 * explicit 2 MiB huge pages (MAP_HUGETLB) where the system has reserved them, else by
 * transparent huge pages where the kernel allows them (madvise MADV_HUGEPAGE), else by
 * ordinary pages; the fallback is silent and the kind obtained is recorded. Smaller
 * buffers use ordinary pages. Every buffer is page-aligned (2 MiB-aligned when huge) and
 * zero-filled. Start-up code only: never call these on the data path.
 */
#ifndef RILL_ALLOC_HUGEBUF_H
#define RILL_ALLOC_HUGEBUF_H

#include <stddef.h>

enum rill_hugebuf_kind {
	RILL_HUGEBUF_PAGES = 0,   /* ordinary 4 KiB pages */
	RILL_HUGEBUF_THP = 1,     /* transparent huge pages requested (kernel may still split) */
	RILL_HUGEBUF_HUGETLB = 2, /* explicit 2 MiB huge pages */
};

struct rill_hugebuf {
	void *base;   /* first byte; NULL when empty */
	size_t bytes; /* usable bytes, >= the bytes asked for */
	enum rill_hugebuf_kind kind;
};

/* Set RILL_HUGEBUF_F_NO_HUGETLB to skip the explicit huge pages attempt (tests use it). */
#define RILL_HUGEBUF_F_NO_HUGETLB 1u

/*
 * rill_hugebuf_alloc - map a zeroed, aligned buffer of at least @bytes.
 * @buf: filled on success; left empty (base NULL) on failure.
 * @bytes: 1 .. 2^40.
 * @flags: 0 or RILL_HUGEBUF_F_NO_HUGETLB.
 * Returns 0, -EINVAL for a bad size, or -ENOMEM. Any thread; may block in the kernel.
 */
int rill_hugebuf_alloc(struct rill_hugebuf *buf, size_t bytes, unsigned flags);

/* rill_hugebuf_free - unmap @buf (an empty buffer is fine) and leave it empty. */
void rill_hugebuf_free(struct rill_hugebuf *buf);

#endif /* RILL_ALLOC_HUGEBUF_H */
