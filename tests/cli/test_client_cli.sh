#!/usr/bin/env bash
# The client commands against a real `rill serve` on a loopback port of its own: usage
# errors exit 2, an unreachable server exits 1 naming the address; then topics (one with
# retention and segment size; one refused, too small a segment), two schemas and a
# projection are created, events produced (output in input order, a bad line named and the
# exit 1; types and versions registered while produce runs are taken), consumed to the
# end with decoded payloads, queried (now, and as of an offset and
# of a time), consumed as a group that resumes where it committed (and a new group refused
# past groups_max until group delete makes room; a topic wider than subscriptions_max
# refused naming the key, one --partition of it read), and stat and ping answer; topic create
# --schema registers the type first; a schema too large for the server's frames after a
# restart is left out, said, and the rest goes on (a line without "version" whose type's
# latest is left out is refused). Last, the same through a server started
# with --sqpoll.
# usage: test_client_cli.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh" # serve_unsupported
server=
server_sq=
server_wide=
stop_servers() {
	for pid in $server $server_sq $server_wide; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
}
at_exit stop_servers

"$rill" produce >/dev/null 2>&1; rc=$?
check "produce without --topic exits 2" '[ $rc -eq 2 ]'
"$rill" consume --topic t --from yesterday >/dev/null 2>&1; rc=$?
check "consume with a bad --from exits 2" '[ $rc -eq 2 ]'
err=$("$rill" ping --connect 127.0.0.1:1 2>&1); rc=$?
check "ping to a closed port exits 1 naming the address" '[ $rc -eq 1 ] && [[ "$err" == *"127.0.0.1:1"* ]]'
err=$("$rill" stat --connect localhost 2>&1); rc=$?
check "an address without a port is refused" '[ $rc -eq 1 ] && [[ "$err" == *"HOST:PORT"* ]]'

"$rill" serve --data "$tmp/data" --listen 127.0.0.1:0 --shards 2 2>"$tmp/serve.log" &
server=$!
for _ in $(seq 50); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.1; done
address=$(sed -n 's/^rill: listening on //p' "$tmp/serve.log" | head -1)
if [ -z "$address" ]; then
	# Skipped only where the kernel lacks what the server needs; any other failure to
	# start is a failure.
	serve_unsupported "$tmp/serve.log" && { echo "SKIP: rill serve cannot run here: $(cat "$tmp/serve.log")"; exit 77; }
	echo "FAIL: rill serve did not start: $(cat "$tmp/serve.log")"
	exit 1
fi
c="--connect $address"

out=$("$rill" ping $c --count 2); rc=$?
check "ping answers" '[ $rc -eq 0 ] && [ "$(echo "$out" | grep -c latency_us)" -eq 2 ]'
out=$("$rill" topic create $c --name orders --partitions 4 --durability group); rc=$?
check "topic create" '[ $rc -eq 0 ] && [[ "$out" == *"\"partitions\":4"* ]]'
out=$("$rill" topic create $c --name kept --partitions 1 --retention-bytes 1048576 \
	--retention-age-s 3600 --segment-bytes 65536); rc=$?
check "topic create with retention and segment size" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"retention_bytes\":1048576"* ]] && [[ "$out" == *"\"retention_age_s\":3600"* ]] && [[ "$out" == *"\"segment_bytes\":65536"* ]]'
err=$("$rill" topic create $c --name tiny --partitions 1 --segment-bytes 100 2>&1); rc=$?
check "a segment size below the log's limit is refused, named" '[ $rc -eq 1 ] && [[ "$err" == *"segment_bytes_max"* ]]'
"$rill" topic create $c --name tiny --partitions 1 --retention-bytes lots >/dev/null 2>&1; rc=$?
check "a retention that is not a number exits 2" '[ $rc -eq 2 ]'
echo '{"type":"OrderPlaced","version":1,"fields":[{"name":"amount","type":"i64"},{"name":"sku","type":"string","max_length":8}]}' >"$tmp/order.json"
echo '{"type":"Paid","version":1,"fields":[{"name":"cents","type":"u64"}]}' >"$tmp/paid.json"
out=$("$rill" schema register $c --file "$tmp/order.json") && out2=$("$rill" schema register $c --file "$tmp/paid.json" --compat full); rc=$?
check "schema register" '[ $rc -eq 0 ] && [[ "$out" == *"\"type_id\":1"* ]] && [[ "$out2" == *"\"type_id\":2"* ]]'
echo '{"type":"Shipped","version":1,"fields":[{"name":"parcels","type":"u64"}]}' >"$tmp/shipped.json"
echo '{"type":"Dup","version":1,"fields":[{"name":"amount","type":"i64"}],"fields":[{"name":"other","type":"bool"}]}' >"$tmp/dup.json"
err=$("$rill" schema register $c --file "$tmp/dup.json" 2>&1); rc=$?
check "schema register refuses a key given twice, as schema check does (the last would win)" \
	'[ $rc -eq 1 ] && [[ "$err" == *"duplicate"* ]]'
