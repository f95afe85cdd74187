/*
 * kill -9 test of the whole engine through its embedding API (include/rill/rill.h), on the
 * real file system. Each round a child process opens the engine (two shards, unpinned) on
 * the same data directory, so the log keeps growing and recovery runs every round; it
 * registers a schema, creates a topic (group commit, four partitions), defines a sum and a
 * count projection over the events' i64 field, then publishes from two threads asking for
 * durable acknowledgements, and reports every durable acknowledgement on a pipe (one
 * fixed-size write each, under PIPE_BUF, so none is ever split). The parent kills it with
 * SIGKILL 2 to 200 ms after it reported itself ready to publish (or, one round in four,
 * after its fork, so that the kill may land in recovery or setup), then:
 *
 *   1. opens the engine itself (recovery must accept what the kill left) and reads both
 *      projections for every key, then closes it;
 *   2. reads every partition's log back with the internal log API (read-only), checking
 *      each record against what the child would have made for its correlation id, its
 *      partition and the order of each producer's events;
 *   3. checks that every event ever acknowledged durable is in the log at the (partition,
 *      offset) the acknowledgement named, with the key and amount the child reported, and
 *      that both projections equal a fold of the whole log, key by key;
 *   4. checks the consumer group a third child thread commits, partition by partition, to
 *      just past the child's durable acknowledgements (each commit a file rewrite, syncs
 *      and a rename that the kill may cut): the position read back is never an error,
 *      never behind the last commit reported, and never past the log's end.
 *
 * RILL_ENGINE_CRASH_ROUNDS sets the rounds (CRASH_ROUNDS_DEFAULT by default; the sanitizer
 * builds run fewer, tests/meson.build). RILL_CRASH_ROUNDS is left to the log's crash test:
 * a round here costs a whole engine open (every projection rebuilt from a log that only
 * grows), so this test's rounds scale on their own. RILL_TEST_SEED replays the event data
 * and the kill delays (not the scheduling). kill -9 does not test fdatasync (the page cache
 * survives it): the power-cut tests over the simulated disk do (tests/engine/test_log.c).
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/io.h"
#include "engine/log.h"
#include "rill/rill.h"
#include "tests/common/forked_child.h"
#include "tests/common/real_io.h"
#include "tests/common/test_dir.h"

#define CRASH_ROUNDS_DEFAULT      30u
#define CRASH_SHARDS              2u
#define CRASH_THREADS             2u /* publishing threads in the child */
#define CRASH_PARTITIONS          4u
#define CRASH_KEYS                16u
#define CRASH_KILL_US_MIN         2000u   /* the child lives at least this long */
#define CRASH_KILL_US_MAX         200000u /* and at most this long */
#define CRASH_AMOUNT_SPAN         2001    /* amounts are -1000 .. 1000 */
#define CRASH_ROUND_SHIFT         40u     /* correlation id: round, thread, sequence */
#define CRASH_THREAD_SHIFT        32u
#define CRASH_POLL_WAIT_NS        100000u /* backpressure: wait for acks this long */
#define CRASH_REPORT_BATCH        256u    /* reports read from the pipe at once */
#define CRASH_KILL_IN_OPEN_ONE_IN 4u      /* one round in this many times from the fork */
#define CRASH_READY_NS_MAX        (60ull * 1000000000u) /* the child's open and setup, at most */

#define CRASH_TOPIC     "accounts"
#define CRASH_TYPE      "Deposit"
#define CRASH_SUM_NAME  "deposit_sum"
#define CRASH_CNT_NAME  "deposit_count"
#define CRASH_KEY_BYTES 7u /* "acct-NN" */
#define CRASH_GROUP     "auditors"
#define CRASH_COMMIT_US 500u /* the committing thread's pause between passes */

#if defined(__SANITIZE_THREAD__)
#define CRASH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CRASH_TSAN 1
#endif
#endif

#ifdef CRASH_TSAN
/*
 * ThreadSanitizer and jemalloc's fork protocol, which this test's fork() runs each round:
 * jemalloc locks every mutex it has before fork (more than the 64 the deadlock detector
 * can track in one thread once the shards have made their arenas: a CHECK failure in the
 * parent) and re-initialises them in the child (pthread_mutex_init), where
 * ThreadSanitizer still sees them held, so the child's first arena creation reads as a
 * "double lock"; the child's arena creation also reads jemalloc's re-made state as racing
 * with its mmap. None of it is the engine's: for this test only (the only one that forks;
 * the engine's own races are test_engine's, under ThreadSanitizer too), lock-order
 * checking is off and reports inside jemalloc are silenced. Races elsewhere are reported.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "detect_deadlocks=0";
}

const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "mutex:libjemalloc.so\nrace:libjemalloc.so\n";
}
#endif

static const char crash_schema_json[] = "{\"type\": \"Deposit\", \"version\": 1, \"fields\": ["
					"{\"name\": \"amount\", \"type\": \"i64\"}]}";

/* Why a child stopped by itself (its exit status). */
enum crash_exit {
	CRASH_EXIT_OPEN = 3,
	CRASH_EXIT_SETUP = 4,
	CRASH_EXIT_PRODUCER = 5,
	CRASH_EXIT_PUBLISH = 6,
	CRASH_EXIT_PIPE = 7,
	CRASH_EXIT_THREAD = 8,
	CRASH_EXIT_COMMIT = 9,
};

