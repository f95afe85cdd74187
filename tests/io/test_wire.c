/*
 * Unit tests of the wire protocol codec (io/wire.h): a round trip of every frame type, a
 * stream of frames at odd alignments, and every malformed-input class: each frame cut at
 * every length, a byte too many, reserved bits, out-of-range values, a wrong magic, a
 * PRODUCE whose count disagrees with its records either way or holds a record with a bad
 * CRC, an ACK entry whose reason runs past the end, and every encoder given a buffer one
 * byte too small, and smaller. Bodies are decoded from heap copies of their exact size so
 * AddressSanitizer sees any read past the end. Random fields come from the test seed
 * (RILL_TEST_SEED replays a run).
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "base/bytes.h"
#include "io/wire.h"
#include "tests/common/record_check.h"

#define FRAME_LIMIT (1u << 20) /* the default frame limit a server announces */
#define RECORDS_MAX 16u
#define KEY_MAX     32u
#define PAYLOAD_MAX 300u

static uint8_t frame_buf[1u << 16];

/* The rest of an iterator; 0 at a clean end, or the first error. */
static int drain_ack(struct rill_wire_iter *it)
{
	struct rill_wire_ack_entry e;
	int rc;
	while ((rc = rill_wire_ack_next(it, &e)) == 1)
		;
	return rc;
}
static int drain_subscribed(struct rill_wire_iter *it)
{
	struct rill_wire_subscribed_entry e;
	int rc;
	while ((rc = rill_wire_subscribed_next(it, &e)) == 1)
		;
	return rc;
}
static int drain_events(struct rill_wire_iter *it)
{
	struct rill_record rec;
	uint64_t offset;
	int rc;
	while ((rc = rill_wire_events_next(it, &offset, &rec)) == 1)
		;
	return rc;
}

/* Decode a body of @type whole, iterators to their end: 0 or the first error. */
static int decode_full(uint16_t type, const uint8_t *body, uint32_t bytes)
{
	union {
		struct rill_wire_hello hello;
		struct rill_wire_hello_ok ok;
		struct rill_wire_produce produce;
		struct rill_wire_subscribe sub;
		struct rill_wire_query query;
		struct rill_projection_value value;
		struct rill_wire_admin admin;
		struct rill_wire_error error;
	} u;
	struct rill_wire_iter it;
	uint32_t count, partition, bad_index;
	const char *json;
	int rc;
	switch (type) {
	case RILL_WIRE_HELLO:
		return rill_wire_hello_decode(body, bytes, &u.hello);
	case RILL_WIRE_HELLO_OK:
		return rill_wire_hello_ok_decode(body, bytes, &u.ok);
	case RILL_WIRE_PRODUCE:
		return rill_wire_produce_decode(body, bytes, &u.produce, &bad_index);
	case RILL_WIRE_ACK:
		rc = rill_wire_ack_decode(body, bytes, &count, &it);
		return rc != 0 ? rc : drain_ack(&it);
	case RILL_WIRE_SUBSCRIBE:
		return rill_wire_subscribe_decode(body, bytes, &u.sub);
	case RILL_WIRE_SUBSCRIBED:
		rc = rill_wire_subscribed_decode(body, bytes, &count, &it);
		return rc != 0 ? rc : drain_subscribed(&it);
	case RILL_WIRE_FETCH:
		return rill_wire_fetch_decode(body, bytes, &count);
	case RILL_WIRE_EVENTS:
		rc = rill_wire_events_decode(body, bytes, &partition, &count, &it);
		return rc != 0 ? rc : drain_events(&it);
	case RILL_WIRE_QUERY:
		return rill_wire_query_decode(body, bytes, &u.query);
	case RILL_WIRE_RESULT:
		return rill_wire_result_decode(body, bytes, &u.value);
	case RILL_WIRE_ADMIN:
		return rill_wire_admin_decode(body, bytes, &u.admin);
	case RILL_WIRE_ADMIN_OK:
		return rill_wire_admin_ok_decode(body, bytes, &json, &count);
	case RILL_WIRE_ERROR:
		return rill_wire_error_decode(body, bytes, &u.error);
	default:
		return rill_wire_empty_decode(bytes);
	}
}

/* decode_full of a heap copy of exactly @bytes of @body. */
static int decode_exact(uint16_t type, const uint8_t *body, uint32_t bytes)
{
	uint8_t *copy = test_exact_copy(body, bytes);
	int rc = decode_full(type, copy, bytes);
	free(copy);
	return rc;
}

/* The frame at frame_buf (@frame_bytes long): its header checked, its body decoded. */
static int decode_frame(uint16_t type, int frame_bytes)
{
	assert_true(frame_bytes >= (int)RILL_WIRE_HEADER_BYTES);
	struct rill_wire_header h;
	assert_int_equal(rill_wire_header_decode(frame_buf, (size_t)frame_bytes, FRAME_LIMIT, &h),
			 0);
	assert_int_equal(h.type, type);
	assert_int_equal(h.body_bytes, (uint32_t)frame_bytes - RILL_WIRE_HEADER_BYTES);
	return decode_exact(type, frame_buf + RILL_WIRE_HEADER_BYTES, h.body_bytes);
}

/*
 * The body at frame_buf, cut at every length and lengthened by a byte: each cut is
 * refused with @cut_rc (0: any error of the frame's cut classes), the byte too many with
 * @extra_rc.
 */
static void check_cuts(uint16_t type, int frame_bytes, int cut_rc, int extra_rc)
{
	uint32_t bytes = (uint32_t)frame_bytes - RILL_WIRE_HEADER_BYTES;
	const uint8_t *body = frame_buf + RILL_WIRE_HEADER_BYTES;
	for (uint32_t cut = 0; cut < bytes; cut++) {
		int rc = decode_exact(type, body, cut);
		if (cut_rc != 0) {
			assert_int_equal(rc, cut_rc);
			continue;
		}
		/* Variable frames: what the cut leaves decides between the frame's counts and
		 * the record's own truncation. */
		assert_true(rc == RILL_E_WIRE_TRUNCATED || rc == RILL_E_RECORD_TRUNCATED ||
			    rc == RILL_E_WIRE_COUNT);
	}
	uint8_t *longer = malloc(bytes + 1u);
	assert_non_null(longer);
	memcpy(longer, body, bytes);
	longer[bytes] = 0;
	assert_int_equal(decode_full(type, longer, bytes + 1u), extra_rc);
	free(longer);
}

/* Every buffer smaller than the frame: -ENOSPC from @encode(buf, buf_bytes). */
#define CHECK_NOSPC(frame_bytes, call_with_buf_bytes)                                              \
	do {                                                                                       \
		for (size_t buf_bytes = 0; buf_bytes < (size_t)(frame_bytes); buf_bytes++) {       \
			uint8_t *small = malloc(buf_bytes > 0 ? buf_bytes : 1);                    \
			assert_non_null(small);                                                    \
			uint8_t *buf = small;                                                      \
			assert_int_equal((call_with_buf_bytes), -ENOSPC);                          \
			(void)buf;                                                                 \
			free(small);                                                               \
		}                                                                                  \
	} while (0)

/* A body byte of the frame at frame_buf set to @v, decoded, and put back. */
static int decode_with_byte(uint16_t type, int frame_bytes, uint32_t at, uint8_t v)
{
	uint8_t *b = frame_buf + RILL_WIRE_HEADER_BYTES + at;
	uint8_t old = *b;
	*b = v;
	int rc = decode_exact(type, frame_buf + RILL_WIRE_HEADER_BYTES,
			      (uint32_t)frame_bytes - RILL_WIRE_HEADER_BYTES);
	*b = old;
	return rc;
}

/* ---- Header ---------------------------------------------------------------------------- */

