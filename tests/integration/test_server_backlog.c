/*
 * The server's PRODUCE ingest while a shard is held back. An engine of two shards runs in a
 * temporary directory with the server in process on an ephemeral port (64 KiB frames); a
 * hook of the test's blocks the thread of the shard that owns the one partition of a
 * topic, and connections of the other shard's worker flood that partition with PRODUCE
 * frames of hundreds of events, all they can send: their frames stall on the full ring to
 * the held shard, the worker retries them every turn, and the peers' sockets fill. Then
 * the shard runs again, and every frame must be acknowledged.
 *
 * What must hold (io/server_int.h):
 *  - S6: a connection's input buffer holds at most the frame at its head and one receive
 *    buffer more, whatever the peer sends while it waits, and it is freed once the
 *    connection is idle: the server's own gauge (STAT's input_bytes, input_bytes_peak)
 *    stays within the bound and comes back to 0. A multishot recv, cancelled only at the
 *    stall, went on copying what the socket held: megabytes per connection, kept until
 *    it closed.
 *  - Every event is published once and in order: each connection's offsets increase, and
 *    the partition ends holding exactly the events sent.
 *  - S7: a stalled frame's records are checked once, when it came, however often it is
 *    retried: the worker's count of records checked is the count of events sent.
 *
 * The connections are opened until enough land on the worker that floods (the kernel
 * spreads them over the workers' listeners, SO_REUSEPORT); the others are closed. Client
 * threads record what went wrong, and the test's thread fails with it (cmocka cannot fail
 * from another thread).
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "engine/engine_int.h"
#include "io/server_int.h"
#include "io/wire.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "rill/server.h"
#include "tests/common/raw_socket.h"
#include "tests/common/server_start.h"
#include "tests/common/test_dir.h"

#define BL_SHARDS          2u
#define BL_FRAME_BYTES_MAX (64u << 10) /* the smallest frame limit: the bound is tightest */
#define BL_CONNS           8u          /* flooding connections, all on one worker */
#define BL_CONNECT_TRIES   64u         /* connections opened to find BL_CONNS there */
#define BL_FRAMES          48u         /* frames each connection sends, ~3 MiB */
#define BL_HOLD_NS         (1000ull * 1000000u)  /* the shard held back this long */
#define BL_WAIT_NS         (5ull * 1000000000u)  /* "soon" under load */
#define BL_RUN_NS          (60ull * 1000000000u) /* a connection's whole flood, at most */
#define BL_RECV_TIMEOUT_MS 10000
#define BL_IN_BYTES        (256u << 10) /* a client's receive buffer: ACKs, several */

static const char bl_schema_json[] =
	"{\"type\":\"Tick\",\"version\":1,\"fields\":[{\"name\":\"n\",\"type\":\"i64\"}]}";

/* The shard hook that holds its shard's thread while @on is set. */
struct bl_hold {
	uint64_t on;      /* atomic: hold */
	uint64_t holding; /* atomic: the shard is inside the hold */
};

static struct {
	char dir[64];
	struct rill_engine *engine;
	const struct rill_schema *schema;
	struct rill_server *server;
	uint16_t port;
	struct bl_hold hold;
	bool hooked;         /* the hold is in hold_shard's loop */
	uint32_t hold_shard; /* the flood topic's partition's */
	uint32_t topics;     /* made so far (each test floods a fresh one) */
} env;

/* One flooding connection, run by its own thread. */
struct bl_conn {
	int fd;
	pthread_t thread;
	uint8_t *frame; /* one PRODUCE, its request id rewritten for each send */
	uint32_t frame_bytes;
	uint32_t events; /* per frame */
	uint64_t first_id;
	uint32_t sent;        /* whole frames sent */
	uint32_t sent_at;     /* bytes of the next frame sent */
	uint32_t acked;       /* frames acknowledged, in order */
	uint64_t next_offset; /* every offset acknowledged so far is below it */
	bool any_offset;
	uint8_t in[BL_IN_BYTES];
	uint32_t in_len;
	char error[256]; /* empty: all well */
};

/* ---- The hold ------------------------------------------------------------------------- */

