#!/usr/bin/env bash
# `rill serve` and the open-file limit (RLIMIT_NOFILE), which its connections share with
# the engine's files. Each server here runs under a limit of its own (`ulimit -n` in a
# wrapper, hard and soft alike). A limit too small for connections_max and the reserve
# for the engine's files refuses the start, naming the numbers and what to do, the config
# file's line too, and before a data directory is made; the subscribers' readers (one
# for each subscription the shards may hold) count; before the engine opens, its files
# are reckoned from the data directory, so that the connections_max suggested then
# starts; past connections_max a client is told so, and the log says it; a soft limit
# below the hard one is raised to it. Then a server that fits its
# limit at start keeps to it while it runs: a topic whose partitions' files (three each)
# would take the descriptors promised to connections is refused, naming the numbers and
# what to do, and nothing is made; the partitions that fit are made. (Before, a topic of
# 100 partitions was made: most connections were then refused, and a restart under the
# same limit refused to start.) It is flooded with idle connections: those past
# connections_max are refused, and 3,000 events into 64 KiB segments (rolls, each a new
# file) go on: no partition stops. (Before, the connections took every descriptor, the
# next roll failed with EMFILE and its partition stopped until a restart.) Then
# connections_max connections are all kept, and a restart with the same data, config and
# limit starts and keeps them too. Last, a soft limit lowered under a running server (prlimit):
# new connections that would take the last free descriptors, in holes far below the new
# limit, are refused, and the rolls go on (before, they were taken: EMFILE on the rolls).
# usage: test_serve_fds.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"
at_exit serve_cleanup
real_rill=$rill
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 1024 ]; then
	echo "SKIP: the hard open-file limit is $hard: too low for this test's servers"
	exit 77
fi

# A wrapper that runs rill under `ulimit $1 $2` (-n: soft and hard; -Sn: soft alone).
limited() { # ULIMIT_FLAGS LIMIT
	printf '#!/usr/bin/env bash\nulimit %s %s || exit 99\nexec "%s" "$@"\n' "$1" "$2" "$real_rill" >"$tmp/rill-limited"
	chmod +x "$tmp/rill-limited"
	echo "$tmp/rill-limited"
}

# Connections held by a helper that takes commands on descriptor 4 through the FIFO
# $tmp/NAME.ctl: "open N", "close N" (the oldest N), each answered in $tmp/NAME.out by a
# line with the number it holds (nothing sent on them: no HELLO). Closing descriptor 4
# ends it, and its connections with it. Its pid in $holder.
holder_start() { # NAME
	holder_out=$tmp/$1.out
	mkfifo "$tmp/$1.ctl"
	: >"$holder_out"
	python3 -c '
import socket, sys
socks = []
for line in sys.stdin:
    verb, n = line.split()
    if verb == "open":
        for _ in range(int(n)):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect((sys.argv[1], int(sys.argv[2])))
            except OSError:
                break
            socks.append(s)
    else:
        for s in socks[:int(n)]:
            s.close()
        del socks[:int(n)]
    print(len(socks), flush=True)
' "${serve_addr%:*}" "${serve_addr##*:}" <"$tmp/$1.ctl" >"$holder_out" 3>&- &
	holder=$!
	exec 4>"$tmp/$1.ctl"
}
conns_cmd() { # COMMAND: sent to the holder, then its answer awaited
	local lines
	lines=$(wc -l <"$holder_out")
	echo "$1" >&4
	for _ in $(seq 500); do [ "$(wc -l <"$holder_out")" -gt "$lines" ] && break; sleep 0.02; done
}
at_exit 'kill -KILL $holder 2>/dev/null'

