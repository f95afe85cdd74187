/*
 * The public C client (rill/client.h) against a real server in process (rill/server.h):
 * an engine with two shards in a temporary directory, the server on 127.0.0.1:0, and
 * every part of the client's contract over it, in order, each test building on the state
 * the earlier ones left:
 *
 *   1. connect, ping, the shard count; ADMIN: a topic (4 partitions, group commit), a
 *      schema, a sum and a count projection, TOPIC_INFO, SCHEMAS, STAT, and a refused op
 *      whose message names the field;
 *   2. a blocking PRODUCE: one ack per event, at rill_topic_partition's partition, offsets
 *      consecutive per partition from 0;
 *   3. an idempotent producer: retries acknowledged as duplicates at their first offsets,
 *      a sequence gap refused;
 *   4. an unregistered type refused per event, and not written;
 *   5. pipelining: 64 corked requests of 8 events, -EAGAIN past inflight_max, every
 *      request answered once, offsets consecutive per partition in the order sent;
 *   6. durable acks, then queries: read-your-writes with the token, as of an earlier
 *      offset, each equal to a fold of the events made here; an unknown projection;
 *   7. subscriptions: from the earliest (every event once, in order, decoded) and from the
 *      latest (nothing, then exactly the next three);
 *   8. acks none: no offsets, no errors;
 *   9. rill_server_stop while a pipelined client has requests in flight: each request
 *      answered or the client reports a broken connection; the engine closes cleanly and,
 *      reopened, holds every event of the model at its place and every durably
 *      acknowledged one. (A client whose send fails on the closed connection drops the
 *      ACKs it has received and not yet handed out: their requests count as unanswered,
 *      which the contract allows, so their events may be in the log or not.)
 *
 * The model (env.log) is what each partition must hold, offset by offset. RILL_TEST_SEED
 * replays the keys and amounts.
 */
#include "tests/common/test_util.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "base/clock.h"
#include "rill/client.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "rill/server.h"
#include "tests/common/client_admin.h"
#include "tests/common/server_start.h"
#include "tests/common/test_dir.h"

#define SC_SHARDS            2u
#define SC_PARTITIONS        4u
#define SC_TOPIC             "orders"
#define SC_TYPE              "OrderPlaced"
#define SC_SUM               "orders_total"
#define SC_COUNT             "orders_count"
#define SC_KEY_BYTES         24u
#define SC_SKU_BYTES         16u
#define SC_PAYLOAD_BYTES     64u
#define SC_BATCH_MAX         64u
#define SC_LOG_MAX           4096u                 /* model events per partition */
#define SC_WAIT_NS           (10ull * 1000000000u) /* "at once", on a loaded machine */
#define SC_WALL_SLACK_NS     (60ull * 1000000000u) /* stamps: see sc_expect_event */
#define SC_DRAIN_NS          (5ull * 1000000000u)
#define SC_QUIET_NS          (100ull * 1000000u)
#define SC_PIPE_REQUESTS     64u
#define SC_PIPE_BATCH        8u
#define SC_PRODUCER_ID       0x5eedu
#define SC_FOLD_KEY          "k-fold"
#define SC_STOP_REQUESTS_MAX 8192u
#define SC_STOP_BATCH        8u
#define SC_STOP_EVENTS_MAX   (SC_STOP_REQUESTS_MAX * SC_STOP_BATCH)
#define SC_STOP_ANSWERED     16u /* answers the stopped client has before the stop */
#define SC_STOP_KEYS         32u
#define SC_STOP_AMOUNT_BASE  1000000000ll /* stop event i carries this + i */
#define SC_STOP_RUN_NS       (60ull * 1000000000u)

_Static_assert(SC_PIPE_BATCH <= SC_BATCH_MAX && SC_STOP_BATCH <= SC_BATCH_MAX,
	       "a request's events fit a batch");

static const char sc_schema_def[] = "{\"type\":\"" SC_TYPE "\",\"version\":1,\"fields\":["
				    "{\"name\":\"amount\",\"type\":\"i64\"},"
				    "{\"name\":\"sku\",\"type\":\"string\",\"max_length\":16}]}";

/* One event as sent, and as its partition must hold it. */
struct sc_event {
	char key[SC_KEY_BYTES];
	int64_t amount;
};

/* Events of one request: their records point into it. */
struct sc_batch {
	uint32_t count;
	struct rill_record rec[SC_BATCH_MAX];
	struct sc_event ev[SC_BATCH_MAX];
	uint8_t payload[SC_BATCH_MAX][SC_PAYLOAD_BYTES];
	struct rill_client_ack acks[SC_BATCH_MAX];
};

static struct {
	char dir[64];
	char address[80];
	struct rill_engine *engine;
	struct rill_server *server;
	struct rill_topic *topic;
	const struct rill_schema *schema;
	uint32_t type_id;
	uint32_t amount_field, sku_field;
	struct rill_client *producer;          /* client 1: admin, produce, query */
	struct rill_client *earliest, *latest; /* subscribers */
	struct test_rng rng;
	struct sc_event log[SC_PARTITIONS][SC_LOG_MAX]; /* the model: offset by offset */
	uint64_t next[SC_PARTITIONS];                   /* the model's next offsets */
	uint64_t wall_start_ns; /* the wall clock at setup: the events' stamps come after */
} env;

/* ---- Small pieces --------------------------------------------------------------------- */

static void sc_sku(int64_t amount, char *sku)
{
	snprintf(sku, SC_SKU_BYTES, "s%llu", (unsigned long long)amount % 100000000ull);
}

static int64_t sc_amount(void)
{
	return (int64_t)test_rng_below(&env.rng, 20001) - 10000;
}

static struct sc_batch *sc_batch_new(void)
{
	struct sc_batch *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	return b;
}

/* Event @i of @b: @key, @amount, of type @type_id version @version. 0 or an error; no
 * cmocka (the stop test's thread builds events too). */
static int sc_build(struct sc_batch *b, uint32_t i, const char *key, int64_t amount,
		    uint32_t type_id, uint16_t version)
{
	struct sc_event *e = &b->ev[i];
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->amount = amount;
	char sku[SC_SKU_BYTES];
	sc_sku(amount, sku);
	struct rill_payload_builder pb;
	uint32_t bytes = 0;
	int rc = rill_payload_builder_init(&pb, env.schema, b->payload[i], SC_PAYLOAD_BYTES);
	if (rc == 0)
		rc = rill_payload_set_i64(&pb, env.amount_field, amount);
	if (rc == 0)
		rc = rill_payload_set_var(&pb, env.sku_field, sku, (uint32_t)strlen(sku));
	if (rc == 0)
		rc = rill_payload_builder_finish(&pb, &bytes, NULL);
	b->rec[i] = (struct rill_record){.type_id = type_id,
					 .schema_version = version,
					 .key = e->key,
					 .key_bytes = (uint16_t)strlen(e->key),
					 .payload = b->payload[i],
					 .payload_bytes = bytes};
	return rc;
}

static struct rill_record *sc_add_as(struct sc_batch *b, const char *key, int64_t amount,
				     uint32_t type_id, uint16_t version)
{
	assert_true(b->count < SC_BATCH_MAX);
	uint32_t i = b->count++;
	assert_int_equal(sc_build(b, i, key, amount, type_id, version), 0);
	return &b->rec[i];
}

static struct rill_record *sc_add(struct sc_batch *b, const char *key, int64_t amount)
{
	return sc_add_as(b, key, amount, env.type_id, 1);
}

static uint32_t sc_partition(const char *key)
{
	return rill_topic_partition(env.topic, key, strlen(key));
}

static void sc_model_append(uint32_t p, const struct sc_event *e)
{
	assert_true(p < SC_PARTITIONS);
	assert_true(env.next[p] < SC_LOG_MAX);
	env.log[p][env.next[p]++] = *e;
}

/*
 * The ack of event @i of @b must say written at the model's next offset of its key's
 * partition (or, at acks none, accepted with no offset); the model takes it.
 */
static void sc_expect_written(const struct sc_batch *b, uint32_t i, int acks, const char *what)
{
	const struct sc_event *e = &b->ev[i];
	const struct rill_client_ack *a = &b->acks[i];
	uint32_t p = sc_partition(e->key);
	if (acks == RILL_ACKS_NONE) {
		if (a->error != 0 || a->offset != UINT64_MAX || a->duplicate)
			fail_msg("%s: event %u (key %s) at acks none: error %d (%s: %s), offset "
				 "%llu, duplicate %d; expected error 0 and offset UINT64_MAX",
				 what, i, e->key, a->error, rill_strerror(a->error), a->reason,
				 (unsigned long long)a->offset, a->duplicate);
		sc_model_append(p, e);
		return;
	}
	if (a->error != 0 || a->duplicate || a->partition != p || a->offset != env.next[p] ||
	    a->event_count != 1)
		fail_msg("%s: event %u (key %s): error %d (%s: %s), duplicate %d, %u events, at "
			 "%u:%llu; expected error 0 at %u:%llu",
			 what, i, e->key, a->error, rill_strerror(a->error), a->reason,
			 a->duplicate, a->event_count, a->partition, (unsigned long long)a->offset,
			 p, (unsigned long long)env.next[p]);
	sc_model_append(p, e);
}

