#!/usr/bin/env bash
# The listing and inspecting commands against a `rill serve` of their own: `rill topic
# list`, `rill topic info`, `rill schema list`, `rill projection list` and `rill group
# show`. Usage errors exit 2 and an unreachable server 1, naming the address; on an empty
# server the lists print nothing and exit 0; then each prints what was made, with the
# values it was made with (topic list the lines topic create printed, schema list each
# version's field count in type id and version order, projection list each definition;
# both lists in name order, the same after a restart),
# topic info each partition's offsets (30 events produced durably: next offsets that sum
# to 30, each partition's as many as produce put there, all durable), and group show the
# lag a consumer left (12 of 30 read: 18, per partition next less committed), for a group
# never seen the whole topic, and after group delete every partition uncommitted again;
# unknown topics exit 1, named.
# usage: test_inspect_cli.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"

# ---- Usage -----------------------------------------------------------------------------

for args in "topic info" "topic info --name" "topic list --name t" "schema list x" \
	"projection list --topic t" "group show --group g" "group show --topic t" \
	"group show --group .dot --topic t" "group frob"; do
	# shellcheck disable=SC2086 # the command's words
	err=$("$rill" $args 2>&1 >/dev/null); rc=$?
	check "rill $args: bad usage, exit 2, said" '[ $rc -eq 2 ] && [[ "$err" == "rill: "* ]]'
done
for cmd in "topic list" "topic info" "schema list" "projection list" "group show"; do
	# shellcheck disable=SC2086
	out=$("$rill" $cmd --help); rc=$?
	check "rill $cmd --help: its usage, exit 0" '[ $rc -eq 0 ] && [[ "$out" == "usage: rill $cmd "* ]]'
done
err=$("$rill" topic list --connect 127.0.0.1:1 2>&1); rc=$?
check "topic list from a closed port exits 1 naming the address" '[ $rc -eq 1 ] && [[ "$err" == *"127.0.0.1:1"* ]]'

serve_start_or_skip "$tmp/data" "$tmp/serve.log" --shards 2
c="--connect $serve_addr"

# ---- Empty -----------------------------------------------------------------------------

out=$("$rill" topic list $c) && out2=$("$rill" projection list $c) && out3=$("$rill" schema list $c); rc=$?
check "an empty server: the lists print nothing, exit 0" '[ $rc -eq 0 ] && [ -z "$out$out2$out3" ]'

# ---- What was made ---------------------------------------------------------------------

echo '{"type":"Order","version":1,"fields":[{"name":"amount","type":"i64"},{"name":"sku","type":"string","max_length":8}]}' >"$tmp/order1.json"
echo '{"type":"Order","version":2,"fields":[{"name":"amount","type":"i64"},{"name":"sku","type":"string","max_length":8},{"name":"n","type":"u64","default":0}]}' >"$tmp/order2.json"
echo '{"type":"Paid","version":1,"fields":[{"name":"cents","type":"u64"}]}' >"$tmp/paid.json"
made=$("$rill" topic create $c --name orders --partitions 3 --durability group --schema "$tmp/order1.json" | tail -1) &&
	made2=$("$rill" topic create $c --name kept --partitions 1 --retention-bytes 1048576 --segment-bytes 65536) &&
	"$rill" schema register $c --file "$tmp/paid.json" >/dev/null &&
	"$rill" schema register $c --file "$tmp/order2.json" >/dev/null &&
	"$rill" projection create $c --name total --topic orders --type Order --kind sum --field amount >/dev/null &&
	"$rill" projection create $c --name per_min --topic orders --type Order --version 1 --kind window_count --window 60 >/dev/null
check "two topics, three schema versions, two projections made" '[ $? -eq 0 ]'

out=$("$rill" topic list $c); rc=$?
check "topic list: the topics in name order (kept, made second, first), each as topic create printed it" \
	'[ $rc -eq 0 ] && [ "$out" = "$made2"$'"'"'\n'"'"'"$made" ]'
topics_before=$out
out=$("$rill" schema list $c); rc=$?
expected='{"type":"Order","version":1,"type_id":1,"fields":2}
{"type":"Order","version":2,"type_id":1,"fields":3}
{"type":"Paid","version":1,"type_id":2,"fields":1}'
check "schema list: every version, in type id and version order, with its field count" \
	'[ $rc -eq 0 ] && [ "$out" = "$expected" ]'
