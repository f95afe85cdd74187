/*
 * Tests of the schema registry's durability (include/rill/schema.h, engine/schema_registry.c)
 * over the simulated file system (tests/common/io_sim.c) and the real ones: a registry
 * reopened holds the same types, ids, versions, modes and canonical definitions; under
 * power cuts, kill -9 and I/O errors every registration that returned 0 survives, a
 * version is either whole or absent, a failed storage operation stops every further
 * change, and the registry carries on after a reopen; damage to its log is refused or
 * harmless, and an entry that does not load is refused by name.
 *
 * RILL_SCHEMA_POWER_CUTS sets the simulated cuts (RILL_SCHEMA_POWER_CUTS_LONG overrides what
 * meson sets), RILL_SCHEMA_CRASH_ROUNDS the kill -9 rounds, RILL_SCHEMA_IO_ERROR_STRIDE
 * thins out the I/O-error loop and RILL_SCHEMA_DAMAGE_STRIDE the bit flips (the defaults
 * take about 5 s in a release build). RILL_SCHEMA_TRACE=1 prints what the loops do.
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "engine/io.h"
#include "engine/log.h"
#include "rill/schema.h"
#include "tests/common/forked_child.h"
#include "tests/common/io_sim.h"
#include "tests/common/real_io.h"
#include "tests/common/test_dir.h"

#define DIR_SIM "/sim/schemas"

#define DEF_BYTES_MAX   4096u
#define GEN_FIELDS_MAX  12u /* generated versions past this change only their doc */
#define MODEL_TYPES_MAX 4u  /* GenA .. GenD */

/* RILL_SCHEMA_TRACE=1: print what the loops do, to replay a failure with its seed. */
static bool trace;

/* ---- Generated definitions ------------------------------------------------------------- */

/*
 * Version @version of the generated type @type: "id" (i64) and "raw" (bytes) without
 * defaults, then one field with a default per version, of every type in turn, up to
 * GEN_FIELDS_MAX fields; later versions change only their doc. Any two versions are
 * compatible under every mode, so any mode may be set at any time. @variant != 0 gives
 * another definition of the same version (a conflict).
 */
static void gen_def(char *buf, size_t size, const char *type, uint16_t version, unsigned variant)
{
	size_t n = (size_t)snprintf(buf, size,
				    "{\"type\": \"%s\", \"version\": %u, \"doc\": \"v%u/%u\", "
				    "\"fields\": [{\"name\": \"id\", \"type\": \"i64\"}, "
				    "{\"name\": \"raw\", \"type\": \"bytes\", \"max_length\": 4}",
				    type, version, version, variant);
	for (unsigned k = 2; k <= version && k < GEN_FIELDS_MAX; k++) {
		static const char *const kinds[] = {
			"\"type\": \"i64\", \"default\": -7",
			"\"type\": \"bool\", \"default\": true",
			"\"type\": \"string\", \"max_length\": 8, \"default\": \"d\"",
			"\"type\": \"enum\", \"symbols\": [\"A\", \"B\"], \"default\": \"B\"",
			"\"type\": \"f64\", \"default\": 0.5",
			"\"type\": \"u64\", \"default\": 9",
			"\"type\": \"timestamp\", \"default\": 1700000000000000000",
		};
		n += (size_t)snprintf(buf + n, size - n, ", {\"name\": \"f%u\", %s%s}", k,
				      kinds[k % RILL_ARRAY_COUNT(kinds)],
				      k % 2 ? ", \"doc\": \"field\"" : "");
	}
	n += (size_t)snprintf(buf + n, size - n, "]}");
	RILL_ASSERT(n < size);
}

/* The canonical JSON of a definition, as rill_schema_parse and rill_schema_to_json give it. */
static char *canonical(const char *def)
{
	struct rill_schema *s;
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_parse(&s, def, strlen(def), &err);
	if (rc != 0)
		fail_msg("test definition refused: %s (%s): %s", rill_strerror(rc), err.message,
			 def);
	char *json = rill_schema_to_json(s);
	assert_non_null(json);
	rill_schema_free(s);
	return json;
}

/* Whether @reg holds @type's @version as the definition @def: NULL, or what is wrong. */
static const char *version_mismatch(struct rill_schema_registry *reg, const char *type,
				    uint16_t version, const char *def)
{
	const struct rill_schema *s = rill_schema_get(reg, type, version);
	if (s == NULL)
		return "missing";
	if (rill_schema_version(s) != version || strcmp(rill_schema_type_name(s), type) != 0)
		return "another version or type under its name";
	char *want = canonical(def);
	char *got = rill_schema_to_json(s);
	bool same = got != NULL && strcmp(want, got) == 0;
	free(want);
	free(got);
	return same ? NULL : "canonical JSON differs from the registered definition";
}

/*
 * The same for a generated version of a model type (GenA, GenB, ...), with the canonical
 * JSON of each generated definition made once: the loops check every version at every
 * reopen, and parsing them all again would be most of their time.
 */
static const char *gen_version_mismatch(struct rill_schema_registry *reg, const char *type,
					uint16_t version)
{
	static char *cache[MODEL_TYPES_MAX][RILL_SCHEMA_VERSIONS_MAX + 1]; /* reachable */
	unsigned t = (unsigned)(type[3] - 'A');
	RILL_ASSERT(strncmp(type, "Gen", 3) == 0);
	RILL_ASSERT(t < MODEL_TYPES_MAX && version <= RILL_SCHEMA_VERSIONS_MAX);
	if (cache[t][version] == NULL) {
		char def[DEF_BYTES_MAX];
		gen_def(def, sizeof(def), type, version, 0);
		cache[t][version] = canonical(def);
	}
	const struct rill_schema *s = rill_schema_get(reg, type, version);
	if (s == NULL)
		return "missing";
	if (rill_schema_version(s) != version || strcmp(rill_schema_type_name(s), type) != 0)
		return "another version or type under its name";
	char *got = rill_schema_to_json(s);
	bool same = got != NULL && strcmp(cache[t][version], got) == 0;
	free(got);
	return same ? NULL : "canonical JSON differs from the registered definition";
}

/* ---- A model of what a registry must hold ------------------------------------------------ */

struct model_type {
	char name[16];
	uint32_t type_id;     /* 0 until known */
	uint16_t acked;       /* versions 1..acked returned 0 (or were loaded by an open) */
	bool pending_version; /* acked + 1 failed: it may or may not have landed */
	int compat;           /* the mode acknowledged */
	int compat_pending;   /* a mode whose change failed, or -1 */
};

struct model {
	unsigned type_count;
	struct model_type types[MODEL_TYPES_MAX];
};

static void model_init(struct model *m, unsigned type_count)
{
	RILL_ASSERT(type_count <= MODEL_TYPES_MAX);
	memset(m, 0, sizeof(*m));
	m->type_count = type_count;
	for (unsigned t = 0; t < type_count; t++) {
		snprintf(m->types[t].name, sizeof(m->types[t].name), "Gen%c", 'A' + t);
		m->types[t].compat = RILL_COMPAT_DEFAULT;
		m->types[t].compat_pending = -1;
	}
}

struct list_seen {
	const struct model *m;
	struct rill_schema_type_info info[MODEL_TYPES_MAX];
	unsigned count;
	bool unknown;
	uint32_t last_id;
	bool out_of_order;
};

static int list_collect(void *arg, const struct rill_schema_type_info *info)
{
	struct list_seen *seen = arg;
	if (seen->count > 0 && info->type_id <= seen->last_id)
		seen->out_of_order = true;
	seen->last_id = info->type_id;
	for (unsigned t = 0; t < seen->m->type_count; t++) {
		if (strcmp(seen->m->types[t].name, info->name) == 0) {
			seen->info[t] = *info;
			seen->info[t].name = seen->m->types[t].name;
			seen->count++;
			return 0;
		}
	}
	seen->unknown = true;
	return 0;
}

/*
 * Check a freshly opened @reg against @m: every acknowledged version whole, a pending one
 * whole or absent, nothing else, ids unchanged, modes acknowledged or pending; then take
 * what it holds as acknowledged (an open makes what it loads durable). @what and @round
 * name the case in failures.
 */
