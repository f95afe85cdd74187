#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time from a fresh seed corpus.
# usage: run-fuzz.sh FUZZER SEED_GENERATOR SECONDS CORPUS_DIR [MAX_LEN]
# MAX_LEN: the largest input libFuzzer makes (default: its own, which stays at 4 KiB when
# the seeds are small); targets that read large inputs (frames, snapshots) pass more.
set -euo pipefail
fuzzer=$1 seedgen=$2 seconds=$3 corpus=$4 max_len=${5:-0}
rm -rf "$corpus" && mkdir -p "$corpus"
"$seedgen" "$corpus"
# -seed makes a failing run replayable; RILL_FUZZ_SEED overrides it.
seed=${RILL_FUZZ_SEED:-$(date +%s)}
echo "fuzz: $(basename "$fuzzer") for ${seconds}s, -seed=$seed"
# -error_exitcode=1: libFuzzer's own default, 77, is what meson reads as "skipped".
exec "$fuzzer" -seed="$seed" -max_total_time="$seconds" -print_final_stats=1 -error_exitcode=1 \
	-max_len="$max_len" -artifact_prefix="$corpus/../" "$corpus"
