/*
 * The native wire protocol's codec (layouts in io/wire.h and docs/PROTOCOL.md). It owns no
 * state: every function works on the caller's buffers, allocates nothing and runs on any
 * thread (the server's connection loop, the client's caller). Hot path: every frame in or
 * out passes through here once, and a PRODUCE body's records are checked here, CRC
 * included, so nothing downstream checks them again.
 *
 * The decoders face untrusted bytes. Each body is checked in one order, so that no byte is
 * read before it is known to be there and each malformed input gets its own code:
 *   1. the fixed part is there                              RILL_E_WIRE_TRUNCATED
 *   2. reserved fields and undefined flag bits are 0        RILL_E_WIRE_RESERVED
 *   3. each field within its range, lengths within limits   RILL_E_WIRE_VALUE
 *   4. the lengths against the body, summed in 64 bits      RILL_E_WIRE_TRUNCATED, _TRAILING
 *   5. the contents: names without NUL, records that decode RILL_E_WIRE_VALUE, RILL_E_RECORD_*
 * (HELLO checks its magic first of all its fields: a stranger hears RILL_E_WIRE_MAGIC.) A
 * body decoder fills its output only on success. The encoders refuse (-EINVAL) whatever
 * the decoders refuse, so every frame rill writes is one rill reads.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/compiler.h"
#include "engine/projection.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/rill.h"

/* The client's public names for the admin ops are the wire's numbers. */
_Static_assert((int)RILL_ADMIN_TOPIC_CREATE == (int)RILL_WIRE_ADMIN_TOPIC_CREATE &&
		       (int)RILL_ADMIN_SCHEMA_REGISTER == (int)RILL_WIRE_ADMIN_SCHEMA_REGISTER &&
		       (int)RILL_ADMIN_PROJECTION_CREATE ==
			       (int)RILL_WIRE_ADMIN_PROJECTION_CREATE &&
		       (int)RILL_ADMIN_STAT == (int)RILL_WIRE_ADMIN_STAT &&
		       (int)RILL_ADMIN_SCHEMAS == (int)RILL_WIRE_ADMIN_SCHEMAS &&
		       (int)RILL_ADMIN_TOPIC_INFO == (int)RILL_WIRE_ADMIN_TOPIC_INFO &&
		       (int)RILL_ADMIN_GROUP_COMMIT == (int)RILL_WIRE_ADMIN_GROUP_COMMIT &&
		       (int)RILL_ADMIN_GROUP_FETCH == (int)RILL_WIRE_ADMIN_GROUP_FETCH &&
		       (int)RILL_ADMIN_GROUP_DELETE == (int)RILL_WIRE_ADMIN_GROUP_DELETE &&
		       (int)RILL_ADMIN_TOPICS == (int)RILL_WIRE_ADMIN_TOPICS &&
		       (int)RILL_ADMIN_PROJECTIONS == (int)RILL_WIRE_ADMIN_PROJECTIONS,
	       "client.h and wire.h agree on the admin ops");

_Static_assert(RILL_WIRE_TOPIC_BYTES_MAX == RILL_ENGINE_NAME_BYTES_MAX,
	       "a topic on the wire is an engine topic name");
_Static_assert(RILL_WIRE_NAME_BYTES_MAX == RILL_PROJECTION_NAME_BYTES_MAX,
	       "a query's name on the wire is a projection name");
_Static_assert(RILL_WIRE_FRAME_BYTES_MIN <= RILL_WIRE_FRAME_BYTES_MAX, "frame limits ordered");
_Static_assert(RILL_WIRE_HEADER_BYTES + (uint64_t)RILL_WIRE_FRAME_BYTES_MAX <= INT_MAX,
	       "encoders return a whole frame's length as an int");
_Static_assert(RILL_WIRE_FRAME_BYTES_MIN >= RILL_WIRE_PRODUCE_BYTES_MIN +
						    RILL_WIRE_TOPIC_BYTES_MAX +
						    RILL_RECORD_HEADER_BYTES + RILL_KEY_BYTES_MAX,
	       "the smallest frame limit takes one event with the longest topic and key");
_Static_assert(RILL_WIRE_FRAME_BYTES_MIN >=
		       RILL_WIRE_QUERY_BYTES_MIN + RILL_WIRE_NAME_BYTES_MAX + RILL_KEY_BYTES_MAX,
	       "the smallest frame limit takes a query with the longest name and key");
_Static_assert(RILL_WIRE_FRAME_BYTES_MIN >= RILL_WIRE_ACK_BYTES_MIN + RILL_WIRE_ACK_ENTRY_BYTES +
						    RILL_WIRE_REASON_BYTES_MAX,
	       "the smallest frame limit takes an ACK entry with the longest reason");
_Static_assert(RILL_WIRE_FRAME_BYTES_MIN >= RILL_WIRE_ERROR_BYTES_MIN + RILL_WIRE_MESSAGE_BYTES_MAX,
	       "the smallest frame limit takes the longest ERROR");
_Static_assert(RILL_WIRE_REASON_BYTES_MAX <= UINT16_MAX &&
		       RILL_WIRE_MESSAGE_BYTES_MAX <= UINT16_MAX,
	       "reason and message lengths are 16-bit fields");
_Static_assert(RILL_WIRE_TOPIC_BYTES_MAX <= UINT16_MAX && RILL_WIRE_NAME_BYTES_MAX <= UINT16_MAX,
	       "name lengths are 16-bit fields");
_Static_assert(RILL_KEY_BYTES_MAX <= UINT16_MAX, "a query's key length is a 16-bit field");
_Static_assert(RILL_WIRE_QUERY_F_ALL ==
		       (RILL_WIRE_QUERY_F_AS_OF_OFFSET | RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP |
			RILL_WIRE_QUERY_F_TOKEN),
	       "F_ALL is every query flag");
_Static_assert(RILL_ACKS_NONE == 0 && RILL_ACKS_APPLIED == 1 && RILL_ACKS_DURABLE == 2,
	       "PRODUCE's acks byte is enum rill_acks");