out=$("$rill" topic create $c --name shipments --partitions 2 --schema "$tmp/shipped.json"); rc=$?
check "topic create --schema registers the type, then makes the topic: two JSON lines" \
	'[ $rc -eq 0 ] && [ "$(echo "$out" | wc -l)" -eq 2 ] && [[ "$(echo "$out" | head -1)" == *"\"type\":\"Shipped\""* ]] && [[ "$(echo "$out" | tail -1)" == *"\"name\":\"shipments\""* ]]'
echo '{"type":' >"$tmp/broken.json"
err=$("$rill" topic create $c --name nope --partitions 1 --schema "$tmp/broken.json" 2>&1); rc=$?
"$rill" topic create $c --name nope --partitions 2 >/dev/null; rc2=$? # 1 partition: made?
check "topic create --schema with a broken file names it, exits 1 and makes no topic" \
	'[ $rc -eq 1 ] && [[ "$err" == *"broken.json"* ]] && [ $rc2 -eq 0 ]'
out=$("$rill" projection create $c --name total --topic orders --type OrderPlaced --kind sum --field amount); rc=$?
check "projection create" '[ $rc -eq 0 ] && [[ "$out" == *"total"* ]]'

for i in $(seq 1 300); do
	echo "{\"key\":\"k$((i % 7))\",\"type\":\"OrderPlaced\",\"data\":{\"amount\":$i,\"sku\":\"s\"}}"
	echo "{\"key\":\"p$i\",\"type\":\"Paid\",\"data\":{\"cents\":$i},\"correlation_id\":$i}"
done >"$tmp/in.jsonl"
out=$("$rill" produce $c --topic orders --batch 16 <"$tmp/in.jsonl"); rc=$?
out_produce=$out
check "produce exits 0 with one line per event" '[ $rc -eq 0 ] && [ "$(echo "$out" | wc -l)" -eq 600 ]'
check "produce answers in input order" \
	'[ "$(echo "$out" | sed -n "s/.*\"key\":\"\([^\"]*\)\".*/\1/p" | head -4 | tr "\n" " ")" = "k1 p1 k2 p2 " ]'
err=$(printf '%s\n' '{"key":"a","type":"OrderPlaced","data":{"amount":1,"sku":"x"}}' 'oops' | "$rill" produce $c --topic orders 2>&1 >/dev/null); rc=$?
check "produce names a bad line and exits 1" '[ $rc -eq 1 ] && [[ "$err" == *"line 2"* ]]'
err=$(echo '{"key":"a","type":"OrderPlaced","data":{"amount":1,"sku":"x"}}' | "$rill" produce $c --topic nosuch 2>&1 >/dev/null); rc=$?
check "produce to a missing topic names the line and the topic" '[ $rc -eq 1 ] && [[ "$err" == *"line 1"*"nosuch"* ]]'
"$rill" topic create $c --name spare --partitions 1 >/dev/null
err=$(printf '%s\n' '{"key":"d1","type":"OrderPlaced","data":{"amount":1,"sku":"x"}}' '{"key":"d2","type":"OrderPlaced","data":{"amount":1,"amount":1000,"sku":"x"}}' | "$rill" produce $c --topic spare 2>&1 >/dev/null); rc=$?
check "produce refuses a member given twice, naming the line" '[ $rc -eq 1 ] && [[ "$err" == *"line 2"*"duplicate"* ]]'
err=$(echo '{"key":"d1","type":"OrderPlaced\u0000x","data":{"amount":1,"sku":"x"}}' | "$rill" produce $c --topic spare 2>&1 >/dev/null); rc=$?
check "produce refuses a type name cut short by a NUL" '[ $rc -eq 1 ] && [[ "$err" == *"line 1"*"type"* ]]'
for m in correlation_id causation_id timestamp_ns; do
	err=$(printf '%s\n' '{"key":"c1","type":"OrderPlaced","data":{"amount":1,"sku":"x"},"'$m'":"7"}' '{"key":"c2","type":"OrderPlaced","data":{"amount":1,"sku":"x"},"'$m'":"5\u0000junk"}' | "$rill" produce $c --topic spare 2>&1 >/dev/null); rc=$?
	check "produce refuses $m digits cut short by a NUL, naming the line and the member" \
		'[ $rc -eq 1 ] && [[ "$err" == *"line 2"*"\"$m\""* ]]'