/* Produce @b (blocking) at @acks: every event must be written, in order. */
static void sc_produce(struct rill_client *c, struct sc_batch *b, int acks, const char *what)
{
	struct rill_client_error err = {{0}};
	int rc = rill_client_produce(c, SC_TOPIC, b->rec, b->count, acks, b->acks, &err);
	if (rc != 0)
		fail_msg("%s: produce: %d (%s): %s", what, rc, rill_strerror(rc), err.message);
	for (uint32_t i = 0; i < b->count; i++)
		sc_expect_written(b, i, acks, what);
}

/* The fold of @key's events in partition @p up to @upto (inclusive). */
struct sc_fold {
	int64_t sum;
	uint64_t count;
	uint64_t last; /* UINT64_MAX: none */
};

static struct sc_fold sc_fold(const char *key, uint64_t upto)
{
	uint32_t p = sc_partition(key);
	struct sc_fold f = {.last = UINT64_MAX};
	for (uint64_t o = 0; o < env.next[p] && o <= upto; o++) {
		if (strcmp(env.log[p][o].key, key) != 0)
			continue;
		f.sum += env.log[p][o].amount;
		f.count++;
		f.last = o;
	}
	return f;
}

/* Every partition's next offset must reach the model's (and be durable, if asked). */
static void sc_wait_written(bool durable, const char *what)
{
	uint64_t deadline = rill_clock_now_ns() + SC_WAIT_NS;
	for (uint32_t p = 0; p < SC_PARTITIONS; p++) {
		struct rill_partition_info info;
		for (;;) {
			int rc = rill_partition_info_get(env.engine, env.topic, p, UINT64_MAX,
							 &info, NULL);
			if (rc != 0)
				fail_msg("%s: partition %u: %s", what, p, rill_strerror(rc));
			if (info.next_offset > env.next[p])
				fail_msg("%s: partition %u holds %llu events, the model %llu", what,
					 p, (unsigned long long)info.next_offset,
					 (unsigned long long)env.next[p]);
			if (info.next_offset == env.next[p] &&
			    (!durable || info.durable_offset == info.next_offset))
				break;
			if (rill_clock_now_ns() > deadline)
				fail_msg("%s: partition %u: next offset %llu, durable %llu after "
					 "%llu s; the model %llu",
					 what, p, (unsigned long long)info.next_offset,
					 (unsigned long long)info.durable_offset,
					 (unsigned long long)(SC_WAIT_NS / 1000000000u),
					 (unsigned long long)env.next[p]);
			usleep(1000);
		}
	}
}

static struct rill_client *sc_connect(uint32_t inflight_max)
{
	struct rill_client_config cfg;
	rill_client_config_default(&cfg);
	cfg.inflight_max = inflight_max;
	struct rill_client *c = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_connect(&c, env.address, &cfg, &err);
	if (rc != 0)
		fail_msg("connect to %s: %d (%s): %s", env.address, rc, rill_strerror(rc),
			 err.message);
	assert_non_null(c);
	return c;
}

/* ---- Setup and teardown --------------------------------------------------------------- */

static struct rill_engine_config sc_engine_config(void)
{
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = env.dir;
	cfg.shards = SC_SHARDS;
	cfg.pin = false;
	return cfg;
}

static int sc_teardown(void **state)
{
	(void)state;
	rill_client_close(env.producer);
	rill_client_close(env.earliest);
	rill_client_close(env.latest);
	env.producer = env.earliest = env.latest = NULL;
	if (env.server != NULL)
		rill_server_stop(env.server, SC_DRAIN_NS);
	env.server = NULL;
	if (env.engine != NULL)
		rill_engine_close(env.engine);
	env.engine = NULL;
	return test_dir_remove(env.dir) == 0 ? 0 : -1;
}

static int sc_setup(void **state)
{
	test_rng_init(&env.rng, 43);
	env.wall_start_ns = rill_clock_wall_ns();
	assert_int_equal(test_dir_make(env.dir, sizeof(env.dir), "server-client"), 0);
	struct rill_engine_config cfg = sc_engine_config();
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&env.engine, &cfg, &err);
	if (rc != 0)
		fail_msg("engine open: %s: %s", rill_strerror(rc), err.message);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	test_server_start(&env.server, env.engine, &sc, sc_teardown, state);
	assert_true(rill_server_port(env.server) != 0);
	snprintf(env.address, sizeof(env.address), "127.0.0.1:%u", rill_server_port(env.server));
	return 0;
}

/* ---- 1. Connect and administer -------------------------------------------------------- */

/* An ADMIN op on the producer's connection that must succeed; its answer parsed. */
static json_t *sc_admin(uint16_t op, const char *json, const char *what)
{
	return client_admin_json(env.producer, op, json, what);
}

static void sc_expect_topic_json(json_t *j, const char *what)
{
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *durability = json_string_value(json_object_get(j, "durability"));
	if (name == NULL || strcmp(name, SC_TOPIC) != 0 ||
	    json_integer_value(json_object_get(j, "partitions")) != SC_PARTITIONS ||
	    durability == NULL || strcmp(durability, "group") != 0) {
		char *text = json_dumps(j, JSON_COMPACT);
		fail_msg("%s: answered %s", what, text);
	}
}

static void sc_check_schemas(void)
{
	json_t *j = sc_admin(RILL_ADMIN_SCHEMAS, "{}", "SCHEMAS");
	json_t *list = json_object_get(j, "schemas");
	assert_true(json_is_array(list));
	bool found = false;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *entry = json_array_get(list, i);
		json_t *def = json_object_get(entry, "definition");
		const char *type = json_string_value(json_object_get(def, "type"));
		if (type == NULL || strcmp(type, SC_TYPE) != 0)
			continue;
		assert_false(found);
		found = true;
		assert_int_equal(json_integer_value(json_object_get(entry, "type_id")),
				 env.type_id);
		assert_int_equal(json_integer_value(json_object_get(def, "version")), 1);
		json_t *f0 = json_array_get(json_object_get(def, "fields"), 0);
		assert_string_equal(json_string_value(json_object_get(f0, "name")), "amount");
		assert_string_equal(json_string_value(json_object_get(f0, "type")), "i64");
	}
	if (!found) {
		char *text = json_dumps(j, JSON_COMPACT);
		fail_msg("SCHEMAS: no %s in %s", SC_TYPE, text);
	}
	json_decref(j);
}

static void sc_check_stat(void)
{
	json_t *j = sc_admin(RILL_ADMIN_STAT, "{}", "STAT");
	json_t *shards = json_object_get(j, "shards");
	assert_true(json_is_array(shards));
	assert_int_equal(json_array_size(shards), SC_SHARDS);
	const char *counters[] = {"partitions",      "events",   "duplicates", "refused",
				  "stalls",          "local",    "sleeps",     "snapshots",
				  "snapshot_errors", "preempted"};
	for (size_t i = 0; i < SC_SHARDS; i++) {
		json_t *shard = json_array_get(shards, i);
		assert_int_equal(json_integer_value(json_object_get(shard, "shard")), i);
		for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++)
			if (!json_is_integer(json_object_get(shard, counters[k])))
				fail_msg("STAT: shard %zu has no counter \"%s\"", i, counters[k]);
		json_t *latency = json_object_get(shard, "latency");
		const char *stages[] = {"ring", "apply", "applied", "durable", "sync"};
		for (size_t k = 0; k < sizeof(stages) / sizeof(stages[0]); k++)
			if (!json_is_integer(
				    json_object_get(json_object_get(latency, stages[k]), "count")))
				fail_msg("STAT: shard %zu has no \"%s\" latency", i, stages[k]);
	}
	assert_true(json_is_object(json_object_get(j, "server")));
	json_decref(j);
}

/* An admin error: a negative code, a message naming @field, the connection still usable. */
static void sc_expect_admin_error(uint16_t op, const char *json, int code, const char *field)
{
	char *answer = (char *)1;
	struct rill_client_error err = {{0}};
	int rc = rill_client_admin(env.producer, op, json, &answer, &err);
	if (rc != code || strstr(err.message, field) == NULL)
		fail_msg("ADMIN %u %s: %d (%s): \"%s\"; expected %d (%s) naming \"%s\"", op, json,
			 rc, rill_strerror(rc), err.message, code, rill_strerror(code), field);
	assert_null(answer);
	assert_int_equal(rill_client_ping(env.producer, &err), 0);
}

