/*
 * Writes a seed corpus for fuzz_server into the folder given (layout in server_fuzz.h):
 * conversations a client has with the server, built with io/wire.h's encoders. A HELLO
 * then PING; PRODUCE with acks none, applied and durable, to both topics, from an
 * idempotent producer with a retry; SUBSCRIBE from each starting point with FETCH and
 * UNSUBSCRIBE (with the PING that lets EVENTS come); QUERY plain, as of an offset, as of a
 * time and with a token; every ADMIN op; two PRODUCE frames too large to be in flight
 * together, and records too large for the rings and for an EVENTS frame; one of each
 * class of malformed frame; a mix of everything cut into small sends, at frame headers and
 * at frames, and one that resets the connection. Several go in the framed form too. The
 * events are valid for the schema of the fuzzer's engine, which this opens too (for the
 * type id and the payload layout), in a temporary directory removed at the end.
 */
#include <stdio.h>
#include <string.h>

#include "base/bytes.h"
#include "io/wire.h"
#include "rill/record.h"
#include "tests/fuzz/server_fuzz.h"

#define SEED_BYTES      (128u << 10)
#define SEED_FRAMES     1024u
#define SEED_BIG_EVENTS 400u /* a PRODUCE of this many events: over 32 KiB */
#define SEED_CUT(m)     ((uint8_t)((m) << SERVER_FUZZ_CUT_SHIFT))

static struct server_fuzz_env env;
static int seed_index;

/* A stream being built, and where its frames start (for the framed form). */
static struct {
	uint8_t b[SEED_BYTES];
	size_t len;
	size_t frame_at[SEED_FRAMES];
	unsigned frames;
	uint64_t id; /* the next request id */
} s;

static void die(const char *what)
{
	fprintf(stderr, "seed_server: %s\n", what);
	exit(1);
}

static void reset(void)
{
	s.len = 0;
	s.frames = 0;
	s.id = 1;
}

/* A frame of @n bytes was written at s.len. */
static void took(int n)
{
	if (n <= 0 || s.frames == SEED_FRAMES)
		die("a frame does not fit");
	s.frame_at[s.frames++] = s.len;
	s.len += (size_t)n;
}

static void raw(const void *bytes, size_t n)
{
	if (n > sizeof(s.b) - s.len)
		die("a stream does not fit");
	memcpy(s.b + s.len, bytes, n);
	took((int)n);
}

static void write_file(const char *dir, const uint8_t *head, const uint8_t *bytes, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, seed_index++);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(head, 1, SERVER_FUZZ_INPUT_BYTES, f) != SERVER_FUZZ_INPUT_BYTES ||
	    fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* The stream as a seed with @flags and @piece; with @framed, once more in the framed form
 * (each frame behind its length). */
static void seed(const char *dir, uint8_t flags, uint8_t piece, bool framed)
{
	uint8_t head[SERVER_FUZZ_INPUT_BYTES] = {flags, piece};
	write_file(dir, head, s.b, s.len);
	if (!framed)
		return;
	static uint8_t f[SEED_BYTES + 2 * SEED_FRAMES];
	size_t n = 0;
	for (unsigned i = 0; i < s.frames; i++) {
		size_t end = i + 1 < s.frames ? s.frame_at[i + 1] : s.len;
		size_t bytes = end - s.frame_at[i];
		if (bytes > UINT16_MAX)
			return; /* too long for a piece: the plain form only */
		rill_st16(f + n, (uint16_t)bytes);
		memcpy(f + n + 2, s.b + s.frame_at[i], bytes);
		n += 2 + bytes;
	}
	head[0] = (uint8_t)(flags | SERVER_FUZZ_FRAMED);
	write_file(dir, head, f, n);
}

/* ---- Frames ------------------------------------------------------------------------- */

static void hello(void)
{
	struct rill_wire_hello h = {.version_min = 1, .version_max = RILL_WIRE_VERSION};
	took(rill_wire_hello_encode(s.b + s.len, sizeof(s.b) - s.len, s.id++, &h));
}

static void empty(uint16_t type, uint64_t id)
{
	took(rill_wire_empty_encode(s.b + s.len, sizeof(s.b) - s.len, type, id));
}

static void ping(void)
{
	empty(RILL_WIRE_PING, s.id++);
}

/* An OrderPlaced record into @buf: its length. @pad makes the payload that much longer
 * than the schema allows (a record the engine refuses, but one the rings must carry). */