static void test_header(void **state)
{
	(void)state;
	uint8_t buf[RILL_WIRE_HEADER_BYTES];
	struct rill_wire_header h;
	rill_wire_header_encode(buf, RILL_WIRE_PRODUCE, 0x0102030405060708ull, 1234);
	for (size_t cut = 0; cut < sizeof(buf); cut++) {
		uint8_t *part = test_exact_copy(buf, cut);
		assert_int_equal(rill_wire_header_decode(part, cut, FRAME_LIMIT, &h), -EAGAIN);
		free(part);
	}
	uint8_t *whole = test_exact_copy(buf, sizeof(buf));
	assert_int_equal(rill_wire_header_decode(whole, sizeof(buf), FRAME_LIMIT, &h), 0);
	free(whole);
	assert_int_equal(h.type, RILL_WIRE_PRODUCE);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.body_bytes, 1234);
	assert_int_equal(h.request_id, 0x0102030405060708ull);
	assert_int_equal(rill_wire_header_decode(buf, sizeof(buf), 1234, &h), 0);
	assert_int_equal(rill_wire_header_decode(buf, sizeof(buf), 1233, &h),
			 RILL_E_WIRE_TOO_LARGE);
	rill_st32(buf, 0xffffffffu);
	assert_int_equal(rill_wire_header_decode(buf, sizeof(buf), FRAME_LIMIT, &h),
			 RILL_E_WIRE_TOO_LARGE);
	assert_int_equal(h.request_id, 0x0102030405060708ull); /* for the ERROR that answers */
	rill_st32(buf, 0);
	const uint16_t bad_types[] = {0, RILL_WIRE_TYPE_LAST, 0x100, 0xffff};
	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		rill_st16(buf + 4, bad_types[i]);
		assert_int_equal(rill_wire_header_decode(buf, sizeof(buf), FRAME_LIMIT, &h),
				 RILL_E_WIRE_TYPE);
	}
	rill_st16(buf + 4, RILL_WIRE_PING);
	for (int bit = 0; bit < 16; bit++) {
		rill_st16(buf + 6, (uint16_t)(1u << bit));
		assert_int_equal(rill_wire_header_decode(buf, sizeof(buf), FRAME_LIMIT, &h),
				 RILL_E_WIRE_RESERVED);
	}
	rill_st16(buf + 6, 0);
	assert_int_equal(rill_wire_header_decode(buf, sizeof(buf), FRAME_LIMIT, &h), 0);
	/* Any alignment, and bytes after the header are not its business. */
	uint8_t odd[RILL_WIRE_HEADER_BYTES + 3];
	memcpy(odd + 1, buf, sizeof(buf));
	assert_int_equal(rill_wire_header_decode(odd + 1, sizeof(buf) + 2, FRAME_LIMIT, &h), 0);
	assert_int_equal(h.type, RILL_WIRE_PING);
}

/* The header-time size check of fixed-size client frames agrees with their decoders. */
static void test_body_check(void **state)
{
	(void)state;
	static const uint8_t zeros[32];
	struct rill_wire_header h = {.type = RILL_WIRE_HELLO};
	struct rill_wire_hello hello;
	uint32_t credit;
	for (uint32_t n = 0; n <= 20; n++) {
		h.type = RILL_WIRE_HELLO;
		h.body_bytes = n;
		int want = n < RILL_WIRE_HELLO_BYTES   ? RILL_E_WIRE_TRUNCATED
			   : n > RILL_WIRE_HELLO_BYTES ? RILL_E_WIRE_TRAILING
						       : 0;
		assert_int_equal(rill_wire_body_check(&h), want);
		if (want != 0) /* (zeros are no valid HELLO: only the length errors compare) */
			assert_int_equal(rill_wire_hello_decode(zeros, n, &hello), want);
		h.type = RILL_WIRE_FETCH;
		want = n < RILL_WIRE_FETCH_BYTES   ? RILL_E_WIRE_TRUNCATED
		       : n > RILL_WIRE_FETCH_BYTES ? RILL_E_WIRE_TRAILING
						   : 0;
		assert_int_equal(rill_wire_body_check(&h), want);
		if (want != 0)
			assert_int_equal(rill_wire_fetch_decode(zeros, n, &credit), want);
		h.type = RILL_WIRE_PING;
		assert_int_equal(rill_wire_body_check(&h), n == 0 ? 0 : RILL_E_WIRE_TRAILING);
		h.type = RILL_WIRE_UNSUBSCRIBE;
		assert_int_equal(rill_wire_body_check(&h), n == 0 ? 0 : RILL_E_WIRE_TRAILING);
		/* Bodies of any size, or not a client's to send: left to the decoders. */
		const uint16_t others[] = {RILL_WIRE_PRODUCE, RILL_WIRE_QUERY, RILL_WIRE_HELLO_OK,
					   RILL_WIRE_PONG};
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
			h.type = others[i];
			assert_int_equal(rill_wire_body_check(&h), 0);
		}
	}
}

static void test_type_names(void **state)
{
	(void)state;
	assert_string_equal(rill_wire_type_name(RILL_WIRE_HELLO), "HELLO");
	assert_string_equal(rill_wire_type_name(RILL_WIRE_PRODUCE), "PRODUCE");
	assert_string_equal(rill_wire_type_name(RILL_WIRE_PONG), "PONG");
	assert_string_equal(rill_wire_type_name(0), "unknown");
	assert_string_equal(rill_wire_type_name(RILL_WIRE_TYPE_LAST), "unknown");
	assert_string_equal(rill_wire_type_name(0xffff), "unknown");
	for (uint16_t t = 1; t < RILL_WIRE_TYPE_LAST; t++)
		assert_string_not_equal(rill_wire_type_name(t), "unknown");
}

/* ---- HELLO, HELLO_OK -------------------------------------------------------------------- */

static void test_hello(void **state)
{
	(void)state;
	struct rill_wire_hello hello = {.version_min = 1, .version_max = 3}, out;
	int n = rill_wire_hello_encode(frame_buf, sizeof(frame_buf), 7, &hello);
	assert_int_equal(n, RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_BYTES);
	assert_int_equal(decode_frame(RILL_WIRE_HELLO, n), 0);
	assert_int_equal(rill_wire_hello_decode(frame_buf + 16, 16, &out), 0);
	assert_int_equal(out.version_min, 1);
	assert_int_equal(out.version_max, 3);
	assert_memory_equal(frame_buf + 16, "RILL", 4);
	check_cuts(RILL_WIRE_HELLO, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at = 0; at < 4; at++)
		assert_int_equal(decode_with_byte(RILL_WIRE_HELLO, n, at, 'X'), RILL_E_WIRE_MAGIC);
	for (uint32_t at = 8; at < 16; at++)
		assert_int_equal(decode_with_byte(RILL_WIRE_HELLO, n, at, 0x80),
				 RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(RILL_WIRE_HELLO, n, 4, 4), RILL_E_WIRE_VALUE); /* 4 > 3 */
	assert_int_equal(decode_with_byte(RILL_WIRE_HELLO, n, 4, 0), RILL_E_WIRE_VALUE); /* 0 */
	assert_int_equal(decode_with_byte(RILL_WIRE_HELLO, n, 4, 3), 0);

	struct rill_wire_hello bad = {.version_min = 2, .version_max = 1};
	assert_int_equal(rill_wire_hello_encode(frame_buf, sizeof(frame_buf), 7, &bad), -EINVAL);
	bad = (struct rill_wire_hello){.version_min = 0, .version_max = 1};
	assert_int_equal(rill_wire_hello_encode(frame_buf, sizeof(frame_buf), 7, &bad), -EINVAL);
	CHECK_NOSPC(n, rill_wire_hello_encode(buf, buf_bytes, 7, &hello));
}

