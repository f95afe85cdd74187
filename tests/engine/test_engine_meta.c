/*
 * Fault injection on the engine's own files: DATA/meta and its folders at a first open,
 * topic.json at rill_topic_create, a projection's definition at rill_projection_define, a
 * group's file at rill_group_commit, rill_group_commit_many and rill_group_delete. Each is written through the
 * engine's I/O layer (e->io), here a view that fails one chosen call with EIO
 * (tests/common/io_fault.h, through engine_meta_io_create). For every call the operation
 * makes, in turn: the operation fails with it (or, when the call was one whose failure it
 * may shrug off, succeeds); then the engine, and the same data directory reopened with no
 * fault, hold either the state before or the state after, never a broken one, and the
 * operation done again succeeds. A projection define is also killed (SIGKILL, in a forked
 * child) at each of its calls: the reopen works, with the projection there whole or not at
 * all. The kill -9 side of the same files under load is tests/crash/test_engine_crash.c's
 * (groups, topic creation and projections in its setup).
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "rill/rill.h"
#include "tests/common/io_fault.h"
#include "tests/common/test_dir.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RILL_TEST_TSAN_CLANG 1
#endif
#endif

#define META_CALLS_MAX 400u /* calls one operation may make; more is a runaway */
#define META_EVENTS    8u
#define META_TYPE      "Deposit"
#define META_TOPIC     "accounts"

static const char meta_schema_json[] = "{\"type\": \"Deposit\", \"version\": 1, \"fields\": ["
				       "{\"name\": \"amount\", \"type\": \"i64\"}]}";

static struct io_fault *meta_fault;       /* the open engine's view */
static uint64_t meta_arm_at = UINT64_MAX; /* arm the next view made at this call */
static bool meta_open_hit;                /* that call came (the view may be gone) */

static int meta_io_create(struct rill_io **io)
{
	struct rill_io *inner;
	int rc = rill_io_posix_create(&inner);
	if (rc < 0)
		return rc;
	rc = io_fault_create(inner, &meta_fault);
	if (rc < 0)
		return rc;
	if (meta_arm_at != UINT64_MAX) {
		io_fault_arm(meta_fault, meta_arm_at, -EIO);
		meta_fault->hit_also = &meta_open_hit;
	}
	*io = &meta_fault->io;
	return 0;
}

static int meta_setup(void **state)
{
	(void)state;
	engine_meta_io_create = meta_io_create;
	return 0;
}

static int meta_teardown(void **state)
{
	(void)state;
	engine_meta_io_create = NULL;
	return 0;
}

/* Open the engine on @dir (one shard, unpinned): 0 or its error, *@e set on 0. */
static int meta_open(const char *dir, struct rill_engine **e)
{
	struct rill_engine_config c;
	rill_engine_config_default(&c);
	c.data_dir = dir;
	c.shards = 1;
	c.pin = false;
	struct rill_error_text err = {{0}};
	meta_fault = NULL;
	return rill_engine_open(e, &c, &err);
}

static struct rill_engine *meta_open_ok(const char *dir)
{
	struct rill_engine *e = NULL;
	meta_arm_at = UINT64_MAX;
	int rc = meta_open(dir, &e);
	if (rc != 0)
		fail_msg("opening %s with no fault: %s", dir, rill_strerror(rc));
	return e;
}

/* The schema and the topic (group commit, one partition), as every test starts. */
static struct rill_topic *meta_topic(struct rill_engine *e)
{
	struct rill_schema_error serr = {{0}};
	const struct rill_schema *schema;
	int rc = rill_schema_register(rill_engine_schemas(e), meta_schema_json,
				      strlen(meta_schema_json), -1, &schema, &serr);
	if (rc != 0)
		fail_msg("schema: %s: %s", rill_strerror(rc), serr.message);
	struct rill_topic_config tc = {
		.name = META_TOPIC, .partitions = 1, .durability = RILL_DURABILITY_GROUP};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	rc = rill_topic_create(e, &tc, &t, &err);
	if (rc != 0)
		fail_msg("topic: %s: %s", rill_strerror(rc), err.message);
	return t;
}

