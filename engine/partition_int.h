/*
 * Internals of a partition (engine/partition.h), shared by partition.c (the write model)
 * and partition_snapshot.c (snapshots and as-of reads). Owner shard's thread only.
 */
#ifndef RILL_ENGINE_PARTITION_INT_H
#define RILL_ENGINE_PARTITION_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/partition.h"

struct dedup_entry {
	uint64_t producer_id; /* 0: empty */
	uint64_t first_seq;   /* the first sequence this partition holds from it */
	uint64_t last_seq;
	uint64_t offsets[RILL_PARTITION_DEDUP_WINDOW]; /* W2 */
};

/*
 * The newest valid snapshot found at open, kept until its projections are bound: the
 * built-in ones while the engine opens; custom ones (code, which the application defines
 * again after each open) whenever they come. Until then (kept), its file is not deleted,
 * so that the log from it stays too, and a snapshot taken at its very offset carries
 * their states over (at that offset they are exact).
 */
struct partition_snap {
	uint8_t *buf; /* the whole file, verified; NULL: none */
	uint64_t bytes;
	uint64_t offset; /* the state covers offsets below this */
	bool kept;       /* past open: held for projections not bound again yet */
};

struct rill_partition {
	struct rill_log *log;
	struct rill_io *io;
	char dir[4096];
	struct rill_schema_registry *schemas;
	struct dedup_entry *dedup;
	uint64_t dedup_mask;
	unsigned dedup_shift; /* 64 - log2(capacity) */
	uint32_t producers_max;
	uint32_t snapshots_kept; /* config.snapshots_kept: 0, none deleted at open */
	/* The dedup table knows every producer that wrote at or after this offset (W4). */
	uint64_t history_from;
	bool snapshots;           /* config.snapshots: the log keeps what they need */
	uint64_t snapshot_offset; /* the newest usable snapshot's offset (0: none) */
	uint64_t snapshot_floor;  /* the oldest kept one's: retention keeps from it */
	char snap_error[192];     /* what the last snapshot's error came from, or "" */
	/* The highest record timestamp below the loaded snapshot's offset, and whether the
	 * partition knows the highest of every record it ever held, deleted ones too: so
	 * since its first event, or from a snapshot that knew it (as-of by time, W5). */
	uint64_t snap_timestamp_max;
	bool timestamp_max_known;
	/* As-of by time (snap_gone_timestamp_max): the oldest snapshot at or past the log's
	 * start whose timestamp_max is known, once looked up; valid until the start passes
	 * its offset (every later snapshot lies above it). */
	bool gone_cached;
	uint64_t gone_snap_offset;
	uint64_t gone_timestamp_max; /* ns: no record below gone_snap_offset is stamped later */
	bool snap_dir_made;          /* snapshots/ exists and its entry is durable */
	struct partition_snap snap;  /* loaded at open */
	struct rill_projection *projections[RILL_PARTITION_PROJECTIONS_MAX];
	uint32_t projection_count;
	struct rill_partition_stats stats;
};

struct dedup_entry *dedup_slot(const struct rill_partition *part, uint64_t producer_id);
void dedup_record(struct rill_partition *part, struct dedup_entry *e, uint64_t producer_id,
		  uint64_t seq, uint64_t offset);
/* Walk the log from @from_offset: rebuild dedup (if @dedup), fold into @proj (if any). */
int partition_replay(struct rill_partition *part, uint64_t from_offset, bool dedup,
		     struct rill_projection *proj);
/* partition_snapshot.c: load the newest usable snapshot at open (dedup and part->snap),
 * delete those past snapshots_kept, set the floor. -ENOSPC, with @why saying so, when it
 * holds more producers than producers_max. */
int partition_snapshot_load(struct rill_partition *part, char *why, size_t why_bytes);
/* Verify @buf as the snapshot of @offset and load its dedup table into @part's empty one.
 * 0, or RILL_E_PROJECTION_SNAPSHOT with the table left empty. (Also the fuzz target's.) */
int partition_snapshot_check(struct rill_partition *part, const uint8_t *buf, uint64_t bytes,
			     uint64_t offset);
/* The state stored for projection @name in a checked snapshot, or NULL. */
const uint8_t *partition_snapshot_state(const uint8_t *buf, const char *name,
					uint64_t *state_bytes);
void partition_dedup_clear(struct rill_partition *part);
void partition_snap_free(struct partition_snap *snap);

#endif /* RILL_ENGINE_PARTITION_INT_H */
