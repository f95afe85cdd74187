/*
 * Tests of the engine through its embedding API (include/rill/rill.h): the real engine
 * (two shards, unpinned, adaptive polling unless a test says otherwise) over a real
 * temporary data directory under /tmp, removed at the end of each test. Covered: order and
 * density of offsets per partition with two producer threads; the idempotent producer under
 * retries and gaps; projections equal to a reference fold; restart (topics, projections,
 * values and offsets come back); refusals of the write model and of rill_publish;
 * backpressure with the smallest rings and a producer that does not poll; durable
 * acknowledgements; queries with read-your-writes tokens; topic and projection definitions
 * and the engine's own refusals (a second engine, closing with a producer open); flushes
 * and closes whose callbacks publish; closing while other threads query or open a
 * producer; the calls refused on a shard's thread; busy polling; and the shard statistics.
 *
 * RILL_ENGINE_TEST_EVENTS scales the loops (events per producer; the ThreadSanitizer build
 * passes a smaller value). RILL_TEST_SEED replays a run (test_util.h).
 *
 * Tests written failing, before their fixes, stay as regression tests: "WAS A BUG" above
 * each says what was wrong.
 */
#define _GNU_SOURCE
#include "tests/common/test_util.h"

#include <dirent.h>
#include <liburing.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/clock.h"
#include "base/thread.h"
#include "rill/rill.h"
#include "rill/server.h"
#include "tests/common/test_dir.h"

#define EVENTS_DEFAULT 50000u
#define PAYLOAD_MAX    64u
#define REASON_BYTES   200u
#define FLUSH_NS       (60ull * 1000000000ull) /* a flush that takes this long has hung */
#define BAD_TYPE_ID    9999u
#define ARRAY_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define ORDER_JSON                                                                                 \
	"{\"type\":\"Order\",\"version\":1,\"fields\":["                                           \
	"{\"name\":\"amount\",\"type\":\"i64\"},"                                                  \
	"{\"name\":\"note\",\"type\":\"string\",\"max_length\":8}]}"

/* ---- Clock, sizes ----------------------------------------------------------------------- */

static void nap_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};
	nanosleep(&ts, NULL);
}

/* Events per producer in the bigger loops (at least 64). */
static uint32_t events_count(void)
{
	uint64_t n = test_env_u64("RILL_ENGINE_TEST_EVENTS", EVENTS_DEFAULT);
	return n < 64 ? 64 : (uint32_t)(n > 1000000 ? 1000000 : n);
}

/* ---- The fixture: a data directory, an engine, the Order schema ------------------------- */

struct fx {
	char dir[64];
	struct rill_engine *engine;
	const struct rill_schema *order;
	uint32_t order_id;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	if (test_dir_make(f->dir, sizeof(f->dir), "engine") != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	if (f->engine != NULL) {
		/* Only after a failed test: -EBUSY if it left a producer open (then it leaks). */
		int rc = rill_engine_close(f->engine);
		if (rc != 0)
			fprintf(stderr, "teardown: rill_engine_close: %s\n", rill_strerror(rc));
	}
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

static void fx_open_with(struct fx *f, const struct rill_engine_config *c)
{
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&f->engine, c, &err);
	if (rc != 0)
		fail_msg("rill_engine_open(%s): %s: %s", f->dir, rill_strerror(rc), err.message);
	/* Registering the very same definition again returns the schema stored already. */
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(f->engine), ORDER_JSON, strlen(ORDER_JSON),
				  -1, &f->order, &serr);
	if (rc != 0)
		fail_msg("register Order: %s: %s", rill_strerror(rc), serr.message);
	f->order_id = rill_schema_type_id(f->order);
	assert_true(rill_schema_payload_bytes_max(f->order) <= PAYLOAD_MAX);
	assert_int_not_equal(f->order_id, BAD_TYPE_ID);
}

static void fx_config(const struct fx *f, struct rill_engine_config *c, uint32_t shards)
{
	rill_engine_config_default(c);
	c->data_dir = f->dir;
	c->shards = shards;
	c->pin = false;
}

static void fx_open(struct fx *f)
{
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	fx_open_with(f, &c);
}

static void fx_close(struct fx *f)
{
	int rc = rill_engine_close(f->engine);
	f->engine = NULL;
	if (rc != 0)
		fail_msg("rill_engine_close: %s", rill_strerror(rc));
}

static struct rill_topic *fx_topic(struct fx *f, const char *name, uint32_t partitions,
				   enum rill_durability durability)
{
	struct rill_topic_config tc = {
		.name = name, .partitions = partitions, .durability = durability};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	int rc = rill_topic_create(f->engine, &tc, &t, &err);
	if (rc != 0)
		fail_msg("rill_topic_create(%s): %s: %s", name, rill_strerror(rc), err.message);
	assert_non_null(t);
	assert_int_equal(rill_topic_partitions(t), partitions);
	return t;
}

static void fx_projection(struct fx *f, const char *name, const char *topic,
			  enum rill_projection_kind kind, const char *field)
{
	struct rill_projection_def d = {
		.name = name, .topic = topic, .type = "Order", .kind = kind, .field = field};
	struct rill_error_text err = {{0}};
	int rc = rill_projection_define(f->engine, &d, &err);
	if (rc != 0)
		fail_msg("rill_projection_define(%s): %s: %s", name, rill_strerror(rc),
			 err.message);
}

/* An Order payload in @buf (PAYLOAD_MAX bytes); returns its size. */
static uint32_t order_payload(const struct rill_schema *s, uint8_t *buf, int64_t amount,
			      const char *note)
{
	struct rill_payload_builder b;
	struct rill_schema_error serr = {{0}};
	uint32_t bytes = 0;
	int rc = rill_payload_builder_init(&b, s, buf, PAYLOAD_MAX);
	if (rc == 0)
		rc = rill_payload_set_i64(&b, 0, amount);
	if (rc == 0)
		rc = rill_payload_set_var(&b, 1, note, (uint32_t)strlen(note));
	if (rc == 0)
		rc = rill_payload_builder_finish(&b, &bytes, &serr);
	if (rc != 0)
		fail_msg("building an Order payload: %s: %s", rill_strerror(rc), serr.message);
	return bytes;
}

/* One event with its own key and payload storage. */
struct order_event {
	char key[48];
	uint8_t payload[PAYLOAD_MAX];
	struct rill_event ev;
};

/* Fill @o as an Order of @amount for key @key. No cmocka calls (producer threads use it). */
static int order_event_make(struct order_event *o, const struct rill_schema *s, const char *key,
			    int64_t amount)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->key, sizeof(o->key), "%s", key);
	struct rill_payload_builder b;
	uint32_t bytes = 0;
	int rc = rill_payload_builder_init(&b, s, o->payload, PAYLOAD_MAX);
	if (rc == 0)
		rc = rill_payload_set_i64(&b, 0, amount);
	if (rc == 0)
		rc = rill_payload_set_var(&b, 1, "n", 1);
	if (rc == 0)
		rc = rill_payload_builder_finish(&b, &bytes, NULL);
	o->ev = (struct rill_event){.key = o->key,
				    .key_bytes = (uint32_t)strlen(o->key),
				    .type_id = rill_schema_type_id(s),
				    .version = rill_schema_version(s),
				    .payload = o->payload,
				    .payload_bytes = bytes};
	return rc;
}

/* Publish, polling while the ring is full (backpressure). 0, or rill_publish's error, or
 * -ETIMEDOUT. No cmocka calls (producer threads use it). */
static int publish_retry(struct rill_producer *p, struct rill_topic *t, const struct rill_event *ev,
			 enum rill_acks acks, uint64_t cookie)
{
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	int rc;
	while ((rc = rill_publish(p, t, ev, acks, cookie)) == -EAGAIN) {
		rill_producer_poll(p, 100000);
		if (rill_clock_now_ns() > deadline)
			return -ETIMEDOUT;
	}
	return rc;
}

static void flush_ok(struct rill_producer *p)
{
	int rc = rill_producer_flush(p, FLUSH_NS);
	if (rc != 0)
		fail_msg("rill_producer_flush: %s", rill_strerror(rc));
}

/* ---- Acknowledgements, recorded as they come ------------------------------------------- */

struct ack_rec {
	uint64_t cookie;
	int level;
	int error;
	bool duplicate;
	bool lost;
	struct rill_token token;
	char reason[REASON_BYTES];
};

struct acks {
	struct ack_rec *v;
	size_t count, cap;
	bool oom;
};

static void acks_on_ack(void *arg, const struct rill_ack *ack)
{
	struct acks *a = arg;
	if (a->count == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		struct ack_rec *v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL) {
			a->oom = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	struct ack_rec *r = &a->v[a->count++];
	r->cookie = ack->cookie;
	r->level = (int)ack->level;
	r->error = ack->error;
	r->duplicate = ack->duplicate;
	r->lost = ack->lost;
	r->token = ack->token;
	snprintf(r->reason, sizeof(r->reason), "%s", ack->reason != NULL ? ack->reason : "(null)");
}

static void acks_free(struct acks *a)
{
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static struct rill_producer *producer_open(struct fx *f, uint64_t producer_id, struct acks *a)
{
	struct rill_producer_config pc = {
		.producer_id = producer_id, .on_ack = a != NULL ? acks_on_ack : NULL, .arg = a};
	struct rill_producer *p = NULL;
	int rc = rill_producer_open(f->engine, &pc, &p);
	if (rc != 0)
		fail_msg("rill_producer_open: %s", rill_strerror(rc));
	return p;
}

static void producer_close(struct rill_producer *p)
{
	int rc = rill_producer_close(p);
	if (rc != 0)
		fail_msg("rill_producer_close: %s", rill_strerror(rc));
}

/* The shards' counters summed; latencies are checked shard by shard. */
struct stats_sum {
	uint64_t partitions, events, duplicates, refused, stalls, sleeps;
	uint64_t ring, apply, applied, durable, sync; /* latency counts */
	uint64_t projection_late, snapshots_skipped;
};

static void latency_check(const char *what, uint32_t shard, const struct rill_latency *l)
{
	if (l->count == 0) {
		assert_int_equal(l->max_ns, 0);
		return;
	}
	if (!(l->p50_ns <= l->p99_ns && l->p99_ns <= l->p999_ns && l->p999_ns <= l->p9999_ns &&
	      l->p9999_ns <= l->max_ns))
		fail_msg("shard %u %s latency out of order: p50 %" PRIu64 " p99 %" PRIu64
			 " p999 %" PRIu64 " p9999 %" PRIu64 " max %" PRIu64,
			 shard, what, l->p50_ns, l->p99_ns, l->p999_ns, l->p9999_ns, l->max_ns);
}

/* stderr into a temporary file until stderr_end, which gives what was written. */
struct stderr_capture {
	FILE *file;
	int saved;
};

static void stderr_begin(struct stderr_capture *cap)
{
	cap->file = tmpfile();
	assert_non_null(cap->file);
	fflush(stderr);
	cap->saved = dup(STDERR_FILENO);
	assert_true(cap->saved >= 0);
	assert_true(dup2(fileno(cap->file), STDERR_FILENO) >= 0);
}

static void stderr_end(struct stderr_capture *cap, char *said, size_t said_bytes)
{
	fflush(stderr);
	assert_true(dup2(cap->saved, STDERR_FILENO) >= 0);
	close(cap->saved);
	rewind(cap->file);
	size_t n = fread(said, 1, said_bytes - 1, cap->file);
	said[n] = '\0';
	fclose(cap->file);
}

static struct stats_sum stats_sum(struct fx *f)
{
	struct stats_sum s = {0};
	uint32_t shards = rill_engine_shards(f->engine);
	for (uint32_t i = 0; i < shards; i++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, i, &st), 0);
		s.partitions += st.partitions;
		s.events += st.events;
		s.duplicates += st.duplicates;
		s.refused += st.refused;
		s.stalls += st.stalls;
		s.sleeps += st.sleeps;
		s.ring += st.ring.count;
		s.apply += st.apply.count;
		s.applied += st.applied.count;
		s.durable += st.durable.count;
		s.sync += st.sync.count;
		s.projection_late += st.projection_late;
		s.snapshots_skipped += st.snapshots_skipped;
		latency_check("ring", i, &st.ring);
		latency_check("apply", i, &st.apply);
		latency_check("applied", i, &st.applied);
		latency_check("durable", i, &st.durable);
		latency_check("sync", i, &st.sync);
	}
	struct rill_shard_stats st;
	assert_int_equal(rill_engine_shard_stats(f->engine, shards, &st), -EINVAL);
	return s;
}

static void query_ok(struct fx *f, const char *name, const char *key,
		     struct rill_projection_value *v)
{
	int rc = rill_query(f->engine, name, key, strlen(key), NULL, 0, v);
	if (rc != 0)
		fail_msg("rill_query(%s, %s): %s", name, key, rill_strerror(rc));
}

/* ---- 1. Order per partition, two producer threads --------------------------------------- */

#define ORDER_KEYS 64u

struct order_thread {
	struct fx *f;
	struct rill_topic *topic;
	unsigned index;
	uint32_t n;
	uint32_t *partition;  /* [n]: rill_topic_partition of event i */
	uint64_t *offset;     /* [n]: from its acknowledgement */
	uint32_t *ack_part;   /* [n] */
	uint8_t *acked;       /* [n]: acknowledgements seen */
	uint64_t last_off[8]; /* per partition: the offset of the last ack seen */
	bool have_last[8];
	uint64_t acks, bad_acks, out_of_order;
	char first_error[256];
	int status;
};

static void order_thread_fail(struct order_thread *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void order_thread_fail(struct order_thread *t, const char *fmt, ...)
{
	if (t->first_error[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->first_error, sizeof(t->first_error), fmt, ap);
	va_end(ap);
}

static void order_on_ack(void *arg, const struct rill_ack *ack)
{
	struct order_thread *t = arg;
	t->acks++;
	if (ack->cookie >= t->n || ack->error != 0 || ack->level != RILL_ACKS_APPLIED ||
	    ack->duplicate || ack->token.partition >= 4) {
		t->bad_acks++;
		order_thread_fail(t, "bad ack: cookie %" PRIu64 " error %d level %d", ack->cookie,
				  ack->error, (int)ack->level);
		return;
	}
	uint64_t i = ack->cookie;
	if (t->acked[i]++ != 0) {
		t->bad_acks++;
		order_thread_fail(t, "cookie %" PRIu64 " acknowledged twice", i);
	}
	uint32_t p = ack->token.partition;
	t->offset[i] = ack->token.offset;
	t->ack_part[i] = p;
	if (t->have_last[p] && ack->token.offset <= t->last_off[p]) {
		t->out_of_order++;
		order_thread_fail(t, "partition %u: ack offset %" PRIu64 " after %" PRIu64, p,
				  ack->token.offset, t->last_off[p]);
	}
	t->have_last[p] = true;
	t->last_off[p] = ack->token.offset;
}

static void *order_thread_main(void *arg)
{
	struct order_thread *t = arg;
	struct rill_producer_config pc = {.on_ack = order_on_ack, .arg = t};
	struct rill_producer *p;
	if (rill_producer_open(t->f->engine, &pc, &p) != 0) {
		t->status = -1;
		return NULL;
	}
	struct test_rng rng;
	test_rng_init(&rng, 100 + t->index);
	for (uint32_t i = 0; i < t->n && t->status == 0; i++) {
		char key[32];
		snprintf(key, sizeof(key), "key-%u", (unsigned)test_rng_below(&rng, ORDER_KEYS));
		struct order_event o;
		if (order_event_make(&o, t->f->order, key, (int64_t)i) != 0) {
			t->status = -2;
			break;
		}
		t->partition[i] = rill_topic_partition(t->topic, o.ev.key, o.ev.key_bytes);
		int rc = publish_retry(p, t->topic, &o.ev, RILL_ACKS_APPLIED, i);
		if (rc != 0) {
			t->status = rc;
			break;
		}
		if (i % 16 == 0)
			rill_producer_poll(p, 0);
	}
	if (rill_producer_close(p) != 0 && t->status == 0)
		t->status = -3;
	return NULL;
}

static void test_order_per_partition(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *topic = fx_topic(f, "ordered", 4, RILL_DURABILITY_NONE);
	uint32_t n = events_count();
	struct order_thread th[2];
	pthread_t tid[2];
	for (unsigned k = 0; k < 2; k++) {
		th[k] = (struct order_thread){.f = f, .topic = topic, .index = k, .n = n};
		th[k].partition = calloc(n, sizeof(uint32_t));
		th[k].offset = calloc(n, sizeof(uint64_t));
		th[k].ack_part = calloc(n, sizeof(uint32_t));
		th[k].acked = calloc(n, 1);
		assert_non_null(th[k].partition);
		assert_non_null(th[k].offset);
		assert_non_null(th[k].ack_part);
		assert_non_null(th[k].acked);
	}
	for (unsigned k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&tid[k], NULL, order_thread_main, &th[k]), 0);
	for (unsigned k = 0; k < 2; k++)
		pthread_join(tid[k], NULL);

	uint64_t per_part[4] = {0};
	for (unsigned k = 0; k < 2; k++) {
		struct order_thread *t = &th[k];
		if (t->status != 0 || t->bad_acks != 0 || t->out_of_order != 0)
			fail_msg("producer %u: status %d, %" PRIu64 " bad acks, %" PRIu64
				 " out of order: %s",
				 k, t->status, t->bad_acks, t->out_of_order, t->first_error);
		assert_int_equal(t->acks, n);
		uint64_t last[4];
		bool have[4] = {false, false, false, false};
		for (uint32_t i = 0; i < n; i++) {
			assert_int_equal(t->acked[i], 1);
			uint32_t p = t->partition[i];
			assert_int_equal(t->ack_part[i], p); /* XXH3(key) mod partitions */
			/* Publish order within a partition is offset order. */
			if (have[p] && t->offset[i] <= last[p])
				fail_msg("producer %u event %u: offset %" PRIu64 " in partition %u "
					 "after %" PRIu64,
					 k, i, t->offset[i], p, last[p]);
			have[p] = true;
			last[p] = t->offset[i];
			per_part[p]++;
		}
	}
	/* Dense: the offsets of each partition are exactly 0 .. count - 1. */
	for (uint32_t p = 0; p < 4; p++) {
		uint8_t *seen = calloc(per_part[p] + 1, 1);
		assert_non_null(seen);
		for (unsigned k = 0; k < 2; k++) {
			for (uint32_t i = 0; i < n; i++) {
				if (th[k].partition[i] != p)
					continue;
				uint64_t off = th[k].offset[i];
				if (off >= per_part[p] || seen[off])
					fail_msg("partition %u: offset %" PRIu64
						 " out of 0..%" PRIu64 " or given twice",
						 p, off, per_part[p] - 1);
				seen[off] = 1;
			}
		}
		free(seen);
	}
	struct stats_sum s = stats_sum(f);
	assert_int_equal(s.events, 2ull * n);
	assert_int_equal(s.duplicates, 0);
	assert_int_equal(s.refused, 0);
	assert_int_equal(s.partitions, 4);
	for (unsigned k = 0; k < 2; k++) {
		free(th[k].partition);
		free(th[k].offset);
		free(th[k].ack_part);
		free(th[k].acked);
	}
	fx_close(f);
}

/* ---- 2. The idempotent producer under retries ------------------------------------------- */

#define IDEM_KEYS       40u
#define IDEM_PARTS      4u
#define COOKIE_ORIG     (1ull << 56)
#define COOKIE_RETRY    (2ull << 56)
#define COOKIE_GAP      (3ull << 56)
#define COOKIE_OLD      (4ull << 56)
#define COOKIE_KIND(c)  ((c) & (0xffull << 56))
#define COOKIE_INDEX(c) ((c) & ((1ull << 56) - 1))

struct idem_event {
	uint16_t key;
	uint32_t partition;
	uint64_t seq;
	int64_t amount;
};

static void idem_event_make(struct fx *f, struct order_event *o, const struct idem_event *e)
{
	char key[32];
	snprintf(key, sizeof(key), "idem-%u", e->key);
	assert_int_equal(order_event_make(o, f->order, key, e->amount), 0);
	o->ev.sequence = e->seq;
}

static void test_idempotent_retries(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *topic = fx_topic(f, "idem", IDEM_PARTS, RILL_DURABILITY_NONE);
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 42, &acks);
	struct test_rng rng;
	test_rng_init(&rng, 2);
	uint32_t n = events_count();
	struct idem_event *orig = calloc(n, sizeof(*orig));
	uint32_t *retry_of = calloc(n, sizeof(*retry_of));
	uint64_t *by_seq[IDEM_PARTS]; /* [partition][seq] = index in orig */
	uint64_t next_seq[IDEM_PARTS] = {0};
	assert_non_null(orig);
	assert_non_null(retry_of);
	for (uint32_t q = 0; q < IDEM_PARTS; q++) {
		by_seq[q] = calloc(n, sizeof(uint64_t));
		assert_non_null(by_seq[q]);
	}
	uint32_t origs = 0, retries = 0, gaps = 0;
	while (origs < n) {
		uint64_t dice = test_rng_below(&rng, 16);
		struct order_event o;
		if (dice < 3 && origs > 0) {
			/* A retry of one of the last 8 events of some partition. */
			uint32_t q = (uint32_t)test_rng_below(&rng, IDEM_PARTS);
			if (next_seq[q] == 0)
				continue;
			uint64_t window = next_seq[q] < 8 ? next_seq[q] : 8;
			uint64_t seq = next_seq[q] - 1 - test_rng_below(&rng, window);
			uint64_t idx = by_seq[q][seq];
			idem_event_make(f, &o, &orig[idx]);
			retry_of[retries] = (uint32_t)idx;
			assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED,
						       COOKIE_RETRY | retries),
					 0);
			retries++;
		} else if (dice == 3 && origs > 0) {
			/* A gap: the sequence skips ahead; refused, nothing changes. */
			struct idem_event e = orig[test_rng_below(&rng, origs)];
			e.seq = next_seq[e.partition] + 1 + test_rng_below(&rng, 5);
			idem_event_make(f, &o, &e);
			assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED,
						       COOKIE_GAP | gaps),
					 0);
			gaps++;
		} else {
			struct idem_event *e = &orig[origs];
			e->key = (uint16_t)test_rng_below(&rng, IDEM_KEYS);
			e->amount = (int64_t)test_rng_below(&rng, 1000);
			char key[32];
			snprintf(key, sizeof(key), "idem-%u", e->key);
			e->partition = rill_topic_partition(topic, key, strlen(key));
			assert_true(e->partition < IDEM_PARTS);
			e->seq = next_seq[e->partition]++;
			by_seq[e->partition][e->seq] = origs;
			idem_event_make(f, &o, e);
			assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED,
						       COOKIE_ORIG | origs),
					 0);
			origs++;
		}
		if (test_rng_below(&rng, 8) == 0)
			rill_producer_poll(p, 0);
	}
	flush_ok(p);
	assert_false(acks.oom);
	assert_int_equal(acks.count, (size_t)origs + retries + gaps);

	/* Originals first: offsets by cookie. */
	uint64_t *offset = calloc(n, sizeof(uint64_t));
	uint8_t *seen = calloc(n, 1);
	assert_non_null(offset);
	assert_non_null(seen);
	for (size_t i = 0; i < acks.count; i++) {
		const struct ack_rec *r = &acks.v[i];
		if (COOKIE_KIND(r->cookie) != COOKIE_ORIG)
			continue;
		uint64_t idx = COOKIE_INDEX(r->cookie);
		assert_true(idx < n);
		if (r->error != 0)
			fail_msg("event %" PRIu64 " refused: %s: %s", idx, rill_strerror(r->error),
				 r->reason);
		assert_int_equal(seen[idx], 0);
		seen[idx] = 1;
		assert_int_equal(r->level, RILL_ACKS_APPLIED);
		assert_false(r->duplicate);
		assert_int_equal(r->token.partition, orig[idx].partition);
		/* One producer from sequence 0: the offset is the sequence. */
		assert_int_equal(r->token.offset, orig[idx].seq);
		offset[idx] = r->token.offset;
	}
	uint32_t retries_seen = 0, gaps_seen = 0;
	for (size_t i = 0; i < acks.count; i++) {
		const struct ack_rec *r = &acks.v[i];
		uint64_t idx = COOKIE_INDEX(r->cookie);
		if (COOKIE_KIND(r->cookie) == COOKIE_RETRY) {
			assert_true(idx < retries);
			uint32_t o = retry_of[idx];
			assert_int_equal(seen[o], 1);
			if (r->error != 0 || !r->duplicate)
				fail_msg("retry %" PRIu64 " of event %u (seq %" PRIu64
					 "): error %s, duplicate %d: %s",
					 idx, o, orig[o].seq, rill_strerror(r->error), r->duplicate,
					 r->reason);
			assert_int_equal(r->level, RILL_ACKS_APPLIED);
			assert_int_equal(r->token.partition, orig[o].partition);
			assert_int_equal(r->token.offset, offset[o]);
			retries_seen++;
		} else if (COOKIE_KIND(r->cookie) == COOKIE_GAP) {
			assert_true(idx < gaps);
			assert_int_equal(r->error, RILL_E_WRITE_SEQUENCE_GAP);
			assert_true(r->reason[0] != '\0');
			assert_non_null(strstr(r->reason, "gap"));
			assert_false(r->duplicate);
			gaps_seen++;
		} else {
			assert_int_equal(COOKIE_KIND(r->cookie), COOKIE_ORIG);
		}
	}
	assert_int_equal(retries_seen, retries);
	assert_int_equal(gaps_seen, gaps);

	/* A retry older than the last 8 kept is a duplicate too, not appended again, its
	 * offset no longer known. */
	uint32_t q = 0;
	while (q < IDEM_PARTS && next_seq[q] < 10)
		q++;
	assert_true(q < IDEM_PARTS);
	struct order_event o;
	idem_event_make(f, &o, &orig[by_seq[q][next_seq[q] - 9]]);
	acks.count = 0;
	assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED, COOKIE_OLD), 0);
	flush_ok(p);
	assert_int_equal(acks.count, 1);
	assert_int_equal(acks.v[0].error, 0);
	assert_true(acks.v[0].duplicate);
	assert_int_equal(acks.v[0].token.offset, UINT64_MAX);
	/* Its token is one of an event applied long ago: a query given it is answered, not
	 * left waiting for an offset no partition reaches (RILL_E_QUERY_STALE). */
	fx_projection(f, "idem_count", "idem", RILL_PROJECTION_COUNT, NULL);
	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "idem_count", o.key, strlen(o.key), &acks.v[0].token,
				    1000000000u, &v),
			 0);

	struct stats_sum s = stats_sum(f);
	assert_int_equal(s.events, origs);
	assert_int_equal(s.duplicates, retries + 1u);
	assert_int_equal(s.refused, gaps);
	producer_close(p);
	fx_close(f);

	/* After a restart the dedup state is rebuilt from the logs: a retry of each
	 * partition's last event is a duplicate with its offset, the next sequence goes on. */
	fx_open(f);
	topic = rill_topic_find(f->engine, "idem");
	assert_non_null(topic);
	acks.count = 0;
	p = producer_open(f, 42, &acks);
	uint32_t parts_used = 0;
	for (q = 0; q < IDEM_PARTS; q++) {
		if (next_seq[q] == 0)
			continue;
		parts_used++;
		uint64_t last = by_seq[q][next_seq[q] - 1];
		idem_event_make(f, &o, &orig[last]);
		assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED, 2 * q), 0);
		struct idem_event e = orig[last];
		e.seq = next_seq[q];
		idem_event_make(f, &o, &e);
		assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED, 2 * q + 1), 0);
	}
	flush_ok(p);
	assert_int_equal(acks.count, 2 * parts_used);
	for (size_t i = 0; i < acks.count; i++) {
		const struct ack_rec *r = &acks.v[i];
		uint32_t part = (uint32_t)(r->cookie / 2);
		if (r->error != 0)
			fail_msg("after restart, cookie %" PRIu64 ": %s: %s", r->cookie,
				 rill_strerror(r->error), r->reason);
		assert_int_equal(r->token.partition, part);
		/* One producer from 0: offsets are sequences. */
		if (r->cookie % 2 == 0) {
			assert_true(r->duplicate);
			assert_int_equal(r->token.offset, next_seq[part] - 1);
		} else {
			assert_false(r->duplicate);
			assert_int_equal(r->token.offset, next_seq[part]);
		}
	}
	producer_close(p);
	fx_close(f);
	for (uint32_t k = 0; k < IDEM_PARTS; k++)
		free(by_seq[k]);
	free(offset);
	free(seen);
	free(orig);
	free(retry_of);
	acks_free(&acks);
}

/* ---- 3. Projections equal a reference fold ---------------------------------------------- */

#define FOLD_KEYS 257u

struct fold {
	uint64_t count;
	int64_t sum, min, max, last;
	uint64_t last_offset;
	bool acked;
};

static const char *const proj_names[] = {"p_count", "p_sum", "p_min", "p_max", "p_last", "p_avg"};
static const enum rill_projection_kind proj_kinds[] = {RILL_PROJECTION_COUNT, RILL_PROJECTION_SUM,
						       RILL_PROJECTION_MIN,   RILL_PROJECTION_MAX,
						       RILL_PROJECTION_LAST,  RILL_PROJECTION_AVG};

static void fold_add(struct fold *k, int64_t amount)
{
	if (k->count == 0 || amount < k->min)
		k->min = amount;
	if (k->count == 0 || amount > k->max)
		k->max = amount;
	k->count++;
	k->sum += amount;
	k->last = amount;
}

static void fold_check(struct fx *f, const char *key, const struct fold *k, const char *prefix)
{
	for (unsigned j = 0; j < ARRAY_COUNT(proj_names); j++) {
		char name[64];
		snprintf(name, sizeof(name), "%s%s", prefix, proj_names[j]);
		struct rill_projection_value v;
		if (k->count == 0) {
			assert_int_equal(rill_query(f->engine, name, key, strlen(key), NULL, 0, &v),
					 -ENOENT);
			continue;
		}
		query_ok(f, name, key, &v);
		assert_int_equal(v.count, k->count);
		assert_false(v.is_float);
		if (k->acked)
			assert_int_equal(v.offset, k->last_offset);
		switch (proj_kinds[j]) {
		case RILL_PROJECTION_SUM:
			assert_false(v.sum_overflow);
			assert_int_equal(v.i64, k->sum);
			break;
		case RILL_PROJECTION_MIN:
			assert_int_equal(v.i64, k->min);
			break;
		case RILL_PROJECTION_MAX:
			assert_int_equal(v.i64, k->max);
			break;
		case RILL_PROJECTION_LAST:
			assert_int_equal(v.i64, k->last);
			break;
		case RILL_PROJECTION_AVG: {
			double want = (double)k->sum / (double)k->count;
			double diff = v.avg - want;
			if (diff < 0)
				diff = -diff;
			if (diff > 1e-9 * (want < 0 ? -want : want) + 1e-12)
				fail_msg("%s %s: avg %.17g, the fold says %.17g", name, key, v.avg,
					 want);
			break;
		}
		default:
			break;
		}
	}
}

static void test_projections_fold(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *topic = fx_topic(f, "proj", 4, RILL_DURABILITY_NONE);
	for (unsigned j = 0; j < ARRAY_COUNT(proj_names); j++)
		fx_projection(f, proj_names[j], "proj", proj_kinds[j],
			      proj_kinds[j] == RILL_PROJECTION_COUNT ? NULL : "amount");
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	struct test_rng rng;
	test_rng_init(&rng, 3);
	uint32_t n = events_count();
	struct fold *fold = calloc(FOLD_KEYS + 1, sizeof(*fold)); /* the last key: never seen */
	uint16_t *key_of = calloc(n, sizeof(*key_of));
	assert_non_null(fold);
	assert_non_null(key_of);
	for (uint32_t i = 0; i < n; i++) {
		uint16_t k = (uint16_t)test_rng_below(&rng, FOLD_KEYS);
		/* Mostly small amounts, some large, both signs. */
		int64_t amount = test_rng_below(&rng, 10) == 0
					 ? (int64_t)test_rng_below(&rng, 2000000001ull) - 1000000000
					 : (int64_t)test_rng_below(&rng, 2001) - 1000;
		char key[32];
		snprintf(key, sizeof(key), "user-%u", k);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, amount), 0);
		key_of[i] = k;
		assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED, i), 0);
		fold_add(&fold[k], amount);
		if (i % 32 == 0)
			rill_producer_poll(p, 0);
	}
	flush_ok(p);
	assert_false(acks.oom);
	assert_int_equal(acks.count, n);
	for (size_t i = 0; i < acks.count; i++) {
		const struct ack_rec *r = &acks.v[i];
		assert_true(r->cookie < n);
		if (r->error != 0)
			fail_msg("event %" PRIu64 " refused: %s", r->cookie, r->reason);
		struct fold *k = &fold[key_of[r->cookie]];
		if (!k->acked || r->token.offset > k->last_offset)
			k->last_offset = r->token.offset;
		k->acked = true;
	}
	for (uint32_t k = 0; k <= FOLD_KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "user-%u", k);
		fold_check(f, key, &fold[k], "");
	}

	/* The empty key is a key like any other. */
	struct order_event empty;
	assert_int_equal(order_event_make(&empty, f->order, "", -7), 0);
	empty.ev.key = NULL;
	assert_int_equal(empty.ev.key_bytes, 0);
	assert_int_equal(publish_retry(p, topic, &empty.ev, RILL_ACKS_NONE, n), 0);
	assert_int_equal(publish_retry(p, topic, &empty.ev, RILL_ACKS_NONE, n + 1), 0);
	flush_ok(p);
	struct rill_projection_value ev;
	assert_int_equal(rill_query(f->engine, "p_sum", NULL, 0, NULL, 0, &ev), 0);
	assert_int_equal(ev.count, 2);
	assert_int_equal(ev.i64, -14);
	assert_int_equal(rill_query(f->engine, "p_min", "", 0, NULL, 0, &ev), 0);
	assert_int_equal(ev.i64, -7);

	/* A projection defined now is built from what the logs hold. */
	fx_projection(f, "late_sum", "proj", RILL_PROJECTION_SUM, "amount");
	for (uint32_t k = 0; k < FOLD_KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "user-%u", k);
		struct rill_projection_value v;
		if (fold[k].count == 0)
			continue;
		query_ok(f, "late_sum", key, &v);
		assert_int_equal(v.count, fold[k].count);
		assert_int_equal(v.i64, fold[k].sum);
		assert_int_equal(v.offset, fold[k].last_offset);
	}
	assert_int_equal(rill_query(f->engine, "late_sum", NULL, 0, NULL, 0, &ev), 0);
	assert_int_equal(ev.i64, -14);
	struct stats_sum s = stats_sum(f);
	assert_int_equal(s.events, n + 2u);
	producer_close(p);
	fx_close(f);
	free(fold);
	free(key_of);
	acks_free(&acks);
}

