/*
 * The schema registry: every version of every event type, each type with its compatibility
 * mode, stored in a log of its own (engine/log.h) under the data directory and replayed on
 * open. Changes (register, set_compat, upcaster_add) are serialised by a mutex and run on
 * the control path; lookups (get, get_id, readers) take no lock and may run on any thread,
 * concurrently with a change, through the release/acquire pairs below.
 *
 * The log's records (docs/FORMAT.md, "Schema registry"): key = the type name, type_id =
 * the kind of change, payload = its text.
 *   REGISTER  the canonical JSON definition of a new version
 *   COMPAT    the name of the type's new compatibility mode
 *
 * Nothing is ever deleted, so what the log holds is bounded whole: each record counts what
 * it takes in the log (record_bytes: its own batch, padded to the sector), definitions and
 * mode changes alike, and a change that would take the total past
 * RILL_SCHEMA_REGISTRY_BYTES_MAX is refused with -ENOSPC. A change that changes nothing (a
 * definition registered again, a mode set to the mode the type has) writes nothing and
 * costs nothing. A registry in memory only counts the same, for its memory.
 *
 * Invariants:
 *   G1. A type's versions are 1..version_count with no gap; versions[v - 1] is version v.
 *   G2. Nothing is published to readers before it is durable (appended and synced).
 *   G3. After a storage error the registry is fail-stop: every change returns the error.
 *   G4. Type ids are 1..type_count in order of first registration, never reused.
 *   G5. bytes is the sum of record_bytes over every record stored (replayed or appended);
 *       a change takes it past RILL_SCHEMA_REGISTRY_BYTES_MAX only at replay (a registry
 *       stored under a larger limit still opens whole).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "engine/log.h"
#include "engine/log_format.h"
#include "engine/schema_int.h"

enum registry_kind {
	REGISTRY_REGISTER = 1,
	REGISTRY_COMPAT = 2,
};

struct schema_type {
	char name[RILL_SCHEMA_NAME_BYTES_MAX + 1];
	uint32_t type_id;
	uint64_t compat; /* enum rill_schema_compat; relaxed: nothing else is read through it */
	/* R1: released after versions[version_count - 1] is set; pairs with A1. */
	uint64_t version_count;
	struct rill_schema *versions[RILL_SCHEMA_VERSIONS_MAX];
	/* R3: each released once set, never changed; pairs with A3. By from_version - 1. */
	struct schema_upcaster *upcasters[RILL_SCHEMA_VERSIONS_MAX];
};

struct rill_schema_registry {
	pthread_mutex_t lock; /* serialises changes; lookups never take it */
	struct rill_log *log; /* NULL: memory only */
	int failed;           /* G3 */
	/* R2: released after types[type_count - 1] is set; pairs with A2. */
	uint64_t type_count;
	/* R4: released after an upcaster is published; pairs with A4. */
	uint64_t generation;
	uint64_t bytes; /* G5; under the lock */
	struct schema_type *types[RILL_SCHEMA_TYPES_MAX];
};

static uint32_t type_count(struct rill_schema_registry *reg)
{
	return (uint32_t)rill_atomic_load_acquire_u64(&reg->type_count); /* A2: pairs with R2 */
}

static struct schema_type *find_type(struct rill_schema_registry *reg, const char *name)
{
	uint32_t count = type_count(reg);
	for (uint32_t i = 0; i < count; i++)
		if (strcmp(reg->types[i]->name, name) == 0)
			return reg->types[i];
	return NULL;
}

static uint16_t latest_version(const struct schema_type *t)
{
	return (uint16_t)rill_atomic_load_acquire_u64(&t->version_count); /* A1: pairs with R1 */
}

static enum rill_schema_compat type_compat(const struct schema_type *t)
{
	/* Relaxed: the mode is a value on its own; no other data is published with it. */
	return (enum rill_schema_compat)rill_atomic_load_relaxed_u64(&t->compat);
}

uint32_t schema_registry_type_id(struct rill_schema_registry *reg, const char *name)
{
	struct schema_type *t = find_type(reg, name);
	return t == NULL ? 0 : t->type_id;
}