static uint32_t record(uint8_t *buf, size_t cap, uint64_t n, uint64_t producer_id,
		       uint64_t sequence, uint32_t pad)
{
	static uint8_t payload[64u << 10];
	uint32_t payload_bytes = 0;
	struct rill_payload_builder b;
	if (rill_payload_builder_init(&b, env.schema, payload, sizeof(payload)) != 0 ||
	    rill_payload_set_i64(&b, 0, (int64_t)n * 10) != 0 ||
	    rill_payload_set_var(&b, 1, "sku-1", 5) != 0 ||
	    rill_payload_builder_finish(&b, &payload_bytes, NULL) != 0 ||
	    payload_bytes + pad > sizeof(payload))
		die("payload");
	memset(payload + payload_bytes, 0, pad);
	char key[32];
	snprintf(key, sizeof(key), "k%u", (unsigned)(n % 8));
	struct rill_record rec = {.type_id = rill_schema_type_id(env.schema),
				  .schema_version = 1,
				  .producer_id = producer_id,
				  .sequence = sequence,
				  .key = key,
				  .key_bytes = (uint16_t)strlen(key),
				  .payload = payload,
				  .payload_bytes = payload_bytes + pad};
	int len = rill_record_encode(buf, cap, &rec);
	if (len < 0)
		die("record");
	return (uint32_t)len;
}

/* PRODUCE of @count events to @topic; from @producer_id (0: none) at @sequence on. */
static void produce(const char *topic, uint8_t acks, uint32_t count, uint64_t producer_id,
		    uint64_t sequence, uint32_t pad)
{
	uint8_t *frame = s.b + s.len;
	size_t cap = sizeof(s.b) - s.len;
	int at = rill_wire_produce_begin(frame, cap, s.id++, acks, topic, strlen(topic));
	if (at < 0)
		die("produce");
	for (uint32_t i = 0; i < count; i++)
		at += (int)record(frame + at, cap - (size_t)at, sequence + i, producer_id,
				  sequence + i, pad);
	rill_wire_produce_finish(frame, (uint32_t)at, count);
	took(at);
}

static uint64_t subscribe(const char *topic, uint8_t from, uint32_t partition, uint64_t value,
			  uint32_t credit)
{
	struct rill_wire_subscribe sub = {.topic = topic,
					  .topic_bytes = (uint16_t)strlen(topic),
					  .from = from,
					  .partition = partition,
					  .from_value = value,
					  .credit = credit};
	uint64_t id = s.id++;
	took(rill_wire_subscribe_encode(s.b + s.len, sizeof(s.b) - s.len, id, &sub));
	return id;
}

static void fetch(uint64_t id, uint32_t credit)
{
	took(rill_wire_fetch_encode(s.b + s.len, sizeof(s.b) - s.len, id, credit));
}

static void query(const char *name, const char *key, uint8_t flags, uint64_t as_of,
		  uint64_t token_offset)
{
	struct rill_wire_query q = {.name = name,
				    .name_bytes = (uint16_t)strlen(name),
				    .key = key,
				    .key_bytes = (uint16_t)strlen(key),
				    .flags = flags,
				    .as_of = as_of,
				    .token_partition = 0,
				    .timeout_ms = 5,
				    .token_offset = token_offset};
	took(rill_wire_query_encode(s.b + s.len, sizeof(s.b) - s.len, s.id++, &q));
}

static void admin(uint16_t op, const char *json)
{
	took(rill_wire_admin_encode(s.b + s.len, sizeof(s.b) - s.len, s.id++, op, json,
				    strlen(json)));
}

/* A header written by hand, whatever its fields say. */
static void header(uint32_t body_bytes, uint16_t type, uint16_t flags, uint64_t id)
{
	uint8_t h[RILL_WIRE_HEADER_BYTES];
	rill_st32(h, body_bytes);
	rill_st16(h + 4, type);
	rill_st16(h + 6, flags);
	rill_st64(h + 8, id);
	raw(h, sizeof(h));
}

/* ---- Conversations ------------------------------------------------------------------ */

static void produces(void)
{
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_NONE, 3, 0, 0, 0);
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 2, 0, 10, 0);
	produce(SERVER_FUZZ_TOPIC_2, RILL_ACKS_DURABLE, 1, 0, 20, 0);
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 2, 7, 0, 0);
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 2, 7, 0, 0); /* the retry: duplicates */
	produce("nosuch", RILL_ACKS_APPLIED, 1, 0, 0, 0);          /* a refusal, not fatal */
}