/* ---- 4. Restart ------------------------------------------------------------------------- */

#define RS_KEYS      50u
#define RS_WINDOW_NS 1000000000ull /* every event's time falls in [5 s, 6 s) */

struct rs_topic {
	const char *name;
	uint32_t partitions;
	enum rill_durability durability;
	struct rill_topic *t;
	uint64_t next[4]; /* the offset the next event of each partition must get */
	struct fold fold[RS_KEYS];
};

struct rs {
	struct rs_topic topic[2];
	struct acks acks;
};

/* Created "zeta" first, then "alpha": the engine reloads topics in name order. */
static void rs_define(struct fx *f, struct rs *rs)
{
	/* zeta: small batches and segments, so that its logs roll and recovery reads many
	 * segments; alpha: group commit with the defaults. */
	struct rill_topic_config zc = {.name = "zeta",
				       .partitions = 4,
				       .segment_bytes_max = 64u << 10,
				       .batch_bytes_max = 8192};
	struct rill_error_text err = {{0}};
	int rc = rill_topic_create(f->engine, &zc, &rs->topic[0].t, &err);
	if (rc != 0)
		fail_msg("zeta: %s: %s", rill_strerror(rc), err.message);
	rs->topic[1].t =
		fx_topic(f, rs->topic[1].name, rs->topic[1].partitions, rs->topic[1].durability);
	fx_projection(f, "zeta_sum", "zeta", RILL_PROJECTION_SUM, "amount");
	fx_projection(f, "zeta_max", "zeta", RILL_PROJECTION_MAX, "amount");
	fx_projection(f, "alpha_count", "alpha", RILL_PROJECTION_COUNT, NULL);
	fx_projection(f, "alpha_last", "alpha", RILL_PROJECTION_LAST, "amount");
	struct rill_projection_def wd = {.name = "alpha_win",
					 .topic = "alpha",
					 .type = "Order",
					 .kind = RILL_PROJECTION_WINDOW_COUNT,
					 .window_ns = RS_WINDOW_NS};
	rc = rill_projection_define(f->engine, &wd, &err);
	if (rc != 0)
		fail_msg("alpha_win: %s: %s", rill_strerror(rc), err.message);
}

static void rs_publish(struct fx *f, struct rs *rs, uint32_t n, struct test_rng *rng)
{
	struct rill_producer *p = producer_open(f, 0, &rs->acks);
	rs->acks.count = 0;
	uint64_t *expect_off = calloc(n, sizeof(uint64_t));
	uint32_t *expect_part = calloc(n, sizeof(uint32_t));
	uint16_t *key_of = calloc(n, sizeof(uint16_t));
	assert_non_null(expect_off);
	assert_non_null(expect_part);
	assert_non_null(key_of);
	for (uint32_t i = 0; i < n; i++) {
		struct rs_topic *rt = &rs->topic[i % 2];
		uint16_t k = (uint16_t)test_rng_below(rng, RS_KEYS);
		int64_t amount = (int64_t)test_rng_below(rng, 100001) - 50000;
		char key[32];
		snprintf(key, sizeof(key), "r-%u", k);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, amount), 0);
		o.ev.timestamp_ns = 5 * RS_WINDOW_NS + i;
		uint32_t part = rill_topic_partition(rt->t, key, strlen(key));
		assert_true(part < rt->partitions);
		/* One producer: a partition's events get its next offsets in publish order. */
		expect_off[i] = rt->next[part]++;
		expect_part[i] = part;
		key_of[i] = k;
		assert_int_equal(publish_retry(p, rt->t, &o.ev, RILL_ACKS_APPLIED, i), 0);
		fold_add(&rt->fold[k], amount);
	}
	flush_ok(p);
	assert_false(rs->acks.oom);
	assert_int_equal(rs->acks.count, n);
	for (size_t j = 0; j < rs->acks.count; j++) {
		const struct ack_rec *r = &rs->acks.v[j];
		assert_true(r->cookie < n);
		if (r->error != 0)
			fail_msg("event %" PRIu64 " refused: %s", r->cookie, r->reason);
		assert_int_equal(r->token.partition, expect_part[r->cookie]);
		if (r->token.offset != expect_off[r->cookie])
			fail_msg("topic %s partition %u: offset %" PRIu64 ", expected %" PRIu64
				 " (an offset reused or skipped)",
				 rs->topic[r->cookie % 2].name, r->token.partition, r->token.offset,
				 expect_off[r->cookie]);
		struct fold *k = &rs->topic[r->cookie % 2].fold[key_of[r->cookie]];
		if (!k->acked || r->token.offset > k->last_offset)
			k->last_offset = r->token.offset;
		k->acked = true;
	}
	producer_close(p);
	free(expect_off);
	free(expect_part);
	free(key_of);
}

static void rs_check_value(struct fx *f, const char *proj, const char *key, const struct fold *k,
			   enum rill_projection_kind kind)
{
	struct rill_projection_value v;
	if (k->count == 0) {
		assert_int_equal(rill_query(f->engine, proj, key, strlen(key), NULL, 0, &v),
				 -ENOENT);
		return;
	}
	query_ok(f, proj, key, &v);
	if (v.count != k->count || v.offset != k->last_offset)
		fail_msg("%s %s: count %" PRIu64 " offset %" PRIu64 ", expected %" PRIu64
			 " and %" PRIu64,
			 proj, key, v.count, v.offset, k->count, k->last_offset);
	if (kind == RILL_PROJECTION_SUM)
		assert_int_equal(v.i64, k->sum);
	else if (kind == RILL_PROJECTION_MAX)
		assert_int_equal(v.i64, k->max);
	else if (kind == RILL_PROJECTION_LAST)
		assert_int_equal(v.i64, k->last);
}

static void rs_check(struct fx *f, struct rs *rs)
{
	for (uint32_t k = 0; k < RS_KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "r-%u", k);
		rs_check_value(f, "zeta_sum", key, &rs->topic[0].fold[k], RILL_PROJECTION_SUM);
		rs_check_value(f, "zeta_max", key, &rs->topic[0].fold[k], RILL_PROJECTION_MAX);
		rs_check_value(f, "alpha_count", key, &rs->topic[1].fold[k], RILL_PROJECTION_COUNT);
		rs_check_value(f, "alpha_last", key, &rs->topic[1].fold[k], RILL_PROJECTION_LAST);
		rs_check_value(f, "alpha_win", key, &rs->topic[1].fold[k],
			       RILL_PROJECTION_WINDOW_COUNT);
		if (rs->topic[1].fold[k].count > 0) {
			struct rill_projection_value v;
			query_ok(f, "alpha_win", key, &v);
			assert_int_equal(v.window_start_ns, 5 * RS_WINDOW_NS);
		}
	}
}

static void test_restart(void **state)
{
	struct fx *f = *state;
	struct rs *rs = calloc(1, sizeof(*rs));
	assert_non_null(rs);
	rs->topic[0] = (struct rs_topic){.name = "zeta", .partitions = 4};
	rs->topic[1] = (struct rs_topic){
		.name = "alpha", .partitions = 2, .durability = RILL_DURABILITY_GROUP};
	struct test_rng rng;
	test_rng_init(&rng, 4);
	uint32_t n = events_count() / 2;

	fx_open(f);
	rs_define(f, rs);
	rs_publish(f, rs, n, &rng);
	rs_check(f, rs);
	fx_close(f);

	for (unsigned round = 0; round < 2; round++) {
		fx_open(f);
		/* Topics and projections came back, with the values they held. */
		for (unsigned t = 0; t < 2; t++) {
			struct rs_topic *rt = &rs->topic[t];
			rt->t = rill_topic_find(f->engine, rt->name);
			if (rt->t == NULL)
				fail_msg("round %u: topic %s not found after reopening", round,
					 rt->name);
			assert_int_equal(rill_topic_partitions(rt->t), rt->partitions);
		}
		assert_null(rill_topic_find(f->engine, "missing"));
		rs_check(f, rs);
		/* Defining them again the same way changes nothing. */
		struct rill_topic_config tc = {.name = "zeta", .partitions = 4};
		struct rill_topic *again = NULL;
		struct rill_error_text err = {{0}};
		assert_int_equal(rill_topic_create(f->engine, &tc, &again, &err), 0);
		assert_ptr_equal(again, rs->topic[0].t);
		fx_projection(f, "zeta_sum", "zeta", RILL_PROJECTION_SUM, "amount");
		/* Publishing goes on from the next offsets: none reused. */
		rs_publish(f, rs, n, &rng);
		rs_check(f, rs);
		fx_close(f);
	}
	acks_free(&rs->acks);
	free(rs);
}

/* ---- 5. Refusals ------------------------------------------------------------------------ */

static const struct ack_rec *ack_find(const struct acks *a, uint64_t cookie)
{
	const struct ack_rec *found = NULL;
	for (size_t i = 0; i < a->count; i++) {
		if (a->v[i].cookie == cookie) {
			if (found != NULL)
				fail_msg("cookie %" PRIu64 " acknowledged twice", cookie);
			found = &a->v[i];
		}
	}
	if (found == NULL)
		fail_msg("no acknowledgement for cookie %" PRIu64, cookie);
	return found;
}

static void expect_refusal(const struct acks *a, uint64_t cookie, int error, int level,
			   const char *word1, const char *word2)
{
	const struct ack_rec *r = ack_find(a, cookie);
	if (r->error != error)
		fail_msg("cookie %" PRIu64 ": error %d (%s), expected %d (%s): %s", cookie,
			 r->error, rill_strerror(r->error), error, rill_strerror(error), r->reason);
	assert_int_equal(r->level, level);
	assert_true(r->reason[0] != '\0');
	if (word1 != NULL && strstr(r->reason, word1) == NULL)
		fail_msg("cookie %" PRIu64 ": reason \"%s\" does not say \"%s\"", cookie, r->reason,
			 word1);
	if (word2 != NULL && strstr(r->reason, word2) == NULL)
		fail_msg("cookie %" PRIu64 ": reason \"%s\" does not say \"%s\"", cookie, r->reason,
			 word2);
}

static void test_refusals(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *topic = fx_topic(f, "refuse", 1, RILL_DURABILITY_NONE);
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	struct order_event o;

	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	o.ev.type_id = BAD_TYPE_ID;
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, 1), 0);
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	o.ev.version = 5; /* Order has version 1 only */
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_DURABLE, 2), 0);

	/* A string that is not UTF-8: the reason names the field and the fault. */
	uint8_t bad[PAYLOAD_MAX];
	uint32_t bad_bytes = order_payload(f->order, bad, 5, "abc");
	bad[bad_bytes - 2] = 0xff;
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	o.ev.payload = bad;
	o.ev.payload_bytes = bad_bytes;
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, 3), 0);
	/* A block length that is not the version's. */
	uint8_t bad2[PAYLOAD_MAX];
	uint32_t bad2_bytes = order_payload(f->order, bad2, 5, "abc");
	bad2[0] ^= 8;
	o.ev.payload = bad2;
	o.ev.payload_bytes = bad2_bytes;
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, 4), 0);

	/* acks NONE: a refusal is still reported. */
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	o.ev.type_id = BAD_TYPE_ID;
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_NONE, 5), 0);
	o = (struct order_event){0};
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	o.ev.payload = bad;
	o.ev.payload_bytes = bad_bytes;
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_NONE, 6), 0);

	/* Good events after the refusals: nothing was appended for those. */
	assert_int_equal(order_event_make(&o, f->order, "k", 7), 0);
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, 7), 0);
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_NONE, 8), 0);
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, 9), 0);

	/* Over the limits: refused at once, nothing sent. */
	static uint8_t big[RILL_KEY_BYTES_MAX + 1];
	struct rill_event over = o.ev;
	over.key = big;
	over.key_bytes = RILL_KEY_BYTES_MAX + 1;
	assert_int_equal(rill_publish(p, topic, &over, RILL_ACKS_APPLIED, 100), -EINVAL);
	over = o.ev;
	over.payload_bytes = RILL_PAYLOAD_BYTES_MAX + 1;
	assert_int_equal(rill_publish(p, topic, &over, RILL_ACKS_APPLIED, 101), -EINVAL);
	over = o.ev;
	over.key = NULL;
	assert_int_equal(rill_publish(p, topic, &over, RILL_ACKS_APPLIED, 102), -EINVAL);
	assert_int_equal(rill_publish(p, topic, &o.ev, (enum rill_acks)3, 103), -EINVAL);
	/* The longest key is fine. */
	memset(big, 'k', sizeof(big));
	over = o.ev;
	over.key = big;
	over.key_bytes = RILL_KEY_BYTES_MAX;
	assert_int_equal(rill_publish(p, topic, &over, RILL_ACKS_APPLIED, 10), 0);

	flush_ok(p);
	assert_false(acks.oom);
	expect_refusal(&acks, 1, RILL_E_WRITE_UNKNOWN_TYPE, RILL_ACKS_APPLIED, "9999",
		       "not registered");
	expect_refusal(&acks, 2, RILL_E_WRITE_UNKNOWN_TYPE, RILL_ACKS_DURABLE, "version 5",
		       "not registered");
	expect_refusal(&acks, 3, RILL_E_PAYLOAD_INVALID, RILL_ACKS_APPLIED, "'note'", "UTF-8");
	expect_refusal(&acks, 4, RILL_E_PAYLOAD_INVALID, RILL_ACKS_APPLIED, "block", NULL);
	expect_refusal(&acks, 5, RILL_E_WRITE_UNKNOWN_TYPE, RILL_ACKS_NONE, "not registered", NULL);
	expect_refusal(&acks, 6, RILL_E_PAYLOAD_INVALID, RILL_ACKS_NONE, "'note'", "UTF-8");
	const struct ack_rec *r = ack_find(&acks, 7);
	assert_int_equal(r->error, 0);
	assert_int_equal(r->token.offset, 0);
	assert_string_equal(r->reason, "");
	r = ack_find(&acks, 9);
	assert_int_equal(r->error, 0);
	assert_int_equal(r->token.offset, 2);
	r = ack_find(&acks, 10);
	assert_int_equal(r->error, 0);
	assert_int_equal(r->token.offset, 3);
	/* 1-7, 9 and 10; not 8 (acks none, accepted) nor 100-103 (never sent). */
	assert_int_equal(acks.count, 9);

	struct stats_sum s = stats_sum(f);
	assert_int_equal(s.refused, 6);
	assert_int_equal(s.events, 4);
	producer_close(p);
	fx_close(f);
	acks_free(&acks);
}

/* ---- 6. Backpressure -------------------------------------------------------------------- */

static void test_backpressure(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.ring_bytes = 64u << 10; /* the smallest rings */
	c.ack_ring_bytes = 64u << 10;
	fx_open_with(f, &c);
	struct rill_topic *topic = fx_topic(f, "bp", 2, RILL_DURABILITY_NONE);
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	assert_int_equal(rill_engine_backpressure(f->engine), 0);

	/* Never poll: the shards fill the ack rings, stop taking events (a stall), and the
	 * event rings fill: rill_publish says -EAGAIN. */
	uint64_t published = 0, eagain = 0, stalls = 0;
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS / 2;
	while (eagain == 0 || stalls == 0) {
		char key[32];
		snprintf(key, sizeof(key), "bp-%u", (unsigned)(published % 16));
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)published), 0);
		int rc = rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, published);
		if (rc == 0) {
			published++;
		} else if (rc == -EAGAIN) {
			eagain++;
			stalls = stats_sum(f).stalls;
			nap_ns(20000);
		} else {
			fail_msg("rill_publish: %s", rill_strerror(rc));
		}
		if (rill_clock_now_ns() > deadline)
			fail_msg("no backpressure: %" PRIu64 " published, %" PRIu64
				 " -EAGAIN, %" PRIu64 " stalls",
				 published, eagain, stalls);
	}
	assert_int_equal(acks.count, 0); /* nobody polled */
	assert_int_equal(rill_engine_backpressure(f->engine), eagain);
	assert_true(rill_engine_backpressure(f->engine) > 0);

	/* Poll: everything published gets its acknowledgement, once; nothing lost. */
	flush_ok(p);
	assert_false(acks.oom);
	assert_int_equal(acks.count, published);
	uint8_t *seen = calloc(published, 1);
	assert_non_null(seen);
	for (size_t i = 0; i < acks.count; i++) {
		const struct ack_rec *r = &acks.v[i];
		assert_true(r->cookie < published);
		assert_int_equal(seen[r->cookie], 0);
		seen[r->cookie] = 1;
		assert_int_equal(r->error, 0);
		assert_int_equal(r->level, RILL_ACKS_APPLIED);
	}
	free(seen);
	/* And the producer goes on. */
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "after", 1), 0);
	for (uint32_t i = 0; i < 4096; i++)
		assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED, published + i),
				 0);
	flush_ok(p);
	assert_int_equal(acks.count, published + 4096);
	struct stats_sum s = stats_sum(f);
	assert_int_equal(s.events, published + 4096);
	assert_true(s.stalls > 0);

	/* Durable acknowledgements owed take ack ring slots of their own: publish to a group
	 * commit topic without polling until the rings fill, then every event gets both. */
	struct rill_topic *group = fx_topic(f, "bp_group", 2, RILL_DURABILITY_GROUP);
	acks.count = 0;
	uint64_t durable_published = 0, before = rill_engine_backpressure(f->engine);
	deadline = rill_clock_now_ns() + FLUSH_NS / 2;
	while (rill_engine_backpressure(f->engine) - before < 100) {
		char key[32];
		snprintf(key, sizeof(key), "g-%u", (unsigned)(durable_published % 16));
		struct order_event g;
		assert_int_equal(order_event_make(&g, f->order, key, 1), 0);
		int rc = rill_publish(p, group, &g.ev, RILL_ACKS_DURABLE, durable_published);
		if (rc == 0)
			durable_published++;
		else if (rc == -EAGAIN)
			nap_ns(20000);
		else
			fail_msg("rill_publish: %s", rill_strerror(rc));
		if (rill_clock_now_ns() > deadline)
			fail_msg("no backpressure with durable acks");
	}
	flush_ok(p);
	assert_false(acks.oom);
	assert_int_equal(acks.count, 2 * durable_published);
	uint8_t *state_of = calloc(durable_published, 1);
	assert_non_null(state_of);
	for (size_t i = 0; i < acks.count; i++) {
		const struct ack_rec *r = &acks.v[i];
		assert_true(r->cookie < durable_published);
		assert_int_equal(r->error, 0);
		int want = state_of[r->cookie] == 0 ? RILL_ACKS_APPLIED : RILL_ACKS_DURABLE;
		assert_true(state_of[r->cookie] < 2);
		assert_int_equal(r->level, want);
		state_of[r->cookie]++;
	}
	free(state_of);
	producer_close(p);
	fx_close(f);
	acks_free(&acks);
}

/* ---- 7. Durable acknowledgements -------------------------------------------------------- */

/* Publish @n events with acks DURABLE to @topic; each must get APPLIED, then DURABLE with
 * the same token. */
static void durable_round(struct fx *f, struct rill_topic *topic, uint32_t n)
{
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	for (uint32_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "d-%u", i % 97);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)i), 0);
		assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_DURABLE, i), 0);
		if (i % 8 == 0)
			rill_producer_poll(p, 0);
	}
	flush_ok(p);
	assert_false(acks.oom);
	uint8_t *st = calloc(n, 1);
	struct rill_token *token = calloc(n, sizeof(*token));
	assert_non_null(st);
	assert_non_null(token);
	for (size_t j = 0; j < acks.count; j++) {
		const struct ack_rec *r = &acks.v[j];
		assert_true(r->cookie < n);
		if (r->error != 0)
			fail_msg("event %" PRIu64 ": %s: %s", r->cookie, rill_strerror(r->error),
				 r->reason);
		assert_false(r->duplicate);
		if (r->level == RILL_ACKS_APPLIED) {
			if (st[r->cookie] != 0)
				fail_msg("event %" PRIu64 ": applied ack after %s", r->cookie,
					 st[r->cookie] == 1 ? "applied" : "durable");
			st[r->cookie] = 1;
			token[r->cookie] = r->token;
		} else if (r->level == RILL_ACKS_DURABLE) {
			if (st[r->cookie] != 1)
				fail_msg("event %" PRIu64 ": durable ack %s", r->cookie,
					 st[r->cookie] == 0 ? "before its applied ack" : "twice");
			st[r->cookie] = 2;
			assert_int_equal(r->token.partition, token[r->cookie].partition);
			assert_int_equal(r->token.offset, token[r->cookie].offset);
		} else {
			fail_msg("event %" PRIu64 ": ack level %d", r->cookie, r->level);
		}
	}
	for (uint32_t i = 0; i < n; i++)
		if (st[i] != 2)
			fail_msg("event %u: %s", i, st[i] == 0 ? "no ack" : "no durable ack");
	assert_int_equal(acks.count, 2ull * n);
	producer_close(p);
	free(st);
	free(token);
	acks_free(&acks);
}

/* rill_producer_poll counts every callback it runs: an applied and a durable
 * acknowledgement that came as one ring record (durability none) count as two. */
static void durable_poll_counts(struct fx *f, struct rill_topic *topic, uint32_t n)
{
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	for (uint32_t i = 0; i < n; i++) {
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, "poll-count", (int64_t)i), 0);
		assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_DURABLE, i), 0);
	}
	uint64_t polled = 0, deadline = rill_clock_now_ns() + FLUSH_NS;
	while (acks.count < 2ull * n && rill_clock_now_ns() < deadline)
		polled += (uint64_t)rill_producer_poll(p, 1000000);
	assert_int_equal(acks.count, 2ull * n);
	assert_int_equal(polled, acks.count);
	assert_int_equal(rill_producer_acks_owed(p), 0);
	producer_close(p);
	acks_free(&acks);
}

static void test_durable_acks(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	uint32_t n = events_count() / 2;
	durable_round(f, fx_topic(f, "dur_group", 4, RILL_DURABILITY_GROUP), n);
	/* Durability none: memory is all it promises; both acknowledgements still come. */
	durable_round(f, fx_topic(f, "dur_none", 2, RILL_DURABILITY_NONE), n);
	struct stats_sum s = stats_sum(f);
	assert_int_equal(s.events, 2ull * n);
	/* The durable stage counts the events that reached a disk: a none topic's durable
	 * acknowledgement is its applied one, and it pulled the stage's percentiles down. */
	assert_int_equal(s.durable, n);
	durable_poll_counts(f, fx_topic(f, "dur_group", 4, RILL_DURABILITY_GROUP), 64);
	durable_poll_counts(f, fx_topic(f, "dur_none", 2, RILL_DURABILITY_NONE), 64);
	fx_close(f);
}

/* ---- 8. Queries with a token ------------------------------------------------------------ */

static void test_query_token(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *topic = fx_topic(f, "tok", 2, RILL_DURABILITY_NONE);
	fx_projection(f, "tok_sum", "tok", RILL_PROJECTION_SUM, "amount");
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "tk", 41), 0);
	assert_int_equal(rill_publish(p, topic, &o.ev, RILL_ACKS_APPLIED, 1), 0);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	while (acks.count == 0 && rill_clock_now_ns() < deadline)
		rill_producer_poll(p, 1000000);
	assert_int_equal(acks.count, 1);
	assert_int_equal(acks.v[0].error, 0);
	struct rill_token tok = acks.v[0].token;

	/* Applied already: no wait, even with no time at all. */
	struct rill_projection_value v;
	memset(&v, 0, sizeof(v));
	assert_int_equal(rill_query(f->engine, "tok_sum", "tk", 2, &tok, 0, &v), 0);
	assert_int_equal(v.count, 1);
	assert_int_equal(v.i64, 41);
	assert_int_equal(v.offset, tok.offset);

	/* An offset far ahead: stale once the time is up. */
	struct rill_token future = {.partition = tok.partition,
				    .offset = tok.offset + (1ull << 40)};
	assert_int_equal(rill_query(f->engine, "tok_sum", "tk", 2, &future, 20000000, &v),
			 RILL_E_QUERY_STALE);
	struct rill_token other = {.partition = 1 - tok.partition, .offset = 5};
	assert_int_equal(rill_query(f->engine, "tok_sum", "tk", 2, &other, 1000000, &v),
			 RILL_E_QUERY_STALE);

	assert_int_equal(rill_query(f->engine, "nope", "tk", 2, NULL, 0, &v), -ENOENT);
	assert_int_equal(rill_query(f->engine, "nope", "tk", 2, &tok, 0, &v), -ENOENT);
	assert_int_equal(rill_query(f->engine, "tok_sum", "never", 5, NULL, 0, &v), -ENOENT);
	assert_int_equal(rill_query(f->engine, "tok_sum", "never", 5, &tok, 0, &v), -ENOENT);
	struct rill_token bad = {.partition = 2, .offset = 0};
	assert_int_equal(rill_query(f->engine, "tok_sum", "tk", 2, &bad, 0, &v), -EINVAL);
	assert_int_equal(rill_query(f->engine, NULL, "tk", 2, NULL, 0, &v), -EINVAL);
	assert_int_equal(rill_query(f->engine, "tok_sum", "tk", 2, NULL, 0, NULL), -EINVAL);
	assert_int_equal(rill_query(f->engine, "tok_sum", NULL, 2, NULL, 0, &v), -EINVAL);
	static const char long_key[RILL_KEY_BYTES_MAX + 1];
	assert_int_equal(rill_query(f->engine, "tok_sum", long_key, sizeof(long_key), NULL, 0, &v),
			 -EINVAL);
	producer_close(p);
	fx_close(f);
	acks_free(&acks);
}

/* A producer thread that publishes one event after a pause. */
struct late_writer {
	struct fx *f;
	struct rill_topic *topic;
	uint64_t delay_ns;
	int status;
};

static void *late_writer_main(void *arg)
{
	struct late_writer *w = arg;
	struct rill_producer_config pc = {0};
	struct rill_producer *p;
	w->status = rill_producer_open(w->f->engine, &pc, &p);
	if (w->status != 0)
		return NULL;
	nap_ns(w->delay_ns);
	struct order_event o;
	w->status = order_event_make(&o, w->f->order, "tk", 1);
	if (w->status == 0)
		w->status = publish_retry(p, w->topic, &o.ev, RILL_ACKS_APPLIED, 1);
	int rc = rill_producer_close(p);
	if (w->status == 0)
		w->status = rc;
	return NULL;
}

/* Waits for an offset applied later, with a finite time and with all the time there is. */
static void query_wait(struct fx *f, struct rill_topic *topic, uint64_t offset, uint64_t timeout_ns)
{
	struct late_writer w = {.f = f, .topic = topic, .delay_ns = 50000000};
	pthread_t tid;
	assert_int_equal(pthread_create(&tid, NULL, late_writer_main, &w), 0);
	struct rill_token tok = {.partition = 0, .offset = offset};
	struct rill_projection_value v;
	int rc = rill_query(f->engine, "tok_sum", "tk", 2, &tok, timeout_ns, &v);
	pthread_join(tid, NULL);
	assert_int_equal(w.status, 0);
	if (rc != 0)
		fail_msg("rill_query waiting up to %" PRIu64 " ns for offset %" PRIu64
			 " applied ~50 ms later: %s (returned at once: the deadline overflowed?)",
			 timeout_ns, offset, rill_strerror(rc));
	assert_int_equal(v.count, offset + 1);
}

/*
 * WAS A BUG (engine/engine.c, rill_query): the deadline was now + timeout_ns, which wrapped
 * for a timeout near UINT64_MAX ("wait as long as it takes"), so the query returned
 * RILL_E_QUERY_STALE at once instead of waiting; the deadline now saturates.
 */
static void test_query_token_waits(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *topic = fx_topic(f, "tok", 1, RILL_DURABILITY_NONE);
	fx_projection(f, "tok_sum", "tok", RILL_PROJECTION_SUM, "amount");
	query_wait(f, topic, 0, 10ull * 1000000000ull);
	query_wait(f, topic, 1, UINT64_MAX);
	fx_close(f);
}

/* ---- 9. Topic and projection definitions ------------------------------------------------ */

static void topic_refused(struct fx *f, const char *name, uint32_t partitions, int expect)
{
	struct rill_topic_config tc = {.name = name, .partitions = partitions};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	int rc = rill_topic_create(f->engine, &tc, &t, &err);
	if (rc != expect)
		fail_msg("topic \"%.40s\" (%u partitions): %s, expected %s", name ? name : "(null)",
			 partitions, rill_strerror(rc), rill_strerror(expect));
	assert_true(err.message[0] != '\0');
	if (name != NULL && expect == -EINVAL)
		assert_null(rill_topic_find(f->engine, name));
}

static void projection_refused(struct fx *f, const char *name, const char *topic, const char *type,
			       enum rill_projection_kind kind, const char *field, int expect)
{
	struct rill_projection_def d = {
		.name = name, .topic = topic, .type = type, .kind = kind, .field = field};
	struct rill_error_text err = {{0}};
	int rc = rill_projection_define(f->engine, &d, &err);
	if (rc != expect)
		fail_msg("projection \"%.40s\": %s, expected %s (%s)", name ? name : "(null)",
			 rill_strerror(rc), rill_strerror(expect), err.message);
	assert_true(err.message[0] != '\0');
}