static void model_check_reopened(struct model *m, struct rill_schema_registry *reg,
				 const char *what, uint64_t round)
{
	struct list_seen seen = {.m = m};
	assert_int_equal(rill_schema_list(reg, list_collect, &seen), 0);
	if (seen.unknown || seen.out_of_order)
		fail_msg("%s %llu: list gives %s", what, (unsigned long long)round,
			 seen.unknown ? "a type never registered" : "types out of id order");
	for (unsigned t = 0; t < m->type_count; t++) {
		struct model_type *mt = &m->types[t];
		const struct rill_schema *latest = rill_schema_get(reg, mt->name, 0);
		uint16_t held = latest != NULL ? rill_schema_version(latest) : 0;
		if (held < mt->acked || held > mt->acked + (mt->pending_version ? 1 : 0))
			fail_msg("%s %llu: %s holds versions 1..%u, acknowledged 1..%u%s", what,
				 (unsigned long long)round, mt->name, held, mt->acked,
				 mt->pending_version ? " (+1 pending)" : "");
		for (uint16_t v = 1; v <= held; v++) {
			const char *bad = gen_version_mismatch(reg, mt->name, v);
			if (bad != NULL)
				fail_msg("%s %llu: %s version %u: %s", what,
					 (unsigned long long)round, mt->name, v, bad);
		}
		if (held == 0) {
			if (seen.info[t].name != NULL)
				fail_msg("%s %llu: %s listed without versions", what,
					 (unsigned long long)round, mt->name);
			mt->compat = RILL_COMPAT_DEFAULT;
			mt->compat_pending = -1;
			mt->pending_version = false;
			continue;
		}
		const struct rill_schema_type_info *info = &seen.info[t];
		if (info->name == NULL || info->latest_version != held)
			fail_msg("%s %llu: %s: list disagrees with get (latest %u)", what,
				 (unsigned long long)round, mt->name, held);
		if (info->type_id == 0 || rill_schema_type_id(latest) != info->type_id ||
		    rill_schema_get_id(reg, info->type_id, held) != latest)
			fail_msg("%s %llu: %s: type id %u does not find it", what,
				 (unsigned long long)round, mt->name, info->type_id);
		if (mt->type_id != 0 && mt->type_id != info->type_id)
			fail_msg("%s %llu: %s changed type id %u -> %u", what,
				 (unsigned long long)round, mt->name, mt->type_id, info->type_id);
		if ((int)info->compat != mt->compat && (int)info->compat != mt->compat_pending)
			fail_msg("%s %llu: %s has mode %s, acknowledged %s", what,
				 (unsigned long long)round, mt->name,
				 rill_schema_compat_name(info->compat),
				 rill_schema_compat_name(mt->compat));
		if (trace)
			fprintf(stderr, "  reopened: %s v%u %s\n", mt->name, held,
				rill_schema_compat_name(info->compat));
		mt->type_id = info->type_id;
		mt->acked = held;
		mt->compat = (int)info->compat;
		mt->compat_pending = -1;
		mt->pending_version = false;
	}
	for (unsigned t = 0; t < m->type_count; t++)
		for (unsigned u = t + 1; u < m->type_count; u++)
			if (m->types[t].type_id != 0 && m->types[t].type_id == m->types[u].type_id)
				fail_msg("%s %llu: two types share id %u", what,
					 (unsigned long long)round, m->types[t].type_id);
}

/* Register the next version of type @t with @compat; updates the model. Returns the code. */
static int model_register_next(struct model *m, struct rill_schema_registry *reg, unsigned t,
			       int compat)
{
	struct model_type *mt = &m->types[t];
	char def[DEF_BYTES_MAX];
	uint16_t version = (uint16_t)(mt->acked + 1);
	gen_def(def, sizeof(def), mt->name, version, 0);
	const struct rill_schema *out = NULL;
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_register(reg, def, strlen(def), compat, &out, &err);
	if (trace)
		fprintf(stderr, "  register %s v%u compat %d: %s\n", mt->name, version, compat,
			rill_strerror(rc));
	if (rc == 0) {
		if (out == NULL || rill_schema_version(out) != version ||
		    rill_schema_get(reg, mt->name, 0) != out)
			fail_msg("register %s v%u: returned 0 without the schema", mt->name,
				 version);
		if (mt->type_id == 0)
			mt->type_id = rill_schema_type_id(out);
		if (rill_schema_type_id(out) != mt->type_id || mt->type_id == 0)
			fail_msg("register %s v%u: type id %u, expected %u", mt->name, version,
				 rill_schema_type_id(out), mt->type_id);
		mt->acked = version;
		if (compat != -1)
			mt->compat = compat;
		return 0;
	}
	if (rc == RILL_E_SCHEMA_INVALID || rc == RILL_E_SCHEMA_INCOMPATIBLE ||
	    rc == RILL_E_SCHEMA_CONFLICT)
		fail_msg("register %s v%u: %s (%s), expected 0 or a storage error", mt->name,
			 version, rill_strerror(rc), err.message);
	if (err.message[0] == '\0')
		fail_msg("register %s v%u failed (%s) without saying why", mt->name, version,
			 rill_strerror(rc));
	/* A failed registration is not there for this process, whatever the disk keeps. */
	const struct rill_schema *now = rill_schema_get(reg, mt->name, version);
	if (now != NULL)
		fail_msg("register %s v%u failed (%s) but the version is visible", mt->name,
			 version, rill_strerror(rc));
	mt->pending_version = true;
	if (compat != -1)
		mt->compat_pending = compat;
	return rc;
}

static int model_set_compat(struct model *m, struct rill_schema_registry *reg, unsigned t,
			    enum rill_schema_compat compat)
{
	struct model_type *mt = &m->types[t];
	int rc = rill_schema_set_compat(reg, mt->name, compat);
	if (trace)
		fprintf(stderr, "  set_compat %s %s: %s\n", mt->name,
			rill_schema_compat_name(compat), rill_strerror(rc));
	if (mt->acked == 0) {
		if (rc == 0)
			fail_msg("set_compat of the unregistered type %s returned 0", mt->name);
		return rc == -ENOENT ? 0 : rc;
	}
	if (rc == 0)
		mt->compat = (int)compat;
	else
		mt->compat_pending = (int)compat;
	return rc;
}

/* Requests that change nothing: the same definition again, conflicts, a check. */
static void model_idle_requests(struct model *m, struct rill_schema_registry *reg, unsigned t)
{
	struct model_type *mt = &m->types[t];
	if (mt->acked == 0)
		return;
	char def[DEF_BYTES_MAX];
	const struct rill_schema *out = NULL;
	gen_def(def, sizeof(def), mt->name, mt->acked, 0);
	int rc = rill_schema_register(reg, def, strlen(def), -1, &out, NULL);
	if (rc != 0 || out != rill_schema_get(reg, mt->name, mt->acked))
		fail_msg("the same definition of %s v%u again: %s", mt->name, mt->acked,
			 rill_strerror(rc));
	gen_def(def, sizeof(def), mt->name, mt->acked, 1);
	rc = rill_schema_register(reg, def, strlen(def), -1, NULL, NULL);
	if (rc != RILL_E_SCHEMA_CONFLICT)
		fail_msg("another definition of %s v%u: %s, expected a conflict", mt->name,
			 mt->acked, rill_strerror(rc));
	gen_def(def, sizeof(def), mt->name, (uint16_t)(mt->acked + 2), 0);
	rc = rill_schema_register(reg, def, strlen(def), -1, NULL, NULL);
	if (rc != RILL_E_SCHEMA_CONFLICT)
		fail_msg("%s v%u after v%u: %s, expected a conflict", mt->name, mt->acked + 2,
			 mt->acked, rill_strerror(rc));
	gen_def(def, sizeof(def), mt->name, (uint16_t)(mt->acked + 1), 0);
	rc = rill_schema_check(reg, def, strlen(def), -1, NULL);
	if (rc != 0)
		fail_msg("check of %s v%u: %s", mt->name, mt->acked + 1, rill_strerror(rc));
}

/* ---- Reopen ------------------------------------------------------------------------------ */

static const char *const order_defs[] = {
	"{\"type\": \"OrderPlaced\", \"version\": 1, \"doc\": \"an order\", \"fields\": ["
	"{\"name\": \"amount\", \"type\": \"i64\", \"doc\": \"in cents\"}, "
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16}, "
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]}]}",
	"{\"type\": \"OrderPlaced\", \"version\": 2, \"fields\": ["
	"{\"name\": \"amount\", \"type\": \"i64\", \"doc\": \"in cents\"}, "
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16}, "
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]}, "
	"{\"name\": \"fee\", \"type\": \"i64\", \"default\": 5}]}",
	"{\"type\": \"OrderPlaced\", \"version\": 3, \"fields\": ["
	"{\"name\": \"amount\", \"type\": \"i64\", \"doc\": \"in cents\"}, "
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16}, "
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]}, "
	"{\"name\": \"fee\", \"type\": \"i64\", \"default\": 5}, "
	"{\"name\": \"price\", \"type\": \"f64\", \"default\": 1.25}, "
	"{\"name\": \"at\", \"type\": \"timestamp\", \"default\": 0}, "
	"{\"name\": \"qty\", \"type\": \"u64\", \"default\": \"18446744073709551615\"}, "
	"{\"name\": \"rush\", \"type\": \"bool\", \"default\": false}, "
	"{\"name\": \"note\", \"type\": \"string\", \"max_length\": 32, \"default\": \"none\"}, "
	"{\"name\": \"tag\", \"type\": \"bytes\", \"max_length\": 4, \"default\": \"00ff\"}]}",
};

