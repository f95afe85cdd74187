/*
 * Writes a seed corpus for fuzz_record: valid records of several shapes (empty, key only,
 * payload only, both, two back to back), one file each, into the folder given.
 */
#include <stdio.h>
#include <string.h>

#include "rill/record.h"

static int write_file(const char *dir, int index, const void *bytes, size_t size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, index);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(bytes, 1, size, f) != size) {
		perror(path);
		return 1;
	}
	return fclose(f) != 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_record DIR\n");
		return 2;
	}
	static uint8_t buf[2 * 4096];
	const char payload[] = "{\"amount\": 42, \"sku\": \"A-1\"}";
	const struct {
		uint16_t key_bytes;
		uint32_t payload_bytes;
	} shapes[] = {{0, 0}, {5, 0}, {0, 28}, {5, 28}, {1, 1}};
	int index = 0;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct rill_record rec = {.timestamp_ns = 1700000000000000000ull,
					  .producer_id = i,
					  .sequence = i * 3,
					  .correlation_id = 99,
					  .causation_id = 98,
					  .type_id = 7,
					  .schema_version = 2,
					  .key_bytes = shapes[i].key_bytes,
					  .key = "order",
					  .payload_bytes = shapes[i].payload_bytes,
					  .payload = payload};
		int n = rill_record_encode(buf, sizeof(buf), &rec);
		if (n < 0 || write_file(argv[1], index++, buf, (size_t)n) != 0)
			return 1;
		int m = rill_record_encode(buf + n, sizeof(buf) - (size_t)n, &rec);
		if (m < 0 || write_file(argv[1], index++, buf, (size_t)(n + m)) != 0)
			return 1;
	}
	return 0;
}