static void test_definitions(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	char long_name[201];
	memset(long_name, 'a', 200);
	long_name[200] = '\0';
	const char *bad_names[] = {"", ".hidden", "a/b", long_name, "..", "sp ace", "é"};
	for (unsigned i = 0; i < ARRAY_COUNT(bad_names); i++)
		topic_refused(f, bad_names[i], 2, -EINVAL);
	topic_refused(f, NULL, 2, -EINVAL);
	topic_refused(f, "zero", 0, -EINVAL);
	topic_refused(f, "many", RILL_ENGINE_PARTITIONS_MAX + 1, -EINVAL);
	char max_name[RILL_ENGINE_NAME_BYTES_MAX + 1];
	memset(max_name, 'm', RILL_ENGINE_NAME_BYTES_MAX);
	max_name[RILL_ENGINE_NAME_BYTES_MAX] = '\0';
	struct rill_topic *longest = fx_topic(f, max_name, 1, RILL_DURABILITY_NONE);
	assert_ptr_equal(rill_topic_find(f->engine, max_name), longest);

	struct rill_topic *t = fx_topic(f, "defs", 3, RILL_DURABILITY_NONE);
	assert_ptr_equal(fx_topic(f, "defs", 3, RILL_DURABILITY_NONE), t);
	assert_ptr_equal(rill_topic_find(f->engine, "defs"), t);
	topic_refused(f, "defs", 4, -EEXIST);
	struct rill_topic_config tc = {
		.name = "defs", .partitions = 3, .durability = RILL_DURABILITY_GROUP};
	struct rill_error_text err = {{0}};
	struct rill_topic *out = NULL;
	assert_int_equal(rill_topic_create(f->engine, &tc, &out, &err), -EEXIST);
	assert_true(err.message[0] != '\0');

	projection_refused(f, "p1", "defs", "Nope", RILL_PROJECTION_COUNT, NULL, -ENOENT);
	projection_refused(f, "p1", "nope", "Order", RILL_PROJECTION_COUNT, NULL, -ENOENT);
	projection_refused(f, "p1", "defs", "Order", RILL_PROJECTION_SUM, "nope", -ENOENT);
	projection_refused(f, "p1", "defs", "Order", RILL_PROJECTION_SUM, NULL, -EINVAL);
	/* What the kind would ignore: a field for a count, a window for a kind without. */
	projection_refused(f, "p1", "defs", "Order", RILL_PROJECTION_COUNT, "amount", -EINVAL);
	projection_refused(f, "p1", "defs", "Order", RILL_PROJECTION_WINDOW_COUNT, "amount",
			   -EINVAL);
	struct rill_projection_def wd = {.name = "p1",
					 .topic = "defs",
					 .type = "Order",
					 .kind = RILL_PROJECTION_SUM,
					 .field = "amount",
					 .window_ns = 1000000000};
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_projection_define(f->engine, &wd, &err), -EINVAL);
	assert_non_null(strstr(err.message, "window"));
	wd.kind = RILL_PROJECTION_WINDOW_SUM; /* a window past what JSON's integers hold */
	wd.window_ns = 1ull << 63;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_projection_define(f->engine, &wd, &err), -EINVAL);
	assert_non_null(strstr(err.message, "window_ns"));
	const char *bad_proj[] = {"", ".x", "a/b", long_name, "1abc", "sp ace"};
	for (unsigned i = 0; i < ARRAY_COUNT(bad_proj); i++)
		projection_refused(f, bad_proj[i], "defs", "Order", RILL_PROJECTION_COUNT, NULL,
				   -EINVAL);
	fx_projection(f, "d_sum", "defs", RILL_PROJECTION_SUM, "amount");
	fx_projection(f, "d_sum", "defs", RILL_PROJECTION_SUM, "amount"); /* again: a no-op */
	projection_refused(f, "d_sum", "defs", "Order", RILL_PROJECTION_MAX, "amount", -EEXIST);

	/* A shard's logs share one backend: at most RILL_IO_INFLIGHT_MAX (64) partitions per
	 * shard, so 129 partitions on two shards is too many. */
	topic_refused(f, "wide", 129, -ENOSPC);
	assert_null(rill_topic_find(f->engine, "wide"));

	/* Engine configurations refused before anything is touched. */
	struct rill_engine_config bc;
	struct rill_engine *none = NULL;
	fx_config(f, &bc, 2);
	bc.ring_bytes = 100000; /* not a power of two */
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	assert_non_null(strstr(err.message, "ring_bytes"));
	fx_config(f, &bc, RILL_ENGINE_SHARDS_MAX + 1);
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	fx_config(f, &bc, 2);
	bc.poll = (enum rill_poll_mode)7;
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	fx_config(f, &bc, 2);
	bc.subscriptions_per_shard = RILL_ENGINE_SUBSCRIPTIONS_MAX + 1;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	assert_non_null(strstr(err.message, "subscriptions_per_shard"));
	fx_config(f, &bc, 2);
	bc.io_workers = (enum rill_io_workers)2;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	assert_non_null(strstr(err.message, "io_workers"));
	/* A CPU named for a shard that no thread can be pinned to: refused, not run unpinned
	 * (unless pinning is off). */
	fx_config(f, &bc, 2);
	bc.cpus = (const int[]){rill_cpu_nth(0), 1023}; /* ours (a cpuset may lack CPU 0) */
	bc.pin = true;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	assert_non_null(strstr(err.message, "shard 1 cannot be pinned to CPU 1023"));
	/* A CPU list with the shard count left to the machine: the list's end is not known,
	 * so refused rather than read past. */
	bc.cpus = (const int[]){rill_cpu_nth(0)};
	bc.shards = 0;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&none, &bc, &err), -EINVAL);
	assert_non_null(strstr(err.message, "cpus needs shards"));

	/* One engine per data directory. */
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	struct rill_engine *second = NULL;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&second, &c, &err), -EBUSY);
	assert_non_null(strstr(err.message, "another engine"));

	/* Closing with a producer open is refused, and the engine goes on. */
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	assert_int_equal(rill_engine_close(f->engine), -EBUSY);
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "x", 3), 0);
	assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, 1), 0);
	flush_ok(p);
	assert_int_equal(acks.count, 1);
	assert_int_equal(acks.v[0].error, 0);
	struct rill_projection_value v;
	query_ok(f, "d_sum", "x", &v);
	assert_int_equal(v.i64, 3);
	producer_close(p);
	fx_close(f);
	acks_free(&acks);
}

/* A polled device's stand-in: counts its polls and the longest gap between two. */
struct nap_hook {
	uint64_t polls, last_ns, gap_max_ns;
};

static unsigned nap_poll(void *arg)
{
	struct nap_hook *h = arg;
	uint64_t now = rill_clock_now_ns();
	if (h->last_ns != 0 && now - h->last_ns > h->gap_max_ns)
		h->gap_max_ns = now - h->last_ns;
	h->last_ns = now;
	h->polls++;
	return 0; /* never anything: the shard is idle */
}

/* The shard's sleeps, and its hook's figures once removed (then they are this thread's). */
static uint64_t nap_run(struct fx *f, uint64_t nap, uint64_t window_ns, struct nap_hook *h)
{
	*h = (struct nap_hook){0};
	struct rill_shard_hook hook = {.poll = nap_poll, .arg = h, .nap_ns = nap};
	struct rill_shard_stats before, after;
	assert_int_equal(rill_engine_shard_hook_add(f->engine, 0, &hook), 0);
	assert_int_equal(rill_engine_shard_stats(f->engine, 0, &before), 0);
	nap_ns(window_ns);
	assert_int_equal(rill_engine_shard_stats(f->engine, 0, &after), 0);
	assert_int_equal(rill_engine_shard_hook_remove(f->engine, 0, h), 0);
	return after.sleeps - before.sleeps;
}

/*
 * A hook with no sleep of its own (a polled device): with nap_ns 0 an idle shard never
 * sleeps; with nap_ns 1 ms it sleeps at most that long at a time and, after a nap, naps
 * again without spinning idle_spin_ns (10 ms here) first: about 500 sleeps in 500 ms,
 * where an uncapped idle sleep (100 ms) would give 5 and a spin before each nap 45. The
 * bound leaves room for a loaded machine.
 */
static void test_hook_naps(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.idle_spin_ns = 10000000u;
	fx_open_with(f, &c);
	struct nap_hook h;
	assert_int_equal(nap_run(f, 0, 200000000u, &h), 0);
	assert_true(h.polls > 0);
	uint64_t sleeps = nap_run(f, 1000000u, 500000000u, &h);
	if (sleeps < 150)
		fail_msg("nap_ns 1 ms: %llu sleeps in 500 ms (%llu polls, longest gap %llu ms)",
			 (unsigned long long)sleeps, (unsigned long long)h.polls,
			 (unsigned long long)(h.gap_max_ns / 1000000u));
	fx_close(f);
}

/* Calls @fn for each thread of this process with its id and name (comm). */
static void tasks_scan(void (*fn)(void *arg, int tid, const char *comm), void *arg)
{
	DIR *tasks = opendir("/proc/self/task");
	assert_non_null(tasks);
	struct dirent *d;
	while ((d = readdir(tasks)) != NULL) {
		char path[300], comm[32] = {0};
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		FILE *fp = fopen(path, "r");
		if (fp == NULL)
			continue; /* ".", "..", or a thread that just ended */
		if (fgets(comm, sizeof(comm), fp) != NULL) {
			comm[strcspn(comm, "\n")] = '\0';
			fn(arg, atoi(d->d_name), comm);
		}
		fclose(fp);
	}
	closedir(tasks);
}

static void shard_named_note(void *arg, int tid, const char *comm)
{
	(void)tid;
	unsigned *seen = arg;
	for (unsigned i = 0; i < 2; i++) {
		char want[16];
		snprintf(want, sizeof(want), "rill-shard%u", i);
		if (strcmp(comm, want) == 0)
			*seen |= 1u << i;
	}
}

/* How many of shards 0 and 1 have a thread named for them: a bit each. */
static unsigned shard_threads_named(void)
{
	unsigned seen = 0;
	tasks_scan(shard_named_note, &seen);
	return seen;
}

/* Every shard's thread is named for it ("rill-shard0" ...), as top -H and perf show it. */
static void test_shard_thread_names(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	fx_open_with(f, &c);
	uint64_t deadline = rill_clock_now_ns() + 5000000000u; /* a thread names itself */
	unsigned seen;
	while ((seen = shard_threads_named()) != 3u && rill_clock_now_ns() < deadline)
		usleep(1000);
	assert_int_equal(seen, 3u);
	int spare[4];
	assert_int_equal(rill_engine_spare_cpus(f->engine, spare, 4), 0); /* unpinned shards */
	assert_int_equal(rill_engine_close(f->engine), 0);
	f->engine = NULL;
}

struct io_workers {
	int shard_tid, cpu; /* the shard's thread and the CPU it is pinned to */
	unsigned seen, on_cpu;
};

static void shard_tid_note(void *arg, int tid, const char *comm)
{
	struct io_workers *w = arg;
	if (strcmp(comm, "rill-shard0") == 0)
		w->shard_tid = tid;
}

static void io_worker_note(void *arg, int tid, const char *comm)
{
	struct io_workers *w = arg;
	char want[32];
	snprintf(want, sizeof(want), "iou-wrk-%d", w->shard_tid);
	if (strcmp(comm, want) != 0)
		return;
	cpu_set_t set;
	if (sched_getaffinity(tid, sizeof(set), &set) != 0)
		return; /* it just ended */
	w->seen++;
	w->on_cpu += CPU_ISSET(w->cpu, &set) != 0;
}

/* Does this kernel take an io-wq affinity (IORING_REGISTER_IOWQ_AFF, Linux 5.14)? Asked on
 * a ring of our own, for this thread's io-wq. */
static bool iowq_affinity_taken(void)
{
	struct io_uring ring;
	if (io_uring_queue_init(4, &ring, 0) != 0)
		return false;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	struct io_uring_cqe *cqe;
	bool ok = io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0;
	cpu_set_t set;
	ok = ok && sched_getaffinity(0, sizeof(set), &set) == 0 &&
	     io_uring_register_iowq_aff(&ring, sizeof(set), &set) == 0;
	io_uring_queue_exit(&ring);
	return ok;
}

/*
 * A pinned shard's io_uring workers (io-wq: every fdatasync runs on one) are kept off its
 * CPU when the process has another. Left alone, they got exactly the shard's CPU on the
 * project's kernel (6.18): the pin, inherited, so every sync preempted the shard.
 */
static void test_io_workers_off_shard_cpu(void **state)
{
	struct fx *f = *state;
	if (rill_cpu_count() < 2) {
		print_message("one CPU: nowhere else for the workers to go\n");
		skip();
	}
	if (!iowq_affinity_taken()) {
		print_message("this kernel sets no io_uring worker affinity (before 5.14?)\n");
		skip();
	}
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	struct io_workers w = {.cpu = rill_cpu_nth(0)};
	c.cpus = &w.cpu;
	c.pin = true;
	fx_open_with(f, &c);
	/* Every CPU of ours but the shard's is spare: where a host's hot threads belong. */
	static int spare[RILL_CPUS_MAX];
	unsigned spares = rill_engine_spare_cpus(f->engine, spare, RILL_CPUS_MAX);
	assert_int_equal(spares, (unsigned)rill_cpu_count() - 1);
	for (unsigned i = 0; i < spares; i++)
		assert_int_not_equal(spare[i], w.cpu);
	assert_int_equal(rill_engine_spare_cpus(f->engine, spare, 0), 0); /* @max bounds it */
	durable_round(f, fx_topic(f, "iowq", 2, RILL_DURABILITY_GROUP), 2000);
	tasks_scan(shard_tid_note, &w);
	assert_int_not_equal(w.shard_tid, 0);
	tasks_scan(io_worker_note, &w); /* right away: idle workers end after seconds */
	fx_close(f);
	if (w.seen == 0) {
		print_message("no io_uring worker of the shard seen (io_uring refused?)\n");
		skip();
	}
	if (w.on_cpu > 0)
		fail_msg("%u of the shard's %u io_uring workers may run on its CPU %d", w.on_cpu,
			 w.seen, w.cpu);
}

/* Shards pinned to every CPU we have leave none spare. */
static void test_no_spare_cpus(void **state)
{
	struct fx *f = *state;
	static int all[RILL_CPUS_MAX];
	int n = rill_cpu_others(NULL, 0, all);
	assert_true(n > 0);
	if (n > 8)
		n = 8; /* a big machine: 8 shards on 8 of its CPUs leave the others spare */
	struct rill_engine_config c;
	fx_config(f, &c, (uint32_t)n);
	c.cpus = all;
	c.pin = true;
	fx_open_with(f, &c);
	int spare[4];
	unsigned want = (unsigned)(rill_cpu_count() - n);
	unsigned got = rill_engine_spare_cpus(f->engine, spare, 4);
	assert_int_equal(got, want < 4 ? want : 4);
	for (unsigned i = 0; i < got; i++)
		for (int k = 0; k < n; k++)
			assert_int_not_equal(spare[i], all[k]);
	fx_close(f);
}

/* An on_ack that closes its own handle: refused (-EBUSY), since the loop delivering the
 * acknowledgement goes on with the handle; it used to free it under that loop (a crash). */
struct close_in_ack {
	struct rill_producer *p;
	int rc;
	uint32_t calls;
};

static void close_in_ack_cb(void *arg, const struct rill_ack *ack)
{
	struct close_in_ack *c = arg;
	(void)ack;
	c->calls++;
	c->rc = rill_producer_close(c->p);
}

static void test_close_inside_on_ack(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "cb", 1, RILL_DURABILITY_NONE);
	struct close_in_ack c = {.rc = 1};
	struct rill_producer_config pc = {.on_ack = close_in_ack_cb, .arg = &c};
	assert_int_equal(rill_producer_open(f->engine, &pc, &c.p), 0);
	struct order_event o;
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		assert_int_equal(publish_retry(c.p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(c.p);
	assert_int_equal(c.calls, 3);
	assert_int_equal(c.rc, -EBUSY);
	producer_close(c.p); /* after the poll: fine */
	fx_close(f);
}

/* A callback that publishes: the first acknowledgement it sees publishes a fire-and-forget
 * event (RILL_ACKS_NONE) of an unregistered type, which owes no acknowledgement; its
 * refusal is the one that comes back. */
struct publish_in_ack {
	struct fx *f;
	struct rill_topic *t;
	struct rill_producer *p;
	uint32_t published, refusals;
	int publish_rc;
};

static void publish_in_ack_cb(void *arg, const struct rill_ack *ack)
{
	struct publish_in_ack *c = arg;
	if (ack->error != 0) {
		c->refusals++;
		return;
	}
	if (c->published > 0)
		return;
	struct order_event o;
	c->publish_rc = order_event_make(&o, c->f->order, "k", 1);
	o.ev.type_id = BAD_TYPE_ID;
	if (c->publish_rc == 0)
		c->publish_rc = rill_publish(c->p, c->t, &o.ev, RILL_ACKS_NONE, 2);
	if (c->publish_rc == 0)
		c->published++;
}

/* Publish one applied event through a publish_in_ack handle and wait until the shard has
 * taken it (its counters, read between turns, say so once the ring is empty again): the
 * flush or close that follows starts with empty rings and the acknowledgement waiting. */
static void publish_in_ack_start(struct fx *f, struct publish_in_ack *c)
{
	fx_open(f);
	c->f = f;
	c->t = fx_topic(f, "pia", 1, RILL_DURABILITY_NONE);
	struct rill_producer_config pc = {.on_ack = publish_in_ack_cb, .arg = c};
	assert_int_equal(rill_producer_open(f->engine, &pc, &c->p), 0);
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	assert_int_equal(rill_publish(c->p, c->t, &o.ev, RILL_ACKS_APPLIED, 1), 0);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	while (stats_sum(f).events == 0 && rill_clock_now_ns() < deadline)
		nap_ns(100000);
	assert_int_equal(stats_sum(f).events, 1);
}

/*
 * rill_producer_flush returns once every event published has been processed, those its
 * callbacks publish during the flush included.
 *
 * WAS A BUG (engine/producer.c, rill_producer_flush): it looked at the rings before the
 * poll and at acks_owed after it; an event a callback published in that poll with
 * RILL_ACKS_NONE owed nothing, so the flush returned 0 with it still in the ring, and its
 * refusal came after.
 */
static void test_flush_after_callback_publish(void **state)
{
	struct fx *f = *state;
	struct publish_in_ack c = {0};
	publish_in_ack_start(f, &c);
	assert_int_equal(rill_producer_flush(c.p, FLUSH_NS), 0);
	assert_int_equal(c.publish_rc, 0);
	assert_int_equal(c.published, 1);
	assert_int_equal(c.refusals, 1); /* processed, and its refusal delivered */
	assert_int_equal(rill_producer_poll(c.p, 0), 0);
	producer_close(c.p);
	fx_close(f);
}

/*
 * WAS A BUG (engine/producer.c, rill_producer_close): the same early flush left the event
 * in the ring, and the shard's RILL_ASSERT that a detaching producer's ring is empty
 * (shard_control.c, SHARD_REQ_PRODUCER_DETACH) aborted the process.
 */
static void test_close_after_callback_publish(void **state)
{
	struct fx *f = *state;
	struct publish_in_ack c = {0};
	publish_in_ack_start(f, &c);
	assert_int_equal(rill_producer_close(c.p), 0); /* it flushes: the callback runs inside */
	assert_int_equal(c.publish_rc, 0);
	assert_int_equal(c.published, 1);
	assert_int_equal(c.refusals, 1);
	fx_close(f);
}

/*
 * A callback that polls or flushes its own handle, with 60,000 acknowledgements waiting
 * (a 4 MiB ack ring, filled by a producer that did not poll): one poll delivers them all,
 * in order, and no callback runs inside another. A nested poll delivers none; a nested
 * flush returns -EINPROGRESS while acknowledgements it took in wait for the outer poll,
 * and 0 in the last callback, when none are left.
 *
 * WAS A BUG (engine/producer.c, producer_drain): the nested poll or flush delivered the
 * next acknowledgement from inside the callback of the one before, a recursion as deep as
 * the acknowledgements waiting: the stack overflowed (SIGSEGV).
 */
#define NESTED_EVENTS 60000u

enum nested_mode { NESTED_POLL, NESTED_FLUSH };

struct nested {
	struct rill_producer *p;
	enum nested_mode mode;
	uint32_t calls, depth, depth_max, out_of_order, errors;
	uint64_t next_cookie;
	int64_t nested_delivered;                           /* what the nested polls returned */
	uint32_t flush_zero, flush_inprogress, flush_other; /* the nested flushes' returns */
};

static void nested_cb(void *arg, const struct rill_ack *ack)
{
	struct nested *n = arg;
	n->calls++;
	n->errors += ack->error != 0;
	n->out_of_order += ack->cookie != n->next_cookie; /* one partition: cookie order */
	n->next_cookie = ack->cookie + 1;
	if (++n->depth > n->depth_max)
		n->depth_max = n->depth;
	if (n->mode == NESTED_POLL) {
		n->nested_delivered += rill_producer_poll(n->p, 0);
	} else {
		int rc = rill_producer_flush(n->p, FLUSH_NS);
		if (rc == 0)
			n->flush_zero++;
		else if (rc == -EINPROGRESS)
			n->flush_inprogress++;
		else
			n->flush_other++;
	}
	n->depth--;
}

static void nested_run(struct fx *f, enum nested_mode mode)
{
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.ack_ring_bytes = 4u << 20; /* room for every acknowledgement: one slot each */
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "nested", 2, RILL_DURABILITY_NONE);
	struct nested n = {.mode = mode};
	struct rill_producer_config pc = {.on_ack = nested_cb, .arg = &n};
	assert_int_equal(rill_producer_open(f->engine, &pc, &n.p), 0);
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	for (uint32_t i = 0; i < NESTED_EVENTS; i++) {
		int rc;
		/* No poll: the acknowledgements pile up in their ring. */
		while ((rc = rill_publish(n.p, t, &o.ev, RILL_ACKS_APPLIED, i)) == -EAGAIN) {
			if (rill_clock_now_ns() > deadline)
				fail_msg("event %u: the ring stayed full", i);
			nap_ns(1000000);
		}
		assert_int_equal(rc, 0);
	}
	while (stats_sum(f).events < NESTED_EVENTS && rill_clock_now_ns() < deadline)
		nap_ns(1000000);
	assert_int_equal(stats_sum(f).events, NESTED_EVENTS); /* every ack in its ring */
	assert_int_equal(rill_producer_poll(n.p, 0), NESTED_EVENTS);
	assert_int_equal(n.calls, NESTED_EVENTS);
	assert_int_equal(n.depth_max, 1);
	assert_int_equal(n.out_of_order, 0);
	assert_int_equal(n.errors, 0);
	assert_int_equal(rill_producer_acks_owed(n.p), 0);
	if (mode == NESTED_POLL) {
		assert_int_equal(n.nested_delivered, 0);
	} else {
		assert_int_equal(n.flush_other, 0);
		assert_int_equal(n.flush_inprogress, NESTED_EVENTS - 1);
		assert_int_equal(n.flush_zero, 1); /* the last: nothing left to deliver */
	}
	assert_int_equal(rill_producer_poll(n.p, 0), 0);
	producer_close(n.p);
	fx_close(f);
}

static void test_poll_inside_on_ack(void **state)
{
	nested_run(*state, NESTED_POLL);
}

static void test_flush_inside_on_ack(void **state)
{
	nested_run(*state, NESTED_FLUSH);
}

/*
 * A chain: every acknowledgement of an order publishes a follow-up from its callback and,
 * while the ring is full, polls its own handle and tries again (as rill_publish says to do
 * on -EAGAIN). With the smallest rings the follow-ups meet full rings all the time: each
 * nested poll must still free the ack rings, or the shards would stop taking events and
 * the callback would spin for ever. Every follow-up goes out, no callback runs inside
 * another, and the flush after sees every acknowledgement.
 *
 * WAS A BUG (engine/producer.c, producer_drain): the nested polls delivered from inside
 * the callbacks, one level deeper per acknowledgement waiting.
 */
struct chain {
	struct fx *f;
	struct rill_topic *t;
	struct rill_producer *p;
	uint32_t n;
	uint32_t acks, followups, errors, depth, depth_max;
	uint32_t full; /* follow-ups that met a full ring, and polled */
	int rc;        /* the first publish that failed */
};

static void chain_cb(void *arg, const struct rill_ack *ack)
{
	struct chain *c = arg;
	c->acks++;
	c->errors += ack->error != 0;
	if (ack->error != 0 || ack->cookie >= c->n)
		return; /* a follow-up's own */
	if (++c->depth > c->depth_max)
		c->depth_max = c->depth;
	struct order_event o;
	int rc = order_event_make(&o, c->f->order, "f", 2);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	while (rc == 0) {
		rc = rill_publish(c->p, c->t, &o.ev, RILL_ACKS_APPLIED, ack->cookie + c->n);
		if (rc != -EAGAIN)
			break;
		c->full++;
		rill_producer_poll(c->p, 100000); /* backpressure: poll, retry */
		rc = rill_clock_now_ns() > deadline ? -ETIMEDOUT : 0;
	}
	if (rc == 0)
		c->followups++;
	else if (c->rc == 0)
		c->rc = rc;
	c->depth--;
}

