/*
 * Shared by the UDP ingress tests (tests/io/test_udp_ingress.c, tests/integration/
 * test_dpdk.c): an engine in a temporary directory with one schema and two topics (one of
 * durability none, one of durability group), event datagrams built the way a sender builds
 * them (a PRODUCE frame whose request_id is the datagram sequence), and a read-back of
 * every partition through subscriptions that fails on anything the test did not send
 * valid. Each valid event carries a unique amount (its id); every event of a malformed
 * datagram carries UE_POISON. Include after tests/common/test_util.h.
 */
#ifndef RILL_TESTS_UDP_EVENTS_H
#define RILL_TESTS_UDP_EVENTS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "io/wire.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "tests/common/test_dir.h"

#define UE_TOPIC          "orders"   /* durability none */
#define UE_TOPIC_DURABLE  "payments" /* durability group */
#define UE_PARTITIONS     4u
#define UE_POISON         (-7777) /* the amount of every event of a malformed datagram */
#define UE_EVENTS_MAX     32768u  /* events one test reads back */
#define UE_WAIT_NS        (5ull * 1000000000u) /* "at once", with room for a loaded machine */
#define UE_QUIET_NS       (50ull * 1000000u)   /* nothing more comes in this long: done */
#define UE_DATAGRAM_BYTES 1400u

static const char ue_schema_json[] = "{\"type\":\"OrderPlaced\",\"version\":1,\"fields\":[{"
				     "\"name\":\"amount\",\"type\":\"i64\"},"
				     "{\"name\":\"sku\",\"type\":\"string\",\"max_length\":16}]}";

struct ue_env {
	char dir[64];
	struct rill_engine *engine;
	const struct rill_schema *schema;
	struct rill_topic *topic;         /* UE_TOPIC */
	struct rill_topic *topic_durable; /* UE_TOPIC_DURABLE */
	struct rill_field_ref amount_ref;
};

static inline void ue_sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};
	nanosleep(&ts, NULL);
}

/* An engine of @shards shards (unpinned; @ring_bytes per producer ring each way, 0: the
 * default) in a fresh directory, the schema, both topics. */
static inline void ue_open(struct ue_env *e, const char *name, uint32_t shards, uint32_t ring_bytes)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(test_dir_make(e->dir, sizeof(e->dir), name), 0);
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = e->dir;
	cfg.shards = shards;

	if (ring_bytes != 0) {
		cfg.ring_bytes = ring_bytes;
		cfg.ack_ring_bytes = ring_bytes;
	}
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&e->engine, &cfg, &err);
	if (rc != 0)
		fail_msg("engine open in %s: %s: %s", e->dir, rill_strerror(rc), err.message);
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(e->engine), ue_schema_json,
				  strlen(ue_schema_json), -1, &e->schema, &serr);
	if (rc != 0)
		fail_msg("schema: %s: %s", rill_strerror(rc), serr.message);
	assert_int_equal(rill_schema_field_ref(e->schema, "amount", &e->amount_ref), 0);
	struct rill_topic_config tc = {.name = UE_TOPIC, .partitions = UE_PARTITIONS};
	rc = rill_topic_create(e->engine, &tc, &e->topic, &err);
	if (rc != 0)
		fail_msg("topic %s: %s: %s", UE_TOPIC, rill_strerror(rc), err.message);
	tc = (struct rill_topic_config){.name = UE_TOPIC_DURABLE,
					.partitions = UE_PARTITIONS,
					.durability = RILL_DURABILITY_GROUP};
	rc = rill_topic_create(e->engine, &tc, &e->topic_durable, &err);
	if (rc != 0)
		fail_msg("topic %s: %s: %s", UE_TOPIC_DURABLE, rill_strerror(rc), err.message);
}

/* Close the engine (if open) and remove its directory. */
static inline int ue_close(struct ue_env *e)
{
	int rc = 0;
	if (e->engine != NULL)
		rc = rill_engine_close(e->engine);
	e->engine = NULL;
	if (e->dir[0] != '\0') {
		if (test_dir_remove(e->dir) != 0)
			rc = -EIO;
		e->dir[0] = '\0';
	}
	return rc;
}

/* An OrderPlaced record (key @key, amount @amount) of idempotent producer @producer
 * (0: none) at @sequence into @buf; its length. */
static inline uint32_t ue_record_of(const struct ue_env *e, uint8_t *buf, size_t cap,
				    const char *key, int64_t amount, uint64_t producer,
				    uint64_t sequence)
{
	uint8_t payload[256];
	assert_true(rill_schema_payload_bytes_max(e->schema) <= sizeof(payload));
	struct rill_payload_builder b;
	uint32_t payload_bytes = 0;
	assert_int_equal(rill_payload_builder_init(&b, e->schema, payload, sizeof(payload)), 0);
	assert_int_equal(rill_payload_set_i64(&b, 0, amount), 0);
	assert_int_equal(rill_payload_set_var(&b, 1, "sku-1", 5), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &payload_bytes, NULL), 0);
	struct rill_record rec = {.type_id = rill_schema_type_id(e->schema),
				  .schema_version = 1,
				  .key = key,
				  .key_bytes = (uint16_t)strlen(key),
				  .producer_id = producer,
				  .sequence = sequence,
				  .payload = payload,
				  .payload_bytes = payload_bytes};
	int n = rill_record_encode(buf, cap, &rec);
	assert_true(n > 0);
	return (uint32_t)n;
}

