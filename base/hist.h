/*
 * A log-linear latency histogram in the manner of HdrHistogram: values in [0, 2^40) ns
 * (18 minutes) fall into buckets whose width grows with the value's magnitude, so the
 * relative error of any reported percentile stays below 1 / RILL_HIST_SUB_BUCKETS (0.8%)
 * in constant memory (40 KiB), with a record costing a few instructions and no allocation.
 *
 *   magnitude m = position of the value's highest bit above the sub-bucket bits;
 *   bucket = m * SUB_BUCKETS + (value >> m) with the top bit removed.
 *
 * Values above the range land in the last bucket and are counted in `overflows`; the true
 * maximum is kept exactly. Not thread-safe: one writer; merge copies for a total.
 */
#ifndef RILL_BASE_HIST_H
#define RILL_BASE_HIST_H

#include <stdint.h>

#define RILL_HIST_SUB_BITS    7u
#define RILL_HIST_SUB_BUCKETS (1u << RILL_HIST_SUB_BITS) /* 128 */
#define RILL_HIST_VALUE_BITS  40u
#define RILL_HIST_BUCKETS     ((RILL_HIST_VALUE_BITS - RILL_HIST_SUB_BITS + 1) * RILL_HIST_SUB_BUCKETS)

struct rill_hist {
	uint64_t count;
	uint64_t overflows; /* values at or above 2^40, counted in the last bucket */
	uint64_t min;
	uint64_t max;
	uint64_t counts[RILL_HIST_BUCKETS];
};

void rill_hist_init(struct rill_hist *h);

/* rill_hist_record - count @value once. */
void rill_hist_record(struct rill_hist *h, uint64_t value);

/* rill_hist_merge - add @from's counts into @into. */
void rill_hist_merge(struct rill_hist *into, const struct rill_hist *from);

/*
 * rill_hist_percentile - the value at @percentile (0..100, to 1e-4): the highest value of
 * the bucket where the running count reaches its nearest rank, ceil(@percentile / 100 *
 * count) (an upper bound within the bucket's width), never above the recorded maximum. 0
 * for an empty histogram.
 */
uint64_t rill_hist_percentile(const struct rill_hist *h, double percentile);

#endif /* RILL_BASE_HIST_H */
