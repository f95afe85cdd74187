/*
 * Tests of the append log (engine/log.h) over the simulated file system (tests/common/
 * io_sim.c) and the real ones: round trips, group commit, roll and retention, reads by
 * offset and time, and the durability claims under power cuts, I/O errors and corruption:
 * nothing acknowledged is ever lost, damage is truncated only where log.h allows it, and
 * mid-log damage is refused. RILL_LOG_POWER_CUTS sets the number of simulated cuts,
 * RILL_LOG_IO_ERROR_STRIDE and RILL_LOG_DAMAGE_STRIDE thin out the exhaustive loops (the
 * plain build runs them whole; the sanitizer builds, several times slower, sample them).
 */
#define _GNU_SOURCE
#include "tests/common/test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "base/clock.h"
#include "base/thread.h"
#include "base/compiler.h"
#include "engine/log.h"
#include "engine/io_int.h"
#include "engine/log_format.h"
#include "rill/record.h"
#include "tests/common/io_sim.h"
#include "tests/common/test_dir.h"
#include "tests/engine/log_check.h"

#define DIR_SIM "/sim/p0"

static int append_one(struct rill_log *log, uint64_t expect_offset)
{
	struct log_check_record r;
	log_check_make(&r, expect_offset);
	uint64_t offset = UINT64_MAX;
	int rc;
	while ((rc = rill_log_append(log, &r.rec, &offset)) == -EAGAIN) {
		rc = rill_log_poll(log, 1000000);
		if (rc < 0)
			return rc;
	}
	if (rc == 0 && offset != expect_offset)
		return -EPROTO;
	return rc;
}

static void test_round_trip_and_reopen(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 1), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_int_equal(report.next_offset, 0);
	for (uint64_t i = 0; i < 1000; i++) {
		assert_int_equal(append_one(log, i), 0);
		if (i % 7 == 0)
			assert_int_equal(rill_log_poll(log, 0), 0);
	}
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_durable_offset(log), 1000);
	assert_int_equal(log_check_all(log, 1000), 1000);
	assert_int_equal(rill_log_close(log), 0);

	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_int_equal(report.next_offset, 1000);
	assert_string_equal(report.message, "");
	assert_true(report.segments > 1); /* 64 KiB segments: it rolled */
	assert_int_equal(log_check_all(log, 1000), 1000);
	for (uint64_t i = 1000; i < 1100; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_close(log), 0);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(log_check_all(log, 1100), 1100);
	assert_int_equal(rill_log_close(log), 0);
	/* The magics' bytes on disk, as docs/FORMAT.md spells them for other readers. */
	char seg0[256];
	snprintf(seg0, sizeof(seg0), "%s/%020llu.log", DIR_SIM, 0ull);
	uint64_t size = 0;
	const uint8_t *file = io_sim_file_data(sim, seg0, &size);
	assert_non_null(file);
	assert_true(size > RILL_SEGMENT_DATA_START + 4);
	assert_memory_equal(file, "RILLESG1", 8);
	assert_memory_equal(file + RILL_SEGMENT_DATA_START, "RBT1", 4);
	io_sim_destroy(sim);
}

/* One writer per log: a second open for writing is refused (-EBUSY, saying why) while
 * the first holds it, read-only opens are not, and the lock goes with close or drop. Over
 * the simulated file system and over real files (flock), in one process. */
static void check_one_writer(struct rill_io *io, const char *dir)
{
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log, *second;
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io, dir, &c, NULL), 0);
	assert_int_equal(append_one(log, 0), 0);
	assert_int_equal(rill_log_sync(log), 0);
	memset(&report, 0, sizeof(report));
	assert_int_equal(rill_log_open(&second, io, dir, &c, &report), -EBUSY);
	assert_non_null(strstr(report.message, "open for writing elsewhere"));
	struct rill_log_config ro = c;
	ro.read_only = true;
	assert_int_equal(rill_log_open(&second, io, dir, &ro, NULL), 0);
	assert_int_equal(log_check_all(second, 1), 1);
	assert_int_equal(rill_log_close(second), 0);
	rill_log_drop(log); /* as a crash: the lock goes with it */
	assert_int_equal(rill_log_open(&log, io, dir, &c, NULL), 0);
	assert_int_equal(rill_log_close(log), 0);
	assert_int_equal(rill_log_open(&log, io, dir, &c, NULL), 0);
	assert_int_equal(rill_log_close(log), 0);
}

static void test_one_writer(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 9), 0);
	check_one_writer(io_sim_io(sim), DIR_SIM);
	io_sim_destroy(sim);

	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "test-lock"), 0);
	char path[sizeof(dir) + 8];
	snprintf(path, sizeof(path), "%s/p0", dir);
	struct rill_io *io;
	assert_int_equal(rill_io_posix_create(&io), 0);
	check_one_writer(io, path);
	rill_io_destroy(io);
	assert_int_equal(test_dir_remove(dir), 0);
}

/*
 * Write @count records through a log with small segments (it rolls, and the direct handle
 * is reopened with each segment), reopen, and check them all. Returns whether the log
 * wrote its batches with O_DIRECT: then all of them, before and after the rolls, went
 * through the direct handle; otherwise none did.
 */
static bool direct_round_trip(struct rill_io *io, const char *dir, bool buffered_io, uint64_t count)
{
	struct rill_log_config c = log_check_small_config();
	c.buffered_io = buffered_io;
	struct rill_log *log;
	struct rill_log_stats st;
	assert_int_equal(rill_log_open(&log, io, dir, &c, NULL), 0);
	rill_log_stats(log, &st);
	bool direct = st.direct_io;
	for (uint64_t i = 0; i < count; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	rill_log_stats(log, &st);
	assert_true(st.segments > 2);
	assert_int_equal(st.direct_io, direct);
	assert_true(st.batches > 2);
	assert_int_equal(st.direct_batches, direct ? st.batches : 0);
	assert_int_equal(rill_log_close(log), 0);
	assert_int_equal(rill_log_open(&log, io, dir, &c, NULL), 0);
	assert_int_equal(log_check_all(log, count), count);
	rill_log_stats(log, &st);
	assert_int_equal(st.direct_io, direct);
	assert_int_equal(rill_log_close(log), 0);
	return direct;
}

/* Whether the file system under @dir takes O_DIRECT writes aligned to 512 bytes, asked
 * here without the I/O layer, so that the test does not take that layer's word for it. */
static bool direct_expected(const char *dir)
{
#ifdef STATX_DIOALIGN
	char path[256];
	snprintf(path, sizeof(path), "%s/probe-direct", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	struct statx st;
	bool ok = statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 &&
		  (st.stx_mask & STATX_DIOALIGN) && st.stx_dio_offset_align != 0 &&
		  st.stx_dio_offset_align <= 512 && st.stx_dio_mem_align != 0 &&
		  st.stx_dio_mem_align <= 512;
	close(fd);
	unlink(path);
	return ok;
#else
	(void)dir;
	return false;
#endif
}

/* One write_sync and its completion (waiting up to 10 s for a busy disk). */
static int direct_write_sync(struct rill_io *io, int handle, const void *buf, uint64_t offset)
{
	struct rill_io_completion done;
	assert_int_equal(io->ops->write_sync(io, handle, buf, 4096, offset, 1), 0);
	assert_int_equal(io->ops->poll(io, &done, 1, 10ull * 1000000000u), 1);
	return done.result;
}

/*
 * Batches go through a second, O_DIRECT handle where the file system takes one, and
 * through the page cache where it does not or the config says so; the log reads back the
 * same either way. The simulator checks every direct write's alignment (as the kernel
 * does), so each of its tests checks the log's; on real files, a misaligned write on a
 * direct handle must fail, which proves that the handle really is O_DIRECT.
 */
static void test_direct_writes(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 12), 0);
	assert_true(direct_round_trip(io_sim_io(sim), "/sim/direct", false, 1000));
	uint64_t direct_writes = io_sim_direct_writes(sim);
	assert_true(direct_writes > 2);
	assert_false(direct_round_trip(io_sim_io(sim), "/sim/buffered", true, 1000));
	io_sim_refuse_direct(sim, true);
	assert_false(direct_round_trip(io_sim_io(sim), "/sim/refused", false, 1000));
	assert_int_equal(io_sim_direct_writes(sim), direct_writes);
	io_sim_destroy(sim);

	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "test-direct"), 0);
	bool expect = direct_expected(dir);
	if (!expect)
		print_message("no O_DIRECT on this file system: page cache writes only\n");
	for (int backend = 0; backend < 2; backend++) {
		struct rill_io *io;
		if (backend == 0)
			assert_int_equal(rill_io_posix_create(&io), 0);
		else if (rill_io_uring_create(&io) != 0)
			break; /* no io_uring here: the POSIX run covered the log */
		char path[sizeof(dir) + 32];
		snprintf(path, sizeof(path), "%s/probe-%s", dir, io->name);
		int handle, direct;
		assert_int_equal(io->ops->open(io, path, RILL_IO_CREATE, &handle), 0);
		int rc = io->ops->open(io, path, RILL_IO_DIRECT, &direct);
		assert_int_equal(rc, expect ? 0 : -EOPNOTSUPP);
		if (rc == 0) {
			static _Alignas(4096) uint8_t block[4096];
			assert_int_equal(direct_write_sync(io, direct, block, 0), 0);
			assert_int_equal(direct_write_sync(io, direct, block, 100), -EINVAL);
			assert_int_equal(io->ops->close(io, direct), 0);
		}
		assert_int_equal(io->ops->close(io, handle), 0);
		snprintf(path, sizeof(path), "%s/direct-%s", dir, io->name);
		assert_int_equal(direct_round_trip(io, path, false, 1000), expect);
		snprintf(path, sizeof(path), "%s/buffered-%s", dir, io->name);
		assert_false(direct_round_trip(io, path, true, 1000));
		rill_io_destroy(io);
	}
	assert_int_equal(test_dir_remove(dir), 0);
}

/* A submission the kernel takes nothing of. */
static int submit_nothing(struct io_uring *ring)
{
	(void)ring;
	return 0;
}

/* A submission that takes the write of a pair and not its sync, once (then the real one):
 * the queue's tail made visible, and the kernel told to take one SQE. */
static int partial_submits;
static int submit_partially(struct io_uring *ring)
{
	if (partial_submits++ > 0)
		return io_uring_submit(ring);
	io_uring_smp_store_release(ring->sq.ktail, ring->sq.sqe_tail);
	long rc = syscall(__NR_io_uring_enter, ring->ring_fd, 1u, 0u, 0u, NULL, 0);
	return rc < 0 ? -errno : (int)rc;
}

/*
 * io_uring: a write and its fdatasync must go to the kernel in one submission, since a
 * link does not cross submissions: a sync sent on its own after the write could complete
 * first and call the write durable. A submission that took only the write stops the
 * backend for good (the log above fail-stops) rather than sending the sync unlinked.
 */
static void test_uring_partial_submit(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "test-uring-partial"), 0);
	struct rill_io *io;
	if (rill_io_uring_create(&io) != 0) {
		print_message("no io_uring here: skipped\n");
		assert_int_equal(test_dir_remove(dir), 0);
		skip(); /* a skip, not a pass: nothing was tested */
	}
	char path[sizeof(dir) + 16];
	snprintf(path, sizeof(path), "%s/pair", dir);
	int handle;
	assert_int_equal(io->ops->open(io, path, RILL_IO_CREATE, &handle), 0);
	static _Alignas(4096) uint8_t block[4096];
	assert_int_equal(direct_write_sync(io, handle, block, 0), 0); /* the real one works */
	partial_submits = 0;
	rill_io_uring_submit_hook(submit_partially);
	int rc = io->ops->write_sync(io, handle, block, 4096, 4096, 2);
	rill_io_uring_submit_hook(NULL);
	assert_int_equal(partial_submits, 1); /* never submitted again, sync unlinked */
	assert_int_equal(rc, -EIO);
	struct rill_io_completion done;
	assert_int_equal(io->ops->poll(io, &done, 1, 0), -EIO);
	assert_int_equal(io->ops->write_sync(io, handle, block, 4096, 8192, 3), -EIO);
	assert_int_equal(io->ops->close(io, handle), 0);
	rill_io_destroy(io);

	/* A NOP that uring_worker_cpus could not submit stays queued and goes first with the
	 * next pair, which must still count as taken whole (not as broken: three taken). */
	assert_int_equal(rill_io_uring_create(&io), 0);
	assert_int_equal(io->ops->open(io, path, 0, &handle), 0);
	int cpu = rill_cpu_nth(0);
	rill_io_uring_submit_hook(submit_nothing);
	assert_true(io->ops->worker_cpus(io, &cpu, 1) < 0);
	rill_io_uring_submit_hook(NULL);
	assert_int_equal(direct_write_sync(io, handle, block, 4096), 0);
	assert_int_equal(io->ops->close(io, handle), 0);
	rill_io_destroy(io);
	assert_int_equal(test_dir_remove(dir), 0);
}

