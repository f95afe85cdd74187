/*
 * Shared helpers for rill's cmocka tests: a seeded random generator whose seed is printed
 * at start and settable through RILL_TEST_SEED (STYLE rule 23), numbers from the
 * environment, heap copies of an exact size for the decoders' tests, and cmocka's includes
 * in the order cmocka needs them.
 */
#ifndef RILL_TEST_UTIL_H
#define RILL_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* xorshift64*: fast, good enough for test data, and reproducible from its seed. */
struct test_rng {
	uint64_t state;
};

static inline uint64_t test_rng_next(struct test_rng *rng)
{
	rng->state ^= rng->state >> 12;
	rng->state ^= rng->state << 25;
	rng->state ^= rng->state >> 27;
	return rng->state * 0x2545F4914F6CDD1Dull;
}

/* A value in [0, bound). */
static inline uint64_t test_rng_below(struct test_rng *rng, uint64_t bound)
{
	return bound == 0 ? 0 : test_rng_next(rng) % bound;
}

/* The run's seed: RILL_TEST_SEED if set, else the time; printed so a failure can be replayed. */
static inline uint64_t test_seed(void)
{
	static uint64_t seed;
	if (seed != 0)
		return seed;
	const char *env = getenv("RILL_TEST_SEED");
	seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	if (seed == 0)
		seed = 1;
	fprintf(stderr, "test seed: RILL_TEST_SEED=%llu\n", (unsigned long long)seed);
	return seed;
}

static inline void test_rng_init(struct test_rng *rng, uint64_t stream)
{
	rng->state = test_seed() * 0x9E3779B97F4A7C15ull + stream + 1;
	if (rng->state == 0)
		rng->state = 1;
}

/* An unsigned value from the environment, or @fallback. */
static inline uint64_t test_env_u64(const char *name, uint64_t fallback)
{
	const char *env = getenv(name);
	return env != NULL && *env != '\0' ? strtoull(env, NULL, 0) : fallback;
}

/* A heap copy of exactly @bytes of @src (NULL for none), so that a read past its end is
 * AddressSanitizer's to see. Free with free(). */
static inline uint8_t *test_exact_copy(const void *src, size_t bytes)
{
	if (bytes == 0)
		return NULL;
	uint8_t *p = malloc(bytes);
	assert_non_null(p);
	memcpy(p, src, bytes);
	return p;
}

#endif /* RILL_TEST_UTIL_H */
