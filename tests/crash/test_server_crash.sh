#!/usr/bin/env bash
# kill -9 of `rill serve` under a durable producer. Each round runs `rill produce --acks
# durable` on a topic of four partitions (group commit) with a sum and a count projection,
# fed by a generator of distinct events (a correlation id each: round and index; a key
# among 16 and an amount derived from the seed), and kills the server with SIGKILL once a
# number of acknowledgements (random per round) has been printed, a few milliseconds
# later. Then, on the same data directory:
#   1. `rill log verify` of the topic exits 0 (a torn tail is not an error);
#   2. the server starts again (recovery), and `rill consume --until-end` prints each
#      partition's offsets 0..n-1, every event one the generator made, none twice;
#   3. every event acknowledged durable in any round so far is there, at the partition and
#      offset its acknowledgement named, with its key, amount and correlation id;
#   4. each key's sum and count projections equal the fold of what consume printed (the
#      log is the truth, not the acknowledgements).
# After the last round SIGTERM must stop the server with status 0 and the log verify.
# RILL_SERVER_CRASH_ROUNDS sets the rounds (3 by default); RILL_TEST_SEED replays the
# events and kill points (not the scheduling).
# usage: test_server_crash.sh RILL_BINARY
. "$(dirname "$0")/../common/test_env.sh"
. "$(dirname "$0")/../common/serve.sh"
producer_pid=
at_exit '[ -n "$producer_pid" ] && kill -KILL "$producer_pid" 2>/dev/null'
client() { timeout 60 "$rill" "$@"; }

seed=${RILL_TEST_SEED:-$(date +%s)}
rounds=${RILL_SERVER_CRASH_ROUNDS:-3}
echo "test seed: RILL_TEST_SEED=$seed; rounds: RILL_SERVER_CRASH_ROUNDS=$rounds"
data=$tmp/data
topic=accounts

cat >"$tmp/crash.py" <<'EOF'
import json, random, re, sys

M64 = (1 << 64) - 1

def mix(x):  # splitmix64: an event's data is a function of the seed and its id
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)

def event(seed, corr):
    h = mix(seed * 1000003 + corr)
    return "acct-%02d" % (h % 16), (mix(h) % 2001) - 1000

def corr_of(rnd, i):
    return (rnd + 1) << 32 | i

def gen(seed, rnd, count):
    # Event i of round rnd, one JSON line each, until count or the reader goes away.
    seed, rnd = int(seed), int(rnd)
    out = sys.stdout
    try:
        for i in range(int(count)):
            c = corr_of(rnd, i)
            key, amount = event(seed, c)
            out.write('{"key":"%s","type":"Deposit","correlation_id":%d,"data":{"amount":%d}}\n'
                      % (key, c, amount))
    except BrokenPipeError:
        pass

def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]

def die(msg):
    print("check:", msg, file=sys.stderr)
    sys.exit(1)

def acks(seed, rnd, acks_path, err_path, known_path):
    # The producer's output: one line per acknowledged input line, in input order; the
    # lines it reported on stderr (the kill: outcome unknown) are not among them. Those
    # are not all after the acknowledged ones: answers come out of order across shards,
    # so a request still unanswered at the kill may precede answered ones, printed after
    # it. So stdout's k-th line answers the k-th input line not reported on stderr.
    seed, rnd = int(seed), int(rnd)
    out = load(acks_path)
    with open(err_path) as f:
        failed = set(int(m.group(1)) for m in re.finditer(r"line (\d+):", f.read()))
    lines, line = [], 0
    for _ in out:
        line += 1
        while line in failed:
            line += 1
        lines.append(line)
    # A wrong mapping shows: each line's key is checked against its event's below.
    with open(known_path, "a") as f:
        for a, line in zip(out, lines):
            j = line - 1
            c = corr_of(rnd, j)
            key, amount = event(seed, c)
            if a.get("key") != key or "duplicate" in a or set(a) != {"key", "partition", "offset"}:
                die("round %d: line %d: %r for event %#x (key %s)" % (rnd, j + 1, a, c, key))
            f.write(json.dumps({"corr": c, "key": key, "amount": amount,
                                "partition": a["partition"], "offset": a["offset"]}) + "\n")
    print(len(out))