/* SCHEMA_REGISTER: the answer names the type id the engine's registry gave it. */
static void sc_register_schema(void)
{
	char json[512];
	snprintf(json, sizeof(json), "{\"schema\":%s,\"compat\":\"BACKWARD\"}", sc_schema_def);
	json_t *j = sc_admin(RILL_ADMIN_SCHEMA_REGISTER, json, "SCHEMA_REGISTER");
	env.schema = rill_schema_get(rill_engine_schemas(env.engine), SC_TYPE, 1);
	assert_non_null(env.schema);
	env.type_id = rill_schema_type_id(env.schema);
	assert_true(env.type_id != 0);
	assert_string_equal(json_string_value(json_object_get(j, "type")), SC_TYPE);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "type_id")), env.type_id);
	json_decref(j);
	assert_true(rill_schema_payload_bytes_max(env.schema) <= SC_PAYLOAD_BYTES);
	int f = rill_schema_field_index(env.schema, "amount");
	assert_true(f >= 0);
	env.amount_field = (uint32_t)f;
	f = rill_schema_field_index(env.schema, "sku");
	assert_true(f >= 0);
	env.sku_field = (uint32_t)f;
}

/* PROJECTION_CREATE: a sum of the amounts and a count, per key. */
static void sc_create_projections(void)
{
	json_t *j = sc_admin(RILL_ADMIN_PROJECTION_CREATE,
			     "{\"name\":\"" SC_SUM "\",\"topic\":\"" SC_TOPIC
			     "\",\"type\":\"" SC_TYPE "\",\"kind\":\"sum\",\"field\":\"amount\"}",
			     "PROJECTION_CREATE sum");
	assert_string_equal(json_string_value(json_object_get(j, "name")), SC_SUM);
	json_decref(j);
	j = sc_admin(RILL_ADMIN_PROJECTION_CREATE,
		     "{\"name\":\"" SC_COUNT "\",\"topic\":\"" SC_TOPIC "\",\"type\":\"" SC_TYPE
		     "\",\"kind\":\"count\"}",
		     "PROJECTION_CREATE count");
	assert_string_equal(json_string_value(json_object_get(j, "name")), SC_COUNT);
	json_decref(j);
}

/* The server's end of a TCP connection to @port in this process (the server runs here):
 * the stream socket bound to @port that is not listening. -1 when there is none. */
static int sc_server_end(uint16_t port)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int found = -1;
	struct dirent *de;
	while (found < 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name), listening = 1, type = 0;
		socklen_t len = sizeof(int);
		struct sockaddr_in sin;
		socklen_t sin_len = sizeof(sin);
		if (fd == dirfd(d) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
		    type != SOCK_STREAM ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening ||
		    getsockname(fd, (struct sockaddr *)&sin, &sin_len) != 0 ||
		    sin.sin_family != AF_INET || ntohs(sin.sin_port) != port)
			continue;
		found = fd;
	}
	closedir(d);
	return found;
}

/*
 * The server's connections have TCP keepalive: without it a client whose host vanished (no
 * FIN, no RST) kept its connection and its subscriptions' slots for good (a subscribed
 * connection has no idle timeout).
 */
static void sc_check_keepalive(void)
{
	int fd = sc_server_end(rill_server_port(env.server));
	if (fd < 0)
		fail_msg("no server end of the connection in /proc/self/fd");
	int on = 0, idle = 0, interval = 0, count = 0;
	socklen_t len = sizeof(int);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, &len), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, &len), 0);
	if (on == 0 || idle != 60 || interval != 10 || count != 3)
		fail_msg("the server's end: SO_KEEPALIVE %d, idle %d s, interval %d s, count %d",
			 on, idle, interval, count);
}

static void test_connect_and_admin(void **state)
{
	(void)state;
	env.producer = sc_connect(SC_PIPE_REQUESTS);
	struct rill_client_error err = {{0}};
	int rc = rill_client_ping(env.producer, &err);
	if (rc != 0)
		fail_msg("ping: %d (%s): %s", rc, rill_strerror(rc), err.message);
	assert_int_equal(rill_client_server_shards(env.producer), SC_SHARDS);
	assert_true(rill_client_frame_bytes_max(env.producer) >= (64u << 10));
	assert_true(rill_client_fd(env.producer) >= 0);
	assert_int_equal(rill_client_inflight(env.producer), 0);
	sc_check_keepalive(); /* the one connection so far: answered, so accepted */

	json_t *j =
		sc_admin(RILL_ADMIN_TOPIC_CREATE,
			 "{\"name\":\"" SC_TOPIC "\",\"partitions\":4,\"durability\":\"group\"}",
			 "TOPIC_CREATE");
	sc_expect_topic_json(j, "TOPIC_CREATE");
	json_decref(j);
	env.topic = rill_topic_find(env.engine, SC_TOPIC);
	assert_non_null(env.topic);
	assert_int_equal(rill_topic_partitions(env.topic), SC_PARTITIONS);
	assert_int_equal(rill_topic_config_get(env.topic)->durability, RILL_DURABILITY_GROUP);

	sc_register_schema();
	sc_create_projections();

	j = sc_admin(RILL_ADMIN_TOPIC_INFO, "{\"name\":\"" SC_TOPIC "\"}", "TOPIC_INFO");
	sc_expect_topic_json(j, "TOPIC_INFO");
	json_decref(j);
	sc_check_schemas();
	sc_check_stat();

	sc_expect_admin_error(RILL_ADMIN_TOPIC_CREATE,
			      "{\"name\":\"bad\",\"partitions\":1,\"durability\":\"sometimes\"}",
			      -EINVAL, "durability");
	assert_null(rill_topic_find(env.engine, "bad"));
	sc_expect_admin_error(RILL_ADMIN_TOPIC_INFO, "{\"name\":\"nosuch\"}", -ENOENT, "nosuch");
}

/* ---- 2. Blocking produce -------------------------------------------------------------- */

static void test_produce_blocking(void **state)
{
	(void)state;
	struct sc_batch *b = sc_batch_new();
	for (uint32_t i = 0; i < 20; i++) {
		char key[SC_KEY_BYTES];
		snprintf(key, sizeof(key), "k-%u", (unsigned)test_rng_below(&env.rng, 7));
		sc_add(b, key, sc_amount());
	}
	sc_produce(env.producer, b, RILL_ACKS_APPLIED, "20 events");
	for (uint32_t p = 0; p < SC_PARTITIONS; p++) /* offsets from 0: the model's were */
		assert_true(env.next[p] <= 20);
	assert_int_equal(env.next[0] + env.next[1] + env.next[2] + env.next[3], 20);
	assert_int_equal(rill_client_inflight(env.producer), 0);
	free(b);
	sc_wait_written(false, "after 20 events");
}

/* ---- 3. The idempotent producer ------------------------------------------------------- */

static void sc_idem_add(struct sc_batch *b, int64_t amount, uint64_t sequence)
{
	struct rill_record *r = sc_add(b, "k-idem", amount);
	r->producer_id = SC_PRODUCER_ID;
	r->sequence = sequence;
}