static const char *const user_defs[] = {
	"{\"type\": \"UserCreated\", \"version\": 1, \"fields\": ["
	"{\"name\": \"id\", \"type\": \"u64\"}, "
	"{\"name\": \"name\", \"type\": \"string\", \"max_length\": 64}]}",
	"{\"type\": \"UserCreated\", \"version\": 2, \"fields\": ["
	"{\"name\": \"id\", \"type\": \"u64\"}, "
	"{\"name\": \"name\", \"type\": \"string\", \"max_length\": 64}, "
	"{\"name\": \"email\", \"type\": \"string\", \"max_length\": 128, \"default\": \"\"}]}",
};

static const char ping_def[] = "{\"type\": \"Ping\", \"version\": 1, \"fields\": ["
			       "{\"name\": \"at\", \"type\": \"timestamp\"}]}";

struct snapshot_type {
	const char *name;
	uint32_t type_id;
	uint16_t latest;
	enum rill_schema_compat compat;
	char *json[4]; /* canonical JSON of versions 1..latest (latest <= 4) */
};

struct snapshot {
	struct snapshot_type types[3];
	unsigned count;
};

static int snapshot_collect(void *arg, const struct rill_schema_type_info *info)
{
	struct snapshot *snap = arg;
	if (snap->count == RILL_ARRAY_COUNT(snap->types) || info->latest_version > 4)
		return -E2BIG;
	struct snapshot_type *t = &snap->types[snap->count++];
	t->name = info->name;
	t->type_id = info->type_id;
	t->latest = info->latest_version;
	t->compat = info->compat;
	return 0;
}

static void snapshot_take(struct snapshot *snap, struct rill_schema_registry *reg)
{
	memset(snap, 0, sizeof(*snap));
	assert_int_equal(rill_schema_list(reg, snapshot_collect, snap), 0);
	for (unsigned i = 0; i < snap->count; i++) {
		struct snapshot_type *t = &snap->types[i];
		t->name = strdup(t->name); /* the registry's string dies with it */
		for (uint16_t v = 1; v <= t->latest; v++) {
			const struct rill_schema *s = rill_schema_get(reg, t->name, v);
			assert_non_null(s);
			assert_int_equal(rill_schema_type_id(s), t->type_id);
			assert_ptr_equal(rill_schema_get_id(reg, t->type_id, v), s);
			t->json[v - 1] = rill_schema_to_json(s);
			assert_non_null(t->json[v - 1]);
		}
	}
}

static void snapshot_equal(const struct snapshot *a, const struct snapshot *b)
{
	assert_int_equal(a->count, b->count);
	for (unsigned i = 0; i < a->count; i++) {
		const struct snapshot_type *x = &a->types[i], *y = &b->types[i];
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->type_id, y->type_id);
		assert_int_equal(x->latest, y->latest);
		assert_int_equal(x->compat, y->compat);
		for (uint16_t v = 0; v < x->latest; v++)
			assert_string_equal(x->json[v], y->json[v]);
	}
}

static void snapshot_free(struct snapshot *snap)
{
	for (unsigned i = 0; i < snap->count; i++) {
		free((char *)snap->types[i].name);
		for (unsigned v = 0; v < 4; v++)
			free(snap->types[i].json[v]);
	}
}

static int upcast_nothing(void *arg, const struct rill_schema *from, const void *payload,
			  uint32_t payload_bytes, struct rill_payload_builder *to)
{
	(void)arg, (void)from, (void)payload, (void)payload_bytes, (void)to;
	return 0;
}

static void register_ok(struct rill_schema_registry *reg, const char *def, int compat)
{
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_register(reg, def, strlen(def), compat, NULL, &err);
	if (rc != 0)
		fail_msg("register refused: %s (%s): %s", rill_strerror(rc), err.message, def);
}

/* Three types, several versions, modes set both ways, an upcaster that must not persist. */
static void fill_reopen_registry(struct rill_schema_registry *reg)
{
	for (size_t i = 0; i < RILL_ARRAY_COUNT(order_defs); i++)
		register_ok(reg, order_defs[i], -1);
	register_ok(reg, user_defs[0], RILL_COMPAT_FULL);
	register_ok(reg, ping_def, RILL_COMPAT_NONE);
	register_ok(reg, user_defs[1], -1);
	assert_int_equal(rill_schema_set_compat(reg, "OrderPlaced", RILL_COMPAT_FORWARD_TRANSITIVE),
			 0);
	assert_int_equal(rill_schema_set_compat(reg, "UserCreated", RILL_COMPAT_FULL_TRANSITIVE),
			 0);
	assert_int_equal(rill_schema_set_compat(reg, "Missing", RILL_COMPAT_NONE), -ENOENT);
	assert_int_equal(rill_schema_upcaster_add(reg, "OrderPlaced", 1, upcast_nothing, NULL), 0);
	assert_int_equal(rill_schema_upcaster_add(reg, "OrderPlaced", 1, upcast_nothing, NULL),
			 -EEXIST);
}

static void check_reopened(struct rill_schema_registry *reg, const struct snapshot *before)
{
	struct snapshot after;
	snapshot_take(&after, reg);
	snapshot_equal(before, &after);
	assert_int_equal(after.count, 3);
	snapshot_free(&after);
	assert_int_equal(before->types[0].compat, RILL_COMPAT_FORWARD_TRANSITIVE);
	assert_int_equal(before->types[1].compat, RILL_COMPAT_FULL_TRANSITIVE);
	assert_int_equal(before->types[2].compat, RILL_COMPAT_NONE);
	/* Upcasters are code: not stored, so the step is free again after the reopen. */
	assert_int_equal(rill_schema_upcaster_add(reg, "OrderPlaced", 1, upcast_nothing, NULL), 0);
	/* The reloaded registry knows its definitions: the same again is the same schema,
	 * another under a taken version a conflict. */
	static const char other_v2[] = "{\"type\": \"OrderPlaced\", \"version\": 2, \"fields\": ["
				       "{\"name\": \"amount\", \"type\": \"i64\"}]}";
	assert_int_equal(rill_schema_register(reg, other_v2, strlen(other_v2), -1, NULL, NULL),
			 RILL_E_SCHEMA_CONFLICT);
	const struct rill_schema *s = NULL;
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_register(reg, order_defs[1], strlen(order_defs[1]), -1, &s, &err);
	if (rc != 0)
		fail_msg("the same definition of OrderPlaced v2 again after a reopen: %s (%s)",
			 rill_strerror(rc), err.message);
	assert_ptr_equal(s, rill_schema_get(reg, "OrderPlaced", 2));
	rc = rill_schema_register(reg, ping_def, strlen(ping_def), -1, &s, &err);
	if (rc != 0)
		fail_msg("the same definition of Ping v1 again after a reopen: %s (%s)",
			 rill_strerror(rc), err.message);
	assert_ptr_equal(s, rill_schema_get(reg, "Ping", 1));
}

static void test_reopen_sim(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 1), 0);
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err), 0);
	fill_reopen_registry(reg);
	struct snapshot before;
	snapshot_take(&before, reg);
	assert_int_equal(rill_schema_registry_close(reg), 0);

	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err), 0);
	check_reopened(reg, &before);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	/* Everything was durable before close returned: a power cut right after loses none. */
	io_sim_power_cut(sim);
	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err), 0);
	check_reopened(reg, &before);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	snapshot_free(&before);
	io_sim_destroy(sim);
}

/*
 * A torn tail the registry's log cuts at open is said on stderr, as a partition's is: a
 * cut is never silent (it was, for the registry).
 */
static void test_torn_tail_said(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 2), 0);
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err), 0);
	fill_reopen_registry(reg);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	/* Half a batch after the last one: garbage where a write was cut short. */
	struct rill_io *io = io_sim_io(sim);
	char path[128];
	snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 0ull);
	int handle;
	assert_int_equal(io->ops->open(io, path, 0, &handle), 0);
	uint64_t size;
	assert_int_equal(io->ops->size(io, handle, &size), 0);
	uint8_t junk[512];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(io->ops->pwrite(io, handle, junk, sizeof(junk), size), 0);
	assert_int_equal(io->ops->close(io, handle), 0);
	io_sim_sync_all(sim);
	char said[4096];
	FILE *capture = tmpfile();
	assert_non_null(capture);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
	int rc = rill_schema_registry_open(&reg, io, DIR_SIM, &err);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	assert_int_equal(rc, 0);
	rewind(capture);
	size_t n = fread(said, 1, sizeof(said) - 1, capture);
	said[n] = '\0';
	fclose(capture);
	if (strstr(said, "schema registry") == NULL || strstr(said, "512") == NULL)
		fail_msg("the cut of a torn tail went unsaid (stderr: \"%s\")", said);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	io_sim_destroy(sim);
}

