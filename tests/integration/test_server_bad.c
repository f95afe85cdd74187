/*
 * The server (rill/server.h) against malformed and hostile input, over raw TCP sockets. An
 * engine runs in a temporary directory (two shards, one topic, one schema, made through
 * the engine's API) with the server in process on an ephemeral port and small limits
 * (64 KiB frames, a 300 ms handshake timeout, 8 connections, a 1.5 s idle timeout, one
 * whole-topic subscription per connection, one frame's worth of bytes in flight per
 * connection, a 2 s send-stall timeout). Each class of malformed
 * input goes to a fresh connection, and for each the server must answer with a fatal
 * ERROR frame (decoded with io/wire.h), close the connection (recv returns 0), and stay up
 * (a fresh connection can HELLO and PING). The refusals that are not the peer's fault
 * (an unknown topic, an unregistered event type) must leave the connection usable; so must
 * a schema too large for a SCHEMAS answer at the small frame limit, refused at register or
 * listed as too_large when stored in process, so that SCHEMAS still answers; so must the
 * listing ops' malformed arguments (TOPICS, PROJECTIONS, TOPIC_INFO's partitions_from),
 * whose pages are then walked at a frame limit of two entries (srv_admin on a server
 * struct of the test's), checked against what was made and produced, and across a
 * restart of an engine of their own (name order, the same before and after). At the
 * end the server stops, the engine closes, and every partition's log must hold exactly the
 * valid events sent: nothing malformed reached it.
 *
 * RILL_TEST_SEED replays the random garbage. The frames are built by hand where the
 * encoders (rightly) refuse to write them.
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "engine/io.h"
#include "engine/log.h"
#include "io/server_int.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "rill/server.h"
#include "tests/common/client_admin.h"
#include "tests/common/raw_socket.h"
#include "tests/common/real_io.h"
#include "tests/common/server_start.h"
#include "tests/common/test_dir.h"

#define BAD_SHARDS          2u
#define BAD_PARTITIONS      2u
#define BAD_TOPIC           "orders"
#define BAD_FRAME_BYTES_MAX (64u << 10)
#define BAD_HANDSHAKE_NS    (300ull * 1000000u)
#define BAD_CONNECTIONS_MAX 8u
#define BAD_IDLE_NS         (1500ull * 1000000u)
#define BAD_STALL_NS        (2000ull * 1000000u) /* send_stall_timeout_ns */
#define BAD_STALL_FILL_NS   (300ull * 1000000u)  /* nothing taken or sent this long: full */
#define BAD_STALL_SEND_MAX  (128ull << 20) /* taking more than this, it never stopped reading */
/* The least the server takes: one frame's worth of PRODUCE bytes awaiting their ACKs. */
#define BAD_CONN_INFLIGHT   (BAD_FRAME_BYTES_MAX + RILL_WIRE_HEADER_BYTES)
#define BAD_SUBSCRIPTIONS   BAD_PARTITIONS /* one whole-topic subscription per connection */
#define BAD_RECV_TIMEOUT_MS 10000 /* an answer owed (a durable ACK under load) comes before */
#define BAD_WAIT_NS         (5ull * 1000000000u) /* "at once" under load */
#define BAD_GARBAGE_ROUNDS  48u
#define BAD_GARBAGE_MAX     700u
#define BAD_EXPECTED_MAX    4096u
#define BAD_POISON_AMOUNT   (-7777) /* every event of a malformed frame carries it */
#define BAD_PRODUCER_ID     77u
#define BAD_ANY_ID          UINT64_MAX /* expect_fatal: do not check the request id */
#define BAD_ANY_CODE        0          /* expect_fatal: do not check the code */

static const char bad_schema_json[] = "{\"type\":\"OrderPlaced\",\"version\":1,\"fields\":[{"
				      "\"name\":\"amount\",\"type\":\"i64\"},"
				      "{\"name\":\"sku\",\"type\":\"string\",\"max_length\":16}]}";

/* A valid event the log must hold: where its ACK said, with this key and amount. */
struct bad_expected {
	uint32_t partition;
	uint64_t offset;
	char key[16];
	int64_t amount;
	bool optional; /* sent valid, but its ACK may not come (a fatal error followed it) */
	bool found;
};

static struct {
	char dir[64];
	struct rill_engine *engine;
	struct rill_topic *topic;
	const struct rill_schema *schema;
	struct rill_server *server;
	uint16_t port;
	struct test_rng rng;
	uint64_t next_id; /* request ids, unique over the run */
	struct bad_expected expected[BAD_EXPECTED_MAX];
	uint32_t expected_count;
	int fds[BAD_CONNECTIONS_MAX + 8]; /* sockets open: a failed test's are closed after it */
	uint32_t fd_count;
} env;

static uint8_t rx_body[RILL_WIRE_FRAME_BYTES_MIN * 2];

/* ---- Bytes ---------------------------------------------------------------------------- */

/* A header with any type and flags, which rill_wire_header_encode would refuse to write. */
static void raw_header(uint8_t *buf, uint32_t body_bytes, uint16_t type, uint16_t flags,
		       uint64_t request_id)
{
	rill_st32(buf, body_bytes);
	rill_st16(buf + 4, type);
	rill_st16(buf + 6, flags);
	rill_st64(buf + 8, request_id);
}

static uint64_t bad_id(void)
{
	return ++env.next_id;
}

/* ---- Sockets -------------------------------------------------------------------------- */

static int conn_open(void)
{
	int fd = raw_connect(env.port, BAD_RECV_TIMEOUT_MS);
	assert_true(env.fd_count < sizeof(env.fds) / sizeof(env.fds[0]));
	env.fds[env.fd_count++] = fd;
	return fd;
}

static void conn_close(int fd)
{
	for (uint32_t i = 0; i < env.fd_count; i++) {
		if (env.fds[i] == fd) {
			env.fds[i] = env.fds[--env.fd_count];
			break;
		}
	}
	close(fd);
}

/* Before each test: close what a failed one left open, so that its failure stays its own. */
static int bad_each(void **state)
{
	(void)state;
	while (env.fd_count > 0)
		close(env.fds[--env.fd_count]);
	return 0;
}

/* The next frame (its body into rx_body): 1, 0 at the end of the stream, or -errno. */
static int frame_recv(int fd, struct rill_wire_header *h)
{
	return raw_frame_recv(fd, h, rx_body, sizeof(rx_body), "a frame from the server");
}

/* The next frame must be of @type and answer @request_id. */
static void expect_frame(int fd, uint16_t type, uint64_t request_id, struct rill_wire_header *h,
			 const char *what)
{
	int rc = frame_recv(fd, h);
	if (rc != 1)
		fail_msg("%s: expected %s, got: %s", what, rill_wire_type_name(type),
			 raw_recv_outcome(rc));
	if (h->type == RILL_WIRE_ERROR && type != RILL_WIRE_ERROR) {
		struct rill_wire_error e;
		assert_int_equal(rill_wire_error_decode(rx_body, h->body_bytes, &e), 0);
		fail_msg("%s: expected %s, got ERROR %d (%s): %.*s", what,
			 rill_wire_type_name(type), e.code, rill_strerror(e.code),
			 (int)e.message_bytes, e.message);
	}
	if (h->type != type || h->request_id != request_id)
		fail_msg("%s: expected %s for request %llu, got %s for request %llu", what,
			 rill_wire_type_name(type), (unsigned long long)request_id,
			 rill_wire_type_name(h->type), (unsigned long long)h->request_id);
}

/* The peer must have closed: recv returns 0 (not a reset, not a timeout). */
static void expect_closed(int fd, const char *what)
{
	uint8_t byte;
	ssize_t n;
	while ((n = recv(fd, &byte, 1, 0)) < 0 && errno == EINTR)
		;
	if (n == 0)
		return;
	if (n > 0) {
		struct rill_wire_header h;
		uint8_t head[RILL_WIRE_HEADER_BYTES] = {byte};
		raw_recv_exact(fd, head + 1, sizeof(head) - 1);
		rill_wire_header_decode(head, sizeof(head), RILL_WIRE_FRAME_BYTES_MAX, &h);
		fail_msg("%s: expected the connection closed, got a %s frame", what,
			 rill_wire_type_name(h.type));
	}
	fail_msg("%s: expected the connection closed (recv 0), got: %s", what,
		 errno == EAGAIN ? "nothing in time: still open" : strerror(errno));
}

static void hello(int fd)
{
	uint8_t buf[64];
	uint64_t id = bad_id();
	struct rill_wire_hello h = {.version_min = 1, .version_max = 1};
	int n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	assert_true(n > 0);
	raw_send_all(fd, buf, (size_t)n);
	struct rill_wire_header hdr;
	expect_frame(fd, RILL_WIRE_HELLO_OK, id, &hdr, "HELLO");
	struct rill_wire_hello_ok ok;
	assert_int_equal(rill_wire_hello_ok_decode(rx_body, hdr.body_bytes, &ok), 0);
	assert_int_equal(ok.version, 1);
	assert_int_equal(ok.shards, BAD_SHARDS);
	assert_int_equal(ok.frame_bytes_max, BAD_FRAME_BYTES_MAX);
}

static void ping(int fd, const char *what)
{
	uint8_t buf[RILL_WIRE_HEADER_BYTES];
	uint64_t id = bad_id();
	assert_int_equal(rill_wire_empty_encode(buf, sizeof(buf), RILL_WIRE_PING, id),
			 RILL_WIRE_HEADER_BYTES);
	raw_send_all(fd, buf, sizeof(buf));
	struct rill_wire_header h;
	expect_frame(fd, RILL_WIRE_PONG, id, &h, what);
}

/* A fresh connection shakes hands and gets a PONG: the server is up. */
static void server_still_up(const char *after)
{
	char what[160];
	snprintf(what, sizeof(what), "a fresh connection after %s", after);
	int fd = conn_open();
	hello(fd);
	ping(fd, what);
	conn_close(fd);
}

/*
 * The next frame must be a fatal ERROR (with @code unless BAD_ANY_CODE, answering
 * @request_id unless BAD_ANY_ID), and then the connection must close.
 */
static void expect_fatal(int fd, int code, uint64_t request_id, const char *what)
{
	struct rill_wire_header h;
	int rc = frame_recv(fd, &h);
	if (rc != 1)
		fail_msg("%s: expected a fatal ERROR, got: %s", what, raw_recv_outcome(rc));
	if (h.type != RILL_WIRE_ERROR)
		fail_msg("%s: expected a fatal ERROR, got %s", what, rill_wire_type_name(h.type));
	struct rill_wire_error e;
	assert_int_equal(rill_wire_error_decode(rx_body, h.body_bytes, &e), 0);
	if (!(e.flags & RILL_WIRE_ERROR_F_FATAL))
		fail_msg("%s: the ERROR is not fatal: %d (%s): %.*s", what, e.code,
			 rill_strerror(e.code), (int)e.message_bytes, e.message);
	if (code != BAD_ANY_CODE && e.code != code)
		fail_msg("%s: ERROR %d (%s: %.*s), expected %d (%s)", what, e.code,
			 rill_strerror(e.code), (int)e.message_bytes, e.message, code,
			 rill_strerror(code));
	if (e.code >= 0)
		fail_msg("%s: a fatal ERROR with code %d", what, e.code);
	if (request_id != BAD_ANY_ID && h.request_id != request_id)
		fail_msg("%s: the ERROR answers request %llu, the frame was request %llu", what,
			 (unsigned long long)h.request_id, (unsigned long long)request_id);
	expect_closed(fd, what);
}

/* The next frame must be a non-fatal ERROR answering @request_id with @code: a refusal
 * that keeps the connection. */
static void expect_refusal(int fd, uint64_t request_id, int code, const char *what)
{
	struct rill_wire_header h;
	expect_frame(fd, RILL_WIRE_ERROR, request_id, &h, what);
	struct rill_wire_error e;
	assert_int_equal(rill_wire_error_decode(rx_body, h.body_bytes, &e), 0);
	if (e.flags & RILL_WIRE_ERROR_F_FATAL)
		fail_msg("%s: a fatal ERROR: %.*s", what, (int)e.message_bytes, e.message);
	assert_int_equal(e.code, code);
}

/*
 * One class of malformed input: a fresh connection (after HELLO when @after_hello) sends
 * @bytes; a fatal ERROR with @code must answer it, the connection must close, and the
 * server must stay up.
 */
static void bad_case(const char *what, bool after_hello, const void *bytes, size_t n, int code,
		     uint64_t request_id)
{
	int fd = conn_open();
	if (after_hello)
		hello(fd);
	raw_send_all(fd, bytes, n);
	expect_fatal(fd, code, request_id, what);
	conn_close(fd);
	server_still_up(what);
}

/* ---- Events --------------------------------------------------------------------------- */

/* An OrderPlaced payload of @amount (sku "sku-1") into @payload; its length. */
static uint32_t order_payload(uint8_t *payload, size_t cap, int64_t amount)
{
	assert_true(rill_schema_payload_bytes_max(env.schema) <= cap);
	struct rill_payload_builder b;
	uint32_t payload_bytes = 0;
	assert_int_equal(rill_payload_builder_init(&b, env.schema, payload, cap), 0);
	assert_int_equal(rill_payload_set_i64(&b, 0, amount), 0);
	assert_int_equal(rill_payload_set_var(&b, 1, "sku-1", 5), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &payload_bytes, NULL), 0);
	return payload_bytes;
}

/* An OrderPlaced record into @buf; its length. */
static uint32_t make_record(uint8_t *buf, size_t cap, const char *key, int64_t amount,
			    uint32_t type_id, uint16_t version, uint64_t producer_id,
			    uint64_t sequence)
{
	uint8_t payload[256];
	uint32_t payload_bytes = order_payload(payload, sizeof(payload), amount);
	struct rill_record rec = {.type_id = type_id,
				  .schema_version = version,
				  .producer_id = producer_id,
				  .sequence = sequence,
				  .key = key,
				  .key_bytes = (uint16_t)strlen(key),
				  .payload = payload,
				  .payload_bytes = payload_bytes};
	int n = rill_record_encode(buf, cap, &rec);
	assert_true(n > 0);
	return (uint32_t)n;
}

static uint32_t valid_record(uint8_t *buf, size_t cap, const char *key, int64_t amount)
{
	return make_record(buf, cap, key, amount, rill_schema_type_id(env.schema), 1, 0, 0);
}

/*
 * A PRODUCE frame laid out by hand, whatever its fields say: @topic_bytes of @topic (which
 * may be shorter: the rest is 'x'), @event_count, then @records. Returns the frame's length.
 */
static size_t raw_produce(uint8_t *buf, size_t cap, uint64_t id, uint8_t acks, const char *topic,
			  uint16_t topic_bytes, uint32_t event_count, const void *records,
			  size_t records_bytes)
{
	size_t body = RILL_WIRE_PRODUCE_BYTES_MIN + topic_bytes + records_bytes;
	assert_true(RILL_WIRE_HEADER_BYTES + body <= cap);
	raw_header(buf, (uint32_t)body, RILL_WIRE_PRODUCE, 0, id);
	uint8_t *p = buf + RILL_WIRE_HEADER_BYTES;
	p[0] = acks;
	p[1] = 0;
	rill_st16(p + 2, topic_bytes);
	rill_st32(p + 4, event_count);
	size_t given = strlen(topic) < topic_bytes ? strlen(topic) : topic_bytes;
	memcpy(p + 8, topic, given);
	memset(p + 8 + given, 'x', topic_bytes - given);
	if (records_bytes > 0)
		memcpy(p + 8 + topic_bytes, records, records_bytes);
	return RILL_WIRE_HEADER_BYTES + body;
}

