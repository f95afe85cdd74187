/*
 * A partition on its owner shard: the write model in front of the partition's log and the
 * projections behind it (ARCHITECTURE.md, "The data path", steps 3 to 6). Each event
 * written is, in order:
 *
 *   1. checked: its type and version are registered and its payload is valid for them;
 *   2. deduplicated: an idempotent producer (producer id != 0) numbers its events
 *      0, 1, 2, ... per partition (sequences never wrap), and a refused event does not
 *      use its number up. A retry of a sequence already written is acknowledged again
 *      and not appended (its content is not compared): with its original offset for the
 *      last RILL_PARTITION_DEDUP_WINDOW, with UINT64_MAX ("no longer known") for older
 *      ones. A sequence past the next one is a gap, refused (RILL_E_WRITE_SEQUENCE_GAP)
 *      until the ones before it are written: a datagram overtaken by the next one, or the
 *      events a pipelining producer sent after one that was refused, come again. A
 *      producer new here starts at 0 for the same reason. Tables written before these
 *      rules may hold producers that started elsewhere: below that start is refused
 *      (RILL_E_WRITE_SEQUENCE). When the dedup table does not cover the whole history
 *      (retention deleted part of the log, and no snapshot kept its producers), a retry
 *      of sequence 0 by a producer whose whole history was deleted goes in again, and any
 *      other sequence of a producer unknown here is refused (RILL_E_WRITE_SEQUENCE): a
 *      retry of an event in the deleted part could not be recognised. With
 *      config.snapshots (the engine's default) the table always covers it.
 *   3. appended to the log, getting its offset ("applied" may be acknowledged from here);
 *   4. folded into every projection bound to the partition, from the same bytes;
 *   5. durable once the log's group commit covering it completes.
 *
 * The dedup state and the projections are rebuilt from the log when the partition opens
 * (and a projection bound later is brought up to date from the log), so idempotence and
 * read models survive restarts with no window: what the log holds, they reflect.
 *
 * Threading: a partition belongs to its shard's thread; nothing here locks. Write and poll
 * never block (poll with a wait does); open and projection_add read the log and block.
 */
#ifndef RILL_ENGINE_PARTITION_H
#define RILL_ENGINE_PARTITION_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/io.h"
#include "engine/log.h"
#include "engine/projection.h"
#include "rill/record.h"
#include "rill/schema.h"

struct rill_partition;

/* Partition limits. */
#define RILL_PARTITION_PRODUCERS_MAX      (1u << 20)   /* idempotent producers tracked */
#define RILL_PARTITION_PROJECTIONS_MAX    64u          /* projections bound to one partition */
#define RILL_PARTITION_DEDUP_WINDOW       8u           /* recent sequences kept per producer */
#define RILL_PARTITION_SNAPSHOTS_MAX      64u          /* snapshots kept per partition */
#define RILL_PARTITION_SNAPSHOT_BYTES_MAX (1ull << 32) /* one snapshot file */
#define RILL_PARTITION_GROUP_MAX          16u          /* events one command may turn into */
_Static_assert(RILL_PARTITION_GROUP_MAX <= RILL_LOG_GROUP_MAX, "a command's events fit a group");

struct rill_partition_config {
	struct rill_io *io;                   /* the shard's I/O backend */
	const char *dir;                      /* the partition's log directory */
	struct rill_schema_registry *schemas; /* types and versions events must follow */
	struct rill_log_config log;           /* segments, group commit, retention, durability */
	uint32_t producers_max;               /* default 4,096 */
	bool snapshots; /* periodic snapshots will come: retention waits for the first */
	/* Snapshots kept (1 .. RILL_PARTITION_SNAPSHOTS_MAX), applied at open as well as by
	 * rill_partition_snapshot: the older ones go there and then, so that a lowered count
	 * frees retention even in a partition that takes no new snapshot. 0 (the default):
	 * none deleted at open. */
	uint32_t snapshots_kept;
};

/* rill_partition_config_default - the log's defaults and 4,096 producers; io, dir and
 * schemas stay the caller's to set. */
void rill_partition_config_default(struct rill_partition_config *config);

/* What a write did. */
struct rill_partition_write {
	uint64_t offset; /* the event's offset (the original one for a duplicate, UINT64_MAX
			  * when that is older than the dedup window keeps) */
	/* The event is durable once this offset is: its own (a command's last event), or for
	 * a duplicate whose offset is no longer known, a later one kept in the window. */
	uint64_t sync_offset;
	bool duplicate; /* already written: acknowledged again, not appended */
};

/*
 * rill_partition_open - open the partition's log (recovering it) and rebuild the dedup
 * state from it, keep the newest config.snapshots_kept snapshots (see there), then run
 * retention once (rill_log_expire), the snapshot floor set; after that the owner calls
 * rill_log_expire on rill_partition_log about once a second.
 * @report (optional) gets the log's recovery report.
 * Returns 0, -EINVAL, -ENOMEM, -ENOSPC (with report->message) when the log or the newest
 * sound snapshot holds more idempotent producers than producers_max (written under a
 * larger limit: dropping one from the table would let its retries in twice, and skipping
 * the snapshot would lose what retention left only there), a log error (RILL_E_LOG_*, with
 * report->message) or -errno.
 * Blocks.
 */
