#!/usr/bin/env bash
# `rill serve --config FILE`: the INI file's keys reach the engine (shards, and log_io,
# seen in how the server holds its segment files open: O_DIRECT or not; cpus, seen in
# where its rill-shardN threads may run; io_workers, seen in where their io_uring workers
# may run), the command line wins over the file, and a bad
# value or an unknown key stops the server with the file's line named and a non-zero
# status; so do CPU lists that are malformed, disagree with shards or cannot be pinned.
# usage: test_serve_config.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"
at_exit serve_cleanup

# How many of the server's open files are O_DIRECT (flags in /proc are octal; 040000).
direct_fds() {
	local n=0 f flags
	for f in /proc/"$serve_pid"/fdinfo/*; do
		flags=$(sed -n 's/^flags:[[:space:]]*//p' "$f" 2>/dev/null) || continue
		[ -n "$flags" ] && (((8#$flags & 8#040000) != 0)) && n=$((n + 1))
	done
	echo "$n"
}
# Durable events into a one-partition topic, so that its log has written batches.
produce() { # TOPIC
	"$rill" bench produce --connect "$serve_addr" --topic "$1" --partitions 1 \
		--durability group --acks durable --connections 1 --pipeline 4 --seconds 1 --json \
		>"$tmp/bench.json"
}
shards() {
	"$rill" stat --connect "$serve_addr" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["shards"]))'
}

# Does this file system take O_DIRECT writes? `rill bench log` says which way it wrote.
"$rill" bench log --dir "$tmp" --seconds 1 --record-bytes 200 --batch-bytes 8192 >"$tmp/probe.json"
direct_here=0
grep -q '"io":"direct"' "$tmp/probe.json" && direct_here=1

printf '[engine]\nshards = 1\nlog_io = buffered\n' >"$tmp/buffered.ini"
serve_start_or_skip "$tmp/data-buffered" "$tmp/serve.log" --config "$tmp/buffered.ini"
produce t
check "a server from the file runs produce" '[ $? -eq 0 ] && grep -q events_per_s "$tmp/bench.json"'
check "shards = 1 from the file" '[ "$(shards)" = 1 ]'
check "log_io = buffered: no O_DIRECT file" '[ "$(direct_fds)" = 0 ]'
serve_stop
check "the buffered server stops cleanly" '[ "$serve_rc" = 0 ]'

printf '[engine]\nshards = 1\nlog_io = direct\n' >"$tmp/direct.ini"
serve_start_or_skip "$tmp/data-direct" "$tmp/serve.log" --config "$tmp/direct.ini" --shards 2
produce t
check "the command line wins: --shards 2 over shards = 1" '[ "$(shards)" = 2 ]'
if [ "$direct_here" = 1 ]; then
	check "log_io = direct: the segment is open O_DIRECT" '[ "$(direct_fds)" -ge 1 ]'
else
	echo "note: no O_DIRECT on this file system; the direct case is not checked"
fi
serve_stop
check "the direct server stops cleanly" '[ "$serve_rc" = 0 ]'

# Each shard thread's name and the CPUs it may run on, one "name list" line per shard.
shard_cpus() {
	local t
	for t in /proc/"$serve_pid"/task/*; do
		case $(cat "$t/comm" 2>/dev/null) in
		rill-shard*) echo "$(cat "$t/comm") $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status")" ;;
		esac
	done | sort
}
# The first and last CPUs this test may run on (a container's may not start at 0).
read -r first_cpu last_cpu < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[-1])')
printf '[engine]\ncpus = %s,%s\n' "$last_cpu" "$first_cpu" >"$tmp/cpus.ini"
serve_start_or_skip "$tmp/data-cpus" "$tmp/serve.log" --config "$tmp/cpus.ini"
got=$(shard_cpus)
echo "shards and their CPUs: $(echo $got)"
check "cpus = $last_cpu,$first_cpu: two shards, the first on CPU $last_cpu, the second on $first_cpu" \
	'[ "$got" = "$(printf "rill-shard0 %s\nrill-shard1 %s" "$last_cpu" "$first_cpu")" ]'
serve_stop
check "the pinned server stops cleanly" '[ "$serve_rc" = 0 ]'
serve_start_or_skip "$tmp/data-cpus" "$tmp/serve.log" --config "$tmp/cpus.ini" --cpus "$first_cpu"
got=$(shard_cpus)
check "the command line wins: --cpus $first_cpu, one shard on it" '[ "$got" = "rill-shard0 $first_cpu" ]'
serve_stop
# The command line wins across the two keys too: --cpus over the file's shards, --shards
# over the file's cpus (which then do not apply, and the server says so).
printf '[engine]\nshards = 3\n' >"$tmp/shards3.ini"
serve_start_or_skip "$tmp/data-cpus" "$tmp/serve.log" --config "$tmp/shards3.ini" --cpus "$first_cpu"
got=$(shard_cpus)
check "--cpus $first_cpu over the file's shards = 3: one shard on it" '[ "$got" = "rill-shard0 $first_cpu" ]'
serve_stop
serve_start_or_skip "$tmp/data-cpus" "$tmp/serve.log" --config "$tmp/cpus.ini" --shards 1
check "--shards 1 over the file's two cpus: one shard" '[ "$(shards)" = 1 ]'
check "... saying the file's cpus do not apply" 'grep -q "cpus (2 CPUs) do not apply" "$tmp/serve.log"'
serve_stop
# io_workers = shard: the shard's io_uring workers run on its CPU; spare (the default):
# on the others. Read right after durable events, while the workers are there (io-wq keeps
# one; a list read empty is a note). On a kernel where workers inherit their thread's pin
# (6.18) the shard case alone would pass unregistered: the spare case shows registration.
worker_cpus() {
	local shard t
	shard=$(for t in /proc/"$serve_pid"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = rill-shard0 ] && basename "$t"
	done)
	for t in /proc/"$serve_pid"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = "iou-wrk-$shard" ] &&
			sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status" 2>/dev/null
	done | sort -u
}
# Is CPU $1 in any of the lists that follow ("0-2,5" as in Cpus_allowed_list)?
cpu_in_lists() {
	python3 - "$@" <<'PY'
import sys
cpu = int(sys.argv[1])
for lst in sys.argv[2:]:
    for part in lst.split(","):
        a, _, b = part.partition("-")
        if int(a) <= cpu <= int(b or a):
            sys.exit(0)
sys.exit(1)
PY
}
if [ "$first_cpu" != "$last_cpu" ]; then
	for mode in shard spare; do
		printf '[engine]\ncpus = %s\nio_workers = %s\n' "$first_cpu" "$mode" >"$tmp/workers.ini"
		serve_start_or_skip "$tmp/data-workers-$mode" "$tmp/serve.log" --config "$tmp/workers.ini"
		produce w
		got=$(worker_cpus)
		echo "io_workers = $mode: the workers' CPU lists: $(echo $got)"
		if [ -z "$got" ] || grep -q "cannot place its io_uring workers" "$tmp/serve.log"; then
			echo "note: no io_uring worker seen, or this kernel places none; not checked"
		elif [ "$mode" = shard ]; then
			check "io_workers = shard: every worker on shard CPU $first_cpu alone" \
				'[ "$got" = "$first_cpu" ]'
		else
			check "io_workers = spare: no worker on shard CPU $first_cpu" \
				'! cpu_in_lists "$first_cpu" $got'
		fi
		serve_stop
	done
else
	echo "note: one CPU: no spare one for io_workers to choose; not checked"
fi
printf '[engine]\nio_workers = anywhere\n' >"$tmp/badworkers.ini"
err=$(timeout 30 "$rill" serve --config "$tmp/badworkers.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "io_workers = anywhere exits 1 naming the line" '[ $rc -eq 1 ] && [[ "$err" == *"badworkers.ini: line 2: [engine] io_workers = anywhere"* ]]'

# Refusals, each before anything starts (time-limited all the same).
err=$(timeout 30 "$rill" serve --data "$tmp/data-cpus" --listen 127.0.0.1:0 --cpus 3-1 2>&1); rc=$?
check "--cpus 3-1 exits 2 saying why" '[ $rc -eq 2 ] && [[ "$err" == *"a range that goes down"* ]]'
err=$(timeout 30 "$rill" serve --data "$tmp/data-cpus" --listen 127.0.0.1:0 --shards 3 --cpus "$first_cpu" 2>&1); rc=$?
check "--shards 3 --cpus $first_cpu exits 2: one CPU per shard" '[ $rc -eq 2 ] && [[ "$err" == *"1 CPU(s) for 3 shard(s)"* ]]'
err=$(timeout 30 "$rill" serve --data "$tmp/data-cpus" --listen 127.0.0.1:0 --cpus 1023 2>&1); rc=$?
check "--cpus 1023 (no such CPU) exits 1 naming it" '[ $rc -eq 1 ] && [[ "$err" == *"cannot be pinned to CPU 1023"* ]]'
printf '[engine]\ncpus = 0,,1\n' >"$tmp/badcpus.ini"
err=$(timeout 30 "$rill" serve --config "$tmp/badcpus.ini" --data "$tmp/data-cpus" --listen 127.0.0.1:0 2>&1); rc=$?
check "a malformed cpus line exits 1 naming the line" '[ $rc -eq 1 ] && [[ "$err" == *"badcpus.ini: line 2: cpus = 0,,1"* ]]'

printf '[engine]\nshards = 1\n\nlog_io = sideways\n' >"$tmp/bad.ini"
err=$("$rill" serve --config "$tmp/bad.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "a bad value exits 1" '[ $rc -eq 1 ]'
check "a bad value names the file and its line" '[[ "$err" == *"bad.ini: line 4: [engine] log_io = sideways"* ]]'
# libinih reads on past an error and returns the first error's line: the message is that
# line's own, a syntax error before a bad value included, a bad value before a key given
# twice too.
printf '[engine]\nshards 2\npoll = adaptive\nlog_io = bufferd\n' >"$tmp/syntax.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/syntax.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "a line that is not INI before a bad value: that line named, as not INI syntax" \
	'[ $rc -eq 1 ] && [[ "$err" == *"syntax.ini: line 2: not INI syntax"* ]] && [[ "$err" != *bufferd* ]]'
printf '[engine]\nlog_io = sideways\nshards = 1\nshards = 1\n' >"$tmp/first.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/first.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "a bad value before a key given twice: the bad value's line and message" \
	'[ $rc -eq 1 ] && [[ "$err" == *"first.ini: line 2: [engine] log_io = sideways"* ]] && [[ "$err" != *"given again"* ]]'
printf '[engine]\nfrobnicate = 1\n' >"$tmp/unknown.ini"
err=$("$rill" serve --config "$tmp/unknown.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "an unknown key exits 1 naming it" '[ $rc -eq 1 ] && [[ "$err" == *"unknown.ini: line 2: [engine] frobnicate"* ]]'
# subscriptions_per_shard: one shard, one subscription at a time; a consumer of a
# two-partition topic gets the second refused, with the key to raise named.
printf '[engine]\nshards = 1\nsubscriptions_per_shard = 1\n' >"$tmp/subs.ini"
serve_start_or_skip "$tmp/data-subs" "$tmp/serve.log" --config "$tmp/subs.ini"
"$rill" topic create --connect "$serve_addr" --name two --partitions 2 >/dev/null
err=$("$rill" consume --connect "$serve_addr" --topic two --until-end 2>&1); rc=$?
check "past subscriptions_per_shard, a SUBSCRIBE is refused naming the key" \
	'[ $rc -eq 1 ] && [[ "$err" == *"partition 1"*"subscriptions_per_shard"* ]]'
"$rill" consume --connect "$serve_addr" --topic two --partition 1 --until-end >/dev/null; rc=$?
check "the subscription is given back: one partition alone is fine" '[ $rc -eq 0 ]'
serve_stop
printf '[engine]\nsubscriptions_per_shard = 1025\n' >"$tmp/subs-bad.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/subs-bad.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "subscriptions_per_shard past 1024 exits 1 naming the line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"subs-bad.ini: line 2"* ]]'

# More schema definitions than one frame holds: produce and consume still get them all
# (the SCHEMAS answer comes in pages; it used to be one frame, refused past the limit).
printf '[server]\nframe_bytes_max = 65536\n' >"$tmp/small-frames.ini"
serve_start_or_skip "$tmp/data-schemas" "$tmp/serve.log" --config "$tmp/small-frames.ini"
doc=$(printf 'd%.0s' $(seq 3000))
for i in $(seq -w 1 40); do
	echo "{\"type\":\"Wide$i\",\"version\":1,\"doc\":\"$doc\",\"fields\":[{\"name\":\"n\",\"type\":\"i64\"}]}" >"$tmp/wide.json"
	"$rill" schema register --connect "$serve_addr" --file "$tmp/wide.json" >/dev/null || echo "register Wide$i failed"
done
"$rill" topic create --connect "$serve_addr" --name wide --partitions 1 >/dev/null
out=$(echo '{"key":"k","type":"Wide40","data":{"n":7}}' | "$rill" produce --connect "$serve_addr" --topic wide &&
	"$rill" consume --connect "$serve_addr" --topic wide --until-end); rc=$?
check "120 KB of definitions past a 64 KiB frame: produce and consume still work" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"type\":\"Wide40\""*"\"data\":{\"n\":7}"* ]]'
serve_stop

# Values out of range are refused at their line; what needs two values, or the listen
# address, once the file is read; every one before the data directory is made.
printf '[server]\nframe_bytes_max = 0\n' >"$tmp/frame0.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/frame0.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "frame_bytes_max = 0 exits 1 naming the line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"frame0.ini: line 2: [server] frame_bytes_max = 0"* ]]'
printf '[server]\nconn_inflight_bytes_max = 10\n' >"$tmp/inflight.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/inflight.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "conn_inflight_bytes_max below a frame exits 1 saying so" \
	'[ $rc -eq 1 ] && [[ "$err" == *"conn_inflight_bytes_max must hold one frame"* ]]'
err=$(timeout 10 "$rill" serve --data "$tmp/data-none" --listen nonsense 2>&1); rc=$?
check "--listen nonsense exits 1 naming it" '[ $rc -eq 1 ] && [[ "$err" == *"nonsense"* ]]'
check "... and no config file, there being none" '[[ "$err" != *".ini"* ]]'
err=$(timeout 10 "$rill" serve --config "$tmp/inflight.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1)
check "a check of two values names the config file" '[[ "$err" == *"inflight.ini: "*"must hold one frame"* ]]'
# A value past what the engine takes, or an empty one, is refused at its line too, not
# later with the data directory blamed; a listen address from the file that does not
# resolve names the file's line; one from the command line over it does not.
printf '[engine]\nsnapshots_kept = 100\n' >"$tmp/kept.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/kept.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "snapshots_kept past the engine's 64 exits 1 naming the line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"kept.ini: line 2: [engine] snapshots_kept = 100"* ]]'
printf '[engine]\nshards = 1\ndata =\n' >"$tmp/nodata.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/nodata.ini" --listen 127.0.0.1:0 2>&1); rc=$?
check "an empty data exits 1 naming the line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"nodata.ini: line 3: [engine] data"* ]]'
printf '[server]\nlisten =\n' >"$tmp/nolisten.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/nolisten.ini" --data "$tmp/data-none" 2>&1); rc=$?
check "an empty listen exits 1 naming the line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"nolisten.ini: line 2: [server] listen"* ]]'
printf '[server]\nframe_bytes_max = 65536\nlisten = nonsense\n' >"$tmp/badlisten.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/badlisten.ini" --data "$tmp/data-none" 2>&1); rc=$?
check "a listen from the file that does not resolve exits 1 naming its line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"badlisten.ini: line 3: "*"nonsense"* ]]'
err=$(timeout 10 "$rill" serve --config "$tmp/badlisten.ini" --data "$tmp/data-none" --listen elsewhere 2>&1); rc=$?
check "... and --listen over it, not the file" \
	'[ $rc -eq 1 ] && [[ "$err" == *"elsewhere"* ]] && [[ "$err" != *"badlisten.ini"* ]]'
printf '[engine]\nshards = 3\ncpus = %s\n' "$first_cpu" >"$tmp/shards-cpus.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/shards-cpus.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "the file's shards and cpus disagreeing exits 1 naming both lines" \
	'[ $rc -eq 1 ] && [[ "$err" == *"shards-cpus.ini: line 3: "*"1 CPU(s)"*"3 shard(s)"*"line 2"* ]]'
check "no refused configuration made a data directory" '[ ! -e "$tmp/data-none" ]'

long=$(printf 'q%.0s' $(seq 220))
printf '[engine]\ndata = %s/%s\n' "$tmp" "$long" >"$tmp/long.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/long.ini" --listen 127.0.0.1:0 2>&1); rc=$?
check "a line longer than libinih reads exits 1 naming it, not a line after it" \
	'[ $rc -eq 1 ] && [[ "$err" == *"long.ini: line 2: longer than 199 bytes"* ]] && [ ! -e "$tmp/$long" ]'
printf '[engine]\ndata = %s/one\n  %s/two\n' "$tmp" "$tmp" >"$tmp/cont.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/cont.ini" --listen 127.0.0.1:0 2>&1); rc=$?
check "an indented line (a continuation) exits 1: it would replace the value" \
	'[ $rc -eq 1 ] && [[ "$err" == *"cont.ini: line 3: [engine] data given again"* ]] && [ ! -e "$tmp/two" ]'
printf '[server]\nlisten = 127.0.0.1:0\n[engine]\nshards = 1\n[server]\nlisten = 127.0.0.1:1\n' >"$tmp/twice.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/twice.ini" --data "$tmp/data-bad" 2>&1); rc=$?
check "a key given twice exits 1 naming the second" \
	'[ $rc -eq 1 ] && [[ "$err" == *"twice.ini: line 6: [server] listen given again"* ]]'

# DPDK's settings without DPDK itself: refused, not ignored (rill serve has no other UDP
# ingress); an empty eal too (the EAL would take every CPU and PCI device).
err=$(timeout 10 "$rill" serve --data "$tmp/data-none" --listen 127.0.0.1:0 --dpdk-acks 2>&1); rc=$?
check "--dpdk-acks without --dpdk exits 2 saying so" \
	'[ $rc -eq 2 ] && [[ "$err" == *"not DPDK itself"* ]]'
printf '[dpdk]\nudp_port = 7409\n' >"$tmp/dpdk-noeal.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/dpdk-noeal.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "a [dpdk] key without eal exits 1 naming its line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"dpdk-noeal.ini: line 2: [dpdk] udp_port is set, but not eal"* ]]'
# The README's example config as an operator copies it (data, listen and CPUs on the
# command line): without its eal line, its next [dpdk] key, a default value, is refused at
# its line, saying what to do; with the whole [dpdk] section left out, as the eal line's
# comment says, it starts.
python3 - "$(dirname "$0")/../../README.md" "$tmp/example" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
start = lines.index("    [engine]")
block = []
for l in lines[start:]:
    if not l.startswith("    "):
        break
    block.append(l[4:])
cut = block.index(next(l for l in block if l.startswith("[dpdk]")))
with open(sys.argv[2] + "-noeal.ini", "w") as f:
    f.write("\n".join(l for l in block if not l.startswith("eal =")) + "\n")
with open(sys.argv[2] + "-nodpdk.ini", "w") as f:
    f.write("\n".join(block[:cut]) + "\n")
PY
port_line=$(grep -n '^port = ' "$tmp/example-noeal.ini" | cut -d: -f1)
err=$(timeout 10 "$rill" serve --config "$tmp/example-noeal.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 --cpus "$first_cpu" 2>&1); rc=$?
check "the README's example without eal exits 1 naming port's line and the way out" \
	'[ $rc -eq 1 ] && [ -n "$port_line" ] && [[ "$err" == *"example-noeal.ini: line $port_line: [dpdk] port is set, but not eal"*"remove the [dpdk] section"* ]]'
serve_start_or_skip "$tmp/data-example" "$tmp/serve.log" --config "$tmp/example-nodpdk.ini" --cpus "$first_cpu"
check "the README's example with no [dpdk] section starts" '[ -n "$serve_addr" ]'
serve_stop
check "... and stops cleanly" '[ "$serve_rc" = 0 ]'
printf '[dpdk]\neal =\n' >"$tmp/dpdk-empty.ini"
err=$(timeout 10 "$rill" serve --config "$tmp/dpdk-empty.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "an empty eal exits 1 naming its line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"dpdk-empty.ini: line 2: [dpdk] eal"* ]]'
check "no DPDK refusal made a data directory" '[ ! -e "$tmp/data-none" ]'
exit $fail