/* Write @text into the existing file @path (a /proc file): 0 or -errno. */
/* One write_sync of @bytes at @offset and its completion, with the file size limit at
 * @limit bytes for it (SIGXFSZ ignored: the write's own result is what counts). */
static int write_sync_limited(struct rill_io *io, int handle, const void *buf, size_t bytes,
			      uint64_t offset, rlim_t limit)
{
	struct rlimit saved, low;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	low = saved;
	low.rlim_cur = limit;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	struct rill_io_completion done;
	int rc = io->ops->write_sync(io, handle, buf, bytes, offset, 5);
	if (rc == 0)
		rc = io->ops->poll(io, &done, 1, 10ull * 1000000000u);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, 1);
	assert_int_equal(done.token, 5);
	return done.result;
}

/*
 * A write of which only a part fits (the disk or a quota filling up; here the file size
 * limit, RLIMIT_FSIZE, which needs no small disk) is reported with its cause by every
 * backend, through the page cache and O_DIRECT alike. io_uring completes such a write with
 * the short count, not the error, and its backend took that for EIO: a full disk was
 * told to producers and the operator as an "Input/output error".
 */
static void test_short_write_cause(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "test-short-write"), 0);
	bool direct_ok = direct_expected(dir);
	static _Alignas(4096) uint8_t block[3 * 4096];
	memset(block, 0x5a, sizeof(block));
	bool uring = false;
	for (int backend = 0; backend < 2; backend++) {
		struct rill_io *io;
		if (backend == 0)
			assert_int_equal(rill_io_posix_create(&io), 0);
		else if (rill_io_uring_create(&io) != 0)
			break;
		uring = backend == 1;
		for (int direct = 0; direct <= (int)direct_ok; direct++) {
			char path[sizeof(dir) + 32];
			snprintf(path, sizeof(path), "%s/short-%s-%d", dir, io->name, direct);
			int handle, writer;
			assert_int_equal(io->ops->open(io, path, RILL_IO_CREATE, &handle), 0);
			writer = handle;
			if (direct)
				assert_int_equal(io->ops->open(io, path, RILL_IO_DIRECT, &writer),
						 0);
			/* The limit mid-write: the first 4 KiB fit, the rest does not. */
			int rc = write_sync_limited(io, writer, block, sizeof(block), 4096, 8192);
			if (rc != -EFBIG)
				fail_msg("%s%s: a write cut short by the file size limit: %s, "
					 "expected EFBIG",
					 io->name, direct ? " (O_DIRECT)" : "", rill_strerror(rc));
			/* Wholly past the limit: the error itself, as before. */
			rc = write_sync_limited(io, writer, block, 4096, 8192, 8192);
			assert_int_equal(rc, -EFBIG);
			/* A limit off the 512-byte boundaries (a buffered handle): the rest's
			 * writes from the boundary got no further, and the cause was EIO. */
			rc = write_sync_limited(io, writer, block, sizeof(block), 4096, 8292);
			if (!direct && rc != -EFBIG)
				fail_msg(
					"%s: a write cut short at an unaligned limit: %s, expected "
					"EFBIG",
					io->name, rill_strerror(rc));
			if (direct)
				assert_int_equal(io->ops->close(io, writer), 0);
			assert_int_equal(io->ops->close(io, handle), 0);
		}
		rill_io_destroy(io);
	}
	assert_int_equal(test_dir_remove(dir), 0);
	if (!uring) {
		print_message("no io_uring here: only the POSIX backend tested\n");
		skip();
	}
}

/* The child of test_full_disk_enospc: its exit code (0, 77 skipped, 1 failed). */
static int full_disk_child(const char *dir)
{
	int rc = test_tmpfs_private(dir, 256);
	if (rc < 0) {
		fprintf(stderr, "no tmpfs of our own (%s): skipped\n", strerror(-rc));
		return 77;
	}
	struct rill_io *io;
	if (rill_io_uring_create(&io) != 0) {
		fprintf(stderr, "no io_uring here: skipped\n");
		return 77;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/p0", dir);
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 16u << 20; /* no roll: the disk fills inside a batch's write */
	struct rill_log *log;
	if ((rc = rill_log_open(&log, io, path, &c, NULL)) != 0) {
		fprintf(stderr, "open: %s\n", rill_strerror(rc));
		return 1;
	}
	uint64_t i = 0;
	for (rc = 0; rc == 0 && i < 100000; i++) {
		rc = append_one(log, i);
		if (rc == 0 && i % 16 == 15)
			rc = rill_log_sync(log);
	}
	uint64_t durable = rill_log_durable_offset(log);
	int error = rill_log_error(log);
	int again = rill_log_sync(log);
	bool held = rill_log_durable_offset(log) == durable;
	rill_log_drop(log);
	if (rc != -ENOSPC || error != -ENOSPC || again != -ENOSPC || !held) {
		fprintf(stderr,
			"a full disk: append %s, log error %s, sync after %s, durable %s; "
			"expected ENOSPC and nothing more durable\n",
			rill_strerror(rc), rill_strerror(error), rill_strerror(again),
			held ? "held" : "moved");
		return 1;
	}
	/* Every acknowledged record is there, intact, and nothing past the failed batch
	 * was called durable. */
	struct rill_log_config ro = c;
	ro.read_only = true;
	if (rill_log_open(&log, io, path, &ro, NULL) != 0 || durable == 0 ||
	    log_check_all(log, durable) < (int64_t)durable) {
		fprintf(stderr, "acknowledged records lost (durable %llu)\n",
			(unsigned long long)durable);
		return 1;
	}
	rill_log_drop(log);
	rill_io_destroy(io);
	return 0;
}

/*
 * A disk that fills in the middle of a batch's write (a 256 KiB tmpfs) stops the log with
 * ENOSPC through io_uring, as through POSIX: it said EIO, an "Input/output error" to every
 * producer and on stderr. The records acknowledged before stay whole. Skipped where no
 * mount namespace can be had.
 */
static void test_full_disk_enospc(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "test-full-disk"), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_disk_child(dir));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(test_dir_remove(dir), 0);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * --repair: a log damaged in the middle of a sealed segment is refused; opened with
 * config.repair it is cut at the damaged batch (the segments after it removed, the
 * checkpoint lowered), keeps every record before it intact, takes new appends at the cut,
 * and then opens without repair. A damaged tail inside the durable region likewise.
 */
static void test_repair(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 13), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_sync_all(sim);

	char seg0[96];
	snprintf(seg0, sizeof(seg0), "%s/%020llu.log", DIR_SIM, 0ull);
	uint64_t size;
	uint8_t *data = io_sim_file_data(sim, seg0, &size);
	assert_non_null(data);
	data[size / 2] ^= 0x40; /* the first, sealed, segment */
	/* A writer trusts a sealed segment's sound index files; the tools scan it. */
	struct rill_log_config ro = c;
	ro.read_only = true;
	memset(&report, 0, sizeof(report));
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &ro, &report),
			 RILL_E_LOG_CORRUPT);
	assert_non_null(strstr(report.message, "a sealed segment"));

	struct rill_log_config r = c;
	r.repair = true;
	memset(&report, 0, sizeof(report));
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &r, &report), 0);
	uint64_t cut = report.next_offset;
	assert_true(cut > 0 && cut < 1000);
	assert_true(report.segments_removed > 0);
	assert_non_null(strstr(report.message, "segments after it removed"));
	assert_int_equal(log_check_all(log, cut), (int64_t)cut);
	for (uint64_t i = cut; i < cut + 50; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_close(log), 0);
	memset(&report, 0, sizeof(report));
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_string_equal(report.message, "");
	assert_int_equal(report.next_offset, cut + 50);
	assert_int_equal(log_check_all(log, cut + 50), (int64_t)(cut + 50));
	assert_int_equal(rill_log_close(log), 0);

	/* Damage in the tail, inside the durable region: refused, then cut by repair. */
	io_sim_sync_all(sim);
	char tail[96];
	snprintf(tail, sizeof(tail), "%s/%020llu.log", DIR_SIM, 0ull);
	data = io_sim_file_data(sim, tail, &size); /* after the cut, segment 0 is the tail */
	assert_non_null(data);
	data[RILL_SEGMENT_DATA_START + 100] ^= 0x01; /* the first batch's records */
	memset(&report, 0, sizeof(report));
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report),
			 RILL_E_LOG_CORRUPT);
	assert_non_null(strstr(report.message, "rill log verify --repair"));
	memset(&report, 0, sizeof(report));
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &r, &report), 0);
	assert_int_equal(report.next_offset, 0);
	assert_int_equal(report.segments_removed, 0);
	assert_int_equal(rill_log_close(log), 0);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_int_equal(report.next_offset, 0);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

static void test_read_from_offset_and_time(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 2), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 2000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	static const uint64_t starts[] = {0, 1, 63, 500, 1234, 1999, 2000};
	for (size_t s = 0; s < RILL_ARRAY_COUNT(starts); s++) {
		struct rill_log_iter it;
		assert_int_equal(rill_log_iter_init(&it, log, starts[s]), 0);
		struct rill_record rec;
		uint64_t offset, expect = starts[s];
		while (rill_log_iter_next(&it, &rec, &offset) == 1) {
			assert_int_equal(offset, expect);
			assert_true(log_check_matches(&rec, offset));
			expect++;
		}
		assert_int_equal(expect, 2000);
		rill_log_iter_fini(&it);
	}
	struct rill_log_iter it;
	assert_int_equal(rill_log_iter_init(&it, log, 2001), -ERANGE);
	/* Timestamps are 1000000 + 10 * offset. */
	uint64_t offset;
	assert_int_equal(rill_log_find_time(log, 0, &offset), 0);
	assert_int_equal(offset, 0);
	assert_int_equal(rill_log_find_time(log, 1000000 + 10 * 777, &offset), 0);
	assert_int_equal(offset, 777);
	assert_int_equal(rill_log_find_time(log, 1000000 + 10 * 777 + 1, &offset), 0);
	assert_int_equal(offset, 778);
	assert_int_equal(rill_log_find_time(log, UINT64_MAX, &offset), 0);
	assert_int_equal(offset, 2000);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

static void test_retention_by_bytes(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 3), 0);
	struct rill_log_config c = log_check_small_config();
	c.retention_bytes = 200u << 10;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 5000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	uint64_t start = rill_log_start_offset(log);
	assert_true(start > 0); /* old segments went */
	assert_int_equal(log_check_all(log, 5000), 5000);
	assert_int_equal(rill_log_close(log), 0);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(rill_log_start_offset(log), start);
	assert_int_equal(rill_log_next_offset(log), 5000);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/* The sim's own ops, with a segment's unlink, or the folder sync right after one,
 * failing while these counts last. */
static const struct rill_io_ops *retain_sim_ops;
static int retain_unlink_fails, retain_fsync_dir_fails;
static bool retain_unlinked; /* a segment file was just deleted */

static int retain_unlink(struct rill_io *io, const char *path)
{
	size_t n = strlen(path);
	bool segment = n > 4 && strcmp(path + n - 4, ".log") == 0;
	if (segment && retain_unlink_fails > 0) {
		retain_unlink_fails--;
		return -EIO;
	}
	int rc = retain_sim_ops->unlink(io, path);
	retain_unlinked = retain_unlinked || (segment && rc == 0);
	return rc;
}