static void test_hello_ok(void **state)
{
	(void)state;
	struct rill_wire_hello_ok ok = {.version = 1,
					.shards = 8,
					.frame_bytes_max = FRAME_LIMIT,
					.inflight_bytes_max = 64u << 20},
				  out;
	int n = rill_wire_hello_ok_encode(frame_buf, sizeof(frame_buf), 7, &ok);
	assert_int_equal(n, RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_OK_BYTES);
	assert_int_equal(decode_frame(RILL_WIRE_HELLO_OK, n), 0);
	assert_int_equal(rill_wire_hello_ok_decode(frame_buf + 16, 16, &out), 0);
	assert_int_equal(out.version, 1);
	assert_int_equal(out.shards, 8);
	assert_int_equal(out.frame_bytes_max, FRAME_LIMIT);
	assert_int_equal(out.inflight_bytes_max, 64u << 20);
	check_cuts(RILL_WIRE_HELLO_OK, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at = 12; at < 16; at++)
		assert_int_equal(decode_with_byte(RILL_WIRE_HELLO_OK, n, at, 1),
				 RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(RILL_WIRE_HELLO_OK, n, 0, 0), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(RILL_WIRE_HELLO_OK, n, 2, 0), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(RILL_WIRE_HELLO_OK, n, 7, 0x80), RILL_E_WIRE_VALUE);

	const uint32_t bad_frames[] = {0, RILL_WIRE_FRAME_BYTES_MIN - 1,
				       RILL_WIRE_FRAME_BYTES_MAX + 1};
	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); i++) {
		struct rill_wire_hello_ok bad = ok;
		bad.frame_bytes_max = bad_frames[i];
		assert_int_equal(rill_wire_hello_ok_encode(frame_buf, sizeof(frame_buf), 7, &bad),
				 -EINVAL);
	}
	struct rill_wire_hello_ok bad = ok;
	bad.shards = 0;
	assert_int_equal(rill_wire_hello_ok_encode(frame_buf, sizeof(frame_buf), 7, &bad), -EINVAL);
	CHECK_NOSPC(n, rill_wire_hello_ok_encode(buf, buf_bytes, 7, &ok));
}

/* ---- PRODUCE ---------------------------------------------------------------------------- */

struct records {
	uint32_t count;
	struct rill_record rec[RECORDS_MAX];
	uint32_t at[RECORDS_MAX]; /* each one's offset in the frame */
	uint8_t key[RECORDS_MAX][KEY_MAX];
	uint8_t payload[RECORDS_MAX][PAYLOAD_MAX];
};

static void records_make(struct test_rng *rng, struct records *r, uint32_t count)
{
	assert_true(count <= RECORDS_MAX);
	r->count = count;
	for (uint32_t i = 0; i < count; i++) {
		for (uint32_t b = 0; b < KEY_MAX; b++)
			r->key[i][b] = (uint8_t)test_rng_next(rng);
		for (uint32_t b = 0; b < PAYLOAD_MAX; b++)
			r->payload[i][b] = (uint8_t)test_rng_next(rng);
		r->rec[i] = (struct rill_record){
			.timestamp_ns = test_rng_next(rng),
			.producer_id = test_rng_next(rng),
			.sequence = test_rng_next(rng),
			.correlation_id = test_rng_next(rng),
			.causation_id = test_rng_next(rng),
			.type_id = (uint32_t)test_rng_next(rng),
			.schema_version = (uint16_t)test_rng_next(rng),
			.key_bytes = (uint16_t)test_rng_below(rng, KEY_MAX + 1),
			.payload_bytes = (uint32_t)test_rng_below(rng, PAYLOAD_MAX + 1),
			.key = r->key[i],
			.payload = r->payload[i],
		};
	}
}

/* A PRODUCE of @r's records into frame_buf; the frame's length. */
static int produce_build(struct records *r, uint8_t acks, const char *topic)
{
	int at = rill_wire_produce_begin(frame_buf, sizeof(frame_buf), 99, acks, topic,
					 strlen(topic));
	assert_int_equal(at, RILL_WIRE_HEADER_BYTES + RILL_WIRE_PRODUCE_BYTES_MIN + strlen(topic));
	for (uint32_t i = 0; i < r->count; i++) {
		r->at[i] = (uint32_t)at;
		int n = rill_record_encode(frame_buf + at, sizeof(frame_buf) - (size_t)at,
					   &r->rec[i]);
		assert_true(n > 0);
		at += n;
	}
	rill_wire_produce_finish(frame_buf, (uint32_t)at, r->count);
	return at;
}

static void test_produce_round_trip(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 1);
	static struct records r;
	for (int round = 0; round < 200; round++) {
		uint8_t acks = (uint8_t)(round % 3);
		records_make(&rng, &r, 1 + (uint32_t)test_rng_below(&rng, RECORDS_MAX));
		const char *topic = round % 2 ? "orders" : "t";
		int n = produce_build(&r, acks, topic);
		assert_int_equal(decode_frame(RILL_WIRE_PRODUCE, n), 0);

		uint32_t bytes = (uint32_t)n - RILL_WIRE_HEADER_BYTES;
		uint8_t *body = test_exact_copy(frame_buf + RILL_WIRE_HEADER_BYTES, bytes);
		struct rill_wire_produce p;
		assert_int_equal(rill_wire_produce_decode(body, bytes, &p, NULL), 0);
		assert_int_equal(p.acks, acks);
		assert_int_equal(p.topic_bytes, strlen(topic));
		assert_memory_equal(p.topic, topic, p.topic_bytes);
		assert_int_equal(p.event_count, r.count);
		assert_int_equal(p.records_bytes,
				 (uint32_t)n - r.at[0]); /* the records run to the end */
		struct rill_wire_iter it;
		struct rill_record rec;
		rill_wire_produce_iter(&p, &it);
		for (uint32_t i = 0; i < r.count; i++) {
			assert_int_equal(rill_wire_produce_next(&it, &rec), 1);
			assert_same_record(&r.rec[i], &rec);
		}
		assert_int_equal(rill_wire_produce_next(&it, &rec), 0);
		assert_int_equal(rill_wire_produce_next(&it, &rec), 0);
		free(body);
	}
}

static void test_produce_malformed(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 2);
	static struct records r;
	records_make(&rng, &r, 4);
	int n = produce_build(&r, 1, "orders");
	const uint16_t type = RILL_WIRE_PRODUCE;
	/* Cut in the fixed part or topic: TRUNCATED; at a record boundary: COUNT; inside a
	 * record: the record's own TRUNCATED. A byte too many: more than event_count says. */
	check_cuts(type, n, 0, RILL_E_WIRE_COUNT);
	const uint32_t fixed = RILL_WIRE_PRODUCE_BYTES_MIN + 6;
	for (uint32_t cut = 0; cut < fixed; cut++)
		assert_int_equal(decode_exact(type, frame_buf + 16, cut), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_exact(type, frame_buf + 16, fixed), RILL_E_WIRE_COUNT);
	assert_int_equal(decode_exact(type, frame_buf + 16, r.at[2] - 16), RILL_E_WIRE_COUNT);

	assert_int_equal(decode_with_byte(type, n, 1, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 0, 3), RILL_E_WIRE_VALUE); /* acks */
	assert_int_equal(decode_with_byte(type, n, 0, 0xff), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 8 + 3, 0), RILL_E_WIRE_VALUE); /* NUL in topic */
	uint8_t *b = frame_buf + RILL_WIRE_HEADER_BYTES;
	rill_st16(b + 2, 0);
	assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), RILL_E_WIRE_VALUE);
	rill_st16(b + 2, RILL_WIRE_TOPIC_BYTES_MAX + 1);
	assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), RILL_E_WIRE_VALUE);
	rill_st16(b + 2, 0xffff);
	assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), RILL_E_WIRE_VALUE);
	rill_st16(b + 2, 6);

	/* The count disagrees with the records, both ways, and is 0 or huge. */
	const uint32_t counts[] = {0, 3, 5, 1, 0xffffffffu};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		rill_st32(b + 4, counts[i]);
		assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), RILL_E_WIRE_COUNT);
	}
	rill_st32(b + 4, 4);
	assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), 0);

	/* A CRC broken in the third record: its own error and its index. */
	for (uint32_t i = 0; i < 4; i++) {
		uint8_t *payload_end = frame_buf + (i + 1 < 4 ? r.at[i + 1] : (uint32_t)n) - 1;
		*payload_end ^= 0x40;
		uint8_t *copy = test_exact_copy(b, (uint32_t)n - 16);
		struct rill_wire_produce p;
		uint32_t bad_index = 12345;
		assert_int_equal(rill_wire_produce_decode(copy, (uint32_t)n - 16, &p, &bad_index),
				 RILL_E_RECORD_CRC);
		assert_int_equal(bad_index, i);
		assert_int_equal(rill_wire_produce_decode(copy, (uint32_t)n - 16, &p, NULL),
				 RILL_E_RECORD_CRC);
		free(copy);
		*payload_end ^= 0x40;
	}
	/* Another record error: a bad version in the second record. */
	assert_int_equal(decode_with_byte(type, n, r.at[1] - 16 + 8, 9), RILL_E_RECORD_VERSION);
	/* The last record cut: its own TRUNCATED, at its index. */
	struct rill_wire_produce p;
	uint32_t bad_index = 0;
	uint8_t *cut = test_exact_copy(b, (uint32_t)n - 17);
	assert_int_equal(rill_wire_produce_decode(cut, (uint32_t)n - 17, &p, &bad_index),
			 RILL_E_RECORD_TRUNCATED);
	assert_int_equal(bad_index, 3);
	free(cut);
}