static void test_reopen_posix(void **state)
{
	(void)state;
	char tmp[64];
	assert_int_equal(test_dir_make(tmp, sizeof(tmp), "schema"), 0);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/registry", tmp); /* missing: open creates it */
	struct rill_io *io;
	assert_int_equal(rill_io_posix_create(&io), 0);
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_registry_open(&reg, io, dir, &err), 0);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	fill_reopen_registry(reg);
	struct snapshot before;
	snapshot_take(&before, reg);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	rill_io_destroy(io);

	/* A new I/O backend, as a new process would have. */
	assert_int_equal(rill_io_posix_create(&io), 0);
	assert_int_equal(rill_schema_registry_open(&reg, io, dir, &err), 0);
	check_reopened(reg, &before);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	rill_io_destroy(io);
	snapshot_free(&before);
	assert_int_equal(test_dir_remove(tmp), 0);
}

/* The registry in memory only; half a storage (an I/O layer without a directory) is refused. */
static void test_open_arguments(void **state)
{
	(void)state;
	struct rill_schema_registry *reg;
	assert_int_equal(rill_schema_registry_open(&reg, NULL, NULL, NULL), 0);
	register_ok(reg, ping_def, -1);
	assert_int_equal(rill_schema_set_compat(reg, "Ping", RILL_COMPAT_FULL), 0);
	assert_non_null(rill_schema_get(reg, "Ping", 1));
	assert_int_equal(rill_schema_registry_close(reg), 0);

	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 2), 0);
	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), NULL, NULL), -EINVAL);
	assert_int_equal(rill_schema_registry_open(&reg, NULL, DIR_SIM, NULL), -EINVAL);
	io_sim_destroy(sim);
}

/* ---- Power cuts ---------------------------------------------------------------------------- */

/*
 * An I/O layer in front of the simulated one that kills the process (io_sim_crash) when
 * operation @crash_at comes, before it runs: a kill -9 in the middle of a request. (An
 * injected EIO is another thing: a failed fdatasync loses its pages for good.)
 */
struct crash_io {
	struct rill_io io;
	struct rill_io_ops ops;
	struct io_sim *sim;
	uint64_t crash_at;
};

static struct rill_io *crash_io_next(struct rill_io *io)
{
	struct crash_io *c = (struct crash_io *)io;
	if (io_sim_ops(c->sim) >= c->crash_at)
		io_sim_crash(c->sim);
	return io_sim_io(c->sim);
}

#define CRASH_IO_FORWARD(op, params, args)                                                         \
	static int crash_io_##op params                                                            \
	{                                                                                          \
		struct rill_io *inner = crash_io_next(io);                                         \
		return inner->ops->op args;                                                        \
	}
CRASH_IO_FORWARD(open, (struct rill_io * io, const char *path, unsigned flags, int *handle),
		 (inner, path, flags, handle))
CRASH_IO_FORWARD(close, (struct rill_io * io, int handle), (inner, handle))
CRASH_IO_FORWARD(lock, (struct rill_io * io, const char *path, int *handle), (inner, path, handle))
CRASH_IO_FORWARD(pread,
		 (struct rill_io * io, int handle, void *buf, size_t bytes, uint64_t offset,
		  size_t *got),
		 (inner, handle, buf, bytes, offset, got))
CRASH_IO_FORWARD(pwrite,
		 (struct rill_io * io, int handle, const void *buf, size_t bytes, uint64_t offset),
		 (inner, handle, buf, bytes, offset))
CRASH_IO_FORWARD(fsync, (struct rill_io * io, int handle), (inner, handle))
CRASH_IO_FORWARD(truncate, (struct rill_io * io, int handle, uint64_t bytes),
		 (inner, handle, bytes))
CRASH_IO_FORWARD(size, (struct rill_io * io, int handle, uint64_t *bytes), (inner, handle, bytes))
CRASH_IO_FORWARD(rename, (struct rill_io * io, const char *from, const char *to), (inner, from, to))
CRASH_IO_FORWARD(unlink, (struct rill_io * io, const char *path), (inner, path))
CRASH_IO_FORWARD(mkdir, (struct rill_io * io, const char *path), (inner, path))
CRASH_IO_FORWARD(fsync_dir, (struct rill_io * io, const char *path), (inner, path))
CRASH_IO_FORWARD(list, (struct rill_io * io, const char *path, rill_io_list_fn fn, void *arg),
		 (inner, path, fn, arg))
CRASH_IO_FORWARD(write_sync,
		 (struct rill_io * io, int handle, const void *buf, size_t bytes, uint64_t offset,
		  uint64_t token),
		 (inner, handle, buf, bytes, offset, token))
CRASH_IO_FORWARD(poll,
		 (struct rill_io * io, struct rill_io_completion *out, unsigned count,
		  uint64_t wait_ns),
		 (inner, out, count, wait_ns))

static void crash_io_destroy(struct rill_io *io)
{
	(void)io; /* the test owns both layers */
}

static void crash_io_init(struct crash_io *c, struct io_sim *sim)
{
	c->ops = (struct rill_io_ops){
		.open = crash_io_open,
		.close = crash_io_close,
		.lock = crash_io_lock,
		.pread = crash_io_pread,
		.pwrite = crash_io_pwrite,
		.fsync = crash_io_fsync,
		.truncate = crash_io_truncate,
		.size = crash_io_size,
		.rename = crash_io_rename,
		.unlink = crash_io_unlink,
		.mkdir = crash_io_mkdir,
		.fsync_dir = crash_io_fsync_dir,
		.list = crash_io_list,
		.write_sync = crash_io_write_sync,
		.poll = crash_io_poll,
		.destroy = crash_io_destroy,
	};
	c->io.ops = &c->ops;
	c->io.name = "sim-crash";
	c->sim = sim;
	c->crash_at = UINT64_MAX;
}

/* One random request of a round. Returns 0, or the error that ended the round. */
static int power_cut_step(struct model *m, struct rill_schema_registry *reg, struct test_rng *rng)
{
	unsigned t = (unsigned)test_rng_below(rng, m->type_count);
	uint64_t dice = test_rng_below(rng, 10);
	if (dice < 7) {
		int compat = test_rng_below(rng, 3) == 0 ? (int)test_rng_below(rng, 7) : -1;
		return model_register_next(m, reg, t, compat);
	}
	if (dice < 9)
		return model_set_compat(m, reg, t, (enum rill_schema_compat)test_rng_below(rng, 7));
	model_idle_requests(m, reg, t);
	return 0;
}

/*
 * Register, set modes, and cut the power (or kill -9) at random points: between requests
 * after a clean close or without one, and in the middle of one (every I/O operation fails
 * from a random index on, as when the process dies there). Reopen: everything acknowledged
 * is whole, a request cut short landed whole or not at all, and the registry goes on.
 */
static void test_power_cuts(void **state)
{
	(void)state;
	/* The sanitizer builds set RILL_SCHEMA_POWER_CUTS; _LONG overrides any build's. */
	uint64_t cuts = test_env_u64("RILL_SCHEMA_POWER_CUTS_LONG",
				     test_env_u64("RILL_SCHEMA_POWER_CUTS", 2000));
	struct test_rng rng;
	test_rng_init(&rng, 21);
	struct io_sim *sim = NULL;
	struct crash_io cio;
	struct model m;
	uint64_t acked = 0, mid = 0, fresh = 0, kills = 0;
	for (uint64_t cut = 0; cut < cuts; cut++) {
		if (sim == NULL || test_rng_below(&rng, 25) == 0) {
			io_sim_destroy(sim); /* a fresh disk now and then keeps the log small */
			assert_int_equal(io_sim_create(&sim, test_rng_next(&rng)), 0);
			crash_io_init(&cio, sim);
			model_init(&m, 3);
			fresh++;
		}
		struct rill_schema_registry *reg;
		struct rill_schema_error err = {{0}};
		int rc = rill_schema_registry_open(&reg, &cio.io, DIR_SIM, &err);
		if (rc != 0)
			fail_msg("cut %llu: reopen refused: %s (%s)", (unsigned long long)cut,
				 rill_strerror(rc), err.message);
		model_check_reopened(&m, reg, "cut", cut);
		/* Half the rounds, the process dies at a random I/O operation of the round. */
		bool killed = test_rng_below(&rng, 2) == 0;
		uint64_t kill_at = io_sim_ops(sim) + test_rng_below(&rng, 24);
		cio.crash_at = killed ? kill_at : UINT64_MAX;
		if (trace)
			fprintf(stderr, "cut %llu: ops %llu, kill at %lld\n",
				(unsigned long long)cut, (unsigned long long)io_sim_ops(sim),
				killed ? (long long)kill_at : -1ll);
		uint64_t steps = test_rng_below(&rng, 8);
		for (uint64_t s = 0; s < steps; s++) {
			rc = power_cut_step(&m, reg, &rng);
			if (rc != 0) {
				mid++;
				break;
			}
			acked++;
		}
		cio.crash_at = UINT64_MAX;
		uint64_t ending = test_rng_below(&rng, 4);
		bool clean = ending == 0 && rc == 0 && io_sim_ops(sim) < kill_at;
		if (trace)
			fprintf(stderr, "  ending %s at op %llu\n",
				clean         ? "close, power cut"
				: ending == 1 ? "kill -9"
					      : "crash, power cut",
				(unsigned long long)io_sim_ops(sim));
		if (clean) {
			rc = rill_schema_registry_close(reg);
			if (rc != 0)
				fail_msg("cut %llu: close without a fault: %s",
					 (unsigned long long)cut, rill_strerror(rc));
			io_sim_power_cut(sim);
			continue;
		}
		io_sim_crash(sim);
		(void)rill_schema_registry_close(reg); /* fails: no I/O gets through */
		if (ending == 1) {
			io_sim_restart(sim); /* kill -9 alone: the page cache survives */
			kills++;
		} else {
			io_sim_power_cut(sim);
		}
	}
	fprintf(stderr,
		"power cuts: %llu rounds (%llu kill -9 only), %llu requests acknowledged, %llu "
		"cut short, %llu fresh disks\n",
		(unsigned long long)cuts, (unsigned long long)kills, (unsigned long long)acked,
		(unsigned long long)mid, (unsigned long long)fresh);
	io_sim_destroy(sim);
}

