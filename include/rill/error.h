/*
 * rill's own error codes. Every rill action returns 0 or a negative code: either -errno
 * (a system error such as -ENOMEM or -EAGAIN) or one of the RILL_E_* codes below, which
 * live in their own range (below -RILL_E_BASE) so they never collide with errno values.
 * rill_strerror() names both kinds. Thread-safe, never blocks.
 */
#ifndef RILL_ERROR_H
#define RILL_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* errno values on Linux stay below 4096; rill's codes start well past them. */
#define RILL_E_BASE 10000

enum rill_error {
	/* Event record codec (include/rill/record.h). */
	RILL_E_RECORD_TRUNCATED = -(RILL_E_BASE + 1), /* buffer ends before the record does */
	RILL_E_RECORD_TOO_LARGE = -(RILL_E_BASE + 2), /* length field above RILL_RECORD_BYTES_MAX */
	RILL_E_RECORD_LENGTH = -(RILL_E_BASE + 3),    /* length field disagrees with key+payload */
	RILL_E_RECORD_CRC = -(RILL_E_BASE + 4),       /* CRC32C mismatch */
	RILL_E_RECORD_VERSION = -(RILL_E_BASE + 5),   /* unknown record format version */
	RILL_E_RECORD_RESERVED = -(RILL_E_BASE + 6),  /* reserved bits or flags set */
	RILL_E_RECORD_KEY_TOO_LONG = -(RILL_E_BASE + 7),     /* key above RILL_KEY_BYTES_MAX */
	RILL_E_RECORD_NO_SPACE = -(RILL_E_BASE + 8),         /* encode: output buffer too small */
	RILL_E_RECORD_PAYLOAD_TOO_LONG = -(RILL_E_BASE + 9), /* payload above the limit */
	/* The log (engine/log.h). */
	RILL_E_LOG_CORRUPT = -(RILL_E_BASE + 10), /* damage recovery may not repair */
	RILL_E_LOG_FORMAT = -(RILL_E_BASE + 11),  /* unknown on-disk format version */
	/* Schemas (include/rill/schema.h). */
	RILL_E_SCHEMA_INVALID = -(RILL_E_BASE + 12),      /* malformed schema definition */
	RILL_E_SCHEMA_INCOMPATIBLE = -(RILL_E_BASE + 13), /* breaks the type's compat mode */
	RILL_E_SCHEMA_CONFLICT = -(RILL_E_BASE + 14),     /* version taken or out of order */
	RILL_E_SCHEMA_UPCAST = -(RILL_E_BASE + 15),       /* no way to read it as the version */
	RILL_E_PAYLOAD_INVALID = -(RILL_E_BASE + 16),     /* payload breaks its schema */
	RILL_E_JSON_INVALID = -(RILL_E_BASE + 17),        /* JSON does not fit the schema */
	/* Projections (engine/projection.h). */
	RILL_E_PROJECTION_SNAPSHOT = -(RILL_E_BASE + 18), /* not a sound snapshot of it */
	/* The write model (engine/partition.h). */
	RILL_E_WRITE_UNKNOWN_TYPE = -(RILL_E_BASE + 19), /* type or version not registered */
	RILL_E_WRITE_SEQUENCE = -(RILL_E_BASE + 20),     /* producer sequence cannot be checked */
	/* The engine (include/rill/rill.h). */
	RILL_E_QUERY_STALE = -(RILL_E_BASE + 21),     /* the token's offset not applied in time */
	RILL_E_COMMAND_REFUSED = -(RILL_E_BASE + 22), /* a command handler refused it */
	/* The wire protocol (io/wire.h). */
	RILL_E_WIRE_TRUNCATED = -(RILL_E_BASE + 23), /* a frame shorter than its lengths say */
	RILL_E_WIRE_TOO_LARGE = -(RILL_E_BASE + 24), /* a frame over the frame limit */
	RILL_E_WIRE_TYPE = -(RILL_E_BASE + 25),      /* unknown or unexpected frame type */
	RILL_E_WIRE_RESERVED = -(RILL_E_BASE + 26),  /* a reserved field or flag set */
	RILL_E_WIRE_VALUE = -(RILL_E_BASE + 27),     /* a field out of its range */
	RILL_E_WIRE_MAGIC = -(RILL_E_BASE + 28),     /* not a rill client (bad magic) */
	RILL_E_WIRE_COUNT = -(RILL_E_BASE + 29),     /* event count disagrees with the body */
	RILL_E_WIRE_TRAILING = -(RILL_E_BASE + 30),  /* bytes after the frame's contents */
	RILL_E_WIRE_VERSION = -(RILL_E_BASE + 31),   /* no protocol version in common */
	/* The write model, again (added later: codes are never renumbered). */
	RILL_E_WRITE_SEQUENCE_GAP = -(RILL_E_BASE + 32), /* an earlier sequence is missing */
	/* A partition whose log stopped (fail-stop after a write, sync or roll error). */
	RILL_E_LOG_STOPPED = -(RILL_E_BASE + 33), /* its state past the durable point is lost */
	/* The engine holds config.groups_max consumer groups: a new one is refused (no errno:
	 * ENOSPC and EDQUOT are the disk's, and a group file's write can meet either). */
	RILL_E_GROUPS_FULL = -(RILL_E_BASE + 34),
	RILL_E_LAST = -(RILL_E_BASE + 35),
};

/*
 * rill_strerror - a static, human-readable description of @code.
 * @code: 0, a negative errno value or a RILL_E_* code.
 * Returns a string that lives for the whole program; unknown codes get a generic text.
 */
const char *rill_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif /* RILL_ERROR_H */
