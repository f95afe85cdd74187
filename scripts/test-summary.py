#!/usr/bin/env python3
"""Counts every test of every build that scripts/test.sh ran and prints one closing line,
'N passed, N failed' (', N skipped' after it when any were skipped).

Each build's meson-logs/testlog.json lists its test programs. A cmocka program counts as
its cases, read from cmocka's own summary lines; any other program (the CLI checks, a fuzz
run) counts as one. A program that failed without a cmocka summary (a crash, a sanitizer
report, a timeout) counts as one failure. A build that did not compile is named on the
command line as BUILD=failed and counts as one failure; BUILD=tests-failed (meson test
exited non-zero) counts at least one failure whatever the log says.

usage: test-summary.py BUILD_DIR[=failed|=tests-failed] ...
"""
import json
import os
import re
import sys

PASSED = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)\.", re.M)
FAILED = re.compile(r"^\[  FAILED  \] (\d+) test\(s\), listed below:", re.M)
SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) test\(s\), listed below:", re.M)


def count_build(path):
    passed = failed = skipped = 0
    log = os.path.join(path, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"test-summary: {path}: no test log (did the build run?)", file=sys.stderr)
        return 0, 1, 0
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            entry = json.loads(line)
            result = entry.get("result")
            text = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
            p = sum(int(n) for n in PASSED.findall(text))
            x = sum(int(n) for n in FAILED.findall(text))
            s = sum(int(n) for n in SKIPPED.findall(text))
            if result == "SKIP":
                skipped += 1
            elif result in ("OK", "EXPECTEDFAIL") and not x:
                if p or s:
                    passed += p
                    skipped += s
                else:
                    passed += 1
            else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, or cmocka failures behind an OK
                passed += p
                skipped += s
                failed += x if x else 1
                print(f"test-summary: {os.path.basename(path)}: {entry.get('name')}: {result}",
                      file=sys.stderr)
    return passed, failed, skipped


def main(argv):
    total = [0, 0, 0]
    for arg in argv[1:]:
        path, _, state = arg.partition("=")
        if state == "failed":
            print(f"test-summary: {path}: build failed", file=sys.stderr)
            counts = (0, 1, 0)
        else:
            counts = count_build(path)
            if state == "tests-failed" and counts[1] == 0:
                print(f"test-summary: {path}: meson test failed", file=sys.stderr)
                counts = (counts[0], 1, counts[2])
        total = [a + b for a, b in zip(total, counts)]
    line = f"{total[0]} passed, {total[1]} failed"
    if total[2]:
        line += f", {total[2]} skipped"
    print(line)
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
