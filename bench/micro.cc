// rill-bench-micro: registers the C cases of bench/cases_*.c with Google Benchmark, so the
// binary keeps all of Google Benchmark's own flags (--benchmark_filter,
// --benchmark_format=json, --benchmark_repetitions, ...). This is the only C++ in rill.
#include <pthread.h>
#include <sched.h>

#include <benchmark/benchmark.h>

#include "bench/cases.h"

namespace
{

void run_case(benchmark::State &state, const rill_bench_case *c)
{
	void *ctx = c->setup(c);
	if (ctx == nullptr) {
		state.SkipWithError(rill_bench_skip_reason ? rill_bench_skip_reason
							   : "setup failed");
		for (auto _ : state) {
		}
		return;
	}
	while (state.KeepRunningBatch(c->batch_items))
		c->run(ctx, c->batch_items);
	// Teardown is outside the timed region; a cross-core case drains its ring there.
	c->teardown(ctx);
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
	if (c->bytes_per_item != 0)
		state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
					c->bytes_per_item);
}

void register_table(const rill_bench_case *cases, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const rill_bench_case *c = &cases[i];
		benchmark::RegisterBenchmark(c->name, [c](benchmark::State &st) {
			run_case(st, c);
		})->UseRealTime();
	}
}

// Keep the benchmark thread on CPU 0 for every case: a thread the scheduler moves between
// CPUs mid-case adds noise to both sides of every ratio. Cross-core cases put their
// consumer on CPU 1.
void pin_to_cpu0()
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0 || !CPU_ISSET(0, &set) ||
	    !CPU_ISSET(1, &set))
		return; // cross-core cases will skip themselves and say why
	rill_bench_cross_core_ok = 1;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

} // namespace

int main(int argc, char **argv)
{
	pin_to_cpu0();
	register_table(rill_bench_ring_cases, rill_bench_ring_case_count);
	register_table(rill_bench_alloc_cases, rill_bench_alloc_case_count);
	register_table(rill_bench_codec_cases, rill_bench_codec_case_count);
	register_table(rill_bench_schema_cases, rill_bench_schema_case_count);
	register_table(rill_bench_projection_cases, rill_bench_projection_case_count);
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
