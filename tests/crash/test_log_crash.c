/*
 * kill -9 test of the log on the real file system and the real I/O backend (io_uring, or
 * POSIX where the kernel refuses a ring). A child appends without pause and reports every
 * advance of its durable offset on a pipe; the parent kills it with SIGKILL at a random
 * moment, reopens the log and checks that every offset the child reported is present,
 * intact and in order, and that recovery accepted the log. The next round's child carries
 * on in the same directory. RILL_CRASH_ROUNDS sets the rounds (100 by default; scripts/
 * test.sh --long runs 1000). kill -9 does not test fdatasync (the page cache survives it):
 * the power-cut tests over the simulated disk do (tests/engine/test_log.c).
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log.h"
#include "tests/common/forked_child.h"
#include "tests/common/real_io.h"
#include "tests/common/test_dir.h"
#include "tests/engine/log_check.h"

static struct rill_log_config crash_config(void)
{
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.batch_bytes_max = 16u << 10;
	c.segment_bytes_max = 256u << 10; /* rolls happen under the knife too */
	return c;
}

/* The child: append forever, report each new durable offset. Never returns. */
static void child_main(const char *dir, int report_fd)
{
	struct rill_io *io = test_io_real_create();
	struct rill_log_config c = crash_config();
	struct rill_log *log;
	if (io == NULL || rill_log_open(&log, io, dir, &c, NULL) != 0)
		_exit(3);
	uint64_t reported = rill_log_durable_offset(log);
	for (;;) {
		struct log_check_record r;
		uint64_t next = rill_log_next_offset(log), offset;
		log_check_make(&r, next);
		int rc = rill_log_append(log, &r.rec, &offset);
		if (rc == -EAGAIN)
			rc = 0;
		if (rc == 0)
			rc = rill_log_poll(log, 0);
		if (rc < 0)
			_exit(4);
		uint64_t durable = rill_log_durable_offset(log);
		if (durable > reported) {
			if (write(report_fd, &durable, sizeof(durable)) != sizeof(durable))
				_exit(5);
			reported = durable;
		}
	}
}

static void test_kill_during_appends(void **state)
{
	(void)state;
	uint64_t rounds = test_env_u64("RILL_CRASH_ROUNDS", 100);
	struct test_rng rng;
	test_rng_init(&rng, 11);
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "crash"), 0);
	uint64_t acked = 0, torn = 0;
	for (uint64_t round = 0; round < rounds; round++) {
		int fd;
		pid_t pid = forked_child_start(&fd);
		if (pid == 0)
			child_main(dir, fd);
		/* Let it run 1..30 ms, then kill it mid-whatever. */
		usleep((useconds_t)(1000 + test_rng_below(&rng, 29000)));
		int status = forked_child_kill(pid);
		if (!forked_child_killed(status))
			fail_msg("round %llu: the child stopped by itself (status %d)",
				 (unsigned long long)round, status);
		uint64_t durable;
		while (read(fd, &durable, sizeof(durable)) == sizeof(durable))
			if (durable > acked)
				acked = durable;
		close(fd);

		struct rill_io *io;
		assert_int_equal(rill_io_posix_create(&io), 0);
		struct rill_log_config c = crash_config();
		struct rill_log *log;
		struct rill_log_recovery report;
		int rc = rill_log_open(&log, io, dir, &c, &report);
		if (rc != 0)
			fail_msg("round %llu: recovery refused the log: %s (%s)",
				 (unsigned long long)round, rill_strerror(rc), report.message);
		torn += report.truncated_bytes > 0;
		if (log_check_all(log, acked) < 0)
			fail_msg("round %llu: acknowledged records lost (acked %llu)",
				 (unsigned long long)round, (unsigned long long)acked);
		assert_int_equal(rill_log_close(log), 0);
		rill_io_destroy(io);
	}
	fprintf(stderr,
		"crash: %llu kill -9 rounds, %llu offsets acknowledged, %llu torn tails cut\n",
		(unsigned long long)rounds, (unsigned long long)acked, (unsigned long long)torn);
	assert_true(acked > 0);
	assert_int_equal(test_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_during_appends),
	};
	test_seed();
	return cmocka_run_group_tests_name("log_crash", tests, NULL, NULL);
}