enum crash_report_kind {
	CRASH_REPORT_DURABLE = 1, /* an acknowledgement of level DURABLE with error 0 */
	CRASH_REPORT_ERROR = 2,   /* any acknowledgement with an error: never expected */
	CRASH_REPORT_READY = 3,   /* set up (recovery and rebuilds done): publishing starts */
	CRASH_REPORT_COMMIT = 4,  /* CRASH_GROUP's position in a partition, committed */
};

/* One line of the child's report: one write() each, far below PIPE_BUF, so never split. */
struct crash_report {
	uint32_t kind;        /* enum crash_report_kind */
	uint32_t partition;   /* DURABLE: the acknowledgement's token; COMMIT: the partition */
	uint64_t offset;      /* DURABLE: the token's offset; COMMIT: the position committed */
	uint64_t correlation; /* the event: round, thread, sequence (crash_correlation) */
	int64_t amount;       /* the event's amount */
	uint32_t key;         /* the event's key index, 0 .. CRASH_KEYS - 1 */
	int32_t error;        /* ERROR: the acknowledgement's error */
	uint32_t level;       /* ERROR: the acknowledgement's level */
	uint32_t reserved;
};

/* One record read back from a partition's log. */
struct crash_entry {
	uint64_t correlation;
	int64_t amount;
	uint32_t key;
};

struct crash_part_log {
	struct crash_entry *entries; /* entries[offset] */
	uint64_t count;
	uint64_t capacity;
};

/* What a key adds up to: in a projection, in the log, in the acknowledgements. */
struct crash_total {
	uint64_t count;
	int64_t sum;
};

/* The parent's state across rounds. */
struct crash_state {
	char dir[64];
	char keys[CRASH_KEYS][CRASH_KEY_BYTES + 1];
	uint64_t rounds;
	struct test_rng rng;
	struct crash_report *acked; /* every DURABLE report of every round */
	size_t acked_count, acked_capacity;
	struct crash_part_log logs[CRASH_PARTITIONS];
	uint32_t key_partition[CRASH_KEYS]; /* from rill_topic_partition */
	uint32_t type_id;
	struct rill_schema *schema; /* parsed outside any registry: decodes the payloads */
	struct rill_field_ref amount_ref;
	struct crash_total sum_proj[CRASH_KEYS], count_proj[CRASH_KEYS], fold[CRASH_KEYS];
	int64_t *last_sequence; /* per (round, thread, partition): order of each producer */
	bool ready;             /* this round's child sent CRASH_REPORT_READY */
	uint64_t torn;          /* partitions whose tail the kill left torn */
	uint64_t kills_open;    /* rounds killed before the child was ready (open, setup) */
	uint64_t kills_quiet;   /* rounds with no durable acknowledgement */
	uint64_t committed[CRASH_PARTITIONS];  /* CRASH_GROUP's latest reported commit; 0: none */
	uint64_t group_read[CRASH_PARTITIONS]; /* its position read back after the kill */
	uint64_t commits;                      /* commits reported, every round */
};

/* The child's durable acknowledgements so far, per partition: the offset past the highest
 * (what its committing thread may commit; the partition is durable up to there). */
static uint64_t crash_child_durable_next[CRASH_PARTITIONS];

/* What a child thread needs. */
struct crash_child {
	struct rill_engine *engine;
	struct rill_topic *topic;
	const struct rill_schema *schema;
	int report_fd;
	uint64_t round;
	uint32_t thread;
};