out=$("$rill" projection list $c); rc=$?
expected='{"name":"per_min","topic":"orders","type":"Order","version":1,"kind":"window_count","field":null,"window_ns":60000000000}
{"name":"total","topic":"orders","type":"Order","version":2,"kind":"sum","field":"amount","window_ns":0}'
check "projection list: each as defined (the version it resolved to), in name order" \
	'[ $rc -eq 0 ] && [ "$out" = "$expected" ]'
[ "$out" = "$expected" ] || echo "projection list printed: $out"

# The lists' order survives a restart: they listed in the order made, which a restart,
# loading the definitions in name order, did not keep (orders, kept; then kept, orders).
serve_stop && [ "$serve_rc" = 0 ]
check "the server stops on SIGTERM" '[ $? -eq 0 ]'
serve_start_or_skip "$tmp/data" "$tmp/serve2.log" --shards 2
c="--connect $serve_addr"
out=$("$rill" topic list $c) && out2=$("$rill" projection list $c); rc=$?
check "after a restart: topic list and projection list in the same order as before" \
	'[ $rc -eq 0 ] && [ "$out" = "$topics_before" ] && [ "$out2" = "$expected" ]'

# ---- Offsets and lag -------------------------------------------------------------------

for i in $(seq 1 30); do echo "{\"key\":\"k$i\",\"type\":\"Order\",\"version\":1,\"data\":{\"amount\":$i,\"sku\":\"s\"}}"; done |
	"$rill" produce $c --topic orders --acks durable >"$tmp/produced"
check "30 events produced" '[ $? -eq 0 ] && [ "$(wc -l <"$tmp/produced")" -eq 30 ]'
per_part=$(sed -n 's/.*"partition":\([0-9]*\).*/\1/p' "$tmp/produced" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
out=$("$rill" topic info $c --name orders); rc=$?
check "topic info: the settings, and per partition offsets that sum to the 30 events, all durable" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"name\"] == \"orders\" and j[\"partitions\"] == 3 and j[\"durability\"] == \"group\" and [p[\"partition\"] for p in j[\"partitions_info\"]] == [0, 1, 2] and sum(p[\"next_offset\"] for p in j[\"partitions_info\"]) == 30 and all(p[\"first_offset\"] == 0 and p[\"durable_offset\"] == p[\"next_offset\"] for p in j[\"partitions_info\"]) and \"partitions_more\" not in j"'
counts=$(python3 -c 'import json,sys; print(" ".join("%d:%d" % (p["partition"], p["next_offset"]) for p in json.loads(sys.argv[1])["partitions_info"] if p["next_offset"]) + " ")' "$out")
check "and each partition's next offset is what produce put there" '[ "$counts" = "$per_part" ]'
err=$("$rill" topic info $c --name nosuch 2>&1); rc=$?
check "topic info of an unknown topic: exit 1, named" '[ $rc -eq 1 ] && [[ "$err" == *"no topic '"'"'nosuch'"'"'"* ]]'

timeout 20 "$rill" consume $c --topic orders --group billing --limit 12 >"$tmp/consumed"
check "a consumer of group billing reads 12" '[ $? -eq 0 ] && [ "$(wc -l <"$tmp/consumed")" -eq 12 ]'
out=$("$rill" group show $c --group billing --topic orders); rc=$?
echo "group show: $out"
check "group show: lag 18 (30 less the 12 read), per partition next less committed" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"group\"] == \"billing\" and j[\"topic\"] == \"orders\" and j[\"lag\"] == 18 and len(j[\"partitions\"]) == 3 and sum(p[\"lag\"] for p in j[\"partitions\"]) == 18 and all(p[\"lag\"] == p[\"next_offset\"] - (p[\"committed\"] if p[\"committed\"] is not None else p[\"first_offset\"]) for p in j[\"partitions\"]) and sum(p[\"committed\"] or 0 for p in j[\"partitions\"]) == 12"'
out=$("$rill" group show $c --group nobody --topic orders); rc=$?
check "a group never seen: nothing committed, the whole topic its lag" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"lag\"] == 30 and all(p[\"committed\"] is None for p in j[\"partitions\"])"'
"$rill" group delete $c --group billing >/dev/null && out=$("$rill" group show $c --group billing --topic orders); rc=$?
check "after group delete: every partition uncommitted again" \
	'[ $rc -eq 0 ] && json_check "$out" "j[\"lag\"] == 30 and all(p[\"committed\"] is None for p in j[\"partitions\"])"'
err=$("$rill" group show $c --group billing --topic nosuch 2>&1); rc=$?
check "group show of an unknown topic: exit 1, named" '[ $rc -eq 1 ] && [[ "$err" == *"nosuch"* ]]'

serve_stop
check "the server stops cleanly" '[ "$serve_rc" = 0 ]'
exit $fail
