# Sourced first by the shell tests (usage: TEST.sh RILL_BINARY), not run. It sets -u, $rill
# (the binary: the first argument), $tmp (a fresh temporary directory) and fail=0, and
# sources check.sh; the test exits with "$fail" at its end. At exit the commands given to
# at_exit run, the last given first, and then $tmp is removed; SIGINT and SIGTERM exit 1,
# the same way out.
#
#   at_exit COMMAND   run COMMAND (eval'd) at exit, before $tmp goes

set -u
rill=$1
tmp=$(mktemp -d)
fail=0
test_env_at_exit=

at_exit() { test_env_at_exit="$1; $test_env_at_exit"; }

trap 'eval "$test_env_at_exit"; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

. "$(dirname "${BASH_SOURCE[0]}")/check.sh"