/* splitmix64: the event data is a function of the seed and the correlation id. */
static uint64_t crash_mix(uint64_t x)
{
	x += test_seed() * 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t crash_correlation(uint64_t round, uint32_t thread, uint64_t sequence)
{
	return round << CRASH_ROUND_SHIFT | (uint64_t)thread << CRASH_THREAD_SHIFT | sequence;
}

static uint32_t crash_event_key(uint64_t correlation)
{
	return (uint32_t)(crash_mix(correlation) % CRASH_KEYS);
}

static int64_t crash_event_amount(uint64_t correlation)
{
	return (int64_t)(crash_mix(~correlation) % CRASH_AMOUNT_SPAN) - CRASH_AMOUNT_SPAN / 2;
}

static void crash_key_name(char out[CRASH_KEY_BYTES + 1], uint32_t key)
{
	snprintf(out, CRASH_KEY_BYTES + 1, "acct-%02u", key);
}

static struct rill_engine_config crash_engine_config(const char *dir)
{
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = dir;
	cfg.shards = CRASH_SHARDS;
	cfg.pin = false;
	/* Snapshots every few thousand events per partition: kills land in their writes too,
	 * and each restart loads one (a damaged or half-written one must never be trusted). */
	cfg.snapshot_interval_events = 3000;
	cfg.snapshot_interval_ns = 0;
	return cfg;
}

/*
 * The same setup in the child and the parent, every round: each step is idempotent, so it
 * finds what an earlier round left, or finishes what a killed child began. Returns 0 or
 * the first error, with @why saying which step and what it said.
 */
static int crash_setup(struct rill_engine *engine, struct rill_topic **topic,
		       const struct rill_schema **schema, char *why, size_t why_bytes)
{
	struct rill_schema_error serr = {{0}};
	int rc = rill_schema_register(rill_engine_schemas(engine), crash_schema_json,
				      strlen(crash_schema_json), -1, schema, &serr);
	if (rc != 0) {
		snprintf(why, why_bytes, "schema: %s: %s", rill_strerror(rc), serr.message);
		return rc;
	}
	struct rill_error_text err = {{0}};
	struct rill_topic_config tc = {.name = CRASH_TOPIC,
				       .partitions = CRASH_PARTITIONS,
				       .durability = RILL_DURABILITY_GROUP};
	rc = rill_topic_create(engine, &tc, topic, &err);
	if (rc != 0) {
		snprintf(why, why_bytes, "topic: %s: %s", rill_strerror(rc), err.message);
		return rc;
	}
	const struct rill_projection_def defs[] = {
		{.name = CRASH_SUM_NAME,
		 .topic = CRASH_TOPIC,
		 .type = CRASH_TYPE,
		 .kind = RILL_PROJECTION_SUM,
		 .field = "amount"},
		{.name = CRASH_CNT_NAME,
		 .topic = CRASH_TOPIC,
		 .type = CRASH_TYPE,
		 .kind = RILL_PROJECTION_COUNT},
	};
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		rc = rill_projection_define(engine, &defs[i], &err);
		if (rc != 0) {
			snprintf(why, why_bytes, "projection %s: %s: %s", defs[i].name,
				 rill_strerror(rc), err.message);
			return rc;
		}
	}
	return 0;
}

/* ---- The child ------------------------------------------------------------------------ */

static void crash_report_write(int fd, const struct crash_report *r)
{
	if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		_exit(CRASH_EXIT_PIPE);
}

