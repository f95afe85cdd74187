/*
 * The native wire protocol's codec: frames between a rill client and a rill server over
 * TCP. Pure functions over caller buffers: no I/O, no allocation, no global state; any
 * thread. The decoder is the server's first line of defence: it never reads past the bytes
 * it is given, never trusts a length field, and gives every malformed input its own
 * RILL_E_WIRE_* code. docs/PROTOCOL.md describes the same layouts for implementers.
 *
 * A frame is a 16-byte header and a body, every integer little-endian:
 *
 *    0       4       6       8                      16
 *    +-------+-------+-------+----------------------+------------------------+
 *    | body  | type  | flags |      request_id      | body (body_bytes)      |
 *    | bytes |  u16  |  u16  |         u64          |                        |
 *    +-------+-------+-------+----------------------+------------------------+
 *
 * body_bytes is at most the frame limit the server announced (RILL_WIRE_FRAME_BYTES_MAX at
 * most, 1 MiB by default); flags are 0 (reserved). request_id is the client's: every reply
 * to a request carries it, and EVENTS frames carry their SUBSCRIBE's. Bodies by type:
 *
 *   HELLO       c→s  u32 magic "RILL", u16 version_min, u16 version_max, u32 flags (0),
 *                    u32 reserved (0)                                          (16 bytes)
 *   HELLO_OK    s→c  u16 version, u16 shards, u32 frame_bytes_max, u32 inflight_bytes_max,
 *                    u32 reserved                                              (16 bytes)
 *   PRODUCE     c→s  u8 acks (0 none, 1 applied, 2 durable), u8 reserved, u16 topic_bytes,
 *                    u32 event_count, topic, then event_count event records exactly
 *                    (include/rill/record.h layout, CRC32C each), nothing after them
 *   ACK         s→c  u32 count, u32 reserved, then count entries: i32 error, u32 partition,
 *                    u64 offset, u32 event_count, u16 flags (bit 0: duplicate),
 *                    u16 reason_bytes, reason text (not NUL-terminated)
 *   SUBSCRIBE   c→s  u16 topic_bytes, u8 from (enum rill_wire_from), u8 flags (0),
 *                    u32 partition (RILL_WIRE_PARTITION_ALL: every one), u64 from_value
 *                    (offset or timestamp in ns), u32 credit (events), u32 reserved, topic
 *                    (the SUBSCRIBE's credit is added to the connection's likewise)
 *   SUBSCRIBED  s→c  u32 count, u32 reserved, then count entries: u32 partition,
 *                    u32 reserved, u64 first_offset (where the feed starts),
 *                    u64 end_offset (the partition's next offset when it subscribed)
 *   FETCH       c→s  u32 credit (events), u32 reserved: request_id names one of the
 *                    connection's subscriptions; the credit is the connection's, shared
 *                    by all its subscriptions
 *   EVENTS      s→c  u32 partition, u32 count, then count times: u64 offset, event record
 *   QUERY       c→s  u16 name_bytes, u16 key_bytes, u8 flags (RILL_WIRE_QUERY_F_*),
 *                    u8 reserved[3], u64 as_of (offset, or timestamp in ns), u32
 *                    token_partition, u32 timeout_ms (0: the server's default),
 *                    u64 token_offset, name, key
 *   RESULT      s→c  u64 count, i64 i64, u64 u64, f64 f64, f64 avg, u64 window_start_ns,
 *                    u64 offset, u8 is_float, u8 sum_overflow, u8 reserved[6] (64 bytes)
 *   ADMIN       c→s  u16 op (enum rill_wire_admin_op), u16 reserved, u32 json_bytes, JSON
 *   ADMIN_OK    s→c  u32 json_bytes, u32 reserved, JSON
 *   ERROR       s→c  i32 code (negative: -errno or RILL_E_*, rill_strerror), u16 message_bytes, u16 flags (bit 0: fatal,
 *                    the server closes the connection after it), message text
 *   UNSUBSCRIBE c→s  empty: ends the subscription request_id names
 *   PING / PONG      empty: a round trip; PONG echoes the request_id
 *
 * The first frame on a connection is HELLO, answered by HELLO_OK (or a fatal ERROR); the
 * version is the highest both sides speak.
 */
