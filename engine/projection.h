/*
 * Built-in projections: read models folded from a topic's events, updated in place right
 * after append (ARCHITECTURE.md, "The data path", step 5). A projection is bound to one
 * event type read as one schema version (through a schema reader, so events of every
 * version count, upcast at read time), and keeps per key:
 *
 *   count         events
 *   sum           the sum of a numeric field (exact: 128-bit for integer fields)
 *   min, max      the least and greatest value of the field
 *   last          the value of the latest event
 *   avg           sum / count
 *   window_count  events per tumbling window of event time (timestamp_ns)
 *   window_sum    the field's sum per tumbling window
 *
 * A windowed projection keeps, per key, the current window and the one before it; an event
 * older than both is late: counted, not applied.
 *
 * Memory: the key table and the key bytes are allocated once, at create, to the limits of
 * the config; applying never allocates. A projection whose table is full refuses new keys
 * with -ENOSPC (counted) and keeps every key it has; a key it holds has every event of it
 * folded (one restored with refusals into larger limits takes no new key: see
 * rill_projection_sealed).
 *
 * Snapshots serialise the whole state into a caller's buffer (format in docs/FORMAT.md,
 * "Projection snapshots", CRC32C at the end); restoring one into a fresh projection of the
 * same definition gives the very same state.
 *
 * Threading: a projection belongs to its shard's thread; nothing here locks. Apply and get
 * never block and never allocate.
 */
#ifndef RILL_ENGINE_PROJECTION_H
#define RILL_ENGINE_PROJECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rill/projection.h"
#include "rill/record.h"
#include "rill/schema.h"

struct rill_projection;

/* Projection limits. */
#define RILL_PROJECTION_KEYS_MAX       (1u << 24)   /* keys per projection */
#define RILL_PROJECTION_KEY_STORE_MAX  (1ull << 32) /* bytes of key text per projection */
#define RILL_PROJECTION_NAME_BYTES_MAX 128u

struct rill_projection_config {
	const char *name; /* [A-Za-z_][A-Za-z0-9_.-]*, at most 128 bytes */
	const char *type; /* the event type, registered */
	uint16_t version; /* the version the projection reads events as (0: latest) */
	enum rill_projection_kind kind;
	const char *field;  /* numeric field (i64, u64, f64, timestamp); NULL for count kinds */
	uint64_t window_ns; /* window kinds: the window's length (> 0) */
	uint32_t keys_max;  /* distinct keys kept (default 16,384) */
	uint64_t key_store_bytes; /* bytes of key text kept (default 4 MiB) */
};

/* rill_projection_config_default - zero fields above take their defaults. */
void rill_projection_config_default(struct rill_projection_config *config);

/* Counters of a projection. */
struct rill_projection_stats {
	uint64_t applied;      /* events folded in */
	uint64_t ignored;      /* events of other types */
	uint64_t keys;         /* distinct keys held */
	uint64_t refused_full; /* events of a new key refused: table or key store full */
	uint64_t late;         /* window kinds: events older than the windows kept */
	uint64_t errors;       /* events that could not be read as the projection's version */
};

/*
 * rill_projection_create - a projection of @config over types of @reg.
 * Returns 0, -EINVAL (with @err naming what: the name, kind, window, limits), -ENOENT (no
 * such type, version or field), RILL_E_SCHEMA_INVALID (a field that is not numeric), or
 * -ENOMEM. Control path: allocates everything the projection will use.
 */
int rill_projection_create(struct rill_projection **out, struct rill_schema_registry *reg,
			   const struct rill_projection_config *config,
			   struct rill_schema_error *err);

/*
 * rill_projection_create_custom - a projection whose read model is the application's
 * (@ops, with @arg passed to init), for one partition. Apply, snapshot, restore and destroy
 * go to @ops; rill_projection_get answers false (rill_projection_query answers).
 * Returns 0, -EINVAL (a bad name or missing operation) or -ENOMEM.
 */
int rill_projection_create_custom(struct rill_projection **out, const char *name,
				  const struct rill_projection_ops *ops, void *arg,
				  uint32_t partition);

/* rill_projection_query - a custom projection's answer for @key (ops->query), or
 * -EINVAL for a built-in one. */
