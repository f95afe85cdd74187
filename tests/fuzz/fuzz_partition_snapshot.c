/*
 * libFuzzer target for partition snapshots (engine/partition_snapshot.c), which are read
 * back from disk at every open. The input is a snapshot file whose CRC the target writes
 * itself (so the fuzzer reaches the checks behind it), checked as the snapshot of the
 * offset its header claims: the check must refuse it or load a dedup table that stays
 * within its limits, and a projection entry named "fuzz" is restored into a projection
 * (refused or taken, never a crash).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/partition_fuzz.h"
#include "tests/fuzz/projection_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rill_schema_registry *reg;
	static struct rill_partition *part;
	if (reg == NULL) {
		reg = projection_fuzz_registry();
		part = partition_fuzz_shell();
	}
	if (size < 72 || size > (1u << 20))
		return 0;
	uint8_t *snap = malloc(size); /* exact size: ASan sees a read past the end */
	if (snap == NULL)
		abort();
	memcpy(snap, data, size);
	uint32_t trailer[2] = {rill_crc32c(snap, size - 8), 0};
	memcpy(snap + size - 8, trailer, sizeof(trailer));
	uint64_t offset;
	memcpy(&offset, snap + 8, sizeof(offset));
	if (partition_snapshot_check(part, snap, size, offset) == 0) {
		if (part->stats.producers > PARTITION_FUZZ_PRODUCERS)
			abort();
		uint64_t state_bytes;
		const uint8_t *state = partition_snapshot_state(snap, "fuzz", &state_bytes);
		if (state != NULL) {
			struct rill_projection_config c;
			projection_fuzz_config(0, &c);
			struct rill_projection *p;
			if (rill_projection_create(&p, reg, &c, NULL) != 0)
				abort();
			struct rill_schema_error err;
			(void)rill_projection_restore(p, state, state_bytes, &err);
			rill_projection_destroy(p);
		}
		partition_dedup_clear(part);
	}
	free(snap);
	return 0;
}
