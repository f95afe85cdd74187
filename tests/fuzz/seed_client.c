/*
 * Writes a seed corpus for fuzz_client into the folder given: conversations a server could
 * have with the client, each an op script and the chunks the server sends
 * (tests/fuzz/client_fuzz.h). Between them they answer every call; pipeline with cork and
 * out-of-order ACKs; make the early queue take answers while a send waits; answer
 * abandoned requests late; stash events while a second SUBSCRIBE waits; hand out enough
 * events to top up the credit; close with a fatal ERROR, a hang-up or a refused handshake;
 * and, as seed-early-events, replay the input on which the old events_detach copied 4 GiB
 * out of rbuf (an EVENTS frame read into the early queue, then a second SUBSCRIBE).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "io/wire.h"
#include "tests/fuzz/client_fuzz.h"

#define SEED_INPUT_BYTES (1u << 18)
#define SEED_CHUNK_BYTES 65535u

static uint8_t input[SEED_INPUT_BYTES];
static size_t input_bytes;
static uint8_t chunk[SEED_CHUNK_BYTES];
static size_t chunk_bytes;
static int failed;

/* ---- Building an input ------------------------------------------------------------------ */

/* A new input: @config, then @count ops (the rest NOP). */
static void script(uint8_t config, const uint8_t *ops, size_t count)
{
	input[0] = config;
	for (size_t i = 0; i < CLIENT_FUZZ_OPS; i++)
		input[1 + i] = i < count ? ops[i] : client_fuzz_op(CLIENT_FUZZ_NOP, 0);
	input_bytes = CLIENT_FUZZ_HEAD_BYTES;
	chunk_bytes = 0;
}

/* An encoder's result: @n bytes more in the chunk, or a failure to report. */
static void put(int n)
{
	if (n <= 0)
		failed = 1;
	else
		chunk_bytes += (size_t)n;
}

static uint8_t *at(void)
{
	return chunk + chunk_bytes;
}

static size_t room(void)
{
	return sizeof(chunk) - chunk_bytes;
}

/* The frames put since the last cut make one chunk. */
static void cut(void)
{
	input[input_bytes] = (uint8_t)chunk_bytes;
	input[input_bytes + 1] = (uint8_t)(chunk_bytes >> 8);
	memcpy(input + input_bytes + 2, chunk, chunk_bytes);
	input_bytes += 2 + chunk_bytes;
	chunk_bytes = 0;
}

static void save(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(input, 1, input_bytes, f) != input_bytes) {
		perror(path);
		failed = 1;
	}
	if (f != NULL && fclose(f) != 0)
		failed = 1;
}

/* ---- Frames ------------------------------------------------------------------------------ */

static void hello_ok(uint16_t version)
{
	const struct rill_wire_hello_ok ok = {.version = version,
					      .shards = 2,
					      .frame_bytes_max = 1u << 20,
					      .inflight_bytes_max = 1u << 20};
	put(rill_wire_hello_ok_encode(at(), room(), 0, &ok));
}

static void pong(uint64_t id)
{
	put(rill_wire_empty_encode(at(), room(), RILL_WIRE_PONG, id));
}

static void error(uint64_t id, int32_t code, bool fatal, const char *message)
{
	put(rill_wire_error_encode(at(), room(), id, code, fatal ? RILL_WIRE_ERROR_F_FATAL : 0,
				   message));
}

/* An ACK of @count events, the last a duplicate with a reason when @count > 1. */
static void ack(uint64_t id, uint32_t count)
{
	int n = rill_wire_ack_begin(at(), room(), id);
	for (uint32_t i = 0; i < count && n > 0; i++) {
		struct rill_wire_ack_entry e = {
			.partition = i % 2, .offset = 40 + i, .event_count = 1};
		if (i > 0 && i + 1 == count) {
			e.flags = RILL_WIRE_ACK_F_DUPLICATE;
			e.reason = "a retry of offset 7";
			e.reason_bytes = (uint16_t)strlen(e.reason);
		}
		n = rill_wire_ack_entry(at(), room(), (size_t)n, &e);
	}
	if (n > 0)
		rill_wire_ack_finish(at(), (uint32_t)n, count);
	put(n);
}

static void subscribed(uint64_t id, uint32_t partitions)
{
	struct rill_wire_subscribed_entry e[2] = {
		{.partition = 0, .end_offset = 2},
		{.partition = 1, .first_offset = 5, .end_offset = 9}};
	put(rill_wire_subscribed_encode(at(), room(), id, e, partitions));
}

