#!/usr/bin/env bash
# The client commands against a `rill serve` whose idle timeout is 1 s (`idle_timeout_s`),
# and with nowhere to write: `rill produce` fed slowly goes on past an idle spell (it
# pings first, and connects again when the server closed the connection); `rill consume
# --group` keeps committing after its commit connection sat idle; a consumer sees the
# type of a schema registered right after it started; `--group` with a partition the topic
# lacks is refused; output that cannot be written (/dev/full) ends produce and consume
# with status 1, and consume then commits nothing it could not print. Last, `rill log
# dump` prints a u64 past INT64_MAX as a string of its digits.
# usage: test_client_idle.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"
at_exit serve_cleanup

printf '[server]\nidle_timeout_s = 1\n' >"$tmp/idle.ini"
serve_start_or_skip "$tmp/data" "$tmp/serve.log" --config "$tmp/idle.ini" --shards 2
c="--connect $serve_addr"
echo '{"type":"Order","version":1,"fields":[{"name":"amount","type":"i64"}]}' >"$tmp/order.json"
"$rill" topic create $c --name orders --partitions 2 --schema "$tmp/order.json" >/dev/null
check "topic created" '[ $? -eq 0 ]'
line() { echo "{\"key\":\"k$1\",\"type\":\"Order\",\"data\":{\"amount\":$1}}"; }

out=$( (line 1; sleep 2.5; line 2) | "$rill" produce $c --topic orders --acks durable); rc=$?
check "produce fed slowly: both lines acknowledged past the server's idle timeout" \
	'[ $rc -eq 0 ] && [ "$(echo "$out" | grep -c "\"offset\"")" -eq 2 ]'

# A group consumer left idle past the timeout, then an event: committed all the same.
"$rill" consume $c --topic orders --group g >"$tmp/g.out" 2>"$tmp/g.err" &
consumer=$!
for _ in $(seq 100); do [ "$(wc -l <"$tmp/g.out")" -ge 2 ] && break; sleep 0.05; done
sleep 2.5
line 3 | "$rill" produce $c --topic orders >/dev/null
for _ in $(seq 100); do [ "$(wc -l <"$tmp/g.out")" -ge 3 ] && break; sleep 0.05; done
sleep 1.5 # a commit a second
kill -TERM "$consumer"; wait "$consumer"; rc=$?
check "the group consumer printed 3 events and exits 0" \
	'[ $rc -eq 0 ] && [ "$(wc -l <"$tmp/g.out")" -eq 3 ] && [ ! -s "$tmp/g.err" ]'
out=$("$rill" consume $c --topic orders --group g --until-end); rc=$?
check "nothing left for the group: its commits went through" '[ $rc -eq 0 ] && [ -z "$out" ]'

# A schema registered after the consumer fetched its schemas, within a second.
"$rill" consume $c --topic orders >"$tmp/late.out" 2>"$tmp/late.err" &
consumer=$!
for _ in $(seq 100); do [ -s "$tmp/late.out" ] && break; sleep 0.05; done # it has started
sleep 0.1
echo '{"type":"Shipped","version":1,"fields":[{"name":"parcels","type":"u64"}]}' >"$tmp/shipped.json"
"$rill" schema register $c --file "$tmp/shipped.json" >/dev/null &&
	echo '{"key":"s","type":"Shipped","data":{"parcels":3}}' | "$rill" produce $c --topic orders >/dev/null
for _ in $(seq 100); do grep -q Shipped "$tmp/late.out" && break; sleep 0.05; done
kill -TERM "$consumer"; wait "$consumer"; rc=$?
check "a type registered after the consumer started is decoded" \
	'[ $rc -eq 0 ] && grep -q "\"type\":\"Shipped\".*\"data\":{\"parcels\":3}" "$tmp/late.out" && [ ! -s "$tmp/late.err" ]'

err=$("$rill" consume $c --topic orders --group g2 --partition 7 --until-end 2>&1); rc=$?
check "--group with a partition the topic lacks exits 1, naming it" \
	'[ $rc -eq 1 ] && [[ "$err" == *"no partition 7"* ]]'

if [ -w /dev/full ]; then
	err=$("$rill" consume $c --topic orders --group g3 --until-end 2>&1 >/dev/full); rc=$?
	check "consume into /dev/full exits 1, saying why" '[ $rc -eq 1 ] && [[ "$err" == *"writing"* ]]'
	out=$("$rill" consume $c --topic orders --group g3 --until-end); rc=$?
	check "and commits nothing it could not write" '[ $rc -eq 0 ] && [ "$(echo "$out" | wc -l)" -eq 4 ]'
	err=$(line 5 | "$rill" produce $c --topic orders 2>&1 >/dev/full); rc=$?
	check "produce into /dev/full exits 1, saying why" '[ $rc -eq 1 ] && [[ "$err" == *"writing"* ]]'
else
	echo "SKIP: no /dev/full to write to"
fi

echo '{"key":"big","type":"Order","data":{"amount":1},"correlation_id":"18446744073709551615"}' |
	"$rill" produce $c --topic orders --acks durable >/dev/null
serve_stop
check "the server stops with exit 0" '[ "$serve_rc" = 0 ]'
out=$(for p in "$tmp"/data/topics/orders/*/; do "$rill" log dump "$p"; done | grep '"key":"big"')
check "log dump prints a u64 past INT64_MAX as its digits, as consume does" \
	'[[ "$out" == *"\"correlation_id\":\"18446744073709551615\""* ]]'
exit $fail
