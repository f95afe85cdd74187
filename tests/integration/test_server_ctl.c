/*
 * The server's control thread (io/server_ctl.c): the work a worker hands over because it
 * waits for a shard (QUERY, ADMIN, opening and closing subscriptions), driven from outside
 * through the public client (rill/client.h) and, where the client cannot pipeline, raw
 * frames (io/wire.h). Each test opens its own engine with ONE shard (so exactly one worker
 * serves every connection: no test passes by luck of SO_REUSEPORT placement) in a fresh
 * temporary directory, and its own server on 127.0.0.1:0. The setup makes, through the
 * engine's API, a schema (Paid: amount i64), topic "one" (1 partition) with a sum
 * projection "one_total", and topic "two" (2 partitions).
 *
 *   1. A query waiting for a read-your-writes token leaves the worker free: client A's
 *      QUERY waits (up to 10 s) for offset 0 of an empty partition; once the server has
 *      taken it, client B connects, pings and produces that very event on the same worker,
 *      and A's query answers with it. A worker blocked in the query could not read B's
 *      PRODUCE before the wait ran out, and A would get RILL_E_QUERY_STALE. Nor do waiting
 *      queries hold the control thread: while A waits for offset 0 and C for offset 1, B's
 *      ADMIN and QUERY are answered; B's first event answers A only, its second C. And
 *      many: while 8 clients' QUERYs wait for a token (up to 5 s), a 9th client's ADMIN
 *      STAT is answered before any of them returns (an order, not a time); one event
 *      then answers all 8.
 *   2. Admin ops and queries in a row on one connection through the control thread
 *      (TOPIC_CREATE, PROJECTION_CREATE, TOPIC_INFO, STAT, queries with no value, errors,
 *      PING, PRODUCE between them), each answered correctly and the connection usable
 *      after each; then, pipelined over a raw socket, a QUERY whose token never comes
 *      followed by PING, ADMIN and QUERY in one write: the answers come in request order
 *      (invariant S5 of io/server_int.h: no frame is read while the connection's job is
 *      out).
 *   3. Subscriptions opened and closed through the control thread: a subscriber on both
 *      partitions reads every event once, in order; then 200 more subscribe, read, close
 *      rounds (400 engine subscriptions against subscriptions_per_shard = 64 per
 *      shard: a close that leaked them would make a later SUBSCRIBE fail), first waiting
 *      after each close until the server freed the connection, then without waiting. The
 *      client API has no UNSUBSCRIBE, so that path is not covered here. Then subscribers
 *      (raw frames) that close while their SUBSCRIBE is out: none of what the control
 *      thread opened for them may stay open.
 *   4. rill_server_stop while a QUERY job is out: with the query's wait shorter than the
 *      drain, and longer. The stop returns (0 or -ETIMEDOUT), the querying client gets an
 *      answer (stale) or a connection error, and rill_engine_close returns 0.
 *   5. rill_server_stop with subscribers connected, draining (their subscriptions close
 *      through the control thread) and with no drain time (they close on the stopping
 *      thread): either way rill_engine_close returns 0, not -EBUSY.
 *   6. rill_server_stop (no drain time) with durable acknowledgements owed: topic "slow"
 *      (made by the test) submits each group commit 1.5 s after its first event, so the
 *      PRODUCE requests sent just before the stop are acknowledged durably only while the
 *      stop frees the worker (rill_producer_close delivers them into the requests'
 *      results: a regression test for a use-after-free, which the address sanitizer
 *      build sees). The stop returns, the client gets answers or a connection error, the
 *      engine closes, and reopened it holds every event sent, each one the client was
 *      told is durable at its offset.
 *   7. GROUP_COMMIT of many partitions in one request ("offsets"), counted by STAT's
 *      group_commits; every malformed form refused with a message naming it and no
 *      position moved; the one-partition form unchanged.
 *   8. TOPIC_CREATE under the open-file budget (rill_server_fds_budget): without one, a
 *      create is not checked; with one, under a soft RLIMIT_NOFILE set so that four
 *      partitions' files fit beside connections_max, the readers and the reserve, five
 *      are refused with -EMFILE naming the limit, the numbers and what to do (four fit),
 *      and nothing is made; four are made; one more is refused; the same topic made
 *      again is answered; a budget taken again under a higher limit lets it go on.
 *
 * Nothing asserts on timing: every wait is bounded (10 s, 30 s for a stop) and fails with
 * a message saying what did not happen.
 */
#include "tests/common/test_util.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "base/atomic.h"
#include "base/clock.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "rill/server.h"
#include "tests/common/client_admin.h"
#include "tests/common/raw_socket.h"
#include "tests/common/server_start.h"
#include "tests/common/test_dir.h"

#define CTL_TYPE            "Paid"
#define CTL_ONE             "one" /* 1 partition */
#define CTL_ONE_SUM         "one_total"
#define CTL_TWO             "two" /* 2 partitions */
#define CTL_TWO_PARTITIONS  2u
#define CTL_PAYLOAD_BYTES   64u
#define CTL_KEY_BYTES       24u
#define CTL_CLIENTS_MAX     8u
#define CTL_QUERIES_MAX     8u /* query threads at once */
#define CTL_NS_PER_MS       1000000ull
#define CTL_NS_PER_S        1000000000ull
#define CTL_WAIT_NS         (10ull * CTL_NS_PER_S) /* "at once", on a loaded machine */
#define CTL_STOP_WAIT_NS    (30ull * CTL_NS_PER_S) /* a stop that takes longer is stuck */
#define CTL_CLIENT_TIMEOUT  (30ull * CTL_NS_PER_S) /* above every wait the server makes */
#define CTL_QUERY_WAIT_NS   (30ull * CTL_NS_PER_S) /* the server's query_wait_ns */
#define CTL_TOKEN_WAIT_MS   10000u                 /* test 1: A's wait for its token */
#define CTL_DRAIN_NS        (5ull * CTL_NS_PER_S)
#define CTL_ROUNDS          32u  /* test 2: rounds of produce, query, admin, ping */
#define CTL_STALE_MS        200u /* test 2: a token that never comes, waited for this long */
#define CTL_SUB_EVENTS      16u  /* test 3: events the subscribers read */
#define CTL_SUB_ROUNDS      200u /* test 3: subscribe, read, close */
#define CTL_SUB_ROUNDS_WAIT 100u /* ... the first ones wait for the server's close */
#define CTL_GONE_ROUNDS     128u /* test 3: subscribers gone while subscribing */
#define CTL_STOP_SHORT_MS   500u /* test 4: a wait shorter than the drain */
#define CTL_STOP_LONG_MS    2000u
#define CTL_STOP_SHORT_NS   (100ull * CTL_NS_PER_MS) /* ... a drain shorter than the wait */
#define CTL_RAW_BODY_BYTES  (64u << 10)
#define CTL_WAITERS         8u     /* test 1: queries waiting at once for a token */
#define CTL_WAITER_WAIT_MS  5000u  /* ... each this long */
#define CTL_SUBS_PER_SHARD  64u    /* the engine's subscriptions_per_shard (its default) */
#define CTL_SLOW            "slow" /* test 6: 1 partition, durability group */
#define CTL_SLOW_DELAY_NS   (1500ull * CTL_NS_PER_MS) /* ... its batch delay: acks come late */
#define CTL_SLOW_REQUESTS   8u /* test 6: PRODUCE requests out at the stop (client: 64 max) */
#define CTL_SLOW_EVENTS     4u /* ... of this many events each */
#define CTL_SLOW_TOTAL      (1u + CTL_SLOW_REQUESTS * CTL_SLOW_EVENTS) /* one acked before */

_Static_assert((CTL_SUB_ROUNDS * CTL_TWO_PARTITIONS) > 2 * CTL_SUBS_PER_SHARD,
	       "test 3 opens far more subscriptions than a shard may hold at once");
_Static_assert(CTL_SUB_ROUNDS_WAIT < CTL_SUB_ROUNDS, "test 3 has rounds of both kinds");
_Static_assert((CTL_GONE_ROUNDS * CTL_TWO_PARTITIONS) > 2 * CTL_SUBS_PER_SHARD,
	       "test 3: subscribers gone would fill the shard twice over if they leaked");
_Static_assert((CTL_TOKEN_WAIT_MS * CTL_NS_PER_MS) <= CTL_QUERY_WAIT_NS &&
		       (CTL_TOKEN_WAIT_MS * CTL_NS_PER_MS) < CTL_CLIENT_TIMEOUT,
	       "test 1: the server waits the query's whole wait, the client longer");
_Static_assert((CTL_STOP_SHORT_MS * CTL_NS_PER_MS) < CTL_DRAIN_NS &&
		       CTL_STOP_SHORT_NS < (CTL_STOP_LONG_MS * CTL_NS_PER_MS),
	       "test 4: one wait inside the drain, one past it");
_Static_assert(CTL_WAITERS <= CTL_QUERIES_MAX &&
		       (CTL_WAITER_WAIT_MS * CTL_NS_PER_MS) <= CTL_QUERY_WAIT_NS,
	       "test 1: a thread per waiting query, each waiting its whole wait");
_Static_assert(CTL_SLOW_DELAY_NS < CTL_CLIENT_TIMEOUT,
	       "test 6: the first durable produce waits out one batch delay");

static const char ctl_schema_def[] = "{\"type\":\"" CTL_TYPE "\",\"version\":1,\"fields\":["
				     "{\"name\":\"amount\",\"type\":\"i64\"}]}";

/* Queries returned, counted under a lock: what returned before a point in the test. */
struct ctl_returned {
	pthread_mutex_t lock;
	uint32_t count;
};

/* A QUERY on a connection of its own, in a thread of its own (no cmocka in it). */
struct ctl_query {
	const char *projection;
	const char *key;
	struct rill_client_query_options options;
	struct ctl_returned *returned; /* optional: counted as soon as the query returns */
	int connect_rc;
	int rc;
	struct rill_projection_value value;
	char message[RILL_CLIENT_ERROR_BYTES];
	uint64_t finished; /* atomic: 1 once the fields above are final */
};

/* rill_server_stop in a thread of its own, so that a stop that never returns is seen. */
struct ctl_stop {
	struct rill_server *server;
	uint64_t drain_ns;
	int rc;
	uint64_t finished; /* atomic: 1 once rc is set */
};

static struct {
	char dir[64];
	char address[80];
	struct rill_engine *engine;
	struct rill_server *server;
	struct rill_topic *one, *two;
	const struct rill_schema *schema;
	uint32_t type_id;
	struct rill_field_ref amount;
	struct rill_client *clients[CTL_CLIENTS_MAX]; /* the teardown closes what is left */
	int raw_fd;
	pthread_t query_threads[CTL_QUERIES_MAX]; /* joined by the teardown if a test failed */
	bool query_live[CTL_QUERIES_MAX];
	uint64_t next_id; /* raw frames' request ids */
} env;