/* An OrderPlaced record (key @key, amount @amount) into @buf; its length. */
static inline uint32_t ue_record(const struct ue_env *e, uint8_t *buf, size_t cap, const char *key,
				 int64_t amount)
{
	return ue_record_of(e, buf, cap, key, amount, 0, 0);
}

/*
 * A datagram's payload: a PRODUCE frame to @topic with request_id @seq and @count events
 * whose amounts are @amount_first, @amount_first + 1, ... (keys "k<amount>"). Its length.
 */
static inline uint32_t ue_datagram(const struct ue_env *e, uint8_t *buf, size_t cap,
				   const char *topic, uint64_t seq, uint32_t count,
				   int64_t amount_first)
{
	int at = rill_wire_produce_begin(buf, cap, seq, 0, topic, strlen(topic));
	assert_true(at > 0);
	for (uint32_t i = 0; i < count; i++) {
		char key[48];
		int64_t amount = amount_first == UE_POISON ? UE_POISON : amount_first + i;
		snprintf(key, sizeof(key), "k%lld-%u", (long long)amount_first, i);
		at += (int)ue_record(e, buf + at, cap - (size_t)at, key, amount);
	}
	rill_wire_produce_finish(buf, (uint32_t)at, count);
	return (uint32_t)at;
}

/* The events appended over every shard. */
static inline uint64_t ue_events_appended(const struct ue_env *e)
{
	uint64_t total = 0;
	for (uint32_t s = 0; s < rill_engine_shards(e->engine); s++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(e->engine, s, &st), 0);
		total += st.events;
	}
	return total;
}

/* Wait (bounded) until the shards have appended exactly @expected events, and no more
 * come for a moment. */
static inline void ue_events_settle(const struct ue_env *e, uint64_t expected)
{
	uint64_t deadline = rill_clock_now_ns() + UE_WAIT_NS;
	uint64_t got = ue_events_appended(e);
	while (got < expected && rill_clock_now_ns() < deadline) {
		ue_sleep_ns(1000000);
		got = ue_events_appended(e);
	}
	ue_sleep_ns(UE_QUIET_NS);
	got = ue_events_appended(e);
	if (got != expected)
		fail_msg("the shards appended %llu events, expected %llu", (unsigned long long)got,
			 (unsigned long long)expected);
}

static inline int ue_i64_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Read every partition of @topic back from offset 0 and check that it holds exactly the
 * events of amounts @expected[0 .. @count) (in any order across partitions): nothing
 * malformed (UE_POISON), nothing twice, nothing missing. @expected is sorted in place.
 */
static inline void ue_log_check(const struct ue_env *e, struct rill_topic *topic, int64_t *expected,
				uint32_t count)
{
	static int64_t got[UE_EVENTS_MAX];
	assert_true(count <= UE_EVENTS_MAX);
	uint32_t partitions = rill_topic_partitions(topic);
	struct rill_subscription *subs[UE_PARTITIONS];
	assert_true(partitions <= UE_PARTITIONS);
	for (uint32_t p = 0; p < partitions; p++)
		assert_int_equal(rill_subscribe(e->engine, topic, p, 0, &subs[p]), 0);
	uint32_t n = 0;
	uint64_t deadline = rill_clock_now_ns() + UE_WAIT_NS;
	bool quiet = false;
	/* Round robin with short waits until the count is reached (or time is up), then one
	 * quiet pass: nothing more may come. */
	while (!quiet) {
		bool any = false;
		for (uint32_t p = 0; p < partitions; p++) {
			struct rill_record rec;
			uint64_t offset;
			int rc;
			uint64_t wait = n >= count ? UE_QUIET_NS : 1000000;
			while ((rc = rill_subscription_next(subs[p], &rec, &offset, wait)) == 1) {
				int64_t amount = rill_field_i64(rec.payload, e->amount_ref);
				if (amount == UE_POISON)
					fail_msg("partition %u offset %llu: an event of a "
						 "malformed datagram is in the log (key %.*s)",
						 p, (unsigned long long)offset, (int)rec.key_bytes,
						 (const char *)rec.key);
				if (n >= UE_EVENTS_MAX)
					fail_msg("more than %u events in the log", UE_EVENTS_MAX);
				got[n++] = amount;
				any = true;
				wait = 0;
			}
			assert_int_equal(rc, 0);
		}
		if (n >= count && !any)
			quiet = true;
		else if (n < count && rill_clock_now_ns() >= deadline)
			break;
	}
	for (uint32_t p = 0; p < partitions; p++)
		assert_int_equal(rill_subscription_close(subs[p]), 0);
	if (n != count)
		fail_msg("the log of %s holds %u events, %u were sent valid",
			 rill_topic_config_get(topic)->name, n, count);
	qsort(got, n, sizeof(got[0]), ue_i64_cmp);
	qsort(expected, count, sizeof(expected[0]), ue_i64_cmp);
	for (uint32_t i = 0; i < n; i++)
		if (got[i] != expected[i])
			fail_msg("the log of %s: the %u-th smallest amount is %lld, expected %lld "
				 "(an event lost, doubled or not sent)",
				 rill_topic_config_get(topic)->name, i, (long long)got[i],
				 (long long)expected[i]);
}

#endif /* RILL_TESTS_UDP_EVENTS_H */