static void test_produce_encode_limits(void **state)
{
	(void)state;
	char topic[RILL_WIRE_TOPIC_BYTES_MAX + 1];
	memset(topic, 'a', sizeof(topic));
	uint8_t *fb = frame_buf;
	size_t size = sizeof(frame_buf);
	assert_int_equal(rill_wire_produce_begin(fb, size, 1, 3, "t", 1), -EINVAL);
	assert_int_equal(rill_wire_produce_begin(fb, size, 1, 1, "t", 0), -EINVAL);
	assert_int_equal(rill_wire_produce_begin(fb, size, 1, 1, NULL, 0), -EINVAL);
	assert_int_equal(rill_wire_produce_begin(fb, size, 1, 1, topic, sizeof(topic)), -EINVAL);
	assert_int_equal(rill_wire_produce_begin(fb, size, 1, 1, "a\0b", 3), -EINVAL);
	int n = rill_wire_produce_begin(fb, size, 1, 2, topic, RILL_WIRE_TOPIC_BYTES_MAX);
	assert_int_equal(n, 16 + 8 + RILL_WIRE_TOPIC_BYTES_MAX);
	CHECK_NOSPC(
		n, rill_wire_produce_begin(buf, buf_bytes, 1, 2, topic, RILL_WIRE_TOPIC_BYTES_MAX));
}

/* ---- ACK -------------------------------------------------------------------------------- */

/* An ACK of @count entries into frame_buf, each kept in @e; the frame's length. */
static int ack_build(struct test_rng *rng, struct rill_wire_ack_entry *e, uint32_t count)
{
	static const char *const reasons[] = {"", "unknown type 7 version 2", "sequence gap"};
	int at = rill_wire_ack_begin(frame_buf, sizeof(frame_buf), 5);
	assert_int_equal(at, 16 + RILL_WIRE_ACK_BYTES_MIN);
	for (uint32_t i = 0; i < count; i++) {
		const char *reason = reasons[test_rng_below(rng, 3)];
		e[i] = (struct rill_wire_ack_entry){
			.error = reason[0] != '\0' ? RILL_E_WRITE_UNKNOWN_TYPE : 0,
			.partition = (uint32_t)test_rng_next(rng),
			.offset = test_rng_below(rng, 2) ? UINT64_MAX : test_rng_next(rng),
			.event_count = (uint32_t)test_rng_below(rng, 5),
			.flags = (uint16_t)test_rng_below(rng, 2),
			.reason = reason[0] != '\0' ? reason : NULL,
			.reason_bytes = (uint16_t)strlen(reason),
		};
		int end = rill_wire_ack_entry(frame_buf, sizeof(frame_buf), (size_t)at, &e[i]);
		assert_int_equal(end, at + (int)rill_wire_ack_entry_bytes(e[i].reason_bytes));
		at = end;
	}
	rill_wire_ack_finish(frame_buf, (uint32_t)at, count);
	return at;
}

static void test_ack_round_trip(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 3);
	struct rill_wire_ack_entry e[8], out;
	for (uint32_t count = 0; count <= 8; count++) {
		int n = ack_build(&rng, e, count);
		assert_int_equal(decode_frame(RILL_WIRE_ACK, n), 0);
		uint32_t bytes = (uint32_t)n - 16, got;
		uint8_t *body = test_exact_copy(frame_buf + 16, bytes);
		struct rill_wire_iter it;
		assert_int_equal(rill_wire_ack_decode(body, bytes, &got, &it), 0);
		assert_int_equal(got, count);
		for (uint32_t i = 0; i < count; i++) {
			assert_int_equal(rill_wire_ack_next(&it, &out), 1);
			assert_int_equal(out.error, e[i].error);
			assert_int_equal(out.partition, e[i].partition);
			assert_int_equal(out.offset, e[i].offset);
			assert_int_equal(out.event_count, e[i].event_count);
			assert_int_equal(out.flags, e[i].flags);
			assert_int_equal(out.reason_bytes, e[i].reason_bytes);
			if (out.reason_bytes > 0)
				assert_memory_equal(out.reason, e[i].reason, out.reason_bytes);
			else
				assert_null(out.reason);
		}
		assert_int_equal(rill_wire_ack_next(&it, &out), 0);
		free(body);
	}
}

static void test_ack_malformed(void **state)
{
	(void)state;
	struct rill_wire_ack_entry e[3] = {
		{.error = 0, .partition = 1, .offset = 10, .event_count = 1},
		{.error = RILL_E_WRITE_SEQUENCE, .reason = "gap", .reason_bytes = 3},
		{.error = 0, .partition = 2, .offset = 11, .event_count = 1, .flags = 1},
	};
	int at = rill_wire_ack_begin(frame_buf, sizeof(frame_buf), 5);
	for (int i = 0; i < 3; i++)
		at = rill_wire_ack_entry(frame_buf, sizeof(frame_buf), (size_t)at, &e[i]);
	rill_wire_ack_finish(frame_buf, (uint32_t)at, 3);
	int n = at;
	const uint16_t type = RILL_WIRE_ACK;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at4 = 4; at4 < 8; at4++)
		assert_int_equal(decode_with_byte(type, n, at4, 1), RILL_E_WIRE_RESERVED);
	const uint32_t e1 = 8 + 24; /* the second entry */
	assert_int_equal(decode_with_byte(type, n, 8 + 20, 2), RILL_E_WIRE_RESERVED); /* flags */
	assert_int_equal(decode_with_byte(type, n, 8 + 21, 0x80), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, e1 + 3, 0x7f),
			 RILL_E_WIRE_VALUE); /* error > 0 */
	/* The second entry's reason_bytes runs past the end, by one byte and by far. */
	uint8_t *b = frame_buf + 16;
	uint32_t bytes = (uint32_t)n - 16;
	rill_st16(b + e1 + 22, (uint16_t)(bytes - e1 - 24 + 1));
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRUNCATED);
	rill_st16(b + e1 + 22, RILL_WIRE_REASON_BYTES_MAX);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRUNCATED);
	rill_st16(b + e1 + 22, RILL_WIRE_REASON_BYTES_MAX + 1);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_VALUE);
	rill_st16(b + e1 + 22, 3);
	/* The count disagrees: fewer (bytes left over), more (the body ends first), huge. */
	rill_st32(b, 2);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRAILING);
	rill_st32(b, 4);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRUNCATED);
	rill_st32(b, 0xffffffffu);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRUNCATED);
	rill_st32(b, 0);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRAILING);
	rill_st32(b, 3);
	assert_int_equal(decode_exact(type, b, bytes), 0);
	/* An iterator stays on a bad entry: the same error again. */
	rill_st16(b + e1 + 20, 4);
	struct rill_wire_iter it;
	struct rill_wire_ack_entry out;
	uint32_t count;
	assert_int_equal(rill_wire_ack_decode(b, bytes, &count, &it), 0);
	assert_int_equal(rill_wire_ack_next(&it, &out), 1);
	assert_int_equal(rill_wire_ack_next(&it, &out), RILL_E_WIRE_RESERVED);
	assert_int_equal(rill_wire_ack_next(&it, &out), RILL_E_WIRE_RESERVED);
	rill_st16(b + e1 + 20, 0);
}