static uint8_t raw_body[CTL_RAW_BODY_BYTES];

/* ---- Small pieces --------------------------------------------------------------------- */

static struct rill_client *ctl_connect(const char *what)
{
	struct rill_client_config cfg;
	rill_client_config_default(&cfg);
	cfg.timeout_ns = CTL_CLIENT_TIMEOUT;
	struct rill_client *c = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_connect(&c, env.address, &cfg, &err);
	if (rc != 0)
		fail_msg("%s: connect to %s: %d (%s): %s", what, env.address, rc, rill_strerror(rc),
			 err.message);
	uint32_t i = 0;
	while (i < CTL_CLIENTS_MAX && env.clients[i] != NULL)
		i++;
	assert_true(i < CTL_CLIENTS_MAX);
	env.clients[i] = c;
	return c;
}

static void ctl_close(struct rill_client *c)
{
	for (uint32_t i = 0; i < CTL_CLIENTS_MAX; i++)
		if (env.clients[i] == c)
			env.clients[i] = NULL;
	rill_client_close(c);
}

static struct rill_server_stats ctl_stats(void)
{
	struct rill_server_stats st;
	rill_server_stats_get(env.server, &st);
	return st;
}

/* Whether @q's thread is done: its query answered or failed. */
static bool ctl_query_ended(const struct ctl_query *q)
{
	/* A: pairs with R in ctl_query_main: its results are final. */
	return rill_atomic_load_acquire_u64(&q->finished) != 0;
}

/*
 * Wait until the server has handled @frames frames since it started (a frame counts once
 * the worker has handled it: a QUERY once it is handed to the control thread). @q: the
 * query thread whose QUERY is awaited; its end before then is reported.
 */
static void ctl_wait_frames(uint64_t frames, const struct ctl_query *q, const char *what)
{
	uint64_t deadline = rill_clock_now_ns() + CTL_WAIT_NS;
	struct rill_server_stats st;
	while ((st = ctl_stats()).frames < frames) {
		if (q != NULL && ctl_query_ended(q))
			fail_msg("%s: the query ended before the server counted its QUERY: connect "
				 "%d, query %d (%s): %s",
				 what, q->connect_rc, q->rc, rill_strerror(q->rc), q->message);
		if (rill_clock_now_ns() > deadline)
			fail_msg("%s: the server handled %llu frames after %llu s, expected %llu",
				 what, (unsigned long long)st.frames,
				 (unsigned long long)(CTL_WAIT_NS / CTL_NS_PER_S),
				 (unsigned long long)frames);
		usleep(1000);
	}
}

/* Wait until the server holds @count connections: those closed are freed (their jobs,
 * subscriptions' closes included, are back: S4). */
static void ctl_wait_connections(uint64_t count, const char *what)
{
	uint64_t deadline = rill_clock_now_ns() + CTL_WAIT_NS;
	struct rill_server_stats st;
	while ((st = ctl_stats()).connections != count) {
		if (rill_clock_now_ns() > deadline)
			fail_msg(
				"%s: the server holds %llu connections after %llu s, expected %llu",
				what, (unsigned long long)st.connections,
				(unsigned long long)(CTL_WAIT_NS / CTL_NS_PER_S),
				(unsigned long long)count);
		usleep(1000);
	}
}

/* One event of @key with @amount; its payload lives in @payload. */
static struct rill_record ctl_record(const char *key, int64_t amount, uint8_t *payload)
{
	struct rill_payload_builder pb;
	uint32_t bytes = 0;
	int f = rill_schema_field_index(env.schema, "amount");
	assert_true(f >= 0);
	assert_int_equal(rill_payload_builder_init(&pb, env.schema, payload, CTL_PAYLOAD_BYTES), 0);
	assert_int_equal(rill_payload_set_i64(&pb, (uint32_t)f, amount), 0);
	assert_int_equal(rill_payload_builder_finish(&pb, &bytes, NULL), 0);
	return (struct rill_record){.type_id = env.type_id,
				    .schema_version = 1,
				    .key = key,
				    .key_bytes = (uint16_t)strlen(key),
				    .payload = payload,
				    .payload_bytes = bytes};
}

/* Produce one event (blocking); it must be written: its ack into @ack. */
static void ctl_produce(struct rill_client *c, const char *topic, const char *key, int64_t amount,
			int acks, struct rill_client_ack *ack, const char *what)
{
	uint8_t payload[CTL_PAYLOAD_BYTES];
	struct rill_record rec = ctl_record(key, amount, payload);
	struct rill_client_error err = {{0}};
	int rc = rill_client_produce(c, topic, &rec, 1, acks, ack, &err);
	if (rc != 0)
		fail_msg("%s: produce %s to %s: %d (%s): %s", what, key, topic, rc,
			 rill_strerror(rc), err.message);
	if (ack->error != 0 || ack->duplicate || ack->offset == UINT64_MAX)
		fail_msg("%s: %s to %s: error %d (%s: %s), duplicate %d, at %u:%llu", what, key,
			 topic, ack->error, rill_strerror(ack->error), ack->reason, ack->duplicate,
			 ack->partition, (unsigned long long)ack->offset);
}

static void ctl_expect_topic(json_t *j, const char *name, int64_t partitions, const char *what)
{
	const char *got = json_string_value(json_object_get(j, "name"));
	if (got == NULL || strcmp(got, name) != 0 ||
	    json_integer_value(json_object_get(j, "partitions")) != partitions) {
		char *text = json_dumps(j, JSON_COMPACT);
		fail_msg("%s: answered %s; expected topic %s of %lld partitions", what,
			 text != NULL ? text : "?", name, (long long)partitions);
	}
	json_decref(j);
}

static void ctl_expect_stat(json_t *j, const char *what)
{
	json_t *shards = json_object_get(j, "shards");
	json_t *server = json_object_get(j, "server");
	if (!json_is_array(shards) || json_array_size(shards) != 1 || !json_is_object(server) ||
	    json_integer_value(json_object_get(server, "connections")) < 1 ||
	    json_integer_value(json_object_get(server, "frames")) < 1) {
		char *text = json_dumps(j, JSON_COMPACT);
		fail_msg("%s: answered %s; expected one shard and a server with a connection", what,
			 text != NULL ? text : "?");
	}
	json_decref(j);
}

static void ctl_ping(struct rill_client *c, const char *what)
{
	struct rill_client_error err = {{0}};
	int rc = rill_client_ping(c, &err);
	if (rc != 0)
		fail_msg("%s: ping: %d (%s): %s", what, rc, rill_strerror(rc), err.message);
}

/* A query that must fail with @code, leaving the connection usable. */
static void ctl_expect_query_error(struct rill_client *c, const char *name, const char *key,
				   const struct rill_client_query_options *q, int code,
				   const char *what)
{
	struct rill_projection_value v;
	struct rill_client_error err = {{0}};
	int rc = rill_client_query(c, name, key, strlen(key), q, &v, &err);
	if (rc != code || err.message[0] == '\0')
		fail_msg("%s: query %s for %s: %d (%s): \"%s\"; expected %d (%s) with a message",
			 what, name, key, rc, rill_strerror(rc), err.message, code,
			 rill_strerror(code));
}

static void ctl_expect_value(struct rill_client *c, const char *name, const char *key,
			     const struct rill_client_query_options *q, uint64_t count, int64_t sum,
			     uint64_t offset, const char *what)
{
	struct rill_projection_value v;
	struct rill_client_error err = {{0}};
	memset(&v, 0, sizeof(v));
	int rc = rill_client_query(c, name, key, strlen(key), q, &v, &err);
	if (rc != 0)
		fail_msg("%s: query %s for %s: %d (%s): %s", what, name, key, rc, rill_strerror(rc),
			 err.message);
	if (v.count != count || v.i64 != sum || v.offset != offset)
		fail_msg("%s: %s for %s: count %llu, sum %lld, offset %llu; expected %llu, %lld, "
			 "%llu",
			 what, name, key, (unsigned long long)v.count, (long long)v.i64,
			 (unsigned long long)v.offset, (unsigned long long)count, (long long)sum,
			 (unsigned long long)offset);
}

/* ---- Threads -------------------------------------------------------------------------- */

static void *ctl_query_main(void *arg)
{
	struct ctl_query *q = arg;
	struct rill_client_config cfg;
	rill_client_config_default(&cfg);
	cfg.timeout_ns = CTL_CLIENT_TIMEOUT;
	struct rill_client *c = NULL;
	struct rill_client_error err = {{0}};
	q->rc = INT32_MIN;
	q->connect_rc = rill_client_connect(&c, env.address, &cfg, &err);
	if (q->connect_rc == 0)
		q->rc = rill_client_query(c, q->projection, q->key, strlen(q->key), &q->options,
					  &q->value, &err);
	if (q->returned != NULL) {
		pthread_mutex_lock(&q->returned->lock);
		q->returned->count++;
		pthread_mutex_unlock(&q->returned->lock);
	}
	snprintf(q->message, sizeof(q->message), "%s", err.message);
	rill_client_close(c);
	/* R: pairs with A in ctl_query_ended (the join orders it for everyone else). */
	rill_atomic_store_release_u64(&q->finished, 1);
	return NULL;
}

/* Run @q in query thread @slot. */
static void ctl_query_start(struct ctl_query *q, uint32_t slot)
{
	assert_true(slot < CTL_QUERIES_MAX && !env.query_live[slot]);
	assert_int_equal(pthread_create(&env.query_threads[slot], NULL, ctl_query_main, q), 0);
	env.query_live[slot] = true;
}

static void ctl_query_join(uint32_t slot)
{
	if (!env.query_live[slot])
		return;
	env.query_live[slot] = false;
	assert_int_equal(pthread_join(env.query_threads[slot], NULL), 0);
}

static void *ctl_stop_main(void *arg)
{
	struct ctl_stop *s = arg;
	s->rc = rill_server_stop(s->server, s->drain_ns);
	rill_atomic_store_release_u64(&s->finished, 1); /* R: pairs with A in ctl_stop */
	return NULL;
}

/*
 * Stop the server (draining up to @drain_ns) in a thread, waiting at most CTL_STOP_WAIT_NS
 * for it: a stop that never returns is a deadlock, and the process cannot go on (the
 * server's threads are stuck), so it aborts saying so. Returns the stop's result.
 */