static unsigned bl_hold_poll(void *arg)
{
	struct bl_hold *h = arg;
	if (rill_atomic_load_acquire_u64(&h->on) == 0) /* A: pairs with R in bl_hold_set */
		return 0;
	rill_atomic_store_release_u64(&h->holding, 1); /* R: pairs with A in bl_hold_set */
	while (rill_atomic_load_acquire_u64(&h->on) != 0) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
		nanosleep(&ts, NULL);
	}
	rill_atomic_store_release_u64(&h->holding, 0);
	return 1;
}

/* Hold the shard (and so its worker) or let it go; holding, wait until it is inside. */
static void bl_hold_set(bool on)
{
	rill_atomic_store_release_u64(&env.hold.on, on ? 1 : 0); /* R: pairs with A */
	if (!on)
		return;
	uint64_t deadline = rill_clock_now_ns() + BL_WAIT_NS;
	while (rill_atomic_load_acquire_u64(&env.hold.holding) == 0) { /* A: pairs with R */
		if (rill_clock_now_ns() > deadline)
			fail_msg("shard %u never entered the test's hold", env.hold_shard);
		usleep(1000);
	}
}

/* ---- Frames --------------------------------------------------------------------------- */

/* A PRODUCE of as many Tick events (key "c<conn>-<i>", n = i) as fit a frame, to @topic
 * at @acks, into @c->frame. */
static void bl_frame_make(struct bl_conn *c, uint32_t conn, const char *topic, uint8_t acks)
{
	c->frame = malloc(RILL_WIRE_HEADER_BYTES + BL_FRAME_BYTES_MAX);
	assert_non_null(c->frame);
	int at = rill_wire_produce_begin(c->frame, RILL_WIRE_HEADER_BYTES + BL_FRAME_BYTES_MAX, 0,
					 acks, topic, strlen(topic));
	assert_true(at > 0);
	uint32_t count = 0;
	for (;;) {
		uint8_t payload[64];
		uint32_t payload_bytes = 0;
		struct rill_payload_builder b;
		assert_int_equal(
			rill_payload_builder_init(&b, env.schema, payload, sizeof(payload)), 0);
		assert_int_equal(rill_payload_set_i64(&b, 0, count), 0);
		assert_int_equal(rill_payload_builder_finish(&b, &payload_bytes, NULL), 0);
		char key[32];
		snprintf(key, sizeof(key), "c%u-%u", conn, count);
		struct rill_record rec = {.type_id = rill_schema_type_id(env.schema),
					  .schema_version = 1,
					  .key = key,
					  .key_bytes = (uint16_t)strlen(key),
					  .payload = payload,
					  .payload_bytes = payload_bytes};
		int n = rill_record_encode(c->frame + at,
					   RILL_WIRE_HEADER_BYTES + BL_FRAME_BYTES_MAX - (size_t)at,
					   &rec);
		if (n < 0)
			break; /* full */
		at += n;
		count++;
	}
	assert_true(count > 100); /* a frame of many records: a retry has much to re-check */
	rill_wire_produce_finish(c->frame, (uint32_t)at, count);
	c->frame_bytes = (uint32_t)at;
	c->events = count;
}

/* ---- A flooding connection ------------------------------------------------------------ */

