/*
 * Writes a seed corpus for fuzz_wire into the folder given: one valid frame of every type
 * per file (PRODUCE and EVENTS with records of several shapes, ACK entries with and
 * without a reason), then the two sides of a conversation, each as one stream of frames
 * back to back, as fuzz_wire reads its input.
 */
#include <stdio.h>
#include <string.h>

#include "io/wire.h"

#define SEED_FRAME_BYTES 4096u

static uint8_t frames[RILL_WIRE_TYPE_LAST][SEED_FRAME_BYTES];
static int frame_bytes[RILL_WIRE_TYPE_LAST];

static int write_file(const char *dir, int index, const void *bytes, size_t size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, index);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(bytes, 1, size, f) != size) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

/* Two records of different shapes into @buf; their total length, or -1. */
static int two_records(uint8_t *buf, size_t buf_bytes, int *first_bytes)
{
	struct rill_record rec = {.timestamp_ns = 1700000000000000000ull,
				  .producer_id = 5,
				  .sequence = 1,
				  .correlation_id = 99,
				  .causation_id = 98,
				  .type_id = 7,
				  .schema_version = 2,
				  .key = "order-42",
				  .key_bytes = 8,
				  .payload = "{\"amount\": 42}",
				  .payload_bytes = 14};
	int a = rill_record_encode(buf, buf_bytes, &rec);
	rec.key_bytes = 0;
	rec.payload_bytes = 0;
	rec.sequence = 2;
	int b = a < 0 ? a : rill_record_encode(buf + a, buf_bytes - (size_t)a, &rec);
	*first_bytes = a;
	return a < 0 || b < 0 ? -1 : a + b;
}

static void build_produce_events(void)
{
	uint8_t records[512];
	int first, all = two_records(records, sizeof(records), &first);
	if (all < 0)
		return;
	uint8_t *p = frames[RILL_WIRE_PRODUCE];
	int at = rill_wire_produce_begin(p, SEED_FRAME_BYTES, 4, 1, "orders", 6);
	memcpy(p + at, records, (size_t)all);
	rill_wire_produce_finish(p, (uint32_t)(at + all), 2);
	frame_bytes[RILL_WIRE_PRODUCE] = at + all;

	p = frames[RILL_WIRE_EVENTS];
	at = rill_wire_events_begin(p, SEED_FRAME_BYTES, 6, 0);
	at = rill_wire_events_add(p, SEED_FRAME_BYTES, (size_t)at, 100, records, (uint32_t)first);
	at = rill_wire_events_add(p, SEED_FRAME_BYTES, (size_t)at, 101, records + first,
				  (uint32_t)(all - first));
	rill_wire_events_finish(p, (uint32_t)at, 2);
	frame_bytes[RILL_WIRE_EVENTS] = at;
}

static void build_ack_subscribed(void)
{
	const struct rill_wire_ack_entry entries[3] = {
		{.partition = 1, .offset = 41, .event_count = 1},
		{.partition = 1,
		 .offset = 40,
		 .event_count = 1,
		 .flags = RILL_WIRE_ACK_F_DUPLICATE},
		{.error = RILL_E_WRITE_UNKNOWN_TYPE,
		 .offset = UINT64_MAX,
		 .reason = "type 7 version 3 is not registered",
		 .reason_bytes = 34},
	};
	uint8_t *p = frames[RILL_WIRE_ACK];
	int at = rill_wire_ack_begin(p, SEED_FRAME_BYTES, 4);
	for (int i = 0; i < 3; i++)
		at = rill_wire_ack_entry(p, SEED_FRAME_BYTES, (size_t)at, &entries[i]);
	rill_wire_ack_finish(p, (uint32_t)at, 3);
	frame_bytes[RILL_WIRE_ACK] = at;

	const struct rill_wire_subscribed_entry parts[2] = {
		{.partition = 0, .first_offset = 100, .end_offset = 250},
		{.partition = 1, .first_offset = 0, .end_offset = 0},
	};
	frame_bytes[RILL_WIRE_SUBSCRIBED] = rill_wire_subscribed_encode(
		frames[RILL_WIRE_SUBSCRIBED], SEED_FRAME_BYTES, 6, parts, 2);
}