/* Field offsets, as io/wire.h lays them out; each frame's last offset is its fixed size. */
enum { HDR_BODY_BYTES = 0, HDR_TYPE = 4, HDR_FLAGS = 6, HDR_REQUEST_ID = 8, HDR_END = 16 };
enum {
	HELLO_MAGIC = 0,
	HELLO_VERSION_MIN = 4,
	HELLO_VERSION_MAX = 6,
	HELLO_FLAGS = 8,
	HELLO_RESERVED = 12,
	HELLO_END = 16
};
enum {
	HOK_VERSION = 0,
	HOK_SHARDS = 2,
	HOK_FRAME_BYTES_MAX = 4,
	HOK_INFLIGHT_BYTES_MAX = 8,
	HOK_RESERVED = 12,
	HOK_END = 16
};
enum {
	PRODUCE_ACKS = 0,
	PRODUCE_RESERVED = 1,
	PRODUCE_TOPIC_BYTES = 2,
	PRODUCE_EVENT_COUNT = 4,
	PRODUCE_TOPIC = 8
};
enum { ACK_COUNT = 0, ACK_RESERVED = 4, ACK_ENTRIES = 8 };
enum {
	ACKE_ERROR = 0,
	ACKE_PARTITION = 4,
	ACKE_OFFSET = 8,
	ACKE_EVENT_COUNT = 16,
	ACKE_FLAGS = 20,
	ACKE_REASON_BYTES = 22,
	ACKE_REASON = 24
};
enum {
	SUB_TOPIC_BYTES = 0,
	SUB_FROM = 2,
	SUB_FLAGS = 3,
	SUB_PARTITION = 4,
	SUB_FROM_VALUE = 8,
	SUB_CREDIT = 16,
	SUB_RESERVED = 20,
	SUB_TOPIC = 24
};
enum { SUBD_COUNT = 0, SUBD_RESERVED = 4, SUBD_ENTRIES = 8 };
enum {
	SUBE_PARTITION = 0,
	SUBE_RESERVED = 4,
	SUBE_FIRST_OFFSET = 8,
	SUBE_END_OFFSET = 16,
	SUBE_END = 24
};
enum { FETCH_CREDIT = 0, FETCH_RESERVED = 4, FETCH_END = 8 };
enum { EV_PARTITION = 0, EV_COUNT = 4, EV_ENTRIES = 8 };
enum { EVE_OFFSET = 0, EVE_RECORD = 8 };
_Static_assert(EVE_RECORD == RILL_WIRE_EVENT_BYTES_MIN, "an event's fixed part");
enum {
	Q_NAME_BYTES = 0,
	Q_KEY_BYTES = 2,
	Q_FLAGS = 4,
	Q_RESERVED = 5,
	Q_AS_OF = 8,
	Q_TOKEN_PARTITION = 16,
	Q_TIMEOUT_MS = 20,
	Q_TOKEN_OFFSET = 24,
	Q_NAME = 32
};
enum {
	R_COUNT = 0,
	R_I64 = 8,
	R_U64 = 16,
	R_F64 = 24,
	R_AVG = 32,
	R_WINDOW_START_NS = 40,
	R_OFFSET = 48,
	R_IS_FLOAT = 56,
	R_SUM_OVERFLOW = 57,
	R_RESERVED = 58,
	R_END = 64
};
enum { ADMIN_OP = 0, ADMIN_RESERVED = 2, ADMIN_JSON_BYTES = 4, ADMIN_JSON = 8 };
enum { AOK_JSON_BYTES = 0, AOK_RESERVED = 4, AOK_JSON = 8 };
enum { ERR_CODE = 0, ERR_MESSAGE_BYTES = 4, ERR_FLAGS = 6, ERR_MESSAGE = 8 };

_Static_assert(HDR_END == RILL_WIRE_HEADER_BYTES, "header layout");
_Static_assert(HELLO_END == RILL_WIRE_HELLO_BYTES && HOK_END == RILL_WIRE_HELLO_OK_BYTES,
	       "HELLO layouts");
_Static_assert(PRODUCE_TOPIC == RILL_WIRE_PRODUCE_BYTES_MIN, "PRODUCE layout");
_Static_assert(ACK_ENTRIES == RILL_WIRE_ACK_BYTES_MIN && ACKE_REASON == RILL_WIRE_ACK_ENTRY_BYTES,
	       "ACK layout");
_Static_assert(SUB_TOPIC == RILL_WIRE_SUBSCRIBE_BYTES, "SUBSCRIBE layout");
_Static_assert(SUBD_ENTRIES == RILL_WIRE_SUBSCRIBED_BYTES && SUBE_END == RILL_WIRE_SUBSCRIBED_ENTRY,
	       "SUBSCRIBED layout");
_Static_assert(FETCH_END == RILL_WIRE_FETCH_BYTES && EV_ENTRIES == RILL_WIRE_EVENTS_BYTES_MIN,
	       "FETCH and EVENTS layouts");
_Static_assert(Q_NAME == RILL_WIRE_QUERY_BYTES_MIN && R_END == RILL_WIRE_RESULT_BYTES,
	       "QUERY and RESULT layouts");
_Static_assert(ADMIN_JSON == RILL_WIRE_ADMIN_BYTES_MIN &&
		       AOK_JSON == RILL_WIRE_ADMIN_OK_BYTES_MIN &&
		       ERR_MESSAGE == RILL_WIRE_ERROR_BYTES_MIN,
	       "ADMIN, ADMIN_OK and ERROR layouts");

/* The largest acks byte (RILL_ACKS_DURABLE) and from byte (RILL_WIRE_FROM_LATEST). */
#define WIRE_ACKS_MAX 2u
#define WIRE_FROM_MAX 3u

/* Step 4 of the order above: a body that must end exactly at @need bytes (64-bit: a sum
 * of lengths from the wire never wraps). */
static int body_exact(uint32_t bytes, uint64_t need)
{
	if (bytes < need)
		return RILL_E_WIRE_TRUNCATED;
	if (bytes > need)
		return RILL_E_WIRE_TRAILING;
	return 0;
}

static bool name_bytes_ok(size_t bytes, uint32_t bytes_max)
{
	return bytes >= 1 && bytes <= bytes_max;
}

/* Names go on to the engine as C strings: one with a NUL inside ("orders\0x") would name a
 * different topic there than the one the frame says, so it is refused here. */
static bool name_text_ok(const void *name, size_t bytes)
{
	return memchr(name, 0, bytes) == NULL;
}

/* An iterator over @count entries in [@at, @end). */
static void iter_init(struct rill_wire_iter *it, const uint8_t *at, const uint8_t *end,
		      uint32_t count)
{
	it->at = at;
	it->end = end;
	it->left = count;
}

/* Every entry read: the body must end here. */
static int iter_end(const struct rill_wire_iter *it)
{
	return it->at == it->end ? 0 : RILL_E_WIRE_TRAILING;
}

/*
 * The header of a frame whose body is @body_bytes, when the whole frame fits @buf: 0,
 * -EINVAL for a body over any frame limit, -ENOSPC for a @buf too small (nothing written).
 */
static int frame_start(void *buf, size_t buf_bytes, uint16_t type, uint64_t request_id,
		       uint64_t body_bytes)
{
	if (body_bytes > RILL_WIRE_FRAME_BYTES_MAX)
		return -EINVAL;
	if (buf_bytes < RILL_WIRE_HEADER_BYTES + body_bytes)
		return -ENOSPC;
	rill_wire_header_encode(buf, type, request_id, (uint32_t)body_bytes);
	return 0;
}

/* The body of a frame @buf starts, after the checks of its _finish. */
static uint8_t *frame_finish(void *buf, uint16_t type, uint32_t frame_bytes, uint32_t fixed)
{
	RILL_ASSERT(buf != NULL);
	uint8_t *p = buf;
	RILL_ASSERT(rill_ld16(p + HDR_TYPE) == type);
	RILL_ASSERT(frame_bytes >= RILL_WIRE_HEADER_BYTES + fixed);
	RILL_ASSERT(frame_bytes - RILL_WIRE_HEADER_BYTES <= RILL_WIRE_FRAME_BYTES_MAX);
	rill_st32(p + HDR_BODY_BYTES, frame_bytes - RILL_WIRE_HEADER_BYTES);
	return p + RILL_WIRE_HEADER_BYTES;
}