static int ctl_stop(uint64_t drain_ns, const char *what)
{
	struct ctl_stop s = {.server = env.server, .drain_ns = drain_ns};
	pthread_t t;
	env.server = NULL; /* the stop owns it now */
	assert_int_equal(pthread_create(&t, NULL, ctl_stop_main, &s), 0);
	uint64_t deadline = rill_clock_now_ns() + CTL_STOP_WAIT_NS;
	/* A: pairs with R in ctl_stop_main. */
	while (rill_atomic_load_acquire_u64(&s.finished) == 0) {
		if (rill_clock_now_ns() > deadline) {
			fprintf(stderr,
				"%s: rill_server_stop (drain %llu ms) has not returned "
				"after %llu s: deadlocked\n",
				what, (unsigned long long)(drain_ns / CTL_NS_PER_MS),
				(unsigned long long)(CTL_STOP_WAIT_NS / CTL_NS_PER_S));
			abort();
		}
		usleep(1000);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	if (s.rc != 0 && s.rc != -ETIMEDOUT)
		fail_msg("%s: rill_server_stop: %d (%s); expected 0 or -ETIMEDOUT", what, s.rc,
			 rill_strerror(s.rc));
	return s.rc;
}

static void ctl_engine_close(const char *what)
{
	int rc = rill_engine_close(env.engine);
	env.engine = NULL;
	if (rc != 0)
		fail_msg("%s: rill_engine_close: %d (%s)%s", what, rc, rill_strerror(rc),
			 rc == -EBUSY ? ": a subscription or producer handle is still open" : "");
}

/* ---- Raw frames ----------------------------------------------------------------------- */

static int ctl_raw_connect(void)
{
	int fd = raw_connect(rill_server_port(env.server), (uint32_t)(CTL_WAIT_NS / CTL_NS_PER_MS));
	assert_int_equal(env.raw_fd, -1); /* one at a time */
	env.raw_fd = fd;
	return fd;
}

static void ctl_raw_close(void)
{
	close(env.raw_fd);
	env.raw_fd = -1;
}

/* The next frame must be of @type and answer @request_id; its body is in raw_body. */
static struct rill_wire_header ctl_raw_expect(int fd, uint16_t type, uint64_t request_id,
					      const char *what)
{
	struct rill_wire_header h;
	int rc = raw_frame_recv(fd, &h, raw_body, sizeof(raw_body), what);
	if (rc != 1)
		fail_msg("%s: %s", what, raw_recv_outcome(rc));
	if (h.type != type || h.request_id != request_id) {
		struct rill_wire_error e = {0};
		bool error = h.type == RILL_WIRE_ERROR &&
			     rill_wire_error_decode(raw_body, h.body_bytes, &e) == 0;
		fail_msg("%s: expected %s for request %llu, got %s for request %llu%s%.*s", what,
			 rill_wire_type_name(type), (unsigned long long)request_id,
			 rill_wire_type_name(h.type), (unsigned long long)h.request_id,
			 error ? ": " : "", error ? (int)e.message_bytes : 0,
			 error ? e.message : "");
	}
	return h;
}

/* ---- Setup and teardown --------------------------------------------------------------- */

static int ctl_teardown(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < CTL_QUERIES_MAX; i++)
		ctl_query_join(i); /* every wait they make is bounded */
	for (uint32_t i = 0; i < CTL_CLIENTS_MAX; i++) {
		rill_client_close(env.clients[i]);
		env.clients[i] = NULL;
	}
	if (env.raw_fd >= 0)
		close(env.raw_fd);
	env.raw_fd = -1;
	int rc = 0;
	if (env.server != NULL)
		rill_server_stop(env.server, CTL_DRAIN_NS);
	env.server = NULL;
	if (env.engine != NULL && (rc = rill_engine_close(env.engine)) != 0)
		fprintf(stderr, "teardown: rill_engine_close: %d (%s)\n", rc, rill_strerror(rc));
	env.engine = NULL;
	return test_dir_remove(env.dir) == 0 && rc == 0 ? 0 : -1;
}

static void ctl_make_topics(void)
{
	struct rill_error_text err = {{0}};
	struct rill_schema_error serr = {{0}};
	int rc = rill_schema_register(rill_engine_schemas(env.engine), ctl_schema_def,
				      sizeof(ctl_schema_def) - 1, -1, &env.schema, &serr);
	if (rc != 0)
		fail_msg("schema: %s: %s", rill_strerror(rc), serr.message);
	env.type_id = rill_schema_type_id(env.schema);
	assert_int_equal(rill_schema_field_ref(env.schema, "amount", &env.amount), 0);
	struct rill_topic_config one = {
		.name = CTL_ONE, .partitions = 1, .durability = RILL_DURABILITY_GROUP};
	struct rill_topic_config two = {.name = CTL_TWO,
					.partitions = CTL_TWO_PARTITIONS,
					.durability = RILL_DURABILITY_GROUP};
	if ((rc = rill_topic_create(env.engine, &one, &env.one, &err)) != 0 ||
	    (rc = rill_topic_create(env.engine, &two, &env.two, &err)) != 0)
		fail_msg("topics: %s: %s", rill_strerror(rc), err.message);
	struct rill_projection_def sum = {.name = CTL_ONE_SUM,
					  .topic = CTL_ONE,
					  .type = CTL_TYPE,
					  .kind = RILL_PROJECTION_SUM,
					  .field = "amount"};
	if ((rc = rill_projection_define(env.engine, &sum, &err)) != 0)
		fail_msg("projection: %s: %s", rill_strerror(rc), err.message);
}

/* Open the engine on env.dir: at setup, and again to read what a test left (test 6). */
static void ctl_engine_open(const char *what)
{
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = env.dir;
	cfg.shards = 1; /* one worker: every connection meets every other on it */
	cfg.pin = false;
	cfg.subscriptions_per_shard = CTL_SUBS_PER_SHARD;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&env.engine, &cfg, &err);
	if (rc != 0)
		fail_msg("%s: engine open: %s: %s", what, rill_strerror(rc), err.message);
}

static int ctl_setup(void **state)
{
	memset(&env, 0, sizeof(env));
	env.raw_fd = -1;
	env.next_id = 1;
	assert_int_equal(test_dir_make(env.dir, sizeof(env.dir), "server-ctl"), 0);
	ctl_engine_open("setup");
	ctl_make_topics();
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.query_wait_ns = CTL_QUERY_WAIT_NS;
	/* Test 1: a worker blocked by a query shows as the query going stale, not as B's
	 * handshake timing out first. */
	sc.handshake_timeout_ns = CTL_CLIENT_TIMEOUT;
	test_server_start(&env.server, env.engine, &sc, ctl_teardown, state);
	snprintf(env.address, sizeof(env.address), "127.0.0.1:%u", rill_server_port(env.server));
	return 0;
}

/* ---- 1. A query waiting for its token leaves the worker free ------------------------- */

static void test_query_wait_frees_worker(void **state)
{
	(void)state;
	static struct ctl_query q;
	q = (struct ctl_query){.projection = CTL_ONE_SUM,
			       .key = "k-ryw",
			       .options = {.has_token = true,
					   .token_partition = 0,
					   .token_offset = 0,
					   .timeout_ms = CTL_TOKEN_WAIT_MS}};
	uint64_t frames = ctl_stats().frames;
	ctl_query_start(&q, 0);
	/* A's HELLO and QUERY taken: the QUERY is the control thread's, waiting for offset 0
	 * of "one", which is empty. */
	ctl_wait_frames(frames + 2, &q, "client A's HELLO and QUERY");

	/* The same (only) worker reads B meanwhile: its handshake, a ping, a produce. */
	struct rill_client *b =
		ctl_connect("client B, while A's query waits (the worker must read it meanwhile)");
	ctl_ping(b, "client B, while A's query waits");
	struct rill_client_ack ack;
	ctl_produce(b, CTL_ONE, "k-ryw", 42, RILL_ACKS_APPLIED, &ack,
		    "client B, while A's query waits");
	if (ack.partition != 0 || ack.offset != 0)
		fail_msg("client B's event acknowledged at %u:%llu; expected 0:0 (the first of an "
			 "empty partition)",
			 ack.partition, (unsigned long long)ack.offset);

	ctl_query_join(0);
	if (q.connect_rc != 0)
		fail_msg("client A: connect: %d (%s): %s", q.connect_rc,
			 rill_strerror(q.connect_rc), q.message);
	if (q.rc == RILL_E_QUERY_STALE)
		fail_msg("client A's query waited out its token (%s: %s): the worker did not read "
			 "client B's PRODUCE while A's QUERY was out",
			 rill_strerror(q.rc), q.message);
	if (q.rc != 0)
		fail_msg("client A's query: %d (%s): %s", q.rc, rill_strerror(q.rc), q.message);
	if (q.value.count != 1 || q.value.i64 != 42 || q.value.offset != 0)
		fail_msg("client A's query: count %llu, sum %lld, offset %llu; expected 1, 42, 0",
			 (unsigned long long)q.value.count, (long long)q.value.i64,
			 (unsigned long long)q.value.offset);
	ctl_ping(b, "client B, after A's query");
}

/* @q must not have ended: its token is not written yet, so an end is a failure. */
static void ctl_expect_waiting(const struct ctl_query *q, const char *name, const char *when)
{
	if (ctl_query_ended(q))
		fail_msg("client %s's query ended %s, before the event its token names was "
			 "produced: connect %d, query %d (%s): %s%s",
			 name, when, q->connect_rc, q->rc, rill_strerror(q->rc), q->message,
			 q->rc == RILL_E_QUERY_STALE
				 ? " (it waited out its token: the other connection's control "
				   "jobs were answered only after it, or not at all)"
				 : "");
}

static void ctl_expect_answered(const struct ctl_query *q, const char *name, uint64_t count,
				int64_t sum, uint64_t offset)
{
	if (q->connect_rc != 0 || q->rc != 0)
		fail_msg("client %s: connect %d, query %d (%s): %s", name, q->connect_rc, q->rc,
			 rill_strerror(q->rc), q->message);
	if (q->value.count != count || q->value.i64 != sum || q->value.offset != offset)
		fail_msg("client %s's query: count %llu, sum %lld, offset %llu; expected %llu, "
			 "%lld, %llu",
			 name, (unsigned long long)q->value.count, (long long)q->value.i64,
			 (unsigned long long)q->value.offset, (unsigned long long)count,
			 (long long)sum, (unsigned long long)offset);
}

/*
 * Queries waiting for their tokens hold neither the worker nor the control thread: while
 * A waits for offset 0 and C for offset 1 of empty "one", B's ADMIN and QUERY (jobs of the
 * same control thread) are answered; then B's first event answers A (and not C), its
 * second answers C. A control thread held by a waiting query would answer B only after
 * A's and C's waits ran out, and they would go stale.
 */
