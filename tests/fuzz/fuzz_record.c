/*
 * libFuzzer target for the record decoder: any byte string must be either refused with a
 * RILL_E_RECORD_* code or decoded into a record whose re-encoding is the same bytes. Built
 * with clang -fsanitize=fuzzer,address,undefined when meson's `fuzzing` option is on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rill_record rec;
	for (unsigned flags = 0; flags <= RILL_RECORD_F_TRUSTED_CRC; flags++) {
		int rc = rill_record_decode(data, size, &rec, flags);
		if (rc < 0) {
			if (rc > RILL_E_LAST && rc <= -(RILL_E_BASE + 1))
				continue;
			abort(); /* an error outside the record range */
		}
		if ((size_t)rc > size || rec.record_bytes != (uint32_t)rc)
			abort();
		if (flags & RILL_RECORD_F_TRUSTED_CRC)
			continue; /* the CRC field may be wrong: no byte-exact round trip */
		uint8_t *copy = malloc((size_t)rc);
		if (copy == NULL)
			abort();
		if (rill_record_encode(copy, (size_t)rc, &rec) != rc ||
		    memcmp(copy, data, (size_t)rc) != 0)
			abort();
		free(copy);
	}
	return 0;
}