static void test_idempotent_producer(void **state)
{
	(void)state;
	struct rill_client_error err = {{0}};
	struct sc_batch *first = sc_batch_new();
	int64_t amounts[5];
	for (uint32_t s = 0; s < 5; s++) {
		amounts[s] = sc_amount();
		sc_idem_add(first, amounts[s], s);
	}
	uint32_t p = sc_partition("k-idem");
	sc_produce(env.producer, first, RILL_ACKS_APPLIED, "sequences 0 to 4");

	/* The retry of 3 and 4: acknowledged as duplicates, at their first offsets. */
	struct sc_batch *retry = sc_batch_new();
	sc_idem_add(retry, amounts[3], 3);
	sc_idem_add(retry, amounts[4], 4);
	assert_int_equal(rill_client_produce(env.producer, SC_TOPIC, retry->rec, 2,
					     RILL_ACKS_APPLIED, retry->acks, &err),
			 0);
	for (uint32_t i = 0; i < 2; i++) {
		const struct rill_client_ack *a = &retry->acks[i], *f = &first->acks[3 + i];
		if (a->error != 0 || !a->duplicate || a->partition != f->partition ||
		    a->offset != f->offset)
			fail_msg("the retry of sequence %u: error %d (%s: %s), duplicate %d, at "
				 "%u:%llu; the first at %u:%llu",
				 3 + i, a->error, rill_strerror(a->error), a->reason, a->duplicate,
				 a->partition, (unsigned long long)a->offset, f->partition,
				 (unsigned long long)f->offset);
	}

	/* A gap: sequence 10 after 4 is refused, with a reason, and not written. */
	struct sc_batch *gap = sc_batch_new();
	sc_idem_add(gap, sc_amount(), 10);
	assert_int_equal(rill_client_produce(env.producer, SC_TOPIC, gap->rec, 1, RILL_ACKS_APPLIED,
					     gap->acks, &err),
			 0);
	if (gap->acks[0].error != RILL_E_WRITE_SEQUENCE_GAP || gap->acks[0].reason[0] == '\0')
		fail_msg("sequence 10 after 4: error %d (%s), reason \"%s\"; expected %d (%s) "
			 "with a reason",
			 gap->acks[0].error, rill_strerror(gap->acks[0].error), gap->acks[0].reason,
			 RILL_E_WRITE_SEQUENCE_GAP, rill_strerror(RILL_E_WRITE_SEQUENCE_GAP));
	sc_wait_written(false, "after the retries and the gap");

	/* The producer goes on from where it was: sequence 5 is written. */
	struct sc_batch *next = sc_batch_new();
	sc_idem_add(next, sc_amount(), 5);
	sc_produce(env.producer, next, RILL_ACKS_APPLIED, "sequence 5 after the gap");
	assert_int_equal(next->acks[0].partition, p);

	/* A pipelining producer retries more than the last 8 kept: all of them duplicates,
	 * durable too, the older ones with their offset no longer known (UINT64_MAX). */
	struct sc_batch *more = sc_batch_new();
	for (uint64_t s = 6; s < 12; s++)
		sc_idem_add(more, sc_amount(), s);
	sc_produce(env.producer, more, RILL_ACKS_APPLIED, "sequences 6 to 11");
	struct sc_batch *all = sc_batch_new();
	for (uint64_t s = 0; s < 12; s++)
		sc_idem_add(all, 0, s);
	assert_int_equal(rill_client_produce(env.producer, SC_TOPIC, all->rec, 12,
					     RILL_ACKS_DURABLE, all->acks, &err),
			 0);
	for (uint32_t s = 0; s < 12; s++) {
		const struct rill_client_ack *a = &all->acks[s];
		uint64_t want = s < 4   ? UINT64_MAX
				: s < 5 ? first->acks[s].offset
				: s < 6 ? next->acks[0].offset
					: more->acks[s - 6].offset;
		if (a->error != 0 || !a->duplicate || a->offset != want)
			fail_msg("the retry of sequence %u of 0 to 11: error %d (%s: %s), "
				 "duplicate %d, offset %llu; expected a duplicate at %llu",
				 s, a->error, rill_strerror(a->error), a->reason, a->duplicate,
				 (unsigned long long)a->offset, (unsigned long long)want);
	}
	sc_wait_written(false, "after the retries older than the window");
	free(more);
	free(all);
	free(first);
	free(retry);
	free(gap);
	free(next);
}

/* ---- 3b. One connection, several topics ------------------------------------------------ */

/* Produce one event of @b's to @topic; returns the request's error, the ack in b->acks[0]. */
static int sc_produce_to(const char *topic, struct sc_batch *b)
{
	struct rill_client_error err = {{0}};
	return rill_client_produce(env.producer, topic, b->rec, b->count, RILL_ACKS_APPLIED,
				   b->acks, &err);
}

/*
 * The server remembers the topic a connection named last (a pipeline to one topic looks
 * it up once): switching topics on one connection, an unknown name, and a name that is a
 * prefix of the remembered one must each reach their own topic or their own error.
 */
static void test_topics_on_one_connection(void **state)
{
	(void)state;
	json_t *j = sc_admin(RILL_ADMIN_TOPIC_CREATE,
			     "{\"name\":\"sc-other\",\"partitions\":1,\"durability\":\"none\"}",
			     "TOPIC_CREATE sc-other");
	json_decref(j);
	struct sc_batch *b = sc_batch_new();
	sc_add(b, "k-topics", sc_amount());
	uint64_t other_next = 0;
	const char *steps[] = {SC_TOPIC,    "sc-other", "sc-other", "sc-othe", "sc-other",
			       "sc-others", SC_TOPIC,   "sc-other", SC_TOPIC};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (strcmp(steps[i], SC_TOPIC) == 0) {
			sc_produce(env.producer, b, RILL_ACKS_APPLIED, steps[i]);
			continue;
		}
		int rc = sc_produce_to(steps[i], b);
		if (strcmp(steps[i], "sc-other") != 0) {
			if (rc != -ENOENT)
				fail_msg("step %zu: topic %s: %d (%s); expected -ENOENT", i,
					 steps[i], rc, rill_strerror(rc));
			continue;
		}
		const struct rill_client_ack *a = &b->acks[0];
		if (rc != 0 || a->error != 0 || a->partition != 0 || a->offset != other_next)
			fail_msg("step %zu: topic sc-other: %d, ack error %d at %u:%llu; expected "
				 "0:%llu",
				 i, rc, a->error, a->partition, (unsigned long long)a->offset,
				 (unsigned long long)other_next);
		other_next++;
	}
	free(b);
	sc_wait_written(false, "after producing to several topics");
}

/* ---- 4. An unregistered type ---------------------------------------------------------- */

static void test_unknown_type(void **state)
{
	(void)state;
	struct rill_client_error err = {{0}};
	struct sc_batch *b = sc_batch_new();
	sc_add(b, "k-before", sc_amount());
	sc_add_as(b, "k-unknown-type", sc_amount(), env.type_id + 100, 1);
	sc_add_as(b, "k-unknown-version", sc_amount(), env.type_id, 2);
	sc_add(b, "k-after", sc_amount());
	int rc = rill_client_produce(env.producer, SC_TOPIC, b->rec, b->count, RILL_ACKS_APPLIED,
				     b->acks, &err);
	if (rc != 0)
		fail_msg("produce: %d (%s): %s", rc, rill_strerror(rc), err.message);
	sc_expect_written(b, 0, RILL_ACKS_APPLIED, "a valid event before refused ones");
	for (uint32_t i = 1; i <= 2; i++) {
		const struct rill_client_ack *a = &b->acks[i];
		if (a->error != RILL_E_WRITE_UNKNOWN_TYPE)
			fail_msg("event %u (%s, type %u version %u): error %d (%s), at %u:%llu; "
				 "expected %d (%s)",
				 i, b->ev[i].key, b->rec[i].type_id, b->rec[i].schema_version,
				 a->error, rill_strerror(a->error), a->partition,
				 (unsigned long long)a->offset, RILL_E_WRITE_UNKNOWN_TYPE,
				 rill_strerror(RILL_E_WRITE_UNKNOWN_TYPE));
	}
	sc_expect_written(b, 3, RILL_ACKS_APPLIED, "a valid event after refused ones");
	sc_wait_written(false, "after refused events"); /* no partition holds them */
	free(b);
}

/*
 * An event larger than the engine's rings take (about half of [engine] ring_bytes, 1 MiB
 * by default) though within the frame limit: refused in its ACK entry with -EMSGSIZE and
 * a reason naming the setting; it used to come with no reason at all.
 */
static void test_event_past_ring(void **state)
{
	(void)state;
	static uint8_t payload[640u << 10];
	struct rill_record rec = {.type_id = env.type_id,
				  .schema_version = 1,
				  .key = "k-huge",
				  .key_bytes = 6,
				  .payload = payload,
				  .payload_bytes = sizeof(payload)};
	struct rill_client_ack ack;
	struct rill_client_error err = {{0}};
	int rc =
		rill_client_produce(env.producer, SC_TOPIC, &rec, 1, RILL_ACKS_APPLIED, &ack, &err);
	if (rc != 0)
		fail_msg("produce: %d (%s): %s", rc, rill_strerror(rc), err.message);
	if (ack.error != -EMSGSIZE || strstr(ack.reason, "ring_bytes") == NULL)
		fail_msg("an event of %zu bytes: error %d (%s), reason \"%s\"; expected "
			 "-EMSGSIZE naming ring_bytes",
			 sizeof(payload), ack.error, rill_strerror(ack.error), ack.reason);
}

/* ---- 5. Pipelining -------------------------------------------------------------------- */