/* An EVENTS frame of @count small events of @partition from offset @first. */
static void events(uint64_t id, uint32_t partition, uint64_t first, uint32_t count)
{
	uint8_t record[128];
	struct rill_record rec = {.type_id = 1,
				  .schema_version = 1,
				  .key = "k",
				  .key_bytes = 1,
				  .payload = "xy",
				  .payload_bytes = 2};
	int record_bytes = rill_record_encode(record, sizeof(record), &rec);
	int n = record_bytes < 0 ? record_bytes
				 : rill_wire_events_begin(at(), room(), id, partition);
	for (uint32_t i = 0; i < count && n > 0; i++)
		n = rill_wire_events_add(at(), room(), (size_t)n, first + i, record,
					 (uint32_t)record_bytes);
	if (n > 0)
		rill_wire_events_finish(at(), (uint32_t)n, count);
	put(n);
}

/* ---- Conversations ---------------------------------------------------------------------- */

#define OP(op, arg) client_fuzz_op(CLIENT_FUZZ_##op, arg)
#define SCRIPT(config, ...)                                                                        \
	do {                                                                                       \
		const uint8_t ops_[] = {__VA_ARGS__};                                              \
		script(config, ops_, sizeof(ops_));                                                \
	} while (0)

/* Every blocking call answered: ping 1, admin 2, query 3, produce 4 (2 events, acks
 * applied), subscribe 5 to two partitions, then their events and one partition's end. */