static void expected_add(const char *key, int64_t amount, uint32_t partition, uint64_t offset)
{
	assert_true(env.expected_count < BAD_EXPECTED_MAX);
	struct bad_expected *e = &env.expected[env.expected_count++];
	*e = (struct bad_expected){.partition = partition, .offset = offset, .amount = amount};
	snprintf(e->key, sizeof(e->key), "%s", key);
	assert_int_equal(partition, rill_topic_partition(env.topic, key, strlen(key)));
}

/* Read an ACK answering @id with @count entries into @out. */
static void ack_read(int fd, uint64_t id, struct rill_wire_ack_entry *out, uint32_t count,
		     const char *what)
{
	struct rill_wire_header h;
	expect_frame(fd, RILL_WIRE_ACK, id, &h, what);
	uint32_t n = 0;
	struct rill_wire_iter it;
	assert_int_equal(rill_wire_ack_decode(rx_body, h.body_bytes, &n, &it), 0);
	if (n != count)
		fail_msg("%s: an ACK of %u entries for %u events", what, n, count);
	for (uint32_t i = 0; i < count; i++)
		assert_int_equal(rill_wire_ack_next(&it, &out[i]), 1);
}

/* ---- Setup and teardown --------------------------------------------------------------- */

static int bad_teardown(void **state);

static int bad_setup(void **state)
{
	test_rng_init(&env.rng, 41);
	assert_int_equal(test_dir_make(env.dir, sizeof(env.dir), "server-bad"), 0);
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = env.dir;
	cfg.shards = BAD_SHARDS;
	cfg.pin = false;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&env.engine, &cfg, &err);
	if (rc != 0)
		fail_msg("engine open: %s: %s", rill_strerror(rc), err.message);
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(env.engine), bad_schema_json,
				  strlen(bad_schema_json), -1, &env.schema, &serr);
	if (rc != 0)
		fail_msg("schema: %s: %s", rill_strerror(rc), serr.message);
	struct rill_topic_config tc = {.name = BAD_TOPIC,
				       .partitions = BAD_PARTITIONS,
				       .durability = RILL_DURABILITY_GROUP};
	rc = rill_topic_create(env.engine, &tc, &env.topic, &err);
	if (rc != 0)
		fail_msg("topic: %s: %s", rill_strerror(rc), err.message);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.frame_bytes_max = BAD_FRAME_BYTES_MAX;
	sc.handshake_timeout_ns = BAD_HANDSHAKE_NS;
	sc.connections_max = BAD_CONNECTIONS_MAX;
	sc.idle_timeout_ns = BAD_IDLE_NS;
	sc.send_stall_timeout_ns = BAD_STALL_NS;
	sc.conn_inflight_bytes_max = BAD_CONN_INFLIGHT;
	sc.subscriptions_max = BAD_SUBSCRIPTIONS;
	test_server_start(&env.server, env.engine, &sc, bad_teardown, state);
	env.port = rill_server_port(env.server);
	assert_true(env.port != 0);
	return 0;
}

static int bad_teardown(void **state)
{
	(void)state;
	if (env.server != NULL)
		rill_server_stop(env.server, BAD_WAIT_NS);
	if (env.engine != NULL)
		rill_engine_close(env.engine);
	return test_dir_remove(env.dir) == 0 ? 0 : -1;
}

/* ---- The handshake -------------------------------------------------------------------- */

static void test_ping_before_hello(void **state)
{
	(void)state;
	uint8_t buf[RILL_WIRE_HEADER_BYTES];
	uint64_t id = bad_id();
	rill_wire_empty_encode(buf, sizeof(buf), RILL_WIRE_PING, id);
	bad_case("PING before HELLO", false, buf, sizeof(buf), RILL_E_WIRE_TYPE, id);
	/* A whole valid PRODUCE before HELLO: refused, and not written. */
	uint8_t rec[256], frame[512];
	uint32_t n = valid_record(rec, sizeof(rec), "k-pre", BAD_POISON_AMOUNT);
	id = bad_id();
	size_t len =
		raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec, n);
	bad_case("PRODUCE before HELLO", false, frame, len, RILL_E_WIRE_TYPE, id);
}

static void test_hello_bad(void **state)
{
	(void)state;
	uint8_t buf[64];
	uint64_t id = bad_id();
	struct rill_wire_hello h = {.version_min = 1, .version_max = 1};
	int n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	rill_st32(buf + RILL_WIRE_HEADER_BYTES, 0x50545448u); /* "HTTP" */
	bad_case("HELLO with a bad magic", false, buf, (size_t)n, RILL_E_WIRE_MAGIC, id);

	id = bad_id();
	h = (struct rill_wire_hello){.version_min = 2, .version_max = 5};
	n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	assert_true(n > 0);
	bad_case("HELLO with version_min 2", false, buf, (size_t)n, RILL_E_WIRE_VERSION, id);

	id = bad_id();
	h = (struct rill_wire_hello){.version_min = 1, .version_max = 1};
	n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	rill_st16(buf + RILL_WIRE_HEADER_BYTES + 4, 0); /* version_min 0: never spoken */
	bad_case("HELLO with version_min 0", false, buf, (size_t)n, RILL_E_WIRE_VALUE, id);

	id = bad_id();
	n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	rill_st32(buf + RILL_WIRE_HEADER_BYTES + 8, 1); /* flags */
	bad_case("HELLO with flags set", false, buf, (size_t)n, RILL_E_WIRE_RESERVED, id);

	id = bad_id();
	raw_header(buf, 8, RILL_WIRE_HELLO, 0, id); /* half a HELLO body */
	rill_st32(buf + RILL_WIRE_HEADER_BYTES, RILL_WIRE_MAGIC);
	rill_st16(buf + RILL_WIRE_HEADER_BYTES + 4, 1);
	rill_st16(buf + RILL_WIRE_HEADER_BYTES + 6, 1);
	bad_case("HELLO of 8 bytes", false, buf, RILL_WIRE_HEADER_BYTES + 8, RILL_E_WIRE_TRUNCATED,
		 id);
}

static void test_second_hello(void **state)
{
	(void)state;
	uint8_t buf[64];
	uint64_t id = bad_id();
	struct rill_wire_hello h = {.version_min = 1, .version_max = 1};
	int n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	bad_case("a second HELLO", true, buf, (size_t)n, RILL_E_WIRE_TYPE, id);
}

/* ---- Headers -------------------------------------------------------------------------- */

static void test_unknown_type(void **state)
{
	(void)state;
	const uint16_t types[] = {0, RILL_WIRE_TYPE_LAST, 99, 0xffff};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint8_t buf[RILL_WIRE_HEADER_BYTES + 8] = {0};
		raw_header(buf, 8, types[i], 0, bad_id());
		char what[64];
		snprintf(what, sizeof(what), "frame type %u", types[i]);
		bad_case(what, true, buf, sizeof(buf), RILL_E_WIRE_TYPE, BAD_ANY_ID);
	}
}

static void test_header_flags(void **state)
{
	(void)state;
	const uint16_t flags[] = {1, 0x8000};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		uint8_t buf[RILL_WIRE_HEADER_BYTES];
		raw_header(buf, 0, RILL_WIRE_PING, flags[i], bad_id());
		char what[64];
		snprintf(what, sizeof(what), "a PING with header flags %#x", flags[i]);
		bad_case(what, true, buf, sizeof(buf), RILL_E_WIRE_RESERVED, BAD_ANY_ID);
	}
}

/* Only the header is sent: the server must refuse at once, not wait for the body. */
static void test_body_over_limit(void **state)
{
	(void)state;
	const uint32_t sizes[] = {BAD_FRAME_BYTES_MAX + 1, RILL_WIRE_FRAME_BYTES_MAX + 1,
				  UINT32_MAX};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t buf[RILL_WIRE_HEADER_BYTES];
		raw_header(buf, sizes[i], RILL_WIRE_PRODUCE, 0, bad_id());
		char what[96];
		snprintf(what, sizeof(what), "a PRODUCE header announcing a %u-byte body",
			 sizes[i]);
		uint64_t start = rill_clock_now_ns();
		bad_case(what, true, buf, sizeof(buf), RILL_E_WIRE_TOO_LARGE, BAD_ANY_ID);
		assert_true(rill_clock_now_ns() - start < BAD_WAIT_NS);
	}
	uint8_t buf[RILL_WIRE_HEADER_BYTES];
	raw_header(buf, BAD_FRAME_BYTES_MAX + 1, RILL_WIRE_HELLO, 0, bad_id());
	bad_case("a HELLO header announcing a body over the limit", false, buf, sizeof(buf),
		 RILL_E_WIRE_TOO_LARGE, BAD_ANY_ID);
}

/* wire.c fills the header's request_id before its checks so that the fatal ERROR for a bad
 * header can answer it (rill_wire_header_decode). */
static void test_header_error_answers_request_id(void **state)
{
	(void)state;
	uint8_t buf[RILL_WIRE_HEADER_BYTES];
	uint64_t id = bad_id();
	raw_header(buf, 0, RILL_WIRE_PING, 1, id);
	bad_case("header flags set (request id)", true, buf, sizeof(buf), RILL_E_WIRE_RESERVED, id);
	id = bad_id();
	raw_header(buf, BAD_FRAME_BYTES_MAX + 1, RILL_WIRE_PRODUCE, 0, id);
	bad_case("a body over the limit (request id)", true, buf, sizeof(buf),
		 RILL_E_WIRE_TOO_LARGE, id);
	id = bad_id();
	raw_header(buf, 0, 99, 0, id);
	bad_case("frame type 99 (request id)", true, buf, sizeof(buf), RILL_E_WIRE_TYPE, id);
}

/* ---- PRODUCE -------------------------------------------------------------------------- */

static void test_produce_truncated(void **state)
{
	(void)state;
	uint8_t rec[256], frame[1024];
	uint32_t n = valid_record(rec, sizeof(rec), "k-trunc", BAD_POISON_AMOUNT);

	uint64_t id = bad_id();
	raw_header(frame, 4, RILL_WIRE_PRODUCE, 0, id); /* shorter than the fixed part */
	memset(frame + RILL_WIRE_HEADER_BYTES, 0, 4);
	frame[RILL_WIRE_HEADER_BYTES] = 2;
	bad_case("a PRODUCE body of 4 bytes", true, frame, RILL_WIRE_HEADER_BYTES + 4,
		 RILL_E_WIRE_TRUNCATED, id);

	id = bad_id(); /* topic_bytes 50, 10 bytes of body after the fixed part */
	size_t len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, 50, 1, NULL, 0);
	rill_st32(frame, RILL_WIRE_PRODUCE_BYTES_MIN + 10);
	bad_case("a PRODUCE whose topic runs past the body", true, frame,
		 RILL_WIRE_HEADER_BYTES + RILL_WIRE_PRODUCE_BYTES_MIN + 10, RILL_E_WIRE_TRUNCATED,
		 id);
	(void)len;

	id = bad_id(); /* the record's last 10 bytes cut off */
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec,
			  n - 10);
	bad_case("a PRODUCE whose record runs past the body", true, frame, len,
		 RILL_E_RECORD_TRUNCATED, id);

	id = bad_id(); /* 40 bytes: not even a record header */
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec, 40);
	bad_case("a PRODUCE with 40 bytes of record", true, frame, len, RILL_E_RECORD_TRUNCATED,
		 id);

	id = bad_id(); /* a record whose length field says 1 GiB */
	uint8_t big[256];
	memcpy(big, rec, n);
	rill_st32(big, 1u << 30);
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, big, n);
	bad_case("a PRODUCE whose record says 1 GiB", true, frame, len, BAD_ANY_CODE, id);

	id = bad_id(); /* two records, the second's length field past the body */
	uint8_t two[512];
	memcpy(two, rec, n);
	memcpy(two + n, rec, n);
	rill_st32(two + n, n + 64);
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 2, two, 2 * n);
	bad_case("a PRODUCE whose second record's length runs past the body", true, frame, len,
		 BAD_ANY_CODE, id);
}

static void test_produce_count_mismatch(void **state)
{
	(void)state;
	uint8_t rec[512], frame[1024];
	uint32_t n = valid_record(rec, sizeof(rec), "k-count", BAD_POISON_AMOUNT);
	memcpy(rec + n, rec, n); /* two records */
	const struct {
		uint32_t count, records;
		const char *what;
	} cases[] = {
		{3, 2, "a PRODUCE saying 3 events with 2 records"},
		{1, 2, "a PRODUCE saying 1 event with 2 records"},
		{0, 1, "a PRODUCE saying 0 events with 1 record"},
		{0, 0, "a PRODUCE saying 0 events with none"},
		{UINT32_MAX, 1, "a PRODUCE saying 2^32-1 events with 1 record"},
		{1, 0, "a PRODUCE saying 1 event with none"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t id = bad_id();
		size_t len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC),
					 cases[i].count, rec, (size_t)cases[i].records * n);
		bad_case(cases[i].what, true, frame, len, RILL_E_WIRE_COUNT, id);
	}
}

static void test_produce_bad_record(void **state)
{
	(void)state;
	uint8_t rec[256], frame[1024];
	uint32_t n = valid_record(rec, sizeof(rec), "k-crc", BAD_POISON_AMOUNT);
	uint8_t bad[256];

	memcpy(bad, rec, n);
	bad[n - 1] ^= 0x01; /* the payload's last byte */
	uint64_t id = bad_id();
	size_t len =
		raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, bad, n);
	bad_case("a PRODUCE with a record whose CRC is wrong", true, frame, len, RILL_E_RECORD_CRC,
		 id);

	/* A good record first, then the bad one: the whole frame is refused. */
	uint8_t two[512];
	memcpy(two, rec, n);
	memcpy(two + n, bad, n);
	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 2, two, 2 * n);
	bad_case("a PRODUCE whose second record's CRC is wrong", true, frame, len,
		 RILL_E_RECORD_CRC, id);

	memcpy(bad, rec, n);
	bad[8] = 9; /* an unknown record version, CRC made right */
	uint32_t crc = rill_crc32c(bad + 8, n - 8);
	rill_st32(bad + 4, crc);
	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, bad, n);
	bad_case("a PRODUCE with a record of version 9", true, frame, len, RILL_E_RECORD_VERSION,
		 id);
}