static void bl_conn_fail(struct bl_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bl_conn_fail(struct bl_conn *c, const char *fmt, ...)
{
	if (c->error[0] != '\0')
		return; /* the first says most */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

/* An ACK for the next frame: every event taken, at increasing offsets of partition 0. */
static void bl_conn_ack(struct bl_conn *c, const struct rill_wire_header *h, const uint8_t *body)
{
	uint64_t id = c->first_id + c->acked;
	if (h->type != RILL_WIRE_ACK || h->request_id != id) {
		bl_conn_fail(c, "frame %u: expected the ACK of request %llu, got %s for %llu",
			     c->acked, (unsigned long long)id, rill_wire_type_name(h->type),
			     (unsigned long long)h->request_id);
		return;
	}
	uint32_t count = 0;
	struct rill_wire_iter it;
	if (rill_wire_ack_decode(body, h->body_bytes, &count, &it) != 0 || count != c->events) {
		bl_conn_fail(c, "frame %u: an ACK of %u entries for %u events", c->acked, count,
			     c->events);
		return;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct rill_wire_ack_entry e;
		if (rill_wire_ack_next(&it, &e) != 1 || e.error != 0 || e.partition != 0 ||
		    (c->any_offset && e.offset < c->next_offset)) {
			bl_conn_fail(c,
				     "frame %u event %u: error %d, partition %u, offset %llu "
				     "(the last was below %llu)",
				     c->acked, i, e.error, e.partition,
				     (unsigned long long)e.offset,
				     (unsigned long long)c->next_offset);
			return;
		}
		c->next_offset = e.offset + 1;
		c->any_offset = true;
	}
	c->acked++;
}

/* Read what came; answer each whole frame. false once the connection failed. */
static bool bl_conn_read(struct bl_conn *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		bl_conn_fail(c, "after %u ACKs: %s", c->acked,
			     n == 0 ? "the server closed the connection" : strerror(errno));
		return false;
	}
	if (n > 0)
		c->in_len += (uint32_t)n;
	uint32_t at = 0;
	struct rill_wire_header h;
	while (c->in_len - at >= RILL_WIRE_HEADER_BYTES && c->error[0] == '\0') {
		if (rill_wire_header_decode(c->in + at, c->in_len - at, BL_FRAME_BYTES_MAX, &h) !=
		    0) {
			bl_conn_fail(c, "a bad frame header from the server");
			break;
		}
		if (c->in_len - at - RILL_WIRE_HEADER_BYTES < h.body_bytes)
			break;
		bl_conn_ack(c, &h, c->in + at + RILL_WIRE_HEADER_BYTES);
		at += RILL_WIRE_HEADER_BYTES + h.body_bytes;
	}
	memmove(c->in, c->in + at, c->in_len - at);
	c->in_len -= at;
	return c->error[0] == '\0';
}

/* Send what the socket takes of the frames still to go. false once it failed. */
static bool bl_conn_write(struct bl_conn *c)
{
	if (c->sent_at == 0)
		rill_st64(c->frame + 8, c->first_id + c->sent); /* the header's request id */
	ssize_t n = send(c->fd, c->frame + c->sent_at, c->frame_bytes - c->sent_at,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0) {
		bl_conn_fail(c, "send, frame %u: %s", c->sent, n < 0 ? strerror(errno) : "0");
		return false;
	}
	c->sent_at += (uint32_t)n;
	if (c->sent_at == c->frame_bytes) {
		c->sent++;
		c->sent_at = 0;
	}
	return true;
}

/* Send BL_FRAMES frames as fast as the server takes them, reading the ACKs as they come,
 * until all are acknowledged. */
static void *bl_conn_run(void *arg)
{
	struct bl_conn *c = arg;
	uint64_t deadline = rill_clock_now_ns() + BL_RUN_NS;
	while (c->acked < BL_FRAMES) {
		if (rill_clock_now_ns() > deadline) {
			bl_conn_fail(c, "%u frames sent, %u acknowledged, after %llu s", c->sent,
				     c->acked, (unsigned long long)(BL_RUN_NS / 1000000000u));
			break;
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		if (c->sent < BL_FRAMES)
			p.events |= POLLOUT;
		if (poll(&p, 1, 100) < 0 && errno != EINTR) {
			bl_conn_fail(c, "poll: %s", strerror(errno));
			break;
		}
		if ((p.revents & POLLOUT) && !bl_conn_write(c))
			break;
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !bl_conn_read(c))
			break;
	}
	return NULL;
}

/* ---- Connections ---------------------------------------------------------------------- */

static uint64_t bl_accepted(uint32_t worker)
{
	/* The worker's own counter (srv_stat_add): relaxed, as rill_server_stats_get reads. */
	return rill_atomic_load_relaxed_u64(&env.server->workers[worker].stats.accepted);
}

static void bl_hello(int fd)
{
	uint8_t buf[64];
	struct rill_wire_hello h = {.version_min = 1, .version_max = 1};
	int n = rill_wire_hello_encode(buf, sizeof(buf), 1, &h);
	assert_true(n > 0);
	raw_send_all(fd, buf, (size_t)n);
	struct rill_wire_header hdr;
	static uint8_t body[RILL_WIRE_FRAME_BYTES_MIN];
	int rc = raw_frame_recv(fd, &hdr, body, sizeof(body), "HELLO_OK");
	if (rc != 1 || hdr.type != RILL_WIRE_HELLO_OK)
		fail_msg("HELLO: %s",
			 rc != 1 ? raw_recv_outcome(rc) : rill_wire_type_name(hdr.type));
}

/* BL_CONNS connections that worker @worker took, shaken hands; the others are closed. */
static void bl_connect(uint32_t worker, struct bl_conn *conns)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < BL_CONNECT_TRIES && n < BL_CONNS; i++) {
		uint64_t before = bl_accepted(worker);
		int fd = raw_connect(env.port, BL_RECV_TIMEOUT_MS);
		bl_hello(fd); /* answered: the worker that took it has counted it */
		if (bl_accepted(worker) != before)
			conns[n++].fd = fd;
		else
			close(fd);
	}
	if (n < BL_CONNS)
		fail_msg("%u of %u connections reached worker %u", n, BL_CONNECT_TRIES, worker);
}

