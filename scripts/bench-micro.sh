#!/usr/bin/env bash
# Runs the micro-benchmarks (build/release/bench/rill-bench-micro) and prints, as JSON, the
# median of each case over several interleaved repetitions and the ratios the acceptance
# criteria name: rill's ring against DPDK's rte_ring, the shard arena against jemalloc and
# glibc, the CRC32C rate, and the schema and projection cases in ns per operation (field
# reads: 2 ns or less). Baselines run in the same process, interleaved at random with rill's cases, because
# absolute figures drift on shared machines; read the ratios.
#
# usage: scripts/bench-micro.sh [--repetitions N] [--min-time SECONDS] [--filter REGEX]
#        [--out FILE]    (defaults: 5 repetitions, 0.5 s each, every case,
#                         build/bench-micro.json for Google Benchmark's raw JSON)
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5 min_time=0.5 filter='.' out=build/bench-micro.json
while [ $# -gt 0 ]; do
	case "$1" in
	--repetitions) reps=$2; shift ;;
	--min-time) min_time=$2; shift ;;
	--filter) filter=$2; shift ;;
	--out) out=$2; shift ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "bench-micro.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

case "$reps" in
''|*[!0-9]*|0|1) echo "bench-micro.sh: --repetitions needs 2 or more (medians)" >&2; exit 2 ;;
esac
bin=build/release/bench/rill-bench-micro
# What it needs, on a fresh machine too (idempotent: quick when all is there).
scripts/setup.sh >&2 || { echo "bench-micro.sh: scripts/setup.sh failed" >&2; exit 1; }
[ -d build/release/meson-private ] || meson setup build/release -Dbuildtype=release >&2
ninja -C build/release >&2 # a no-op when nothing changed

echo "bench-micro: $(nproc) CPUs, $reps repetitions of ${min_time}s per case, interleaved" >&2
"$bin" --benchmark_filter="$filter" --benchmark_repetitions="$reps" \
	--benchmark_min_time="$min_time" --benchmark_enable_random_interleaving=true \
	--benchmark_report_aggregates_only=true --benchmark_format=json --benchmark_out="$out" \
	--benchmark_out_format=json >/dev/null

python3 - "$out" <<'PY'
import json, sys
raw = json.load(open(sys.argv[1]))
med, errors = {}, {}
for b in raw["benchmarks"]:
    if b.get("error_occurred"):
        errors[b["name"].removesuffix("/real_time")] = b.get("error_message")
        continue
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].removesuffix("/real_time")
    med[name] = {k: b[k] for k in ("items_per_second", "bytes_per_second") if k in b}

def rate(name, key="items_per_second"):
    return med.get(name, {}).get(key)

def ratio(a, b, key="items_per_second"):
    x, y = rate(a, key), rate(b, key)
    return round(x / y, 3) if x and y else None

summary = {
    "context": {k: raw["context"].get(k) for k in ("date", "host_name", "num_cpus", "mhz_per_cpu")},
    "median": med,
    "errors": errors,
    "ratios": {
        "ring_cross_core_single_rill_vs_rte_ring": ratio("ring/rill/cross_core/single", "ring/rte_ring/cross_core/single"),
        "ring_cross_core_burst32_rill_vs_rte_ring": ratio("ring/rill/cross_core/burst:32", "ring/rte_ring/cross_core/burst:32"),
        "ring_same_core_single_rill_vs_rte_ring": ratio("ring/rill/same_core/single", "ring/rte_ring/same_core/single"),
        "ring_same_core_burst32_rill_vs_rte_ring": ratio("ring/rill/same_core/burst:32", "ring/rte_ring/same_core/burst:32"),
        "alloc_64_arena_vs_jemalloc": ratio("alloc/arena/64", "alloc/jemalloc/64"),
        "alloc_1024_arena_vs_jemalloc": ratio("alloc/arena/1024", "alloc/jemalloc/1024"),
        "alloc_64_arena_vs_glibc": ratio("alloc/arena/64", "alloc/glibc/64"),
        "alloc_1024_arena_vs_glibc": ratio("alloc/arena/1024", "alloc/glibc/1024"),
        "alloc_64_pool_vs_jemalloc": ratio("alloc/pool/64", "alloc/jemalloc/64"),
    },
    "crc32c_4096_gb_per_s": round(rate("codec/crc32c/4096", "bytes_per_second") / 1e9, 2)
        if rate("codec/crc32c/4096", "bytes_per_second") else None,
}

# Schema cases: ns per operation (1e9 / median items/s), and the field-read target.
schema_ns = {name.removeprefix("schema/"): round(1e9 / m["items_per_second"], 3)
             for name, m in sorted(med.items())
             if name.startswith("schema/") and m.get("items_per_second")}
field_read_ns = schema_ns.get("field_read")
summary["schema"] = {
    "ns_per_op": schema_ns,
    "field_read_ns": field_read_ns,
    "field_read_within_2ns": field_read_ns <= 2 if field_read_ns is not None else None,
}
summary["projection"] = {
    "ns_per_op": {name.removeprefix("projection/"): round(1e9 / m["items_per_second"], 3)
                  for name, m in sorted(med.items())
                  if name.startswith("projection/") and m.get("items_per_second")},
}
print(json.dumps(summary, indent=2))
PY