/* Runs on the publishing thread, inside rill_producer_poll. */
static void crash_on_ack(void *arg, const struct rill_ack *ack)
{
	const struct crash_child *c = arg;
	if (ack->error == 0 && ack->level != RILL_ACKS_DURABLE)
		return; /* the APPLIED acknowledgement that comes first */
	struct crash_report r = {.correlation = ack->cookie,
				 .key = crash_event_key(ack->cookie),
				 .amount = crash_event_amount(ack->cookie)};
	if (ack->error != 0) {
		r.kind = CRASH_REPORT_ERROR;
		r.error = ack->error;
		r.level = (uint32_t)ack->level;
	} else {
		r.kind = CRASH_REPORT_DURABLE;
		r.partition = ack->token.partition;
		r.offset = ack->token.offset;
		uint64_t *next = &crash_child_durable_next[r.partition % CRASH_PARTITIONS];
		uint64_t seen = __atomic_load_n(next, __ATOMIC_RELAXED);
		while (r.offset + 1 > seen &&
		       !__atomic_compare_exchange_n(next, &seen, r.offset + 1, true,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	crash_report_write(c->report_fd, &r);
}

/* Commit CRASH_GROUP's position in each partition to past its durable acknowledgements,
 * as it rises, reporting each commit once it returned. Until killed; never returns. */
static void *crash_commit_thread(void *arg)
{
	const struct crash_child *c = arg;
	uint64_t committed[CRASH_PARTITIONS];
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++) {
		int rc =
			rill_group_offset(c->engine, CRASH_GROUP, c->topic, p, &committed[p], NULL);
		if (rc == -ENOENT)
			committed[p] = 0;
		else if (rc != 0)
			_exit(CRASH_EXIT_COMMIT);
	}
	for (;;) {
		for (uint32_t p = 0; p < CRASH_PARTITIONS; p++) {
			uint64_t next =
				__atomic_load_n(&crash_child_durable_next[p], __ATOMIC_RELAXED);
			if (next <= committed[p])
				continue;
			if (rill_group_commit(c->engine, CRASH_GROUP, c->topic, p, next, NULL) != 0)
				_exit(CRASH_EXIT_COMMIT);
			committed[p] = next;
			crash_report_write(c->report_fd,
					   &(struct crash_report){.kind = CRASH_REPORT_COMMIT,
								  .partition = p,
								  .offset = next});
		}
		usleep(CRASH_COMMIT_US);
	}
	return NULL;
}

/* Publish until killed. Never returns. */
static void *crash_child_thread(void *arg)
{
	struct crash_child *c = arg;
	struct rill_producer_config pc = {.on_ack = crash_on_ack, .arg = c};
	struct rill_producer *producer;
	if (rill_producer_open(c->engine, &pc, &producer) != 0)
		_exit(CRASH_EXIT_PRODUCER);
	uint8_t payload[64];
	if (rill_schema_payload_bytes_max(c->schema) > sizeof(payload))
		_exit(CRASH_EXIT_PUBLISH);
	for (uint64_t seq = 0;; seq++) {
		uint64_t corr = crash_correlation(c->round, c->thread, seq);
		char key[CRASH_KEY_BYTES + 1];
		crash_key_name(key, crash_event_key(corr));
		struct rill_payload_builder b;
		uint32_t payload_bytes;
		if (rill_payload_builder_init(&b, c->schema, payload, sizeof(payload)) != 0 ||
		    rill_payload_set_i64(&b, 0, crash_event_amount(corr)) != 0 ||
		    rill_payload_builder_finish(&b, &payload_bytes, NULL) != 0)
			_exit(CRASH_EXIT_PUBLISH);
		struct rill_event ev = {.key = key,
					.key_bytes = CRASH_KEY_BYTES,
					.type_id = rill_schema_type_id(c->schema),
					.version = 1,
					.payload = payload,
					.payload_bytes = payload_bytes,
					.correlation_id = corr};
		int rc;
		while ((rc = rill_publish(producer, c->topic, &ev, RILL_ACKS_DURABLE, corr)) ==
		       -EAGAIN)
			rill_producer_poll(producer, CRASH_POLL_WAIT_NS);
		if (rc != 0)
			_exit(CRASH_EXIT_PUBLISH);
		rill_producer_poll(producer, 0);
	}
	return NULL;
}

/* The child: open, set up, publish from CRASH_THREADS threads until killed. */
static void crash_child_main(const char *dir, uint64_t round, int report_fd)
{
	struct rill_engine_config cfg = crash_engine_config(dir);
	struct rill_error_text err = {{0}};
	struct rill_engine *engine;
	int rc = rill_engine_open(&engine, &cfg, &err);
	if (rc != 0) {
		fprintf(stderr, "engine_crash child: open: %s: %s\n", rill_strerror(rc),
			err.message);
		_exit(CRASH_EXIT_OPEN);
	}
	struct crash_child children[CRASH_THREADS];
	char why[1024];
	struct rill_topic *topic;
	const struct rill_schema *schema;
	if (crash_setup(engine, &topic, &schema, why, sizeof(why)) != 0) {
		fprintf(stderr, "engine_crash child: %s\n", why);
		_exit(CRASH_EXIT_SETUP);
	}
	crash_report_write(report_fd, &(struct crash_report){.kind = CRASH_REPORT_READY});
	pthread_t threads[CRASH_THREADS], committer;
	struct crash_child commit_child = {
		.engine = engine, .topic = topic, .report_fd = report_fd, .round = round};
	if (pthread_create(&committer, NULL, crash_commit_thread, &commit_child) != 0)
		_exit(CRASH_EXIT_THREAD);
	for (uint32_t t = 0; t < CRASH_THREADS; t++) {
		children[t] = (struct crash_child){.engine = engine,
						   .topic = topic,
						   .schema = schema,
						   .report_fd = report_fd,
						   .round = round,
						   .thread = t};
		if (pthread_create(&threads[t], NULL, crash_child_thread, &children[t]) != 0)
			_exit(CRASH_EXIT_THREAD);
	}
	for (uint32_t t = 0; t < CRASH_THREADS; t++)
		pthread_join(threads[t], NULL); /* never: the threads publish until killed */
	_exit(CRASH_EXIT_THREAD);
}

/* ---- The parent: the child's reports ------------------------------------------------- */

static void crash_acked_add(struct crash_state *st, const struct crash_report *r, uint64_t round)
{
	if (r->kind == CRASH_REPORT_READY && !st->ready) {
		st->ready = true;
		return;
	}
	if (r->kind == CRASH_REPORT_COMMIT && r->partition < CRASH_PARTITIONS) {
		if (r->offset <= st->committed[r->partition])
			fail_msg("round %llu: partition %u: commit %llu after %llu",
				 (unsigned long long)round, r->partition,
				 (unsigned long long)r->offset,
				 (unsigned long long)st->committed[r->partition]);
		st->committed[r->partition] = r->offset;
		st->commits++;
		return;
	}
	if (r->kind == CRASH_REPORT_ERROR)
		fail_msg("round %llu: event %#llx acknowledged with an error at level %u: %s",
			 (unsigned long long)round, (unsigned long long)r->correlation, r->level,
			 rill_strerror(r->error));
	if (r->kind != CRASH_REPORT_DURABLE || r->partition >= CRASH_PARTITIONS ||
	    r->key >= CRASH_KEYS)
		fail_msg("round %llu: a malformed report (kind %u, partition %u, key %u)",
			 (unsigned long long)round, r->kind, r->partition, r->key);
	if (st->acked_count == st->acked_capacity) {
		st->acked_capacity = st->acked_capacity == 0 ? 4096 : st->acked_capacity * 2;
		st->acked = realloc(st->acked, st->acked_capacity * sizeof(*st->acked));
		assert_non_null(st->acked);
	}
	st->acked[st->acked_count++] = *r;
}

/*
 * Read reports from @fd until @deadline_ns (monotonic), the end of the pipe (the child
 * gone) or, with @until_ready, the child's READY report, whichever comes first;
 * @deadline_ns 0: no time limit. A partial report read (the pipe promises none, but read()
 * may split one) is carried to the next read.
 */
static void crash_drain(struct crash_state *st, int fd, uint64_t deadline_ns, bool until_ready,
			uint64_t round)
{
	static struct crash_report buf[CRASH_REPORT_BATCH];
	static size_t held; /* bytes of a partial report at the start of buf */
	while (!(until_ready && st->ready)) {
		if (deadline_ns != 0) {
			uint64_t now_ns = rill_clock_now_ns();
			if (now_ns >= deadline_ns)
				return;
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int wait_ms = (int)((deadline_ns - now_ns + 999999u) / 1000000u);
			if (poll(&pfd, 1, wait_ms) <= 0)
				continue; /* the time is up, or a signal: look at the clock again */
		}
		ssize_t got = read(fd, (uint8_t *)buf + held, sizeof(buf) - held);
		if (got < 0 && errno == EINTR)
			continue;
		assert_true(got >= 0);
		if (got == 0) {
			assert_int_equal(held, 0); /* a report is never split */
			return;
		}
		size_t bytes = held + (size_t)got, whole = bytes / sizeof(buf[0]);
		for (size_t i = 0; i < whole; i++)
			crash_acked_add(st, &buf[i], round);
		held = bytes % sizeof(buf[0]);
		memmove(buf, &buf[whole], held);
	}
}

/* ---- The parent: the engine's view and the log's -------------------------------------- */

/* Open the engine after the kill, set up as the child does, read both projections, close. */
static void crash_engine_check(struct crash_state *st, uint64_t round)
{
	struct rill_engine_config cfg = crash_engine_config(st->dir);
	struct rill_error_text err = {{0}};
	struct rill_engine *engine;
	int rc = rill_engine_open(&engine, &cfg, &err);
	if (rc != 0)
		fail_msg("round %llu: the engine refused to open after kill -9: %s: %s",
			 (unsigned long long)round, rill_strerror(rc), err.message);
	char why[1024];
	struct rill_topic *topic;
	const struct rill_schema *schema;
	if (crash_setup(engine, &topic, &schema, why, sizeof(why)) != 0)
		fail_msg("round %llu: setting up again after kill -9: %s",
			 (unsigned long long)round, why);
	st->type_id = rill_schema_type_id(schema);
	for (uint32_t k = 0; k < CRASH_KEYS; k++) {
		st->key_partition[k] = rill_topic_partition(topic, st->keys[k], CRASH_KEY_BYTES);
		struct rill_projection_value sum = {0}, count = {0};
		int rc_sum = rill_query(engine, CRASH_SUM_NAME, st->keys[k], CRASH_KEY_BYTES, NULL,
					0, &sum);
		int rc_count = rill_query(engine, CRASH_CNT_NAME, st->keys[k], CRASH_KEY_BYTES,
					  NULL, 0, &count);
		if ((rc_sum != 0 && rc_sum != -ENOENT) || (rc_count != 0 && rc_count != -ENOENT))
			fail_msg("round %llu: query %s: %s / %s", (unsigned long long)round,
				 st->keys[k], rill_strerror(rc_sum), rill_strerror(rc_count));
		if (rc_sum == -ENOENT) /* a key never seen */
			sum = (struct rill_projection_value){0};
		if (rc_count == -ENOENT)
			count = (struct rill_projection_value){0};
		assert_false(sum.sum_overflow);
		st->sum_proj[k] = (struct crash_total){.count = sum.count, .sum = sum.i64};
		st->count_proj[k] = (struct crash_total){.count = count.count};
	}
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++) {
		rc = rill_group_offset(engine, CRASH_GROUP, topic, p, &st->group_read[p], NULL);
		if (rc == -ENOENT && st->committed[p] == 0)
			st->group_read[p] = 0; /* never committed, and none was reported */
		else if (rc != 0)
			fail_msg("round %llu: group %s, partition %u (last commit reported: %llu): "
				 "reading its position after kill -9: %s",
				 (unsigned long long)round, CRASH_GROUP, p,
				 (unsigned long long)st->committed[p], rill_strerror(rc));
	}
	rc = rill_engine_close(engine);
	if (rc != 0)
		fail_msg("round %llu: closing the engine: %s", (unsigned long long)round,
			 rill_strerror(rc));
}

static void crash_part_dir(const struct crash_state *st, uint32_t p, char *out, size_t bytes)
{
	snprintf(out, bytes, "%s/topics/%s/%u", st->dir, CRASH_TOPIC, p);
}

/*
 * Before the engine sees the directory: what would recovery cut from each partition the
 * kill left (read-only, nothing changes)? Counts the torn tails; a log refused here is a
 * failure, as the engine would have to refuse it too.
 */
static void crash_count_torn(struct crash_state *st, uint64_t round)
{
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++) {
		char dir[256];
		struct stat sb;
		crash_part_dir(st, p, dir, sizeof(dir));
		if (stat(dir, &sb) != 0)
			continue; /* killed before the topic was made */
		struct rill_io *io;
		struct rill_log *log;
		struct rill_log_recovery report;
		int rc = test_log_open_read_only(dir, &io, &log, &report);
		if (rc != 0)
			fail_msg("round %llu: partition %u as the kill left it: %s (%s)",
				 (unsigned long long)round, p, rill_strerror(rc), report.message);
		st->torn += report.truncated_bytes > 0;
		rill_log_drop(log);
		rill_io_destroy(io);
	}
}