const struct rill_schema *rill_schema_get_id(struct rill_schema_registry *reg, uint32_t type_id,
					     uint16_t version)
{
	if (type_id == 0 || type_id > type_count(reg))
		return NULL;
	const struct schema_type *t = reg->types[type_id - 1];
	uint16_t latest = latest_version(t);
	if (version == 0)
		version = latest;
	if (version == 0 || version > latest)
		return NULL;
	return t->versions[version - 1];
}

const struct rill_schema *rill_schema_get(struct rill_schema_registry *reg, const char *type,
					  uint16_t version)
{
	struct schema_type *t = find_type(reg, type);
	return t == NULL ? NULL : rill_schema_get_id(reg, t->type_id, version);
}

const struct schema_upcaster *schema_registry_upcaster(struct rill_schema_registry *reg,
						       uint32_t type_id, uint16_t from_version)
{
	if (type_id == 0 || type_id > type_count(reg) || from_version == 0 ||
	    from_version >= RILL_SCHEMA_VERSIONS_MAX)
		return NULL;
	struct schema_type *t = reg->types[type_id - 1];
	/* A3: pairs with R3. */
	return rill_atomic_load_acquire_ptr((void *const *)&t->upcasters[from_version - 1]);
}

uint64_t schema_registry_generation(struct rill_schema_registry *reg)
{
	return rill_atomic_load_acquire_u64(&reg->generation); /* A4: pairs with R4 */
}

/* ---- Changes (under the lock) ---------------------------------------------------------- */

/*
 * What one record of @key_bytes and @payload_bytes takes in the log, in a batch of its own
 * (a REGISTER and its COMPAT share one: counted as two, an upper bound).
 */
static uint64_t record_bytes(size_t key_bytes, size_t payload_bytes)
{
	return rill_align_up(RILL_BATCH_HEADER_BYTES + RILL_RECORD_HEADER_BYTES + key_bytes +
				     payload_bytes,
			     RILL_LOG_SECTOR_BYTES);
}

static uint64_t compat_record_bytes(const char *type, int compat)
{
	return record_bytes(strlen(type),
			    strlen(rill_schema_compat_name((enum rill_schema_compat)compat)));
}

/* G5: room for @bytes more, or -ENOSPC naming what needs them: type @what's @version, or
 * with @version 0 a change of its mode. */
static int room_check(const struct rill_schema_registry *reg, uint64_t bytes,
		      struct rill_schema_error *err, const char *what, unsigned version)
{
	if (reg->bytes + bytes <= RILL_SCHEMA_REGISTRY_BYTES_MAX)
		return 0;
	char thing[RILL_SCHEMA_NAME_BYTES_MAX + 32];
	if (version > 0)
		snprintf(thing, sizeof(thing), "%s v%u", what, version);
	else
		snprintf(thing, sizeof(thing), "%s's new mode", what);
	return schema_fail(err, -ENOSPC,
			   "schema registry: full: %s takes %llu bytes, and it holds %llu of the "
			   "%u it may (RILL_SCHEMA_REGISTRY_BYTES_MAX; nothing stored is ever "
			   "deleted)",
			   thing, (unsigned long long)bytes, (unsigned long long)reg->bytes,
			   RILL_SCHEMA_REGISTRY_BYTES_MAX);
}

/* Whether registering a new version of @t (NULL: a new type) with @compat stores a COMPAT
 * record too: only when it changes the type's mode (a new type's is the default). */
static bool compat_changes(const struct schema_type *t, int compat)
{
	return compat >= 0 && compat != (int)(t == NULL ? RILL_COMPAT_DEFAULT : type_compat(t));
}

static struct schema_type *type_new(struct rill_schema_registry *reg, const char *name)
{
	struct schema_type *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->type_id = (uint32_t)reg->type_count + 1;
	t->compat = RILL_COMPAT_DEFAULT;
	return t;
}

/*
 * Make @s version latest + 1 of @t; with @fresh, @t is a new type (from type_new) to add.
 * G1, G4. Cannot fail: the caller has checked the limits and allocated what it needs, so
 * that nothing can go wrong between making a change durable and publishing it.
 */
