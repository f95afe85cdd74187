#!/usr/bin/env bash
# `rill consume --group` where the group cannot go on, against a `rill serve` of its own. A
# group name the engine refuses is bad usage (exit 2) before any event is printed, --from
# or not (with --from it used to stream the whole topic, its commit refused every second).
# An event that cannot be formatted (json_dumps failed by an LD_PRELOAD shim) stops consume
# with status 1 and a message, the group committed up to the event before it (it was
# skipped silently, committed, exit 0). A closed pipe on stdout (`| head -n 3`) ends consume
# with status 1 and a message, having committed no more than it wrote out, and produce the
# same (both were killed by SIGPIPE, status 141). Last, on a server holding at most one
# group, a new group ends consume with status 1 at its first commit, having printed what
# it read (it used to follow the topic for good, saying so every second), over 4
# partitions too. And a commit pass over 16 partitions is one GROUP_COMMIT request (STAT's
# group_commits), not one a partition.
# usage: test_consume_group.sh RILL_BINARY JSON_FAIL_SHIM
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"
shim=$2
at_exit serve_cleanup

serve_start_or_skip "$tmp/data" "$tmp/serve.log" --shards 1
c="--connect $serve_addr"
echo '{"type":"Order","version":1,"fields":[{"name":"amount","type":"i64"}]}' >"$tmp/order.json"
# Events with amounts $2 to $3 for topic $1, one partition each.
produce() {
	for i in $(seq "$2" "$3"); do echo "{\"key\":\"k$i\",\"type\":\"Order\",\"data\":{\"amount\":$i}}"; done |
		"$rill" produce $c --topic "$1" --acks durable >/dev/null
}
"$rill" topic create $c --name five --partitions 1 --schema "$tmp/order.json" >/dev/null &&
	produce five 0 4
check "a topic of 5 events" '[ $? -eq 0 ]'
# The offset of group $1's next event in topic $2: what it committed, from a run to the end.
resumes_at() {
	local first
	first=$(timeout 20 "$rill" consume $c --topic "$2" --group "$1" --until-end --limit 1)
	sed -n 's/.*"offset":\([0-9]*\).*/\1/p' <<<"$first"
}

# ---- Group names -----------------------------------------------------------------------

long=$(printf 'g%.0s' $(seq 129))
for name in 'two words' '.dot-first' "$long" 'a/b' ''; do
	timeout 20 "$rill" consume $c --topic five --group "$name" --from earliest --until-end \
		>"$tmp/bad.out" 2>"$tmp/bad.err"
	rc=$?
	check "--group '${name:0:12}' with --from: bad usage (exit 2), nothing printed" \
		'[ $rc -eq 2 ] && [ ! -s "$tmp/bad.out" ] && grep -q "\-\-group takes a name" "$tmp/bad.err"'
done

# ---- An event that cannot be formatted -------------------------------------------------

# The third event's JSON (offset 2) cannot be made. The shim goes into rill alone (built
# with the build's sanitizers, it needs their runtime, which rill has and timeout lacks);
# under a sanitizer whose runtime is a shared library, it comes before that: no error here.
timeout 20 env LD_PRELOAD="$shim" RILL_TEST_JSON_FAIL_OFFSET=2 \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$rill" consume $c --topic five --group fmt.g-1_A --until-end >"$tmp/fmt.out" 2>"$tmp/fmt.err"
rc=$?
echo "consume with the third event unformattable: status $rc; stderr: $(cat "$tmp/fmt.err")"
check "an event that cannot be formatted: status 1, the events before it printed, and why" \
	'[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/fmt.out")" -eq 2 ] && grep -q "partition 0 offset 2: the event cannot be formatted" "$tmp/fmt.err"'
check "and the group resumes at that event (offset 2), not past it" \
	'[ "$(resumes_at fmt.g-1_A five)" = 2 ]'

# ---- A closed pipe ---------------------------------------------------------------------

"$rill" topic create $c --name many --partitions 1 >/dev/null &&
	"$rill" topic create $c --name slow --partitions 1 >/dev/null && produce many 1 3000
check "2 more topics, one of 3000 events" '[ $? -eq 0 ]'
# 3000 events, far more than the pipe holds: head's end closes while consume writes.
timeout 20 "$rill" consume $c --topic many --group pipe 2>"$tmp/pipe.err" | head -n 3 >"$tmp/pipe.out"
st=("${PIPESTATUS[@]}")
echo "consume | head -n 3: status ${st[0]}; stderr: $(cat "$tmp/pipe.err")"
check "consume | head -n 3: status 1, saying that writing failed" \
	'[ "${st[0]}" = 1 ] && [ "$(wc -l <"$tmp/pipe.out")" -eq 3 ] && grep -q "writing the events out failed: Broken pipe" "$tmp/pipe.err"'
at=$(resumes_at pipe many)
check "and the group committed no more than consume wrote out (it resumes at $at)" \
	'[ -n "$at" ] && [ "$at" -le 3 ]'