done
out=$(printf '%s\n' '{"key":"n\u0000l","type":"OrderPlaced","data":{"amount":5,"sku":"a\u0000b"}}' '   ' '' | "$rill" produce $c --topic spare) && out2=$("$rill" consume $c --topic spare --until-end); rc=$?
check "produce takes \\u0000 in strings, skips blank lines, and consume gives them back" \
	'[ $rc -eq 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && [[ "$out2" == *"\"key_hex\":\"6e006c\""*"\"sku\":\"a\\u0000b\""* ]]'

# A string default holding \u0000, registered through the server: taken, listed (the
# server's schema list failed for every client once one was stored), and filled in.
printf '%s\n' '{"type":"NulDefault","version":1,"fields":[{"name":"s","type":"string","max_length":8,"default":"a\u0000b"}]}' >"$tmp/nuldef.json"
out=$("$rill" schema register $c --file "$tmp/nuldef.json" 2>&1); rc=$?
check "schema register through the server takes a string default holding \\u0000" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"type\":\"NulDefault\""* ]]'
"$rill" topic create $c --name nuls --partitions 1 >/dev/null
echo '{"key":"z","type":"NulDefault","data":{}}' | "$rill" produce $c --topic nuls >/dev/null 2>&1 &&
	out=$("$rill" consume $c --topic nuls --until-end); rc=$?
check "and an event that leaves the field out gets it whole" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"s\":\"a\\u0000b\""* ]]'

# Types and versions registered while produce runs: a line naming one it has not seen
# fetches the schemas again, and so does a line without "version" when the list is over
# a second old (it said "the server has no schema", and wrote the first latest forever).
late_def() { # TYPE VERSION: one i64 field, and from v2 on a second one with a default
	printf '{"type":"%s","version":%u,"fields":[{"name":"a","type":"i64"}%s]}\n' "$1" "$2" \
		"$([ "$2" -gt 1 ] && printf ',{"name":"b%u","type":"i64","default":0}' "$2")" >"$tmp/late-$1-$2.json"
	echo "$tmp/late-$1-$2.json"
}
late_send() { echo "$1" >&7 2>/dev/null; }
late_wait() { for _ in $(seq 200); do [ "$(wc -l <"$tmp/late.out")" -ge "$1" ] && break; sleep 0.05; done; }
"$rill" topic create $c --name late --partitions 1 --schema "$(late_def Late 1)" >/dev/null
mkfifo "$tmp/late.fifo"
"$rill" produce $c --topic late <"$tmp/late.fifo" >"$tmp/late.out" 2>"$tmp/late.err" &
producer=$!
trap '' PIPE # a line after produce ended: EPIPE, said on /dev/null, not the death of the test
exec 7>"$tmp/late.fifo"
late_send '{"key":"k","type":"Late","data":{"a":1}}'
late_wait 1
"$rill" schema register $c --file "$(late_def Late 2)" >/dev/null
late_send '{"key":"k","type":"Late","version":2,"data":{"a":2}}'
late_wait 2
late_send '{"key":"k","type":"Late","data":{"a":3}}'
late_wait 3
"$rill" schema register $c --file "$(late_def Late2 1)" >/dev/null
late_send '{"key":"k","type":"Late2","data":{"a":4}}'
late_wait 4
"$rill" schema register $c --file "$(late_def Late 3)" >/dev/null
sleep 1.2
late_send '{"key":"k","type":"Late","data":{"a":5}}'
late_wait 5
late_send '{"key":"k","type":"Late3","data":{"a":6}}'
exec 7>&-
trap - PIPE
wait "$producer"; rc=$?
versions=$("$rill" consume $c --topic late --until-end | sed -n 's/.*"type":"\([^"]*\)","version":\([0-9]*\).*"a":\([0-9]*\).*/\3:\1 v\2/p' | tr '\n' ' ')
check "produce takes a version registered after it started" '[[ "$versions" == *"2:Late v2 "* ]]'
check "and, fetched again, the latest version for a line without one" '[[ "$versions" == *"3:Late v2 "* ]]'
check "a type registered after it started" '[[ "$versions" == *"4:Late2 v1 "* ]]'
check "a version registered over a second before a line without one" '[[ "$versions" == *"5:Late v3 "* ]]'
check "a type still unknown after fetching again is refused, named, exit 1" \
	'[ $rc -eq 1 ] && [ "$versions" = "1:Late v1 2:Late v2 3:Late v2 4:Late2 v1 5:Late v3 " ] && grep -q "line 6: the server has no schema for type .Late3." "$tmp/late.err" && [ "$(wc -l <"$tmp/late.err")" -eq 1 ]'

