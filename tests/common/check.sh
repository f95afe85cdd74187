# Shared by the shell tests; sourced, not run. The sourcing script sets fail=0 first and
# exits with "$fail" at its end.
#
#   check TEXT EXPRESSION       eval EXPRESSION; print "ok: TEXT" or "FAIL: TEXT" (fail=1)
#   json_check TEXT_JSON EXPR   TEXT_JSON is one JSON object on one line and the Python
#                               expression EXPR over it (as j) holds; says why not on stderr

check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

json_check() {
	python3 -c '
import json, sys
lines = [l for l in sys.argv[1].splitlines() if l.strip()]
if len(lines) != 1:
    sys.exit("expected one line of JSON, got %d" % len(lines))
j = json.loads(lines[0])
if not isinstance(j, dict):
    sys.exit("not a JSON object")
if not eval(sys.argv[2]):
    sys.exit("not so: %s in %s" % (sys.argv[2], lines[0]))
' "$1" "$2"
}
