#!/bin/sh
# t0517: `helix serve --route-wait 3`. a holds layers [0, 3), b [3, 6), nobody else. (a) b is
# killed with SIGKILL in the middle of a stream and restarted 1 s later: the request waits for a
# route instead of failing, is re-prefilled through the new b, and the stream ends with exactly
# the undisturbed text. (b) b is killed and not restarted: a request waits the 3 s, then gets
# 503 with Retry-After and a message that says it waited.
. tests/serve/lib.sh
SERVE_EXTRA="--route-wait 3"
serve_start a:0:3 b:3:6
want=$(reference "In the beginning" 80)

# (a) the only holder of [3, 6) dies mid-stream and comes back
jq -n '{model:"kjv-llama-6m",prompt:"In the beginning",max_tokens:80,temperature:0,stream:true}' |
    curl -sN -m 60 "$URL/v1/completions" -H 'Content-Type: application/json' -d @- > "$WORK/a.sse" &
spid=$!
i=0
while [ "$(grep -c '^data: {' "$WORK/a.sse" 2>/dev/null)" -lt 5 ] 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 200 ] && fail "(a) the stream did not start"; sleep 0.02
done
n0=$(grep -c '^data: {' "$WORK/a.sse")
kill -9 "$(cat "$WORK/pid.b")"
sleep 1
worker_start b
wait $spid
grep -q '"error"' "$WORK/a.sse" && fail "(a) the stream got an error: $(grep error "$WORK/a.sse" | head -1)"
got=$(sse_text "$WORK/a.sse")
[ "$got" = "$want" ] || fail "(a) text after the wait differs: '$got' vs '$want'"
echo "(a) ok: killed after $n0 chunks, the stream waited for b to come back and ended with the undisturbed text"

# (b) b gone for good: 503 after the wait, with Retry-After
i=0
while [ "$(wait_metric 'helix_node_up{node="b",state="ready"}' -ge 1)" != 1 ]; do
    i=$((i + 1)); [ $i -gt 6 ] && fail "(b) b not ready"
done
kill -9 "$(cat "$WORK/pid.b")"
sleep 0.5
t0=$(date +%s%N)
code=$(jq -n '{model:"kjv-llama-6m",prompt:"In the beginning",max_tokens:8}' |
    curl -s -D "$WORK/b.head" -o "$WORK/b.json" -w '%{http_code}' -m 20 "$URL/v1/completions" \
        -H 'Content-Type: application/json' -d @-)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 503 ] || fail "(b) HTTP $code, want 503: $(cat "$WORK/b.json")"
grep -qi '^retry-after: ' "$WORK/b.head" || fail "(b) no Retry-After: $(cat "$WORK/b.head")"
grep -q 'waited' "$WORK/b.json" || fail "(b) the message does not say it waited: $(cat "$WORK/b.json")"
[ $ms -ge 2900 ] && [ $ms -le 6000 ] || fail "(b) answered after $ms ms, want about 3000"
echo "(b) ok: 503 after $ms ms: $(jq -r .error.message "$WORK/b.json")"
[ "$(wait_metric helix_requests_failed_total -ge 1)" = 1 ] || fail "other requests failed"
echo "ok: --route-wait holds requests for a returning worker, then 503 with Retry-After"
