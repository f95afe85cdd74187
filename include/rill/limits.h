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
#define RILL_RING_SLOTS_MAX         (1u << 24) /* slots per ring */
#define RILL_RING_SLOT_BYTES_MAX    4096u      /* bytes per fixed-size slot */
#define RILL_RING_BURST_MAX         256u       /* items per burst call */
#define RILL_RING_RESERVE_BYTES_MAX (1u << 20) /* one zero-copy reservation */

/* Per-shard memory (alloc/). */
#define RILL_POOL_OBJECTS_MAX      (1u << 24)
#define RILL_POOL_OBJECT_BYTES_MAX (1u << 20)
#define RILL_HUGE_PAGE_BYTES       (2u << 20)

_Static_assert(RILL_KEY_BYTES_MAX <= 0xffffu, "key length must fit the 16-bit header field");
_Static_assert(RILL_RECORD_HEADER_BYTES + RILL_KEY_BYTES_MAX < RILL_RECORD_BYTES_MAX,
	       "a record with the longest key must still fit the record limit");
_Static_assert((RILL_RING_SLOTS_MAX & (RILL_RING_SLOTS_MAX - 1)) == 0,
	       "ring slot maximum must be a power of two");
_Static_assert(RILL_RING_RESERVE_BYTES_MAX >= RILL_RECORD_BYTES_MAX,
	       "a whole record must fit one ring reservation");
_Static_assert(RILL_POOL_OBJECT_BYTES_MAX >= RILL_RECORD_BYTES_MAX,
	       "a pool object can hold a whole record");

#endif /* RILL_LIMITS_H */