# `rill produce` of topic t at $c in the background ($producer), fed on descriptor 3
# through the FIFO $tmp/NAME.in (output NAME.out, errors NAME.err): its first event sent,
# and its acknowledgement waited for (up to 5 s; the caller checks NAME.out).
producer_start() { # NAME
	mkfifo "$tmp/$1.in"
	"$rill" produce $c --topic t --acks applied <"$tmp/$1.in" >"$tmp/$1.out" 2>"$tmp/$1.err" &
	producer=$!
	exec 3>"$tmp/$1.in"
	echo '{"key":"first","type":"Tick","data":{"n":0,"pad":"x"}}' >&3
	for _ in $(seq 250); do [ -s "$tmp/$1.out" ] && break; sleep 0.02; done
}

# The server's descriptors once the same for half a second.
serve_fds_settled() {
	local last=-1 same=0 now
	for _ in $(seq 250); do
		now=$(ls "/proc/$serve_pid/fd" | wc -l)
		if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; fi
		[ "$same" -ge 25 ] && break
		last=$now
		sleep 0.02
	done
	echo "$last"
}

# Refusals: the default connections_max (1024) under a limit of 640.
err=$(timeout 10 "$(limited -n 640)" serve --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
echo "$err"
check "connections_max 1024 under a limit of 640 exits 1 naming both and what to do" \
	'[ $rc -eq 1 ] && [[ "$err" == *"640"* ]] && [[ "$err" == *"connections_max 1024"* ]] && [[ "$err" == *"LimitNOFILE="* ]] && [[ "$err" == *"ulimit -n"* ]]'
printf '[server]\nidle_timeout_s = 60\nconnections_max = 500\n' >"$tmp/conns500.ini"
err=$(timeout 10 "$(limited -n 640)" serve --config "$tmp/conns500.ini" --data "$tmp/data-none" --listen 127.0.0.1:0 2>&1); rc=$?
check "connections_max 500 from the file under 640 exits 1 naming the file's line" \
	'[ $rc -eq 1 ] && [[ "$err" == *"connections_max 500"* ]] && [[ "$err" == *"conns500.ini line 3"* ]]'
check "no refusal made a data directory" '[ ! -e "$tmp/data-none" ]'

# Subscribers' readers: each subscribed partition holds its segment open, up to
# subscriptions_per_shard on each shard (64 by default: 128 for two shards). 300
# connections, the ~20 files of an empty two-shard engine and the reserve fit in 640;
# with the 128 readers they do not: refused, naming them. (Before, they were not counted.)
printf '[server]\nconnections_max = 300\n' >"$tmp/conns300.ini"
err=$(timeout 10 "$(limited -n 640)" serve --config "$tmp/conns300.ini" --data "$tmp/data-subs" --shards 2 --listen 127.0.0.1:0 2>&1); rc=$?
echo "$err"
check "connections_max 300 and 2 x 64 subscriptions under 640 exits 1 naming the readers" \
	'[ $rc -eq 1 ] && [[ "$err" == *"connections_max 300"* ]] && [[ "$err" == *"subscriptions_per_shard 64"* ]] && [[ "$err" == *"128"* ]] && [[ "$err" != *"listening on"* ]]'
printf '[engine]\nsubscriptions_per_shard = 8\n[server]\nconnections_max = 300\n' >"$tmp/conns300-subs8.ini"
rill=$(limited -n 640)
serve_start_or_skip "$tmp/data-subs" "$tmp/serve.log" --config "$tmp/conns300-subs8.ini" --shards 2
rill=$real_rill
check "with 2 x 8 subscriptions the same fits and starts" '[ -n "$serve_addr" ]'
serve_stop

# Before the engine opens, its files are not open to be counted: the check then reckons
# them from the data directory (three for each partition stored, the shards' and the
# server's), so that the connections_max it suggests is one that the check after the open
# takes. A data directory with a topic of 32 partitions, under 600: the default 1024 is
# refused; the number suggested then starts. (Before, the first check suggested a number
# ~100 too high, refused after the engine's open and recovery.)
serve_start_or_skip "$tmp/data-32" "$tmp/serve.log" --shards 2
"$rill" topic create --connect "$serve_addr" --name wide --partitions 32 >/dev/null
check "a data directory with a topic of 32 partitions" '[ $? -eq 0 ]'
serve_stop
err=$(timeout 30 "$(limited -n 600)" serve --data "$tmp/data-32" --shards 2 --listen 127.0.0.1:0 2>&1); rc=$?
echo "$err"
check "connections_max 1024 under 600 with 32 partitions stored exits 1" '[ $rc -eq 1 ]'
fit=$(grep -o 'lower connections_max to [0-9]*' <<<"$err" | grep -o '[0-9]*$')
if [ -n "$fit" ]; then
	printf '[server]\nconnections_max = %s\n' "$fit" >"$tmp/conns-fit.ini"
	rill=$(limited -n 600)
	serve_start "$tmp/data-32" "$tmp/serve.log" --config "$tmp/conns-fit.ini" --shards 2
	rill=$real_rill
	check "the connections_max it suggested ($fit) starts under 600" '[ -n "$serve_addr" ]'
	[ -n "$serve_addr" ] && serve_stop
else
	check "no connections_max suggested without the engine's files counted" \
		'[[ "$err" == *"not counted"* ]]'
fi

# connections_max reached: the next client is told why (a fatal ERROR before the close,
# which `rill ping` prints) and the server says so on stderr, rather than a bare
# "Connection reset by peer" and nothing in the log. One shard: one worker, whose accepts
# come in order, so the held three are in before the ping.
printf '[server]\nconnections_max = 3\nhandshake_timeout_s = 60\n' >"$tmp/conns3.ini"
serve_start_or_skip "$tmp/data-3" "$tmp/serve.log" --config "$tmp/conns3.ini" --shards 1
holder_start held
conns_cmd "open 3"
err=$("$rill" ping --connect "$serve_addr" 2>&1); rc=$?
check "past connections_max 3, ping exits 1 naming connections_max and 3 ($err)" \
	'[ $rc -eq 1 ] && [[ "$err" == *"connections_max = 3"* ]] && [[ "$err" != *"reset by peer"* ]]'
check "the server says on stderr that it refused past connections_max" \
	'grep -q "a connection refused: connections_max = 3" "$tmp/serve.log"'
exec 4>&-
wait "$holder"
"$rill" ping --connect "$serve_addr" >/dev/null; rc=$?
check "once the held connections close, ping answers" '[ $rc -eq 0 ]'
serve_stop

# A soft limit below the hard one is raised to the hard one.
if [ "$hard" != unlimited ] && [ "$hard" -ge 2048 ]; then
	rill=$(limited -Sn 512)
	serve_start_or_skip "$tmp/data-raise" "$tmp/serve.log" --shards 1
	rill=$real_rill
	soft_now=$(awk '/^Max open files/ { print $4 }' "/proc/$serve_pid/limits")
	check "a soft limit of 512 is raised to the hard one, $hard (now $soft_now)" '[ "$soft_now" = "$hard" ]'
	serve_stop
else
	echo "note: hard limit $hard: too low to see the soft one raised; not checked"
fi

# Topics made while it runs, then the flood. 640 descriptors: 320 connections, the ~20
# files of an empty two-shard engine, 16 subscribers' readers (2 x 8) and the 256 kept
# for the engine fit at start, with ~28 to spare: room for a few partitions, three files
# each, held for good. A topic made over the server must fit there: one of 100 partitions
# is refused, naming the limit, the numbers and what to do, and nothing is made; as many
# as the refusal says fit are made; one more is refused. (Before, the 100 were made: their
# ~300 files took the descriptors the start promised to connections, most of which were
# then refused, and a restart under the same limit refused to start.)
printf '[engine]\nsubscriptions_per_shard = 8\n[server]\nconnections_max = 320\nhandshake_timeout_s = 60\n' >"$tmp/conns320.ini"
rill=$(limited -n 640)
serve_start_or_skip "$tmp/data" "$tmp/serve.log" --config "$tmp/conns320.ini" --shards 2
rill=$real_rill
c="--connect $serve_addr"
echo '{"type":"Tick","version":1,"fields":[{"name":"n","type":"u64"},{"name":"pad","type":"string","max_length":128}]}' >"$tmp/tick.json"
"$rill" topic create $c --name t --partitions 1 --durability group --segment-bytes 65536 --schema "$tmp/tick.json" >/dev/null
check "a topic of 64 KiB segments" '[ $? -eq 0 ]'
err=$("$rill" topic create $c --name wide --partitions 100 2>&1); rc=$?
echo "$err"
check "a topic of 100 partitions is refused: its 300 files do not fit beside 320 connections under 640" \
	'[ $rc -ne 0 ] && [[ "$err" == *"RLIMIT_NOFILE"* ]] && [[ "$err" == *"640"* ]] && [[ "$err" == *"connections_max 320"* ]] && [[ "$err" == *"LimitNOFILE="* ]] && [[ "$err" == *"ulimit -n"* ]] && [[ "$err" == *"subscriptions_per_shard"* ]]'
check "nothing of it was made" '[ ! -e "$tmp/data/topics/wide" ] && ! "$rill" topic info $c --name wide >/dev/null 2>&1'
fit=$(grep -o '[0-9]* more partitions fit' <<<"$err" | grep -o '^[0-9]*')
echo "partitions that fit, as the refusal says: ${fit:-none said}"
check "the refusal says how many partitions fit: some" '[ -n "$fit" ] && [ "$fit" -ge 1 ]'
[ -n "$fit" ] && [ "$fit" -ge 1 ] && "$rill" topic create $c --name few --partitions "$fit" >/dev/null
check "a topic of as many ($fit) is made" '[ $? -eq 0 ]'
"$rill" topic create $c --name few --partitions "$fit" >/dev/null
check "made again, the same: a no-op, not refused" '[ $? -eq 0 ]'
err=$("$rill" topic create $c --name one --partitions 1 2>&1); rc=$?
check "then one partition more is refused" '[ $rc -ne 0 ] && [[ "$err" == *"RLIMIT_NOFILE"* ]]'
echo "the server's descriptors before the flood: $(ls "/proc/$serve_pid/fd" | wc -l)"

# The producer connects first (it would find no descriptor after the flood, before).
at_exit 'kill -KILL $producer 2>/dev/null'
producer_start produce
check "the producer is connected: its first event acknowledged" '[ -s "$tmp/produce.out" ]'

# 400 idle connections, held until told (nothing sent: no HELLO, within its timeout).
holder_start flood
conns_cmd "open 400"
echo "idle connections made: $(tail -1 "$tmp/flood.out")"
# Until the server has taken what it will.
last=$(serve_fds_settled)
echo "the server's descriptors after the flood: $last of 640"
check "the server keeps descriptors for its engine: at most 640 - 256 open" '[ "$last" -le 384 ]'

pad=$(printf 'p%.0s' $(seq 40))
for i in $(seq 1 3000); do
	echo "{\"key\":\"k$((i % 5))\",\"type\":\"Tick\",\"data\":{\"n\":$i,\"pad\":\"$pad\"}}"
done >&3
exec 3>&-
for _ in $(seq 1500); do serve_alive "$producer" || break; sleep 0.02; done
serve_alive "$producer" && { echo "the producer is still waiting after 30 s, $(grep -c '"offset"' "$tmp/produce.out") events acknowledged: killed"; kill -KILL "$producer"; }
wait "$producer"; rc=$?
check "3,000 events past several segment rolls, all acknowledged" \
	'[ $rc -eq 0 ] && [ "$(grep -c "\"offset\"" "$tmp/produce.out")" -eq 3001 ]'
[ -s "$tmp/produce.err" ] && head -3 "$tmp/produce.err"
segments=$(ls "$tmp/data/topics/t/0/"*.log | wc -l)
# A roll is what the flood used to break (EMFILE: the partition stopped; with the roll
# undone and retried, one segment that only grows). How many there are follows the batches
# the shard happened to make (a batch may fill past a 64 KiB segment): 2 or more.
check "the partition rolled its segment, under the flood ($segments segments)" '[ "$segments" -ge 2 ]'
! grep -q "Too many open files" "$tmp/serve.log"
check "no roll met EMFILE under the flood" '[ $? -eq 0 ]'
exec 4>&- # the holder ends, closing them
wait "$holder"
out=$("$rill" stat $c); rc=$?
check "no partition stopped" '[ $rc -eq 0 ] && json_check "$out" "sum(s[\"partitions_stopped\"] for s in j[\"shards\"]) == 0"'
check "the idle connections past connections_max were refused, counted" \
	'json_check "$out" "j[\"server\"][\"refused\"] > 0"'
! grep -q "the log is stopped" "$tmp/serve.log"
check "no log stopped" '[ $? -eq 0 ]'

# connections_max connections, every one kept: 319 idle ones and `rill stat`'s, which
# counts them. (Before, with the 100 partitions' files open, ~60 were.)
holder_conns() { # NAME: 319 idle connections held, then STAT's connection count echoed
	holder_start "$1"
	conns_cmd "open 319"
	serve_fds_settled >/dev/null
	"$rill" stat $c | python3 -c 'import json, sys; print(json.load(sys.stdin)["server"]["connections"])'
	exec 4>&-
	wait "$holder"
}
kept=$(holder_conns full)
echo "connections open with 319 idle ones and stat's: ${kept:-none}"
check "connections_max (320) connections are all kept beside the topics made" '[ "$kept" = 320 ]'
serve_stop
check "the server stops cleanly" '[ "$serve_rc" = 0 ]'

# The same data directory, config and limit again: what the server made while it ran, a
# restart takes (before, it refused: the files no longer left room for connections_max).
rill=$(limited -n 640)
serve_start "$tmp/data" "$tmp/serve.log" --config "$tmp/conns320.ini" --shards 2
rill=$real_rill
check "restarted under the same limit with the topics made, it starts" '[ -n "$serve_addr" ]'
if [ -n "$serve_addr" ]; then
	c="--connect $serve_addr"
	err=$("$rill" topic create $c --name one --partitions 1 2>&1); rc=$?
	check "restarted: one partition more is refused still" '[ $rc -ne 0 ] && [[ "$err" == *"RLIMIT_NOFILE"* ]]'
	kept=$(holder_conns full2)
	check "restarted: connections_max connections are all kept ($kept)" '[ "$kept" = 320 ]'
	serve_stop
fi

# Buffered log I/O: a partition holds two descriptors, not three. Three rounds of starting
# under the same limit and making one-partition topics until refused: each start must
# take what the round before made. (Before, the budget counted the files open, two a
# partition, while a start reckons three: the third start refused, needing more than the
# limit.)
printf '[engine]\nsubscriptions_per_shard = 8\nlog_io = buffered\n[server]\nconnections_max = 320\n' >"$tmp/buffered.ini"
for round in 1 2 3; do
	rill=$(limited -n 640)
	serve_start "$tmp/data-buffered" "$tmp/serve-buffered.log" --config "$tmp/buffered.ini" --shards 2
	rill=$real_rill
	check "buffered log I/O, start $round under the same limit" '[ -n "$serve_addr" ]'
	[ -n "$serve_addr" ] || { cat "$tmp/serve-buffered.log"; break; }
	made=0
	while [ $made -lt 200 ] && "$rill" topic create --connect "$serve_addr" --name "b${round}_$made" --partitions 1 >/dev/null 2>"$tmp/b.err"; do
		made=$((made + 1))
	done
	echo "round $round: $made one-partition topics made, then: $(head -c 120 "$tmp/b.err")"
	check "buffered log I/O, round $round: the create past the budget is refused for the limit" \
		'[ $made -lt 200 ] && grep -q "RLIMIT_NOFILE" "$tmp/b.err"'
	serve_stop
done

# The soft limit lowered while it runs (prlimit): at 600, with connections and files up
# to descriptor 599. 20 connections close, leaving 20 free descriptors low down, and 20
# new ones come: each would fit under the limit by its number (the lowest free, far from
# its top), but only 20 descriptors are free in all. They are refused, and the engine's
# rolls find the 20. (Before, they were accepted: no descriptor left, the rolls failed
# with EMFILE.) Idle connections that send no HELLO: the handshake timeout is 120 s here.
if ! command -v prlimit >/dev/null; then
	echo "note: no prlimit (util-linux): a limit lowered at run time is not checked"
	exit $fail
fi
printf '[engine]\nsubscriptions_per_shard = 8\n[server]\nconnections_max = 700\nhandshake_timeout_s = 120\n' >"$tmp/conns700.ini"
rill=$(limited -n 1024)
serve_start_or_skip "$tmp/data-low" "$tmp/serve-low.log" --config "$tmp/conns700.ini" --shards 2
rill=$real_rill
c="--connect $serve_addr"
"$rill" topic create $c --name t --partitions 1 --durability group --segment-bytes 65536 --schema "$tmp/tick.json" >/dev/null
check "lowered: a topic of 64 KiB segments" '[ $? -eq 0 ]'
producer_start produce-low
check "lowered: the producer is connected" '[ -s "$tmp/produce-low.out" ]'

holder_start conns
before=$(serve_fds_settled)
conns_cmd "open $((600 - before))"
full=$(serve_fds_settled)
echo "the server's descriptors: $before, with $(tail -1 "$tmp/conns.out") idle connections $full"
check "lowered: connections take the descriptors up to 599 under 1024" '[ "$full" -eq 600 ]'
prlimit --pid "$serve_pid" --nofile=600:1024
check "lowered: the soft limit is 600 now" \
	'[ "$(awk "/^Max open files/ { print \$4 }" "/proc/$serve_pid/limits")" = 600 ]'
conns_cmd "close 20"
freed=$(serve_fds_settled)
conns_cmd "open 20"
after=$(serve_fds_settled)
echo "the server's descriptors: $freed with 20 connections closed, $after after 20 more came"
check "lowered: the 20 new connections are refused: 20 descriptors stay free" \
	'[ "$freed" -le 580 ] && [ "$after" -le "$freed" ]'
for i in $(seq 1 3000); do
	echo "{\"key\":\"k$((i % 5))\",\"type\":\"Tick\",\"data\":{\"n\":$i,\"pad\":\"$pad\"}}"
done >&3
exec 3>&-
for _ in $(seq 1500); do serve_alive "$producer" || break; sleep 0.02; done
serve_alive "$producer" && { echo "the producer is still waiting after 30 s: killed"; kill -KILL "$producer"; }
wait "$producer"; rc=$?
check "lowered: 3,000 events acknowledged" \
	'[ $rc -eq 0 ] && [ "$(grep -c "\"offset\"" "$tmp/produce-low.out")" -eq 3001 ]'
# How many segments depends on the batches (one may take the rest of a segment's room).
segments=$(ls "$tmp/data-low/topics/t/0/"*.log | wc -l)
check "lowered: the partition rolled its segment ($segments segments)" '[ "$segments" -ge 2 ]'
! grep -q "Too many open files" "$tmp/serve-low.log"
check "lowered: no roll without a descriptor (EMFILE)" '[ $? -eq 0 ]'
grep -m1 "Too many open files" "$tmp/serve-low.log"
grep -m1 "refused" "$tmp/serve-low.log"
exec 4>&-
wait "$holder"
prlimit --pid "$serve_pid" --nofile=1024:1024
out=$("$rill" stat $c); rc=$?
check "lowered: no partition stopped, the new connections refused and counted" \
	'[ $rc -eq 0 ] && json_check "$out" "sum(s[\"partitions_stopped\"] for s in j[\"shards\"]) == 0 and j[\"server\"][\"refused\"] >= 20"'
serve_stop
check "lowered: the server stops cleanly" '[ "$serve_rc" = 0 ]'
exit $fail