/* Publish @n events to @t and wait until every one is durable: of key "k", or when
 * @spread of keys "k0" to "k31" (into every partition of a topic of a few). */
static void meta_publish_keys(struct rill_engine *e, struct rill_topic *t, uint32_t n, bool spread)
{
	const struct rill_schema *schema = rill_schema_get(rill_engine_schemas(e), META_TYPE, 1);
	assert_non_null(schema);
	struct rill_producer_config pc = {0};
	struct rill_producer *p;
	assert_int_equal(rill_producer_open(e, &pc, &p), 0);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t payload[64];
		struct rill_payload_builder b;
		uint32_t bytes;
		assert_int_equal(rill_payload_builder_init(&b, schema, payload, sizeof(payload)),
				 0);
		assert_int_equal(rill_payload_set_i64(&b, 0, (int64_t)i), 0);
		assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
		char key[8] = "k";
		if (spread)
			snprintf(key, sizeof(key), "k%u", i % 32);
		struct rill_event ev = {.key = key,
					.key_bytes = (uint32_t)strlen(key),
					.type_id = rill_schema_type_id(schema),
					.version = 1,
					.payload = payload,
					.payload_bytes = bytes};
		int rc;
		while ((rc = rill_publish(p, t, &ev, RILL_ACKS_DURABLE, i)) == -EAGAIN)
			rill_producer_poll(p, 1000000);
		assert_int_equal(rc, 0);
	}
	for (int i = 0; i < 10000 && rill_producer_acks_owed(p) > 0; i++)
		rill_producer_poll(p, 1000000);
	assert_int_equal(rill_producer_acks_owed(p), 0);
	assert_int_equal(rill_producer_close(p), 0);
}

static void meta_publish(struct rill_engine *e, struct rill_topic *t, uint32_t n)
{
	meta_publish_keys(e, t, n, false);
}

/* Group "g"'s position in partition 0: the value, or UINT64_MAX for "never committed". */
static uint64_t meta_group(struct rill_engine *e, struct rill_topic *t)
{
	uint64_t next = 0;
	int rc = rill_group_offset(e, "g", t, 0, &next, NULL);
	if (rc == -ENOENT)
		return UINT64_MAX;
	if (rc != 0)
		fail_msg("reading group g: %s", rill_strerror(rc));
	return next;
}

/*
 * Run @op on a fresh data directory for each call index in turn, failing that call, until
 * the operation runs whole without reaching it. @op gets the directory and the index, and
 * returns whether the fault was reached.
 */
static void meta_each_call(bool (*op)(const char *dir, uint64_t at), const char *what)
{
	uint64_t at;
	for (at = 0; at < META_CALLS_MAX; at++) {
		char dir[64];
		assert_int_equal(test_dir_make(dir, sizeof(dir), "engine-meta"), 0);
		bool hit = op(dir, at);
		assert_int_equal(test_dir_remove(dir), 0);
		if (!hit)
			break;
	}
	if (at == META_CALLS_MAX)
		fail_msg("%s: still reaching its fault at call %u", what, META_CALLS_MAX);
	fprintf(stderr, "engine_meta: %s: %llu calls each failed in turn\n", what,
		(unsigned long long)at);
}

