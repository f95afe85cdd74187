/*
 * libFuzzer target for the wire codec (io/wire.h), which reads whatever a peer sends. The
 * input is a stream of frames as a receive buffer holds them: each header is decoded with
 * a 1 MiB frame limit, then its body by type, from a heap copy of its exact size (so
 * AddressSanitizer sees any read past it), with every iterator run to its end; the stream
 * stops where a connection would be closed (a bad header) or would wait (a partial frame).
 * Every refusal must carry a code that frame type may give. Every frame that decodes must
 * encode again to the same bytes and decode again to the same values. The server's first
 * gate, rill_wire_body_check (which refuses a frame by its header before its body comes),
 * must agree with the body decoders: for the types of one body size (HELLO, FETCH, PING,
 * UNSUBSCRIBE) it refuses exactly when the decoder refuses the length, with the same code,
 * and it refuses no other type. Otherwise abort.
 * Built with clang -fsanitize=fuzzer,address,undefined when meson's `fuzzing` option is on.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/wire.h"

#define FUZZ_FRAME_LIMIT    (1u << 20)
#define FUZZ_SUBSCRIBED_MAX (FUZZ_FRAME_LIMIT / RILL_WIRE_SUBSCRIBED_ENTRY + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The re-encoding of the frame under test. */
static uint8_t re[RILL_WIRE_HEADER_BYTES + FUZZ_FRAME_LIMIT];

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool in_range(int rc, int first, int last)
{
	return rc <= first && rc >= last; /* codes are negative: first is the largest */
}

/* A refusal's code must be one @type's decoder may give. */
static void check_refusal(uint16_t type, int rc)
{
	bool ok = rc == RILL_E_WIRE_TRUNCATED || rc == RILL_E_WIRE_TRAILING ||
		  rc == RILL_E_WIRE_RESERVED || rc == RILL_E_WIRE_VALUE;
	if (type == RILL_WIRE_HELLO)
		ok = ok || rc == RILL_E_WIRE_MAGIC;
	if (type == RILL_WIRE_PRODUCE)
		ok = ok || rc == RILL_E_WIRE_COUNT;
	if (type == RILL_WIRE_PRODUCE || type == RILL_WIRE_EVENTS)
		ok = ok || in_range(rc, RILL_E_RECORD_TRUNCATED, RILL_E_RECORD_PAYLOAD_TOO_LONG);
	check(ok && rc != RILL_E_RECORD_NO_SPACE);
}

/* The re-encoding in re (@n bytes, or an error) is the frame as it came. */
static void check_same_frame(int n, const uint8_t *frame, const struct rill_wire_header *h)
{
	check(n == (int)(RILL_WIRE_HEADER_BYTES + h->body_bytes));
	check(memcmp(re, frame, (size_t)n) == 0);
}

static const uint8_t *re_body(void)
{
	return re + RILL_WIRE_HEADER_BYTES;
}

static void fuzz_hello(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_wire_hello a, b;
	int rc = rill_wire_hello_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_hello_encode(re, sizeof(re), h->request_id, &a), frame, h);
	check(rill_wire_hello_decode(re_body(), h->body_bytes, &b) == 0);
	check(a.version_min == b.version_min && a.version_max == b.version_max);
}

static void fuzz_hello_ok(const struct rill_wire_header *h, const uint8_t *body,
			  const uint8_t *frame)
{
	struct rill_wire_hello_ok a, b;
	int rc = rill_wire_hello_ok_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_hello_ok_encode(re, sizeof(re), h->request_id, &a), frame, h);
	check(rill_wire_hello_ok_decode(re_body(), h->body_bytes, &b) == 0);
	check(a.version == b.version && a.shards == b.shards &&
	      a.frame_bytes_max == b.frame_bytes_max &&
	      a.inflight_bytes_max == b.inflight_bytes_max);
}