static int retain_fsync_dir(struct rill_io *io, const char *path)
{
	bool after_delete = retain_unlinked;
	retain_unlinked = false;
	if (after_delete && retain_fsync_dir_fails > 0) {
		retain_fsync_dir_fails--;
		return -EIO;
	}
	return retain_sim_ops->fsync_dir(io, path);
}

/*
 * A retention deletion that fails costs disk space, never an acknowledged event: the log
 * says so, goes on appending and syncing, keeps the segment and deletes it at a later
 * roll. A segment whose file went but whose folder sync failed leaves the list with it
 * (before, the list kept segments already deleted, and the log stopped).
 */
static void test_retention_errors(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 41), 0);
	struct rill_io *io = io_sim_io(sim);
	static struct rill_io_ops ops;
	retain_sim_ops = io->ops;
	ops = *io->ops;
	ops.unlink = retain_unlink;
	ops.fsync_dir = retain_fsync_dir;
	io->ops = &ops;
	struct rill_log_config c = log_check_small_config();
	c.retention_bytes = 200u << 10;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io, DIR_SIM, &c, NULL), 0);
	retain_unlink_fails = 1000000; /* every deletion fails */
	uint64_t i = 0;
	for (; i < 3000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_error(log), 0);
	struct rill_log_stats st;
	rill_log_stats(log, &st);
	assert_true(st.retain_errors > 0);
	assert_int_equal(rill_log_start_offset(log), 0); /* nothing went */
	assert_int_equal(log_check_all(log, i), i);
	/* The deletions work again: the next roll catches up. */
	retain_unlink_fails = 0;
	for (; i < 4000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	uint64_t start = rill_log_start_offset(log);
	assert_true(start > 0);
	rill_log_stats(log, &st);
	uint64_t errors = st.retain_errors;
	/* A folder sync that fails after a deletion: that segment leaves the list too. */
	retain_fsync_dir_fails = 1;
	for (; i < 6000 && rill_log_start_offset(log) == start; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_error(log), 0);
	rill_log_stats(log, &st);
	assert_int_equal(st.retain_errors, errors + 1);
	assert_true(rill_log_start_offset(log) > start);
	struct rill_log_iter it;
	struct rill_record rec;
	uint64_t offset;
	assert_int_equal(rill_log_iter_init(&it, log, start), 0); /* begins where the log does */
	assert_int_equal(rill_log_iter_next(&it, &rec, &offset), 1);
	assert_int_equal(offset, rill_log_start_offset(log));
	rill_log_iter_fini(&it);
	assert_int_equal(log_check_all(log, i), i);
	assert_int_equal(rill_log_close(log), 0);
	io->ops = retain_sim_ops;
	io_sim_destroy(sim);
}

/* The sim's list, reporting segment 0 too: listed just before retention deleted it. */
static const struct rill_io_ops *stale_sim_ops;
static int stale_list(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg)
{
	int rc = fn(arg, "00000000000000000000.log");
	return rc != 0 ? rc : stale_sim_ops->list(io, path, fn, arg);
}

/*
 * A read-only open beside a running writer (rill log verify on a live data directory):
 * retention may delete the oldest segment between the listing and its open. That is no
 * damage; a segment missing after a kept one still is.
 */
static void test_read_only_beside_retention(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 43), 0);
	struct rill_io *io = io_sim_io(sim);
	struct rill_log_config c = log_check_small_config();
	c.retention_bytes = 200u << 10;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io, DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 3000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	uint64_t start = rill_log_start_offset(log);
	assert_true(start > 0); /* segment 0 went */
	static struct rill_io_ops ops;
	stale_sim_ops = io->ops;
	ops = *io->ops;
	ops.list = stale_list;
	io->ops = &ops;
	struct rill_log_config ro = c;
	ro.read_only = true;
	struct rill_log *reader;
	struct rill_log_recovery report;
	int rc = rill_log_open(&reader, io, DIR_SIM, &ro, &report);
	if (rc != 0)
		fail_msg("read-only, a segment retention deleted after the listing: %d (%s)", rc,
			 report.message);
	assert_int_equal(rill_log_start_offset(reader), start);
	assert_int_equal(rill_log_next_offset(reader), 3000);
	rill_log_drop(reader);
	io->ops = stale_sim_ops;
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/* An iterator left behind while retention deletes segments says the records it was at are
 * gone; it never stalls or reads out of bounds. */
static void test_iterator_across_retention(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 9), 0);
	struct rill_log_config c = log_check_small_config();
	c.retention_bytes = 200u << 10;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	struct rill_log_iter slow, fast;
	assert_int_equal(rill_log_iter_init(&slow, log, 0), 0);
	assert_int_equal(rill_log_iter_init(&fast, log, 900), 0);
	struct rill_record rec;
	uint64_t offset;
	assert_int_equal(rill_log_iter_next(&slow, &rec, &offset), 1);
	assert_int_equal(rill_log_iter_next(&fast, &rec, &offset), 1);
	for (uint64_t i = 1000; i < 6000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_true(rill_log_start_offset(log) > 1000);
	/* Each may finish the batch it had read, in order, then learns its place is gone. */
	struct rill_log_iter *its[] = {&slow, &fast};
	for (int i = 0; i < 2; i++) {
		uint64_t last = UINT64_MAX;
		int rc;
		while ((rc = rill_log_iter_next(its[i], &rec, &offset)) == 1) {
			assert_true(last == UINT64_MAX || offset == last + 1);
			assert_true(log_check_matches(&rec, offset));
			last = offset;
		}
		assert_int_equal(rc, -ERANGE);
	}
	rill_log_iter_fini(&slow);
	rill_log_iter_fini(&fast);
	/* One started after retention reads through to the end. */
	struct rill_log_iter late;
	assert_int_equal(rill_log_iter_init(&late, log, 0), 0);
	uint64_t expect = rill_log_start_offset(log), n = 0;
	while (rill_log_iter_next(&late, &rec, &offset) == 1) {
		assert_int_equal(offset, expect++);
		n++;
	}
	assert_int_equal(expect, 6000);
	assert_true(n > 0);
	rill_log_iter_fini(&late);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/* A read-only open of an empty directory holds nothing and reads nothing. */
static void test_read_only_empty(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 10), 0);
	struct rill_log_config c = log_check_small_config();
	c.read_only = true;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	struct rill_log_iter it;
	assert_int_equal(rill_log_iter_init(&it, log, 0), 0);
	struct rill_record rec;
	uint64_t offset;
	assert_int_equal(rill_log_iter_next(&it, &rec, &offset), 0);
	rill_log_iter_fini(&it);
	rill_log_drop(log);
	io_sim_destroy(sim);
}

/*
 * Sealed segments get .idx and .tix files at roll; open trusts sound ones instead of
 * scanning the segment (only the tail is verified batch by batch), while a read-only open
 * (the tools) scans everything. Without them, open scans and writes them again.
 */
static void test_index_files(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 12), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_sync_all(sim);
	char idx[256], tix[256], seg[256];
	snprintf(idx, sizeof(idx), "%s/%020llu.idx", DIR_SIM, 0ull);
	snprintf(tix, sizeof(tix), "%s/%020llu.tix", DIR_SIM, 0ull);
	snprintf(seg, sizeof(seg), "%s/%020llu.log", DIR_SIM, 0ull);
	uint64_t size;
	assert_non_null(io_sim_file_data(sim, idx, &size));
	assert_non_null(io_sim_file_data(sim, tix, &size));

	/* Reads through the loaded indexes find every record, by offset and by time. */
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(log_check_all(log, 1000), 1000);
	uint64_t offset;
	assert_int_equal(rill_log_find_time(log, 1000000 + 10 * 123, &offset), 0);
	assert_int_equal(offset, 123);
	assert_int_equal(rill_log_close(log), 0);

	/* Damage inside the first (sealed) segment: its index spares the scan at open... */
	uint8_t *data = io_sim_file_data(sim, seg, &size);
	data[RILL_SEGMENT_DATA_START + 100] ^= 0x40;
	io_sim_sync_all(sim);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	rill_log_drop(log);
	/* ...but a read-only open (rill log verify) scans it and refuses, */
	struct rill_log_config ro = c;
	ro.read_only = true;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &ro, NULL),
			 RILL_E_LOG_CORRUPT);
	/* and so does an open that finds a stale index (here: a damaged one). */
	data = io_sim_file_data(sim, idx, &size);
	data[size - 12] ^= 1; /* the trailer's CRC */
	io_sim_sync_all(sim);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL),
			 RILL_E_LOG_CORRUPT);
	io_sim_destroy(sim);
}

/* Index file @path (@buf, a copy of it with @old_count entries) written back with its first
 * @count entries, the trailer after them and a CRC that holds: as rill would write it. */
static void index_store(struct io_sim *sim, const char *path, uint8_t *buf, uint64_t old_count,
			uint64_t count)
{
	const size_t entry = sizeof(struct rill_index_entry), trailer = 32;
	memmove(buf + RILL_INDEX_HEADER_BYTES + count * entry,
		buf + RILL_INDEX_HEADER_BYTES + old_count * entry, trailer);
	memcpy(buf + 8, &count, sizeof(count));
	size_t bytes = RILL_INDEX_HEADER_BYTES + count * entry + trailer;
	uint32_t crc = rill_crc32c(buf, bytes - 8);
	memcpy(buf + bytes - 8, &crc, sizeof(crc));
	struct rill_io *io = io_sim_io(sim);
	int handle;
	assert_int_equal(io->ops->open(io, path, RILL_IO_CREATE, &handle), 0);
	assert_int_equal(io->ops->truncate(io, handle, 0), 0);
	assert_int_equal(io->ops->pwrite(io, handle, buf, bytes, 0), 0);
	assert_int_equal(io->ops->close(io, handle), 0);
	io_sim_sync_all(sim);
}

static uint8_t *index_copy(struct io_sim *sim, const char *path, uint64_t *count)
{
	uint64_t size;
	const uint8_t *data = io_sim_file_data(sim, path, &size);
	assert_non_null(data);
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	memcpy(buf, data, size);
	memcpy(count, buf + 8, sizeof(*count));
	assert_true(*count >= 4);
	return buf;
}

/*
 * Index files whose CRC holds but whose entries cannot describe their segment are not
 * trusted: a first entry that places offset 0 at a later batch made a read from 0 start
 * there, offsets 0.. missing without an error. And where entries look sound but place a
 * read past the offset asked for, the read fails rather than skip what lies between.
 */
static void test_index_files_unsound(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 12), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_sync_all(sim);
	char idx[256], tix[256];
	snprintf(idx, sizeof(idx), "%s/%020llu.idx", DIR_SIM, 0ull);
	snprintf(tix, sizeof(tix), "%s/%020llu.tix", DIR_SIM, 0ull);
	uint64_t count, tix_count;
	uint8_t *idx_buf = index_copy(sim, idx, &count);
	uint8_t *tix_buf = index_copy(sim, tix, &tix_count);
	assert_int_equal(tix_count, count);
	struct rill_index_entry *e = (struct rill_index_entry *)(idx_buf + RILL_INDEX_HEADER_BYTES);
	struct rill_index_entry *t = (struct rill_index_entry *)(tix_buf + RILL_INDEX_HEADER_BYTES);

	/* Offset 0 at the second entry's batch: refused, the segment is scanned instead. */
	uint64_t first_value = e[0].value;
	e[0].value = e[1].value;
	index_store(sim, idx, idx_buf, count, count);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(log_check_all(log, 1000), 1000);
	assert_int_equal(rill_log_close(log), 0);
	e[0].value = first_value;

	/* Entry 1 moved to entry 2's batch, entry 2 dropped: in order, so trusted; a read from
	 * entry 1's offset finds a later batch and says the log is damaged. */
	uint64_t asked = e[1].key, found = e[2].key;
	assert_true(found > asked);
	e[1].value = e[2].value;
	memmove(&e[2], &e[3], (count - 3) * sizeof(*e));
	memmove(&t[2], &t[3], (count - 3) * sizeof(*t));
	index_store(sim, idx, idx_buf, count, count - 1);
	index_store(sim, tix, tix_buf, count, count - 1);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	struct rill_log_iter it;
	assert_int_equal(rill_log_iter_init(&it, log, asked), 0);
	struct rill_record rec;
	uint64_t offset = UINT64_MAX;
	assert_int_equal(rill_log_iter_next(&it, &rec, &offset), RILL_E_LOG_CORRUPT);
	rill_log_iter_fini(&it);
	assert_int_equal(rill_log_close(log), 0);
	free(idx_buf);
	free(tix_buf);
	io_sim_destroy(sim);
}