/* ---- The flood ------------------------------------------------------------------------ */

struct bl_flood {
	struct bl_conn conns[BL_CONNS];
	struct rill_topic *topic;
	uint64_t events; /* sent, over all connections */
	struct rill_server_stats before, held, after;
	uint64_t checked; /* records the flooding worker checked meanwhile (S7) */
};

static uint64_t bl_checked(uint32_t worker)
{
	/* The worker's own counter (srv_stat_add): relaxed is enough once it is idle. */
	return rill_atomic_load_relaxed_u64(&env.server->workers[worker].records_checked);
}

/*
 * A fresh one-partition topic on the held shard; BL_CONNS connections of the other
 * worker flood it with frames at @acks while the shard is held for BL_HOLD_NS, then until
 * every frame is acknowledged. The connections stay open (bl_flood_end closes them).
 */
static void bl_flood_run(struct bl_flood *f, uint8_t acks)
{
	memset(f, 0, sizeof(*f));
	char name[32];
	snprintf(name, sizeof(name), "flood%u", env.topics++);
	struct rill_topic_config tc = {
		.name = name, .partitions = 1, .durability = RILL_DURABILITY_NONE};
	struct rill_error_text err = {{0}};
	if (rill_topic_create(env.engine, &tc, &f->topic, &err) != 0)
		fail_msg("topic %s: %s", name, err.message);
	uint32_t shard = ((const struct engine_topic *)f->topic)->parts[0].shard;
	/* A nap, not a spin, while nothing is held: the shard sleeps as it would. */
	struct rill_shard_hook hook = {.poll = bl_hold_poll, .arg = &env.hold, .nap_ns = 1000000};
	assert_int_equal(rill_engine_shard_hook_add(env.engine, shard, &hook), 0);
	env.hooked = true;
	env.hold_shard = shard;
	uint32_t worker = (shard + 1) % BL_SHARDS; /* the other: its events cross a ring */
	bl_connect(worker, f->conns);
	for (uint32_t i = 0; i < BL_CONNS; i++) {
		bl_frame_make(&f->conns[i], i, name, acks);
		f->conns[i].first_id = 1000;
		f->events += (uint64_t)BL_FRAMES * f->conns[i].events;
	}
	rill_server_stats_get(env.server, &f->before);
	uint64_t checked = bl_checked(worker);
	bl_hold_set(true);
	for (uint32_t i = 0; i < BL_CONNS; i++)
		assert_int_equal(
			pthread_create(&f->conns[i].thread, NULL, bl_conn_run, &f->conns[i]), 0);
	usleep(BL_HOLD_NS / 1000);
	rill_server_stats_get(env.server, &f->held);
	bl_hold_set(false);
	for (uint32_t i = 0; i < BL_CONNS; i++)
		pthread_join(f->conns[i].thread, NULL);
	assert_int_equal(rill_engine_shard_hook_remove(env.engine, shard, &env.hold), 0);
	env.hooked = false;
	rill_server_stats_get(env.server, &f->after);
	f->checked = bl_checked(worker) - checked; /* every ACK came: nothing is checked now */
	for (uint32_t i = 0; i < BL_CONNS; i++) {
		if (f->conns[i].error[0] != '\0')
			fail_msg("connection %u: %s", i, f->conns[i].error);
		assert_int_equal(f->conns[i].acked, BL_FRAMES);
	}
	if (f->held.backpressure == f->before.backpressure) /* or this tested nothing */
		fail_msg("%llu events to a held shard never waited for ring room",
			 (unsigned long long)f->events);
}

/* Every event once: the partition holds exactly those sent. Closes the connections. */
static void bl_flood_end(struct bl_flood *f)
{
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(env.engine, f->topic, 0, UINT64_MAX, &info, NULL),
			 0);
	if (info.next_offset != f->events)
		fail_msg("the partition holds %llu events, %llu were sent and acknowledged",
			 (unsigned long long)info.next_offset, (unsigned long long)f->events);
	for (uint32_t i = 0; i < BL_CONNS; i++) {
		close(f->conns[i].fd);
		free(f->conns[i].frame);
	}
}

