#!/bin/sh
# t0400-simulate.sh - `helix simulate`: a short online run of Helix's single24 ILP layout prints
# the table; --json carries decode_throughput, prompt/decode latency {mean,p50,p95,p99},
# events, wall_seconds and clean invariants; the same seed gives the same numbers; the layout
# can be derived from the simulator cluster; --plot writes two SVGs; bad usage exits 2.
set -u
HELIX=${HELIX:-build/debug/helix}
[ -x "$HELIX" ] || { echo "no helix binary at $HELIX"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
SC=data/layouts/single24_70b/ilp_simulator_cluster.ini
LAY=data/layouts/single24_70b/ilp_sol.ini

out=$("$HELIX" simulate -q --model llama2_70b --sim-cluster $SC --layout $LAY \
    --mode online --rate 500 --duration 60) || fail "simulate exited $?"
echo "$out" | grep -q '^decode throughput  [0-9.]* tokens/s' || fail "table: $out"
echo "$out" | grep -q '^prompt ' || fail "prompt row: $out"
echo "$out" | grep -q '^max-flow           1289.6 tokens/s' || fail "max-flow line: $out"

"$HELIX" simulate --json -q --model llama2_70b --sim-cluster $SC \
    --mode offline --initial-queries 20 --measure 60 --warmup 10 --scheduler random \
    --fidelity helix >"$tmp/a.json" || fail "json exited $?"
for k in decode_throughput prompt_latency decode_latency events wall_seconds mean p50 p95 p99; do
    grep -q "\"$k\"" "$tmp/a.json" || fail "json lacks $k"
done
grep -q '"bad_layer_order":[[:space:]]*0' "$tmp/a.json" || fail "layer order invariant"
grep -q '"kv_overflow":[[:space:]]*0' "$tmp/a.json" || fail "kv invariant"
grep -q '"bw_oversubscribed":[[:space:]]*0' "$tmp/a.json" || fail "bandwidth invariant"
"$HELIX" simulate --json -q --model llama2_70b --sim-cluster $SC \
    --mode offline --initial-queries 20 --measure 60 --warmup 10 --scheduler random \
    --fidelity helix >"$tmp/b.json" || fail "second run exited $?"
grep -v wall_seconds "$tmp/a.json" >"$tmp/a2"
grep -v wall_seconds "$tmp/b.json" >"$tmp/b2"
cmp -s "$tmp/a2" "$tmp/b2" || fail "seeded runs differ"

# --plan DIR reads DIR/simulator_cluster.ini and DIR/placement.ini (helix plan's output)
mkdir -p "$tmp/plan"
cp $SC "$tmp/plan/simulator_cluster.ini"
cp $LAY "$tmp/plan/placement.ini"
"$HELIX" simulate -q --model llama2_70b --plan "$tmp/plan" --mode online --rate 500 \
    --duration 60 >"$tmp/plan.out" || fail "--plan exited $?"
grep -v events "$tmp/plan.out" >"$tmp/p1"
echo "$out" | grep -v events >"$tmp/p2"
cmp -s "$tmp/p1" "$tmp/p2" || fail "--plan differs from --sim-cluster/--layout"

if command -v gnuplot >/dev/null 2>&1; then
    "$HELIX" simulate -q --model llama2_70b --sim-cluster $SC --layout $LAY --mode online \
        --rate 300 --duration 30 --plot "$tmp/plots" >/dev/null || fail "plot run"
    [ -s "$tmp/plots/latency_cdf.svg" ] || fail "no latency_cdf.svg"
    [ -s "$tmp/plots/throughput.svg" ] || fail "no throughput.svg"
fi

"$HELIX" simulate --model llama2_70b --sim-cluster $SC --mode online >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "missing --rate should exit 2"
grep -q "online mode needs --rate" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$HELIX" simulate --model llama2_70b --sim-cluster $SC --scheduler nope >/dev/null 2>&1
[ $? -eq 2 ] || fail "bad scheduler should exit 2"
"$HELIX" simulate --help | grep -q 'usage: helix simulate' || fail "help"
echo ok
