/*
 * Unit tests of base/: error texts, CPU count and pinning, the clock.
 */
#include "tests/common/test_util.h"

#include <errno.h>
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
		cmocka_unit_test(test_error_texts),
		cmocka_unit_test(test_thread_pin),
		cmocka_unit_test(test_clock_is_monotonic),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
