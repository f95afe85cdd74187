#!/usr/bin/env bash
# The `rill` command's front door: `rill version` answers, an unknown command exits with
# status 2 (not a crash) and names itself in the message, no arguments prints usage.
# usage: test_cli.sh RILL_BINARY
set -u
rill=$1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

out=$("$rill" version); rc=$?
check "version exits 0" '[ $rc -eq 0 ]'
check "version prints the version" '[[ "$out" == "rill "* ]]'

err=$("$rill" frobnicate 2>&1 >/dev/null); rc=$?
check "unknown command exits 2" '[ $rc -eq 2 ]'
check "unknown command is named" '[[ "$err" == *"frobnicate"* ]]'

"$rill" >/dev/null 2>&1; rc=$?
check "no command exits 2" '[ $rc -eq 2 ]'
exit $fail