# Slowly, through a FIFO: 2 events, then a third, each written out and committed at the
# commit a second; the reader takes 3 lines and leaves; then 100 events meet the closed
# pipe. The group committed exactly what was written out: 3.
mkfifo "$tmp/fifo"
produce slow 0 1
timeout 30 "$rill" consume $c --topic slow --group pipe2 >"$tmp/fifo" 2>"$tmp/slow.err" &
consumer=$!
{ for _ in 1 2 3; do IFS= read -r line || break; echo "$line"; done; } <"$tmp/fifo" >"$tmp/slow.out" &
reader=$!
for _ in $(seq 100); do [ "$(wc -l <"$tmp/slow.out")" -ge 2 ] && break; sleep 0.05; done
produce slow 2 2
wait $reader
produce slow 3 102
wait $consumer
rc=$?
echo "consume into a reader that left after 3 lines: status $rc; stderr: $(cat "$tmp/slow.err")"
check "consume into a reader gone after 3 lines: status 1, saying that writing failed" \
	'[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/slow.out")" -eq 3 ] && grep -q "writing the events out failed" "$tmp/slow.err"'
check "and the group resumes right after the 3 events written out" '[ "$(resumes_at pipe2 slow)" = 3 ]'

for i in $(seq 3000); do echo "{\"key\":\"p$i\",\"type\":\"Order\",\"data\":{\"amount\":$i}}"; done |
	timeout 20 "$rill" produce $c --topic many 2>"$tmp/produce.err" | head -n 1 >/dev/null
st=("${PIPESTATUS[@]}")
check "produce | head -n 1: status 1, saying that writing failed" \
	'[ "${st[1]}" = 1 ] && grep -q "writing the acknowledgements out failed" "$tmp/produce.err"'

# ---- One commit request a pass ---------------------------------------------------------

# A commit pass sends every partition printed from in one GROUP_COMMIT: one request each
# held the server's control thread, which queries share, for a write of the group's file
# and two syncs (128 partitions: about 80 ms a pass). STAT counts the requests.
group_commits() {
	"$rill" stat $c | sed -n 's/.*"group_commits":\([0-9]*\).*/\1/p'
}
"$rill" topic create $c --name sixteen --partitions 16 >/dev/null && produce sixteen 0 319
check "a topic of 16 partitions, 320 events" '[ $? -eq 0 ]'
before=$(group_commits)
start=$(serve_now_us)
timeout 20 "$rill" consume $c --topic sixteen --group wide --until-end >"$tmp/wide.out" 2>"$tmp/wide.err"
rc=$?
took_s=$((($(serve_now_us) - start) / 1000000))
commits=$(($(group_commits) - before))
parts=$(grep -o '"partition":[0-9]*' "$tmp/wide.out" | sort -u | wc -l)
echo "consume --group over 16 partitions: status $rc, $parts partitions, $commits GROUP_COMMITs in $took_s s; stderr: $(cat "$tmp/wide.err")"
check "consume --group over 16 partitions: all 320 events, from every partition, status 0" \
	'[ $rc -eq 0 ] && [ "$(wc -l <"$tmp/wide.out")" -eq 320 ] && [ "$parts" -eq 16 ]'
# A pass a second and one at the end, each a single request (there were 16 at the end).
check "and one GROUP_COMMIT a commit pass, not one a partition ($commits in $took_s s)" \
	'[ -n "$before" ] && [ "$commits" -ge 1 ] && [ "$commits" -le $((took_s + 1)) ]'
before=$(group_commits)
out=$(timeout 20 "$rill" consume $c --topic sixteen --group wide --until-end)
check "and it committed every partition: a second run prints nothing, and commits nothing" \
	'[ $? -eq 0 ] && [ -z "$out" ] && [ "$(group_commits)" = "$before" ]'

# ---- Past groups_max -------------------------------------------------------------------

serve_stop
check "the server stops with exit 0" '[ "$serve_rc" = 0 ]'
printf '[engine]\ngroups_max = 1\n' >"$tmp/one.ini"
serve_start_or_skip "$tmp/data-one" "$tmp/serve-one.log" --config "$tmp/one.ini" --shards 1
c="--connect $serve_addr"
"$rill" topic create $c --name five --partitions 1 --schema "$tmp/order.json" >/dev/null &&
	produce five 0 4 && timeout 20 "$rill" consume $c --topic five --group held --until-end >/dev/null
check "a server holding one group, and that group" '[ $? -eq 0 ]'
# Following the topic, consume would never end but at the refusal.
timeout 20 "$rill" consume $c --topic five --group second >"$tmp/full.out" 2>"$tmp/full.err"
rc=$?
echo "consume --group second: status $rc; stderr: $(cat "$tmp/full.err")"
check "a new group past groups_max: status 1 at its first commit, the events read printed" \
	'[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/full.out")" -eq 5 ]'
check "and the refusal is said once, naming groups_max and the group" \
	'[ "$(grep -c "groups_max" "$tmp/full.err")" -eq 1 ] && grep -q "group .second." "$tmp/full.err"'
# The same over 4 partitions: their one request refused, they are tried one at a time (so
# that one offset refused holds back no other); the first refusal, for good, ends the run.
"$rill" topic create $c --name four --partitions 4 >/dev/null && produce four 0 39
check "a topic of 4 partitions, 40 events" '[ $? -eq 0 ]'
timeout 20 "$rill" consume $c --topic four --group third >"$tmp/full4.out" 2>"$tmp/full4.err"
rc=$?
echo "consume --group third over 4 partitions: status $rc; stderr: $(cat "$tmp/full4.err")"
check "a new group past groups_max over 4 partitions: status 1, the events read printed" \
	'[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/full4.out")" -eq 40 ]'
check "and the refusal is said once, naming groups_max, the group and a partition" \
	'[ "$(grep -c "groups_max" "$tmp/full4.err")" -eq 1 ] && grep -q "group .third. partition [0-3]: " "$tmp/full4.err"'
serve_stop
check "the server stops with exit 0" '[ "$serve_rc" = 0 ]'
exit $fail
