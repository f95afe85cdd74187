#!/usr/bin/env bash
# What the README tells an embedding host to use, `pkg-config --cflags --libs rill`, gives
# include paths only: DPDK's Cflags (-include rte_config.h, -march=corei7, its RTE_ macros)
# once came along with it into every file of the host. A program built with those flags
# against the shared library runs, and one against the static library (pkg-config --static):
# all from an install into a temporary folder (DESTDIR), whose only program is rill.
# And in that program malloc is jemalloc's: with `-lrill` alone the host's libraries came
# in the order librill, libc, librill's libjemalloc after libc, so malloc was glibc's for
# the whole process and every shard took jemalloc's slow explicit-arena path (alloc/arena.h).
# usage: test_pkgconfig.sh BUILD_DIR [CC] [SANITIZERS]
#        (CC: the build's C compiler, default cc; SANITIZERS: its b_sanitize, default none)
set -euo pipefail
build=$1 cc=${2:-cc} sanitize=${3:-none}
sanitize_flags=
[ "$sanitize" = none ] || sanitize_flags="-fsanitize=$sanitize"
command -v pkg-config >/dev/null || { echo "test_pkgconfig: pkg-config is missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name rill.pc -print -quit)
[ -n "$pc" ] || { echo "test_pkgconfig: the install has no rill.pc" >&2; exit 1; }
# The only program installed is rill (rill-bench-micro, a developer's tool, once was too).
programs=$(find "$tmp/root" -path '*/bin/*' \( -type f -o -type l \) -printf '%f\n' | sort)
[ "$programs" = rill ] || { echo "test_pkgconfig: the install's programs are not rill alone:" $programs >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root
cflags=$(pkg-config --cflags rill)
for bad in -march -include dpdk -mno -msse; do
	case " $cflags " in
	*"$bad"*) echo "test_pkgconfig: pkg-config --cflags rill has '$bad': $cflags" >&2; exit 1 ;;
	esac
done
libs=$(pkg-config --libs rill)
case " $libs " in *" -lrill "*) ;; *) echo "test_pkgconfig: no -lrill in '$libs'" >&2; exit 1 ;; esac
cat >"$tmp/host.c" <<'C'
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <rill/client.h>
#include <rill/rill.h>
#ifdef RTE_CACHE_LINE_SIZE
#error "DPDK's configuration reached the host"
#endif
/* malloc as the whole process resolves it comes from the object that defines mallctl. */
static int malloc_is_jemalloc(void)
{
	void *m = dlsym(RTLD_DEFAULT, "malloc"), *ctl = dlsym(RTLD_DEFAULT, "mallctl");
	Dl_info mi, ci;
	if (m == NULL || ctl == NULL || !dladdr(m, &mi) || !dladdr(ctl, &ci)) {
		fprintf(stderr, "host: malloc %p, mallctl %p: jemalloc is not loaded\n", m, ctl);
		return 0;
	}
	if (mi.dli_fbase != ci.dli_fbase) {
		fprintf(stderr, "host: malloc is %s's, not jemalloc's (%s)\n", mi.dli_fname,
			ci.dli_fname);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	if (strcmp(rill_strerror(0), "success") != 0)
		return 1;
	/* A sanitizer's malloc is the program's own: nothing to check then. */
	return argc > 1 && strcmp(argv[1], "--malloc") == 0 && !malloc_is_jemalloc() ? 1 : 0;
}
C
libdir=$(pkg-config --variable=libdir rill)
case "$libdir" in "$tmp/root"/*) ;; *) libdir=$tmp/root$libdir ;; esac # sysroot'd or not
# shellcheck disable=SC2086 # the flags are words
"$cc" -std=c11 -Wall -Werror $sanitize_flags $cflags -o "$tmp/host" "$tmp/host.c" $libs \
	-Wl,-rpath,"$libdir"
if [ "$sanitize" = none ]; then
	"$tmp/host" --malloc || { echo "test_pkgconfig: a host linked with '$libs' does not get jemalloc's malloc" >&2; exit 1; }
else
	"$tmp/host"
fi
echo "test_pkgconfig: cflags '$cflags' and libs '$libs' build and run a host"

# Statically, with the installed librill.a (the shared library removed, so -lrill finds
# it): a host with functions named like rill's internals (engine_error, schema_from_json,
# log_index_add, srv_name) links, and each side keeps its own. The archive of the build's
# objects made every one of them a "multiple definition" at the host's link.
rm -f "$libdir"/librill.so*
cat >"$tmp/host_static.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <rill/rill.h>
#include <rill/server.h>
/* Same names as rill's internals; this one accepts whatever it is given. */
int engine_error(void *err, int code, const char *fmt, ...);
int schema_from_json(void);
int log_index_add(void);
void srv_name(void);
int engine_error(void *err, int code, const char *fmt, ...)
{
	(void)err, (void)code, (void)fmt;
	return 0;
}
int schema_from_json(void) { return 1; }
int log_index_add(void) { return 2; }
void srv_name(void) {}

int main(int argc, char **argv)
{
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = argc > 1 ? argv[1] : "data";
	cfg.shards = 1000; /* more than RILL_ENGINE_SHARDS_MAX: rill's engine_error refuses */
	struct rill_engine *engine = NULL;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&engine, &cfg, &err);
	if (rc != -22 || strstr(err.message, "shards") == NULL) {
		fprintf(stderr, "host: rill_engine_open with 1000 shards: %d \"%s\"\n", rc,
			err.message);
		return 1;
	}
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	srv_name();
	return engine_error(NULL, 0, "") + schema_from_json() + log_index_add() == 3 ? 0 : 1;
}
C
static_libs=$(pkg-config --static --libs rill)
# shellcheck disable=SC2086 # the flags are words
"$cc" -std=c11 -Wall -Werror $sanitize_flags $cflags -o "$tmp/host_static" "$tmp/host_static.c" \
	$static_libs
if readelf -d "$tmp/host_static" | grep -q 'librill\.so'; then
	echo "test_pkgconfig: the static host still needs librill.so" >&2
	exit 1
fi
"$tmp/host_static" "$tmp/data"
echo "test_pkgconfig: a host with names of rill's internals links librill.a statically ('$static_libs')"