#ifndef RILL_IO_WIRE_H
#define RILL_IO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "rill/error.h"
#include "rill/projection.h"
#include "rill/record.h"
#include "rill/rill.h"

#define RILL_WIRE_MAGIC           0x4c4c4952u /* "RILL" read as a little-endian u32 */
#define RILL_WIRE_VERSION         1u
#define RILL_WIRE_HEADER_BYTES    16u
#define RILL_WIRE_FRAME_BYTES_MAX (16u << 20) /* the most a server may be configured to */
#define RILL_WIRE_FRAME_BYTES_MIN                                                                  \
	(64u << 10)                      /* the least a server may be set to; the
						 * largest event a frame carries is the limit
						 * less its frame's own fields */
#define RILL_WIRE_TOPIC_BYTES_MAX   128u /* as RILL_ENGINE_NAME_BYTES_MAX */
#define RILL_WIRE_NAME_BYTES_MAX    128u
#define RILL_WIRE_REASON_BYTES_MAX  1024u
#define RILL_WIRE_MESSAGE_BYTES_MAX 1024u
#define RILL_WIRE_PARTITION_ALL     0xffffffffu

/* Fixed sizes of the parts above. */
#define RILL_WIRE_HELLO_BYTES        16u
#define RILL_WIRE_HELLO_OK_BYTES     16u
#define RILL_WIRE_PRODUCE_BYTES_MIN  8u  /* before the topic */
#define RILL_WIRE_ACK_BYTES_MIN      8u  /* before the entries */
#define RILL_WIRE_ACK_ENTRY_BYTES    24u /* before the reason */
#define RILL_WIRE_SUBSCRIBE_BYTES    24u /* before the topic */
#define RILL_WIRE_SUBSCRIBED_BYTES   8u  /* before the entries */
#define RILL_WIRE_SUBSCRIBED_ENTRY   24u
#define RILL_WIRE_FETCH_BYTES        8u
#define RILL_WIRE_EVENTS_BYTES_MIN   8u /* before the events */
#define RILL_WIRE_EVENT_BYTES_MIN    8u /* each event's offset, before its record */
#define RILL_WIRE_QUERY_BYTES_MIN    32u
#define RILL_WIRE_RESULT_BYTES       64u
#define RILL_WIRE_ADMIN_BYTES_MIN    8u
#define RILL_WIRE_ADMIN_OK_BYTES_MIN 8u
#define RILL_WIRE_ERROR_BYTES_MIN    8u

enum rill_wire_type {
	RILL_WIRE_HELLO = 1,
	RILL_WIRE_HELLO_OK = 2,
	RILL_WIRE_PRODUCE = 3,
	RILL_WIRE_ACK = 4,
	RILL_WIRE_SUBSCRIBE = 5,
	RILL_WIRE_SUBSCRIBED = 6,
	RILL_WIRE_FETCH = 7,
	RILL_WIRE_EVENTS = 8,
	RILL_WIRE_QUERY = 9,
	RILL_WIRE_RESULT = 10,
	RILL_WIRE_ADMIN = 11,
	RILL_WIRE_ADMIN_OK = 12,
	RILL_WIRE_ERROR = 13,
	RILL_WIRE_UNSUBSCRIBE = 14,
	RILL_WIRE_PING = 15,
	RILL_WIRE_PONG = 16,
	RILL_WIRE_TYPE_LAST = 17,
};

enum rill_wire_from {
	RILL_WIRE_FROM_OFFSET = 0,
	RILL_WIRE_FROM_TIMESTAMP = 1,
	RILL_WIRE_FROM_EARLIEST = 2,
	RILL_WIRE_FROM_LATEST = 3,
};

