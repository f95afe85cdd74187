#!/usr/bin/env bash
# The libraries' interface is the public headers, no more and no less. The shared library
# exports exactly the functions include/rill/*.h declares (not the static inline ones):
# an internal function exported could be replaced by a host's function of the same name,
# and was (a host's engine_error made rill_engine_open accept 1000 shards; with rill_*
# exported, a host's rill_cpu_count would have replaced rill's), and was called through
# the PLT on every event (rill_partition_write, rill_log_append). A declared function not
# exported is one a host cannot link. The installed static library defines the same
# global names: the archive of the build's objects defined 86 internal ones
# (engine_error, schema_from_json, srv_name...), each a "multiple definition" for a host
# with a function of that name.
# usage: test_symbols.sh LIBRILL_SO LIBRILL_A INCLUDE_DIR
#        (LIBRILL_A: the static library as installed; INCLUDE_DIR: include/rill)
set -euo pipefail
lib=$1 archive=$2 include=$3
command -v nm >/dev/null || { echo "test_symbols: nm is missing (binutils)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The functions the headers declare: a declaration starts at the line's first column with
# its return type (the headers' style; bodies, members and macros are indented or start
# with '#', static inline functions with "static", callback types with "typedef").
grep -hE '^[a-z].*\brill_[a-z0-9_]+\(' "$include"/*.h | grep -vE '^(static|typedef) ' |
	sed -E 's/^[^(]*\b(rill_[a-z0-9_]+)\(.*/\1/' | sort -u >"$tmp/declared"
nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/exported"
nm -g --defined-only "$archive" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/static"
for want in rill_engine_open rill_server_start rill_client_connect rill_strerror; do
	grep -qx "$want" "$tmp/declared" || { echo "test_symbols: $want not found in $include/*.h" >&2; exit 1; }
done

# differ WHAT A B: fails naming what A has and B lacks.
differ() {
	local extra
	extra=$(comm -23 "$2" "$3")
	if [ -n "$extra" ]; then
		echo "test_symbols: $1 ($(printf '%s\n' "$extra" | wc -l)):" >&2
		printf '  %s\n' $extra >&2
		exit 1
	fi
}
differ "$lib exports names no public header declares" "$tmp/exported" "$tmp/declared"
differ "$lib does not export these functions of the public headers (librill.map)" \
	"$tmp/declared" "$tmp/exported"
differ "$archive defines global names no public header declares" "$tmp/static" "$tmp/declared"
differ "$archive does not define these functions of the public headers" \
	"$tmp/declared" "$tmp/static"
echo "test_symbols: $lib and $archive define the $(wc -l <"$tmp/declared") functions" \
	"of $include/*.h, no other"