/* ---- Header ------------------------------------------------------------------------- */

int rill_wire_header_decode(const void *buf, size_t bytes, uint32_t frame_bytes_max,
			    struct rill_wire_header *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(buf != NULL || bytes == 0);
	RILL_ASSERT(frame_bytes_max <= RILL_WIRE_FRAME_BYTES_MAX);
	if (bytes < RILL_WIRE_HEADER_BYTES)
		return -EAGAIN;
	const uint8_t *p = buf;
	/* Filled before the checks, unlike the bodies: the fatal ERROR that answers a bad
	 * header carries the request_id it had. */
	out->body_bytes = rill_ld32(p + HDR_BODY_BYTES);
	out->type = rill_ld16(p + HDR_TYPE);
	out->flags = rill_ld16(p + HDR_FLAGS);
	out->request_id = rill_ld64(p + HDR_REQUEST_ID);
	if (out->type == 0 || out->type >= RILL_WIRE_TYPE_LAST)
		return RILL_E_WIRE_TYPE;
	if (out->flags != 0)
		return RILL_E_WIRE_RESERVED;
	if (out->body_bytes > frame_bytes_max)
		return RILL_E_WIRE_TOO_LARGE;
	return 0;
}

int rill_wire_body_check(const struct rill_wire_header *h)
{
	uint32_t bytes;
	switch (h->type) {
	case RILL_WIRE_HELLO:
		bytes = RILL_WIRE_HELLO_BYTES;
		break;
	case RILL_WIRE_FETCH:
		bytes = RILL_WIRE_FETCH_BYTES;
		break;
	case RILL_WIRE_UNSUBSCRIBE:
	case RILL_WIRE_PING:
		bytes = 0;
		break;
	default:
		return 0;
	}
	if (h->body_bytes == bytes)
		return 0;
	return h->body_bytes < bytes ? RILL_E_WIRE_TRUNCATED : RILL_E_WIRE_TRAILING;
}

void rill_wire_header_encode(void *buf, uint16_t type, uint64_t request_id, uint32_t body_bytes)
{
	RILL_ASSERT(buf != NULL);
	RILL_ASSERT(type != 0);
	RILL_ASSERT(type < RILL_WIRE_TYPE_LAST);
	RILL_ASSERT(body_bytes <= RILL_WIRE_FRAME_BYTES_MAX);
	uint8_t *p = buf;
	rill_st32(p + HDR_BODY_BYTES, body_bytes);
	rill_st16(p + HDR_TYPE, type);
	rill_st16(p + HDR_FLAGS, 0);
	rill_st64(p + HDR_REQUEST_ID, request_id);
}

/* ---- HELLO, HELLO_OK ------------------------------------------------------------------ */

/* Version 0 was never spoken: a range starting there is as wrong as one upside down. */
static bool hello_versions_ok(uint16_t version_min, uint16_t version_max)
{
	return version_min != 0 && version_min <= version_max;
}

int rill_wire_hello_decode(const void *body, uint32_t bytes, struct rill_wire_hello *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	int rc = body_exact(bytes, RILL_WIRE_HELLO_BYTES);
	if (rc != 0)
		return rc;
	const uint8_t *p = body;
	if (rill_ld32(p + HELLO_MAGIC) != RILL_WIRE_MAGIC)
		return RILL_E_WIRE_MAGIC;
	if (rill_ld32(p + HELLO_FLAGS) != 0 || rill_ld32(p + HELLO_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint16_t version_min = rill_ld16(p + HELLO_VERSION_MIN);
	uint16_t version_max = rill_ld16(p + HELLO_VERSION_MAX);
	if (!hello_versions_ok(version_min, version_max))
		return RILL_E_WIRE_VALUE;
	out->version_min = version_min;
	out->version_max = version_max;
	return 0;
}

int rill_wire_hello_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			   const struct rill_wire_hello *hello)
{
	RILL_ASSERT(hello != NULL);
	if (!hello_versions_ok(hello->version_min, hello->version_max))
		return -EINVAL;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_HELLO, request_id, RILL_WIRE_HELLO_BYTES);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + HELLO_MAGIC, RILL_WIRE_MAGIC);
	rill_st16(p + HELLO_VERSION_MIN, hello->version_min);
	rill_st16(p + HELLO_VERSION_MAX, hello->version_max);
	rill_st32(p + HELLO_FLAGS, 0);
	rill_st32(p + HELLO_RESERVED, 0);
	return (int)(RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_BYTES);
}

/* What a client can work with: a version, a shard, a frame limit within the protocol's
 * and room for something in flight. */
static bool hello_ok_values_ok(const struct rill_wire_hello_ok *ok)
{
	return ok->version != 0 && ok->shards != 0 &&
	       ok->frame_bytes_max >= RILL_WIRE_FRAME_BYTES_MIN &&
	       ok->frame_bytes_max <= RILL_WIRE_FRAME_BYTES_MAX && ok->inflight_bytes_max != 0;
}

int rill_wire_hello_ok_decode(const void *body, uint32_t bytes, struct rill_wire_hello_ok *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	int rc = body_exact(bytes, RILL_WIRE_HELLO_OK_BYTES);
	if (rc != 0)
		return rc;
	const uint8_t *p = body;
	if (rill_ld32(p + HOK_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	struct rill_wire_hello_ok ok = {
		.version = rill_ld16(p + HOK_VERSION),
		.shards = rill_ld16(p + HOK_SHARDS),
		.frame_bytes_max = rill_ld32(p + HOK_FRAME_BYTES_MAX),
		.inflight_bytes_max = rill_ld32(p + HOK_INFLIGHT_BYTES_MAX),
	};
	if (!hello_ok_values_ok(&ok))
		return RILL_E_WIRE_VALUE;
	*out = ok;
	return 0;
}

int rill_wire_hello_ok_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			      const struct rill_wire_hello_ok *ok)
{
	RILL_ASSERT(ok != NULL);
	if (!hello_ok_values_ok(ok))
		return -EINVAL;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_HELLO_OK, request_id,
			     RILL_WIRE_HELLO_OK_BYTES);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st16(p + HOK_VERSION, ok->version);
	rill_st16(p + HOK_SHARDS, ok->shards);
	rill_st32(p + HOK_FRAME_BYTES_MAX, ok->frame_bytes_max);
	rill_st32(p + HOK_INFLIGHT_BYTES_MAX, ok->inflight_bytes_max);
	rill_st32(p + HOK_RESERVED, 0);
	return (int)(RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_OK_BYTES);
}

/* ---- PRODUCE ---------------------------------------------------------------------------- */

/*
 * Exactly @event_count records, CRC checked, fill [@at, @end): 0, RILL_E_WIRE_COUNT, or the
 * first bad record's RILL_E_RECORD_* code with its index in @bad_index. Each record's
 * length is checked against what remains before it is stepped over, and each record takes
 * at least 64 bytes, so the loop ends within the body whatever event_count says.
 */
