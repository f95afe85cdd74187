#!/usr/bin/env bash
# A subscriber whose server's host vanishes: no FIN, no RST, nothing more ever comes back.
# `rill serve` runs in a network namespace of its own, reached over a veth pair; `rill
# consume --keepalive 1` follows a topic from here and prints its event. Then the server's
# end of the link goes down and the server is killed (its FIN goes nowhere): consume must
# end with status 1 and a message within a few seconds (its probes, 1 s apart, go
# unanswered), where it used to wait for good, silent. Needs root and `ip`; exit 77
# (skipped, with the reason) where a namespace or a veth pair cannot be made, or where the
# server cannot run on this kernel.
# usage: test_host_lost.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"

ns=rillhl$$
veth_here=rhl$$a
veth_there=rhl$$b
addr_here=10.79.0.1
addr_there=10.79.0.2
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

# The server, in the namespace: `ip netns exec` runs it in place, so $! is its pid.
ip netns exec "$ns" "$rill" serve --data "$tmp/data" --listen "$addr_there:0" --shards 1 \
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

# The host goes: its link first, so that not even the killed server's FIN gets out.
ip -n "$ns" link set "$veth_there" down
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=
start=$(date +%s%N)
for _ in $(seq 200); do kill -0 "$consumer_pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$consumer_pid" 2>/dev/null; then
	rc=running
else
	wait "$consumer_pid"
	rc=$?
	consumer_pid=
fi
waited_ms=$((($(date +%s%N) - start) / 1000000))
echo "consume: status $rc after $waited_ms ms; stderr: $(cat "$tmp/err")"
check "consume ends within 10 s of the host's going, with status 1" '[ "$rc" = 1 ]'
check "and says the server stopped answering, naming it" \
	'grep -q "rill: consume: $addr: .*has not answered for 4.000 s" "$tmp/err"'
exit $fail
