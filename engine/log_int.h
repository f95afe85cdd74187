/*
 * Internals of the log shared by its files: the log object, segment bookkeeping, the batch
 * checks used by recovery, readers and the offline tools. Owner thread only.
 */
#ifndef RILL_ENGINE_LOG_INT_H
#define RILL_ENGINE_LOG_INT_H

#include <limits.h>

#include "alloc/hugebuf.h"
#include "base/hist.h"
#include "engine/log.h"
#include "engine/log_format.h"

#define LOG_PATH_BYTES 4096u

struct log_index {
	struct rill_index_entry *entries;
	uint32_t count;
	uint32_t capacity;
};

struct log_segment {
	uint64_t base_offset; /* first offset */
	uint64_t end_offset;  /* one past the last offset written to it */
	uint64_t bytes;       /* valid bytes: header and complete batches */
	uint64_t created_ns;  /* wall clock, from its header */
	uint64_t indexed_pos; /* file position of the last index entry */
	struct log_index idx; /* batch base offset -> position */
	struct log_index tix; /* batch max timestamp -> base offset */
};

struct rill_log {
	struct rill_io *io;
	struct rill_log_config config;
	uint64_t retain_floor;  /* retention keeps every record at or above this offset */
	uint64_t retain_errors; /* deletions that failed (rill_log_stats) */
	uint64_t roll_errors;   /* rolls that failed and were undone (rill_log_stats) */
	/* The active segment passed its roll age (rill_log_expire) while it could not roll:
	 * the next submit rolls it first. */
	bool roll_owed;
	char dir[LOG_PATH_BYTES];

	struct log_segment *segments; /* sorted by base offset; the last one is active */
	uint32_t segment_count;
	uint32_t segment_capacity;
	int active_handle;       /* the active segment, read-write; -1 when read-only */
	int direct_handle;       /* the active segment again, O_DIRECT, for write_sync; -1: none */
	uint64_t direct_batches; /* written through direct_handle since open */
	int lock_handle; /* holds DIR/lock while the log is open for writing; -1 otherwise */

	/*
	 * Group commit: two batch buffers, one being written while the other fills.
	 * Invariants:
	 *   L1. next_offset == fill_base + fill_count.
	 *   L2. durable_offset <= written_offset <= fill_base (written: submitted).
	 *   L3. inflight implies written_offset > durable_offset, and the in-flight buffer is
	 *       the one not filling.
	 *   L4. failed != 0 implies durable_offset never moves again.
	 */
	struct rill_hugebuf buffers;
	bool buffers_registered; /* with the I/O backend (io_uring fixed buffers) */
	uint8_t *buf[2];
	uint32_t buf_capacity; /* bytes per buffer */
	unsigned filling;      /* index of the buffer filling */
	uint32_t fill_bytes;   /* bytes in the filling buffer, header included */
	uint32_t fill_count;   /* records in it */
	uint64_t fill_base;    /* offset of its first record */
	uint64_t fill_ts_min, fill_ts_max;
	uint64_t fill_started_ns; /* monotonic time of its first record */
	bool inflight;
	uint64_t written_offset; /* one past the last record submitted */
	uint64_t durable_offset; /* one past the last record known durable */
	uint64_t write_pos;      /* file position for the next batch */
	uint64_t next_offset;
	uint64_t ts_running_max;   /* largest record timestamp in the log so far: time index keys */
	uint64_t checkpoint;       /* durable offset from the checkpoint file (0: none) */
	uint64_t submit_ns;        /* monotonic time the write in flight was submitted */
	uint64_t batches;          /* batches written since open */
	uint64_t grown_batches;    /* submitted past batch_bytes_max (log_make_room) */
	uint32_t batch_bytes_peak; /* the largest batch submitted since open */
	struct rill_hist sync_ns;  /* write+fdatasync time of each batch */
	int failed;
};

/* Record the batch at @pos in the segment's sparse indexes (if the interval has passed). */
int log_index_batch(struct rill_log *log, struct log_segment *seg, uint64_t pos,
		    uint64_t base_offset, uint64_t timestamp_max_ns);

/* The outcome of checking one batch in place. */
struct log_batch_info {
	uint32_t batch_bytes;
	uint32_t record_count;
	uint64_t base_offset;
	uint64_t timestamp_max_ns;
	uint64_t durable_offset;
};

/*
 * log_batch_check_header - check a batch header read from a file: magic, version, sizes
 * within limits and within @bytes_available. Returns 0 or a static reason.
 */
const char *log_batch_check_header(const struct rill_batch_header *h, uint64_t bytes_available);

/* log_batch_crc_held - whether the batch at @p (header already checked) matches its CRC. */
bool log_batch_crc_held(const uint8_t *p);

/*
 * log_batch_check - check the whole batch at @p (header already checked): CRC, then every
 * record decodes and the count agrees. Returns NULL or a static reason.
 */
const char *log_batch_check(const uint8_t *p, struct log_batch_info *info);

/* Path of a segment's file with suffix ("log", "idx", "tix") into @out. */
void log_segment_path(const struct rill_log *log, uint64_t base_offset, const char *suffix,
		      char *out, size_t out_bytes);

int log_index_add(struct log_index *index, uint64_t key, uint64_t value);

/* Save a sealed segment's indexes to its .idx and .tix files (log_index.c). */
int log_index_save(struct rill_log *log, const struct log_segment *seg);

/*
 * Load a sealed segment's index files if they are whole and describe it (@end_offset, file
 * @size): 1 loaded (seg->idx, tix, end_offset and bytes set), 0 missing or stale, <0.
 */
int log_index_load(struct rill_log *log, struct log_segment *seg, uint64_t end_offset,
		   uint64_t size);
void log_index_free(struct log_index *index);

#endif /* RILL_ENGINE_LOG_INT_H */