/* Corked: SC_PIPE_REQUESTS requests of SC_PIPE_BATCH events, then one too many. */
static void sc_pipe_send(struct sc_batch **b, uint64_t *ids)
{
	struct rill_client_error err = {{0}};
	rill_client_cork(env.producer);
	for (uint32_t r = 0; r < SC_PIPE_REQUESTS; r++) {
		b[r] = sc_batch_new();
		for (uint32_t i = 0; i < SC_PIPE_BATCH; i++) {
			char key[SC_KEY_BYTES];
			snprintf(key, sizeof(key), "p-%u", (unsigned)test_rng_below(&env.rng, 16));
			sc_add(b[r], key, sc_amount());
		}
		int rc = rill_client_produce_send(env.producer, SC_TOPIC, b[r]->rec, SC_PIPE_BATCH,
						  RILL_ACKS_APPLIED, &ids[r], &err);
		if (rc != 0)
			fail_msg("send %u: %d (%s): %s", r, rc, rill_strerror(rc), err.message);
		assert_int_equal(rill_client_inflight(env.producer), r + 1);
		for (uint32_t k = 0; k < r; k++)
			assert_true(ids[k] != ids[r]);
	}
	uint64_t extra_id = 0;
	err.message[0] = '\0';
	int rc = rill_client_produce_send(env.producer, SC_TOPIC, b[0]->rec, 1, RILL_ACKS_APPLIED,
					  &extra_id, &err);
	if (rc != -EAGAIN || err.message[0] == '\0')
		fail_msg("a send past inflight_max %u: %d (%s) \"%s\"; expected -EAGAIN",
			 SC_PIPE_REQUESTS, rc, rill_strerror(rc), err.message);
	assert_int_equal(rill_client_inflight(env.producer), SC_PIPE_REQUESTS);
	rc = rill_client_uncork(env.producer, &err);
	if (rc != 0)
		fail_msg("uncork: %d (%s): %s", rc, rill_strerror(rc), err.message);
}

/*
 * Pipelined requests of most of a frame each, many more bytes than the server holds for a
 * connection: the client stops at the server's in-flight bytes (-EAGAIN; announced in
 * HELLO_OK), and a send that waits for the socket reads the answers that come meanwhile.
 * Before, the client sent on while the server, its output full of ACKs nobody read, read
 * nothing: the send timed out, the connection broke, and every answer in flight was lost.
 */
static void test_pipelined_past_server_budget(void **state)
{
	(void)state;
	enum { EVENTS = 11000, REQUESTS = SC_PIPE_REQUESTS };
	struct rill_topic_config tc = {
		.name = "bulk", .partitions = 2, .durability = RILL_DURABILITY_NONE};
	struct rill_topic *t = NULL;
	struct rill_error_text terr = {{0}};
	if (rill_topic_create(env.engine, &tc, &t, &terr) != 0)
		fail_msg("topic bulk: %s", terr.message);
	struct sc_batch *one = sc_batch_new();
	sc_add(one, "b", 1);
	struct rill_record *recs = calloc(EVENTS, sizeof(*recs));
	struct rill_client_ack *acks = calloc(EVENTS, sizeof(*acks));
	assert_non_null(recs);
	assert_non_null(acks);
	for (uint32_t i = 0; i < EVENTS; i++)
		recs[i] = one->rec[0];
	struct rill_client *c = sc_connect(SC_PIPE_REQUESTS);
	struct rill_client_error err = {{0}};
	uint32_t sent = 0, answered = 0, budget_full = 0;
	while (answered < REQUESTS) {
		uint64_t id = 0;
		int rc = -EAGAIN;
		if (sent < REQUESTS)
			rc = rill_client_produce_send(c, "bulk", recs, EVENTS, RILL_ACKS_APPLIED,
						      &id, &err);
		if (rc == 0) {
			sent++;
			continue;
		}
		if (rc != -EAGAIN)
			fail_msg("send %u (%u answered): %d (%s): %s", sent, answered, rc,
				 rill_strerror(rc), err.message);
		budget_full += sent < REQUESTS;
		uint32_t count = 0;
		rc = rill_client_produce_wait(c, &id, acks, EVENTS, &count, SC_WAIT_NS, &err);
		if (rc != 0)
			fail_msg("wait %u of %u (%u sent): %d (%s): %s", answered + 1, REQUESTS,
				 sent, rc, rill_strerror(rc), err.message);
		assert_int_equal(count, EVENTS);
		for (uint32_t i = 0; i < EVENTS; i++)
			assert_int_equal(acks[i].error, 0);
		answered++;
	}
	/* The server's budget was reached (or this tested nothing), well before inflight_max. */
	assert_true(budget_full > 0);
	rill_client_close(c);
	free(recs);
	free(acks);
	free(one);
}

/* Wait until nothing is in flight: each request answered once, with one ack per event. */
static void sc_pipe_collect(struct sc_batch **b, const uint64_t *ids)
{
	struct rill_client_error err = {{0}};
	bool answered[SC_PIPE_REQUESTS] = {false};
	uint32_t acks_total = 0;
	while (rill_client_inflight(env.producer) > 0) {
		uint64_t id = 0;
		uint32_t count = 0;
		struct rill_client_ack acks[SC_BATCH_MAX];
		int rc = rill_client_produce_wait(env.producer, &id, acks, SC_BATCH_MAX, &count,
						  SC_WAIT_NS, &err);
		if (rc != 0)
			fail_msg("wait (%u requests in flight): %d (%s): %s",
				 rill_client_inflight(env.producer), rc, rill_strerror(rc),
				 err.message);
		uint32_t r = 0;
		while (r < SC_PIPE_REQUESTS && ids[r] != id)
			r++;
		if (r == SC_PIPE_REQUESTS || answered[r])
			fail_msg("request %llu answered: %s", (unsigned long long)id,
				 r == SC_PIPE_REQUESTS ? "never sent" : "a second time");
		answered[r] = true;
		assert_int_equal(count, SC_PIPE_BATCH);
		memcpy(b[r]->acks, acks, count * sizeof(acks[0]));
		acks_total += count;
	}
	assert_int_equal(acks_total, SC_PIPE_REQUESTS * SC_PIPE_BATCH);
	for (uint32_t r = 0; r < SC_PIPE_REQUESTS; r++)
		assert_true(answered[r]);
	uint32_t count = 1;
	int rc = rill_client_produce_wait(env.producer, NULL, NULL, 0, &count, SC_QUIET_NS, &err);
	assert_int_equal(rc, -ENODATA);
	assert_int_equal(count, 0);
}

static void test_pipelined(void **state)
{
	(void)state;
	struct sc_batch **b = calloc(SC_PIPE_REQUESTS, sizeof(*b));
	uint64_t ids[SC_PIPE_REQUESTS];
	assert_non_null(b);
	sc_pipe_send(b, ids);
	sc_pipe_collect(b, ids);
	/* In the order sent, each partition's offsets follow on from the model's. */
	for (uint32_t r = 0; r < SC_PIPE_REQUESTS; r++) {
		char what[64];
		snprintf(what, sizeof(what), "pipelined request %u", r);
		for (uint32_t i = 0; i < SC_PIPE_BATCH; i++)
			sc_expect_written(b[r], i, RILL_ACKS_APPLIED, what);
		free(b[r]);
	}
	free(b);
	sc_wait_written(false, "after the pipelined requests");
}

/* ---- 6. Durable acks and queries ------------------------------------------------------ */

static void sc_expect_value(const char *name, const char *key,
			    const struct rill_client_query_options *q, struct sc_fold f, bool sum,
			    const char *what)
{
	struct rill_projection_value v;
	struct rill_client_error err = {{0}};
	memset(&v, 0, sizeof(v));
	int rc = rill_client_query(env.producer, name, key, strlen(key), q, &v, &err);
	if (rc != 0)
		fail_msg("%s: query %s for %s: %d (%s): %s", what, name, key, rc, rill_strerror(rc),
			 err.message);
	if (v.count != f.count || v.offset != f.last || (sum && v.i64 != f.sum))
		fail_msg("%s: %s for %s: count %llu, value %lld, offset %llu; the fold: count "
			 "%llu, sum %lld, offset %llu",
			 what, name, key, (unsigned long long)v.count, (long long)v.i64,
			 (unsigned long long)v.offset, (unsigned long long)f.count,
			 (long long)f.sum, (unsigned long long)f.last);
}

static void sc_expect_query_error(const char *name, const char *key,
				  const struct rill_client_query_options *q, int code,
				  const char *what)
{
	struct rill_projection_value v;
	struct rill_client_error err = {{0}};
	int rc = rill_client_query(env.producer, name, key, strlen(key), q, &v, &err);
	if (rc != code)
		fail_msg("%s: %d (%s): %s; expected %d (%s)", what, rc, rill_strerror(rc),
			 err.message, code, rill_strerror(code));
}