out=$("$rill" consume $c --topic orders --until-end); rc=$?
check "consume --until-end reads every event" '[ $rc -eq 0 ] && [ "$(echo "$out" | wc -l)" -eq 601 ]'
check "consume decodes payloads" '[[ "$out" == *"\"type\":\"Paid\",\"version\":1,"*"\"correlation_id\":7,"*"\"data\":{\"cents\":7}"* ]]'

out=$("$rill" query $c --projection total --key k0); rc=$?
check "query sums the key's amounts" '[ $rc -eq 0 ] && [[ "$out" == *"\"count\":42,\"value\":6321,"* ]]'
"$rill" query $c --projection total --key nobody >/dev/null 2>&1; rc=$?
check "query of a missing key exits 1" '[ $rc -eq 1 ]'
out=$("$rill" query $c --projection total --key -h 2>/dev/null); rc=$?
check "query --key -h looks the key -h up (no such key: exit 1), it is not --help" '[ $rc -eq 1 ] && [[ "$out" != *"usage"* ]]'
out=$("$rill" query $c --projection total --help); rc=$?
check "query --help prints the usage and exits 0" '[ $rc -eq 0 ] && [[ "$out" == *"usage"* ]]'
echo '{"type":"Reading","version":1,"fields":[{"name":"v","type":"f64"}]}' >"$tmp/reading.json"
out=$("$rill" topic create $c --name readings --partitions 1 --schema "$tmp/reading.json" &&
	"$rill" projection create $c --name vsum --topic readings --type Reading --kind sum --field v &&
	printf '%s\n' '{"key":"big","type":"Reading","data":{"v":1e308}}' '{"key":"big","type":"Reading","data":{"v":1e308}}' |
	"$rill" produce $c --topic readings --acks applied && "$rill" query $c --projection vsum --key big); rc=$?
check "an f64 sum past a double's range: value and avg null, sum_overflow said" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"count\":2,\"value\":null,\"avg\":null,"*"\"sum_overflow\":true"* ]]'
# A newer version that drops a field (BACKWARD allows it): projections of the older one
# still fold its events by the field they read; one of the dropped field cannot, counted.
echo '{"type":"Ord","version":1,"fields":[{"name":"amount","type":"i64"},{"name":"fee","type":"i64"}]}' >"$tmp/ord1.json"
echo '{"type":"Ord","version":2,"fields":[{"name":"amount","type":"i64"}]}' >"$tmp/ord2.json"
perrs() { "$rill" stat $c | python3 -c 'import json,sys; print(sum(s["projection_errors"] for s in json.load(sys.stdin)["shards"]))'; }
"$rill" topic create $c --name ords --partitions 1 --schema "$tmp/ord1.json" >/dev/null &&
	"$rill" projection create $c --name ord_amount --topic ords --type Ord --kind sum --field amount >/dev/null &&
	"$rill" projection create $c --name ord_fee --topic ords --type Ord --kind sum --field fee >/dev/null &&
	echo '{"key":"o","type":"Ord","data":{"amount":10,"fee":1}}' | "$rill" produce $c --topic ords --acks applied >/dev/null &&
	"$rill" schema register $c --file "$tmp/ord2.json" >/dev/null