static void test_produce_bad_fields(void **state)
{
	(void)state;
	uint8_t rec[256], frame[1024];
	uint32_t n = valid_record(rec, sizeof(rec), "k-topic", BAD_POISON_AMOUNT);

	uint64_t id = bad_id();
	size_t len = raw_produce(frame, sizeof(frame), id, 2, "", 0, 1, rec, n);
	bad_case("a PRODUCE with a topic of 0 bytes", true, frame, len, RILL_E_WIRE_VALUE, id);

	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, 200, 1, rec, n);
	bad_case("a PRODUCE with a topic of 200 bytes", true, frame, len, RILL_E_WIRE_VALUE, id);

	id = bad_id(); /* "orders\0x": names another topic as a C string */
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC) + 2, 1, rec, n);
	frame[RILL_WIRE_HEADER_BYTES + RILL_WIRE_PRODUCE_BYTES_MIN + strlen(BAD_TOPIC)] = '\0';
	bad_case("a PRODUCE with a NUL in its topic", true, frame, len, RILL_E_WIRE_VALUE, id);

	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 3, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec, n);
	bad_case("a PRODUCE with acks 3", true, frame, len, RILL_E_WIRE_VALUE, id);

	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec, n);
	frame[RILL_WIRE_HEADER_BYTES + 1] = 1; /* the reserved byte */
	bad_case("a PRODUCE with its reserved byte set", true, frame, len, RILL_E_WIRE_RESERVED,
		 id);
}

/* ---- Other frames --------------------------------------------------------------------- */

static void test_server_to_client_types(void **state)
{
	(void)state;
	const uint16_t types[] = {RILL_WIRE_ACK,        RILL_WIRE_EVENTS, RILL_WIRE_HELLO_OK,
				  RILL_WIRE_SUBSCRIBED, RILL_WIRE_RESULT, RILL_WIRE_ADMIN_OK,
				  RILL_WIRE_ERROR,      RILL_WIRE_PONG};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint8_t buf[RILL_WIRE_HEADER_BYTES + 8] = {0}; /* an empty ACK/EVENTS body */
		uint64_t id = bad_id();
		raw_header(buf, 8, types[i], 0, id);
		char what[64];
		snprintf(what, sizeof(what), "a client sending %s", rill_wire_type_name(types[i]));
		bad_case(what, true, buf, sizeof(buf), RILL_E_WIRE_TYPE, id);
	}
}

/* A SUBSCRIBE frame for every partition of the topic, from @from, with credit 100. */
static size_t subscribe_frame(uint8_t *buf, size_t cap, uint64_t id, uint8_t from)
{
	struct rill_wire_subscribe s = {.topic = BAD_TOPIC,
					.topic_bytes = strlen(BAD_TOPIC),
					.from = from,
					.partition = RILL_WIRE_PARTITION_ALL,
					.credit = 100};
	int n = rill_wire_subscribe_encode(buf, cap, id, &s);
	assert_true(n > 0);
	return (size_t)n;
}

static void test_subscribe_bad_from(void **state)
{
	(void)state;
	const uint8_t froms[] = {RILL_WIRE_FROM_LATEST + 1, 0xff};
	for (size_t i = 0; i < sizeof(froms) / sizeof(froms[0]); i++) {
		uint8_t buf[128];
		uint64_t id = bad_id();
		size_t n = subscribe_frame(buf, sizeof(buf), id, RILL_WIRE_FROM_EARLIEST);
		buf[RILL_WIRE_HEADER_BYTES + 2] = froms[i];
		char what[64];
		snprintf(what, sizeof(what), "a SUBSCRIBE from %u", froms[i]);
		bad_case(what, true, buf, n, RILL_E_WIRE_VALUE, id);
	}
}

static void test_query_both_as_of(void **state)
{
	(void)state;
	uint8_t buf[256];
	uint64_t id = bad_id();
	struct rill_wire_query q = {.name = "order_total",
				    .name_bytes = 11,
				    .key = "k",
				    .key_bytes = 1,
				    .flags = RILL_WIRE_QUERY_F_AS_OF_OFFSET,
				    .as_of = 1};
	int n = rill_wire_query_encode(buf, sizeof(buf), id, &q);
	assert_true(n > 0);
	buf[RILL_WIRE_HEADER_BYTES + 4] =
		RILL_WIRE_QUERY_F_AS_OF_OFFSET | RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP;
	bad_case("a QUERY with both as-of flags", true, buf, (size_t)n, RILL_E_WIRE_VALUE, id);
	id = bad_id();
	n = rill_wire_query_encode(buf, sizeof(buf), id, &q);
	buf[RILL_WIRE_HEADER_BYTES + 4] = 0x80;
	bad_case("a QUERY with an undefined flag", true, buf, (size_t)n, BAD_ANY_CODE, id);
}

static void test_admin_bad_op(void **state)
{
	(void)state;
	const uint16_t ops[] = {0, RILL_WIRE_ADMIN_OP_LAST, 99};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		uint8_t buf[64];
		uint64_t id = bad_id();
		raw_header(buf, RILL_WIRE_ADMIN_BYTES_MIN + 2, RILL_WIRE_ADMIN, 0, id);
		rill_st16(buf + RILL_WIRE_HEADER_BYTES, ops[i]);
		rill_st16(buf + RILL_WIRE_HEADER_BYTES + 2, 0);
		rill_st32(buf + RILL_WIRE_HEADER_BYTES + 4, 2);
		memcpy(buf + RILL_WIRE_HEADER_BYTES + RILL_WIRE_ADMIN_BYTES_MIN, "{}", 2);
		char what[64];
		snprintf(what, sizeof(what), "an ADMIN with op %u", ops[i]);
		bad_case(what, true, buf, RILL_WIRE_HEADER_BYTES + RILL_WIRE_ADMIN_BYTES_MIN + 2,
			 RILL_E_WIRE_VALUE, id);
	}
}

static void test_small_frames_with_bodies(void **state)
{
	(void)state;
	uint8_t buf[RILL_WIRE_HEADER_BYTES + 4] = {0};
	uint64_t id = bad_id();
	raw_header(buf, 4, RILL_WIRE_PING, 0, id);
	bad_case("a PING with a body", true, buf, sizeof(buf), RILL_E_WIRE_TRAILING, id);
	id = bad_id();
	raw_header(buf, 4, RILL_WIRE_FETCH, 0, id);
	bad_case("a FETCH of 4 bytes", true, buf, sizeof(buf), RILL_E_WIRE_TRUNCATED, id);
}

/*
 * A header alone that claims a wrong size for a frame of one size is refused at once, the
 * body never awaited: before HELLO a peer could otherwise make the server reserve (and
 * allocate) a whole frame with 16 bytes, and hold it until the handshake timeout.
 */
static void test_header_claims_wrong_size(void **state)
{
	(void)state;
	uint8_t buf[RILL_WIRE_HEADER_BYTES];
	uint64_t id = bad_id();
	raw_header(buf, BAD_FRAME_BYTES_MAX, RILL_WIRE_HELLO, 0, id);
	bad_case("a HELLO header claiming a whole frame", false, buf, sizeof(buf),
		 RILL_E_WIRE_TRAILING, id);
	id = bad_id();
	raw_header(buf, 8, RILL_WIRE_HELLO, 0, id);
	bad_case("a HELLO header claiming 8 bytes", false, buf, sizeof(buf), RILL_E_WIRE_TRUNCATED,
		 id);
	id = bad_id();
	raw_header(buf, BAD_FRAME_BYTES_MAX, RILL_WIRE_PING, 0, id);
	bad_case("a PING header claiming a whole frame", true, buf, sizeof(buf),
		 RILL_E_WIRE_TRAILING, id);
}

/* Random bytes, before and after HELLO; and random bodies behind valid client headers. */
static void test_random_garbage(void **state)
{
	(void)state;
	static const uint16_t client_types[] = {RILL_WIRE_PRODUCE, RILL_WIRE_SUBSCRIBE,
						RILL_WIRE_FETCH,   RILL_WIRE_QUERY,
						RILL_WIRE_ADMIN,   RILL_WIRE_UNSUBSCRIBE};
	uint8_t buf[RILL_WIRE_HEADER_BYTES + BAD_GARBAGE_MAX];
	for (uint32_t round = 0; round < BAD_GARBAGE_ROUNDS; round++) {
		size_t n = RILL_WIRE_HEADER_BYTES + test_rng_below(&env.rng, BAD_GARBAGE_MAX);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)test_rng_next(&env.rng);
		uint32_t kind = round % 3; /* 0: before HELLO, 1: after, 2: a valid header */
		struct rill_wire_header h;
		if (kind == 2) {
			uint16_t type = client_types[test_rng_below(&env.rng, 6)];
			raw_header(buf, (uint32_t)(n - RILL_WIRE_HEADER_BYTES), type, 0, bad_id());
		} else if (rill_wire_header_decode(buf, n, BAD_FRAME_BYTES_MAX, &h) == 0) {
			buf[6] |= 1; /* a header that happens to be valid: make it bad */
		}
		char what[96];
		snprintf(what, sizeof(what), "garbage round %u (%zu bytes, %s)", round, n,
			 kind == 0   ? "before HELLO"
			 : kind == 1 ? "after HELLO"
				     : "valid header");
		int fd = conn_open();
		if (kind != 0)
			hello(fd);
		raw_send_all(fd, buf, n);
		if (kind != 2) {
			expect_fatal(fd, BAD_ANY_CODE, BAD_ANY_ID, what);
		} else {
			/* A random body is nearly always refused; whatever the answer, a fatal
			 * ERROR must be followed by the close. */
			int rc = frame_recv(fd, &h);
			if (rc != 1)
				fail_msg("%s: no answer: %s", what, raw_recv_outcome(rc));
			struct rill_wire_error e;
			if (h.type == RILL_WIRE_ERROR &&
			    rill_wire_error_decode(rx_body, h.body_bytes, &e) == 0 &&
			    (e.flags & RILL_WIRE_ERROR_F_FATAL))
				expect_closed(fd, what);
		}
		conn_close(fd);
		server_still_up(what);
	}
}

/* ---- Streams: frames together, frames in pieces --------------------------------------- */

/* HELLO, two PINGs and a bad header in one send: each good frame answered in order, then
 * the fatal ERROR and the close. */
static void test_pipelined_then_bad(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct rill_wire_hello h = {.version_min = 1, .version_max = 1};
	uint64_t hello_id = bad_id(), ping1 = bad_id(), ping2 = bad_id(), bad = bad_id();
	int at = rill_wire_hello_encode(buf, sizeof(buf), hello_id, &h);
	at += rill_wire_empty_encode(buf + at, sizeof(buf) - (size_t)at, RILL_WIRE_PING, ping1);
	at += rill_wire_empty_encode(buf + at, sizeof(buf) - (size_t)at, RILL_WIRE_PING, ping2);
	raw_header(buf + at, 0, RILL_WIRE_PING, 4, bad);
	at += RILL_WIRE_HEADER_BYTES;
	int fd = conn_open();
	raw_send_all(fd, buf, (size_t)at);
	struct rill_wire_header hdr;
	expect_frame(fd, RILL_WIRE_HELLO_OK, hello_id, &hdr, "pipelined HELLO");
	expect_frame(fd, RILL_WIRE_PONG, ping1, &hdr, "pipelined PING 1");
	expect_frame(fd, RILL_WIRE_PONG, ping2, &hdr, "pipelined PING 2");
	expect_fatal(fd, RILL_E_WIRE_RESERVED, BAD_ANY_ID, "a bad header after pipelined frames");
	conn_close(fd);
	server_still_up("pipelined frames and a bad one");
}

/* Send @bytes in pieces of @piece bytes, pausing between them so that they arrive apart. */
static void send_pieces(int fd, const uint8_t *bytes, size_t n, size_t piece)
{
	for (size_t at = 0; at < n; at += piece) {
		raw_send_all(fd, bytes + at, n - at < piece ? n - at : piece);
		usleep(2000);
	}
}

/* A HELLO a byte at a time, a PRODUCE in three pieces, a bad header in two: each frame is
 * put together before it is judged. */
static void test_partial_frames(void **state)
{
	(void)state;
	uint8_t buf[1024], rec[256];
	struct rill_wire_hello h = {.version_min = 1, .version_max = 1};
	uint64_t id = bad_id();
	int n = rill_wire_hello_encode(buf, sizeof(buf), id, &h);
	int fd = conn_open();
	send_pieces(fd, buf, (size_t)n, 1);
	struct rill_wire_header hdr;
	expect_frame(fd, RILL_WIRE_HELLO_OK, id, &hdr, "a HELLO a byte at a time");

	uint32_t r = valid_record(rec, sizeof(rec), "k-pieces", 4001);
	id = bad_id();
	size_t len = raw_produce(buf, sizeof(buf), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec, r);
	send_pieces(fd, buf, len, len / 3 + 1);
	struct rill_wire_ack_entry ack;
	ack_read(fd, id, &ack, 1, "a PRODUCE in three pieces");
	if (ack.error != 0)
		fail_msg("a PRODUCE in three pieces: refused: %s", rill_strerror(ack.error));
	expected_add("k-pieces", 4001, ack.partition, ack.offset);

	raw_header(buf, 0, RILL_WIRE_PING, 2, bad_id());
	send_pieces(fd, buf, RILL_WIRE_HEADER_BYTES, 7);
	expect_fatal(fd, RILL_E_WIRE_RESERVED, BAD_ANY_ID, "a bad header in two pieces");
	conn_close(fd);
	server_still_up("frames in pieces");
}

/*
 * A valid PRODUCE and a bad header in one send. The fatal ERROR must be the last frame
 * before the close (docs/PROTOCOL.md: "the server closes the connection after this frame";
 * requests in flight may get no answer): the PRODUCE's ACK may come before it, or never.
 * The event was valid, so it may be written, once, either way.
 */
static void test_produce_then_bad(void **state)
{
	(void)state;
	uint8_t buf[1024], rec[256];
	uint32_t r = valid_record(rec, sizeof(rec), "k-then-bad", 4002);
	uint64_t id = bad_id();
	size_t len = raw_produce(buf, sizeof(buf), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, rec, r);
	raw_header(buf + len, 0, 0x7777, 0, bad_id());
	len += RILL_WIRE_HEADER_BYTES;
	expected_add("k-then-bad", 4002,
		     rill_topic_partition(env.topic, "k-then-bad", strlen("k-then-bad")),
		     UINT64_MAX);
	struct bad_expected *x = &env.expected[env.expected_count - 1];
	x->optional = true; /* until its ACK says where */
	int fd = conn_open();
	hello(fd);
	raw_send_all(fd, buf, len);
	struct rill_wire_header hdr;
	int rc = frame_recv(fd, &hdr);
	if (rc == 1 && hdr.type == RILL_WIRE_ACK && hdr.request_id == id) {
		uint32_t count;
		struct rill_wire_iter it;
		struct rill_wire_ack_entry e;
		assert_int_equal(rill_wire_ack_decode(rx_body, hdr.body_bytes, &count, &it), 0);
		assert_int_equal(count, 1);
		assert_int_equal(rill_wire_ack_next(&it, &e), 1);
		assert_int_equal(e.error, 0);
		*x = (struct bad_expected){
			.partition = e.partition, .offset = e.offset, .amount = 4002};
		snprintf(x->key, sizeof(x->key), "k-then-bad");
		rc = frame_recv(fd, &hdr);
	}
	if (rc != 1)
		fail_msg("a PRODUCE then a bad header: expected a fatal ERROR, got: %s",
			 raw_recv_outcome(rc));
	struct rill_wire_error e;
	if (hdr.type != RILL_WIRE_ERROR ||
	    rill_wire_error_decode(rx_body, hdr.body_bytes, &e) != 0 ||
	    !(e.flags & RILL_WIRE_ERROR_F_FATAL) || e.code != RILL_E_WIRE_TYPE)
		fail_msg("a PRODUCE then a bad header: expected a fatal ERROR, got %s",
			 rill_wire_type_name(hdr.type));
	rc = frame_recv(fd, &hdr);
	if (rc == 1)
		fail_msg("a PRODUCE then a bad header: a %s frame (request %llu) after the fatal "
			 "ERROR; the connection must close after it",
			 rill_wire_type_name(hdr.type), (unsigned long long)hdr.request_id);
	if (rc != 0)
		fail_msg("a PRODUCE then a bad header: after the fatal ERROR: %s",
			 raw_recv_outcome(rc));
	conn_close(fd);
	server_still_up("a PRODUCE then a bad header");
}