static void test_durable_and_queries(void **state)
{
	(void)state;
	struct sc_batch *b = sc_batch_new();
	for (uint32_t i = 0; i < 12; i++) {
		char key[SC_KEY_BYTES];
		snprintf(key, sizeof(key), "k-other-%u", i);
		sc_add(b, i % 3 == 1 ? key : SC_FOLD_KEY, sc_amount());
	}
	assert_string_equal(b->ev[b->count - 1].key, SC_FOLD_KEY);
	uint32_t p = sc_partition(SC_FOLD_KEY);
	sc_produce(env.producer, b, RILL_ACKS_DURABLE, "durable acks");
	for (uint32_t i = 0; i < b->count; i++)
		assert_true(b->acks[i].offset != UINT64_MAX);
	const struct rill_client_ack *last = &b->acks[b->count - 1];
	assert_int_equal(last->partition, p);

	struct rill_client_query_options q = {.has_token = true,
					      .token_partition = last->partition,
					      .token_offset = last->offset,
					      .timeout_ms = 5000};
	struct sc_fold all = sc_fold(SC_FOLD_KEY, UINT64_MAX);
	assert_int_equal(all.last, last->offset);
	sc_expect_value(SC_SUM, SC_FOLD_KEY, &q, all, true, "read your writes");
	sc_expect_value(SC_COUNT, SC_FOLD_KEY, &q, all, false, "read your writes");
	sc_expect_value(SC_SUM, SC_FOLD_KEY, NULL, all, true, "the current value");

	/* As of an earlier offset of the key's partition: the fold up to it. */
	uint64_t earlier = b->acks[3].offset; /* the key's third event */
	assert_string_equal(b->ev[3].key, SC_FOLD_KEY);
	struct rill_client_query_options as_of = {.as_of_offset = true, .as_of = earlier};
	sc_expect_value(SC_SUM, SC_FOLD_KEY, &as_of, sc_fold(SC_FOLD_KEY, earlier), true,
			"as of an earlier offset");
	sc_expect_value(SC_COUNT, SC_FOLD_KEY, &as_of, sc_fold(SC_FOLD_KEY, earlier), false,
			"as of an earlier offset");
	/* An offset of another key between two of this key's: the fold up to it too. */
	uint64_t between = b->acks[5].offset - 1;
	sc_expect_value(SC_SUM, SC_FOLD_KEY,
			&(struct rill_client_query_options){.as_of_offset = true, .as_of = between},
			sc_fold(SC_FOLD_KEY, between), true, "as of an offset between two");
	/* Past the end, up to the largest offset there is: the value now. */
	sc_expect_value(
		SC_SUM, SC_FOLD_KEY,
		&(struct rill_client_query_options){.as_of_offset = true, .as_of = UINT64_MAX}, all,
		true, "as of the largest offset");
	if (b->acks[0].offset > 0) /* before its first event the key has no value */
		sc_expect_query_error(SC_SUM, SC_FOLD_KEY,
				      &(struct rill_client_query_options){
					      .as_of_offset = true, .as_of = b->acks[0].offset - 1},
				      -ENOENT, "as of an offset before the key's first event");

	sc_expect_query_error("nosuch", SC_FOLD_KEY, NULL, -ENOENT, "an unknown projection");
	sc_expect_query_error(SC_SUM, "k-never", NULL, -ENOENT, "a key never seen");
	free(b);
}

/* ---- 7. Subscriptions ----------------------------------------------------------------- */

/* @ev must be the model's event at its place: key, type and payload. */
static void sc_expect_event(const struct rill_client_event *ev, const struct sc_event *e,
			    const char *what)
{
	const struct rill_record *r = &ev->record;
	if (r->key_bytes != strlen(e->key) || memcmp(r->key, e->key, r->key_bytes) != 0 ||
	    r->type_id != env.type_id || r->schema_version != 1)
		fail_msg("%s: %u:%llu holds key %.*s, type %u version %u; sent key %s", what,
			 ev->partition, (unsigned long long)ev->offset, (int)r->key_bytes,
			 (const char *)r->key, r->type_id, r->schema_version, e->key);
	/* Sent with timestamp 0: the server stamped them when it published them. The window
	 * has SC_WALL_SLACK_NS each side, for a wall clock stepped during the test. */
	uint64_t wall = rill_clock_wall_ns() + SC_WALL_SLACK_NS;
	if (r->timestamp_ns + SC_WALL_SLACK_NS < env.wall_start_ns || r->timestamp_ns > wall)
		fail_msg("%s: %u:%llu stamped %llu, outside the test's %llu .. %llu", what,
			 ev->partition, (unsigned long long)ev->offset,
			 (unsigned long long)r->timestamp_ns, (unsigned long long)env.wall_start_ns,
			 (unsigned long long)wall);
	struct rill_schema_error serr = {{0}};
	if (rill_schema_validate(env.schema, r->payload, r->payload_bytes, &serr) != 0)
		fail_msg("%s: %u:%llu: the payload: %s", what, ev->partition,
			 (unsigned long long)ev->offset, serr.message);
	struct rill_field_ref amount, sku;
	assert_int_equal(rill_schema_field_ref(env.schema, "amount", &amount), 0);
	assert_int_equal(rill_schema_field_ref(env.schema, "sku", &sku), 0);
	uint32_t sku_bytes = 0;
	const char *got = rill_field_var(r->payload, sku, &sku_bytes);
	char want[SC_SKU_BYTES];
	sc_sku(e->amount, want);
	if (rill_field_i64(r->payload, amount) != e->amount || sku_bytes != strlen(want) ||
	    memcmp(got, want, sku_bytes) != 0)
		fail_msg("%s: %u:%llu holds amount %lld, sku %.*s; sent %lld, %s", what,
			 ev->partition, (unsigned long long)ev->offset,
			 (long long)rill_field_i64(r->payload, amount), (int)sku_bytes, got,
			 (long long)e->amount, want);
}

/* Subscribe @c to every partition from @from: the partitions opened, checked. */
static void sc_subscribe(struct rill_client *c, enum rill_client_from from,
			 struct rill_client_partition *parts)
{
	uint32_t n = 0;
	struct rill_client_error err = {{0}};
	int rc = rill_client_subscribe(c, SC_TOPIC, UINT32_MAX, from, 0, parts, &n, &err);
	if (rc != 0)
		fail_msg("subscribe from %d: %d (%s): %s", from, rc, rill_strerror(rc),
			 err.message);
	assert_int_equal(n, SC_PARTITIONS);
	bool seen[SC_PARTITIONS] = {false};
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = parts[i].partition;
		assert_true(p < SC_PARTITIONS);
		assert_false(seen[p]);
		seen[p] = true;
		if (parts[i].end_offset != env.next[p] ||
		    parts[i].first_offset != (from == RILL_CLIENT_FROM_LATEST ? env.next[p] : 0))
			fail_msg("subscribe from %d: partition %u opened at %llu, end %llu; it "
				 "holds %llu events",
				 from, p, (unsigned long long)parts[i].first_offset,
				 (unsigned long long)parts[i].end_offset,
				 (unsigned long long)env.next[p]);
	}
}

static void sc_expect_quiet(struct rill_client *c, const char *what)
{
	struct rill_client_event ev = {0};
	struct rill_client_error err = {{0}};
	int rc = rill_client_next(c, &ev, SC_QUIET_NS, &err);
	if (rc != 0)
		fail_msg("%s: expected no event within 100 ms, got %d%s%s (%u:%llu)", what, rc,
			 rc < 0 ? ": " : "", rc < 0 ? err.message : "", ev.partition,
			 (unsigned long long)ev.offset);
}

/* Read from @c until each partition reaches @end: every event once, in order. */
static void sc_read_until(struct rill_client *c, uint64_t *at, const uint64_t *end,
			  const char *what)
{
	for (;;) {
		bool done = true;
		for (uint32_t p = 0; p < SC_PARTITIONS; p++)
			done = done && at[p] == end[p];
		if (done)
			return;
		struct rill_client_event ev = {0};
		struct rill_client_error err = {{0}};
		int rc = rill_client_next(c, &ev, SC_WAIT_NS, &err);
		if (rc != 1)
			fail_msg("%s: %s; at %llu %llu %llu %llu of %llu %llu %llu %llu", what,
				 rc == 0 ? "no event in time" : err.message,
				 (unsigned long long)at[0], (unsigned long long)at[1],
				 (unsigned long long)at[2], (unsigned long long)at[3],
				 (unsigned long long)end[0], (unsigned long long)end[1],
				 (unsigned long long)end[2], (unsigned long long)end[3]);
		uint32_t p = ev.partition;
		if (p >= SC_PARTITIONS || ev.offset != at[p] || ev.offset >= end[p])
			fail_msg("%s: an event at %u:%llu; expected partition %u's next at %llu, "
				 "below %llu",
				 what, p, (unsigned long long)ev.offset, p,
				 (unsigned long long)(p < SC_PARTITIONS ? at[p] : 0),
				 (unsigned long long)(p < SC_PARTITIONS ? end[p] : 0));
		sc_expect_event(&ev, &env.log[p][ev.offset], what);
		at[p]++;
	}
}