/* ---- Tests ---------------------------------------------------------------------------- */

/*
 * S6: while their frames stall, the connections' input buffers hold at most a frame and a
 * receive buffer each, however much the peers send; idle after, they hold nothing.
 */
static void test_stall_input_bounded(void **state)
{
	(void)state;
	static struct bl_flood f;
	bl_flood_run(&f, 1);
	uint64_t bound = (uint64_t)BL_CONNS * srv_rx_bytes_max(env.server);
	if (f.after.input_bytes_peak > bound)
		fail_msg("%u connections flooding a held shard: their input buffers held %llu "
			 "bytes at once (%llu while it was held), past the bound of %llu "
			 "(a %u-byte frame and a %u-byte receive buffer each)",
			 BL_CONNS, (unsigned long long)f.after.input_bytes_peak,
			 (unsigned long long)f.held.input_bytes, (unsigned long long)bound,
			 BL_FRAME_BYTES_MAX + RILL_WIRE_HEADER_BYTES, SRV_BUF_BYTES);
	/* Idle, still open: the buffers go at the next timer pass (SRV_TIMER_NS). */
	uint64_t deadline = rill_clock_now_ns() + BL_WAIT_NS;
	struct rill_server_stats now;
	do {
		usleep(10000);
		rill_server_stats_get(env.server, &now);
	} while (now.input_bytes != 0 && rill_clock_now_ns() < deadline);
	if (now.input_bytes != 0)
		fail_msg("%u idle connections still hold %llu bytes of input buffers", BL_CONNS,
			 (unsigned long long)now.input_bytes);
	bl_flood_end(&f);
}

/*
 * S7: frames stalled on the full ring, retried on every turn of their worker while the
 * shard is held, have their records checked once, when they came: the worker's count of
 * records checked is the count of events sent, and each event is published once and in
 * order (bl_flood_run, bl_flood_end). Each retry checked the whole frame again, every
 * record's CRC: hundreds of times over, and a worker with stalled connections spent
 * most of its time there.
 */
static void test_stall_resume_checks_once(void **state)
{
	(void)state;
	static struct bl_flood f;
	bl_flood_run(&f, 1);
	uint64_t retries = f.after.backpressure - f.before.backpressure;
	if (f.checked != f.events)
		fail_msg("%llu events sent in %u frames, through %llu retries of stalled frames: "
			 "%llu records checked (each must be, once)",
			 (unsigned long long)f.events, BL_CONNS * BL_FRAMES,
			 (unsigned long long)retries, (unsigned long long)f.checked);
	bl_flood_end(&f);
}

/* ---- Setup and teardown --------------------------------------------------------------- */

static int bl_teardown(void **state)
{
	(void)state;
	if (env.hooked) {
		bl_hold_set(false);
		(void)rill_engine_shard_hook_remove(env.engine, env.hold_shard, &env.hold);
	}
	if (env.server != NULL)
		rill_server_stop(env.server, BL_WAIT_NS);
	if (env.engine != NULL)
		rill_engine_close(env.engine);
	return test_dir_remove(env.dir) == 0 ? 0 : -1;
}

static int bl_setup(void **state)
{
	assert_int_equal(test_dir_make(env.dir, sizeof(env.dir), "server-backlog"), 0);
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = env.dir;
	cfg.shards = BL_SHARDS;
	cfg.pin = false;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&env.engine, &cfg, &err);
	if (rc != 0)
		fail_msg("engine open: %s: %s", rill_strerror(rc), err.message);
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(env.engine), bl_schema_json,
				  strlen(bl_schema_json), -1, &env.schema, &serr);
	if (rc != 0)
		fail_msg("schema: %s: %s", rill_strerror(rc), serr.message);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.frame_bytes_max = BL_FRAME_BYTES_MAX;
	sc.connections_max = BL_CONNECT_TRIES + 8;
	test_server_start(&env.server, env.engine, &sc, bl_teardown, state);
	env.port = rill_server_port(env.server);
	assert_true(env.port != 0);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stall_input_bounded),
		cmocka_unit_test(test_stall_resume_checks_once),
	};
	return cmocka_run_group_tests(tests, bl_setup, bl_teardown);
}