/* ---- I/O errors ------------------------------------------------------------------------------ */

/* The workload of the I/O-error loop, as requests on a model of two types. */
struct fi_request {
	unsigned type;
	int compat;      /* register: the mode argument */
	bool set_compat; /* set the mode @compat instead of registering */
};

static const struct fi_request fi_requests[] = {
	{0, -1, false},
	{0, -1, false},
	{1, RILL_COMPAT_FULL, false},
	{0, RILL_COMPAT_NONE, false},
	{1, RILL_COMPAT_BACKWARD_TRANSITIVE, true},
	{1, -1, false},
	{0, RILL_COMPAT_FORWARD, true},
	{0, -1, false},
	{1, RILL_COMPAT_FULL_TRANSITIVE, false},
};

/*
 * Open, run the requests, close. Returns 0, or the first error; @failed_request gets the
 * index of the request that failed (-1: open or close) and *out the registry still open
 * after a failed request.
 */
static int fi_workload(struct io_sim *sim, struct model *m, int *failed_request,
		       struct rill_schema_registry **out)
{
	struct rill_schema_registry *reg;
	*failed_request = -1;
	*out = NULL;
	int rc = rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, NULL);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < RILL_ARRAY_COUNT(fi_requests); i++) {
		const struct fi_request *r = &fi_requests[i];
		rc = r->set_compat
			     ? model_set_compat(m, reg, r->type, (enum rill_schema_compat)r->compat)
			     : model_register_next(m, reg, r->type, r->compat);
		if (rc != 0) {
			*failed_request = (int)i;
			*out = reg;
			return rc;
		}
	}
	return rill_schema_registry_close(reg);
}

/* After a failed storage operation the registry changes nothing more, even once the
 * I/O layer works again. */
static void fi_check_fail_stop(struct model *m, struct rill_schema_registry *reg, const char *what)
{
	for (unsigned t = 0; t < m->type_count; t++) {
		struct model_type *mt = &m->types[t];
		char def[DEF_BYTES_MAX];
		gen_def(def, sizeof(def), mt->name, (uint16_t)(mt->acked + 1), 0);
		int rc = rill_schema_register(reg, def, strlen(def), -1, NULL, NULL);
		if (rc == 0)
			fail_msg("%s: %s v%u registered after a storage error", what, mt->name,
				 mt->acked + 1);
		if (mt->acked > 0 && rill_schema_set_compat(reg, mt->name, RILL_COMPAT_NONE) == 0)
			fail_msg("%s: mode of %s set after a storage error", what, mt->name);
	}
	char def[DEF_BYTES_MAX];
	gen_def(def, sizeof(def), "GenNew", 1, 0);
	if (rill_schema_register(reg, def, strlen(def), -1, NULL, NULL) == 0)
		fail_msg("%s: a new type registered after a storage error", what);
	/* Reads go on. */
	for (unsigned t = 0; t < m->type_count; t++)
		if (m->types[t].acked > 0 && rill_schema_get(reg, m->types[t].name, 0) == NULL)
			fail_msg("%s: %s no longer readable after a storage error", what,
				 m->types[t].name);
}

/*
 * After the fault, either the power goes, or the process dies and a new one starts on the
 * same page cache (@restart_first), reopens and registers on for a few pages before the
 * power goes. Either way, once reopened: acknowledged requests there, the rest whole or
 * absent; the registry takes the next version of every type, durably.
 */
static void fi_check_after(struct io_sim *sim, struct model *m, const char *what, uint64_t index,
			   bool restart_first)
{
	if (restart_first)
		io_sim_restart(sim); /* kill -9: clears the fault, keeps the page cache */
	else
		io_sim_power_cut(sim); /* also clears the fault */
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err);
	if (rc != 0)
		fail_msg("%s at op %llu: reopen refused: %s (%s)", what, (unsigned long long)index,
			 rill_strerror(rc), err.message);
	model_check_reopened(m, reg, what, index);
	unsigned more = restart_first ? 8 : 1; /* 8 batches of 512 bytes fill a 4 KiB page */
	for (unsigned i = 0; i < more; i++) {
		for (unsigned t = 0; t < m->type_count; t++) {
			rc = model_register_next(m, reg, t, -1);
			if (rc != 0)
				fail_msg("%s at op %llu: the reopened registry refuses %s: %s",
					 what, (unsigned long long)index, m->types[t].name,
					 rill_strerror(rc));
		}
	}
	assert_int_equal(rill_schema_registry_close(reg), 0);
	io_sim_power_cut(sim);
	rc = rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err);
	if (rc != 0)
		fail_msg("%s at op %llu%s, then a power cut: reopen refused: %s (%s)", what,
			 (unsigned long long)index, restart_first ? ", more requests" : "",
			 rill_strerror(rc), err.message);
	model_check_reopened(m, reg, what, index);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

/*
 * SQLite's I/O-error loop: fail the Nth I/O operation of the workload, for every N, once
 * and for good, with EIO and ENOSPC. Each request returns 0 or an error; after an error the
 * registry is fail-stop; after a power cut (straight away, or with @restart_first after a
 * kill -9 and a new process that registers on) every acknowledged request is there.
 */
static void io_error_loop(bool restart_first)
{
	struct io_sim *sim;
	struct model m;
	int failed;
	struct rill_schema_registry *reg;
	assert_int_equal(io_sim_create(&sim, 7), 0);
	model_init(&m, 2);
	assert_int_equal(fi_workload(sim, &m, &failed, &reg), 0);
	uint64_t total_ops = io_sim_ops(sim);
	io_sim_destroy(sim);

	uint64_t stride = test_env_u64("RILL_SCHEMA_IO_ERROR_STRIDE", 1);
	uint64_t runs = 0, failed_runs = 0, request_failures = 0;
	for (uint64_t run = 0; run < 4 * (total_ops + 1); run += stride) {
		uint64_t index = run / 4; /* the operation; then the variant: */
		bool always = run & 1;
		int error = run & 2 ? ENOSPC : EIO;
		char what[96];
		snprintf(what, sizeof(what), "%s %s%s", strerror(error),
			 always ? "for good" : "once", restart_first ? ", then kill -9" : "");
		assert_int_equal(io_sim_create(&sim, run), 0);
		io_sim_fail_at(sim, index, error, always);
		model_init(&m, 2);
		int rc = fi_workload(sim, &m, &failed, &reg);
		failed_runs += rc != 0;
		if (reg != NULL) {
			request_failures++;
			io_sim_fail_at(sim, UINT64_MAX, 0, false); /* the disk works again */
			fi_check_fail_stop(&m, reg, what);
			(void)rill_schema_registry_close(reg);
		}
		fi_check_after(sim, &m, what, index, restart_first);
		io_sim_destroy(sim);
		runs++;
	}
	fprintf(stderr,
		"io error loop%s: %llu operations, %llu runs, %llu stopped by the fault (%llu in "
		"a request)\n",
		restart_first ? " with kill -9" : "", (unsigned long long)total_ops,
		(unsigned long long)runs, (unsigned long long)failed_runs,
		(unsigned long long)request_failures);
	assert_true(request_failures > 0); /* the faults did land in requests */
}

static void test_io_error_loop(void **state)
{
	(void)state;
	io_error_loop(false);
}

