/*
 * Compiler helpers shared by every layer: branch hints, cache-line constants, alignment.
 * Header-only; no thread or hot-path concerns of its own.
 */
#ifndef RILL_BASE_COMPILER_H
#define RILL_BASE_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#define rill_likely(x)   __builtin_expect(!!(x), 1)
#define rill_unlikely(x) __builtin_expect(!!(x), 0)

/* One cache line on the x86-64 and arm64 machines rill targets. */
#define RILL_CACHE_LINE_BYTES 64u
/*
 * The distance kept between data written by different threads. Two lines, not one: the
 * adjacent-line prefetcher of Intel cores pulls cache lines in pairs, so data one line
 * apart still ping-pongs (the same reason DPDK pads rte_ring to 128 bytes).
 */
#define RILL_CACHE_GUARD_BYTES 128u

#define RILL_ARRAY_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Round @x up to a multiple of @align, which must be a power of two. */
static inline uint64_t rill_align_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) & ~(align - 1);
}

static inline _Bool rill_is_power_of_two(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

_Static_assert(
	__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	"rill's records are little-endian and read in place: big-endian hosts are unsupported");

#endif /* RILL_BASE_COMPILER_H */
