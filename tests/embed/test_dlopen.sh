#!/usr/bin/env bash
# librill.so loaded with dlopen() (Python's ctypes, a plugin host), as the README's
# embedding section says: Debian's libjemalloc.so.2 uses static TLS, which a library
# loaded after start-up may not get ("cannot allocate memory in static TLS block"); with
# GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536 or LD_PRELOAD=libjemalloc.so.2 it
# loads. Without either it must load or fail with that message only. Skipped (77) in
# sanitizer builds, whose library needs the sanitizer's runtime first in the program, and
# where glibc has no such tunable (before 2.32).
# usage: test_dlopen.sh TEST_DLOPEN LIBRILL_SO [SANITIZERS]
set -euo pipefail
helper=$1 lib=$2 sanitize=${3:-none}
case "$lib" in /*) ;; *) lib=$PWD/$lib ;; esac # dlopen searches for a bare name
tls_message='cannot allocate memory in static TLS block'
tunable=glibc.rtld.optional_static_tls=65536
if [ "$sanitize" != none ]; then
	echo "test_dlopen: skipped: a $sanitize build's library needs its runtime loaded first"
	exit 77
fi
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')
case "$glibc" in
2.[0-9] | 2.[0-9].* | 2.[12][0-9] | 2.[12][0-9].* | 2.3[01] | 2.3[01].* | '')
	echo "test_dlopen: skipped: glibc '${glibc:-unknown}' has no $tunable"
	exit 77 ;;
esac

# run WHAT [VAR=VALUE]: the helper under that environment; its dlerror() in $out.
run() {
	local what=$1
	shift
	if out=$(env "$@" "$helper" "$lib"); then
		echo "test_dlopen: $what: loaded"
		return 0
	fi
	echo "test_dlopen: $what: $out"
	return 1
}

if ! run "plain"; then
	case "$out" in
	*"$tls_message"*) echo "test_dlopen: plain: refused as the README says" ;;
	*) echo "test_dlopen: plain dlopen failed, and not for static TLS" >&2; exit 1 ;;
	esac
fi
run "GLIBC_TUNABLES=$tunable" GLIBC_TUNABLES="$tunable" || exit 1
jemalloc=$(ldd "$lib" | awk '$1 ~ /^libjemalloc/ { print $3; exit }')
[ -n "$jemalloc" ] || { echo "test_dlopen: $lib does not load libjemalloc" >&2; exit 1; }
run "LD_PRELOAD=$jemalloc" LD_PRELOAD="$jemalloc" || exit 1