static void test_query_wait_frees_control_thread(void **state)
{
	(void)state;
	static struct ctl_query a, c;
	a = (struct ctl_query){
		.projection = CTL_ONE_SUM,
		.key = "k-ryw",
		.options = {.has_token = true, .token_offset = 0, .timeout_ms = CTL_TOKEN_WAIT_MS}};
	c = a;
	c.options.token_offset = 1;
	uint64_t frames = ctl_stats().frames;
	ctl_query_start(&a, 0);
	ctl_query_start(&c, 1);
	ctl_wait_frames(frames + 4, NULL, "clients A's and C's HELLO and QUERY");
	ctl_expect_waiting(&a, "A", "before B connected");
	ctl_expect_waiting(&c, "C", "before B connected");

	struct rill_client *b = ctl_connect("client B, while A's and C's queries wait");
	ctl_expect_stat(client_admin_json(b, RILL_ADMIN_STAT, "{}", "B's STAT while queries wait"),
			"B's STAT while queries wait");
	ctl_expect_query_error(b, CTL_ONE_SUM, "k-other", NULL, -ENOENT,
			       "B's query while others wait");
	ctl_expect_topic(client_admin_json(b, RILL_ADMIN_TOPIC_INFO, "{\"name\":\"" CTL_ONE "\"}",
					   "B's TOPIC_INFO while queries wait"),
			 CTL_ONE, 1, "B's TOPIC_INFO while queries wait");
	ctl_expect_waiting(&a, "A", "while B's control jobs were answered");
	ctl_expect_waiting(&c, "C", "while B's control jobs were answered");

	struct rill_client_ack ack;
	ctl_produce(b, CTL_ONE, "k-ryw", 42, RILL_ACKS_APPLIED, &ack, "B's first event");
	assert_int_equal(ack.offset, 0);
	ctl_query_join(0);
	ctl_expect_answered(&a, "A", 1, 42, 0);
	ctl_expect_waiting(&c, "C", "after the first event (its token is the second)");
	ctl_produce(b, CTL_ONE, "k-ryw", 58, RILL_ACKS_APPLIED, &ack, "B's second event");
	assert_int_equal(ack.offset, 1);
	ctl_query_join(1);
	ctl_expect_answered(&c, "C", 2, 100, 1);
}

/*
 * Many queries waiting at once do not delay an ADMIN: CTL_WAITERS clients each wait for
 * offset 0 of empty "one"; once the server has taken every QUERY, client B's STAT must be
 * answered before any of them returns, checked under the lock their threads count their
 * returns with (an order, not a time). A control thread that served the waits one after
 * another, or all of them before the STAT, would answer it only once they had gone stale.
 * Then one event answers all of them.
 */
static void test_many_query_waits_do_not_delay_admin(void **state)
{
	(void)state;
	static struct ctl_query qs[CTL_WAITERS];
	static struct ctl_returned returned = {.lock = PTHREAD_MUTEX_INITIALIZER};
	returned.count = 0; /* no thread runs yet */
	uint64_t frames = ctl_stats().frames;
	for (uint32_t i = 0; i < CTL_WAITERS; i++) {
		qs[i] = (struct ctl_query){.projection = CTL_ONE_SUM,
					   .key = "k-ryw",
					   .options = {.has_token = true,
						       .token_offset = 0,
						       .timeout_ms = CTL_WAITER_WAIT_MS},
					   .returned = &returned};
		ctl_query_start(&qs[i], i);
	}
	ctl_wait_frames(frames + 2 * CTL_WAITERS, NULL, "the waiting clients' HELLO and QUERY");

	struct rill_client *b = ctl_connect("client B, while the queries wait");
	json_t *stat =
		client_admin_json(b, RILL_ADMIN_STAT, "{}", "B's STAT while the queries wait");
	pthread_mutex_lock(&returned.lock);
	uint32_t early = returned.count;
	pthread_mutex_unlock(&returned.lock);
	ctl_expect_stat(stat, "B's STAT while the queries wait");
	for (uint32_t i = 0; early > 0 && i < CTL_WAITERS; i++)
		if (ctl_query_ended(&qs[i]))
			fail_msg(
				"%u of %u queries returned before B's STAT was answered; query %u: "
				"connect %d, query %d (%s): %s",
				early, CTL_WAITERS, i, qs[i].connect_rc, qs[i].rc,
				rill_strerror(qs[i].rc), qs[i].message);
	if (early > 0) /* returned, and not marked finished yet */
		fail_msg("%u of %u queries returned before B's STAT was answered (the control "
			 "thread served their waits first)",
			 early, CTL_WAITERS);

	struct rill_client_ack ack;
	ctl_produce(b, CTL_ONE, "k-ryw", 42, RILL_ACKS_APPLIED, &ack, "the event they wait for");
	assert_int_equal(ack.offset, 0);
	for (uint32_t i = 0; i < CTL_WAITERS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "W%u", i);
		ctl_query_join(i);
		ctl_expect_answered(&qs[i], name, 1, 42, 0);
	}
}

/* ---- 2. Admin and queries in a row, in order ------------------------------------------ */

/* Topic "admin" and its sum projection, made through the control thread. */
static void ctl_admin_make(struct rill_client *c)
{
	json_t *j = client_admin_json(
		c, RILL_ADMIN_TOPIC_CREATE,
		"{\"name\":\"admin\",\"partitions\":1,\"durability\":\"group\"}", "TOPIC_CREATE");
	ctl_expect_topic(j, "admin", 1, "TOPIC_CREATE");
	assert_non_null(rill_topic_find(env.engine, "admin"));
	j = client_admin_json(c, RILL_ADMIN_PROJECTION_CREATE,
			      "{\"name\":\"admin_total\",\"topic\":\"admin\",\"type\":\"" CTL_TYPE
			      "\",\"kind\":\"sum\",\"field\":\"amount\"}",
			      "PROJECTION_CREATE");
	const char *name = json_string_value(json_object_get(j, "name"));
	if (name == NULL || strcmp(name, "admin_total") != 0)
		fail_msg("PROJECTION_CREATE: answered name %s", name != NULL ? name : "(none)");
	json_decref(j);
}

/* A refused admin op: its code and a message naming @field; the connection still works. */
static void ctl_expect_admin_error(struct rill_client *c, uint16_t op, const char *json, int code,
				   const char *field)
{
	char *answer = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_admin(c, op, json, &answer, &err);
	if (rc != code || strstr(err.message, field) == NULL)
		fail_msg("ADMIN %u %s: %d (%s): \"%s\"; expected %d (%s) naming \"%s\"", op, json,
			 rc, rill_strerror(rc), err.message, code, rill_strerror(code), field);
	assert_null(answer);
}

static void test_admin_and_queries_in_a_row(void **state)
{
	(void)state;
	struct rill_client *c = ctl_connect("admin client");
	ctl_admin_make(c);
	ctl_expect_topic(
		client_admin_json(c, RILL_ADMIN_TOPIC_INFO, "{\"name\":\"admin\"}", "TOPIC_INFO"),
		"admin", 1, "TOPIC_INFO");
	ctl_expect_stat(client_admin_json(c, RILL_ADMIN_STAT, "{}", "STAT"), "STAT");
	ctl_expect_query_error(c, "admin_total", "k-none", NULL, -ENOENT, "a key with no value");
	ctl_expect_query_error(c, "nosuch", "k-none", NULL, -ENOENT, "an unknown projection");
	ctl_expect_admin_error(c, RILL_ADMIN_TOPIC_INFO, "{\"name\":\"nosuch\"}", -ENOENT,
			       "nosuch");
	/* Requests are read with \u0000 allowed (for schema defaults): a name holding one is
	 * refused, not cut short to "admin", which exists. */
	ctl_expect_admin_error(c, RILL_ADMIN_TOPIC_CREATE,
			       "{\"name\":\"admin\\u0000x\",\"partitions\":1}", -EINVAL,
			       "\"name\": a \\u0000 in it");
	ctl_ping(c, "after the admin ops and queries");

	/* Rounds of the worker's frames (PRODUCE, PING) between the control thread's, each
	 * answer checked: a stray or reordered answer would also break the client. */
	int64_t sum = 0;
	for (uint32_t i = 0; i < CTL_ROUNDS; i++) {
		char what[64];
		snprintf(what, sizeof(what), "round %u", i);
		struct rill_client_ack ack;
		ctl_produce(c, "admin", "k-sum", (int64_t)i + 1, RILL_ACKS_APPLIED, &ack, what);
		sum += (int64_t)i + 1;
		if (ack.partition != 0 || ack.offset != i)
			fail_msg("%s: acknowledged at %u:%llu; expected 0:%u", what, ack.partition,
				 (unsigned long long)ack.offset, i);
		struct rill_client_query_options token = {.has_token = true,
							  .token_partition = 0,
							  .token_offset = ack.offset,
							  .timeout_ms = CTL_TOKEN_WAIT_MS};
		ctl_expect_value(c, "admin_total", "k-sum", &token, i + 1, sum, i, what);
		ctl_expect_query_error(c, "admin_total", "k-none", NULL, -ENOENT, what);
		ctl_expect_topic(
			client_admin_json(c, RILL_ADMIN_TOPIC_INFO, "{\"name\":\"admin\"}", what),
			"admin", 1, what);
		ctl_ping(c, what);
		if (i % 8 == 7)
			ctl_expect_stat(client_admin_json(c, RILL_ADMIN_STAT, "{}", what), what);
	}
	ctl_expect_value(c, "admin_total", "k-sum", NULL, CTL_ROUNDS, sum, CTL_ROUNDS - 1,
			 "after the rounds");
	struct rill_projection_value v;
	assert_int_equal(rill_query(env.engine, "admin_total", "k-sum", 5, NULL, 0, &v), 0);
	assert_int_equal(v.i64, sum);
}

/* Pipelined over one raw connection: a QUERY whose token never comes, then PING, ADMIN
 * and another QUERY in the same write. Answers in request order (S5). */