static void test_ack_encode_limits(void **state)
{
	(void)state;
	static char reason[RILL_WIRE_REASON_BYTES_MAX + 1];
	memset(reason, 'r', sizeof(reason));
	struct rill_wire_ack_entry e = {.reason = reason, .reason_bytes = sizeof(reason)};
	int at = rill_wire_ack_begin(frame_buf, sizeof(frame_buf), 1);
	assert_int_equal(rill_wire_ack_entry(frame_buf, sizeof(frame_buf), (size_t)at, &e),
			 -EINVAL);
	assert_int_equal(rill_wire_ack_entry_bytes(sizeof(reason)), 0);
	assert_int_equal(rill_wire_ack_entry_bytes(0), RILL_WIRE_ACK_ENTRY_BYTES);
	assert_int_equal(rill_wire_ack_entry_bytes(0xffffffffu), 0);
	e.reason_bytes = RILL_WIRE_REASON_BYTES_MAX;
	e.flags = 2;
	assert_int_equal(rill_wire_ack_entry(frame_buf, sizeof(frame_buf), (size_t)at, &e),
			 -EINVAL);
	e.flags = RILL_WIRE_ACK_F_DUPLICATE;
	e.error = 5;
	assert_int_equal(rill_wire_ack_entry(frame_buf, sizeof(frame_buf), (size_t)at, &e),
			 -EINVAL);
	e.error = -EIO;
	int end = rill_wire_ack_entry(frame_buf, sizeof(frame_buf), (size_t)at, &e);
	assert_int_equal(end, at + (int)rill_wire_ack_entry_bytes(RILL_WIRE_REASON_BYTES_MAX));
	for (size_t size = (size_t)at; size < (size_t)end; size++)
		assert_int_equal(rill_wire_ack_entry(frame_buf, size, (size_t)at, &e), -ENOSPC);
	CHECK_NOSPC(at, rill_wire_ack_begin(buf, buf_bytes, 1));
}

/* ---- SUBSCRIBE, SUBSCRIBED, FETCH ------------------------------------------------------- */

static void test_subscribe(void **state)
{
	(void)state;
	struct rill_wire_subscribe sub, out;
	for (uint8_t from = 0; from <= RILL_WIRE_FROM_LATEST; from++) {
		sub = (struct rill_wire_subscribe){.topic = "orders",
						   .topic_bytes = 6,
						   .from = from,
						   .partition =
							   from == 1 ? RILL_WIRE_PARTITION_ALL : 3,
						   .from_value = 0x1122334455667788ull,
						   .credit = 1000};
		int n = rill_wire_subscribe_encode(frame_buf, sizeof(frame_buf), 9, &sub);
		assert_int_equal(n, 16 + RILL_WIRE_SUBSCRIBE_BYTES + 6);
		assert_int_equal(decode_frame(RILL_WIRE_SUBSCRIBE, n), 0);
		assert_int_equal(rill_wire_subscribe_decode(frame_buf + 16, (uint32_t)n - 16, &out),
				 0);
		assert_int_equal(out.topic_bytes, 6);
		assert_memory_equal(out.topic, "orders", 6);
		assert_int_equal(out.from, from);
		assert_int_equal(out.partition, sub.partition);
		assert_int_equal(out.from_value, sub.from_value);
		assert_int_equal(out.credit, 1000);
	}
	int n = rill_wire_subscribe_encode(frame_buf, sizeof(frame_buf), 9, &sub);
	const uint16_t type = RILL_WIRE_SUBSCRIBE;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	assert_int_equal(decode_with_byte(type, n, 3, 1), RILL_E_WIRE_RESERVED);
	for (uint32_t at = 20; at < 24; at++)
		assert_int_equal(decode_with_byte(type, n, at, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 2, 4), RILL_E_WIRE_VALUE); /* from */
	assert_int_equal(decode_with_byte(type, n, 0, 0), RILL_E_WIRE_VALUE); /* topic_bytes 0 */
	assert_int_equal(decode_with_byte(type, n, 1, 1), RILL_E_WIRE_VALUE); /* 262 > 128 */
	assert_int_equal(decode_with_byte(type, n, 0, 129), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 0, 7), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_with_byte(type, n, 0, 5), RILL_E_WIRE_TRAILING);
	assert_int_equal(decode_with_byte(type, n, 24, 0), RILL_E_WIRE_VALUE); /* NUL in topic */

	struct rill_wire_subscribe bad = sub;
	bad.from = 4;
	assert_int_equal(rill_wire_subscribe_encode(frame_buf, sizeof(frame_buf), 9, &bad),
			 -EINVAL);
	bad = sub;
	bad.topic_bytes = 0;
	assert_int_equal(rill_wire_subscribe_encode(frame_buf, sizeof(frame_buf), 9, &bad),
			 -EINVAL);
	bad.topic_bytes = RILL_WIRE_TOPIC_BYTES_MAX + 1;
	assert_int_equal(rill_wire_subscribe_encode(frame_buf, sizeof(frame_buf), 9, &bad),
			 -EINVAL);
	CHECK_NOSPC(n, rill_wire_subscribe_encode(buf, buf_bytes, 9, &sub));
}

static void test_subscribed(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 5);
	struct rill_wire_subscribed_entry e[5], out;
	for (uint32_t count = 0; count <= 5; count++) {
		for (uint32_t i = 0; i < count; i++)
			e[i] = (struct rill_wire_subscribed_entry){
				.partition = i,
				.first_offset = test_rng_next(&rng),
				.end_offset = test_rng_next(&rng)};
		int n = rill_wire_subscribed_encode(frame_buf, sizeof(frame_buf), 9, e, count);
		assert_int_equal(n, 16 + 8 + 24 * (int)count);
		assert_int_equal(decode_frame(RILL_WIRE_SUBSCRIBED, n), 0);
		struct rill_wire_iter it;
		uint32_t got;
		assert_int_equal(
			rill_wire_subscribed_decode(frame_buf + 16, (uint32_t)n - 16, &got, &it),
			0);
		assert_int_equal(got, count);
		for (uint32_t i = 0; i < count; i++) {
			assert_int_equal(rill_wire_subscribed_next(&it, &out), 1);
			assert_int_equal(out.partition, e[i].partition);
			assert_int_equal(out.first_offset, e[i].first_offset);
			assert_int_equal(out.end_offset, e[i].end_offset);
		}
		assert_int_equal(rill_wire_subscribed_next(&it, &out), 0);
	}
	int n = rill_wire_subscribed_encode(frame_buf, sizeof(frame_buf), 9, e, 5);
	const uint16_t type = RILL_WIRE_SUBSCRIBED;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	assert_int_equal(decode_with_byte(type, n, 7, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 8 + 24 * 2 + 4, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 0, 4), RILL_E_WIRE_TRAILING); /* count 4 */
	assert_int_equal(decode_with_byte(type, n, 0, 6), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_with_byte(type, n, 3, 0xff), RILL_E_WIRE_TRUNCATED); /* huge */
	uint8_t *b = frame_buf + 16;
	rill_st32(b + 8 + 24, RILL_WIRE_PARTITION_ALL);
	assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), RILL_E_WIRE_VALUE);
	e[1].partition = RILL_WIRE_PARTITION_ALL;
	assert_int_equal(rill_wire_subscribed_encode(frame_buf, sizeof(frame_buf), 9, e, 5),
			 -EINVAL);
	e[1].partition = 1;
	CHECK_NOSPC(n, rill_wire_subscribed_encode(buf, buf_bytes, 9, e, 5));
	/* More entries than any frame holds. */
	assert_int_equal(rill_wire_subscribed_encode(frame_buf, sizeof(frame_buf), 9, e,
						     RILL_WIRE_FRAME_BYTES_MAX / 24 + 1),
			 -EINVAL);
}