static void subscriptions(void)
{
	uint64_t all = subscribe(SERVER_FUZZ_TOPIC, RILL_WIRE_FROM_EARLIEST,
				 RILL_WIRE_PARTITION_ALL, 0, 4);
	fetch(all, 16);
	uint64_t one = subscribe(SERVER_FUZZ_TOPIC_2, RILL_WIRE_FROM_OFFSET, 1, 0, 8);
	empty(RILL_WIRE_UNSUBSCRIBE, one);
	one = subscribe(SERVER_FUZZ_TOPIC_2, RILL_WIRE_FROM_TIMESTAMP, 0, 1, 8);
	fetch(one, 8);
}

static void queries(void)
{
	query(SERVER_FUZZ_PROJECTION, "k1", 0, 0, 0);
	query(SERVER_FUZZ_PROJECTION, "k2", RILL_WIRE_QUERY_F_AS_OF_OFFSET, 3, 0);
	query(SERVER_FUZZ_PROJECTION, "k3", RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP, UINT64_MAX >> 1, 0);
	query(SERVER_FUZZ_PROJECTION, "k1", RILL_WIRE_QUERY_F_TOKEN, 0, 1);
	query("nosuch", "k1", 0, 0, 0);
}

static void admins(void)
{
	admin(RILL_WIRE_ADMIN_TOPIC_CREATE, "{\"name\":\"made\",\"partitions\":2,"
					    "\"retention_bytes\":262144,\"segment_bytes\":65536}");
	admin(RILL_WIRE_ADMIN_SCHEMA_REGISTER,
	      "{\"schema\":{\"type\":\"Refund\",\"version\":1,\"fields\":[{\"name\":"
	      "\"amount\",\"type\":\"i64\"}]},\"compat\":\"BACKWARD\"}");
	admin(RILL_WIRE_ADMIN_PROJECTION_CREATE,
	      "{\"name\":\"orders_count\",\"topic\":\"orders\",\"type\":\"OrderPlaced\","
	      "\"kind\":\"count\"}");
	admin(RILL_WIRE_ADMIN_STAT, "{}");
	admin(RILL_WIRE_ADMIN_SCHEMAS, "{}");
	admin(RILL_WIRE_ADMIN_TOPIC_INFO, "{\"name\":\"orders\"}");
	admin(RILL_WIRE_ADMIN_GROUP_COMMIT,
	      "{\"group\":\"g1\",\"topic\":\"orders\",\"partition\":0,\"offset\":0}");
	admin(RILL_WIRE_ADMIN_GROUP_FETCH, "{\"group\":\"g1\",\"topic\":\"orders\"}");
	/* The newer forms: several partitions in one commit, the listings and their paging,
	 * a topic's partitions, a group forgotten. */
	admin(RILL_WIRE_ADMIN_GROUP_COMMIT,
	      "{\"group\":\"g2\",\"topic\":\"orders\",\"offsets\":{\"0\":0,\"1\":0}}");
	admin(RILL_WIRE_ADMIN_TOPICS, "{}");
	admin(RILL_WIRE_ADMIN_TOPICS, "{\"after\":\"orders\"}");
	admin(RILL_WIRE_ADMIN_PROJECTIONS, "{}");
	admin(RILL_WIRE_ADMIN_PROJECTIONS, "{\"after\":\"" SERVER_FUZZ_PROJECTION "\"}");
	admin(RILL_WIRE_ADMIN_TOPIC_INFO, "{\"name\":\"orders\",\"partitions_from\":0}");
	admin(RILL_WIRE_ADMIN_GROUP_DELETE, "{\"group\":\"g2\"}");
}

static void conversations(const char *dir)
{
	reset(); /* the handshake */
	hello();
	ping();
	seed(dir, 0, 0, true);

	reset();
	produces();
	ping();
	seed(dir, SERVER_FUZZ_HELLO, 0, true);

	reset(); /* the PING of SERVER_FUZZ_SYNC lets EVENTS come */
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 4, 0, 30, 0);
	subscriptions();
	seed(dir, SERVER_FUZZ_HELLO | SERVER_FUZZ_SYNC, 0, true);

	reset();
	queries();
	seed(dir, SERVER_FUZZ_HELLO, 0, true);

	reset();
	admins();
	seed(dir, SERVER_FUZZ_HELLO, 0, true);

	/* Everything, cut small, at headers, at frames, reset. */
	reset();
	produces();
	subscriptions();
	queries();
	admin(RILL_WIRE_ADMIN_STAT, "{}");
	ping();
	seed(dir, SERVER_FUZZ_HELLO | SEED_CUT(SERVER_FUZZ_CUT_PIECES), 6, false);
	seed(dir, SERVER_FUZZ_HELLO | SERVER_FUZZ_SYNC | SEED_CUT(SERVER_FUZZ_CUT_HEADS), 0, false);
	seed(dir, SERVER_FUZZ_HELLO | SEED_CUT(SERVER_FUZZ_CUT_FRAMES), 0, false);
	seed(dir, SERVER_FUZZ_HELLO | SERVER_FUZZ_RESET, 0, false);
}