static int produce_records_check(const uint8_t *at, const uint8_t *end, uint32_t event_count,
				 uint32_t *bad_index)
{
	uint32_t index = 0;
	while (at < end) {
		if (index == event_count)
			return RILL_E_WIRE_COUNT; /* more in the body than event_count says */
		struct rill_record rec;
		int rc = rill_record_decode(at, (size_t)(end - at), &rec, 0);
		if (rc < 0) {
			if (bad_index != NULL)
				*bad_index = index;
			return rc;
		}
		RILL_DASSERT((size_t)rc <= (size_t)(end - at));
		at += rc;
		index++;
	}
	return index == event_count ? 0 : RILL_E_WIRE_COUNT;
}

int rill_wire_produce_decode(const void *body, uint32_t bytes, struct rill_wire_produce *out,
			     uint32_t *bad_index)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_PRODUCE_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (p[PRODUCE_RESERVED] != 0)
		return RILL_E_WIRE_RESERVED;
	uint8_t acks = p[PRODUCE_ACKS];
	uint16_t topic_bytes = rill_ld16(p + PRODUCE_TOPIC_BYTES);
	uint32_t event_count = rill_ld32(p + PRODUCE_EVENT_COUNT);
	if (acks > WIRE_ACKS_MAX || !name_bytes_ok(topic_bytes, RILL_WIRE_TOPIC_BYTES_MAX))
		return RILL_E_WIRE_VALUE;
	uint32_t records_at = PRODUCE_TOPIC + (uint32_t)topic_bytes; /* no wrap: u16 + 8 */
	if (bytes < records_at)
		return RILL_E_WIRE_TRUNCATED;
	if (!name_text_ok(p + PRODUCE_TOPIC, topic_bytes))
		return RILL_E_WIRE_VALUE;
	if (event_count == 0)
		return RILL_E_WIRE_COUNT;
	int rc = produce_records_check(p + records_at, p + bytes, event_count, bad_index);
	if (rc != 0)
		return rc;
	out->acks = acks;
	out->topic = (const char *)(p + PRODUCE_TOPIC);
	out->topic_bytes = topic_bytes;
	out->event_count = event_count;
	out->records = p + records_at;
	out->records_bytes = bytes - records_at;
	return 0;
}

void rill_wire_produce_iter(const struct rill_wire_produce *p, struct rill_wire_iter *it)
{
	RILL_ASSERT(p != NULL && it != NULL);
	iter_init(it, p->records, p->records + p->records_bytes, p->event_count);
}

int rill_wire_produce_next(struct rill_wire_iter *it, struct rill_record *out)
{
	RILL_ASSERT(it != NULL && out != NULL);
	if (it->left == 0) {
		RILL_DASSERT(it->at == it->end);
		return 0;
	}
	int rc = rill_record_decode(it->at, (size_t)(it->end - it->at), out,
				    RILL_RECORD_F_TRUSTED_CRC);
	/* rill_wire_produce_decode checked every record: failing now means the body changed
	 * under the iterator or the iterator was not built from a decoded PRODUCE. */
	RILL_ASSERT(rc > 0);
	it->at += rc;
	it->left--;
	return 1;
}

int rill_wire_produce_begin(void *buf, size_t buf_bytes, uint64_t request_id, uint8_t acks,
			    const char *topic, size_t topic_bytes)
{
	RILL_ASSERT(topic != NULL || topic_bytes == 0);
	if (acks > WIRE_ACKS_MAX || !name_bytes_ok(topic_bytes, RILL_WIRE_TOPIC_BYTES_MAX) ||
	    !name_text_ok(topic, topic_bytes))
		return -EINVAL;
	uint32_t fixed = PRODUCE_TOPIC + (uint32_t)topic_bytes;
	/* The header says the fixed part for now; _finish writes the real length. */
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_PRODUCE, request_id, fixed);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	p[PRODUCE_ACKS] = acks;
	p[PRODUCE_RESERVED] = 0;
	rill_st16(p + PRODUCE_TOPIC_BYTES, (uint16_t)topic_bytes);
	rill_st32(p + PRODUCE_EVENT_COUNT, 0);
	memcpy(p + PRODUCE_TOPIC, topic, topic_bytes);
	return (int)(RILL_WIRE_HEADER_BYTES + fixed);
}

void rill_wire_produce_finish(void *buf, uint32_t frame_bytes, uint32_t event_count)
{
	RILL_ASSERT(buf != NULL);
	RILL_ASSERT(event_count > 0); /* a PRODUCE of nothing is refused on decode */
	const uint8_t *hdr = buf;
	uint32_t topic_bytes = rill_ld16(hdr + RILL_WIRE_HEADER_BYTES + PRODUCE_TOPIC_BYTES);
	uint8_t *p = frame_finish(buf, RILL_WIRE_PRODUCE, frame_bytes, PRODUCE_TOPIC + topic_bytes);
	RILL_ASSERT(frame_bytes - RILL_WIRE_HEADER_BYTES - PRODUCE_TOPIC - topic_bytes >=
		    (uint64_t)event_count * RILL_RECORD_HEADER_BYTES);
	rill_st32(p + PRODUCE_EVENT_COUNT, event_count);
}

/* ---- ACK ---------------------------------------------------------------------------------- */