static void test_fetch_and_empty(void **state)
{
	(void)state;
	uint32_t credit = 0;
	int n = rill_wire_fetch_encode(frame_buf, sizeof(frame_buf), 4, 0xdeadbeef);
	assert_int_equal(n, 16 + RILL_WIRE_FETCH_BYTES);
	assert_int_equal(decode_frame(RILL_WIRE_FETCH, n), 0);
	assert_int_equal(rill_wire_fetch_decode(frame_buf + 16, 8, &credit), 0);
	assert_int_equal(credit, 0xdeadbeef);
	check_cuts(RILL_WIRE_FETCH, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at = 4; at < 8; at++)
		assert_int_equal(decode_with_byte(RILL_WIRE_FETCH, n, at, 1), RILL_E_WIRE_RESERVED);
	CHECK_NOSPC(n, rill_wire_fetch_encode(buf, buf_bytes, 4, 1));

	const uint16_t types[] = {RILL_WIRE_UNSUBSCRIBE, RILL_WIRE_PING, RILL_WIRE_PONG};
	for (size_t i = 0; i < 3; i++) {
		n = rill_wire_empty_encode(frame_buf, sizeof(frame_buf), types[i], 77);
		assert_int_equal(n, RILL_WIRE_HEADER_BYTES);
		assert_int_equal(decode_frame(types[i], n), 0);
		CHECK_NOSPC(n, rill_wire_empty_encode(buf, buf_bytes, types[i], 77));
	}
	assert_int_equal(rill_wire_empty_decode(0), 0);
	assert_int_equal(rill_wire_empty_decode(1), RILL_E_WIRE_TRAILING);
	assert_int_equal(rill_wire_empty_decode(0xffffffffu), RILL_E_WIRE_TRAILING);
	assert_int_equal(rill_wire_empty_encode(frame_buf, sizeof(frame_buf), RILL_WIRE_FETCH, 1),
			 -EINVAL);
	assert_int_equal(rill_wire_empty_encode(frame_buf, sizeof(frame_buf), 0, 1), -EINVAL);
	assert_int_equal(rill_wire_empty_encode(frame_buf, sizeof(frame_buf), 999, 1), -EINVAL);
}

/* ---- EVENTS ----------------------------------------------------------------------------- */

/* An EVENTS frame of @r's records at offsets 100, 101, ... into frame_buf; its length. */
static int events_build(struct records *r, uint32_t partition)
{
	static uint8_t rec_buf[RILL_RECORD_HEADER_BYTES + KEY_MAX + PAYLOAD_MAX];
	int at = rill_wire_events_begin(frame_buf, sizeof(frame_buf), 3, partition);
	assert_int_equal(at, 16 + RILL_WIRE_EVENTS_BYTES_MIN);
	for (uint32_t i = 0; i < r->count; i++) {
		int len = rill_record_encode(rec_buf, sizeof(rec_buf), &r->rec[i]);
		assert_true(len > 0);
		r->at[i] = (uint32_t)at;
		int end = rill_wire_events_add(frame_buf, sizeof(frame_buf), (size_t)at, 100 + i,
					       rec_buf, (uint32_t)len);
		assert_int_equal(end, at + 8 + len);
		at = end;
	}
	rill_wire_events_finish(frame_buf, (uint32_t)at, r->count);
	return at;
}

static void test_events_round_trip(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 6);
	static struct records r;
	for (int round = 0; round < 100; round++) {
		records_make(&rng, &r, (uint32_t)test_rng_below(&rng, RECORDS_MAX + 1));
		int n = events_build(&r, (uint32_t)round);
		assert_int_equal(decode_frame(RILL_WIRE_EVENTS, n), 0);
		uint32_t bytes = (uint32_t)n - 16, partition, count;
		uint8_t *body = test_exact_copy(frame_buf + 16, bytes);
		struct rill_wire_iter it;
		assert_int_equal(rill_wire_events_decode(body, bytes, &partition, &count, &it), 0);
		assert_int_equal(partition, (uint32_t)round);
		assert_int_equal(count, r.count);
		struct rill_record rec;
		uint64_t offset;
		for (uint32_t i = 0; i < r.count; i++) {
			assert_int_equal(rill_wire_events_next(&it, &offset, &rec), 1);
			assert_int_equal(offset, 100 + i);
			assert_same_record(&r.rec[i], &rec);
		}
		assert_int_equal(rill_wire_events_next(&it, &offset, &rec), 0);
		free(body);
	}
}

static void test_events_malformed(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 7);
	static struct records r;
	records_make(&rng, &r, 3);
	for (uint32_t i = 0; i < 3; i++)
		r.rec[i].payload_bytes = 200; /* entries long enough that the cuts below reach
					       * the iterator, not decode's count check */
	int n = events_build(&r, 2);
	const uint16_t type = RILL_WIRE_EVENTS;
	check_cuts(type, n, 0, RILL_E_WIRE_TRAILING);
	uint8_t *b = frame_buf + 16;
	uint32_t bytes = (uint32_t)n - 16;
	/* Cut at the end of an entry: the count promises more. */
	assert_int_equal(decode_exact(type, b, r.at[2] - 16), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_exact(type, b, r.at[2] - 16 + 4), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_exact(type, b, r.at[2] - 16 + 8 + 10), RILL_E_RECORD_TRUNCATED);
	rill_st32(b + 4, 2);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRAILING);
	rill_st32(b + 4, 4);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRUNCATED);
	rill_st32(b + 4, 0xffffffffu);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_TRUNCATED);
	rill_st32(b + 4, 3);
	rill_st32(b, RILL_WIRE_PARTITION_ALL);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_WIRE_VALUE);
	rill_st32(b, 2);
	assert_int_equal(decode_exact(type, b, bytes), 0);
	/* A broken CRC in the second event: the iterator stops there with its code. */
	frame_buf[r.at[1] + 8 + 30] ^= 1;
	struct rill_wire_iter it;
	uint32_t partition, count;
	uint64_t offset;
	struct rill_record rec;
	assert_int_equal(rill_wire_events_decode(b, bytes, &partition, &count, &it), 0);
	assert_int_equal(rill_wire_events_next(&it, &offset, &rec), 1);
	assert_int_equal(rill_wire_events_next(&it, &offset, &rec), RILL_E_RECORD_CRC);
	assert_int_equal(rill_wire_events_next(&it, &offset, &rec), RILL_E_RECORD_CRC);
	frame_buf[r.at[1] + 8 + 30] ^= 1;
	/* A record length that lies about the bytes that follow. */
	rill_st32(frame_buf + r.at[1] + 8, 0xfffffff0u);
	assert_int_equal(decode_exact(type, b, bytes), RILL_E_RECORD_TOO_LARGE);
}

static void test_events_encode_limits(void **state)
{
	(void)state;
	static uint8_t rec_buf[RILL_RECORD_HEADER_BYTES + 10];
	struct rill_record rec = {.payload = "0123456789", .payload_bytes = 10};
	int len = rill_record_encode(rec_buf, sizeof(rec_buf), &rec);
	assert_int_equal(len, (int)sizeof(rec_buf));
	assert_int_equal(
		rill_wire_events_begin(frame_buf, sizeof(frame_buf), 1, RILL_WIRE_PARTITION_ALL),
		-EINVAL);
	int at = rill_wire_events_begin(frame_buf, sizeof(frame_buf), 1, 0);
	assert_int_equal(rill_wire_events_add(frame_buf, sizeof(frame_buf), (size_t)at, 1, rec_buf,
					      RILL_RECORD_HEADER_BYTES - 1),
			 -EINVAL);
	assert_int_equal(rill_wire_events_add(frame_buf, sizeof(frame_buf), (size_t)at, 1, rec_buf,
					      RILL_RECORD_BYTES_MAX + 1),
			 -EINVAL);
	int end = at + 8 + len;
	for (size_t size = (size_t)at; size < (size_t)end; size++)
		assert_int_equal(rill_wire_events_add(frame_buf, size, (size_t)at, 1, rec_buf,
						      (uint32_t)len),
				 -ENOSPC);
	assert_int_equal(
		rill_wire_events_add(frame_buf, (size_t)end, (size_t)at, 1, rec_buf, (uint32_t)len),
		end);
	CHECK_NOSPC(at, rill_wire_events_begin(buf, buf_bytes, 1, 0));
}

/* ---- QUERY, RESULT ---------------------------------------------------------------------- */

