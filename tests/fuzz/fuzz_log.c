/*
 * libFuzzer target for log recovery (engine/log.c, log_read.c, log_index.c): what rill
 * reads back from a partition folder at every open, a disk that may be torn, damaged or
 * worse. The input (tests/fuzz/log_fuzz.h) is a mode byte (fix the CRCs so that the checks
 * behind them are reached; read-only; repair) and the folder's files: segments, their
 * .idx and .tix files, a checkpoint. They are written into the simulated file system
 * (tests/common/io_sim.c: no disk I/O), and the log is opened over them.
 *
 * Asserted, beyond the sanitizers:
 *   - the open returns 0, or RILL_E_LOG_CORRUPT or RILL_E_LOG_FORMAT with a message;
 *   - an open log reads from its first offset to its next one, every offset once and in
 *     order, each record decoding in place as it did and encoding again to bytes that
 *     decode with their CRC; rill_log_find_time answers within the log;
 *   - a read-only open changes no file;
 *   - after an open for writing (and its close), a second one without repair accepts the
 *     log, cuts and removes nothing, ends at the same next offset and reads the same:
 *     recovery is idempotent.
 * One exception, by design (log.h): an open for writing without repair trusts a sealed
 * segment whose index files are whole and describe it, without reading its batches. Where
 * a read-only open (which checks every batch) refuses a log that such an open accepted,
 * the damage lies there, and the read and the second open are only held to their codes.
 * Index files keep the CRCs the input gives, as a crash leaves them (their CRC catches
 * that). One whose CRC holds and whose entries are in order is trusted; a read it places
 * at a later batch fails (RILL_E_LOG_CORRUPT) rather than skip offsets, which this target
 * does not hold an open log to, so it does not fix those CRCs.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "engine/log_format.h"
#include "rill/error.h"
#include "tests/common/io_sim.h"
#include "tests/fuzz/log_fuzz.h"

#define FUZZ_INPUT_MAX    (1u << 20)
#define FUZZ_PATH_BYTES   512u
#define FUZZ_TIME_NS      1000100u /* a record time the seeds' logs span */
#define FUZZ_READ_END     0        /* read to the end, every offset in order */
#define FUZZ_READ_STOPPED 1        /* refused a batch, offsets out of step, or short */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* ---- The files --------------------------------------------------------------------------- */

/* The batches of a segment, latest first: an enclosing batch's CRC then covers them. */
static void fuzz_fix_segment(uint8_t *b, size_t n)
{
	if (n < RILL_SEGMENT_HEADER_BYTES)
		return;
	size_t last = n >= RILL_SEGMENT_DATA_START + RILL_BATCH_HEADER_BYTES
			      ? (n - RILL_BATCH_HEADER_BYTES) / RILL_LOG_SECTOR_BYTES *
					RILL_LOG_SECTOR_BYTES
			      : 0;
	for (size_t pos = last; pos >= RILL_SEGMENT_DATA_START; pos -= RILL_LOG_SECTOR_BYTES) {
		const size_t crc_at = offsetof(struct rill_batch_header, crc32c);
		const size_t covered_from = crc_at + 4; /* the CRC covers what follows it */
		uint32_t bytes =
			rill_ld32(b + pos + offsetof(struct rill_batch_header, batch_bytes));
		if (rill_ld32(b + pos) == RILL_BATCH_MAGIC && bytes >= RILL_BATCH_HEADER_BYTES &&
		    bytes <= n - pos)
			rill_st32(b + pos + crc_at,
				  rill_crc32c(b + pos + covered_from, bytes - covered_from));
	}
	const size_t header_crc_at = offsetof(struct rill_segment_header, crc32c);
	rill_st32(b + header_crc_at, rill_crc32c(b, header_crc_at));
}

static void fuzz_fix_checkpoint(uint8_t *b, size_t n)
{
	const size_t crc_at = offsetof(struct rill_checkpoint, crc32c);
	if (n >= sizeof(struct rill_checkpoint))
		rill_st32(b + crc_at, rill_crc32c(b, crc_at));
}

static void fuzz_write(struct rill_io *io, const char *path, const uint8_t *bytes, size_t n)
{
	int handle;
	check(io->ops->open(io, path, RILL_IO_CREATE, &handle) == 0);
	check(io->ops->truncate(io, handle, 0) == 0);
	check(io->ops->pwrite(io, handle, bytes, n, 0) == 0);
	check(io->ops->close(io, handle) == 0);
}

