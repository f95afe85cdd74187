/* The log-linear histogram (see hist.h). Any thread that owns the histogram; hot path. */
#include <string.h>

#include "assert.h"
#include "hist.h"

_Static_assert(RILL_HIST_BUCKETS == 34u * 128u, "bucket count as documented (40 KiB)");

void rill_hist_init(struct rill_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static uint32_t hist_bucket(uint64_t value)
{
	if (value < RILL_HIST_SUB_BUCKETS)
		return (uint32_t)value;                        /* magnitude 0: exact */
	uint32_t top = 63u - (uint32_t)__builtin_clzll(value); /* >= SUB_BITS */
	uint32_t magnitude = top - RILL_HIST_SUB_BITS + 1;
	uint32_t sub = (uint32_t)(value >> (magnitude - 1)) - RILL_HIST_SUB_BUCKETS;
	return magnitude * RILL_HIST_SUB_BUCKETS + sub;
}

/* The highest value that falls into @bucket. */
static uint64_t hist_bucket_high(uint32_t bucket)
{
	uint32_t magnitude = bucket / RILL_HIST_SUB_BUCKETS;
	uint64_t sub = bucket % RILL_HIST_SUB_BUCKETS;
	if (magnitude == 0)
		return sub;
	uint64_t low = (sub + RILL_HIST_SUB_BUCKETS) << (magnitude - 1);
	return low + (1ull << (magnitude - 1)) - 1;
}

void rill_hist_record(struct rill_hist *h, uint64_t value)
{
	uint32_t bucket;
	if (value >> RILL_HIST_VALUE_BITS) {
		h->overflows++;
		bucket = RILL_HIST_BUCKETS - 1;
	} else {
		bucket = hist_bucket(value);
	}
	RILL_DASSERT(bucket < RILL_HIST_BUCKETS);
	h->counts[bucket]++;
	h->count++;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void rill_hist_merge(struct rill_hist *into, const struct rill_hist *from)
{
	for (uint32_t i = 0; i < RILL_HIST_BUCKETS; i++)
		into->counts[i] += from->counts[i];
	into->count += from->count;
	into->overflows += from->overflows;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t rill_hist_percentile(const struct rill_hist *h, double percentile)
{
	if (h->count == 0)
		return 0;
	if (percentile >= 100.0)
		return h->max;
	/* The nearest rank, ceil(p / 100 * count), in integers (parts per million of p): the
	 * product in doubles came a hair under an integer (99.99% of 10,000: 9998.99...)
	 * and a truncation then named the sample below, so a lone outlier of 500 samples
	 * vanished from p99.9. */
	uint64_t ppm = percentile > 0 ? (uint64_t)(percentile * 10000.0 + 0.5) : 0;
	uint64_t q = h->count / 1000000u, r = h->count % 1000000u; /* no overflow */
	uint64_t rank = q * ppm + (r * ppm + 999999u) / 1000000u;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < RILL_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t high = hist_bucket_high(i);
			return high < h->max ? high : h->max;
		}
	}
	return h->max;
}
