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
	} else if (rc != RILL_E_PROJECTION_SNAPSHOT && rc != -ENOSPC) {
		abort();
	}
	rill_projection_destroy(p);
	free(snap);
	return 0;
}
