#!/usr/bin/env bash
# `rill bench produce` against a `rill serve` of its own (a temporary data directory, an
# ephemeral loopback port): a closed loop for 1 s prints one JSON object with
# events_per_s > 0, errors 0 and p50_us <= p99_us <= max_us; an open loop at --rate 1000
# for 1 s schedules about 1000 requests (900 to 1100), each acknowledged or counted as
# unsent (a loaded machine may not keep up: the schedule, not the server's speed, is what
# is checked); a topic that exists with other settings is refused, with its own it runs
# and the report states them; requests a stalled server (SIGSTOP) never answered are
# counted and recorded; the server stops on SIGTERM.
# usage: test_bench_cli.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"

serve_start_or_skip "$tmp/data" "$tmp/serve.log"

out=$(timeout 30 "$rill" bench produce --connect "$serve_addr" --seconds 1 --json); rc=$?
echo "closed loop: $out"
check "bench produce exits 0" '[ $rc -eq 0 ]'
check "bench produce prints one JSON object with events_per_s > 0 and errors 0" \
	'json_check "$out" "j[\"events_per_s\"] > 0 and j[\"events\"] > 0 and j[\"errors\"] == 0 and 0 <= j[\"cpu_steal_pct\"] <= 100"'
check "bench produce's latencies are ordered: p50_us <= p99_us <= max_us" \
	'json_check "$out" "0 < j[\"p50_us\"] <= j[\"p99_us\"] <= j[\"max_us\"]"'

out=$(timeout 30 "$rill" bench produce --connect "$serve_addr" --seconds 1 --rate 1000 --json); rc=$?
echo "open loop at 1000 events/s: $out"
check "bench produce --rate exits 0" '[ $rc -eq 0 ]'
check "bench produce --rate 1000 --seconds 1 schedules about 1000 requests (900 to 1100), each acknowledged or unsent" \
	'json_check "$out" "900 <= j[\"requests\"] <= 1100 and j[\"events\"] + j[\"unsent\"] == j[\"requests\"] and j[\"events\"] > 0 and j[\"errors\"] == 0 and j[\"rate\"] == 1000"'

# Far behind its schedule (every answer waits for an fdatasync), the generator sleeps until
# an answer frees its pipeline; it used to spin on epoll with no timeout, millions of waits.
out=$(timeout 30 "$rill" bench produce --connect "$serve_addr" --topic slow --durability group \
	--acks durable --pipeline 1 --seconds 1 --rate 1000000 --json); rc=$?
echo "open loop far behind: $out"
check "bench produce behind its schedule waits for answers, not spinning: waits <= 4 per request + 4000" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"unsent\"] > 0 and j[\"waits\"] <= 4 * (j[\"events\"] + j[\"unanswered\"]) + 4000"'

# --record-bytes is the whole record: header, key and payload (it was 8 bytes more).
timeout 30 "$rill" bench produce --connect "$serve_addr" --topic sized --partitions 1 \
	--record-bytes 200 --seconds 1 --rate 100 --json >/dev/null
rec=$("$rill" log dump "$tmp/data/topics/sized/0" --limit 1)
check "bench produce --record-bytes 200 writes records of 200 bytes (64 header + 9 key + payload)" \
	'json_check "$rec" "64 + len(j[\"key\"]) + j[\"payload_bytes\"] == 200"'

out=$(timeout 30 "$rill" bench produce --connect "$serve_addr" --seconds 1 --pipeline 4 --lockstep --json); rc=$?
check "bench produce --lockstep: whole pipelines of 4, each answered before the next" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"lockstep\"] and j[\"requests\"] > 0 and j[\"requests\"] % 4 == 0 and j[\"errors\"] == 0"'

# A topic that exists with other settings: refused, naming them; with its own, run and stated.
"$rill" topic create --connect "$serve_addr" --name other --partitions 2 --durability group >/dev/null
err=$(timeout 30 "$rill" bench produce --connect "$serve_addr" --topic other --seconds 1 --json 2>&1); rc=$?
check "bench produce on a topic of other settings exits 1, naming them" \
	'[ $rc -eq 1 ] && [[ "$err" == *"exists with 2 partitions and durability group"* ]]'
out=$(timeout 30 "$rill" bench produce --connect "$serve_addr" --topic other --partitions 2 \
	--durability group --seconds 1 --json); rc=$?
check "with the topic's own settings it runs, and the report states them" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"partitions\"] == 2 and j[\"durability\"] == \"group\""'

# The server stalls (SIGSTOP) near the end, past the 5 s the bench waits for answers: what
# never came is counted and recorded as late as the bench's end, not dropped.
# The server's events so far (its own counter, rill stat).
served() { "$rill" stat --connect "$serve_addr" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server"]["events"])'; }
before=$(served)
timeout 40 "$rill" bench produce --connect "$serve_addr" --seconds 4 --rate 200 --pipeline 4 \
	--json >"$tmp/stall.json" &
bench=$!
# Stopped once the run is under way (not during its set-up, however slow the machine).
for _ in $(seq 200); do [ "$(served)" -gt "$((before + 20))" ] && break; sleep 0.05; done
sleep 0.5
kill -STOP "$serve_pid"
wait "$bench"; rc=$?
kill -CONT "$serve_pid"
out=$(cat "$tmp/stall.json")
echo "stalled at the end: $out"
check "a stall at the end: the requests never answered are counted and recorded (max >= 5 s)" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"unanswered\"] >= 1 and j[\"max_us\"] >= 5e6 and j[\"events\"] + j[\"unsent\"] + j[\"unanswered\"] == j[\"requests\"]"'

serve_stop 15
check "rill serve exits 0 on SIGTERM" '[ "$serve_rc" = 0 ]'
exit $fail