int64_t rill_projection_query(const struct rill_projection *p, const void *key, uint32_t key_bytes,
			      void *out, size_t out_bytes);

void rill_projection_destroy(struct rill_projection *p);

/* rill_projection_name_valid - @name follows the naming rule of projections. */
bool rill_projection_name_valid(const char *name);

/* The projection's name and the type id it folds. */
const char *rill_projection_name(const struct rill_projection *p);
uint32_t rill_projection_type_id(const struct rill_projection *p);

/*
 * rill_projection_apply - fold the event @rec, at @offset of its partition, into the read
 * model. Events of other types are ignored. The payload is trusted (the write model
 * validated it before append); it is read in place, or upcast to the projection's version.
 * Returns 0 (applied, ignored or late), -ENOSPC for a new key with the table full, or the
 * reader's error (RILL_E_SCHEMA_UPCAST, -ENOENT for an unknown version); each counted.
 */
int rill_projection_apply(struct rill_projection *p, const struct rill_record *rec,
			  uint64_t offset);

/* rill_projection_get - the value for @key; returns true, or false for a key never seen. */
bool rill_projection_get(const struct rill_projection *p, const void *key, uint32_t key_bytes,
			 struct rill_projection_value *out);

void rill_projection_stats(const struct rill_projection *p, struct rill_projection_stats *out);

/* rill_projection_snapshot_bytes - the size a snapshot of @p's present state takes. */
size_t rill_projection_snapshot_bytes(const struct rill_projection *p);

/*
 * rill_projection_snapshot - write @p's whole state to @buf. Returns the bytes written or
 * -ENOSPC when @buf_bytes is below rill_projection_snapshot_bytes; a custom projection's
 * error, or -EPROTO when it says it wrote more than @buf_bytes.
 */
int64_t rill_projection_snapshot(const struct rill_projection *p, void *buf, size_t buf_bytes);

/*
 * rill_projection_restore - load a snapshot into @p, which must be fresh (nothing applied)
 * and of the same definition. Returns 0, -EBUSY for a projection that holds state,
 * RILL_E_PROJECTION_SNAPSHOT for bytes that are not a sound snapshot of this definition
 * (@err says why), or -ENOSPC for a sound one holding more keys or key bytes than @p's
 * limits take (written under larger ones; rill_projection_snapshot_keys says how many).
 * The state is restored as it was, refusals included: under the limits it was folded with
 * (an as-of read) it then folds on exactly as the projection did.
 */
int rill_projection_restore(struct rill_projection *p, const void *buf, size_t buf_bytes,
			    struct rill_schema_error *err);

/*
 * rill_projection_snapshot_keys - the keys a built-in projection's snapshot holds and the
 * bytes of their text: what restoring it needs of keys_max and key_store_bytes. False for
 * bytes too short or of another format (the header is read, nothing else checked).
 */
bool rill_projection_snapshot_keys(const void *buf, size_t buf_bytes, uint32_t *keys,
				   uint64_t *key_bytes);

/* rill_projection_limits - a built-in projection's keys_max and key_store_bytes. */
void rill_projection_limits(const struct rill_projection *p, uint32_t *keys_max,
			    uint64_t *key_store_bytes);

/*
 * rill_projection_refused_with_room - true for a built-in projection whose state refused
 * new keys for lack of room (refused_full) and that has room for more: restored after a
 * restart, its limits may have been raised since (the state does not say under which
 * limits it refused), and a key refused then would now be taken at its next event, its
 * count missing the events of before (P4). Only a fold of the whole log
 * (rill_projection_reset, then every event from offset 0) counts such keys; else the
 * caller seals it (rill_projection_seal).
 */
bool rill_projection_refused_with_room(const struct rill_projection *p);

/* rill_projection_seal - a built-in projection takes no new key from now on (-ENOSPC,
 * counted in refused_full); the keys it holds fold on. rill_projection_sealed says so. */
void rill_projection_seal(struct rill_projection *p);
bool rill_projection_sealed(const struct rill_projection *p);

/* rill_projection_reset - empty a built-in projection (state and counters), as if fresh. */
void rill_projection_reset(struct rill_projection *p);

#endif /* RILL_ENGINE_PROJECTION_H */
