/*
 * libFuzzer target for the record decoder: any byte string must be either refused with one
 * of the codes rill_record_decode documents (record.h: _TRUNCATED, _TOO_LARGE, _LENGTH,
 * _VERSION, _RESERVED, _KEY_TOO_LONG, _PAYLOAD_TOO_LONG, and _CRC only when the CRC is
 * checked), leaving the output untouched, or decoded into a record whose re-encoding is the
 * same bytes. Built with clang -fsanitize=fuzzer,address,undefined when meson's `fuzzing`
 * option is on.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether @rc is a refusal rill_record_decode may give with @flags. */
static bool decode_refusal(int rc, unsigned flags)
{
	switch (rc) {
	case RILL_E_RECORD_TRUNCATED:
	case RILL_E_RECORD_TOO_LARGE:
	case RILL_E_RECORD_LENGTH:
	case RILL_E_RECORD_VERSION:
	case RILL_E_RECORD_RESERVED:
	case RILL_E_RECORD_KEY_TOO_LONG:
	case RILL_E_RECORD_PAYLOAD_TOO_LONG:
		return true;
	case RILL_E_RECORD_CRC:
		return !(flags & RILL_RECORD_F_TRUSTED_CRC);
	default:
		return false; /* _NO_SPACE is encode's; anything else is no record code */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rill_record rec, untouched;
	for (unsigned flags = 0; flags <= RILL_RECORD_F_TRUSTED_CRC; flags++) {
		memset(&rec, 0xa5, sizeof(rec));
		memcpy(&untouched, &rec, sizeof(rec));
		int rc = rill_record_decode(data, size, &rec, flags);
		if (rc < 0) {
			if (!decode_refusal(rc, flags) ||
			    memcmp(&rec, &untouched, sizeof(rec)) != 0)
				abort();
			continue;
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
