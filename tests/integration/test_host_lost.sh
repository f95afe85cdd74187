#!/usr/bin/env bash
# A subscriber whose server's host vanishes: no FIN, no RST, nothing more ever comes back.
# `rill serve` runs in a network namespace of its own, reached over a veth pair; `rill
# consume --keepalive 1` follows a topic from here and prints its event. Then the server's
# end of the link goes down and the server is killed (its FIN goes nowhere): consume must
# end with status 1 and a message within a few seconds (its probes, 1 s apart, go
# unanswered), where it used to wait for good, silent.
# The same with --group, every partition of four printed and none committed yet when the
# host goes: consume ends within seconds, with SIGTERM too, where its commits (a ping, a
# new connection and a commit for each partition, each waiting out its deadline) used to
# hold it for minutes, deaf to the signal. Needs root and `ip`; exit 77
# (skipped, with the reason) where a namespace or a veth pair cannot be made, or where the
# server cannot run on this kernel.
# usage: test_host_lost.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"

ns=rillhl$$
veth_here=rhl$$a
veth_there=rhl$$b
# A /30 of 10.79.0.0/16 chosen by the pid: two runs at once (two build trees' suites on one
# machine) each route their own; with one subnet, one's routes took the other's packets.
subnet=$((($$ % 16384) * 4))
addr_here=10.79.$((subnet / 256)).$((subnet % 256 + 1))
addr_there=10.79.$((subnet / 256)).$((subnet % 256 + 2))
server_pid=
consumer_pid=
at_exit 'ip netns del "$ns" 2>/dev/null; ip link del "$veth_here" 2>/dev/null'
at_exit '[ -n "$consumer_pid" ] && kill -KILL "$consumer_pid" 2>/dev/null'
at_exit '[ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null'

