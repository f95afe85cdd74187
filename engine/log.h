/*
 * The per-partition append log: the engine's source of truth. Records are appended into a
 * batch buffer; a batch is written and fdatasync'ed as one unit through the I/O layer (a
 * linked write + fdatasync on io_uring), at most one in flight, the next one filling while
 * it runs (group commit). The log is cut into segments named by base offset, each with a
 * sparse offset index and time index; segments roll by size and age and are deleted whole
 * by retention. Format: engine/log_format.h and docs/FORMAT.md.
 *
 * Retention. A segment goes once the next one is older than retention_age_ns (its records
 * are all older than that), or while the segments exceed retention_bytes, oldest first;
 * never the active segment, nor one holding a record at or above the retain floor. It runs
 * at each roll and at each rill_log_expire, which the owner calls at open and then about
 * once a second, idle or not: an idle log never rolls by size. With an age limit, the
 * active segment also rolls by age (segment_age_ns_max, or retention_age_ns when that is
 * 0), so that a record is deleted at most about twice the retention age after it was
 * written, plus the owner's period (the floor can hold it longer).
 *
 * Durability. rill_log_append gives a record its offset at once ("applied"); the record is
 * durable when rill_log_durable_offset() has passed it, which happens only when the
 * fdatasync covering it has completed successfully. A failed write or fdatasync makes the
 * log fail-stop: it never again reports anything as durable, and every call returns the
 * error (no retry: after a failed fdatasync the page cache may have dropped the data).
 *
 * Recovery at open verifies the tail segment batch by batch. A damaged tail is truncated
 * (and the cut reported) only if it lies past the last offset known durable, nothing valid
 * follows it, it is no larger than what can be in flight, and its first batch fails its
 * checksum (one that holds was written whole: damage since); anything else is refused with
 * the file, position and reason, unless config.repair asks to cut at the first damage.
 *
 * Threading: a log belongs to one thread (its shard); nothing here locks. Calls do not
 * block except rill_log_open, rill_log_sync, rill_log_close, rill_log_expire,
 * rill_log_poll with a wait, and a rill_log_append that rolls the segment (a file made
 * and synced: once per segment_bytes_max; while rolls fail, an attempt per batch).
 */
#ifndef RILL_ENGINE_LOG_H
#define RILL_ENGINE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hist.h"
#include "engine/io.h"
#include "rill/record.h"
#include "rill/rill.h"

struct rill_log;

/* enum rill_durability (when events are acknowledged) is public: rill/rill.h. */

struct rill_log_config {
	/* Submit a batch once it holds this much (default 256 KiB). Behind a write in flight
	 * it grows on, up to its buffer (the larger of this and the largest record, 1 MiB)
	 * and within the active segment, unless fixed_batches. */
	uint32_t batch_bytes_max;
	/* Or once its first record waited this long (default 0; rill_log_poll, not an
	 * append, sees it pass). */
	uint64_t batch_delay_ns;
	uint64_t segment_bytes_max; /* roll past this size (default 1 GiB) */
	/* A roll by size that cannot make the next segment (the open-file limit spent, a
	 * transient error) is undone and tried again at each batch, the batches going on
	 * into the active segment: up to this many bytes past segment_bytes_max, then the
	 * log stops (default 1 GiB; 0: it stops at once). */
	uint64_t roll_overrun_bytes_max;
	/* Roll a segment this old (default 0: at retention_age_ns, if set, through
	 * rill_log_expire; otherwise never by age). */
	uint64_t segment_age_ns_max;
	uint64_t retention_bytes;      /* delete oldest segments past this total (0: keep all) */
	uint64_t retention_age_ns;     /* delete segments older than this (0: keep all) */
	uint32_t index_interval_bytes; /* one index entry per this many bytes (default 4 KiB) */
	enum rill_durability durability;
	/* Batches go through the page cache, never O_DIRECT (default: direct where the file
	 * system allows it; see ARCHITECTURE.md, "Direct writes"). */
	bool buffered_io;
	/* No batch past batch_bytes_max, even behind a write in flight: appends get -EAGAIN
	 * there instead (benchmarks comparing with a fixed write size). */
	bool fixed_batches;
	bool repair;    /* recovery cuts at the first damage, whatever it is */
	bool read_only; /* never write: verification and dumps */
	/* The folder must exist (a partition of a stored topic): made anew, it would hide a
	 * lost or moved one under offsets starting again at 0. */
	bool must_exist;
};

/* What recovery found and did. */
struct rill_log_recovery {
	uint32_t segments;         /* segment files found */
	uint64_t next_offset;      /* offset the next append gets */
	uint64_t durable_offset;   /* highest offset known durable (batches and checkpoint) */
	uint64_t records;          /* records in the tail segment */
	uint64_t truncated_bytes;  /* bytes cut from the tail (or that would be, read-only) */
	uint32_t segments_removed; /* repair: later segments removed after damage in a sealed
				    * one (or that would be, read-only) */
	char message[512];         /* what was cut or why the log was refused; empty if clean */
};