static void test_publish_chain_inside_on_ack(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config cfg;
	fx_config(f, &cfg, 2);
	cfg.ring_bytes = 64u << 10;
	cfg.ack_ring_bytes = 64u << 10;
	fx_open_with(f, &cfg);
	struct chain c = {.f = f, .t = fx_topic(f, "chain", 4, RILL_DURABILITY_NONE)};
	c.n = events_count() < 20000 ? events_count() : 20000;
	struct rill_producer_config pc = {.on_ack = chain_cb, .arg = &c};
	assert_int_equal(rill_producer_open(f->engine, &pc, &c.p), 0);
	char key[16];
	for (uint32_t i = 0; i < c.n; i++) {
		struct order_event o;
		snprintf(key, sizeof(key), "k%u", i % 16);
		assert_int_equal(order_event_make(&o, f->order, key, 1), 0);
		assert_int_equal(publish_retry(c.p, c.t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(c.p);
	fprintf(stderr, "publish_chain_inside_on_ack: %u of %u follow-ups met a full ring\n",
		c.full, c.n);
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.errors, 0);
	assert_int_equal(c.followups, c.n);
	assert_int_equal(c.acks, 2 * c.n);
	assert_int_equal(c.depth_max, 1);
	assert_int_equal(rill_producer_acks_owed(c.p), 0);
	producer_close(c.p);
	assert_int_equal(stats_sum(f).events, 2 * c.n);
	fx_close(f);
}

/* ---- Closing while other threads call ------------------------------------------------ */

#define CLOSE_WATCHDOG_S 10u           /* a close or a call racing it that hangs fails the run */
#define CLOSE_GATE_NS    5000000000ull /* the longest a gate holds a close back */

static void close_watchdog_fired(int sig)
{
	(void)sig;
	static const char msg[] = "test_engine: rill_engine_close, or a call racing it, hung\n";
	ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(1);
}

static void close_watchdog(unsigned seconds)
{
	signal(SIGALRM, seconds > 0 ? close_watchdog_fired : SIG_DFL);
	alarm(seconds);
}

/*
 * A custom projection that keeps nothing, used as a gate: once armed, its destroy, which
 * rill_engine_close runs on the shard's thread before it frees the engine, waits until no
 * thread racing the close is still inside (or about to enter) a call, so that whatever
 * way a race goes, the engine is never freed under a thread of the test.
 */
struct close_gate {
	uint32_t armed;
	uint32_t racing; /* threads whose calls may overlap the close, not yet done */
};

static void *gate_init(void *arg, uint32_t partition)
{
	(void)partition;
	return arg;
}

static int gate_apply(void *state, const struct rill_record *ev, uint64_t offset)
{
	(void)state, (void)ev, (void)offset;
	return 0;
}

static int64_t gate_query(void *state, const void *key, uint32_t key_bytes, void *out,
			  size_t out_bytes)
{
	(void)state, (void)key, (void)key_bytes, (void)out, (void)out_bytes;
	return -ENOENT;
}

static int64_t gate_snapshot(void *state, void *buf, size_t buf_bytes)
{
	(void)state;
	if (buf != NULL && buf_bytes < 1)
		return -ENOSPC;
	if (buf != NULL)
		*(uint8_t *)buf = 'g';
	return 1;
}

static int gate_restore(void *state, const void *buf, size_t buf_bytes)
{
	(void)state, (void)buf;
	return buf_bytes == 1 ? 0 : -EINVAL;
}

static void gate_destroy(void *state)
{
	struct close_gate *g = state;
	if (!__atomic_load_n(&g->armed, __ATOMIC_ACQUIRE))
		return;
	uint64_t deadline = rill_clock_now_ns() + CLOSE_GATE_NS;
	while (__atomic_load_n(&g->racing, __ATOMIC_ACQUIRE) > 0 && rill_clock_now_ns() < deadline)
		nap_ns(100000);
}

static const struct rill_projection_ops gate_ops = {
	.init = gate_init,
	.apply = gate_apply,
	.query = gate_query,
	.snapshot = gate_snapshot,
	.restore = gate_restore,
	.destroy = gate_destroy,
};

/* Open the engine with topic "cq" (one partition), projection "cq_total" and @g. */
static struct rill_topic *close_gate_open(struct fx *f, struct close_gate *g)
{
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "cq", 1, RILL_DURABILITY_NONE);
	fx_projection(f, "cq_total", "cq", RILL_PROJECTION_SUM, "amount");
	struct rill_error_text err = {{0}};
	int rc = rill_projection_define_custom(f->engine, "cq_gate", "cq", &gate_ops, g, &err);
	if (rc != 0)
		fail_msg("rill_projection_define_custom: %s: %s", rill_strerror(rc), err.message);
	return t;
}

struct close_racer {
	struct rill_engine *engine;
	struct close_gate *gate;
	bool token; /* one query waiting for an offset never reached, instead of a loop */
	uint64_t calls;
	int rc;
};

/* Query until the engine refuses (or something unexpected comes), then leave the race. */
static void *close_querier_main(void *arg)
{
	struct close_racer *r = arg;
	struct rill_projection_value v;
	struct rill_token never = {.partition = 0, .offset = 1000000};
	for (;;) {
		if (r->token)
			r->rc = rill_query(r->engine, "cq_total", "k", 1, &never, FLUSH_NS, &v);
		else
			r->rc = rill_query(r->engine, "cq_total", "k", 1, NULL, 0, &v);
		__atomic_fetch_add(&r->calls, 1, __ATOMIC_RELEASE);
		if (r->rc != -ENOENT)
			break; /* -ESHUTDOWN once closing; anything else fails the test */
	}
	__atomic_fetch_sub(&r->gate->racing, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Two threads query while the engine closes: one in a loop, one waiting on a token for an
 * offset the partition never reaches. The close returns, and both calls end with
 * -ESHUTDOWN.
 *
 * WAS A BUG (engine/engine.c, rill_engine_close; engine/shard.c, shard_call): close stopped
 * the shards with queries in flight, which then waited forever for a shard that no longer
 * answered, and close hung destroying the condition variable they waited on (or freed the
 * engine under them).
 */
static void test_close_while_querying(void **state)
{
	struct fx *f = *state;
	struct close_gate g = {.racing = 2};
	close_gate_open(f, &g);
	close_watchdog(CLOSE_WATCHDOG_S);
	struct close_racer r[2] = {{.engine = f->engine, .gate = &g},
				   {.engine = f->engine, .gate = &g, .token = true}};
	pthread_t tid[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, close_querier_main, &r[i]), 0);
	while (__atomic_load_n(&r[0].calls, __ATOMIC_ACQUIRE) < 100)
		nap_ns(100000);
	nap_ns(20000000); /* the token's query is waiting by now */
	__atomic_store_n(&g.armed, 1, __ATOMIC_RELEASE);
	int rc = rill_engine_close(f->engine);
	f->engine = NULL;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	close_watchdog(0);
	assert_int_equal(rc, 0);
	assert_int_equal(r[0].rc, -ESHUTDOWN);
	assert_int_equal(r[1].rc, -ESHUTDOWN);
	assert_int_equal(r[1].calls, 1); /* one call, which waited until the close */
}

struct close_opener {
	struct rill_engine *engine;
	struct close_gate *gate;
	uint32_t go;
	struct rill_producer *p;
	int rc;
};

static void *close_opener_main(void *arg)
{
	struct close_opener *o = arg;
	while (!__atomic_load_n(&o->go, __ATOMIC_ACQUIRE))
		sched_yield();
	o->rc = rill_producer_open(o->engine, NULL, &o->p);
	__atomic_fetch_sub(&o->gate->racing, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A producer opens on one thread while the engine closes on another: either the close
 * finds it (-EBUSY) or the open is refused (-ESHUTDOWN); never both 0.
 *
 * WAS A BUG (engine/engine.c, rill_engine_close): close counted the handles, let go of the
 * lock and stopped the shards; an open that came in between attached to shards that were
 * stopping (both returned 0, the handle's shards gone) or waited forever for one that had
 * stopped.
 */
static void test_close_while_opening(void **state)
{
	struct fx *f = *state;
	unsigned closed_first = 0;
	for (int round = 0; round < 3; round++) {
		struct close_gate g = {.racing = 1};
		close_gate_open(f, &g);
		close_watchdog(CLOSE_WATCHDOG_S);
		struct close_opener o = {.engine = f->engine, .gate = &g, .rc = 1};
		pthread_t tid;
		assert_int_equal(pthread_create(&tid, NULL, close_opener_main, &o), 0);
		__atomic_store_n(&g.armed, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&o.go, 1, __ATOMIC_RELEASE);
		int rc = rill_engine_close(f->engine);
		assert_int_equal(pthread_join(tid, NULL), 0);
		close_watchdog(0);
		if (rc == 0) {
			f->engine = NULL;
			assert_int_equal(o.rc, -ESHUTDOWN);
			assert_null(o.p);
			closed_first++;
			continue;
		}
		assert_int_equal(rc, -EBUSY);
		assert_int_equal(o.rc, 0);
		__atomic_store_n(&g.armed, 0, __ATOMIC_RELEASE);
		producer_close(o.p);
		fx_close(f);
	}
	fprintf(stderr, "close_while_opening: the close came first in %u of 3 rounds\n",
		closed_first);
}

/* At most RILL_ENGINE_PRODUCERS_MAX producer handles at once; a slot freed is reused. */
static void test_producer_limit(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.ring_bytes = 64u << 10;
	c.ack_ring_bytes = 64u << 10;
	fx_open_with(f, &c);
	struct rill_topic *topic = fx_topic(f, "many", 2, RILL_DURABILITY_NONE);
	struct rill_producer *p[RILL_ENGINE_PRODUCERS_MAX];
	struct acks acks = {0};
	for (unsigned i = 0; i < RILL_ENGINE_PRODUCERS_MAX; i++)
		p[i] = producer_open(f, i + 1, &acks);
	struct rill_producer_config pc = {0};
	struct rill_producer *extra = NULL;
	assert_int_equal(rill_producer_open(f->engine, &pc, &extra), -ENOSPC);
	/* Every handle works: one event each, idempotent, sequence 0. */
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "m", 1), 0);
	for (unsigned i = 0; i < RILL_ENGINE_PRODUCERS_MAX; i++)
		assert_int_equal(publish_retry(p[i], topic, &o.ev, RILL_ACKS_APPLIED, i), 0);
	for (unsigned i = 0; i < RILL_ENGINE_PRODUCERS_MAX; i++)
		flush_ok(p[i]);
	assert_int_equal(acks.count, RILL_ENGINE_PRODUCERS_MAX);
	/* One partition ("m"): offsets 0 .. RILL_ENGINE_PRODUCERS_MAX - 1, in no particular
	 * order across producers. */
	_Static_assert(RILL_ENGINE_PRODUCERS_MAX % 64 == 0, "whole words of seen");
	uint64_t seen[RILL_ENGINE_PRODUCERS_MAX / 64] = {0}, offset_of_5 = UINT64_MAX;
	for (size_t i = 0; i < acks.count; i++) {
		assert_int_equal(acks.v[i].error, 0);
		assert_false(acks.v[i].duplicate); /* other producer ids: not retries */
		uint64_t off = acks.v[i].token.offset;
		assert_true(off < RILL_ENGINE_PRODUCERS_MAX);
		seen[off / 64] |= 1ull << (off % 64);
		if (acks.v[i].cookie == 5)
			offset_of_5 = off;
	}
	for (size_t w = 0; w < ARRAY_COUNT(seen); w++)
		assert_int_equal(seen[w], UINT64_MAX);
	producer_close(p[5]);
	p[5] = producer_open(f, 6, &acks); /* the same id again: its event was written */
	assert_int_equal(publish_retry(p[5], topic, &o.ev, RILL_ACKS_APPLIED, 1000), 0);
	flush_ok(p[5]);
	assert_int_equal(acks.count, RILL_ENGINE_PRODUCERS_MAX + 1);
	assert_true(acks.v[acks.count - 1].duplicate);
	assert_int_equal(acks.v[acks.count - 1].token.offset, offset_of_5);
	for (unsigned i = 0; i < RILL_ENGINE_PRODUCERS_MAX; i++)
		producer_close(p[i]);
	fx_close(f);
	acks_free(&acks);
}

/*
 * A server on every shard of the largest engine, beside the host's own handle and one
 * more per shard for a DPDK queue (rill serve --dpdk): 2 x 64 + 1 producer handles.
 *
 * WAS A BUG (include/rill/rill.h, RILL_ENGINE_PRODUCERS_MAX): 64 handles in all. A host
 * holding one could not start a server on 64 shards ("worker 63: No space left on
 * device"), and a server past 32 shards left DPDK too few.
 */
static void test_producer_handles_server_every_shard(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, RILL_ENGINE_SHARDS_MAX);
	c.ring_bytes = 64u << 10; /* two rings per handle and shard: 16,512 of them */
	c.ack_ring_bytes = 64u << 10;
	fx_open_with(f, &c);
	struct rill_producer *host = producer_open(f, 0, NULL);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.connections_max = 64;
	struct rill_server *srv = NULL;
	struct rill_error_text err = {{0}};
	int rc = rill_server_start(&srv, f->engine, &sc, &err);
	if (rc != 0)
		fail_msg("rill_server_start on %u shards beside a host handle: %s: %s",
			 RILL_ENGINE_SHARDS_MAX, rill_strerror(rc), err.message);
	struct rill_producer *queue[RILL_ENGINE_SHARDS_MAX]; /* as DPDK's, one per shard */
	for (uint32_t i = 0; i < RILL_ENGINE_SHARDS_MAX; i++)
		queue[i] = producer_open(f, 0, NULL);
	/* The last handle reaches every shard: an event to each partition, acknowledged. */
	struct rill_topic *t = fx_topic(f, "wide", RILL_ENGINE_SHARDS_MAX, RILL_DURABILITY_NONE);
	struct acks a = {0};
	struct rill_producer *last = producer_open(f, 0, &a);
	struct order_event o;
	char key[16];
	for (uint32_t i = 0; i < 4 * RILL_ENGINE_SHARDS_MAX; i++) {
		snprintf(key, sizeof(key), "w%u", i);
		assert_int_equal(order_event_make(&o, f->order, key, 1), 0);
		assert_int_equal(publish_retry(last, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(last);
	assert_int_equal(a.count, 4 * RILL_ENGINE_SHARDS_MAX);
	producer_close(last);
	acks_free(&a);
	for (uint32_t i = 0; i < RILL_ENGINE_SHARDS_MAX; i++)
		producer_close(queue[i]);
	assert_int_equal(rill_server_stop(srv, 1000000000u), 0);
	producer_close(host);
	fx_close(f);
}

/*
 * With the engine's producer handles all open but one, a server on two shards does not
 * start: its second worker finds none left, and the error names the limit and its value
 * (it said "worker 1: No space left on device").
 */
static void test_server_no_producer_handle(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.ring_bytes = 64u << 10;
	c.ack_ring_bytes = 64u << 10;
	fx_open_with(f, &c);
	static struct rill_producer *p[RILL_ENGINE_PRODUCERS_MAX - 1];
	for (uint32_t i = 0; i < ARRAY_COUNT(p); i++)
		p[i] = producer_open(f, 0, NULL);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.connections_max = 64;
	struct rill_server *srv = NULL;
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_server_start(&srv, f->engine, &sc, &err), -ENOSPC);
	char want[160];
	snprintf(want, sizeof(want),
		 "worker 1: no producer handle left: the engine has its "
		 "RILL_ENGINE_PRODUCERS_MAX (%u) open",
		 RILL_ENGINE_PRODUCERS_MAX);
	if (strstr(err.message, want) == NULL)
		fail_msg("rill_server_start with one handle left for two workers said \"%s\"; "
			 "expected it to start with \"%s\"",
			 err.message, want);
	/* Worker 0's handle went back: one more freed, and both workers have theirs. */
	producer_close(p[0]);
	assert_int_equal(rill_server_start(&srv, f->engine, &sc, &err), 0);
	struct rill_producer *none = NULL;
	struct rill_producer_config pc = {0};
	assert_int_equal(rill_producer_open(f->engine, &pc, &none), -ENOSPC);
	assert_int_equal(rill_server_stop(srv, 1000000000u), 0);
	for (uint32_t i = 1; i < ARRAY_COUNT(p); i++)
		producer_close(p[i]);
	fx_close(f);
}

/*
 * rill_producer_event_bytes_max is what rill_publish takes: with a ring of 4 MiB or more
 * the record's limit bounds it, not the ring. An event of exactly that many bytes (key and
 * payload) is published; one byte more is refused (-EINVAL).
 *
 * WAS A BUG (engine/producer.c, rill_producer_event_bytes_max): it said the ring's
 * reservation limit less the message header (1,052,592 bytes with a 4 MiB ring), past
 * RILL_RECORD_BYTES_MAX - RILL_RECORD_HEADER_BYTES (1,048,512), which rill_publish
 * refuses with -EINVAL.
 */
static void test_event_bytes_max_publishes(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.ring_bytes = 4u << 20;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "big", 1, RILL_DURABILITY_NONE);
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 0, &a);
	uint32_t max = rill_producer_event_bytes_max(p);
	assert_int_equal(max, RILL_RECORD_BYTES_MAX - RILL_RECORD_HEADER_BYTES);
	uint8_t *payload = calloc(1, max + 1);
	assert_non_null(payload);
	for (uint32_t extra = 0; extra < 2; extra++) {
		/* A type nobody registered: refused by the shard, with an acknowledgement. */
		struct rill_event ev = {.key = "k",
					.key_bytes = 1,
					.type_id = BAD_TYPE_ID,
					.version = 1,
					.payload = payload,
					.payload_bytes = max - 1 + extra};
		assert_int_equal(publish_retry(p, t, &ev, RILL_ACKS_APPLIED, extra),
				 extra ? -EINVAL : 0);
	}
	flush_ok(p);
	assert_int_equal(a.count, 1); /* the first went through the ring to its shard */
	assert_int_equal(a.v[0].cookie, 0);
	assert_int_not_equal(a.v[0].error, 0);
	producer_close(p);
	acks_free(&a);
	free(payload);
	/* A default ring (1 MiB) still bounds it below the record's limit. */
	fx_close(f);
	fx_config(f, &c, 1);
	fx_open_with(f, &c);
	p = producer_open(f, 0, NULL);
	max = rill_producer_event_bytes_max(p);
	assert_true(max < RILL_RECORD_BYTES_MAX - RILL_RECORD_HEADER_BYTES);
	assert_true(max > (512u << 10) - 256u);
	producer_close(p);
	fx_close(f);
}

/* A projection defined while a producer thread publishes misses nothing, counts nothing
 * twice: what the logs held is replayed, what comes after is folded. */
#define LIVE_KEYS 100u

struct live_writer {
	struct fx *f;
	struct rill_topic *topic;
	uint32_t n;
	uint64_t published; /* read by the main thread (atomic) */
	int64_t sum[LIVE_KEYS];
	uint64_t count[LIVE_KEYS];
	int status;
};

static void *live_writer_main(void *arg)
{
	struct live_writer *w = arg;
	struct rill_producer_config pc = {0};
	struct rill_producer *p;
	w->status = rill_producer_open(w->f->engine, &pc, &p);
	if (w->status != 0)
		return NULL;
	for (uint32_t i = 0; i < w->n && w->status == 0; i++) {
		unsigned k = (i * 7919u) % LIVE_KEYS;
		char key[32];
		snprintf(key, sizeof(key), "live-%u", k);
		struct order_event o;
		int64_t amount = (int64_t)(i % 1000) - 300;
		w->status = order_event_make(&o, w->f->order, key, amount);
		if (w->status == 0)
			w->status = publish_retry(p, w->topic, &o.ev, RILL_ACKS_APPLIED, i);
		if (w->status == 0) {
			w->sum[k] += amount;
			w->count[k]++;
		}
		__atomic_store_n(&w->published, (uint64_t)i + 1, __ATOMIC_RELEASE);
		if (i % 16 == 0)
			rill_producer_poll(p, 0);
	}
	int rc = rill_producer_close(p);
	if (w->status == 0)
		w->status = rc;
	return NULL;
}

static void test_projection_under_traffic(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct live_writer *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->f = f;
	w->topic = fx_topic(f, "live", 4, RILL_DURABILITY_NONE);
	w->n = events_count();
	pthread_t tid;
	assert_int_equal(pthread_create(&tid, NULL, live_writer_main, w), 0);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	while (__atomic_load_n(&w->published, __ATOMIC_ACQUIRE) < w->n / 3 &&
	       rill_clock_now_ns() < deadline)
		nap_ns(100000);
	fx_projection(f, "live_sum", "live", RILL_PROJECTION_SUM, "amount");
	uint64_t at_define = __atomic_load_n(&w->published, __ATOMIC_ACQUIRE);
	fx_projection(f, "live_count", "live", RILL_PROJECTION_COUNT, NULL);
	pthread_join(tid, NULL);
	if (w->status != 0)
		fail_msg("writer: %s", rill_strerror(w->status));
	for (unsigned k = 0; k < LIVE_KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "live-%u", k);
		struct rill_projection_value v;
		query_ok(f, "live_sum", key, &v);
		if (v.count != w->count[k] || v.i64 != w->sum[k])
			fail_msg("%s: count %" PRIu64 " sum %" PRId64
				 ", the writer published %" PRIu64 " summing %" PRId64
				 " (projection defined after ~%" PRIu64 " events)",
				 key, v.count, v.i64, w->count[k], w->sum[k], at_define);
		query_ok(f, "live_count", key, &v);
		assert_int_equal(v.count, w->count[k]);
	}
	fx_close(f);
	free(w);
}

/*
 * A topic whose log settings the log refuses (batch_bytes_max under 4 KiB, segments under
 * 64 KiB, a batch delay over 10 s) must be refused like any other bad definition, and
 * leave the engine and its data directory as they were.
 *
 * WAS A BUG (engine/engine.c, engine_topic_check / rill_topic_create): only the upper
 * bound of batch_bytes_max was checked, so such a topic passed, its definition was stored,
 * and then rill_partition_open failed on the shard: from then on the data directory could
 * not be opened any more (the stored definition failed again at every open).
 */
static void test_topic_bad_log_config(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic_config bad[] = {
		{.name = "tiny_batch", .partitions = 2, .batch_bytes_max = 100},
		{.name = "tiny_segment", .partitions = 2, .segment_bytes_max = 4096},
		{.name = "slow_batch", .partitions = 2, .batch_delay_ns = 60ull * 1000000000ull},
		/* "Forever": past what topic.json's integers hold (stored as -1, the next open
		 * refused the whole directory). */
		{.name = "forever", .partitions = 2, .retention_age_ns = UINT64_MAX},
		{.name = "huge_segments", .partitions = 2, .segment_bytes_max = 1ull << 63},
	};
	for (unsigned i = 0; i < ARRAY_COUNT(bad); i++) {
		struct rill_error_text err = {{0}};
		struct rill_topic *t = NULL;
		int rc = rill_topic_create(f->engine, &bad[i], &t, &err);
		if (rc == 0)
			continue; /* accepted: fine too, as long as it works (checked below) */
		assert_true(err.message[0] != '\0');
		assert_null(rill_topic_find(f->engine, bad[i].name));
		/* The engine goes on: other topics can still be created. */
		char name[32];
		snprintf(name, sizeof(name), "after_%u", i);
		struct rill_topic_config ok = {.name = name, .partitions = 2};
		memset(&err, 0, sizeof(err));
		rc = rill_topic_create(f->engine, &ok, &t, &err);
		if (rc != 0)
			fail_msg("after %s was refused, topic %s: %s: %s", bad[i].name, name,
				 rill_strerror(rc), err.message);
	}
	/* And the data directory opens again. */
	fx_close(f);
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&f->engine, &c, &err);
	if (rc != 0) {
		f->engine = NULL;
		fail_msg("reopening after refused topic definitions: %s: %s", rill_strerror(rc),
			 err.message);
	}
	fx_close(f);
}

/*
 * A durability none topic's events reach the disk at the latest when the engine closes
 * (a batch delay of 10 s here). When that last write fails (the file size limit,
 * RLIMIT_FSIZE, cuts it short), rill_engine_close says so: it used to return 0 with every
 * event gone.
 */
static void test_close_reports_final_sync(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic_config tc = {.name = "late",
				       .partitions = 1,
				       .durability = RILL_DURABILITY_NONE,
				       .batch_delay_ns = 10ull * 1000000000ull};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	assert_int_equal(rill_topic_create(f->engine, &tc, &t, &err), 0);
	struct rill_producer *p = producer_open(f, 0, NULL);
	enum { EVENTS = 1000 };
	for (uint32_t i = 0; i < EVENTS; i++) {
		struct order_event o;
		char key[16];
		snprintf(key, sizeof(key), "k%u", i % 7);
		assert_int_equal(order_event_make(&o, f->order, key, i), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	struct rlimit saved, low;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	low = saved;
	low.rlim_cur = 8u << 10;  /* the segment's header fits; its first batch does not */
	signal(SIGXFSZ, SIG_IGN); /* the write's EFBIG is enough */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	int rc = rill_engine_close(f->engine);
	f->engine = NULL;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	if (rc >= 0) /* EIO: the write came short, at the limit */
		fail_msg("rill_engine_close after a failed final write: %d, expected an error", rc);
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RILL_TEST_TSAN_CLANG 1
#endif
#endif

/* Run @child(@dir) in a forked child (no cmocka there) and judge its end: killed by a
 * signal fails the test, 77 skips it, another non-zero status fails it naming the step. */
static void fx_child(const char *dir, int (*child)(const char *dir))
{
#if defined(__SANITIZE_THREAD__) || defined(RILL_TEST_TSAN_CLANG)
	/* jemalloc's fork handlers take every arena's lock at once, more than
	 * ThreadSanitizer's deadlock detector tracks (64): it aborts the fork in a process
	 * this busy. The release and asan builds run these children. */
	print_message("a fork under ThreadSanitizer: skipped\n");
	skip();
#endif
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(dir));
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the engine's process was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	if (WEXITSTATUS(status) == 77)
		skip();
	if (WEXITSTATUS(status) != 0)
		fail_msg("the child failed at step %d", WEXITSTATUS(status));
}

/* The child of test_group_commit_full_disk: 0, 77 (skipped), or the step that failed. */
static int group_full_disk_child(const char *dir)
{
	int rc = test_tmpfs_private(dir, 1024);
	if (rc < 0) {
		fprintf(stderr, "no tmpfs of our own (%s): skipped\n", strerror(-rc));
		return 77;
	}
	struct rill_engine_config c;
	rill_engine_config_default(&c);
	c.data_dir = dir;
	c.shards = 1;
	c.pin = false;
	c.groups_max = 1;
	struct rill_engine *e = NULL;
	struct rill_topic *t = NULL;
	struct rill_error_text err = {{0}};
	struct rill_topic_config tc = {.name = "gfull", .partitions = 1};
	if (rill_engine_open(&e, &c, &err) != 0 || rill_topic_create(e, &tc, &t, &err) != 0 ||
	    rill_group_commit(e, "g", t, 0, 0, NULL) != 0)
		return 10;
	if (rill_group_commit(e, "h", t, 0, 0, NULL) != RILL_E_GROUPS_FULL) /* the limit: its own */
		return 11;
	char path[256];
	snprintf(path, sizeof(path), "%s/filler", dir);
	FILE *filler = fopen(path, "wb");
	static const char block[4096];
	while (filler != NULL && fwrite(block, 1, sizeof(block), filler) == sizeof(block) &&
	       fflush(filler) == 0)
		;
	if (filler == NULL)
		return 12;
	(void)fclose(filler);
	rc = rill_group_commit(e, "g", t, 0, 0, NULL); /* a group held: the disk, not the limit */
	if (rc != -ENOSPC) {
		fprintf(stderr, "a commit to a group held, on a full disk: %d\n", rc);
		return 13;
	}
	(void)unlink(path);
	(void)rill_engine_close(e);
	return 0;
}

/*
 * A full disk during a commit to a group the engine holds came back as -ENOSPC, the code
 * of the groups_max refusal, and rill serve told the operator to delete consumer groups.
 * The limit now has a code of its own, RILL_E_GROUPS_FULL; a full disk stays -ENOSPC. In a child,
 * with a tmpfs of its own (skipped where none can be made).
 */
static void test_group_commit_full_disk(void **state)
{
	struct fx *f = *state;
	fx_child(f->dir, group_full_disk_child);
}

/* The first error an acknowledgement carried (the child below: no cmocka there). */
static void first_error_on_ack(void *arg, const struct rill_ack *ack)
{
	int *first = arg;
	if (*first == 0)
		*first = ack->error;
}

/* The child of test_file_size_limit_signal: 0 if its log stopped with EFBIG and it lived
 * on, else the step that failed. SIGXFSZ at its default, as in a host that never set it. */
static int fsize_child(const char *dir)
{
	signal(SIGXFSZ, SIG_DFL);
	struct rill_engine_config c;
	rill_engine_config_default(&c);
	c.data_dir = dir;
	c.shards = 1;
	c.pin = false;
	struct rill_engine *e = NULL;
	const struct rill_schema *s = NULL;
	struct rill_topic *t = NULL;
	struct rill_producer *p = NULL;
	struct rill_error_text err = {{0}};
	struct rill_schema_error serr = {{0}};
	struct rill_topic_config tc = {
		.name = "fsize", .partitions = 1, .durability = RILL_DURABILITY_GROUP};
	int first = 0;
	struct rill_producer_config pc = {.on_ack = first_error_on_ack, .arg = &first};
	if (rill_engine_open(&e, &c, &err) != 0 ||
	    rill_schema_register(rill_engine_schemas(e), ORDER_JSON, strlen(ORDER_JSON), -1, &s,
				 &serr) != 0 ||
	    rill_topic_create(e, &tc, &t, &err) != 0 || rill_producer_open(e, &pc, &p) != 0)
		return 10;
	struct rlimit lim;
	struct stat sb;
	char path[512];
	snprintf(path, sizeof(path), "%s/topics/fsize/0/%020d.log", dir, 0);
	struct order_event o;
	for (uint32_t i = 0; i < 200; i++) {
		if (i == 100) { /* a batch that crosses the limit: its write comes short */
			if (rill_producer_flush(p, FLUSH_NS) != 0 || first != 0 ||
			    stat(path, &sb) != 0 || getrlimit(RLIMIT_FSIZE, &lim) != 0)
				return 11;
			lim.rlim_cur = (rlim_t)sb.st_size + 1024;
			if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
				return 12;
		}
		if (order_event_make(&o, s, "k", 1) != 0 ||
		    publish_retry(p, t, &o.ev, RILL_ACKS_DURABLE, i) != 0)
			return 13;
	}
	(void)rill_producer_flush(p, FLUSH_NS); /* the lost events' refusals */
	if (first != -EFBIG)
		return 14;
	(void)rill_producer_close(p);
	(void)rill_engine_close(e); /* the stopped log's error */
	return 0;
}

/*
 * A log write cut short by the file size limit (RLIMIT_FSIZE: ulimit -f, systemd's
 * LimitFSIZE=): the io_uring backend writes the rest again to learn why, and that write,
 * at the limit, raised SIGXFSZ on the shard's thread, which by default ends the process
 * (rill serve died, every partition with it). The shards block it: the log stops with
 * EFBIG and the process lives on. In a child, where SIGXFSZ is at its default.
 */
static void test_file_size_limit_signal(void **state)
{
	struct fx *f = *state;
	fx_child(f->dir, fsize_child);
}

/*
 * A partition whose log stopped (a write failed: the file size limit, RLIMIT_FSIZE, cuts
 * it short) applied the events of the batch it could not write, and their producers were
 * told they were refused. Its projections then answer RILL_E_LOG_STOPPED: they used to
 * answer with those events in, which a restart takes out. Its durable part stays
 * readable to its end, where the partition now ends, before the feed ends with the error.
 */
static void test_stopped_log_answers_nothing(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "stops", 1, RILL_DURABILITY_GROUP);
	fx_projection(f, "stops_sum", "stops", RILL_PROJECTION_SUM, "amount");
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	enum { KEPT = 100, LOST = 50 };
	struct rlimit saved;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	struct order_event o;
	for (uint32_t i = 0; i < KEPT + LOST; i++) {
		if (i == KEPT) { /* the log's file may not grow past what it holds */
			flush_ok(p);
			char path[256];
			snprintf(path, sizeof(path), "%s/topics/stops/0/%020d.log", f->dir, 0);
			struct stat sb;
			assert_int_equal(stat(path, &sb), 0);
			struct rlimit low = saved;
			low.rlim_cur = (rlim_t)sb.st_size;
			signal(SIGXFSZ, SIG_IGN); /* the write's EFBIG is enough */
			assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
		}
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_DURABLE, i), 0);
	}
	(void)rill_producer_flush(p, FLUSH_NS); /* the lost events' refusals */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	uint32_t refused = 0;
	for (size_t j = 0; j < acks.count; j++) {
		if (acks.v[j].error == 0)
			continue;
		if (acks.v[j].cookie < KEPT)
			fail_msg("event %" PRIu64 " refused: %s", acks.v[j].cookie,
				 rill_strerror(acks.v[j].error));
		refused++;
	}
	assert_int_equal(refused, LOST);
	/* An event sent to the stopped partition later is lost, and says where and why: it
	 * used to get the bare errno, and to count as refused by the write model. */
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_DURABLE, KEPT + LOST), 0);
	(void)rill_producer_flush(p, FLUSH_NS);
	const struct ack_rec *late = &acks.v[acks.count - 1];
	assert_int_equal(late->cookie, KEPT + LOST);
	assert_int_equal(late->error, -EFBIG);
	assert_true(late->lost);
	if (strstr(late->reason, "topic stops partition 0: its log stopped") == NULL)
		fail_msg("the late event's reason: \"%s\"", late->reason);
	producer_close(p);
	acks_free(&acks);

	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "stops_sum", "k", 1, NULL, 0, &v),
			 RILL_E_LOG_STOPPED);
	uint32_t stopped = 0;
	uint64_t refused_model = 0, lost = 0;
	for (uint32_t i = 0; i < rill_engine_shards(f->engine); i++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, i, &st), 0);
		stopped += st.partitions_stopped;
		refused_model += st.refused;
		lost += st.lost;
	}
	assert_int_equal(stopped, 1);       /* said in rill stat */
	assert_int_equal(refused_model, 0); /* the write model refused nothing */
	assert_true(lost >= 1);             /* the late event at least */
	struct rill_token token = {.partition = 0, .offset = 0};
	assert_int_equal(rill_query(f->engine, "stops_sum", "k", 1, &token, 0, &v),
			 RILL_E_LOG_STOPPED);
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL), 0);
	assert_int_equal(info.durable_offset, KEPT);
	assert_int_equal(info.next_offset, KEPT);
	struct rill_subscription *sub = NULL;
	assert_int_equal(rill_subscribe(f->engine, t, 0, 0, &sub), 0);
	struct rill_record rec;
	uint64_t off = UINT64_MAX;
	for (uint64_t i = 0; i < KEPT; i++) {
		int rc = rill_subscription_next(sub, &rec, &off, FLUSH_NS);
		if (rc != 1)
			fail_msg("subscription at %" PRIu64 ": %s", i, rill_strerror(rc));
		assert_int_equal(off, i);
	}
	assert_true(rill_subscription_next(sub, &rec, &off, FLUSH_NS) < 0);
	assert_int_equal(rill_subscription_close(sub), 0);
	assert_true(rill_engine_close(f->engine) < 0); /* its log failed: said at close */
	f->engine = NULL;
	/* A restart holds the durable part only, and the projection agrees. */
	fx_open(f);
	query_ok(f, "stops_sum", "k", &v);
	assert_int_equal(v.count, KEPT);
	fx_close(f);
}

/*
 * A stored topic whose partition folder is missing (lost, or moved away) is refused at
 * open, naming the folder: it used to be made anew, empty, its offsets starting again at 0
 * under the consumer groups' stored positions. Made again by hand, it opens empty.
 */
static void test_missing_partition_refused(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "gone", 2, RILL_DURABILITY_GROUP);
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = 0; i < 20; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%u", i);
		assert_int_equal(order_event_make(&o, f->order, key, 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	fx_close(f);
	char cmd[256], folder[128];
	snprintf(folder, sizeof(folder), "%s/topics/gone/1", f->dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", folder);
	assert_int_equal(system(cmd), 0);
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&f->engine, &c, &err);
	if (rc == 0)
		fail_msg("opened with %s missing", folder);
	f->engine = NULL;
	if (strstr(err.message, folder) == NULL || strstr(err.message, "missing") == NULL)
		fail_msg("the refusal does not name the missing folder: %s", err.message);
	assert_int_equal(mkdir(folder, 0755), 0);
	fx_open(f);
	t = rill_topic_find(f->engine, "gone");
	assert_non_null(t);
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(f->engine, t, 1, UINT64_MAX, &info, NULL), 0);
	assert_int_equal(info.next_offset, 0);
	fx_close(f);
}

static void fx_leave(const struct fx *f, const char *name);

/*
 * DATA/projections holds NAME.json files: an operator's copy under another name is never
 * loaded as a second definition. "p.json.bak" is ignored (said on stderr); "q.json"
 * holding projection p is refused, naming it (it used to build p twice); so is p.json
 * damaged.
 */
static void test_projection_files_named(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	fx_topic(f, "pf", 2, RILL_DURABILITY_NONE);
	fx_projection(f, "pf_sum", "pf", RILL_PROJECTION_SUM, "amount");
	fx_close(f);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cp %s/projections/pf_sum.json %s/projections/pf_sum.json.bak",
		 f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	fx_open(f);
	fx_close(f);
	snprintf(cmd, sizeof(cmd), "cp %s/projections/pf_sum.json %s/projections/other.json",
		 f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&f->engine, &c, &err);
	if (rc == 0)
		fail_msg("opened with projections/other.json holding projection pf_sum");
	f->engine = NULL;
	assert_non_null(strstr(err.message, "other.json"));
	/* A definition once stored that no longer loads stops the open still, naming it: it
	 * was acknowledged (only a pending one, never answered, is dropped at open). */
	snprintf(cmd, sizeof(cmd), "rm %s/projections/other.json", f->dir);
	assert_int_equal(system(cmd), 0);
	fx_leave(f, "projections/pf_sum.json");
	memset(&err, 0, sizeof(err));
	rc = rill_engine_open(&f->engine, &c, &err);
	if (rc == 0)
		fail_msg("opened with projections/pf_sum.json damaged");
	f->engine = NULL;
	assert_int_equal(rc, RILL_E_JSON_INVALID);
	assert_non_null(strstr(err.message, "pf_sum.json"));
}

/*
 * Topics made in one order fit the shards in any: a reopen loads them in name order. With
 * two shards of 64 partitions: a (1), c (1), then b (126) fill both; placed by a fixed
 * (index + p) rotation, the reopen put c on shard 0 as its 65th and refused to open.
 */
static void test_topics_fit_reopened(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	assert_int_equal(rill_engine_shards(f->engine), 2);
	fx_topic(f, "a", 1, RILL_DURABILITY_NONE);
	fx_topic(f, "c", 1, RILL_DURABILITY_NONE);
	fx_topic(f, "b", 126, RILL_DURABILITY_NONE);
	struct rill_topic_config more = {.name = "d", .partitions = 1};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	assert_int_equal(rill_topic_create(f->engine, &more, &t, &err), -ENOSPC);
	/* The refusal counts what the engine holds and the shards it would take. */
	if (strstr(err.message, "beside the 128 the engine holds (129 in all)") == NULL ||
	    strstr(err.message, "at least 3 shards are needed") == NULL)
		fail_msg("the refusal: %s", err.message);
	fx_close(f);
	fx_open(f);
	struct stats_sum sum = stats_sum(f);
	assert_int_equal(sum.partitions, 128);
	fx_close(f);
}

/* Topic @name: one partition whose log rolls every 64 KiB and keeps 128 KiB, so that
 * retention runs within a few thousand events. */
static struct rill_topic *small_topic(struct fx *f, const char *name)
{
	struct rill_topic_config tc = {.name = name,
				       .partitions = 1,
				       .segment_bytes_max = 64u << 10,
				       .retention_bytes = 128u << 10,
				       .batch_bytes_max = 4096};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	int rc = rill_topic_create(f->engine, &tc, &t, &err);
	if (rc != 0)
		fail_msg("topic %s: %s: %s", name, rill_strerror(rc), err.message);
	return t;
}

static struct rill_topic *snap_small_topic(struct fx *f)
{
	return small_topic(f, "snap");
}

/* Retention deleted the oldest segments: projections rebuild from what the log keeps, at
 * definition and at every reopen (they used to fail with -ERANGE, and so did the open). */
static void test_retention_projection(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.snapshot_interval_events = 0; /* no snapshots: retention is free to delete */
	c.snapshot_interval_ns = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = small_topic(f, "short");
	fx_projection(f, "short_count", "short", RILL_PROJECTION_COUNT, NULL);
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 0, &a);
	struct order_event o;
	const uint32_t n = 5000;
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	acks_free(&a);
	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "short_count", "k", 1, NULL, 0, &v), 0);
	assert_int_equal(v.count, n); /* folded as they came: every event */
	/* Reopen: the rebuild starts where retention left the log. */
	fx_close(f);
	fx_open_with(f, &c);
	assert_int_equal(rill_query(f->engine, "short_count", "k", 1, NULL, 0, &v), 0);
	assert_true(v.count > 0 && v.count < n); /* the deleted segments are gone */
	/* A projection defined now covers the same retained events. */
	fx_projection(f, "short_count2", "short", RILL_PROJECTION_COUNT, NULL);
	struct rill_projection_value v2;
	assert_int_equal(rill_query(f->engine, "short_count2", "k", 1, NULL, 0, &v2), 0);
	assert_int_equal(v2.count, v.count);
	/* A subscription from offset 0 starts where retention left the log, and says so
	 * (rill_subscription_start): the server tells a consumer what it skipped by it. */
	t = rill_topic_find(f->engine, "short"); /* the engine was reopened */
	assert_non_null(t);
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL), 0);
	assert_true(info.first_offset > 0);
	struct rill_subscription *sub;
	assert_int_equal(rill_subscribe(f->engine, t, 0, 0, &sub), 0);
	assert_int_equal(rill_subscription_start(sub), info.first_offset);
	struct rill_record rec;
	uint64_t off = UINT64_MAX;
	assert_int_equal(rill_subscription_next(sub, &rec, &off, 5000000000u), 1);
	assert_int_equal(off, info.first_offset);
	assert_int_equal(rill_subscription_close(sub), 0);
	fx_close(f);
}

/* A topic of one partition whose events expire 200 ms after they were written. */
static struct rill_topic *fx_topic_aging(struct fx *f, const char *name)
{
	struct rill_topic_config tc = {
		.name = name, .partitions = 1, .retention_age_ns = 200u * 1000000u};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	int rc = rill_topic_create(f->engine, &tc, &t, &err);
	if (rc != 0)
		fail_msg("topic %s: %s: %s", name, rill_strerror(rc), err.message);
	return t;
}

/* Partition 0 of @t once retention took it to @first (about twice the age and two looks,
 * a second apart; up to 20 s, the sanitizers being slow), or as it is then. */
static struct rill_partition_info fx_wait_first_offset(struct fx *f, struct rill_topic *t,
						       uint64_t first)
{
	struct rill_partition_info info = {0};
	uint64_t deadline = rill_clock_now_ns() + 20ull * 1000000000u;
	do {
		struct timespec nap = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
		nanosleep(&nap, NULL);
		assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL),
				 0);
	} while (info.first_offset < first && rill_clock_now_ns() < deadline);
	return info;
}

/*
 * Retention on time, through the shards: a topic with an age limit and the default 1 GiB
 * segments goes idle after a few events. They used to stay for ever (retention ran only at
 * a roll, and the active segment rolled by size only); now each shard looks at its
 * partitions once a second, idle or not: the active segment rolls once older than the age,
 * and goes once the next one is too. The log goes on from where it was.
 */