/* One file of the input into the folder; @base is the last segment's base offset. */
static void fuzz_file(struct rill_io *io, uint8_t mode, uint8_t kind, uint8_t *b, size_t n,
		      uint64_t *base)
{
	static const char *const suffixes[] = {"log", "idx", "tix"};
	char path[FUZZ_PATH_BYTES];
	unsigned k = kind & LOG_FUZZ_KIND_MASK;
	if (k == LOG_FUZZ_SEGMENT) {
		const size_t base_at = offsetof(struct rill_segment_header, base_offset);
		*base = n >= base_at + 8 ? rill_ld64(b + base_at) : 0;
		*base += kind >> 2;
		if (mode & LOG_FUZZ_FIX_CRC)
			fuzz_fix_segment(b, n);
	}
	if (k == LOG_FUZZ_CHECKPOINT) {
		snprintf(path, sizeof(path), "%s/%s", LOG_FUZZ_DIR, RILL_CHECKPOINT_NAME);
		if (mode & LOG_FUZZ_FIX_CRC)
			fuzz_fix_checkpoint(b, n);
	} else {
		snprintf(path, sizeof(path), "%s/%020llu.%s", LOG_FUZZ_DIR,
			 (unsigned long long)*base, suffixes[k]);
	}
	fuzz_write(io, path, b, n);
}

static void fuzz_files(struct rill_io *io, uint8_t mode, const uint8_t *at, size_t left)
{
	static uint8_t file[FUZZ_INPUT_MAX];
	uint64_t base = 0;
	for (uint32_t i = 0; i < LOG_FUZZ_FILES_MAX && left >= LOG_FUZZ_FILE_HEAD; i++) {
		uint8_t kind = at[0];
		size_t n = rill_ld32(at + 1);
		at += LOG_FUZZ_FILE_HEAD;
		left -= LOG_FUZZ_FILE_HEAD;
		if (n > left)
			n = left;
		memcpy(file, at, n); /* the CRC fix-ups write */
		fuzz_file(io, mode, kind, file, n, &base);
		at += n;
		left -= n;
	}
}

struct fuzz_digest {
	struct io_sim *sim;
	uint64_t sum;
};

static int fuzz_digest_file(void *arg, const char *name)
{
	struct fuzz_digest *d = arg;
	char path[FUZZ_PATH_BYTES];
	snprintf(path, sizeof(path), "%s/%s", LOG_FUZZ_DIR, name);
	uint64_t size = 0;
	const uint8_t *bytes = io_sim_file_data(d->sim, path, &size);
	check(bytes != NULL || size == 0);
	uint64_t h = (uint64_t)rill_crc32c(name, strlen(name)) << 32 | rill_crc32c(bytes, size);
	d->sum += h * 0x9E3779B97F4A7C15ull + size; /* a sum: the listing's order is no matter */
	return 0;
}

/* What the folder holds, names and bytes. */
static uint64_t fuzz_digest(struct io_sim *sim)
{
	struct rill_io *io = io_sim_io(sim);
	struct fuzz_digest d = {.sim = sim};
	check(io->ops->list(io, LOG_FUZZ_DIR, fuzz_digest_file, &d) == 0);
	return d.sum;
}

/* ---- Reading ----------------------------------------------------------------------------- */

/* A record read: it decodes in place as it did, and encodes again to a sound record. */
static void fuzz_check_record(const struct rill_record *rec)
{
	static uint8_t again[RILL_RECORD_BYTES_MAX];
	struct rill_record a, b;
	const uint8_t *start = (const uint8_t *)rec->key - RILL_RECORD_HEADER_BYTES;
	check(rill_record_decode(start, rec->record_bytes, &a, RILL_RECORD_F_TRUSTED_CRC) ==
	      (int)rec->record_bytes);
	check(a.key == rec->key && a.payload == rec->payload && a.key_bytes == rec->key_bytes &&
	      a.payload_bytes == rec->payload_bytes && a.timestamp_ns == rec->timestamp_ns);
	check(rill_record_encode(again, sizeof(again), rec) == (int)rec->record_bytes);
	check(rill_record_decode(again, rec->record_bytes, &b, 0) == (int)rec->record_bytes);
	check(b.sequence == rec->sequence && b.type_id == rec->type_id &&
	      memcmp(b.key, rec->key, rec->key_bytes) == 0 &&
	      memcmp(b.payload, rec->payload, rec->payload_bytes) == 0);
}

/* The whole log from its first offset: FUZZ_READ_END or FUZZ_READ_STOPPED. */
static int fuzz_read_all(struct rill_log *log)
{
	struct rill_log_iter it;
	check(rill_log_iter_init(&it, log, 0) == 0);
	uint64_t expect = rill_log_start_offset(log), offset;
	struct rill_record rec;
	int rc;
	while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1) {
		if (offset != expect)
			break;
		fuzz_check_record(&rec);
		expect++;
	}
	rill_log_iter_fini(&it);
	if (rc == 0 && expect == rill_log_next_offset(log))
		return FUZZ_READ_END;
	check(rc >= 0 || rc == RILL_E_LOG_CORRUPT); /* out of step, short, or refused */
	return FUZZ_READ_STOPPED;
}

