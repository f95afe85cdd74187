#!/usr/bin/env bash
# `rill serve` with its stderr a pipe whose reader is gone (`rill serve 2>&1 | tee log`,
# Ctrl-C ending tee too): SIGTERM still drains, syncs and exits 0 (its "stopping" line
# would raise SIGPIPE, which ends a process by default), and the events acknowledged as
# applied on a topic of durability none, written by the final sync alone, are there after
# a restart. SIGHUP (the terminal of `scripts/run.sh` closed) stops it the same way,
# unless it was ignored at start (nohup).
# usage: test_serve_signals.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"
at_exit serve_cleanup

echo '{"type":"Tick","version":1,"fields":[{"name":"n","type":"u64"}]}' >"$tmp/tick.json"
reader=
at_exit '[ -n "$reader" ] && kill -KILL "$reader" 2>/dev/null'

# The server's stderr into a FIFO that `cat` copies to LOG (the pipe's reader, $reader);
# then as serve_start does: wait for "listening on", set serve_pid and serve_addr.
serve_start_piped() { # DATA LOG
	local data=$1 log=$2
	rm -f "$tmp/stderr.fifo"
	mkfifo "$tmp/stderr.fifo"
	: >"$log"
	cat "$tmp/stderr.fifo" >"$log" &
	reader=$!
	# SIGHUP at its default whatever this test was started under (CI run under nohup:
	# an ignored SIGHUP is inherited, and stays ignored by design, as below).
	env --default-signal=HUP "$rill" serve --data "$data" --listen 127.0.0.1:0 --shards 1 \
		2>"$tmp/stderr.fifo" &
	serve_pid=$!
	local deadline=$(($(serve_now_us) + SERVE_START_S * 1000000)) line
	while :; do
		line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9][0-9]*$' "$log")
		[ -n "$line" ] && { serve_addr=${line#listening on }; return 0; }
		if ! serve_alive "$serve_pid" || [ "$(serve_now_us)" -ge "$deadline" ]; then
			serve_kill
			serve_unsupported "$log" && { echo "SKIP: rill serve cannot run here: $(cat "$log")"; exit 77; }
			echo "FAIL: rill serve did not start: $(cat "$log")"
			exit 1
		fi
		sleep 0.02
	done
}

# One round: a server with piped stderr, 200 events acknowledged as applied, the pipe's
# reader killed, then SIGNAL; it must exit 0, and a restarted server hold all 200.
round() { # SIGNAL
	local sig=$1 data=$tmp/data-$1 out rc
	serve_start_piped "$data" "$tmp/serve-$sig.log"
	local c="--connect $serve_addr"
	"$rill" topic create $c --name t --partitions 1 --durability none --schema "$tmp/tick.json" >/dev/null
	out=$(for i in $(seq 200); do echo "{\"key\":\"k$i\",\"type\":\"Tick\",\"data\":{\"n\":$i}}"; done |
		"$rill" produce $c --topic t --acks applied); rc=$?
	check "SIG$sig: 200 events acknowledged as applied" \
		'[ $rc -eq 0 ] && [ "$(echo "$out" | grep -c "\"offset\"")" -eq 200 ]'
	kill -KILL "$reader"
	wait "$reader" 2>/dev/null
	reader=
	kill -"$sig" "$serve_pid"
	local deadline=$(($(serve_now_us) + 20 * 1000000))
	while serve_alive "$serve_pid" && [ "$(serve_now_us)" -lt "$deadline" ]; do sleep 0.02; done
	serve_alive "$serve_pid" && serve_kill
	wait "$serve_pid" 2>/dev/null
	rc=$?
	serve_pid=
	check "SIG$sig with stderr's reader gone: the server drains and exits 0 (was $rc)" '[ $rc -eq 0 ]'
	serve_start_or_skip "$data" "$tmp/restart-$sig.log" --shards 1
	out=$("$rill" consume --connect "$serve_addr" --topic t --until-end); rc=$?
	check "SIG$sig: after a restart, all 200 events are in the log" \
		'[ $rc -eq 0 ] && [ "$(echo "$out" | grep -c "\"offset\"")" -eq 200 ]'
	serve_stop
}

round TERM
round HUP

# Under nohup (SIGHUP ignored when it starts), SIGHUP stays ignored: it keeps serving.
printf '#!/usr/bin/env bash\ntrap "" HUP\nexec "%s" "$@"\n' "$rill" >"$tmp/rill-nohup"
chmod +x "$tmp/rill-nohup"
real_rill=$rill
rill=$tmp/rill-nohup
serve_start_or_skip "$tmp/data-nohup" "$tmp/serve-nohup.log" --shards 1
rill=$real_rill
kill -HUP "$serve_pid"
out=$("$rill" ping --connect "$serve_addr" 2>&1); rc=$?
check "SIGHUP ignored at start (nohup): still serving after one" \
	'[ $rc -eq 0 ] && serve_alive "$serve_pid" && ! grep -q stopping "$tmp/serve-nohup.log"'
serve_stop
check "... and SIGTERM still stops it cleanly" '[ "$serve_rc" = 0 ]'
exit $fail
