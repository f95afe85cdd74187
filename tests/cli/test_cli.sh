#!/usr/bin/env bash
# The `rill` command's front door: `rill version` answers, an unknown command exits with
# status 2 (not a crash) and names itself in the message, no arguments prints usage; and
# `rill bench engine` runs a small in-process benchmark end to end and prints its JSON;
# every command and subcommand answers --help and -h; and `rill help`, the README's table
# of commands and each command's --help name the same commands and flags.
# usage: test_cli.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"

out=$("$rill" version); rc=$?
check "version exits 0" '[ $rc -eq 0 ]'
check "version prints the version" '[[ "$out" == "rill "* ]]'

err=$("$rill" frobnicate 2>&1 >/dev/null); rc=$?
check "unknown command exits 2" '[ $rc -eq 2 ]'
check "unknown command is named" '[[ "$err" == *"frobnicate"* ]]'

"$rill" >/dev/null 2>&1; rc=$?
check "no command exits 2" '[ $rc -eq 2 ]'
out=$("$rill" bench engine --dir "$tmp" --shards 2 --events 20000 --durability group --json); rc=$?
check "bench engine exits 0" '[ $rc -eq 0 ]'
check "bench engine prints events_per_s and both latencies" \
	'python3 -c "import json,sys; j=json.loads(sys.argv[1]); assert j[\"events_per_s\"] > 0 and j[\"applied\"][\"count\"] == 20000 and j[\"durable\"][\"count\"] == 20000 and j[\"errors\"] == 0 and j[\"shard_preempted\"] >= 0 and 0 <= j[\"cpu_steal_pct\"] <= 100" "$out"'
check "bench engine leaves no data behind" '[ -z "$(ls -A "$tmp")" ]'
out=$("$rill" bench engine --events 2000 --rate 200000 --baseline); rc=$?
check "bench engine --baseline exits 0" '[ $rc -eq 0 ]'
check "bench engine --baseline prints the lateness" '[[ "$out" == *"\"lateness\": {\"count\": "* ]]'
err=$("$rill" bench engine --shards 0 2>&1 >/dev/null); rc=$?
check "bench engine refuses --shards 0 with status 2" '[ $rc -eq 2 ] && [[ "$err" == *"--shards"* ]]'

# --help and -h: every command and subcommand prints its usage on stdout and exits 0 (they
# used to be read as a file name, or as an option missing its value). The commands are
# the README's (its command-line table) and their groups.
readme="$(dirname "$0")/../../README.md"
# One line per row of the README's table: "COMMAND WORDS|--flag --flag ...".
readme_rows() {
	python3 - "$readme" <<'PY'
import re, sys
for row in open(sys.argv[1]):
    if not row.startswith("| `rill "):
        continue
    words = []
    for w in re.split(r"(?<!\\)\|", row)[1].strip().strip("`").split()[1:]:
        if not re.fullmatch(r"[a-z]+", w):
            break
        words.append(w)
    print(" ".join(words) + "|" + " ".join(sorted(set(re.findall(r"--[a-z][a-z0-9-]*", row)))))
PY
}
rows=$(readme_rows)
check "the README's table lists the commands" '[ "$(wc -l <<<"$rows")" -ge 20 ]'
while IFS='|' read -r cmd _; do
	for h in --help -h; do
		# shellcheck disable=SC2086 # the command's words
		out=$(timeout 10 "$rill" $cmd $h </dev/null 2>"$tmp/help.err"); rc=$?
		check "rill $cmd $h prints its usage and exits 0" \
			'[ $rc -eq 0 ] && [ -n "$out" ] && [ ! -s "$tmp/help.err" ]'
	done
done < <(echo "$rows"; printf '%s|\n' log schema bench topic projection group)

# `rill help` is the README's table: the same commands, and each with every flag its row
# names (the row's synopsis and what it says of them), and no other; so is each command's
# own --help.
# An entry of `rill help` is a line indented by two spaces, with the lines indented more
# after it; its command is the words before its first option or argument.
"$rill" help >"$tmp/help.txt"
help_problems() {
	python3 - "$tmp/help.txt" "$rill" "$rows" <<'PY'
import re, subprocess, sys
entries, cur = {}, None
for line in open(sys.argv[1]).read().split("\n"):
    if re.match(r"  \S", line):
        words = []
        for w in re.split(r"\s{2,}", line[2:])[0].split():
            if not re.fullmatch(r"[a-z]+", w):
                break
            words.append(w)
        cur = " ".join(words)
        entries[cur] = line
    elif line.startswith("   ") and cur is not None:
        entries[cur] += "\n" + line
    else:
        cur = None
seen = set()
for row in sys.argv[3].splitlines():
    cmd, flags = row.split("|")
    seen.add(cmd)
    if cmd not in entries:
        print("rill help has no entry for '%s'" % cmd)
        continue
    own = subprocess.run([sys.argv[2]] + cmd.split() + ["--help"], capture_output=True,
                         text=True).stdout
    for f in flags.split():
        pattern = re.escape(f) + r"(?![a-z0-9-])"
        if not re.search(pattern, entries[cmd]):
            print("rill help: %s lacks %s" % (cmd, f))
        if not re.search(pattern, own):
            print("rill %s --help lacks %s" % (cmd, f))
    # And the other way: what the entry and the --help's synopsis (its "usage:" line and
    # the option lines under it) name is in the README's row (--connect: in its prose).
    synopsis = re.search(r"^usage:.*(\n\s+[\[-].*)*", own, re.M)
    named = re.findall(r"--[a-z][a-z0-9-]*", entries[cmd] + (synopsis[0] if synopsis else ""))
    for f in sorted(set(named) - set(flags.split()) - {"--connect", "--help"}):
        print("the README's row for %s lacks %s" % (cmd, f))
for cmd in sorted(set(entries) - seen):
    print("the README's table has no row for '%s'" % cmd)
PY
}
problems=$(help_problems)
[ -n "$problems" ] && echo "$problems"
check "rill help and each --help list every flag of the README's table" '[ -z "$problems" ]'
exit $fail
