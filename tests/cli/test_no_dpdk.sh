#!/usr/bin/env bash
# A rill built without DPDK (-Ddpdk=disabled, or no libdpdk-dev) says so wherever DPDK is
# asked for, exits 1 and starts nothing: `rill serve --dpdk`, a config file's [dpdk] eal,
# `rill bench dpdk`. Without DPDK asked for, it serves as usual. Registered only in such
# builds (scripts/test.sh makes one).
# usage: test_no_dpdk.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"

eal="--no-huge -m 256 --no-pci --vdev=net_null0"
timeout 30 "$rill" serve --data "$tmp/data1" --listen 127.0.0.1:0 --dpdk "$eal" \
	>"$tmp/serve1.out" 2>"$tmp/serve1.err"
rc=$?
check "serve --dpdk exits 1" '[ $rc -eq 1 ]'
check "serve --dpdk says rill was built without DPDK" \
	'grep -q "built without DPDK" "$tmp/serve1.err"'
check "serve --dpdk never listened" '! grep -q "listening on" "$tmp/serve1.err"'

printf '[dpdk]\neal = %s\nport = 0\n' "$eal" >"$tmp/rill.ini"
timeout 30 "$rill" serve --config "$tmp/rill.ini" --data "$tmp/data2" --listen 127.0.0.1:0 \
	>"$tmp/serve2.out" 2>"$tmp/serve2.err"
rc=$?
check "serve with [dpdk] eal in its config file exits 1" '[ $rc -eq 1 ]'
check "... and says rill was built without DPDK" \
	'grep -q "built without DPDK" "$tmp/serve2.err"'

timeout 30 "$rill" bench dpdk --seconds 1 --json >"$tmp/bench.out" 2>"$tmp/bench.err"
rc=$?
check "bench dpdk exits 1" '[ $rc -eq 1 ]'
check "bench dpdk says rill was built without DPDK" 'grep -q "built without DPDK" "$tmp/bench.err"'
check "bench dpdk prints no figures" '[ ! -s "$tmp/bench.out" ]'

if serve_start "$tmp/data3" "$tmp/serve3.log" --shards 2; then
	out=$(timeout 10 "$rill" stat --connect "$serve_addr")
	check "without --dpdk it serves, with no DPDK counters in stat" \
		'json_check "$out" "len(j[\"shards\"]) == 2 and \"dpdk\" not in j"'
	serve_stop 15
else
	echo "FAIL: rill serve did not start: $(cat "$tmp/serve3.log")"
	fail=1
fi
exit $fail
