#!/usr/bin/env bash
# `rill bench produce` against a `rill serve` of its own (a temporary data directory, an
# ephemeral loopback port): a closed loop for 1 s prints one JSON object with
# events_per_s > 0, errors 0 and p50_us <= p99_us <= max_us; an open loop at --rate 1000
# for 1 s schedules about 1000 requests (900 to 1100), each acknowledged or counted as
# unsent (a loaded machine may not keep up: the schedule, not the server's speed, is what
# is checked); the server stops on SIGTERM.
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

serve_stop 15
check "rill serve exits 0 on SIGTERM" '[ "$serve_rc" = 0 ]'
exit $fail
