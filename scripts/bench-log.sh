#!/usr/bin/env bash
# The log benchmark against fio on the same disk, in one run:
#   1. fio: io_uring, sequential writes of the batch size, fdatasync after every write
#      (the bare cost of what group commit does per batch): MB/s and fdatasync p99;
#   2. rill bench log, closed loop, durability group: the log's maximum MB/s;
#   3. rill bench log, open loop at half that event rate: append-to-durable latency.
# Prints one JSON object with all three and the ratios the acceptance criteria name.
#
# usage: scripts/bench-log.sh [--dir DIR] [--seconds S] [--record-bytes N] [--batch-bytes B]
#        (defaults: build/bench-log, 10 s each, 1 KiB records, 256 KiB batches)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build/bench-log seconds=10 record=1024 batch=262144
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=$2; shift ;;
	--seconds) seconds=$2; shift ;;
	--record-bytes) record=$2; shift ;;
	--batch-bytes) batch=$2; shift ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "bench-log.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done
command -v fio >/dev/null || { echo "bench-log.sh: fio is missing (scripts/setup.sh installs it)" >&2; exit 1; }
[ -d build/release/meson-private ] || meson setup build/release -Dbuildtype=release >&2
ninja -C build/release >&2
mkdir -p "$dir"
out=$(mktemp -d)
# Every phase's files stay until the end: deleting gigabytes between phases frees their
# blocks (and, on a disk mounted with discard, trims them) during the next phase, which
# measured: an open loop at 200 k events/s had p99 1.4 ms on a quiet disk and 23 ms right
# after the closed loop's 3 GB were deleted (a sync and 3 s of waiting did not help).
trap 'rm -rf "$out" "$dir/fio.dat" "$dir"/rill-bench-log-*' EXIT

sync
echo "bench-log: fio, ${seconds}s" >&2
fio --name=wal --filename="$dir/fio.dat" --ioengine=io_uring --rw=write --bs="$batch" \
	--fdatasync=1 --size=8g --runtime="$seconds" --time_based --output-format=json \
	>"$out/fio.json" 2>"$out/fio.err" || { cat "$out/fio.err" >&2; exit 1; }
# Each phase starts on a quiet disk: the writeback the previous phase left behind would
# otherwise land in the next phase's latency.
settle() { sync; sleep 3; }
settle
echo "bench-log: rill, closed loop, ${seconds}s" >&2
build/release/rill bench log --dir "$dir" --record-bytes "$record" --seconds "$seconds" \
	--batch-bytes "$batch" --durability group --keep --json >"$out/max.json"
rate=$(python3 -c "import json; print(int(json.load(open('$out/max.json'))['events_per_s'] / 2))")
settle
echo "bench-log: rill, open loop at $rate events/s, ${seconds}s" >&2
build/release/rill bench log --dir "$dir" --record-bytes "$record" --seconds "$seconds" \
	--batch-bytes "$batch" --durability group --rate "$rate" --keep --json >"$out/half.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
fio = json.load(open(f"{out}/fio.json"))["jobs"][0]
sync = fio["sync"]["lat_ns"]
fio_summary = {
    "mb_per_s": round(fio["write"]["bw_bytes"] / 1e6, 2),
    "fdatasync_p50_us": round(sync["percentile"]["50.000000"] / 1e3, 1),
    "fdatasync_p99_us": round(sync["percentile"]["99.000000"] / 1e3, 1),
    "fdatasync_max_us": round(sync["max"] / 1e3, 1),
}
rill_max = json.load(open(f"{out}/max.json"))
rill_half = json.load(open(f"{out}/half.json"))
print(json.dumps({
    "fio": fio_summary,
    "rill_max": rill_max,
    "rill_half_rate": rill_half,
    "ratios": {
        "rill_vs_fio_mb_per_s": round(rill_max["mb_per_s"] / fio_summary["mb_per_s"], 3),
        "rill_half_rate_p99_vs_fio_fdatasync_p99":
            round(rill_half["p99_us"] / fio_summary["fdatasync_p99_us"], 3),
    },
}, indent=2))
PY