/* ---- Limits and timeouts -------------------------------------------------------------- */

static void wait_connections(uint64_t count)
{
	uint64_t deadline = rill_clock_now_ns() + BAD_WAIT_NS;
	struct rill_server_stats st;
	for (;;) {
		rill_server_stats_get(env.server, &st);
		if (st.connections == count)
			return;
		if (rill_clock_now_ns() > deadline)
			fail_msg("the server holds %llu connections, expected %llu",
				 (unsigned long long)st.connections, (unsigned long long)count);
		usleep(10000);
	}
}

static void test_handshake_timeout(void **state)
{
	(void)state;
	wait_connections(0);
	int fd = conn_open();
	uint64_t start = rill_clock_now_ns();
	struct rill_wire_header h;
	int rc = frame_recv(fd, &h); /* nothing, or a fatal ERROR, then the close */
	if (rc == 1) {
		assert_int_equal(h.type, RILL_WIRE_ERROR);
		expect_closed(fd, "a connection silent past the handshake timeout");
	} else if (rc != 0) {
		fail_msg("a connection silent past the handshake timeout: %s",
			 raw_recv_outcome(rc));
	}
	uint64_t waited = rill_clock_now_ns() - start;
	if (waited < BAD_HANDSHAKE_NS - BAD_HANDSHAKE_NS / 10 || waited > BAD_WAIT_NS)
		fail_msg("closed after %llu ms, the handshake timeout is %llu ms",
			 (unsigned long long)(waited / 1000000),
			 (unsigned long long)(BAD_HANDSHAKE_NS / 1000000));
	conn_close(fd);
	/* A HELLO header announcing a body that never comes: the same timeout. */
	fd = conn_open();
	uint8_t head[RILL_WIRE_HEADER_BYTES];
	raw_header(head, RILL_WIRE_HELLO_BYTES, RILL_WIRE_HELLO, 0, bad_id());
	raw_send_all(fd, head, sizeof(head));
	start = rill_clock_now_ns();
	rc = frame_recv(fd, &h);
	if (rc == 1) {
		assert_int_equal(h.type, RILL_WIRE_ERROR);
		expect_closed(fd, "a HELLO whose body never comes");
	} else if (rc != 0) {
		fail_msg("a HELLO whose body never comes: %s", raw_recv_outcome(rc));
	}
	assert_true(rill_clock_now_ns() - start < BAD_WAIT_NS);
	conn_close(fd);
	/* One that said HELLO stays past it. */
	fd = conn_open();
	hello(fd);
	usleep((useconds_t)(BAD_HANDSHAKE_NS * 2 / 1000));
	ping(fd, "a connection past the handshake timeout after HELLO");
	conn_close(fd);
	server_still_up("the handshake timeout");
}

/*
 * idle_timeout: a connection that keeps talking stays past it; one silent past it, with
 * nothing in flight, is closed (an ERROR first or not), not much later, and the server
 * stays up.
 */
static void test_idle_timeout(void **state)
{
	(void)state;
	int fd = conn_open();
	hello(fd);
	for (int i = 0; i < 6; i++) { /* 3 s, twice the timeout, never silent 0.5 s */
		usleep(500000);
		ping(fd, "a connection that keeps talking, past the idle timeout");
	}
	uint64_t start = rill_clock_now_ns();
	struct rill_wire_header h;
	int rc = frame_recv(fd, &h);
	if (rc == 1) {
		assert_int_equal(h.type, RILL_WIRE_ERROR);
		expect_closed(fd, "a connection silent past the idle timeout");
	} else if (rc != 0) {
		fail_msg("a connection silent past the idle timeout: %s", raw_recv_outcome(rc));
	}
	uint64_t waited = rill_clock_now_ns() - start;
	if (waited < BAD_IDLE_NS - BAD_IDLE_NS / 10 || waited > BAD_IDLE_NS + BAD_WAIT_NS)
		fail_msg("closed after %llu ms, the idle timeout is %llu ms",
			 (unsigned long long)(waited / 1000000),
			 (unsigned long long)(BAD_IDLE_NS / 1000000));
	conn_close(fd);
	server_still_up("the idle timeout");
}

/*
 * send_stall_timeout: a peer that sends requests and reads none of the answers fills its
 * socket, then its output buffer in the server, which then stops reading it (S2): what the
 * server holds for it stays bounded. Once that output has made no progress for the timeout,
 * not sooner, the server cuts the peer off (counted in cut_off) and closes it with no
 * goodbye; other connections are served all along.
 */
static void test_send_stall(void **state)
{
	(void)state;
	wait_connections(0);
	struct rill_server_stats before, st;
	rill_server_stats_get(env.server, &before);
	int fd = conn_open();
	int small = 4096; /* fills sooner; the kernel's minimum otherwise */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	hello(fd);
	static uint8_t burst[256 * RILL_WIRE_HEADER_BYTES];
	for (size_t at = 0; at < sizeof(burst); at += RILL_WIRE_HEADER_BYTES)
		assert_int_equal(rill_wire_empty_encode(burst + at, RILL_WIRE_HEADER_BYTES,
							RILL_WIRE_PING, bad_id()),
				 RILL_WIRE_HEADER_BYTES);
	/*
	 * PINGs without a pause until the server has taken nothing, and sent nothing, for a
	 * while. Its bytes_out moves where its stall clock does (each send's completion), and
	 * nothing else talks to it now: t_out, when the test last saw it move, is at most an
	 * observation later than the server's last progress, and the cut must come no sooner
	 * than the timeout after that.
	 */
	uint64_t sent = 0, now = rill_clock_now_ns(), last_taken = now, t_out = now;
	uint64_t out = before.bytes_out;
	size_t at = 0;
	while (now - last_taken < BAD_STALL_FILL_NS || now - t_out < BAD_STALL_FILL_NS) {
		ssize_t n = send(fd, burst + at, sizeof(burst) - at, MSG_DONTWAIT | MSG_NOSIGNAL);
		now = rill_clock_now_ns();
		rill_server_stats_get(env.server, &st);
		if (st.bytes_out != out) {
			out = st.bytes_out;
			t_out = now;
		}
		if (n > 0) {
			sent += (uint64_t)n;
			at = (at + (size_t)n) % sizeof(burst);
			last_taken = now;
			if (sent > BAD_STALL_SEND_MAX)
				fail_msg("the server took %llu MiB of PINGs from a peer that reads "
					 "none of its PONGs: it never stops reading",
					 (unsigned long long)(sent >> 20));
			continue;
		}
		if (n < 0 && (errno == ECONNRESET || errno == EPIPE))
			break; /* cut off already: too soon? the check below says */
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			fail_msg("send to a stalled server: %s", strerror(errno));
		usleep(1000);
	}
	server_still_up("a peer filled its output and stopped reading");
	uint64_t deadline = t_out + BAD_STALL_NS + BAD_WAIT_NS, t_cut;
	for (;;) {
		rill_server_stats_get(env.server, &st);
		t_cut = rill_clock_now_ns();
		if (st.cut_off > before.cut_off)
			break;
		if (t_cut > deadline)
			fail_msg("a peer that reads nothing (%llu KiB of PINGs sent) is still "
				 "connected %llu ms after the server last sent: send_stall_timeout "
				 "is "
				 "%llu ms",
				 (unsigned long long)(sent >> 10),
				 (unsigned long long)((t_cut - t_out) / 1000000),
				 (unsigned long long)(BAD_STALL_NS / 1000000));
		usleep(10000);
	}
	/* Half the timeout: room for t_out's lateness on a loaded machine. */
	if (t_cut - t_out < BAD_STALL_NS / 2)
		fail_msg("cut off %llu ms after the server last sent: the timeout is %llu ms",
			 (unsigned long long)((t_cut - t_out) / 1000000),
			 (unsigned long long)(BAD_STALL_NS / 1000000));
	assert_int_equal(st.cut_off - before.cut_off, 1);
	/* The peer sees its connection end (PONGs, then the end or a reset), never a hang. */
	for (;;) {
		static uint8_t sink[64 << 10];
		ssize_t n = recv(fd, sink, sizeof(sink), 0);
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n == 0 || errno == ECONNRESET)
			break;
		fail_msg("a peer cut off for a stall: its connection did not end: %s",
			 errno == EAGAIN ? "still open" : strerror(errno));
	}
	conn_close(fd);
	wait_connections(0);
	server_still_up("a peer cut off for a stall");
}

/* A stat source that makes STAT slow and large: its answer comes late, and needs room. */
static int slow_big_stat(void *arg, char *json, size_t bytes)
{
	(void)arg;
	usleep(1200 * 1000);
	size_t pad = bytes - 16;
	int n = snprintf(json, bytes, "{\"pad\":\"");
	memset(json + n, 'x', pad - (size_t)n);
	snprintf(json + pad, bytes - pad, "\"}");
	return 0;
}

/*
 * The rule itself, on a connection built by hand: a dead connection (cut off for a stall)
 * whose control-thread answer has come but finds no room drops the answer instead of
 * waiting for room, which its peer, reading nothing, would never make: waiting kept the
 * connection, its descriptor and its slot open for as long as the peer kept its end.
 */
static void test_answer_to_dead_connection(void **state)
{
	(void)state;
	struct srv_worker w;
	struct srv_conn c;
	memset(&w, 0, sizeof(w));
	memset(&c, 0, sizeof(c));
	uint8_t tx[64];
	c.tx = tx;
	c.tx_cap = c.tx_len = sizeof(tx); /* full: a send is stuck in flight */
	c.ctl_busy = true;
	c.job.done = true;
	c.job.answer_bytes = 128;
	c.job.answer = malloc(c.job.answer_bytes);
	assert_non_null(c.job.answer);
	assert_false(srv_job_finish(&w, &c)); /* alive: it waits for room */
	assert_true(c.ctl_busy);
	c.closing = c.dead = true;
	assert_true(srv_job_finish(&w, &c));
	assert_false(c.ctl_busy);
	assert_null(c.job.answer);
	assert_int_equal(c.tx_len, sizeof(tx)); /* nothing more queued */
}

/*
 * The same through the server, as it happens: a peer cut off for a stall while the
 * control thread works on its request, whose answer, when it comes, may find no room in
 * the output (the subscription's events filled it; whether it does depends on how the
 * last sends were cut, so the test above pins the rule), must not keep the connection
 * open. The peer subscribes to a topic of large events and,
 * in the same write, asks for a STAT that a stat source makes take 1.2 s and 4 KiB more
 * than usual, then reads nothing and keeps its socket open: the server must close it all
 * the same.
 */
static void test_send_stall_with_answer_owed(void **state)
{
	(void)state;
	enum { EVENTS = 3000, KEY_BYTES = 2000 };
	static const char topic[] = "bulk";
	wait_connections(0);
	struct rill_error_text err = {{0}};
	struct rill_topic_config tc = {
		.name = topic, .partitions = 1, .durability = RILL_DURABILITY_GROUP};
	struct rill_topic *t = NULL;
	int rc = rill_topic_create(env.engine, &tc, &t, &err);
	if (rc != 0)
		fail_msg("topic %s: %s", topic, err.message);
	/* Events of 2 KiB keys, several MiB in all: more than the output buffer and the
	 * sockets' buffers hold. */
	uint8_t payload[256];
	uint32_t payload_bytes = order_payload(payload, sizeof(payload), 1);
	static char key[KEY_BYTES];
	memset(key, 'k', sizeof(key));
	struct rill_producer_config pc = {.producer_id = 0};
	struct rill_producer *producer = NULL;
	assert_int_equal(rill_producer_open(env.engine, &pc, &producer), 0);
	for (uint32_t i = 0; i < EVENTS; i++) {
		struct rill_event ev = {.key = key,
					.key_bytes = KEY_BYTES,
					.type_id = rill_schema_type_id(env.schema),
					.version = 1,
					.payload = payload,
					.payload_bytes = payload_bytes};
		while ((rc = rill_publish(producer, t, &ev, RILL_ACKS_DURABLE, i)) == -EAGAIN)
			(void)rill_producer_poll(producer, 1000000);
		assert_int_equal(rc, 0);
	}
	assert_int_equal(rill_producer_flush(producer, BAD_WAIT_NS), 0);
	assert_int_equal(rill_producer_close(producer), 0);

	struct rill_server_stats before, st;
	rill_server_stats_get(env.server, &before);
	int fd = conn_open();
	int small = 4096;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	hello(fd);
	uint8_t buf[512];
	struct rill_wire_subscribe sub = {.topic = topic,
					  .topic_bytes = (uint16_t)strlen(topic),
					  .from = RILL_WIRE_FROM_EARLIEST,
					  .partition = RILL_WIRE_PARTITION_ALL,
					  .credit = EVENTS};
	int n = rill_wire_subscribe_encode(buf, sizeof(buf), bad_id(), &sub);
	assert_true(n > 0);
	assert_int_equal(rill_server_stat_source(env.server, "slow", slow_big_stat, NULL), 0);
	int m = rill_wire_admin_encode(buf + n, sizeof(buf) - (size_t)n, bad_id(),
				       RILL_WIRE_ADMIN_STAT, "{}", 2);
	assert_true(m > 0);
	raw_send_all(fd, buf, (size_t)(n + m));
	/* The peer reads nothing and keeps its end open: the server closes its own. */
	uint64_t deadline = rill_clock_now_ns() + BAD_STALL_NS + 2 * BAD_WAIT_NS;
	for (;;) {
		rill_server_stats_get(env.server, &st);
		if (st.cut_off > before.cut_off && st.connections == 0)
			break;
		if (rill_clock_now_ns() > deadline)
			fail_msg("a stalled peer with a STAT answer owed: cut off %llu, the "
				 "server still holds %llu connection(s)",
				 (unsigned long long)(st.cut_off - before.cut_off),
				 (unsigned long long)st.connections);
		usleep(10000);
	}
	conn_close(fd);
	assert_int_equal(rill_server_stat_source(env.server, "slow", NULL, NULL), 0);
	server_still_up("a stalled peer with a STAT answer owed");
}

/* A SUBSCRIBE of the whole topic from the latest offset; returns its request id. */
static uint64_t subscribe_all(int fd)
{
	uint8_t buf[128];
	uint64_t id = bad_id();
	size_t n = subscribe_frame(buf, sizeof(buf), id, RILL_WIRE_FROM_LATEST);
	raw_send_all(fd, buf, n);
	return id;
}

/*
 * subscriptions_max: subscriptions up to it are granted; one more is refused with ENOSPC,
 * an answer that keeps the connection (and its subscriptions), which then still answers.
 * The refusal names the key, the topic's partitions and those subscribed already: a
 * consumer of a topic wider than the limit must learn which setting to change.
 */
