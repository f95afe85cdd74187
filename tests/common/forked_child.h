/*
 * The child of the kill -9 tests (tests/crash/test_log_crash.c, test_engine_crash.c,
 * tests/engine/test_schema_registry.c): a forked process that reports its progress to the
 * parent over a pipe until the parent kills it with SIGKILL and reaps it. The parent's
 * thread only; forked_child_kill blocks until the child is gone.
 */
#ifndef RILL_TEST_FORKED_CHILD_H
#define RILL_TEST_FORKED_CHILD_H

#include "tests/common/test_util.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* fork() with a pipe from the child to the parent: in the child 0, *@report_fd the pipe's
 * write end; in the parent the child's pid, *@report_fd the read end (the caller closes
 * it). */
static inline pid_t forked_child_start(int *report_fd)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	close(fds[pid == 0 ? 0 : 1]);
	*report_fd = fds[pid == 0 ? 1 : 0];
	return pid;
}

/* SIGKILL the child @pid and reap it: its wait status. */
static inline int forked_child_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* Whether wait status @status says SIGKILL ended the child (not an exit of its own). */
static inline bool forked_child_killed(int status)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

#endif /* RILL_TEST_FORKED_CHILD_H */
