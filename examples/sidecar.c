/*
 * examples/sidecar.c: rill embedded as a processing sidecar, through the one public header.
 *
 * An application's worker threads publish the orders they see; rill checks each against
 * the registered schema, stores it durably (group commit) and keeps a running total per
 * customer; the application reads a customer's total back with the token of its own
 * write, so it never sees a total that misses it (read-your-writes).
 *
 *   usage: sidecar DATA_DIR [ORDERS_PER_THREAD]
 *
 * Prints one JSON line and exits 0 when every order was acknowledged durable and every
 * customer's total matches what the threads published; exits 1 otherwise. The tests run it
 * (tests/meson.build), so this file is also a check that the API is enough to embed rill.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rill/rill.h>

#define THREADS   2
#define CUSTOMERS 16

static const char order_schema[] =
	"{\"type\": \"OrderPlaced\", \"version\": 1, \"fields\": ["
	"{\"name\": \"amount\", \"type\": \"i64\"},"
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16}]}";

struct worker {
	struct rill_engine *engine;
	struct rill_topic *topic;
	const struct rill_schema *schema;
	unsigned index;
	uint64_t orders;
	int64_t totals[CUSTOMERS]; /* what this thread published, per customer */
	uint64_t durable, refused;
	struct rill_token last[CUSTOMERS]; /* the token of the last write per customer */
	int status;
};

static void on_ack(void *arg, const struct rill_ack *ack)
{
	struct worker *w = arg;
	if (ack->error != 0) {
		fprintf(stderr, "sidecar: order %" PRIu64 " refused: %s\n", ack->cookie,
			ack->reason);
		w->refused++;
		return;
	}
	if (ack->level == RILL_ACKS_DURABLE)
		w->durable++;
	else
		w->last[ack->cookie % CUSTOMERS] = ack->token;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rill_producer *producer;
	struct rill_producer_config pc = {.on_ack = on_ack, .arg = w};
	if (rill_producer_open(w->engine, &pc, &producer) != 0) {
		w->status = 1;
		return NULL;
	}
	for (uint64_t i = 0; i < w->orders; i++) {
		unsigned customer = (unsigned)(i % CUSTOMERS);
		char key[32];
		int key_bytes = snprintf(key, sizeof(key), "customer-%u", customer);
		int64_t amount = (int64_t)(i % 97) + 1;
		uint8_t payload[256];
		uint32_t payload_bytes;
		struct rill_payload_builder b;
		struct rill_schema_error serr;
		if (rill_payload_builder_init(&b, w->schema, payload, sizeof(payload)) != 0 ||
		    rill_payload_set_i64(&b, 0, amount) != 0 ||
		    rill_payload_set_var(&b, 1, "SKU-1", 5) != 0 ||
		    rill_payload_builder_finish(&b, &payload_bytes, &serr) != 0) {
			w->status = 1;
			break;
		}
		struct rill_event ev = {.key = key,
					.key_bytes = (uint32_t)key_bytes,
					.type_id = rill_schema_type_id(w->schema),
					.version = 1,
					.payload = payload,
					.payload_bytes = payload_bytes,
					.correlation_id = w->index * 1000000u + i};
		/* The cookie says which customer, for the callback. */
		int rc;
		while ((rc = rill_publish(producer, w->topic, &ev, RILL_ACKS_DURABLE, i)) ==
		       -EAGAIN)
			rill_producer_poll(producer, 100000); /* backpressure: wait for acks */
		if (rc != 0) { /* not published: no acknowledgement will come */
			fprintf(stderr, "sidecar: order %" PRIu64 ": publish: %s\n", i,
				rill_strerror(rc));
			w->status = 1;
			break;
		}
		w->totals[customer] += amount;
		rill_producer_poll(producer, 0);
	}
	if (rill_producer_close(producer) != 0) /* flushes: every ack is in */
		w->status = 1;
	return NULL;
}

static int fail(const char *what, int rc, const char *message)
{
	fprintf(stderr, "sidecar: %s: %s%s%s\n", what, rill_strerror(rc), message[0] ? ": " : "",
		message);
	return 1;
}

/* Close on an error path (its own error goes unreported: the first one is what counts).
 * Returns 1, to be or'ed into the exit status. */
static int close_quietly(struct rill_engine *engine)
{
	(void)rill_engine_close(engine);
	return 1;
}

/* Replay partition @p of @topic from offset 0 up to where it stands now, folding the
 * amounts per customer into @replayed; the events read into *@events. 0 or an error. */
