#!/usr/bin/env bash
# `rill serve --dpdk` end to end, with no NIC: DPDK's net_null device (a poll-mode driver
# that hands out empty frames as fast as it is polled) on port 0, no hugepages, no PCI.
# The server starts with one RX queue per shard and says so; `rill stat` carries the
# ingress's counters under "dpdk" (frames received, every one of them "not ours": no
# IPv4/UDP to our port, so no event); SIGTERM stops it with exit 0. The same from a config
# file's [dpdk] section; and a one-second `rill bench dpdk` prints its figures for both
# paths. Skipped (77) where the
# EAL cannot start (no /dev/shm, a DPDK without net_null), or when rill was built without
# DPDK.
# usage: test_serve_dpdk.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"

eal="--no-huge -m 256 --no-pci --vdev=net_null0 --file-prefix=rill-test-$$"
if ! serve_start "$tmp/data" "$tmp/serve.log" --shards 2 --dpdk "$eal" --dpdk-port 0; then
	if serve_unsupported "$tmp/serve.log" || grep -q "without DPDK\|EAL" "$tmp/serve.log"; then
		echo "SKIP: rill serve --dpdk cannot run here: $(tail -3 "$tmp/serve.log")"
		exit 77
	fi
	echo "FAIL: rill serve --dpdk did not start: $(cat "$tmp/serve.log")"
	exit 1
fi
check "serve reports its DPDK port and queues" \
	'grep -q "DPDK port 0: 2 RX queues" "$tmp/serve.log"'

# The device floods from the first poll: wait (bounded) for the counters to move.
out=
for _ in $(seq 100); do
	out=$(timeout 10 "$rill" stat --connect "$serve_addr")
	json_check "$out" 'j.get("dpdk", {}).get("packets", 0) > 0' 2>/dev/null && break
	sleep 0.1
done
echo "stat: ${out:0:400}"
check "stat carries the DPDK counters: frames received, all of them not ours" \
	'json_check "$out" "j[\"dpdk\"][\"queues\"] == 2 and j[\"dpdk\"][\"packets\"] > 0 and j[\"dpdk\"][\"not_ours\"] == j[\"dpdk\"][\"packets\"] and j[\"dpdk\"][\"events\"] == 0"'
check "stat lists no UDP source, and so no worst one" \
	'json_check "$out" "j[\"dpdk\"][\"sources\"] == 0 and j[\"dpdk\"][\"worst_sources\"] == []"'
check "no event reached a shard" \
	'json_check "$out" "sum(s[\"events\"] for s in j[\"shards\"]) == 0"'

serve_stop 15
check "rill serve --dpdk exits 0 on SIGTERM" '[ "$serve_rc" = 0 ]'

# The same from the config file's [dpdk] section: two shards, one RX queue (queues = 1).
printf '[engine]\nshards = 2\n[dpdk]\neal = %s\nport = 0\nqueues = 1\n' "$eal" >"$tmp/dpdk.ini"
if serve_start "$tmp/data-ini" "$tmp/serve-ini.log" --config "$tmp/dpdk.ini"; then
	check "[dpdk] in the config file starts the ingress, with queues = 1 of 2 shards" \
		'grep -q "DPDK port 0: 1 RX queues" "$tmp/serve-ini.log"'
	out=$(timeout 10 "$rill" stat --connect "$serve_addr")
	check "stat says 1 queue" 'json_check "$out" "j[\"dpdk\"][\"queues\"] == 1"'
	serve_stop 15
	check "and it exits 0 on SIGTERM" '[ "$serve_rc" = 0 ]'
else
	check "[dpdk] in the config file starts the server" 'false'
	cat "$tmp/serve-ini.log"
fi
# More queues than shards: refused at start, saying so.
printf '[engine]\nshards = 2\n[dpdk]\neal = %s-q\nqueues = 3\n' "$eal" >"$tmp/dpdk3.ini"
timeout 60 "$rill" serve --config "$tmp/dpdk3.ini" --data "$tmp/data-q3" --listen 127.0.0.1:0 \
	2>"$tmp/serve-q3.log"
rc=$?
check "queues = 3 with 2 shards exits 1 saying why" \
	'[ $rc -eq 1 ] && grep -q "queues: 3 for 2 shard(s)" "$tmp/serve-q3.log"'

# rill bench dpdk, briefly: both paths move events and the JSON has every figure.
out=$(timeout 60 "$rill" bench dpdk --seconds 1 --json 2>"$tmp/bench.err"); rc=$?
check "bench dpdk exits 0" '[ $rc -eq 0 ]'
check "bench dpdk reports both paths and their ratio" \
	'json_check "$out" "all(j[p][\"events_per_s\"] > 0 and j[p][\"p999_ns\"] >= j[p][\"p50_ns\"] > 0 for p in (\"dpdk\", \"kernel\")) and j[\"dpdk_over_kernel\"] > 0"'
exit $fail