/* A file at @path of @sim holding a few bytes, as a crash would leave it. */
static void sim_leave_file(struct io_sim *sim, const char *path)
{
	struct rill_io *io = io_sim_io(sim);
	int handle;
	assert_int_equal(io->ops->open(io, path, RILL_IO_CREATE, &handle), 0);
	assert_int_equal(io->ops->pwrite(io, handle, "partial", 7, 0), 0);
	assert_int_equal(io->ops->close(io, handle), 0);
}

static bool sim_has(struct io_sim *sim, const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	uint64_t size;
	return io_sim_file_data(sim, path, &size) != NULL;
}

/*
 * Temporary files a crash left (an index file or the checkpoint half written): retention
 * deletes a segment's NNN.idx.tmp and NNN.tix.tmp with it, and a writer's open deletes
 * every one, those of segments gone included. Nothing else goes: not a file rill does not
 * write, and nothing at a read-only open (rill log verify beside a running writer, which
 * may be writing them). They used to stay for good, holding their disk space.
 */
static void test_temp_files_removed(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 61), 0);
	struct rill_log_config c = log_check_small_config();
	c.retention_bytes = 200u << 10;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	uint64_t i = 0;
	for (; i < 500; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_start_offset(log), 0);
	sim_leave_file(sim, DIR_SIM "/00000000000000000000.idx.tmp");
	sim_leave_file(sim, DIR_SIM "/00000000000000000000.tix.tmp");
	while (rill_log_start_offset(log) == 0) { /* until retention deletes segment 0 */
		assert_true(i < 20000);
		assert_int_equal(append_one(log, i++), 0);
	}
	assert_false(sim_has(sim, DIR_SIM, "00000000000000000000.idx.tmp"));
	assert_false(sim_has(sim, DIR_SIM, "00000000000000000000.tix.tmp"));
	uint64_t start = rill_log_start_offset(log);
	assert_int_equal(rill_log_close(log), 0);

	static const char *const ours[] = {
		"00000000000000000000.idx.tmp", /* of a segment gone */
		"00000000000000000007.tix.tmp",
		"checkpoint.tmp",
	};
	static const char *const strangers[] = {
		"notes.tmp",
		"0000000000000000000.idx.tmp", /* 19 digits */
		"0000000000000000000x.idx.tmp",
		"00000000000000000000.log.tmp",
		"00000000000000000000.idx.tmp.bak",
		".snapshot.tmp",
	};
	char name[64];
	snprintf(name, sizeof(name), "%020llu.idx.tmp",
		 (unsigned long long)start); /* of a live segment */
	const char *live = name;
	for (size_t k = 0; k < RILL_ARRAY_COUNT(ours); k++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s", DIR_SIM, ours[k]);
		sim_leave_file(sim, path);
	}
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", DIR_SIM, live);
	sim_leave_file(sim, path);
	for (size_t k = 0; k < RILL_ARRAY_COUNT(strangers); k++) {
		snprintf(path, sizeof(path), "%s/%s", DIR_SIM, strangers[k]);
		sim_leave_file(sim, path);
	}
	struct rill_log_config ro = c;
	ro.read_only = true;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &ro, NULL), 0);
	assert_int_equal(rill_log_close(log), 0);
	for (size_t k = 0; k < RILL_ARRAY_COUNT(ours); k++)
		assert_true(sim_has(sim, DIR_SIM, ours[k]));
	assert_true(sim_has(sim, DIR_SIM, live));

	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (size_t k = 0; k < RILL_ARRAY_COUNT(ours); k++) {
		if (sim_has(sim, DIR_SIM, ours[k]))
			fail_msg("%s left after a writer's open", ours[k]);
	}
	assert_false(sim_has(sim, DIR_SIM, live));
	for (size_t k = 0; k < RILL_ARRAY_COUNT(strangers); k++) {
		if (!sim_has(sim, DIR_SIM, strangers[k]))
			fail_msg("%s, no file of rill's, deleted at open", strangers[k]);
	}
	assert_int_equal(log_check_all(log, i), (int64_t)i);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/* Roll and retention by age: with limits of a nanosecond, every batch opens a new segment
 * and every segment but the active one goes. (The wall clock going back counts as age 0.) */
static void test_roll_and_retention_by_age(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 13), 0);
	struct rill_log_config c = log_check_small_config();
	c.segment_age_ns_max = 1;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 20; i++) {
		assert_int_equal(append_one(log, i), 0);
		assert_int_equal(rill_log_sync(log), 0);
	}
	struct rill_log_stats stats;
	rill_log_stats(log, &stats);
	assert_true(stats.segments >= 19); /* one batch each (the first may share) */
	assert_int_equal(log_check_all(log, 20), 20);
	assert_int_equal(rill_log_close(log), 0);

	c.segment_age_ns_max = 0;
	c.retention_age_ns = 1;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(append_one(log, 20), 0);
	assert_int_equal(rill_log_sync(log), 0);
	c.segment_age_ns_max = 1; /* reopen to roll once more, so retention runs */
	assert_int_equal(rill_log_close(log), 0);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(append_one(log, 21), 0);
	assert_int_equal(rill_log_sync(log), 0);
	rill_log_stats(log, &stats);
	assert_int_equal(stats.segments, 1); /* every older segment was past its age */
	assert_int_equal(stats.start_offset, 21);
	assert_int_equal(log_check_all(log, 22), 22);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

static void check_segments(struct rill_log *log, uint32_t segments, uint64_t start)
{
	struct rill_log_stats st;
	rill_log_stats(log, &st);
	assert_int_equal(st.segments, segments);
	assert_int_equal(st.start_offset, start);
}

/*
 * Retention on time (rill_log_expire, at a time of the test's choosing): a log with an age
 * limit and 1 GiB segments, idle after 100 records. Before, retention ran only at a roll
 * and an active segment never rolled by age unless segment_age_ns_max was set, so such a
 * log kept its records for ever. Now its active segment rolls once older than the
 * retention age (with nothing to append: an empty tail that recovers, even after a power
 * cut), and a sealed segment goes once the one after it is past the age, so a record goes
 * at most about twice the age after it came. Never the active segment, nothing at or above
 * the floor, nothing from a read-only log; a roll that finds a write in flight is owed to
 * the next submit.
 */
static void test_retention_on_time(void **state)
{
	(void)state;
	const uint64_t hour_ns = 3600ull * 1000000000u, minute_ns = 60ull * 1000000000u;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 47), 0);
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 1ull << 30; /* never by size here */
	c.retention_age_ns = hour_ns;
	struct rill_log *log;
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	uint64_t t0 = rill_clock_wall_ns(); /* the segment's created_ns is at or before it */
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_expire(log, t0), 0); /* younger than the age: nothing */
	check_segments(log, 1, 0);

	/* An hour on, idle: the active segment rolls (the new one made at the time given);
	 * the sealed one is kept until the new one is more than an hour old. */
	assert_int_equal(rill_log_expire(log, t0 + hour_ns + minute_ns), 0);
	check_segments(log, 2, 0);
	assert_int_equal(rill_log_next_offset(log), 100);
	rill_log_drop(log); /* the empty tail the roll made survives a power cut */
	io_sim_power_cut(sim);
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_string_equal(report.message, "");
	assert_int_equal(report.next_offset, 100);
	check_segments(log, 2, 0);
	assert_int_equal(rill_log_expire(log, t0 + hour_ns + minute_ns), 0);
	check_segments(log, 2, 0); /* an empty active segment never rolls */
	assert_int_equal(rill_log_expire(log, t0 + 2 * hour_ns + minute_ns), 0);
	check_segments(log, 2, 0); /* the new one is an hour old, not more */
	assert_int_equal(rill_log_expire(log, t0 + 2 * hour_ns + 2 * minute_ns), 0);
	check_segments(log, 1, 100); /* expired: only the (empty) active one is left */
	assert_int_equal(log_check_all(log, 100), 100);

	/* The floor holds a segment with a record at or above it; lifted, the segment goes. */
	for (uint64_t i = 100; i < 200; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_expire(log, t0 + 3 * hour_ns), 0);
	check_segments(log, 2, 100); /* rolled at 200 */
	rill_log_retain_floor(log, 150);
	assert_int_equal(rill_log_expire(log, t0 + 4 * hour_ns + minute_ns), 0);
	check_segments(log, 2, 100); /* expired, but [100, 200) is held by the floor */
	rill_log_retain_floor(log, UINT64_MAX);
	assert_int_equal(rill_log_expire(log, t0 + 4 * hour_ns + minute_ns), 0);
	check_segments(log, 1, 200);

	/* A write in flight: the roll is owed, and made before the next batch. */
	assert_int_equal(append_one(log, 200), 0);
	assert_true(rill_log_in_flight(log));
	assert_int_equal(rill_log_expire(log, t0 + 5 * hour_ns), 0);
	check_segments(log, 1, 200);
	assert_int_equal(append_one(log, 201), 0);
	assert_int_equal(rill_log_sync(log), 0);
	check_segments(log, 2, 200);
	char path[256];
	uint64_t size;
	snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 201ull);
	assert_non_null(io_sim_file_data(sim, path, &size)); /* 201 began the new segment */
	assert_int_equal(rill_log_close(log), 0);

	/* A read-only open (rill log verify) deletes nothing, whatever the time. */
	struct rill_log_config ro = c;
	ro.read_only = true;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &ro, NULL), 0);
	assert_int_equal(rill_log_expire(log, t0 + 100 * hour_ns), 0);
	check_segments(log, 2, 200);
	rill_log_drop(log);
	snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 200ull);
	assert_non_null(io_sim_file_data(sim, path, &size));
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(log_check_all(log, 202), 202);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/*
 * The wall clock stepping back (an NTP step, a restored VM) after a segment was made: its
 * age used to read 0 until the clock caught up again, so for the whole step the active
 * segment never rolled by age and, retention going oldest first, nothing after it went.
 * Its age now counts from the step: a day back, it rolls an hour on and goes an hour
 * later, as without the step.
 */
static void test_retention_clock_back(void **state)
{
	(void)state;
	const uint64_t hour_ns = 3600ull * 1000000000u, minute_ns = 60ull * 1000000000u;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 48), 0);
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 1ull << 30; /* never by size here */
	c.retention_age_ns = hour_ns;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	uint64_t back = rill_clock_wall_ns() - 24 * hour_ns; /* the clock after its step */
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_expire(log, back), 0);
	check_segments(log, 1, 0);
	assert_int_equal(rill_log_expire(log, back + hour_ns + minute_ns), 0);
	check_segments(log, 2, 0); /* rolled: an hour old by the clock as it is now */
	assert_int_equal(rill_log_expire(log, back + 2 * hour_ns + 2 * minute_ns), 0);
	check_segments(log, 1, 100); /* and expired an hour after that */
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/*
 * What is a segment's name: the log's listing and the offline tools (rill log verify's
 * walk, dump's check) share rill_log_segment_name_parse. verify used to take any name of
 * 24 characters ending in ".log", so a stray file beside the topics made it check DATA as
 * an empty partition, and nothing below it.
 */
