#!/usr/bin/env bash
# scripts/setup.sh's package sets: `--run` (what scripts/run.sh asks for) holds what the
# release build needs, every package that provides a dependency meson.build requires
# included, and no test or benchmark tool and no redis-server, whose Debian package starts
# a Redis at every boot; the default set (scripts/test.sh, bench-peers.sh) holds them all.
# Then the install path with apt-get, dpkg-query, sudo and the service tools stubbed on
# PATH: only missing packages are asked for, none when all are there, and a redis-server
# this run installed has its service stopped and disabled, one already there left alone.
# usage: test_setup.sh RILL_BINARY (unused: the script is found beside the tests)
. "$(dirname "$0")/../common/test_env.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
setup=$root/scripts/setup.sh

# The package that provides each dependency() meson requires (no `required:`): the owner
# of its .pc file, asked before dpkg-query is stubbed below. "DEPENDENCY PACKAGE" lines.
dep_pkgs=""
if command -v pkg-config >/dev/null && command -v dpkg >/dev/null; then
	for d in $(find "$root" -path "$root/build" -prune -o -name meson.build -print |
		xargs grep -oh "dependency('[^']*')" | sed "s/dependency('\(.*\)')/\1/" | sort -u); do
		case "$d" in threads|dl) continue ;; esac # the C library's, no package of its own
		pc=$(pkg-config --path "$d" 2>/dev/null) || pc=""
		pkg=""
		[ -z "$pc" ] || pkg=$(dpkg -S "$pc" 2>/dev/null | head -n1 | cut -d: -f1)
		dep_pkgs+="$d ${pkg:-?}"$'\n'
	done
fi

# Stubs next, before any run: a setup.sh that ignored its options would otherwise install
# packages on this machine. dpkg-query says installed what FAKE_INSTALLED lists (or all).
bin=$tmp/bin
mkdir -p "$bin"
cat >"$bin/dpkg-query" <<'EOF'
#!/usr/bin/env bash
[ "$FAKE_INSTALLED" = all ] && { printf 'install ok installed'; exit 0; }
for p in $FAKE_INSTALLED; do
	[ "$p" = "${!#}" ] && { printf 'install ok installed'; exit 0; }
done
exit 1
EOF
printf '#!/bin/sh\nexec "$@"\n' >"$bin/sudo"
for tool in apt-get systemctl service update-rc.d; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$tool" "$tmp/calls.log" >"$bin/$tool"
done
chmod +x "$bin"/*
export PATH="$bin:$PATH" FAKE_INSTALLED=all
: >"$tmp/calls.log"

run_set=$("$setup" --print-packages --run); rc=$?
check "setup.sh --print-packages --run exits 0" '[ $rc -eq 0 ]'
full_set=$("$setup" --print-packages); rc=$?
check "setup.sh --print-packages exits 0" '[ $rc -eq 0 ]'
check "... and printing installed nothing" '[ ! -s "$tmp/calls.log" ]'
has() { grep -qx -- "$2" <<<"$1"; }

for p in redis-server redis-tools fio libbenchmark-dev clang; do
	check "the run set has no $p" '! has "$run_set" "$p"'
done
for p in meson ninja-build pkg-config gcc g++; do # meson.build's languages: C and C++
	check "the run set has $p" 'has "$run_set" "$p"'
done
if [ -n "$dep_pkgs" ]; then
	while read -r d pkg; do
		check "meson's dependency $d (package $pkg) is in the run set" 'has "$run_set" "$pkg"'
	done <<<"${dep_pkgs%$'\n'}"
else
	echo "skip: no pkg-config or dpkg to map meson's dependencies to packages"
fi
for p in $run_set; do
	check "the full set has $p too" 'has "$full_set" "$p"'
done
for p in redis-server redis-tools fio libbenchmark-dev libcmocka-dev clang python3; do
	check "the full set has $p (tests and benchmarks)" 'has "$full_set" "$p"'
done
check "run.sh asks for the run set" 'grep -qx "scripts/setup.sh --run >&2" "$root/scripts/run.sh"'
check "test.sh and bench-peers.sh ask for the full set" \
	'grep -qx "scripts/setup.sh || .*" "$root/scripts/test.sh" &&
	 grep -qx "scripts/setup.sh" "$root/scripts/bench-peers.sh"'

# The install path, against the stubs.
FAKE_INSTALLED='' "$setup" --run >/dev/null; rc=$?
check "setup.sh --run on a bare machine exits 0" '[ $rc -eq 0 ]'
check "... installs the run set, redis-server not among it" \
	'grep -q "^apt-get install .* liburing-dev" "$tmp/calls.log" && ! grep -q "redis" "$tmp/calls.log"'
: >"$tmp/calls.log"
FAKE_INSTALLED='' "$setup" >/dev/null; rc=$?
check "setup.sh on a bare machine exits 0" '[ $rc -eq 0 ]'
check "... installs redis-server" 'grep -q "^apt-get install .* redis-server" "$tmp/calls.log"'
if [ -d /run/systemd/system ] || [ -x /etc/init.d/redis-server ]; then
	check "... and stops and disables the service its package started" \
		'grep -qx "systemctl disable --now redis-server.service" "$tmp/calls.log" ||
		 { grep -qx "service redis-server stop" "$tmp/calls.log" &&
		   grep -qx "update-rc.d redis-server disable" "$tmp/calls.log"; }'
else
	echo "skip: neither systemd nor /etc/init.d/redis-server here: no service to stop"
fi
: >"$tmp/calls.log"
FAKE_INSTALLED='redis-server redis-tools' "$setup" >/dev/null; rc=$?
check "a redis-server already there is left alone" \
	'[ $rc -eq 0 ] && grep -q "^apt-get install" "$tmp/calls.log" &&
	 ! grep -q "redis" "$tmp/calls.log"'
: >"$tmp/calls.log"
FAKE_INSTALLED=all "$setup" >/dev/null; rc=$?
check "with everything installed it asks apt-get for nothing" '[ $rc -eq 0 ] && [ ! -s "$tmp/calls.log" ]'
exit $fail
