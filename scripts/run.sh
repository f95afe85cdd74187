#!/usr/bin/env bash
# The engine's main job, from a fresh Debian 12 machine: install what building and running
# need and is missing (scripts/setup.sh --run: no test or benchmark tools, no Redis), build
# the release, then run the server in the foreground with its embedded defaults: data in
# ./data, listening on 127.0.0.1:7400 (loopback only), one shard per CPU. Ctrl-C (SIGINT)
# or SIGTERM stops it cleanly (drain, final sync, exit 0). Arguments go to `rill serve`
# (try --help), e.g. scripts/run.sh --listen 127.0.0.1:7500 --data /var/lib/rill.
# The server runs in the directory run.sh was started from: ./data and relative paths
# given (--data, --config) are the caller's, wherever the checkout is.
set -euo pipefail
here=$PWD
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh --run >&2
mkdir -p build
if [ ! -d build/release/meson-private ]; then
	meson setup build/release -Dbuildtype=release >&2
fi
ninja -C build/release >&2
echo "run.sh: rill $(build/release/rill version | cut -d' ' -f2): starting the server" \
	"(scripts/bench-micro.sh runs the micro-benchmarks)" >&2
cd "$here"
exec "$root/build/release/rill" serve "$@"