static void test_pipelined_answers_in_order(void **state)
{
	(void)state;
	int fd = ctl_raw_connect();
	uint8_t buf[1024];
	uint64_t hello_id = env.next_id++;
	struct rill_wire_hello hello = {.version_min = 1, .version_max = 1};
	int n = rill_wire_hello_encode(buf, sizeof(buf), hello_id, &hello);
	assert_true(n > 0);
	raw_send_all(fd, buf, (size_t)n);
	ctl_raw_expect(fd, RILL_WIRE_HELLO_OK, hello_id, "HELLO");

	/* One write: QUERY (waits CTL_STALE_MS for offset 0 of empty "one"), PING, ADMIN
	 * TOPIC_INFO, QUERY with no value. */
	uint64_t stale_id = env.next_id++, ping_id = env.next_id++, admin_id = env.next_id++,
		 none_id = env.next_id++;
	struct rill_wire_query stale = {.name = CTL_ONE_SUM,
					.name_bytes = (uint16_t)strlen(CTL_ONE_SUM),
					.key = "k-stale",
					.key_bytes = 7,
					.flags = RILL_WIRE_QUERY_F_TOKEN,
					.token_partition = 0,
					.timeout_ms = CTL_STALE_MS,
					.token_offset = 0};
	struct rill_wire_query none = {.name = CTL_ONE_SUM,
				       .name_bytes = (uint16_t)strlen(CTL_ONE_SUM),
				       .key = "k-none",
				       .key_bytes = 6};
	static const char info[] = "{\"name\":\"" CTL_ONE "\"}";
	size_t at = 0;
	n = rill_wire_query_encode(buf, sizeof(buf), stale_id, &stale);
	assert_true(n > 0);
	at += (size_t)n;
	n = rill_wire_empty_encode(buf + at, sizeof(buf) - at, RILL_WIRE_PING, ping_id);
	assert_true(n > 0);
	at += (size_t)n;
	n = rill_wire_admin_encode(buf + at, sizeof(buf) - at, admin_id, RILL_ADMIN_TOPIC_INFO,
				   info, sizeof(info) - 1);
	assert_true(n > 0);
	at += (size_t)n;
	n = rill_wire_query_encode(buf + at, sizeof(buf) - at, none_id, &none);
	assert_true(n > 0);
	at += (size_t)n;
	raw_send_all(fd, buf, at);

	struct rill_wire_header h =
		ctl_raw_expect(fd, RILL_WIRE_ERROR, stale_id, "the first QUERY");
	struct rill_wire_error e;
	assert_int_equal(rill_wire_error_decode(raw_body, h.body_bytes, &e), 0);
	if (e.code != RILL_E_QUERY_STALE || (e.flags & RILL_WIRE_ERROR_F_FATAL))
		fail_msg("the first QUERY: ERROR %d (%s), flags %#x: %.*s; expected %d (%s), not "
			 "fatal",
			 e.code, rill_strerror(e.code), e.flags, (int)e.message_bytes, e.message,
			 RILL_E_QUERY_STALE, rill_strerror(RILL_E_QUERY_STALE));
	ctl_raw_expect(fd, RILL_WIRE_PONG, ping_id, "the PING after the QUERY");
	h = ctl_raw_expect(fd, RILL_WIRE_ADMIN_OK, admin_id, "the ADMIN after the PING");
	const char *json = NULL;
	uint32_t json_bytes = 0;
	assert_int_equal(rill_wire_admin_ok_decode(raw_body, h.body_bytes, &json, &json_bytes), 0);
	json_error_t jerr;
	ctl_expect_topic(json_loadb(json, json_bytes, 0, &jerr), CTL_ONE, 1,
			 "pipelined TOPIC_INFO");
	h = ctl_raw_expect(fd, RILL_WIRE_ERROR, none_id, "the QUERY after the ADMIN");
	assert_int_equal(rill_wire_error_decode(raw_body, h.body_bytes, &e), 0);
	assert_int_equal(e.code, -ENOENT);

	/* And the connection goes on. */
	uint64_t last = env.next_id++;
	n = rill_wire_empty_encode(buf, sizeof(buf), RILL_WIRE_PING, last);
	raw_send_all(fd, buf, (size_t)n);
	ctl_raw_expect(fd, RILL_WIRE_PONG, last, "a PING after the pipelined answers");
}

/* ---- 3. Subscriptions opened and closed ----------------------------------------------- */

struct ctl_sent {
	char key[CTL_KEY_BYTES];
	int64_t amount;
	uint32_t partition;
	uint64_t offset;
};

/* CTL_SUB_EVENTS durable events on "two", over both partitions. */
static void ctl_sub_produce(struct rill_client *c, struct ctl_sent *sent, uint64_t *per_part)
{
	for (uint32_t i = 0; i < CTL_SUB_EVENTS; i++) {
		struct ctl_sent *s = &sent[i];
		snprintf(s->key, sizeof(s->key), "s-%u", i);
		s->amount = 1000 + (int64_t)i;
		struct rill_client_ack ack;
		ctl_produce(c, CTL_TWO, s->key, s->amount, RILL_ACKS_DURABLE, &ack, "subscribed");
		uint32_t p = rill_topic_partition(env.two, s->key, strlen(s->key));
		if (ack.partition != p || ack.offset != per_part[p])
			fail_msg("%s acknowledged at %u:%llu; expected %u:%llu", s->key,
				 ack.partition, (unsigned long long)ack.offset, p,
				 (unsigned long long)per_part[p]);
		s->partition = p;
		s->offset = per_part[p]++;
	}
	for (uint32_t p = 0; p < CTL_TWO_PARTITIONS; p++)
		if (per_part[p] == 0)
			fail_msg("partition %u of %s got none of the %u keys: pick other keys", p,
				 CTL_TWO, CTL_SUB_EVENTS);
}

/* Subscribe @c to both partitions from the earliest; each opened at 0 to its end. */
static void ctl_subscribe(struct rill_client *c, const uint64_t *per_part, const char *what)
{
	static struct rill_client_partition parts[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t n = 0;
	struct rill_client_error err = {{0}};
	int rc = rill_client_subscribe(c, CTL_TWO, UINT32_MAX, RILL_CLIENT_FROM_EARLIEST, 0, parts,
				       &n, &err);
	if (rc != 0)
		fail_msg("%s: subscribe: %d (%s): %s%s", what, rc, rill_strerror(rc), err.message,
			 rc == -ENOSPC ? " (were closed connections' subscriptions released?)"
				       : "");
	assert_int_equal(n, CTL_TWO_PARTITIONS);
	bool seen[CTL_TWO_PARTITIONS] = {false};
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = parts[i].partition;
		if (p >= CTL_TWO_PARTITIONS || seen[p] || parts[i].first_offset != 0 ||
		    parts[i].end_offset != per_part[p])
			fail_msg(
				"%s: partition %u opened at %llu, end %llu; expected each once, at "
				"0, to %llu",
				what, p, (unsigned long long)parts[i].first_offset,
				(unsigned long long)parts[i].end_offset,
				(unsigned long long)(p < CTL_TWO_PARTITIONS ? per_part[p] : 0));
		seen[p] = true;
	}
}

/* Every event sent, once each, in order within its partition. */
static void ctl_read_all(struct rill_client *c, const struct ctl_sent *sent, const char *what)
{
	bool seen[CTL_SUB_EVENTS] = {false};
	uint64_t next[CTL_TWO_PARTITIONS] = {0};
	for (uint32_t got = 0; got < CTL_SUB_EVENTS; got++) {
		struct rill_client_event ev = {0};
		struct rill_client_error err = {{0}};
		int rc = rill_client_next(c, &ev, CTL_WAIT_NS, &err);
		if (rc != 1)
			fail_msg("%s: after %u of %u events: %s", what, got, CTL_SUB_EVENTS,
				 rc == 0 ? "no event within 10 s" : err.message);
		uint32_t i = 0;
		while (i < CTL_SUB_EVENTS &&
		       (sent[i].partition != ev.partition || sent[i].offset != ev.offset))
			i++;
		if (i == CTL_SUB_EVENTS || seen[i] || ev.offset != next[ev.partition])
			fail_msg("%s: an event at %u:%llu: %s", what, ev.partition,
				 (unsigned long long)ev.offset,
				 i == CTL_SUB_EVENTS ? "never sent"
				 : seen[i]           ? "a second time"
						     : "out of order");
		const struct rill_record *r = &ev.record;
		if (r->key_bytes != strlen(sent[i].key) ||
		    memcmp(r->key, sent[i].key, r->key_bytes) != 0 ||
		    rill_field_i64(r->payload, env.amount) != sent[i].amount)
			fail_msg("%s: %u:%llu holds key %.*s amount %lld; sent %s, %lld", what,
				 ev.partition, (unsigned long long)ev.offset, (int)r->key_bytes,
				 (const char *)r->key,
				 (long long)rill_field_i64(r->payload, env.amount), sent[i].key,
				 (long long)sent[i].amount);
		seen[i] = true;
		next[ev.partition]++;
	}
}

static void test_subscriptions_open_and_close(void **state)
{
	(void)state;
	struct ctl_sent sent[CTL_SUB_EVENTS];
	uint64_t per_part[CTL_TWO_PARTITIONS] = {0};
	struct rill_client *producer = ctl_connect("producer");
	ctl_sub_produce(producer, sent, per_part);

	struct rill_client *s = ctl_connect("the first subscriber");
	ctl_subscribe(s, per_part, "the first subscriber");
	ctl_read_all(s, sent, "the first subscriber");
	ctl_close(s);
	ctl_wait_connections(1, "the first subscriber closed");

	for (uint32_t r = 0; r < CTL_SUB_ROUNDS; r++) {
		char what[64];
		snprintf(what, sizeof(what), "subscriber round %u", r);
		s = ctl_connect(what);
		ctl_subscribe(s, per_part, what);
		ctl_read_all(s, sent, what);
		ctl_close(s);
		/* The first rounds wait until the server freed the connection (its CLOSE job
		 * back); the later ones race their close with the next SUBSCRIBE. */
		if (r < CTL_SUB_ROUNDS_WAIT)
			ctl_wait_connections(1, what);
	}
	ctl_wait_connections(1, "every subscriber closed");
	/* The producer's connection took every answer meanwhile. */
	ctl_ping(producer, "the producer, after the subscribers");
	ctl_close(producer);
	ctl_wait_connections(0, "every connection closed");
	int rc = ctl_stop(CTL_DRAIN_NS, "stop after the subscribers");
	assert_int_equal(rc, 0);
	ctl_engine_close("after the subscribers");
}

/*
 * Subscribers that go away while their SUBSCRIBE is out: HELLO and SUBSCRIBE in one write,
 * then close, at once or after HELLO_OK. The connection is not freed while its job is out
 * (S4): what the control thread opens lands on it, its SUBSCRIBED goes to a peer that is
 * gone, and its close hands the subscriptions to a CLOSE job. None may be left open: the
 * shard can take a whole subscriber afterwards, and the engine closes (-EBUSY if any
 * subscription leaked).
 */