before=$(perrs)
out=$(echo '{"key":"o","type":"Ord","data":{"amount":5}}' | "$rill" produce $c --topic ords --acks applied &&
	"$rill" query $c --projection ord_amount --key o); rc=$?
check "a v1 sum of amount folds a v2 event that has no fee" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"count\":2,\"value\":15,"* ]]'
check "a v1 sum of fee cannot: rill stat counts it in projection_errors" '[ "$(perrs)" -eq $((before + 1)) ]'
# A window kind's late event (stamped before the window before the key's current one):
# left out of the value, whose offset stays the last event applied; rill stat counts it.
plate() { "$rill" stat $c | python3 -c 'import json,sys; print(sum(s["projection_late"] for s in json.load(sys.stdin)["shards"]))'; }
"$rill" projection create $c --name ord_win --topic ords --type Ord --kind window_sum --field amount --window 60 >/dev/null
before=$(plate)
out=$(printf '%s\n' '{"key":"w","type":"Ord","data":{"amount":10},"timestamp_ns":"1700000300000000000"}' \
	'{"key":"w","type":"Ord","data":{"amount":7},"timestamp_ns":"1700000000000000000"}' |
	"$rill" produce $c --topic ords --acks applied >/dev/null && "$rill" query $c --projection ord_win --key w); rc=$?
check "a late window event is left out: the value and offset are the event before" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"count\":1,\"value\":10,"*"\"offset\":2,"* ]]'
check "rill stat counts it in projection_late" '[ "$(plate)" -eq $((before + 1)) ]'
# As of an offset: the sum after k0's 10th event (inclusive), from produce's own answers
# (k0's events are i = 7, 14, ...: the 10th brings the sum to 7 * (1 + ... + 10) = 385).
k0_10th=$(echo "$out_produce" | grep '"key":"k0"' | sed -n '10s/.*"offset":\([0-9]*\).*/\1/p')
out=$("$rill" query $c --projection total --key k0 --as-of "$k0_10th"); rc=$?
check "query --as-of OFFSET: the value after that event" '[ $rc -eq 0 ] && [[ "$out" == *"\"count\":10,\"value\":385,"* ]]'
out=$("$rill" query $c --projection total --key k0 --as-of "@$(date +%s%N)"); rc=$?
check "query --as-of @NOW: the value now" '[ $rc -eq 0 ] && [[ "$out" == *"\"count\":42,\"value\":6321,"* ]]'
"$rill" query $c --projection total --key k0 --as-of @1 >/dev/null 2>&1; rc=$?
check "query --as-of before the key's first event exits 1" '[ $rc -eq 1 ]'
"$rill" query $c --projection total --key k0 --as-of yesterday >/dev/null 2>&1; rc=$?
check "query --as-of with a bad point exits 2" '[ $rc -eq 2 ]'

first=$("$rill" consume $c --topic orders --group g --limit 100 | wc -l)
rest=$("$rill" consume $c --topic orders --group g --until-end | wc -l)
check "a group resumes where it committed" '[ "$first" -eq 100 ] && [ "$rest" -eq 501 ]'

# A topic wider than subscriptions_max (64 by default) cannot be consumed whole on one
# connection: the refusal names the key and the topic's partitions, and one partition at a
# time (--partition) still reads.
"$rill" topic create $c --name wide100 --partitions 100 >/dev/null &&
	for i in 0 1 2 3 4 5 6 7 8 9; do echo "{\"key\":\"w$i\",\"type\":\"Paid\",\"data\":{\"cents\":1}}"; done |
	"$rill" produce $c --topic wide100 --acks durable >"$tmp/wide100.acks"; rc=$?
check "a topic of 100 partitions, 10 events" '[ $rc -eq 0 ] && [ "$(wc -l <"$tmp/wide100.acks")" -eq 10 ]'
err=$(timeout 30 "$rill" consume $c --topic wide100 --until-end 2>&1 >/dev/null); rc=$?
check "consume of 100 partitions exits 1 naming subscriptions_max and the 100 ($err)" \
	'[ $rc -eq 1 ] && [[ "$err" == *"subscriptions_max = 64"* ]] && [[ "$err" == *"100 partitions"* ]]'
