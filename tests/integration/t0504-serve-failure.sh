#!/bin/sh
# t0504: kill -9 of a worker mid-generation.
#  (a) another route exists (worker "full" holds every layer): every stream goes on and ends
#      with exactly the single-process text (re-prefill of prompt + tokens so far);
#  (b) no route is left (p2 and full both gone): an in-flight stream ends with an error event
#      within 2 s of the kill, and the coordinator stays up (/health answers);
#  (c) a restarted worker rejoins and takes traffic again.
. tests/serve/lib.sh
serve_start full:0:6 p1:0:3 p2:3:6
P="In the beginning"
events() { n=$(grep -c '^data: ' "$1" 2>/dev/null || true); echo "${n:-0}"; }
N=200
reference "$P" $N > "$WORK/ref"
[ -s "$WORK/ref" ] || fail "no reference text"
# (a)
pids=""
k=0
while [ $k -lt 6 ]; do stream "$P" $N "$WORK/a.$k" & pids="$pids $!"; k=$((k + 1)); done
# wait until generation is under way, then kill p2 without warning
i=0
while [ "$(events "$WORK/a.0")" -lt 5 ]; do
    i=$((i + 1)); [ $i -gt 200 ] && fail "streams did not start"; sleep 0.05
done
kill -9 "$(cat "$WORK/pid.p2")"
for p in $pids; do wait "$p"; done
k=0
while [ $k -lt 6 ]; do
    grep -q '"error"' "$WORK/a.$k" && fail "(a) stream $k got an error: $(grep error "$WORK/a.$k" | head -1)"
    got=$(sse_text "$WORK/a.$k")
    [ "$got" = "$(cat "$WORK/ref")" ] || fail "(a) stream $k differs from helix generate"
    k=$((k + 1))
done
r=$(wait_metric helix_requests_rerouted_total -gt 0)
[ "$r" -gt 0 ] || fail "(a) no request was re-routed: the kill did not hit a route"
echo "(a) ok: 6 streams uninterrupted across the loss of p2 (re-routed: $r)"
# (b) only "full" covers layers 3..5 now; kill it mid-stream
stream "$P" 400 "$WORK/b" &
sp=$!
i=0
while [ "$(events "$WORK/b")" -lt 5 ]; do
    i=$((i + 1)); [ $i -gt 200 ] && fail "stream (b) did not start"; sleep 0.05
done
t0=$(date +%s%N)
kill -9 "$(cat "$WORK/pid.full")"
wait $sp
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
grep -q '"error"' "$WORK/b" || fail "(b) no error event: $(tail -3 "$WORK/b")"
grep -q 'no route' "$WORK/b" || fail "(b) error does not say why: $(grep error "$WORK/b")"
[ $ms -le 2000 ] || fail "(b) the error took $ms ms (> 2 s)"
curl -s "$URL/health" >/dev/null || fail "(b) coordinator not answering"
echo "(b) ok: error event after $ms ms"
c=$(curl -s -o "$WORK/b503" -w '%{http_code}' "$URL/v1/completions" -H 'Content-Type: application/json' \
    -d '{"model":"kjv-llama-6m","prompt":"In the beginning","max_tokens":4}')
[ "$c" = 503 ] && grep -q 'no route' "$WORK/b503" || fail "(b) new request without a route: $c $(cat "$WORK/b503")"
# (c) restart both; the cluster heals and the restarted workers take traffic
worker_start full
worker_start p2
i=0
while ! curl -sf "$URL/health" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 300 ] && fail "(c) cluster did not heal"; sleep 0.1
done
sleep 0.3 # one /metrics render (250 ms) after the rejoin
before=$(wait_metric 'helix_node_tokens_total{node="full"}' -ge 0)
k=0
while [ $k -lt 4 ]; do
    got=$(complete "$P" 24)
    [ "$got" = "$(reference "$P" 24)" ] || fail "(c) wrong text after rejoin"
    k=$((k + 1))
done
after=$(wait_metric 'helix_node_tokens_total{node="full"}' -gt "$before")
[ "$after" -gt "$before" ] || fail "(c) restarted worker 'full' took no traffic ($before -> $after)"
echo "(c) ok: restarted workers rejoined and served"
# no leak: once idle, no KV is reserved or held on any worker
i=0
while :; do
    m=$(curl -sf "$URL/metrics")
    used=$(printf '%s\n' "$m" | sed -n 's/^helix_node_kv_used_bytes{node="[a-z0-9]*"} //p' | sort -u)
    resv=$(printf '%s\n' "$m" | sed -n 's/^helix_node_kv_reserved_blocks{node="[a-z0-9]*"} //p' | sort -u)
    [ "$used" = 0 ] && [ "$resv" = 0 ] && break
    i=$((i + 1)); [ $i -gt 30 ] && fail "KV still held when idle: used [$used] reserved [$resv]"
    sleep 0.1
done
echo "ok: no KV held once idle"