int rill_wire_ack_decode(const void *body, uint32_t bytes, uint32_t *count,
			 struct rill_wire_iter *it)
{
	RILL_ASSERT(count != NULL && it != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_ACK_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (rill_ld32(p + ACK_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint32_t n = rill_ld32(p + ACK_COUNT);
	/* Each entry takes its fixed part at least: a count the body cannot hold is refused
	 * now rather than at the end of the iteration. */
	if ((uint64_t)n * RILL_WIRE_ACK_ENTRY_BYTES > bytes - ACK_ENTRIES)
		return RILL_E_WIRE_TRUNCATED;
	*count = n;
	iter_init(it, p + ACK_ENTRIES, p + bytes, n);
	return 0;
}

/* An error is 0 or a negative code; the only flag is DUPLICATE. */
static int ack_entry_check(int32_t error, uint16_t flags, uint16_t reason_bytes)
{
	if (flags & ~RILL_WIRE_ACK_F_DUPLICATE)
		return RILL_E_WIRE_RESERVED;
	if (error > 0 || reason_bytes > RILL_WIRE_REASON_BYTES_MAX)
		return RILL_E_WIRE_VALUE;
	return 0;
}

int rill_wire_ack_next(struct rill_wire_iter *it, struct rill_wire_ack_entry *out)
{
	RILL_ASSERT(it != NULL && out != NULL);
	if (it->left == 0)
		return iter_end(it);
	size_t left_bytes = (size_t)(it->end - it->at);
	if (left_bytes < RILL_WIRE_ACK_ENTRY_BYTES)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = it->at;
	int32_t error = (int32_t)rill_ld32(p + ACKE_ERROR);
	uint16_t flags = rill_ld16(p + ACKE_FLAGS);
	uint16_t reason_bytes = rill_ld16(p + ACKE_REASON_BYTES);
	int rc = ack_entry_check(error, flags, reason_bytes);
	if (rc != 0)
		return rc;
	if (left_bytes - RILL_WIRE_ACK_ENTRY_BYTES < reason_bytes)
		return RILL_E_WIRE_TRUNCATED;
	out->error = error;
	out->partition = rill_ld32(p + ACKE_PARTITION);
	out->offset = rill_ld64(p + ACKE_OFFSET);
	out->event_count = rill_ld32(p + ACKE_EVENT_COUNT);
	out->flags = flags;
	out->reason = reason_bytes > 0 ? (const char *)(p + ACKE_REASON) : NULL;
	out->reason_bytes = reason_bytes;
	it->at += RILL_WIRE_ACK_ENTRY_BYTES + reason_bytes;
	it->left--;
	return 1;
}

int rill_wire_ack_begin(void *buf, size_t buf_bytes, uint64_t request_id)
{
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_ACK, request_id, RILL_WIRE_ACK_BYTES_MIN);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + ACK_COUNT, 0);
	rill_st32(p + ACK_RESERVED, 0);
	return (int)(RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN);
}

int rill_wire_ack_entry(void *buf, size_t buf_bytes, size_t at,
			const struct rill_wire_ack_entry *entry)
{
	RILL_ASSERT(buf != NULL && entry != NULL);
	RILL_ASSERT(at >= RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN);
	RILL_ASSERT(at <= buf_bytes);
	RILL_ASSERT(entry->reason != NULL || entry->reason_bytes == 0);
	if (ack_entry_check(entry->error, entry->flags, entry->reason_bytes) != 0)
		return -EINVAL;
	uint64_t end = (uint64_t)at + RILL_WIRE_ACK_ENTRY_BYTES + entry->reason_bytes;
	/* The second bound keeps the returned end within an int and the frame within any
	 * limit a peer may have. */
	if (end > buf_bytes || end > RILL_WIRE_HEADER_BYTES + (uint64_t)RILL_WIRE_FRAME_BYTES_MAX)
		return -ENOSPC;
	uint8_t *p = (uint8_t *)buf + at;
	rill_st32(p + ACKE_ERROR, (uint32_t)entry->error);
	rill_st32(p + ACKE_PARTITION, entry->partition);
	rill_st64(p + ACKE_OFFSET, entry->offset);
	rill_st32(p + ACKE_EVENT_COUNT, entry->event_count);
	rill_st16(p + ACKE_FLAGS, entry->flags);
	rill_st16(p + ACKE_REASON_BYTES, entry->reason_bytes);
	if (entry->reason_bytes > 0)
		memcpy(p + ACKE_REASON, entry->reason, entry->reason_bytes);
	return (int)end;
}

void rill_wire_ack_finish(void *buf, uint32_t frame_bytes, uint32_t count)
{
	uint8_t *p = frame_finish(buf, RILL_WIRE_ACK, frame_bytes, RILL_WIRE_ACK_BYTES_MIN);
	RILL_ASSERT(frame_bytes - RILL_WIRE_HEADER_BYTES - RILL_WIRE_ACK_BYTES_MIN >=
		    (uint64_t)count * RILL_WIRE_ACK_ENTRY_BYTES);
	rill_st32(p + ACK_COUNT, count);
}

uint32_t rill_wire_ack_entry_bytes(uint32_t reason_bytes)
{
	/* 0 for a reason no entry may carry, as rill_record_bytes does for a record. */
	if (reason_bytes > RILL_WIRE_REASON_BYTES_MAX)
		return 0;
	return RILL_WIRE_ACK_ENTRY_BYTES + reason_bytes;
}

/* ---- SUBSCRIBE, SUBSCRIBED, FETCH, UNSUBSCRIBE ---------------------------------------------- */

int rill_wire_subscribe_decode(const void *body, uint32_t bytes, struct rill_wire_subscribe *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_SUBSCRIBE_BYTES)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (p[SUB_FLAGS] != 0 || rill_ld32(p + SUB_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint16_t topic_bytes = rill_ld16(p + SUB_TOPIC_BYTES);
	if (p[SUB_FROM] > WIRE_FROM_MAX || !name_bytes_ok(topic_bytes, RILL_WIRE_TOPIC_BYTES_MAX))
		return RILL_E_WIRE_VALUE;
	int rc = body_exact(bytes, (uint64_t)SUB_TOPIC + topic_bytes);
	if (rc != 0)
		return rc;
	if (!name_text_ok(p + SUB_TOPIC, topic_bytes))
		return RILL_E_WIRE_VALUE;
	out->topic = (const char *)(p + SUB_TOPIC);
	out->topic_bytes = topic_bytes;
	out->from = p[SUB_FROM];
	out->partition = rill_ld32(p + SUB_PARTITION);
	out->from_value = rill_ld64(p + SUB_FROM_VALUE);
	out->credit = rill_ld32(p + SUB_CREDIT);
	return 0;
}

int rill_wire_subscribe_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			       const struct rill_wire_subscribe *sub)
{
	RILL_ASSERT(sub != NULL);
	RILL_ASSERT(sub->topic != NULL || sub->topic_bytes == 0);
	if (sub->from > WIRE_FROM_MAX ||
	    !name_bytes_ok(sub->topic_bytes, RILL_WIRE_TOPIC_BYTES_MAX) ||
	    !name_text_ok(sub->topic, sub->topic_bytes))
		return -EINVAL;
	uint32_t body_bytes = SUB_TOPIC + (uint32_t)sub->topic_bytes;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_SUBSCRIBE, request_id, body_bytes);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st16(p + SUB_TOPIC_BYTES, sub->topic_bytes);
	p[SUB_FROM] = sub->from;
	p[SUB_FLAGS] = 0;
	rill_st32(p + SUB_PARTITION, sub->partition);
	rill_st64(p + SUB_FROM_VALUE, sub->from_value);
	rill_st32(p + SUB_CREDIT, sub->credit);
	rill_st32(p + SUB_RESERVED, 0);
	memcpy(p + SUB_TOPIC, sub->topic, sub->topic_bytes);
	return (int)(RILL_WIRE_HEADER_BYTES + body_bytes);
}