static void test_segment_name(void **state)
{
	(void)state;
	uint64_t base = 7;
	assert_true(rill_log_segment_name_parse("00000000000000000000.log", &base));
	assert_int_equal(base, 0);
	assert_true(rill_log_segment_name_parse("00000000000000004096.log", &base));
	assert_int_equal(base, 4096);
	assert_true(rill_log_segment_name_parse("18446744073709551615.log", &base));
	assert_int_equal(base, UINT64_MAX);
	assert_true(rill_log_segment_name_parse("00000000000000000001.log", NULL));
	base = 7;
	const char *const strangers[] = {
		"server-20250101-0001.log", /* 24 characters and ".log": a rotated server log */
		"18446744073709551616.log", /* past UINT64_MAX */
		"0000000000000000000a.log",
		"00000000000000000000.idx",
		"00000000000000000000.tix",
		"0000000000000000000.log",
		"000000000000000000000.log",
		"00000000000000000000.log~",
		"00000000000000000000.LOG",
		".log",
		"",
		"checkpoint",
		"lock",
	};
	for (size_t i = 0; i < sizeof(strangers) / sizeof(strangers[0]); i++) {
		if (rill_log_segment_name_parse(strangers[i], &base))
			fail_msg("\"%s\" taken for a segment", strangers[i]);
	}
	assert_int_equal(base, 7); /* untouched */
	/* The log's listing agrees: a stray one beside the segments is not read. */
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 49), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(append_one(log, 0), 0);
	assert_int_equal(rill_log_close(log), 0);
	struct rill_io *io = io_sim_io(sim);
	int handle;
	assert_int_equal(
		io->ops->open(io, DIR_SIM "/server-20250101-0001.log", RILL_IO_CREATE, &handle), 0);
	assert_int_equal(io->ops->pwrite(io, handle, "rotated\n", 8, 0), 0);
	assert_int_equal(io->ops->close(io, handle), 0);
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io, DIR_SIM, &c, &report), 0);
	assert_int_equal(report.segments, 1);
	assert_int_equal(log_check_all(log, 1), 1);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

static void test_group_commit_batches(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 4), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	/* While the first batch is in flight, the next ones fill: appends never wait for it. */
	assert_int_equal(append_one(log, 0), 0);
	assert_int_equal(rill_log_durable_offset(log), 0);
	uint64_t ops_before = io_sim_ops(sim);
	for (uint64_t i = 1; i < 10; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(io_sim_ops(sim), ops_before); /* no I/O: filling behind the write */
	assert_int_equal(rill_log_poll(log, 0), 0);    /* completes batch 1, submits 2..10 */
	assert_int_equal(rill_log_durable_offset(log), 1);
	assert_int_equal(rill_log_poll(log, 0), 0);
	assert_int_equal(rill_log_durable_offset(log), 10);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

/*
 * Fill behind a write that stays in flight (a slow disk): append records from @next on
 * until the log pushes back. Returns the bytes the filling batch took, and no I/O may
 * have happened meanwhile.
 */
static uint64_t fill_behind_slow_write(struct io_sim *sim, struct rill_log *log, uint64_t *next)
{
	uint64_t ops_before = io_sim_ops(sim), bytes = 0;
	for (;;) {
		struct log_check_record r;
		log_check_make(&r, *next);
		uint64_t offset;
		int rc = rill_log_append(log, &r.rec, &offset);
		if (rc == -EAGAIN)
			break;
		assert_int_equal(rc, 0);
		assert_int_equal(offset, *next);
		bytes += rill_record_bytes(r.rec.key_bytes, r.rec.payload_bytes);
		(*next)++;
	}
	assert_int_equal(io_sim_ops(sim), ops_before);
	return bytes;
}

/*
 * Behind a write in flight the filling batch grows past batch_bytes_max, up to its
 * buffer (sized for the largest record), and goes as one write when the first is done:
 * a slow sync is followed by one larger write, not by a queue of small ones. With
 * fixed_batches it stops at batch_bytes_max and appends get -EAGAIN, as before. Either
 * way every record reads back, after a reopen too.
 */
static void test_batch_growth(void **state)
{
	(void)state;
	for (int fixed = 0; fixed < 2; fixed++) {
		struct io_sim *sim;
		assert_int_equal(io_sim_create(&sim, 12), 0);
		io_sim_slow_writes(sim, true);
		struct rill_log_config c = log_check_small_config(); /* 8 KiB batches */
		c.segment_bytes_max = 16u << 20;
		c.fixed_batches = fixed;
		struct rill_log *log;
		assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
		uint64_t next = 0;
		assert_int_equal(append_one(log, next++), 0); /* submitted: in flight */
		assert_true(rill_log_in_flight(log));
		uint64_t filled = fill_behind_slow_write(sim, log, &next);
		if (fixed) {
			assert_true(filled <= c.batch_bytes_max);
			assert_true(filled + RILL_RECORD_HEADER_BYTES + LOG_CHECK_PAYLOAD_MAX + 32 >
				    c.batch_bytes_max - RILL_BATCH_HEADER_BYTES);
		} else {
			assert_true(filled >= RILL_RECORD_BYTES_MAX); /* the buffer's size */
		}
		assert_true(rill_log_in_flight(log));
		assert_int_equal(rill_log_durable_offset(log), 0);
		/* The first write completes and the whole filled batch goes, in one write. */
		assert_int_equal(rill_log_poll(log, 1000000), 0);
		assert_int_equal(rill_log_durable_offset(log), 1);
		assert_int_equal(rill_log_poll(log, 1000000), 0);
		assert_int_equal(rill_log_durable_offset(log), next);
		struct rill_log_stats st;
		rill_log_stats(log, &st);
		assert_int_equal(st.batches, 2);
		assert_int_equal(st.grown_batches, fixed ? 0 : 1);
		assert_true(fixed ? st.batch_bytes_peak <= c.batch_bytes_max
				  : st.batch_bytes_peak > RILL_RECORD_BYTES_MAX);
		assert_int_equal(log_check_all(log, next), (int64_t)next);
		assert_int_equal(rill_log_close(log), 0);
		io_sim_power_cut(sim); /* what was synced is all there is */
		assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
		assert_int_equal(log_check_all(log, next), (int64_t)next);
		assert_int_equal(rill_log_close(log), 0);
		io_sim_destroy(sim);
	}
}

/* With a batch delay, a batch goes once the delay has passed, at the next poll: appends
 * read no clock and never submit it on time's account (log.h, rill_log_append). */
static void test_batch_delay(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 4), 0);
	struct rill_log_config c = log_check_small_config();
	c.batch_delay_ns = 20u * 1000000u;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	assert_int_equal(rill_log_submit_due_ns(log), UINT64_MAX); /* nothing fills */
	assert_int_equal(append_one(log, 0), 0);
	uint64_t due = rill_log_submit_due_ns(log);
	assert_true(due != UINT64_MAX);
	assert_false(rill_log_in_flight(log));
	if (rill_clock_now_ns() < due) { /* a slow machine may be past it already */
		assert_int_equal(rill_log_poll(log, 0), 0);
		assert_false(rill_log_in_flight(log)); /* not due yet: it waits */
	}
	while (rill_clock_now_ns() < due)
		usleep(1000);
	assert_int_equal(append_one(log, 1), 0);
	assert_false(rill_log_in_flight(log)); /* past due, but an append does not look */
	assert_int_equal(rill_log_submit_due_ns(log), due);
	assert_int_equal(rill_log_poll(log, 0), 0); /* the poll does: both records go */
	assert_true(rill_log_in_flight(log));
	assert_int_equal(rill_log_submit_due_ns(log), UINT64_MAX); /* in flight */
	assert_int_equal(rill_log_poll(log, 0), 0);
	assert_false(rill_log_in_flight(log));
	assert_int_equal(rill_log_durable_offset(log), 2);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_destroy(sim);
}

static void test_bad_config_refused(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 5), 0);
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	c.batch_bytes_max = 100;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), -EINVAL);
	c = log_check_small_config();
	c.durability = 7;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), -EINVAL);
	io_sim_destroy(sim);
}

/*
 * Power cuts: append with random pauses and syncs, cut the power at a random moment,
 * reopen: recovery must accept the log (a cut only ever tears the tail) and every offset
 * acknowledged durable must be there, intact. The log carries on across cuts.
 */
static void test_power_cuts(void **state)
{
	(void)state;
	/* The build sets RILL_LOG_POWER_CUTS; scripts/test.sh --long overrides it. */
	uint64_t cuts = test_env_u64("RILL_LOG_POWER_CUTS_LONG",
				     test_env_u64("RILL_LOG_POWER_CUTS", 10000));
	struct test_rng rng;
	test_rng_init(&rng, 6);
	struct io_sim *sim = NULL;
	struct rill_log_config c = log_check_small_config();
	uint64_t acked = 0, truncations = 0, fresh = 0, kills = 0, grown = 0, slow_rounds = 0;
	bool slow = false;
	for (uint64_t cut = 0; cut < cuts; cut++) {
		if (sim == NULL || test_rng_below(&rng, 50) == 0) {
			io_sim_destroy(sim); /* a fresh disk now and then keeps logs small */
			assert_int_equal(io_sim_create(&sim, test_rng_next(&rng)), 0);
			/* Half the disks slow: batches grow behind the write in flight. */
			slow = fresh % 2 == 0; /* the first disk too, however few cuts */
			io_sim_slow_writes(sim, slow);
			acked = 0;
			fresh++;
		}
		struct rill_log *log;
		struct rill_log_recovery report;
		int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
		if (rc != 0)
			fail_msg("cut %llu: reopen refused: %s (%s)", (unsigned long long)cut,
				 rill_strerror(rc), report.message);
		truncations += report.truncated_bytes > 0;
		if (log_check_all(log, acked) < 0)
			fail_msg("cut %llu: acknowledged records lost", (unsigned long long)cut);
		/* Whatever the reopened log holds, it now calls durable. */
		acked = rill_log_durable_offset(log);
		uint64_t next = rill_log_next_offset(log);
		uint64_t steps = test_rng_below(&rng, 60);
		for (uint64_t s = 0; s < steps; s++) {
			if (append_one(log, next) != 0)
				break;
			next++;
			if (test_rng_below(&rng, 4) == 0)
				rill_log_poll(log, 0);
			if (test_rng_below(&rng, 20) == 0)
				rill_log_sync(log);
			if (rill_log_durable_offset(log) > acked)
				acked = rill_log_durable_offset(log);
		}
		struct rill_log_stats st;
		rill_log_stats(log, &st);
		grown += st.grown_batches;
		slow_rounds += slow;
		uint64_t ending = test_rng_below(&rng, 10);
		if (ending == 0) {
			rill_log_close(log); /* a clean close now and then before the cut */
			io_sim_power_cut(sim);
		} else if (ending <= 3) {
			/* kill -9 without a power cut: the page cache survives into the next open,
			 * which must make it durable before acknowledging any of it. */
			io_sim_crash(sim);
			rill_log_drop(log);
			io_sim_restart(sim);
			kills++;
		} else {
			io_sim_crash(sim);
			rill_log_drop(log); /* as a crash leaves it: no further I/O */
			io_sim_power_cut(sim);
		}
	}
	fprintf(stderr,
		"power cuts: %llu rounds (%llu of them kill -9 only), torn tails cut: %llu, "
		"fresh disks: %llu, batches grown behind a write: %llu\n",
		(unsigned long long)cuts, (unsigned long long)kills,
		(unsigned long long)truncations, (unsigned long long)fresh,
		(unsigned long long)grown);
	/* Rounds append 0-59 records, so a hundred on slow disks grow some batches. */
	assert_true(slow_rounds < 100 || grown > 0);
	io_sim_destroy(sim);
}

/* The workload of the I/O-error loop: 10,000 events in chunks, polled, synced, closed.
 * @grown (or NULL): the batches that grew behind a write in flight. */
static int io_error_workload(struct io_sim *sim, uint64_t *acked, uint64_t *grown)
{
	struct rill_log_config c = log_check_small_config();
	struct rill_log *log;
	int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL);
	if (rc < 0)
		return rc;
	for (uint64_t i = 0; i < 10000 && rc == 0; i++) {
		rc = append_one(log, i);
		if (rc == 0 && i % 100 == 99)
			rc = rill_log_poll(log, 0);
		if (rill_log_durable_offset(log) > *acked)
			*acked = rill_log_durable_offset(log);
	}
	if (rc == 0)
		rc = rill_log_sync(log);
	if (rill_log_durable_offset(log) > *acked)
		*acked = rill_log_durable_offset(log);
	if (grown != NULL) {
		struct rill_log_stats st;
		rill_log_stats(log, &st);
		*grown = st.grown_batches;
	}
	if (rc == 0)
		return rill_log_close(log);
	/* Fail-stop: nothing may become durable after the error, not even by closing. */
	uint64_t durable = rill_log_durable_offset(log);
	int again = rill_log_sync(log);
	if (again == 0 || rill_log_durable_offset(log) != durable)
		fail_msg("the log carried on after error %s", rill_strerror(rc));
	rill_log_drop(log);
	return rc;
}

