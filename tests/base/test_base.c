/*
 * Unit tests of base/: error texts, CPU count, CPU lists and pinning, the clock.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_SETSIZE */
#include "tests/common/test_util.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/thread.h"
#include "rill/error.h"

static void test_error_texts(void **state)
{
	(void)state;
	for (int code = RILL_E_LAST + 1; code <= -(RILL_E_BASE + 1); code++) {
		const char *text = rill_strerror(code);
		assert_non_null(text);
		assert_string_not_equal(text, "unknown rill error");
		for (int other = code + 1; other <= -(RILL_E_BASE + 1); other++)
			assert_string_not_equal(text, rill_strerror(other)); /* distinct */
	}
	assert_string_equal(rill_strerror(RILL_E_LAST), "unknown rill error");
	assert_string_equal(rill_strerror(0), "success");
	assert_string_equal(rill_strerror(-ENOBUFS), "No buffer space available");
}

static void test_thread_pin(void **state)
{
	(void)state;
	assert_true(rill_cpu_count() >= 1);
	assert_int_equal(rill_thread_pin(-1), -EINVAL);
	assert_int_equal(rill_thread_pin(1 << 20), -EINVAL);
	assert_int_equal(rill_thread_pin(0), 0);
}

/* @text must parse to exactly @want (@count CPUs) with room for @max. */
static void cpu_list_ok(const char *text, int max, const int *want, int count)
{
	int cpus[80];
	const char *why = NULL;
	int n = rill_cpu_list_parse(text, cpus, max, &why);
	if (n != count)
		fail_msg("\"%s\": %d CPUs (%s), expected %d", text, n, n < 0 ? why : "", count);
	for (int i = 0; i < count; i++)
		if (cpus[i] != want[i])
			fail_msg("\"%s\": CPU #%d is %d, expected %d", text, i, cpus[i], want[i]);
}

static void cpu_list_bad(const char *text, int max)
{
	int cpus[80];
	const char *why = NULL;
	int n = rill_cpu_list_parse(text, cpus, max, &why);
	if (n != -EINVAL || why == NULL || why[0] == '\0')
		fail_msg("\"%s\": %d, expected -EINVAL with a reason", text, n);
}

static void test_cpu_list(void **state)
{
	(void)state;
	cpu_list_ok("0", 64, (int[]){0}, 1);
	cpu_list_ok("2-5,8", 64, (int[]){2, 3, 4, 5, 8}, 5);
	cpu_list_ok("3,1,7-7", 64, (int[]){3, 1, 7}, 3);  /* in the order written */
	cpu_list_ok("10-11,0", 3, (int[]){10, 11, 0}, 3); /* exactly @max */
	int all[64];
	for (int i = 0; i < 64; i++)
		all[i] = i;
	cpu_list_ok("0-63", 64, all, 64);
	const char *bad[] = {"",      "-1",  "1-",  "1,",  ",1",  "1,,2", "a",   "1 2",
			     "1-2-3", "5-3", "1;2", "0x1", "1-a", " 1",   "1\n", "99999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cpu_list_bad(bad[i], 64);
	cpu_list_bad("0-64", 64); /* 65 CPUs */
	cpu_list_bad("0,1,2,3", 3);
	char huge[32];
	snprintf(huge, sizeof(huge), "%d", CPU_SETSIZE);
	cpu_list_bad(huge, 64);
}

/* rill_cpu_probe tries each CPU on a thread of its own: the caller's placement stays. */
static void test_cpu_probe(void **state)
{
	(void)state;
	cpu_set_t before, after;
	assert_int_equal(sched_getaffinity(0, sizeof(before), &before), 0);
	unsigned bad = 99;
	int ours = rill_cpu_nth(0); /* a CPU this process may use (a cpuset may lack CPU 0) */
	assert_int_equal(rill_cpu_probe((int[]){ours}, 1, &bad), 0);
	assert_int_equal(rill_cpu_probe((int[]){ours, CPU_SETSIZE - 1, ours}, 3, &bad), -EINVAL);
	assert_int_equal(bad, 1); /* the first that failed */
	assert_int_equal(rill_cpu_probe((int[]){-1}, 1, &bad), -EINVAL);
	assert_int_equal(bad, 0);
	assert_int_equal(sched_getaffinity(0, sizeof(after), &after), 0);
	assert_true(CPU_EQUAL(&before, &after));
}

static void test_clock_is_monotonic(void **state)
{
	(void)state;
	uint64_t prev = rill_clock_now_ns();
	for (int i = 0; i < 100000; i++) {
		uint64_t now = rill_clock_now_ns();
		assert_true(now >= prev);
		prev = now;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_texts),        cmocka_unit_test(test_thread_pin),
		cmocka_unit_test(test_cpu_list),           cmocka_unit_test(test_cpu_probe),
		cmocka_unit_test(test_clock_is_monotonic),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