int rill_wire_subscribed_decode(const void *body, uint32_t bytes, uint32_t *count,
				struct rill_wire_iter *it)
{
	RILL_ASSERT(count != NULL && it != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_SUBSCRIBED_BYTES)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (rill_ld32(p + SUBD_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint32_t n = rill_ld32(p + SUBD_COUNT);
	/* Fixed-size entries: the body's length is known whole before iterating. */
	int rc = body_exact(bytes, SUBD_ENTRIES + (uint64_t)n * RILL_WIRE_SUBSCRIBED_ENTRY);
	if (rc != 0)
		return rc;
	*count = n;
	iter_init(it, p + SUBD_ENTRIES, p + bytes, n);
	return 0;
}

int rill_wire_subscribed_next(struct rill_wire_iter *it, struct rill_wire_subscribed_entry *out)
{
	RILL_ASSERT(it != NULL && out != NULL);
	if (it->left == 0)
		return iter_end(it);
	if ((size_t)(it->end - it->at) < RILL_WIRE_SUBSCRIBED_ENTRY)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = it->at;
	if (rill_ld32(p + SUBE_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint32_t partition = rill_ld32(p + SUBE_PARTITION);
	if (partition == RILL_WIRE_PARTITION_ALL)
		return RILL_E_WIRE_VALUE; /* an entry is one partition */
	out->partition = partition;
	out->first_offset = rill_ld64(p + SUBE_FIRST_OFFSET);
	out->end_offset = rill_ld64(p + SUBE_END_OFFSET);
	it->at += RILL_WIRE_SUBSCRIBED_ENTRY;
	it->left--;
	return 1;
}

int rill_wire_subscribed_encode(void *buf, size_t buf_bytes, uint64_t request_id,
				const struct rill_wire_subscribed_entry *entries, uint32_t count)
{
	RILL_ASSERT(entries != NULL || count == 0);
	uint64_t body_bytes = SUBD_ENTRIES + (uint64_t)count * RILL_WIRE_SUBSCRIBED_ENTRY;
	if (body_bytes > RILL_WIRE_FRAME_BYTES_MAX)
		return -EINVAL; /* before reading the entries: @count may be anything */
	for (uint32_t i = 0; i < count; i++)
		if (entries[i].partition == RILL_WIRE_PARTITION_ALL)
			return -EINVAL;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_SUBSCRIBED, request_id, body_bytes);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + SUBD_COUNT, count);
	rill_st32(p + SUBD_RESERVED, 0);
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *e = p + SUBD_ENTRIES + (size_t)i * RILL_WIRE_SUBSCRIBED_ENTRY;
		rill_st32(e + SUBE_PARTITION, entries[i].partition);
		rill_st32(e + SUBE_RESERVED, 0);
		rill_st64(e + SUBE_FIRST_OFFSET, entries[i].first_offset);
		rill_st64(e + SUBE_END_OFFSET, entries[i].end_offset);
	}
	return (int)(RILL_WIRE_HEADER_BYTES + body_bytes);
}

int rill_wire_fetch_decode(const void *body, uint32_t bytes, uint32_t *credit)
{
	RILL_ASSERT(credit != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	int rc = body_exact(bytes, RILL_WIRE_FETCH_BYTES);
	if (rc != 0)
		return rc;
	const uint8_t *p = body;
	if (rill_ld32(p + FETCH_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	*credit = rill_ld32(p + FETCH_CREDIT);
	return 0;
}

int rill_wire_fetch_encode(void *buf, size_t buf_bytes, uint64_t request_id, uint32_t credit)
{
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_FETCH, request_id, RILL_WIRE_FETCH_BYTES);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + FETCH_CREDIT, credit);
	rill_st32(p + FETCH_RESERVED, 0);
	return (int)(RILL_WIRE_HEADER_BYTES + RILL_WIRE_FETCH_BYTES);
}

/* ---- EVENTS ------------------------------------------------------------------------------- */

int rill_wire_events_decode(const void *body, uint32_t bytes, uint32_t *partition, uint32_t *count,
			    struct rill_wire_iter *it)
{
	RILL_ASSERT(partition != NULL && count != NULL && it != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_EVENTS_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	uint32_t part = rill_ld32(p + EV_PARTITION);
	uint32_t n = rill_ld32(p + EV_COUNT);
	if (part == RILL_WIRE_PARTITION_ALL)
		return RILL_E_WIRE_VALUE; /* EVENTS come from one partition */
	/* An event takes its offset and a record header at least: refuse a count the body
	 * cannot hold before iterating. */
	if ((uint64_t)n * (EVE_RECORD + RILL_RECORD_HEADER_BYTES) > bytes - EV_ENTRIES)
		return RILL_E_WIRE_TRUNCATED;
	*partition = part;
	*count = n;
	iter_init(it, p + EV_ENTRIES, p + bytes, n);
	return 0;
}

int rill_wire_events_next(struct rill_wire_iter *it, uint64_t *offset, struct rill_record *out)
{
	RILL_ASSERT(it != NULL && offset != NULL && out != NULL);
	if (it->left == 0)
		return iter_end(it);
	size_t left_bytes = (size_t)(it->end - it->at);
	if (left_bytes < EVE_RECORD)
		return RILL_E_WIRE_TRUNCATED;
	/* The CRC is checked here, on the client: the bytes crossed a network since the log. */
	int rc = rill_record_decode(it->at + EVE_RECORD, left_bytes - EVE_RECORD, out, 0);
	if (rc < 0)
		return rc;
	*offset = rill_ld64(it->at + EVE_OFFSET);
	it->at += EVE_RECORD + (size_t)rc;
	it->left--;
	return 1;
}

int rill_wire_events_begin(void *buf, size_t buf_bytes, uint64_t request_id, uint32_t partition)
{
	if (partition == RILL_WIRE_PARTITION_ALL)
		return -EINVAL;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_EVENTS, request_id,
			     RILL_WIRE_EVENTS_BYTES_MIN);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + EV_PARTITION, partition);
	rill_st32(p + EV_COUNT, 0);
	return (int)(RILL_WIRE_HEADER_BYTES + RILL_WIRE_EVENTS_BYTES_MIN);
}

int rill_wire_events_add(void *buf, size_t buf_bytes, size_t at, uint64_t offset,
			 const void *record, uint32_t record_bytes)
{
	RILL_ASSERT(buf != NULL && record != NULL);
	RILL_ASSERT(at >= RILL_WIRE_HEADER_BYTES + RILL_WIRE_EVENTS_BYTES_MIN);
	RILL_ASSERT(at <= buf_bytes);
	if (record_bytes < RILL_RECORD_HEADER_BYTES || record_bytes > RILL_RECORD_BYTES_MAX)
		return -EINVAL;
#ifdef RILL_DEBUG
	struct rill_record check;
	RILL_DASSERT(rill_record_decode(record, record_bytes, &check, RILL_RECORD_F_TRUSTED_CRC) ==
		     (int)record_bytes);
#endif
	uint64_t end = (uint64_t)at + EVE_RECORD + record_bytes;
	if (end > buf_bytes || end > RILL_WIRE_HEADER_BYTES + (uint64_t)RILL_WIRE_FRAME_BYTES_MAX)
		return -ENOSPC;
	uint8_t *p = (uint8_t *)buf + at;
	rill_st64(p + EVE_OFFSET, offset);
	memcpy(p + EVE_RECORD, record, record_bytes);
	return (int)end;
}

void rill_wire_events_finish(void *buf, uint32_t frame_bytes, uint32_t count)
{
	uint8_t *p = frame_finish(buf, RILL_WIRE_EVENTS, frame_bytes, RILL_WIRE_EVENTS_BYTES_MIN);
	RILL_ASSERT(frame_bytes - RILL_WIRE_HEADER_BYTES - RILL_WIRE_EVENTS_BYTES_MIN >=
		    (uint64_t)count * (EVE_RECORD + RILL_RECORD_HEADER_BYTES));
	rill_st32(p + EV_COUNT, count);
}

/* ---- QUERY, RESULT -------------------------------------------------------------------------- */

/* Undefined flag bits are reserved; the two as-of kinds exclude each other. */
static int query_flags_check(uint8_t flags)
{
	if (flags & ~RILL_WIRE_QUERY_F_ALL)
		return RILL_E_WIRE_RESERVED;
	if ((flags & RILL_WIRE_QUERY_F_AS_OF_OFFSET) && (flags & RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP))
		return RILL_E_WIRE_VALUE;
	return 0;
}

int rill_wire_query_decode(const void *body, uint32_t bytes, struct rill_wire_query *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_QUERY_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (p[Q_RESERVED] != 0 || p[Q_RESERVED + 1] != 0 || p[Q_RESERVED + 2] != 0)
		return RILL_E_WIRE_RESERVED;
	uint8_t flags = p[Q_FLAGS];
	int rc = query_flags_check(flags);
	if (rc != 0)
		return rc;
	uint16_t name_bytes = rill_ld16(p + Q_NAME_BYTES);
	uint16_t key_bytes = rill_ld16(p + Q_KEY_BYTES);
	if (!name_bytes_ok(name_bytes, RILL_WIRE_NAME_BYTES_MAX) || key_bytes > RILL_KEY_BYTES_MAX)
		return RILL_E_WIRE_VALUE;
	rc = body_exact(bytes, (uint64_t)Q_NAME + name_bytes + key_bytes);
	if (rc != 0)
		return rc;
	if (!name_text_ok(p + Q_NAME, name_bytes))
		return RILL_E_WIRE_VALUE;
	out->name = (const char *)(p + Q_NAME);
	out->name_bytes = name_bytes;
	out->key = p + Q_NAME + name_bytes; /* never NULL, even for an empty key */
	out->key_bytes = key_bytes;
	out->flags = flags;
	out->as_of = rill_ld64(p + Q_AS_OF);
	out->token_partition = rill_ld32(p + Q_TOKEN_PARTITION);
	out->timeout_ms = rill_ld32(p + Q_TIMEOUT_MS);
	out->token_offset = rill_ld64(p + Q_TOKEN_OFFSET);
	return 0;
}

int rill_wire_query_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			   const struct rill_wire_query *q)
{
	RILL_ASSERT(q != NULL);
	RILL_ASSERT(q->name != NULL || q->name_bytes == 0);
	RILL_ASSERT(q->key != NULL || q->key_bytes == 0);
	if (query_flags_check(q->flags) != 0 ||
	    !name_bytes_ok(q->name_bytes, RILL_WIRE_NAME_BYTES_MAX) ||
	    !name_text_ok(q->name, q->name_bytes) || q->key_bytes > RILL_KEY_BYTES_MAX)
		return -EINVAL;
	uint32_t body_bytes = Q_NAME + (uint32_t)q->name_bytes + q->key_bytes;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_QUERY, request_id, body_bytes);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st16(p + Q_NAME_BYTES, q->name_bytes);
	rill_st16(p + Q_KEY_BYTES, q->key_bytes);
	p[Q_FLAGS] = q->flags;
	memset(p + Q_RESERVED, 0, 3);
	rill_st64(p + Q_AS_OF, q->as_of);
	rill_st32(p + Q_TOKEN_PARTITION, q->token_partition);
	rill_st32(p + Q_TIMEOUT_MS, q->timeout_ms);
	rill_st64(p + Q_TOKEN_OFFSET, q->token_offset);
	memcpy(p + Q_NAME, q->name, q->name_bytes);
	if (q->key_bytes > 0)
		memcpy(p + Q_NAME + q->name_bytes, q->key, q->key_bytes);
	return (int)(RILL_WIRE_HEADER_BYTES + body_bytes);
}