/* Read the open log; also look a time up, which reads through the time index. */
static int fuzz_read(struct rill_log *log)
{
	int read = fuzz_read_all(log);
	uint64_t offset = UINT64_MAX;
	int rc = rill_log_find_time(log, FUZZ_TIME_NS, &offset);
	if (rc == 0)
		check(offset >= rill_log_start_offset(log) && offset <= rill_log_next_offset(log));
	else
		check(rc == RILL_E_LOG_CORRUPT && read == FUZZ_READ_STOPPED);
	return read;
}

/*
 * Whether the folder holds damage an open for writing may not have seen: that open trusts
 * a sealed segment whose index files are whole and describe it, without reading its
 * batches (log.h). A read-only open checks every batch of every segment: it must refuse
 * the log, and name a segment that has index files.
 */
static bool fuzz_damage_unseen(struct io_sim *sim)
{
	struct rill_log_config c = log_fuzz_config(LOG_FUZZ_READ_ONLY);
	struct rill_log_recovery report;
	struct rill_log *log;
	int rc = rill_log_open(&log, io_sim_io(sim), LOG_FUZZ_DIR, &c, &report);
	if (rc == 0)
		check(rill_log_close(log) == 0);
	if (rc != RILL_E_LOG_CORRUPT)
		return false;
	const char *named = strstr(report.message, LOG_FUZZ_DIR "/");
	char idx[FUZZ_PATH_BYTES];
	uint64_t size;
	const size_t name_at = sizeof(LOG_FUZZ_DIR), name_bytes = 24; /* 20 digits, ".log" */
	if (named == NULL || strlen(named) < name_at + name_bytes ||
	    strncmp(named + name_at + 20, ".log", 4) != 0)
		return false;
	snprintf(idx, sizeof(idx), "%.*s.idx", (int)(name_at + 20), named);
	return io_sim_file_data(sim, idx, &size) != NULL;
}

/* ---- Opening ----------------------------------------------------------------------------- */

/* The second open for writing: accepted, nothing cut, the same end and the same read. */
static void fuzz_reopen(struct rill_io *io, uint64_t next)
{
	struct rill_log_config c = log_fuzz_config(0);
	struct rill_log_recovery report;
	struct rill_log *log;
	check(rill_log_open(&log, io, LOG_FUZZ_DIR, &c, &report) == 0);
	check(report.truncated_bytes == 0 && report.segments_removed == 0);
	check(rill_log_next_offset(log) == next);
	check(fuzz_read(log) == FUZZ_READ_END);
	check(rill_log_close(log) == 0);
}

/* Where the first open trusted damage: the second may check what the first did not (that
 * segment made the tail, a torn creation after it dropped) and refuse the log or cut it;
 * only its code is checked. */
static void fuzz_reopen_damaged(struct rill_io *io)
{
	struct rill_log_config c = log_fuzz_config(0);
	struct rill_log_recovery report;
	struct rill_log *log;
	int rc = rill_log_open(&log, io, LOG_FUZZ_DIR, &c, &report);
	if (rc == 0)
		check(rill_log_close(log) == 0);
	else
		check(rc == RILL_E_LOG_CORRUPT && report.message[0] != '\0');
}

static void fuzz_open(struct io_sim *sim, uint8_t mode)
{
	struct rill_io *io = io_sim_io(sim);
	struct rill_log_config c = log_fuzz_config(mode);
	uint64_t before = fuzz_digest(sim);
	struct rill_log_recovery report;
	struct rill_log *log;
	int rc = rill_log_open(&log, io, LOG_FUZZ_DIR, &c, &report);
	if (rc != 0) {
		check(rc == RILL_E_LOG_CORRUPT || rc == RILL_E_LOG_FORMAT);
		check(report.message[0] != '\0');
		check(!c.read_only || fuzz_digest(sim) == before);
		return;
	}
	uint64_t next = rill_log_next_offset(log);
	check(report.next_offset == next && rill_log_durable_offset(log) == next);
	int read = fuzz_read(log);
	check(rill_log_close(log) == 0);
	/* Only an open for writing without repair trusts a segment it did not read, and only
	 * a sealed one. */
	if (!c.read_only && !c.repair && report.segments > 1 && fuzz_damage_unseen(sim)) {
		fuzz_reopen_damaged(io);
		return;
	}
	check(read == FUZZ_READ_END);
	if (c.read_only)
		check(fuzz_digest(sim) == before);
	else
		fuzz_reopen(io, next);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	struct io_sim *sim;
	check(io_sim_create(&sim, 1) == 0);
	fuzz_files(io_sim_io(sim), data[0], data + 1, size - 1);
	io_sim_sync_all(sim); /* as a clean shutdown left them: no power cut here */
	fuzz_open(sim, data[0]);
	io_sim_destroy(sim);
	return 0;
}
