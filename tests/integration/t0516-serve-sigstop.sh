#!/bin/sh
# t0516: a worker that hangs (SIGSTOP: alive, silent) while serving. a holds layers [0, 3), b and
# b2 both hold [3, 6); a client starts a streamed request every 100 ms. b is stopped: once it
# has been silent for three heartbeats new requests go to b2 (so requests keep completing
# while b hangs), the coordinator must declare it dead within --dead-ms (3 s) plus its render
# period, re-route
# what ran on it (re-prefill on b2), and every stream must end within 5 s of the detection with
# the text it would have had; after SIGCONT b is told it was declared dead, registers again
# and serves. No request fails.
. tests/serve/lib.sh
serve_start a:0:3 b:3:6 b2:3:6
want=$(reference "And God said" 40)
load() { # open loop: a new streamed request every 100 ms, whatever the others do
    k=0
    while [ ! -f "$WORK/stop" ]; do
        k=$((k + 1))
        jq -n '{model:"kjv-llama-6m",prompt:"And God said",max_tokens:40,temperature:0,stream:true}' |
            curl -sN -m 60 "$URL/v1/completions" -H 'Content-Type: application/json' -d @- \
                > "$WORK/load.$k.sse" 2>&1 &
        echo $! >> "$WORK/load.pids"
        sleep 0.1
    done
}
load & echo $! >> "$WORK/pids"; echo $! > "$WORK/load.pid"
sleep 1
# wait until b carries traffic, so the stop catches requests on it
i=0
while [ "$(wait_metric 'helix_node_active_sequences{node="b"}' -ge 1)" -lt 1 ]; do
    i=$((i + 1)); [ $i -gt 10 ] && break
done
now() { date +%s%N; }
t0=$(now)
kill -STOP "$(cat "$WORK/pid.b")"
sleep 1 # b is silent now (3 heartbeats): new requests must go to b2, not wait on b
done1=$(wait_metric helix_requests_completed_total -ge 0)
while ! curl -sf "$URL/v1/cluster" | jq -e '.workers[] | select(.name == "b") | .state == "dead"' > /dev/null; do
    [ $(( ($(now) - t0) / 1000000 )) -gt 6000 ] && fail "b not declared dead 6 s after SIGSTOP"
    sleep 0.05
done
t_detect=$(( ($(now) - t0) / 1000000 ))
echo "b declared dead $t_detect ms after SIGSTOP (--dead-ms 3000)"
done2=$(curl -sf "$URL/metrics" | awk '$1 == "helix_requests_completed_total" { print $2 }')
echo "$((done2 - done1)) requests completed between 1 s after the stop and the detection"
[ $((done2 - done1)) -ge 3 ] || fail "the silent worker drew the traffic: $((done2 - done1)) completed while it hung"
[ "$t_detect" -le 3500 ] || fail "detection took $t_detect ms"
touch "$WORK/stop"
wait "$(cat "$WORK/load.pid")" 2>/dev/null
for p in $(cat "$WORK/load.pids"); do
    while kill -0 "$p" 2>/dev/null; do
        [ $(( ($(now) - t0) / 1000000 - t_detect )) -gt 5000 ] && break 2
        sleep 0.05
    done
done
t_end=$(( ($(now) - t0) / 1000000 ))
echo "every stream ended $((t_end - t_detect)) ms after the detection"
[ $((t_end - t_detect)) -le 5000 ] || fail "streams ended $((t_end - t_detect)) ms after the detection"
n=0
for f in "$WORK"/load.*.sse; do
    n=$((n + 1))
    grep -q '^data: \[DONE\]' "$f" || fail "a stream did not end with [DONE]: $(tail -3 "$f")"
    [ "$(sse_text "$f")" = "$want" ] || fail "a stream's text differs: $(sse_text "$f")"
done
rer=$(wait_metric helix_requests_rerouted_total -ge 0)
echo "$n streams, $rer re-routed"
kill -CONT "$(cat "$WORK/pid.b")"
i=0
while [ "$(wait_metric 'helix_node_up{node="b",state="ready"}' -ge 1)" != 1 ]; do
    i=$((i + 1)); [ $i -gt 6 ] && fail "b did not come back after SIGCONT"
done
[ "$(complete "And God said" 40)" = "$want" ] || fail "wrong text after b came back"
[ "$(wait_metric helix_requests_failed_total -ge 0)" = 0 ] || fail "a request failed"
echo "ok: a SIGSTOPped worker declared dead in $t_detect ms, its streams finished on b2, it rejoined"