static void test_retention_on_time(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.snapshot_interval_events = 0; /* no snapshots: no floor holds retention back */
	c.snapshot_interval_ns = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic_aging(f, "aging");
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	const uint32_t n = 20;
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	struct rill_partition_info info = fx_wait_first_offset(f, t, n);
	if (info.first_offset != n || info.next_offset != n)
		fail_msg("20 s on, an idle partition with a 200 ms age limit holds offsets "
			 "%llu..%llu",
			 (unsigned long long)info.first_offset,
			 (unsigned long long)info.next_offset);
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, n), 0);
	flush_ok(p);
	producer_close(p);
	struct rill_subscription *sub;
	assert_int_equal(rill_subscribe(f->engine, t, 0, 0, &sub), 0);
	assert_int_equal(rill_subscription_start(sub), n);
	struct rill_record rec;
	uint64_t off = UINT64_MAX;
	assert_int_equal(rill_subscription_next(sub, &rec, &off, 5000000000u), 1);
	assert_int_equal(off, n);
	assert_int_equal(rill_subscription_close(sub), 0);
	fx_close(f);
}

/* ---- Snapshots, rebuild, as-of ---------------------------------------------------------- */

/*
 * As of a time at the log's start: retention emptied an idle partition (the snapshot floor
 * allows it once the newest snapshot is at the log's end), and every query by time, "as
 * of now" included, answered -ERANGE while the snapshot there held the answer. A snapshot
 * now records the highest stamp below it, so a time at or past every deleted event is
 * answered from it, across a restart too; a time that deleted events may come after is
 * still -ERANGE.
 */
static void test_as_of_time_at_log_start(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.snapshot_interval_events = 0; /* one snapshot, taken below */
	c.snapshot_interval_ns = 0;
	c.snapshots_kept = 1;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic_aging(f, "stamped");
	fx_projection(f, "st_count", "stamped", RILL_PROJECTION_COUNT, NULL);
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	uint64_t base = rill_clock_wall_ns();
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		o.ev.timestamp_ns = base + 100 * (i + 1);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	assert_int_equal(rill_engine_snapshot(f->engine), 0); /* at offset 3 */
	assert_int_equal(fx_wait_first_offset(f, t, 3).first_offset, 3);
	for (int round = 0; round < 2; round++) { /* then again after a restart */
		struct rill_projection_value v;
		assert_int_equal(rill_query_as_of(f->engine, "st_count", "k", 1, UINT64_MAX,
						  rill_clock_wall_ns(), &v),
				 0);
		assert_int_equal(v.count, 3);
		assert_int_equal(
			rill_query_as_of(f->engine, "st_count", "k", 1, UINT64_MAX, base + 300, &v),
			0);
		assert_int_equal(v.count, 3);
		assert_int_equal(
			rill_query_as_of(f->engine, "st_count", "k", 1, UINT64_MAX, base + 250, &v),
			-ERANGE); /* offset 1's state: deleted */
		fx_close(f);
		fx_open_with(f, &c);
	}
	fx_close(f);
}

static void snap_config(const struct fx *f, struct rill_engine_config *c)
{
	fx_config(f, c, 2);
	c->snapshot_interval_events = 700; /* several snapshots per partition in a test */
	c->snapshot_interval_ns = 0;
	c->snapshots_kept = 4;
}

/* Publish @n Orders over @keys keys (amount = i % 13 - 6), folding into @folds. */
static void snap_publish(struct fx *f, struct rill_topic *t, uint32_t n, uint32_t keys,
			 uint32_t first, struct fold *folds)
{
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = first; i < first + n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "key-%u", i % keys);
		int64_t amount = (int64_t)(i % 13) - 6;
		assert_int_equal(order_event_make(&o, f->order, key, amount), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
		fold_add(&folds[i % keys], amount);
	}
	flush_ok(p);
	producer_close(p);
}

static void snap_define(struct fx *f)
{
	for (unsigned k = 0; k < ARRAY_COUNT(proj_names); k++)
		fx_projection(f, proj_names[k], "snap", proj_kinds[k],
			      proj_kinds[k] == RILL_PROJECTION_COUNT ? NULL : "amount");
}

static void snap_check(struct fx *f, const struct fold *folds, uint32_t keys)
{
	for (uint32_t k = 0; k < keys; k++) {
		char key[16];
		snprintf(key, sizeof(key), "key-%u", k);
		fold_check(f, key, &folds[k], "");
	}
}

static uint64_t snap_count(struct fx *f)
{
	uint64_t n = 0;
	for (uint32_t s = 0; s < rill_engine_shards(f->engine); s++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, s, &st), 0);
		assert_int_equal(st.snapshot_errors, 0);
		n += st.snapshots;
	}
	return n;
}

/* Snapshots taken under load; a restart from them, and a rebuild of the whole log with
 * them deleted, give the very same state as the fold kept by the test. */
static void test_snapshot_rebuild(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 4, RILL_DURABILITY_GROUP);
	snap_define(f);
	enum { KEYS = 37 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 6000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0); /* at least one, whatever the pace */
	snap_publish(f, t, 500, KEYS, 6000, folds);
	assert_true(snap_count(f) > 0);
	snap_check(f, folds, KEYS);
	/* Restart: snapshot + the log after it. */
	fx_close(f);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	assert_non_null(t);
	snap_check(f, folds, KEYS);
	snap_publish(f, t, 1000, KEYS, 6500, folds); /* and it goes on from there */
	snap_check(f, folds, KEYS);
	fx_close(f);
	/* Rebuild from offset 0: every snapshot removed. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s/topics/snap/*/snapshots", f->dir);
	assert_int_equal(system(cmd), 0);
	c.snapshot_interval_events = 0; /* and none taken meanwhile */
	fx_open_with(f, &c);
	snap_check(f, folds, KEYS);
	fx_close(f);
	/* A damaged snapshot is skipped, never trusted: the state is still exact. */
	snap_config(f, &c);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	snap_publish(f, t, 3000, KEYS, 7500, folds);
	fx_close(f);
	snprintf(cmd, sizeof(cmd),
		 "for s in %s/topics/snap/*/snapshots/*.snap; do "
		 "printf 'XXXX' | dd of=\"$s\" bs=1 seek=100 conv=notrunc status=none; done",
		 f->dir);
	assert_int_equal(system(cmd), 0);
	struct stderr_capture cap;
	stderr_begin(&cap);
	fx_open_with(f, &c);
	char said[8192];
	stderr_end(&cap, said, sizeof(said));
	snap_check(f, folds, KEYS);
	/* Each damaged file named on stderr, once per partition at least. */
	uint32_t named = 0;
	for (const char *at = said; (at = strstr(at, ".snap: skipped (")) != NULL; at++)
		named++;
	if (named < 4)
		fail_msg("%u damaged snapshots named on stderr, 4 partitions had one: %s", named,
			 said);
	/* And counted where an operator sees it: each of the 4 partitions skipped one. */
	uint64_t skipped = stats_sum(f).snapshots_skipped;
	if (skipped < 4)
		fail_msg("%llu snapshots skipped counted, 4 partitions each skipped one",
			 (unsigned long long)skipped);
	fx_close(f);
}

/*
 * Consumer groups: a position reads back as committed, and survives a restart; one past
 * what is durable is refused (the events that later fill the gap would be skipped);
 * and a group file as large as one the engine can write (an offset for each of many
 * topics' partitions) still reads back (the reader once stopped at 64 KiB).
 */
static void test_group_offsets(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "grp", 2, RILL_DURABILITY_GROUP);
	enum { KEYS = 4 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 40, KEYS, 0, folds);
	struct rill_partition_info info;
	uint64_t deadline = rill_clock_now_ns() + 10ull * 1000000000u;
	do { /* applied: durable a sync later */
		assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL),
				 0);
	} while (info.durable_offset < info.next_offset && rill_clock_now_ns() < deadline);
	assert_true(info.next_offset > 0);
	assert_int_equal(info.durable_offset, info.next_offset);
	uint64_t o = 0;
	assert_int_equal(rill_group_offset(f->engine, "g", t, 0, &o, NULL), -ENOENT);
	assert_int_equal(rill_group_commit(f->engine, "g", t, 0, info.next_offset, NULL), 0);
	assert_int_equal(rill_group_offset(f->engine, "g", t, 0, &o, NULL), 0);
	assert_int_equal(o, info.next_offset);
	assert_int_equal(rill_group_commit(f->engine, "g", t, 0, info.next_offset + 1, NULL),
			 -ERANGE);
	assert_int_equal(rill_group_commit(f->engine, "g", t, 1, UINT64_MAX, NULL), -EINVAL);
	assert_int_equal(rill_group_commit(f->engine, "bad/name", t, 0, 0, NULL), -EINVAL);
	assert_int_equal(rill_group_offset(f->engine, "g", t, 0, &o, NULL), 0);
	assert_int_equal(o, info.next_offset); /* the refusals changed nothing */
	fx_close(f);

	/* The file of a group that commits across many topics: 200 KiB of other entries. */
	char path[256];
	snprintf(path, sizeof(path), "%s/groups/g.json", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "{\n  \"grp\": {\n    \"0\": %llu\n  }", (unsigned long long)info.next_offset);
	for (unsigned topic = 0; topic < 100; topic++) {
		fprintf(fp, ",\n  \"other-topic-%03u\": {", topic);
		for (unsigned p = 0; p < 64; p++)
			fprintf(fp, "%s\n    \"%u\": 9223372036854775807", p ? "," : "", p);
		fprintf(fp, "\n  }");
	}
	fprintf(fp, "\n}\n");
	assert_true(ftell(fp) > (128 << 10));
	assert_int_equal(fclose(fp), 0);
	fx_open(f);
	t = rill_topic_find(f->engine, "grp");
	assert_non_null(t);
	assert_int_equal(rill_group_offset(f->engine, "g", t, 0, &o, NULL), 0);
	assert_int_equal(o, info.next_offset);
	assert_int_equal(rill_group_commit(f->engine, "g", t, 1, 0, NULL), 0);
	assert_int_equal(rill_group_offset(f->engine, "g", t, 1, &o, NULL), 0);
	assert_int_equal(o, 0);
	fx_close(f);
}

/* Group @group's position in each of @t's @n partitions into @out (UINT64_MAX: none). */
static void group_positions(struct fx *f, const char *group, struct rill_topic *t, uint32_t n,
			    uint64_t *out)
{
	for (uint32_t p = 0; p < n; p++) {
		int rc = rill_group_offset(f->engine, group, t, p, &out[p], NULL);
		if (rc == -ENOENT)
			out[p] = UINT64_MAX;
		else if (rc != 0)
			fail_msg("group %s partition %u: %s", group, p, rill_strerror(rc));
	}
}

/* rill_group_commit_many refused with @rc, @err holding @why, and nothing changed. */
static void group_many_refused(struct fx *f, struct rill_topic *t,
			       const struct rill_group_position *pos, uint32_t count, int rc,
			       const char *why, const uint64_t *before)
{
	struct rill_error_text err = {{0}};
	int got = rill_group_commit_many(f->engine, "g", t, pos, count, &err);
	if (got != rc || strstr(err.message, why) == NULL)
		fail_msg("commit_many: %s (\"%s\"), expected %s saying \"%s\"", rill_strerror(got),
			 err.message, rill_strerror(rc), why);
	uint64_t now[4];
	group_positions(f, "g", t, 4, now);
	for (uint32_t p = 0; p < 4; p++) {
		if (now[p] != before[p])
			fail_msg("refused (%s), yet partition %u moved from %llu to %llu", why, p,
				 (unsigned long long)before[p], (unsigned long long)now[p]);
	}
}

/*
 * rill_group_commit_many: a consumer of many partitions commits them in one file write
 * (one GROUP_COMMIT), where a commit a partition made `rill consume --group` over 128
 * partitions write the group's file 128 times a second on the server's control thread.
 * Every position is stored, and survives a restart; any refusal (a partition past the
 * durable offset, one the topic lacks, one given twice, an offset past 2^63 - 1, no
 * positions, more than the partitions) names what it refused and changes no position at
 * all, those before it in the array included; a new group made by it counts once.
 */
static void test_group_commit_many(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "grpmany", 4, RILL_DURABILITY_GROUP);
	enum { KEYS = 32 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 200, KEYS, 0, folds);
	uint64_t durable[4];
	for (uint32_t p = 0; p < 4; p++) {
		struct rill_partition_info info;
		uint64_t deadline = rill_clock_now_ns() + 10ull * 1000000000u;
		do { /* applied: durable a sync later */
			assert_int_equal(
				rill_partition_info_get(f->engine, t, p, UINT64_MAX, &info, NULL),
				0);
		} while (info.durable_offset < info.next_offset && rill_clock_now_ns() < deadline);
		assert_int_equal(info.durable_offset, info.next_offset);
		durable[p] = info.durable_offset;
	}
	uint32_t groups = rill_group_count(f->engine);
	/* Out of order, and not every partition: 2 stays uncommitted. */
	struct rill_group_position pos[4] = {{3, durable[3]}, {0, durable[0]}, {1, 1}};
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_group_commit_many(f->engine, "g", t, pos, 3, &err), 0);
	assert_int_equal(rill_group_count(f->engine), groups + 1);
	uint64_t before[4];
	group_positions(f, "g", t, 4, before);
	assert_int_equal(before[0], durable[0]);
	assert_int_equal(before[1], 1);
	assert_int_equal(before[2], UINT64_MAX);
	assert_int_equal(before[3], durable[3]);

	/* Refusals, each with valid positions before the bad one: none of them stored. */
	struct rill_group_position bad[4] = {{0, 0}, {1, 0}, {2, 0}, {3, durable[3] + 1}};
	group_many_refused(f, t, bad, 4, -ERANGE, "partition 3's durable offset", before);
	bad[3] = (struct rill_group_position){4, 0};
	group_many_refused(f, t, bad, 4, -EINVAL, "has no partition 4", before);
	bad[3] = (struct rill_group_position){1, 0};
	group_many_refused(f, t, bad, 4, -EINVAL, "partition 1: given twice", before);
	bad[3] = (struct rill_group_position){3, (uint64_t)INT64_MAX + 1};
	group_many_refused(f, t, bad, 4, -EINVAL,
			   "partition 3: offset 9223372036854775808 past 2^63 - 1", before);
	bad[3] = (struct rill_group_position){3, 0};
	group_many_refused(f, t, bad, 0, -EINVAL, "no positions", before);
	group_many_refused(f, t, NULL, 4, -EINVAL, "no positions", before);
	struct rill_group_position five[5] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {0, 0}};
	group_many_refused(f, t, five, 5, -EINVAL, "5 positions for topic grpmany of 4", before);
	assert_int_equal(rill_group_commit_many(f->engine, "bad/name", t, bad, 4, NULL), -EINVAL);
	assert_int_equal(rill_group_commit_many(f->engine, "g", NULL, bad, 4, NULL), -EINVAL);

	/* All four, one of them moved back (a commit may), and after a restart. */
	struct rill_group_position all[4] = {
		{0, durable[0]}, {1, durable[1]}, {2, durable[2]}, {3, 0}};
	assert_int_equal(rill_group_commit_many(f->engine, "g", t, all, 4, NULL), 0);
	assert_int_equal(rill_group_count(f->engine), groups + 1);
	fx_close(f);
	fx_open(f);
	t = rill_topic_find(f->engine, "grpmany");
	assert_non_null(t);
	uint64_t after[4];
	group_positions(f, "g", t, 4, after);
	for (uint32_t p = 0; p < 4; p++)
		assert_int_equal(after[p], all[p].next_offset);
	fx_close(f);
}

/* Whether @dir/@name exists. */
static bool fx_has(const struct fx *f, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	struct stat sb;
	return stat(path, &sb) == 0;
}

/* Leave @dir/@name holding a few bytes, as a crash in the middle of writing it would. */
static void fx_leave(const struct fx *f, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("{\"partial", fp);
	assert_int_equal(fclose(fp), 0);
}

/*
 * A metadata write that fails (the file size limit, RLIMIT_FSIZE, cuts it short: a full
 * disk does the same) removes its temporary file: .g.json.tmp stayed, holding on a full
 * disk the space whose lack failed it, and nothing removed it, not even a restart.
 */
static void test_meta_write_failure_leaves_no_temp(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "metafail", 1, RILL_DURABILITY_GROUP);
	struct rlimit saved, low;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	low = saved;
	low.rlim_cur = 8; /* the file's first 8 bytes fit */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	int rc = rill_group_commit(f->engine, "g", t, 0, 0, NULL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, -EFBIG);
	if (fx_has(f, "groups/.g.json.tmp"))
		fail_msg("a failed group commit left groups/.g.json.tmp behind");
	assert_false(fx_has(f, "groups/g.json"));
	assert_int_equal(rill_group_commit(f->engine, "g", t, 0, 0, NULL), 0); /* room again */
	fx_close(f);
}

/*
 * The temporary files a crash leaves in the middle of a write (metadata, a snapshot, a
 * log's index files and checkpoint) are removed when the engine opens. Files rill does not
 * write stay, whatever their name.
 */
static void test_temp_files_removed_at_open(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	(void)fx_topic(f, "tmps", 1, RILL_DURABILITY_GROUP);
	fx_close(f);
	static const char *const ours[] = {
		".meta.tmp",
		"topics/tmps/.topic.json.tmp",
		"projections/.p.json.tmp",
		"projections/.p.json.pending", /* a create cut short (M4): said, removed */
		"groups/.g.json.tmp",
		"groups/.other-group.v2.json.tmp",
		"topics/tmps/0/00000000000000000000.idx.tmp",
		"topics/tmps/0/00000000000000000000.tix.tmp",
		"topics/tmps/0/checkpoint.tmp",
		"topics/tmps/0/snapshots/.snapshot.tmp",
	};
	static const char *const strangers[] = {
		".other.tmp",
		"groups/notes.tmp",
		"groups/.json.tmp",
		"groups/..g.json.tmp",
		"groups/.g.json.tmp.bak",
		"projections/.hidden",
		"projections/..p.json.pending",
		"projections/.p.json.pending.bak",
		"projections/p.json.pending",
		"topics/tmps/.other.tmp",
		"topics/tmps/0/notes.tmp",
	};
	char snapshots[128];
	snprintf(snapshots, sizeof(snapshots), "%s/topics/tmps/0/snapshots", f->dir);
	assert_int_equal(mkdir(snapshots, 0755), 0);
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		fx_leave(f, ours[i]);
	for (size_t i = 0; i < sizeof(strangers) / sizeof(strangers[0]); i++)
		fx_leave(f, strangers[i]);
	fx_open(f);
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		if (fx_has(f, ours[i]))
			fail_msg("%s left after the engine opened", ours[i]);
	}
	for (size_t i = 0; i < sizeof(strangers) / sizeof(strangers[0]); i++) {
		if (!fx_has(f, strangers[i]))
			fail_msg("%s, no file of rill's, deleted at open", strangers[i]);
	}
	assert_non_null(rill_topic_find(f->engine, "tmps"));
	fx_close(f);
}

/*
 * config.groups_max: every new group name made a file (two fsyncs under the engine's
 * lock) with nothing to stop a client naming thousands. Past the limit a new group's
 * first commit is refused with RILL_E_GROUPS_FULL and leaves no file; commits to the groups held go
 * on. The count survives a restart (temporary and foreign files not counted), groups on
 * disk past a lowered limit stay usable while new ones are refused, and rill_group_delete
 * makes room, for good.
 */
static void test_groups_max(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.groups_max = RILL_ENGINE_GROUPS_MAX + 1;
	struct rill_engine *none = NULL;
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_engine_open(&none, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "groups_max"));
	c.groups_max = 3;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "grp", 1, RILL_DURABILITY_GROUP);
	assert_int_equal(rill_group_count(f->engine), 0);
	const char *names[] = {"g0", "g1", "g2"};
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(rill_group_commit(f->engine, names[i], t, 0, 0, NULL), 0);
	assert_int_equal(rill_group_count(f->engine), 3);
	assert_int_equal(rill_group_commit(f->engine, "g3", t, 0, 0, NULL), RILL_E_GROUPS_FULL);
	assert_int_equal(rill_group_count(f->engine), 3);
	char path[256];
	snprintf(path, sizeof(path), "%s/groups/g3.json", f->dir);
	assert_int_equal(access(path, F_OK), -1); /* nothing written */
	assert_int_equal(rill_group_commit(f->engine, "g1", t, 0, 0, NULL), 0); /* held: goes on */
	uint64_t o = 1;
	assert_int_equal(rill_group_offset(f->engine, "g3", t, 0, &o, NULL), -ENOENT);
	fx_close(f);

	/* Not groups: an interrupted write's temporary file, an operator's notes. */
	const char *others[] = {".g9.json.tmp", "notes.txt"};
	for (unsigned i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/groups/%s", f->dir, others[i]);
		FILE *fp = fopen(path, "w");
		assert_non_null(fp);
		assert_int_equal(fclose(fp), 0);
	}
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "grp");
	assert_int_equal(rill_group_count(f->engine), 3);
	assert_int_equal(rill_group_commit(f->engine, "g3", t, 0, 0, NULL), RILL_E_GROUPS_FULL);
	fx_close(f);

	c.groups_max = 2; /* lowered under the groups held */
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "grp");
	assert_int_equal(rill_group_count(f->engine), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(rill_group_offset(f->engine, names[i], t, 0, &o, NULL), 0);
		assert_int_equal(o, 0);
		assert_int_equal(rill_group_commit(f->engine, names[i], t, 0, 0, NULL), 0);
	}
	assert_int_equal(rill_group_commit(f->engine, "g4", t, 0, 0, NULL), RILL_E_GROUPS_FULL);

	/* Deleting makes room, once the count is under the limit again. */
	assert_int_equal(rill_group_delete(f->engine, "g0"), 0);
	assert_int_equal(rill_group_count(f->engine), 2);
	assert_int_equal(rill_group_offset(f->engine, "g0", t, 0, &o, NULL), -ENOENT);
	assert_int_equal(rill_group_delete(f->engine, "g0"), -ENOENT);
	assert_int_equal(rill_group_delete(f->engine, "bad/name"), -EINVAL);
	assert_int_equal(rill_group_delete(f->engine, ".g9.json"), -EINVAL);
	assert_int_equal(rill_group_commit(f->engine, "g4", t, 0, 0, NULL), RILL_E_GROUPS_FULL);
	assert_int_equal(rill_group_delete(f->engine, "g1"), 0);
	assert_int_equal(rill_group_commit(f->engine, "g4", t, 0, 0, NULL), 0);
	assert_int_equal(rill_group_count(f->engine), 2);
	fx_close(f);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "grp");
	assert_int_equal(rill_group_count(f->engine), 2); /* g2 and g4 */
	assert_int_equal(rill_group_offset(f->engine, "g1", t, 0, &o, NULL), -ENOENT);
	assert_int_equal(rill_group_offset(f->engine, "g4", t, 0, &o, NULL), 0);
	fx_close(f);
}

/*
 * producers_max, projection_keys_max and projection_key_store_bytes past what a partition
 * or a projection takes were accepted by rill_engine_open, then refused by the first topic
 * created or projection defined with a bare "Invalid argument" blaming that topic or
 * projection; at a restart, the open failed on the first one it reopened. The open refuses
 * them itself now, naming the setting and its maximum, on a fresh directory and on one
 * holding a topic and a projection; the maximum itself is taken.
 */
static void test_partition_limits_refused(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = 0; i < 3; i++) {
			fx_config(f, &c, 2);
			const char *name = NULL;
			unsigned long long max = 0;
			if (i == 0) {
				name = "producers_max";
				max = RILL_ENGINE_PARTITION_PRODUCERS_MAX;
				c.producers_max = (uint32_t)max + 1;
			} else if (i == 1) {
				name = "projection_keys_max";
				max = RILL_ENGINE_PROJECTION_KEYS_MAX;
				c.projection_keys_max = (uint32_t)max + 1;
			} else {
				name = "projection_key_store_bytes";
				max = RILL_ENGINE_PROJECTION_KEY_STORE_MAX;
				c.projection_key_store_bytes = max + 1;
			}
			struct rill_engine *none = NULL;
			struct rill_error_text err = {{0}};
			assert_int_equal(rill_engine_open(&none, &c, &err), -EINVAL);
			char want[128];
			snprintf(want, sizeof(want), "%s: %llu is more than the %llu allowed", name,
				 max + 1, max);
			if (strstr(err.message, want) == NULL)
				fail_msg("round %u: '%s', expected '%s'", round, err.message, want);
		}
		if (round > 0)
			break;
		/* Then the same at a restart of a directory holding a topic and a projection. */
		fx_config(f, &c, 2);
		fx_open_with(f, &c);
		fx_topic(f, "lim", 1, RILL_DURABILITY_NONE);
		fx_projection(f, "lim_count", "lim", RILL_PROJECTION_COUNT, NULL);
		fx_close(f);
	}
	fx_config(f, &c, 2);
	c.producers_max = RILL_ENGINE_PARTITION_PRODUCERS_MAX; /* the maximum: taken */
	fx_open_with(f, &c);
	assert_non_null(rill_topic_find(f->engine, "lim"));
	fx_close(f);
}

/* A projection defined while the engine runs goes into a snapshot at once, also when no
 * event came since the last snapshot: that one lacks it, and is rewritten at its offset
 * with it, so that a restart restores the projection instead of rebuilding it from what
 * retention left of the log. */
static void test_snapshot_projection_defined_idle(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000; /* none by count here: asked for, or a definition's */
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 2, RILL_DURABILITY_GROUP);
	enum { KEYS = 5 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 200, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	uint64_t before = snap_count(f);
	fx_projection(f, "idle_sum", "snap", RILL_PROJECTION_SUM, "amount");
	assert_int_equal(snap_count(f), before + 2); /* one per partition */
	fx_close(f);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "for p in %s/topics/snap/[0-9]*; do s=$(ls \"$p\"/snapshots/*.snap | tail -1) && "
		 "grep -q idle_sum \"$s\" || exit 1; done",
		 f->dir);
	assert_int_equal(system(cmd), 0);
}

/* With snapshots, retention deletes old segments, yet the projections and the dedup table
 * keep what those segments held: a retry of a deleted event is still recognised. */
static void test_snapshot_retention(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	/* Snapshots on (retention waits for the first), but only the test's: which offsets
	 * the kept ones have decides what retention may delete. */
	c.snapshot_interval_events = 1000000000;
	c.snapshots_kept = 2; /* the one taken as the projections were defined (offset 0) goes */
	fx_open_with(f, &c);
	struct rill_topic *t = snap_small_topic(f);
	snap_define(f);
	/* An idempotent producer writes sequence 0 first. */
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 77, &a);
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "key-0", 5), 0);
	o.ev.sequence = 0;
	assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, 0), 0);
	flush_ok(p);
	producer_close(p);
	acks_free(&a);
	enum { KEYS = 5 };
	struct fold folds[KEYS] = {0};
	fold_add(&folds[0], 5);
	snap_publish(f, t, 4000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	snap_publish(f, t, 4000, KEYS, 4000, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0); /* the floor moves up to here */
	snap_publish(f, t, 2000, KEYS, 8000, folds); /* rolls: retention deletes below it */
	fx_close(f);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	snap_check(f, folds, KEYS); /* every event, though the log kept only the last ones */
	struct rill_projection_value v;
	assert_int_equal(rill_query_as_of(f->engine, "p_count", "key-0", 5, 0, 0, &v), -ERANGE);
	/* The producer retries sequence 0, whose segment retention deleted: the snapshot's
	 * dedup table still knows it, so it is acknowledged as the duplicate it is, with its
	 * first offset, and not written twice (without snapshots it went in again). */
	p = producer_open(f, 77, &a);
	o.ev.sequence = 0;
	assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, 1), 0);
	flush_ok(p);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.v[0].error, 0);
	assert_true(a.v[0].duplicate);
	assert_int_equal(a.v[0].token.offset, 0);
	/* And since the table is complete from offset 0 (W4), a producer it does not know
	 * never wrote here: it starts at 0, as in a log never trimmed (the "deleted" refusal
	 * is for sequences other than 0 of a table that is not complete). */
	a.count = 0;
	o.ev.sequence = 0;
	struct rill_producer *q = producer_open(f, 78, &a);
	assert_int_equal(publish_retry(q, t, &o.ev, RILL_ACKS_APPLIED, 2), 0);
	flush_ok(q);
	producer_close(q);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.v[0].error, 0);
	fold_add(&folds[0], 5);
	producer_close(p);
	acks_free(&a);
	snap_check(f, folds, KEYS);
	fx_close(f);
}

/*
 * Snapshots turned off (both intervals 0) hold retention back no more: neither the one
 * loaded from an earlier run with them on, nor one taken on demand. No later snapshot
 * would move the floor, and retention stopped for good, disk use growing without a word.
 */
static void test_snapshots_off_retention(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000000; /* on: taken by the test */
	fx_open_with(f, &c);
	struct rill_topic *t = snap_small_topic(f);
	enum { KEYS = 3 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 100, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0); /* at offset 100 */
	fx_close(f);
	c.snapshot_interval_events = 0;
	c.snapshot_interval_ns = 0;
	for (int round = 0; round < 2; round++) {
		fx_open_with(f, &c);
		t = rill_topic_find(f->engine, "snap");
		if (round == 1) /* one on demand: it holds nothing back either */
			assert_int_equal(rill_engine_snapshot(f->engine), 0);
		uint32_t first = 100 + 6000 * (uint32_t)round;
		snap_publish(f, t, 6000, KEYS, first, folds); /* several segments: retention runs */
		struct rill_partition_info info;
		assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL),
				 0);
		if (info.first_offset <= first)
			fail_msg("round %d: retention kept from offset %llu, at or below %u", round,
				 (unsigned long long)info.first_offset, first);
		fx_close(f);
	}
}

/* A damaged newest snapshot: the older one is loaded, and retention must keep what it
 * needs, so that a later restart still finds the whole history (the floor once followed
 * the newest file, usable or not, and the next restart rebuilt from a trimmed log). */
static void test_snapshot_damaged_newest(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000000; /* taken by the test (yet on: retention waits) */
	fx_open_with(f, &c);
	struct rill_topic *t = snap_small_topic(f);
	snap_define(f);
	enum { KEYS = 3 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 3000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	snap_publish(f, t, 3000, KEYS, 3000, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	fx_close(f);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "s=$(ls %s/topics/snap/0/snapshots/*.snap | tail -1) && "
		 "printf 'XXXX' | dd of=\"$s\" bs=1 seek=100 conv=notrunc status=none",
		 f->dir);
	assert_int_equal(system(cmd), 0);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	snap_check(f, folds, KEYS);
	snap_publish(f, t, 3000, KEYS, 6000, folds); /* rolls: retention runs */
	fx_close(f);
	fx_open_with(f, &c);
	snap_check(f, folds, KEYS);
	fx_close(f);
}

/* rill_engine_open with @c refused with @code, its message holding each of @needles. */
static void open_refused(struct fx *f, const struct rill_engine_config *c, int code,
			 const char *const *needles)
{
	struct rill_error_text err = {{0}};
	struct rill_engine *e = NULL;
	int rc = rill_engine_open(&e, c, &err);
	if (rc != code)
		fail_msg("rill_engine_open(%s): %s, not %s: %s", f->dir, rill_strerror(rc),
			 rill_strerror(code), err.message);
	assert_null(e);
	for (const char *const *n = needles; *n != NULL; n++)
		if (strstr(err.message, *n) == NULL)
			fail_msg("refusal without '%s': %s", *n, err.message);
}

/*
 * Projection key limits lowered below what a snapshot holds, once retention deleted the log
 * before it: the open used to go on, each projection rebuilt from what the log kept (keys
 * known only from the snapshot answered "never seen", the others short of their deleted
 * events), and the next snapshot made that permanent. The open is refused, naming the
 * topic, partition, projection and setting; the old limits open it whole.
 */
static void test_snapshot_projection_limits_lowered(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000000; /* taken by the test (yet on: retention waits) */
	fx_open_with(f, &c);
	struct rill_topic *t = snap_small_topic(f);
	snap_define(f);
	enum { KEYS = 20 }; /* "key-0" .. "key-19": 110 bytes */
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 3000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	snap_publish(f, t, 3000, KEYS, 3000, folds); /* rolls: retention deletes below it */
	fx_close(f);

	c.projection_keys_max = 10;
	const char *const keys[] = {"topic snap partition 0",
				    "of projection p_",
				    "holds 20 keys",
				    "projection_keys_max (10)",
				    "projection_keys_max 20 or more",
				    NULL};
	open_refused(f, &c, -ENOSPC, keys);
	c.projection_keys_max = 0; /* the default */
	c.projection_key_store_bytes = 100;
	const char *const store[] = {"topic snap partition 0", "holds 110 bytes",
				     "projection_key_store_bytes (100)",
				     "projection_key_store_bytes 110 or more", NULL};
	open_refused(f, &c, -ENOSPC, store);
	c.projection_key_store_bytes = 0;
	fx_open_with(f, &c);
	snap_check(f, folds, KEYS); /* every event, though the log kept only the last ones */
	struct rill_projection_value v;
	assert_int_equal(rill_query_as_of(f->engine, "p_count", "key-0", 5, 0, 0, &v), -ERANGE);
	fx_close(f);
}

/*
 * An as-of read restores a snapshot under the limits the projection ran with, and must
 * fold on as it did. A count projection that refused a key too long for its key store
 * (refused_full), with room left for shorter ones: its snapshot restored for an as-of read
 * used to come back sealed, refusing every key first seen after the snapshot, so as-of
 * answered -ENOSPC for a key the live projection held (also at an offset not reached yet,
 * documented as "the value now").
 */
static void test_as_of_after_refused_key(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.projection_key_store_bytes = 10;
	c.snapshot_interval_events = 1000000000; /* taken by the test */
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "short", 1, RILL_DURABILITY_NONE);
	fx_projection(f, "n", "short", RILL_PROJECTION_COUNT, NULL);
	struct rill_producer *p = producer_open(f, 0, NULL);
	static const char *const keys[] = {"a", "a-key-too-long", NULL, "b"};
	struct order_event o;
	for (unsigned i = 0; i < ARRAY_COUNT(keys); i++) {
		if (keys[i] == NULL) {
			assert_int_equal(rill_producer_flush(p, 5000000000ull), 0);
			assert_int_equal(rill_engine_snapshot(f->engine), 0);
			continue;
		}
		assert_int_equal(order_event_make(&o, f->order, keys[i], 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	assert_int_equal(rill_producer_flush(p, 5000000000ull), 0);
	producer_close(p);
	struct rill_projection_value live = {0}, past = {0};
	assert_int_equal(rill_query(f->engine, "n", "b", 1, NULL, 0, &live), 0);
	assert_int_equal(live.count, 1);
	assert_int_equal(rill_query(f->engine, "n", "a-key-too-long", 14, NULL, 0, &past), -ENOSPC);
	for (uint64_t at = live.offset; at <= live.offset + 100; at += 100) {
		memset(&past, 0, sizeof(past));
		int rc = rill_query_as_of(f->engine, "n", "b", 1, at, 0, &past);
		if (rc != 0 || past.count != 1)
			fail_msg("as of offset %llu: key b %s, count %llu; the live projection "
				 "holds it with count 1",
				 (unsigned long long)at, rill_strerror(rc),
				 (unsigned long long)past.count);
	}
	fx_close(f);
}

/* The .snap files of topic snap's partition 0. */
static unsigned snap_files(struct fx *f)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/topics/snap/0/snapshots", f->dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	unsigned n = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		size_t len = strlen(de->d_name);
		n += len > 5 && strcmp(de->d_name + len - 5, ".snap") == 0;
	}
	closedir(d);
	return n;
}

/*
 * snapshots_kept lowered between opens: the snapshots past it used to go only at the
 * partition's next snapshot, which an idle partition never takes, and the oldest kept
 * every segment after it from retention meanwhile. They go at open now.
 */
static void test_snapshots_kept_lowered(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);                      /* snapshots_kept 4 */
	c.snapshot_interval_events = 1000000000; /* taken by the test (yet on: retention waits) */
	fx_open_with(f, &c);
	struct rill_topic *t = snap_small_topic(f);
	snap_define(f);
	enum { KEYS = 5 };
	struct fold folds[KEYS] = {0};
	for (uint32_t i = 0; i < 4; i++) { /* snapshots at 2000, 4000, 6000 and 8000 */
		snap_publish(f, t, 2000, KEYS, 2000 * i, folds);
		assert_int_equal(rill_engine_snapshot(f->engine), 0);
	}
	fx_close(f);
	assert_int_equal(snap_files(f), 4);
	c.snapshots_kept = 1;
	fx_open_with(f, &c); /* no event from here on */
	assert_int_equal(snap_files(f), 1);
	snap_check(f, folds, KEYS);
	/* Retention ran at the open from the one kept: the log no longer reaches 4000. */
	struct rill_projection_value v;
	assert_int_equal(rill_query_as_of(f->engine, "p_count", "key-0", 5, 4000, 0, &v), -ERANGE);
	fx_close(f);
}

