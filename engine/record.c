/*
 * The event record codec (layout in include/rill/record.h and docs/FORMAT.md). Hot path:
 * every event is encoded once at ingress and decoded wherever it is read. Pure functions,
 * any thread. CRC32C comes from ISA-L and hashing from xxHash: neither is written by hand.
 */
#include <string.h>

#include <isa-l/crc.h>
#define XXH_INLINE_ALL /* the packaged xxhash.h, inlined: the key hash is per event */
#include <xxhash.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/compiler.h"
#include "rill/record.h"

/* Field offsets, as documented in record.h. */
enum {
	OFF_LENGTH = 0,
	OFF_CRC = 4,
	OFF_VERSION = 8,
	OFF_FLAGS = 9,
	OFF_KEY_BYTES = 10,
	OFF_PAYLOAD_BYTES = 12,
	OFF_TYPE_ID = 16,
	OFF_SCHEMA_VERSION = 20,
	OFF_RESERVED = 22,
	OFF_TIMESTAMP = 24,
	OFF_PRODUCER_ID = 32,
	OFF_SEQUENCE = 40,
	OFF_CORRELATION_ID = 48,
	OFF_CAUSATION_ID = 56,
	OFF_KEY = 64,
	OFF_CRC_START = 8, /* the CRC covers everything after itself */
};
_Static_assert(OFF_KEY == RILL_RECORD_HEADER_BYTES, "header layout and limit agree");

#if defined(__x86_64__) && !defined(__AVX__)
/*
 * ISA-L's AVX-512 CRC32C (crc32_iscsi_by16_10) returns with the upper halves of the vector
 * registers dirty: by design it issues no vzeroupper and leaves that to the caller
 * (intel/isa-l#24). Every legacy-SSE instruction gcc emits for this build afterwards
 * (struct copies, pinsrd) then pays the AVX-SSE transition until something clears them:
 * on the project's VM a 140-byte record's copy and CRC went from ~60 ns to ~300 ns, and
 * the engine's profile had half its shard time there. So clear them after every call, on
 * CPUs with AVX (vzeroupper does not exist without it). Builds for AVX (-mavx and up) are
 * VEX throughout and the compiler places its own vzeroupper: nothing to do there.
 */
static inline void crc_vector_clear(void)
{
	if (__builtin_cpu_supports("avx"))
		__asm__ volatile("vzeroupper");
}
#else
static inline void crc_vector_clear(void)
{
}
#endif

uint32_t rill_crc32c(const void *data, size_t bytes)
{
	/*
	 * ISA-L's crc32_iscsi is the raw CRC32C update; the standard check value needs the
	 * all-ones seed and a final inversion. Lengths above INT_MAX are fed in pieces since
	 * its length is an int. It takes a non-const pointer but never writes through it.
	 */
	uint32_t crc = 0xffffffffu;
	const uint8_t *p = data;
	while (bytes > 0) {
		int piece = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
		crc = crc32_iscsi((unsigned char *)(uintptr_t)p, piece, crc);
		p += piece;
		bytes -= (size_t)piece;
	}
	crc_vector_clear();
	return ~crc;
}

uint64_t rill_key_hash(const void *key, size_t bytes)
{
	return XXH3_64bits(key, bytes);
}

uint32_t rill_record_bytes(uint32_t key_bytes, uint32_t payload_bytes)
{
	if (key_bytes > RILL_KEY_BYTES_MAX || payload_bytes > RILL_PAYLOAD_BYTES_MAX)
		return 0;
	uint64_t bytes = (uint64_t)RILL_RECORD_HEADER_BYTES + key_bytes + payload_bytes;
	return bytes > RILL_RECORD_BYTES_MAX ? 0 : (uint32_t)bytes;
}

