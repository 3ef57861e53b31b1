#!/bin/sh
# t0502: 16 concurrent streaming requests over a heterogeneous placement (one worker holding
# every layer, two more forming a second pipeline) all complete, each equal to its
# single-process greedy result, and both routes carried traffic (IWRR over the max-flow).
. tests/serve/lib.sh
serve_start full:0:6 p1:0:3 p2:3:6
set -- "In the beginning" "And God said" "Blessed are the meek" "Jesus wept."
i=0
for p in "$@"; do
    reference "$p" 48 > "$WORK/ref.$i"
    [ -s "$WORK/ref.$i" ] || fail "helix generate gave no text for '$p'"
    i=$((i + 1))
done
k=0
pids=""
while [ $k -lt 16 ]; do
    j=$((k % 4))
    eval "p=\${$((j + 1))}"
    stream "$p" 48 "$WORK/out.$k" &
    pids="$pids $!"
    k=$((k + 1))
done
for p in $pids; do wait "$p"; done
k=0
while [ $k -lt 16 ]; do
    j=$((k % 4))
    grep -q '^data: \[DONE\]' "$WORK/out.$k" || fail "stream $k did not end with [DONE]"
    grep -q '"error"' "$WORK/out.$k" && fail "stream $k had an error: $(grep error "$WORK/out.$k")"
    got=$(sse_text "$WORK/out.$k")
    want=$(cat "$WORK/ref.$j")
    [ "$got" = "$want" ] || fail "stream $k: '$got' != '$want'"
    k=$((k + 1))
done
for n in full p1 p2; do
    t=$(wait_metric "helix_node_tokens_total{node=\"$n\"}" -gt 0)
    [ "$t" -gt 0 ] || fail "node $n carried no traffic"
done
echo "ok: 16 concurrent streams match helix generate"
