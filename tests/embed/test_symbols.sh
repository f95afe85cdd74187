#!/usr/bin/env bash
# The shared library exports the rill_ names only (librill.map): an internal function
# exported under a plain name (engine_error, shard_main...) could be replaced by a host's
# function of the same name, and was (a review made rill_engine_open accept 1000 shards).
# usage: test_symbols.sh LIBRILL_SO
set -euo pipefail
lib=$1
command -v nm >/dev/null || { echo "test_symbols: nm is missing (binutils)" >&2; exit 1; }
all=$(nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }')
[ -n "$all" ] || { echo "test_symbols: $lib exports nothing at all" >&2; exit 1; }
others=$(printf '%s\n' "$all" | grep -v '^rill_' || true)
if [ -n "$others" ]; then
	echo "test_symbols: $lib exports names outside rill_*:" >&2
	printf '  %s\n' $others >&2
	exit 1
fi
for want in rill_engine_open rill_server_start rill_client_connect rill_strerror; do
	printf '%s\n' "$all" | grep -qx "$want" || { echo "test_symbols: $want is not exported" >&2; exit 1; }
done
echo "test_symbols: $(printf '%s\n' "$all" | wc -l) symbols, all rill_*"
