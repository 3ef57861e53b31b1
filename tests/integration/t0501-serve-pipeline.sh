#!/bin/sh
# t0501: a 3-worker pipeline (layers [0,2) [2,4) [4,6), one process each, ZeroMQ on loopback)
# behind `helix serve` returns exactly the greedy text of single-process `helix generate`.
. tests/serve/lib.sh
serve_start a:0:2 b:2:4 c:4:6
for p in "In the beginning" "And God said, Let there be light" "The LORD is my shepherd; I shall not want."; do
    want=$(reference "$p" 40)
    got=$(complete "$p" 40)
    [ -n "$want" ] || fail "helix generate gave no text for '$p'"
    [ "$got" = "$want" ] || fail "prompt '$p': pipeline '$got' != generate '$want'"
done
# every stage did the work: each node processed tokens
for n in a b c; do
    t=$(wait_metric "helix_node_tokens_total{node=\"$n\"}" -gt 0)
    [ "$t" -gt 0 ] || fail "node $n processed no tokens: $t"
done
echo "ok: 3-stage pipeline matches helix generate"