static void test_subscriber_gone_while_subscribing(void **state)
{
	(void)state;
	struct ctl_sent sent[CTL_SUB_EVENTS];
	uint64_t per_part[CTL_TWO_PARTITIONS] = {0};
	struct rill_client *producer = ctl_connect("producer");
	ctl_sub_produce(producer, sent, per_part);
	ctl_close(producer);
	ctl_wait_connections(0, "the producer closed");
	for (uint32_t r = 0; r < CTL_GONE_ROUNDS; r++) {
		uint8_t buf[256];
		uint64_t hello_id = env.next_id++, sub_id = env.next_id++;
		struct rill_wire_hello hello = {.version_min = 1, .version_max = 1};
		struct rill_wire_subscribe sub = {.topic = CTL_TWO,
						  .topic_bytes = (uint16_t)strlen(CTL_TWO),
						  .from = RILL_WIRE_FROM_EARLIEST,
						  .partition = RILL_WIRE_PARTITION_ALL,
						  .credit = 1000};
		int n = rill_wire_hello_encode(buf, sizeof(buf), hello_id, &hello);
		assert_true(n > 0);
		int m = rill_wire_subscribe_encode(buf + n, sizeof(buf) - (size_t)n, sub_id, &sub);
		assert_true(m > 0);
		int fd = ctl_raw_connect();
		raw_send_all(fd, buf, (size_t)(n + m));
		if (r % 2 == 1)
			ctl_raw_expect(fd, RILL_WIRE_HELLO_OK, hello_id, "HELLO before going away");
		ctl_raw_close();
		if (r % 16 == 15) /* now and then, let every close land before going on */
			ctl_wait_connections(0, "the subscribers gone");
	}
	ctl_wait_connections(0, "every subscriber gone");
	struct rill_client *s = ctl_connect("a subscriber after the ones gone");
	ctl_subscribe(s, per_part, "a subscriber after the ones gone");
	ctl_read_all(s, sent, "a subscriber after the ones gone");
	ctl_close(s);
	ctl_wait_connections(0, "the last subscriber closed");
	assert_int_equal(ctl_stop(CTL_DRAIN_NS, "stop after the subscribers gone"), 0);
	ctl_engine_close("after the subscribers gone");
}

/* ---- 4. Stop with a job out ----------------------------------------------------------- */

/* A QUERY waiting @wait_ms for a token that never comes when the server stops (draining
 * up to @drain_ns). */
static void ctl_stop_with_query(uint32_t wait_ms, uint64_t drain_ns, const char *what)
{
	static struct ctl_query q;
	q = (struct ctl_query){
		.projection = CTL_ONE_SUM,
		.key = "k-never",
		.options = {.has_token = true, .token_partition = 0, .timeout_ms = wait_ms}};
	struct rill_client *other = ctl_connect(what); /* a bystander, idle */
	uint64_t frames = ctl_stats().frames;
	ctl_query_start(&q, 0);
	ctl_wait_frames(frames + 2, &q, what);
	uint64_t stop_ns = rill_clock_now_ns();
	int rc = ctl_stop(drain_ns, what);
	stop_ns = rill_clock_now_ns() - stop_ns;
	ctl_query_join(0);
	/* Told, not checked: the stop runs the queued job to its end (srv_ctl_stop). */
	printf("%s: rill_server_stop (drain %llu ms): %d (%s) after %llu ms; the query: %d "
	       "(%s): %s\n",
	       what, (unsigned long long)(drain_ns / CTL_NS_PER_MS), rc, rill_strerror(rc),
	       (unsigned long long)(stop_ns / CTL_NS_PER_MS), q.rc, rill_strerror(q.rc), q.message);
	if (q.connect_rc != 0)
		fail_msg("%s: connect: %d (%s): %s", what, q.connect_rc,
			 rill_strerror(q.connect_rc), q.message);
	if (q.rc != RILL_E_QUERY_STALE && q.rc != -ECONNRESET && q.rc != -EPIPE)
		fail_msg("%s: the query: %d (%s): %s; expected %d (%s) or a connection error", what,
			 q.rc, rill_strerror(q.rc), q.message, RILL_E_QUERY_STALE,
			 rill_strerror(RILL_E_QUERY_STALE));
	struct rill_client_error err = {{0}};
	rc = rill_client_ping(other, &err);
	if (rc >= 0)
		fail_msg("%s: the bystander's ping after the stop: %d; expected an error", what,
			 rc);
	ctl_engine_close(what);
}

static void test_stop_with_query_out(void **state)
{
	(void)state;
	ctl_stop_with_query(CTL_STOP_SHORT_MS, CTL_DRAIN_NS, "a wait inside the drain");
}

static void test_stop_with_query_past_drain(void **state)
{
	(void)state;
	ctl_stop_with_query(CTL_STOP_LONG_MS, CTL_STOP_SHORT_NS, "a wait past the drain");
}

/* ---- 5. Stop with subscribers --------------------------------------------------------- */

/* Two subscribers (and a producer) connected when the server stops, draining up to
 * @drain_ns: their subscriptions are closed all the same. */
static int ctl_stop_with_subscribers(uint64_t drain_ns, const char *what)
{
	struct ctl_sent sent[CTL_SUB_EVENTS];
	uint64_t per_part[CTL_TWO_PARTITIONS] = {0};
	struct rill_client *producer = ctl_connect(what);
	ctl_sub_produce(producer, sent, per_part);
	struct rill_client *subs[2];
	for (uint32_t i = 0; i < 2; i++) {
		subs[i] = ctl_connect(what);
		ctl_subscribe(subs[i], per_part, what);
		ctl_read_all(subs[i], sent, what);
	}
	int rc = ctl_stop(drain_ns, what);
	for (uint32_t i = 0; i < 2; i++) {
		struct rill_client_event ev;
		struct rill_client_error err = {{0}};
		int next = rill_client_next(subs[i], &ev, CTL_WAIT_NS, &err);
		if (next >= 0)
			fail_msg("%s: subscriber %u after the stop: %d; expected the connection "
				 "closed",
				 what, i, next);
	}
	ctl_engine_close(what);
	return rc;
}

static void test_stop_with_subscribers_drained(void **state)
{
	(void)state;
	/* Nothing is owed to anyone: the drain closes every connection well in time. */
	int rc = ctl_stop_with_subscribers(CTL_DRAIN_NS, "a drained stop, subscribers connected");
	assert_int_equal(rc, 0);
}

static void test_stop_with_subscribers_no_drain(void **state)
{
	(void)state;
	(void)ctl_stop_with_subscribers(0, "a stop with no drain time, subscribers connected");
}

/* ---- 6. Stop with durable acknowledgements owed --------------------------------------- */

/* Event @i of test 6: its key (into @key) and amount; it lands at offset @i of "slow". */
static int64_t ctl_slow_event(uint32_t i, char *key, size_t key_bytes)
{
	snprintf(key, key_bytes, "d-%u", i);
	return 100 + (int64_t)i;
}

/* The PRODUCE requests, sent without waiting: events 1 .. CTL_SLOW_TOTAL - 1. */
static void ctl_slow_send(struct rill_client *c, uint64_t *ids)
{
	for (uint32_t r = 0; r < CTL_SLOW_REQUESTS; r++) {
		static uint8_t payloads[CTL_SLOW_EVENTS][CTL_PAYLOAD_BYTES];
		static char keys[CTL_SLOW_EVENTS][CTL_KEY_BYTES];
		struct rill_record recs[CTL_SLOW_EVENTS];
		for (uint32_t e = 0; e < CTL_SLOW_EVENTS; e++) {
			uint32_t i = 1 + r * CTL_SLOW_EVENTS + e;
			int64_t amount = ctl_slow_event(i, keys[e], sizeof(keys[e]));
			recs[e] = ctl_record(keys[e], amount, payloads[e]);
		}
		struct rill_client_error err = {{0}};
		int rc = rill_client_produce_send(c, CTL_SLOW, recs, CTL_SLOW_EVENTS,
						  RILL_ACKS_DURABLE, &ids[r], &err);
		if (rc != 0)
			fail_msg("PRODUCE request %u to %s: %d (%s): %s", r, CTL_SLOW, rc,
				 rill_strerror(rc), err.message);
	}
}

/*
 * After the stop: the answers that came, to the end of the stream. Each event of each
 * ACK must be acknowledged durably at its own offset (@acked marks it); the stream must
 * end with a connection error (or nothing left in flight). Returns the ACKs counted.
 */
static uint32_t ctl_slow_answers(struct rill_client *c, const uint64_t *ids, bool *acked)
{
	uint32_t answered = 0;
	for (;;) {
		struct rill_client_ack acks[CTL_SLOW_EVENTS];
		struct rill_client_error err = {{0}};
		uint64_t id = 0;
		uint32_t n = 0;
		int rc = rill_client_produce_wait(c, &id, acks, CTL_SLOW_EVENTS, &n, CTL_WAIT_NS,
						  &err);
		if (rc == -ENOENT || rc == -ECONNRESET || rc == -EPIPE)
			return answered; /* every one answered, or the server closed */
		if (rc != 0)
			fail_msg("after the stop, %u requests answered, then: %d (%s): %s; "
				 "expected an ACK or a connection error",
				 answered, rc, rill_strerror(rc), err.message);
		uint32_t r = 0;
		while (r < CTL_SLOW_REQUESTS && ids[r] != id)
			r++;
		if (r == CTL_SLOW_REQUESTS || n != CTL_SLOW_EVENTS)
			fail_msg(
				"an ACK for request id %llu with %u events; expected one of the %u "
				"requests sent, with %u each",
				(unsigned long long)id, n, CTL_SLOW_REQUESTS, CTL_SLOW_EVENTS);
		for (uint32_t e = 0; e < n; e++) {
			uint32_t i = 1 + r * CTL_SLOW_EVENTS + e;
			if (acks[e].error != 0 || acks[e].partition != 0 || acks[e].offset != i)
				fail_msg("event %u acknowledged: error %d (%s: %s), at %u:%llu; "
					 "expected 0:%u",
					 i, acks[e].error, rill_strerror(acks[e].error),
					 acks[e].reason, acks[e].partition,
					 (unsigned long long)acks[e].offset, i);
			acked[i] = true;
		}
		answered++;
	}
}

/* The reopened engine's "slow": every event sent, in order, durable; those the client
 * was told are durable (@acked) among them. */
