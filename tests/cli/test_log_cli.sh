#!/usr/bin/env bash
# `rill log verify` and `rill log dump` on a real log: a log made by `rill bench log --keep`
# verifies (exit 0), dumps as JSON lines, and once a byte in the middle of a segment is
# damaged, verify exits 1 and names the file; verify --repair cuts the log there (the later
# segments go), after which it verifies and still holds the records before the damage; a
# partition folder it cannot read fails it; a stray *.log that is no segment is ignored; an
# empty log shows no offsets.
# usage: test_log_cli.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"

"$rill" bench log --dir "$tmp" --seconds 1 --record-bytes 200 --batch-bytes 8192 \
	--segment-bytes 1048576 --keep >"$tmp/bench.json"
check "bench log ran" '[ $? -eq 0 ] && grep -q events_per_s "$tmp/bench.json"'
part=$(ls -d "$tmp"/rill-bench-log-*)
check "bench log says how it wrote, and the CPU time stolen" \
	'grep -Eq "\"io\":\"(direct|buffered)\"" "$tmp/bench.json" && grep -Eq "\"cpu_steal_pct\":[0-9]" "$tmp/bench.json"'
# With io_uring a write stays in flight while the loop appends; the POSIX fallback
# finishes each at once, so nothing grows there.
if grep -q '"backend":"uring"' "$tmp/bench.json"; then
	check "a closed loop's batches grow past --batch-bytes behind the write in flight" \
		'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not (d[\"grown_batches\"] > 0 and d[\"batch_bytes_peak\"] > 8192))" "$tmp/bench.json"'
else
	echo "skip: batch growth (bench log ran on the POSIX backend)"
fi
out=$("$rill" bench log --dir "$tmp" --seconds 1 --record-bytes 200 --batch-bytes 8192 \
	--fixed-batches)
check "--fixed-batches keeps every batch within --batch-bytes" \
	'python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(not (d[\"grown_batches\"] == 0 and 0 < d[\"batch_bytes_peak\"] <= 8192))" <<<"$out"'
out=$("$rill" bench log --dir "$tmp" --seconds 1 --record-bytes 200 --batch-bytes 8192 \
	--io buffered)
check "--io buffered writes through the page cache" '[[ "$out" == *"\"io\":\"buffered\""* ]]'
"$rill" bench log --dir "$tmp" --seconds 1 --io sideways >/dev/null 2>&1; rc=$?
check "an unknown --io is refused" '[ $rc -eq 2 ]'

out=$("$rill" log verify "$tmp"); rc=$?
check "verify exits 0 on a sound log" '[ $rc -eq 0 ]'
check "verify reports records" '[[ "$out" == *" records"* ]]'

lines=$("$rill" log dump "$part" --from 5 --limit 3)
check "dump prints 3 lines" '[ "$(echo "$lines" | wc -l)" -eq 3 ]'
check "dump starts at offset 5" '[[ "$(echo "$lines" | head -n1)" == "{\"offset\":5,"* ]]'
check "dump lines are JSON" 'echo "$lines" | python3 -c "import json,sys; [json.loads(l) for l in sys.stdin]"'

"$rill" log dump "$part" --from 999999999 >/dev/null 2>&1; rc=$?
check "dump past the end fails" '[ $rc -ne 0 ]'
out=$("$rill" log dump "$(dirname "$part")" 2>&1); rc=$?
check "dump of a folder with no segment (a topic's) exits 1 saying so" \
	'[ $rc -eq 1 ] && [[ "$out" == *"no segment files"* ]]'