#define RILL_WIRE_QUERY_F_AS_OF_OFFSET    1u /* as_of is an offset */
#define RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP 2u /* as_of is a timestamp (ns) */
#define RILL_WIRE_QUERY_F_TOKEN           4u /* wait until token_offset is applied */
#define RILL_WIRE_QUERY_F_ALL             7u

#define RILL_WIRE_ACK_F_DUPLICATE 1u
#define RILL_WIRE_ERROR_F_FATAL   1u

/*
 * Administration: the JSON each op takes and answers (docs/PROTOCOL.md has examples).
 *   TOPIC_CREATE       {"name","partitions","durability":"none|group"} → {"name","partitions","durability"}
 *   SCHEMA_REGISTER    {"schema":{definition},"compat":"MODE"?} → {"type","version","type_id"}
 *   PROJECTION_CREATE  {"name","topic","type","version"?,"kind","field"?,"window_ns"?} → {"name"}
 *   STAT               {} → {"shards":[{counters, latency histograms}], ...}
 *   SCHEMAS            {} → {"schemas":[{"type_id","definition":{...}}, ...]}: every
 *                      version of every type (one too large for a frame: {"type_id",
 *                      "type","version","too_large":true,"definition_bytes"})
 *   TOPIC_INFO         {"name","partitions_from"?} → {"name","partitions","durability"};
 *                      with "partitions_from": P, also "partitions_info":[{"partition",
 *                      "first_offset","next_offset","durable_offset"}, ...] from P, a
 *                      page, and "partitions_more"
 *   GROUP_COMMIT       {"group","topic","partition","offset"} → {}
 *   GROUP_FETCH        {"group","topic"} → {"offsets":[{"partition","offset"}, ...]}
 *   GROUP_DELETE       {"group"} → {}: the group and every position in it
 *   TOPICS             {"after"?} → {"topics":[{as TOPIC_INFO}, ...],"more"}: a page
 *                      in name order (byte order) of the names after "after"
 *   PROJECTIONS        {"after"?} → {"projections":[{"name","topic","type","version",
 *                      "kind","field","window_ns"}, ...],"more"}: a page, as TOPICS
 */
enum rill_wire_admin_op {
	RILL_WIRE_ADMIN_TOPIC_CREATE = 1,
	RILL_WIRE_ADMIN_SCHEMA_REGISTER = 2,
	RILL_WIRE_ADMIN_PROJECTION_CREATE = 3,
	RILL_WIRE_ADMIN_STAT = 4,
	RILL_WIRE_ADMIN_SCHEMAS = 5,
	RILL_WIRE_ADMIN_TOPIC_INFO = 6,
	RILL_WIRE_ADMIN_GROUP_COMMIT = 7,
	RILL_WIRE_ADMIN_GROUP_FETCH = 8,
	RILL_WIRE_ADMIN_GROUP_DELETE = 9,
	RILL_WIRE_ADMIN_TOPICS = 10,
	RILL_WIRE_ADMIN_PROJECTIONS = 11,
	RILL_WIRE_ADMIN_OP_LAST = 12,
};

struct rill_wire_header {
	uint32_t body_bytes;
	uint16_t type; /* enum rill_wire_type */
	uint16_t flags;
	uint64_t request_id;
};

struct rill_wire_hello {
	uint16_t version_min, version_max;
};

struct rill_wire_hello_ok {
	uint16_t version;
	uint16_t shards;
	uint32_t frame_bytes_max;
	uint32_t inflight_bytes_max;
};

/* A decoded PRODUCE: every record in it has been checked (CRC included). */
struct rill_wire_produce {
	uint8_t acks;
	const char *topic; /* into the body; topic_bytes long, not NUL-terminated */
	uint16_t topic_bytes;
	uint32_t event_count;
	const uint8_t *records; /* the first record; records_bytes of them */
	uint32_t records_bytes;
};

