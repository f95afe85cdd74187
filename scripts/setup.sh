#!/usr/bin/env bash
# Installs what rill needs to build, test and benchmark, from Debian's packages only.
# Idempotent: asks apt-get only for packages that are not installed yet, so a second run
# on a ready machine does no network work at all. Needs root (or sudo) the first time.
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config gcc g++ clang libclang-rt-14-dev clang-format
	# libraries the engine links
	liburing-dev libdpdk-dev libjemalloc-dev libxxhash-dev libisal-dev libjansson-dev
	libinih-dev
	# tests and benchmarks
	libcmocka-dev libbenchmark-dev fio python3
	# the peer comparison (scripts/bench-peers.sh)
	redis-server redis-tools
)

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
echo "setup: done"