/* Log limits. */
#define RILL_LOG_BATCH_BYTES_MAX (16u << 20) /* largest batch on disk, header included */
#define RILL_LOG_SEGMENTS_MAX    65536u
#define RILL_LOG_GROUP_MAX       64u /* records appended together (rill_log_append_group) */

/* rill_log_config_default - the defaults above. */
void rill_log_config_default(struct rill_log_config *config);

/*
 * rill_log_segment_name_parse - whether @name (a file name, no folder) is a segment's as
 * the log writes it: 20 decimal digits, the base offset (at most UINT64_MAX), then ".log".
 * @base_offset (optional) gets the offset. The log's own listing and the offline tools
 * both use it, so that what they take for a partition is what the log reads (a stray
 * "server-20250101-0001.log" is not a segment). Any thread.
 */
bool rill_log_segment_name_parse(const char *name, uint64_t *base_offset);

/*
 * rill_log_open - open (creating if needed) the log in directory @dir and recover it.
 * @io: the I/O backend, owned by the caller, outliving the log.
 * @report: optional; filled with what recovery found.
 * Returns 0, -EINVAL for a bad config, RILL_E_LOG_CORRUPT when recovery refuses the log
 * (report->message says where and why), RILL_E_LOG_FORMAT for an unknown format version, or
 * -errno from the file system. Blocks.
 */
int rill_log_open(struct rill_log **out, struct rill_io *io, const char *dir,
		  const struct rill_log_config *config, struct rill_log_recovery *report);

/*
 * rill_log_append - add @record to the filling batch and give it the next offset.
 * Returns 0, -EAGAIN when both batch buffers are busy (poll, then retry: backpressure),
 * an RILL_E_RECORD_* error for a record over the limits, or the fail-stop error. Busy: a
 * write in flight, and the filling batch can take this record only past batch_bytes_max
 * with fixed_batches, or past its buffer or the active segment without (see
 * batch_bytes_max): a slow sync is followed by one larger write, not by a queue.
 * It submits the batch when nothing is in flight and the batch is full or has no delay;
 * a batch whose delay has passed goes at the next rill_log_poll (appends read no clock),
 * so a caller with a delay polls: when rill_log_submit_due_ns says so, or every turn.
 */
int rill_log_append(struct rill_log *log, const struct rill_record *record, uint64_t *offset);

/*
 * rill_log_append_group - append @count records (1 .. RILL_LOG_GROUP_MAX) into one batch,
 * at consecutive offsets from *@first_offset: a crash keeps all of them or none (a batch is
 * written, checked and recovered whole). Returns 0, -EMSGSIZE when together they exceed
 * batch_bytes_max, -EAGAIN (backpressure, nothing appended), -EINVAL, a record error, or
 * the fail-stop error.
 */
int rill_log_append_group(struct rill_log *log, const struct rill_record *records, uint32_t count,
			  uint64_t *first_offset);

/*
 * rill_log_poll - drive group commit: reap finished writes, advance the durable offset,
 * submit the filling batch when its trigger has come. @wait_ns: 0, or how long to block
 * for a write to finish. Returns 0 or the fail-stop error.
 */
int rill_log_poll(struct rill_log *log, uint64_t wait_ns);

/*
 * rill_log_wait - block until the write in flight finishes or @wait_ns passes, without
 * reaping it: the caller can append what came meanwhile, so that rill_log_poll submits it
 * in the very next batch. Returns at once when nothing is in flight. 0 or -errno.
 */
int rill_log_wait(struct rill_log *log, uint64_t wait_ns);

/* rill_log_sync - submit what is filling and wait until all of it is durable. Blocks. */
int rill_log_sync(struct rill_log *log);

/* The offset the next append gets. */
uint64_t rill_log_next_offset(const struct rill_log *log);

/* Every offset below this is durable (written and fdatasync'ed). */
uint64_t rill_log_durable_offset(const struct rill_log *log);

/* The highest record timestamp the log has seen below its submitted end: in the batches
 * written (even those retention deleted since) and, from an open, in the segments it read
 * or whose index files it loaded (their trailers carry it). Never below any kept record's;
 * after a restart it may miss records of deleted segments. */
uint64_t rill_log_timestamp_max(const struct rill_log *log);

/* When the filling batch's delay runs out (monotonic ns), or UINT64_MAX: nothing fills, a
 * write is in flight (its completion is the next trigger), or the log failed. */
uint64_t rill_log_submit_due_ns(const struct rill_log *log);

/* True while a batch's write and sync are in flight: rill_log_poll has a completion to
 * reap. With none in flight and the filling batch not due (rill_log_submit_due_ns), a poll
 * has nothing to do. */
bool rill_log_in_flight(const struct rill_log *log);

/* The first offset still held (retention may have deleted older ones). */
uint64_t rill_log_start_offset(const struct rill_log *log);