/*
 * The same, but the process dies after the fault and a new one goes on before the power
 * goes. Linux marks the pages of a failed fdatasync clean without writing them (io_sim does
 * too): the new process sees the failed version in the page cache, and the log must not
 * take it for durable (it will never reach the disk by a mere fdatasync).
 */
static void test_io_error_then_restart(void **state)
{
	(void)state;
	io_error_loop(true);
}

/* The mode of @type in @reg, or -1 when it is not there. */
static int type_mode(struct rill_schema_registry *reg, const char *type)
{
	struct model m;
	model_init(&m, 1);
	struct list_seen seen = {.m = &m};
	snprintf(m.types[0].name, sizeof(m.types[0].name), "%s", type);
	assert_int_equal(rill_schema_list(reg, list_collect, &seen), 0);
	return seen.info[0].name != NULL ? (int)seen.info[0].compat : -1;
}

/*
 * A registration that changes the type's mode is one change: after the process dies at any
 * I/O operation of it and the power goes, the new version and its mode are both there or
 * both absent. (Here the version breaks the old mode, BACKWARD: stored without its mode,
 * the registry would hold a version its own mode refuses.)
 */
static void test_register_with_mode_is_atomic(void **state)
{
	(void)state;
	static const char v1[] = "{\"type\": \"Atomic\", \"version\": 1, \"fields\": ["
				 "{\"name\": \"a\", \"type\": \"i64\"}]}";
	static const char v2[] = "{\"type\": \"Atomic\", \"version\": 2, \"fields\": ["
				 "{\"name\": \"b\", \"type\": \"bool\"}]}";
	uint64_t halves = 0;
	char first_half[160] = "";
	for (uint64_t k = 0; k < 8; k++) {
		for (uint64_t seed = 0; seed < 8; seed++) {
			struct io_sim *sim;
			assert_int_equal(io_sim_create(&sim, k * 8 + seed), 0);
			struct crash_io cio;
			crash_io_init(&cio, sim);
			struct rill_schema_registry *reg;
			assert_int_equal(rill_schema_registry_open(&reg, &cio.io, DIR_SIM, NULL),
					 0);
			register_ok(reg, v1, -1);
			cio.crash_at = io_sim_ops(sim) + k;
			int rc = rill_schema_register(reg, v2, strlen(v2), RILL_COMPAT_NONE, NULL,
						      NULL);
			io_sim_crash(sim);
			(void)rill_schema_registry_close(reg);
			io_sim_power_cut(sim);
			struct rill_schema_error err = {{0}};
			int open_rc =
				rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err);
			if (open_rc != 0)
				fail_msg("death at I/O op %llu of the request: reopen refused: %s "
					 "(%s)",
					 (unsigned long long)k, rill_strerror(open_rc),
					 err.message);
			bool has_v2 = rill_schema_get(reg, "Atomic", 2) != NULL;
			int mode = type_mode(reg, "Atomic");
			if (rc == 0 && !has_v2)
				fail_msg("death at I/O op %llu: acknowledged v2 lost",
					 (unsigned long long)k);
			if (has_v2 != (mode == RILL_COMPAT_NONE) && halves++ == 0)
				snprintf(first_half, sizeof(first_half),
					 "death at I/O op %llu (register returned %s): after the "
					 "power "
					 "cut v2 is %s and the mode is %s",
					 (unsigned long long)k, rill_strerror(rc),
					 has_v2 ? "there" : "absent",
					 rill_schema_compat_name(mode));
			assert_int_equal(rill_schema_registry_close(reg), 0);
			io_sim_destroy(sim);
		}
	}
	if (halves > 0)
		fail_msg("%llu of 64 cases stored half the request; first: %s",
			 (unsigned long long)halves, first_half);
}

/* ---- Damage ------------------------------------------------------------------------------- */

/* A registry of two generated types, closed cleanly and synced; returns its model. */
static void build_closed_registry(struct io_sim *sim, struct model *m)
{
	model_init(m, 2);
	struct rill_schema_registry *reg;
	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, NULL), 0);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(model_register_next(m, reg, i % 2, -1), 0);
	assert_int_equal(model_set_compat(m, reg, 1, RILL_COMPAT_NONE), 0);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	io_sim_sync_all(sim);
}

/*
 * Bit flips in the registry's log after a clean close: opening must refuse it with an
 * error, or load every version intact (never a changed or half version).
 */
static void test_damaged_log(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 8), 0);
	struct model m;
	build_closed_registry(sim, &m);
	char path[256];
	snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 0ull);
	uint64_t size;
	uint8_t *data = io_sim_file_data(sim, path, &size);
	if (data == NULL)
		fail_msg("no log segment at %s: where does the registry keep its log?", path);
	uint8_t *pristine = malloc(size);
	assert_non_null(pristine);
	memcpy(pristine, data, size);
	uint64_t stride = test_env_u64("RILL_SCHEMA_DAMAGE_STRIDE", 3);
	uint64_t refused = 0, accepted = 0;
	for (uint64_t p = 0; p < size; p += stride) {
		data = io_sim_file_data(sim, path, &size);
		data[p] ^= (uint8_t)(1u << (p % 8));
		io_sim_sync_all(sim);
		struct rill_schema_registry *reg;
		struct rill_schema_error err = {{0}};
		int rc = rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err);
		if (rc == 0) {
			struct model copy = m; /* nothing pending: must hold exactly the model */
			model_check_reopened(&copy, reg, "bit flip at byte", p);
			accepted++;
			rill_schema_registry_close(reg);
		} else {
			assert_true(rc < 0);
			refused++;
		}
		data = io_sim_file_data(sim, path, &size);
		memcpy(data, pristine, size);
		io_sim_sync_all(sim);
	}
	fprintf(stderr, "damage: %llu bytes of %llu flipped, %llu refused, %llu accepted intact\n",
		(unsigned long long)(refused + accepted), (unsigned long long)size,
		(unsigned long long)refused, (unsigned long long)accepted);
	assert_true(refused > 0);
	free(pristine);
	io_sim_destroy(sim);
}

/*
 * An entry that passes the log's checks but does not load (written behind the registry's
 * back: the first record again, with another payload) makes open fail with
 * RILL_E_SCHEMA_INVALID and a message, never load half a registry.
 */
static void test_entry_that_does_not_load(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		uint32_t size;
	} payloads[] = {
		{"", 0},
		{"not json", 8},
		{"{\"type\": \"GenA\", \"version\": 1, \"fields\": [", 42},
		{"{\"type\": \"GenA\", \"version\": 1, \"fields\": [{\"name\": \"x\", \"type\": "
		 "\"int128\"}]}",
		 75},
		{"\xff\xfe\x00\x01", 4},
	};
	for (size_t i = 0; i < RILL_ARRAY_COUNT(payloads); i++) {
		struct io_sim *sim;
		assert_int_equal(io_sim_create(&sim, 30 + i), 0);
		struct model m;
		build_closed_registry(sim, &m);
		struct rill_log_config c;
		rill_log_config_default(&c);
		struct rill_log *log;
		assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
		struct rill_log_iter it;
		assert_int_equal(rill_log_iter_init(&it, log, 0), 0);
		struct rill_record rec;
		uint64_t offset;
		assert_int_equal(rill_log_iter_next(&it, &rec, &offset), 1);
		char key[RILL_KEY_BYTES_MAX];
		memcpy(key, rec.key, rec.key_bytes);
		rec.key = key;
		rec.payload = payloads[i].bytes;
		rec.payload_bytes = payloads[i].size;
		assert_int_equal(rill_log_append(log, &rec, &offset), 0);
		rill_log_iter_fini(&it);
		assert_int_equal(rill_log_close(log), 0);

		struct rill_schema_registry *reg;
		struct rill_schema_error err = {{0}};
		int rc = rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err);
		if (rc != RILL_E_SCHEMA_INVALID)
			fail_msg("stored entry %zu (\"%.*s\"): open gave %s, expected %s", i,
				 (int)payloads[i].size, payloads[i].bytes, rill_strerror(rc),
				 rill_strerror(RILL_E_SCHEMA_INVALID));
		if (err.message[0] == '\0')
			fail_msg("stored entry %zu: refused without saying which", i);
		io_sim_destroy(sim);
	}
}

/*
 * A log holding more versions of a type than the registry allows (written behind its
 * back, each entry canonical and in order) is refused at open by the entry past the limit;
 * replay once wrote past the version table instead.
 */