static void test_query(void **state)
{
	(void)state;
	const uint8_t flag_sets[] = {0, 1, 2, 4, 5, 6};
	struct rill_wire_query q, out;
	for (size_t i = 0; i < sizeof(flag_sets); i++) {
		q = (struct rill_wire_query){.name = "orders_total",
					     .name_bytes = 12,
					     .key = i % 2 ? "cust\0-42" : NULL,
					     .key_bytes = i % 2 ? 8 : 0,
					     .flags = flag_sets[i],
					     .as_of = 12345,
					     .token_partition = 3,
					     .timeout_ms = 250,
					     .token_offset = 999};
		int n = rill_wire_query_encode(frame_buf, sizeof(frame_buf), 2, &q);
		assert_int_equal(n, 16 + RILL_WIRE_QUERY_BYTES_MIN + 12 + q.key_bytes);
		assert_int_equal(decode_frame(RILL_WIRE_QUERY, n), 0);
		assert_int_equal(rill_wire_query_decode(frame_buf + 16, (uint32_t)n - 16, &out), 0);
		assert_int_equal(out.name_bytes, 12);
		assert_memory_equal(out.name, "orders_total", 12);
		assert_int_equal(out.key_bytes, q.key_bytes);
		assert_non_null(out.key);
		assert_memory_equal(out.key, i % 2 ? "cust\0-42" : "", q.key_bytes);
		assert_int_equal(out.flags, q.flags);
		assert_int_equal(out.as_of, 12345);
		assert_int_equal(out.token_partition, 3);
		assert_int_equal(out.timeout_ms, 250);
		assert_int_equal(out.token_offset, 999);
	}
	int n = rill_wire_query_encode(frame_buf, sizeof(frame_buf), 2, &q);
	const uint16_t type = RILL_WIRE_QUERY;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at = 5; at < 8; at++)
		assert_int_equal(decode_with_byte(type, n, at, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 4, 8), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 4, 0x80), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 4, 3), RILL_E_WIRE_VALUE); /* both as-of kinds */
	assert_int_equal(decode_with_byte(type, n, 4, 7), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 0, 0), RILL_E_WIRE_VALUE);   /* no name */
	assert_int_equal(decode_with_byte(type, n, 0, 129), RILL_E_WIRE_VALUE); /* name too long */
	assert_int_equal(decode_with_byte(type, n, 32, 0), RILL_E_WIRE_VALUE);  /* NUL in name */
	assert_int_equal(decode_with_byte(type, n, 3, 0x10),
			 RILL_E_WIRE_VALUE); /* key 4104 bytes */
	assert_int_equal(decode_with_byte(type, n, 2, 9), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_with_byte(type, n, 2, 7), RILL_E_WIRE_TRAILING);

	struct rill_wire_query bad = q;
	bad.flags = 3;
	assert_int_equal(rill_wire_query_encode(frame_buf, sizeof(frame_buf), 2, &bad), -EINVAL);
	bad.flags = 8;
	assert_int_equal(rill_wire_query_encode(frame_buf, sizeof(frame_buf), 2, &bad), -EINVAL);
	bad = q;
	bad.name_bytes = 0;
	assert_int_equal(rill_wire_query_encode(frame_buf, sizeof(frame_buf), 2, &bad), -EINVAL);
	bad = q;
	bad.key_bytes = RILL_KEY_BYTES_MAX + 1;
	assert_int_equal(rill_wire_query_encode(frame_buf, sizeof(frame_buf), 2, &bad), -EINVAL);
	CHECK_NOSPC(n, rill_wire_query_encode(buf, buf_bytes, 2, &q));
}

static void test_result(void **state)
{
	(void)state;
	const struct rill_projection_value values[] = {
		{.count = 3,
		 .i64 = -42,
		 .u64 = 7,
		 .f64 = 1.5,
		 .avg = -0.25,
		 .window_start_ns = 1700000000000000000ull,
		 .offset = 77},
		{.count = UINT64_MAX,
		 .is_float = true,
		 .sum_overflow = true,
		 .i64 = INT64_MIN,
		 .u64 = UINT64_MAX,
		 .f64 = INFINITY,
		 .avg = -0.0,
		 .offset = UINT64_MAX},
		{.f64 = NAN, .avg = NAN},
	};
	struct rill_projection_value out;
	int n = 0;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		const struct rill_projection_value *v = &values[i];
		n = rill_wire_result_encode(frame_buf, sizeof(frame_buf), 8, v);
		assert_int_equal(n, 16 + RILL_WIRE_RESULT_BYTES);
		assert_int_equal(decode_frame(RILL_WIRE_RESULT, n), 0);
		assert_int_equal(rill_wire_result_decode(frame_buf + 16, 64, &out), 0);
		assert_int_equal(out.count, v->count);
		assert_int_equal(out.i64, v->i64);
		assert_int_equal(out.u64, v->u64);
		assert_memory_equal(&out.f64, &v->f64, sizeof(double)); /* NaN and -0 bit for bit */
		assert_memory_equal(&out.avg, &v->avg, sizeof(double));
		assert_int_equal(out.window_start_ns, v->window_start_ns);
		assert_int_equal(out.offset, v->offset);
		assert_int_equal(out.is_float, v->is_float);
		assert_int_equal(out.sum_overflow, v->sum_overflow);
	}
	const uint16_t type = RILL_WIRE_RESULT;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at = 58; at < 64; at++)
		assert_int_equal(decode_with_byte(type, n, at, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 56, 2), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 57, 0xff), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 57, 1), 0);
	CHECK_NOSPC(n, rill_wire_result_encode(buf, buf_bytes, 8, &values[0]));
}

/* ---- ADMIN, ADMIN_OK, ERROR --------------------------------------------------------------- */

static void test_admin(void **state)
{
	(void)state;
	const char *json = "{\"name\":\"orders\",\"partitions\":4,\"durability\":\"group\"}";
	struct rill_wire_admin out;
	int n = 0;
	for (uint16_t op = 1; op < RILL_WIRE_ADMIN_OP_LAST; op++) {
		n = rill_wire_admin_encode(frame_buf, sizeof(frame_buf), 6, op, json, strlen(json));
		assert_int_equal(n, 16 + 8 + (int)strlen(json));
		assert_int_equal(decode_frame(RILL_WIRE_ADMIN, n), 0);
		assert_int_equal(rill_wire_admin_decode(frame_buf + 16, (uint32_t)n - 16, &out), 0);
		assert_int_equal(out.op, op);
		assert_int_equal(out.json_bytes, strlen(json));
		assert_memory_equal(out.json, json, out.json_bytes);
	}
	const uint16_t type = RILL_WIRE_ADMIN;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	assert_int_equal(decode_with_byte(type, n, 2, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 3, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 0, 0), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 0, RILL_WIRE_ADMIN_OP_LAST), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 1, 1), RILL_E_WIRE_VALUE);
	assert_int_equal(decode_with_byte(type, n, 7, 0xff), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_with_byte(type, n, 4, (uint8_t)(strlen(json) - 1)),
			 RILL_E_WIRE_TRAILING);
	/* An empty JSON text is the server's to refuse, not the codec's. */
	n = rill_wire_admin_encode(frame_buf, sizeof(frame_buf), 6, RILL_WIRE_ADMIN_STAT, NULL, 0);
	assert_int_equal(n, 16 + 8);
	assert_int_equal(decode_frame(type, n), 0);
	assert_int_equal(rill_wire_admin_encode(frame_buf, sizeof(frame_buf), 6, 0, "{}", 2),
			 -EINVAL);
	assert_int_equal(rill_wire_admin_encode(frame_buf, sizeof(frame_buf), 6,
						RILL_WIRE_ADMIN_OP_LAST, "{}", 2),
			 -EINVAL);
	assert_int_equal(rill_wire_admin_encode(frame_buf, sizeof(frame_buf), 6, 1, json,
						RILL_WIRE_FRAME_BYTES_MAX - 7),
			 -EINVAL);
	assert_int_equal(rill_wire_admin_encode(frame_buf, sizeof(frame_buf), 6, 1, json, SIZE_MAX),
			 -EINVAL);
	CHECK_NOSPC(16 + 8 + strlen(json),
		    rill_wire_admin_encode(buf, buf_bytes, 6, 1, json, strlen(json)));
}