/* Every snapshot holds every projection: none is taken while the engine opens, before the
 * projections are bound again (such a one, newest, would lose their states). */
static void test_snapshot_during_open(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000000; /* none but the one asked for */
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 2, RILL_DURABILITY_NONE);
	snap_define(f);
	enum { KEYS = 7 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 1500, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0); /* every partition has one */
	snap_publish(f, t, 1500, KEYS, 1500, folds);          /* and events after it */
	fx_close(f);
	c.snapshot_interval_events = 1; /* due for every partition at its shard's first look */
	for (int round = 0; round < 3; round++) {
		fx_open_with(f, &c);
		/* The first time, wait until they are taken: a close that came before a shard's
		 * first look would take none, and the check below would see only the old ones
		 * (a shard starved of CPU once had none at all: a glob that matched nothing).
		 * Later rounds have nothing new, so nothing is due. */
		uint64_t deadline = rill_clock_now_ns() + 30ull * 1000000000u;
		uint64_t taken = 0;
		while (round == 0 && taken < 2 && rill_clock_now_ns() < deadline) {
			taken = 0;
			for (uint32_t i = 0; i < rill_engine_shards(f->engine); i++) {
				struct rill_shard_stats st;
				assert_int_equal(rill_engine_shard_stats(f->engine, i, &st), 0);
				taken += st.snapshots;
			}
			if (taken < 2)
				nap_ns(1000000);
		}
		assert_true(round > 0 || taken >= 2);
		fx_close(f);
		char path[256];
		snprintf(path, sizeof(path), "%s/topics/snap", f->dir);
		char cmd[768];
		/* Byte 36 of a snapshot: its projection count (docs/FORMAT.md). Each partition
		 * must have some: a glob that matches nothing is a failure, said. */
		snprintf(cmd, sizeof(cmd),
			 "for p in %s/*/; do set -- \"$p\"snapshots/*.snap; "
			 "[ -e \"$1\" ] || { echo \"$p: no snapshot\" >&2; exit 1; }; "
			 "for s in \"$@\"; do n=$(od -An -tu4 -j36 -N4 \"$s\" | tr -d ' '); "
			 "[ \"$n\" = %u ] || { echo \"$s: $n projections\" >&2; exit 1; }; "
			 "done; done",
			 path, (unsigned)ARRAY_COUNT(proj_names));
		assert_int_equal(system(cmd), 0);
	}
	fx_open_with(f, &c);
	snap_check(f, folds, KEYS);
	fx_close(f);
}

/* ---- User projections in C ---------------------------------------------------------------- */

#define TALLY_KEYS 64u

/* A custom projection: per key, the events and the sum of their Order amounts. */
struct tally_entry {
	char key[16];
	uint32_t key_bytes;
	uint32_t reserved;
	uint64_t events;
	int64_t sum;
};

struct tally {
	struct tally_entry e[TALLY_KEYS];
	uint32_t count;
	uint32_t partition;
	const struct fx *f;
};

static uint32_t tally_inits, tally_restores;

static void *tally_init(void *arg, uint32_t partition)
{
	struct tally *t = calloc(1, sizeof(*t));
	if (t != NULL) {
		t->partition = partition;
		t->f = arg;
	}
	__atomic_fetch_add(&tally_inits, 1, __ATOMIC_RELAXED);
	return t;
}

static struct tally_entry *tally_find(struct tally *t, const void *key, uint32_t key_bytes,
				      bool add)
{
	for (uint32_t i = 0; i < t->count; i++) {
		if (t->e[i].key_bytes == key_bytes && memcmp(t->e[i].key, key, key_bytes) == 0)
			return &t->e[i];
	}
	if (!add || t->count == TALLY_KEYS || key_bytes > sizeof(t->e[0].key))
		return NULL;
	struct tally_entry *n = &t->e[t->count++];
	memcpy(n->key, key, key_bytes);
	n->key_bytes = key_bytes;
	return n;
}

static int tally_apply(void *state, const struct rill_record *ev, uint64_t offset)
{
	(void)offset;
	struct tally *t = state;
	if (ev->type_id != t->f->order_id)
		return 0;
	struct tally_entry *e = tally_find(t, ev->key, ev->key_bytes, true);
	if (e == NULL)
		return -ENOSPC;
	int64_t amount;
	memcpy(&amount, (const uint8_t *)ev->payload + 8, sizeof(amount)); /* field 0 */
	e->events++;
	e->sum += amount;
	return 0;
}

static int64_t tally_query(void *state, const void *key, uint32_t key_bytes, void *out,
			   size_t out_bytes)
{
	struct tally_entry *e = tally_find(state, key, key_bytes, false);
	if (e == NULL)
		return -ENOENT;
	char text[64];
	int n = snprintf(text, sizeof(text), "events=%llu sum=%lld", (unsigned long long)e->events,
			 (long long)e->sum);
	if ((size_t)n > out_bytes)
		return -ENOSPC;
	memcpy(out, text, (size_t)n);
	return n;
}

static int64_t tally_snapshot(void *state, void *buf, size_t buf_bytes)
{
	struct tally *t = state;
	size_t n = sizeof(uint32_t) + t->count * sizeof(t->e[0]);
	if (buf == NULL)
		return (int64_t)n;
	if (buf_bytes < n)
		return -ENOSPC;
	memcpy(buf, &t->count, sizeof(uint32_t));
	memcpy((uint8_t *)buf + sizeof(uint32_t), t->e, t->count * sizeof(t->e[0]));
	return (int64_t)n;
}

static int tally_restore(void *state, const void *buf, size_t buf_bytes)
{
	struct tally *t = state;
	uint32_t count;
	if (buf_bytes < sizeof(count))
		return -EINVAL;
	memcpy(&count, buf, sizeof(count));
	if (count > TALLY_KEYS || buf_bytes != sizeof(count) + count * sizeof(t->e[0]))
		return -EINVAL;
	t->count = count;
	memcpy(t->e, (const uint8_t *)buf + sizeof(count), count * sizeof(t->e[0]));
	__atomic_fetch_add(&tally_restores, 1, __ATOMIC_RELAXED);
	return 0;
}

static void tally_destroy(void *state)
{
	free(state);
}

static const struct rill_projection_ops tally_ops = {
	.init = tally_init,
	.apply = tally_apply,
	.query = tally_query,
	.snapshot = tally_snapshot,
	.restore = tally_restore,
	.destroy = tally_destroy,
};

static void tally_check_named(struct fx *f, const char *name, const struct fold *folds,
			      uint32_t keys)
{
	for (uint32_t k = 0; k < keys; k++) {
		char key[16], want[64], got[64];
		snprintf(key, sizeof(key), "key-%u", k);
		snprintf(want, sizeof(want), "events=%llu sum=%lld",
			 (unsigned long long)folds[k].count, (long long)folds[k].sum);
		int64_t n = rill_query_custom(f->engine, name, key, strlen(key), NULL, 0, got,
					      sizeof(got) - 1);
		if (n < 0 || n >= (int64_t)sizeof(got))
			fail_msg("%s %s: %s", name, key, rill_strerror(n < 0 ? (int)n : -ERANGE));
		got[n] = '\0';
		if (strcmp(got, want) != 0)
			fail_msg("%s %s: %s, expected %s", name, key, got, want);
	}
}

static void tally_check(struct fx *f, const struct fold *folds, uint32_t keys)
{
	tally_check_named(f, "tally", folds, keys);
}

static void test_custom_projection(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 0; /* taken by the test */
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 3, RILL_DURABILITY_GROUP);
	struct rill_error_text err = {{0}};
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err), 0);
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err),
		0); /* the same again: a no-op */
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, NULL, &err),
		-EEXIST);
	snap_define(f); /* built-in ones beside it */
	enum { KEYS = 11 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 2000, KEYS, 0, folds);
	tally_check(f, folds, KEYS);
	snap_check(f, folds, KEYS);
	/* Queries that do not fit it. */
	char small[4];
	assert_int_equal(
		rill_query_custom(f->engine, "tally", "key-1", 5, NULL, 0, small, sizeof(small)),
		-ENOSPC);
	assert_int_equal(
		rill_query_custom(f->engine, "tally", "nobody", 6, NULL, 0, small, sizeof(small)),
		-ENOENT);
	assert_int_equal(
		rill_query_custom(f->engine, "p_count", "key-1", 5, NULL, 0, small, sizeof(small)),
		-EINVAL);
	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "tally", "key-1", 5, NULL, 0, &v), -EINVAL);
	/* Restart: from its state in the snapshot, then the log after it. */
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	snap_publish(f, t, 500, KEYS, 2000, folds);
	fx_close(f);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	assert_int_equal(
		rill_query_custom(f->engine, "tally", "key-1", 5, NULL, 0, small, sizeof(small)),
		-ENOENT); /* not defined again yet: no such projection */
	uint32_t restores = tally_restores;
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err), 0);
	assert_int_equal(tally_restores - restores, 3); /* one state per partition */
	tally_check(f, folds, KEYS);
	snap_publish(f, t, 500, KEYS, 2500, folds);
	tally_check(f, folds, KEYS);
	fx_close(f);
	/* Without snapshots: rebuilt from the log, the same. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s/topics/snap/*/snapshots", f->dir);
	assert_int_equal(system(cmd), 0);
	fx_open_with(f, &c);
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err), 0);
	tally_check(f, folds, KEYS);
	fx_close(f);
}

/*
 * A topic carries at most RILL_ENGINE_TOPIC_PROJECTIONS_MAX projections (each binds to
 * every partition of it). One more is refused up front with a message naming the limit,
 * not with a bare "No space left on device" from a partition's rebuild, and leaves
 * nothing behind; another topic still takes projections.
 */
static void test_topic_projections_max(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	fx_topic(f, "big", 1, RILL_DURABILITY_NONE);
	fx_topic(f, "other", 1, RILL_DURABILITY_NONE);
	char name[32];
	for (uint32_t i = 0; i < RILL_ENGINE_TOPIC_PROJECTIONS_MAX; i++) {
		snprintf(name, sizeof(name), "p%u", i);
		fx_projection(f, name, "big", RILL_PROJECTION_COUNT, NULL);
	}
	struct rill_projection_def d = {
		.name = "over", .topic = "big", .type = "Order", .kind = RILL_PROJECTION_COUNT};
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_projection_define(f->engine, &d, &err), -ENOSPC);
	char want[128];
	snprintf(want, sizeof(want), "topic big holds %u projections already",
		 RILL_ENGINE_TOPIC_PROJECTIONS_MAX);
	if (strstr(err.message, want) == NULL)
		fail_msg("refusal \"%s\" lacks \"%s\"", err.message, want);
	assert_null(rill_projection_topic(f->engine, "over"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "big", &tally_ops, f, &err),
		-ENOSPC);
	if (strstr(err.message, want) == NULL)
		fail_msg("refusal \"%s\" lacks \"%s\"", err.message, want);
	/* Defining one that exists again stays a no-op; another topic takes more. */
	fx_projection(f, "p0", "big", RILL_PROJECTION_COUNT, NULL);
	fx_projection(f, "over", "other", RILL_PROJECTION_COUNT, NULL);
	fx_close(f);
	fx_open(f);
	assert_non_null(rill_projection_topic(f->engine, "p63"));
	assert_ptr_equal(rill_projection_topic(f->engine, "over"),
			 rill_topic_find(f->engine, "other"));
	fx_close(f);
}

/* Open with snapshots only when asked for (one kept), a small-segment "snap" topic, and
 * the custom projections "tally" and @second on it. */
static struct rill_topic *tally_pair_open(struct fx *f, struct rill_engine_config *c,
					  const char *second)
{
	snap_config(f, c);
	c->snapshot_interval_events = 1000000000;
	c->snapshots_kept = 1;
	fx_open_with(f, c);
	struct rill_error_text err = {{0}};
	struct rill_topic *t = snap_small_topic(f);
	const char *const names[] = {"tally", second};
	for (unsigned i = 0; i < ARRAY_COUNT(names); i++)
		assert_int_equal(rill_projection_define_custom(f->engine, names[i], "snap",
							       &tally_ops, f, &err),
				 0);
	return t;
}

/*
 * After a restart the application defines its custom projections again, one at a time,
 * and each definition snapshots the partition. Those snapshots must not take the state of
 * the ones not defined yet: the first one's (no event since open: at the loaded
 * snapshot's own offset) rewrote that file without tallyb, and the next (events since,
 * snapshots_kept 1) deleted it; tallyb was then rebuilt from what retention had left,
 * with wrong counts and no word said.
 */
static void test_custom_projections_defined_again(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	struct rill_error_text err = {{0}};
	/* snapshots: the test's and the definitions' only */
	struct rill_topic *t = tally_pair_open(f, &c, "tallyb");
	enum { KEYS = 5 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 4000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	snap_publish(f, t, 4000, KEYS, 4000, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	snap_publish(f, t, 2000, KEYS, 8000, folds); /* rolls: retention deletes below it */
	fx_close(f);
	for (int round = 0; round < 2; round++) {
		fx_open_with(f, &c);
		t = rill_topic_find(f->engine, "snap");
		uint32_t restores = tally_restores;
		assert_int_equal(rill_projection_define_custom(f->engine, "tally", "snap",
							       &tally_ops, f, &err),
				 0);
		tally_check_named(f, "tally", folds, KEYS);
		snap_publish(f, t, 300, KEYS, 10000 + 600 * (uint32_t)round, folds);
		assert_int_equal(rill_projection_define_custom(f->engine, "tallyb", "snap",
							       &tally_ops, f, &err),
				 0);
		assert_int_equal(tally_restores - restores, 2); /* neither rebuilt from the log */
		tally_check_named(f, "tally", folds, KEYS);
		tally_check_named(f, "tallyb", folds, KEYS);
		snap_publish(f, t, 300, KEYS, 10300 + 600 * (uint32_t)round, folds);
		fx_close(f);
	}
}

/*
 * A custom projection the application never defines again holds retention back one
 * snapshot interval at most: the snapshot loaded at open, kept for it, goes at the first
 * periodic snapshot (it used to stay the whole run, its file and the log after it).
 */
static void test_custom_projection_never_defined_again(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	struct rill_error_text err = {{0}};
	struct rill_topic *t = tally_pair_open(f, &c, "gone"); /* snapshots: the test's only */
	enum { KEYS = 5 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 4000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0); /* at 4000, with "gone" */
	fx_close(f);
	c.snapshot_interval_events = 1000; /* periodic now */
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err), 0);
	/* Several segments and periodic snapshots. Retention runs when a segment rolls, and a
	 * periodic snapshot comes when its shard turns to it: published in rounds until the
	 * log no longer holds offset 4000 (bounded; it used to hold it for good). */
	struct rill_partition_info info = {0};
	for (uint32_t first = 4000; first < 24000 && info.first_offset <= 4000; first += 1000) {
		snap_publish(f, t, 1000, KEYS, first, folds);
		assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL),
				 0);
	}
	tally_check(f, folds, KEYS);
	if (info.first_offset <= 4000)
		fail_msg("retention kept from offset %llu: still held at the snapshot loaded at "
			 "open (4000)",
			 (unsigned long long)info.first_offset);
	fx_close(f);
}

/*
 * Snapshots off: a custom projection defined after retention passed the snapshot loaded at
 * open starts from what the log keeps (its define used to restore from that snapshot and
 * fail with -ERANGE, every time).
 */
static void test_custom_projection_late_snapshots_off(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000000;
	fx_open_with(f, &c);
	struct rill_error_text err = {{0}};
	struct rill_topic *t = snap_small_topic(f);
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err), 0);
	enum { KEYS = 5 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 1000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	fx_close(f);
	c.snapshot_interval_events = 0; /* snapshots off */
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	struct fold later[KEYS] = {0};
	snap_publish(f, t, 6000, KEYS, 1000, later); /* retention passes offset 1000 */
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL), 0);
	assert_true(info.first_offset > 1000);
	int rc = rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err);
	if (rc != 0)
		fail_msg("defining tally late: %s: %s", rill_strerror(rc), err.message);
	fx_close(f);
}

/* A custom projection that misbehaves: a snapshot that fails is a failed snapshot (the
 * engine goes on), a bad name or a failed init is refused and leaves nothing behind. */
static int64_t tally_snapshot_fails(void *state, void *buf, size_t buf_bytes)
{
	(void)state, (void)buf, (void)buf_bytes;
	return -EIO;
}

static void *tally_init_fails(void *arg, uint32_t partition)
{
	(void)arg, (void)partition;
	return NULL;
}

static void test_custom_projection_faults(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 2, RILL_DURABILITY_NONE);
	struct rill_error_text err = {{0}};
	struct rill_projection_ops bad = tally_ops;
	assert_int_equal(
		rill_projection_define_custom(f->engine, "my tally", "snap", &tally_ops, f, &err),
		-EINVAL);
	bad.init = tally_init_fails;
	assert_int_equal(
		rill_projection_define_custom(f->engine, "no_memory", "snap", &bad, f, &err),
		-ENOMEM);
	/* Neither left anything half-made: definitions go on. */
	bad = tally_ops;
	bad.snapshot = tally_snapshot_fails;
	assert_int_equal(rill_projection_define_custom(f->engine, "tally", "snap", &bad, f, &err),
			 0);
	fx_projection(f, "p_count", "snap", RILL_PROJECTION_COUNT, NULL);
	enum { KEYS = 3 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 300, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), -EIO);
	uint64_t errors = 0;
	for (uint32_t s = 0; s < rill_engine_shards(f->engine); s++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, s, &st), 0);
		errors += st.snapshot_errors;
	}
	assert_true(errors > 0);
	tally_check(f, folds, KEYS); /* and it goes on */
	fx_close(f);
}

static int tally_restore_refuses(void *state, const void *buf, size_t buf_bytes)
{
	(void)state, (void)buf, (void)buf_bytes;
	return -EINVAL;
}

/*
 * A custom projection whose restore refuses its state, once retention has deleted the
 * log's start: rebuilt from what the log keeps, its answers miss the events before, and
 * that is said on stderr (as for a damaged snapshot). It was rebuilt with no word: a count
 * of 10,000 answered 160.
 */
static void test_custom_projection_restore_refused(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	struct rill_error_text err = {{0}};
	snap_config(f, &c);
	c.snapshot_interval_events = 1000000000; /* the test's only */
	c.snapshots_kept = 1;
	fx_open_with(f, &c);
	struct rill_topic *t = snap_small_topic(f);
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &tally_ops, f, &err), 0);
	enum { KEYS = 3 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 6000, KEYS, 0, folds);
	assert_int_equal(rill_engine_snapshot(f->engine), 0);
	fx_close(f);
	fx_open_with(f, &c);
	t = rill_topic_find(f->engine, "snap");
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL), 0);
	assert_true(info.first_offset > 0); /* retention deleted the start */
	struct rill_projection_ops bad = tally_ops;
	bad.restore = tally_restore_refuses;
	char said[4096];
	struct stderr_capture cap;
	stderr_begin(&cap);
	int rc = rill_projection_define_custom(f->engine, "tally", "snap", &bad, f, &err);
	stderr_end(&cap, said, sizeof(said));
	assert_int_equal(rc, 0);
	if (strstr(said, "projection tally: its restore refused its state") == NULL ||
	    strstr(said, "miss the events before") == NULL)
		fail_msg("the partial rebuild went unsaid (stderr: \"%s\")", said);
	fx_close(f);
}

/* The size-only call says 8 bytes, the real one says it wrote 16 (its 8 and 8 more it
 * claims but never wrote: the buffer holds 8). */
static int64_t tally_snapshot_longer(void *state, void *buf, size_t buf_bytes)
{
	(void)state;
	if (buf == NULL)
		return 8;
	assert_int_equal(buf_bytes, 8);
	memset(buf, 0, buf_bytes);
	return 16;
}

/*
 * A custom projection whose snapshot returned more bytes than its size-only call promised
 * was reported as -ENOSPC ("No space left on device": a full disk to an operator), where
 * the opposite mismatch was -EPROTO. Both break the projection's contract: -EPROTO, and the
 * partition takes no snapshot while folding goes on.
 */
static void test_custom_projection_snapshot_longer(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 1, RILL_DURABILITY_NONE);
	struct rill_error_text err = {{0}};
	struct rill_projection_ops longer = tally_ops;
	longer.snapshot = tally_snapshot_longer;
	assert_int_equal(
		rill_projection_define_custom(f->engine, "tally", "snap", &longer, f, &err), 0);
	enum { KEYS = 3 };
	struct fold folds[KEYS] = {0};
	snap_publish(f, t, 30, KEYS, 0, folds);
	char said[1024];
	struct stderr_capture cap;
	stderr_begin(&cap);
	int rc = rill_engine_snapshot(f->engine);
	stderr_end(&cap, said, sizeof(said));
	assert_int_equal(rc, -EPROTO);
	/* The projection at fault is named: "Protocol error" alone says nothing of it. */
	if (strstr(said, "snapshot: projection tally: its snapshot gave more than the 8 bytes its "
			 "size-only call said: Protocol error") == NULL)
		fail_msg("the projection went unnamed (stderr: \"%s\")", said);
	uint64_t snapshots = 0;
	for (uint32_t s = 0; s < rill_engine_shards(f->engine); s++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, s, &st), 0);
		snapshots += st.snapshots;
	}
	assert_int_equal(snapshots, 0);
	tally_check(f, folds, KEYS); /* and it goes on */
	fx_close(f);
}

/* As-of reads equal a fold of the log up to the target, by offset and by timestamp. */
static void test_as_of(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c);
	c.snapshot_interval_events = 0; /* taken by the test at known offsets */
	c.snapshot_interval_ns = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "snap", 1, RILL_DURABILITY_NONE);
	snap_define(f);
	enum { N = 2000 };
	/* One key, one partition: offset i is event i; the event time is i ms after t0. */
	static struct fold prefix[N];
	struct fold run = {0};
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	const uint64_t t0 = 1700000000000000000ull;
	for (uint32_t i = 0; i < N; i++) {
		int64_t amount = (int64_t)(i * 7 % 23) - 11;
		assert_int_equal(order_event_make(&o, f->order, "acct", amount), 0);
		o.ev.timestamp_ns = t0 + (uint64_t)i * 1000000u;
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
		fold_add(&run, amount);
		prefix[i] = run;
		if (i % 300 == 299) { /* snapshots at known offsets, whatever the timing */
			flush_ok(p);
			assert_int_equal(rill_engine_snapshot(f->engine), 0);
		}
	}
	flush_ok(p);
	producer_close(p);
	assert_true(snap_count(f) > 0);
	/* Around each snapshot S (at 300, 600, ... 1800): as of S - 2 must not start from S
	 * (it folds the events below S - 1), as of S - 1 and S may. */
	static const uint32_t targets[] = {0,    1,    298,  299,   300,  301,  777,
					   1234, 1198, 1199, 1200,  1498, 1499, 1500,
					   1798, 1799, 1800, N - 2, N - 1};
	for (unsigned i = 0; i < ARRAY_COUNT(targets); i++) {
		uint32_t at = targets[i];
		struct rill_projection_value v;
		assert_int_equal(rill_query_as_of(f->engine, "p_count", "acct", 4, at, 0, &v), 0);
		assert_int_equal(v.count, prefix[at].count);
		assert_int_equal(rill_query_as_of(f->engine, "p_sum", "acct", 4, at, 0, &v), 0);
		assert_int_equal(v.i64, prefix[at].sum);
		assert_int_equal(rill_query_as_of(f->engine, "p_max", "acct", 4, at, 0, &v), 0);
		assert_int_equal(v.i64, prefix[at].max);
		/* By time: the event of offset `at` is stamped t0 + at ms; half a ms later
		 * changes nothing. */
		uint64_t when = t0 + (uint64_t)at * 1000000u + 500000u;
		assert_int_equal(
			rill_query_as_of(f->engine, "p_count", "acct", 4, UINT64_MAX, when, &v), 0);
		assert_int_equal(v.count, prefix[at].count);
	}
	struct rill_projection_value v;
	assert_int_equal(rill_query_as_of(f->engine, "p_count", "acct", 4, UINT64_MAX, t0 - 1, &v),
			 -ENOENT); /* before the first event */
	assert_int_equal(rill_query_as_of(f->engine, "p_count", "acct", 4, 1u << 30, 0, &v), 0);
	assert_int_equal(v.count, N); /* past the end: the state now */
	assert_int_equal(rill_query_as_of(f->engine, "nope", "acct", 4, 0, 0, &v), -ENOENT);
	fx_close(f);
}

/*
 * As of a time, with stamps out of log order (rill.h, rill_query_as_of): the prefix of the
 * log before its first event stamped later than the time. One partition; "acct" gets
 * amounts 1, 10, 100 stamped 100, 300, 200, then "ahead" is stamped 1,000,000, then "acct"
 * gets 1000 stamped 400 and "after" 7 stamped 150.
 */
static void test_as_of_disordered(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "snap", 1, RILL_DURABILITY_NONE);
	snap_define(f);
	static const struct {
		const char *key;
		int64_t amount;
		uint64_t stamp;
	} evs[] = {{"acct", 1, 100},      {"acct", 10, 300},   {"acct", 100, 200},
		   {"ahead", 5, 1000000}, {"acct", 1000, 400}, {"after", 7, 150}};
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = 0; i < ARRAY_COUNT(evs); i++) {
		assert_int_equal(order_event_make(&o, f->order, evs[i].key, evs[i].amount), 0);
		o.ev.timestamp_ns = evs[i].stamp;
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	struct rill_projection_value v;
	/* 250: offset 1 (stamped 300) ends the prefix; offset 2 (200) is not in it. */
	assert_int_equal(rill_query_as_of(f->engine, "p_sum", "acct", 4, UINT64_MAX, 250, &v), 0);
	assert_int_equal(v.count, 1);
	assert_int_equal(v.i64, 1);
	/* 500: offsets 0 to 2; "ahead" ends it, so neither 1000 (400) nor "after" (150). */
	assert_int_equal(rill_query_as_of(f->engine, "p_sum", "acct", 4, UINT64_MAX, 500, &v), 0);
	assert_int_equal(v.count, 3);
	assert_int_equal(v.i64, 111);
	assert_int_equal(rill_query_as_of(f->engine, "p_sum", "after", 5, UINT64_MAX, 500, &v),
			 -ENOENT);
	/* From the stamp ahead on: every event. */
	assert_int_equal(rill_query_as_of(f->engine, "p_sum", "acct", 4, UINT64_MAX, 1000000, &v),
			 0);
	assert_int_equal(v.i64, 1111);
	assert_int_equal(rill_query_as_of(f->engine, "p_sum", "after", 5, UINT64_MAX, 1000000, &v),
			 0);
	assert_int_equal(v.i64, 7);
	fx_close(f);
}

/*
 * As of a time after retention deleted an event stamped ahead of its time. Offset 0 is
 * stamped an hour ahead, the next N - 1 events a microsecond apart, then M more past that
 * hour. Retention deletes offset 0: the prefix of any time before its stamp ends there,
 * in what is deleted, and the answer is -ERANGE (rill.h). It used to be the prefix up to
 * the kept events stamped at or before the time, as if offset 0 had not been written. A
 * time at or past that stamp is answered as before, in the middle of the log and at its
 * end; across a restart too.
 */
/* Partition 0 of @t, once retention has deleted its start: it runs about once a second on
 * the shard, and at each roll, so a slow build (ThreadSanitizer) may look before it ran.
 * Waits up to 20 s. */
static struct rill_partition_info retained_info(struct fx *f, struct rill_topic *t)
{
	struct rill_partition_info info;
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL),
				 0);
		if (info.first_offset > 0)
			break;
		usleep(10000);
	}
	return info;
}

/*
 * Late events of a window projection (stamped before the window before their key's
 * current one) are left out of its value, and counted where an operator sees them, in the
 * shards' projection_late; the count is the fold's: the same after a restart, from a
 * snapshot or from the log.
 */
static void test_window_late_counted(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "late", 1, RILL_DURABILITY_GROUP);
	const uint64_t window = 60ull * 1000000000u, base = 1700000000000000000ull;
	struct rill_projection_def wd = {.name = "late_win",
					 .topic = "late",
					 .type = "Order",
					 .kind = RILL_PROJECTION_WINDOW_COUNT,
					 .window_ns = window};
	struct rill_error_text err = {{0}};
	int rc = rill_projection_define(f->engine, &wd, &err);
	if (rc != 0)
		fail_msg("late_win: %s: %s", rill_strerror(rc), err.message);
	assert_int_equal(stats_sum(f).projection_late, 0);
	/* Window 10, then one event in window 9 (kept: the one before) and two in window 5
	 * (late), then window 10 again. */
	const uint64_t stamps[] = {base + 10 * window, base + 9 * window + 1, base + 5 * window,
				   base + 5 * window + 7, base + 10 * window + 3};
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		o.ev.timestamp_ns = stamps[i];
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	for (int round = 0; round < 3; round++) {
		struct rill_projection_value v;
		query_ok(f, "late_win", "k", &v);
		assert_int_equal(v.count, 2); /* window 10's two */
		assert_int_equal(v.offset, 4);
		uint64_t late = stats_sum(f).projection_late;
		if (late != 2)
			fail_msg("round %d: %llu late events counted, want 2", round,
				 (unsigned long long)late);
		if (round == 0)
			assert_int_equal(rill_engine_snapshot(f->engine), 0); /* restored from it */
		fx_close(f);
		if (round == 1) { /* rebuilt from the log */
			char cmd[256];
			snprintf(cmd, sizeof(cmd), "rm -rf %s/topics/late/*/snapshots", f->dir);
			assert_int_equal(system(cmd), 0);
		}
		fx_open(f);
	}
	fx_close(f);
}

