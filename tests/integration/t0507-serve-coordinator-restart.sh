#!/bin/sh
# t0507: kill -9 of the coordinator: the worker notices the silence (10 s), waits for a new
# coordinator on the same endpoint, registers again and serves correct text.
. tests/serve/lib.sh
serve_start a:0:6
kill -9 $SERVE_PID
sleep 11
grep -q 'coordinator silent' "$WORK/worker.a.log" || fail "worker did not notice"
kill -0 "$(cat "$WORK/pid.a")" || fail "worker exited"
HX_LOG=info "$HELIX" serve --cluster "$WORK/cluster.ini" --plan "$WORK/plan" --model "$MODEL" --listen 127.0.0.1:$HTTP_PORT --workers "$COORD" --names a >> "$WORK/serve2.log" 2>&1 &
echo $! >> "$WORK/pids"
i=0; while ! curl -sf "$URL/health" >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 100 ] && fail "no rejoin"; sleep 0.1; done
[ "$(complete "In the beginning" 8)" = "$(reference "In the beginning" 8)" ] || fail text
echo "ok: worker survives coordinator restart"
