#!/bin/sh
# t0515: leaving gracefully under load (docs/serving.md, "Draining"). Four workers, two per
# half of the model, serve four clients streaming one request after another. SIGTERM drains a
# worker: nothing new is routed to it, its requests finish in place, the coordinator says
# SHUTDOWN "drained" and the process exits 0 by itself. Then every worker is restarted in turn
# (SIGTERM, wait for the exit, start again, wait until it is ready), one is drained through
# POST /admin/drain/NAME, and one name is killed and restarted 10 times in a row. Throughout:
# no request fails and every stream ends with [DONE]; afterwards /v1/cluster lists each
# worker exactly once.
. tests/serve/lib.sh
serve_start a:0:3 a2:0:3 b:3:6 b2:3:6

load() { # client number
    k=0
    while [ ! -f "$WORK/stop" ]; do
        k=$((k + 1))
        jq -n '{model:"kjv-llama-6m",prompt:"And God said",max_tokens:40,temperature:0,stream:true}' |
            curl -sN -m 60 "$URL/v1/completions" -H 'Content-Type: application/json' -d @- \
                > "$WORK/load.$1.$k.sse" 2>&1
    done
}
for i in 1 2 3 4; do load $i & echo $! >> "$WORK/pids"; echo $! > "$WORK/load.pid.$i"; done

joins() { # NAME: how many times it has registered, from /v1/cluster
    curl -sf "$URL/v1/cluster" | jq -r --arg n "$1" '.workers[] | select(.name == $n) | .joins'
}
up() { # NAME JOINS_BEFORE: wait until it has registered again and is ready (30 s at most);
       # /v1/cluster and /metrics are rendered every 250 ms, so "ready" alone may be stale
    i=0
    until curl -sf "$URL/v1/cluster" | jq -e --arg n "$1" --argjson j "$2" \
        '.workers[] | select(.name == $n) | .joins > $j and .up' > /dev/null; do
        i=$((i + 1)); [ $i -gt 300 ] && fail "$1 not ready again"
        sleep 0.1
    done
}
drained() { # NAME PID: the process exits by itself, with status 0, within 20 s
    i=0
    while kill -0 "$2" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 200 ] && fail "$1 did not exit after draining"
        sleep 0.1
    done
    wait "$2" 2>/dev/null
    rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 127 ] || fail "$1 exited with status $rc after draining"
}
sleep 1

# SIGTERM drains b
t0=$(date +%s.%N)
j=$(joins b)
kill -TERM "$(cat "$WORK/pid.b")"
drained b "$(cat "$WORK/pid.b")"
echo "b drained and exited in $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
grep -q "coordinator: b left (drained" "$WORK/serve.log" || fail "the coordinator did not log b's drain"
grep -q "worker b: draining" "$WORK/worker.b.log" || fail "b did not log its drain"
grep -q "worker b: shutdown: drained" "$WORK/worker.b.log" || fail "b did not get SHUTDOWN drained"
worker_start b
up b "$j"

# a rolling restart of every worker, one at a time
for w in a a2 b b2; do
    j=$(joins "$w")
    kill -TERM "$(cat "$WORK/pid.$w")"
    drained "$w" "$(cat "$WORK/pid.$w")"
    worker_start "$w"
    up "$w" "$j"
done
echo "rolling restart of a, a2, b, b2 done"
grep -o 'draining [a-z0-9]* (signal): routing nothing new to it, [0-9]* requests finish in place' \
    "$WORK/serve.log" | sed 's/^/  /'
grep -q 'draining .*, [1-9][0-9]* requests finish in place' "$WORK/serve.log" ||
    fail "no drain had requests in flight to finish: the test did not exercise finishing in place"

# the admin endpoint drains a2; an unknown name is a 404
j=$(joins a2)
code=$(curl -s -o "$WORK/drain.json" -w '%{http_code}' -X POST "$URL/admin/drain/a2")
[ "$code" = 202 ] || fail "POST /admin/drain/a2: HTTP $code $(cat "$WORK/drain.json")"
drained a2 "$(cat "$WORK/pid.a2")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/admin/drain/nobody")
[ "$code" = 404 ] || fail "POST /admin/drain/nobody: HTTP $code"
worker_start a2
up a2 "$j"

# 10 rapid exit/rejoin cycles of one name
j=$(joins b2)
for k in 1 2 3 4 5 6 7 8 9 10; do
    kill -9 "$(cat "$WORK/pid.b2")"
    worker_start b2
    sleep 0.3
done
up b2 "$j"

touch "$WORK/stop"
for i in 1 2 3 4; do wait "$(cat "$WORK/load.pid.$i")" 2>/dev/null; done
n=0
for f in "$WORK"/load.*.sse; do
    n=$((n + 1))
    grep -q '^data: \[DONE\]' "$f" || fail "a stream did not end with [DONE]: $(tail -3 "$f")"
    grep -q '"error"' "$f" && fail "a stream carried an error: $(grep error "$f" | head -2)"
done
failed=$(wait_metric helix_requests_failed_total -ge 0)
[ "$failed" = 0 ] || fail "$failed requests failed"
curl -sf "$URL/v1/cluster" | jq -e '[.workers[].name] | sort == ["a","a2","b","b2"]' > /dev/null ||
    fail "a ghost or duplicate node: $(curl -sf "$URL/v1/cluster" | jq -c '[.workers[].name]')"
curl -sf "$URL/v1/cluster" | jq -e '[.workers[] | select(.up)] | length == 4' > /dev/null ||
    fail "not every worker is up at the end"
echo "ok: $n streams under drains, a rolling restart, an admin drain and 10 rejoin cycles; 0 failed"
