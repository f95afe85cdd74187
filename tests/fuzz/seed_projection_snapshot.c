/*
 * Writes a seed corpus for fuzz_projection_snapshot: for every definition, the snapshot of
 * a projection after a few events on a few keys (the definition's byte first), plus the
 * empty snapshot.
 */
#include <stdio.h>

#include "rill/schema.h"
#include "tests/fuzz/projection_fuzz.h"

static int write_seed(const char *dir, unsigned index, uint8_t kind, const uint8_t *snap,
		      size_t bytes)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02u", dir, index);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(&kind, 1, 1, f) != 1 || fwrite(snap, 1, bytes, f) != bytes) {
		perror(path);
		return 1;
	}
	return fclose(f) != 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_projection_snapshot DIR\n");
		return 2;
	}
	struct rill_schema_registry *reg = projection_fuzz_registry();
	const struct rill_schema *s = rill_schema_get(reg, "Acct", 1);
	int failed = 0;
	for (unsigned k = 0; k < 2 * PROJECTION_FUZZ_KINDS; k++) {
		struct rill_projection_config c;
		projection_fuzz_config(k, &c);
		struct rill_projection *p;
		if (rill_projection_create(&p, reg, &c, NULL) != 0)
			return 1;
		unsigned events = k < PROJECTION_FUZZ_KINDS ? 0 : 9;
		for (unsigned i = 0; i < events; i++) {
			uint8_t payload[64];
			uint32_t bytes;
			struct rill_payload_builder b;
			rill_payload_builder_init(&b, s, payload, sizeof(payload));
			rill_payload_set_i64(&b, 0, (int64_t)i * 1000 - 3000);
			rill_payload_set_u64(&b, 1, i * 17u);
			rill_payload_set_f64(&b, 2, i * 0.5);
			rill_payload_builder_finish(&b, &bytes, NULL);
			char key[8];
			snprintf(key, sizeof(key), "k%u", i % 4);
			struct rill_record rec = {.type_id = rill_schema_type_id(s),
						  .schema_version = 1,
						  .timestamp_ns = i * 700u,
						  .key = key,
						  .key_bytes = (uint16_t)strlen(key),
						  .payload = payload,
						  .payload_bytes = bytes};
			rill_projection_apply(p, &rec, i);
		}
		uint8_t snap[4096];
		int64_t n = rill_projection_snapshot(p, snap, sizeof(snap));
		failed |= n < 0 || write_seed(argv[1], k, (uint8_t)k, snap, (size_t)n);
		rill_projection_destroy(p);
	}
	rill_schema_registry_close(reg);
	return failed;
}