static void publish(struct rill_schema_registry *reg, struct schema_type *t, bool fresh,
		    struct rill_schema *s, int compat)
{
	uint64_t count = t->version_count;
	RILL_ASSERT(s->version == count + 1);
	RILL_ASSERT(count < RILL_SCHEMA_VERSIONS_MAX);
	RILL_ASSERT(!fresh || reg->type_count < RILL_SCHEMA_TYPES_MAX);
	s->type_id = t->type_id;
	t->versions[count] = s;
	rill_atomic_store_release_u64(&t->version_count, count + 1); /* R1 */
	if (compat >= 0)
		rill_atomic_store_relaxed_u64(&t->compat, (uint64_t)compat);
	if (fresh) {
		reg->types[reg->type_count] = t;
		rill_atomic_store_release_u64(&reg->type_count, reg->type_count + 1); /* R2 */
	}
}

static int append_entry(struct rill_schema_registry *reg, enum registry_kind kind, const char *name,
			const char *text)
{
	struct rill_record rec = {
		.timestamp_ns = rill_clock_wall_ns(),
		.type_id = kind,
		.key = name,
		.key_bytes = (uint16_t)strlen(name),
		.payload = text,
		.payload_bytes = (uint32_t)strlen(text),
	};
	uint64_t offset;
	int rc = rill_log_append(reg->log, &rec, &offset);
	if (rc == -EAGAIN) { /* both buffers busy: cannot happen after a sync, but be sure */
		rc = rill_log_sync(reg->log);
		if (rc == 0)
			rc = rill_log_append(reg->log, &rec, &offset);
	}
	return rc;
}

/*
 * Store the change durably (G2): one REGISTER and/or one COMPAT record, in one batch, one
 * fdatasync. Any failure is final (G3).
 */
static int persist(struct rill_schema_registry *reg, const struct rill_schema *s, const char *type,
		   int compat, struct rill_schema_error *err)
{
	if (reg->log == NULL)
		return 0;
	int rc = 0;
	if (s != NULL)
		rc = append_entry(reg, REGISTRY_REGISTER, type, s->json);
	if (rc == 0 && compat >= 0)
		rc = append_entry(reg, REGISTRY_COMPAT, type,
				  rill_schema_compat_name((enum rill_schema_compat)compat));
	if (rc == 0)
		rc = rill_log_sync(reg->log);
	if (rc != 0) {
		reg->failed = rc;
		return schema_fail(err, rc,
				   "schema registry: storing the change failed (%s); "
				   "it refuses every change from now on",
				   rill_strerror(rc));
	}
	return 0;
}

static bool mode_backward(enum rill_schema_compat m)
{
	return m == RILL_COMPAT_BACKWARD || m == RILL_COMPAT_BACKWARD_TRANSITIVE ||
	       m == RILL_COMPAT_FULL || m == RILL_COMPAT_FULL_TRANSITIVE;
}

static bool mode_forward(enum rill_schema_compat m)
{
	return m == RILL_COMPAT_FORWARD || m == RILL_COMPAT_FORWARD_TRANSITIVE ||
	       m == RILL_COMPAT_FULL || m == RILL_COMPAT_FULL_TRANSITIVE;
}

static bool mode_transitive(enum rill_schema_compat m)
{
	return m == RILL_COMPAT_BACKWARD_TRANSITIVE || m == RILL_COMPAT_FORWARD_TRANSITIVE ||
	       m == RILL_COMPAT_FULL_TRANSITIVE;
}