struct rill_wire_ack_entry {
	int32_t error;
	uint32_t partition;
	uint64_t offset;
	uint32_t event_count;
	uint16_t flags;
	const char *reason; /* reason_bytes of text; may be NULL when reason_bytes is 0 */
	uint16_t reason_bytes;
};

struct rill_wire_subscribe {
	const char *topic;
	uint16_t topic_bytes;
	uint8_t from; /* enum rill_wire_from */
	uint32_t partition;
	uint64_t from_value;
	uint32_t credit;
};

struct rill_wire_subscribed_entry {
	uint32_t partition;
	uint64_t first_offset;
	uint64_t end_offset;
};

struct rill_wire_query {
	const char *name;
	uint16_t name_bytes;
	const void *key;
	uint16_t key_bytes;
	uint8_t flags; /* RILL_WIRE_QUERY_F_*; AS_OF_OFFSET and AS_OF_TIMESTAMP exclude each other */
	uint64_t as_of;
	uint32_t token_partition;
	uint32_t timeout_ms;
	uint64_t token_offset;
};

struct rill_wire_admin {
	uint16_t op; /* enum rill_wire_admin_op */
	const char *json;
	uint32_t json_bytes;
};

struct rill_wire_error {
	int32_t code;
	uint16_t flags;
	const char *message;
	uint16_t message_bytes;
};

/*
 * A cursor over a sequence of variable-length entries (ACK entries, SUBSCRIBED entries,
 * EVENTS events). Set up by the frame's decode function; the _next functions return 1 with
 * the next entry, 0 at the end, or an error for a malformed entry.
 */
struct rill_wire_iter {
	const uint8_t *at;
	const uint8_t *end;
	uint32_t left; /* entries still to come */
};

/* ---- Header ------------------------------------------------------------------------- */

/*
 * rill_wire_header_decode - the header at the start of @buf (@bytes available).
 * @frame_bytes_max: the largest body this side accepts.
 * Returns 0 with @out filled, -EAGAIN when fewer than RILL_WIRE_HEADER_BYTES are there,
 * RILL_E_WIRE_TYPE (unknown type), RILL_E_WIRE_RESERVED (flags set) or RILL_E_WIRE_TOO_LARGE
 * (body over @frame_bytes_max).
 */
int rill_wire_header_decode(const void *buf, size_t bytes, uint32_t frame_bytes_max,
			    struct rill_wire_header *out);

/*
 * rill_wire_body_check - what a client frame's header alone says wrong about its body: a
 * HELLO, FETCH, UNSUBSCRIBE or PING whose body_bytes is not its one size. Returns 0 (or
 * for other types, whose bodies vary), RILL_E_WIRE_TRUNCATED or RILL_E_WIRE_TRAILING: the
 * codes the body's decoder would give, known before a byte of the body is read.
 */
int rill_wire_body_check(const struct rill_wire_header *h);

/* rill_wire_header_encode - write a header at @buf (RILL_WIRE_HEADER_BYTES). */
void rill_wire_header_encode(void *buf, uint16_t type, uint64_t request_id, uint32_t body_bytes);

/* ---- Bodies ------------------------------------------------------------------------- */
/*
 * Every _decode takes the body (@body, @bytes: body_bytes of the header) and returns 0 with
 * @out filled (pointers into @body), or RILL_E_WIRE_TRUNCATED (shorter than its fixed part
 * or its own lengths say), RILL_E_WIRE_TRAILING (bytes left after what its lengths say),
 * RILL_E_WIRE_RESERVED (a reserved field not 0), RILL_E_WIRE_VALUE (a field out of its
 * range: an unknown acks or from or op, a name too long or empty, conflicting flags), or
 * the frame-specific codes below. Every _encode writes the whole frame, header included,
 * into @buf and returns its length, or -ENOSPC when @buf_bytes is too small (nothing
 * useful written) or -EINVAL for an argument over a limit.
 */