static void test_subscriptions_max(void **state)
{
	(void)state;
	int fd = conn_open();
	hello(fd);
	struct rill_wire_header h;
	uint64_t id = subscribe_all(fd); /* BAD_PARTITIONS partitions: the limit exactly */
	expect_frame(fd, RILL_WIRE_SUBSCRIBED, id, &h, "a SUBSCRIBE within subscriptions_max");
	id = subscribe_all(fd);
	expect_frame(fd, RILL_WIRE_ERROR, id, &h, "a SUBSCRIBE past subscriptions_max");
	struct rill_wire_error e;
	assert_int_equal(rill_wire_error_decode(rx_body, h.body_bytes, &e), 0);
	assert_false(e.flags & RILL_WIRE_ERROR_F_FATAL); /* the connection stays */
	assert_int_equal(e.code, -ENOSPC);
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX + 1], want[3][96];
	snprintf(msg, sizeof(msg), "%.*s", (int)e.message_bytes, e.message);
	snprintf(want[0], sizeof(want[0]), "subscriptions_max = %u", BAD_SUBSCRIPTIONS);
	snprintf(want[1], sizeof(want[1]), "topic '%s' has %u partitions", BAD_TOPIC,
		 BAD_PARTITIONS);
	snprintf(want[2], sizeof(want[2]), "%u subscribed already", BAD_SUBSCRIPTIONS);
	for (unsigned i = 0; i < 3; i++)
		if (strstr(msg, want[i]) == NULL)
			fail_msg("the refusal past subscriptions_max \"%s\" lacks \"%s\"", msg,
				 want[i]);
	ping(fd, "the connection after a SUBSCRIBE past subscriptions_max");
	conn_close(fd);
	server_still_up("subscriptions_max");
}

/*
 * A connection past connections_max is told why before the close: a fatal ERROR (request
 * 0, the HELLO's) naming the key and the count, read whole whether the client sent its
 * HELLO first or not (a close with the HELLO unread would be a reset, which may discard
 * the ERROR before the client reads it). Before, it was closed without a word, and a
 * client saw only "Connection reset by peer".
 */
static void expect_turned_away(int fd, const char *what)
{
	struct rill_wire_header h;
	int rc = frame_recv(fd, &h);
	if (rc != 1)
		fail_msg("%s: expected a fatal ERROR naming connections_max, got: %s", what,
			 raw_recv_outcome(rc));
	if (h.type != RILL_WIRE_ERROR)
		fail_msg("%s: expected a fatal ERROR, got %s", what, rill_wire_type_name(h.type));
	struct rill_wire_error e;
	assert_int_equal(rill_wire_error_decode(rx_body, h.body_bytes, &e), 0);
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX + 1];
	snprintf(msg, sizeof(msg), "%.*s", (int)e.message_bytes, e.message);
	char count[32];
	snprintf(count, sizeof(count), "%u", BAD_CONNECTIONS_MAX);
	if (!(e.flags & RILL_WIRE_ERROR_F_FATAL) || e.code != -ENOSPC || h.request_id != 0 ||
	    strstr(msg, "connections_max") == NULL || strstr(msg, count) == NULL)
		fail_msg("%s: ERROR %d (flags %u, request %llu): \"%s\"; expected a fatal "
			 "-ENOSPC for request 0 naming connections_max and %s",
			 what, e.code, e.flags, (unsigned long long)h.request_id, msg, count);
	expect_closed(fd, what);
}

static void test_connections_max(void **state)
{
	(void)state;
	wait_connections(0);
	struct rill_server_stats before, after;
	rill_server_stats_get(env.server, &before);
	int fds[BAD_CONNECTIONS_MAX];
	for (uint32_t i = 0; i < BAD_CONNECTIONS_MAX; i++) {
		fds[i] = conn_open();
		hello(fds[i]);
	}
	wait_connections(BAD_CONNECTIONS_MAX);
	for (uint32_t i = 0; i < 3; i++) { /* refused at once, each */
		int extra = conn_open();
		uint64_t start = rill_clock_now_ns();
		expect_turned_away(extra, "a connection past connections_max");
		assert_true(rill_clock_now_ns() - start < BAD_WAIT_NS);
		conn_close(extra);
	}
	for (uint32_t i = 0; i < 3; i++) { /* as a client does: HELLO at once, then read */
		int extra = conn_open();
		uint8_t buf[64];
		struct rill_wire_hello hh = {.version_min = 1, .version_max = 1};
		int n = rill_wire_hello_encode(buf, sizeof(buf), 0, &hh);
		assert_true(n > 0);
		raw_send_all(extra, buf, (size_t)n);
		expect_turned_away(extra, "a connection past connections_max that sent HELLO");
		conn_close(extra);
	}
	/* The client library reports the server's reason, not the reset. */
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%u", env.port);
	struct rill_client *c = NULL;
	struct rill_client_error cerr = {{0}};
	int rc = rill_client_connect(&c, address, NULL, &cerr);
	if (rc != -ENOSPC || strstr(cerr.message, "connections_max") == NULL)
		fail_msg("rill_client_connect past connections_max: %s: \"%s\"; expected "
			 "-ENOSPC naming connections_max",
			 rill_strerror(rc), cerr.message);
	assert_null(c);
	rill_server_stats_get(env.server, &after);
	assert_int_equal(after.refused - before.refused, 7);
	for (uint32_t i = 0; i < BAD_CONNECTIONS_MAX; i++)
		ping(fds[i], "a connection within connections_max, after refusals");
	for (uint32_t i = 0; i < BAD_CONNECTIONS_MAX; i++)
		conn_close(fds[i]);
	wait_connections(0);
	server_still_up("connections_max");
}

/* ---- Refusals that keep the connection -------------------------------------------------- */

static void test_produce_unknown_topic(void **state)
{
	(void)state;
	uint8_t rec[256], frame[1024];
	uint32_t n = valid_record(rec, sizeof(rec), "k-unknown", BAD_POISON_AMOUNT);
	uint64_t id = bad_id();
	size_t len = raw_produce(frame, sizeof(frame), id, 2, "nosuchtopic", 11, 1, rec, n);
	int fd = conn_open();
	hello(fd);
	raw_send_all(fd, frame, len);
	expect_refusal(fd, id, -ENOENT, "a PRODUCE to an unknown topic");
	ping(fd, "the connection after a PRODUCE to an unknown topic");
	conn_close(fd);
}

static void test_produce_unregistered_type(void **state)
{
	(void)state;
	uint8_t recs[1024], frame[2048];
	uint32_t type_id = rill_schema_type_id(env.schema);
	uint32_t at = 0, sizes[4];
	const char *keys[4] = {"k-good-a", "k-bad-type", "k-bad-version", "k-good-b"};
	const int64_t amounts[4] = {2001, BAD_POISON_AMOUNT, BAD_POISON_AMOUNT, 2002};
	const uint32_t types[4] = {type_id, type_id + 100, type_id, type_id};
	const uint16_t versions[4] = {1, 1, 2, 1};
	for (uint32_t i = 0; i < 4; i++) {
		sizes[i] = make_record(recs + at, sizeof(recs) - at, keys[i], amounts[i], types[i],
				       versions[i], 0, 0);
		at += sizes[i];
	}
	uint64_t id = bad_id();
	size_t len =
		raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 4, recs, at);
	int fd = conn_open();
	hello(fd);
	raw_send_all(fd, frame, len);
	struct rill_wire_ack_entry acks[4];
	ack_read(fd, id, acks, 4, "a PRODUCE with unregistered types");
	for (uint32_t i = 0; i < 4; i++) {
		bool good = amounts[i] != BAD_POISON_AMOUNT;
		if (good && acks[i].error != 0)
			fail_msg("event %u (%s): refused: %s", i, keys[i],
				 rill_strerror(acks[i].error));
		if (!good && acks[i].error == 0)
			fail_msg("event %u (%s, type %u version %u): accepted at %u:%llu", i,
				 keys[i], types[i], versions[i], acks[i].partition,
				 (unsigned long long)acks[i].offset);
		if (good)
			expected_add(keys[i], amounts[i], acks[i].partition, acks[i].offset);
	}
	assert_int_equal(acks[1].error, RILL_E_WRITE_UNKNOWN_TYPE);
	ping(fd, "the connection after refused events");
	conn_close(fd);
}

/*
 * A record that fits a PRODUCE frame but not an EVENTS frame (8 bytes more of framing) is
 * refused, by its ACK entry, with the reason: taken, it would stop every subscriber of
 * its partition. One just within the EVENTS bound passes that check (its payload is not
 * a valid OrderPlaced, so the schema refuses it next, with another code).
 */
static void test_produce_record_over_events(void **state)
{
	(void)state;
	static uint8_t rec[BAD_FRAME_BYTES_MAX], frame[BAD_FRAME_BYTES_MAX + 64];
	static uint8_t payload[BAD_FRAME_BYTES_MAX];
	uint32_t record_max = rill_wire_events_record_max(BAD_FRAME_BYTES_MAX);
	uint32_t produce_max =
		BAD_FRAME_BYTES_MAX - RILL_WIRE_PRODUCE_BYTES_MIN - (uint32_t)strlen(BAD_TOPIC);
	assert_true(produce_max > record_max); /* the gap this is about */
	const char *key = "k-large";
	const uint32_t sizes[] = {produce_max, record_max + 1, record_max};
	int fd = conn_open();
	hello(fd);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct rill_record r = {.type_id = rill_schema_type_id(env.schema),
					.schema_version = 1,
					.key = key,
					.key_bytes = (uint16_t)strlen(key),
					.payload = payload,
					.payload_bytes = sizes[i] - RILL_RECORD_HEADER_BYTES -
							 (uint32_t)strlen(key)};
		assert_int_equal(rill_record_encode(rec, sizeof(rec), &r), (int)sizes[i]);
		uint64_t id = bad_id();
		size_t len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC,
					 (uint16_t)strlen(BAD_TOPIC), 1, rec, sizes[i]);
		raw_send_all(fd, frame, len);
		struct rill_wire_ack_entry ack;
		ack_read(fd, id, &ack, 1, "a PRODUCE of one large record");
		if (sizes[i] > record_max) {
			if (ack.error != RILL_E_RECORD_TOO_LARGE)
				fail_msg("a record of %u bytes (subscribers take %u): %s", sizes[i],
					 record_max, rill_strerror(ack.error));
			char reason[256];
			snprintf(reason, sizeof(reason), "%.*s", (int)ack.reason_bytes,
				 ack.reason != NULL ? ack.reason : "");
			assert_non_null(strstr(reason, "subscribers"));
		} else {
			assert_int_not_equal(ack.error, 0); /* the schema's refusal */
			assert_int_not_equal(ack.error, RILL_E_RECORD_TOO_LARGE);
		}
	}
	ping(fd, "the connection after refused large records");
	conn_close(fd);
}

/* Valid events, with durable acks; and an idempotent producer's retry. */
static void test_produce_valid(void **state)
{
	(void)state;
	enum { COUNT = 20 };
	uint8_t recs[COUNT * 128], frame[COUNT * 128 + 256];
	char keys[COUNT][16];
	uint32_t at = 0;
	for (uint32_t i = 0; i < COUNT; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k-%u", i % 7);
		at += valid_record(recs + at, sizeof(recs) - at, keys[i], 1000 + i);
	}
	uint64_t id = bad_id();
	size_t len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), COUNT,
				 recs, at);
	int fd = conn_open();
	hello(fd);
	raw_send_all(fd, frame, len);
	struct rill_wire_ack_entry acks[COUNT];
	ack_read(fd, id, acks, COUNT, "a valid PRODUCE");
	for (uint32_t i = 0; i < COUNT; i++) {
		if (acks[i].error != 0 || (acks[i].flags & RILL_WIRE_ACK_F_DUPLICATE))
			fail_msg("event %u: error %s, flags %u", i, rill_strerror(acks[i].error),
				 acks[i].flags);
		expected_add(keys[i], 1000 + i, acks[i].partition, acks[i].offset);
	}

	/* Producer 77: sequences 0 and 1 on one key's partition, then 1 again (a retry). */
	struct rill_wire_ack_entry first[2], retry[1];
	at = 0;
	at += make_record(recs, sizeof(recs), "k-idem", 3000, rill_schema_type_id(env.schema), 1,
			  BAD_PRODUCER_ID, 0);
	uint32_t second = make_record(recs + at, sizeof(recs) - at, "k-idem", 3001,
				      rill_schema_type_id(env.schema), 1, BAD_PRODUCER_ID, 1);
	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 2, recs,
			  at + second);
	raw_send_all(fd, frame, len);
	ack_read(fd, id, first, 2, "an idempotent producer's PRODUCE");
	for (uint32_t i = 0; i < 2; i++) {
		if (first[i].error != 0 || (first[i].flags & RILL_WIRE_ACK_F_DUPLICATE))
			fail_msg("idempotent event %u: error %s, flags %u", i,
				 rill_strerror(first[i].error), first[i].flags);
		expected_add("k-idem", 3000 + i, first[i].partition, first[i].offset);
	}
	id = bad_id();
	len = raw_produce(frame, sizeof(frame), id, 2, BAD_TOPIC, strlen(BAD_TOPIC), 1, recs + at,
			  second);
	raw_send_all(fd, frame, len);
	ack_read(fd, id, retry, 1, "an idempotent producer's retry");
	if (retry[0].error != 0 || !(retry[0].flags & RILL_WIRE_ACK_F_DUPLICATE) ||
	    retry[0].partition != first[1].partition || retry[0].offset != first[1].offset)
		fail_msg("the retry of sequence 1: error %s, flags %u, at %u:%llu; the first at "
			 "%u:%llu",
			 rill_strerror(retry[0].error), retry[0].flags, retry[0].partition,
			 (unsigned long long)retry[0].offset, first[1].partition,
			 (unsigned long long)first[1].offset);
	ping(fd, "the connection after valid PRODUCEs");
	conn_close(fd);
}

/*
 * A peer that writes its requests and then shuts its sending side (a tool piping a file
 * in) gets every answer before the server closes: here an ADMIN STAT, whose job keeps the
 * PRODUCE after it waiting in the input buffer, then that PRODUCE, then the end of stream.
 */
static void test_half_close_answers_all(void **state)
{
	(void)state;
	uint8_t rec[256], frame[1024];
	const char *key = "k-half-close";
	uint32_t n = valid_record(rec, sizeof(rec), key, 4242);
	uint64_t stat_id = bad_id(), produce_id = bad_id();
	int m = rill_wire_admin_encode(frame, sizeof(frame), stat_id, RILL_WIRE_ADMIN_STAT, "{}",
				       2);
	assert_true(m > 0);
	size_t len = (size_t)m + raw_produce(frame + m, sizeof(frame) - (size_t)m, produce_id, 1,
					     BAD_TOPIC, (uint16_t)strlen(BAD_TOPIC), 1, rec, n);
	int fd = conn_open();
	hello(fd);
	raw_send_all(fd, frame, len);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	struct rill_wire_header h;
	expect_frame(fd, RILL_WIRE_ADMIN_OK, stat_id, &h, "STAT before a half close");
	struct rill_wire_ack_entry ack;
	ack_read(fd, produce_id, &ack, 1, "a PRODUCE before a half close");
	if (ack.error != 0)
		fail_msg("the PRODUCE before a half close: %s", rill_strerror(ack.error));
	expected_add(key, 4242, ack.partition, ack.offset);
	expect_closed(fd, "after a half close, every answer sent");
	conn_close(fd);
	server_still_up("a half close");
}