static void test_subscriptions(void **state)
{
	(void)state;
	sc_wait_written(true, "before subscribing");
	struct rill_client_partition parts[RILL_CLIENT_PARTITIONS_MAX];
	env.earliest = sc_connect(0);
	sc_subscribe(env.earliest, RILL_CLIENT_FROM_EARLIEST, parts);
	uint64_t at[SC_PARTITIONS] = {0}, end[SC_PARTITIONS];
	memcpy(end, env.next, sizeof(end));
	sc_read_until(env.earliest, at, end, "from the earliest");
	sc_expect_quiet(env.earliest, "from the earliest, caught up");

	env.latest = sc_connect(0);
	sc_subscribe(env.latest, RILL_CLIENT_FROM_LATEST, parts);
	sc_expect_quiet(env.latest, "from the latest");

	/* A subscribed connection only reads events. */
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_ping(env.latest, &err), -EINVAL);

	/* One partition from an offset past its end: refused, saying so and where it ends
	 * (it said "Numerical result out of range"). */
	struct rill_client *past = sc_connect(0);
	uint64_t beyond = env.next[0] + 100;
	int rc = rill_client_subscribe(past, SC_TOPIC, 0, RILL_CLIENT_FROM_OFFSET, beyond, NULL,
				       NULL, &err);
	char want[96];
	snprintf(want, sizeof(want), "offset %llu is past its end (its next offset is %llu)",
		 (unsigned long long)beyond, (unsigned long long)env.next[0]);
	if (rc != -ERANGE || strstr(err.message, want) == NULL)
		fail_msg("subscribe past the end: %d \"%s\"; expected -ERANGE saying \"%s\"", rc,
			 err.message, want);
	rill_client_close(past);

	struct sc_batch *b = sc_batch_new();
	for (uint32_t i = 0; i < 3; i++) {
		char key[SC_KEY_BYTES];
		snprintf(key, sizeof(key), "k-late-%u", i);
		sc_add(b, key, sc_amount());
	}
	uint64_t before[SC_PARTITIONS];
	memcpy(before, env.next, sizeof(before));
	sc_produce(env.producer, b, RILL_ACKS_DURABLE, "three more");
	memcpy(end, env.next, sizeof(end));
	memcpy(at, before, sizeof(at));
	sc_read_until(env.latest, at, end, "from the latest, three more");
	sc_expect_quiet(env.latest, "from the latest, after the three");
	memcpy(at, before, sizeof(at));
	sc_read_until(env.earliest, at, end, "from the earliest, three more");
	sc_expect_quiet(env.earliest, "from the earliest, after the three");
	free(b);
}

/* ---- 8. Acks none --------------------------------------------------------------------- */

static void test_acks_none(void **state)
{
	(void)state;
	struct sc_batch *b = sc_batch_new();
	for (uint32_t i = 0; i < 10; i++) {
		char key[SC_KEY_BYTES];
		snprintf(key, sizeof(key), "k-none-%u", (unsigned)test_rng_below(&env.rng, 5));
		sc_add(b, key, sc_amount());
	}
	sc_produce(env.producer, b, RILL_ACKS_NONE, "acks none");
	sc_wait_written(true, "after acks none"); /* where the model put them: checked at 9 */
	free(b);
}

/* ---- 9. Stop under load --------------------------------------------------------------- */

/*
 * A pipelined client in a thread of its own, sending durable requests of its own events
 * (event i: key "s-<i mod 32>", amount SC_STOP_AMOUNT_BASE + i) until its connection
 * breaks. It never calls cmocka: what it finds wrong goes into @failure.
 */
struct sc_stop {
	uint32_t late_answers; /* collected after the send that failed */
	struct rill_client *client;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t answered; /* under lock: requests answered */
	bool finished;     /* under lock */
	uint32_t sent;
	uint64_t ids[SC_STOP_REQUESTS_MAX];
	bool done[SC_STOP_REQUESTS_MAX];
	struct {
		uint32_t partition;
		uint64_t offset;
	} acks[SC_STOP_EVENTS_MAX];
	int rc;                                /* what ended it */
	char message[RILL_CLIENT_ERROR_BYTES]; /* and its message */
	int fd_after, inflight_after, ping_after;
	char failure[512];
};

static void sc_stop_event_key(uint32_t index, char *key)
{
	snprintf(key, SC_KEY_BYTES, "s-%u", index % SC_STOP_KEYS);
}

