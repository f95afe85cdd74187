/*
 * What fuzz_partition_snapshot and its seed generator share: a partition shell with a
 * dedup table (the snapshot checks need no log) and the projection it restores.
 */
#ifndef RILL_TESTS_PARTITION_FUZZ_H
#define RILL_TESTS_PARTITION_FUZZ_H

#include <stdlib.h>

#include "engine/partition_int.h"

#define PARTITION_FUZZ_PRODUCERS 64u

/* A partition with only what the snapshot checks touch; aborts on failure. */
static inline struct rill_partition *partition_fuzz_shell(void)
{
	struct rill_partition *part = calloc(1, sizeof(*part));
	uint64_t capacity = 2 * PARTITION_FUZZ_PRODUCERS;
	if (part == NULL || (part->dedup = calloc(capacity, sizeof(*part->dedup))) == NULL)
		abort();
	part->producers_max = PARTITION_FUZZ_PRODUCERS;
	part->dedup_mask = capacity - 1;
	part->dedup_shift = 64u - (unsigned)__builtin_ctzll(capacity);
	return part;
}

#endif /* RILL_TESTS_PARTITION_FUZZ_H */