int rill_wire_result_decode(const void *body, uint32_t bytes, struct rill_projection_value *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	int rc = body_exact(bytes, RILL_WIRE_RESULT_BYTES);
	if (rc != 0)
		return rc;
	const uint8_t *p = body;
	if (rill_ld32(p + R_RESERVED) != 0 || rill_ld16(p + R_RESERVED + 4) != 0)
		return RILL_E_WIRE_RESERVED;
	if (p[R_IS_FLOAT] > 1 || p[R_SUM_OVERFLOW] > 1)
		return RILL_E_WIRE_VALUE; /* booleans */
	out->count = rill_ld64(p + R_COUNT);
	out->i64 = (int64_t)rill_ld64(p + R_I64);
	out->u64 = rill_ld64(p + R_U64);
	out->f64 = rill_ldf64(p + R_F64);
	out->avg = rill_ldf64(p + R_AVG);
	out->window_start_ns = rill_ld64(p + R_WINDOW_START_NS);
	out->offset = rill_ld64(p + R_OFFSET);
	out->is_float = p[R_IS_FLOAT] != 0;
	out->sum_overflow = p[R_SUM_OVERFLOW] != 0;
	return 0;
}

int rill_wire_result_encode(void *buf, size_t buf_bytes, uint64_t request_id,
			    const struct rill_projection_value *v)
{
	RILL_ASSERT(v != NULL);
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_RESULT, request_id, RILL_WIRE_RESULT_BYTES);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st64(p + R_COUNT, v->count);
	rill_st64(p + R_I64, (uint64_t)v->i64);
	rill_st64(p + R_U64, v->u64);
	rill_stf64(p + R_F64, v->f64);
	rill_stf64(p + R_AVG, v->avg);
	rill_st64(p + R_WINDOW_START_NS, v->window_start_ns);
	rill_st64(p + R_OFFSET, v->offset);
	p[R_IS_FLOAT] = v->is_float ? 1 : 0;
	p[R_SUM_OVERFLOW] = v->sum_overflow ? 1 : 0;
	memset(p + R_RESERVED, 0, RILL_WIRE_RESULT_BYTES - R_RESERVED);
	return (int)(RILL_WIRE_HEADER_BYTES + RILL_WIRE_RESULT_BYTES);
}

/* ---- ADMIN, ADMIN_OK ------------------------------------------------------------------------ */

static bool admin_op_ok(uint16_t op)
{
	return op >= RILL_WIRE_ADMIN_TOPIC_CREATE && op < RILL_WIRE_ADMIN_OP_LAST;
}

