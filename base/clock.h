/*
 * rill's one clock: CLOCK_MONOTONIC in nanoseconds (STYLE rule 7). Any thread, never blocks.
 */
#ifndef RILL_BASE_CLOCK_H
#define RILL_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rill_clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* RILL_BASE_CLOCK_H */