/* A group commit: the position before (3) or after (7), never an error; 7 if it said so. */
static bool meta_commit_at(const char *dir, uint64_t at)
{
	struct rill_engine *e = meta_open_ok(dir);
	struct rill_topic *t = meta_topic(e);
	meta_publish(e, t, META_EVENTS);
	assert_int_equal(rill_group_commit(e, "g", t, 0, 3, NULL), 0);
	io_fault_arm(meta_fault, at, -EIO);
	int rc = rill_group_commit(e, "g", t, 0, 7, NULL);
	bool hit = meta_fault->hit;
	io_fault_disarm(meta_fault);
	if (!hit)
		assert_int_equal(rc, 0);
	if (rc != 0 && rc != -EIO)
		fail_msg("commit, call %llu failed: %s", (unsigned long long)at, rill_strerror(rc));
	uint64_t seen = meta_group(e, t);
	if (seen != 7 && (rc == 0 || seen != 3))
		fail_msg("commit, call %llu failed (%s): group g at %llu", (unsigned long long)at,
			 rill_strerror(rc), (unsigned long long)seen);
	assert_int_equal(rill_engine_close(e), 0);
	e = meta_open_ok(dir);
	t = meta_topic(e);
	assert_int_equal(meta_group(e, t), seen);
	assert_int_equal(rill_group_commit(e, "g", t, 0, 7, NULL), 0);
	assert_int_equal(meta_group(e, t), 7);
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static void test_group_commit_faults(void **state)
{
	(void)state;
	meta_each_call(meta_commit_at, "group commit");
}

#define META_WIDE_PARTS 4u

/* Topic "wide" of META_WIDE_PARTS partitions (after meta_topic: its schema), as made at a
 * first call and found again after a reopen. */
static struct rill_topic *meta_wide(struct rill_engine *e)
{
	struct rill_topic_config tc = {
		.name = "wide", .partitions = META_WIDE_PARTS, .durability = RILL_DURABILITY_GROUP};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	int rc = rill_topic_create(e, &tc, &t, &err);
	if (rc != 0)
		fail_msg("topic wide: %s: %s", rill_strerror(rc), err.message);
	return t;
}

/* Group "g"'s positions in every partition of @t, into @out (UINT64_MAX: none). */
static void meta_wide_group(struct rill_engine *e, struct rill_topic *t, uint64_t *out)
{
	for (uint32_t p = 0; p < META_WIDE_PARTS; p++) {
		int rc = rill_group_offset(e, "g", t, p, &out[p], NULL);
		if (rc == -ENOENT)
			out[p] = UINT64_MAX;
		else if (rc != 0)
			fail_msg("reading group g partition %u: %s", p, rill_strerror(rc));
	}
}

/* Whether @seen is @want in every partition. */
static bool meta_wide_is(const uint64_t *seen, const struct rill_group_position *want)
{
	for (uint32_t p = 0; p < META_WIDE_PARTS; p++) {
		if (seen[want[p].partition] != want[p].next_offset)
			return false;
	}
	return true;
}

/*
 * A commit of every partition at once (rill_group_commit_many): all of them before (1) or
 * all after (each partition's durable offset), never some of each, never an error but the
 * fault's; the same after a reopen, and the commit done again goes through.
 */
static bool meta_commit_many_at(const char *dir, uint64_t at)
{
	struct rill_engine *e = meta_open_ok(dir);
	(void)meta_topic(e);
	struct rill_topic *t = meta_wide(e);
	meta_publish_keys(e, t, 64, true);
	struct rill_group_position before[META_WIDE_PARTS], after[META_WIDE_PARTS];
	for (uint32_t p = 0; p < META_WIDE_PARTS; p++) {
		struct rill_partition_info info;
		assert_int_equal(rill_partition_info_get(e, t, p, UINT64_MAX, &info, NULL), 0);
		assert_true(info.durable_offset > 1); /* the two states differ everywhere */
		before[p] = (struct rill_group_position){p, 1};
		after[p] = (struct rill_group_position){p, info.durable_offset};
	}
	assert_int_equal(rill_group_commit_many(e, "g", t, before, META_WIDE_PARTS, NULL), 0);
	io_fault_arm(meta_fault, at, -EIO);
	int rc = rill_group_commit_many(e, "g", t, after, META_WIDE_PARTS, NULL);
	bool hit = meta_fault->hit;
	io_fault_disarm(meta_fault);
	if (!hit)
		assert_int_equal(rc, 0);
	if (rc != 0 && rc != -EIO)
		fail_msg("commit many, call %llu failed: %s", (unsigned long long)at,
			 rill_strerror(rc));
	uint64_t seen[META_WIDE_PARTS];
	meta_wide_group(e, t, seen);
	bool done = meta_wide_is(seen, after);
	if (!done && (rc == 0 || !meta_wide_is(seen, before)))
		fail_msg("commit many, call %llu failed (%s): group g at %llu %llu %llu %llu",
			 (unsigned long long)at, rill_strerror(rc), (unsigned long long)seen[0],
			 (unsigned long long)seen[1], (unsigned long long)seen[2],
			 (unsigned long long)seen[3]);
	assert_int_equal(rill_engine_close(e), 0);
	e = meta_open_ok(dir);
	(void)meta_topic(e);
	t = meta_wide(e);
	uint64_t again[META_WIDE_PARTS];
	meta_wide_group(e, t, again);
	assert_memory_equal(again, seen, sizeof(seen));
	assert_int_equal(rill_group_commit_many(e, "g", t, after, META_WIDE_PARTS, NULL), 0);
	meta_wide_group(e, t, seen);
	assert_true(meta_wide_is(seen, after));
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static void test_group_commit_many_faults(void **state)
{
	(void)state;
	meta_each_call(meta_commit_many_at, "group commit of every partition");
}

/* A group delete: gone, or still at 3 if it failed; made again by the next commit. */
static bool meta_delete_at(const char *dir, uint64_t at)
{
	struct rill_engine *e = meta_open_ok(dir);
	struct rill_topic *t = meta_topic(e);
	meta_publish(e, t, META_EVENTS);
	assert_int_equal(rill_group_commit(e, "g", t, 0, 3, NULL), 0);
	io_fault_arm(meta_fault, at, -EIO);
	int rc = rill_group_delete(e, "g");
	bool hit = meta_fault->hit;
	io_fault_disarm(meta_fault);
	if (!hit)
		assert_int_equal(rc, 0);
	if (rc != 0 && rc != -EIO)
		fail_msg("delete, call %llu failed: %s", (unsigned long long)at, rill_strerror(rc));
	uint64_t seen = meta_group(e, t);
	if (seen != UINT64_MAX && (rc == 0 || seen != 3))
		fail_msg("delete, call %llu failed (%s): group g at %llu", (unsigned long long)at,
			 rill_strerror(rc), (unsigned long long)seen);
	assert_int_equal(rill_engine_close(e), 0);
	e = meta_open_ok(dir);
	t = meta_topic(e);
	assert_int_equal(meta_group(e, t), seen);
	assert_int_equal(rill_group_commit(e, "g", t, 0, 5, NULL), 0);
	assert_int_equal(meta_group(e, t), 5);
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static void test_group_delete_faults(void **state)
{
	(void)state;
	meta_each_call(meta_delete_at, "group delete");
}

/* A topic create: there whole or not at all, at once and after a reopen; then made and
 * written to. */
static bool meta_topic_at(const char *dir, uint64_t at)
{
	struct rill_engine *e = meta_open_ok(dir);
	(void)meta_topic(e);
	struct rill_topic_config tc = {
		.name = "orders", .partitions = 2, .durability = RILL_DURABILITY_GROUP};
	struct rill_error_text err = {{0}};
	struct rill_topic *t = NULL;
	io_fault_arm(meta_fault, at, -EIO);
	int rc = rill_topic_create(e, &tc, &t, &err);
	bool hit = meta_fault->hit;
	io_fault_disarm(meta_fault);
	if (!hit && rc != 0)
		fail_msg("topic create with no fault: %s: %s", rill_strerror(rc), err.message);
	if (rc != 0 && rc != -EIO)
		fail_msg("topic create, call %llu failed: %s: %s", (unsigned long long)at,
			 rill_strerror(rc), err.message);
	if (rc != 0 && err.message[0] == '\0')
		fail_msg("topic create, call %llu failed with no reason given",
			 (unsigned long long)at);
	bool made = rc == 0;
	assert_true(made == (rill_topic_find(e, "orders") != NULL));
	if (made)
		meta_publish(e, t, 2);
	assert_int_equal(rill_engine_close(e), 0);

	e = meta_open_ok(dir);
	(void)meta_topic(e);
	t = rill_topic_find(e, "orders");
	if (made && t == NULL)
		fail_msg("topic create, call %llu failed: made, then gone after a reopen",
			 (unsigned long long)at);
	memset(&err, 0, sizeof(err));
	rc = rill_topic_create(e, &tc, &t, &err);
	if (rc != 0)
		fail_msg("topic create, call %llu failed: again after a reopen: %s: %s",
			 (unsigned long long)at, rill_strerror(rc), err.message);
	meta_publish(e, t, 2);
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static void test_topic_create_faults(void **state)
{
	(void)state;
	meta_each_call(meta_topic_at, "topic create");
}

/* A projection define: there or not, at once and after a reopen; then defined and
 * answering for every event. */
static bool meta_projection_at(const char *dir, uint64_t at)
{
	struct rill_engine *e = meta_open_ok(dir);
	struct rill_topic *t = meta_topic(e);
	meta_publish(e, t, META_EVENTS);
	struct rill_projection_def d = {.name = "deposits",
					.topic = META_TOPIC,
					.type = META_TYPE,
					.kind = RILL_PROJECTION_COUNT};
	struct rill_error_text err = {{0}};
	io_fault_arm(meta_fault, at, -EIO);
	int rc = rill_projection_define(e, &d, &err);
	bool hit = meta_fault->hit;
	io_fault_disarm(meta_fault);
	if (!hit && rc != 0)
		fail_msg("projection define with no fault: %s: %s", rill_strerror(rc), err.message);
	if (rc != 0 && rc != -EIO)
		fail_msg("projection define, call %llu failed: %s: %s", (unsigned long long)at,
			 rill_strerror(rc), err.message);
	struct rill_projection_value v = {0};
	int q = rill_query(e, "deposits", "k", 1, NULL, 0, &v);
	if (rc == 0 && (q != 0 || v.count != META_EVENTS))
		fail_msg("projection define, call %llu: defined, then query %s count %llu",
			 (unsigned long long)at, rill_strerror(q), (unsigned long long)v.count);
	if (rc != 0 && q == 0)
		fail_msg("projection define, call %llu failed, yet it answers",
			 (unsigned long long)at);
	assert_int_equal(rill_engine_close(e), 0);

	e = meta_open_ok(dir);
	(void)meta_topic(e);
	memset(&v, 0, sizeof(v));
	q = rill_query(e, "deposits", "k", 1, NULL, 0, &v);
	if (rc == 0 && (q != 0 || v.count != META_EVENTS))
		fail_msg("projection define, call %llu: defined, then after a reopen query %s "
			 "count %llu",
			 (unsigned long long)at, rill_strerror(q), (unsigned long long)v.count);
	memset(&err, 0, sizeof(err));
	rc = rill_projection_define(e, &d, &err);
	if (rc != 0)
		fail_msg("projection define, call %llu failed: again after a reopen: %s: %s",
			 (unsigned long long)at, rill_strerror(rc), err.message);
	memset(&v, 0, sizeof(v));
	assert_int_equal(rill_query(e, "deposits", "k", 1, NULL, 0, &v), 0);
	assert_int_equal(v.count, META_EVENTS);
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static void test_projection_define_faults(void **state)
{
	(void)state;
	meta_each_call(meta_projection_at, "projection define");
}

/*
 * A kill -9 at each call a projection define makes to the engine's own files, in a forked
 * child (the view kills it, io_fault_arm_crash), then the data directory reopened. Twice:
 *
 *   - a define whose build fails: "q", whose state a partition snapshot holds with 32 keys
 *     (defined under a larger projection_keys_max, its definition then removed, as
 *     docs/FORMAT.md allows for projections/), now defined under a limit of 16 keys. It
 *     once stored its definition, failed its build, removed the definition: killed between
 *     the two, it left a definition that could never build, which failed every later open
 *     ("more than projection_keys_max") until removed by hand. Now: never answered, never
 *     stored: the reopen works, "q" undefined, no file of it left.
 *   - a define whose build succeeds: "r", whose build also writes the partition's snapshot
 *     holding its state before its definition is stored. Killed before that, the reopen
 *     finds a snapshot holding a projection not defined: it opens all the same, and "r"
 *     defined again answers from its state or a rebuild, never from another's.
 */
#define META_CRASH_KEYS      32u /* distinct keys "k0".."k31" in partition 0 */
#define META_CRASH_KEYS_MAX  16u /* the limit the child defines under: fewer */
#define META_CRASH_NOT_HIT   0   /* the child's exit: the define ran whole, as expected */
#define META_CRASH_ODD       3   /* the define answered what it should not have */
#define META_CRASH_NO_ENGINE 4   /* the child could not open the engine */

/* Open @dir with projection_keys_max @keys_max (0: the default): 0 or its error. */
static int meta_open_keys(const char *dir, uint32_t keys_max, struct rill_engine **e,
			  struct rill_error_text *err)
{
	struct rill_engine_config c;
	rill_engine_config_default(&c);
	c.data_dir = dir;
	c.shards = 1;
	c.pin = false;
	if (keys_max > 0)
		c.projection_keys_max = keys_max;
	meta_fault = NULL;
	return rill_engine_open(e, &c, err);
}

static const struct rill_projection_def meta_crash_q = {
	.name = "q", .topic = META_TOPIC, .type = META_TYPE, .kind = RILL_PROJECTION_COUNT};
static const struct rill_projection_def meta_crash_r = {
	.name = "r", .topic = META_TOPIC, .type = META_TYPE, .kind = RILL_PROJECTION_COUNT};

/* The directory both crash tests start from: the topic with 32 keys' events, and a
 * snapshot holding "q" over all of them, whose definition is gone. */
static void meta_crash_setup(const char *dir)
{
	struct rill_engine *e = meta_open_ok(dir);
	struct rill_topic *t = meta_topic(e);
	meta_publish_keys(e, t, META_CRASH_KEYS, true);
	struct rill_error_text err = {{0}};
	if (rill_projection_define(e, &meta_crash_q, &err) != 0) /* snapshotted at once */
		fail_msg("projection q: %s", err.message);
	assert_int_equal(rill_engine_close(e), 0);
	char path[160];
	snprintf(path, sizeof(path), "%s/projections/q.json", dir);
	assert_int_equal(unlink(path), 0);
}

/* The child: define @d at call @at killed; its exit status if it was not. */
static int meta_crash_child(const char *dir, uint64_t at, const struct rill_projection_def *d)
{
	struct rill_engine *e = NULL;
	struct rill_error_text err = {{0}};
	if (meta_open_keys(dir, META_CRASH_KEYS_MAX, &e, &err) != 0) {
		fprintf(stderr, "child: open: %s\n", err.message);
		return META_CRASH_NO_ENGINE;
	}
	io_fault_arm_crash(meta_fault, at);
	int rc = rill_projection_define(e, d, &err);
	io_fault_disarm(meta_fault);
	bool fails = d == &meta_crash_q;
	if (fails ? rc != -ENOSPC : rc != 0) {
		fprintf(stderr, "child: define %s: %s: %s\n", d->name, rill_strerror(rc),
			err.message);
		return META_CRASH_ODD;
	}
	(void)rill_engine_close(e);
	return META_CRASH_NOT_HIT;
}

/* Whether DATA/projections/@file is there. */
static bool meta_file_there(const char *dir, const char *file)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/projections/%s", dir, file);
	return access(path, F_OK) == 0;
}

/* Projection @name counts "k0"'s one event. */
static void meta_crash_count_ok(struct rill_engine *e, const char *name, uint64_t at)
{
	struct rill_projection_value v = {0};
	int q = rill_query(e, name, "k0", 2, NULL, 0, &v);
	if (q != 0 || v.count != 1)
		fail_msg("define %s killed at call %llu: then query %s count %llu", name,
			 (unsigned long long)at, rill_strerror(q), (unsigned long long)v.count);
}

static bool meta_crash_at(const char *dir, uint64_t at, const struct rill_projection_def *d)
{
#if defined(__SANITIZE_THREAD__) || defined(RILL_TEST_TSAN_CLANG)
	/* jemalloc's fork handlers take more locks at once than ThreadSanitizer tracks (as
	 * tests/engine/test_engine.c's fx_child says): the other builds run these children. */
	(void)dir, (void)at, (void)d;
	print_message("a fork under ThreadSanitizer: skipped\n");
	skip();
#endif
	meta_crash_setup(dir);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(meta_crash_child(dir, at, d));
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	bool hit = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	if (!hit && (!WIFEXITED(status) || WEXITSTATUS(status) != META_CRASH_NOT_HIT))
		fail_msg("define %s, crash at call %llu: the child ended with status %#x", d->name,
			 (unsigned long long)at, status);

	/* The reopen, under the child's limit, never stopped by what the kill left. */
	struct rill_engine *e = NULL;
	struct rill_error_text err = {{0}};
	int rc = meta_open_keys(dir, META_CRASH_KEYS_MAX, &e, &err);
	if (rc != 0)
		fail_msg("define %s killed at call %llu: the reopen failed: %s: %s", d->name,
			 (unsigned long long)at, rill_strerror(rc), err.message);
	if (meta_file_there(dir, ".q.json.pending") || meta_file_there(dir, ".r.json.pending"))
		fail_msg("define %s killed at call %llu: a pending definition left after the "
			 "reopen",
			 d->name, (unsigned long long)at);
	struct rill_projection_value v = {0};
	if (d == &meta_crash_q) {
		/* Its build always fails: never defined, no file, and refused again alike. */
		assert_int_equal(rill_query(e, "q", "k0", 2, NULL, 0, &v), -ENOENT);
		assert_false(meta_file_there(dir, "q.json"));
		assert_int_equal(rill_projection_define(e, &meta_crash_q, &err), -ENOSPC);
	} else {
		/* Defined (the kill came after its rename) or not; either way defined again,
		 * it counts every event. */
		bool defined = rill_query(e, "r", "k0", 2, NULL, 0, &v) == 0;
		assert_true(defined == meta_file_there(dir, "r.json"));
		if (defined)
			meta_crash_count_ok(e, "r", at);
		memset(&err, 0, sizeof(err));
		rc = rill_projection_define(e, &meta_crash_r, &err);
		if (rc != 0)
			fail_msg("define r killed at call %llu: again after a reopen: %s: %s",
				 (unsigned long long)at, rill_strerror(rc), err.message);
		meta_crash_count_ok(e, "r", at);
	}
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static bool meta_crash_failing_at(const char *dir, uint64_t at)
{
	return meta_crash_at(dir, at, &meta_crash_q);
}

static bool meta_crash_building_at(const char *dir, uint64_t at)
{
	return meta_crash_at(dir, at, &meta_crash_r);
}

static void test_projection_define_crash_build_fails(void **state)
{
	(void)state;
	meta_each_call(meta_crash_failing_at, "projection define killed, its build failing");
}

static void test_projection_define_crash_build_done(void **state)
{
	(void)state;
	meta_each_call(meta_crash_building_at, "projection define killed, its build done");
}

/* A first open (the lock, DATA/meta, its folders): refused, or open; either way the next
 * open with no fault works and the engine takes a topic and events. */
static bool meta_first_open_at(const char *dir, uint64_t at)
{
	struct rill_engine *e = NULL;
	meta_arm_at = at;
	meta_open_hit = false;
	int rc = meta_open(dir, &e); /* refused, it destroyed the view */
	meta_arm_at = UINT64_MAX;
	bool hit = meta_open_hit;
	if (!hit && rc != 0)
		fail_msg("first open with no fault: %s", rill_strerror(rc));
	if (rc == 0) {
		io_fault_disarm(meta_fault);
		assert_int_equal(rill_engine_close(e), 0);
	}
	e = meta_open_ok(dir);
	struct rill_topic *t = meta_topic(e);
	meta_publish(e, t, 2);
	assert_int_equal(rill_engine_close(e), 0);
	return hit;
}

static void test_first_open_faults(void **state)
{
	(void)state;
	meta_each_call(meta_first_open_at, "first open");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_commit_faults, meta_setup,
						meta_teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_many_faults, meta_setup,
						meta_teardown),
		cmocka_unit_test_setup_teardown(test_group_delete_faults, meta_setup,
						meta_teardown),
		cmocka_unit_test_setup_teardown(test_topic_create_faults, meta_setup,
						meta_teardown),
		cmocka_unit_test_setup_teardown(test_projection_define_crash_build_fails,
						meta_setup, meta_teardown),
		cmocka_unit_test_setup_teardown(test_projection_define_crash_build_done, meta_setup,
						meta_teardown),
		cmocka_unit_test_setup_teardown(test_projection_define_faults, meta_setup,
						meta_teardown),
		cmocka_unit_test_setup_teardown(test_first_open_faults, meta_setup, meta_teardown),
	};
	test_seed();
	return cmocka_run_group_tests_name("engine_meta", tests, NULL, NULL);
}