wp=$(sed -n '1s/.*"partition":\([0-9]*\).*/\1/p' "$tmp/wide100.acks")
out=$(timeout 30 "$rill" consume $c --topic wide100 --partition "$wp" --until-end); rc=$?
check "consume --partition $wp of it reads that partition" '[ $rc -eq 0 ] && [[ "$out" == *"\"key\":\"w0\""* ]]'

# --until-end stops each partition at the end it had when subscribed: events written to a
# partition already done, while a bigger one is still being read, are not printed.
"$rill" topic create $c --name ends --partitions 2 --durability group >/dev/null
kp=$(for i in 0 1 2 3 4 5 6 7 8 9; do echo "{\"key\":\"e$i\",\"type\":\"Paid\",\"data\":{\"cents\":1}}"; done |
	"$rill" produce $c --topic ends --acks durable)
k0=$(echo "$kp" | sed -n 's/.*"key":"\(e[0-9]\)","partition":0.*/\1/p' | head -1)
k1=$(echo "$kp" | sed -n 's/.*"key":"\(e[0-9]\)","partition":1.*/\1/p' | head -1)
seq 20000 | sed "s/.*/{\"key\":\"$k1\",\"type\":\"Paid\",\"data\":{\"cents\":&}}/" |
	"$rill" produce $c --topic ends --acks durable >/dev/null
end0=$(echo "$kp" | grep -c '"partition":0')
("$rill" consume $c --topic ends --until-end | (sleep 2; cat) >"$tmp/ends.out") &
consumer=$!
sleep 1
seq 5 | sed "s/.*/{\"key\":\"$k0\",\"type\":\"Paid\",\"data\":{\"cents\":&}}/" |
	"$rill" produce $c --topic ends --acks durable >/dev/null
wait $consumer
last0=$(grep '"partition":0,' "$tmp/ends.out" | sed -n 's/.*"offset":\([0-9]*\).*/\1/p' | sort -n | tail -1)
check "consume --until-end stops a partition at its end, however long another takes" \
	'[ -n "$k0" ] && [ -n "$k1" ] && [ "$last0" = "$((end0 - 1))" ] && [ "$(grep -c "\"partition\":1," "$tmp/ends.out")" -eq $((20010 - end0)) ]'

# A group whose committed offset retention deleted: consume starts at the first offset
# kept and says what was skipped (it said nothing). Snapshots often, so that retention
# (which keeps what the oldest snapshot needs) goes on at once.
printf '[engine]\nsnapshot_interval_events = 100\nsnapshots_kept = 1\ngroups_max = 1\n' >"$tmp/short.ini"
"$rill" serve --data "$tmp/data-short" --listen 127.0.0.1:0 --shards 1 --config "$tmp/short.ini" \
	2>"$tmp/serve-short.log" &
server_short=$!
for _ in $(seq 50); do grep -q "listening on" "$tmp/serve-short.log" && break; sleep 0.1; done
cs="--connect $(sed -n 's/^rill: listening on //p' "$tmp/serve-short.log" | head -1)"
"$rill" topic create $cs --name short --partitions 1 --retention-bytes 65536 \
	--segment-bytes 65536 --schema "$tmp/order.json" >/dev/null
for i in $(seq 1 10); do
	echo "{\"key\":\"s$i\",\"type\":\"OrderPlaced\",\"data\":{\"amount\":$i,\"sku\":\"abcdefgh\"}}"
done | "$rill" produce $cs --topic short >/dev/null
timeout 30 "$rill" consume $cs --topic short --group gs --limit 5 >/dev/null
for i in $(seq 1 4000); do
	echo "{\"key\":\"s$i\",\"type\":\"OrderPlaced\",\"data\":{\"amount\":$i,\"sku\":\"abcdefgh\"}}"
done | "$rill" produce $cs --topic short --batch 64 >/dev/null
timeout 30 "$rill" consume $cs --topic short --group gs --until-end >"$tmp/short.out" \
	2>"$tmp/short.err"; rc=$?
out=$(wc -l <"$tmp/short.out")
check "a group behind retention resumes at the first offset kept and says what it skipped" \
	'[ $rc -eq 0 ] && [ "$out" -gt 0 ] && [ "$out" -lt 4005 ] && grep -q "offset 5 is gone (retention); starting at" "$tmp/short.err"'