/* HELLO: also RILL_E_WIRE_MAGIC for a wrong magic (not a rill client). */
int rill_wire_hello_decode(const void *body, uint32_t bytes, struct rill_wire_hello *out);
int rill_wire_hello_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			   const struct rill_wire_hello *hello);

int rill_wire_hello_ok_decode(const void *body, uint32_t bytes, struct rill_wire_hello_ok *out);
int rill_wire_hello_ok_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			      const struct rill_wire_hello_ok *ok);

/*
 * PRODUCE: checks every record with rill_record_decode (CRC included) and that exactly
 * event_count records fill the rest of the body: also RILL_E_WIRE_COUNT (fewer or more
 * records than event_count, or event_count 0) and the record's own RILL_E_RECORD_* code.
 * @bad_index (optional) gets the index of the first bad record.
 */
int rill_wire_produce_decode(const void *body, uint32_t bytes, struct rill_wire_produce *out,
			     uint32_t *bad_index);
/* The records of a decoded PRODUCE, in order; 1, or 0 at the end (they were checked). */
void rill_wire_produce_iter(const struct rill_wire_produce *p, struct rill_wire_iter *it);
int rill_wire_produce_next(struct rill_wire_iter *it, struct rill_record *out);

/*
 * Building a PRODUCE frame in place: _begin writes the header and the fixed part and
 * returns the offset where the first record goes (or -ENOSPC, -EINVAL); the caller encodes
 * records after it with rill_record_encode; _finish writes event_count and the header's
 * body length for a frame of @frame_bytes bytes in all.
 */
int rill_wire_produce_begin(void *buf, size_t buf_bytes, uint64_t request_id, uint8_t acks,
			    const char *topic, size_t topic_bytes);
void rill_wire_produce_finish(void *buf, uint32_t frame_bytes, uint32_t event_count);

/* ACK: decode checks the fixed part and sets up the iterator over the entries. */
int rill_wire_ack_decode(const void *body, uint32_t bytes, uint32_t *count,
			 struct rill_wire_iter *it);
int rill_wire_ack_next(struct rill_wire_iter *it, struct rill_wire_ack_entry *out);
/* Building an ACK: _begin (header + fixed part; returns the offset of the first entry),
 * _entry appends one at @at (returns the new end, or -ENOSPC), _finish closes it. */
int rill_wire_ack_begin(void *buf, size_t buf_bytes, uint64_t request_id);
int rill_wire_ack_entry(void *buf, size_t buf_bytes, size_t at,
			const struct rill_wire_ack_entry *entry);
void rill_wire_ack_finish(void *buf, uint32_t frame_bytes, uint32_t count);
/* The bytes an entry with @reason_bytes of reason takes. */
uint32_t rill_wire_ack_entry_bytes(uint32_t reason_bytes);

int rill_wire_subscribe_decode(const void *body, uint32_t bytes, struct rill_wire_subscribe *out);
int rill_wire_subscribe_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			       const struct rill_wire_subscribe *sub);

int rill_wire_subscribed_decode(const void *body, uint32_t bytes, uint32_t *count,
				struct rill_wire_iter *it);
int rill_wire_subscribed_next(struct rill_wire_iter *it, struct rill_wire_subscribed_entry *out);
int rill_wire_subscribed_encode(void *buf, size_t buf_bytes, uint64_t request_id,
				const struct rill_wire_subscribed_entry *entries, uint32_t count);

int rill_wire_fetch_decode(const void *body, uint32_t bytes, uint32_t *credit);
int rill_wire_fetch_encode(void *buf, size_t buf_bytes, uint64_t request_id, uint32_t credit);

/* EVENTS: the records are checked one by one as the iterator reaches them. */
int rill_wire_events_decode(const void *body, uint32_t bytes, uint32_t *partition, uint32_t *count,
			    struct rill_wire_iter *it);
int rill_wire_events_next(struct rill_wire_iter *it, uint64_t *offset, struct rill_record *out);
/* Building EVENTS: _begin returns the offset of the first event; _add copies @record_bytes
 * bytes of an encoded record (from the log) after its offset, returning the new end or
 * -ENOSPC; _finish writes count and the body length. */
