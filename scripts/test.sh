#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds rill four ways and runs their tests:
#   release  gcc, -Werror; unit, stress and CLI tests
#   asan     clang, address+undefined sanitizers, debug assertions, libFuzzer smoke runs
#   tsan     gcc, thread sanitizer, debug assertions
#   nodpdk   gcc, built without DPDK (-Ddpdk=disabled): the rest of rill builds and runs
#            without it; its base, io and CLI tests (the CLI's refusals of DPDK included)
# and ends with one line of its own, "N passed, N failed" (", N skipped" when any were),
# counted over every test of every build (scripts/test-summary.py). Exits non-zero on any
# failure, a build that does not compile included.
#
# usage: scripts/test.sh [--long] [--only release|asan|tsan|nodpdk]...
#   --long   the long soak: 500 M items through the ring stress test, 10 minutes per fuzz
#            target, 1,000 kill -9 rounds, 100,000 simulated power cuts (default: 50 M
#            items, 30 s per fuzz target, 100 rounds, 10,000 cuts; a CI run takes minutes).
#            The sanitizer builds run ten times their own CI share of power cuts (asan
#            10,000, tsan 2,000), and every test gets ten times its time limit.
# Environment: RILL_STRESS_ITEMS, RILL_FUZZ_SECONDS, RILL_CRASH_ROUNDS and RILL_TEST_SEED
# override.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

long=0
only=()
while [ $# -gt 0 ]; do
	case "$1" in
	--long) long=1 ;;
	--only)
		case "${2:-}" in
		release|asan|tsan|nodpdk) only+=("$2") ;;
		*) echo "test.sh: --only takes release, asan, tsan or nodpdk, not '${2:-}'" >&2; exit 2 ;;
		esac
		shift ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

scripts/setup.sh || { echo "test.sh: setup failed" >&2; exit 1; }

if [ "$long" = 1 ]; then
	export RILL_STRESS_ITEMS=${RILL_STRESS_ITEMS:-500000000}
	export RILL_CRASH_ROUNDS=${RILL_CRASH_ROUNDS:-1000}
	fuzz_seconds=${RILL_FUZZ_SECONDS:-600}
else
	export RILL_STRESS_ITEMS=${RILL_STRESS_ITEMS:-50000000}
	fuzz_seconds=${RILL_FUZZ_SECONDS:-30}
fi

# name  compiler  meson options
builds=(
	"release gcc   -Dbuildtype=release"
	"asan    clang -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false -Ddasserts=true -Dfuzzing=true -Dfuzz_seconds=$fuzz_seconds"
	"tsan    gcc   -Dbuildtype=debugoptimized -Db_sanitize=thread -Ddasserts=true"
	"nodpdk  gcc   -Dbuildtype=debug -Ddpdk=disabled -Dbenchmarks=disabled"
)
# The meson test arguments of a build that runs only some suites (default: every test).
declare -A suites=([nodpdk]="--suite base --suite io --suite cli")

wanted() {
	[ "${#only[@]}" -eq 0 ] && return 0
	local o
	for o in "${only[@]}"; do [ "$o" = "$1" ] && return 0; done
	return 1
}

mkdir -p build
results=()
for b in "${builds[@]}"; do
	read -r name compiler opts <<<"$b"
	wanted "$name" || continue
	dir="build/$name"
	echo "=== $name build ($compiler $opts)"
	if [ "$compiler" = clang ]; then cxx=clang++; else cxx=g++; fi
	# shellcheck disable=SC2086 # opts is a list of words
	if [ -d "$dir/meson-private" ]; then
		meson setup --reconfigure "$dir" -Dwerror=true $opts >"$dir.setup.log" 2>&1
	else
		CC=$compiler CXX=$cxx meson setup "$dir" -Dwerror=true $opts >"$dir.setup.log" 2>&1
	fi
	if [ $? -ne 0 ] || ! ninja -C "$dir"; then
		[ -f "$dir.setup.log" ] && tail -n 30 "$dir.setup.log"
		results+=("$dir=failed")
		continue
	fi
	rm -f "$dir/meson-logs/testlog.json"
	# --long: ten times each build's own share (tests/meson.build samples the power cuts
	# of the slower sanitizer builds), and ten times the time limits.
	long_env=() long_args=()
	if [ "$long" = 1 ]; then
		case "$name" in asan) cuts=10000 ;; tsan) cuts=2000 ;; *) cuts=100000 ;; esac
		long_env=("RILL_LOG_POWER_CUTS_LONG=$cuts")
		long_args=(--timeout-multiplier 10)
	fi
	# Sanitizer findings fail the test that made them: halt on the first report. Freed
	# memory is overwritten (its first 4 KiB), so that a read through libc's formatting,
	# which ASan does not check, still shows in the bytes read.
	env "${long_env[@]}" \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:max_free_fill_size=4096} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp} \
		meson test -C "$dir" --num-processes 2 --print-errorlogs "${long_args[@]}" ${suites[$name]:-}
	# meson's own status counts too: an interrupted run leaves a log that undercounts.
	if [ $? -ne 0 ]; then results+=("$dir=tests-failed"); else results+=("$dir"); fi
done

exec python3 scripts/test-summary.py "${results[@]}"