# groups_max = 1: a second group's commit is refused, naming the limit and the count; the
# first group goes on committing.
err=$(timeout 30 "$rill" consume $cs --topic short --group other --limit 1 2>&1 >/dev/null); rc=$?
check "a group past groups_max is refused, naming the limit and the count" \
	'[ $rc -eq 1 ] && [[ "$err" == *"holds 1 consumer groups ([engine] groups_max)"* ]]'
echo '{"key":"s0","type":"OrderPlaced","data":{"amount":0,"sku":"abcdefgh"}}' |
	"$rill" produce $cs --topic short --acks durable >/dev/null
timeout 30 "$rill" consume $cs --topic short --group gs --until-end >"$tmp/gs.out"; rc=$?
out=$(wc -l <"$tmp/gs.out")
check "the group held still commits at groups_max" '[ $rc -eq 0 ] && [ "$out" -eq 1 ]'
out=$("$rill" group delete $cs --group gs); rc=$?
timeout 30 "$rill" consume $cs --topic short --group other --limit 1 >/dev/null; rc2=$?
check "group delete makes room for another group" '[ $rc -eq 0 ] && [ "$out" = "{}" ] && [ $rc2 -eq 0 ]'
err=$("$rill" group delete $cs --group gs 2>&1); rc=$?
check "group delete of a group not held exits 1 saying so" '[ $rc -eq 1 ] && [[ "$err" == *"no such group"* ]]'
err=$("$rill" group delete $cs --group 'a/b' 2>&1); rc=$?
check "group delete of a name no group can have exits 2 (bad usage), saying the rule" '[ $rc -eq 2 ] && [[ "$err" == *"1 to 128 bytes"* ]]'
"$rill" group delete $cs >/dev/null 2>&1; rc=$?
check "group delete without --group exits 2" '[ $rc -eq 2 ]'
kill -TERM "$server_short" 2>/dev/null; wait "$server_short" 2>/dev/null
out=$("$rill" stat $c); rc=$?
check "stat answers JSON" '[ $rc -eq 0 ] && [[ "$out" == "{"* ]]'

# A schema stored under larger frames than the server has after a restart (frame_bytes_max
# lowered): SCHEMAS lists it as too large, and produce and consume of the other types go
# on, saying so (every produce and consume failed: "the answer is larger than a frame").
doc=$(head -c 4000 /dev/zero | tr '\0' d)
wide_def() { # TYPE VERSION DOC: 18 i64 fields with defaults, each with DOC
	printf '{"type":"%s","version":%u,"fields":[' "$1" "$2"
	for i in $(seq 0 17); do
		[ "$i" -gt 0 ] && printf ','
		printf '{"name":"f%u","type":"i64","default":0,"doc":"%s"}' "$i" "$3"
	done
	printf ']}\n'
}
wide_def Wide 1 "$doc" >"$tmp/wide.json"
# Thin: v1 fits the smaller frames, v2 (the same fields, long docs) does not.
wide_def Thin 1 short >"$tmp/thin1.json"
wide_def Thin 2 "$doc" >"$tmp/thin2.json"
serve_wide() {
	"$rill" serve --data "$tmp/data-wide" --listen 127.0.0.1:0 --shards 1 "$@" 2>"$tmp/serve-wide.log" &
	server_wide=$!
	for _ in $(seq 50); do grep -q "listening on" "$tmp/serve-wide.log" && break; sleep 0.1; done
	cw="--connect $(sed -n 's/^rill: listening on //p' "$tmp/serve-wide.log" | head -1)"
}
serve_wide
"$rill" schema register $cw --file "$tmp/wide.json" >/dev/null &&
	"$rill" schema register $cw --file "$tmp/thin1.json" >/dev/null &&
	"$rill" schema register $cw --file "$tmp/thin2.json" >/dev/null &&
	"$rill" topic create $cw --name w --partitions 1 --schema "$tmp/order.json" >/dev/null &&
	echo '{"key":"w0","type":"Wide","data":{}}' | "$rill" produce $cw --topic w >/dev/null; rc=$?
kill -TERM "$server_wide"; wait "$server_wide"
printf '[server]\nframe_bytes_max = 65536\n' >"$tmp/small-frames.ini"
serve_wide --config "$tmp/small-frames.ini"
echo '{"key":"w1","type":"OrderPlaced","data":{"amount":5,"sku":"abc"}}' |
	"$rill" produce $cw --topic w --acks durable >"$tmp/wide.out" 2>"$tmp/wide.err"; rc2=$?