static void ctl_slow_read_back(const bool *acked)
{
	struct rill_topic *t = rill_topic_find(env.engine, CTL_SLOW);
	if (t == NULL)
		fail_msg("the reopened engine has no topic %s", CTL_SLOW);
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(env.engine, t, 0, UINT64_MAX, &info, NULL), 0);
	if (info.next_offset != CTL_SLOW_TOTAL || info.durable_offset != CTL_SLOW_TOTAL)
		fail_msg("reopened, %s holds %llu events, %llu durable; expected the %u the "
			 "server took, all durable",
			 CTL_SLOW, (unsigned long long)info.next_offset,
			 (unsigned long long)info.durable_offset, CTL_SLOW_TOTAL);
	struct rill_subscription *sub = NULL;
	assert_int_equal(rill_subscribe(env.engine, t, 0, 0, &sub), 0);
	char bad[256] = "";
	for (uint32_t i = 0; i < CTL_SLOW_TOTAL && bad[0] == '\0'; i++) {
		struct rill_record rec;
		uint64_t offset = UINT64_MAX;
		char key[CTL_KEY_BYTES];
		int64_t amount = ctl_slow_event(i, key, sizeof(key));
		int rc = rill_subscription_next(sub, &rec, &offset, CTL_WAIT_NS);
		if (rc != 1)
			snprintf(bad, sizeof(bad), "reading event %u back: %d (%s)%s", i, rc,
				 rill_strerror(rc), acked[i] ? ", acknowledged as durable" : "");
		else if (offset != i || rec.key_bytes != strlen(key) ||
			 memcmp(rec.key, key, rec.key_bytes) != 0 ||
			 rill_field_i64(rec.payload, env.amount) != amount)
			snprintf(bad, sizeof(bad),
				 "offset %llu holds key %.*s amount %lld; expected offset %u, %s, "
				 "%lld%s",
				 (unsigned long long)offset, (int)rec.key_bytes,
				 (const char *)rec.key,
				 (long long)rill_field_i64(rec.payload, env.amount), i, key,
				 (long long)amount, acked[i] ? " (acknowledged as durable)" : "");
	}
	rill_subscription_close(sub);
	if (bad[0] != '\0')
		fail_msg("reopened %s: %s", CTL_SLOW, bad);
}

/*
 * A stop with no drain time while durable acknowledgements are owed: one event
 * acknowledged durably first (it waits out one batch delay, so the client is told of at
 * least one), then CTL_SLOW_REQUESTS pipelined PRODUCE requests, acks durable, whose group
 * commit is CTL_SLOW_DELAY_NS away when the server has taken them. The stop closes the
 * connection at once and frees the worker; the acknowledgements come while it does
 * (rill_producer_close waits for them), into requests whose connection is gone.
 */
static void test_stop_with_durable_acks_owed(void **state)
{
	(void)state;
	struct rill_topic_config tc = {.name = CTL_SLOW,
				       .partitions = 1,
				       .durability = RILL_DURABILITY_GROUP,
				       .batch_delay_ns = CTL_SLOW_DELAY_NS};
	struct rill_topic *slow = NULL;
	struct rill_error_text terr = {{0}};
	int rc = rill_topic_create(env.engine, &tc, &slow, &terr);
	if (rc != 0)
		fail_msg("topic %s: %s: %s", CTL_SLOW, rill_strerror(rc), terr.message);
	struct rill_client *c = ctl_connect("the durable producer");
	bool acked[CTL_SLOW_TOTAL] = {false};
	char key[CTL_KEY_BYTES];
	int64_t amount = ctl_slow_event(0, key, sizeof(key));
	struct rill_client_ack ack;
	ctl_produce(c, CTL_SLOW, key, amount, RILL_ACKS_DURABLE, &ack, "the first durable event");
	assert_int_equal(ack.offset, 0);
	acked[0] = true;

	struct rill_server_stats before = ctl_stats();
	uint64_t ids[CTL_SLOW_REQUESTS];
	ctl_slow_send(c, ids);
	uint64_t deadline = rill_clock_now_ns() + CTL_WAIT_NS;
	struct rill_server_stats st;
	while ((st = ctl_stats()).frames < before.frames + CTL_SLOW_REQUESTS ||
	       st.events < before.events + CTL_SLOW_REQUESTS * CTL_SLOW_EVENTS) {
		if (rill_clock_now_ns() > deadline)
			fail_msg("the server took %llu frames and %llu events of the %u requests "
				 "(%u events) after %llu s",
				 (unsigned long long)(st.frames - before.frames),
				 (unsigned long long)(st.events - before.events), CTL_SLOW_REQUESTS,
				 CTL_SLOW_REQUESTS * CTL_SLOW_EVENTS,
				 (unsigned long long)(CTL_WAIT_NS / CTL_NS_PER_S));
		usleep(1000);
	}
	/* Told, not checked (a time): none durable yet means every acknowledgement comes
	 * during the stop, which is what this test is for. */
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(env.engine, slow, 0, UINT64_MAX, &info, NULL), 0);
	uint64_t stop_ns = rill_clock_now_ns();
	rc = ctl_stop(0, "a stop with durable acknowledgements owed");
	stop_ns = rill_clock_now_ns() - stop_ns;
	uint32_t answered = ctl_slow_answers(c, ids, acked);
	printf("stop (no drain) with durable acknowledgements owed: %d (%s) after %llu ms; "
	       "durable before it: %llu of %u%s; requests answered: %u of %u\n",
	       rc, rill_strerror(rc), (unsigned long long)(stop_ns / CTL_NS_PER_MS),
	       (unsigned long long)info.durable_offset, CTL_SLOW_TOTAL,
	       info.durable_offset >= CTL_SLOW_TOTAL ? " (NOT what this test is for: a slow run?)"
						     : "",
	       answered, CTL_SLOW_REQUESTS);
	ctl_close(c);
	ctl_engine_close("after a stop with durable acknowledgements owed");
	ctl_engine_open("reopened after a stop with durable acknowledgements owed");
	ctl_slow_read_back(acked);
}

/*
 * A second server on the address a first one listens on is refused (-EADDRINUSE), not
 * let into the first one's SO_REUSEPORT group, where the kernel would hand it part of
 * the first one's connections (a second rill serve by the same user, or an old one still
 * draining). The first goes on serving.
 */
static void test_second_server_refused(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "server-ctl-second"), 0);
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = dir;
	cfg.shards = 1;
	cfg.pin = false;
	struct rill_error_text err = {{0}};
	struct rill_engine *other = NULL;
	assert_int_equal(rill_engine_open(&other, &cfg, &err), 0);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = env.address;
	struct rill_server *second = NULL;
	memset(&err, 0, sizeof(err));
	int rc = rill_server_start(&second, other, &sc, &err);
	if (rc != -EADDRINUSE)
		fail_msg("a second server on %s: %d (%s: %s); expected -EADDRINUSE", env.address,
			 rc, rill_strerror(rc), err.message);
	assert_null(second);
	assert_non_null(strstr(err.message, "another server"));
	assert_int_equal(rill_engine_close(other), 0);
	assert_int_equal(test_dir_remove(dir), 0);
	struct rill_client *c = ctl_connect("the first server, after the second was refused");
	ctl_ping(c, "the first server, after the second was refused");
}

/* ---- 7. GROUP_COMMIT of many partitions ------------------------------------------------ */

#define CTL_GRP       "grp" /* test 7: 4 partitions */
#define CTL_GRP_PARTS 4u

/* STAT's group_commits: the GROUP_COMMIT requests the server took. */
static int64_t ctl_group_commits(struct rill_client *c)
{
	json_t *j = client_admin_json(c, RILL_ADMIN_STAT, "{}", "STAT");
	json_t *v = json_object_get(json_object_get(j, "server"), "group_commits");
	if (!json_is_integer(v))
		fail_msg("STAT: no server.group_commits");
	int64_t n = json_integer_value(v);
	json_decref(j);
	return n;
}

/* Group "g"'s positions in topic CTL_GRP, through the engine (UINT64_MAX: none). */
static void ctl_group_read(struct rill_topic *t, uint64_t *out)
{
	for (uint32_t p = 0; p < CTL_GRP_PARTS; p++) {
		int rc = rill_group_offset(env.engine, "g", t, p, &out[p], NULL);
		if (rc == -ENOENT)
			out[p] = UINT64_MAX;
		else if (rc != 0)
			fail_msg("group g partition %u: %s", p, rill_strerror(rc));
	}
}

/*
 * 7. GROUP_COMMIT takes "offsets": {"PARTITION": OFFSET, ...}, every position in one
 * request and one write of the group's file (a consumer of 128 partitions sent 128
 * requests a second, each writing the file on the control thread), and STAT counts the
 * requests (server.group_commits). Malformed forms (both forms, neither, not an object,
 * empty, a key that is no partition or not in canonical decimal, an offset that is no
 * integer from 0, a partition twice) and a position past its partition's durable offset
 * are refused with a message naming what, and change no position; the one-partition form
 * still works.
 */
