/*
 * Built-in projections (engine/projection.h): a fixed hash table of per-key state, folded
 * event by event on the owner shard's thread, right after append. Hot path: apply and get
 * never allocate and never lock.
 *
 * The table: open addressing with linear probing over a power-of-two capacity of at least
 * twice keys_max (so probes stay short at the fullest), keyed by the key's XXH3 hash, the
 * key bytes themselves in one key store, appended in order of first appearance. Keys are
 * never removed.
 *
 * Invariants:
 *   P1. key_count <= keys_max < capacity / 2 + 1; order[0 .. key_count) are the used slots
 *       in order of first appearance, and key_store_used is the sum of their key_bytes.
 *   P2. A used slot's key lies at key_store[key_pos .. key_pos + key_bytes).
 *   P3. Window kinds: prev_start + window_ns == window_start whenever prev_count > 0.
 *   P4. Every key held has folded every event of it the projection was given: a key is
 *       taken at its first event or never. Under fixed limits room only shrinks, so a key
 *       taken after others were refused was never refused itself; a state restored with
 *       refusals into larger limits could break that, and is sealed (no new key) instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "engine/projection.h"

static bool name_valid(const char *name);
#include "engine/schema_int.h"
#include "rill/error.h"

#define PROJ_KEYS_DEFAULT      16384u
#define PROJ_KEY_STORE_DEFAULT (4ull << 20)

/*
 * GCC and Clang's 128-bit integer, for exact sums of 64-bit fields; __extension__ keeps
 * -Wpedantic quiet about it (the file's two typedefs: the keyword needs a name).
 */
__extension__ typedef __int128 proj_int128;
__extension__ typedef unsigned __int128 proj_uint128;

/* An accumulator: exact 128-bit sums for integer fields, a double for f64 ones. */
union proj_acc {
	proj_int128 i;
	double f;
};

/* A single value (min, max, last), by the field's type. */
union proj_val {
	int64_t i;
	uint64_t u;
	double f;
};

struct proj_slot {
	uint64_t hash;
	uint64_t key_pos;
	uint32_t key_bytes;
	uint32_t used;
	uint64_t offset; /* of the last event applied */
	uint64_t count;
	union proj_acc sum;
	union proj_val value;
	uint64_t window_start; /* window kinds: the current window */
	uint64_t prev_start;   /* and the one before it */
	uint64_t prev_count;
	union proj_acc prev_sum;
};

struct rill_projection {
	char name[RILL_PROJECTION_NAME_BYTES_MAX + 1];
	enum rill_projection_kind kind;
	uint32_t type_id;
	struct rill_schema_reader *reader;
	struct rill_field_ref field; /* unset (type 0) for count kinds */
	/* When an event of another version cannot be read whole as the projection's (a field
	 * it does not use has no value: proj_field_direct), its own field read straight from
	 * the event's version; the last such version's, cached. */
	struct rill_schema_registry *reg;
	char field_name[RILL_SCHEMA_NAME_BYTES_MAX + 1];
	uint16_t direct_version; /* 0: none cached */
	struct rill_field_ref direct_field;
	bool direct_ok; /* the version has the field, in a type it can be read as */
	uint64_t window_ns;
	uint32_t keys_max;
	uint64_t key_store_bytes;
	struct proj_slot *slots;
	uint64_t mask; /* capacity - 1 */
	uint32_t *order;
	uint32_t key_count;
	uint8_t *key_store;
	uint64_t key_store_used;
	/* Restored from a state that refused new keys for lack of room, with room for more
	 * now (its limits were raised): it takes no new key, for one of them may be a key
	 * refused before, whose count would miss its events of then (P4). */
	bool sealed;
	struct rill_projection_stats stats;
	const struct rill_projection_ops *ops; /* custom: the application's read model */
	void *state;
	void *arg;          /* custom: init's argument */
	uint32_t partition; /* custom: init's partition */
};

void rill_projection_config_default(struct rill_projection_config *c)
{
	if (c->keys_max == 0)
		c->keys_max = PROJ_KEYS_DEFAULT;
	if (c->key_store_bytes == 0)
		c->key_store_bytes = PROJ_KEY_STORE_DEFAULT;
}