int rill_partition_open(struct rill_partition **out, const struct rill_partition_config *config,
			struct rill_log_recovery *report);

/*
 * rill_partition_close - sync and close the log (a clean shutdown). The projections bound
 * to it stay the caller's. Returns 0 or the first error. Blocks.
 */
int rill_partition_close(struct rill_partition *part);

/* rill_partition_drop - free without any I/O, as a crash would leave it (tests). */
void rill_partition_drop(struct rill_partition *part);

/*
 * rill_partition_projection_add - bind @proj (which must be fresh, or restored from a
 * snapshot covering offsets below @from_offset) and fold into it every event the log
 * holds from @from_offset on, so it reflects the whole log before the next write.
 * Returns 0, -EEXIST if @proj is bound already, -ENOSPC past
 * RILL_PARTITION_PROJECTIONS_MAX, -EINVAL for @from_offset past the next offset, -ERANGE
 * if retention deleted events it needs, or a log read error, after which @proj may hold
 * part of the log: destroy it. Projections reflect every event written (applied), durable
 * or not yet. Blocks (reads the log).
 */
int rill_partition_projection_add(struct rill_partition *part, struct rill_projection *proj,
				  uint64_t from_offset);

/*
 * rill_partition_write - the write model for one event (steps 1 to 4 above).
 * Returns 0 with @result set, or refuses with @err naming the reason:
 *   RILL_E_WRITE_UNKNOWN_TYPE   type or version not registered
 *   RILL_E_PAYLOAD_INVALID      the payload breaks its schema
 *   RILL_E_WRITE_SEQUENCE_GAP   a producer's sequence skips ahead, or a new producer's
 *                               is not 0: not written, send the missing ones first
 *   RILL_E_WRITE_SEQUENCE       below a producer's first sequence here, or unknown here
 *                               while the log's start was deleted (see step 2)
 *   -ENOSPC                     a new producer past producers_max
 *   -EAGAIN                     the log's batch buffers are both busy: poll, then retry
 *   a RILL_E_RECORD_* error, or the log's fail-stop error
 * Nothing is appended when it refuses. Never blocks.
 */
int rill_partition_write(struct rill_partition *part, const struct rill_record *rec,
			 struct rill_partition_write *result, struct rill_schema_error *err);

/*
 * Snapshots (docs/FORMAT.md, "Partition snapshots"): DIR/snapshots/OFFSET.snap holds the
 * dedup table and the state of every projection bound, by name, as of OFFSET (the next
 * offset when it was taken; everything below it is durable first). At open the newest one
 * that verifies and that the log can continue (OFFSET between the log's first and next
 * offsets) is loaded: the dedup table from it, then the log replayed after it; projections
 * bound with rill_partition_projection_bind start from its state. A damaged snapshot is
 * skipped (counted), never trusted. With config.snapshots_kept, the older ones past it go
 * at open too.
 */

/*
 * rill_partition_snapshot - make everything written durable, write a snapshot, and keep
 * the newest @keep (1 .. RILL_PARTITION_SNAPSHOTS_MAX), deleting older ones (but the one
 * rill_partition_snapshot_release kept; one that cannot be deleted stays, and counts).
 * With config.snapshots, from then on retention deletes nothing the oldest kept snapshot
 * needs (the log after it). Returns 0, -EINVAL, or an I/O or log error (the partition goes
 * on; the previous snapshots stay). Blocks.
 */
int rill_partition_snapshot(struct rill_partition *part, uint32_t keep);

/* What the last rill_partition_snapshot's error came from beyond its code (the custom
 * projection whose snapshot failed), or "". */
const char *rill_partition_snapshot_error(const struct rill_partition *part);

/* The offset of the newest snapshot (0: none). */
uint64_t rill_partition_snapshot_offset(const struct rill_partition *part);

/*
 * rill_partition_projection_bind - bind fresh @proj, starting from the state the snapshot
 * loaded at open holds under its name (then the log after it), or else the newest kept
 * snapshot that does, or else from the first offset the log holds.
 * A snapshot whose state for @proj holds more keys or key bytes than @proj's limits take
 * (written under larger ones) refuses the bind with -ENOSPC, @why saying what it holds and
 * what to open with: it is not skipped, for once retention deleted the log before it, it
 * alone knows those keys' counts (a rebuild would answer "never seen" for keys it holds).
 * A restored state that refused keys for lack of room, into @proj with room for more
 * (rill_projection_refused_with_room), is folded again from offset 0 if the log still
 * starts there (exact under the limits @proj has); else it is sealed, taking no new key,
 * and @why says so though the bind succeeds. A projection rebuilt from a log whose start
 * retention deleted because the snapshots found were unusable: @why says so too. @why
 * (@why_bytes, may be 0) is empty otherwise, and whenever the fold fails.
 * Returns as rill_partition_projection_add. Blocks.
 */
