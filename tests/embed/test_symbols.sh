#!/usr/bin/env bash
# The shared library exports the rill_ names only (librill.map): an internal function
# exported under a plain name (engine_error, shard_main...) could be replaced by a host's
# function of the same name, and was (a review made rill_engine_open accept 1000 shards).
# The installed static library likewise defines no other global name: the archive of the
# build's objects defined 86 (engine_error, schema_from_json, srv_name...), each a
# "multiple definition" for a host with a function of that name.
# usage: test_symbols.sh LIBRILL_SO LIBRILL_A (the static library as installed)
set -euo pipefail
lib=$1 archive=$2
command -v nm >/dev/null || { echo "test_symbols: nm is missing (binutils)" >&2; exit 1; }

# only_rill WHAT NAMES: fails naming the names outside rill_*.
only_rill() {
	local others
	others=$(printf '%s\n' "$2" | grep -v '^rill_' || true)
	if [ -n "$others" ]; then
		echo "test_symbols: $1 has global names outside rill_*:" >&2
		printf '  %s\n' $others >&2
		exit 1
	fi
}

all=$(nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }')
[ -n "$all" ] || { echo "test_symbols: $lib exports nothing at all" >&2; exit 1; }
only_rill "$lib" "$all"
for want in rill_engine_open rill_server_start rill_client_connect rill_strerror; do
	printf '%s\n' "$all" | grep -qx "$want" || { echo "test_symbols: $want is not exported" >&2; exit 1; }
done

static=$(nm -g --defined-only "$archive" | awk 'NF == 3 { print $3 }' | sort -u)
[ -n "$static" ] || { echo "test_symbols: $archive defines nothing at all" >&2; exit 1; }
only_rill "$archive" "$static"
echo "test_symbols: $(printf '%s\n' "$all" | wc -l) symbols in $lib," \
	"$(printf '%s\n' "$static" | wc -l) in $archive, all rill_*"
