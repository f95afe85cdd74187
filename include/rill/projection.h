/*
 * Projections as the embedding API shows them: the built-in kinds of read model and the
 * value a query returns for one key. The engine's side is engine/projection.h.
 */
#ifndef RILL_PROJECTION_H
#define RILL_PROJECTION_H

#include <stdbool.h>
#include <stdint.h>

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
	bool sum_overflow; /* an integer sum is beyond the field type's 64 bits: clamped */
	uint64_t window_start_ns; /* window kinds: the window these values belong to */
	uint64_t offset;          /* offset of the last event applied for the key */
};

#ifdef __cplusplus
}
#endif
#endif /* RILL_PROJECTION_H */