static void test_as_of_time_deleted_ahead(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	snap_config(f, &c); /* periodic snapshots: the floor keeps the log after the oldest */
	/* Taken by the test every 500 events: the periodic ones are looked at every 1024
	 * turns, which a slow build's bursts may all fit in (one snapshot, at the end). */
	c.snapshot_interval_events = 1000000000;
	fx_open_with(f, &c);
	struct rill_topic *t = small_topic(f, "ahead");
	fx_projection(f, "ah_count", "ahead", RILL_PROJECTION_COUNT, NULL);
	enum { N = 6000, M = 1000 };
	const uint64_t base = 1700000000000000000ull, hour = 3600ull * 1000000000u;
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = 0; i < N + M; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		o.ev.timestamp_ns = i == 0  ? base + hour
				    : i < N ? base + (uint64_t)i * 1000u
					    : base + hour + (uint64_t)(i - N + 1) * 1000u;
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
		if ((i + 1) % 500 == 0) {
			flush_ok(p);
			assert_int_equal(rill_engine_snapshot(f->engine), 0);
		}
	}
	flush_ok(p);
	producer_close(p);
	for (int round = 0; round < 2; round++) { /* then again after a restart */
		t = rill_topic_find(f->engine, "ahead");
		struct rill_partition_info info = retained_info(f, t);
		if (!(info.first_offset > 0 && info.first_offset + 100 < N))
			fail_msg("round %d: the log holds %llu..%llu", round,
				 (unsigned long long)info.first_offset,
				 (unsigned long long)info.next_offset);
		struct rill_projection_value v = {0};
		/* Before offset 0's stamp, at a kept event's whose state a snapshot reaches (as
		 * of its offset, the count it had): offset 0 ends the prefix. */
		const uint64_t at = N - 2;
		assert_int_equal(rill_query_as_of(f->engine, "ah_count", "k", 1, at, 0, &v), 0);
		assert_int_equal(v.count, at + 1);
		int rc = rill_query_as_of(f->engine, "ah_count", "k", 1, UINT64_MAX,
					  base + at * 1000u + 500u, &v);
		if (rc != -ERANGE)
			fail_msg("as of offset %llu's time, after offset 0 stamped later was "
				 "deleted: %s, count %llu (want -ERANGE)",
				 (unsigned long long)at, rill_strerror(rc),
				 (unsigned long long)(rc == 0 ? v.count : 0));
		/* At or past it: up to the second last event, and up to the last. */
		assert_int_equal(rill_query_as_of(f->engine, "ah_count", "k", 1, UINT64_MAX,
						  base + hour + (M - 1) * 1000u + 500u, &v),
				 0);
		assert_int_equal(v.count, N + M - 1);
		assert_int_equal(rill_query_as_of(f->engine, "ah_count", "k", 1, UINT64_MAX,
						  base + 2 * hour, &v),
				 0);
		assert_int_equal(v.count, N + M);
		fx_close(f);
		fx_open_with(f, &c);
	}
	fx_close(f);
}

/*
 * As of the end, with the log's start gone and no snapshot: without snapshots retention
 * deletes freely, and an as-of read at or past the last event (by offset, or by a time
 * after every stamp) answered -ERANGE, as if it needed the deleted events, where rill.h
 * promises the value now. It is the value now; a point before the end still needs the
 * deleted events (-ERANGE).
 */
static void test_as_of_end_start_gone(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.snapshot_interval_events = 0; /* no snapshots: retention is free to delete */
	c.snapshot_interval_ns = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = small_topic(f, "gone");
	fx_projection(f, "g_count", "gone", RILL_PROJECTION_COUNT, NULL);
	enum { N = 5000 };
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	struct rill_partition_info info = retained_info(f, t);
	assert_true(info.first_offset > 0);
	assert_int_equal(info.next_offset, N);
	struct rill_projection_value v = {0};
	assert_int_equal(rill_query(f->engine, "g_count", "k", 1, NULL, 0, &v), 0);
	assert_int_equal(v.count, N); /* folded as they came */
	const struct {
		uint64_t offset, time_ns;
	} ends[] = {{N - 1, 0}, {N, 0}, {1000000000, 0}, {UINT64_MAX, UINT64_MAX - 1}};
	for (unsigned i = 0; i < ARRAY_COUNT(ends); i++) {
		memset(&v, 0, sizeof(v));
		int rc = rill_query_as_of(f->engine, "g_count", "k", 1, ends[i].offset,
					  ends[i].time_ns, &v);
		if (rc != 0 || v.count != N)
			fail_msg("as of offset %llu time %llu, the log's start gone: %s, count "
				 "%llu (want the value now, %u)",
				 (unsigned long long)ends[i].offset,
				 (unsigned long long)ends[i].time_ns, rill_strerror(rc),
				 (unsigned long long)v.count, (unsigned)N);
	}
	assert_int_equal(rill_query_as_of(f->engine, "g_count", "k", 1, N - 2, 0, &v), -ERANGE);
	fx_close(f);
}

/* ---- Command handlers ------------------------------------------------------------------- */

#define PLACE_JSON                                                                                 \
	"{\"type\":\"PlaceOrders\",\"version\":1,\"fields\":["                                     \
	"{\"name\":\"count\",\"type\":\"i64\"},{\"name\":\"amount\",\"type\":\"i64\"}]}"

#define PLACE_BUGGY_AMOUNT 1000 /* place_handler returns no verdict */

struct place_ctx {
	const struct rill_schema *order;
	struct rill_field_ref count, amount;
	uint32_t calls;
	bool emit_invalid; /* emit a payload that breaks its schema */
};

/* PlaceOrders{count, amount}: a negative amount is refused, count 0 is stored as it is,
 * else it becomes `count` Orders of `amount`. */
static enum rill_command_verdict place_handler(void *arg, const struct rill_record *cmd,
					       uint32_t partition, struct rill_command_result *out)
{
	(void)partition;
	struct place_ctx *c = arg;
	c->calls++;
	int64_t count = rill_field_i64(cmd->payload, c->count);
	int64_t amount = rill_field_i64(cmd->payload, c->amount);
	if (amount < 0) {
		snprintf(out->reason, sizeof(out->reason), "negative amount %lld",
			 (long long)amount);
		return RILL_COMMAND_REFUSE;
	}
	if (amount == PLACE_BUGGY_AMOUNT) { /* a handler's bug: no verdict, a stale reason */
		snprintf(out->reason, sizeof(out->reason), "stale reason");
		return (enum rill_command_verdict)42;
	}
	if (count == 0)
		return RILL_COMMAND_ACCEPT;
	if (count > RILL_COMMAND_EVENTS_MAX)
		count = RILL_COMMAND_EVENTS_MAX + 1; /* the engine refuses that many */
	uint32_t pos = 0;
	for (int64_t i = 0; i < count && i < RILL_COMMAND_EVENTS_MAX; i++) {
		uint32_t bytes = order_payload(c->order, out->scratch + pos, amount, "cmd");
		if (c->emit_invalid && i == count - 1)
			out->scratch[pos + 8 + 8 + 4] = 200; /* the note's length past its max */
		out->events[i] =
			(struct rill_command_event){.type_id = rill_schema_type_id(c->order),
						    .version = 1,
						    .payload = out->scratch + pos,
						    .payload_bytes = bytes};
		pos += (bytes + 7u) & ~7u;
	}
	out->event_count = (uint32_t)count;
	return RILL_COMMAND_EMIT;
}

static uint32_t place_payload(const struct rill_schema *s, uint8_t *buf, int64_t count,
			      int64_t amount)
{
	struct rill_payload_builder b;
	uint32_t bytes = 0;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, PAYLOAD_MAX), 0);
	assert_int_equal(rill_payload_set_i64(&b, 0, count), 0);
	assert_int_equal(rill_payload_set_i64(&b, 1, amount), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	return bytes;
}

/* The first acknowledgement of @cookie (the applied one, or the refusal). */
static const struct ack_rec *cmd_ack(const struct acks *a, uint64_t cookie)
{
	for (size_t i = 0; i < a->count; i++) {
		if (a->v[i].cookie == cookie)
			return &a->v[i];
	}
	fail_msg("no acknowledgement for cookie %llu", (unsigned long long)cookie);
	return NULL;
}

static void test_command_handlers(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "cmds", 2, RILL_DURABILITY_GROUP);
	fx_projection(f, "c_count", "cmds", RILL_PROJECTION_COUNT, NULL);
	fx_projection(f, "c_sum", "cmds", RILL_PROJECTION_SUM, "amount");
	const struct rill_schema *place;
	struct rill_schema_error serr = {{0}};
	assert_int_equal(rill_schema_register(rill_engine_schemas(f->engine), PLACE_JSON,
					      strlen(PLACE_JSON), -1, &place, &serr),
			 0);
	struct place_ctx ctx = {.order = f->order};
	assert_int_equal(rill_schema_field_ref(place, "count", &ctx.count), 0);
	assert_int_equal(rill_schema_field_ref(place, "amount", &ctx.amount), 0);
	assert_int_equal(rill_command_handler_set(f->engine, t, rill_schema_type_id(place),
						  place_handler, &ctx),
			 0);
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 9, &a);
	uint8_t payload[PAYLOAD_MAX];
	struct rill_event ev = {.key = "acct",
				.key_bytes = 4,
				.type_id = rill_schema_type_id(place),
				.version = 1,
				.payload = payload,
				.correlation_id = 4242};
	/* Three Orders of 10; refused; stored as it is; 17 events (too many); one emitted
	 * payload invalid; a verdict that is none; then the first again: a duplicate. */
	static const int64_t cmds[][2] = {{3, 10}, {1, -5}, {0, 7},
					  {17, 1}, {2, 1},  {1, PLACE_BUGGY_AMOUNT}};
	uint64_t next_seq = 0;
	for (unsigned i = 0; i < ARRAY_COUNT(cmds); i++) {
		ctx.emit_invalid = i == 4;
		ev.payload_bytes = place_payload(place, payload, cmds[i][0], cmds[i][1]);
		ev.sequence = next_seq; /* a refused command does not use its sequence up */
		assert_int_equal(publish_retry(p, t, &ev, RILL_ACKS_DURABLE, i), 0);
		flush_ok(p);
		next_seq += cmd_ack(&a, i)->error == 0;
	}
	assert_int_equal(next_seq, 2);
	uint32_t calls = ctx.calls;
	ev.payload_bytes = place_payload(place, payload, 3, 10);
	ev.sequence = 0;
	assert_int_equal(publish_retry(p, t, &ev, RILL_ACKS_APPLIED, 100), 0);
	flush_ok(p);
	assert_int_equal(ctx.calls, calls); /* a duplicate never reaches the handler */
	producer_close(p);

	const struct ack_rec *r = cmd_ack(&a, 0);
	assert_int_equal(r->error, 0);
	assert_int_equal(r->token.offset, 0);
	r = cmd_ack(&a, 1);
	assert_int_equal(r->error, RILL_E_COMMAND_REFUSED);
	assert_non_null(strstr(r->reason, "negative amount -5"));
	r = cmd_ack(&a, 2);
	assert_int_equal(r->error, 0);
	assert_int_equal(r->token.offset, 3); /* after the three emitted */
	r = cmd_ack(&a, 3);
	assert_int_equal(r->error, RILL_E_COMMAND_REFUSED);
	assert_non_null(strstr(r->reason, "17 events"));
	r = cmd_ack(&a, 4);
	assert_int_equal(r->error, RILL_E_PAYLOAD_INVALID);
	assert_non_null(strstr(r->reason, "event 1 of the command"));
	r = cmd_ack(&a, 5);
	assert_int_equal(r->error, RILL_E_COMMAND_REFUSED);
	if (strstr(r->reason, "returned 42, not a verdict") == NULL)
		fail_msg("reason: %s", r->reason);
	r = cmd_ack(&a, 100);
	assert_int_equal(r->error, 0);
	assert_true(r->duplicate);
	assert_int_equal(r->token.offset, 0);
	/* Durable acks for the emitting command: one, after the applied one, saying the same:
	 * its first event's offset. */
	unsigned durable = 0;
	for (size_t i = 0; i < a.count; i++) {
		if (a.v[i].cookie != 0 || a.v[i].level != RILL_ACKS_DURABLE)
			continue;
		assert_int_equal(a.v[i].error, 0);
		assert_int_equal(a.v[i].token.offset, 0);
		durable++;
	}
	assert_int_equal(durable, 1);
	acks_free(&a);

	/* The log holds the 3 Orders, then the accepted command: nothing of the refused. The
	 * shards counted the 4 events appended, not the 2 commands. */
	struct stats_sum sum = stats_sum(f);
	assert_int_equal(sum.events, 4);
	assert_int_equal(sum.duplicates, 1);
	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "c_count", "acct", 4, NULL, 0, &v), 0);
	assert_int_equal(v.count, 3); /* c_count folds Orders only */
	assert_int_equal(rill_query(f->engine, "c_sum", "acct", 4, NULL, 0, &v), 0);
	assert_int_equal(v.i64, 30);
	struct rill_subscription *sub;
	uint32_t part = rill_topic_partition(t, "acct", 4);
	assert_int_equal(rill_subscribe(f->engine, t, part, 0, &sub), 0);
	struct rill_record rec;
	uint64_t off;
	for (uint64_t i = 0; i < 4; i++) {
		assert_int_equal(rill_subscription_next(sub, &rec, &off, 2000000000u), 1);
		assert_int_equal(off, i);
		assert_int_equal(rec.correlation_id, 4242);
		assert_int_equal(rec.producer_id, 9);
		assert_int_equal(rec.type_id, i < 3 ? f->order_id : rill_schema_type_id(place));
	}
	assert_int_equal(rill_subscription_next(sub, &rec, &off, 50000000u), 0);
	assert_int_equal(rill_subscription_close(sub), 0);
	/* A restart rebuilds the same (the three events share the command's sequence). */
	fx_close(f);
	fx_open(f);
	assert_int_equal(rill_query(f->engine, "c_sum", "acct", 4, NULL, 0, &v), 0);
	assert_int_equal(v.i64, 30);
	t = rill_topic_find(f->engine, "cmds");
	p = producer_open(f, 9, &a);
	ev.type_id = f->order_id; /* a plain event: its sequence follows the command's */
	ev.payload_bytes = order_payload(f->order, payload, 1, "x");
	ev.sequence = 2;
	assert_int_equal(publish_retry(p, t, &ev, RILL_ACKS_APPLIED, 7), 0);
	flush_ok(p);
	producer_close(p);
	assert_int_equal(cmd_ack(&a, 7)->error, 0);
	acks_free(&a);
	fx_close(f);
}

/* A command handler that says it started, then keeps the shard busy for STAGE_SPIN_NS. */
#define STAGE_SPIN_NS (50u * 1000 * 1000)
static enum rill_command_verdict stage_slow_handler(void *arg, const struct rill_record *cmd,
						    uint32_t partition,
						    struct rill_command_result *out)
{
	(void)cmd;
	(void)partition;
	(void)out;
	rill_atomic_store_release_u64(arg, 1);
	uint64_t until = rill_clock_now_ns() + STAGE_SPIN_NS;
	while (rill_clock_now_ns() < until)
		rill_cpu_pause();
	return RILL_COMMAND_ACCEPT;
}

/*
 * The ring and apply stages of events published while the shard worked on their burst:
 * every event of a burst was stamped taken when the first was, so theirs read as taken
 * before they existed: a ring stage of 0 and an apply stage holding the whole wait (apply,
 * a part of applied, came out longer than it). An event of a burst is now taken when the
 * one before it is done.
 */
static void test_stage_split_in_burst(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "stage", 1, RILL_DURABILITY_NONE);
	const struct rill_schema *place;
	struct rill_schema_error serr = {{0}};
	assert_int_equal(rill_schema_register(rill_engine_schemas(f->engine), PLACE_JSON,
					      strlen(PLACE_JSON), -1, &place, &serr),
			 0);
	uint64_t started = 0;
	assert_int_equal(rill_command_handler_set(f->engine, t, rill_schema_type_id(place),
						  stage_slow_handler, &started),
			 0);
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 0, &a);
	uint8_t payload[PAYLOAD_MAX];
	struct rill_event cmd = {.key = "k",
				 .key_bytes = 1,
				 .type_id = rill_schema_type_id(place),
				 .version = 1,
				 .payload = payload,
				 .payload_bytes = place_payload(place, payload, 1, 1)};
	assert_int_equal(publish_retry(p, t, &cmd, RILL_ACKS_APPLIED, 0), 0);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	while (rill_atomic_load_acquire_u64(&started) == 0) {
		if (rill_clock_now_ns() > deadline)
			fail_msg("the command handler never ran");
		rill_cpu_pause();
	}
	enum { LATE = 5 }; /* published while the handler spins: the same burst */
	struct order_event o;
	for (uint32_t i = 1; i <= LATE; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	assert_int_equal(a.count, LATE + 1);
	struct rill_shard_stats st;
	assert_int_equal(rill_engine_shard_stats(f->engine, 0, &st), 0);
	assert_int_equal(st.ring.count, LATE + 1);
	/* Most of the six waited in the ring behind the handler; each one's own work is short. */
	if (st.ring.p50_ns < STAGE_SPIN_NS / 10 || st.apply.p50_ns >= STAGE_SPIN_NS / 10)
		fail_msg("ring p50 %" PRIu64 " ns, apply p50 %" PRIu64 " ns, applied max %" PRIu64
			 " ns, apply max %" PRIu64 " ns",
			 st.ring.p50_ns, st.apply.p50_ns, st.applied.max_ns, st.apply.max_ns);
	producer_close(p);
	acks_free(&a);
	fx_close(f);
}

/* ---- 10. Busy polling ------------------------------------------------------------------- */

static void test_busy_poll(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.poll = RILL_POLL_BUSY;
	fx_open_with(f, &c);
	assert_int_equal(rill_engine_shards(f->engine), 1);
	struct rill_topic *topic = fx_topic(f, "busy", 2, RILL_DURABILITY_NONE);
	struct acks acks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	uint32_t n = events_count() / 2;
	for (uint32_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "b-%u", i % 31);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)i), 0);
		assert_int_equal(publish_retry(p, topic, &o.ev, RILL_ACKS_APPLIED, i), 0);
		if (i % 16 == 0)
			rill_producer_poll(p, 0);
	}
	flush_ok(p);
	assert_false(acks.oom);
	assert_int_equal(acks.count, n);
	for (size_t i = 0; i < acks.count; i++)
		assert_int_equal(acks.v[i].error, 0);
	struct rill_shard_stats st;
	assert_int_equal(rill_engine_shard_stats(f->engine, 0, &st), 0);
	assert_int_equal(st.partitions, 2);
	assert_int_equal(st.events, n);
	assert_int_equal(st.applied.count, n);
	assert_int_equal(st.sleeps, 0); /* busy: never sleeps */
	latency_check("applied", 0, &st.applied);
	producer_close(p);
	fx_close(f);
	acks_free(&acks);
}

/* ---- 11. Shard statistics --------------------------------------------------------------- */

static void test_shard_stats(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *tg = fx_topic(f, "st_group", 2, RILL_DURABILITY_GROUP);
	struct rill_topic *tm = fx_topic(f, "st_mem", 3, RILL_DURABILITY_NONE);
	struct acks acks = {0}, iacks = {0};
	struct rill_producer *p = producer_open(f, 0, &acks);
	uint32_t n = events_count() / 2;
	uint64_t good = 0, bad = 0, want_acks = 0, want_durable = 0, want_durable_stage = 0;
	for (uint32_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "s-%u", i % 53);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)i), 0);
		enum rill_acks level = (enum rill_acks)(i % 3);
		bool refuse = i % 10 == 0;
		if (refuse)
			o.ev.type_id = BAD_TYPE_ID;
		assert_int_equal(publish_retry(p, i % 2 ? tg : tm, &o.ev, level, i), 0);
		if (refuse) {
			bad++;
			want_acks++; /* one refusal, whatever was asked */
		} else {
			good++;
			want_acks += (uint64_t)level;
			want_durable += level == RILL_ACKS_DURABLE;
			/* The durable stage: events that reached a disk, st_group's only. */
			want_durable_stage += level == RILL_ACKS_DURABLE && i % 2 != 0;
		}
	}
	flush_ok(p);
	assert_false(acks.oom);
	assert_int_equal(acks.count, want_acks);
	uint64_t refusals = 0, durable = 0;
	for (size_t i = 0; i < acks.count; i++) {
		refusals += acks.v[i].error != 0;
		durable += acks.v[i].error == 0 && acks.v[i].level == RILL_ACKS_DURABLE;
	}
	assert_int_equal(refusals, bad);
	assert_int_equal(durable, want_durable);

	/* An idempotent producer: events, then a retry of each partition's last one. */
	struct rill_producer *ip = producer_open(f, 77, &iacks);
	uint64_t seq[3] = {0}, idem = n / 4, dups = 0;
	for (uint64_t i = 0; i < idem; i++) {
		char key[32];
		snprintf(key, sizeof(key), "i-%u", (unsigned)(i % 29));
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)i), 0);
		uint32_t part = rill_topic_partition(tm, key, strlen(key));
		o.ev.sequence = seq[part]++;
		assert_int_equal(publish_retry(ip, tm, &o.ev, RILL_ACKS_APPLIED, i), 0);
		if (i % 5 == 0) {
			assert_int_equal(publish_retry(ip, tm, &o.ev, RILL_ACKS_APPLIED, i), 0);
			dups++;
		}
	}
	flush_ok(ip);
	assert_int_equal(iacks.count, idem + dups);
	uint64_t dup_acks = 0;
	for (size_t i = 0; i < iacks.count; i++) {
		assert_int_equal(iacks.v[i].error, 0);
		dup_acks += iacks.v[i].duplicate;
	}
	assert_int_equal(dup_acks, dups);

	struct stats_sum s = stats_sum(f); /* checks p50 <= p99 <= p999 <= p9999 <= max */
	assert_int_equal(s.partitions, 5);
	assert_int_equal(s.events, good + idem);
	assert_int_equal(s.duplicates, dups);
	assert_int_equal(s.refused, bad);
	assert_int_equal(s.durable, want_durable_stage);
	assert_int_equal(s.ring, s.applied);
	assert_int_equal(s.apply, s.applied);
	assert_true(s.applied >= s.events && s.applied <= s.events + s.duplicates);
	for (uint32_t i = 0; i < rill_engine_shards(f->engine); i++) {
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, i, &st), 0);
		assert_true(st.partitions > 0);
		assert_true(st.events > 0);
		assert_true(st.ring.count > 0);
		assert_true(st.apply.count > 0);
		assert_true(st.applied.count > 0);
		assert_true(st.applied.max_ns > 0);
		assert_true(st.applied.p50_ns > 0);
		/* Each shard holds a partition of the group topic, whose durable acks all came:
		 * its log wrote and synced a batch at least; never more batches than records. */
		assert_true(st.sync.count > 0);
		assert_true(st.sync.p50_ns > 0);
	}
	assert_true(s.sync <= s.events);
	producer_close(p);
	producer_close(ip);
	fx_close(f);
	acks_free(&acks);
	acks_free(&iacks);
}

/*
 * A record of exactly RILL_RECORD_BYTES_MAX, with a key: the log takes it, so publish
 * must too (with a ring large enough), and a subscriber reads it back; one byte more is
 * refused at publish (-EINVAL), not by the ring. Publishing it failed with -EMSGSIZE at
 * any ring size: the ring message's header is 16 bytes longer than the record's.
 */
static void test_largest_record(void **state)
{
	enum { KEY = 16, FIELDS = 16 }; /* the payload's block header and the field's pair */
	const uint32_t data = RILL_RECORD_BYTES_MAX - RILL_RECORD_HEADER_BYTES - KEY - FIELDS;
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.ring_bytes = 8u << 20; /* half of it takes the largest event */
	fx_open_with(f, &c);
	char json[256];
	snprintf(json, sizeof(json),
		 "{\"type\":\"Blob\",\"version\":1,\"fields\":[{\"name\":\"b\",\"type\":"
		 "\"bytes\",\"max_length\":%u}]}",
		 data + 1);
	const struct rill_schema *blob;
	struct rill_schema_error serr = {{0}};
	if (rill_schema_register(rill_engine_schemas(f->engine), json, strlen(json), -1, &blob,
				 &serr) != 0)
		fail_msg("Blob: %s", serr.message);
	struct rill_topic *t = fx_topic(f, "blobs", 1, RILL_DURABILITY_NONE);
	uint8_t *payload = malloc(RILL_PAYLOAD_BYTES_MAX), *bytes = calloc(1, data + 1);
	assert_non_null(payload);
	assert_non_null(bytes);
	memset(bytes, 'b', data + 1);
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 0, &a);
	for (uint32_t extra = 0; extra < 2; extra++) {
		struct rill_payload_builder pb;
		uint32_t payload_bytes = 0;
		assert_int_equal(
			rill_payload_builder_init(&pb, blob, payload, RILL_PAYLOAD_BYTES_MAX), 0);
		assert_int_equal(rill_payload_set_var(&pb, 0, bytes, data + extra), 0);
		assert_int_equal(rill_payload_builder_finish(&pb, &payload_bytes, NULL), 0);
		struct rill_event ev = {.key = "0123456789abcdef",
					.key_bytes = KEY,
					.type_id = rill_schema_type_id(blob),
					.version = 1,
					.payload = payload,
					.payload_bytes = payload_bytes};
		assert_int_equal(rill_record_bytes(KEY, payload_bytes),
				 extra ? 0 : RILL_RECORD_BYTES_MAX);
		assert_int_equal(publish_retry(p, t, &ev, RILL_ACKS_APPLIED, extra),
				 extra ? -EINVAL : 0);
	}
	flush_ok(p);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.v[0].error, 0);
	producer_close(p);
	acks_free(&a);
	struct rill_subscription *sub;
	assert_int_equal(rill_subscribe(f->engine, t, 0, 0, &sub), 0);
	struct rill_record rec;
	uint64_t off = UINT64_MAX;
	assert_int_equal(rill_subscription_next(sub, &rec, &off, 5000000000u), 1);
	assert_int_equal(off, 0);
	assert_int_equal(rill_record_bytes(rec.key_bytes, rec.payload_bytes),
			 RILL_RECORD_BYTES_MAX);
	assert_int_equal(rill_subscription_close(sub), 0);
	free(payload);
	free(bytes);
	fx_close(f);
}

/*
 * config.subscriptions_per_shard: as many subscriptions at once on a shard, over every
 * subscriber, and -ENOSPC past them until one closes. It was a fixed 64: one consumer of
 * a 64-partition topic on one shard left none to anyone else.
 */
static void test_subscriptions_per_shard(void **state)
{
	enum { SUBS = 66 }; /* past the default 64 */
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.subscriptions_per_shard = SUBS;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "fans", 2, RILL_DURABILITY_NONE);
	static struct rill_subscription *subs[SUBS];
	for (uint32_t i = 0; i < SUBS; i++)
		assert_int_equal(rill_subscribe(f->engine, t, i % 2, 0, &subs[i]), 0);
	struct rill_subscription *more = NULL;
	assert_int_equal(rill_subscribe(f->engine, t, 0, 0, &more), -ENOSPC);
	assert_int_equal(rill_subscription_close(subs[SUBS / 2]), 0);
	assert_int_equal(rill_subscribe(f->engine, t, 1, 0, &subs[SUBS / 2]), 0);
	for (uint32_t i = 0; i < SUBS; i++)
		assert_int_equal(rill_subscription_close(subs[i]), 0);
	fx_close(f);
}

/* rill_subscription_ready may be asked any number of times before and between
 * rill_subscription_next: it looks at the next event without taking it. (It once left
 * its look open, and the next look tripped the ring's assertion.) */
static void test_subscription_ready(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "ready", 1, RILL_DURABILITY_NONE);
	struct rill_subscription *sub;
	assert_int_equal(rill_subscribe(f->engine, t, 0, 0, &sub), 0);
	assert_false(rill_subscription_ready(sub));
	assert_false(rill_subscription_ready(sub));
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint64_t i = 0; i < 3; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", (int64_t)i), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	uint64_t deadline = rill_clock_now_ns() + 5000000000u;
	while (!rill_subscription_ready(sub) && rill_clock_now_ns() < deadline)
		nap_ns(1000000);
	for (uint64_t i = 0; i < 3; i++) {
		assert_true(rill_subscription_ready(sub)); /* asked again: still there */
		assert_true(rill_subscription_ready(sub));
		struct rill_record rec;
		uint64_t off = UINT64_MAX;
		assert_int_equal(rill_subscription_next(sub, &rec, &off, 2000000000u), 1);
		assert_int_equal(off, i);
		while (i < 2 && !rill_subscription_ready(sub) && rill_clock_now_ns() < deadline)
			nap_ns(1000000);
	}
	assert_false(rill_subscription_ready(sub));
	struct rill_record rec;
	uint64_t off;
	assert_int_equal(rill_subscription_next(sub, &rec, &off, 0), 0);
	assert_int_equal(rill_subscription_close(sub), 0);
	fx_close(f);
}

/*
 * A projection whose key table is full folds no new key, though the events are appended
 * and acknowledged: a query for such a key must not answer "never seen" (-ENOENT), which
 * would be wrong, but -ENOSPC. Before the table filled, an unknown key is -ENOENT.
 */
static void test_projection_full(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 1);
	c.projection_keys_max = 4;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "full", 1, RILL_DURABILITY_NONE);
	fx_projection(f, "full_count", "full", RILL_PROJECTION_COUNT, NULL);
	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "full_count", "k9", 2, NULL, 0, &v), -ENOENT);
	struct acks a = {0};
	struct rill_producer *p = producer_open(f, 0, &a);
	struct order_event o;
	for (uint64_t i = 0; i < 6; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%u", (unsigned)i);
		assert_int_equal(order_event_make(&o, f->order, key, 1), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	assert_int_equal(a.count, 6);
	for (size_t i = 0; i < a.count; i++)
		assert_int_equal(a.v[i].error, 0); /* appended, acknowledged */
	for (uint64_t i = 0; i < 6; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%u", (unsigned)i);
		int rc = rill_query(f->engine, "full_count", key, strlen(key), NULL, 0, &v);
		if (i < 4) {
			assert_int_equal(rc, 0);
			assert_int_equal(v.count, 1);
		} else if (rc != -ENOSPC) {
			fail_msg("key %s, refused by a full projection: query %d (%s)", key, rc,
				 rill_strerror(rc));
		}
	}
	producer_close(p);
	acks_free(&a);
	fx_close(f);
}

/* Bill v1 {cents i64} became v2 {price f64}: the upcaster converts. */
#define BILL_V1                                                                                    \
	"{\"type\":\"Bill\",\"version\":1,\"fields\":[{\"name\":\"cents\",\"type\":\"i64\"}]}"
#define BILL_V2                                                                                    \
	"{\"type\":\"Bill\",\"version\":2,\"fields\":[{\"name\":\"price\",\"type\":\"f64\","       \
	"\"default\":0}]}"

static int bill_cents_to_price(void *arg, const struct rill_schema *from, const void *payload,
			       uint32_t payload_bytes, struct rill_payload_builder *to)
{
	(void)arg;
	(void)payload_bytes;
	struct rill_field_ref cents;
	int rc = rill_schema_field_ref(from, "cents", &cents);
	return rc != 0 ? rc
		       : rill_payload_set_f64(to, 0, (double)rill_field_i64(payload, cents) / 100);
}

static int bill_on_schemas(void *arg, struct rill_schema_registry *schemas)
{
	int *calls = arg;
	(*calls)++;
	return rill_schema_upcaster_add(schemas, "Bill", 1, bill_cents_to_price, NULL);
}

static int bill_on_schemas_fails(void *arg, struct rill_schema_registry *schemas)
{
	(void)arg;
	(void)schemas;
	return -EPERM;
}

static double bill_price_sum(struct fx *f)
{
	struct rill_projection_value v;
	assert_int_equal(rill_query(f->engine, "bill_total", "b", 1, NULL, 0, &v), 0);
	assert_int_equal(v.count, 3);
	assert_true(v.is_float);
	return v.f64;
}

/*
 * Upcasters are code, added at every open; the open itself rebuilds the projections from
 * the logs (here with snapshots off, so entirely). Added after rill_engine_open they come
 * too late for that rebuild, which reads the v1 events with the plain mapping (price at
 * its default, 0), silently; added from config.on_schemas they are there for it.
 */
static void test_upcasters_before_rebuild(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.snapshots_off = true;
	fx_open_with(f, &c);
	struct rill_schema_registry *reg = rill_engine_schemas(f->engine);
	const struct rill_schema *v1 = NULL, *v2 = NULL;
	assert_int_equal(rill_schema_register(reg, BILL_V1, strlen(BILL_V1), -1, &v1, NULL), 0);
	assert_int_equal(rill_schema_register(reg, BILL_V2, strlen(BILL_V2), -1, &v2, NULL), 0);
	assert_int_equal(rill_schema_upcaster_add(reg, "Bill", 1, bill_cents_to_price, NULL), 0);
	struct rill_topic *t = fx_topic(f, "bills", 1, RILL_DURABILITY_GROUP);
	struct rill_projection_def d = {.name = "bill_total",
					.topic = "bills",
					.type = "Bill",
					.version = 2,
					.kind = RILL_PROJECTION_SUM,
					.field = "price"};
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_projection_define(f->engine, &d, &err), 0);
	struct rill_producer *p = producer_open(f, 0, NULL);
	for (int i = 0; i < 3; i++) {
		uint8_t payload[64];
		struct rill_payload_builder b;
		uint32_t bytes = 0;
		assert_int_equal(rill_payload_builder_init(&b, v1, payload, sizeof(payload)), 0);
		assert_int_equal(rill_payload_set_i64(&b, 0, 100), 0);
		assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
		struct rill_event ev = {.key = "b",
					.key_bytes = 1,
					.type_id = rill_schema_type_id(v1),
					.version = 1,
					.payload = payload,
					.payload_bytes = bytes};
		assert_int_equal(publish_retry(p, t, &ev, RILL_ACKS_DURABLE, (uint64_t)i), 0);
	}
	flush_ok(p);
	producer_close(p);
	assert_true(bill_price_sum(f) == 3.0); /* live: the upcaster was there */
	fx_close(f);

	/* Added after the open: the rebuild went without it. */
	fx_open_with(f, &c);
	assert_int_equal(rill_schema_upcaster_add(rill_engine_schemas(f->engine), "Bill", 1,
						  bill_cents_to_price, NULL),
			 0);
	assert_true(bill_price_sum(f) == 0.0);
	fx_close(f);

	/* From on_schemas: the rebuild reads through it. */
	int calls = 0;
	c.on_schemas = bill_on_schemas;
	c.on_schemas_arg = &calls;
	fx_open_with(f, &c);
	assert_int_equal(calls, 1);
	assert_true(bill_price_sum(f) == 3.0);
	fx_close(f);

	/* A hook that fails fails the open, saying so. */
	c.on_schemas = bill_on_schemas_fails;
	struct rill_engine *none = NULL;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rill_engine_open(&none, &c, &err), -EPERM);
	assert_null(none);
	assert_non_null(strstr(err.message, "on_schemas"));
}