struct temp_find {
	char *name;
	size_t bytes;
	bool found;
};

static int temp_find_entry(void *arg, const char *name)
{
	struct temp_find *t = arg;
	size_t n = strlen(name);
	if (n > 4 && strcmp(name + n - 4, ".tmp") == 0) {
		snprintf(t->name, t->bytes, "%s", name);
		t->found = true;
	}
	return 0;
}

/* Whether @dir of @sim holds a file named *.tmp: its name in @name (@bytes). */
static bool sim_temp_file(struct io_sim *sim, const char *dir, char *name, size_t bytes)
{
	struct temp_find t = {.name = name, .bytes = bytes};
	struct rill_io *io = io_sim_io(sim);
	assert_int_equal(io->ops->list(io, dir, temp_find_entry, &t), 0);
	return t.found;
}

/*
 * SQLite's I/O-error loop: fail the Nth operation of the workload, for every N, once and
 * for good, with EIO and with ENOSPC; then cut the power and reopen without faults. The
 * log must stop at the error, and every offset it had acknowledged must be there. A fault
 * once leaves no temporary file: a failed index save left its NNN.idx.tmp for good.
 */
static void io_error_loop(bool slow)
{
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 7), 0);
	io_sim_slow_writes(sim, slow);
	uint64_t acked = 0, grown = 0;
	assert_int_equal(io_error_workload(sim, &acked, &grown), 0);
	assert_int_equal(acked, 10000);
	assert_true(slow ? grown > 0 : grown == 0);
	uint64_t total_ops = io_sim_ops(sim);
	io_sim_destroy(sim);

	static const int errors[] = {EIO, ENOSPC};
	uint64_t runs = 0, failed_runs = 0;
	/* Every operation index by default; the sanitizer builds take every Nth. */
	uint64_t stride = test_env_u64("RILL_LOG_IO_ERROR_STRIDE", 1);
	for (uint64_t index = 0; index < total_ops; index += stride) {
		for (int always = 0; always < 2; always++) {
			for (size_t e = 0; e < RILL_ARRAY_COUNT(errors); e++) {
				assert_int_equal(
					io_sim_create(&sim, index * 4 + (uint64_t)always * 2 + e),
					0);
				io_sim_fail_at(sim, index, errors[e], always);
				io_sim_slow_writes(sim, slow);
				acked = 0;
				int rc = io_error_workload(sim, &acked, NULL);
				failed_runs += rc != 0;
				/* A failed index or checkpoint write removes its temporary
				 * file (with a fault for good, the removal fails too). */
				io_sim_fail_at(sim, UINT64_MAX, 0, false);
				char left[64];
				if (!always && sim_temp_file(sim, DIR_SIM, left, sizeof(left)))
					fail_msg("op %llu (%s, once): %s left behind",
						 (unsigned long long)index, strerror(errors[e]),
						 left);
				io_sim_power_cut(sim);
				struct rill_log *log;
				struct rill_log_recovery report;
				struct rill_log_config c = log_check_small_config();
				rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
				if (rc != 0)
					fail_msg("op %llu (%s, %s): reopen refused: %s (%s)",
						 (unsigned long long)index, strerror(errors[e]),
						 always ? "always" : "once", rill_strerror(rc),
						 report.message);
				if (log_check_all(log, acked) < 0)
					fail_msg("op %llu (%s, %s): acknowledged records lost",
						 (unsigned long long)index, strerror(errors[e]),
						 always ? "always" : "once");
				rill_log_drop(log);
				io_sim_destroy(sim);
				runs++;
			}
		}
	}
	fprintf(stderr, "io error loop%s: %llu operations, %llu runs, %llu stopped by the fault\n",
		slow ? " (slow disk: grown batches)" : "", (unsigned long long)total_ops,
		(unsigned long long)runs, (unsigned long long)failed_runs);
	assert_true(failed_runs > runs / 2); /* the faults did land */
}

/* Once with writes that complete at the log's first look, once with a slow disk, behind
 * whose writes batches grow. */
static void test_io_error_loop(void **state)
{
	(void)state;
	io_error_loop(false);
	io_error_loop(true);
}

/*
 * A write or sync that fails with EAGAIN (io_uring may complete one so, or give up
 * resubmitting) stops the log with EIO: -EAGAIN from append means "both buffers busy, poll
 * and retry", and a stopped log taken for a busy one held its shard retrying for ever.
 */
static void test_eagain_stops_as_eio(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 5), 0);
	struct rill_log *log;
	struct rill_log_recovery report;
	struct rill_log_config c = log_check_small_config();
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_int_equal(append_one(log, 0), 0);
	assert_int_equal(rill_log_sync(log), 0);
	io_sim_fail_at(sim, io_sim_ops(sim), EAGAIN, true);
	int rc = 0;
	for (uint64_t i = 1; i < 100 && rc == 0; i++) {
		rc = append_one(log, i);
		if (rc == 0)
			rc = rill_log_sync(log);
	}
	assert_int_equal(rc, -EIO);
	assert_int_equal(rill_log_error(log), -EIO);
	struct log_check_record r;
	log_check_make(&r, 100);
	uint64_t offset;
	assert_int_equal(rill_log_append(log, &r.rec, &offset), -EIO);
	rill_log_drop(log);
	io_sim_destroy(sim);
}

/* The second process of test_io_error_restart: reopen, append, sync. Returns the durable
 * offset it reached. */
static uint64_t io_error_second_process(struct io_sim *sim, uint64_t index, bool always)
{
	struct rill_log *log;
	struct rill_log_recovery report;
	struct rill_log_config c = log_check_small_config();
	int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
	if (rc != 0)
		fail_msg("op %llu (%s): restart refused: %s (%s)", (unsigned long long)index,
			 always ? "always" : "once", rill_strerror(rc), report.message);
	uint64_t next = rill_log_next_offset(log);
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(append_one(log, next + i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	uint64_t durable = rill_log_durable_offset(log);
	rill_log_drop(log);
	return durable;
}

/*
 * A write or fdatasync fails, the writer dies, and a new process reopens the log in the
 * same boot, appends and syncs; then the power fails. Linux keeps the pages of a failed
 * writeback readable but marks them clean (io_sim does the same), so the new process finds
 * the failed batch in the page cache: recovery must write such bytes again before it calls
 * them durable, or the cut leaves a hole inside the durable region and the log is refused.
 */
static void test_io_error_restart(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 11), 0);
	uint64_t acked = 0;
	assert_int_equal(io_error_workload(sim, &acked, NULL), 0);
	uint64_t total_ops = io_sim_ops(sim);
	io_sim_destroy(sim);
	uint64_t stride = 5 * test_env_u64("RILL_LOG_IO_ERROR_STRIDE", 1);
	uint64_t runs = 0;
	for (uint64_t index = 0; index < total_ops; index += stride) {
		for (int always = 0; always < 2; always++) {
			assert_int_equal(io_sim_create(&sim, index * 2 + (uint64_t)always), 0);
			io_sim_fail_at(sim, index, EIO, always);
			acked = 0;
			(void)io_error_workload(sim, &acked, NULL);
			io_sim_crash(sim);
			io_sim_restart(sim); /* same boot: the page cache stays; faults cleared */
			uint64_t durable = io_error_second_process(sim, index, always);
			io_sim_power_cut(sim);
			struct rill_log *log;
			struct rill_log_recovery report;
			struct rill_log_config c = log_check_small_config();
			int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
			if (rc != 0)
				fail_msg("op %llu (%s): reopen after the cut refused: %s (%s)",
					 (unsigned long long)index, always ? "always" : "once",
					 rill_strerror(rc), report.message);
			if (log_check_all(log, durable) < 0)
				fail_msg("op %llu (%s): acknowledged records lost",
					 (unsigned long long)index, always ? "always" : "once");
			rill_log_drop(log);
			io_sim_destroy(sim);
			runs++;
		}
	}
	fprintf(stderr, "io error restart: %llu operations, %llu runs\n",
		(unsigned long long)total_ops, (unsigned long long)runs);
}

/* Build a log of @records, closed cleanly; returns its single segment's path. */
static void build_closed_log(struct io_sim *sim, uint64_t records)
{
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 16u << 20; /* one segment */
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < records; i++) {
		assert_int_equal(append_one(log, i), 0);
		if (i % 10 == 9)
			assert_int_equal(rill_log_sync(log), 0); /* batches of 10 */
	}
	assert_int_equal(rill_log_close(log), 0);
}

/* Batch start positions of the segment, in order. */
static uint32_t batch_positions(const uint8_t *data, uint64_t size, uint64_t *pos, uint32_t max)
{
	uint32_t n = 0;
	for (uint64_t p = RILL_SEGMENT_DATA_START;
	     p + RILL_BATCH_HEADER_BYTES <= size && n < max;) {
		struct rill_batch_header h;
		memcpy(&h, data + p, sizeof(h));
		pos[n++] = p;
		p += (h.batch_bytes + RILL_LOG_SECTOR_BYTES - 1) / RILL_LOG_SECTOR_BYTES *
		     RILL_LOG_SECTOR_BYTES;
	}
	return n;
}

/*
 * After damage, reopening must either refuse the log or give back every record intact:
 * a clean close left a marker saying everything is durable, so no damage may be taken for
 * a torn write and cut away.
 */
static void check_damaged(struct io_sim *sim, uint64_t records, uint64_t *refused,
			  uint64_t *accepted, const char *what, uint64_t where)
{
	io_sim_sync_all(sim);
	struct rill_log *log;
	struct rill_log_recovery report;
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 16u << 20;
	int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
	if (rc == RILL_E_LOG_CORRUPT) {
		(*refused)++;
		return;
	}
	if (rc != 0)
		fail_msg("%s at %llu: open failed: %s", what, (unsigned long long)where,
			 rill_strerror(rc));
	if (log_check_all(log, records) != (int64_t)records)
		fail_msg("%s at %llu: accepted with records lost or changed (%s)", what,
			 (unsigned long long)where, report.message);
	(*accepted)++;
	rill_log_drop(log);
}

/*
 * A clean close makes its checkpoint durable: after it and a power cut, damage in the last
 * batch is refused (the checkpoint says every batch is durable), never cut as a torn
 * write. The damage tests sync every file before they damage one, so a close that left
 * its checkpoint unsynced passed them, and acknowledged records were cut.
 */
static void test_clean_close_survives_power_cut(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct io_sim *sim;
		assert_int_equal(io_sim_create(&sim, seed), 0);
		struct rill_log_config c = log_check_small_config();
		c.segment_bytes_max = 16u << 20;
		struct rill_log *log;
		assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
		for (uint64_t i = 0; i < 25; i++) {
			assert_int_equal(append_one(log, i), 0);
			if (i % 10 == 9)
				assert_int_equal(rill_log_sync(log), 0);
		}
		assert_int_equal(rill_log_close(log), 0);
		io_sim_power_cut(sim); /* what the close made durable stays */
		char path[128];
		snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 0ull);
		uint64_t size;
		uint8_t *data = io_sim_file_data(sim, path, &size);
		assert_non_null(data);
		uint64_t pos[64];
		uint32_t batches = batch_positions(data, size, pos, 64);
		assert_true(batches >= 2);
		data[pos[batches - 1] + RILL_BATCH_HEADER_BYTES + 3] ^= 0x10; /* rot in a record */
		io_sim_sync_all(sim);
		struct rill_log_recovery report;
		int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
		if (rc != RILL_E_LOG_CORRUPT)
			fail_msg("seed %llu: damage in the last batch after a clean close: %s, "
				 "next offset %llu of 25 (%s)",
				 (unsigned long long)seed, rc == 0 ? "accepted" : rill_strerror(rc),
				 rc == 0 ? (unsigned long long)rill_log_next_offset(log) : 0ull,
				 report.message);
		io_sim_destroy(sim);
	}
}