/* Check @s, the next version of @t, against the earlier ones under @mode. */
static int check_mode(const struct schema_type *t, const struct rill_schema *s,
		      enum rill_schema_compat mode, struct rill_schema_error *err)
{
	uint16_t latest = (uint16_t)t->version_count;
	uint16_t first = mode_transitive(mode) ? 1 : latest;
	const char *name = rill_schema_compat_name(mode);
	for (uint16_t v = latest; v >= first && v > 0; v--) {
		const struct rill_schema *old = t->versions[v - 1];
		struct rill_schema_error why;
		if (mode_backward(mode) && !rill_schema_compatible(s, old, &why))
			return schema_fail(err, RILL_E_SCHEMA_INCOMPATIBLE,
					   "%s v%u breaks %s (v%u must read v%u data): %s",
					   s->type_name, s->version, name, s->version, v,
					   why.message);
		if (mode_forward(mode) && !rill_schema_compatible(old, s, &why))
			return schema_fail(err, RILL_E_SCHEMA_INCOMPATIBLE,
					   "%s v%u breaks %s (v%u must read v%u data): %s",
					   s->type_name, s->version, name, v, s->version,
					   why.message);
	}
	return 0;
}

/*
 * Everything register and check share: parse, find the type, order the version, check the
 * mode. Sets @existing for a re-registration of the same definition. Under the lock.
 */
static int admit(struct rill_schema_registry *reg, struct rill_schema *s, int compat,
		 struct schema_type **type, struct rill_schema **existing,
		 struct rill_schema_error *err)
{
	struct schema_type *t = find_type(reg, s->type_name);
	uint16_t latest = t == NULL ? 0 : (uint16_t)t->version_count;
	*type = t;
	*existing = NULL;
	if (s->version <= latest) {
		struct rill_schema *old = t->versions[s->version - 1];
		if (strcmp(old->json, s->json) != 0)
			return schema_fail(err, RILL_E_SCHEMA_CONFLICT,
					   "%s v%u is already registered with another definition",
					   s->type_name, s->version);
		*existing = old;
		/* Registered again with another mode: a COMPAT record, which counts (G5). */
		if (compat >= 0 && (enum rill_schema_compat)compat != type_compat(t))
			return room_check(reg, compat_record_bytes(t->name, compat), err, t->name,
					  0);
		return 0;
	}
	if (s->version != latest + 1)
		return schema_fail(err, RILL_E_SCHEMA_CONFLICT,
				   "%s v%u: the latest version is %u, so the next must be %u",
				   s->type_name, s->version, latest, latest + 1);
	if (s->version > RILL_SCHEMA_VERSIONS_MAX)
		return schema_fail(err, -ENOSPC, "%s: at most %u versions per type", s->type_name,
				   RILL_SCHEMA_VERSIONS_MAX);
	if (t == NULL && reg->type_count >= RILL_SCHEMA_TYPES_MAX)
		return schema_fail(err, -ENOSPC, "schema registry: at most %u types",
				   RILL_SCHEMA_TYPES_MAX);
	uint64_t bytes = record_bytes(strlen(s->type_name), strlen(s->json));
	if (compat_changes(t, compat))
		bytes += compat_record_bytes(s->type_name, compat);
	int rc = room_check(reg, bytes, err, s->type_name, s->version);
	if (rc != 0 || t == NULL)
		return rc;
	enum rill_schema_compat mode =
		compat >= 0 ? (enum rill_schema_compat)compat : type_compat(t);
	return check_mode(t, s, mode, err);
}

static int compat_valid(int compat)
{
	return compat >= -1 && compat <= RILL_COMPAT_FULL_TRANSITIVE;
}

static int register_locked(struct rill_schema_registry *reg, struct rill_schema *s, int compat,
			   bool dry_run, const struct rill_schema **out,
			   struct rill_schema_error *err)
{
	if (reg->failed != 0)
		return schema_fail(err, reg->failed, "schema registry: failed earlier (%s)",
				   rill_strerror(reg->failed));
	struct schema_type *t;
	struct rill_schema *existing;
	int rc = admit(reg, s, compat, &t, &existing, err);
	if (rc != 0 || dry_run)
		return rc;
	if (existing != NULL) {
		if (compat >= 0 && (enum rill_schema_compat)compat != type_compat(t)) {
			rc = persist(reg, NULL, t->name, compat, err); /* admit found room */
			if (rc != 0)
				return rc;
			reg->bytes += compat_record_bytes(t->name, compat);
			rill_atomic_store_relaxed_u64(&t->compat, (uint64_t)compat);
		}
		if (out != NULL)
			*out = existing;
		return 1; /* the caller frees @s */
	}
	/* A new type records its mode only when it is not the default. */
	int store_compat = compat_changes(t, compat) ? compat : -1;
	struct schema_type *fresh = NULL;
	if (t == NULL && (fresh = type_new(reg, s->type_name)) == NULL)
		return -ENOMEM;
	rc = persist(reg, s, s->type_name, store_compat, err);
	if (rc != 0) {
		free(fresh);
		return rc;
	}
	/* As admit counted it. */
	reg->bytes += record_bytes(strlen(s->type_name), strlen(s->json));
	if (store_compat >= 0)
		reg->bytes += compat_record_bytes(s->type_name, store_compat);
	publish(reg, t != NULL ? t : fresh, fresh != NULL, s, compat);
	if (out != NULL)
		*out = s;
	return 0;
}

