/*
 * rill's I/O layer (engine/io.h) on real files, for the tests that use real directories
 * rather than the simulator (tests/common/io_sim.h): the backend a process of the kill -9
 * tests writes through (tests/crash/test_log_crash.c, tests/engine/test_schema_registry.c),
 * and a partition's log opened read only from outside the engine, to check what an engine
 * or a server left on disk (tests/crash/test_engine_crash.c,
 * tests/integration/test_server_bad.c). Blocks on the file system.
 */
#ifndef RILL_TEST_REAL_IO_H
#define RILL_TEST_REAL_IO_H

#include "tests/common/test_util.h"

#include "engine/io.h"
#include "engine/log.h"

/* io_uring where this kernel has it, else POSIX; NULL if neither can be made. No cmocka:
 * a forked child calls it. */
static inline struct rill_io *test_io_real_create(void)
{
	struct rill_io *io;
	if (rill_io_uring_create(&io) == 0)
		return io;
	if (rill_io_posix_create(&io) == 0)
		return io;
	return NULL;
}

/*
 * Open the log in @dir read only on a POSIX I/O layer of its own (recovery reports into
 * @report what it would cut; nothing on disk changes): 0 with *@io and *@log set (close or
 * drop the log, then rill_io_destroy(*@io)), or rill_log_open's error with nothing left
 * open.
 */
static inline int test_log_open_read_only(const char *dir, struct rill_io **io,
					  struct rill_log **log, struct rill_log_recovery *report)
{
	assert_int_equal(rill_io_posix_create(io), 0);
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.read_only = true;
	*report = (struct rill_log_recovery){0};
	int rc = rill_log_open(log, *io, dir, &c, report);
	if (rc != 0) {
		rill_io_destroy(*io);
		*io = NULL;
	}
	return rc;
}

#endif /* RILL_TEST_REAL_IO_H */
