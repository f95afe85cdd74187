/*
 * Starting the server in process (rill/server.h) from a cmocka setup
 * (tests/integration/test_server_*.c): where this kernel cannot run it (no io_uring, or not
 * its provided buffer rings) the test is skipped, exit code 77 (STYLE rule 22), after the
 * setup's own teardown; any other refusal fails the setup. Blocks while the server starts.
 */
#ifndef RILL_TEST_SERVER_START_H
#define RILL_TEST_SERVER_START_H

#include "tests/common/test_util.h"

#include <string.h>

#include "rill/error.h"
#include "rill/rill.h"
#include "rill/server.h"

/* rill_server_start(@out, @engine, @config), or skip: @teardown(@state), then exit 77. */
static inline void test_server_start(struct rill_server **out, struct rill_engine *engine,
				     const struct rill_server_config *config,
				     int (*teardown)(void **state), void **state)
{
	struct rill_error_text err = {{0}};
	int rc = rill_server_start(out, engine, config, &err);
	if (rc != 0 && strstr(err.message, "io_uring") != NULL) {
		/* The kernel lacks io_uring (or its provided buffer rings): nothing to test. */
		fprintf(stderr, "skipped: the server cannot run on this kernel: %s\n", err.message);
		teardown(state);
		exit(77);
	}
	if (rc != 0)
		fail_msg("server start: %s: %s", rill_strerror(rc), err.message);
}

#endif /* RILL_TEST_SERVER_START_H */
