/*
 * A projection's whole snapshot (engine/projection.h) in a heap buffer of its exact
 * size, for the tests that compare, damage and restore snapshots
 * (tests/engine/test_projection.c, test_partition.c): a read past its end is
 * AddressSanitizer's to see. A snapshot of another size than announced fails the test.
 */
#ifndef RILL_TEST_PROJECTION_SNAPSHOT_H
#define RILL_TEST_PROJECTION_SNAPSHOT_H

#include "tests/common/test_util.h"

#include "engine/projection.h"

/* The whole snapshot of @p, *@bytes its size; free with free(). */
static inline uint8_t *snapshot_of(const struct rill_projection *p, size_t *bytes)
{
	size_t need = rill_projection_snapshot_bytes(p);
	uint8_t *buf = malloc(need);
	assert_non_null(buf);
	int64_t n = rill_projection_snapshot(p, buf, need);
	if (n < 0 || (size_t)n != need)
		fail_msg("snapshot of %s: %lld, expected %zu", rill_projection_name(p),
			 (long long)n, need);
	*bytes = need;
	return buf;
}

#endif /* RILL_TEST_PROJECTION_SNAPSHOT_H */