/* Check one record read back and keep it as log[p][offset]. */
static void crash_entry_add(struct crash_state *st, uint32_t p, const struct rill_record *rec,
			    uint64_t offset, uint64_t round)
{
	struct crash_part_log *pl = &st->logs[p];
	if (offset != pl->count)
		fail_msg("round %llu: partition %u: offset %llu after %llu records",
			 (unsigned long long)round, p, (unsigned long long)offset,
			 (unsigned long long)pl->count);
	assert_int_equal(rec->type_id, st->type_id);
	assert_int_equal(rec->schema_version, 1);
	assert_int_equal(rec->key_bytes, CRASH_KEY_BYTES);
	assert_int_equal(rill_schema_validate(st->schema, rec->payload, rec->payload_bytes, NULL),
			 0);
	uint64_t corr = rec->correlation_id;
	uint32_t key = crash_event_key(corr);
	int64_t amount = rill_field_i64(rec->payload, st->amount_ref);
	if (memcmp(rec->key, st->keys[key], CRASH_KEY_BYTES) != 0 ||
	    amount != crash_event_amount(corr) || st->key_partition[key] != p)
		fail_msg("round %llu: partition %u offset %llu: event %#llx holds key %.*s, amount "
			 "%lld; the child made key %s, amount %lld, for partition %u",
			 (unsigned long long)round, p, (unsigned long long)offset,
			 (unsigned long long)corr, (int)rec->key_bytes, (const char *)rec->key,
			 (long long)amount, st->keys[key], (long long)crash_event_amount(corr),
			 st->key_partition[key]);
	/* A producer's events reach a partition in the order it published them, each once. */
	uint64_t r = corr >> CRASH_ROUND_SHIFT;
	uint64_t t = (corr >> CRASH_THREAD_SHIFT) & 0xFFu;
	int64_t seq = (int64_t)(corr & 0xFFFFFFFFu);
	assert_true(r <= round && t < CRASH_THREADS);
	int64_t *last = &st->last_sequence[(r * CRASH_THREADS + t) * CRASH_PARTITIONS + p];
	if (seq <= *last)
		fail_msg("round %llu: partition %u offset %llu: event %#llx after sequence %lld of "
			 "its producer (duplicated or out of order)",
			 (unsigned long long)round, p, (unsigned long long)offset,
			 (unsigned long long)corr, (long long)*last);
	*last = seq;
	if (pl->count == pl->capacity) {
		pl->capacity = pl->capacity == 0 ? 4096 : pl->capacity * 2;
		pl->entries = realloc(pl->entries, pl->capacity * sizeof(*pl->entries));
		assert_non_null(pl->entries);
	}
	pl->entries[pl->count++] = (struct crash_entry){corr, amount, key};
	st->fold[key].count++;
	st->fold[key].sum += amount;
}