int rill_partition_projection_bind(struct rill_partition *part, struct rill_projection *proj,
				   char *why, size_t why_bytes);

/* rill_partition_projection_remove - unbind @proj (still the caller's to destroy). */
void rill_partition_projection_remove(struct rill_partition *part, struct rill_projection *proj);

/*
 * rill_partition_snapshot_release - the engine is open (the built-in projections bound):
 * free the snapshot loaded at open, or, with config.snapshots, if it holds projections not
 * bound (custom ones the application has yet to define again), keep it until they are,
 * or until rill_partition_snapshot_forget_loaded. Meanwhile its file is not deleted, so
 * the log from it stays, and a snapshot taken at its offset carries their states over:
 * defining the others first cannot lose them.
 */
void rill_partition_snapshot_release(struct rill_partition *part);

/* rill_partition_snapshot_forget_loaded - free the snapshot release kept, if it did: the
 * projections it holds not bound by now start from the log (the first periodic snapshot
 * after open calls it, so that one never defined again holds retention one interval at
 * most). */
void rill_partition_snapshot_forget_loaded(struct rill_partition *part);

/*
 * rill_partition_as_of - fold into fresh @proj every event of the partition at offsets
 * up to and including @offset (clamped to the last one): from the newest snapshot at or
 * below it holding @proj's state, then the log. Cost: the events after that snapshot. At
 * or past the last event, the state of the projection bound under @proj's name (the value
 * now), whatever retention left; cost: a copy of its state. Returns 0, -ERANGE when
 * neither a snapshot nor the log reaches back far enough, -ENOMEM, or a log error. Blocks
 * (reads snapshots and the log).
 */
int rill_partition_as_of(struct rill_partition *part, struct rill_projection *proj,
			 uint64_t offset);

/*
 * rill_partition_offset_at - the offset "as of" @timestamp_ns: from the first batch the
 * time index says holds an event stamped at or after it, the events are read in log order
 * up to the first one stamped later; the answer is the one before that. Event times are
 * the producers' and need not grow along the log: this is the end of the first stretch
 * stamped at or before the time. UINT64_MAX when no event is; -ERANGE when the answer
 * may lie in what retention deleted: when a deleted event may be stamped later (the oldest
 * snapshot from the log's start on records the highest stamp below it; with none, they
 * may). Blocks.
 */
int rill_partition_offset_at(struct rill_partition *part, uint64_t timestamp_ns, uint64_t *offset);

/*
 * rill_partition_check - steps 1 and 2 alone: whether rill_partition_write would take
 * @rec, refuse it, or acknowledge it as a duplicate (result->duplicate, its offset), with
 * nothing appended. For a command handler, which must not run for a duplicate.
 */
int rill_partition_check(struct rill_partition *part, const struct rill_record *rec,
			 struct rill_partition_write *result, struct rill_schema_error *err);

/*
 * rill_partition_write_group - the write model for a command turned into @count events
 * (1 .. RILL_PARTITION_GROUP_MAX): @cmd's type, payload and producer sequence are checked
 * as rill_partition_write would (a duplicate is acknowledged with its first event's
 * offset); each event gets @cmd's key, producer, sequence and correlation id (and its
 * timestamp when it has none) and is checked against its own schema; then all are
 * appended in one batch, so a crash keeps all of them or none, and folded into the
 * projections. result->offset is the first event's. Returns as rill_partition_write, and
 * -EMSGSIZE when they exceed one batch; a refusal names the event at fault. Never blocks.
 */
int rill_partition_write_group(struct rill_partition *part, const struct rill_record *cmd,
			       struct rill_record *events, uint32_t count,
			       struct rill_partition_write *result, struct rill_schema_error *err);

/* rill_partition_poll - drive the log's group commit (rill_log_poll). 0 or its error. */
int rill_partition_poll(struct rill_partition *part, uint64_t wait_ns);

/* rill_partition_sync - everything written so far, durable. Blocks. */
int rill_partition_sync(struct rill_partition *part);

/* Every offset below this is durable. */
uint64_t rill_partition_durable_offset(const struct rill_partition *part);
/* The offset the next event gets. */
uint64_t rill_partition_next_offset(const struct rill_partition *part);

/* The partition's log, for readers (iterators, find by time). */
struct rill_log *rill_partition_log(struct rill_partition *part);

struct rill_partition_stats {
	uint64_t written;           /* events appended since open */
	uint64_t duplicates;        /* acknowledged again, not appended */
	uint64_t refused;           /* refused by the write model */
	uint64_t producers;         /* idempotent producers tracked */
	uint64_t replayed;          /* events read back from the log at open */
	uint64_t projection_errors; /* events a projection could not fold (see its stats) */
	uint64_t snapshots;         /* written since open */
	uint64_t snapshots_skipped; /* found at open but damaged or unusable */
	uint64_t projection_late;   /* window kinds: events their state left out as late (its
				     * projections' counts, filled by rill_partition_stats) */
};

void rill_partition_stats(const struct rill_partition *part, struct rill_partition_stats *out);

#endif /* RILL_ENGINE_PARTITION_H */