static void sc_stop_fail(struct sc_stop *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sc_stop_fail(struct sc_stop *s, const char *fmt, ...)
{
	if (s->failure[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
}

/* The request sent with @id, by binary search (ids grow with each send), or -1. */
static int sc_stop_request(const struct sc_stop *s, uint64_t id)
{
	uint32_t lo = 0, hi = s->sent;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->sent && s->ids[lo] == id ? (int)lo : -1;
}

static int sc_stop_send_some(struct sc_stop *s, struct sc_batch *b, struct rill_client_error *err)
{
	int rc = 0;
	rill_client_cork(s->client);
	while (s->sent < SC_STOP_REQUESTS_MAX &&
	       rill_client_inflight(s->client) < SC_PIPE_REQUESTS) {
		for (uint32_t i = 0; i < SC_STOP_BATCH; i++) {
			uint32_t index = s->sent * SC_STOP_BATCH + i;
			char key[SC_KEY_BYTES];
			sc_stop_event_key(index, key);
			if (sc_build(b, i, key, SC_STOP_AMOUNT_BASE + index, env.type_id, 1) != 0)
				sc_stop_fail(s, "building event %u", index);
		}
		rc = rill_client_produce_send(s->client, SC_TOPIC, b->rec, SC_STOP_BATCH,
					      RILL_ACKS_DURABLE, &s->ids[s->sent], err);
		if (rc != 0)
			break;
		if (s->sent > 0 && s->ids[s->sent] <= s->ids[s->sent - 1])
			sc_stop_fail(s, "request ids do not grow: %llu after %llu",
				     (unsigned long long)s->ids[s->sent],
				     (unsigned long long)s->ids[s->sent - 1]);
		s->sent++;
	}
	int urc = rill_client_uncork(s->client, rc == 0 ? err : NULL);
	return rc != 0 ? rc : urc;
}

/* One answer: it must be to a request sent and not yet answered, with durable acks. */
static void sc_stop_answer(struct sc_stop *s, uint64_t id, const struct rill_client_ack *acks,
			   uint32_t count)
{
	int r = sc_stop_request(s, id);
	if (r < 0 || s->done[r]) {
		sc_stop_fail(s, "request %llu answered %s", (unsigned long long)id,
			     r < 0 ? "but never sent" : "twice");
		return;
	}
	if (count != SC_STOP_BATCH)
		sc_stop_fail(s, "request %d: %u acks for %u events", r, count, SC_STOP_BATCH);
	for (uint32_t i = 0; i < count && i < SC_STOP_BATCH; i++) {
		uint32_t index = (uint32_t)r * SC_STOP_BATCH + i;
		char key[SC_KEY_BYTES];
		sc_stop_event_key(index, key);
		if (acks[i].error != 0 || acks[i].duplicate || acks[i].offset == UINT64_MAX ||
		    acks[i].partition != sc_partition(key))
			sc_stop_fail(s, "event %u: error %d (%s), duplicate %d, at %u:%llu", index,
				     acks[i].error, acks[i].reason, acks[i].duplicate,
				     acks[i].partition, (unsigned long long)acks[i].offset);
		s->acks[index].partition = acks[i].partition;
		s->acks[index].offset = acks[i].offset;
	}
	s->done[r] = true;
	pthread_mutex_lock(&s->lock);
	s->answered++;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *sc_stop_main(void *arg)
{
	struct sc_stop *s = arg;
	struct sc_batch *b = calloc(1, sizeof(*b));
	struct rill_client_ack *acks = calloc(SC_BATCH_MAX, sizeof(*acks));
	struct rill_client_error err = {{0}};
	uint64_t deadline = rill_clock_now_ns() + SC_STOP_RUN_NS;
	int rc = b != NULL && acks != NULL ? 0 : -ENOMEM;
	while (rc == 0 && rill_clock_now_ns() < deadline) {
		rc = sc_stop_send_some(s, b, &err);
		if (rc != 0)
			break;
		if (rill_client_inflight(s->client) == 0) { /* all sent and answered: wait */
			rc = rill_client_ping(s->client, &err);
			usleep(1000);
			continue;
		}
		uint64_t id = 0;
		uint32_t count = 0;
		rc = rill_client_produce_wait(s->client, &id, acks, SC_BATCH_MAX, &count,
					      SC_WAIT_NS, &err);
		if (rc == 0)
			sc_stop_answer(s, id, acks, count);
	}
	s->rc = rc;
	snprintf(s->message, sizeof(s->message), "%s", err.message);
	/* A send the server no longer reads fails, but the answers it sent before are still
	 * collected, to the end of its stream (rill_client_produce_send's contract). */
	while ((rc == -EPIPE || rc == -ECONNRESET) && rill_client_inflight(s->client) > 0) {
		uint64_t id = 0;
		uint32_t count = 0;
		int got = rill_client_produce_wait(s->client, &id, acks, SC_BATCH_MAX, &count,
						   SC_WAIT_NS, NULL);
		if (got != 0)
			break;
		sc_stop_answer(s, id, acks, count);
		s->late_answers++;
	}
	s->fd_after = rill_client_fd(s->client);
	s->inflight_after = (int)rill_client_inflight(s->client);
	s->ping_after = rill_client_ping(s->client, NULL);
	free(b);
	free(acks);
	pthread_mutex_lock(&s->lock);
	s->finished = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Wait until the stop client has @answered answers (or has ended). */
static void sc_stop_wait_answers(struct sc_stop *s, uint32_t answered)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(SC_WAIT_NS / 1000000000u);
	pthread_mutex_lock(&s->lock);
	int rc = 0;
	while (rc == 0 && s->answered < answered && !s->finished)
		rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
	pthread_mutex_unlock(&s->lock);
}

/* Partition @p of the reopened engine, offset by offset: the model's events, then only the
 * stop client's, each acknowledged one at its acknowledged place. */
static void sc_verify_partition(struct rill_engine *e, struct rill_topic *t, uint32_t p,
				struct sc_stop *s, bool *found)
{
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(e, t, p, UINT64_MAX, &info, NULL), 0);
	if (info.next_offset < env.next[p] || info.durable_offset != info.next_offset)
		fail_msg("reopened: partition %u: next %llu, durable %llu; the model holds %llu", p,
			 (unsigned long long)info.next_offset,
			 (unsigned long long)info.durable_offset, (unsigned long long)env.next[p]);
	struct rill_field_ref amount_ref;
	assert_int_equal(rill_schema_field_ref(env.schema, "amount", &amount_ref), 0);
	struct rill_subscription *sub;
	assert_int_equal(rill_subscribe(e, t, p, 0, &sub), 0);
	for (uint64_t o = 0; o < info.next_offset; o++) {
		struct rill_client_event ev = {.partition = p};
		int rc = rill_subscription_next(sub, &ev.record, &ev.offset, SC_WAIT_NS);
		if (rc != 1 || ev.offset != o)
			fail_msg("reopened: partition %u: reading offset %llu: %d, offset %llu", p,
				 (unsigned long long)o, rc, (unsigned long long)ev.offset);
		if (o < env.next[p]) {
			sc_expect_event(&ev, &env.log[p][o], "reopened");
			continue;
		}
		int64_t amount = rill_field_i64(ev.record.payload, amount_ref);
		int64_t index = amount - SC_STOP_AMOUNT_BASE;
		if (index < 0 || index >= (int64_t)s->sent * SC_STOP_BATCH || found[index])
			fail_msg("reopened: %u:%llu holds amount %lld: %s", p,
				 (unsigned long long)o, (long long)amount,
				 index >= 0 && index < (int64_t)s->sent * SC_STOP_BATCH
					 ? "a second time"
					 : "never sent there");
		struct sc_event want = {.amount = amount};
		sc_stop_event_key((uint32_t)index, want.key);
		sc_expect_event(&ev, &want, "reopened, the stop client's");
		bool acked = s->done[index / SC_STOP_BATCH];
		if (acked && (s->acks[index].partition != p || s->acks[index].offset != o))
			fail_msg("reopened: stop event %lld at %u:%llu, acknowledged at %u:%llu",
				 (long long)index, p, (unsigned long long)o,
				 s->acks[index].partition,
				 (unsigned long long)s->acks[index].offset);
		found[index] = true;
	}
	assert_int_equal(rill_subscription_close(sub), 0);
}

/* Reopen the engine: every event of the model and every durably acknowledged one there. */
static void sc_verify_reopened(struct sc_stop *s)
{
	struct rill_engine_config cfg = sc_engine_config();
	struct rill_error_text err = {{0}};
	struct rill_engine *e = NULL;
	int rc = rill_engine_open(&e, &cfg, &err);
	if (rc != 0)
		fail_msg("reopen: %s: %s", rill_strerror(rc), err.message);
	struct rill_topic *t = rill_topic_find(e, SC_TOPIC);
	assert_non_null(t);
	env.topic = t;
	env.schema = rill_schema_get(rill_engine_schemas(e), SC_TYPE, 1);
	assert_non_null(env.schema);
	assert_int_equal(rill_schema_type_id(env.schema), env.type_id);
	bool *found = calloc(SC_STOP_EVENTS_MAX, sizeof(*found));
	assert_non_null(found);
	for (uint32_t p = 0; p < SC_PARTITIONS; p++)
		sc_verify_partition(e, t, p, s, found);
	uint32_t acked = 0, extra = 0;
	for (uint32_t i = 0; i < s->sent * SC_STOP_BATCH; i++) {
		bool was_acked = s->done[i / SC_STOP_BATCH];
		if (was_acked && !found[i])
			fail_msg("reopened: stop event %u, durably acknowledged at %u:%llu, is not "
				 "in the log",
				 i, s->acks[i].partition, (unsigned long long)s->acks[i].offset);
		acked += was_acked;
		extra += !was_acked && found[i];
	}
	printf("stop: %u requests sent, %u answered (%u events; %u answers after a failed "
	       "send), %u events of unanswered requests in the log; the client's end: %d (%s)\n",
	       s->sent, s->answered, acked, s->late_answers, extra, s->rc, s->message);
	/* The projections are rebuilt to the same values. */
	struct rill_projection_value v;
	struct sc_fold f = sc_fold(SC_FOLD_KEY, UINT64_MAX);
	assert_int_equal(rill_query(e, SC_SUM, SC_FOLD_KEY, strlen(SC_FOLD_KEY), NULL, 0, &v), 0);
	assert_int_equal(v.count, f.count);
	assert_int_equal(v.i64, f.sum);
	free(found);
	assert_int_equal(rill_engine_close(e), 0);
	env.topic = NULL;
	env.schema = NULL;
}

static void test_stop_drains(void **state)
{
	(void)state;
	struct sc_stop *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->client = sc_connect(SC_PIPE_REQUESTS);
	assert_int_equal(pthread_create(&s->thread, NULL, sc_stop_main, s), 0);
	sc_stop_wait_answers(s, SC_STOP_ANSWERED);
	int rc = rill_server_stop(env.server, SC_DRAIN_NS);
	env.server = NULL;
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	if (rc != 0)
		fail_msg("rill_server_stop: %d (%s)", rc, rill_strerror(rc));
	if (s->failure[0] != '\0')
		fail_msg("the stopped client: %s", s->failure);
	if (s->answered < SC_STOP_ANSWERED)
		fail_msg("the stopped client had %u answers (ended by %d: %s)", s->answered, s->rc,
			 s->message);
	/* What ended it is the broken connection, and it owes nothing after. */
	if (s->rc == 0 || s->fd_after >= 0 || s->inflight_after != 0 || s->ping_after != -ENOTCONN)
		fail_msg("the stopped client ended by %d (%s): fd %d, %d requests in flight, a "
			 "ping after: %d; expected a connection error",
			 s->rc, s->message, s->fd_after, s->inflight_after, s->ping_after);
	uint32_t unanswered = 0;
	for (uint32_t r = 0; r < s->sent; r++)
		unanswered += !s->done[r];
	assert_int_equal(s->answered + unanswered, s->sent);
	rill_client_close(s->client);

	/* The other connections are closed too; the engine closes cleanly. */
	struct rill_client_error err = {{0}};
	assert_true(rill_client_ping(env.producer, &err) < 0);
	rill_client_close(env.producer);
	rill_client_close(env.earliest);
	rill_client_close(env.latest);
	env.producer = env.earliest = env.latest = NULL;
	rc = rill_engine_close(env.engine);
	env.engine = NULL;
	if (rc != 0)
		fail_msg("rill_engine_close after the server stopped: %d (%s)", rc,
			 rill_strerror(rc));
	sc_verify_reopened(s);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_and_admin),
		cmocka_unit_test(test_produce_blocking),
		cmocka_unit_test(test_idempotent_producer),
		cmocka_unit_test(test_topics_on_one_connection),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_event_past_ring),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_pipelined_past_server_budget),
		cmocka_unit_test(test_durable_and_queries),
		cmocka_unit_test(test_subscriptions),
		cmocka_unit_test(test_acks_none),
		cmocka_unit_test(test_stop_drains),
	};
	return cmocka_run_group_tests_name("server_client", tests, sc_setup, sc_teardown);
}