/*
 * conn_inflight_bytes_max: durable PRODUCEs sent at once, together past the connection's
 * in-flight budget, wait for room (counted as backpressure) instead of growing memory, and
 * every one is still acknowledged, each event once and in the log.
 */
static void test_conn_inflight(void **state)
{
	(void)state;
	enum { FRAMES = 24, EVENTS = 100, FRAME_CAP = EVENTS * 128 + 256 };
	static uint8_t recs[EVENTS * 128], frames[FRAMES * FRAME_CAP];
	char keys[EVENTS][16];
	uint64_t ids[FRAMES];
	size_t sent = 0;
	for (uint32_t f = 0; f < FRAMES; f++) {
		uint32_t at = 0;
		for (uint32_t i = 0; i < EVENTS; i++) {
			snprintf(keys[i], sizeof(keys[i]), "kf-%u", i % 7);
			at += valid_record(recs + at, sizeof(recs) - at, keys[i],
					   5000 + f * EVENTS + i);
		}
		ids[f] = bad_id();
		sent += raw_produce(frames + sent, sizeof(frames) - sent, ids[f], 2, BAD_TOPIC,
				    strlen(BAD_TOPIC), EVENTS, recs, at);
	}
	assert_true(sent > 2 * BAD_CONN_INFLIGHT); /* at least twice what may wait at once */
	struct rill_server_stats before, after;
	rill_server_stats_get(env.server, &before);
	int fd = conn_open();
	hello(fd);
	raw_send_all(fd, frames, sent);
	bool answered[FRAMES] = {false};
	for (uint32_t n = 0; n < FRAMES; n++) {
		struct rill_wire_header h;
		int rc = frame_recv(fd, &h);
		if (rc != 1 || h.type != RILL_WIRE_ACK)
			fail_msg("PRODUCEs past the in-flight budget: ACK %u of %u: %s", n + 1,
				 FRAMES,
				 rc != 1 ? raw_recv_outcome(rc) : rill_wire_type_name(h.type));
		uint32_t f = 0;
		while (f < FRAMES && ids[f] != h.request_id)
			f++;
		assert_true(f < FRAMES && !answered[f]);
		answered[f] = true;
		uint32_t count = 0;
		struct rill_wire_iter it;
		assert_int_equal(rill_wire_ack_decode(rx_body, h.body_bytes, &count, &it), 0);
		assert_int_equal(count, EVENTS);
		for (uint32_t i = 0; i < EVENTS; i++) {
			struct rill_wire_ack_entry e;
			assert_int_equal(rill_wire_ack_next(&it, &e), 1);
			if (e.error != 0)
				fail_msg("frame %u event %u: %s", f, i, rill_strerror(e.error));
			char key[16];
			snprintf(key, sizeof(key), "kf-%u", i % 7);
			expected_add(key, 5000 + f * EVENTS + i, e.partition, e.offset);
		}
	}
	rill_server_stats_get(env.server, &after);
	if (after.backpressure == before.backpressure)
		fail_msg("%zu bytes of PRODUCE against a %u-byte budget never waited for room",
			 sent, BAD_CONN_INFLIGHT);
	ping(fd, "the connection after PRODUCEs past its in-flight budget");
	conn_close(fd);
	/* Every byte taken was given back (an ACK's release comes as it is sent: allow the
	 * worker its turn), or the budget would shrink until the server took nothing. */
	uint64_t deadline = rill_clock_now_ns() + BAD_WAIT_NS;
	do
		rill_server_stats_get(env.server, &after);
	while (after.inflight_bytes != 0 && rill_clock_now_ns() < deadline);
	assert_int_equal(after.inflight_bytes, 0);
}

/* test_input_backlog: what the peer gets back while it floods. */
struct flood_reader {
	int fd;
	uint64_t acks, refused, errors;
	int32_t first_error;
	int end; /* raw_frame_recv's last result: 0 at the end of the stream */
};

static void *flood_read(void *arg)
{
	struct flood_reader *r = arg;
	static uint8_t body[RILL_WIRE_FRAME_BYTES_MIN * 2];
	struct rill_wire_header h;
	while ((r->end = raw_frame_recv(r->fd, &h, body, sizeof(body), "a flood's answers")) == 1) {
		struct rill_wire_error e;
		uint32_t count = 0;
		struct rill_wire_iter it;
		struct rill_wire_ack_entry a;
		if (h.type == RILL_WIRE_ACK &&
		    rill_wire_ack_decode(body, h.body_bytes, &count, &it) == 0 && count == 1 &&
		    rill_wire_ack_next(&it, &a) == 1) {
			r->acks++;
			r->refused += a.error != 0; /* backpressure is never a refusal */
		} else if (r->errors++ == 0) {
			r->first_error =
				h.type == RILL_WIRE_ERROR &&
						rill_wire_error_decode(body, h.body_bytes, &e) == 0
					? e.code
					: -EPROTO;
		}
	}
	return NULL;
}

/*
 * A peer that pipelines small PRODUCEs faster than their ACKs free room, reading every
 * answer: the server stops reading while its frames wait (backpressure, PROTOCOL.md), so it
 * neither buffers the flood nor fails the connection; every frame gets its ACK. Until the
 * input held a whole frame the connection could not take yet, the server read on, and
 * the connection died of "out of memory for input" at 64 MiB buffered.
 */
static void test_input_backlog(void **state)
{
	(void)state;
	enum { BATCH = 64, FRAME_CAP = 256 };
	const uint64_t flood_ns = 2000ull * 1000000u, flood_bytes_max = 160ull << 20;
	struct rill_topic *flood = NULL;
	struct rill_topic_config tc = {
		.name = "flood", .partitions = 1, .durability = RILL_DURABILITY_NONE};
	struct rill_error_text err = {{0}};
	if (rill_topic_create(env.engine, &tc, &flood, &err) != 0)
		fail_msg("topic flood: %s", err.message);
	static uint8_t frames[BATCH * FRAME_CAP];
	uint8_t rec[128];
	uint32_t r = valid_record(rec, sizeof(rec), "k-flood", 1);
	struct rill_server_stats before, after;
	rill_server_stats_get(env.server, &before);
	int fd = conn_open();
	hello(fd);
	struct flood_reader reader = {.fd = fd};
	pthread_t thread;
	assert_int_equal(pthread_create(&thread, NULL, flood_read, &reader), 0);
	uint64_t start = rill_clock_now_ns(), frames_sent = 0, bytes_sent = 0;
	bool cut = false;
	while (!cut && rill_clock_now_ns() - start < flood_ns && bytes_sent < flood_bytes_max) {
		size_t len = 0;
		for (uint32_t i = 0; i < BATCH; i++)
			len += raw_produce(frames + len, sizeof(frames) - len, bad_id(), 1, "flood",
					   5, 1, rec, r);
		for (size_t at = 0; at < len;) {
			ssize_t n = send(fd, frames + at, len - at, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				cut = true; /* the server closed it: the reader says why */
				break;
			}
			at += (size_t)n;
		}
		frames_sent += cut ? 0 : BATCH;
		bytes_sent += len;
	}
	shutdown(fd, SHUT_WR); /* then the server answers what it took and closes */
	pthread_join(thread, NULL);
	if (reader.errors > 0 || cut)
		fail_msg("a peer flooding small PRODUCEs (%llu KiB sent) got %llu ERROR frame(s), "
			 "the first %d (%s), after %llu ACKs",
			 (unsigned long long)(bytes_sent >> 10), (unsigned long long)reader.errors,
			 reader.first_error, rill_strerror(reader.first_error),
			 (unsigned long long)reader.acks);
	if (reader.end != 0)
		fail_msg("a flood's answers ended with: %s", raw_recv_outcome(reader.end));
	assert_int_equal(reader.refused, 0);
	assert_int_equal(reader.acks, frames_sent);
	rill_server_stats_get(env.server, &after);
	if (after.backpressure == before.backpressure) /* or this tested nothing */
		fail_msg("%llu KiB of PRODUCEs never outran their ACKs",
			 (unsigned long long)(bytes_sent >> 10));
	conn_close(fd);
	server_still_up("a flood of small PRODUCEs");
}

/*
 * The stall clock starts when output starts waiting: an answer to a peer quiet for longer
 * than send_stall_timeout is not overdue at once. It was, when a timer check fell in the
 * turn that parsed the frame (one PING in eight after a pause, cut off as a slow reader).
 */
static void test_stall_clock_starts_with_output(void **state)
{
	(void)state;
	static struct srv_worker w;
	static struct srv_conn c;
	static uint8_t tx[4 * RILL_WIRE_HEADER_BYTES];
	memset(&w, 0, sizeof(w));
	memset(&c, 0, sizeof(c));
	c.tx = tx;
	c.tx_cap = sizeof(tx);
	c.send_progress_ns = 1000; /* the last send, long ago */
	w.now = 1000 + 10 * BAD_STALL_NS;
	uint8_t pong[RILL_WIRE_HEADER_BYTES];
	assert_int_equal(rill_wire_empty_encode(pong, sizeof(pong), RILL_WIRE_PONG, 1),
			 RILL_WIRE_HEADER_BYTES);
	srv_conn_send(&w, &c, pong, sizeof(pong));
	assert_int_equal(c.send_progress_ns, w.now);
	/* More output behind it does not restart the clock. */
	w.now += BAD_STALL_NS;
	srv_conn_send(&w, &c, pong, sizeof(pong));
	assert_int_equal(c.send_progress_ns, w.now - BAD_STALL_NS);
	assert_int_equal(c.tx_len, 2 * RILL_WIRE_HEADER_BYTES);
}

/*
 * The server-wide in-flight budget (S3), as srv_inflight_take keeps it: a connection
 * holding bytes gets no more past server_inflight_bytes_max, one holding nothing may
 * always take one frame, a refusal takes nothing, and the high-water mark follows.
 */
static void test_server_inflight_budget(void **state)
{
	(void)state;
	static struct rill_server s; /* only the budget's fields are used */
	memset(&s, 0, sizeof(s));
	s.config.server_inflight_bytes_max = 1000;
	assert_true(srv_inflight_take(&s, 0, 600));   /* 600 */
	assert_true(srv_inflight_take(&s, 600, 400)); /* 1000: at the limit, not past it */
	assert_false(srv_inflight_take(&s, 1000, 1)); /* past it, holding some */
	assert_int_equal(s.inflight_bytes, 1000);     /* the refusal took nothing */
	assert_true(srv_inflight_take(&s, 0, 700));   /* holding nothing: one frame */
	assert_int_equal(s.inflight_bytes, 1700);
	assert_false(srv_inflight_take(&s, 700, 10)); /* and then no more */
	assert_int_equal(s.inflight_bytes_peak, 1700);
	srv_inflight_give(&s, 1500);                  /* 200 */
	assert_true(srv_inflight_take(&s, 100, 300)); /* 500 */
	assert_int_equal(s.inflight_bytes, 500);
	assert_int_equal(s.inflight_bytes_peak, 1700); /* a high-water mark */
}

/* ---- Schemas larger than a frame ------------------------------------------------------------ */

/*
 * A definition of type @type, version 1, whose canonical text is exactly @bytes long: i64
 * fields with docs (at most 4,000 bytes each). Malloc'ed.
 */
static char *def_of_size(const char *type, size_t bytes)
{
	char *buf = malloc(bytes + 1);
	assert_non_null(buf);
	size_t n = (size_t)snprintf(buf, bytes + 1, "{\"type\":\"%s\",\"version\":1,\"fields\":[",
				    type);
	for (unsigned f = 0;; f++) {
		char head[64];
		size_t h = (size_t)snprintf(head, sizeof(head),
					    "%s{\"name\":\"f%03u\",\"type\":\"i64\",\"doc\":\"",
					    f ? "," : "", f);
		size_t tail = 2 + 2; /* the field's "} and the definition's ]} */
		assert_true(n + h + tail < bytes);
		size_t room = bytes - n - h - tail; /* its doc, were it the last field */
		size_t doc = room <= 4000 ? room : (room - 200 < 4000 ? room - 200 : 4000);
		memcpy(buf + n, head, h);
		memset(buf + n + h, 'd', doc);
		n += h + doc;
		memcpy(buf + n, "\"}", 2);
		n += 2;
		if (doc == room)
			break;
	}
	memcpy(buf + n, "]}", 3);
	n += 2;
	assert_int_equal(n, bytes);
	struct rill_schema *s;
	assert_int_equal(rill_schema_parse(&s, buf, n, NULL), 0);
	assert_int_equal(strlen(rill_schema_definition(s)), bytes); /* canonical as it is */
	rill_schema_free(s);
	return buf;
}

/* ADMIN SCHEMAS, every page: the entries, in order, in one array (json_decref it). */
static json_t *schemas_all(struct rill_client *c)
{
	json_t *all = json_array();
	char request[96] = "{}";
	for (int page = 0; page < 16; page++) {
		json_t *answer = client_admin_json(c, RILL_ADMIN_SCHEMAS, request, "SCHEMAS");
		json_t *list = json_object_get(answer, "schemas");
		assert_true(json_is_array(list) && json_array_size(list) > 0);
		json_array_extend(all, list);
		json_t *last = json_array_get(list, json_array_size(list) - 1);
		json_t *def = json_object_get(last, "definition");
		json_int_t version =
			json_integer_value(json_object_get(def != NULL ? def : last, "version"));
		snprintf(request, sizeof(request),
			 "{\"after_type_id\":%lld,\"after_version\":%lld}",
			 (long long)json_integer_value(json_object_get(last, "type_id")),
			 (long long)version);
		bool more = json_is_true(json_object_get(answer, "more"));
		json_decref(answer);
		if (!more)
			return all;
	}
	fail_msg("SCHEMAS: more than 16 pages");
	return NULL;
}

/* The entry of @type in @all (SCHEMAS' list), or NULL. */
static json_t *schemas_entry(json_t *all, const char *type)
{
	size_t i;
	json_t *e;
	json_array_foreach(all, i, e)
	{
		json_t *def = json_object_get(e, "definition");
		const char *name =
			json_string_value(json_object_get(def != NULL ? def : e, "type"));
		if (name != NULL && strcmp(name, type) == 0)
			return e;
	}
	return NULL;
}

/*
 * A definition whose SCHEMAS entry is larger than a frame made every SCHEMAS fail (the
 * answer is larger than a frame), and with it every client's produce and consume, for
 * good. Over TCP such a definition is refused before it is stored (-EMSGSIZE naming
 * frame_bytes_max); one a byte shorter is taken, and SCHEMAS carries it in a page of its
 * own; and one stored in process all the same is listed as a placeholder, too_large, so
 * that SCHEMAS still answers everything else.
 */