/*
 * An age roll that cannot make its segment (a full disk) is undone: the active segment
 * stays active, the log goes on, and the roll comes at the next call. It used to stop the
 * log, and the open that made it failed: an idle partition on a full disk stopped, and the
 * engine would not restart, for housekeeping that loses nothing by waiting.
 */
static void test_age_roll_failure_undone(void **state)
{
	(void)state;
	const uint64_t hour_ns = 3600ull * 1000000000u, minute_ns = 60ull * 1000000000u;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 53), 0);
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 1ull << 30;
	c.retention_age_ns = hour_ns;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	uint64_t t0 = rill_clock_wall_ns();
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	io_sim_fail_at(sim, io_sim_ops(sim), ENOSPC, false); /* the roll's first operation */
	assert_int_equal(rill_log_expire(log, t0 + hour_ns + minute_ns), 0);
	assert_int_equal(rill_log_error(log), 0);
	check_segments(log, 1, 0);
	struct rill_log_stats st;
	rill_log_stats(log, &st);
	assert_int_equal(st.roll_errors, 1);
	for (uint64_t i = 100; i < 150; i++) /* it goes on */
		assert_int_equal(append_one(log, i), 0);
	assert_int_equal(rill_log_sync(log), 0);
	assert_int_equal(rill_log_expire(log, t0 + hour_ns + 2 * minute_ns), 0);
	check_segments(log, 2, 0); /* tried again: rolled */
	assert_int_equal(log_check_all(log, 150), 150);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_power_cut(sim);
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_int_equal(report.next_offset, 150);
	assert_int_equal(log_check_all(log, 150), 150);
	rill_log_drop(log);
	io_sim_destroy(sim);
}

/*
 * The simulator out of descriptors (EMFILE), as when a process's open-file limit is spent:
 * what takes a descriptor (open, lock, list, a folder's fsync) fails, the rest works (a
 * write through a handle already open, an unlink). Wraps the simulator's ops in place.
 */
static struct {
	const struct rill_io_ops *inner;
	struct rill_io_ops ops;
	bool starved;
} fds;

static int fds_open(struct rill_io *io, const char *path, unsigned flags, int *handle)
{
	return fds.starved ? -EMFILE : fds.inner->open(io, path, flags, handle);
}

static int fds_lock(struct rill_io *io, const char *path, int *handle)
{
	return fds.starved ? -EMFILE : fds.inner->lock(io, path, handle);
}

static int fds_fsync_dir(struct rill_io *io, const char *path)
{
	return fds.starved ? -EMFILE : fds.inner->fsync_dir(io, path);
}

static int fds_list(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg)
{
	return fds.starved ? -EMFILE : fds.inner->list(io, path, fn, arg);
}

static void fds_wrap(struct io_sim *sim)
{
	struct rill_io *io = io_sim_io(sim);
	fds.inner = io->ops;
	fds.ops = *io->ops;
	fds.ops.open = fds_open;
	fds.ops.lock = fds_lock;
	fds.ops.fsync_dir = fds_fsync_dir;
	fds.ops.list = fds_list;
	fds.starved = false;
	io->ops = &fds.ops;
}

/* Append from offset *@next until the log holds @bytes (its stats), or an append fails:
 * that error, or 0. */
static int append_until(struct rill_log *log, uint64_t *next, uint64_t bytes)
{
	for (;;) {
		struct rill_log_stats st;
		int rc = rill_log_sync(log);
		rill_log_stats(log, &st);
		if (rc < 0 || st.bytes >= bytes)
			return rc;
		for (int i = 0; i < 20 && rc == 0; i++)
			rc = append_one(log, (*next)++);
		if (rc < 0)
			return rc;
	}
}

/*
 * A roll by size whose new segment cannot be made (the descriptors spent: idle
 * connections took them) is undone, and the log goes on: its batches go on into the
 * active segment, past segment_bytes_max, and the roll is tried again at each batch; it
 * rolls once a descriptor is free again, and the long segment recovers. Before, the
 * log stopped for good (and the undo itself, which synced the folder, needed one).
 */
static void test_size_roll_failure_goes_on(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 59), 0);
	fds_wrap(sim);
	struct rill_log_config c = log_check_small_config(); /* 64 KiB segments */
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	uint64_t next = 0;
	assert_int_equal(append_until(log, &next, c.segment_bytes_max / 2), 0);
	fds.starved = true;
	assert_int_equal(append_until(log, &next, 2 * c.segment_bytes_max), 0);
	assert_int_equal(rill_log_error(log), 0);
	struct rill_log_stats st;
	rill_log_stats(log, &st);
	assert_int_equal(st.segments, 1); /* past its size, still the one */
	assert_true(st.roll_errors > 0);
	fds.starved = false;
	uint64_t tried = st.roll_errors;
	assert_int_equal(append_until(log, &next, st.bytes + 1), 0);
	rill_log_stats(log, &st);
	assert_int_equal(st.segments, 2); /* rolled at the next batch */
	assert_int_equal(st.roll_errors, tried);
	assert_int_equal(log_check_all(log, next), (int64_t)next);
	assert_int_equal(rill_log_close(log), 0);
	io_sim_power_cut(sim);
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_int_equal(report.next_offset, next);
	assert_string_equal(report.message, "");
	assert_int_equal(log_check_all(log, next), (int64_t)next);
	rill_log_drop(log);
	io_sim_destroy(sim);
}

/*
 * ... but not for ever: past segment_bytes_max + roll_overrun_bytes_max, a roll that still
 * fails stops the log, as a roll that cannot be undone does. What it acknowledged as
 * durable is there after a restart, and the segment is no longer than the limit.
 */
static void test_size_roll_failure_overrun_stops(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 61), 0);
	fds_wrap(sim);
	struct rill_log_config c = log_check_small_config();
	c.roll_overrun_bytes_max = 32u << 10;
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	fds.starved = true;
	uint64_t next = 0;
	int rc = append_until(log, &next, UINT64_MAX);
	assert_int_equal(rc, -EMFILE);
	assert_int_equal(rill_log_error(log), -EMFILE);
	struct rill_log_stats st;
	rill_log_stats(log, &st);
	assert_int_equal(st.segments, 1);
	assert_true(st.bytes > c.segment_bytes_max);
	assert_true(st.bytes <= c.segment_bytes_max + c.roll_overrun_bytes_max);
	uint64_t durable = rill_log_durable_offset(log);
	rill_log_drop(log);
	fds.starved = false;
	io_sim_power_cut(sim);
	struct rill_log_recovery report;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report), 0);
	assert_true(report.next_offset >= durable);
	assert_true(log_check_all(log, durable) >= (int64_t)durable);
	rill_log_drop(log);
	io_sim_destroy(sim);
}

/* stderr into a temporary file while @fn runs on @arg; its text in @out (@bytes). */
static void stderr_capture(void (*fn)(void *), void *arg, char *out, size_t bytes)
{
	char path[] = "/tmp/rill-stderr-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	fn(arg);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	ssize_t n = pread(fd, out, bytes - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	fputs(out, stderr); /* still shown */
}

struct roll_fail {
	struct io_sim *sim;
	struct rill_log *log;
	int rc;
};

static void roll_fail_run(void *arg)
{
	struct roll_fail *r = arg;
	io_sim_fail_at(r->sim, io_sim_ops(r->sim), EACCES, true);
	r->rc = rill_log_expire(r->log, rill_clock_wall_ns() + 2 * 3600ull * 1000000000u);
	io_sim_fail_at(r->sim, UINT64_MAX, 0, false);
}

/*
 * A roll that fails and cannot be undone (the disk fails every operation from then on:
 * the segment file half made stays) stops the log, and says so naming the segment it was
 * making: it used to say "write or fdatasync failed", the same for every cause, and name
 * no file.
 */
static void test_roll_failure_named(void **state)
{
	(void)state;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 3), 0);
	struct rill_log_config c = log_check_small_config();
	c.retention_age_ns = 3600ull * 1000000000u;
	struct roll_fail r = {.sim = sim};
	assert_int_equal(rill_log_open(&r.log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
	for (uint64_t i = 0; i < 30; i++)
		assert_int_equal(append_one(r.log, i), 0);
	assert_int_equal(rill_log_sync(r.log), 0);
	char said[2048];
	stderr_capture(roll_fail_run, &r, said, sizeof(said));
	assert_int_equal(r.rc, -EACCES);
	assert_int_equal(rill_log_error(r.log), -EACCES);
	if (strstr(said, "00000000000000000030.log") == NULL || strstr(said, DIR_SIM) == NULL ||
	    strstr(said, "Permission denied") == NULL)
		fail_msg("the fail-stop does not name the segment being made: %s", said);
	rill_log_drop(r.log);
	io_sim_destroy(sim);
}

static void test_bit_flips_and_zeroed_sectors(void **state)
{
	(void)state;
	const uint64_t records = 200;
	char path[256];
	snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 0ull);
	uint64_t refused = 0, accepted = 0, positions = 0;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 8), 0);
	build_closed_log(sim, records);
	uint64_t size;
	uint8_t *data = io_sim_file_data(sim, path, &size);
	assert_non_null(data);
	uint8_t *pristine = malloc(size);
	memcpy(pristine, data, size);
	uint64_t pos[64];
	uint32_t batches = batch_positions(data, size, pos, 64);
	assert_true(batches >= 4);
	/* Every bit of the last two batches; every 61st byte before them. */
	uint64_t from = pos[batches - 2];
	uint64_t stride = test_env_u64("RILL_LOG_DAMAGE_STRIDE", 1); /* sanitizer builds: > 1 */
	for (uint64_t p = 0; p < size; p += p < from ? 61 : stride) {
		for (int bit = 0; bit < 8; bit += p < from ? 8 : 1) {
			data = io_sim_file_data(sim, path, &size);
			data[p] ^= (uint8_t)(1u << ((bit + p) % 8));
			check_damaged(sim, records, &refused, &accepted, "bit flip", p);
			data = io_sim_file_data(sim, path, &size);
			memcpy(data, pristine, size);
			positions++;
		}
	}
	for (uint64_t p = 0; p + 512 <= size; p += 512) {
		data = io_sim_file_data(sim, path, &size);
		memset(data + p, 0, 512);
		check_damaged(sim, records, &refused, &accepted, "zeroed sector", p);
		data = io_sim_file_data(sim, path, &size);
		memcpy(data, pristine, size);
		positions++;
	}
	fprintf(stderr, "damage: %llu cases, %llu refused, %llu accepted intact\n",
		(unsigned long long)positions, (unsigned long long)refused,
		(unsigned long long)accepted);
	assert_true(refused > 0);
	free(pristine);
	io_sim_destroy(sim);
}

/*
 * Damage after a crash (no checkpoint, so nothing but the batches says what is durable):
 * a last batch whose checksum holds reached the disk whole, so a flipped byte in its
 * padding, or an offset that does not follow, is damage since, never a torn write, and
 * must be refused rather than cut with its acknowledged records. A last batch whose
 * checksum fails is still taken for torn and cut.
 */