int rill_wire_admin_decode(const void *body, uint32_t bytes, struct rill_wire_admin *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_ADMIN_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (rill_ld16(p + ADMIN_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint16_t op = rill_ld16(p + ADMIN_OP);
	if (!admin_op_ok(op))
		return RILL_E_WIRE_VALUE;
	uint32_t json_bytes = rill_ld32(p + ADMIN_JSON_BYTES);
	int rc = body_exact(bytes, (uint64_t)ADMIN_JSON + json_bytes);
	if (rc != 0)
		return rc;
	out->op = op;
	out->json = (const char *)(p + ADMIN_JSON);
	out->json_bytes = json_bytes;
	return 0;
}

int rill_wire_admin_encode(void *buf, size_t buf_bytes, uint64_t request_id, uint16_t op,
			   const char *json, size_t json_bytes)
{
	RILL_ASSERT(json != NULL || json_bytes == 0);
	/* The first bound keeps the sum below from wrapping; frame_start applies the real one. */
	if (!admin_op_ok(op) || json_bytes > RILL_WIRE_FRAME_BYTES_MAX)
		return -EINVAL;
	uint64_t body_bytes = ADMIN_JSON + (uint64_t)json_bytes;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_ADMIN, request_id, body_bytes);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st16(p + ADMIN_OP, op);
	rill_st16(p + ADMIN_RESERVED, 0);
	rill_st32(p + ADMIN_JSON_BYTES, (uint32_t)json_bytes);
	if (json_bytes > 0)
		memcpy(p + ADMIN_JSON, json, json_bytes);
	return (int)(RILL_WIRE_HEADER_BYTES + body_bytes);
}

int rill_wire_admin_ok_decode(const void *body, uint32_t bytes, const char **json,
			      uint32_t *json_bytes)
{
	RILL_ASSERT(json != NULL && json_bytes != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_ADMIN_OK_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	if (rill_ld32(p + AOK_RESERVED) != 0)
		return RILL_E_WIRE_RESERVED;
	uint32_t n = rill_ld32(p + AOK_JSON_BYTES);
	int rc = body_exact(bytes, (uint64_t)AOK_JSON + n);
	if (rc != 0)
		return rc;
	*json = (const char *)(p + AOK_JSON);
	*json_bytes = n;
	return 0;
}

int rill_wire_admin_ok_encode(void *buf, size_t buf_bytes, uint64_t request_id, const char *json,
			      size_t json_bytes)
{
	RILL_ASSERT(json != NULL || json_bytes == 0);
	if (json_bytes > RILL_WIRE_FRAME_BYTES_MAX)
		return -EINVAL; /* keeps the sum below from wrapping */
	uint64_t body_bytes = AOK_JSON + (uint64_t)json_bytes;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_ADMIN_OK, request_id, body_bytes);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + AOK_JSON_BYTES, (uint32_t)json_bytes);
	rill_st32(p + AOK_RESERVED, 0);
	if (json_bytes > 0)
		memcpy(p + AOK_JSON, json, json_bytes);
	return (int)(RILL_WIRE_HEADER_BYTES + body_bytes);
}

/* ---- ERROR and the empty frames ---------------------------------------------------------- */

/* An ERROR reports a failure: its code is negative (-errno or RILL_E_*), never 0. */
static int error_check(int32_t code, uint16_t flags, uint32_t message_bytes)
{
	if (flags & ~RILL_WIRE_ERROR_F_FATAL)
		return RILL_E_WIRE_RESERVED;
	if (code >= 0 || message_bytes > RILL_WIRE_MESSAGE_BYTES_MAX)
		return RILL_E_WIRE_VALUE;
	return 0;
}

int rill_wire_error_decode(const void *body, uint32_t bytes, struct rill_wire_error *out)
{
	RILL_ASSERT(out != NULL);
	RILL_ASSERT(body != NULL || bytes == 0);
	if (bytes < RILL_WIRE_ERROR_BYTES_MIN)
		return RILL_E_WIRE_TRUNCATED;
	const uint8_t *p = body;
	int32_t code = (int32_t)rill_ld32(p + ERR_CODE);
	uint16_t message_bytes = rill_ld16(p + ERR_MESSAGE_BYTES);
	uint16_t flags = rill_ld16(p + ERR_FLAGS);
	int rc = error_check(code, flags, message_bytes);
	if (rc != 0)
		return rc;
	rc = body_exact(bytes, (uint64_t)ERR_MESSAGE + message_bytes);
	if (rc != 0)
		return rc;
	out->code = code;
	out->flags = flags;
	out->message = (const char *)(p + ERR_MESSAGE);
	out->message_bytes = message_bytes;
	return 0;
}

/* The bytes of @message that go out: at most the limit, and never the first part of a
 * UTF-8 character cut in two (the text is shown to people). */
static uint16_t error_message_bytes(const char *message)
{
	if (message == NULL)
		return 0;
	size_t n = strnlen(message, RILL_WIRE_MESSAGE_BYTES_MAX + 1);
	if (n <= RILL_WIRE_MESSAGE_BYTES_MAX)
		return (uint16_t)n;
	n = RILL_WIRE_MESSAGE_BYTES_MAX;
	while (n > 0 && ((uint8_t)message[n] & 0xc0) == 0x80)
		n--; /* message[n], the first byte left out, continues a character: drop it all */
	return (uint16_t)n;
}

int rill_wire_error_encode(void *buf, size_t buf_bytes, uint64_t request_id, int32_t code,
			   uint16_t flags, const char *message)
{
	uint16_t message_bytes = error_message_bytes(message);
	if (error_check(code, flags, message_bytes) != 0)
		return -EINVAL;
	uint32_t body_bytes = ERR_MESSAGE + (uint32_t)message_bytes;
	int rc = frame_start(buf, buf_bytes, RILL_WIRE_ERROR, request_id, body_bytes);
	if (rc != 0)
		return rc;
	uint8_t *p = (uint8_t *)buf + RILL_WIRE_HEADER_BYTES;
	rill_st32(p + ERR_CODE, (uint32_t)code);
	rill_st16(p + ERR_MESSAGE_BYTES, message_bytes);
	rill_st16(p + ERR_FLAGS, flags);
	if (message_bytes > 0)
		memcpy(p + ERR_MESSAGE, message, message_bytes);
	return (int)(RILL_WIRE_HEADER_BYTES + body_bytes);
}

int rill_wire_empty_decode(uint32_t bytes)
{
	return bytes == 0 ? 0 : RILL_E_WIRE_TRAILING;
}

int rill_wire_empty_encode(void *buf, size_t buf_bytes, uint16_t type, uint64_t request_id)
{
	if (type != RILL_WIRE_UNSUBSCRIBE && type != RILL_WIRE_PING && type != RILL_WIRE_PONG)
		return -EINVAL;
	int rc = frame_start(buf, buf_bytes, type, request_id, 0);
	if (rc != 0)
		return rc;
	return (int)RILL_WIRE_HEADER_BYTES;
}

const char *rill_wire_type_name(uint16_t type)
{
	static const char *const names[RILL_WIRE_TYPE_LAST] = {
		[RILL_WIRE_HELLO] = "HELLO",         [RILL_WIRE_HELLO_OK] = "HELLO_OK",
		[RILL_WIRE_PRODUCE] = "PRODUCE",     [RILL_WIRE_ACK] = "ACK",
		[RILL_WIRE_SUBSCRIBE] = "SUBSCRIBE", [RILL_WIRE_SUBSCRIBED] = "SUBSCRIBED",
		[RILL_WIRE_FETCH] = "FETCH",         [RILL_WIRE_EVENTS] = "EVENTS",
		[RILL_WIRE_QUERY] = "QUERY",         [RILL_WIRE_RESULT] = "RESULT",
		[RILL_WIRE_ADMIN] = "ADMIN",         [RILL_WIRE_ADMIN_OK] = "ADMIN_OK",
		[RILL_WIRE_ERROR] = "ERROR",         [RILL_WIRE_UNSUBSCRIBE] = "UNSUBSCRIBE",
		[RILL_WIRE_PING] = "PING",           [RILL_WIRE_PONG] = "PONG",
	};
	if (type >= RILL_WIRE_TYPE_LAST || names[type] == NULL)
		return "unknown";
	return names[type];
}
