#!/usr/bin/env bash
# `rill schema check|encode|decode`: a good definition is laid out, a bad one is refused
# with its reason; JSON lines encode to hex payloads and decode back unchanged; a bad input
# line is refused with its line number and a non-zero exit; \u0000 is taken in a string
# default and refused in a name.
# usage: test_schema_cli.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"

cat >"$tmp/order.json" <<'JSON'
{"type": "OrderPlaced", "version": 2, "fields": [{"name": "amount", "type": "i64"},
 {"name": "fee", "type": "i64", "default": 5}, {"name": "sku", "type": "string", "max_length": 16},
 {"name": "side", "type": "enum", "symbols": ["BUY", "SELL"]}, {"name": "tag", "type": "bytes", "max_length": 4, "default": "00ff"}]}
JSON
echo '{"type": "Bad", "version": 1, "fields": [{"name": "s", "type": "string"}]}' >"$tmp/bad.json"

out=$("$rill" schema check "$tmp/order.json"); rc=$?
check "check accepts a good definition" '[ $rc -eq 0 ]'
check "check prints the layout" '[[ "$out" == *"\"block_bytes\":48"*"\"name\":\"sku\",\"type\":\"string\",\"offset\":24"* ]]'
err=$("$rill" schema check "$tmp/bad.json" 2>&1); rc=$?
check "check refuses a bad definition" '[ $rc -eq 1 ]'
check "check names the field and the fault" '[[ "$err" == *"bad.json"*"'"'"'s'"'"'"*"max_length"* ]]'

in='{"amount":-7,"sku":"abc-1","side":"SELL"}'
hex=$(echo "$in" | "$rill" schema encode --file "$tmp/order.json"); rc=$?
check "encode succeeds" '[ $rc -eq 0 ] && [[ "$hex" =~ ^[0-9a-f]+$ ]]'
back=$(echo "$hex" | "$rill" schema decode --file "$tmp/order.json"); rc=$?
check "decode gives the fields back with defaults" \
	'[ $rc -eq 0 ] && [ "$back" = "{\"amount\":-7,\"fee\":5,\"sku\":\"abc-1\",\"side\":\"SELL\",\"tag\":\"00ff\"}" ]'

err=$(printf '%s\n{"amount":1,"side":"HOLD"}\n' "$in" | "$rill" schema encode --file "$tmp/order.json" 2>&1 >/dev/null); rc=$?
check "encode refuses a bad line" '[ $rc -eq 1 ]'
check "encode names the line and the field" '[[ "$err" == *"line 2"*"'"'"'side'"'"'"*"HOLD"* ]]'
err=$(echo "zz" | "$rill" schema decode --file "$tmp/order.json" 2>&1 >/dev/null); rc=$?
check "decode refuses non-hex" '[ $rc -eq 1 ] && [[ "$err" == *"line 1"* ]]'
err=$(echo "${hex}00" | "$rill" schema decode --file "$tmp/order.json" 2>&1 >/dev/null); rc=$?
check "decode refuses a payload with a stray byte" '[ $rc -eq 1 ] && [[ "$err" == *"follow"* ]]'
# Long field names make the JSON much longer than the payload: decode must still fit it.
python3 - "$tmp/long.json" <<'PY'
import json, sys
fields = [{"name": "f%03d_" % i + "x" * 100, "type": "bool", "default": True} for i in range(64)]
json.dump({"type": "Long", "version": 1, "fields": fields}, open(sys.argv[1], "w"))
PY
out=$(echo '{}' | "$rill" schema encode --file "$tmp/long.json" | "$rill" schema decode --file "$tmp/long.json"); rc=$?
check "decode fits JSON longer than its first buffer" '[ $rc -eq 0 ] && [ ${#out} -gt 7000 ]'

# A string default may hold \u0000, as any string value in the JSON encoding may; a name
# may not, and the refusal says so in rill's words, not jansson's (JSON_ALLOW_NUL).
echo '{"type":"N","version":1,"fields":[{"name":"s","type":"string","max_length":8,"default":"a\u0000b"}]}' >"$tmp/nul.json"
echo '{"type":"N","version":1,"fields":[{"name":"s\u0000t","type":"i64"}]}' >"$tmp/nulname.json"
out=$("$rill" schema check "$tmp/nul.json") && back=$(echo '{}' | "$rill" schema encode --file "$tmp/nul.json" | "$rill" schema decode --file "$tmp/nul.json"); rc=$?
check "check takes a string default with \\u0000, and encode fills it in whole" \
	'[ $rc -eq 0 ] && [[ "$out" == *"\"type\":\"N\""* ]] && [ "$back" = "{\"s\":\"a\\u0000b\"}" ]'
err=$("$rill" schema check "$tmp/nulname.json" 2>&1); rc=$?
check "check refuses a field name with \\u0000, naming the field's \"name\"" \
	'[ $rc -eq 1 ] && [[ "$err" == *"field 0: \"name\" must match"* ]] && [[ "$err" != *JSON_ALLOW_NUL* ]]'
# schema register reads the file as schema check does: past it, to the (closed) server.
err=$("$rill" schema register --connect 127.0.0.1:1 --file "$tmp/nul.json" 2>&1); rc=$?
check "schema register reads a definition with a \\u0000 default, as check does" \
	'[ $rc -eq 1 ] && [[ "$err" == *"127.0.0.1:1"* ]] && [[ "$err" != *JSON_ALLOW_NUL* ]]'

"$rill" schema encode >/dev/null 2>&1; rc=$?
check "encode without --file is a usage error" '[ $rc -eq 2 ]'
exit $fail