/* Large frames: two PRODUCEs the connection's in-flight budget (one frame) cannot hold
 * together, and records too large for the engine's rings (64 KiB: half of it at most) and
 * for an EVENTS frame (a PRODUCE carries a few bytes more). */
static void large(const char *dir)
{
	reset();
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, SEED_BIG_EVENTS, 0, 100, 0);
	produce(SERVER_FUZZ_TOPIC_2, RILL_ACKS_NONE, SEED_BIG_EVENTS, 0, 100, 0);
	ping();
	seed(dir, SERVER_FUZZ_HELLO | SEED_CUT(SERVER_FUZZ_CUT_HEADS), 0, false);

	reset(); /* the least records a frame holds, one key: more than a ring holds at once */
	uint8_t *frame = s.b + s.len;
	int at = rill_wire_produce_begin(frame, sizeof(s.b) - s.len, s.id++, RILL_ACKS_APPLIED,
					 SERVER_FUZZ_TOPIC, strlen(SERVER_FUZZ_TOPIC));
	uint32_t count = 0;
	struct rill_record tiny = {.type_id = rill_schema_type_id(env.schema),
				   .schema_version = 1,
				   .key = "k",
				   .key_bytes = 1};
	int n;
	while (at > 0 &&
	       (size_t)at + rill_record_bytes(1, 0) <=
		       RILL_WIRE_HEADER_BYTES + SERVER_FUZZ_FRAME_BYTES &&
	       (n = rill_record_encode(frame + at, sizeof(s.b) - s.len - (size_t)at, &tiny)) > 0) {
		at += n;
		count++;
	}
	rill_wire_produce_finish(frame, (uint32_t)at, count);
	took(at);
	ping();
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* events of 40 KB, two keys (k0, k1): more than a ring takes */
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 1, 0, 200, 40000);
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 1, 0, 201, 40000);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* a record as large as a PRODUCE frame holds, two bytes more than EVENTS */
	uint32_t topic = (uint32_t)strlen(SERVER_FUZZ_TOPIC);
	uint32_t fill = SERVER_FUZZ_FRAME_BYTES - RILL_WIRE_PRODUCE_BYTES_MIN - topic;
	uint8_t probe[256];
	uint32_t base = record(probe, sizeof(probe), 300, 0, 0, 0);
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 1, 0, 300, fill - base);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);
}

/* One of each class of malformed frame, most after a good start. */
static void malformed(const char *dir)
{
	reset(); /* a first frame that is not HELLO */
	ping();
	seed(dir, 0, 0, false);

	reset(); /* a HELLO without the magic */
	hello();
	s.b[RILL_WIRE_HEADER_BYTES] ^= 0xff;
	seed(dir, 0, 0, false);

	reset(); /* a second HELLO */
	hello();
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* a body over the frame limit, said by the header alone */
	header(SERVER_FUZZ_FRAME_BYTES + 1, RILL_WIRE_PRODUCE, 0, 7);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* a reserved flag; an unknown type; a server's frame */
	header(0, RILL_WIRE_PING, 1, 8);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);
	reset();
	header(0, 99, 0, 9);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);
	reset();
	header(0, RILL_WIRE_PONG, 0, 10);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* a FETCH of the wrong size */
	header(4, RILL_WIRE_FETCH, 0, 11);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* a record's CRC broken: fatal as it is, made right by the harness */
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 2, 0, 400, 0);
	s.b[s.len - 1] ^= 0x5a;
	ping();
	seed(dir, SERVER_FUZZ_HELLO, 0, false);
	seed(dir, SERVER_FUZZ_HELLO | SERVER_FUZZ_FIX_CRC, 0, true);

	reset(); /* an unknown admin op */
	admin(RILL_WIRE_ADMIN_STAT, "{}");
	rill_st16(s.b + s.frame_at[0] + RILL_WIRE_HEADER_BYTES, 99);
	seed(dir, SERVER_FUZZ_HELLO, 0, false);

	reset(); /* a frame cut short by the end of stream */
	produce(SERVER_FUZZ_TOPIC, RILL_ACKS_APPLIED, 2, 0, 500, 0);
	s.len -= 10;
	seed(dir, SERVER_FUZZ_HELLO, 0, false);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	server_fuzz_open(&env);
	conversations(argv[1]);
	large(argv[1]);
	malformed(argv[1]);
	server_fuzz_close(&env, 0);
	return 0;
}