check "produce goes on past a schema too large for the server's frames, saying so" \
	'[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && grep -q "\"offset\":1" "$tmp/wide.out" && grep -q "schema Wide v1 (type id 1, [0-9]* bytes) is too large for its frames" "$tmp/wide.err"'
timeout 30 "$rill" consume $cw --topic w --until-end >"$tmp/wide-c.out" 2>"$tmp/wide-c.err"; rc=$?
check "consume too: the Wide event as payload_hex, said too large (exit 1), the rest decoded" \
	'[ $rc -eq 1 ] && grep -q "\"amount\":5" "$tmp/wide-c.out" && grep -q "\"key\":\"w0\".*\"payload_hex\"" "$tmp/wide-c.out" && grep -q "offset 0: its schema, Wide v1, is too large for this server.s frames" "$tmp/wide-c.err"'
# The Wide event made consume fetch the schemas again: the too-large note is said once.
check "consume says a schema is too large once, though it fetched the list again" \
	'[ "$(grep -c "schema Wide v1 (type id" "$tmp/wide-c.err")" -eq 1 ]'
echo '{"key":"w2","type":"Wide","data":{}}' | "$rill" produce $cw --topic w 2>"$tmp/wide2.err" >/dev/null; rc=$?
check "an event of the type left out is refused by name, saying why" \
	'[ $rc -eq 1 ] && grep -q "line 1: the latest version of type .Wide., v1, is too large for this server.s frames" "$tmp/wide2.err"'
# Thin's latest, v2, was left out: a line without "version" is refused, not written as v1.
echo '{"key":"t1","type":"Thin","data":{}}' | "$rill" produce $cw --topic w 2>"$tmp/thin.err" >/dev/null; rc=$?
echo '{"key":"t2","type":"Thin","version":1,"data":{}}' | "$rill" produce $cw --topic w 2>/dev/null >"$tmp/thin.out"; rc2=$?
check "a line without version whose type's latest is too large is refused; v1 by name is written" \
	'[ $rc -eq 1 ] && grep -q "line 1: the latest version of type .Thin., v2, is too large" "$tmp/thin.err" && [ $rc2 -eq 0 ] && grep -q "\"offset\":2" "$tmp/thin.out"'
kill -TERM "$server_wide"; wait "$server_wide"; server_wide=

# The same commands through a server whose rings a kernel thread polls (--sqpoll).
"$rill" serve --data "$tmp/data-sq" --listen 127.0.0.1:0 --shards 2 --sqpoll 2>"$tmp/serve-sq.log" &
server_sq=$!
for _ in $(seq 50); do grep -q "listening on" "$tmp/serve-sq.log" && break; sleep 0.1; done
address=$(sed -n 's/^rill: listening on //p' "$tmp/serve-sq.log" | head -1)
if [ -n "$address" ]; then
	sq="--connect $address"
	out=$("$rill" topic create $sq --name orders --partitions 4 --schema "$tmp/order.json" &&
		"$rill" projection create $sq --name total --topic orders --type OrderPlaced --kind sum --field amount &&
		grep OrderPlaced "$tmp/in.jsonl" | "$rill" produce $sq --topic orders --acks durable >"$tmp/sq-acks.jsonl" &&
		"$rill" query $sq --projection total --key k0); rc=$?
	acked=$(wc -l <"$tmp/sq-acks.jsonl")
	check "with --sqpoll: topic, projection, 300 durable events, the same sum" \
		'[ $rc -eq 0 ] && [ "$acked" -eq 300 ] && [[ "$out" == *"\"count\":42,\"value\":6321,"* ]]'
	kill -TERM "$server_sq"; wait "$server_sq"; rc=$?
	check "the --sqpoll server stops with exit 0" '[ $rc -eq 0 ]'
elif serve_unsupported "$tmp/serve-sq.log"; then
	echo "SKIP: rill serve --sqpoll cannot run here: $(cat "$tmp/serve-sq.log")"
	kill "$server_sq" 2>/dev/null
else
	echo "FAIL: rill serve --sqpoll did not start: $(cat "$tmp/serve-sq.log")"
	kill "$server_sq" 2>/dev/null
	fail=1
fi
exit $fail
