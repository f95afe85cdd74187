/*
 * rill's one clock: CLOCK_MONOTONIC in nanoseconds (STYLE rule 7), for every interval and
 * deadline. The wall clock serves only what is stored for people and for retention (event
 * and segment times). Any thread, never blocks.
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

/* The wall clock (CLOCK_REALTIME), ns since the Unix epoch: stored times only. */
static inline uint64_t rill_clock_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* RILL_BASE_CLOCK_H */