static void every_call(const char *dir)
{
	SCRIPT(0x03, OP(RELEASE, 0), OP(PING, 0), OP(ADMIN, 4), OP(QUERY, 0), OP(PRODUCE, 5),
	       OP(SUBSCRIBE, 0), OP(NEXT, 2), OP(NEXT, 2), OP(BUFFERED, 0), OP(PING, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	pong(1);
	const char *json = "{\"schemas\":[],\"more\":false}";
	put(rill_wire_admin_ok_encode(at(), room(), 2, json, strlen(json)));
	const struct rill_projection_value v = {.count = 1, .i64 = 42, .offset = 7};
	put(rill_wire_result_encode(at(), room(), 3, &v));
	ack(4, 2);
	subscribed(5, 2);
	events(5, 0, 0, 2);
	events(5, 1, 5, 2);
	error(5, -EIO, false, "partition 1: a read failed");
	cut();
	save(dir, "every-call");
}

/* Corked requests 1 and 2, then 3; answered 1, 3, 2 (an ERROR for the whole request). */
static void pipelined(const char *dir)
{
	SCRIPT(0x03, OP(CORK, 0), OP(PRODUCE_SEND, 4), OP(PRODUCE_SEND, 10), OP(UNCORK, 0),
	       OP(PRODUCE_SEND, 0), OP(RELEASE, 0), OP(PRODUCE_WAIT, 4), OP(PRODUCE_WAIT, 4),
	       OP(PRODUCE_WAIT, 4), OP(PRODUCE_WAIT, 4), OP(BUFFERED, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	ack(1, 1);
	ack(3, 1);
	error(2, -ENOENT, false, "no such topic: fuzz");
	cut();
	save(dir, "pipelined");
}

/* Request 2's send finds the socket full: request 1's ACK is read into the early queue. */
static void early_queue(const char *dir)
{
	SCRIPT(0x03, OP(PRODUCE_SEND, 0), OP(RELEASE, 0), OP(BLOCK_SEND, 0), OP(PRODUCE_SEND, 1),
	       OP(BUFFERED, 0), OP(PRODUCE_WAIT, 4), OP(RELEASE, 0), OP(PRODUCE_WAIT, 4),
	       OP(BLOCK_SEND, 0), OP(PING, 0), OP(RELEASE, 0), OP(PING, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	ack(1, 1);
	cut();
	ack(2, 2);
	cut();
	pong(3);
	pong(4);
	cut();
	save(dir, "early-queue");
}

/* Ping 1 and query 3 time out; their answers come late and are skipped. */
static void abandoned(const char *dir)
{
	SCRIPT(0x00, OP(PING, 0), OP(RELEASE, 0), OP(PING, 0), OP(QUERY, 0), OP(RELEASE, 0),
	       OP(QUERY, 0), OP(PING, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	pong(1);
	pong(2);
	cut();
	error(3, -ENOENT, false, "no such projection: fuzz");
	const struct rill_projection_value v = {.count = 3, .u64 = 9};
	put(rill_wire_result_encode(at(), room(), 4, &v));
	cut();
	save(dir, "abandoned");
}

/* Subscription 1's events and end come while subscription 2 waits for its answer. */
static void stash(const char *dir)
{
	SCRIPT(0x00, OP(RELEASE, 0), OP(SUBSCRIBE, 1), OP(RELEASE, 0), OP(SUBSCRIBE, 0),
	       OP(NEXT, 3), OP(NEXT, 3), OP(NEXT, 3), OP(PRODUCE_SEND, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	subscribed(1, 1);
	cut();
	events(1, 0, 0, 2);
	error(1, -EMSGSIZE, false, "partition 0: an event too large for a frame");
	subscribed(2, 2);
	events(2, 1, 5, 3);
	cut();
	save(dir, "stash");
}

/* The old events_detach's crash: ping 1 goes unanswered; subscription 2's answer and
 * events are read into the early queue while its send waits; one event is handed out
 * from there, and a second SUBSCRIBE moves the frame to the stash. */
static void early_events(const char *dir)
{
	SCRIPT(0x00, OP(PING, 0), OP(RELEASE, 0), OP(BLOCK_SEND, 0), OP(SUBSCRIBE, 1), OP(NEXT, 0),
	       OP(SUBSCRIBE, 1), OP(UNCORK, 0), OP(NEXT, 3));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	subscribed(2, 1);
	events(2, 0, 0, 2);
	cut();
	save(dir, "early-events");
}

/* A fatal ERROR closes the client: every call after it is -ENOTCONN. */
static void fatal(const char *dir)
{
	SCRIPT(0x01, OP(RELEASE, 0), OP(PRODUCE_SEND, 0), OP(PRODUCE_SEND, 0), OP(PRODUCE_WAIT, 4),
	       OP(PING, 0), OP(PRODUCE_SEND, 0), OP(SUBSCRIBE, 0), OP(NEXT, 0), OP(UNCORK, 0),
	       OP(PRODUCE_WAIT, 4), OP(ADMIN, 0), OP(QUERY, 0), OP(BUFFERED, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	error(2, -EPROTO, true, "the server is shutting down");
	cut();
	save(dir, "fatal");
}

/* The server hangs up after answering request 1: sends fail, the answer is still read. */
static void hang_up(const char *dir)
{
	SCRIPT(0x03, OP(PRODUCE_SEND, 0), OP(PRODUCE_SEND, 1), OP(RELEASE, 0), OP(HANG_UP, 0),
	       OP(PRODUCE_SEND, 0), OP(PRODUCE_WAIT, 4), OP(PRODUCE_WAIT, 4), OP(PING, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	ack(1, 1);
	cut();
	save(dir, "hang-up");
}

/* 600 events in one frame: handing them out tops up the credit (a FETCH). */
static void credit(const char *dir)
{
	SCRIPT(0x00, OP(RELEASE, 0), OP(SUBSCRIBE, 1), OP(NEXT, CLIENT_FUZZ_NEXT_MANY),
	       OP(NEXT, 0));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	subscribed(1, 1);
	events(1, 0, 0, 600);
	cut();
	save(dir, "credit");
}

/* Handshakes that fail: a refusal, a version this client does not speak. */
static void refused(const char *dir)
{
	SCRIPT(0x00, OP(PING, 0));
	error(0, -EBUSY, true, "too many connections");
	cut();
	save(dir, "refused");
	SCRIPT(0x00, OP(PING, 0));
	hello_ok(RILL_WIRE_VERSION + 1);
	cut();
	save(dir, "version");
}

/* 64 KiB frames: a 64 KiB event does not fit one, a 32 KiB one does. */
static void large(const char *dir)
{
	SCRIPT(CLIENT_FUZZ_CONFIG_SMALL_FRAMES | 0x01, OP(PRODUCE_LARGE, 7), OP(PRODUCE_LARGE, 3),
	       OP(PRODUCE_LARGE, 3), OP(RELEASE, 0), OP(PRODUCE_WAIT, 1), OP(PRODUCE_LARGE, 3));
	hello_ok(RILL_WIRE_VERSION);
	cut();
	ack(1, 1);
	cut();
	save(dir, "large");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_client DIR\n");
		return 2;
	}
	every_call(argv[1]);
	pipelined(argv[1]);
	early_queue(argv[1]);
	abandoned(argv[1]);
	stash(argv[1]);
	early_events(argv[1]);
	fatal(argv[1]);
	hang_up(argv[1]);
	credit(argv[1]);
	refused(argv[1]);
	large(argv[1]);
	if (failed)
		fprintf(stderr, "seed_client: a frame did not encode, or a seed was not written\n");
	return failed;
}