static void build_fixed(void)
{
	const struct rill_wire_hello hello = {.version_min = 1, .version_max = 1};
	const struct rill_wire_hello_ok ok = {.version = 1,
					      .shards = 4,
					      .frame_bytes_max = 1u << 20,
					      .inflight_bytes_max = 64u << 20};
	const struct rill_wire_subscribe sub = {.topic = "orders",
						.topic_bytes = 6,
						.from = RILL_WIRE_FROM_OFFSET,
						.partition = RILL_WIRE_PARTITION_ALL,
						.from_value = 100,
						.credit = 1000};
	const struct rill_wire_query q = {.name = "orders_total",
					  .name_bytes = 12,
					  .key = "order-42",
					  .key_bytes = 8,
					  .flags = RILL_WIRE_QUERY_F_TOKEN,
					  .token_partition = 1,
					  .token_offset = 41,
					  .timeout_ms = 100};
	const struct rill_projection_value v = {.count = 2, .i64 = 84, .avg = 42.0, .offset = 41};
	const size_t n = SEED_FRAME_BYTES;
	const char *json = "{\"name\":\"orders\",\"partitions\":4,\"durability\":\"group\"}";
	frame_bytes[RILL_WIRE_HELLO] =
		rill_wire_hello_encode(frames[RILL_WIRE_HELLO], n, 1, &hello);
	frame_bytes[RILL_WIRE_HELLO_OK] =
		rill_wire_hello_ok_encode(frames[RILL_WIRE_HELLO_OK], n, 1, &ok);
	frame_bytes[RILL_WIRE_SUBSCRIBE] =
		rill_wire_subscribe_encode(frames[RILL_WIRE_SUBSCRIBE], n, 6, &sub);
	frame_bytes[RILL_WIRE_FETCH] = rill_wire_fetch_encode(frames[RILL_WIRE_FETCH], n, 6, 500);
	frame_bytes[RILL_WIRE_QUERY] = rill_wire_query_encode(frames[RILL_WIRE_QUERY], n, 5, &q);
	frame_bytes[RILL_WIRE_RESULT] = rill_wire_result_encode(frames[RILL_WIRE_RESULT], n, 5, &v);
	frame_bytes[RILL_WIRE_ADMIN] = rill_wire_admin_encode(
		frames[RILL_WIRE_ADMIN], n, 2, RILL_WIRE_ADMIN_TOPIC_CREATE, json, strlen(json));
	frame_bytes[RILL_WIRE_ADMIN_OK] =
		rill_wire_admin_ok_encode(frames[RILL_WIRE_ADMIN_OK], n, 2, json, strlen(json));
	frame_bytes[RILL_WIRE_ERROR] = rill_wire_error_encode(frames[RILL_WIRE_ERROR], n, 3, -2, 0,
							      "no such projection: orders_totl");
	frame_bytes[RILL_WIRE_UNSUBSCRIBE] =
		rill_wire_empty_encode(frames[RILL_WIRE_UNSUBSCRIBE], n, RILL_WIRE_UNSUBSCRIBE, 6);
	frame_bytes[RILL_WIRE_PING] =
		rill_wire_empty_encode(frames[RILL_WIRE_PING], n, RILL_WIRE_PING, 7);
	frame_bytes[RILL_WIRE_PONG] =
		rill_wire_empty_encode(frames[RILL_WIRE_PONG], n, RILL_WIRE_PONG, 7);
}

/* The frames of @types back to back into one file. */
static int write_stream(const char *dir, int index, const uint16_t *types, size_t count)
{
	static uint8_t stream[RILL_WIRE_TYPE_LAST * SEED_FRAME_BYTES];
	size_t at = 0;
	for (size_t i = 0; i < count; i++) {
		memcpy(stream + at, frames[types[i]], (size_t)frame_bytes[types[i]]);
		at += (size_t)frame_bytes[types[i]];
	}
	return write_file(dir, index, stream, at);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_wire DIR\n");
		return 2;
	}
	build_fixed();
	build_produce_events();
	build_ack_subscribed();
	int index = 0;
	for (uint16_t t = 1; t < RILL_WIRE_TYPE_LAST; t++) {
		if (frame_bytes[t] <= 0) {
			fprintf(stderr, "seed_wire: could not encode a %s frame\n",
				rill_wire_type_name(t));
			return 1;
		}
		if (write_file(argv[1], index++, frames[t], (size_t)frame_bytes[t]) != 0)
			return 1;
	}
	const uint16_t client[] = {RILL_WIRE_HELLO, RILL_WIRE_ADMIN,      RILL_WIRE_PRODUCE,
				   RILL_WIRE_QUERY, RILL_WIRE_SUBSCRIBE,  RILL_WIRE_FETCH,
				   RILL_WIRE_PING,  RILL_WIRE_UNSUBSCRIBE};
	const uint16_t server[] = {RILL_WIRE_HELLO_OK, RILL_WIRE_ADMIN_OK,   RILL_WIRE_ACK,
				   RILL_WIRE_RESULT,   RILL_WIRE_SUBSCRIBED, RILL_WIRE_EVENTS,
				   RILL_WIRE_PONG,     RILL_WIRE_ERROR};
	if (write_stream(argv[1], index++, client, sizeof(client) / sizeof(client[0])) != 0 ||
	    write_stream(argv[1], index++, server, sizeof(server) / sizeof(server[0])) != 0)
		return 1;
	return 0;
}
