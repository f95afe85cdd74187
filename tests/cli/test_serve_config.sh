#!/usr/bin/env bash
# `rill serve --config FILE`: the INI file's keys reach the engine (shards, and log_io,
# seen in how the server holds its segment files open: O_DIRECT or not), the command line
# wins over the file, and a bad value or an unknown key stops the server with the file's
# line named and a non-zero status.
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

printf '[engine]\nshards = 1\n\nlog_io = sideways\n' >"$tmp/bad.ini"
err=$("$rill" serve --config "$tmp/bad.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "a bad value exits 1" '[ $rc -eq 1 ]'
check "a bad value names the file and its line" '[[ "$err" == *"bad.ini: line 4: [engine] log_io = sideways"* ]]'
printf '[engine]\nfrobnicate = 1\n' >"$tmp/unknown.ini"
err=$("$rill" serve --config "$tmp/unknown.ini" --data "$tmp/data-bad" --listen 127.0.0.1:0 2>&1); rc=$?
check "an unknown key exits 1 naming it" '[ $rc -eq 1 ] && [[ "$err" == *"unknown.ini: line 2: [engine] frobnicate"* ]]'
exit $fail
