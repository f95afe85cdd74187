# Shared by the shell tests that run `rill serve` (tests/integration/test_server.sh,
# tests/crash/test_server_crash.sh, tests/cli/test_bench_cli.sh, test_serve_dpdk.sh,
# test_no_dpdk.sh);
# sourced after test_env.sh, not run. It starts a server on an ephemeral port and waits for
# its "listening on" line with a time limit (never a blind sleep), stops it with SIGTERM
# within a time limit, kills it with SIGKILL, and at exit (test_env.sh's at_exit) kills
# whatever server is still running.
#
#   serve_start DATA_DIR LOG_FILE [ARGS...]  start; sets serve_pid and serve_addr; 0 or 1
#   serve_start_or_skip DATA_DIR LOG_FILE [ARGS...]
#                                            serve_start, or exit: 77 (SKIP) where
#                                            serve_unsupported, else 1 (FAIL)
#   serve_stop [SECONDS]                     SIGTERM; sets serve_rc (its exit status, or
#                                            "timeout" when it was still running after
#                                            SECONDS, default 10, and was killed); 0 or 1
#   serve_kill                               SIGKILL and reap
#   serve_cleanup                            for the EXIT trap: SIGKILL a live server
#   serve_unsupported LOG_FILE               true when the server could not start because
#                                            this kernel lacks what it needs (io_uring, or
#                                            its provided buffer rings: Linux 5.19): skip

serve_pid=
serve_addr=
serve_rc=
SERVE_START_S=${RILL_SERVE_START_S:-20} # open and recovery of a small data directory

# Seconds since the epoch with microseconds, as an integer of microseconds.
serve_now_us() {
    local t=${EPOCHREALTIME/./}
    echo "$t"
}

# True while process $1 runs (a zombie, exited but not yet reaped, counts as gone).
serve_alive() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    read -r _ _ state _ <"/proc/$1/stat" || return 1
    [ "$state" != Z ]
}

serve_start() {
    local data=$1 log=$2
    shift 2
    : >"$log"
    "$rill" serve --data "$data" --listen 127.0.0.1:0 "$@" 2>"$log" &
    serve_pid=$!
    serve_addr=
    local deadline=$(($(serve_now_us) + SERVE_START_S * 1000000))
    while :; do
        local line
        line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9][0-9]*$' "$log")
        if [ -n "$line" ]; then
            serve_addr=${line#listening on }
            return 0
        fi
        if ! serve_alive "$serve_pid"; then
            wait "$serve_pid"
            echo "serve: the server exited with status $? before listening:" >&2
            cat "$log" >&2
            serve_pid=
            return 1
        fi
        if [ "$(serve_now_us)" -ge "$deadline" ]; then
            echo "serve: no 'listening on' line within $SERVE_START_S s:" >&2
            cat "$log" >&2
            serve_kill
            return 1
        fi
        sleep 0.02
    done
}

serve_stop() {
    local limit=${1:-10}
    serve_rc=
    [ -n "$serve_pid" ] || return 1
    kill -TERM "$serve_pid" 2>/dev/null
    local deadline=$(($(serve_now_us) + limit * 1000000))
    while serve_alive "$serve_pid"; do
        if [ "$(serve_now_us)" -ge "$deadline" ]; then
            serve_kill
            serve_rc=timeout
            return 1
        fi
        sleep 0.02
    done
    wait "$serve_pid"
    serve_rc=$?
    serve_pid=
    return 0
}

serve_kill() {
    [ -n "$serve_pid" ] || return 0
    kill -KILL "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    serve_pid=
}

serve_cleanup() {
    if [ -n "$serve_pid" ] && serve_alive "$serve_pid"; then
        kill -KILL "$serve_pid" 2>/dev/null
        wait "$serve_pid" 2>/dev/null
    fi
    serve_pid=
}

serve_unsupported() {
    grep -q -e "io_uring_queue_init: " -e "io_uring_register_buf_ring: " "$1"
}

serve_start_or_skip() {
    serve_start "$@" && return 0
    if serve_unsupported "$2"; then
        echo "SKIP: rill serve cannot run on this kernel: $(cat "$2")"
        exit 77
    fi
    echo "FAIL: rill serve did not start"
    exit 1
}

at_exit serve_cleanup