def consumed(seed, consume_path, known_path, fold_path):
    # What consume printed: offsets 0..n-1 per partition in order, every event one the
    # generator made (key and amount for its correlation id), none twice; every event
    # acknowledged durable at its place. Writes the fold per key.
    seed = int(seed)
    at, seen, nxt, fold = {}, set(), {}, {}
    for n, e in enumerate(load(consume_path), 1):
        p, o, c = e["partition"], e["offset"], e["correlation_id"]
        if o != nxt.get(p, 0):
            die("line %d: partition %d offset %d, expected %d" % (n, p, o, nxt.get(p, 0)))
        nxt[p] = o + 1
        key, amount = event(seed, c)
        if (e["key"], e["type"], e["data"]) != (key, "Deposit", {"amount": amount}):
            die("line %d: %r: the generator made event %#x as key %s amount %d"
                % (n, e, c, key, amount))
        if c in seen:
            die("line %d: event %#x a second time" % (n, c))
        seen.add(c)
        at[(p, o)] = c
        s = fold.setdefault(key, [0, 0])
        s[0] += amount
        s[1] += 1
    known = load(known_path)
    for k in known:
        got = at.get((k["partition"], k["offset"]))
        if got != k["corr"]:
            die("event %#x (key %s, amount %d), acknowledged durable at %d:%d, is %s"
                % (k["corr"], k["key"], k["amount"], k["partition"], k["offset"],
                   "lost" if got is None else "replaced by event %#x" % got))
    with open(fold_path, "w") as f:
        for key in sorted(fold):
            f.write("%s %d %d\n" % (key, fold[key][0], fold[key][1]))
    print("%d events, %d acknowledged durable" % (len(seen), len(known)))

def queries(answers_path, fold_path):
    answers = load(answers_path)
    with open(fold_path) as f:
        want = [l.split() for l in f if l.strip()]
    if len(answers) != 2 * len(want):
        die("%d answers for %d keys" % (len(answers), len(want)))
    for n, (key, total, count) in enumerate(want):
        s, c = answers[2 * n], answers[2 * n + 1]
        if (s["key"], s["value"], s["count"]) != (key, int(total), int(count)):
            die("key %s: the sum projection says %r; the log folds to sum %s over %s events"
                % (key, s, total, count))
        if (c["key"], c["count"]) != (key, int(count)):
            die("key %s: the count projection says %r; the log holds %s events" % (key, c, count))

def pick(seed, salt, lo, hi):  # a number from the seed and a salt, in [lo, hi]
    print(random.Random(int(seed) * 7919 + int(salt)).randint(int(lo), int(hi)))

{"gen": gen, "acks": acks, "consumed": consumed, "queries": queries,
 "pick": pick}[sys.argv[1]](*sys.argv[2:])
EOF
py() { python3 "$tmp/crash.py" "$@"; }

pick() { py pick "$seed" "$@"; }

start() {
    if ! serve_start "$data" "$tmp/serve.$1.err" --shards 2; then
        if [ "$1" = setup ] && serve_unsupported "$tmp/serve.$1.err"; then
            echo "SKIP: rill serve cannot run on this kernel: $(cat "$tmp/serve.$1.err")"
            exit 77
        fi
        echo "FAIL: the server did not start ($1)"
        exit 1
    fi
}