static void test_damage_after_crash(void **state)
{
	(void)state;
	const uint64_t records = 25;
	char path[256];
	snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 0ull);
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 16u << 20;
	for (int kind = 0; kind < 3; kind++) {
		struct io_sim *sim;
		assert_int_equal(io_sim_create(&sim, 21), 0);
		struct rill_log *log;
		assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
		for (uint64_t i = 0; i < records; i++) {
			assert_int_equal(append_one(log, i), 0);
			if (i % 10 == 9)
				assert_int_equal(rill_log_sync(log), 0);
		}
		assert_int_equal(rill_log_sync(log), 0);
		rill_log_drop(log); /* a crash: no checkpoint */
		uint64_t size;
		uint8_t *data = io_sim_file_data(sim, path, &size);
		uint64_t pos[16];
		uint32_t batches = batch_positions(data, size, pos, 16);
		assert_true(batches >= 3);
		struct rill_batch_header h;
		memcpy(&h, data + pos[batches - 1], sizeof(h));
		const char *what;
		if (kind == 0) {
			assert_true(h.batch_bytes % RILL_LOG_SECTOR_BYTES !=
				    0); /* it has padding */
			data[pos[batches - 1] + h.batch_bytes] ^= 0x10;
			what = "a flipped padding byte";
		} else if (kind == 1) {
			/* The header's base offset, CRC made to match: written whole, wrongly. */
			h.base_offset += 1;
			memcpy(data + pos[batches - 1], &h, sizeof(h));
			h.crc32c = rill_crc32c(data + pos[batches - 1] + 12, h.batch_bytes - 12u);
			memcpy(data + pos[batches - 1], &h, sizeof(h));
			what = "an offset that does not follow";
		} else {
			data[pos[batches - 1] + RILL_BATCH_HEADER_BYTES + 3] ^= 0x10;
			what = "a payload byte (checksum fails: torn)";
		}
		io_sim_sync_all(sim);
		struct rill_log_recovery report;
		int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
		if (kind < 2) {
			if (rc != RILL_E_LOG_CORRUPT)
				fail_msg("%s in the last batch: open gave %d (%s), cut %llu bytes",
					 what, rc, report.message,
					 (unsigned long long)report.truncated_bytes);
			assert_non_null(strstr(report.message, "checksum holds"));
		} else {
			assert_int_equal(rc, 0);
			assert_true(report.truncated_bytes > 0);
			assert_true(rill_log_next_offset(log) < records);
			rill_log_drop(log);
		}
		io_sim_destroy(sim);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Segment files' base offsets into bases[1..], their count in bases[0] (at most 15). */
static int collect_logs(void *arg, const char *name)
{
	uint64_t *bases = arg;
	unsigned long long base;
	char suffix[8];
	if (sscanf(name, "%20llu.%7s", &base, suffix) == 2 && strcmp(suffix, "log") == 0 &&
	    bases[0] < 15)
		bases[1 + bases[0]++] = base;
	return 0;
}

static void sim_truncate(struct io_sim *sim, const char *path, uint64_t bytes)
{
	struct rill_io *io = io_sim_io(sim);
	int handle;
	assert_int_equal(io->ops->open(io, path, 0, &handle), 0);
	assert_int_equal(io->ops->truncate(io, handle, bytes), 0);
	assert_int_equal(io->ops->close(io, handle), 0);
}

/* Append and sync one record at a time until the log has @count segments, then crash (no
 * checkpoint): their bases, ascending, into bases[1..], their count in bases[0]. */
static void segments_then_crash(struct io_sim *sim, const struct rill_log_config *c, uint32_t count,
				uint64_t bases[16])
{
	struct rill_log *log;
	assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, c, NULL), 0);
	memset(bases, 0, 16 * sizeof(bases[0]));
	for (uint64_t i = 0; bases[0] < count; i++) {
		assert_int_equal(append_one(log, i), 0);
		assert_int_equal(rill_log_sync(log), 0);
		bases[0] = 0;
		assert_int_equal(
			io_sim_io(sim)->ops->list(io_sim_io(sim), DIR_SIM, collect_logs, bases), 0);
	}
	rill_log_drop(log);
	qsort(bases + 1, bases[0], sizeof(bases[0]), cmp_u64);
}

/*
 * A tail segment whose creation was cut short is dropped, but only when it follows on
 * from the segment before: here that sealed segment lost its last batch (cut at a batch
 * boundary, so its own scan finds it clean), and dropping the empty tail would make the
 * log end before records it had acknowledged. Refused.
 */
static void test_torn_creation_after_gap(void **state)
{
	(void)state;
	struct rill_log_config c = log_check_small_config();
	c.segment_bytes_max = 64u << 10;
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 23), 0);
	uint64_t bases[16];
	segments_then_crash(sim, &c, 3, bases);
	struct rill_log *log;
	char sealed[256], tail[256];
	snprintf(sealed, sizeof(sealed), "%s/%020llu.log", DIR_SIM,
		 (unsigned long long)bases[bases[0] - 1]);
	snprintf(tail, sizeof(tail), "%s/%020llu.log", DIR_SIM,
		 (unsigned long long)bases[bases[0]]);
	uint64_t size;
	uint8_t *data = io_sim_file_data(sim, sealed, &size);
	uint64_t pos[64];
	uint32_t batches = batch_positions(data, size, pos, 64);
	assert_true(batches >= 2);
	sim_truncate(sim, sealed, pos[batches - 1]); /* its last batch gone, cleanly */
	sim_truncate(sim, tail, 0);                  /* the next one's creation cut short */
	io_sim_sync_all(sim);
	struct rill_log_recovery report;
	int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
	if (rc != RILL_E_LOG_CORRUPT)
		fail_msg("a gap before a torn creation: open gave %d (%s)", rc, report.message);
	io_sim_destroy(sim);
}

/*
 * What another format version wrote whole is no torn write, and recovery must not cut it
 * (a downgrade, or a newer rill's batch at the tail): a last batch with a version or
 * flags this rill does not know but a checksum that holds, and a tail segment shorter
 * than its first batch's position whose header is whole but of another version, are
 * refused and left on disk, where they were cut or removed as torn before.
 */
static void test_foreign_format_refused(void **state)
{
	(void)state;
	struct rill_log_config c = log_check_small_config();
	for (int kind = 0; kind < 2; kind++) { /* the last batch: its version, its flags */
		struct io_sim *sim;
		assert_int_equal(io_sim_create(&sim, 31 + (uint64_t)kind), 0);
		struct rill_log *log;
		assert_int_equal(rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, NULL), 0);
		for (uint64_t i = 0; i < 5; i++) {
			assert_int_equal(append_one(log, i), 0);
			assert_int_equal(rill_log_sync(log), 0);
		}
		rill_log_drop(log); /* a crash: no checkpoint */
		char path[256];
		snprintf(path, sizeof(path), "%s/%020llu.log", DIR_SIM, 0ull);
		uint64_t size;
		uint8_t *data = io_sim_file_data(sim, path, &size);
		uint64_t pos[64];
		uint32_t batches = batch_positions(data, size, pos, 64);
		assert_int_equal(batches, 5);
		struct rill_batch_header h;
		memcpy(&h, data + pos[4], sizeof(h));
		if (kind == 0)
			h.version = RILL_LOG_FORMAT_VERSION + 1;
		else
			h.flags = 1;
		memcpy(data + pos[4], &h, sizeof(h));
		h.crc32c = rill_crc32c(data + pos[4] + 12, h.batch_bytes - 12u);
		memcpy(data + pos[4], &h, sizeof(h));
		io_sim_sync_all(sim);
		struct rill_log_recovery report;
		int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
		if (rc != RILL_E_LOG_CORRUPT)
			fail_msg("a whole last batch with %s: open gave %d (%s), truncated %llu",
				 kind == 0 ? "another version" : "unknown flags", rc,
				 report.message, (unsigned long long)report.truncated_bytes);
		assert_non_null(strstr(report.message, "checksum holds"));
		uint64_t after;
		(void)io_sim_file_data(sim, path, &after);
		assert_int_equal(after, size);
		io_sim_destroy(sim);
	}

	/* A tail segment of header only, whole, of another version: refused, kept. */
	struct io_sim *sim;
	assert_int_equal(io_sim_create(&sim, 33), 0);
	c.segment_bytes_max = 64u << 10;
	uint64_t bases[16];
	segments_then_crash(sim, &c, 2, bases);
	struct rill_log *log;
	char tail[256];
	snprintf(tail, sizeof(tail), "%s/%020llu.log", DIR_SIM,
		 (unsigned long long)bases[bases[0]]);
	sim_truncate(sim, tail, RILL_SEGMENT_HEADER_BYTES);
	uint64_t size;
	uint8_t *data = io_sim_file_data(sim, tail, &size);
	struct rill_segment_header sh;
	memcpy(&sh, data, sizeof(sh));
	sh.version = RILL_LOG_FORMAT_VERSION + 1;
	sh.crc32c = rill_crc32c(&sh, offsetof(struct rill_segment_header, crc32c));
	memcpy(data, &sh, sizeof(sh));
	io_sim_sync_all(sim);
	struct rill_log_recovery report;
	int rc = rill_log_open(&log, io_sim_io(sim), DIR_SIM, &c, &report);
	if (rc != RILL_E_LOG_FORMAT)
		fail_msg("a whole segment header of another version: open gave %d (%s)", rc,
			 report.message);
	assert_non_null(io_sim_file_data(sim, tail, &size));
	assert_int_equal(size, RILL_SEGMENT_HEADER_BYTES);
	io_sim_destroy(sim);
}

/* The folder rill_io_fsync_parent syncs, through an I/O layer that only records it. */
static char synced_dir[128];

static int record_fsync_dir(struct rill_io *io, const char *path)
{
	(void)io;
	snprintf(synced_dir, sizeof(synced_dir), "%s", path);
	return 0;
}

/* A folder just made survives a power cut once its parent is synced: which parent. */
static void test_fsync_parent(void **state)
{
	(void)state;
	struct rill_io_ops ops = {.fsync_dir = record_fsync_dir};
	struct rill_io io = {.ops = &ops, .name = "record"};
	static const char *const cases[][2] = {{"data", "."},
					       {"./data", "."},
					       {"/var/lib/rill", "/var/lib"},
					       {"data/", "."},
					       {"a/b//", "a"},
					       {"/data", "/"},
					       {"/", "/"},
					       {"a/b/c", "a/b"},
					       {"/tmp/rill-x/topics/t/0", "/tmp/rill-x/topics/t"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		synced_dir[0] = '\0';
		assert_int_equal(rill_io_fsync_parent(&io, cases[i][0]), 0);
		if (strcmp(synced_dir, cases[i][1]) != 0)
			fail_msg("the parent of '%s': '%s', expected '%s'", cases[i][0], synced_dir,
				 cases[i][1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_reopen),
		cmocka_unit_test(test_one_writer),
		cmocka_unit_test(test_direct_writes),
		cmocka_unit_test(test_uring_partial_submit),
		cmocka_unit_test(test_short_write_cause),
		cmocka_unit_test(test_full_disk_enospc),
		cmocka_unit_test(test_foreign_format_refused),
		cmocka_unit_test(test_repair),
		cmocka_unit_test(test_read_from_offset_and_time),
		cmocka_unit_test(test_retention_by_bytes),
		cmocka_unit_test(test_retention_errors),
		cmocka_unit_test(test_read_only_beside_retention),
		cmocka_unit_test(test_group_commit_batches),
		cmocka_unit_test(test_batch_growth),
		cmocka_unit_test(test_batch_delay),
		cmocka_unit_test(test_roll_and_retention_by_age),
		cmocka_unit_test(test_clean_close_survives_power_cut),
		cmocka_unit_test(test_roll_failure_named),
		cmocka_unit_test(test_age_roll_failure_undone),
		cmocka_unit_test(test_size_roll_failure_goes_on),
		cmocka_unit_test(test_size_roll_failure_overrun_stops),
		cmocka_unit_test(test_retention_on_time),
		cmocka_unit_test(test_retention_clock_back),
		cmocka_unit_test(test_segment_name),
		cmocka_unit_test(test_index_files),
		cmocka_unit_test(test_index_files_unsound),
		cmocka_unit_test(test_temp_files_removed),
		cmocka_unit_test(test_iterator_across_retention),
		cmocka_unit_test(test_read_only_empty),
		cmocka_unit_test(test_bad_config_refused),
		cmocka_unit_test(test_power_cuts),
		cmocka_unit_test(test_io_error_loop),
		cmocka_unit_test(test_eagain_stops_as_eio),
		cmocka_unit_test(test_io_error_restart),
		cmocka_unit_test(test_bit_flips_and_zeroed_sectors),
		cmocka_unit_test(test_damage_after_crash),
		cmocka_unit_test(test_torn_creation_after_gap),
		cmocka_unit_test(test_fsync_parent),
	};
	test_seed();
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