static void fuzz_produce(const struct rill_wire_header *h, const uint8_t *body,
			 const uint8_t *frame)
{
	struct rill_wire_produce p, q;
	uint32_t bad_index = UINT32_MAX;
	int rc = rill_wire_produce_decode(body, h->body_bytes, &p, &bad_index);
	if (rc != 0) {
		check_refusal(h->type, rc);
		/* A record's own error names the record; the frame's errors do not. */
		check(in_range(rc, RILL_E_RECORD_TRUNCATED, RILL_E_RECORD_PAYLOAD_TOO_LONG) ==
		      (bad_index != UINT32_MAX));
		return;
	}
	int at = rill_wire_produce_begin(re, sizeof(re), h->request_id, p.acks, p.topic,
					 p.topic_bytes);
	check(at > 0);
	struct rill_wire_iter it;
	struct rill_record rec;
	uint32_t count = 0;
	rill_wire_produce_iter(&p, &it);
	while (rill_wire_produce_next(&it, &rec) == 1) {
		int n = rill_record_encode(re + at, sizeof(re) - (size_t)at, &rec);
		check(n > 0 && (uint32_t)n == rec.record_bytes);
		at += n;
		count++;
	}
	check(count == p.event_count);
	rill_wire_produce_finish(re, (uint32_t)at, count);
	check_same_frame(at, frame, h);
	check(rill_wire_produce_decode(re_body(), h->body_bytes, &q, NULL) == 0);
	check(q.acks == p.acks && q.topic_bytes == p.topic_bytes &&
	      memcmp(q.topic, p.topic, p.topic_bytes) == 0 && q.event_count == p.event_count &&
	      q.records_bytes == p.records_bytes);
}

static void fuzz_ack(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_wire_iter it;
	struct rill_wire_ack_entry e;
	uint32_t count;
	int rc = rill_wire_ack_decode(body, h->body_bytes, &count, &it);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	/* Each entry is encoded as it is read; the frame is compared once all were read. */
	int at = rill_wire_ack_begin(re, sizeof(re), h->request_id);
	uint32_t seen = 0;
	while ((rc = rill_wire_ack_next(&it, &e)) == 1) {
		check(e.reason_bytes == 0 || e.reason != NULL);
		at = rill_wire_ack_entry(re, sizeof(re), (size_t)at, &e);
		check(at > 0);
		seen++;
	}
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check(seen == count);
	rill_wire_ack_finish(re, (uint32_t)at, count);
	check_same_frame(at, frame, h);
	uint32_t again;
	check(rill_wire_ack_decode(re_body(), h->body_bytes, &again, &it) == 0 && again == count);
}

static void fuzz_subscribe(const struct rill_wire_header *h, const uint8_t *body,
			   const uint8_t *frame)
{
	struct rill_wire_subscribe a, b;
	int rc = rill_wire_subscribe_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_subscribe_encode(re, sizeof(re), h->request_id, &a), frame, h);
	check(rill_wire_subscribe_decode(re_body(), h->body_bytes, &b) == 0);
	check(a.topic_bytes == b.topic_bytes && memcmp(a.topic, b.topic, a.topic_bytes) == 0 &&
	      a.from == b.from && a.partition == b.partition && a.from_value == b.from_value &&
	      a.credit == b.credit);
}

static void fuzz_subscribed(const struct rill_wire_header *h, const uint8_t *body,
			    const uint8_t *frame)
{
	static struct rill_wire_subscribed_entry entries[FUZZ_SUBSCRIBED_MAX];
	struct rill_wire_iter it;
	uint32_t count, seen = 0;
	int rc = rill_wire_subscribed_decode(body, h->body_bytes, &count, &it);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check(count < FUZZ_SUBSCRIBED_MAX);
	while ((rc = rill_wire_subscribed_next(&it, &entries[seen])) == 1) {
		seen++;
		check(seen <= count);
	}
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check(seen == count);
	check_same_frame(rill_wire_subscribed_encode(re, sizeof(re), h->request_id, entries, count),
			 frame, h);
}

static void fuzz_fetch(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	uint32_t a, b;
	int rc = rill_wire_fetch_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_fetch_encode(re, sizeof(re), h->request_id, a), frame, h);
	check(rill_wire_fetch_decode(re_body(), h->body_bytes, &b) == 0 && a == b);
}

static void fuzz_events(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_wire_iter it;
	struct rill_record rec;
	uint32_t partition, count, seen = 0;
	uint64_t offset;
	int rc = rill_wire_events_decode(body, h->body_bytes, &partition, &count, &it);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	int at = rill_wire_events_begin(re, sizeof(re), h->request_id, partition);
	check(at > 0);
	for (;;) {
		const uint8_t *entry = it.at; /* its u64 offset, then its record */
		rc = rill_wire_events_next(&it, &offset, &rec);
		if (rc != 1)
			break;
		const uint8_t *record = entry + 8;
		check((const uint8_t *)rec.key == record + RILL_RECORD_HEADER_BYTES);
		at = rill_wire_events_add(re, sizeof(re), (size_t)at, offset, record,
					  rec.record_bytes);
		check(at > 0);
		seen++;
	}
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check(seen == count);
	rill_wire_events_finish(re, (uint32_t)at, count);
	check_same_frame(at, frame, h);
}