static int replay(struct rill_engine *engine, struct rill_topic *topic, uint32_t p,
		  struct rill_field_ref amount, int64_t *replayed, uint64_t *events)
{
	struct rill_partition_info info;
	int rc = rill_partition_info_get(engine, topic, p, UINT64_MAX, &info, NULL);
	if (rc != 0)
		return rc;
	struct rill_subscription *sub;
	rc = rill_subscribe(engine, topic, p, 0, &sub);
	if (rc != 0)
		return rc;
	/* Up to the end it had (every event is durable by now): a wait that times out is an
	 * error, not the end. */
	uint64_t next = 0;
	while (rc == 0 && next < info.durable_offset) {
		struct rill_record ev;
		uint64_t offset;
		int got = rill_subscription_next(sub, &ev, &offset, 5000000000u);
		if (got != 1) {
			rc = got == 0 ? -ETIMEDOUT : got;
			break;
		}
		char key[32] = {0}; /* the key is bytes, not a C string */
		memcpy(key, ev.key, ev.key_bytes < sizeof(key) - 1 ? ev.key_bytes : 0);
		unsigned customer;
		if (sscanf(key, "customer-%u", &customer) == 1 && customer < CUSTOMERS)
			replayed[customer] += rill_field_i64(ev.payload, amount);
		++*events;
		next = offset + 1;
	}
	rill_subscription_close(sub);
	return rc < 0 ? rc : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: sidecar DATA_DIR [ORDERS_PER_THREAD]\n");
		return 2;
	}
	uint64_t orders = 20000;
	if (argc > 2) {
		char *end = NULL;
		errno = 0;
		orders = strtoull(argv[2], &end, 10);
		if (errno != 0 || end == argv[2] || *end != '\0' || orders == 0 ||
		    orders > 100000000u || argv[2][0] == '-') {
			fprintf(stderr,
				"sidecar: ORDERS_PER_THREAD: a count from 1 to 100000000\n");
			return 2;
		}
	}
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = argv[1];
	cfg.shards = 2;
	cfg.pin = false; /* a sidecar shares the machine with its application */
	struct rill_error_text err = {{0}};
	struct rill_engine *engine;
	int rc = rill_engine_open(&engine, &cfg, &err);
	if (rc != 0)
		return fail("open", rc, err.message);

	const struct rill_schema *schema;
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(engine), order_schema, strlen(order_schema),
				  -1, &schema, &serr);
	if (rc != 0)
		return fail("schema", rc, serr.message) | close_quietly(engine);
	struct rill_topic_config tc = {
		.name = "orders", .partitions = 4, .durability = RILL_DURABILITY_GROUP};
	struct rill_topic *topic;
	rc = rill_topic_create(engine, &tc, &topic, &err);
	if (rc != 0)
		return fail("topic", rc, err.message) | close_quietly(engine);
	struct rill_projection_def pd = {.name = "order_total",
					 .topic = "orders",
					 .type = "OrderPlaced",
					 .kind = RILL_PROJECTION_SUM,
					 .field = "amount"};
	rc = rill_projection_define(engine, &pd, &err);
	if (rc != 0)
		return fail("projection", rc, err.message) | close_quietly(engine);

	/* What the projection held before this run (the data directory may be reused). */
	int64_t before[CUSTOMERS];
	for (unsigned c = 0; c < CUSTOMERS; c++) {
		char key[32];
		int key_bytes = snprintf(key, sizeof(key), "customer-%u", c);
		struct rill_projection_value v;
		rc = rill_query(engine, "order_total", key, (size_t)key_bytes, NULL, 0, &v);
		before[c] = rc == 0 ? v.i64 : 0;
	}

	struct worker workers[THREADS];
	pthread_t threads[THREADS];
	for (unsigned t = 0; t < THREADS; t++) {
		workers[t] = (struct worker){.engine = engine,
					     .topic = topic,
					     .schema = schema,
					     .index = t,
					     .orders = orders};
		pthread_create(&threads[t], NULL, worker_main, &workers[t]);
	}
	int status = 0;
	uint64_t durable = 0, refused = 0;
	int64_t expect[CUSTOMERS];
	memcpy(expect, before, sizeof(expect));
	for (unsigned t = 0; t < THREADS; t++) {
		pthread_join(threads[t], NULL);
		status |= workers[t].status;
		durable += workers[t].durable;
		refused += workers[t].refused;
		for (unsigned c = 0; c < CUSTOMERS; c++)
			expect[c] += workers[t].totals[c];
	}
	unsigned mismatches = 0;
	for (unsigned c = 0; c < CUSTOMERS; c++) {
		char key[32];
		int key_bytes = snprintf(key, sizeof(key), "customer-%u", c);
		struct rill_projection_value v;
		/* Read-your-writes: wait (up to 1 s) until thread 0's last write is in; a
		 * customer it never wrote (few orders per thread) has no token to wait for. */
		const struct rill_token *token = c < orders ? &workers[0].last[c] : NULL;
		rc = rill_query(engine, "order_total", key, (size_t)key_bytes, token, 1000000000u,
				&v);
		if (rc == -ENOENT && expect[c] == 0)
			continue; /* no order for this customer yet (few orders per thread) */
		if (rc != 0 || v.i64 != expect[c])
			mismatches++;
	}
	/* An independent consumer: replay every partition from offset 0 and fold the amounts
	 * itself; the totals must agree with the projection (the log is the truth). */
	int64_t replayed[CUSTOMERS] = {0};
	uint64_t events = 0;
	struct rill_field_ref amount;
	rill_schema_field_ref(schema, "amount", &amount);
	for (uint32_t p = 0; p < rill_topic_partitions(topic); p++) {
		rc = replay(engine, topic, p, amount, replayed, &events);
		if (rc != 0)
			return fail("replay", rc, "") | close_quietly(engine);
	}
	for (unsigned c = 0; c < CUSTOMERS; c++)
		mismatches += replayed[c] != expect[c];
	printf("{\"orders\": %" PRIu64 ", \"durable\": %" PRIu64 ", \"refused\": %" PRIu64
	       ", \"customers\": %u, \"replayed\": %" PRIu64 ", \"mismatches\": %u, "
	       "\"shards\": %u}\n",
	       orders * THREADS, durable, refused, CUSTOMERS, events, mismatches,
	       rill_engine_shards(engine));
	rc = rill_engine_close(engine);
	if (rc != 0)
		return fail("close", rc, "");
	return status != 0 || mismatches != 0 || refused != 0 || durable != orders * THREADS;
}
