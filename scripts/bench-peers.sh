#!/usr/bin/env bash
# rill against a well-known peer, in one run on one machine: Redis Streams (XADD), driven
# by redis-benchmark, with AOF off, appendfsync everysec and appendfsync always; then rill
# (`rill bench produce`) with durability none (acks applied) and group (acks durable), at
# the same connections, pipeline depth (run as redis-benchmark runs it: a connection's
# next P requests once all P are answered, --lockstep) and value size; a rill run with
# errors, refusals or unanswered requests stops the script. Last, the round trip of one
# unpipelined connection: redis-benchmark PING against rill's produce with acks applied;
# and durable produce to a one-partition topic (one ordered log, as the one Redis stream).
# rill runs twice: with --shards S (default 1: one shard thread, as Redis has one thread,
# leaving the other cores to the load generator, which the acceptance rows compare; its
# durable runs' fdatasyncs go to io_uring's worker threads, where Redis's appendfsync always
# runs them on its own thread), then with one shard per CPU (rill's default; shown beside,
# with no target). The durable target is judged twice: on a topic of 4 partitions (four
# logs, four group commits) and on one partition (one ordered log, as the one Redis stream
# is): which is faster depends on the disk, so both are shown.
# Every case starts on a settled machine (sync, 3 s: the writeback of the one before done).
# rill's records are the value plus its own fixed bytes (header, key, the schema's fields).
# Prints one table with both sides and their ratios (and the rows as JSON with --json).
# Every server listens on loopback only and is stopped at exit.
#
# usage: scripts/bench-peers.sh [--connections C] [--pipeline P] [--value-bytes B]
#                               [--requests N] [--seconds S] [--shards S] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."

connections=50
pipeline=16
value_bytes=100
requests=1000000
seconds=5
shards=1
json=0
while [ $# -gt 0 ]; do
	case "$1" in
	--connections) connections=$2; shift 2 ;;
	--pipeline) pipeline=$2; shift 2 ;;
	--value-bytes) value_bytes=$2; shift 2 ;;
	--requests) requests=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--shards) shards=$2; shift 2 ;;
	--json) json=1; shift ;;
	-h|--help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "bench-peers: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

case "$shards" in
''|*[!0-9]*|0) echo "bench-peers: --shards needs a number of 1 or more" >&2; exit 2 ;;
esac

exec 3>&1 1>&2 # set-up chatter to stderr; the table to stdout
scripts/setup.sh
if [ ! -d build/release/meson-private ]; then
	meson setup build/release -Dbuildtype=release
fi
ninja -C build/release rill
rill=build/release/rill
for tool in redis-server redis-benchmark redis-cli; do
	command -v "$tool" >/dev/null || { echo "bench-peers: $tool missing (scripts/setup.sh installs it)"; exit 1; }
done