static bool kind_needs_field(enum rill_projection_kind k)
{
	return k != RILL_PROJECTION_COUNT && k != RILL_PROJECTION_WINDOW_COUNT;
}

static bool kind_windowed(enum rill_projection_kind k)
{
	return k == RILL_PROJECTION_WINDOW_COUNT || k == RILL_PROJECTION_WINDOW_SUM;
}

bool rill_projection_name_valid(const char *name)
{
	return name_valid(name);
}

static bool name_valid(const char *name)
{
	size_t n = name == NULL ? 0 : strlen(name);
	if (n == 0 || n > RILL_PROJECTION_NAME_BYTES_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

static int check_config(const struct rill_projection_config *c, struct rill_schema_error *err)
{
	if (!name_valid(c->name))
		return schema_fail(err, -EINVAL,
				   "projection: the name must match [A-Za-z_][A-Za-z0-9_.-]* and "
				   "be at most %u bytes",
				   RILL_PROJECTION_NAME_BYTES_MAX);
	if (c->kind < RILL_PROJECTION_COUNT || c->kind > RILL_PROJECTION_WINDOW_SUM)
		return schema_fail(err, -EINVAL, "projection %s: unknown kind %d", c->name,
				   (int)c->kind);
	if (kind_needs_field(c->kind) && c->field == NULL)
		return schema_fail(err, -EINVAL, "projection %s: this kind needs a field", c->name);
	if (kind_windowed(c->kind) && c->window_ns == 0)
		return schema_fail(err, -EINVAL, "projection %s: a window kind needs window_ns",
				   c->name);
	if (c->keys_max == 0 || c->keys_max > RILL_PROJECTION_KEYS_MAX || c->key_store_bytes == 0 ||
	    c->key_store_bytes > RILL_PROJECTION_KEY_STORE_MAX)
		return schema_fail(err, -EINVAL,
				   "projection %s: keys_max must be 1 to %u and key_store_bytes "
				   "1 to %llu",
				   c->name, RILL_PROJECTION_KEYS_MAX,
				   (unsigned long long)RILL_PROJECTION_KEY_STORE_MAX);
	return 0;
}

/* The field: numeric, resolved once. */
static int resolve_field(struct rill_projection *p, const struct rill_projection_config *c,
			 struct rill_schema_error *err)
{
	if (!kind_needs_field(c->kind))
		return 0;
	const struct rill_schema *s = rill_schema_reader_schema(p->reader);
	if (rill_schema_field_ref(s, c->field, &p->field) != 0)
		return schema_fail(err, -ENOENT, "projection %s: %s v%u has no field '%s'", c->name,
				   c->type, rill_schema_version(s), c->field);
	enum rill_field_type t = p->field.type;
	if (t != RILL_FIELD_I64 && t != RILL_FIELD_U64 && t != RILL_FIELD_F64 &&
	    t != RILL_FIELD_TIMESTAMP)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "projection %s: field '%s' is not numeric (i64, u64, f64 or "
				   "timestamp)",
				   c->name, c->field);
	return 0;
}

static int allocate(struct rill_projection *p)
{
	uint64_t capacity = 1;
	while (capacity < 2ull * p->keys_max)
		capacity <<= 1;
	p->mask = capacity - 1;
	p->slots = calloc(capacity, sizeof(*p->slots));
	p->order = calloc(p->keys_max, sizeof(*p->order));
	p->key_store = malloc(p->key_store_bytes);
	return p->slots == NULL || p->order == NULL || p->key_store == NULL ? -ENOMEM : 0;
}

int rill_projection_create(struct rill_projection **out, struct rill_schema_registry *reg,
			   const struct rill_projection_config *config,
			   struct rill_schema_error *err)
{
	struct rill_projection_config c = *config;
	rill_projection_config_default(&c);
	int rc = check_config(&c, err);
	if (rc != 0)
		return rc;
	const struct rill_schema *s =
		c.type == NULL ? NULL : rill_schema_get(reg, c.type, c.version);
	if (s == NULL)
		return schema_fail(err, -ENOENT, "projection %s: no type %s v%u registered", c.name,
				   c.type ? c.type : "(none)", c.version);
	struct rill_projection *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	snprintf(p->name, sizeof(p->name), "%s", c.name);
	p->kind = c.kind;
	p->type_id = rill_schema_type_id(s);
	p->window_ns = kind_windowed(c.kind) ? c.window_ns : 0; /* canonical snapshots */
	p->keys_max = c.keys_max;
	p->key_store_bytes = c.key_store_bytes;
	p->reg = reg;
	if (c.field != NULL)
		snprintf(p->field_name, sizeof(p->field_name), "%s", c.field);
	rc = rill_schema_reader_create(&p->reader, reg, c.type, rill_schema_version(s));
	if (rc == 0)
		rc = resolve_field(p, &c, err);
	if (rc == 0)
		rc = allocate(p);
	if (rc != 0) {
		rill_projection_destroy(p);
		return rc;
	}
	*out = p;
	return 0;
}

int rill_projection_create_custom(struct rill_projection **out, const char *name,
				  const struct rill_projection_ops *ops, void *arg,
				  uint32_t partition)
{
	if (!name_valid(name) || ops == NULL || ops->init == NULL || ops->apply == NULL ||
	    ops->query == NULL || ops->snapshot == NULL || ops->restore == NULL ||
	    ops->destroy == NULL)
		return -EINVAL;
	struct rill_projection *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->ops = ops;
	p->arg = arg;
	p->partition = partition;
	p->state = ops->init(arg, partition);
	if (p->state == NULL) {
		free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

int64_t rill_projection_query(const struct rill_projection *p, const void *key, uint32_t key_bytes,
			      void *out, size_t out_bytes)
{
	if (p->ops == NULL)
		return -EINVAL;
	int64_t n = p->ops->query(p->state, key, key_bytes, out, out_bytes);
	return n > (int64_t)out_bytes ? -EPROTO : n; /* an answer longer than its room */
}

void rill_projection_destroy(struct rill_projection *p)
{
	if (p == NULL)
		return;
	if (p->ops != NULL)
		p->ops->destroy(p->state);
	rill_schema_reader_destroy(p->reader);
	free(p->slots);
	free(p->order);
	free(p->key_store);
	free(p);
}

const char *rill_projection_name(const struct rill_projection *p)
{
	return p->name;
}

uint32_t rill_projection_type_id(const struct rill_projection *p)
{
	return p->type_id;
}

/* The slot of @key, or NULL; with @insert, a new slot for an unseen key (NULL when full). */
static struct proj_slot *slot_find(struct rill_projection *p, const void *key, uint32_t bytes,
				   bool insert)
{
	uint64_t h = rill_key_hash(key, bytes);
	/*
	 * Probe from the hash's high half: partitions are picked from the same hash (low bits
	 * first), so every key of one partition shares its low bits.
	 */
	for (uint64_t i = (h >> 32 | h << 32) & p->mask;; i = (i + 1) & p->mask) {
		struct proj_slot *s = &p->slots[i];
		if (!s->used) {
			if (!insert || p->sealed || p->key_count == p->keys_max ||
			    bytes > p->key_store_bytes - p->key_store_used)
				return NULL;
			s->used = 1;
			s->hash = h;
			s->key_pos = p->key_store_used;
			s->key_bytes = bytes;
			if (bytes > 0) /* an empty key may come as NULL */
				memcpy(p->key_store + s->key_pos, key, bytes);
			p->key_store_used += bytes;
			p->order[p->key_count++] = (uint32_t)i; /* P1 */
			return s;
		}
		if (s->hash == h && s->key_bytes == bytes &&
		    (bytes == 0 || memcmp(p->key_store + s->key_pos, key, bytes) == 0))
			return s;
	}
}

/* a + b for the field's accumulator. */
static void acc_add(union proj_acc *a, enum rill_field_type t, union proj_val v)
{
	if (t == RILL_FIELD_F64) {
		a->f += v.f;
		return;
	}
	/*
	 * In unsigned arithmetic, which wraps where signed would be undefined: 2^64 events
	 * cannot carry a sum past 128 bits, but a crafted snapshot can start one near it.
	 */
	proj_uint128 add = t == RILL_FIELD_U64 ? (proj_uint128)v.u : (proj_uint128)(proj_int128)v.i;
	a->i = (proj_int128)((proj_uint128)a->i + add);
}

/* Whether @v is below (@less) or above the slot's value. */
static bool val_beyond(enum rill_field_type t, union proj_val v, union proj_val cur, bool less)
{
	if (t == RILL_FIELD_F64)
		return less ? v.f < cur.f : v.f > cur.f;
	if (t == RILL_FIELD_U64)
		return less ? v.u < cur.u : v.u > cur.u;
	return less ? v.i < cur.i : v.i > cur.i;
}

/*
 * Tumbling windows: the event at @ts_ns into the current window or the previous one;
 * false for a late event (older than both), which is counted, not applied.
 */
static bool apply_window(struct rill_projection *p, struct proj_slot *s, uint64_t ts_ns,
			 union proj_val v, bool fresh)
{
	enum rill_field_type t = p->field.type;
	uint64_t w = ts_ns - ts_ns % p->window_ns;
	union proj_acc zero = {0};
	if (fresh || w > s->window_start) {
		bool adjacent = !fresh && w - s->window_start == p->window_ns;
		s->prev_start = w - p->window_ns < w ? w - p->window_ns : 0;
		s->prev_count = adjacent ? s->count : 0;
		s->prev_sum = adjacent ? s->sum : zero;
		s->window_start = w;
		s->count = 0;
		s->sum = zero;
	}
	if (w == s->window_start) {
		s->count++;
		if (p->kind == RILL_PROJECTION_WINDOW_SUM)
			acc_add(&s->sum, t, v);
	} else if (w == s->prev_start && s->window_start - p->window_ns == w) {
		s->prev_count++;
		if (p->kind == RILL_PROJECTION_WINDOW_SUM)
			acc_add(&s->prev_sum, t, v);
	} else {
		p->stats.late++;
		return false;
	}
	return true;
}

static void apply_value(struct rill_projection *p, struct proj_slot *s, union proj_val v,
			bool fresh)
{
	enum rill_field_type t = p->field.type;
	switch (p->kind) {
	case RILL_PROJECTION_SUM:
	case RILL_PROJECTION_AVG:
		acc_add(&s->sum, t, v);
		break;
	case RILL_PROJECTION_MIN:
	case RILL_PROJECTION_MAX:
		if (fresh || val_beyond(t, v, s->value, p->kind == RILL_PROJECTION_MIN))
			s->value = v;
		break;
	case RILL_PROJECTION_LAST:
		s->value = v;
		break;
	default:
		break;
	}
	s->count++;
}

/*
 * The projection's one field (none for the count kinds) straight from an event of a newer
 * version whose whole read as the projection's version failed: that read needs a value
 * for every field, and a newer version may drop one the projection never reads (BACKWARD,
 * the default mode, allows it). The field is found by name in the event's own version, as
 * the reader maps a newer version (by name), and promoted as the compatibility rules
 * promote (i64 or u64 to f64, i64 to and from timestamp). 0 with @v, or
 * RILL_E_SCHEMA_UPCAST when the event has no such field.
 */
static int proj_field_direct(struct rill_projection *p, const struct rill_record *rec,
			     union proj_val *v)
{
	v->u = 0;
	if (p->field.type == 0)
		return 0; /* a count reads no field (the event's version exists: it was read) */
	if (p->direct_version != rec->schema_version) {
		const struct rill_schema *src =
			rill_schema_get_id(p->reg, p->type_id, rec->schema_version);
		p->direct_version = rec->schema_version;
		p->direct_ok = src != NULL &&
			       rill_schema_field_ref(src, p->field_name, &p->direct_field) == 0 &&
			       schema_promotable(p->direct_field.type, p->field.type);
	}
	if (!p->direct_ok)
		return RILL_E_SCHEMA_UPCAST;
	uint64_t bits = rill_field_u64(rec->payload, p->direct_field);
	if (p->field.type == RILL_FIELD_F64 && p->direct_field.type == RILL_FIELD_I64)
		v->f = (double)(int64_t)bits;
	else if (p->field.type == RILL_FIELD_F64 && p->direct_field.type == RILL_FIELD_U64)
		v->f = (double)bits;
	else
		v->u = bits; /* the same type, or i64 and timestamp: the same bits */
	return 0;
}

int rill_projection_apply(struct rill_projection *p, const struct rill_record *rec, uint64_t offset)
{
	if (p->ops != NULL) {
		int rc = p->ops->apply(p->state, rec, offset);
		if (rc != 0)
			p->stats.errors++;
		else
			p->stats.applied++;
		return rc;
	}
	if (rec->type_id != p->type_id) {
		p->stats.ignored++;
		return 0;
	}
	const void *payload;
	uint32_t payload_bytes;
	union proj_val v = {0};
	int rc = rill_schema_reader_read(p->reader, rec->schema_version, rec->payload,
					 rec->payload_bytes, true, &payload, &payload_bytes, NULL);
	/* A newer version read whole as the projection's failed: its one field by name (an
	 * older version goes up through the upcasters, which this must not bypass; an
	 * unknown version is no UPCAST error). */
	if (rill_likely(rc == 0)) {
		if (p->field.type != 0) /* the 8 bytes, whatever the type */
			v.u = rill_field_u64(payload, p->field);
	} else if (rc != RILL_E_SCHEMA_UPCAST ||
		   rec->schema_version <=
			   rill_schema_version(rill_schema_reader_schema(p->reader)) ||
		   (rc = proj_field_direct(p, rec, &v)) != 0) {
		p->stats.errors++;
		return rc;
	}
	uint32_t before = p->key_count;
	struct proj_slot *s = slot_find(p, rec->key, rec->key_bytes, true);
	if (rill_unlikely(s == NULL)) {
		p->stats.refused_full++;
		return -ENOSPC;
	}
	bool fresh = p->key_count != before;
	if (kind_windowed(p->kind)) {
		if (!apply_window(p, s, rec->timestamp_ns, v, fresh))
			return 0; /* late */
	} else {
		apply_value(p, s, v, fresh);
	}
	s->offset = offset;
	p->stats.applied++;
	return 0;
}

/* The accumulator as the value's sum fields. */
static void acc_out(const struct rill_projection *p, union proj_acc a, uint64_t count,
		    struct rill_projection_value *out)
{
	enum rill_field_type t = p->field.type;
	if (t == RILL_FIELD_F64) {
		out->f64 = a.f;
		out->avg = count ? a.f / (double)count : 0;
		/* Finite values can add up past a double's range: ±inf, said (sums of finite
		 * values never give NaN, and the schema refuses non-finite values). */
		out->sum_overflow = !isfinite(a.f);
		return;
	}
	proj_int128 lo = t == RILL_FIELD_U64 ? 0 : (proj_int128)INT64_MIN;
	proj_int128 hi = t == RILL_FIELD_U64 ? (proj_int128)UINT64_MAX : (proj_int128)INT64_MAX;
	out->sum_overflow = a.i < lo || a.i > hi;
	proj_int128 clamped = a.i < lo ? lo : a.i > hi ? hi : a.i;
	if (t == RILL_FIELD_U64)
		out->u64 = (uint64_t)clamped;
	else
		out->i64 = (int64_t)clamped;
	out->avg = count ? (double)a.i / (double)count : 0;
}

bool rill_projection_get(const struct rill_projection *p, const void *key, uint32_t key_bytes,
			 struct rill_projection_value *out)
{
	if (p->ops != NULL)
		return false; /* the application's own answers: rill_projection_query */
	/* slot_find does not write without @insert. */
	const struct proj_slot *s = slot_find((struct rill_projection *)p, key, key_bytes, false);
	if (s == NULL)
		return false;
	memset(out, 0, sizeof(*out));
	out->count = s->count;
	out->offset = s->offset;
	out->is_float = p->field.type == RILL_FIELD_F64;
	out->window_start_ns = s->window_start;
	switch (p->kind) {
	case RILL_PROJECTION_SUM:
	case RILL_PROJECTION_AVG:
	case RILL_PROJECTION_WINDOW_SUM:
		acc_out(p, s->sum, s->count, out);
		break;
	case RILL_PROJECTION_MIN:
	case RILL_PROJECTION_MAX:
	case RILL_PROJECTION_LAST:
		out->i64 = s->value.i;
		out->u64 = s->value.u;
		out->f64 = s->value.f;
		break;
	default:
		break;
	}
	return true;
}

void rill_projection_stats(const struct rill_projection *p, struct rill_projection_stats *out)
{
	*out = p->stats;
	out->keys = p->key_count;
}

/* ---- Snapshots ------------------------------------------------------------------------- */

#define PROJ_SNAP_MAGIC   0x31535052u /* "RPS1" */
#define PROJ_SNAP_VERSION 1u

/* docs/FORMAT.md, "Projection snapshots". Little-endian, as every rill format. */
struct proj_snap_header {
	uint32_t magic;
	uint32_t version;
	uint32_t kind;
	uint32_t type_id;
	uint16_t read_version; /* the schema version the projection reads as */
	uint16_t field_type;   /* 0 for count kinds */
	uint32_t field_offset;
	uint64_t window_ns;
	uint32_t key_count;
	uint32_t reserved;
	uint64_t key_store_used;
	uint64_t applied, ignored, refused_full, late, errors;
};
_Static_assert(sizeof(struct proj_snap_header) == 88, "snapshot header layout");

struct proj_snap_entry {
	uint32_t key_bytes;
	uint32_t reserved;
	uint64_t offset, count;
	uint64_t sum[2]; /* the accumulator's 16 bytes */
	uint64_t value;
	uint64_t window_start, prev_start, prev_count;
	uint64_t prev_sum[2];
};
_Static_assert(sizeof(struct proj_snap_entry) == 88, "snapshot entry layout");
_Static_assert(sizeof(union proj_acc) == 16, "accumulators are 16 bytes");

static uint16_t read_version(const struct rill_projection *p)
{
	return rill_schema_version(rill_schema_reader_schema(p->reader));
}

size_t rill_projection_snapshot_bytes(const struct rill_projection *p)
{
	if (p->ops != NULL) {
		int64_t n = p->ops->snapshot(p->state, NULL, 0);
		return n > 0 ? (size_t)n : 0;
	}
	return sizeof(struct proj_snap_header) +
	       (size_t)p->key_count * sizeof(struct proj_snap_entry) +
	       rill_align_up(p->key_store_used, 8) + 8;
}

static void header_fill(const struct rill_projection *p, struct proj_snap_header *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = PROJ_SNAP_MAGIC;
	h->version = PROJ_SNAP_VERSION;
	h->kind = (uint32_t)p->kind;
	h->type_id = p->type_id;
	h->read_version = read_version(p);
	h->field_type = (uint16_t)p->field.type;
	h->field_offset = p->field.offset;
	h->window_ns = p->window_ns;
	h->key_count = p->key_count;
	h->key_store_used = p->key_store_used;
	h->applied = p->stats.applied;
	h->ignored = p->stats.ignored;
	h->refused_full = p->stats.refused_full;
	h->late = p->stats.late;
	h->errors = p->stats.errors;
}

/*
 * Layout: header, one entry per key in order of first appearance, the key bytes in the
 * same order (padded to 8), then CRC32C of everything before and 4 zero bytes.
 */
int64_t rill_projection_snapshot(const struct rill_projection *p, void *buf, size_t buf_bytes)
{
	if (p->ops != NULL) {
		int64_t n = p->ops->snapshot(p->state, buf, buf_bytes);
		/* Longer than @buf, which is what its size-only call asked for: the projection
		 * broke its contract (not a lack of space anywhere, as -ENOSPC would say). */
		return n >= 0 && (size_t)n > buf_bytes ? -EPROTO : n; /* its error, or length */
	}
	size_t need = rill_projection_snapshot_bytes(p);
	if (buf_bytes < need)
		return -ENOSPC;
	uint8_t *out = buf;
	memset(out, 0, need);
	struct proj_snap_header h;
	header_fill(p, &h);
	memcpy(out, &h, sizeof(h));
	size_t pos = sizeof(h);
	for (uint32_t k = 0; k < p->key_count; k++) {
		const struct proj_slot *s = &p->slots[p->order[k]];
		struct proj_snap_entry e = {.key_bytes = s->key_bytes,
					    .offset = s->offset,
					    .count = s->count,
					    .value = s->value.u,
					    .window_start = s->window_start,
					    .prev_start = s->prev_start,
					    .prev_count = s->prev_count};
		memcpy(e.sum, &s->sum, sizeof(e.sum));
		memcpy(e.prev_sum, &s->prev_sum, sizeof(e.prev_sum));
		memcpy(out + pos, &e, sizeof(e));
		pos += sizeof(e);
	}
	memcpy(out + pos, p->key_store, p->key_store_used); /* P1: in order of appearance */
	pos += rill_align_up(p->key_store_used, 8);
	uint32_t crc = rill_crc32c(out, pos);
	memcpy(out + pos, &crc, sizeof(crc));
	return (int64_t)need;
}

static int snap_fail(struct rill_schema_error *err, const struct rill_projection *p,
		     const char *why)
{
	return schema_fail(err, RILL_E_PROJECTION_SNAPSHOT, "projection %s: snapshot %s", p->name,
			   why);
}

/* The header's checks: intact, this definition, within this projection's limits. */
static int restore_header(const struct rill_projection *p, const uint8_t *in, size_t bytes,
			  struct proj_snap_header *h, struct rill_schema_error *err)
{
	if (bytes < sizeof(*h) + 8)
		return snap_fail(err, p, "shorter than its header");
	uint32_t trailer[2];
	memcpy(trailer, in + bytes - 8, sizeof(trailer));
	if (trailer[0] != rill_crc32c(in, bytes - 8) || trailer[1] != 0)
		return snap_fail(err, p, "CRC32C mismatch");
	memcpy(h, in, sizeof(*h));
	struct proj_snap_header mine;
	header_fill(p, &mine);
	if (h->magic != PROJ_SNAP_MAGIC || h->version != PROJ_SNAP_VERSION)
		return snap_fail(err, p, "of an unknown format");
	if (h->reserved != 0)
		return snap_fail(err, p, "with reserved bytes set");
	if (h->kind != mine.kind || h->type_id != mine.type_id ||
	    h->read_version != mine.read_version || h->field_type != mine.field_type ||
	    h->field_offset != mine.field_offset || h->window_ns != mine.window_ns)
		return snap_fail(err, p, "of another definition");
	if (h->key_count > RILL_PROJECTION_KEYS_MAX ||
	    h->key_store_used > RILL_PROJECTION_KEY_STORE_MAX)
		return snap_fail(err, p, "beyond what any projection holds");
	uint64_t need = sizeof(*h) + (uint64_t)h->key_count * sizeof(struct proj_snap_entry) +
			rill_align_up(h->key_store_used, 8) + 8;
	if (need != bytes)
		return snap_fail(err, p, "size disagrees with its header");
	/* Sound, but written under larger limits than this projection's: told apart from
	 * damage (-ENOSPC), for its caller must not skip it as damaged when it is all that
	 * still knows the keys' counts (their events gone with retention). */
	if (h->key_count > p->keys_max || h->key_store_used > p->key_store_bytes)
		return schema_fail(err, -ENOSPC,
				   "projection %s: the snapshot holds %" PRIu32 " keys in %" PRIu64
				   " bytes, beyond keys_max (%" PRIu32 ") or key_store_bytes "
				   "(%" PRIu64 ")",
				   p->name, h->key_count, h->key_store_used, p->keys_max,
				   p->key_store_bytes);
	return 0;
}

static int restore_entry(struct rill_projection *p, const struct proj_snap_entry *e,
			 const uint8_t *key, struct rill_schema_error *err)
{
	if (e->reserved != 0 || e->key_bytes > RILL_KEY_BYTES_MAX)
		return snap_fail(err, p, "entry malformed");
	if (e->count == 0) /* a key exists once an event was applied to it */
		return snap_fail(err, p, "entry without events");
	bool windowed = kind_windowed(p->kind);
	if (windowed && (e->window_start % p->window_ns != 0 ||
			 (e->prev_count > 0 && e->prev_start + p->window_ns != e->window_start)))
		return snap_fail(err, p, "entry with windows out of step"); /* P3 */
	if (!windowed && (e->window_start | e->prev_start | e->prev_count | e->prev_sum[0] |
			  e->prev_sum[1]) != 0)
		return snap_fail(err, p, "entry with window fields for a kind without windows");
	uint32_t before = p->key_count;
	struct proj_slot *s = slot_find(p, key, e->key_bytes, true);
	if (s == NULL || p->key_count == before)
		return snap_fail(err, p, s == NULL ? "beyond the key store" : "repeats a key");
	s->offset = e->offset;
	s->count = e->count;
	s->value.u = e->value;
	s->window_start = e->window_start;
	s->prev_start = e->prev_start;
	s->prev_count = e->prev_count;
	memcpy(&s->sum, e->sum, sizeof(e->sum));
	memcpy(&s->prev_sum, e->prev_sum, sizeof(e->prev_sum));
	return 0;
}

static void clear_state(struct rill_projection *p)
{
	for (uint32_t k = 0; k < p->key_count; k++)
		memset(&p->slots[p->order[k]], 0, sizeof(struct proj_slot));
	p->key_count = 0;
	p->key_store_used = 0;
	p->sealed = false;
	memset(&p->stats, 0, sizeof(p->stats));
}

void rill_projection_reset(struct rill_projection *p)
{
	RILL_ASSERT(p->ops == NULL); /* a custom state is the application's */
	clear_state(p);
}

bool rill_projection_sealed(const struct rill_projection *p)
{
	return p->sealed;
}

void rill_projection_limits(const struct rill_projection *p, uint32_t *keys_max,
			    uint64_t *key_store_bytes)
{
	*keys_max = p->keys_max;
	*key_store_bytes = p->key_store_bytes;
}

bool rill_projection_snapshot_keys(const void *buf, size_t buf_bytes, uint32_t *keys,
				   uint64_t *key_bytes)
{
	struct proj_snap_header h;
	if (buf_bytes < sizeof(h) + 8)
		return false;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != PROJ_SNAP_MAGIC || h.version != PROJ_SNAP_VERSION)
		return false;
	*keys = h.key_count;
	*key_bytes = h.key_store_used;
	return true;
}

int rill_projection_restore(struct rill_projection *p, const void *buf, size_t buf_bytes,
			    struct rill_schema_error *err)
{
	if (p->key_count != 0 || p->stats.applied != 0 || p->stats.ignored != 0)
		return -EBUSY;
	if (p->ops != NULL) {
		int rc = p->ops->restore(p->state, buf, buf_bytes);
		if (rc == 0)
			return 0;
		/* Leave it empty, as a refused restore does: a fresh state in place of what
		 * the refusal may have left half-loaded. */
		p->ops->destroy(p->state);
		p->state = p->ops->init(p->arg, p->partition);
		if (p->state == NULL) {
			p->ops = NULL; /* a built-in shell with no keys: destroy stays safe */
			return -ENOMEM;
		}
		return schema_fail(err, RILL_E_PROJECTION_SNAPSHOT,
				   "projection %s: its restore refused the snapshot (%d)", p->name,
				   rc);
	}
	const uint8_t *in = buf;
	struct proj_snap_header h;
	int rc = restore_header(p, in, buf_bytes, &h, err);
	if (rc != 0)
		return rc;
	const uint8_t *entries = in + sizeof(h);
	const uint8_t *keys = entries + (size_t)h.key_count * sizeof(struct proj_snap_entry);
	uint64_t key_pos = 0;
	for (uint32_t k = 0; k < h.key_count && rc == 0; k++) {
		struct proj_snap_entry e;
		memcpy(&e, entries + (size_t)k * sizeof(e), sizeof(e));
		if (e.key_bytes > h.key_store_used - key_pos) {
			rc = snap_fail(err, p, "keys run past their store");
			break;
		}
		rc = restore_entry(p, &e, keys + key_pos, err);
		key_pos += e.key_bytes;
	}
	if (rc == 0 && key_pos != h.key_store_used)
		rc = snap_fail(err, p, "key store size disagrees with its keys");
	for (uint64_t i = key_pos; rc == 0 && i < rill_align_up(key_pos, 8); i++)
		if (keys[i] != 0) /* canonical: the padding is zero */
			rc = snap_fail(err, p, "with padding bytes set");
	if (rc != 0) {
		clear_state(p); /* all or nothing */
		return rc;
	}
	p->stats.applied = h.applied;
	p->stats.ignored = h.ignored;
	p->stats.refused_full = h.refused_full;
	p->stats.late = h.late;
	p->stats.errors = h.errors;
	return 0;
}

bool rill_projection_refused_with_room(const struct rill_projection *p)
{
	return p->ops == NULL && p->stats.refused_full > 0 && p->key_count < p->keys_max;
}

void rill_projection_seal(struct rill_projection *p)
{
	RILL_ASSERT(p->ops == NULL); /* a custom state is the application's */
	p->sealed = true;
}
