#!/usr/bin/env bash
# Installs what rill needs, from Debian's packages only: by default everything to build,
# test and benchmark it (scripts/test.sh, scripts/bench-peers.sh); with --run only what
# building the release and running the server need (scripts/run.sh): no test or benchmark
# tools and no redis-server, whose Debian package starts a Redis at every boot.
# Idempotent: asks apt-get only for packages that are not installed yet, so a second run
# on a ready machine does no network work at all. Needs root (or sudo) the first time.
# A redis-server installed by this script (for bench-peers.sh, which starts its own on a
# port of its own) has the system service Debian's package enables stopped and disabled
# right after; one the machine had before is left as it was.
#
# usage: scripts/setup.sh [--run] [--print-packages]
#   --run             the build-and-run set only
#   --print-packages  print the set, one package a line, and install nothing
set -euo pipefail

run_only=0
print=0
while [ $# -gt 0 ]; do
	case "$1" in
	--run) run_only=1 ;;
	--print-packages) print=1 ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "setup: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

packages=(
	# build (meson's project languages are C and C++)
	meson ninja-build pkg-config gcc g++
	# libraries the engine links (DPDK for the --dpdk ingress)
	liburing-dev libdpdk-dev libjemalloc-dev libxxhash-dev libisal-dev libjansson-dev
	libinih-dev
	# meson configures tests/ in every build, and it requires cmocka
	libcmocka-dev
)
if [ "$run_only" -eq 0 ]; then
	packages+=(
		# the sanitizer and fuzzing builds, formatting (scripts/test.sh)
		clang libclang-rt-14-dev clang-format
		# benchmarks and the test summary (bench-micro.sh, bench-log.sh, test-summary.py)
		libbenchmark-dev fio python3
		# the peer comparison (scripts/bench-peers.sh)
		redis-server redis-tools
	)
fi

if [ "$print" -eq 1 ]; then
	printf '%s\n' "${packages[@]}"
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "setup: all ${#packages[@]} packages present"
	exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "setup: need root or sudo to install packages" >&2; exit 1; }
	sudo="sudo"
fi
# Through env, not export: sudo resets the environment, and a debconf prompt would stop a
# non-root run waiting for input.
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
# A fresh machine has no package lists; apt-get install alone would find nothing.
$sudo "${apt[@]}" update -qq
$sudo "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"

# Debian's redis-server enables and starts a Redis on 127.0.0.1:6379, at once and at every
# boot; bench-peers.sh needs only the binaries. Only a server this run installed is
# stopped: a Redis the machine had before is someone's.
for p in "${missing[@]}"; do
	[ "$p" = redis-server ] || continue
	echo "setup: redis-server is for bench-peers.sh, which runs its own: stopping and" \
		"disabling the service Debian's package started on 127.0.0.1:6379"
	if [ -d /run/systemd/system ]; then
		$sudo systemctl disable --now redis-server.service ||
			echo "setup: could not: systemctl disable --now redis-server stops it" >&2
	elif [ -x /etc/init.d/redis-server ]; then
		{ $sudo service redis-server stop && $sudo update-rc.d redis-server disable; } ||
			echo "setup: could not: service redis-server stop; update-rc.d redis-server disable" >&2
	fi
done
echo "setup: done"