/*
 * rill_partition_info_get with a time no event reaches: @at is the next offset, also on a
 * topic of durability none whose last events are not synced yet (the time index sees
 * durable batches only; answering the durable offset would start a subscription "from
 * that time" at events stamped before it).
 */
static void test_info_time_past_the_end(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic_config tc = {.name = "late",
				       .partitions = 1,
				       .durability = RILL_DURABILITY_NONE,
				       .batch_delay_ns = 10ull * 1000000000u}; /* no flush soon */
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	assert_int_equal(rill_topic_create(f->engine, &tc, &t, &err), 0);
	struct rill_producer *p = producer_open(f, 0, NULL);
	uint64_t now = rill_clock_wall_ns();
	struct order_event o;
	for (uint64_t i = 0; i < 6; i++) {
		assert_int_equal(order_event_make(&o, f->order, "k", (int64_t)i), 0);
		o.ev.timestamp_ns = now + i;
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
	struct rill_partition_info info;
	uint64_t at = 0;
	assert_int_equal(
		rill_partition_info_get(f->engine, t, 0, now + 3600ull * 1000000000u, &info, &at),
		0);
	assert_int_equal(info.next_offset, 6);
	assert_int_equal(at, 6);
	assert_int_equal(rill_partition_info_get(f->engine, t, 0, now + 2, &info, &at), 0);
	assert_int_equal(at, 2);
	fx_close(f);
}

/*
 * The producer a subscription wakes through (rill_subscribe_notify) cannot close under it:
 * its shard would go on signalling the producer's closed eventfd, a number the host may
 * have reused for a file of its own.
 */
static void test_notify_producer_outlives_subscription(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "notified", 1, RILL_DURABILITY_NONE);
	struct rill_producer_config pc = {.wake_fd = true};
	struct rill_producer *n = NULL;
	assert_int_equal(rill_producer_open(f->engine, &pc, &n), 0);
	struct rill_subscription *sub;
	assert_int_equal(rill_subscribe_notify(f->engine, t, 0, 0, n, &sub), 0);
	assert_int_equal(rill_producer_close(n), -EBUSY);
	/* Still whole: it publishes, and its subscription wakes it. */
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "k", 1), 0);
	assert_int_equal(publish_retry(n, t, &o.ev, RILL_ACKS_APPLIED, 0), 0);
	flush_ok(n);
	struct rill_record rec;
	uint64_t off = UINT64_MAX;
	assert_int_equal(rill_subscription_next(sub, &rec, &off, 5000000000u), 1);
	assert_int_equal(off, 0);
	assert_int_equal(rill_subscription_close(sub), 0);
	producer_close(n);
	/* A failed subscribe holds nothing. */
	assert_int_equal(rill_producer_open(f->engine, &pc, &n), 0);
	assert_int_equal(rill_subscribe_notify(f->engine, t, 1, 0, n, &sub), -EINVAL);
	producer_close(n);
	fx_close(f);
}

/* A wake_batched producer with an eventfd, its acknowledgements into @a (the wake tests). */
static struct rill_producer *wake_producer_open(struct fx *f, struct acks *a)
{
	struct rill_producer_config pc = {
		.on_ack = acks_on_ack, .arg = a, .wake_fd = true, .wake_batched = true};
	struct rill_producer *p = NULL;
	assert_int_equal(rill_producer_open(f->engine, &pc, &p), 0);
	assert_true(rill_producer_wake_fd(p) >= 0);
	return p;
}

/* Sleep on @p's eventfd as an event loop does, up to @timeout_ms. Returns false only when
 * the wait ran out with no wake-up (true too when acknowledgements were already in). */
static bool wake_sleep(struct rill_producer *p, int timeout_ms)
{
	if (!rill_producer_sleep_begin(p))
		return true;
	int fd = rill_producer_wake_fd(p);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	bool woken = poll(&pfd, 1, timeout_ms) != 0;
	rill_producer_sleep_end(p);
	uint64_t count;
	ssize_t got = read(fd, &count, sizeof(count));
	(void)got; /* nothing to read when it timed out */
	return woken;
}

/*
 * A producer with wake_batched does not wake a shard per event: it must still wake every
 * shard it published to before it sleeps (rill_producer_sleep_begin), or a sleeping shard
 * would sit on the event until its own timeout (100 ms). With no idle spin the shards sleep
 * between rounds, so each round's event needs that wake-up; a round is late when its
 * acknowledgement has not woken the producer within 60 ms. A lost wake-up makes every
 * round late; a busy machine, a few.
 */
static void test_wake_batched(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.idle_spin_ns = 0;
	fx_open_with(f, &c);
	struct rill_topic *t = fx_topic(f, "wb", 4, RILL_DURABILITY_NONE);
	struct acks acks = {0};
	struct rill_producer *p = wake_producer_open(f, &acks);
	enum { ROUNDS = 200 };
	unsigned late = 0;
	for (uint32_t i = 0; i < ROUNDS; i++) {
		char key[32];
		snprintf(key, sizeof(key), "wb-%u", i);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)i), 0);
		assert_int_equal(rill_publish(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
		if (!wake_sleep(p, 60))
			late++;
		uint64_t deadline = rill_clock_now_ns() + 5000000000u;
		while (acks.count < i + 1 && rill_clock_now_ns() < deadline)
			rill_producer_poll(p, 1000000);
		assert_int_equal(acks.count, i + 1);
		assert_int_equal(acks.v[i].error, 0);
		assert_int_equal(acks.v[i].cookie, i);
		nap_ns(1000000); /* the shards go back to sleep */
	}
	fprintf(stderr, "wake_batched: %u of %u rounds late\n", late, (unsigned)ROUNDS);
	assert_true(late <= ROUNDS / 10);
	/* Published, then flushed with no explicit wake: flush wakes the shards itself. */
	struct order_event o;
	assert_int_equal(order_event_make(&o, f->order, "wb-last", 1), 0);
	assert_int_equal(rill_publish(p, t, &o.ev, RILL_ACKS_APPLIED, ROUNDS), 0);
	flush_ok(p);
	assert_int_equal(acks.count, ROUNDS + 1);
	producer_close(p);
	acks_free(&acks);
	fx_close(f);
}

/*
 * The wake-ups test_wake_batched does not reach: durable acknowledgements (sent after the
 * disk, by the shard's log poll, which must wake the producer itself), and a full ring
 * (rill_publish's -EAGAIN must wake the shard at once, or a caller that naps before
 * retrying waits for the shard's own 100 ms timeout). No idle spin: the shards sleep.
 */
static void test_wake_batched_durable_and_full(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	c.idle_spin_ns = 0;
	c.ring_bytes = 64u << 10; /* the smallest rings: quick to fill */
	fx_open_with(f, &c);
	struct rill_topic *tg = fx_topic(f, "wbd", 2, RILL_DURABILITY_GROUP);
	struct rill_topic *tn = fx_topic(f, "wbf", 1, RILL_DURABILITY_NONE);
	struct acks acks = {0};
	struct rill_producer *p = wake_producer_open(f, &acks);

	/* Durable: sleep on the fd until both acknowledgements are in. A round is late when
	 * a sleep ran out (1 s, against a sync of ~1 ms here): the wake-up never came. */
	enum { ROUNDS = 40 };
	unsigned late = 0;
	for (uint32_t i = 0; i < ROUNDS && late < 3; i++) {
		char key[32];
		snprintf(key, sizeof(key), "wbd-%u", i);
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, key, (int64_t)i), 0);
		size_t want = acks.count + 2; /* applied, then durable */
		assert_int_equal(rill_publish(p, tg, &o.ev, RILL_ACKS_DURABLE, i), 0);
		uint64_t deadline = rill_clock_now_ns() + 10000000000ull;
		while (acks.count < want && rill_clock_now_ns() < deadline) {
			if (!wake_sleep(p, 1000))
				late++;
			rill_producer_poll(p, 0);
		}
		assert_int_equal(acks.count, want);
		assert_int_equal(acks.v[want - 1].level, RILL_ACKS_DURABLE);
		assert_int_equal(acks.v[want - 1].error, 0);
	}
	fprintf(stderr, "wake_batched durable: %u rounds late\n", late);
	assert_true(late < 3);

	/* A full ring: publish until -EAGAIN, never waking or polling; then nap and retry. The
	 * retry succeeds once the shard has drained some: within 30 ms when -EAGAIN woke it
	 * (every round here), up to the shard's 100 ms sleep when not (half the rounds). */
	enum { FULL_ROUNDS = 20 };
	unsigned slow = 0;
	uint64_t cookie = 1000000;
	for (uint32_t r = 0; r < FULL_ROUNDS; r++) {
		struct order_event o;
		assert_int_equal(order_event_make(&o, f->order, "wbf", 1), 0);
		int rc;
		while ((rc = rill_publish(p, tn, &o.ev, RILL_ACKS_NONE, cookie)) == 0)
			cookie++;
		assert_int_equal(rc, -EAGAIN);
		uint64_t start = rill_clock_now_ns();
		do
			nap_ns(1000000);
		while ((rc = rill_publish(p, tn, &o.ev, RILL_ACKS_NONE, cookie)) == -EAGAIN &&
		       rill_clock_now_ns() - start < 5000000000ull);
		assert_int_equal(rc, 0);
		cookie++;
		if (rill_clock_now_ns() - start > 30000000u)
			slow++;
		nap_ns(5000000); /* drained, asleep again */
	}
	fprintf(stderr, "wake_batched full ring: %u of %u retries slow\n", slow,
		(unsigned)FULL_ROUNDS);
	assert_true(slow <= FULL_ROUNDS / 5);
	flush_ok(p);
	producer_close(p);
	acks_free(&acks);
	fx_close(f);
}

/* A hook that publishes through its own producer on its shard's thread (test_local_publish).
 * No cmocka calls in it: it runs on the shard's thread; failures are counted. */
struct lp_hook {
	struct fx *f;
	struct rill_topic *t;
	struct rill_producer *p;
	struct acks acks;
	uint32_t sent, total, polls;
	uint64_t failures; /* publish errors other than -EAGAIN */
	uint64_t done;     /* 1 once every ack is in (release; the test thread acquires) */
};

static unsigned lp_poll(void *arg)
{
	struct lp_hook *h = arg;
	unsigned work = 0;
	for (unsigned i = 0; i < 64 && h->sent < h->total; i++) {
		char key[32];
		snprintf(key, sizeof(key), "lp-%u", h->sent % 13);
		struct order_event o;
		if (order_event_make(&o, h->f->order, key, (int64_t)h->sent) != 0) {
			h->failures++;
			break;
		}
		int rc = rill_publish(h->p, h->t, &o.ev, RILL_ACKS_APPLIED, h->sent);
		if (rc == -EAGAIN)
			break;
		if (rc != 0) {
			h->failures++;
			break;
		}
		h->sent++;
		work++;
	}
	/* Acknowledgements are read every 256th turn only, or once all are sent: the ack
	 * ring (64 KiB) fills in between, so the shard must stall events of its own, and
	 * those take the ring, whose order the test checks. */
	if (++h->polls % 256 == 0 || h->sent == h->total)
		work += (unsigned)rill_producer_poll(h->p, 0);
	if (h->acks.count == h->total && __atomic_load_n(&h->done, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
	return work;
}

/*
 * A hook publishing on its own shard's thread: events for that shard's partitions are
 * taken at once (no ring), the others go through the rings, and a log that cannot take
 * one (small batches: both buffers busy) sends it, and what follows it, through the ring
 * too. Whatever the path, each producer's events keep their order in every partition.
 */
static void test_local_publish(void **state)
{
	struct fx *f = *state;
	struct rill_engine_config ec;
	fx_config(f, &ec, 2);
	ec.log_fixed_batches = true; /* 4 KiB batches that never grow: the log pushes back */
	fx_open_with(f, &ec);
	struct rill_topic_config tc = {.name = "lp",
				       .partitions = 4,
				       .durability = RILL_DURABILITY_GROUP,
				       .batch_bytes_max = 4096};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	assert_int_equal(rill_topic_create(f->engine, &tc, &t, &err), 0);
	enum { HOOKS = 2 };
	const uint32_t total = events_count() < 8000 ? 8000 : events_count();
	struct lp_hook hooks[HOOKS];
	for (uint32_t i = 0; i < HOOKS; i++) {
		hooks[i] = (struct lp_hook){.f = f, .t = t, .total = total};
		struct rill_producer_config pc = {.on_ack = acks_on_ack, .arg = &hooks[i].acks};
		assert_int_equal(rill_producer_open(f->engine, &pc, &hooks[i].p), 0);
		struct rill_shard_hook hook = {.poll = lp_poll, .arg = &hooks[i]};
		assert_int_equal(rill_engine_shard_hook_add(f->engine, i, &hook), 0);
	}
	uint64_t deadline = rill_clock_now_ns() + 30000000000ull;
	for (uint32_t i = 0; i < HOOKS; i++)
		while (__atomic_load_n(&hooks[i].done, __ATOMIC_ACQUIRE) == 0 &&
		       rill_clock_now_ns() < deadline)
			nap_ns(1000000);
	uint64_t local = 0, events = 0, stalls = 0;
	for (uint32_t i = 0; i < HOOKS; i++) {
		assert_int_equal(rill_engine_shard_hook_remove(f->engine, i, &hooks[i]), 0);
		struct rill_shard_stats st;
		assert_int_equal(rill_engine_shard_stats(f->engine, i, &st), 0);
		local += st.local;
		events += st.events;
		stalls += st.stalls;
	}
	for (uint32_t i = 0; i < HOOKS; i++) {
		struct lp_hook *h = &hooks[i];
		assert_int_equal(h->failures, 0);
		assert_int_equal(h->acks.count, total);
		assert_false(h->acks.oom);
		uint64_t last[4];
		bool seen[4] = {false};
		struct ack_rec **by_cookie = calloc(total, sizeof(*by_cookie));
		assert_non_null(by_cookie);
		for (size_t k = 0; k < h->acks.count; k++) {
			struct ack_rec *a = &h->acks.v[k];
			assert_int_equal(a->error, 0);
			assert_true(a->cookie < total && by_cookie[a->cookie] == NULL);
			by_cookie[a->cookie] = a;
		}
		for (uint32_t c = 0; c < total; c++) {
			const struct ack_rec *a = by_cookie[c];
			uint32_t part = a->token.partition;
			assert_true(part < 4);
			if (seen[part] && a->token.offset <= last[part])
				fail_msg("hook %u: event %u at %u:%llu, after one at %llu", i, c,
					 part, (unsigned long long)a->token.offset,
					 (unsigned long long)last[part]);
			seen[part] = true;
			last[part] = a->token.offset;
		}
		free(by_cookie);
		producer_close(h->p);
		acks_free(&h->acks);
	}
	fprintf(stderr, "local_publish: %llu of %llu events taken with no ring, %llu stalls\n",
		(unsigned long long)local, (unsigned long long)events, (unsigned long long)stalls);
	assert_int_equal(events, (uint64_t)HOOKS * total);
	assert_true(local > 0);  /* the direct path was taken */
	assert_true(stalls > 0); /* and own events were stalled into the ring */
	fx_close(f);
}

/* A hook that publishes one event through its own producer and polls it; the engine calls
 * that wait for a shard, made on the shard's thread from its poll and its callback. */
struct deadlock_hook {
	struct fx *f;
	struct rill_topic *t;
	struct rill_producer *p;
	bool published;
	uint32_t acked, done;
	int query_rc, flush_rc, stats_rc;
};

static void deadlock_on_ack(void *arg, const struct rill_ack *ack)
{
	struct deadlock_hook *h = arg;
	if (h->acked++ > 0)
		return;
	struct rill_projection_value v;
	h->query_rc = rill_query(h->f->engine, "dl_total", "k", 1, &ack->token, 0, &v);
	h->flush_rc = rill_producer_flush(h->p, 0);
}

static unsigned deadlock_poll(void *arg)
{
	struct deadlock_hook *h = arg;
	if (__atomic_load_n(&h->done, __ATOMIC_ACQUIRE))
		return 0;
	if (!h->published) {
		struct rill_shard_stats st;
		h->stats_rc = rill_engine_shard_stats(h->f->engine, 0, &st);
		struct order_event o;
		if (order_event_make(&o, h->f->order, "k", 1) == 0 &&
		    rill_publish(h->p, h->t, &o.ev, RILL_ACKS_APPLIED, 1) == 0)
			h->published = true;
	}
	int n = rill_producer_poll(h->p, 0);
	if (h->acked > 0)
		__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
	return n > 0 ? (unsigned)n : 0;
}

/*
 * On a shard's thread, in a hook and in the callbacks of the producer it polls, the calls
 * that wait for a shard return -EDEADLK: a query, a flush, the shard statistics.
 *
 * WAS A BUG (engine/shard.c, shard_call): rill.h let a callback query, but a callback of a
 * producer polled in a hook runs on the shard's thread, where shard_call's
 * RILL_ASSERT(shard_self == NULL) aborted the process.
 */
static void test_shard_thread_calls_refused(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct deadlock_hook h = {.f = f, .query_rc = 1, .flush_rc = 1, .stats_rc = 1};
	h.t = fx_topic(f, "dl", 1, RILL_DURABILITY_NONE);
	fx_projection(f, "dl_total", "dl", RILL_PROJECTION_SUM, "amount");
	struct rill_producer_config pc = {.on_ack = deadlock_on_ack, .arg = &h};
	assert_int_equal(rill_producer_open(f->engine, &pc, &h.p), 0);
	struct rill_shard_hook hook = {.poll = deadlock_poll, .arg = &h, .nap_ns = 1000000};
	assert_int_equal(rill_engine_shard_hook_add(f->engine, 0, &hook), 0);
	uint64_t deadline = rill_clock_now_ns() + FLUSH_NS;
	while (!__atomic_load_n(&h.done, __ATOMIC_ACQUIRE) && rill_clock_now_ns() < deadline)
		nap_ns(1000000);
	assert_int_equal(rill_engine_shard_hook_remove(f->engine, 0, &h), 0);
	assert_int_equal(h.acked, 1);
	assert_int_equal(h.stats_rc, -EDEADLK);
	assert_int_equal(h.query_rc, -EDEADLK);
	assert_int_equal(h.flush_rc, -EDEADLK);
	producer_close(h.p); /* back on a host thread */
	fx_close(f);
}

/* ---- The data directory's folders: missing ones refused, not made anew ------------------ */

/* Publish @count Orders to partition-spreading keys of @t, applied. */
static void meta_publish(struct fx *f, struct rill_topic *t, uint32_t count)
{
	struct rill_producer *p = producer_open(f, 0, NULL);
	struct order_event o;
	for (uint32_t i = 0; i < count; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%u", i);
		assert_int_equal(order_event_make(&o, f->order, key, 100 + i), 0);
		assert_int_equal(publish_retry(p, t, &o.ev, RILL_ACKS_APPLIED, i), 0);
	}
	flush_ok(p);
	producer_close(p);
}

/* rill_engine_open on f->dir, expected to fail with a message holding @want and @also
 * (optional). */
static void meta_open_refused(struct fx *f, const char *why, const char *want, const char *also)
{
	struct rill_engine_config c;
	fx_config(f, &c, 2);
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&f->engine, &c, &err);
	if (rc == 0) {
		fx_close(f);
		fail_msg("opened with %s", why);
	}
	f->engine = NULL;
	if (strstr(err.message, want) == NULL ||
	    (also != NULL && strstr(err.message, also) == NULL))
		fail_msg("with %s: the refusal does not say \"%s\" and \"%s\": %s", why, want,
			 also != NULL ? also : "", err.message);
}

/* Run a shell command, formatted. */
#define META_RUN(...)                                                                              \
	do {                                                                                       \
		char cmd_[512];                                                                    \
		snprintf(cmd_, sizeof(cmd_), __VA_ARGS__);                                         \
		assert_int_equal(system(cmd_), 0);                                                 \
	} while (0)

/*
 * A data directory that lost DATA/schemas (or its segments), DATA/topics,
 * DATA/projections or DATA/groups is refused at open, naming the folder and saying to
 * restore it, and nothing is made in its place. Put back, it opens as it was.
 *
 * WAS A BUG (engine/engine_meta.c, engine_meta_init; the registry's log open): each was
 * made anew, empty. A new registry handed out type id 1 again, so a type registered next
 * decoded the stored events of type 1 as its own; a lost groups/ made every consumer group
 * read from the start again; a lost topics/ emptied the engine without a word.
 */
static void test_meta_folder_missing_refused(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	uint32_t order_id = f->order_id;
	struct rill_topic *t = fx_topic(f, "pay", 2, RILL_DURABILITY_GROUP);
	meta_publish(f, t, 10);
	struct rill_partition_info info;
	assert_int_equal(rill_partition_info_get(f->engine, t, 0, UINT64_MAX, &info, NULL), 0);
	assert_int_equal(rill_group_commit(f->engine, "g1", t, 0, info.durable_offset, NULL), 0);
	fx_close(f);
	static const char *const folders[] = {"schemas", "topics", "projections", "groups"};
	for (size_t i = 0; i < ARRAY_COUNT(folders); i++) {
		char why[64], want[128];
		snprintf(why, sizeof(why), "%s missing", folders[i]);
		snprintf(want, sizeof(want), "%s/%s", f->dir, folders[i]);
		META_RUN("mv %s/%s %s/%s.away", f->dir, folders[i], f->dir, folders[i]);
		meta_open_refused(f, why, want, "restore it from a backup");
		if (fx_has(f, folders[i]))
			fail_msg("with %s: the refused open made it anew", why);
		META_RUN("mv %s/%s.away %s/%s", f->dir, folders[i], f->dir, folders[i]);
	}
	/* The registry's folder holding no segment of its log: as new, equally. */
	META_RUN("mkdir %s/schemas.away && mv %s/schemas/* %s/schemas.away/", f->dir, f->dir,
		 f->dir);
	meta_open_refused(f, "schemas/ emptied", "schemas", "restore it from a backup");
	META_RUN("mv %s/schemas.away/* %s/schemas/ && rmdir %s/schemas.away", f->dir, f->dir,
		 f->dir);
	fx_open(f);
	assert_int_equal(f->order_id, order_id);
	t = rill_topic_find(f->engine, "pay");
	assert_non_null(t);
	uint64_t o = 0;
	assert_int_equal(rill_group_offset(f->engine, "g1", t, 0, &o, NULL), 0);
	assert_int_equal(o, info.durable_offset);
	fx_close(f);
}

/*
 * A first open cut short at each of its steps (no DATA/meta yet) opens as a first open,
 * and makes what it had not: DATA/meta is written last, so no step leaves a directory
 * that looks stored with a folder missing.
 */
static void test_first_open_interrupted(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	fx_close(f);
	for (int step = 0; step < 3; step++) {
		if (step == 0) /* the lock taken, nothing made */
			META_RUN("rm -rf %s/*", f->dir);
		else if (step == 1) /* topics/, projections/ and groups/ made */
			META_RUN("rm -rf %s/meta %s/schemas", f->dir, f->dir);
		else /* all but DATA/meta made */
			META_RUN("rm %s/meta", f->dir);
		fx_open(f);
		static const char *const made[] = {"meta",   "schemas",
						   "topics", "projections",
						   "groups", "schemas/00000000000000000000.log"};
		for (size_t k = 0; k < ARRAY_COUNT(made); k++) {
			if (!fx_has(f, made[k]))
				fail_msg("step %d: a first open did not make %s", step, made[k]);
		}
		fx_close(f);
	}
}

/*
 * A first open that builds before DATA/meta was written last left unfinished: they wrote
 * meta first, then topics/, projections/ and groups/, then the registry's folder and
 * segment, so a crash or a failure (a full disk) between the steps left meta with some
 * folders missing. Such a directory never held an event: it opens, and the open finishes
 * what the first began, rather than refusing it as a directory that lost a folder.
 */
static void test_first_open_previous_unfinished(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	fx_close(f);
	for (int step = 0; step < 3; step++) {
		if (step == 0) /* meta written, nothing else */
			META_RUN("rm -rf %s/schemas %s/topics %s/projections %s/groups", f->dir,
				 f->dir, f->dir, f->dir);
		else if (step == 1) /* the three folders made, the registry not */
			META_RUN("rm -rf %s/schemas", f->dir);
		else /* the registry's folder made, its first segment not */
			META_RUN("rm -rf %s/schemas/* && touch %s/schemas/lock", f->dir, f->dir);
		fx_open(f);
		static const char *const made[] = {"topics", "projections", "groups",
						   "schemas/00000000000000000000.log"};
		for (size_t k = 0; k < ARRAY_COUNT(made); k++)
			if (!fx_has(f, made[k]))
				fail_msg("step %d: the open did not make %s", step, made[k]);
		(void)fx_topic(f, "pay", 1, RILL_DURABILITY_GROUP);
		fx_close(f);
		META_RUN("rm -rf %s/topics/pay", f->dir);
	}
}

/*
 * A topic folder without topic.json whose partitions hold events is refused, naming it:
 * the definition was lost, not a create cut short.
 *
 * WAS A BUG (engine/engine_meta.c, engine_meta_topics_load): every such folder was
 * skipped, so the topic vanished without a word, and a create of its name with other
 * settings took over its partitions, events and all.
 */
static void test_topic_json_missing_refused(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "pay", 2, RILL_DURABILITY_GROUP);
	meta_publish(f, t, 10);
	fx_close(f);
	META_RUN("mv %s/topics/pay/topic.json %s/pay.topic.json", f->dir, f->dir);
	char want[128];
	snprintf(want, sizeof(want), "%s/topics/pay/topic.json", f->dir);
	meta_open_refused(f, "topics/pay/topic.json missing, its partitions holding events", want,
			  "restore it from a backup");
	META_RUN("mv %s/pay.topic.json %s/topics/pay/topic.json", f->dir, f->dir);
	fx_open(f);
	t = rill_topic_find(f->engine, "pay");
	assert_non_null(t);
	uint64_t events = 0;
	for (uint32_t p = 0; p < 2; p++) {
		struct rill_partition_info info;
		assert_int_equal(rill_partition_info_get(f->engine, t, p, UINT64_MAX, &info, NULL),
				 0);
		events += info.next_offset;
	}
	assert_int_equal(events, 10);
	fx_close(f);
}

/*
 * A topic create cut short by a crash (its partitions' folders made, their logs empty, one
 * segment's creation torn; no topic.json) is skipped at open, and its name can be created
 * again, with other settings.
 */
static void test_topic_create_interrupted(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	fx_topic(f, "half", 2, RILL_DURABILITY_GROUP);
	fx_close(f);
	META_RUN("rm %s/topics/half/topic.json", f->dir);
	char seg[256];
	snprintf(seg, sizeof(seg), "%s/topics/half/1/00000000000000000000.log", f->dir);
	assert_int_equal(truncate(seg, 10), 0); /* a header cut short */
	fx_open(f);
	assert_null(rill_topic_find(f->engine, "half"));
	struct rill_topic *t = fx_topic(f, "half", 3, RILL_DURABILITY_NONE);
	meta_publish(f, t, 10);
	fx_close(f);
	fx_open(f);
	t = rill_topic_find(f->engine, "half");
	assert_non_null(t);
	assert_int_equal(rill_topic_partitions(t), 3);
	fx_close(f);
}

/* Write @text over group file DATA/groups/@group.json, as damage would. */
static void group_file_put(const struct fx *f, const char *group, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/groups/%s.json", f->dir, group);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/*
 * A damaged group file (cut short, not JSON, or not positions) is refused by
 * rill_group_offset and rill_group_commit, which say its path, where it went wrong and
 * what to do; the commit leaves the file as it was. Deleted, the group starts over.
 *
 * WAS A BUG (engine/engine_meta.c, meta_group_load): the read's message was dropped, so
 * the answer was "JSON does not fit the schema", naming no file; a position of another
 * type read as never committed (the consumer rereading from the start).
 */
static void test_group_file_damaged(void **state)
{
	struct fx *f = *state;
	fx_open(f);
	struct rill_topic *t = fx_topic(f, "pay", 1, RILL_DURABILITY_GROUP);
	static const struct {
		const char *text, *where;
	} damage[] = {
		{"", "line 1 column 0"},
		{"{\"pay\": {\"0\": 2", "line 1 column 15"},
		{"[]", "not a JSON object"},
		{"{\"pay\": 2}", "topic \"pay\""},
		{"{\"pay\": {\"0\": \"2\"}}", "topic \"pay\" partition \"0\""},
		{"{\"pay\": {\"0\": -1}}", "topic \"pay\" partition \"0\""},
	};
	char path[256];
	snprintf(path, sizeof(path), "%s/groups/g2.json", f->dir);
	for (size_t i = 0; i < ARRAY_COUNT(damage); i++) {
		group_file_put(f, "g2", damage[i].text);
		struct rill_error_text err = {{0}};
		uint64_t o = 0;
		int rc = rill_group_offset(f->engine, "g2", t, 0, &o, &err);
		if (rc != RILL_E_JSON_INVALID || strstr(err.message, path) == NULL ||
		    strstr(err.message, damage[i].where) == NULL ||
		    strstr(err.message, "rill group delete") == NULL)
			fail_msg("group file \"%s\": offset: %s: %s", damage[i].text,
				 rill_strerror(rc), err.message);
		memset(&err, 0, sizeof(err));
		rc = rill_group_commit(f->engine, "g2", t, 0, 0, &err);
		if (rc != RILL_E_JSON_INVALID || strstr(err.message, path) == NULL)
			fail_msg("group file \"%s\": commit: %s: %s", damage[i].text,
				 rill_strerror(rc), err.message);
		struct stat sb;
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_size, (off_t)strlen(damage[i].text)); /* left alone */
	}
	assert_int_equal(rill_group_delete(f->engine, "g2"), 0);
	assert_int_equal(rill_group_commit(f->engine, "g2", t, 0, 0, NULL), 0);
	uint64_t o = 1;
	assert_int_equal(rill_group_offset(f->engine, "g2", t, 0, &o, NULL), 0);
	assert_int_equal(o, 0);
	fx_close(f);
}

int main(void)
{
	test_seed();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_per_partition, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_retries, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_projections_fold, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restart, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_durable_acks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_query_token, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_query_token_waits, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retention_projection, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retention_on_time, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_as_of_time_at_log_start, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_rebuild, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_projection_defined_idle, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_group_offsets, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_many, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_meta_write_failure_leaves_no_temp, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_temp_files_removed_at_open, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_groups_max, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_partition_limits_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_retention, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshots_off_retention, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_damaged_newest, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_projection_limits_lowered, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_as_of_after_refused_key, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshots_kept_lowered, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_during_open, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_as_of, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_as_of_disordered, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_as_of_time_deleted_ahead, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_window_late_counted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_as_of_end_start_gone, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projection, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_topic_projections_max, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projections_defined_again, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projection_never_defined_again,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projection_late_snapshots_off, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projection_faults, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projection_restore_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_custom_projection_snapshot_longer, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_command_handlers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stage_split_in_burst, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_definitions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_topic_bad_log_config, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_topics_fit_reopened, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_projection_files_named, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_missing_partition_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_reports_final_sync, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_file_size_limit_signal, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_full_disk, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stopped_log_answers_nothing, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_inside_on_ack, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_flush_after_callback_publish, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_after_callback_publish, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_poll_inside_on_ack, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_flush_inside_on_ack, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_publish_chain_inside_on_ack, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_while_querying, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_while_opening, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_producer_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_producer_handles_server_every_shard, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_no_producer_handle, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_event_bytes_max_publishes, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_projection_under_traffic, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_busy_poll, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_shard_stats, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_projection_full, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_upcasters_before_rebuild, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_info_time_past_the_end, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_notify_producer_outlives_subscription,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_subscription_ready, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_subscriptions_per_shard, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_largest_record, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_wake_batched, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_wake_batched_durable_and_full, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_local_publish, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hook_naps, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_shard_thread_calls_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_shard_thread_names, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_io_workers_off_shard_cpu, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_spare_cpus, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_meta_folder_missing_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_first_open_interrupted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_first_open_previous_unfinished, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_topic_json_missing_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_topic_create_interrupted, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_group_file_damaged, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