static void test_admin_ok(void **state)
{
	(void)state;
	const char *json = "{\"type\":\"order_placed\",\"version\":2,\"type_id\":7}";
	const char *got;
	uint32_t got_bytes;
	int n = rill_wire_admin_ok_encode(frame_buf, sizeof(frame_buf), 6, json, strlen(json));
	assert_int_equal(n, 16 + 8 + (int)strlen(json));
	assert_int_equal(decode_frame(RILL_WIRE_ADMIN_OK, n), 0);
	assert_int_equal(
		rill_wire_admin_ok_decode(frame_buf + 16, (uint32_t)n - 16, &got, &got_bytes), 0);
	assert_int_equal(got_bytes, strlen(json));
	assert_memory_equal(got, json, got_bytes);
	const uint16_t type = RILL_WIRE_ADMIN_OK;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	for (uint32_t at = 4; at < 8; at++)
		assert_int_equal(decode_with_byte(type, n, at, 1), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 3, 0xff), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_with_byte(type, n, 0, 0), RILL_E_WIRE_TRAILING);
	assert_int_equal(rill_wire_admin_ok_encode(frame_buf, sizeof(frame_buf), 6, json,
						   RILL_WIRE_FRAME_BYTES_MAX),
			 -EINVAL);
	CHECK_NOSPC(n, rill_wire_admin_ok_encode(buf, buf_bytes, 6, json, strlen(json)));
}

static void test_error(void **state)
{
	(void)state;
	struct rill_wire_error out;
	int n = rill_wire_error_encode(frame_buf, sizeof(frame_buf), 11, RILL_E_WIRE_MAGIC,
				       RILL_WIRE_ERROR_F_FATAL, "bad magic");
	assert_int_equal(n, 16 + 8 + 9);
	assert_int_equal(decode_frame(RILL_WIRE_ERROR, n), 0);
	assert_int_equal(rill_wire_error_decode(frame_buf + 16, (uint32_t)n - 16, &out), 0);
	assert_int_equal(out.code, RILL_E_WIRE_MAGIC);
	assert_int_equal(out.flags, RILL_WIRE_ERROR_F_FATAL);
	assert_int_equal(out.message_bytes, 9);
	assert_memory_equal(out.message, "bad magic", 9);
	const uint16_t type = RILL_WIRE_ERROR;
	check_cuts(type, n, RILL_E_WIRE_TRUNCATED, RILL_E_WIRE_TRAILING);
	assert_int_equal(decode_with_byte(type, n, 6, 3), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 7, 0x80), RILL_E_WIRE_RESERVED);
	assert_int_equal(decode_with_byte(type, n, 3, 0), RILL_E_WIRE_VALUE); /* a positive code */
	assert_int_equal(decode_with_byte(type, n, 5, 0x04), RILL_E_WIRE_VALUE); /* 1033 bytes */
	assert_int_equal(decode_with_byte(type, n, 4, 10), RILL_E_WIRE_TRUNCATED);
	assert_int_equal(decode_with_byte(type, n, 4, 8), RILL_E_WIRE_TRAILING);
	uint8_t *b = frame_buf + 16;
	rill_st32(b, 0);
	assert_int_equal(decode_exact(type, b, (uint32_t)n - 16), RILL_E_WIRE_VALUE);

	/* Messages: none, and cut at the limit but never inside a UTF-8 character. */
	n = rill_wire_error_encode(frame_buf, sizeof(frame_buf), 11, -EIO, 0, NULL);
	assert_int_equal(n, 16 + 8);
	assert_int_equal(decode_frame(type, n), 0);
	static char text[RILL_WIRE_MESSAGE_BYTES_MAX + 10];
	memset(text, 'm', sizeof(text) - 1);
	n = rill_wire_error_encode(frame_buf, sizeof(frame_buf), 11, -EIO, 0, text);
	assert_int_equal(n, 16 + 8 + RILL_WIRE_MESSAGE_BYTES_MAX);
	memcpy(text + RILL_WIRE_MESSAGE_BYTES_MAX - 1, "\xe2\x82\xac", 3); /* a euro sign */
	n = rill_wire_error_encode(frame_buf, sizeof(frame_buf), 11, -EIO, 0, text);
	assert_int_equal(n, 16 + 8 + RILL_WIRE_MESSAGE_BYTES_MAX - 1);
	assert_int_equal(decode_frame(type, n), 0);
	text[RILL_WIRE_MESSAGE_BYTES_MAX] = '\0';
	n = rill_wire_error_encode(frame_buf, sizeof(frame_buf), 11, -EIO, 0, text);
	assert_int_equal(n, 16 + 8 + RILL_WIRE_MESSAGE_BYTES_MAX); /* all there: no cut */

	assert_int_equal(rill_wire_error_encode(frame_buf, sizeof(frame_buf), 1, 0, 0, "x"),
			 -EINVAL);
	assert_int_equal(rill_wire_error_encode(frame_buf, sizeof(frame_buf), 1, 5, 0, "x"),
			 -EINVAL);
	assert_int_equal(rill_wire_error_encode(frame_buf, sizeof(frame_buf), 1, -5, 2, "x"),
			 -EINVAL);
	CHECK_NOSPC(16 + 8 + 9, rill_wire_error_encode(buf, buf_bytes, 11, RILL_E_WIRE_MAGIC,
						       RILL_WIRE_ERROR_F_FATAL, "bad magic"));
}

/* ---- A stream ----------------------------------------------------------------------------- */

/* Frames back to back at an odd address, read as a server reads its receive buffer. */
static void test_stream_at_odd_alignment(void **state)
{
	(void)state;
	static uint8_t stream[4096];
	uint8_t *p = stream + 3;
	size_t at = 0;
	struct rill_wire_hello hello = {.version_min = 1, .version_max = 1};
	at += (size_t)rill_wire_hello_encode(p + at, 100, 1, &hello);
	at += (size_t)rill_wire_empty_encode(p + at, 100, RILL_WIRE_PING, 2);
	at += (size_t)rill_wire_fetch_encode(p + at, 100, 3, 10);
	struct rill_record rec = {.key = "k", .key_bytes = 1, .payload = "pp", .payload_bytes = 2};
	int begin = rill_wire_produce_begin(p + at, 1000, 4, 1, "orders", 6);
	int len = rill_record_encode(p + at + (size_t)begin, 1000 - (size_t)begin, &rec);
	rill_wire_produce_finish(p + at, (uint32_t)(begin + len), 1);
	at += (size_t)(begin + len);
	const uint16_t types[] = {RILL_WIRE_HELLO, RILL_WIRE_PING, RILL_WIRE_FETCH,
				  RILL_WIRE_PRODUCE};
	size_t pos = 0;
	for (uint64_t i = 0; i < 4; i++) {
		struct rill_wire_header h;
		/* Every prefix shorter than a header asks for more. */
		assert_int_equal(rill_wire_header_decode(p + pos, 15, FRAME_LIMIT, &h), -EAGAIN);
		assert_int_equal(rill_wire_header_decode(p + pos, at - pos, FRAME_LIMIT, &h), 0);
		assert_int_equal(h.type, types[i]);
		assert_int_equal(h.request_id, i + 1);
		assert_true(pos + 16 + h.body_bytes <= at);
		assert_int_equal(decode_full(h.type, p + pos + 16, h.body_bytes), 0);
		pos += 16 + h.body_bytes;
	}
	assert_int_equal(pos, at);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_body_check),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_hello_ok),
		cmocka_unit_test(test_produce_round_trip),
		cmocka_unit_test(test_produce_malformed),
		cmocka_unit_test(test_produce_encode_limits),
		cmocka_unit_test(test_ack_round_trip),
		cmocka_unit_test(test_ack_malformed),
		cmocka_unit_test(test_ack_encode_limits),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_subscribed),
		cmocka_unit_test(test_fetch_and_empty),
		cmocka_unit_test(test_events_round_trip),
		cmocka_unit_test(test_events_malformed),
		cmocka_unit_test(test_events_encode_limits),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_result),
		cmocka_unit_test(test_admin),
		cmocka_unit_test(test_admin_ok),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_stream_at_odd_alignment),
	};
	test_seed();
	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