/*
 * rill_log_retain_floor - retention deletes no segment holding a record at or above
 * @offset (a snapshot's offset: the events after it are needed to rebuild). The default,
 * UINT64_MAX, puts no limit on retention.
 */
void rill_log_retain_floor(struct rill_log *log, uint64_t offset);

/*
 * rill_log_expire - retention on time. Rolls the active segment when it holds records and
 * is at least its roll age old (segment_age_ns_max, or retention_age_ns when that is 0),
 * then deletes the segments past the retention limits (see "Retention" above). A roll
 * that must wait (a write in flight, or records not yet written) is owed, and done before
 * the next batch is submitted; an empty segment never rolls.
 * @now_wall_ns: the wall clock (rill_clock_wall_ns, as segments' created_ns), read by the
 * caller: one read serves all its logs, and a test can choose the time.
 * The owner calls it once after rill_log_open (rill_log_open deletes nothing: the floor is
 * not set yet) and then about once a second; appends and polls read no clock for it.
 * Nothing on a read-only log. Returns 0 or the fail-stop error (a failed roll stops the
 * log, as at a roll by size; a failed deletion does not: it is counted and tried again).
 * Blocks on a roll (a segment created: a write and two fsyncs) and on deletions.
 */
int rill_log_expire(struct rill_log *log, uint64_t now_wall_ns);

/* 0, or the error that made the log fail-stop. */
int rill_log_error(const struct rill_log *log);

struct rill_log_stats {
	uint32_t segments;
	uint64_t bytes;        /* valid bytes of every segment, headers included */
	uint64_t start_offset; /* first offset held */
	uint64_t next_offset;
	uint64_t durable_offset;
	uint64_t batches;     /* written since open */
	uint64_t sync_ns_p50; /* write+fdatasync time per batch, since open */
	uint64_t sync_ns_p99;
	uint64_t sync_ns_max;
	bool direct_io;            /* the active segment's batches are written with O_DIRECT */
	uint64_t direct_batches;   /* batches written with O_DIRECT since open */
	uint64_t grown_batches;    /* batches that grew past batch_bytes_max behind a write */
	uint32_t batch_bytes_peak; /* the largest batch written since open */
	uint64_t retain_errors;    /* retention deletions that failed (kept, tried again) */
	uint64_t roll_errors;      /* rolls (by age or size) that could not make their segment,
				    * undone (tried again) */
};

/* rill_log_stats - sizes, offsets and batch timings of @log. */
void rill_log_stats(const struct rill_log *log, struct rill_log_stats *stats);

/* rill_log_sync_hist - the write + fdatasync time of each batch since open (to merge with
 * other logs'). Valid as long as @log; the owner's thread, as every call here. */
const struct rill_hist *rill_log_sync_hist(const struct rill_log *log);

/*
 * rill_log_close - sync, record the durable offset in the checkpoint, close. Frees @log
 * whatever happens; returns 0 or the first error. Blocks.
 */
int rill_log_close(struct rill_log *log);

/*
 * rill_log_drop - free @log without any I/O, as a crash would leave it: what is not
 * durable may be lost. For shutting down after a fail-stop, and for crash simulations.
 */
void rill_log_drop(struct rill_log *log);

/*
 * Reading. An iterator reads complete, durable batches from any offset forward, one batch
 * in memory at a time, through handles of its own, so it never disturbs the writer. Records
 * point into the iterator's buffer and stay valid until the next call.
 */
struct rill_log_iter {
	struct rill_log *log;
	uint64_t offset;       /* next record's offset */
	uint8_t *buf;          /* one batch */
	uint32_t buf_bytes;    /* capacity */
	uint32_t batch_bytes;  /* bytes of the batch in buf (0: none) */
	uint32_t batch_pos;    /* position of the next record in buf */
	uint64_t batch_offset; /* offset of the record at batch_pos */
	uint64_t segment_base; /* base offset of the segment being read */
	int handle;            /* open segment file, or -1 */
	uint64_t file_pos;     /* position of the next batch in the segment file */
};

/*
 * rill_log_iter_init - an iterator at @offset (clamped to the first offset held).
 * Returns 0, -ENOMEM, or -ERANGE if @offset is past the next offset.
 */
int rill_log_iter_init(struct rill_log_iter *it, struct rill_log *log, uint64_t offset);

/*
 * rill_log_iter_next - the next record. Returns 1 with @record and @offset set, 0 at the
 * end of durable data (call again later for more), RILL_E_LOG_CORRUPT if a batch fails its
 * check, -ERANGE if retention deleted the records it was at, or -errno.
 */
int rill_log_iter_next(struct rill_log_iter *it, struct rill_record *record, uint64_t *offset);

void rill_log_iter_fini(struct rill_log_iter *it);

/*
 * rill_log_find_time - the first offset whose batch holds a record at or after
 * @timestamp_ns (through the time index), or the next offset if none. Returns 0 or -errno.
 */
int rill_log_find_time(struct rill_log *log, uint64_t timestamp_ns, uint64_t *offset);

#endif /* RILL_ENGINE_LOG_H */