int rill_wire_events_begin(void *buf, size_t buf_bytes, uint64_t request_id, uint32_t partition);
int rill_wire_events_add(void *buf, size_t buf_bytes, size_t at, uint64_t offset,
			 const void *record, uint32_t record_bytes);
void rill_wire_events_finish(void *buf, uint32_t frame_bytes, uint32_t count);

/* The largest record one EVENTS frame can carry alone under a frame limit of
 * @frame_bytes_max (body bytes): a larger one could never reach a subscriber. */
static inline uint32_t rill_wire_events_record_max(uint32_t frame_bytes_max)
{
	return frame_bytes_max - RILL_WIRE_EVENTS_BYTES_MIN - RILL_WIRE_EVENT_BYTES_MIN;
}

int rill_wire_query_decode(const void *body, uint32_t bytes, struct rill_wire_query *out);
int rill_wire_query_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			   const struct rill_wire_query *q);

int rill_wire_result_decode(const void *body, uint32_t bytes, struct rill_projection_value *out);
int rill_wire_result_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			    const struct rill_projection_value *v);

int rill_wire_admin_decode(const void *body, uint32_t bytes, struct rill_wire_admin *out);
int rill_wire_admin_encode(void *buf, size_t buf_bytes, uint64_t request_id, uint16_t op,
			   const char *json, size_t json_bytes);

/* ADMIN_OK: @json points into @body, @json_bytes long (not NUL-terminated). */
int rill_wire_admin_ok_decode(const void *body, uint32_t bytes, const char **json,
			      uint32_t *json_bytes);
int rill_wire_admin_ok_encode(void *buf, size_t buf_bytes, uint64_t request_id, const char *json,
			      size_t json_bytes);

int rill_wire_error_decode(const void *body, uint32_t bytes, struct rill_wire_error *out);
/* @message is cut at RILL_WIRE_MESSAGE_BYTES_MAX bytes. */
int rill_wire_error_encode(void *buf, size_t buf_bytes, uint64_t request_id, int32_t code,
			   uint16_t flags, const char *message);

/* Frames with an empty body: UNSUBSCRIBE, PING, PONG. decode: RILL_E_WIRE_TRAILING when
 * the body is not empty. */
int rill_wire_empty_decode(uint32_t bytes);
int rill_wire_empty_encode(void *buf, size_t buf_bytes, uint16_t type, uint64_t request_id);

/* rill_wire_event - a record taken off the wire (TCP or UDP) as an event to publish, its
 * latency counted from @ingress_ns. A record the sender left unstamped (timestamp 0) gets
 * the wall clock, read into *@wall_ns by the first such record and shared by the rest the
 * caller passes the same cache for (0 before it is read): one read per batch, not per
 * event (on the development VM a read costs about 35 ns). */
static inline struct rill_event rill_wire_event(const struct rill_record *rec, uint64_t ingress_ns,
						uint64_t *wall_ns)
{
	uint64_t timestamp_ns = rec->timestamp_ns;
	if (timestamp_ns == 0) {
		if (*wall_ns == 0)
			*wall_ns = rill_clock_wall_ns();
		timestamp_ns = *wall_ns;
	}
	return (struct rill_event){.key = rec->key,
				   .key_bytes = rec->key_bytes,
				   .type_id = rec->type_id,
				   .version = rec->schema_version,
				   .payload = rec->payload,
				   .payload_bytes = rec->payload_bytes,
				   .sequence = rec->sequence,
				   .producer_id = rec->producer_id,
				   .timestamp_ns = timestamp_ns,
				   .correlation_id = rec->correlation_id,
				   .causation_id = rec->causation_id,
				   .ingress_ns = ingress_ns};
}

/* rill_wire_type_name - "PRODUCE", ..., or "unknown". */
const char *rill_wire_type_name(uint16_t type);

#endif /* RILL_IO_WIRE_H */