static void fuzz_query(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_wire_query a, b;
	int rc = rill_wire_query_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check(a.key != NULL);
	check_same_frame(rill_wire_query_encode(re, sizeof(re), h->request_id, &a), frame, h);
	check(rill_wire_query_decode(re_body(), h->body_bytes, &b) == 0);
	check(a.name_bytes == b.name_bytes && memcmp(a.name, b.name, a.name_bytes) == 0 &&
	      a.key_bytes == b.key_bytes && memcmp(a.key, b.key, a.key_bytes) == 0 &&
	      a.flags == b.flags && a.as_of == b.as_of && a.token_partition == b.token_partition &&
	      a.timeout_ms == b.timeout_ms && a.token_offset == b.token_offset);
}

static void fuzz_result(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_projection_value a, b;
	int rc = rill_wire_result_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_result_encode(re, sizeof(re), h->request_id, &a), frame, h);
	check(rill_wire_result_decode(re_body(), h->body_bytes, &b) == 0);
	/* Doubles bit for bit: a NaN is not equal to itself. */
	check(a.count == b.count && a.i64 == b.i64 && a.u64 == b.u64 &&
	      memcmp(&a.f64, &b.f64, sizeof(a.f64)) == 0 &&
	      memcmp(&a.avg, &b.avg, sizeof(a.avg)) == 0 &&
	      a.window_start_ns == b.window_start_ns && a.offset == b.offset &&
	      a.is_float == b.is_float && a.sum_overflow == b.sum_overflow);
}

static void fuzz_admin(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_wire_admin a, b;
	int rc = rill_wire_admin_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(
		rill_wire_admin_encode(re, sizeof(re), h->request_id, a.op, a.json, a.json_bytes),
		frame, h);
	check(rill_wire_admin_decode(re_body(), h->body_bytes, &b) == 0);
	check(a.op == b.op && a.json_bytes == b.json_bytes &&
	      memcmp(a.json, b.json, a.json_bytes) == 0);
}

static void fuzz_admin_ok(const struct rill_wire_header *h, const uint8_t *body,
			  const uint8_t *frame)
{
	const char *a, *b;
	uint32_t a_bytes, b_bytes;
	int rc = rill_wire_admin_ok_decode(body, h->body_bytes, &a, &a_bytes);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_admin_ok_encode(re, sizeof(re), h->request_id, a, a_bytes),
			 frame, h);
	check(rill_wire_admin_ok_decode(re_body(), h->body_bytes, &b, &b_bytes) == 0);
	check(a_bytes == b_bytes && memcmp(a, b, a_bytes) == 0);
}

static void fuzz_error(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	struct rill_wire_error a, b;
	int rc = rill_wire_error_decode(body, h->body_bytes, &a);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	/* The encoder takes a C string: a message with a NUL inside cannot go round. */
	if (memchr(a.message, 0, a.message_bytes) != NULL)
		return;
	char message[RILL_WIRE_MESSAGE_BYTES_MAX + 1];
	check(a.message_bytes <= RILL_WIRE_MESSAGE_BYTES_MAX);
	memcpy(message, a.message, a.message_bytes);
	message[a.message_bytes] = '\0';
	check_same_frame(
		rill_wire_error_encode(re, sizeof(re), h->request_id, a.code, a.flags, message),
		frame, h);
	check(rill_wire_error_decode(re_body(), h->body_bytes, &b) == 0);
	check(a.code == b.code && a.flags == b.flags && a.message_bytes == b.message_bytes &&
	      memcmp(a.message, b.message, a.message_bytes) == 0);
}

static void fuzz_empty(const struct rill_wire_header *h, const uint8_t *frame)
{
	int rc = rill_wire_empty_decode(h->body_bytes);
	if (rc != 0) {
		check_refusal(h->type, rc);
		return;
	}
	check_same_frame(rill_wire_empty_encode(re, sizeof(re), h->type, h->request_id), frame, h);
}

/* The header's own refusal (rill_wire_body_check), known before the body comes: none, or
 * RILL_E_WIRE_TRUNCATED or _TRAILING for a type of one body size. */
static void check_body_check(const struct rill_wire_header *h)
{
	int rc = rill_wire_body_check(h);
	bool one_size = h->type == RILL_WIRE_HELLO || h->type == RILL_WIRE_FETCH ||
			h->type == RILL_WIRE_PING || h->type == RILL_WIRE_UNSUBSCRIBE;
	check(rc == 0 || rc == RILL_E_WIRE_TRUNCATED || rc == RILL_E_WIRE_TRAILING);
	check(rc == 0 || one_size);
}