static void test_schema_larger_than_a_frame(void **state)
{
	(void)state;
	const size_t def_max = BAD_FRAME_BYTES_MAX - 136; /* docs/PROTOCOL.md */
	char *fits = def_of_size("FrameFits", def_max);
	char *over = def_of_size("FrameOver", def_max + 1);
	char *huge = def_of_size("FrameHuge", 70000);
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%u", env.port);
	struct rill_client *c = NULL;
	struct rill_client_error cerr = {{0}};
	assert_int_equal(rill_client_connect(&c, address, NULL, &cerr), 0);

	json_t *body = json_pack("{s:s}", "compat", "NONE");
	json_object_set_new(body, "schema", json_loads(over, 0, NULL));
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	assert_true(strlen(text) + RILL_WIRE_ADMIN_BYTES_MIN <= BAD_FRAME_BYTES_MAX);
	char *answer = NULL;
	int rc = rill_client_admin(c, RILL_ADMIN_SCHEMA_REGISTER, text, &answer, &cerr);
	free(text);
	if (rc != -EMSGSIZE || strstr(cerr.message, "frame_bytes_max") == NULL)
		fail_msg("a definition too large for SCHEMAS: %d (%s): %s", rc, rill_strerror(rc),
			 cerr.message);
	assert_null(rill_schema_get(rill_engine_schemas(env.engine), "FrameOver", 0));

	size_t fits_bytes = strlen(fits) + 16;
	text = malloc(fits_bytes);
	snprintf(text, fits_bytes, "{\"schema\":%s}", fits);
	json_decref(client_admin_json(c, RILL_ADMIN_SCHEMA_REGISTER, text, "FrameFits"));
	free(text);
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(env.engine), huge, strlen(huge), -1, NULL,
				  &serr);
	if (rc != 0)
		fail_msg("FrameHuge in process: %s: %s", rill_strerror(rc), serr.message);

	json_t *all = schemas_all(c);
	json_t *order = schemas_entry(all, "OrderPlaced");
	assert_non_null(json_object_get(order, "definition"));
	char *got = json_dumps(json_object_get(schemas_entry(all, "FrameFits"), "definition"),
			       JSON_COMPACT);
	assert_string_equal(got, fits);
	free(got);
	json_t *placeholder = schemas_entry(all, "FrameHuge");
	assert_non_null(placeholder);
	assert_null(json_object_get(placeholder, "definition"));
	assert_true(json_is_true(json_object_get(placeholder, "too_large")));
	assert_int_equal(json_integer_value(json_object_get(placeholder, "version")), 1);
	assert_int_equal(json_integer_value(json_object_get(placeholder, "definition_bytes")),
			 70000);
	assert_int_equal(json_integer_value(json_object_get(placeholder, "type_id")),
			 rill_schema_type_id(
				 rill_schema_get(rill_engine_schemas(env.engine), "FrameHuge", 1)));
	assert_null(schemas_entry(all, "FrameOver"));
	json_decref(all);
	rill_client_close(c);
	free(fits);
	free(over);
	free(huge);
}

/* ---- Listing and inspecting: TOPICS, PROJECTIONS, TOPIC_INFO's partitions ------------- */

/* ADMIN @op with @json must fail with @code, its message holding @needle, and leave the
 * connection usable (the failures are not the fatal kind). */
static void admin_expect_error(struct rill_client *c, uint16_t op, const char *json, int code,
			       const char *needle)
{
	char *answer = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_admin(c, op, json, &answer, &err);
	free(answer);
	if (rc != code || strstr(err.message, needle) == NULL)
		fail_msg("ADMIN %u %s: %d (%s) \"%s\"; expected %d (%s) naming %s", op, json, rc,
			 rill_strerror(rc), err.message, code, rill_strerror(code), needle);
	assert_int_equal(rill_client_ping(c, &err), 0);
}

static struct rill_client *list_connect(void)
{
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%u", env.port);
	struct rill_client *c = NULL;
	struct rill_client_error err = {{0}};
	if (rill_client_connect(&c, address, NULL, &err) != 0)
		fail_msg("connect %s: %s", address, err.message);
	return c;
}

/*
 * The listing ops' malformed arguments: each refused, not fatal, its message naming the
 * key or the name at fault. The new ops refuse keys they do not take (a misspelt cursor
 * would otherwise list the first page again); TOPIC_INFO's partitions_from is range-checked
 * against the topic's partitions.
 */
static void test_admin_list_malformed(void **state)
{
	(void)state;
	struct rill_client *c = list_connect();
	admin_expect_error(c, RILL_ADMIN_TOPICS, "{\"afer\":\"orders\"}", -EINVAL, "\"afer\"");
	admin_expect_error(c, RILL_ADMIN_TOPICS, "{\"after\":5}", -EINVAL, "\"after\"");
	admin_expect_error(c, RILL_ADMIN_TOPICS, "{\"after\":\"\"}", -EINVAL, "\"after\"");
	admin_expect_error(c, RILL_ADMIN_TOPICS, "[]", RILL_E_JSON_INVALID, "not a JSON object");
	admin_expect_error(c, RILL_ADMIN_PROJECTIONS, "{\"topic\":\"orders\"}", -EINVAL,
			   "\"topic\"");
	admin_expect_error(c, RILL_ADMIN_TOPIC_INFO, "{}", -EINVAL, "\"name\"");
	admin_expect_error(c, RILL_ADMIN_TOPIC_INFO, "{\"name\":\"nosuch\"}", -ENOENT, "nosuch");
	admin_expect_error(c, RILL_ADMIN_TOPIC_INFO,
			   "{\"name\":\"" BAD_TOPIC "\",\"partitions_from\":2}", -EINVAL,
			   "\"partitions_from\": expected an integer from 0 to 1");
	admin_expect_error(c, RILL_ADMIN_TOPIC_INFO,
			   "{\"name\":\"" BAD_TOPIC "\",\"partitions_from\":-1}", -EINVAL,
			   "\"partitions_from\"");
	admin_expect_error(c, RILL_ADMIN_TOPIC_INFO,
			   "{\"name\":\"" BAD_TOPIC "\",\"partitions_from\":\"0\"}", -EINVAL,
			   "\"partitions_from\"");
	/* Without partitions_from, TOPIC_INFO answers as before: no shard is asked. */
	json_t *j = client_admin_json(c, RILL_ADMIN_TOPIC_INFO, "{\"name\":\"" BAD_TOPIC "\"}",
				      "TOPIC_INFO");
	assert_null(json_object_get(j, "partitions_info"));
	assert_int_equal(json_integer_value(json_object_get(j, "partitions")), BAD_PARTITIONS);
	json_decref(j);
	rill_client_close(c);
}

/* A custom projection that holds nothing: to be listed. */
static void *list_custom_init(void *arg, uint32_t partition)
{
	(void)arg, (void)partition;
	static char state; /* not NULL, which says out of memory; shared, as nothing is held */
	return &state;
}
static int list_custom_apply(void *state, const struct rill_record *event, uint64_t offset)
{
	(void)state, (void)event, (void)offset;
	return 0;
}
static int64_t list_custom_query(void *state, const void *key, uint32_t key_bytes, void *out,
				 size_t out_bytes)
{
	(void)state, (void)key, (void)key_bytes, (void)out, (void)out_bytes;
	return -ENOENT;
}
static int64_t list_custom_snapshot(void *state, void *buf, size_t buf_bytes)
{
	(void)state, (void)buf, (void)buf_bytes;
	return 0;
}
static int list_custom_restore(void *state, const void *buf, size_t buf_bytes)
{
	(void)state, (void)buf, (void)buf_bytes;
	return 0;
}
static void list_custom_destroy(void *state)
{
	(void)state;
}
static const struct rill_projection_ops list_custom_ops = {
	.init = list_custom_init,
	.apply = list_custom_apply,
	.query = list_custom_query,
	.snapshot = list_custom_snapshot,
	.restore = list_custom_restore,
	.destroy = list_custom_destroy,
};

/* ADMIN @op through srv_admin on @s, which must answer; its answer parsed. */
static json_t *admin_direct(struct rill_server *s, uint16_t op, const char *json)
{
	char *answer = NULL;
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX];
	int rc = srv_admin(s, op, json, (uint32_t)strlen(json), &answer, msg, sizeof(msg));
	if (rc != 0)
		fail_msg("ADMIN %u %s: %d (%s): %s", op, json, rc, rill_strerror(rc), msg);
	json_t *j = json_loads(answer, 0, NULL);
	free(answer);
	assert_true(json_is_object(j));
	return j;
}

/*
 * Every page of listing @op (@key: the answer's array) through @s from the names after
 * @after (NULL: from the first), the cursor the last name of each page: the names in
 * order, joined by spaces, into @names; the pages' count.
 */
static uint32_t list_pages_after(struct rill_server *s, uint16_t op, const char *key,
				 const char *after, char *names, size_t names_bytes)
{
	char request[192] = "{}";
	if (after != NULL)
		snprintf(request, sizeof(request), "{\"after\":\"%s\"}", after);
	uint32_t pages = 0;
	names[0] = '\0';
	for (bool more = true; more; pages++) {
		assert_true(pages < 64);
		json_t *j = admin_direct(s, op, request);
		json_t *list = json_object_get(j, key);
		assert_true(json_is_array(list));
		more = json_is_true(json_object_get(j, "more"));
		assert_true(json_array_size(list) >= 1 || !more);
		size_t i;
		json_t *e;
		const char *last = NULL;
		json_array_foreach(list, i, e)
		{
			last = json_string_value(json_object_get(e, "name"));
			assert_non_null(last);
			size_t at = strlen(names);
			snprintf(names + at, names_bytes - at, "%s%s", at > 0 ? " " : "", last);
		}
		if (last != NULL)
			snprintf(request, sizeof(request), "{\"after\":\"%s\"}", last);
		json_decref(j);
	}
	return pages;
}

static uint32_t list_pages(struct rill_server *s, uint16_t op, const char *key, char *names,
			   size_t names_bytes)
{
	return list_pages_after(s, op, key, NULL, names, names_bytes);
}

/* The topics' names, as rill_topic_each gives them. */
struct list_names {
	const char *names[64];
	uint32_t count;
};

static int list_topic_name(void *arg, struct rill_topic *t)
{
	struct list_names *l = arg;
	assert_true(l->count < RILL_ARRAY_COUNT(l->names));
	l->names[l->count++] = rill_topic_config_get(t)->name;
	return 0;
}

static int list_name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every topic's name in name order (byte order), joined by spaces, into @out (1024 bytes):
 * the order TOPICS lists them in. Their count. */
static uint32_t list_topics_sorted(struct rill_engine *e, char *out)
{
	struct list_names l = {.count = 0};
	assert_int_equal(rill_topic_each(e, list_topic_name, &l), 0);
	qsort(l.names, l.count, sizeof(l.names[0]), list_name_cmp);
	out[0] = '\0';
	for (uint32_t i = 0; i < l.count; i++) {
		size_t at = strlen(out);
		snprintf(out + at, 1024 - at, "%s%s", at > 0 ? " " : "", l.names[i]);
	}
	return l.count;
}

/*
 * TOPICS, PROJECTIONS and TOPIC_INFO's partitions page by page: through srv_admin on a
 * server struct holding the engine and a frame limit of two topic entries (a real server
 * takes 64 KiB at least: 177 topics a page, more partitions than a test should open), so
 * that N topics take N / 2 pages rounded up (those the tests before made, then 4 more, in
 * name order), 4 projections 2, and a 5-partition topic's offsets 3; the cursor picks up
 * at the first name after the last one, or after a name that is none. The offsets are the events': 40 produced durably
 * into "list_p" sum to 40 over its next offsets, each partition's as many as were
 * acknowledged there, all durable, none deleted.
 */
static void test_admin_list_pages(void **state)
{
	(void)state;
	static const char *const topics[] = {"list_a", "list_b", "list_c", "list_p"};
	for (size_t i = 0; i < RILL_ARRAY_COUNT(topics); i++) {
		struct rill_topic_config tc = {.name = topics[i],
					       .partitions = i == 3 ? 5 : 1,
					       .durability = RILL_DURABILITY_GROUP};
		struct rill_error_text err = {{0}};
		if (rill_topic_create(env.engine, &tc, NULL, &err) != 0)
			fail_msg("topic %s: %s", topics[i], err.message);
	}
	struct rill_projection_def defs[] = {
		{.name = "list_count",
		 .topic = "list_p",
		 .type = "OrderPlaced",
		 .kind = RILL_PROJECTION_COUNT},
		{.name = "list_sum",
		 .topic = "list_p",
		 .type = "OrderPlaced",
		 .version = 1,
		 .kind = RILL_PROJECTION_SUM,
		 .field = "amount"},
		{.name = "list_win",
		 .topic = "list_a",
		 .type = "OrderPlaced",
		 .kind = RILL_PROJECTION_WINDOW_SUM,
		 .field = "amount",
		 .window_ns = 60000000000ull},
	};
	for (size_t i = 0; i < RILL_ARRAY_COUNT(defs); i++) {
		struct rill_error_text err = {{0}};
		if (rill_projection_define(env.engine, &defs[i], &err) != 0)
			fail_msg("projection %s: %s", defs[i].name, err.message);
	}
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_projection_define_custom(env.engine, "list_custom", "list_b",
						       &list_custom_ops, NULL, &err),
			 0);

	static struct rill_server s; /* only the engine and the frame limit are used */
	memset(&s, 0, sizeof(s));
	s.engine = env.engine;
	s.config.frame_bytes_max = 8 + 31 + 2 * 368; /* two topic entries at the worst */
	char names[1024], expected[1024] = "";
	uint32_t count = list_topics_sorted(env.engine, expected);
	assert_non_null(strstr(expected, "list_a list_b list_c list_p " BAD_TOPIC));
	assert_int_equal(list_pages(&s, RILL_ADMIN_TOPICS, "topics", names, sizeof(names)),
			 (count + 1) / 2);
	assert_string_equal(names, expected);
	/* A cursor that names no topic: the names after it. */
	list_pages_after(&s, RILL_ADMIN_TOPICS, "topics", "list_bb", names, sizeof(names));
	assert_int_equal(strncmp(names, "list_c list_p " BAD_TOPIC, 19), 0);
	s.config.frame_bytes_max = 8 + 31 + 2 * 642; /* two projection entries */
	assert_int_equal(
		list_pages(&s, RILL_ADMIN_PROJECTIONS, "projections", names, sizeof(names)), 2);
	assert_string_equal(names, "list_count list_custom list_sum list_win");
	list_pages_after(&s, RILL_ADMIN_PROJECTIONS, "projections", "list_d", names, sizeof(names));
	assert_string_equal(names, "list_sum list_win");

	/* The entries as defined; a custom one with its name and topic only. */
	s.config.frame_bytes_max = BAD_FRAME_BYTES_MAX;
	json_t *j = admin_direct(&s, RILL_ADMIN_PROJECTIONS, "{\"after\":\"list_count\"}");
	char *text = json_dumps(json_object_get(j, "projections"), JSON_COMPACT);
	assert_string_equal(
		text, "[{\"name\":\"list_custom\",\"topic\":\"list_b\",\"type\":null,"
		      "\"version\":null,\"kind\":\"custom\",\"field\":null,\"window_ns\":null},"
		      "{\"name\":\"list_sum\",\"topic\":\"list_p\",\"type\":\"OrderPlaced\","
		      "\"version\":1,\"kind\":\"sum\",\"field\":\"amount\",\"window_ns\":0},"
		      "{\"name\":\"list_win\",\"topic\":\"list_a\",\"type\":\"OrderPlaced\","
		      "\"version\":1,\"kind\":\"window_sum\",\"field\":\"amount\","
		      "\"window_ns\":60000000000}]");
	free(text);
	assert_false(json_is_true(json_object_get(j, "more")));
	json_decref(j);
	j = admin_direct(&s, RILL_ADMIN_TOPICS, "{\"after\":\"list_c\"}");
	text = json_dumps(json_array_get(json_object_get(j, "topics"), 0), JSON_COMPACT);
	assert_string_equal(text, "{\"name\":\"list_p\",\"partitions\":5,"
				  "\"durability\":\"group\",\"batch_delay_us\":0,"
				  "\"retention_bytes\":0,\"retention_age_s\":0,"
				  "\"segment_bytes\":0}");
	free(text);
	json_decref(j);

	/* 40 events into list_p, acknowledged durable: where each went. */
	enum { EVENTS = 40, PARTS = 5 };
	uint8_t payload[256];
	uint32_t payload_bytes = order_payload(payload, sizeof(payload), 1);
	struct rill_record events[EVENTS];
	char keys[EVENTS][16];
	for (uint32_t i = 0; i < EVENTS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "lk-%u", i);
		events[i] = (struct rill_record){.type_id = rill_schema_type_id(env.schema),
						 .schema_version = 1,
						 .key = keys[i],
						 .key_bytes = (uint16_t)strlen(keys[i]),
						 .payload = payload,
						 .payload_bytes = payload_bytes};
	}
	struct rill_client *c = list_connect();
	static struct rill_client_ack acks[EVENTS];
	struct rill_client_error cerr = {{0}};
	assert_int_equal(
		rill_client_produce(c, "list_p", events, EVENTS, RILL_ACKS_DURABLE, acks, &cerr),
		0);
	rill_client_close(c);
	uint64_t per_part[PARTS] = {0};
	for (uint32_t i = 0; i < EVENTS; i++) {
		assert_int_equal(acks[i].error, 0);
		assert_true(acks[i].partition < PARTS);
		per_part[acks[i].partition]++;
	}

	/* Its partitions, two a page. */
	s.config.frame_bytes_max = 8 + 368 + 45 + 2 * 144;
	uint64_t sum = 0;
	uint32_t pages = 0, seen = 0;
	for (bool more = true; more; pages++) {
		char request[96];
		snprintf(request, sizeof(request), "{\"name\":\"list_p\",\"partitions_from\":%u}",
			 seen);
		j = admin_direct(&s, RILL_ADMIN_TOPIC_INFO, request);
		assert_int_equal(json_integer_value(json_object_get(j, "partitions")), PARTS);
		more = json_is_true(json_object_get(j, "partitions_more"));
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(j, "partitions_info"), i, e)
		{
			uint64_t next =
				(uint64_t)json_integer_value(json_object_get(e, "next_offset"));
			assert_int_equal(json_integer_value(json_object_get(e, "partition")), seen);
			assert_int_equal(json_integer_value(json_object_get(e, "first_offset")), 0);
			assert_int_equal(json_integer_value(json_object_get(e, "durable_offset")),
					 next);
			assert_int_equal(next, per_part[seen]);
			sum += next;
			seen++;
		}
		json_decref(j);
	}
	assert_int_equal(pages, 3);
	assert_int_equal(seen, PARTS);
	assert_int_equal(sum, EVENTS);
}

