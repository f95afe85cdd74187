/*
 * libFuzzer target for projection snapshots (engine/projection.h), which are read back from
 * disk: the first byte picks a projection definition, the rest is a snapshot whose CRC the
 * target writes itself (so the fuzzer reaches the structural checks behind it). Restore
 * must refuse the bytes or take them, and a projection that took them must snapshot to the
 * very same bytes (the format is canonical).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill/error.h"
#include "tests/fuzz/projection_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fold one event (key "k1", every field 1) into @p: no undefined behaviour whatever state
 * the snapshot left (UBSan). */
static void apply_one(struct rill_schema_registry *reg, struct rill_projection *p)
{
	const struct rill_schema *s = rill_schema_get(reg, "Acct", 1);
	uint8_t payload[64];
	uint32_t bytes;
	struct rill_payload_builder b;
	if (rill_payload_builder_init(&b, s, payload, sizeof(payload)) != 0 ||
	    rill_payload_set_i64(&b, 0, 1) != 0 || rill_payload_set_u64(&b, 1, 1) != 0 ||
	    rill_payload_set_f64(&b, 2, 1) != 0 ||
	    rill_payload_builder_finish(&b, &bytes, NULL) != 0)
		abort();
	struct rill_record rec = {.type_id = rill_schema_type_id(s),
				  .schema_version = 1,
				  .timestamp_ns = 123456,
				  .key = "k1",
				  .key_bytes = 2,
				  .payload = payload,
				  .payload_bytes = bytes};
	int rc = rill_projection_apply(p, &rec, 99);
	if (rc != 0 && rc != -ENOSPC)
		abort();
	struct rill_projection_value v;
	(void)rill_projection_get(p, "k1", 2, &v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rill_schema_registry *reg;
	if (reg == NULL)
		reg = projection_fuzz_registry();
	if (size < 1 + 8)
		return 0;
	struct rill_projection_config c;
	projection_fuzz_config(data[0], &c);
	size_t n = size - 1;
	uint8_t *snap = malloc(n); /* exact size: ASan sees a read past the end */
	if (snap == NULL)
		abort();
	memcpy(snap, data + 1, n);
	uint32_t trailer[2] = {rill_crc32c(snap, n - 8), 0};
	memcpy(snap + n - 8, trailer, sizeof(trailer));
	struct rill_projection *p;
	if (rill_projection_create(&p, reg, &c, NULL) != 0)
		abort();
	struct rill_schema_error err;
	int rc = rill_projection_restore(p, snap, n, &err);
	if (rc == 0) {
		size_t need = rill_projection_snapshot_bytes(p);
		uint8_t *again = malloc(need);
		if (again == NULL || need != n ||
		    rill_projection_snapshot(p, again, need) != (int64_t)n ||
		    memcmp(again, snap, n) != 0)
			abort(); /* taken, but not canonical */
		free(again);
		apply_one(reg, p); /* what was restored must take further events */
	} else if (rc != RILL_E_PROJECTION_SNAPSHOT && rc != -ENOSPC) {
		abort();
	}
	rill_projection_destroy(p);
	free(snap);
	return 0;
}