skip() {
	echo "SKIP: $1"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "a network namespace and a veth pair need root"
command -v ip >/dev/null || skip "no ip command (iproute2)"
ip netns add "$ns" 2>/dev/null || skip "ip netns add failed"
ip link add "$veth_here" type veth peer name "$veth_there" netns "$ns" 2>/dev/null ||
	skip "ip link add ... type veth failed"
ip addr add "$addr_here/30" dev "$veth_here" &&
	ip link set "$veth_here" up &&
	ip -n "$ns" link set lo up &&
	ip -n "$ns" addr add "$addr_there/30" dev "$veth_there" &&
	ip -n "$ns" link set "$veth_there" up || skip "configuring the veth pair failed"

# The server, in the namespace, on data directory $1: `ip netns exec` runs it in place, so
# $! is its pid. Sets server_pid and addr; exits 77 or 1 when it does not start.
server_start() {
	# The link back up after a loss, with no neighbour left unresolved from it (EHOSTUNREACH).
	ip -n "$ns" link set "$veth_there" up
	ip neigh flush dev "$veth_here"
	ip -n "$ns" neigh flush dev "$veth_there"
	: >"$tmp/serve.log"
	ip netns exec "$ns" "$rill" serve --data "$1" --listen "$addr_there:0" --shards 1 \
		2>"$tmp/serve.log" &
	server_pid=$!
	addr=
	for _ in $(seq 400); do
		addr=$(grep -m1 -o "listening on $addr_there:[0-9][0-9]*$" "$tmp/serve.log")
		[ -n "$addr" ] && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.05
	done
	addr=${addr#listening on }
	if [ -z "$addr" ]; then
		grep -q -e "io_uring_queue_init: " -e "io_uring_register_buf_ring: " "$tmp/serve.log" &&
			skip "rill serve cannot run on this kernel: $(cat "$tmp/serve.log")"
		echo "FAIL: the server did not start:"
		cat "$tmp/serve.log"
		exit 1
	fi
}

# The host goes: its link first, so that not even the killed server's FIN gets out.
host_lost() {
	ip -n "$ns" link set "$veth_there" down
	kill -KILL "$server_pid"
	wait "$server_pid" 2>/dev/null
	server_pid=
}

# Wait up to $1 seconds for the consumer to end; sets rc (its status, or "running", when it
# is then killed) and waited_ms, from $start (date +%s%N).
consumer_wait() {
	for _ in $(seq $(($1 * 20))); do kill -0 "$consumer_pid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$consumer_pid" 2>/dev/null; then
		rc=running
		kill -KILL "$consumer_pid"
		wait "$consumer_pid" 2>/dev/null
	else
		wait "$consumer_pid"
		rc=$?
	fi
	consumer_pid=
	waited_ms=$((($(date +%s%N) - start) / 1000000))
}

server_start "$tmp/data"
c="--connect $addr"

echo '{"type":"Tick","version":1,"fields":[{"name":"n","type":"i64"}]}' >"$tmp/tick.json"
timeout 20 "$rill" topic create $c --name ticks --partitions 1 --schema "$tmp/tick.json" \
	>/dev/null
check "a topic made across the veth pair" '[ $? -eq 0 ]'
echo '{"key":"a","type":"Tick","data":{"n":1}}' |
	timeout 20 "$rill" produce $c --topic ticks --acks durable >/dev/null
check "an event produced" '[ $? -eq 0 ]'

"$rill" consume $c --topic ticks --keepalive 1 >"$tmp/out" 2>"$tmp/err" &
consumer_pid=$!
for _ in $(seq 200); do [ -s "$tmp/out" ] && break; sleep 0.05; done
check "consume prints the event" '[ "$(wc -l <"$tmp/out")" -eq 1 ]'

host_lost
start=$(date +%s%N)
consumer_wait 10
echo "consume: status $rc after $waited_ms ms; stderr: $(cat "$tmp/err")"
check "consume ends within 10 s of the host's going, with status 1" '[ "$rc" = 1 ]'
check "and says the server stopped answering, naming it" \
	'grep -q "rill: consume: $addr: .*has not answered for 4.000 s" "$tmp/err"'

# --group, four partitions, every one printed from and none committed when the host goes
# ($1: the name of the case; $2: seconds after the loss to send SIGTERM, "" for none; the
# rest: consume's options). consume's stdout is line-buffered (stdbuf), so that the test
# sees the events as they are printed and cuts the link at once, before the commit a
# second; a commit may still get in first, leaving nothing to commit: such a round does
# not count and is run again (up to 3 times). Sets rc, waited_ms, printed, parts (the
# partitions printed from) and committed (whether the group has a commit).
group_case() {
	local name=$1 term=$2 round data
	shift 2
	for round in 1 2 3; do
		data="$tmp/data-$name-$round"
		server_start "$data"
		c="--connect $addr"
		timeout 20 "$rill" topic create $c --name four --partitions 4 \
			--schema "$tmp/tick.json" >/dev/null || echo "FAIL: topic create ($name)"
		stdbuf -oL "$rill" consume $c --topic four --group gv "$@" >"$tmp/g.out" \
			2>"$tmp/g.err" &
		consumer_pid=$!
		sleep 0.5 # connected and subscribed
		for i in $(seq 40); do echo "{\"key\":\"k$i\",\"type\":\"Tick\",\"data\":{\"n\":$i}}"; done |
			timeout 20 "$rill" produce $c --topic four --acks durable >/dev/null
		for _ in $(seq 500); do [ "$(wc -l <"$tmp/g.out")" -ge 40 ] && break; sleep 0.01; done
		host_lost
		start=$(date +%s%N)
		if [ -n "$term" ]; then
			sleep "$term"
			kill -TERM "$consumer_pid"
		fi
		consumer_wait 30
		printed=$(wc -l <"$tmp/g.out")
		parts=$(grep -o '"partition":[0-9]*' "$tmp/g.out" | sort -u | wc -l)
		echo "$name, round $round: consume status $rc after $waited_ms ms, $printed events printed from $parts partitions; stderr:"
		sed 's/^/  /' "$tmp/g.err"
		committed=0
		[ -e "$data/groups/gv.json" ] || return 0
		committed=1
		echo "  a commit got in before the cut: $(tr -d ' \n' <"$data/groups/gv.json"); again"
	done
}

group_case keepalive "" --keepalive 1
check "--group --keepalive 1: 40 events printed from 4 partitions, none committed" \
	'[ "$printed" -eq 40 ] && [ "$parts" -eq 4 ] && [ "$committed" = 0 ]'
check "--group --keepalive 1: consume ends with status 1 within 20 s of the host's going" \
	'[ "$rc" = 1 ] && [ "$waited_ms" -lt 20000 ]'
# One request carries every partition's commit: its failure names them all.
check "and the failed commit names the group and the partitions" \
	'grep -q "group .gv. partitions 0-3: the commit of 4 offsets failed" "$tmp/g.err"'

group_case sigterm 1
check "--group, default keepalive: 40 events printed from 4 partitions, none committed" \
	'[ "$printed" -eq 40 ] && [ "$parts" -eq 4 ] && [ "$committed" = 0 ]'
check "--group, SIGTERM 1 s after the host went: status 1 (not committed) within 20 s" \
	'[ "$rc" = 1 ] && [ "$waited_ms" -lt 20000 ]'
exit $fail