first=$(ls "$part"/*.log | head -n1)
size=$(stat -c %s "$first")
printf '\xff' | dd of="$first" bs=1 seek=$((size / 2)) conv=notrunc status=none
out=$("$rill" log verify "$tmp"); rc=$?
check "verify exits 1 on mid-log damage" '[ $rc -eq 1 ]'
check "verify names the damaged file" '[[ "$out" == *"DAMAGED"*"$(basename "$first")"* ]]'
segments_before=$(ls "$part"/*.log | wc -l)
out=$("$rill" log verify "$tmp" --repair); rc=$?
check "verify --repair exits 0 once the log is cut" '[ $rc -eq 0 ]'
check "verify --repair says what it cut" '[[ "$out" == *"REPAIRED"*"segments after it removed"* ]]'
check "the segments after the damage are gone" '[ "$(ls "$part"/*.log | wc -l)" -eq 1 ] && [ "$segments_before" -gt 1 ]'
out=$("$rill" log verify "$tmp"); rc=$?
check "the repaired log verifies" '[ $rc -eq 0 ] && [[ "$out" == *"0 damaged"* ]]'
lines=$("$rill" log dump "$part" --from 0 --limit 2)
check "the repaired log keeps what came before the damage" '[[ "$(echo "$lines" | head -n1)" == "{\"offset\":0,"* ]]'
head -c 700 /dev/urandom >>"$(ls "$part"/*.log | tail -n1)"
out=$("$rill" log verify "$tmp"); rc=$?
check "a torn tail is reported and is not an error" '[ $rc -eq 0 ] && [[ "$out" == *"torn tail (not an error)"* ]]'
"$rill" log verify "$tmp" --frobnicate >/dev/null 2>&1; rc=$?
check "verify with an unknown option exits 2" '[ $rc -eq 2 ]'

"$rill" log verify "$tmp/nowhere" >/dev/null 2>&1; rc=$?
check "verify of a missing directory exits 2" '[ $rc -eq 2 ]'

# A folder verify cannot read may hold a partition: it is reported and fails the run (it
# used to be skipped, and the rest passed). Root reads anything: it runs as nobody then.
mkdir -p "$tmp/perm/a" "$tmp/perm/b"
"$rill" bench log --dir "$tmp/perm/a" --seconds 1 --keep >/dev/null &&
	"$rill" bench log --dir "$tmp/perm/b" --seconds 1 --keep >/dev/null
locked=$(ls -d "$tmp"/perm/b/rill-bench-log-*)
as_user=()
if [ "$(id -u)" -eq 0 ]; then
	chmod -R a+rX "$tmp/perm" && chmod a+x "$tmp"
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
chmod 000 "$locked"
if "${as_user[@]}" "$rill" log verify "$tmp/perm/a" >/dev/null 2>&1; then
	out=$("${as_user[@]}" "$rill" log verify "$tmp/perm"); rc=$?
	check "an unreadable partition folder fails verify, named" \
		'[ $rc -eq 1 ] && [[ "$out" == *"$locked: UNREADABLE"* ]] && [[ "$out" == *"1 unreadable"* ]]'
	# A segment it cannot open is no damage either, and the file is named (it said
	# "DAMAGED: Permission denied" of the folder).
	chmod 755 "$locked"
	seg=$(ls "$locked"/*.log | head -n1)
	chmod 000 "$seg"
	out=$("${as_user[@]}" "$rill" log verify "$tmp/perm"); rc=$?
	check "a segment file verify cannot open fails it as unreadable, the file named" \
		'[ $rc -eq 1 ] && [[ "$out" == *"$locked: UNREADABLE: "*"$seg: cannot open: Permission denied"* ]] && [[ "$out" == *"0 damaged, 1 unreadable"* ]]'
	chmod 644 "$seg"
else
	echo "SKIP: cannot run rill log verify as another user here"
fi
chmod 755 "$locked"

# A stray file named like a segment (24 characters ending in .log: a server's rotated log)
# at DATA's root: verify took DATA for a partition, checked nothing under topics/ and
# passed with a damaged partition below; dump printed nothing and exited 0.
data="$tmp/stray"
mkdir -p "$data/topics/orders"
"$rill" bench log --dir "$data/topics/orders" --seconds 1 --rate 5000 --record-bytes 200 \
	--segment-bytes 65536 --keep >/dev/null
spart=$(ls -d "$data"/topics/orders/rill-bench-log-*)
sfirst=$(ls "$spart"/*.log | head -n1)
size=$(stat -c %s "$sfirst")
printf '\xff' | dd of="$sfirst" bs=1 seek=$((size / 2)) conv=notrunc status=none
echo "rotated" >"$data/server-20250101-0001.log"
out=$("$rill" log verify "$data"); rc=$?
check "a stray *.log at DATA's root does not hide a damaged partition below it" \
	'[ $rc -eq 1 ] && [[ "$out" == *"$spart: DAMAGED"*"$(basename "$sfirst")"* ]]'
mkdir "$tmp/only-stray"
echo "rotated" >"$tmp/only-stray/server-20250101-0001.log"
out=$("$rill" log dump "$tmp/only-stray" 2>&1); rc=$?
check "dump of a folder holding only a stray *.log exits 1 saying so" \
	'[ $rc -eq 1 ] && [[ "$out" == *"no segment files"* ]]'

# An empty log has no offsets to show: verify said "offsets 0..0" (a last offset that
# does not exist) and, for an empty segment at base B (all a log keeps once retention took
# its records), "offsets B..B-1".
empty_segment() { # DIR BASE: a segment file of that base holding no batch
	python3 - "$1" "$2" <<'PY'
import struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
base = int(sys.argv[2])
head = struct.pack("<QIIQQ", 0x314753454C4C4952, 1, 64, base, 1700000000000000000) + bytes(28)
seg = head + struct.pack("<I", crc32c(head)) + bytes(512 - 64)
open("%s/%020d.log" % (sys.argv[1], base), "wb").write(seg)
PY
}
mkdir -p "$tmp/empty/a" "$tmp/empty/b"
empty_segment "$tmp/empty/a" 0 && empty_segment "$tmp/empty/b" 4096
out=$("$rill" log verify "$tmp/empty"); rc=$?
check "verify of an empty log says it has no records, and no offsets" \
	'[ $rc -eq 0 ] && [[ "$out" == *"$tmp/empty/a: ok: 1 segments, 0 records, no records (next offset 0), 512 bytes"* ]] && [[ "$out" != *"0..0"* ]]'
check "verify of an empty segment at base 4096 shows no range ending at 4095" \
	'[[ "$out" == *"$tmp/empty/b: ok: 1 segments, 0 records, no records (next offset 4096), 512 bytes"* ]] && [[ "$out" != *"..4095"* ]]'
# Past the file size limit (ulimit -f, systemd's LimitFSIZE=) a write fails with EFBIG: the
# command says so and exits 1. SIGXFSZ's default ended it with status 153 and no word.
mkdir -p "$tmp/fsize"
out=$( (ulimit -f 2048; "$rill" bench log --dir "$tmp/fsize" --seconds 1 --io buffered) 2>&1); rc=$?
check "bench log past ulimit -f exits 1 naming the error, not killed by SIGXFSZ (rc $rc)" \
	'[ $rc -eq 1 ] && [[ "$out" == *"File too large"* ]]'
# bench log makes a folder of its own: it used DIR/rill-bench-log-PID, appending to
# whatever was there (a symbolic link into a real log included) and removing it at the end.
mkdir -p "$tmp/own"
bash -c 'd=$1/rill-bench-log-$$; mkdir "$d" && echo keep >"$d/precious" &&
	exec "$2" bench log --dir "$1" --seconds 1 --rate 100 >/dev/null' _ "$tmp/own" "$rill"
check "bench log leaves a folder that was already there alone, and removes its own" \
	'[ "$(cat "$tmp"/own/rill-bench-log-*/precious 2>/dev/null)" = keep ] && [ "$(ls "$tmp/own" | wc -l)" -eq 1 ]'
exit $fail
