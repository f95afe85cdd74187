#!/usr/bin/env bash
# The engine's main job, from a fresh Debian 12 machine: install what is missing, build the
# release, then run. rill has no server yet (it arrives with the io_uring ingress), so for
# now the main job is the micro-benchmark suite: it prints the median rates and the ratios
# to the baselines (DPDK's rte_ring, jemalloc, glibc) as JSON. Arguments go to
# scripts/bench-micro.sh (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
# Set-up and build chatter goes to stderr, so stdout carries the JSON alone.
exec 3>&1 1>&2
scripts/setup.sh
mkdir -p build
if [ ! -d build/release/meson-private ]; then
	meson setup build/release -Dbuildtype=release
fi
ninja -C build/release
echo "run.sh: rill $(build/release/rill version | cut -d' ' -f2): no server yet;" \
	"running the micro-benchmarks (scripts/bench-micro.sh)" >&2
exec scripts/bench-micro.sh "$@" >&3