work=$(mktemp -d /tmp/rill-peers.XXXXXX)
redis_port=7601
rill_pid=""
redis_ours=0 # a server of this script's runs on redis_port: the only one it stops
cleanup() {
	if [ "$redis_ours" = 1 ]; then redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
	if [ -n "$rill_pid" ]; then kill -TERM "$rill_pid" 2>/dev/null || true; wait "$rill_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

rows="$work/rows.jsonl"
: >"$rows"

# The machine's CPU ticks, all and stolen (/proc/stat's first line): on a shared VM the
# hypervisor's steal moves tails by milliseconds, so every row carries its share.
cpu_ticks() { awk 'NR == 1 { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }

# Before every case: what the one before wrote is on the disk, and the disk is quiet.
settle() { sync; sleep 3; }

# redis_run NAME APPENDONLY FSYNC TEST-ARGS...: one redis-benchmark run on a fresh server.
redis_run() {
	local name=$1 aof=$2 fsync=$3
	shift 3
	settle
	rm -rf "$work/redis"; mkdir -p "$work/redis"
	# Another server on the port would be measured (and shut down) in place of ours, and
	# a daemonized redis-server reports success even when its bind fails.
	if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
		echo "bench-peers: something already answers on port $redis_port: stop it first"
		exit 1
	fi
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly "$aof" \
		--appendfsync "$fsync" --dir "$work/redis" --daemonize yes \
		--pidfile "$work/redis/pid" --logfile "$work/redis/log" >/dev/null
	for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	[ "$(redis-cli -p "$redis_port" config get dir | tail -1)" = "$work/redis" ] ||
		{ echo "bench-peers: redis-server did not start:"; cat "$work/redis/log"; exit 1; }
	redis_ours=1
	# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	local before after csv
	before=$(cpu_ticks)
	csv=$(redis-benchmark -p "$redis_port" --csv "$@" | tail -1 | tr -d '"')
	after=$(cpu_ticks)
	echo "$csv" | awk -F, -v name="$name" -v before="$before" -v after="$after" '{
		split(before, b, " "); split(after, a, " ")
		steal = a[1] > b[1] ? 100 * (a[2] - b[2]) / (a[1] - b[1]) : -1
		printf "{\"side\":\"redis\",\"case\":\"%s\",\"events_per_s\":%s,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"cpu_steal_pct\":%.1f}\n", name, $2, $5*1000, $7*1000, $8*1000, steal}' >>"$rows"
	redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
	redis_ours=0
	sleep 0.3
}

# redis-benchmark's -d sizes only its built-in tests' values: put the value in by hand.
value=$(head -c "$value_bytes" /dev/zero | tr '\0' 'x')
xadd=(-n "$requests" -c "$connections" -P "$pipeline" XADD stream '*' v "$value")
echo "bench-peers: redis XADD, AOF off"
redis_run xadd_aof_off no everysec "${xadd[@]}"
echo "bench-peers: redis XADD, appendfsync everysec"
redis_run xadd_everysec yes everysec "${xadd[@]}"
echo "bench-peers: redis XADD, appendfsync always"
redis_run xadd_always yes always "${xadd[@]}"
echo "bench-peers: redis PING, one connection, no pipeline"
redis_run ping_1 no everysec -n "$requests" -c 1 -P 1 PING

# rill: a server with fresh data per shard count, every case on it, then stopped. Each
# its own directory: deleting the last one's gigabytes would load the disk meanwhile (all
# go at exit).
rill_runs=0
rill_start() { # [SHARDS]: none, rill's default (one per CPU)
	rill_runs=$((rill_runs + 1))
	"$rill" serve --data "$work/rill-$rill_runs" --listen 127.0.0.1:0 ${1:+--shards "$1"} 2>"$work/rill.log" &
	rill_pid=$!
	for _ in $(seq 100); do grep -q 'listening on' "$work/rill.log" && break; sleep 0.1; done
	addr=$(sed -n 's/^rill: listening on //p' "$work/rill.log")
	[ -n "$addr" ] || { echo "bench-peers: rill serve did not start:"; cat "$work/rill.log"; exit 1; }
}
rill_stop() {
	kill -TERM "$rill_pid"
	wait "$rill_pid" || { echo "bench-peers: rill serve exited with status $?:"; cat "$work/rill.log"; exit 1; }
	rill_pid=""
}
# The record: the value plus rill's 64-byte header, the 9-byte key and the schema's fields'
# own 24 bytes (the payload's block header, an i64, the value's offset and length).
record_bytes=$((value_bytes + 64 + 9 + 24))
rill_run() {
	local name=$1
	shift
	settle
	echo "bench-peers: rill $name"
	# --lockstep: a pipeline refilled only once all its answers are in, as redis-benchmark
	# -P runs its own (refilling each slot at once would favour rill).
	"$rill" bench produce --connect "$addr" --record-bytes "$record_bytes" --seconds "$seconds" \
		--lockstep --json "$@" |
		python3 -c 'import json,sys
d=json.load(sys.stdin)
bad=d["errors"]+d["refused"]+d.get("unanswered",0)
if bad:  # a run with failures is no measurement: say so rather than compare it
    sys.exit("bench-peers: rill %s: %d errors, %d refused, %d unanswered" % (sys.argv[1], d["errors"], d["refused"], d.get("unanswered",0)))
print(json.dumps({"side":"rill","case":sys.argv[1],"events_per_s":d["events_per_s"],"p50_us":d["p50_us"],"p99_us":d["p99_us"],"max_us":d["max_us"],"errors":d["errors"],"refused":d["refused"],"cpu_steal_pct":round(d["cpu_steal_pct"],1)}))' "$name" >>"$rows"
}
# rill_cases SUFFIX: the three cases on the running server.
rill_cases() {
	rill_run "produce_none$1" --topic peers_none --durability none --acks applied \
		--connections "$connections" --pipeline "$pipeline"
	rill_run "produce_group$1" --topic peers_group --durability group --acks durable \
		--connections "$connections" --pipeline "$pipeline"
	rill_run "produce_1$1" --topic peers_rtt --durability none --acks applied --connections 1 --pipeline 1
}
n=$(nproc); all_shards=$((n > 64 ? 64 : n)) # rill's default shard count (one per CPU, at most 64), for the labels
rill_start "$shards"
rill_cases ""
# One partition: one totally ordered log, as the benchmark's one Redis stream is; its
# fdatasyncs do not share the disk with three other partitions' (rows without a target).
rill_run produce_group_p1 --topic peers_group1 --partitions 1 --durability group --acks durable \
	--connections "$connections" --pipeline "$pipeline"
rill_stop
rill_start
rill_cases "_all"
rill_stop

python3 - "$rows" "$connections" "$pipeline" "$value_bytes" "$json" "$shards" "$all_shards" <<'PY' >&3
import json, sys
rows = {r["side"] + ":" + r["case"]: r for r in map(json.loads, open(sys.argv[1]))}
conns, pipe, value, as_json = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
shards, all_shards = sys.argv[6], sys.argv[7]
def get(k): return rows.get(k, {})
pairs = [
    ("events/s, not durable", "rill:produce_none", "redis:xadd_aof_off", "events_per_s", "higher", 2.0),
    ("events/s, durable, 4 partitions", "rill:produce_group", "redis:xadd_always", "events_per_s", "higher", 5.0),
    ("events/s, rill durable vs redis everysec", "rill:produce_group", "redis:xadd_everysec", "events_per_s", "higher", None),
    ("round trip p99 us, 1 conn", "rill:produce_1", "redis:ping_1", "p99_us", "lower", 1.5),
    ("round trip p50 us, 1 conn", "rill:produce_1", "redis:ping_1", "p50_us", "lower", None),
    ("events/s, durable, 1 partition", "rill:produce_group_p1", "redis:xadd_always", "events_per_s", "higher", 5.0),
    (f"events/s, not durable, {all_shards} shards", "rill:produce_none_all", "redis:xadd_aof_off", "events_per_s", "higher", None),
    (f"events/s, durable, {all_shards} shards", "rill:produce_group_all", "redis:xadd_always", "events_per_s", "higher", None),
    (f"round trip p99 us, 1 conn, {all_shards} shards", "rill:produce_1_all", "redis:ping_1", "p99_us", "lower", None),
    (f"round trip p50 us, 1 conn, {all_shards} shards", "rill:produce_1_all", "redis:ping_1", "p50_us", "lower", None),
]
print(f"connections {conns}, pipeline {pipe}, value {value} bytes; rill with {shards} shard(s) unless said; same machine, same run")
print(f"{'measure':46} {'rill':>12} {'redis':>12} {'ratio':>8}  {'steal %':>11}  target")
out = []
for name, a, b, key, better, target in pairs:
    x, y = get(a).get(key), get(b).get(key)
    ratio = (x / y if better == "higher" else x / y) if x and y else None
    tgt = ""
    if target is not None and ratio is not None:
        ok = ratio >= target if better == "higher" else ratio <= target
        tgt = f"{'>=' if better == 'higher' else '<='} {target}: {'met' if ok else 'NOT met'}"
    steal = f"{get(a).get('cpu_steal_pct', '-')}/{get(b).get('cpu_steal_pct', '-')}"
    print(f"{name:46} {x if x is not None else '-':>12} {y if y is not None else '-':>12} "
          f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>8}  {steal:>11}  {tgt}")
    out.append({"measure": name, "rill": x, "redis": y, "ratio": ratio, "target": tgt,
                "cpu_steal_pct": [get(a).get("cpu_steal_pct"), get(b).get("cpu_steal_pct")]})
if as_json:
    print(json.dumps({"rows": list(rows.values()), "comparison": out}))
PY