/* Read every partition's log (the engine closed) and fold it per key. */
static void crash_logs_read(struct crash_state *st, uint64_t round)
{
	memset(st->fold, 0, sizeof(st->fold));
	for (uint64_t i = 0; i < (round + 1) * CRASH_THREADS * CRASH_PARTITIONS; i++)
		st->last_sequence[i] = -1;
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++) {
		char dir[256];
		crash_part_dir(st, p, dir, sizeof(dir));
		struct rill_io *io;
		struct rill_log *log;
		struct rill_log_recovery report;
		int rc = test_log_open_read_only(dir, &io, &log, &report);
		if (rc != 0 || report.truncated_bytes != 0)
			fail_msg("round %llu: partition %u after a clean close: %s, %llu bytes to "
				 "cut (%s)",
				 (unsigned long long)round, p, rill_strerror(rc),
				 (unsigned long long)report.truncated_bytes, report.message);
		struct rill_log_iter it;
		assert_int_equal(rill_log_iter_init(&it, log, 0), 0);
		st->logs[p].count = 0;
		struct rill_record rec;
		uint64_t offset = 0;
		while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1)
			crash_entry_add(st, p, &rec, offset, round);
		if (rc != 0)
			fail_msg("round %llu: partition %u: reading offset %llu: %s",
				 (unsigned long long)round, p, (unsigned long long)offset,
				 rill_strerror(rc));
		if (st->logs[p].count != rill_log_next_offset(log))
			fail_msg("round %llu: partition %u: %llu records read, next offset %llu",
				 (unsigned long long)round, p,
				 (unsigned long long)st->logs[p].count,
				 (unsigned long long)rill_log_next_offset(log));
		rill_log_iter_fini(&it);
		assert_int_equal(rill_log_close(log), 0);
		rill_io_destroy(io);
	}
}