static int register_or_check(struct rill_schema_registry *reg, const char *json, size_t json_bytes,
			     int compat, bool dry_run, const struct rill_schema **out,
			     struct rill_schema_error *err)
{
	if (!compat_valid(compat))
		return schema_fail(err, -EINVAL, "schema registry: unknown compatibility mode %d",
				   compat);
	struct rill_schema *s;
	int rc = rill_schema_parse(&s, json, json_bytes, err);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&reg->lock);
	rc = register_locked(reg, s, compat, dry_run, out, err);
	pthread_mutex_unlock(&reg->lock);
	if (rc != 0 || dry_run)
		rill_schema_free(s);
	return rc > 0 ? 0 : rc;
}

int rill_schema_register(struct rill_schema_registry *reg, const char *json, size_t json_bytes,
			 int compat, const struct rill_schema **out, struct rill_schema_error *err)
{
	return register_or_check(reg, json, json_bytes, compat, false, out, err);
}

int rill_schema_check(struct rill_schema_registry *reg, const char *json, size_t json_bytes,
		      int compat, struct rill_schema_error *err)
{
	return register_or_check(reg, json, json_bytes, compat, true, NULL, err);
}

int rill_schema_set_compat(struct rill_schema_registry *reg, const char *type,
			   enum rill_schema_compat compat)
{
	if (!compat_valid((int)compat) || (int)compat < 0)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	int rc = reg->failed;
	struct schema_type *t = find_type(reg, type);
	if (rc == 0 && t == NULL)
		rc = -ENOENT;
	/* The mode it has: nothing to store (each record stored counts, G5). */
	if (rc == 0 && type_compat(t) == compat) {
		pthread_mutex_unlock(&reg->lock);
		return 0;
	}
	uint64_t bytes = rc == 0 ? compat_record_bytes(t->name, (int)compat) : 0;
	if (rc == 0)
		rc = room_check(reg, bytes, NULL, t->name, 0);
	if (rc == 0)
		rc = persist(reg, NULL, type, (int)compat, NULL);
	if (rc == 0) {
		reg->bytes += bytes;
		rill_atomic_store_relaxed_u64(&t->compat, (uint64_t)compat);
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int rill_schema_upcaster_add(struct rill_schema_registry *reg, const char *type,
			     uint16_t from_version, rill_schema_upcast_fn *fn, void *arg)
{
	if (fn == NULL || from_version == 0 || from_version >= RILL_SCHEMA_VERSIONS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	int rc = 0;
	struct schema_type *t = find_type(reg, type);
	struct schema_upcaster *u = NULL;
	if (t == NULL)
		rc = -ENOENT;
	else if (t->upcasters[from_version - 1] != NULL)
		rc = -EEXIST;
	else if ((u = malloc(sizeof(*u))) == NULL)
		rc = -ENOMEM;
	if (rc == 0) {
		u->fn = fn;
		u->arg = arg;
		rill_atomic_store_release_ptr((void **)&t->upcasters[from_version - 1], u); /* R3 */
		rill_atomic_store_release_u64(&reg->generation, reg->generation + 1);       /* R4 */
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int rill_schema_list(struct rill_schema_registry *reg, rill_schema_list_fn *fn, void *arg)
{
	uint32_t count = type_count(reg);
	for (uint32_t i = 0; i < count; i++) {
		const struct schema_type *t = reg->types[i];
		struct rill_schema_type_info info = {
			.name = t->name,
			.type_id = t->type_id,
			.latest_version = latest_version(t),
			.compat = type_compat(t),
		};
		int rc = fn(arg, &info);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- Open, replay, close --------------------------------------------------------------- */

static int replay_compat(struct schema_type *t, const struct rill_record *rec)
{
	for (int m = RILL_COMPAT_NONE; m <= RILL_COMPAT_FULL_TRANSITIVE; m++) {
		const char *name = rill_schema_compat_name((enum rill_schema_compat)m);
		if (t != NULL && rec->payload_bytes == strlen(name) &&
		    memcmp(rec->payload, name, rec->payload_bytes) == 0) {
			rill_atomic_store_relaxed_u64(&t->compat, (uint64_t)m);
			return 0;
		}
	}
	return -1;
}

/*
 * One REGISTER record: a canonical definition (exactly what register writes), version
 * latest + 1 of its type, within the limits. Returns 0 or -1 with @why set.
 */
static int replay_register(struct rill_schema_registry *reg, struct schema_type *t,
			   const char *name, const struct rill_record *rec,
			   struct rill_schema_error *why)
{
	struct rill_schema *s;
	int rc = rill_schema_parse(&s, rec->payload, rec->payload_bytes, why);
	if (rc != 0)
		return rc;
	const char *fault = NULL;
	if (strlen(s->json) != rec->payload_bytes ||
	    memcmp(s->json, rec->payload, rec->payload_bytes) != 0)
		fault = "not in canonical form";
	else if (strcmp(s->type_name, name) != 0)
		fault = "stored under another type name";
	else if (s->version != (t == NULL ? 0 : t->version_count) + 1)
		fault = "out of order";
	else if (t == NULL ? reg->type_count >= RILL_SCHEMA_TYPES_MAX
			   : t->version_count >= RILL_SCHEMA_VERSIONS_MAX)
		fault = "past the registry's limits";
	struct schema_type *fresh = NULL;
	if (fault == NULL && t == NULL && (fresh = type_new(reg, name)) == NULL)
		rc = -ENOMEM;
	if (fault != NULL || rc != 0) {
		snprintf(why->message, sizeof(why->message), "%s v%u: %s", name,
			 (unsigned)s->version, fault != NULL ? fault : rill_strerror(rc));
		rill_schema_free(s);
		return rc != 0 ? rc : RILL_E_SCHEMA_INVALID;
	}
	publish(reg, t != NULL ? t : fresh, fresh != NULL, s, -1);
	return 0;
}

static int replay_entry(struct rill_schema_registry *reg, const struct rill_record *rec,
			uint64_t offset, struct rill_schema_error *err)
{
	char name[RILL_SCHEMA_NAME_BYTES_MAX + 1];
	if (rec->key_bytes == 0 || rec->key_bytes > RILL_SCHEMA_NAME_BYTES_MAX ||
	    memchr(rec->key, '\0', rec->key_bytes) != NULL)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "schema registry, offset %llu: bad type name",
				   (unsigned long long)offset);
	memcpy(name, rec->key, rec->key_bytes);
	name[rec->key_bytes] = '\0';
	struct schema_type *t = find_type(reg, name);
	/* G5: counted whatever the total (a registry stored under a larger limit opens). */
	uint64_t bytes = record_bytes(rec->key_bytes, rec->payload_bytes);
	if (rec->type_id == REGISTRY_COMPAT) {
		if (replay_compat(t, rec) != 0)
			return schema_fail(err, RILL_E_SCHEMA_INVALID,
					   "schema registry, offset %llu: bad mode for %s",
					   (unsigned long long)offset, name);
		reg->bytes += bytes;
		return 0;
	}
	if (rec->type_id != REGISTRY_REGISTER)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "schema registry, offset %llu: unknown entry kind %u",
				   (unsigned long long)offset, rec->type_id);
	struct rill_schema_error why = {{0}}; /* a failed allocation leaves it unset */
	int rc = replay_register(reg, t, name, rec, &why);
	if (rc != 0)
		return schema_fail(err, rc == -ENOMEM ? rc : RILL_E_SCHEMA_INVALID,
				   "schema registry, offset %llu: %s", (unsigned long long)offset,
				   why.message[0] != '\0' ? why.message : rill_strerror(rc));
	reg->bytes += bytes;
	return 0;
}

static int replay(struct rill_schema_registry *reg, struct rill_schema_error *err)
{
	struct rill_log_iter it;
	int rc = rill_log_iter_init(&it, reg->log, 0);
	if (rc != 0)
		return rc;
	struct rill_record rec;
	uint64_t offset;
	while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1) {
		rc = replay_entry(reg, &rec, offset, err); /* fills @err on failure */
		if (rc != 0)
			break;
	}
	if (rc < 0 && rc != RILL_E_SCHEMA_INVALID && rc != -ENOMEM)
		schema_fail(err, rc, "schema registry: reading its log: %s", rill_strerror(rc));
	rill_log_iter_fini(&it);
	return rc < 0 ? rc : 0;
}

static int open_log(struct rill_schema_registry *reg, struct rill_io *io, const char *dir,
		    struct rill_schema_error *err)
{
	struct rill_log_config config;
	rill_log_config_default(&config);
	config.durability = RILL_DURABILITY_GROUP;
	/*
	 * Batches go out only when persist() syncs (the longest delay the log takes, against
	 * the microseconds between two appends of one change): a change's REGISTER and COMPAT
	 * records then share one batch, which recovery keeps or cuts whole.
	 */
	config.batch_delay_ns = 10ull * 1000000000ull;
	config.batch_bytes_max = 1u << 20; /* a definition's record and a mode's, together */
	config.segment_bytes_max = 64u << 20;
	config.buffered_io = true; /* a few small batches: O_DIRECT buys nothing here */
	struct rill_log_recovery report;
	int rc = rill_log_open(&reg->log, io, dir, &config, &report);
	if (rc != 0)
		return schema_fail(err, rc, "schema registry %s: %s%s%s", dir, rill_strerror(rc),
				   report.message[0] ? ": " : "", report.message);
	if (report.message[0] != '\0') /* a torn tail cut, as a partition's log says too */
		fprintf(stderr, "rill: schema registry %s: %s\n", dir, report.message);
	return replay(reg, err);
}

static void registry_free(struct rill_schema_registry *reg)
{
	for (uint32_t i = 0; i < reg->type_count; i++) {
		struct schema_type *t = reg->types[i];
		for (uint64_t v = 0; v < t->version_count; v++)
			rill_schema_free(t->versions[v]);
		for (uint32_t v = 0; v < RILL_SCHEMA_VERSIONS_MAX; v++)
			free(t->upcasters[v]);
		free(t);
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

int rill_schema_registry_open(struct rill_schema_registry **out, struct rill_io *io,
			      const char *dir, struct rill_schema_error *err)
{
	if ((io == NULL) != (dir == NULL))
		return schema_fail(err, -EINVAL,
				   "schema registry: give both io and dir, or neither");
	struct rill_schema_registry *reg = calloc(1, sizeof(*reg));
	if (reg == NULL)
		return -ENOMEM;
	pthread_mutex_init(&reg->lock, NULL);
	if (io != NULL) {
		int rc = open_log(reg, io, dir, err);
		if (rc != 0) {
			if (reg->log != NULL)
				rill_log_drop(reg->log);
			registry_free(reg);
			return rc;
		}
	}
	*out = reg;
	return 0;
}

int rill_schema_registry_close(struct rill_schema_registry *reg)
{
	if (reg == NULL)
		return 0;
	int rc = 0;
	if (reg->log != NULL) {
		if (reg->failed != 0) {
			rill_log_drop(reg->log);
			rc = reg->failed;
		} else {
			rc = rill_log_close(reg->log);
		}
	}
	registry_free(reg);
	return rc;
}
