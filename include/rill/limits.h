/*
 * Every limit in rill, in one place (STYLE rule 14). Each maximum is named here and the
 * relationships between them are checked at compile time below, so raising one limit
 * cannot silently break another. Units are in the names.
 */
#ifndef RILL_LIMITS_H
#define RILL_LIMITS_H

/* Event records (include/rill/record.h). */
#define RILL_RECORD_HEADER_BYTES 64u        /* fixed header, one cache line */
#define RILL_RECORD_BYTES_MAX    (1u << 20) /* whole record: header+key+payload */
#define RILL_KEY_BYTES_MAX       4096u      /* partition key */
#define RILL_PAYLOAD_BYTES_MAX   (RILL_RECORD_BYTES_MAX - RILL_RECORD_HEADER_BYTES)

/* SPSC rings (engine/ring.h). */
#define RILL_RING_SLOTS_MAX      (1u << 24) /* slots per ring */
#define RILL_RING_SLOT_BYTES_MAX 4096u      /* bytes per fixed-size slot */
#define RILL_RING_BURST_MAX      256u       /* items per burst call */
/* One zero-copy reservation: a whole record and its ring message's own header. */
#define RILL_RING_RESERVE_BYTES_MAX ((1u << 20) + 4096u)

/* Per-shard memory (alloc/). */
#define RILL_POOL_OBJECTS_MAX      (1u << 24)
#define RILL_POOL_OBJECT_BYTES_MAX (1u << 20)
#define RILL_HUGE_PAGE_BYTES       (2u << 20)

/* Schemas (include/rill/schema.h). */
#define RILL_SCHEMA_FIELDS_MAX     256u         /* fields per schema version */
#define RILL_SCHEMA_NAME_BYTES_MAX 128u         /* type, field and symbol names */
#define RILL_SCHEMA_SYMBOLS_MAX    1024u        /* symbols per enum */
#define RILL_SCHEMA_DOC_BYTES_MAX  4096u        /* one doc string */
#define RILL_SCHEMA_VERSIONS_MAX   1024u        /* versions per type */
#define RILL_SCHEMA_TYPES_MAX      4096u        /* types per registry */
#define RILL_SCHEMA_JSON_BYTES_MAX (256u << 10) /* one definition's JSON text */
/* The registry's log, whole: every definition and every mode change, each counted at what
 * its record takes there (a 512-byte sector at least; nothing is ever deleted from it). */
#define RILL_SCHEMA_REGISTRY_BYTES_MAX (64u << 20)

/* _Static_assert is C11's; C++ (these headers serve both) spells it static_assert. */
#ifdef __cplusplus
#define RILL_LIMITS_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define RILL_LIMITS_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

RILL_LIMITS_ASSERT(RILL_KEY_BYTES_MAX <= 0xffffu, "key length must fit the 16-bit header field");
RILL_LIMITS_ASSERT(RILL_RECORD_HEADER_BYTES + RILL_KEY_BYTES_MAX < RILL_RECORD_BYTES_MAX,
		   "a record with the longest key must still fit the record limit");
RILL_LIMITS_ASSERT((RILL_RING_SLOTS_MAX & (RILL_RING_SLOTS_MAX - 1)) == 0,
		   "ring slot maximum must be a power of two");
RILL_LIMITS_ASSERT(RILL_RING_RESERVE_BYTES_MAX >= RILL_RECORD_BYTES_MAX + 256u,
		   "a whole record, with a ring message's header, must fit one ring reservation");
RILL_LIMITS_ASSERT(RILL_POOL_OBJECT_BYTES_MAX >= RILL_RECORD_BYTES_MAX,
		   "a pool object can hold a whole record");

RILL_LIMITS_ASSERT(RILL_SCHEMA_VERSIONS_MAX <= 0xffffu, "versions must fit the record's 16 bits");
RILL_LIMITS_ASSERT(RILL_SCHEMA_SYMBOLS_MAX <= 0x10000u, "enum indexes are stored in 16 bits");
RILL_LIMITS_ASSERT(8u + 8u * RILL_SCHEMA_FIELDS_MAX <= RILL_PAYLOAD_BYTES_MAX,
		   "the largest fixed block must fit a payload");
RILL_LIMITS_ASSERT(RILL_SCHEMA_JSON_BYTES_MAX <= RILL_PAYLOAD_BYTES_MAX,
		   "a definition is stored as one record of the registry's log");
RILL_LIMITS_ASSERT(RILL_SCHEMA_NAME_BYTES_MAX <= RILL_KEY_BYTES_MAX,
		   "a type name is the key of its registry records");
RILL_LIMITS_ASSERT(RILL_SCHEMA_JSON_BYTES_MAX * 64u <= RILL_SCHEMA_REGISTRY_BYTES_MAX,
		   "the registry holds many definitions of the largest size");

#endif /* RILL_LIMITS_H */
