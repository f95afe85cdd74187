/*
 * Seeds for fuzz_partition_snapshot: well-formed snapshots (header, dedup entries, a
 * projection entry named "fuzz" holding a real projection snapshot, CRC), written by hand
 * in the layout of docs/FORMAT.md ("Partition snapshots"), so that the fuzzer starts from
 * inputs the check accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/partition_fuzz.h"
#include "tests/fuzz/projection_fuzz.h"

static size_t put(uint8_t *buf, size_t pos, const void *src, size_t bytes)
{
	memcpy(buf + pos, src, bytes);
	return pos + ((bytes + 7u) & ~(size_t)7u);
}

static void seed(const char *dir, int index, uint32_t producers, bool with_projection)
{
	static uint8_t buf[1u << 16];
	memset(buf, 0, sizeof(buf));
	uint64_t offset = 1000;
	size_t pos = 64;
	for (uint32_t i = 0; i < producers; i++) {
		struct dedup_entry e = {.producer_id = 100 + i, .first_seq = 0, .last_seq = 20};
		for (uint64_t s = 13; s <= 20; s++)
			e.offsets[s % RILL_PARTITION_DEDUP_WINDOW] = 900 + s + i;
		pos = put(buf, pos, &e, sizeof(e));
	}
	uint32_t projections = 0;
	if (with_projection) {
		struct rill_schema_registry *reg = projection_fuzz_registry();
		struct rill_projection_config c;
		projection_fuzz_config(0, &c);
		struct rill_projection *p;
		if (rill_projection_create(&p, reg, &c, NULL) != 0)
			abort();
		uint8_t state[8192];
		int64_t n = rill_projection_snapshot(p, state, sizeof(state));
		if (n < 0)
			abort();
		uint32_t head[4] = {4, 0, (uint32_t)n, 0}; /* name_bytes, 0, state_bytes (u64) */
		pos = put(buf, pos, head, sizeof(head));
		pos = put(buf, pos, "fuzz", 4);
		pos = put(buf, pos, state, (size_t)n);
		projections = 1;
		rill_projection_destroy(p);
		rill_schema_registry_close(reg);
	}
	size_t total = pos + 8;
	uint32_t h32[2] = {0x314e5052u, 1};
	memcpy(buf, h32, 8);
	uint64_t h64[3] = {offset, 0, 1700000000000000000ull};
	memcpy(buf + 8, h64, 24);
	uint32_t counts[2] = {producers, projections};
	memcpy(buf + 32, counts, 8);
	uint64_t total64 = total;
	memcpy(buf + 40, &total64, 8);
	uint32_t crc = rill_crc32c(buf, pos);
	memcpy(buf + pos, &crc, 4);
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%d", dir, index);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, total, f) != total || fclose(f) != 0)
		abort();
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_partition_snapshot DIR\n");
		return 2;
	}
	seed(argv[1], 0, 0, false);
	seed(argv[1], 1, 3, false);
	seed(argv[1], 2, 2, true);
	seed(argv[1], 3, 0, true);
	return 0;
}
