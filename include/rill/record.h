/*
 * The event record: one binary layout for an event in memory, on the wire and in the log,
 * so an event is encoded once and read in place everywhere after. docs/FORMAT.md gives the
 * layout byte by byte; in short, all integers little-endian:
 *
 *   offset size field
 *        0    4 length          whole record in bytes: 64 + key_bytes + payload_bytes
 *        4    4 crc32c          CRC32C (Castagnoli) of bytes [8, length)
 *        8    1 version         record format version, RILL_RECORD_VERSION
 *        9    1 flags           none defined yet: must be 0
 *       10    2 key_bytes       0 .. RILL_KEY_BYTES_MAX
 *       12    4 payload_bytes   0 .. RILL_PAYLOAD_BYTES_MAX
 *       16    4 type_id         event type (schema registry id)
 *       20    2 schema_version  version of the type's schema the payload follows
 *       22    2 reserved        must be 0
 *       24    8 timestamp_ns    event time, ns since the Unix epoch
 *       32    8 producer_id     idempotent producer id (0: none)
 *       40    8 sequence        producer sequence number
 *       48    8 correlation_id  id shared by every event of one flow
 *       56    8 causation_id    id of the event or command that caused this one
 *       64    . key             key_bytes bytes
 *        .    . payload         payload_bytes bytes
 *
 * Decoding never reads outside the buffer it is given and never trusts a length field: it
 * reads nothing before knowing the 64-byte header is there, checks the length field against
 * the limits and against the key and payload sizes, and reads key and payload only once the
 * buffer is known to hold the whole record. Each malformed input has its own error.
 *
 * Threading: every function is pure (no state); any thread, never blocks.
 */
#ifndef RILL_RECORD_H
#define RILL_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "rill/error.h"
#include "rill/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RILL_RECORD_VERSION 1u

/*
 * An event's fields. For encoding the caller fills it (key and payload point to the
 * bytes); decoding fills it with key and payload pointing into the decoded buffer.
 */
struct rill_record {
	uint64_t timestamp_ns;
	uint64_t producer_id;
	uint64_t sequence;
	uint64_t correlation_id;
	uint64_t causation_id;
	uint32_t type_id;
	uint32_t payload_bytes;
	uint16_t schema_version;
	uint16_t key_bytes;
	uint32_t record_bytes; /* decode: the whole record's length; ignored by encode */
	const void *key;
	const void *payload;
};

/* Skip the CRC check in rill_record_decode: for bytes already verified (a log batch). */
#define RILL_RECORD_F_TRUSTED_CRC 1u

/*
 * rill_record_bytes - the encoded size of a record with @key_bytes and @payload_bytes, or 0
 * when either is over its limit.
 */
uint32_t rill_record_bytes(uint32_t key_bytes, uint32_t payload_bytes);

/*
 * rill_record_encode - write @record into @buf and compute its CRC.
 * @buf: at least rill_record_bytes(...) bytes; any alignment.
 * Returns the bytes written (> 0), RILL_E_RECORD_KEY_TOO_LONG,
 * RILL_E_RECORD_PAYLOAD_TOO_LONG or RILL_E_RECORD_NO_SPACE; nothing is written on error.
 */
int rill_record_encode(void *buf, size_t buf_bytes, const struct rill_record *record);

/*
 * rill_record_decode - validate the record at the start of @buf and describe it.
 * @buf_bytes: bytes available; the record may be followed by others.
 * @out: filled on success (key and payload point into @buf); untouched on error.
 * @flags: 0 or RILL_RECORD_F_TRUSTED_CRC.
 * Returns the record's length (> 0) or one of RILL_E_RECORD_TRUNCATED, _TOO_LARGE,
 * _LENGTH, _VERSION, _RESERVED, _KEY_TOO_LONG, _PAYLOAD_TOO_LONG or _CRC.
 */
int rill_record_decode(const void *buf, size_t buf_bytes, struct rill_record *out, unsigned flags);

/* rill_crc32c - CRC32C (Castagnoli, as iSCSI and ext4) of @bytes bytes at @data. */
uint32_t rill_crc32c(const void *data, size_t bytes);

/* rill_key_hash - the 64-bit XXH3 hash of a key, which picks its partition. */
uint64_t rill_key_hash(const void *key, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* RILL_RECORD_H */