# Check the data directory as the server sees it: consume everything, query every key.
check_state() {
    local r=$1
    local rc
    client consume --connect "$serve_addr" --topic "$topic" --until-end >"$tmp/consumed.$r" 2>"$tmp/consume.$r.err"
    rc=$?
    check "round $r: consume --until-end exits 0" '[ $rc -eq 0 ]'
    check "round $r: the log holds only generated events, every durable ack where it said" \
        'py consumed "$seed" "$tmp/consumed.$r" "$tmp/known.jsonl" "$tmp/fold.$r"'
    local key ok=0
    : >"$tmp/answers.$r"
    while read -r key _; do
        client query --connect "$serve_addr" --projection deposit_sum --key "$key" >>"$tmp/answers.$r" &&
            client query --connect "$serve_addr" --projection deposit_count --key "$key" >>"$tmp/answers.$r" ||
            ok=1
    done <"$tmp/fold.$r"
    check "round $r: each key's projections equal the fold of the log" \
        '[ $ok -eq 0 ] && py queries "$tmp/answers.$r" "$tmp/fold.$r"'
}

start setup
echo '{"type":"Deposit","version":1,"fields":[{"name":"amount","type":"i64"}]}' >"$tmp/schema.json"
client topic create --connect "$serve_addr" --name "$topic" --partitions 4 --durability group >/dev/null &&
    client schema register --connect "$serve_addr" --file "$tmp/schema.json" >/dev/null &&
    client projection create --connect "$serve_addr" --name deposit_sum --topic "$topic" \
        --type Deposit --kind sum --field amount >/dev/null &&
    client projection create --connect "$serve_addr" --name deposit_count --topic "$topic" \
        --type Deposit --kind count >/dev/null
rc=$?
check "setup: topic, schema and projections" '[ $rc -eq 0 ]'
: >"$tmp/known.jsonl"

for ((r = 0; r < rounds; r++)); do
    want=$(pick $((2 * r)) 1 4000)      # acknowledgements printed before the kill
    extra_ms=$(pick $((2 * r + 1)) 0 20) # and a little more time
    acks=$tmp/acks.$r
    : >"$acks"
    { python3 "$tmp/crash.py" gen "$seed" "$r" 10000000 2>/dev/null |
        timeout 60 "$rill" produce --connect "$serve_addr" --topic "$topic" --acks durable \
            >"$acks" 2>"$tmp/produce.$r.err"; } &
    producer_pid=$!
    deadline=$(($(serve_now_us) + 30000000))
    while [ "$(wc -l <"$acks")" -lt "$want" ] && serve_alive "$producer_pid" &&
        [ "$(serve_now_us)" -lt "$deadline" ]; do
        sleep 0.005
    done
    printed=$(wc -l <"$acks")
    sleep "$(printf '0.%03d' "$extra_ms")"
    serve_kill
    wait "$producer_pid"
    producer_rc=$?
    producer_pid=
    echo "round $r: killed after $printed acknowledgements printed" \
        "(wanted $want, +${extra_ms} ms); producer exit $producer_rc"
    check "round $r: the producer printed $want acknowledgements before the kill" '[ "$printed" -ge "$want" ]'
    check "round $r: the producer exits non-zero after the kill, saying why" \
        '[ $producer_rc -ne 0 ] && [ $producer_rc -ne 124 ] && [ -s "$tmp/produce.$r.err" ]'
    check "round $r: acknowledgements in input order, around the lines reported as failed" \
        'py acks "$seed" "$r" "$acks" "$tmp/produce.$r.err" "$tmp/known.jsonl" >/dev/null'
    out=$("$rill" log verify "$data/topics/$topic"); rc=$?
    check "round $r: log verify after kill -9 exits 0" '[ $rc -eq 0 ]'
    [ $rc -eq 0 ] || echo "$out"
    start "round$r"
    check_state "$r"
    [ $fail -eq 0 ] || break
done

serve_stop 10
check "SIGTERM after the last round: exit 0" '[ "$serve_rc" = 0 ]'
"$rill" log verify "$data/topics/$topic" >/dev/null; rc=$?
check "log verify after the clean stop exits 0" '[ $rc -eq 0 ]'
exit $fail