static void test_group_commit_offsets(void **state)
{
	(void)state;
	struct rill_topic_config tc = {
		.name = CTL_GRP, .partitions = CTL_GRP_PARTS, .durability = RILL_DURABILITY_GROUP};
	struct rill_error_text terr = {{0}};
	struct rill_topic *t = NULL;
	if (rill_topic_create(env.engine, &tc, &t, &terr) != 0)
		fail_msg("topic %s: %s", CTL_GRP, terr.message);
	struct rill_client *c = ctl_connect("group commits");
	uint64_t end[CTL_GRP_PARTS] = {0};
	for (uint32_t i = 0; i < 32; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k-grp-%u", i);
		struct rill_client_ack ack;
		ctl_produce(c, CTL_GRP, key, i, RILL_ACKS_DURABLE, &ack, "group commits");
		assert_true(ack.partition < CTL_GRP_PARTS);
		end[ack.partition] = ack.offset + 1;
	}
	for (uint32_t p = 0; p < CTL_GRP_PARTS; p++)
		assert_true(end[p] > 1); /* every partition has two positions to move between */
	assert_int_equal(ctl_group_commits(c), 0);

	char json[512];
	snprintf(json, sizeof(json),
		 "{\"group\":\"g\",\"topic\":\"" CTL_GRP "\",\"offsets\":{\"3\":%llu,\"0\":%llu,"
		 "\"1\":%llu,\"2\":%llu}}",
		 (unsigned long long)end[3], (unsigned long long)end[0], (unsigned long long)end[1],
		 (unsigned long long)end[2]);
	json_decref(client_admin_json(c, RILL_ADMIN_GROUP_COMMIT, json, "GROUP_COMMIT offsets"));
	assert_int_equal(ctl_group_commits(c), 1);
	uint64_t seen[CTL_GRP_PARTS];
	ctl_group_read(t, seen);
	assert_memory_equal(seen, end, sizeof(end));
	json_t *fetched = client_admin_json(c, RILL_ADMIN_GROUP_FETCH,
					    "{\"group\":\"g\",\"topic\":\"" CTL_GRP "\"}", "FETCH");
	assert_int_equal(json_array_size(json_object_get(fetched, "offsets")), CTL_GRP_PARTS);
	json_decref(fetched);

	static const struct {
		const char *body; /* after {"group":"g","topic":"grp", */
		int code;
		const char *says;
	} bad[] = {
		{"\"offsets\":{\"0\":1},\"partition\":0}", -EINVAL, "one form, not both"},
		{"\"offsets\":{\"0\":1},\"offset\":1}", -EINVAL, "one form, not both"},
		{"\"partition\":0}", -EINVAL, "\"partition\" and \"offset\" needed"},
		{"\"x\":1}", -EINVAL, "\"partition\" and \"offset\" needed (or \"offsets\")"},
		{"\"offsets\":[[0,1]]}", -EINVAL, "\"offsets\": expected an object of 1 to 4"},
		{"\"offsets\":{}}", -EINVAL, "\"offsets\": expected an object of 1 to 4"},
		{"\"offsets\":{\"0\":1,\"1\":1,\"2\":1,\"3\":1,\"4\":1}}", -EINVAL,
		 "expected an object of 1 to 4"},
		{"\"offsets\":{\"0\":1,\"4\":1}}", -EINVAL, "\"4\": not a partition (0 to 3"},
		{"\"offsets\":{\"01\":1}}", -EINVAL, "\"01\": not a partition"},
		{"\"offsets\":{\"-1\":1}}", -EINVAL, "\"-1\": not a partition"},
		{"\"offsets\":{\"+1\":1}}", -EINVAL, "\"+1\": not a partition"},
		{"\"offsets\":{\"\":1}}", -EINVAL, "\"\": not a partition"},
		{"\"offsets\":{\"one\":1}}", -EINVAL, "\"one\": not a partition"},
		{"\"offsets\":{\"0\":1,\"1\":-1}}", -EINVAL, "\"1\": expected an integer from 0"},
		{"\"offsets\":{\"0\":\"1\"}}", -EINVAL, "\"0\": expected an integer from 0"},
		{"\"offsets\":{\"0\":1.5}}", -EINVAL, "\"0\": expected an integer from 0"},
		{"\"offsets\":{\"0\":null}}", -EINVAL, "\"0\": expected an integer from 0"},
		{"\"offsets\":{\"1\":1,\"1\":0}}", RILL_E_JSON_INVALID, "duplicate"},
		/* Past int64: invalid JSON, said so where (it said "not a JSON object"). */
		{"\"offsets\":{\"0\":1,\"1\":9223372036854775808}}", RILL_E_JSON_INVALID,
		 "admin request: invalid JSON at line 1, column"},
		{"\"offsets\":{\"0\":1,\"2\":99999}}", -ERANGE, "partition 2's durable offset"},
	};
	int64_t commits = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(json, sizeof(json), "{\"group\":\"g\",\"topic\":\"" CTL_GRP "\",%s",
			 bad[i].body);
		ctl_expect_admin_error(c, RILL_ADMIN_GROUP_COMMIT, json, bad[i].code, bad[i].says);
		ctl_group_read(t, seen);
		if (memcmp(seen, end, sizeof(end)) != 0)
			fail_msg("GROUP_COMMIT %s refused, yet the group moved", json);
		commits++;
	}
	assert_int_equal(ctl_group_commits(c), commits);

	/* The one-partition form, as before: only partition 2 moves. */
	json_decref(client_admin_json(c, RILL_ADMIN_GROUP_COMMIT,
				      "{\"group\":\"g\",\"topic\":\"" CTL_GRP
				      "\",\"partition\":2,\"offset\":1}",
				      "GROUP_COMMIT partition"));
	end[2] = 1;
	ctl_group_read(t, seen);
	assert_memory_equal(seen, end, sizeof(end));
	assert_int_equal(ctl_group_commits(c), commits + 1);
}

/* ---- 8. TOPIC_CREATE under the open-file budget ------------------------------------ */

#define CTL_FDS_FIT    4u  /* test 8: partitions whose files the limit leaves room for */
#define CTL_FDS_LATER  16u /* ... the host's fds_later (subscribers' readers) */
#define CTL_FDS_TOPICS 5u  /* ... topics at its end: one, two, free, four, extra */

static struct rlimit ctl_fds_saved; /* the limit before test 8 (rlim_cur 0: not saved) */

/* Descriptors open in this process: /proc/self/fd's entries, less the directory's own. */
static uint64_t ctl_fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return 0;
	uint64_t n = 0;
	for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static int ctl_fds_teardown(void **state)
{
	if (ctl_fds_saved.rlim_cur != 0)
		(void)setrlimit(RLIMIT_NOFILE, &ctl_fds_saved); /* the tests after need theirs */
	ctl_fds_saved.rlim_cur = 0;
	return ctl_teardown(state);
}

/* TOPIC_CREATE of @name with @partitions: its code, and its message in @msg. */
static int ctl_fds_create(struct rill_client *c, const char *name, uint32_t partitions, char *msg,
			  size_t msg_bytes)
{
	char json[128];
	snprintf(json, sizeof(json), "{\"name\":\"%s\",\"partitions\":%u}", name, partitions);
	char *answer = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_admin(c, RILL_ADMIN_TOPIC_CREATE, json, &answer, &err);
	snprintf(msg, msg_bytes, "%s", rc == 0 ? answer : err.message);
	free(answer);
	return rc;
}

/* A TOPIC_CREATE refused for the open-file budget, naming what an operator needs. */
static void ctl_fds_expect_refused(struct rill_client *c, const char *name, uint32_t partitions,
				   uint32_t fit, const char *what)
{
	char msg[RILL_CLIENT_ERROR_BYTES];
	int rc = ctl_fds_create(c, name, partitions, msg, sizeof(msg));
	char fits[64];
	snprintf(fits, sizeof(fits), "; %u more partitions fit", fit);
	if (rc != -EMFILE || strstr(msg, "RLIMIT_NOFILE") == NULL ||
	    strstr(msg, "connections_max 1024") == NULL || strstr(msg, fits) == NULL ||
	    strstr(msg, "LimitNOFILE=") == NULL || strstr(msg, "ulimit -n") == NULL ||
	    strstr(msg, "subscriptions_per_shard") == NULL)
		fail_msg("%s: TOPIC_CREATE %s of %u partitions: %d (%s): %s; expected -EMFILE "
			 "naming the limit, connections_max, that %u fit and what to do",
			 what, name, partitions, rc, rill_strerror(rc), msg, fit);
	if (rill_topic_find(env.engine, name) != NULL)
		fail_msg("%s: TOPIC_CREATE %s refused, yet the topic was made", what, name);
}

/*
 * 8. A TOPIC_CREATE's partitions hold three descriptors each for good: under a budget
 * (rill_server_fds_budget, which rill serve takes once started) one whose files would not
 * fit beside connections_max, the host's readers and the reserve is refused, nothing made,
 * so that a restart under the same limit, which makes the same sum, starts (before, they
 * were made, and took the descriptors promised to connections).
 */
static void test_topic_create_fds_budget(void **state)
{
	(void)state;
	struct rill_client *c = ctl_connect("test 8");
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	/* The room for CTL_FDS_FIT partitions beside everything else, and one to spare: a
	 * descriptor more or less in the count leaves the same partitions fitting. */
	struct rill_server_config dflt;
	rill_server_config_default(&dflt);
	uint64_t limit = ctl_fds_open() + RILL_SERVER_FDS_RESERVED + CTL_FDS_LATER +
			 dflt.connections_max + CTL_FDS_FIT * RILL_SERVER_FDS_PER_PARTITION + 1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < limit) {
		fprintf(stderr, "test 8: the hard open-file limit %llu is under the %llu needed\n",
			(unsigned long long)rl.rlim_max, (unsigned long long)limit);
		skip();
	}
	ctl_fds_saved = rl;
	struct rlimit low = {.rlim_cur = limit, .rlim_max = rl.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

	/* No budget yet: not checked. Five partitions, past the room. */
	char msg[RILL_CLIENT_ERROR_BYTES];
	int rc = ctl_fds_create(c, "free", CTL_FDS_FIT + 1, msg, sizeof(msg));
	if (rc != 0)
		fail_msg("TOPIC_CREATE without a budget: %d (%s): %s", rc, rill_strerror(rc), msg);

	/* The budget, counted with "free" open: its room is the limit's. */
	low.rlim_cur = limit + (CTL_FDS_FIT + 1) * RILL_SERVER_FDS_PER_PARTITION;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	struct rill_error_text err = {{0}};
	rc = rill_server_fds_budget(env.server, CTL_FDS_LATER, &err);
	if (rc != 0)
		fail_msg("rill_server_fds_budget under %llu: %d (%s): %s",
			 (unsigned long long)low.rlim_cur, rc, rill_strerror(rc), err.message);
	ctl_fds_expect_refused(c, "five", CTL_FDS_FIT + 1, CTL_FDS_FIT, "past the room");
	rc = ctl_fds_create(c, "four", CTL_FDS_FIT, msg, sizeof(msg));
	if (rc != 0)
		fail_msg("TOPIC_CREATE of the %u partitions that fit: %d (%s): %s", CTL_FDS_FIT, rc,
			 rill_strerror(rc), msg);
	ctl_fds_expect_refused(c, "extra", 1, 0, "the room taken");
	rc = ctl_fds_create(c, "four", CTL_FDS_FIT, msg, sizeof(msg));
	if (rc != 0)
		fail_msg("TOPIC_CREATE of a topic made already (it makes nothing): %d (%s): %s", rc,
			 rill_strerror(rc), msg);
	ctl_ping(c, "after the refusals");

	/* A higher limit, the budget taken again: it goes on. */
	low.rlim_cur += RILL_SERVER_FDS_PER_PARTITION;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(rill_server_fds_budget(env.server, CTL_FDS_LATER, &err), 0);
	rc = ctl_fds_create(c, "extra", 1, msg, sizeof(msg));
	if (rc != 0)
		fail_msg("TOPIC_CREATE of one partition under a limit 3 higher: %d (%s): %s", rc,
			 rill_strerror(rc), msg);
	json_t *j = client_admin_json(c, RILL_ADMIN_TOPICS, "{}", "TOPICS");
	size_t n = json_array_size(json_object_get(j, "topics"));
	json_decref(j);
	if (n != CTL_FDS_TOPICS)
		fail_msg("TOPICS lists %zu topics; expected %u", n, CTL_FDS_TOPICS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_query_wait_frees_worker, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_query_wait_frees_control_thread, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_many_query_waits_do_not_delay_admin, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_admin_and_queries_in_a_row, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_answers_in_order, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_subscriptions_open_and_close, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_subscriber_gone_while_subscribing, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_query_out, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_query_past_drain, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_subscribers_drained, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_subscribers_no_drain, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_durable_acks_owed, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_second_server_refused, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_offsets, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_topic_create_fds_budget, ctl_setup,
						ctl_fds_teardown),
	};
	return cmocka_run_group_tests_name("server_ctl", tests, NULL, NULL);
}