/* The decoder of a one-size type refuses the body's length exactly when the header's check
 * does, and with its code (it may still refuse a body of the right length for its bytes). */
static void check_body_length(const struct rill_wire_header *h, const uint8_t *body)
{
	struct rill_wire_hello hello;
	uint32_t credit;
	int rc;
	switch (h->type) {
	case RILL_WIRE_HELLO:
		rc = rill_wire_hello_decode(body, h->body_bytes, &hello);
		break;
	case RILL_WIRE_FETCH:
		rc = rill_wire_fetch_decode(body, h->body_bytes, &credit);
		break;
	case RILL_WIRE_PING:
	case RILL_WIRE_UNSUBSCRIBE:
		rc = rill_wire_empty_decode(h->body_bytes);
		break;
	default:
		return;
	}
	bool length_refused = rc == RILL_E_WIRE_TRUNCATED || rc == RILL_E_WIRE_TRAILING;
	int gate = rill_wire_body_check(h);
	check(gate == (length_refused ? rc : 0));
}

/* One frame: @body is an exact-size copy of the body at @frame + 16. */
static void fuzz_frame(const struct rill_wire_header *h, const uint8_t *body, const uint8_t *frame)
{
	check_body_length(h, body);
	switch (h->type) {
	case RILL_WIRE_HELLO:
		fuzz_hello(h, body, frame);
		return;
	case RILL_WIRE_HELLO_OK:
		fuzz_hello_ok(h, body, frame);
		return;
	case RILL_WIRE_PRODUCE:
		fuzz_produce(h, body, frame);
		return;
	case RILL_WIRE_ACK:
		fuzz_ack(h, body, frame);
		return;
	case RILL_WIRE_SUBSCRIBE:
		fuzz_subscribe(h, body, frame);
		return;
	case RILL_WIRE_SUBSCRIBED:
		fuzz_subscribed(h, body, frame);
		return;
	case RILL_WIRE_FETCH:
		fuzz_fetch(h, body, frame);
		return;
	case RILL_WIRE_EVENTS:
		fuzz_events(h, body, frame);
		return;
	case RILL_WIRE_QUERY:
		fuzz_query(h, body, frame);
		return;
	case RILL_WIRE_RESULT:
		fuzz_result(h, body, frame);
		return;
	case RILL_WIRE_ADMIN:
		fuzz_admin(h, body, frame);
		return;
	case RILL_WIRE_ADMIN_OK:
		fuzz_admin_ok(h, body, frame);
		return;
	case RILL_WIRE_ERROR:
		fuzz_error(h, body, frame);
		return;
	case RILL_WIRE_UNSUBSCRIBE:
	case RILL_WIRE_PING:
	case RILL_WIRE_PONG:
		fuzz_empty(h, frame);
		return;
	default:
		abort(); /* rill_wire_header_decode let an unknown type through */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 0;
	for (;;) {
		struct rill_wire_header h;
		int rc = rill_wire_header_decode(data + at, size - at, FUZZ_FRAME_LIMIT, &h);
		if (rc == -EAGAIN) {
			check(size - at < RILL_WIRE_HEADER_BYTES);
			return 0;
		}
		if (rc != 0) {
			check(rc == RILL_E_WIRE_TYPE || rc == RILL_E_WIRE_RESERVED ||
			      rc == RILL_E_WIRE_TOO_LARGE);
			return 0; /* a server closes the connection here */
		}
		check(h.type != 0 && h.type < RILL_WIRE_TYPE_LAST && h.flags == 0 &&
		      h.body_bytes <= FUZZ_FRAME_LIMIT);
		check(strcmp(rill_wire_type_name(h.type), "unknown") != 0);
		check_body_check(&h);
		if (size - at - RILL_WIRE_HEADER_BYTES < h.body_bytes)
			return 0; /* a partial frame: a server waits for the rest */
		uint8_t *body = NULL;
		if (h.body_bytes > 0) {
			body = malloc(h.body_bytes); /* exact size: ASan sees a read past the end */
			check(body != NULL);
			memcpy(body, data + at + RILL_WIRE_HEADER_BYTES, h.body_bytes);
		}
		fuzz_frame(&h, body, data + at);
		free(body);
		at += RILL_WIRE_HEADER_BYTES + h.body_bytes;
	}
}