/* Every event ever acknowledged durable is where its acknowledgement said, as reported. */
static void crash_check_acked(const struct crash_state *st, uint64_t round)
{
	uint64_t acked_per_key[CRASH_KEYS] = {0};
	for (size_t i = 0; i < st->acked_count; i++) {
		const struct crash_report *r = &st->acked[i];
		const struct crash_part_log *pl = &st->logs[r->partition];
		if (r->offset >= pl->count)
			fail_msg("round %llu: event %#llx (key %s, amount %lld), acknowledged "
				 "durable at partition %u offset %llu, is lost: the log ends at "
				 "%llu",
				 (unsigned long long)round, (unsigned long long)r->correlation,
				 st->keys[r->key], (long long)r->amount, r->partition,
				 (unsigned long long)r->offset, (unsigned long long)pl->count);
		const struct crash_entry *e = &pl->entries[r->offset];
		if (e->correlation != r->correlation || e->key != r->key || e->amount != r->amount)
			fail_msg("round %llu: partition %u offset %llu, acknowledged durable "
				 "as event %#llx (key %s, amount %lld), holds event %#llx (key "
				 "%s, amount %lld)",
				 (unsigned long long)round, r->partition,
				 (unsigned long long)r->offset, (unsigned long long)r->correlation,
				 st->keys[r->key], (long long)r->amount,
				 (unsigned long long)e->correlation, st->keys[e->key],
				 (long long)e->amount);
		acked_per_key[r->key]++;
	}
	for (uint32_t k = 0; k < CRASH_KEYS; k++)
		if (st->count_proj[k].count < acked_per_key[k])
			fail_msg("round %llu: key %s: the count projection says %llu; %llu "
				 "events of it were acknowledged durable",
				 (unsigned long long)round, st->keys[k],
				 (unsigned long long)st->count_proj[k].count,
				 (unsigned long long)acked_per_key[k]);
}

/* The projections the engine rebuilt equal the fold of the log, key by key. */
static void crash_check_projections(const struct crash_state *st, uint64_t round)
{
	for (uint32_t k = 0; k < CRASH_KEYS; k++) {
		const struct crash_total *f = &st->fold[k];
		if (st->sum_proj[k].count != f->count || st->sum_proj[k].sum != f->sum ||
		    st->count_proj[k].count != f->count)
			fail_msg("round %llu: key %s: the log folds to count %llu, sum %lld; the "
				 "sum projection says count %llu, sum %lld; the count projection "
				 "%llu",
				 (unsigned long long)round, st->keys[k],
				 (unsigned long long)f->count, (long long)f->sum,
				 (unsigned long long)st->sum_proj[k].count,
				 (long long)st->sum_proj[k].sum,
				 (unsigned long long)st->count_proj[k].count);
	}
}

/* The group's position: at or past the last commit reported (one in flight at the kill may
 * have landed), within the log (commits are of durable positions only). */
static void crash_check_group(const struct crash_state *st, uint64_t round)
{
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++)
		if (st->group_read[p] < st->committed[p] || st->group_read[p] > st->logs[p].count)
			fail_msg("round %llu: group %s, partition %u: position %llu after kill -9; "
				 "last commit reported %llu, log end %llu",
				 (unsigned long long)round, CRASH_GROUP, p,
				 (unsigned long long)st->group_read[p],
				 (unsigned long long)st->committed[p],
				 (unsigned long long)st->logs[p].count);
}

