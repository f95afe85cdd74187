/*
 * Writes a seed corpus for fuzz_log into the folder given: partition folders that rill
 * itself wrote, in the simulated file system, in the input layout of tests/fuzz/log_fuzz.h.
 * A new log (a segment header only); one segment of a few batches and its checkpoint; the
 * same with its last batch torn and no checkpoint (a crash during a write); two segments,
 * the sealed one with its .idx and .tix, and a checkpoint; a header-only segment before a
 * second one (a gap recovery refuses). Each in the modes fuzz_log
 * reads: CRCs fixed, then also read-only, then also repair; the two-segment folder also
 * with its index files left out (the sealed segment scanned, not trusted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "engine/log_format.h"
#include "tests/common/io_sim.h"
#include "tests/engine/log_check.h"
#include "tests/fuzz/log_fuzz.h"

#define SEED_INPUT_BYTES (1u << 20)
#define SEED_RECORDS_MAX 4096u

static uint8_t input[SEED_INPUT_BYTES];
static size_t input_bytes;
static int failed;

static void fail(const char *what)
{
	fprintf(stderr, "seed_log: %s\n", what);
	failed = 1;
}

/* A log of @records records in syncs of @per_sync, closed cleanly. */
static struct io_sim *seed_log_write(uint64_t records, uint32_t per_sync)
{
	struct io_sim *sim;
	if (io_sim_create(&sim, 1) != 0)
		abort();
	struct rill_log_config c = log_fuzz_config(0);
	struct rill_log *log;
	if (rill_log_open(&log, io_sim_io(sim), LOG_FUZZ_DIR, &c, NULL) != 0) {
		fail("open");
		return sim;
	}
	for (uint64_t offset = 0; offset < records; offset++) {
		struct log_check_record r;
		log_check_make(&r, offset);
		uint64_t got;
		if (rill_log_append(log, &r.rec, &got) != 0 || got != offset)
			fail("append");
		if ((offset + 1) % per_sync == 0 && rill_log_sync(log) != 0)
			fail("sync");
	}
	if (rill_log_close(log) != 0)
		fail("close");
	return sim;
}

/* The input's mode byte; files follow. */
static void seed_begin(uint8_t mode)
{
	input[0] = mode;
	input_bytes = 1;
}

/* File @name of the folder as @kind, its first @bytes_max bytes (UINT64_MAX: all). */
static void seed_file(struct io_sim *sim, uint8_t kind, const char *name, uint64_t bytes_max)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", LOG_FUZZ_DIR, name);
	uint64_t size = 0;
	const uint8_t *bytes = io_sim_file_data(sim, path, &size);
	if (bytes == NULL) {
		fail(path);
		return;
	}
	if (size > bytes_max)
		size = bytes_max;
	if (input_bytes + LOG_FUZZ_FILE_HEAD + size > sizeof(input)) {
		fail("an input too large");
		return;
	}
	input[input_bytes] = kind;
	rill_st32(input + input_bytes + 1, (uint32_t)size);
	memcpy(input + input_bytes + LOG_FUZZ_FILE_HEAD, bytes, size);
	input_bytes += LOG_FUZZ_FILE_HEAD + size;
}

static void seed_save(const char *dir, const char *name, uint8_t mode)
{
	char path[4096];
	input[0] = mode;
	snprintf(path, sizeof(path), "%s/seed-%s-%u", dir, name, mode);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(input, 1, input_bytes, f) != input_bytes)
		fail(path);
	if (f != NULL && fclose(f) != 0)
		fail(path);
}

/* The input as built, in each mode fuzz_log reads. */
static void seed_save_modes(const char *dir, const char *name)
{
	seed_save(dir, name, LOG_FUZZ_FIX_CRC);
	seed_save(dir, name, LOG_FUZZ_FIX_CRC | LOG_FUZZ_READ_ONLY);
	seed_save(dir, name, LOG_FUZZ_FIX_CRC | LOG_FUZZ_REPAIR);
}

static const char *segment_name(uint64_t base, const char *suffix)
{
	static char name[64];
	snprintf(name, sizeof(name), "%020llu.%s", (unsigned long long)base, suffix);
	return name;
}

static void seed_small(const char *dir)
{
	struct io_sim *sim = seed_log_write(0, 1);
	seed_begin(0);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(0, "log"), UINT64_MAX);
	seed_save_modes(dir, "new");
	io_sim_destroy(sim);

	sim = seed_log_write(24, 4);
	seed_begin(0);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(0, "log"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_CHECKPOINT, RILL_CHECKPOINT_NAME, UINT64_MAX);
	seed_save_modes(dir, "one-segment");

	/* Torn: the last batch (the file's last sector or two) only partly written. */
	char path[512];
	uint64_t size = 0;
	snprintf(path, sizeof(path), "%s/%s", LOG_FUZZ_DIR, segment_name(0, "log"));
	if (io_sim_file_data(sim, path, &size) == NULL || size < 2 * RILL_LOG_SECTOR_BYTES)
		fail("a segment too small to tear");
	seed_begin(0);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(0, "log"), size - 300);
	seed_save_modes(dir, "torn");
	io_sim_destroy(sim);
}

/* Records until the log rolls into a second segment, and a few in it. */
static void seed_two_segments(const char *dir)
{
	uint64_t records = 0;
	struct io_sim *sim = NULL;
	char path[512];
	uint64_t size, second = 0;
	for (records = 200; records < SEED_RECORDS_MAX && second == 0; records += 50) {
		io_sim_destroy(sim);
		sim = seed_log_write(records, 8);
		for (uint64_t base = 1; base < records && second == 0; base++) {
			snprintf(path, sizeof(path), "%s/%s", LOG_FUZZ_DIR,
				 segment_name(base, "log"));
			if (io_sim_file_data(sim, path, &size) != NULL)
				second = base;
		}
	}
	if (second == 0) {
		fail("the log never rolled");
		io_sim_destroy(sim);
		return;
	}
	seed_begin(0);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(0, "log"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(second, "log"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_CHECKPOINT, RILL_CHECKPOINT_NAME, UINT64_MAX);
	seed_save_modes(dir, "two-segments-unindexed");
	seed_begin(0);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(0, "log"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_IDX, segment_name(0, "idx"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_TIX, segment_name(0, "tix"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(second, "log"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_CHECKPOINT, RILL_CHECKPOINT_NAME, UINT64_MAX);
	seed_save_modes(dir, "two-segments");
	/* A sealed segment of no batch (a header only) before the second: recovery saved its
	 * empty indexes with a memcpy from NULL (undefined) before it refused the gap. */
	struct io_sim *empty = seed_log_write(0, 1);
	seed_begin(0);
	seed_file(empty, LOG_FUZZ_SEGMENT, segment_name(0, "log"), UINT64_MAX);
	seed_file(sim, LOG_FUZZ_SEGMENT, segment_name(second, "log"), UINT64_MAX);
	seed_save_modes(dir, "empty-sealed");
	io_sim_destroy(empty);
	io_sim_destroy(sim);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_log DIR\n");
		return 2;
	}
	seed_small(argv[1]);
	seed_two_segments(argv[1]);
	return failed;
}