static void test_replay_past_the_limits(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 40), 0);
	struct rill_log_config c;
	rill_log_config_default(&c);
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (unsigned v = 1; v <= RILL_SCHEMA_VERSIONS_MAX + 1; v++) {
		char def[128];
		snprintf(def, sizeof(def),
			 "{\"type\":\"Many\",\"version\":%u,\"fields\":[{\"name\":\"a\","
			 "\"type\":\"i64\"}]}",
			 v);
		struct rill_schema *s;
		assert_int_equal(rill_schema_parse(&s, def, strlen(def), NULL), 0);
		char *canonical = rill_schema_to_json(s);
		struct rill_record rec = {.type_id = 1, /* REGISTER */
					  .key = "Many",
					  .key_bytes = 4,
					  .payload = canonical,
					  .payload_bytes = (uint32_t)strlen(canonical)};
		uint64_t offset;
		int rc;
		while ((rc = rill_log_append(log, &rec, &offset)) == -EAGAIN)
			assert_int_equal(rill_log_poll(log, 1000000), 0);
		assert_int_equal(rc, 0);
		free(canonical);
		rill_schema_free(s);
	}
	assert_int_equal(rill_log_close(log), 0);
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_registry_open(&reg, io_sim_io(sim), DIR_SIM, &err),
			 RILL_E_SCHEMA_INVALID);
	assert_non_null(strstr(err.message, "limits"));
	io_sim_destroy(sim);
}

/* ---- The registry's total size ---------------------------------------------------------- */

/*
 * Version @version of type @type: @fields i64 fields, each with a doc of @doc_bytes (0:
 * none), the same in every version (so compatible under every mode). Malloc'ed.
 */
static char *sized_def(const char *type, uint16_t version, unsigned fields, unsigned doc_bytes)
{
	size_t size = 128 + (size_t)fields * (doc_bytes + 64);
	char *buf = malloc(size);
	assert_non_null(buf);
	size_t n = (size_t)snprintf(buf, size, "{\"type\":\"%s\",\"version\":%u,\"fields\":[", type,
				    version);
	for (unsigned f = 0; f < fields; f++) {
		n += (size_t)snprintf(buf + n, size - n, "%s{\"name\":\"f%u\",\"type\":\"i64\"",
				      f ? "," : "", f);
		if (doc_bytes > 0) {
			memcpy(buf + n, ",\"doc\":\"", 8);
			n += 8;
			memset(buf + n, 'd', doc_bytes);
			n += doc_bytes;
			buf[n++] = '"';
		}
		buf[n++] = '}';
	}
	n += (size_t)snprintf(buf + n, size - n, "]}");
	RILL_ASSERT(n < size);
	return buf;
}

struct size_step {
	const char *type;
	unsigned fields, doc_bytes;
	uint16_t accepted; /* versions registered before the first -ENOSPC */
};

/* Register versions of @step's type until the registry refuses one: it must be -ENOSPC,
 * naming the limit, with nothing stored. At most @versions_max tries. */
static void fill_until_full(struct rill_schema_registry *reg, struct size_step *step,
			    uint16_t versions_max)
{
	for (uint16_t v = 1;; v++) {
		if (v > versions_max)
			fail_msg("%s: %u versions of %u fields registered, none refused",
				 step->type, versions_max, step->fields);
		char *def = sized_def(step->type, v, step->fields, step->doc_bytes);
		struct rill_schema_error err = {{0}};
		int rc = rill_schema_register(reg, def, strlen(def), -1, NULL, &err);
		if (rc == -ENOSPC) /* a dry run says the same */
			assert_int_equal(rill_schema_check(reg, def, strlen(def), -1, NULL), rc);
		free(def);
		if (rc == 0)
			continue;
		if (rc != -ENOSPC || strstr(err.message, "RILL_SCHEMA_REGISTRY_BYTES_MAX") == NULL)
			fail_msg("%s v%u: %s (%s), not the registry's size limit", step->type, v,
				 rill_strerror(rc), err.message);
		assert_null(rill_schema_get(reg, step->type, v));
		step->accepted = (uint16_t)(v - 1);
		return;
	}
}

struct compat_find {
	const char *type;
	int compat; /* -1: not found */
};

static int compat_find_one(void *arg, const struct rill_schema_type_info *info)
{
	struct compat_find *f = arg;
	if (strcmp(info->name, f->type) == 0)
		f->compat = (int)info->compat;
	return 0;
}

/* @type's mode, as rill_schema_list gives it (-1: no such type). */
static int compat_of(struct rill_schema_registry *reg, const char *type)
{
	struct compat_find f = {.type = type, .compat = -1};
	assert_int_equal(rill_schema_list(reg, compat_find_one, &f), 0);
	return f.compat;
}

/* Every file's size under @dir of @io, added up. */
struct dir_sum {
	struct rill_io *io;
	const char *dir;
	uint64_t bytes;
};

static int dir_sum_one(void *arg, const char *name)
{
	struct dir_sum *d = arg;
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", d->dir, name);
	int handle;
	uint64_t size = 0;
	if (d->io->ops->open(d->io, path, 0, &handle) == 0) {
		(void)d->io->ops->size(d->io, handle, &size);
		d->io->ops->close(d->io, handle);
	}
	d->bytes += size;
	return 0;
}

static uint64_t dir_bytes(struct rill_io *io, const char *dir)
{
	struct dir_sum d = {.io = io, .dir = dir};
	assert_int_equal(io->ops->list(io, dir, dir_sum_one, &d), 0);
	return d.bytes;
}

/*
 * RILL_SCHEMA_REGISTRY_BYTES_MAX: only per-type and per-version limits stood, so 4,096
 * types of 1,024 versions of 256 KiB could be registered (200 versions of a 240 KB
 * definition took 120 MB of memory and 47 MB of log). Versions of ever smaller
 * definitions fill the registry until each size is refused with -ENOSPC naming the limit,
 * and it then holds about the limit's worth, no more; what changes nothing (a mode set
 * to the mode the type has, a definition registered again) is still taken and writes
 * nothing; a change of mode is refused; and the registry reopens holding everything
 * accepted, refusing as before. On real files: the simulator copies a file whole at each
 * sync, too slow for 64 MiB of them.
 */
static void test_registry_bytes_max(void **state)
{
	(void)state;
	char tmp[64];
	assert_int_equal(test_dir_make(tmp, sizeof(tmp), "schema-full"), 0);
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/registry", tmp);
	struct rill_io *io;
	assert_int_equal(rill_io_posix_create(&io), 0);
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_registry_open(&reg, io, dir, &err), 0);
	struct size_step steps[] = {
		{"Big", 58, 4000, 0}, /* some 233 KB each */
		{"Mid", 4, 4000, 0},
		{"Small", 1, 900, 0},
		{"Tiny", 1, 0, 0}, /* a sector each */
	};
	uint64_t big_bytes = 0;
	for (size_t i = 0; i < RILL_ARRAY_COUNT(steps); i++) {
		fill_until_full(reg, &steps[i], 400);
		char *def = sized_def(steps[i].type, 1, steps[i].fields, steps[i].doc_bytes);
		if (i == 0)
			big_bytes = strlen(def) * steps[0].accepted;
		free(def);
		if (steps[i].accepted == 0)
			fail_msg("%s: not one version taken", steps[i].type);
	}
	/* Definitions take the limit, not a fraction of it. */
	assert_true(big_bytes > RILL_SCHEMA_REGISTRY_BYTES_MAX - (1u << 20));

	/* Full to within a sector: what changes nothing costs nothing, 2,000 times over. */
	uint64_t log_bytes = dir_bytes(io, dir);
	char *tiny = sized_def("Tiny", 1, 1, 0);
	for (unsigned i = 0; i < 1000; i++) {
		assert_int_equal(rill_schema_set_compat(reg, "Tiny", RILL_COMPAT_DEFAULT), 0);
		assert_int_equal(rill_schema_register(reg, tiny, strlen(tiny), RILL_COMPAT_DEFAULT,
						      NULL, &err),
				 0);
	}
	assert_int_equal(dir_bytes(io, dir), log_bytes);
	/* A change of mode takes a record: refused, both ways, and nothing changed. */
	assert_int_equal(rill_schema_set_compat(reg, "Tiny", RILL_COMPAT_FULL), -ENOSPC);
	memset(&err, 0, sizeof(err));
	assert_int_equal(
		rill_schema_register(reg, tiny, strlen(tiny), RILL_COMPAT_FULL, NULL, &err),
		-ENOSPC);
	assert_non_null(strstr(err.message, "RILL_SCHEMA_REGISTRY_BYTES_MAX"));
	assert_int_equal(compat_of(reg, "Tiny"), RILL_COMPAT_DEFAULT);
	assert_int_equal(dir_bytes(io, dir), log_bytes);
	free(tiny);
	assert_int_equal(rill_schema_registry_close(reg), 0);

	/* Reopened: everything accepted, and as full as before. */
	assert_int_equal(rill_schema_registry_open(&reg, io, dir, &err), 0);
	for (size_t i = 0; i < RILL_ARRAY_COUNT(steps); i++) {
		const struct size_step *step = &steps[i];
		const struct rill_schema *latest = rill_schema_get(reg, step->type, 0);
		assert_non_null(latest);
		assert_int_equal(rill_schema_version(latest), step->accepted);
		char *def = sized_def(step->type, step->accepted, step->fields, step->doc_bytes);
		const char *bad = version_mismatch(reg, step->type, step->accepted, def);
		if (bad != NULL)
			fail_msg("%s v%u after the reopen: %s", step->type, step->accepted, bad);
		free(def);
	}
	struct size_step again = steps[3];
	fill_until_full(reg, &again, (uint16_t)(steps[3].accepted + 1));
	assert_int_equal(rill_schema_set_compat(reg, "Big", RILL_COMPAT_NONE), -ENOSPC);
	assert_int_equal(rill_schema_registry_close(reg), 0);
	rill_io_destroy(io);
	assert_int_equal(test_dir_remove(tmp), 0);
}