/* ---- The rounds ----------------------------------------------------------------------- */

/*
 * Let the child run, then kill it. One round in CRASH_KILL_IN_OPEN_ONE_IN counts the delay
 * from the fork, so the kill often lands in the child's open (recovery, projection
 * rebuilds) or setup; the others count it from the child's READY report, so it lands
 * while both threads publish, however long the open takes as the log grows.
 */
static void crash_run_child(struct crash_state *st, pid_t pid, int fd, uint64_t round)
{
	uint64_t delay_ns =
		1000u * (CRASH_KILL_US_MIN +
			 test_rng_below(&st->rng, CRASH_KILL_US_MAX - CRASH_KILL_US_MIN + 1));
	st->ready = false;
	if (test_rng_below(&st->rng, CRASH_KILL_IN_OPEN_ONE_IN) != 0) {
		/* Not ready in time: killed in open all the same. Stopped: failed below. */
		crash_drain(st, fd, rill_clock_now_ns() + CRASH_READY_NS_MAX, true, round);
	}
	/* Keep reading meanwhile: a full pipe would stall the publishers. */
	crash_drain(st, fd, rill_clock_now_ns() + delay_ns, false, round);
	int status = forked_child_kill(pid);
	crash_drain(st, fd, 0, false, round);
	if (!forked_child_killed(status))
		fail_msg("round %llu: the child stopped by itself (status %#x: exit %d; see "
			 "enum crash_exit)",
			 (unsigned long long)round, status,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void crash_round(struct crash_state *st, uint64_t round)
{
	size_t acked_before = st->acked_count;
	int fd;
	pid_t pid = forked_child_start(&fd);
	if (pid == 0)
		crash_child_main(st->dir, round, fd);
	crash_run_child(st, pid, fd, round);
	close(fd);
	st->kills_open += !st->ready;
	st->kills_quiet += st->acked_count == acked_before;

	crash_count_torn(st, round);
	crash_engine_check(st, round);
	crash_logs_read(st, round);
	crash_check_acked(st, round);
	crash_check_projections(st, round);
	crash_check_group(st, round);
}

static void crash_state_init(struct crash_state *st)
{
	memset(st, 0, sizeof(*st));
	st->rounds = test_env_u64("RILL_ENGINE_CRASH_ROUNDS", CRASH_ROUNDS_DEFAULT);
	assert_true(st->rounds < (1ull << (64 - CRASH_ROUND_SHIFT)));
	test_rng_init(&st->rng, 23);
	assert_int_equal(test_dir_make(st->dir, sizeof(st->dir), "engine-crash"), 0);
	fprintf(stderr, "engine_crash: data directory %s (left in place on failure)\n", st->dir);
	for (uint32_t k = 0; k < CRASH_KEYS; k++)
		crash_key_name(st->keys[k], k);
	struct rill_schema_error serr;
	assert_int_equal(
		rill_schema_parse(&st->schema, crash_schema_json, strlen(crash_schema_json), &serr),
		0);
	assert_int_equal(rill_schema_field_ref(st->schema, "amount", &st->amount_ref), 0);
	assert_int_equal(st->amount_ref.type, RILL_FIELD_I64);
	st->last_sequence = calloc(st->rounds * CRASH_THREADS * CRASH_PARTITIONS + 1,
				   sizeof(*st->last_sequence));
	assert_non_null(st->last_sequence);
}

static void crash_state_fini(struct crash_state *st)
{
	assert_int_equal(test_dir_remove(st->dir), 0);
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++)
		free(st->logs[p].entries);
	free(st->acked);
	free(st->last_sequence);
	rill_schema_free(st->schema);
}

static void test_kill_engine_while_publishing(void **state)
{
	(void)state;
	static struct crash_state st; /* large: keep it off the stack */
	crash_state_init(&st);
	for (uint64_t round = 0; round < st.rounds; round++)
		crash_round(&st, round);
	uint64_t events = 0;
	for (uint32_t p = 0; p < CRASH_PARTITIONS; p++)
		events += st.logs[p].count;
	fprintf(stderr,
		"engine_crash: %llu kill -9 rounds (%llu in open or setup, %llu before any durable "
		"ack), %zu events acknowledged durable, %llu in the log, %llu torn tails, %llu "
		"group commits\n",
		(unsigned long long)st.rounds, (unsigned long long)st.kills_open,
		(unsigned long long)st.kills_quiet, st.acked_count, (unsigned long long)events,
		(unsigned long long)st.torn, (unsigned long long)st.commits);
	assert_true(st.rounds == 0 || st.acked_count > 0);
	assert_true(st.rounds < 10 || st.commits > 0); /* the commits ran at all */
	crash_state_fini(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_engine_while_publishing),
	};
	test_seed();
	return cmocka_run_group_tests_name("engine_crash", tests, NULL, NULL);
}
