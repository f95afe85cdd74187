/*
 * The micro-benchmark cases, as plain C: each file bench/cases_*.c adds its cases to a
 * table, and bench/micro.cc registers every row with Google Benchmark. A case's `run` does
 * `items` operations and is called in batches, so the function-pointer call costs nothing
 * per item; items/s and bytes/s come from Google Benchmark's counters.
 */
#ifndef RILL_BENCH_CASES_H
#define RILL_BENCH_CASES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rill_bench_case {
	const char *name;        /* Google Benchmark name, e.g. "ring/rill/cross_core/single" */
	uint32_t batch_items;    /* items per run() call */
	uint32_t bytes_per_item; /* for bytes_per_second; 0 for none */
	void *(*setup)(const struct rill_bench_case *c); /* NULL result: skip, with a reason */
	void (*run)(void *ctx, uint64_t items);
	void (*teardown)(void *ctx);
	uintptr_t arg; /* case parameter (object size, burst size) */
};

/* Each cases_*.c fills its table; count is set to the rows it has. */
extern const struct rill_bench_case rill_bench_ring_cases[];
extern const size_t rill_bench_ring_case_count;
extern const struct rill_bench_case rill_bench_alloc_cases[];
extern const size_t rill_bench_alloc_case_count;
extern const struct rill_bench_case rill_bench_codec_cases[];
extern const size_t rill_bench_codec_case_count;
extern const struct rill_bench_case rill_bench_schema_cases[];
extern const size_t rill_bench_schema_case_count;
extern const struct rill_bench_case rill_bench_projection_cases[];
extern const size_t rill_bench_projection_case_count;

/* The reason the last setup returned NULL, for Google Benchmark's SkipWithError. */
extern const char *rill_bench_skip_reason;

/* Set by main() before it pins itself: the process may run on CPUs 0 and 1. */
extern int rill_bench_cross_core_ok;

/* Keep the compiler from deleting work whose result is unused. */
static inline void rill_bench_escape(const void *p)
{
	__asm__ __volatile__("" : : "g"(p) : "memory");
}

#ifdef __cplusplus
}
#endif
#endif /* RILL_BENCH_CASES_H */