/* ---- The log -------------------------------------------------------------------------- */

/* The event expected at @p:@offset, or one whose offset is not known (its ACK never came)
 * with @amount and not yet found; NULL if none. */
static struct bad_expected *bad_expected_find(uint32_t p, uint64_t offset, int64_t amount)
{
	for (uint32_t i = 0; i < env.expected_count; i++)
		if (env.expected[i].partition == p && env.expected[i].offset == offset)
			return &env.expected[i];
	for (uint32_t i = 0; i < env.expected_count; i++)
		if (env.expected[i].partition == p && env.expected[i].offset == UINT64_MAX &&
		    !env.expected[i].found && env.expected[i].amount == amount)
			return &env.expected[i];
	return NULL;
}

/* Stop the server, close the engine, and read every partition's log back. */
static void test_log_holds_only_valid_events(void **state)
{
	(void)state;
	struct rill_server_stats st;
	rill_server_stats_get(env.server, &st);
	assert_true(st.bad_frames >= 50);
	assert_true(env.expected_count >= 20);
	assert_int_equal(rill_server_stop(env.server, BAD_WAIT_NS), 0);
	env.server = NULL;
	assert_int_equal(rill_engine_close(env.engine), 0);
	env.engine = NULL;

	struct rill_schema *schema;
	struct rill_schema_error serr;
	assert_int_equal(
		rill_schema_parse(&schema, bad_schema_json, strlen(bad_schema_json), &serr), 0);
	struct rill_field_ref amount_ref;
	assert_int_equal(rill_schema_field_ref(schema, "amount", &amount_ref), 0);
	uint64_t total = 0;
	for (uint32_t p = 0; p < BAD_PARTITIONS; p++) {
		char dir[256];
		snprintf(dir, sizeof(dir), "%s/topics/%s/%u", env.dir, BAD_TOPIC, p);
		struct rill_io *io;
		struct rill_log *log;
		struct rill_log_recovery report;
		int rc = test_log_open_read_only(dir, &io, &log, &report);
		if (rc != 0 || report.truncated_bytes != 0)
			fail_msg("partition %u after a clean close: %s, %llu bytes to cut (%s)", p,
				 rill_strerror(rc), (unsigned long long)report.truncated_bytes,
				 report.message);
		struct rill_log_iter it;
		assert_int_equal(rill_log_iter_init(&it, log, 0), 0);
		struct rill_record rec;
		uint64_t offset;
		while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1) {
			int64_t amount = rill_field_i64(rec.payload, amount_ref);
			struct bad_expected *e = bad_expected_find(p, offset, amount);
			if (e == NULL || e->found || amount != e->amount ||
			    rec.key_bytes != strlen(e->key) ||
			    memcmp(rec.key, e->key, rec.key_bytes) != 0)
				fail_msg("partition %u offset %llu holds key %.*s, amount %lld: "
					 "not an "
					 "event sent there valid%s",
					 p, (unsigned long long)offset, (int)rec.key_bytes,
					 (const char *)rec.key, (long long)amount,
					 amount == BAD_POISON_AMOUNT ? " (from a malformed frame)"
								     : "");
			e->found = true;
			total++;
		}
		assert_int_equal(rc, 0);
		rill_log_iter_fini(&it);
		assert_int_equal(rill_log_close(log), 0);
		rill_io_destroy(io);
	}
	uint64_t optional_missing = 0;
	for (uint32_t i = 0; i < env.expected_count; i++) {
		optional_missing += env.expected[i].optional && !env.expected[i].found;
		if (!env.expected[i].found && !env.expected[i].optional)
			fail_msg("event %s (amount %lld), acknowledged at %u:%llu, is not in the "
				 "log",
				 env.expected[i].key, (long long)env.expected[i].amount,
				 env.expected[i].partition,
				 (unsigned long long)env.expected[i].offset);
	}
	assert_int_equal(total + optional_missing, env.expected_count);
	rill_schema_free(schema);
}

/* An engine of its own on @dir (one shard, unpinned), for test_admin_list_restart. */
static struct rill_engine *list_restart_open(const char *dir)
{
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = dir;
	cfg.shards = 1;
	cfg.pin = false;
	struct rill_engine *e = NULL;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&e, &cfg, &err);
	if (rc != 0)
		fail_msg("engine open %s: %s: %s", dir, rill_strerror(rc), err.message);
	return e;
}

/*
 * TOPICS and PROJECTIONS in an order a restart keeps. They listed in the engine's order,
 * the order made, but a reopen loads the definitions in name order: made zeta, alpha,
 * mid, beta, they listed so, and alpha, beta, mid, zeta after a restart, so that a client
 * paging with "after" across it got zeta twice (and could skip others). In name order:
 * the whole list the same before and after, and the pages read before the restart and
 * those read after it, from the last name read, make it whole, each name once.
 */
static void test_admin_list_restart(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "server-list"), 0);
	struct rill_engine *e = list_restart_open(dir);
	struct rill_schema_error serr = {{0}};
	assert_int_equal(rill_schema_register(rill_engine_schemas(e), bad_schema_json,
					      strlen(bad_schema_json), -1, NULL, &serr),
			 0);
	static const char *const made[] = {"zeta", "alpha", "mid", "beta"}; /* not in order */
	for (size_t i = 0; i < RILL_ARRAY_COUNT(made); i++) {
		struct rill_topic_config tc = {.name = made[i], .partitions = 1};
		struct rill_error_text err = {{0}};
		if (rill_topic_create(e, &tc, NULL, &err) != 0)
			fail_msg("topic %s: %s", made[i], err.message);
		char name[16];
		snprintf(name, sizeof(name), "p_%s", made[i]);
		struct rill_projection_def d = {.name = name,
						.topic = made[i],
						.type = "OrderPlaced",
						.kind = RILL_PROJECTION_COUNT};
		if (rill_projection_define(e, &d, &err) != 0)
			fail_msg("projection %s: %s", name, err.message);
	}
	static const struct {
		uint16_t op;
		const char *key;
		uint32_t frame_bytes_max; /* two entries a page */
		const char *all;
	} lists[] = {
		{RILL_ADMIN_TOPICS, "topics", 8 + 31 + 2 * 368, "alpha beta mid zeta"},
		{RILL_ADMIN_PROJECTIONS, "projections", 8 + 31 + 2 * 642,
		 "p_alpha p_beta p_mid p_zeta"},
	};
	static struct rill_server s; /* only the engine and the frame limit are used */
	memset(&s, 0, sizeof(s));
	char before[RILL_ARRAY_COUNT(lists)][128], first[RILL_ARRAY_COUNT(lists)][128];
	char last[RILL_ARRAY_COUNT(lists)][32];
	for (size_t l = 0; l < RILL_ARRAY_COUNT(lists); l++) {
		s.engine = e;
		s.config.frame_bytes_max = lists[l].frame_bytes_max;
		list_pages(&s, lists[l].op, lists[l].key, before[l], sizeof(before[l]));
		assert_string_equal(before[l], lists[l].all);
		/* The first page only, then the restart. */
		json_t *j = admin_direct(&s, lists[l].op, "{}");
		json_t *page = json_object_get(j, lists[l].key);
		assert_int_equal(json_array_size(page), 2);
		assert_true(json_is_true(json_object_get(j, "more")));
		snprintf(first[l], sizeof(first[l]), "%s %s",
			 json_string_value(json_object_get(json_array_get(page, 0), "name")),
			 json_string_value(json_object_get(json_array_get(page, 1), "name")));
		snprintf(last[l], sizeof(last[l]), "%s",
			 json_string_value(json_object_get(json_array_get(page, 1), "name")));
		json_decref(j);
	}
	assert_int_equal(rill_engine_close(e), 0);
	e = list_restart_open(dir);
	for (size_t l = 0; l < RILL_ARRAY_COUNT(lists); l++) {
		s.engine = e;
		s.config.frame_bytes_max = lists[l].frame_bytes_max;
		char after[128], rest[128], joined[256];
		list_pages(&s, lists[l].op, lists[l].key, after, sizeof(after));
		if (strcmp(after, before[l]) != 0)
			fail_msg("%s: \"%s\" before a restart, \"%s\" after", lists[l].key,
				 before[l], after);
		list_pages_after(&s, lists[l].op, lists[l].key, last[l], rest, sizeof(rest));
		snprintf(joined, sizeof(joined), "%s %s", first[l], rest);
		if (strcmp(joined, lists[l].all) != 0)
			fail_msg("%s: paged across a restart: \"%s\" then \"%s\" after \"%s\"; "
				 "expected \"%s\"",
				 lists[l].key, first[l], rest, last[l], lists[l].all);
	}
	assert_int_equal(rill_engine_close(e), 0);
	assert_int_equal(test_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_ping_before_hello, bad_each),
		cmocka_unit_test_setup(test_hello_bad, bad_each),
		cmocka_unit_test_setup(test_second_hello, bad_each),
		cmocka_unit_test_setup(test_unknown_type, bad_each),
		cmocka_unit_test_setup(test_header_flags, bad_each),
		cmocka_unit_test_setup(test_body_over_limit, bad_each),
		cmocka_unit_test_setup(test_header_error_answers_request_id, bad_each),
		cmocka_unit_test_setup(test_produce_truncated, bad_each),
		cmocka_unit_test_setup(test_produce_count_mismatch, bad_each),
		cmocka_unit_test_setup(test_produce_bad_record, bad_each),
		cmocka_unit_test_setup(test_produce_bad_fields, bad_each),
		cmocka_unit_test_setup(test_server_to_client_types, bad_each),
		cmocka_unit_test_setup(test_subscribe_bad_from, bad_each),
		cmocka_unit_test_setup(test_query_both_as_of, bad_each),
		cmocka_unit_test_setup(test_admin_bad_op, bad_each),
		cmocka_unit_test_setup(test_small_frames_with_bodies, bad_each),
		cmocka_unit_test_setup(test_header_claims_wrong_size, bad_each),
		cmocka_unit_test_setup(test_random_garbage, bad_each),
		cmocka_unit_test_setup(test_pipelined_then_bad, bad_each),
		cmocka_unit_test_setup(test_partial_frames, bad_each),
		cmocka_unit_test_setup(test_produce_then_bad, bad_each),
		cmocka_unit_test_setup(test_handshake_timeout, bad_each),
		cmocka_unit_test_setup(test_connections_max, bad_each),
		cmocka_unit_test_setup(test_idle_timeout, bad_each),
		cmocka_unit_test_setup(test_send_stall, bad_each),
		cmocka_unit_test(test_answer_to_dead_connection),
		cmocka_unit_test_setup(test_send_stall_with_answer_owed, bad_each),
		cmocka_unit_test_setup(test_subscriptions_max, bad_each),
		cmocka_unit_test_setup(test_produce_unknown_topic, bad_each),
		cmocka_unit_test_setup(test_produce_unregistered_type, bad_each),
		cmocka_unit_test_setup(test_produce_valid, bad_each),
		cmocka_unit_test_setup(test_produce_record_over_events, bad_each),
		cmocka_unit_test_setup(test_half_close_answers_all, bad_each),
		cmocka_unit_test_setup(test_conn_inflight, bad_each),
		cmocka_unit_test_setup(test_input_backlog, bad_each),
		cmocka_unit_test(test_server_inflight_budget),
		cmocka_unit_test(test_stall_clock_starts_with_output),
		cmocka_unit_test_setup(test_schema_larger_than_a_frame, bad_each),
		cmocka_unit_test_setup(test_admin_list_malformed, bad_each),
		cmocka_unit_test_setup(test_admin_list_pages, bad_each),
		cmocka_unit_test_setup(test_admin_list_restart, bad_each),
		cmocka_unit_test_setup(test_log_holds_only_valid_events, bad_each),
	};
	return cmocka_run_group_tests_name("server_bad", tests, bad_setup, bad_teardown);
}