/*
 * A mode flipped back and forth on a registered type appended a COMPAT record every time,
 * with no end (2,000 flips grew the log from 512 B to 1 MB). Each flip now counts toward
 * RILL_SCHEMA_REGISTRY_BYTES_MAX, a sector each: the flips end, refused with -ENOSPC,
 * about the limit's worth of sectors later. In memory (the count is the same there).
 */
static void test_compat_flips_bounded(void **state)
{
	(void)state;
	struct rill_schema_registry *reg;
	assert_int_equal(rill_schema_registry_open(&reg, NULL, NULL, NULL), 0);
	register_ok(reg, ping_def, -1);
	const uint32_t sectors = RILL_SCHEMA_REGISTRY_BYTES_MAX / 512u;
	uint32_t flips = 0;
	int rc = 0;
	while (flips <= sectors &&
	       (rc = rill_schema_set_compat(reg, "Ping",
					    flips % 2 ? RILL_COMPAT_NONE : RILL_COMPAT_FULL)) == 0)
		flips++;
	assert_int_equal(rc, -ENOSPC);
	assert_true(flips < sectors && flips > sectors - 8);
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_register(reg, ping_def, strlen(ping_def),
					      flips % 2 ? RILL_COMPAT_NONE : RILL_COMPAT_FULL, NULL,
					      &err),
			 -ENOSPC);
	assert_non_null(strstr(err.message, "Ping's new mode"));
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

/* ---- kill -9 ---------------------------------------------------------------------------------- */

#define CRASH_VERSIONS_PER_TYPE 60u

static void crash_type_name(char *buf, size_t size, uint32_t index)
{
	snprintf(buf, size, "Crash%u", index);
}

struct crash_last {
	uint32_t types;
	uint16_t latest; /* of the last type */
};

static int crash_list_last(void *arg, const struct rill_schema_type_info *info)
{
	struct crash_last *last = arg;
	last->types++;
	last->latest = info->latest_version;
	return 0;
}

/* The child: register the next version, forever, reporting each acknowledged one as
 * (type index << 16 | version). Never returns. */
static void crash_child(const char *dir, int report_fd)
{
	struct rill_io *io = test_io_real_create();
	struct rill_schema_registry *reg;
	if (io == NULL || rill_schema_registry_open(&reg, io, dir, NULL) != 0)
		_exit(3);
	uint32_t ready = 0; /* opened: the parent may start the clock */
	if (write(report_fd, &ready, sizeof(ready)) != sizeof(ready))
		_exit(5);
	struct crash_last last = {0};
	rill_schema_list(reg, crash_list_last, &last);
	uint32_t type = last.types == 0 ? 0 : last.types - 1;
	uint16_t version = last.types == 0 ? 1 : (uint16_t)(last.latest + 1);
	for (;;) {
		if (version > CRASH_VERSIONS_PER_TYPE) {
			type++;
			version = 1;
		}
		char name[32], def[DEF_BYTES_MAX];
		crash_type_name(name, sizeof(name), type);
		gen_def(def, sizeof(def), name, version, 0);
		if (rill_schema_register(reg, def, strlen(def), -1, NULL, NULL) != 0)
			_exit(4);
		uint32_t acked = type << 16 | version;
		if (write(report_fd, &acked, sizeof(acked)) != sizeof(acked))
			_exit(5);
		version++;
	}
}

/* Every type in the registry holds versions 1..latest, each the generated definition. */
static void crash_check_all(struct rill_schema_registry *reg, uint32_t acked, uint64_t round)
{
	struct crash_last last = {0};
	assert_int_equal(rill_schema_list(reg, crash_list_last, &last), 0);
	uint32_t acked_type = acked >> 16, acked_version = acked & 0xffff;
	if (acked != 0 && (last.types < acked_type + 1 ||
			   (last.types == acked_type + 1 && last.latest < acked_version)))
		fail_msg("round %llu: acknowledged Crash%u v%u lost (holds %u types, last at v%u)",
			 (unsigned long long)round, acked_type, acked_version, last.types,
			 last.latest);
	for (uint32_t t = 0; t < last.types; t++) {
		char name[32], def[DEF_BYTES_MAX];
		crash_type_name(name, sizeof(name), t);
		const struct rill_schema *latest = rill_schema_get(reg, name, 0);
		if (latest == NULL)
			fail_msg("round %llu: %s missing", (unsigned long long)round, name);
		uint16_t held = rill_schema_version(latest);
		if (t + 1 < last.types && held != CRASH_VERSIONS_PER_TYPE)
			fail_msg("round %llu: %s holds %u versions", (unsigned long long)round,
				 name, held);
		for (uint16_t v = 1; v <= held; v++) {
			gen_def(def, sizeof(def), name, v, 0);
			const char *bad = version_mismatch(reg, name, v, def);
			if (bad != NULL)
				fail_msg("round %llu: %s v%u: %s", (unsigned long long)round, name,
					 v, bad);
		}
	}
}

static void test_kill_during_registrations(void **state)
{
	(void)state;
	uint64_t rounds = test_env_u64("RILL_SCHEMA_CRASH_ROUNDS", 12);
	struct test_rng rng;
	test_rng_init(&rng, 23);
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "schema-crash"), 0);
	uint32_t acked = 0;
	uint64_t reports = 0;
	for (uint64_t round = 0; round < rounds; round++) {
		int fd;
		pid_t pid = forked_child_start(&fd);
		if (pid == 0)
			crash_child(dir, fd);
		/* Mostly kill it while it registers (the clock starts once it has opened, however
		 * slow a sanitizer makes that); now and then while it opens. */
		uint32_t report;
		if (test_rng_below(&rng, 4) != 0 && read(fd, &report, sizeof(report)) != 4)
			fail_msg("round %llu: the child died before opening",
				 (unsigned long long)round);
		usleep((useconds_t)(1000 + test_rng_below(&rng, 19000)));
		int status = forked_child_kill(pid);
		if (!forked_child_killed(status))
			fail_msg("round %llu: the child stopped by itself (status %d)",
				 (unsigned long long)round, status);
		while (read(fd, &report, sizeof(report)) == sizeof(report)) {
			if (report == 0)
				continue; /* "opened" */
			if (report <= acked)
				fail_msg("round %llu: acknowledged %#x after %#x",
					 (unsigned long long)round, report, acked);
			acked = report;
			reports++;
		}
		close(fd);

		struct rill_io *io;
		assert_int_equal(rill_io_posix_create(&io), 0);
		struct rill_schema_registry *reg;
		struct rill_schema_error err = {{0}};
		int rc = rill_schema_registry_open(&reg, io, dir, &err);
		if (rc != 0)
			fail_msg("round %llu: reopen refused: %s (%s)", (unsigned long long)round,
				 rill_strerror(rc), err.message);
		crash_check_all(reg, acked, round);
		assert_int_equal(rill_schema_registry_close(reg), 0);
		rill_io_destroy(io);
	}
	fprintf(stderr, "crash: %llu kill -9 rounds, %llu registrations acknowledged\n",
		(unsigned long long)rounds, (unsigned long long)reports);
	assert_true(reports > 0);
	assert_int_equal(test_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reopen_sim),
		cmocka_unit_test(test_reopen_posix),
		cmocka_unit_test(test_open_arguments),
		cmocka_unit_test(test_power_cuts),
		cmocka_unit_test(test_torn_tail_said),
		cmocka_unit_test(test_io_error_loop),
		cmocka_unit_test(test_io_error_then_restart),
		cmocka_unit_test(test_register_with_mode_is_atomic),
		cmocka_unit_test(test_damaged_log),
		cmocka_unit_test(test_entry_that_does_not_load),
		cmocka_unit_test(test_replay_past_the_limits),
		cmocka_unit_test(test_registry_bytes_max),
		cmocka_unit_test(test_compat_flips_bounded),
		cmocka_unit_test(test_kill_during_registrations),
	};
	test_seed();
	trace = test_env_u64("RILL_SCHEMA_TRACE", 0) != 0;
	return cmocka_run_group_tests_name("schema_registry", tests, NULL, NULL);
}