int rill_record_encode(void *buf, size_t buf_bytes, const struct rill_record *record)
{
	RILL_ASSERT(buf != NULL && record != NULL);
	RILL_ASSERT(record->key_bytes == 0 || record->key != NULL);
	RILL_ASSERT(record->payload_bytes == 0 || record->payload != NULL);
	if (record->key_bytes > RILL_KEY_BYTES_MAX)
		return RILL_E_RECORD_KEY_TOO_LONG;
	uint32_t length = rill_record_bytes(record->key_bytes, record->payload_bytes);
	if (length == 0)
		return RILL_E_RECORD_PAYLOAD_TOO_LONG;
	if (buf_bytes < length)
		return RILL_E_RECORD_NO_SPACE;

	uint8_t *p = buf;
	rill_st32(p + OFF_LENGTH, length);
	p[OFF_VERSION] = RILL_RECORD_VERSION;
	p[OFF_FLAGS] = 0;
	rill_st16(p + OFF_KEY_BYTES, record->key_bytes);
	rill_st32(p + OFF_PAYLOAD_BYTES, record->payload_bytes);
	rill_st32(p + OFF_TYPE_ID, record->type_id);
	rill_st16(p + OFF_SCHEMA_VERSION, record->schema_version);
	rill_st16(p + OFF_RESERVED, 0);
	rill_st64(p + OFF_TIMESTAMP, record->timestamp_ns);
	rill_st64(p + OFF_PRODUCER_ID, record->producer_id);
	rill_st64(p + OFF_SEQUENCE, record->sequence);
	rill_st64(p + OFF_CORRELATION_ID, record->correlation_id);
	rill_st64(p + OFF_CAUSATION_ID, record->causation_id);
	if (record->key_bytes > 0)
		memcpy(p + OFF_KEY, record->key, record->key_bytes);
	if (record->payload_bytes > 0)
		memcpy(p + OFF_KEY + record->key_bytes, record->payload, record->payload_bytes);
	rill_st32(p + OFF_CRC, rill_crc32c(p + OFF_CRC_START, length - OFF_CRC_START));
	return (int)length;
}

/* The checks of the fixed header, in the order that never reads an unchecked byte. */
static int record_check_header(const uint8_t *p, size_t buf_bytes)
{
	if (buf_bytes < RILL_RECORD_HEADER_BYTES)
		return RILL_E_RECORD_TRUNCATED;
	uint32_t length = rill_ld32(p + OFF_LENGTH);
	if (length > RILL_RECORD_BYTES_MAX)
		return RILL_E_RECORD_TOO_LARGE;
	if (length < RILL_RECORD_HEADER_BYTES)
		return RILL_E_RECORD_LENGTH;
	if (p[OFF_VERSION] != RILL_RECORD_VERSION)
		return RILL_E_RECORD_VERSION;
	if (p[OFF_FLAGS] != 0 || rill_ld16(p + OFF_RESERVED) != 0)
		return RILL_E_RECORD_RESERVED;
	uint32_t key_bytes = rill_ld16(p + OFF_KEY_BYTES);
	uint32_t payload_bytes = rill_ld32(p + OFF_PAYLOAD_BYTES);
	if (key_bytes > RILL_KEY_BYTES_MAX)
		return RILL_E_RECORD_KEY_TOO_LONG;
	if (payload_bytes > RILL_PAYLOAD_BYTES_MAX)
		return RILL_E_RECORD_PAYLOAD_TOO_LONG;
	/* 64-bit sum: no overflow whatever the fields say. */
	if ((uint64_t)RILL_RECORD_HEADER_BYTES + key_bytes + payload_bytes != length)
		return RILL_E_RECORD_LENGTH;
	if (buf_bytes < length)
		return RILL_E_RECORD_TRUNCATED;
	return (int)length;
}

int rill_record_decode(const void *buf, size_t buf_bytes, struct rill_record *out, unsigned flags)
{
	RILL_ASSERT(buf != NULL && out != NULL);
	const uint8_t *p = buf;
	int length = record_check_header(p, buf_bytes);
	if (length < 0)
		return length;
	if (!(flags & RILL_RECORD_F_TRUSTED_CRC) &&
	    rill_crc32c(p + OFF_CRC_START, (size_t)length - OFF_CRC_START) !=
		    rill_ld32(p + OFF_CRC))
		return RILL_E_RECORD_CRC;

	out->record_bytes = (uint32_t)length;
	out->key_bytes = rill_ld16(p + OFF_KEY_BYTES);
	out->payload_bytes = rill_ld32(p + OFF_PAYLOAD_BYTES);
	out->type_id = rill_ld32(p + OFF_TYPE_ID);
	out->schema_version = rill_ld16(p + OFF_SCHEMA_VERSION);
	out->timestamp_ns = rill_ld64(p + OFF_TIMESTAMP);
	out->producer_id = rill_ld64(p + OFF_PRODUCER_ID);
	out->sequence = rill_ld64(p + OFF_SEQUENCE);
	out->correlation_id = rill_ld64(p + OFF_CORRELATION_ID);
	out->causation_id = rill_ld64(p + OFF_CAUSATION_ID);
	out->key = p + OFF_KEY;
	out->payload = p + OFF_KEY + out->key_bytes;
	RILL_DASSERT(OFF_KEY + out->key_bytes + out->payload_bytes == (uint32_t)length);
	return length;
}
