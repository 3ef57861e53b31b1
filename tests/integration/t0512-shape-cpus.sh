#!/bin/sh
# t0512-shape-cpus.sh - the link shaper and CPU pinning (issue #13):
#  (a) a bad HELIX_LINK_SHAPE file stops `helix worker` (exit 1) with FILE:LINE: FIELD; a
#      missing file too;
#  (b) --cpus of `helix worker` / `helix profile`: both --help texts name it, a bad list and a
#      CPU that is not online are usage errors (exit 2), and without --threads the engine gets
#      one thread per listed CPU;
#  (c) a served run with every link of the pipeline shaped (coordinator -> a -> b ->
#      coordinator, 40 ms on a -> b) and each worker pinned: the text equals `helix generate`,
#      a completion takes at least its tokens x the shaped latencies, /metrics shows
#      device="cpu (cpus N)", and every thread of each worker is on its CPU; `helix serve`
#      with a bad shape file exits 1 naming FILE:LINE: FIELD.
. tests/serve/lib.sh
err=$WORK/err

# (a)
printf 'coordinator w1 1gbps 0.001\n# two lines\nw1 coordinator 1gbps 1x\n' > "$WORK/bad.shape"
HELIX_LINK_SHAPE=$WORK/bad.shape timeout 30 "$HELIX" worker --coordinator tcp://127.0.0.1:9 \
    --name w1 --token x 2>"$err" >/dev/null
rc=$?
[ $rc -eq 1 ] || fail "(a) worker with a bad shape file: want exit 1, got $rc: $(cat "$err")"
grep -q "$WORK/bad.shape:3: LATENCY: \"1x\"" "$err" || fail "(a) worker message: $(cat "$err")"
HELIX_LINK_SHAPE=$WORK/none.shape timeout 30 "$HELIX" worker --coordinator tcp://127.0.0.1:9 \
    --name w1 --token x 2>"$err" >/dev/null
[ $? -eq 1 ] && grep -q "none.shape: cannot open" "$err" || fail "(a) missing file: $(cat "$err")"
echo "(a) ok: $(cat "$err")"

# (b)
for cmd in worker profile; do
    "$HELIX" $cmd --help | grep -q -- '--cpus LIST' || fail "(b) $cmd --help does not name --cpus"
done
"$HELIX" worker --coordinator tcp://127.0.0.1:9 --name w --token x --cpus 0-x 2>"$err"
[ $? -eq 2 ] && grep -q 'item 1 "0-x": not a CPU number' "$err" || fail "(b) --cpus 0-x: $(cat "$err")"
"$HELIX" profile --cpus 3-1 2>"$err" >/dev/null
[ $? -eq 2 ] && grep -q 'range N-M with M < N' "$err" || fail "(b) profile --cpus 3-1: $(cat "$err")"
"$HELIX" worker --coordinator tcp://127.0.0.1:9 --name w --token x --cpus 1023 2>"$err"
[ $? -eq 2 ] && grep -q 'CPU 1023 is not online' "$err" || fail "(b) --cpus 1023: $(cat "$err")"
allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
cpu=$(echo "$allowed" | sed 's/[^0-9].*//')
[ -n "$cpu" ] || fail "(b) cannot read this process's CPUs"
# no --threads: one engine thread per listed CPU (the log says so before it joins)
HX_LOG=info timeout 3 "$HELIX" worker --coordinator tcp://127.0.0.1:9 --name w --token x \
    --cpus "$allowed" 2>"$err" >/dev/null
n_allowed=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))' 2>/dev/null || nproc)
grep -q "pinned to cpus $allowed, $n_allowed engine threads" "$err" ||
    fail "(b) want 'pinned to cpus $allowed, $n_allowed engine threads': $(head -3 "$err")"
echo "(b) ok: --cpus errors; --cpus $allowed gives $n_allowed threads"

# (c)
cat > "$WORK/links.shape" <<EOF
# the request path of a two-stage pipeline
coordinator a  100mbps 0.005
a           b  100mbps 40ms
b coordinator  100mbps 5ms
EOF
want=$(reference "In the beginning" 12)
export HELIX_LINK_SHAPE=$WORK/links.shape
WORKER_EXTRA="--cpus $cpu" serve_start a:0:3 b:3:6
for n in a b; do
    grep -q "shaping links into $n" "$WORK/worker.$n.log" || fail "(c) worker $n is not shaped"
done
grep -q "shaping links into coordinator" "$WORK/serve.log" || fail "(c) the coordinator is not shaped"
t0=$(date +%s%N)
got=$(complete "In the beginning" 12)
t1=$(date +%s%N)
[ -n "$want" ] && [ "$got" = "$want" ] || fail "(c) pipeline '$got' != generate '$want'"
ms=$(( (t1 - t0) / 1000000 ))
# 12 tokens, each around the loop coordinator -> a -> b -> coordinator (>= 50 ms)
[ "$ms" -ge 600 ] || fail "(c) 12 tokens in $ms ms: the links were not shaped (>= 600 ms)"
m=$(curl -sf "$URL/metrics") || fail "(c) no /metrics"
for n in a b; do
    line=$(echo "$m" | grep "^helix_node_info{node=\"$n\",")
    [ "$line" = "helix_node_info{node=\"$n\",backend=\"cpu\",device=\"cpu (cpus $cpu)\"} 1" ] ||
        fail "(c) node $n: '$line'"
    pid=$(cat "$WORK/pid.$n")
    for st in /proc/"$pid"/task/*/status; do
        l=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$st" 2>/dev/null)
        [ -z "$l" ] || [ "$l" = "$cpu" ] || fail "(c) worker $n thread $st on cpus $l, want $cpu"
    done
done
# the coordinator refuses a bad file too (same cluster and plan)
HELIX_LINK_SHAPE=$WORK/bad.shape timeout 60 "$HELIX" serve --cluster "$WORK/cluster.ini" \
    --plan "$WORK/plan" --model "$MODEL" --listen 127.0.0.1:$(free_port) \
    --workers tcp://127.0.0.1:$(free_port) --names a,b 2>"$err" >/dev/null
rc=$?
[ $rc -eq 1 ] && grep -q "bad.shape:3: LATENCY" "$err" || fail "(c) serve, bad file: rc $rc: $(cat "$err")"
echo "(c) ok: shaped + pinned pipeline == generate; 12 tokens in $ms ms; $(echo "$m" | grep '^helix_node_info{node="a"')"
