#!/usr/bin/env bash
# The engine benchmark, in one run, in process (rill bench engine, no network):
#   1. closed loop, 1 and 2 shards, durability none and group: events/s;
#   2. open loop at half the 1-shard durability-none rate, adaptive polling: publish →
#      applied latency (target: p99.9 under 10 µs);
#   3. open loop at 100 k events/s of 64 B, busy polling, 1 shard: publish → applied
#      p50/p99/p99.9 beside Chronicle Queue's published 0.25/0.39/0.96 µs (60 B messages at
#      100 k msg/s), and the ratio to each (the aim: within 2×);
#   4. for both open-loop runs, the machine's own lateness on the same schedule with no
#      engine (rill bench engine --baseline): the noise floor under those latencies.
# Prints one JSON object with every run and the ratios.
#
# usage: scripts/bench-engine.sh [--events M] [--dir DIR]
#        (defaults: 2,000,000 events per run, build/bench-engine)
set -euo pipefail
here=$PWD # a relative --dir is the caller's
cd "$(dirname "$0")/.."

events=2000000 dir=build/bench-engine
while [ $# -gt 0 ]; do
	case "$1" in
	--events) events=$2; shift ;;
	--dir) case "$2" in /*) dir=$2 ;; *) dir=$here/$2 ;; esac; shift ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "bench-engine.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done
# What it needs, on a fresh machine too (idempotent: quick when all is there).
scripts/setup.sh >&2 || { echo "bench-engine.sh: scripts/setup.sh failed" >&2; exit 1; }
[ -d build/release/meson-private ] || meson setup build/release -Dbuildtype=release >&2
ninja -C build/release >&2
mkdir -p "$dir"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rill=build/release/rill

for d in none group; do
	for s in 1 2; do
		echo "bench-engine: closed loop, $s shard(s), durability $d" >&2
		sync
		$rill bench engine --dir "$dir" --shards "$s" --events "$events" --durability "$d" \
			--json >"$out/closed-$s-$d.json"
	done
done
half=$(python3 -c "import json; print(int(json.load(open('$out/closed-1-none.json'))['events_per_s'] / 2))")
echo "bench-engine: open loop at $half events/s (half), adaptive" >&2
sync
$rill bench engine --dir "$dir" --shards 1 --events "$events" --durability none \
	--rate "$half" --poll adaptive --json >"$out/half.json"
$rill bench engine --shards 1 --events "$events" --rate "$half" --baseline >"$out/half-base.json"
echo "bench-engine: open loop at 100000 events/s of 64 B, busy poll" >&2
sync
$rill bench engine --dir "$dir" --shards 1 --events "$events" --record-bytes 64 \
	--durability none --rate 100000 --poll busy --json >"$out/busy.json"
$rill bench engine --shards 1 --events "$events" --rate 100000 --baseline >"$out/busy-base.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
load = lambda name: json.load(open(f"{out}/{name}.json"))
closed = {f"{s}_shard_{d}": load(f"closed-{s}-{d}") for d in ("none", "group") for s in (1, 2)}
half, busy = load("half"), load("busy")
half_base, busy_base = load("half-base")["lateness"], load("busy-base")["lateness"]
chronicle = {"p50_ns": 250, "p99_ns": 390, "p999_ns": 960}
result = {
    "closed_loop_events_per_s": {k: v["events_per_s"] for k, v in closed.items()},
    "half_rate": {"rate": half["rate"], "applied": half["applied"],
                  "p999_under_10us": half["applied"]["p999_ns"] < 10000,
                  "machine_baseline": half_base},
    "busy_100k": {"applied": busy["applied"], "chronicle_queue": chronicle,
                  "ratio_to_chronicle": {k: round(busy["applied"][k] / v, 2)
                                         for k, v in chronicle.items()},
                  "machine_baseline": busy_base},
    "runs": {**closed, "half": half, "busy": busy},
}
print(json.dumps(result, indent=1))
PY
