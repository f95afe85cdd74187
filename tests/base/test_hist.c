/*
 * Unit tests of the log-linear histogram (base/hist.h): exact below 128, bounded relative
 * error above, percentiles against a sorted reference, merge, overflow.
 */
#include "tests/common/test_util.h"

#include <math.h>
#include <string.h>

#include "base/hist.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_small_values_exact(void **state)
{
	(void)state;
	static struct rill_hist h;
	rill_hist_init(&h);
	for (uint64_t v = 0; v < 100; v++)
		rill_hist_record(&h, v);
	assert_int_equal(h.count, 100);
	assert_int_equal(h.min, 0);
	assert_int_equal(h.max, 99);
	assert_int_equal(rill_hist_percentile(&h, 50), 49);
	assert_int_equal(rill_hist_percentile(&h, 100), 99);
	assert_int_equal(rill_hist_percentile(&h, 1), 0);
}

static void test_percentiles_within_error(void **state)
{
	(void)state;
	static struct rill_hist h;
	rill_hist_init(&h);
	struct test_rng rng;
	test_rng_init(&rng, 1);
	enum { N = 200000 };
	uint64_t *values = malloc(N * sizeof(*values));
	for (int i = 0; i < N; i++) {
		/* Log-uniform from 1 ns to ~1 s: every magnitude gets values. */
		values[i] =
			(uint64_t)exp((double)test_rng_below(&rng, 1u << 30) / (1u << 30) * 20.7);
		rill_hist_record(&h, values[i]);
	}
	qsort(values, N, sizeof(*values), cmp_u64);
	static const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99};
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		uint64_t want = values[(size_t)(ps[i] / 100.0 * N) - 1];
		uint64_t got = rill_hist_percentile(&h, ps[i]);
		double error = fabs((double)got - (double)want) / (double)(want ? want : 1);
		if (error > 1.0 / RILL_HIST_SUB_BUCKETS + 1e-9 && got - want > 1)
			fail_msg("p%g: got %llu, want %llu", ps[i], (unsigned long long)got,
				 (unsigned long long)want);
	}
	assert_int_equal(rill_hist_percentile(&h, 100), values[N - 1]);
	free(values);
}

/* Nearest rank: with 500 samples, p99.9 and p99.99 are the 500th, the largest (a lone
 * outlier must show); with 10,000, p99.99 is the 9,999th; p50 of 2 is the first. */
static void test_nearest_rank(void **state)
{
	(void)state;
	static struct rill_hist h;
	rill_hist_init(&h);
	for (int i = 0; i < 499; i++)
		rill_hist_record(&h, 10);
	rill_hist_record(&h, 1000000);
	assert_int_equal(rill_hist_percentile(&h, 99.9), 1000000);
	assert_int_equal(rill_hist_percentile(&h, 99.99), 1000000);
	assert_int_equal(rill_hist_percentile(&h, 99.8), 10);
	rill_hist_init(&h);
	for (uint64_t v = 1; v <= 10000; v++)
		rill_hist_record(&h, v < 9999 ? 1 : v - 9990); /* ... 1, 9, 10 */
	assert_int_equal(rill_hist_percentile(&h, 99.99), 9);
	assert_int_equal(rill_hist_percentile(&h, 99.98), 1);
	rill_hist_init(&h);
	rill_hist_record(&h, 3);
	rill_hist_record(&h, 7);
	assert_int_equal(rill_hist_percentile(&h, 50), 3);
	assert_int_equal(rill_hist_percentile(&h, 50.1), 7);
	assert_int_equal(rill_hist_percentile(&h, 0), 3);
}

static void test_merge_and_overflow(void **state)
{
	(void)state;
	static struct rill_hist a, b;
	rill_hist_init(&a);
	rill_hist_init(&b);
	rill_hist_record(&a, 1000);
	rill_hist_record(&b, 5);
	rill_hist_record(&b, 1ull << 50); /* past the range */
	rill_hist_merge(&a, &b);
	assert_int_equal(a.count, 3);
	assert_int_equal(a.overflows, 1);
	assert_int_equal(a.min, 5);
	assert_int_equal(a.max, 1ull << 50);
	assert_int_equal(rill_hist_percentile(&a, 100), 1ull << 50);
	/* The merged buckets themselves (p100 is the max, whatever they hold): 5 exact,
	 * 1000 as its bucket's top, the value past the range in the last bucket. */
	assert_int_equal(rill_hist_percentile(&a, 1), 5);
	assert_int_equal(rill_hist_percentile(&a, 50), 1003);
	assert_int_equal(rill_hist_percentile(&a, 99), (1ull << 40) - 1);
	static struct rill_hist empty;
	rill_hist_init(&empty);
	assert_int_equal(rill_hist_percentile(&empty, 99), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_values_exact),
		cmocka_unit_test(test_percentiles_within_error),
		cmocka_unit_test(test_nearest_rank),
		cmocka_unit_test(test_merge_and_overflow),
	};
	test_seed();
	return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
