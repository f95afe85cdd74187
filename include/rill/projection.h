/*
 * Projections as the embedding API shows them: the built-in kinds of read model and the
 * value a query returns for one key. The engine's side is engine/projection.h.
 */
#ifndef RILL_PROJECTION_H
#define RILL_PROJECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rill/record.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rill_projection_kind {
	RILL_PROJECTION_COUNT = 1,
	RILL_PROJECTION_SUM = 2,
	RILL_PROJECTION_MIN = 3,
	RILL_PROJECTION_MAX = 4,
	RILL_PROJECTION_LAST = 5,
	RILL_PROJECTION_AVG = 6,
	RILL_PROJECTION_WINDOW_COUNT = 7,
	RILL_PROJECTION_WINDOW_SUM = 8,
};

/* What a projection holds for one key. */
struct rill_projection_value {
	uint64_t count;    /* events applied (in the window, for window kinds) */
	bool is_float;     /* an f64 field: read f64; else i64 (i64, timestamp) or u64 (u64) */
	int64_t i64;       /* sum (clamped to int64; see sum_overflow), min, max, last */
	uint64_t u64;      /* the same for u64 fields (sum clamped to uint64) */
	double f64;        /* the same for f64 fields */
	double avg;        /* avg: sum / count, for every numeric field */
	bool sum_overflow; /* an integer sum is beyond the field type's 64 bits: clamped; an
			    * f64 sum beyond a double's range: f64 and avg are ±inf */
	uint64_t window_start_ns; /* window kinds: the window these values belong to */
	uint64_t offset;          /* offset of the last event applied for the key */
};

/*
 * A projection written by the application, in C: a read model of its own, folded on the
 * owner shard from every event of a topic's partition, right after append, from the
 * record's bytes in place. One state per partition. Every function runs on the partition's
 * shard thread (different partitions' states on different threads at once): none may
 * block or call the engine, and each sees only its own state.
 */
struct rill_projection_ops {
	/* A fresh, empty state for @partition; NULL when out of memory. */
	void *(*init)(void *arg, uint32_t partition);
	/* Fold @event, at @offset, into @state (events of every type come). 0, or an error
	 * (counted; the event stays in the log all the same). */
	int (*apply)(void *state, const struct rill_record *event, uint64_t offset);
	/* The answer for @key into @out: its length (<= @out_bytes), -ENOENT, -ENOSPC when
	 * @out is too small, or another -errno. */
	int64_t (*query)(void *state, const void *key, uint32_t key_bytes, void *out,
			 size_t out_bytes);
	/* The whole state into @buf: its length; with @buf NULL, only the length. The engine
	 * asks for the length, then passes a buffer of exactly that many bytes: the state
	 * written must have that length, no more and no less. A mismatch, or an error
	 * (-errno), fails that partition's snapshot (-EPROTO for a mismatch; the previous
	 * ones stay, and it is tried again later). */
	int64_t (*snapshot)(void *state, void *buf, size_t buf_bytes);
	/* Load what snapshot wrote into a fresh state: 0, or -EINVAL for bytes it refuses
	 * (the projection is then rebuilt from the log instead). */
	int (*restore)(void *state, const void *buf, size_t buf_bytes);
	void (*destroy)(void *state);
};

#ifdef __cplusplus
}
#endif
#endif /* RILL_PROJECTION_H */
