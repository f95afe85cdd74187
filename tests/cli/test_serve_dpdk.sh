#!/usr/bin/env bash
# `rill serve --dpdk` end to end, with no NIC: DPDK's net_null device (a poll-mode driver
# that hands out empty frames as fast as it is polled) on port 0, no hugepages, no PCI.
# The server starts with one RX queue per shard and says so; `rill stat` carries the
# ingress's counters under "dpdk" (frames received, every one of them "not ours": no
# IPv4/UDP to our port, so no event); SIGTERM stops it with exit 0. The same from a config
# file's [dpdk] section (with queues = 1 of 2 shards); an idle device (an empty pcap
# file) polled with and without idle_nap_us; and a one-second `rill bench dpdk` prints its
# figures for both paths. Skipped (77) where the
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
# An idle device (a pcap file with no packets): with idle_nap_us the polling shard sleeps
# between polls, so it counts sleeps and leaves the CPU alone; without, it never sleeps.
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00' \
	>"$tmp/empty.pcap" # a pcap file header (Ethernet) and no packet
shard_sleeps() {
	timeout 10 "$rill" stat --connect "$serve_addr" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["shards"][0]["sleeps"])'
}
cpu_ticks() { awk '{ print $14 + $15 }' /proc/"$serve_pid"/stat; } # user + system
for nap in 0 1000; do
	idle_eal="--no-huge -m 256 --no-pci --vdev=net_pcap0,rx_pcap=$tmp/empty.pcap,tx_pcap=$tmp/out-$nap.pcap --file-prefix=rill-test-$$-nap$nap"
	printf '[engine]\nshards = 1\n[dpdk]\neal = %s\nidle_nap_us = %s\n' "$idle_eal" "$nap" \
		>"$tmp/nap.ini"
	if ! serve_start "$tmp/data-nap$nap" "$tmp/serve-nap.log" --config "$tmp/nap.ini"; then
		if grep -q "^EAL: .*net_pcap0" "$tmp/serve-nap.log"; then # no such driver here
			echo "note: no net_pcap device here; the idle_nap_us runs are not checked"
			break
		fi
		check "an idle pcap device (idle_nap_us = $nap) starts" 'false'
		cat "$tmp/serve-nap.log"
		continue
	fi
	s0=$(shard_sleeps) t0=$(cpu_ticks)
	sleep 2
	s1=$(shard_sleeps) t1=$(cpu_ticks)
	echo "idle_nap_us = $nap: $((s1 - s0)) sleeps and $((t1 - t0)) CPU ticks of $(getconf CLK_TCK)/s in 2 s"
	if [ "$nap" = 0 ]; then
		check "idle_nap_us = 0: the polling shard never sleeps" '[ -n "$s0" ] && [ "$s1" = "$s0" ]'
	else
		check "idle_nap_us = $nap: the idle shard sleeps between polls" '[ $((s1 - s0)) -ge 100 ]'
		check "... and takes under half a CPU" '[ $((t1 - t0)) -lt "$(getconf CLK_TCK)" ]'
	fi
	serve_stop 15
	check "and it exits 0 on SIGTERM" '[ "$serve_rc" = 0 ]'
done

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
	'json_check "$out" "all(j[p][\"events_per_s\"] > 0 and j[p][\"max_ns\"] >= j[p][\"p9999_ns\"] >= j[p][\"p999_ns\"] >= j[p][\"p50_ns\"] > 0 and j[p][\"shard_preempted\"] >= 0 and 0 < j[p][\"half_events\"] <= j[p][\"half_sent_events\"] for p in (\"dpdk\", \"kernel\")) and j[\"dpdk_over_kernel\"] > 0 and j[\"poll\"] == \"busy\" and j[\"seconds\"] == 1 and all(j[p][\"half_sent_rate\"] > 0 for p in (\"dpdk\", \"kernel\"))"'
# Datagrams past one MTU frame: refused with the reason (they crashed the sender once).
out=$(timeout 60 "$rill" bench dpdk --seconds 1 --batch 64 --json 2>"$tmp/bench-big.err"); rc=$?
check "bench dpdk refuses datagrams past one frame (exit 1, no figures)" '[ $rc -eq 1 ] && [ -z "$out" ]'
check "bench dpdk says why" 'grep -q "1500-byte MTU" "$tmp/bench-big.err"'
exit $fail
